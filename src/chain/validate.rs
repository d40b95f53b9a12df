//! Block validation (DESIGN §6), with reasons usable as metric labels. A block's transactions
//! are checked by executing it (`state`) with the rules of `tx` and `account`.

use super::account::AccountView;
use super::block::{Block, BlockHeader, MAX_BLOCK_TXS};
use super::signatures::Verified;
use super::spec::ChainSpec;
use super::state::{apply_block_verified, BlockEffects};
use super::tx::TxError;

/// How far ahead of our clock a block's slot start or timestamp may be (clock skew).
pub const MAX_CLOCK_DRIFT_MS: u64 = 500;

/// Why a block is rejected; [`RejectReason::as_str`] is the metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// Another chain id.
    #[error("block of another chain")]
    WrongChain,
    /// The parent is not known.
    #[error("unknown parent")]
    UnknownParent,
    /// Height is not parent height + 1.
    #[error("height is not parent height + 1")]
    BadHeight,
    /// Slot not after the parent's.
    #[error("slot not after the parent's")]
    StaleSlot,
    /// Slot (or timestamp) ahead of our clock.
    #[error("slot in the future")]
    FutureSlot,
    /// Timestamp outside its slot.
    #[error("timestamp outside its slot")]
    BadTimestamp,
    /// Producer is not the one scheduled for the slot.
    #[error("not the slot's producer")]
    WrongProducer,
    /// Signature does not verify.
    #[error("bad block signature")]
    BadSignature,
    /// More transactions than allowed.
    #[error("too many transactions")]
    TooManyTxs,
    /// Header tx count differs from the transactions carried.
    #[error("tx count mismatch")]
    BadTxCount,
    /// Header Merkle root differs from the transactions carried.
    #[error("bad merkle root")]
    BadMerkleRoot,
    /// A transaction is invalid at its position.
    #[error("transaction {index}: {error}")]
    BadTx {
        /// Position in the block.
        index: usize,
        /// Why.
        error: TxError,
    },
}

impl RejectReason {
    /// Short label for metrics (`qnet_blocks_rejected_total{reason}`).
    pub fn as_str(&self) -> &'static str {
        match self {
            RejectReason::WrongChain => "wrong_chain",
            RejectReason::UnknownParent => "unknown_parent",
            RejectReason::BadHeight => "bad_height",
            RejectReason::StaleSlot => "stale_slot",
            RejectReason::FutureSlot => "future_slot",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::WrongProducer => "wrong_producer",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::TooManyTxs => "too_many_txs",
            RejectReason::BadTxCount => "bad_tx_count",
            RejectReason::BadMerkleRoot => "bad_merkle_root",
            RejectReason::BadTx { .. } => "bad_tx",
        }
    }

    /// Every label, for pre-registering metric series.
    pub const LABELS: [&'static str; 12] = [
        "wrong_chain",
        "unknown_parent",
        "bad_height",
        "stale_slot",
        "future_slot",
        "bad_timestamp",
        "wrong_producer",
        "bad_signature",
        "too_many_txs",
        "bad_tx_count",
        "bad_merkle_root",
        "bad_tx",
    ];
}

/// What a block is checked against.
#[derive(Debug, Clone, Copy)]
pub struct BlockContext<'a> {
    /// The chain spec.
    pub spec: &'a ChainSpec,
    /// The parent header, `None` if unknown.
    pub parent: Option<&'a BlockHeader>,
    /// Our clock.
    pub now_ms: u64,
}

/// Every check that needs no account state, cheapest first.
pub fn check_block(block: &Block, ctx: &BlockContext<'_>) -> Result<(), RejectReason> {
    check_block_verified(block, ctx, &Verified::new())
}

/// [`check_block`] trusting the block signature if `verified` holds this exact block; the
/// checks run in the same order, so the reason of a rejection is the same.
pub fn check_block_verified(
    block: &Block,
    ctx: &BlockContext<'_>,
    verified: &Verified,
) -> Result<(), RejectReason> {
    let h = &block.header;
    if h.chain_id != ctx.spec.chain_id {
        return Err(RejectReason::WrongChain);
    }
    let parent = ctx.parent.ok_or(RejectReason::UnknownParent)?;
    if h.parent_hash != parent.hash() {
        return Err(RejectReason::UnknownParent);
    }
    if parent.height.checked_add(1) != Some(h.height) {
        return Err(RejectReason::BadHeight);
    }
    if h.slot <= parent.slot {
        return Err(RejectReason::StaleSlot);
    }
    let horizon = ctx.now_ms.saturating_add(MAX_CLOCK_DRIFT_MS);
    let slot_start = ctx.spec.slot_start_ms(h.slot);
    if slot_start > horizon || h.timestamp_ms > horizon {
        return Err(RejectReason::FutureSlot);
    }
    let slot_end = ctx.spec.slot_start_ms(h.slot.saturating_add(1));
    if h.timestamp_ms < slot_start || h.timestamp_ms >= slot_end {
        return Err(RejectReason::BadTimestamp);
    }
    if ctx.spec.producer_for_slot(h.slot) != Some(h.producer) {
        return Err(RejectReason::WrongProducer);
    }
    if !verified.has_block(block) && !block.verify_signature() {
        return Err(RejectReason::BadSignature);
    }
    if block.txs.len() > MAX_BLOCK_TXS {
        return Err(RejectReason::TooManyTxs);
    }
    if usize::try_from(h.tx_count).ok() != Some(block.txs.len()) {
        return Err(RejectReason::BadTxCount);
    }
    if block.computed_tx_root() != h.tx_root {
        return Err(RejectReason::BadMerkleRoot);
    }
    Ok(())
}

