//! The chain spec (`--chain` JSON): chain id, genesis time, slots, producers, initial
//! balances; the genesis block and the slot schedule derived from it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use borsh::BorshSerialize;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use super::account::Account;
use super::block::{Block, BlockHeader};
use super::tx::{Address, AddressError};
use super::{Hash, ZERO_HASH};
use crate::identity::{from_hex, to_hex, Identity};

/// Default slot length.
pub const DEFAULT_SLOT_MS: u64 = 1_000;
/// Longest chain id.
pub const MAX_CHAIN_ID_LEN: usize = 64;
/// Chain id of the development chain.
pub const DEV_CHAIN_ID: &str = "qnet-dev";
/// Balance of the funded account of the development chain.
pub const DEV_BALANCE: u64 = 1_000_000_000_000;

/// Key-derivation context of the development account (derived from the node key).
const DEV_ACCOUNT_CONTEXT: &str = "qnet dev account v1";

fn default_slot_ms() -> u64 {
    DEFAULT_SLOT_MS
}

/// A slot of the schedule: when it starts and who produces in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduledSlot {
    /// Slot number.
    pub slot: u64,
    /// Start of the slot, milliseconds since the Unix epoch.
    pub start_ms: u64,
    /// Public key of the slot's producer.
    pub producer: [u8; 32],
}

/// The chain spec as written in the JSON file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    /// Chain id: 1–64 characters of `[A-Za-z0-9._-]`.
    pub chain_id: String,
    /// Start of slot 0, milliseconds since the Unix epoch.
    pub genesis_time_ms: u64,
    /// Slot length in milliseconds.
    #[serde(default = "default_slot_ms")]
    pub slot_ms: u64,
    /// Producer public keys (hex), in schedule order.
    pub producers: Vec<String>,
    /// Initial balances: (address string, amount).
    #[serde(default)]
    pub balances: Vec<(String, u64)>,
}

/// Why a chain spec is unusable.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("chain spec {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The io error.
        source: std::io::Error,
    },
    /// The file was read but is not a valid spec.
    #[error("chain spec {}: {source}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: Box<SpecError>,
    },
    /// Not JSON of the expected shape.
    #[error("invalid json: {0}")]
    Json(#[from] serde_json::Error),
    /// The chain id is empty, too long or has other characters.
    #[error("chain_id {0:?} must be 1-64 characters of A-Z a-z 0-9 . _ -")]
    BadChainId(String),
    /// Slot length is zero.
    #[error("slot_ms must be greater than 0")]
    ZeroSlot,
    /// No producers.
    #[error("producers must list at least one public key")]
    NoProducers,
    /// A producer is not a 64-hex-character ed25519 public key.
    #[error("producers[{index}] is not a valid ed25519 public key (64 hex characters)")]
    BadProducer {
        /// Position in the list.
        index: usize,
    },
    /// A producer appears twice.
    #[error("producers[{index}] is listed twice")]
    DuplicateProducer {
        /// Position of the repeat.
        index: usize,
    },
    /// A balance address does not parse.
    #[error("balances[{index}]: {source}")]
    BadAddress {
        /// Position in the list.
        index: usize,
        /// Why.
        source: AddressError,
    },
    /// An address has two balances.
    #[error("balances[{index}] repeats an address")]
    DuplicateBalance {
        /// Position of the repeat.
        index: usize,
    },
    /// The balances add up to more than u64::MAX.
    #[error("total of balances overflows u64")]
    SupplyOverflow,
}

/// What the genesis hash commits to, so chains differing in any spec field differ in genesis.
#[derive(BorshSerialize)]
struct SpecCommitment<'a> {
    chain_id: &'a str,
    genesis_time_ms: u64,
    slot_ms: u64,
    producers: Vec<[u8; 32]>,
    balances: Vec<(Address, u64)>,
}

