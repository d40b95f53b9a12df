//! An account (balance, nonce), read access to account state, and the checks a transfer must
//! pass against its sender's account. A leaf of the chain below `state` (block execution),
//! `validate` (block validation), `mempool` and `spec`, which all need these rules.

use std::collections::{BTreeMap, HashMap};

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use super::tx::{check_tx_stateless, Address, DecodeError, SignedTransfer, TxError};

/// An account's state.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct Account {
    /// Spendable balance.
    pub balance: u64,
    /// Nonce the next transfer from this account must carry.
    pub nonce: u64,
}

impl Account {
    /// The canonical encoding (storage value).
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }

    /// Decodes a stored account.
    pub fn decode(bytes: &[u8]) -> Result<Account, DecodeError> {
        borsh::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
    }
}

/// Read access to account state; `None` means the account was never written.
pub trait AccountView {
    /// The stored account at `address`.
    fn account(&self, address: &Address) -> Option<Account>;
}

impl AccountView for HashMap<Address, Account> {
    fn account(&self, address: &Address) -> Option<Account> {
        self.get(address).copied()
    }
}

impl AccountView for BTreeMap<Address, Account> {
    fn account(&self, address: &Address) -> Option<Account> {
        self.get(address).copied()
    }
}

/// Full check against the sender's current account: stateless checks, exact nonce, funds.
pub fn check_tx(tx: &SignedTransfer, chain_id: &str, sender: &Account) -> Result<(), TxError> {
    check_tx_stateless(tx, chain_id)?;
    check_tx_account(tx, sender)
}

/// The checks against the sender's account alone: exact nonce, then funds.
pub fn check_tx_account(tx: &SignedTransfer, sender: &Account) -> Result<(), TxError> {
    let (expected, got) = (sender.nonce, tx.transfer.nonce);
    if got < expected {
        return Err(TxError::NonceTooLow { expected, got });
    }
    if got > expected {
        return Err(TxError::NonceTooHigh { expected, got });
    }
    let needed = tx.transfer.total_cost();
    if needed.is_none_or(|n| n > sender.balance) {
        return Err(TxError::InsufficientBalance {
            balance: sender.balance,
            needed,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::tx::tests::{address_of, key, transfer};

    #[test]
    fn check_tx_nonce_and_balance_edges() {
        let tx = |amount, fee, nonce| transfer(&key(10), address_of(&key(11)), amount, fee, nonce);
        let acc = Account {
            balance: 10,
            nonce: 3,
        };
        assert_eq!(check_tx(&tx(9, 1, 3), "test", &acc), Ok(()));
        assert_eq!(
            check_tx(&tx(10, 1, 3), "test", &acc),
            Err(TxError::InsufficientBalance {
                balance: 10,
                needed: Some(11)
            })
        );
        assert_eq!(
            check_tx(&tx(1, 0, 2), "test", &acc),
            Err(TxError::NonceTooLow {
                expected: 3,
                got: 2
            })
        );
        assert_eq!(
            check_tx(&tx(1, 0, 4), "test", &acc),
            Err(TxError::NonceTooHigh {
                expected: 3,
                got: 4
            })
        );
        assert_eq!(
            check_tx(&tx(1, 0, 3), "other", &acc),
            Err(TxError::WrongChain)
        );
    }
}
