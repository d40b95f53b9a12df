//! Transactions: addresses derived from ed25519 keys, signed transfers and their encoding.

use std::fmt;
use std::str::FromStr;

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey};

use super::{verify_ed25519, Hash};
use crate::identity::{from_hex, to_hex};

/// Bytes of blake3(public key) that form an address.
pub const ADDRESS_LEN: usize = 20;
/// Bytes of checksum appended to an address in its string form.
pub const CHECKSUM_LEN: usize = 4;
/// Prefix of the string form of an address.
pub const ADDRESS_PREFIX: char = 'q';
/// Largest encoded signed transfer accepted from outside.
pub const MAX_TX_BYTES: usize = 512;

/// Domain tag prepended to a transfer's encoding before signing.
const TX_SIGNING_DOMAIN: &[u8] = b"qnet/transfer/v1";
/// Domain tag of the address checksum hash.
const CHECKSUM_DOMAIN: &[u8] = b"qnet/address-checksum/v1";

/// An account address: the first 20 bytes of blake3(ed25519 public key).
///
/// Its string form is `q` + hex(20 bytes + 4-byte checksum), so a mistyped address is
/// caught before any funds move.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct Address([u8; ADDRESS_LEN]);

impl Address {
    /// The address of an ed25519 public key.
    pub fn from_public_key(public_key: &[u8; 32]) -> Self {
        let hash = blake3::hash(public_key);
        let mut bytes = [0u8; ADDRESS_LEN];
        bytes.copy_from_slice(&hash.as_bytes()[..ADDRESS_LEN]);
        Address(bytes)
    }

    /// An address from its raw 20 bytes.
    pub fn from_bytes(bytes: [u8; ADDRESS_LEN]) -> Self {
        Address(bytes)
    }

    /// The raw 20 bytes (the storage key of the account).
    pub fn as_bytes(&self) -> &[u8; ADDRESS_LEN] {
        &self.0
    }

    fn checksum(&self) -> [u8; CHECKSUM_LEN] {
        let mut hasher = blake3::Hasher::new();
        hasher.update(CHECKSUM_DOMAIN);
        hasher.update(&self.0);
        let mut out = [0u8; CHECKSUM_LEN];
        out.copy_from_slice(&hasher.finalize().as_bytes()[..CHECKSUM_LEN]);
        out
    }

    /// Parses the string form, checking prefix, length, hex and checksum.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        let body = s
            .strip_prefix(ADDRESS_PREFIX)
            .ok_or(AddressError::MissingPrefix)?;
        if body.len() != (ADDRESS_LEN + CHECKSUM_LEN) * 2 {
            return Err(AddressError::BadLength(s.len()));
        }
        let bytes = from_hex(body).ok_or(AddressError::BadHex)?;
        let (raw, checksum) = bytes.split_at(ADDRESS_LEN);
        let raw: [u8; ADDRESS_LEN] = raw.try_into().map_err(|_| AddressError::BadHex)?;
        let address = Address(raw);
        if address.checksum() != checksum {
            return Err(AddressError::BadChecksum);
        }
        Ok(address)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{ADDRESS_PREFIX}{}{}",
            to_hex(&self.0),
            to_hex(&self.checksum())
        )
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(deserializer)?;
        Address::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Why a string is not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The string does not start with `q`.
    #[error("address must start with \"q\"")]
    MissingPrefix,
    /// Wrong number of characters.
    #[error("address has {0} characters, expected 49")]
    BadLength(usize),
    /// Not hex after the prefix.
    #[error("address is not hex after the \"q\" prefix")]
    BadHex,
    /// The checksum does not match: a typo.
    #[error("address checksum mismatch (mistyped address?)")]
    BadChecksum,
}

/// A transfer of `amount` from the key `from` to `to`, paying `fee` to the block producer.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Transfer {
    /// The chain this transfer is meant for (replay protection across chains).
    pub chain_id: String,
    /// The sender's ed25519 public key.
    pub from: [u8; 32],
    /// The recipient.
    pub to: Address,
    /// Amount moved to the recipient.
    pub amount: u64,
    /// Fee paid to the producer of the including block.
    pub fee: u64,
    /// Must equal the sender account's nonce at execution.
    pub nonce: u64,
}

impl Transfer {
    /// The sender's address.
    pub fn sender(&self) -> Address {
        Address::from_public_key(&self.from)
    }

