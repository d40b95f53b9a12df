//! Block execution over account state, producing writes and undo records.

use std::collections::{BTreeMap, HashSet};

use borsh::{BorshDeserialize, BorshSerialize};

use super::account::{check_tx, check_tx_account, Account, AccountView};
use super::block::Block;
use super::tx::{Address, DecodeError, SignedTransfer, TxError};
use super::Hash;

/// What a block changed: enough to revert it.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct UndoRecord {
    /// Height of the block this record undoes.
    pub height: u64,
    /// Every touched account's value before the block; `None` if it did not exist.
    pub previous: Vec<(Address, Option<Account>)>,
}

impl UndoRecord {
    /// The canonical encoding (storage value).
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }

    /// Decodes a stored undo record.
    pub fn decode(bytes: &[u8]) -> Result<UndoRecord, DecodeError> {
        borsh::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
    }
}

/// The result of executing a block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockEffects {
    /// New values of every touched account, ordered by address.
    pub writes: Vec<(Address, Account)>,
    /// How to restore the state before the block.
    pub undo: UndoRecord,
}

/// The transaction that made a block invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transaction {index}: {error}")]
pub struct TxRejection {
    /// Position in the block.
    pub index: usize,
    /// Why.
    pub error: TxError,
}

/// Pending state changes on top of a view; each transaction applies fully or not at all.
#[derive(Debug)]
pub struct Overlay<'a, V: AccountView> {
    view: &'a V,
    chain_id: String,
    producer: Address,
    changed: BTreeMap<Address, Account>,
    previous: BTreeMap<Address, Option<Account>>,
    verified: Option<&'a HashSet<Hash>>,
}

impl<'a, V: AccountView> Overlay<'a, V> {
    /// An empty overlay for a block of `chain_id` whose fees go to `producer`.
    pub fn new(view: &'a V, chain_id: &str, producer: Address) -> Self {
        Overlay {
            view,
            chain_id: chain_id.to_string(),
            producer,
            changed: BTreeMap::new(),
            previous: BTreeMap::new(),
            verified: None,
        }
    }

    /// Trusts the signatures of transactions whose hashes are in `verified` (the hash covers
    /// the signature, so only that exact signed transaction is trusted).
    pub fn with_verified(mut self, verified: &'a HashSet<Hash>) -> Self {
        self.verified = Some(verified);
        self
    }

    /// The account as it stands in the overlay (default if it does not exist).
    pub fn get(&self, address: &Address) -> Account {
        self.changed
            .get(address)
            .copied()
            .or_else(|| self.view.account(address))
            .unwrap_or_default()
    }

    /// Checks and executes one transfer: debit sender, bump nonce, credit recipient and fee.
    pub fn apply(&mut self, tx: &SignedTransfer) -> Result<(), TxError> {
        let t = &tx.transfer;
        let from = tx.sender();
        let mut sender = self.get(&from);
        match self.verified {
            Some(set) if !set.is_empty() && set.contains(&tx.hash()) => {
                if t.chain_id != self.chain_id {
                    return Err(TxError::WrongChain);
                }
                check_tx_account(tx, &sender)?;
            }
            _ => check_tx(tx, &self.chain_id, &sender)?,
        }
        let total = t.total_cost().ok_or(TxError::InsufficientBalance {
            balance: sender.balance,
            needed: None,
        })?;
        sender.balance -= total.min(sender.balance);
        sender.nonce = sender.nonce.checked_add(1).ok_or(TxError::NonceExhausted)?;

        // Computed aside and written together, so a failing credit leaves no partial change.
        let mut touched: Vec<(Address, Account)> = vec![(from, sender)];
        let producer = self.producer;
        for (address, amount) in [(t.to, t.amount), (producer, t.fee)] {
            let position = touched.iter().position(|(a, _)| *a == address);
            let mut account = match position.and_then(|i| touched.get(i)) {
                Some((_, acc)) => *acc,
                None => self.get(&address),
            };
            account.balance = account
                .balance
                .checked_add(amount)
                .ok_or(TxError::BalanceOverflow)?;
            match position.and_then(|i| touched.get_mut(i)) {
                Some(slot) => slot.1 = account,
                None => touched.push((address, account)),
            }
        }
        for (address, account) in touched {
            self.set(address, account);
        }
        Ok(())
    }

    fn set(&mut self, address: Address, account: Account) {
        if !self.previous.contains_key(&address) {
            self.previous.insert(address, self.view.account(&address));
        }
        self.changed.insert(address, account);
    }

    /// The writes and undo record of everything applied, for the block at `height`.
    pub fn finish(self, height: u64) -> BlockEffects {
        BlockEffects {
            writes: self.changed.into_iter().collect(),
            undo: UndoRecord {
                height,
                previous: self.previous.into_iter().collect(),
            },
        }
    }
}