impl ChainSpec {
    /// Reads and validates a spec file.
    pub fn load(path: &Path) -> Result<ChainSpec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text).map_err(|e| SpecError::InFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// Parses and validates a spec from JSON text.
    pub fn from_json(text: &str) -> Result<ChainSpec, SpecError> {
        let spec: ChainSpec = serde_json::from_str(text)?;
        spec.validate()?;
        Ok(spec)
    }

    /// Pretty JSON of the spec (for writing the development spec to disk).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks every field; the other methods assume a validated spec.
    pub fn validate(&self) -> Result<(), SpecError> {
        let id_ok = !self.chain_id.is_empty()
            && self.chain_id.len() <= MAX_CHAIN_ID_LEN
            && self
                .chain_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !id_ok {
            let shown: String = self.chain_id.chars().take(MAX_CHAIN_ID_LEN + 8).collect();
            return Err(SpecError::BadChainId(shown));
        }
        if self.slot_ms == 0 {
            return Err(SpecError::ZeroSlot);
        }
        if self.producers.is_empty() {
            return Err(SpecError::NoProducers);
        }
        let mut seen = BTreeSet::new();
        for (index, hex) in self.producers.iter().enumerate() {
            let key = parse_public_key(hex).ok_or(SpecError::BadProducer { index })?;
            if !seen.insert(key) {
                return Err(SpecError::DuplicateProducer { index });
            }
        }
        self.genesis_accounts().map(|_| ())
    }

    /// Producer public keys in schedule order (invalid entries skipped).
    pub fn producer_keys(&self) -> Vec<[u8; 32]> {
        self.producers
            .iter()
            .filter_map(|p| parse_public_key(p))
            .collect()
    }

    /// The producer scheduled for `slot`: `producers[slot % n]`.
    pub fn producer_for_slot(&self, slot: u64) -> Option<[u8; 32]> {
        let n = u64::try_from(self.producers.len()).ok()?;
        let index = usize::try_from(slot.checked_rem(n)?).ok()?;
        parse_public_key(self.producers.get(index)?)
    }

    /// The slot at `now_ms`; 0 (the genesis slot, never produced) before genesis.
    pub fn slot_at(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.genesis_time_ms) / self.slot_ms.max(1)
    }

    /// Start of `slot` in milliseconds since the Unix epoch (saturating).
    pub fn slot_start_ms(&self, slot: u64) -> u64 {
        self.genesis_time_ms
            .saturating_add(slot.saturating_mul(self.slot_ms))
    }

    /// The `n` slots after the one running at `now_ms`, each with its start and its producer
    /// (a slot whose producer entry does not parse is left out, as no block can be made in it).
    pub fn upcoming_slots(&self, now_ms: u64, n: usize) -> Vec<ScheduledSlot> {
        let first = self.slot_at(now_ms).saturating_add(1);
        (first..)
            .take(n)
            .filter_map(|slot| {
                Some(ScheduledSlot {
                    slot,
                    start_ms: self.slot_start_ms(slot),
                    producer: self.producer_for_slot(slot)?,
                })
            })
            .collect()
    }

    /// Initial accounts, in spec order.
    pub fn genesis_accounts(&self) -> Result<Vec<(Address, Account)>, SpecError> {
        let mut seen = BTreeSet::new();
        let mut total: u64 = 0;
        let mut out = Vec::with_capacity(self.balances.len());
        for (index, (text, balance)) in self.balances.iter().enumerate() {
            let address =
                Address::parse(text).map_err(|source| SpecError::BadAddress { index, source })?;
            if !seen.insert(address) {
                return Err(SpecError::DuplicateBalance { index });
            }
            total = total
                .checked_add(*balance)
                .ok_or(SpecError::SupplyOverflow)?;
            out.push((
                address,
                Account {
                    balance: *balance,
                    nonce: 0,
                },
            ));
        }
        Ok(out)
    }

    fn commitment(&self) -> Hash {
        let commitment = SpecCommitment {
            chain_id: &self.chain_id,
            genesis_time_ms: self.genesis_time_ms,
            slot_ms: self.slot_ms,
            producers: self.producer_keys(),
            balances: self
                .genesis_accounts()
                .unwrap_or_default()
                .into_iter()
                .map(|(a, acc)| (a, acc.balance))
                .collect(),
        };
        *blake3::hash(&borsh::to_vec(&commitment).unwrap_or_default()).as_bytes()
    }

    /// The genesis block: height 0, slot 0, unsigned; its parent hash commits to the spec.
    pub fn genesis_block(&self) -> Block {
        Block {
            header: BlockHeader {
                chain_id: self.chain_id.clone(),
                height: 0,
                slot: 0,
                parent_hash: self.commitment(),
                timestamp_ms: self.genesis_time_ms,
                producer: [0; 32],
                tx_root: ZERO_HASH,
                tx_count: 0,
            },
            signature: [0; 64],
            txs: Vec::new(),
        }
    }

    /// Hash of the genesis block (exchanged in the data-plane handshake).
    pub fn genesis_hash(&self) -> Hash {
        self.genesis_block().hash()
    }

    /// A single-producer development chain run by `identity`, starting at `now_ms`.
    ///
    /// Also returns the funded development account; its key is derived from the node key, so
    /// the same node gets the same account on every start.
    pub fn dev(identity: &Identity, now_ms: u64) -> (ChainSpec, Identity) {
        let seed = blake3::derive_key(DEV_ACCOUNT_CONTEXT, identity.signing_key().as_bytes());
        let account = Identity::from_signing_key(SigningKey::from_bytes(&seed));
        let address = Address::from_public_key(account.public_key().as_bytes());
        let spec = ChainSpec {
            chain_id: DEV_CHAIN_ID.to_string(),
            genesis_time_ms: now_ms,
            slot_ms: DEFAULT_SLOT_MS,
            producers: vec![to_hex(identity.public_key().as_bytes())],
            balances: vec![(address.to_string(), DEV_BALANCE)],
        };
        (spec, account)
    }
}