    /// The bytes the sender signs: a domain tag and the canonical encoding.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = TX_SIGNING_DOMAIN.to_vec();
        out.extend(borsh::to_vec(self).unwrap_or_default());
        out
    }

    /// Signs the transfer; `from` should be the key's public key for it to verify.
    pub fn sign(self, key: &SigningKey) -> SignedTransfer {
        let signature = key.sign(&self.signing_bytes()).to_bytes();
        SignedTransfer {
            transfer: self,
            signature,
        }
    }

    /// Amount plus fee, `None` on overflow.
    pub fn total_cost(&self) -> Option<u64> {
        self.amount.checked_add(self.fee)
    }
}

/// A transfer with the sender's ed25519 signature.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedTransfer {
    /// What is signed.
    pub transfer: Transfer,
    /// ed25519 signature over [`Transfer::signing_bytes`].
    pub signature: [u8; 64],
}

impl SignedTransfer {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }

    /// Decodes a transfer received from outside, refusing oversized or trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_TX_BYTES {
            return Err(DecodeError::TooLarge {
                size: bytes.len(),
                max: MAX_TX_BYTES,
            });
        }
        borsh::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
    }

    /// The transaction hash: blake3 of the canonical encoding.
    pub fn hash(&self) -> Hash {
        *blake3::hash(&self.encode()).as_bytes()
    }

    /// Whether the signature is valid for the sender key.
    pub fn verify_signature(&self) -> bool {
        verify_ed25519(
            &self.transfer.from,
            &self.transfer.signing_bytes(),
            &self.signature,
        )
    }

    /// The sender's address.
    pub fn sender(&self) -> Address {
        self.transfer.sender()
    }
}

/// Why bytes are not a valid encoded object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// More bytes than the limit.
    #[error("{size} bytes exceed the limit of {max}")]
    TooLarge {
        /// Bytes received.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Not a canonical encoding.
    #[error("malformed encoding: {0}")]
    Malformed(String),
}

/// Why a transaction is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Signed for another chain.
    #[error("wrong chain id")]
    WrongChain,
    /// The signature does not match the sender key.
    #[error("bad signature")]
    BadSignature,
    /// Nonce already used (a replay).
    #[error("nonce {got} too low, expected {expected}")]
    NonceTooLow {
        /// The account's nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// Nonce ahead of the account: earlier transactions are missing.
    #[error("nonce {got} too high, expected {expected}")]
    NonceTooHigh {
        /// The account's nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// Balance below amount + fee (`needed` is `None` when amount + fee overflows).
    #[error(
        "insufficient balance {balance}, needed {}",
        needed.map_or_else(|| "more than the largest amount".to_string(), |n| n.to_string())
    )]
    InsufficientBalance {
        /// The sender's balance.
        balance: u64,
        /// Amount + fee.
        needed: Option<u64>,
    },
    /// A credit would overflow the recipient's or producer's balance.
    #[error("balance overflow")]
    BalanceOverflow,
    /// The sender's nonce cannot be incremented any more.
    #[error("nonce exhausted")]
    NonceExhausted,
}

impl TxError {
    /// Short label for metrics and API error data.
    pub fn as_str(&self) -> &'static str {
        match self {
            TxError::WrongChain => "wrong_chain",
            TxError::BadSignature => "bad_signature",
            TxError::NonceTooLow { .. } => "nonce_too_low",
            TxError::NonceTooHigh { .. } => "nonce_too_high",
            TxError::InsufficientBalance { .. } => "insufficient_balance",
            TxError::BalanceOverflow => "balance_overflow",
            TxError::NonceExhausted => "nonce_exhausted",
        }
    }
}