/// Full validation: [`check_block`], then every transaction executed in order over `view`.
pub fn validate_block(
    block: &Block,
    ctx: &BlockContext<'_>,
    view: &impl AccountView,
) -> Result<BlockEffects, RejectReason> {
    validate_block_verified(block, ctx, view, &Verified::new())
}

/// [`validate_block`] trusting the signatures recorded in `verified`: transfers whose hashes
/// (which cover the signature) it holds, e.g. those admitted to the mempool, and the block's
/// own if it holds this exact block.
pub fn validate_block_verified(
    block: &Block,
    ctx: &BlockContext<'_>,
    view: &impl AccountView,
    verified: &Verified,
) -> Result<BlockEffects, RejectReason> {
    check_block_verified(block, ctx, verified)?;
    apply_block_verified(view, block, verified.txs()).map_err(|r| RejectReason::BadTx {
        index: r.index,
        error: r.error,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::chain::account::Account;
    use crate::chain::block::BlockTemplate;
    use crate::chain::spec::tests::spec_with;
    use crate::chain::tx::tests::{address_of, key, transfer};
    use crate::chain::tx::{Address, SignedTransfer};
    use ed25519_dalek::SigningKey;

    // Producers key(1) (even slots) and key(2) (odd slots); genesis at 10 s, 1 s slots.
    fn spec() -> ChainSpec {
        spec_with(&[&key(1), &key(2)], &[(&key(10), 1_000)])
    }

    fn view() -> HashMap<Address, Account> {
        spec().genesis_accounts().unwrap().into_iter().collect()
    }

    fn child(parent: &BlockHeader, slot: u64, txs: Vec<SignedTransfer>, k: &SigningKey) -> Block {
        let s = spec();
        let template = BlockTemplate {
            chain_id: s.chain_id.clone(),
            height: parent.height + 1,
            slot,
            parent_hash: parent.hash(),
            timestamp_ms: s.slot_start_ms(slot),
        };
        Block::produce(template, txs, k)
    }

    fn check(block: &Block, parent: &BlockHeader, now_ms: u64) -> Result<(), RejectReason> {
        let s = spec();
        let ctx = BlockContext {
            spec: &s,
            parent: Some(parent),
            now_ms,
        };
        validate_block(block, &ctx, &view()).map(|_| ())
    }

    fn genesis() -> BlockHeader {
        spec().genesis_block().header
    }

    const NOW: u64 = 100_000;

    #[test]
    fn valid_block_passes_and_returns_effects() {
        let g = genesis();
        let tx = transfer(&key(10), address_of(&key(11)), 5, 1, 0);
        let b = child(&g, 3, vec![tx], &key(2));
        let s = spec();
        let ctx = BlockContext {
            spec: &s,
            parent: Some(&g),
            now_ms: NOW,
        };
        let effects = validate_block(&b, &ctx, &view()).unwrap();
        assert_eq!(effects.writes.len(), 3);
    }

    #[test]
    fn wrong_chain() {
        let g = genesis();
        let mut b = child(&g, 2, vec![], &key(1));
        b.header.chain_id = "other".into();
        assert_eq!(check(&b, &g, NOW), Err(RejectReason::WrongChain));
    }

    #[test]
    fn unknown_parent() {
        let g = genesis();
        let b = child(&g, 2, vec![], &key(1));
        let s = spec();
        let ctx = BlockContext {
            spec: &s,
            parent: None,
            now_ms: NOW,
        };
        assert_eq!(check_block(&b, &ctx), Err(RejectReason::UnknownParent));
        let mut other_parent = g.clone();
        other_parent.timestamp_ms += 1;
        assert_eq!(
            check(&b, &other_parent, NOW),
            Err(RejectReason::UnknownParent)
        );
    }

    #[test]
    fn bad_height() {
        let g = genesis();
        let mut b = child(&g, 2, vec![], &key(1));
        b.header.height = 2;
        assert_eq!(check(&b, &g, NOW), Err(RejectReason::BadHeight));
    }

    #[test]
    fn slot_must_follow_parent() {
        let g = genesis();
        let b1 = child(&g, 2, vec![], &key(1));
        let same_slot = child(&b1.header, 2, vec![], &key(1));
        assert_eq!(
            check(&same_slot, &b1.header, NOW),
            Err(RejectReason::StaleSlot)
        );
        let next = child(&b1.header, 3, vec![], &key(2));
        assert_eq!(check(&next, &b1.header, NOW), Ok(()));
    }

    #[test]
    fn future_slot_edge_is_the_drift() {
        let g = genesis();
        let s = spec();
        let b = child(&g, 6, vec![], &key(1));
        let start = s.slot_start_ms(6);
        assert_eq!(check(&b, &g, start - MAX_CLOCK_DRIFT_MS), Ok(()));
        assert_eq!(
            check(&b, &g, start - MAX_CLOCK_DRIFT_MS - 1),
            Err(RejectReason::FutureSlot)
        );
    }

    #[test]
    fn timestamp_must_lie_in_its_slot() {
        let g = genesis();
        let s = spec();
        let with_ts = |ts: u64| {
            let template = BlockTemplate {
                chain_id: s.chain_id.clone(),
                height: 1,
                slot: 2,
                parent_hash: g.hash(),
                timestamp_ms: ts,
            };
            Block::produce(template, vec![], &key(1))
        };
        let start = s.slot_start_ms(2);
        assert_eq!(check(&with_ts(start), &g, NOW), Ok(()));
        assert_eq!(check(&with_ts(start + 999), &g, NOW), Ok(()));
        assert_eq!(
            check(&with_ts(start + 1000), &g, NOW),
            Err(RejectReason::BadTimestamp)
        );
        assert_eq!(
            check(&with_ts(start - 1), &g, NOW),
            Err(RejectReason::BadTimestamp)
        );
        // In its slot but beyond our clock + drift.
        assert_eq!(
            check(&with_ts(start + 900), &g, start),
            Err(RejectReason::FutureSlot)
        );
    }

    #[test]
    fn wrong_producer_and_bad_signature() {
        let g = genesis();
        let b = child(&g, 2, vec![], &key(2));
        assert_eq!(check(&b, &g, NOW), Err(RejectReason::WrongProducer));
        let mut b = child(&g, 2, vec![], &key(1));
        b.signature[0] ^= 1;
        assert_eq!(check(&b, &g, NOW), Err(RejectReason::BadSignature));
    }

    #[test]
    fn tx_count_and_merkle_root_must_match() {
        let g = genesis();
        let tx = transfer(&key(10), address_of(&key(11)), 5, 1, 0);
        let mut b = child(&g, 2, vec![tx.clone()], &key(1));
        b.txs
            .push(transfer(&key(10), address_of(&key(11)), 5, 1, 1));
        assert_eq!(check(&b, &g, NOW), Err(RejectReason::BadTxCount));

        let mut b = child(&g, 2, vec![tx], &key(1));
        b.txs[0] = transfer(&key(10), address_of(&key(11)), 6, 1, 0);
        assert_eq!(check(&b, &g, NOW), Err(RejectReason::BadMerkleRoot));
    }

    #[test]
    fn too_many_txs() {
        let g = genesis();
        let tx = transfer(&key(10), address_of(&key(11)), 5, 1, 0);
        let b = child(&g, 2, vec![tx; MAX_BLOCK_TXS + 1], &key(1));
        assert_eq!(check(&b, &g, NOW), Err(RejectReason::TooManyTxs));
    }

    #[test]
    fn bad_tx_reports_index_and_cause() {
        let g = genesis();
        let to = address_of(&key(11));
        let txs = vec![
            transfer(&key(10), to, 5, 1, 0),
            transfer(&key(10), to, 5, 1, 0),
        ];
        let b = child(&g, 2, txs, &key(1));
        let err = check(&b, &g, NOW).unwrap_err();
        assert_eq!(err.as_str(), "bad_tx");
        assert_eq!(
            err,
            RejectReason::BadTx {
                index: 1,
                error: TxError::NonceTooLow {
                    expected: 1,
                    got: 0
                }
            }
        );
    }

    #[test]
    fn labels_are_unique_and_cover_every_reason() {
        let mut labels = RejectReason::LABELS.to_vec();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), RejectReason::LABELS.len());
        let reasons = [
            RejectReason::WrongChain,
            RejectReason::UnknownParent,
            RejectReason::BadHeight,
            RejectReason::StaleSlot,
            RejectReason::FutureSlot,
            RejectReason::BadTimestamp,
            RejectReason::WrongProducer,
            RejectReason::BadSignature,
            RejectReason::TooManyTxs,
            RejectReason::BadTxCount,
            RejectReason::BadMerkleRoot,
            RejectReason::BadTx {
                index: 0,
                error: TxError::BadSignature,
            },
        ];
        for r in &reasons {
            assert!(RejectReason::LABELS.contains(&r.as_str()), "{r:?}");
        }
    }
}