fn parse_public_key(hex: &str) -> Option<[u8; 32]> {
    let key: [u8; 32] = from_hex(hex)?.try_into().ok()?;
    ed25519_dalek::VerifyingKey::from_bytes(&key).ok()?;
    Some(key)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::chain::tx::tests::{address_of, key};

    pub(crate) fn spec_with(
        producers: &[&SigningKey],
        balances: &[(&SigningKey, u64)],
    ) -> ChainSpec {
        ChainSpec {
            chain_id: "test".into(),
            genesis_time_ms: 10_000,
            slot_ms: 1_000,
            producers: producers
                .iter()
                .map(|k| to_hex(k.verifying_key().as_bytes()))
                .collect(),
            balances: balances
                .iter()
                .map(|(k, b)| (address_of(k).to_string(), *b))
                .collect(),
        }
    }

    fn json(spec: &ChainSpec) -> String {
        serde_json::to_string(spec).unwrap()
    }

    #[test]
    fn upcoming_slots_follow_the_running_one_round_robin() {
        let spec = spec_with(&[&key(1), &key(2)], &[]);
        let pk = |k: u8| key(k).verifying_key().to_bytes();
        // 12_500 is inside slot 2 (genesis 10_000, 1 s slots)
        let next = spec.upcoming_slots(12_500, 3);
        assert_eq!(
            next,
            vec![
                ScheduledSlot {
                    slot: 3,
                    start_ms: 13_000,
                    producer: pk(2)
                },
                ScheduledSlot {
                    slot: 4,
                    start_ms: 14_000,
                    producer: pk(1)
                },
                ScheduledSlot {
                    slot: 5,
                    start_ms: 15_000,
                    producer: pk(2)
                },
            ]
        );
        // before genesis the schedule starts at slot 1 (slot 0 is genesis, never produced)
        assert_eq!(spec.upcoming_slots(0, 1)[0].slot, 1);
        assert!(spec.upcoming_slots(12_500, 0).is_empty());
    }

    #[test]
    fn json_round_trip_and_default_slot() {
        let spec = spec_with(&[&key(1), &key(2)], &[(&key(3), 50)]);
        assert_eq!(ChainSpec::from_json(&json(&spec)).unwrap(), spec);
        let text = format!(
            r#"{{"chain_id":"x","genesis_time_ms":5,"producers":["{}"]}}"#,
            to_hex(key(1).verifying_key().as_bytes())
        );
        let parsed = ChainSpec::from_json(&text).unwrap();
        assert_eq!(parsed.slot_ms, DEFAULT_SLOT_MS);
        assert!(parsed.balances.is_empty());
    }

    #[test]
    fn validation_errors_are_specific() {
        let good = spec_with(&[&key(1)], &[(&key(3), 50)]);
        let check = |f: &dyn Fn(&mut ChainSpec)| {
            let mut s = good.clone();
            f(&mut s);
            ChainSpec::from_json(&json(&s)).unwrap_err()
        };
        assert!(matches!(
            check(&|s| s.chain_id.clear()),
            SpecError::BadChainId(_)
        ));
        assert!(matches!(
            check(&|s| s.chain_id = "a/b".into()),
            SpecError::BadChainId(_)
        ));
        assert!(matches!(
            check(&|s| s.chain_id = "a".repeat(MAX_CHAIN_ID_LEN + 1)),
            SpecError::BadChainId(_)
        ));
        assert!(matches!(check(&|s| s.slot_ms = 0), SpecError::ZeroSlot));
        assert!(matches!(
            check(&|s| s.producers.clear()),
            SpecError::NoProducers
        ));
        assert!(matches!(
            check(&|s| s.producers.push("abcd".into())),
            SpecError::BadProducer { index: 1 }
        ));
        assert!(matches!(
            check(&|s| s.producers.push(s.producers[0].clone())),
            SpecError::DuplicateProducer { index: 1 }
        ));
        assert!(matches!(
            check(&|s| s.balances[0].0 = "q1234".into()),
            SpecError::BadAddress { index: 0, .. }
        ));
        assert!(matches!(
            check(&|s| s.balances.push(s.balances[0].clone())),
            SpecError::DuplicateBalance { index: 1 }
        ));
        assert!(matches!(
            check(&|s| s.balances.push((address_of(&key(4)).to_string(), u64::MAX))),
            SpecError::SupplyOverflow
        ));
        let mut max_id = good.clone();
        max_id.chain_id = "a".repeat(MAX_CHAIN_ID_LEN);
        assert!(max_id.validate().is_ok());
    }

    #[test]
    fn unknown_fields_and_bad_json_are_rejected() {
        assert!(matches!(
            ChainSpec::from_json(
                r#"{"chain_id":"x","genesis_time_ms":1,"producers":[],"extra":1}"#
            ),
            Err(SpecError::Json(_))
        ));
        assert!(matches!(ChainSpec::from_json("{"), Err(SpecError::Json(_))));
    }

    #[test]
    fn load_reports_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        let err = ChainSpec::load(&missing).unwrap_err();
        assert!(matches!(err, SpecError::Read { .. }));
        assert!(err.to_string().contains("missing.json"));

        let bad = dir.path().join("bad.json");
        std::fs::write(
            &bad,
            r#"{"chain_id":"","genesis_time_ms":1,"producers":[]}"#,
        )
        .unwrap();
        let err = ChainSpec::load(&bad).unwrap_err();
        assert!(err.to_string().contains("bad.json"), "{err}");
        assert!(err.to_string().contains("chain_id"), "{err}");

        let good = dir.path().join("good.json");
        let spec = spec_with(&[&key(1)], &[]);
        std::fs::write(&good, spec.to_json()).unwrap();
        assert_eq!(ChainSpec::load(&good).unwrap(), spec);
    }

    #[test]
    fn producer_rotates_by_slot() {
        let spec = spec_with(&[&key(1), &key(2), &key(3)], &[]);
        let keys = spec.producer_keys();
        assert_eq!(spec.producer_for_slot(0), Some(keys[0]));
        assert_eq!(spec.producer_for_slot(2), Some(keys[2]));
        assert_eq!(spec.producer_for_slot(3), Some(keys[0]));
        assert_eq!(
            spec.producer_for_slot(u64::MAX),
            Some(keys[(u64::MAX % 3) as usize])
        );
        let empty = ChainSpec {
            producers: vec![],
            ..spec
        };
        assert_eq!(empty.producer_for_slot(0), None);
    }

    #[test]
    fn slot_arithmetic_edges() {
        let spec = spec_with(&[&key(1)], &[]);
        assert_eq!(spec.slot_at(0), 0);
        assert_eq!(spec.slot_at(10_000), 0);
        assert_eq!(spec.slot_at(10_999), 0);
        assert_eq!(spec.slot_at(11_000), 1);
        assert_eq!(spec.slot_at(15_500), 5);
        assert_eq!(spec.slot_start_ms(0), 10_000);
        assert_eq!(spec.slot_start_ms(5), 15_000);
        assert_eq!(spec.slot_start_ms(u64::MAX), u64::MAX);
        for slot in [1, 7, 1234] {
            assert_eq!(spec.slot_at(spec.slot_start_ms(slot)), slot);
            assert_eq!(spec.slot_at(spec.slot_start_ms(slot) - 1), slot - 1);
        }
    }

    #[test]
    fn genesis_hash_commits_to_every_field() {
        let spec = spec_with(&[&key(1)], &[(&key(3), 50)]);
        let base = spec.genesis_hash();
        assert_eq!(spec.clone().genesis_hash(), base);
        let variants: Vec<ChainSpec> = vec![
            ChainSpec {
                chain_id: "other".into(),
                ..spec.clone()
            },
            ChainSpec {
                genesis_time_ms: 1,
                ..spec.clone()
            },
            ChainSpec {
                slot_ms: 2_000,
                ..spec.clone()
            },
            spec_with(&[&key(2)], &[(&key(3), 50)]),
            spec_with(&[&key(1)], &[(&key(3), 51)]),
        ];
        for v in variants {
            assert_ne!(v.genesis_hash(), base, "{v:?}");
        }
        let genesis = spec.genesis_block();
        assert_eq!(genesis.header.height, 0);
        assert_eq!(genesis.header.slot, 0);
        assert!(genesis.txs.is_empty());
    }

    #[test]
    fn dev_chain_is_valid_and_funds_a_stable_account() {
        let node = Identity::from_signing_key(key(5));
        let (spec, account) = ChainSpec::dev(&node, 42_000);
        spec.validate().unwrap();
        assert_eq!(spec.chain_id, DEV_CHAIN_ID);
        assert_eq!(spec.genesis_time_ms, 42_000);
        assert_eq!(spec.producer_keys(), vec![node.public_key().to_bytes()]);
        let accounts = spec.genesis_accounts().unwrap();
        let dev_address = Address::from_public_key(account.public_key().as_bytes());
        assert_eq!(accounts.len(), 1);
        assert_eq!(accounts[0].0, dev_address);
        assert_eq!(accounts[0].1.balance, DEV_BALANCE);
        assert_ne!(account.public_key(), node.public_key());
        let (_, again) = ChainSpec::dev(&node, 99);
        assert_eq!(again.public_key(), account.public_key());
    }
}