/// Checks that need no state: chain id, then signature.
pub fn check_tx_stateless(tx: &SignedTransfer, chain_id: &str) -> Result<(), TxError> {
    if tx.transfer.chain_id != chain_id {
        return Err(TxError::WrongChain);
    }
    if !tx.verify_signature() {
        return Err(TxError::BadSignature);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    pub(crate) fn address_of(key: &SigningKey) -> Address {
        Address::from_public_key(key.verifying_key().as_bytes())
    }

    pub(crate) fn transfer(
        from: &SigningKey,
        to: Address,
        amount: u64,
        fee: u64,
        nonce: u64,
    ) -> SignedTransfer {
        Transfer {
            chain_id: "test".into(),
            from: from.verifying_key().to_bytes(),
            to,
            amount,
            fee,
            nonce,
        }
        .sign(from)
    }

    #[test]
    fn address_string_round_trip() {
        let a = address_of(&key(1));
        let s = a.to_string();
        assert!(s.starts_with('q'));
        assert_eq!(s.len(), 49);
        assert_eq!(Address::parse(&s).unwrap(), a);
        assert_eq!(s.parse::<Address>().unwrap(), a);
    }

    #[test]
    fn address_parse_errors_are_specific() {
        let s = address_of(&key(1)).to_string();
        assert_eq!(Address::parse(&s[1..]), Err(AddressError::MissingPrefix));
        assert_eq!(Address::parse(&s[..48]), Err(AddressError::BadLength(48)));
        assert_eq!(
            Address::parse(&format!("{s}0")),
            Err(AddressError::BadLength(50))
        );
        let bad_hex = format!("q{}", "z".repeat(48));
        assert_eq!(Address::parse(&bad_hex), Err(AddressError::BadHex));
        // Flip one hex digit of the body: the checksum catches it.
        let mut typo: Vec<char> = s.chars().collect();
        typo[5] = if typo[5] == '0' { '1' } else { '0' };
        let typo: String = typo.into_iter().collect();
        assert_eq!(Address::parse(&typo), Err(AddressError::BadChecksum));
    }

    #[test]
    fn address_accepts_uppercase_hex() {
        let s = address_of(&key(2)).to_string();
        let upper = format!("q{}", s[1..].to_uppercase());
        assert_eq!(Address::parse(&upper).unwrap(), address_of(&key(2)));
    }

    #[test]
    fn address_serde_uses_string_form() {
        let a = address_of(&key(3));
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, format!("\"{a}\""));
        assert_eq!(serde_json::from_str::<Address>(&json).unwrap(), a);
        assert!(serde_json::from_str::<Address>("\"q00\"").is_err());
    }

    #[test]
    fn signed_transfer_verifies_and_tampering_breaks_it() {
        let alice = key(1);
        let tx = transfer(&alice, address_of(&key(2)), 10, 1, 0);
        assert!(tx.verify_signature());
        assert_eq!(tx.sender(), address_of(&alice));

        let mut tampered = tx.clone();
        tampered.transfer.amount = 11;
        assert!(!tampered.verify_signature());

        let mut wrong_key = tx.clone();
        wrong_key.transfer.from = key(9).verifying_key().to_bytes();
        assert!(!wrong_key.verify_signature());

        let mut bad_sig = tx;
        bad_sig.signature[0] ^= 1;
        assert!(!bad_sig.verify_signature());
    }

    #[test]
    fn encode_decode_round_trip_and_hash_is_stable() {
        let tx = transfer(&key(1), address_of(&key(2)), 10, 1, 7);
        let bytes = tx.encode();
        assert!(bytes.len() <= MAX_TX_BYTES);
        let back = SignedTransfer::decode(&bytes).unwrap();
        assert_eq!(back, tx);
        assert_eq!(back.hash(), tx.hash());
        let other = transfer(&key(1), address_of(&key(2)), 10, 1, 8);
        assert_ne!(other.hash(), tx.hash());
    }

    #[test]
    fn decode_rejects_oversized_truncated_and_trailing() {
        let tx = transfer(&key(1), address_of(&key(2)), 10, 1, 7);
        let bytes = tx.encode();
        assert!(matches!(
            SignedTransfer::decode(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Malformed(_))
        ));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            SignedTransfer::decode(&trailing),
            Err(DecodeError::Malformed(_))
        ));
        assert_eq!(
            SignedTransfer::decode(&vec![0u8; MAX_TX_BYTES + 1]),
            Err(DecodeError::TooLarge {
                size: MAX_TX_BYTES + 1,
                max: MAX_TX_BYTES
            })
        );
        assert!(SignedTransfer::decode(&[]).is_err());
    }

    #[test]
    fn total_cost_overflow_is_none() {
        let tx = transfer(&key(1), address_of(&key(2)), u64::MAX, 1, 0);
        assert_eq!(tx.transfer.total_cost(), None);
        let tx = transfer(&key(1), address_of(&key(2)), u64::MAX - 1, 1, 0);
        assert_eq!(tx.transfer.total_cost(), Some(u64::MAX));
    }
}
