//! Microblocks: the signed header, its hash, and the size-limited encoding.

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey};

use super::merkle::merkle_root;
use super::tx::{DecodeError, SignedTransfer};
use super::{verify_ed25519, Hash};

/// Most transactions in one block.
pub const MAX_BLOCK_TXS: usize = 4_096;
/// Largest encoded block accepted from outside.
pub const MAX_BLOCK_BYTES: usize = 1024 * 1024;

/// Domain tag prepended to the block hash before the producer signs it.
const BLOCK_SIGNING_DOMAIN: &[u8] = b"qnet/block/v1";

/// What a block commits to; its hash identifies the block.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockHeader {
    /// The chain this block belongs to.
    pub chain_id: String,
    /// Parent height + 1; genesis is 0.
    pub height: u64,
    /// The slot it was produced in; greater than the parent's.
    pub slot: u64,
    /// Hash of the parent block (for genesis: the spec commitment).
    pub parent_hash: Hash,
    /// Producer's wall clock at production, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Producer's ed25519 public key (all zero for genesis).
    pub producer: [u8; 32],
    /// Merkle root of the transaction hashes.
    pub tx_root: Hash,
    /// Number of transactions.
    pub tx_count: u32,
}

impl BlockHeader {
    /// The block hash: blake3 of the canonical header encoding.
    pub fn hash(&self) -> Hash {
        *blake3::hash(&borsh::to_vec(self).unwrap_or_default()).as_bytes()
    }

    /// The bytes the producer signs for this header.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = BLOCK_SIGNING_DOMAIN.to_vec();
        out.extend_from_slice(&self.hash());
        out
    }
}

/// A header, the producer's signature of its hash, and the transactions.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// Producer's ed25519 signature over [`BlockHeader::signing_bytes`].
    pub signature: [u8; 64],
    /// Transactions in execution order.
    pub txs: Vec<SignedTransfer>,
}

/// What a producer decides when it builds a block; the rest is derived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockTemplate {
    /// The chain id.
    pub chain_id: String,
    /// Height of the new block.
    pub height: u64,
    /// Slot of the new block.
    pub slot: u64,
    /// Hash of the parent.
    pub parent_hash: Hash,
    /// Production time.
    pub timestamp_ms: u64,
}

impl Block {
    /// Builds and signs a block: fills producer, Merkle root and tx count.
    pub fn produce(template: BlockTemplate, txs: Vec<SignedTransfer>, key: &SigningKey) -> Block {
        let tx_hashes: Vec<Hash> = txs.iter().map(SignedTransfer::hash).collect();
        let header = BlockHeader {
            chain_id: template.chain_id,
            height: template.height,
            slot: template.slot,
            parent_hash: template.parent_hash,
            timestamp_ms: template.timestamp_ms,
            producer: key.verifying_key().to_bytes(),
            tx_root: merkle_root(&tx_hashes),
            tx_count: u32::try_from(txs.len()).unwrap_or(u32::MAX),
        };
        let signature = key.sign(&header.signing_bytes()).to_bytes();
        Block {
            header,
            signature,
            txs,
        }
    }

    /// The block hash.
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    /// Whether the signature is the header producer's.
    pub fn verify_signature(&self) -> bool {
        verify_ed25519(
            &self.header.producer,
            &self.header.signing_bytes(),
            &self.signature,
        )
    }

    /// Hashes of the transactions in block order.
    pub fn tx_hashes(&self) -> Vec<Hash> {
        self.txs.iter().map(SignedTransfer::hash).collect()
    }

    /// Merkle root of the transactions actually carried.
    pub fn computed_tx_root(&self) -> Hash {
        merkle_root(&self.tx_hashes())
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }

