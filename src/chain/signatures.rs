//! Signature checks of many transfers and blocks at once, spread over the cores, and the
//! record of what was verified ahead of validation.
//!
//! Every signature is still checked on its own with `verify_strict`, the rule a single
//! check applies. ed25519-dalek's `verify_batch` is not used: its random linear combination
//! accepts, with a probability up to 1/2 (and its coefficients are derived from the batch
//! itself, so a sender can grind for them), a signature whose R carries a small-torsion
//! component, which `verify_strict` always rejects. A node admitting transfers by batch
//! equation could then build blocks that every other node rejects.

use std::collections::HashSet;

use super::block::Block;
use super::tx::SignedTransfer;
use super::Hash;

/// Most threads one call spreads its checks over.
pub const MAX_THREADS: usize = 8;
/// Fewest checks worth a thread of their own (a thread costs about as much as one check).
pub const MIN_PER_THREAD: usize = 16;

/// How many threads to spread `jobs` checks over on a machine with `cores` cores: one per
/// core, at most [`MAX_THREADS`], and none with fewer than [`MIN_PER_THREAD`] checks.
pub fn threads_for(jobs: usize, cores: usize) -> usize {
    (jobs / MIN_PER_THREAD).clamp(1, cores.clamp(1, MAX_THREADS))
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// `f` of every item, in input order, computed on up to one thread per core (contiguous
/// shares; a small input stays on the calling thread).
pub fn map_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = threads_for(items.len(), cores());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let share = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(share)
            .map(|chunk| scope.spawn(move || chunk.iter().map(f).collect::<Vec<R>>()))
            .collect();
        // a panicking check is re-raised here, as it would have been on this thread
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Whether each transfer's signature is valid, in input order, checked in parallel.
pub fn verify_transfers(txs: &[SignedTransfer]) -> Vec<bool> {
    map_parallel(txs, SignedTransfer::verify_signature)
}

/// One signature of a block range: the block's own or one of its transfers'.
enum Job<'a> {
    Block(&'a Block),
    Tx(&'a SignedTransfer),
}

/// Signatures verified ahead of validation (outside the store lock, on every core):
/// transfers by hash, which covers the signature, and blocks by hash and signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    txs: HashSet<Hash>,
    blocks: HashSet<(Hash, [u8; 64])>,
}

impl Verified {
    /// Nothing verified yet.
    pub fn new() -> Self {
        Verified::default()
    }

    /// Verifies the producer signature of every block and the signature of every transfer
    /// in them, in parallel; records only the valid ones, so an invalid one is checked again
    /// (and rejected with its reason) by validation.
    pub fn of_blocks(blocks: &[Block]) -> Self {
        let jobs: Vec<Job<'_>> = blocks
            .iter()
            .flat_map(|b| std::iter::once(Job::Block(b)).chain(b.txs.iter().map(Job::Tx)))
            .collect();
        let mut verified = Verified::new();
        let checked = map_parallel(&jobs, |job| match job {
            Job::Block(b) => b.verify_signature().then(|| b.hash()),
            Job::Tx(tx) => tx.verify_signature().then(|| tx.hash()),
        });
        for (job, hash) in jobs.iter().zip(checked) {
            match (job, hash) {
                (Job::Block(b), Some(hash)) => {
                    verified.blocks.insert((hash, b.signature));
                }
                (Job::Tx(_), Some(hash)) => {
                    verified.txs.insert(hash);
                }
                (_, None) => {}
            }
        }
        verified
    }

    /// Records a transfer (by hash) whose signature was verified.
    pub fn add_tx(&mut self, hash: Hash) {
        self.txs.insert(hash);
    }

    /// Whether the transfer with this hash was verified.
    pub fn has_tx(&self, hash: &Hash) -> bool {
        self.txs.contains(hash)
    }

    /// The verified transfers' hashes.
    pub fn txs(&self) -> &HashSet<Hash> {
        &self.txs
    }

    /// Whether this exact block (header and signature) had its signature verified.
    pub fn has_block(&self, block: &Block) -> bool {
        !self.blocks.is_empty() && self.blocks.contains(&(block.hash(), block.signature))
    }

    /// What of this record concerns `block`: its signature and its transfers'.
    pub fn for_block(&self, block: &Block) -> Verified {
        let mut out = Verified::new();
        if self.has_block(block) {
            out.blocks.insert((block.hash(), block.signature));
        }
        if !self.txs.is_empty() {
            out.txs = block
                .txs
                .iter()
                .map(SignedTransfer::hash)
                .filter(|h| self.txs.contains(h))
                .collect();
        }
        out
    }
}

impl FromIterator<Hash> for Verified {
    /// A record of verified transfers.
    fn from_iter<I: IntoIterator<Item = Hash>>(hashes: I) -> Self {
        Verified {
            txs: hashes.into_iter().collect(),
            blocks: HashSet::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::block::BlockTemplate;
    use crate::chain::tx::tests::{address_of, key, transfer};

    fn txs(n: u64) -> Vec<SignedTransfer> {
        (0..n)
            .map(|i| transfer(&key(1), address_of(&key(2)), 1, 1, i))
            .collect()
    }

    fn forge(tx: &mut SignedTransfer) {
        tx.signature[0] ^= 1;
    }

    // enough transfers for more than one thread wherever there are two cores or more
    const MANY: u64 = 4 * MIN_PER_THREAD as u64 + 3;

    #[test]
    fn threads_follow_cores_and_work_per_thread() {
        assert_eq!(threads_for(0, 2), 1);
        assert_eq!(threads_for(MIN_PER_THREAD - 1, 2), 1);
        assert_eq!(threads_for(2 * MIN_PER_THREAD - 1, 2), 1);
        assert_eq!(threads_for(2 * MIN_PER_THREAD, 2), 2);
        assert_eq!(threads_for(1_000, 2), 2);
        assert_eq!(threads_for(1_000, 0), 1);
        assert_eq!(threads_for(1_000_000, 64), MAX_THREADS);
    }

    #[test]
    fn map_parallel_keeps_input_order() {
        let items: Vec<u64> = (0..1_000).collect();
        let doubled = map_parallel(&items, |i| i * 2);
        assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(map_parallel(&[] as &[u64], |i| *i).is_empty());
    }

    #[test]
    fn batch_of_good_transfers_all_pass() {
        let batch = txs(MANY);
        assert_eq!(verify_transfers(&batch), vec![true; batch.len()]);
    }

    #[test]
    fn one_bad_in_the_middle_is_the_only_one_rejected() {
        let mut batch = txs(MANY);
        let middle = batch.len() / 2;
        forge(&mut batch[middle]);
        let verdicts = verify_transfers(&batch);
        assert_eq!(verdicts.len(), batch.len());
        for (i, ok) in verdicts.iter().enumerate() {
            assert_eq!(*ok, i != middle, "transfer {i}");
        }
        // the same at both ends
        let mut ends = txs(MANY);
        let last = ends.len() - 1;
        forge(&mut ends[0]);
        forge(&mut ends[last]);
        let verdicts = verify_transfers(&ends);
        assert!(!verdicts[0] && !verdicts[last]);
        assert_eq!(verdicts.iter().filter(|ok| **ok).count(), ends.len() - 2);
    }

    #[test]
    fn batch_of_bad_transfers_all_fail() {
        let mut batch = txs(MANY);
        batch.iter_mut().for_each(forge);
        assert_eq!(verify_transfers(&batch), vec![false; batch.len()]);
        // a small batch (checked on the calling thread) too
        let mut small = txs(3);
        forge(&mut small[1]);
        assert_eq!(verify_transfers(&small), vec![true, false, true]);
    }

    #[test]
    fn empty_batch_has_no_verdicts() {
        assert!(verify_transfers(&[]).is_empty());
        assert_eq!(Verified::of_blocks(&[]), Verified::new());
    }

    fn block(slot: u64, txs: Vec<SignedTransfer>) -> Block {
        let template = BlockTemplate {
            chain_id: "test".into(),
            height: slot,
            slot,
            parent_hash: [slot as u8; 32],
            timestamp_ms: slot * 1_000,
        };
        Block::produce(template, txs, &key(9))
    }

    #[test]
    fn of_blocks_records_only_valid_signatures() {
        let mut bad_tx: Vec<SignedTransfer> = (0..3)
            .map(|n| transfer(&key(3), address_of(&key(2)), 1, 1, n))
            .collect();
        forge(&mut bad_tx[1]);
        let good = block(1, txs(MANY));
        let with_bad_tx = block(2, bad_tx.clone());
        let mut bad_sig = block(3, Vec::new());
        bad_sig.signature[5] ^= 1;
        let blocks = vec![good.clone(), with_bad_tx.clone(), bad_sig.clone()];
        let v = Verified::of_blocks(&blocks);
        assert!(v.has_block(&good));
        // the transfers' signatures do not make their block's valid, nor the other way round
        assert!(v.has_block(&with_bad_tx));
        assert!(!v.has_block(&bad_sig));
        assert!(good.txs.iter().all(|t| v.has_tx(&t.hash())));
        assert!(v.has_tx(&bad_tx[0].hash()) && v.has_tx(&bad_tx[2].hash()));
        assert!(!v.has_tx(&bad_tx[1].hash()));
        assert_eq!(v.txs().len(), good.txs.len() + 2);
        // a verified header with another signature is not trusted
        let mut resigned = good.clone();
        resigned.signature = bad_sig.signature;
        assert!(!v.has_block(&resigned));
    }

    #[test]
    fn for_block_keeps_only_what_concerns_that_block() {
        let (a, b) = (block(1, txs(2)), block(2, Vec::new()));
        let v = Verified::of_blocks(&[a.clone(), b.clone()]);
        let only_a = v.for_block(&a);
        assert!(only_a.has_block(&a) && !only_a.has_block(&b));
        assert_eq!(only_a.txs().len(), 2);
        let only_b = v.for_block(&b);
        assert!(only_b.has_block(&b) && only_b.txs().is_empty());
        let hashes: Verified = a.txs.iter().map(SignedTransfer::hash).collect();
        assert!(!hashes.has_block(&a));
        assert_eq!(hashes.for_block(&a).txs().len(), 2);
    }
}