/// Executes a block's transactions in order over `view`; fees go to the block producer.
pub fn apply_block(view: &impl AccountView, block: &Block) -> Result<BlockEffects, TxRejection> {
    apply_block_verified(view, block, &HashSet::new())
}

/// [`apply_block`] trusting the signatures of the transactions whose hashes are in `verified`.
pub fn apply_block_verified(
    view: &impl AccountView,
    block: &Block,
    verified: &HashSet<Hash>,
) -> Result<BlockEffects, TxRejection> {
    let producer = Address::from_public_key(&block.header.producer);
    let mut overlay = Overlay::new(view, &block.header.chain_id, producer).with_verified(verified);
    for (index, tx) in block.txs.iter().enumerate() {
        overlay
            .apply(tx)
            .map_err(|error| TxRejection { index, error })?;
    }
    Ok(overlay.finish(block.header.height))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::chain::block::BlockTemplate;
    use crate::chain::tx::tests::{address_of, key, transfer};

    fn block(txs: Vec<SignedTransfer>) -> Block {
        let template = BlockTemplate {
            chain_id: "test".into(),
            height: 1,
            slot: 1,
            parent_hash: [0; 32],
            timestamp_ms: 0,
        };
        Block::produce(template, txs, &key(100))
    }

    fn producer() -> Address {
        address_of(&key(100))
    }

    fn funded(balance: u64) -> HashMap<Address, Account> {
        HashMap::from([(address_of(&key(1)), Account { balance, nonce: 0 })])
    }

    #[test]
    fn transfer_moves_amount_and_fee_and_bumps_nonce() {
        let view = funded(100);
        let (alice, bob) = (address_of(&key(1)), address_of(&key(2)));
        let b = block(vec![
            transfer(&key(1), bob, 30, 2, 0),
            transfer(&key(1), bob, 10, 1, 1),
        ]);
        let effects = apply_block(&view, &b).unwrap();
        let writes: HashMap<_, _> = effects.writes.iter().copied().collect();
        assert_eq!(
            writes[&alice],
            Account {
                balance: 57,
                nonce: 2
            }
        );
        assert_eq!(
            writes[&bob],
            Account {
                balance: 40,
                nonce: 0
            }
        );
        assert_eq!(
            writes[&producer()],
            Account {
                balance: 3,
                nonce: 0
            }
        );
        assert_eq!(effects.undo.height, 1);
        let undo: HashMap<_, _> = effects.undo.previous.iter().copied().collect();
        assert_eq!(
            undo[&alice],
            Some(Account {
                balance: 100,
                nonce: 0
            })
        );
        assert_eq!(undo[&bob], None);
        assert_eq!(undo[&producer()], None);
        assert_eq!(undo.len(), 3);
    }

    #[test]
    fn verified_hashes_skip_only_the_signature_check_of_that_exact_transaction() {
        let view = funded(100);
        let bob = address_of(&key(2));
        let good = transfer(&key(1), bob, 30, 2, 0);
        let mut forged = good.clone();
        forged.signature[0] ^= 1;
        assert_ne!(forged.hash(), good.hash());
        // trusting the good transfer does not trust a copy with another signature
        let verified = HashSet::from([good.hash()]);
        let err = apply_block_verified(&view, &block(vec![forged.clone()]), &verified).unwrap_err();
        assert_eq!(err.error, TxError::BadSignature);
        // the verified transaction still gets its account checks
        let effects = apply_block_verified(&view, &block(vec![good.clone()]), &verified).unwrap();
        assert_eq!(
            effects,
            apply_block(&view, &block(vec![good.clone()])).unwrap()
        );
        let replay = block(vec![good.clone(), good.clone()]);
        let err = apply_block_verified(&view, &replay, &verified).unwrap_err();
        assert_eq!(
            (err.index, err.error),
            (
                1,
                TxError::NonceTooLow {
                    expected: 1,
                    got: 0
                }
            )
        );
        let poor = funded(31);
        let err = apply_block_verified(&poor, &block(vec![good.clone()]), &verified).unwrap_err();
        assert!(matches!(err.error, TxError::InsufficientBalance { .. }));
        // and its chain id
        let other = crate::chain::tx::Transfer {
            chain_id: "other".into(),
            ..good.transfer.clone()
        }
        .sign(&key(1));
        let err = apply_block_verified(
            &view,
            &block(vec![other.clone()]),
            &HashSet::from([other.hash()]),
        )
        .unwrap_err();
        assert_eq!(err.error, TxError::WrongChain);
    }

    #[test]
    fn undo_restores_previous_state() {
        let mut state = funded(100);
        let before = state.clone();
        let b = block(vec![transfer(&key(1), address_of(&key(2)), 30, 2, 0)]);
        let effects = apply_block(&state, &b).unwrap();
        state.extend(effects.writes.iter().copied());
        for (address, previous) in &effects.undo.previous {
            match previous {
                Some(acc) => state.insert(*address, *acc),
                None => state.remove(address),
            };
        }
        assert_eq!(state, before);
        let decoded = UndoRecord::decode(&effects.undo.encode()).unwrap();
        assert_eq!(decoded, effects.undo);
    }

    #[test]
    fn exact_balance_is_enough_one_more_is_not() {
        let bob = address_of(&key(2));
        assert!(apply_block(&funded(100), &block(vec![transfer(&key(1), bob, 99, 1, 0)])).is_ok());
        let err = apply_block(
            &funded(100),
            &block(vec![transfer(&key(1), bob, 100, 1, 0)]),
        )
        .unwrap_err();
        assert_eq!(err.index, 0);
        assert_eq!(
            err.error,
            TxError::InsufficientBalance {
                balance: 100,
                needed: Some(101)
            }
        );
    }

    #[test]
    fn overflowing_cost_is_insufficient_not_a_panic() {
        let err = apply_block(
            &funded(u64::MAX),
            &block(vec![transfer(&key(1), address_of(&key(2)), u64::MAX, 1, 0)]),
        )
        .unwrap_err();
        assert_eq!(
            err.error,
            TxError::InsufficientBalance {
                balance: u64::MAX,
                needed: None
            }
        );
    }

    #[test]
    fn nonce_must_be_exact() {
        let bob = address_of(&key(2));
        let err =
            apply_block(&funded(100), &block(vec![transfer(&key(1), bob, 1, 0, 1)])).unwrap_err();
        assert_eq!(
            err.error,
            TxError::NonceTooHigh {
                expected: 0,
                got: 1
            }
        );
        let replay = transfer(&key(1), bob, 1, 0, 0);
        let err = apply_block(&funded(100), &block(vec![replay.clone(), replay])).unwrap_err();
        assert_eq!(err.index, 1);
        assert_eq!(
            err.error,
            TxError::NonceTooLow {
                expected: 1,
                got: 0
            }
        );
    }

    #[test]
    fn recipient_overflow_is_rejected_without_partial_writes() {
        let bob = address_of(&key(2));
        let mut view = funded(100);
        view.insert(
            bob,
            Account {
                balance: u64::MAX,
                nonce: 0,
            },
        );
        let b = block(vec![transfer(&key(1), bob, 1, 0, 0)]);
        assert_eq!(
            apply_block(&view, &b).unwrap_err().error,
            TxError::BalanceOverflow
        );

        let mut overlay = Overlay::new(&view, "test", producer());
        assert!(overlay.apply(&b.txs[0]).is_err());
        assert_eq!(overlay.get(&address_of(&key(1))).balance, 100);
        assert!(overlay.finish(1).writes.is_empty());
    }

    #[test]
    fn self_transfer_and_producer_paying_itself_conserve_supply() {
        let alice = address_of(&key(1));
        let view = funded(100);
        let template = BlockTemplate {
            chain_id: "test".into(),
            height: 1,
            slot: 1,
            parent_hash: [0; 32],
            timestamp_ms: 0,
        };
        let b = Block::produce(template, vec![transfer(&key(1), alice, 40, 5, 0)], &key(1));
        let effects = apply_block(&view, &b).unwrap();
        assert_eq!(
            effects.writes,
            vec![(
                alice,
                Account {
                    balance: 100,
                    nonce: 1
                }
            )]
        );
    }

    #[test]
    fn wrong_chain_and_bad_signature_reject() {
        let bob = address_of(&key(2));
        let mut tx = transfer(&key(1), bob, 1, 0, 0);
        tx.transfer.chain_id = "other".into();
        let tx = tx.transfer.sign(&key(1));
        let err = apply_block(&funded(100), &block(vec![tx])).unwrap_err();
        assert_eq!(err.error, TxError::WrongChain);

        let mut tx = transfer(&key(1), bob, 1, 0, 0);
        tx.signature[3] ^= 1;
        let err = apply_block(&funded(100), &block(vec![tx])).unwrap_err();
        assert_eq!(err.error, TxError::BadSignature);
    }

    #[test]
    fn nonce_at_max_is_exhausted() {
        let alice = address_of(&key(1));
        let view = HashMap::from([(
            alice,
            Account {
                balance: 10,
                nonce: u64::MAX,
            },
        )]);
        let b = block(vec![transfer(&key(1), address_of(&key(2)), 1, 0, u64::MAX)]);
        assert_eq!(
            apply_block(&view, &b).unwrap_err().error,
            TxError::NonceExhausted
        );
    }

    #[test]
    fn account_encoding_round_trip() {
        let acc = Account {
            balance: 5,
            nonce: 9,
        };
        assert_eq!(Account::decode(&acc.encode()).unwrap(), acc);
        assert!(Account::decode(&[1, 2, 3]).is_err());
    }
}