    /// Decodes a block received from outside, refusing oversized input or too many txs.
    pub fn decode(bytes: &[u8]) -> Result<Block, DecodeError> {
        if bytes.len() > MAX_BLOCK_BYTES {
            return Err(DecodeError::TooLarge {
                size: bytes.len(),
                max: MAX_BLOCK_BYTES,
            });
        }
        let block: Block =
            borsh::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if block.txs.len() > MAX_BLOCK_TXS {
            return Err(DecodeError::Malformed(format!(
                "{} transactions exceed the limit of {MAX_BLOCK_TXS}",
                block.txs.len()
            )));
        }
        Ok(block)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::tx::tests::{address_of, key, transfer};
    use crate::chain::ZERO_HASH;

    fn template() -> BlockTemplate {
        BlockTemplate {
            chain_id: "test".into(),
            height: 1,
            slot: 3,
            parent_hash: [9; 32],
            timestamp_ms: 1_000,
        }
    }

    fn sample() -> Block {
        let txs = vec![
            transfer(&key(1), address_of(&key(2)), 5, 1, 0),
            transfer(&key(1), address_of(&key(2)), 5, 1, 1),
        ];
        Block::produce(template(), txs, &key(7))
    }

    #[test]
    fn produce_fills_derived_fields_and_signs() {
        let block = sample();
        assert_eq!(block.header.tx_count, 2);
        assert_eq!(block.header.tx_root, block.computed_tx_root());
        assert_eq!(block.header.producer, key(7).verifying_key().to_bytes());
        assert!(block.verify_signature());
        let empty = Block::produce(template(), vec![], &key(7));
        assert_eq!(empty.header.tx_root, ZERO_HASH);
        assert_eq!(empty.header.tx_count, 0);
    }

    #[test]
    fn any_header_change_changes_hash_and_breaks_signature() {
        let block = sample();
        let mut other = block.clone();
        other.header.slot += 1;
        assert_ne!(other.hash(), block.hash());
        assert!(!other.verify_signature());

        let mut forged = block.clone();
        forged.header.producer = key(8).verifying_key().to_bytes();
        assert!(!forged.verify_signature());
    }

    #[test]
    fn hash_covers_header_only() {
        let block = sample();
        let mut stripped = block.clone();
        stripped.txs.clear();
        assert_eq!(stripped.hash(), block.hash());
        assert_ne!(stripped.computed_tx_root(), stripped.header.tx_root);
    }

    #[test]
    fn encode_decode_round_trip() {
        let block = sample();
        let back = Block::decode(&block.encode()).unwrap();
        assert_eq!(back, block);
        assert_eq!(back.hash(), block.hash());
    }

    #[test]
    fn decode_enforces_limits() {
        let block = sample();
        let mut bytes = block.encode();
        bytes.push(0);
        assert!(matches!(
            Block::decode(&bytes),
            Err(DecodeError::Malformed(_))
        ));
        assert_eq!(
            Block::decode(&vec![0u8; MAX_BLOCK_BYTES + 1]),
            Err(DecodeError::TooLarge {
                size: MAX_BLOCK_BYTES + 1,
                max: MAX_BLOCK_BYTES
            })
        );
        // A huge length prefix with no data behind it fails without allocating.
        let mut lying = borsh::to_vec(&block.header).unwrap();
        lying.extend_from_slice(&block.signature);
        lying.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Block::decode(&lying),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn decode_rejects_more_than_max_txs() {
        let tx = transfer(&key(1), address_of(&key(2)), 1, 0, 0);
        let at_limit = Block {
            header: sample().header,
            signature: [0; 64],
            txs: vec![tx.clone(); MAX_BLOCK_TXS],
        };
        let bytes = at_limit.encode();
        assert!(bytes.len() <= MAX_BLOCK_BYTES);
        assert!(Block::decode(&bytes).is_ok());
        let over = Block {
            txs: vec![tx; MAX_BLOCK_TXS + 1],
            ..at_limit
        };
        let bytes = over.encode();
        assert!(bytes.len() <= MAX_BLOCK_BYTES);
        assert!(matches!(
            Block::decode(&bytes),
            Err(DecodeError::Malformed(_))
        ));
    }
}
