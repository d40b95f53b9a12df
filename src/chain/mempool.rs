//! The mempool: bounded pending transfers, kept per sender in nonce order.
//!
//! Admission checks what can be checked without executing (chain, signature, stale or far
//! future nonce, single-tx affordability); execution order and funds are re-checked when a
//! block is built or imported.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use super::account::{Account, AccountView};
use super::signatures::map_parallel;
use super::tx::{check_tx_stateless, Address, SignedTransfer, TxError};
use super::Hash;

/// A transfer that passed the stateless checks (chain id, signature); only
/// [`CheckedTransfer::check`] makes one, so the mempool can admit it without verifying again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedTransfer {
    tx: SignedTransfer,
    hash: Hash,
}

impl CheckedTransfer {
    /// Checks chain id and signature.
    pub fn check(tx: SignedTransfer, chain_id: &str) -> Result<CheckedTransfer, TxError> {
        check_tx_stateless(&tx, chain_id)?;
        let hash = tx.hash();
        Ok(CheckedTransfer { tx, hash })
    }

    /// [`CheckedTransfer::check`] of every transfer, in input order, spread over the cores;
    /// a bad one fails alone, whatever else the batch holds.
    pub fn check_all(
        txs: Vec<SignedTransfer>,
        chain_id: &str,
    ) -> Vec<Result<CheckedTransfer, TxError>> {
        let checked = map_parallel(&txs, |tx| {
            check_tx_stateless(tx, chain_id).map(|()| tx.hash())
        });
        txs.into_iter()
            .zip(checked)
            .map(|(tx, hash)| hash.map(|hash| CheckedTransfer { tx, hash }))
            .collect()
    }

    /// The transaction hash.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// The checked transaction.
    pub fn transfer(&self) -> &SignedTransfer {
        &self.tx
    }
}

/// Default maximum of pending transactions.
pub const DEFAULT_MAX_TXS: usize = 10_000;
/// Default maximum of pending transactions per sender (also the furthest nonce ahead).
pub const DEFAULT_MAX_PER_ACCOUNT: usize = 64;

/// Mempool bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolConfig {
    /// Most pending transactions overall.
    pub max_txs: usize,
    /// Most pending transactions per sender; nonces further ahead are refused.
    pub max_per_account: usize,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            max_txs: DEFAULT_MAX_TXS,
            max_per_account: DEFAULT_MAX_PER_ACCOUNT,
        }
    }
}

/// Why a transaction was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// Already pending.
    #[error("transaction already pending")]
    Duplicate,
    /// Another pending transaction of the sender has this nonce.
    #[error("nonce {0} already pending for this sender")]
    NonceTaken(u64),
    /// The pool is full.
    #[error("mempool full ({0} transactions)")]
    Full(usize),
    /// The sender has too many pending transactions.
    #[error("sender has {0} pending transactions, the maximum")]
    AccountFull(usize),
    /// The transaction itself is invalid.
    #[error("invalid transaction: {0}")]
    Invalid(#[from] TxError),
}

impl MempoolError {
    /// Short label for metrics (`qnet_txs_rejected_total{reason}`).
    pub fn as_str(&self) -> &'static str {
        match self {
            MempoolError::Duplicate => "duplicate",
            MempoolError::NonceTaken(_) => "nonce_taken",
            MempoolError::Full(_) => "mempool_full",
            MempoolError::AccountFull(_) => "account_full",
            MempoolError::Invalid(e) => e.as_str(),
        }
    }
}

/// Pending transactions.
#[derive(Debug, Clone)]
pub struct Mempool {
    config: MempoolConfig,
    chain_id: String,
    by_sender: BTreeMap<Address, BTreeMap<u64, (Hash, SignedTransfer)>>,
    by_hash: HashMap<Hash, (Address, u64)>,
}

impl Mempool {
    /// An empty mempool for `chain_id`.
    pub fn new(chain_id: &str, config: MempoolConfig) -> Self {
        Mempool {
            config,
            chain_id: chain_id.to_string(),
            by_sender: BTreeMap::new(),
            by_hash: HashMap::new(),
        }
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Whether a transaction is pending.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// Senders with pending transactions (to prefetch their accounts for [`Mempool::select`]).
    pub fn senders(&self) -> impl Iterator<Item = &Address> {
        self.by_sender.keys()
    }

    /// A pending transaction by hash.
    pub fn get(&self, hash: &Hash) -> Option<&SignedTransfer> {
        let (sender, nonce) = self.by_hash.get(hash)?;
        self.by_sender.get(sender)?.get(nonce).map(|(_, tx)| tx)
    }

    /// Admits a transaction given its sender's current account; returns its hash.
    pub fn insert(&mut self, tx: SignedTransfer, sender: &Account) -> Result<Hash, MempoolError> {
        if self.contains(&tx.hash()) {
            return Err(MempoolError::Duplicate);
        }
        self.insert_checked(CheckedTransfer::check(tx, &self.chain_id)?, sender)
    }

    /// Admits a transaction whose signature was checked beforehand (outside any lock).
    pub fn insert_checked(
        &mut self,
        checked: CheckedTransfer,
        sender: &Account,
    ) -> Result<Hash, MempoolError> {
        let CheckedTransfer { tx, hash } = checked;
        if self.by_hash.contains_key(&hash) {
            return Err(MempoolError::Duplicate);
        }
        if tx.transfer.chain_id != self.chain_id {
            return Err(TxError::WrongChain.into());
        }
        let (expected, got) = (sender.nonce, tx.transfer.nonce);
        if got < expected {
            return Err(TxError::NonceTooLow { expected, got }.into());
        }
        let ahead = got - expected;
        if ahead >= self.config.max_per_account as u64 {
            return Err(TxError::NonceTooHigh { expected, got }.into());
        }
        let needed = tx.transfer.total_cost();
        if needed.is_none_or(|n| n > sender.balance) {
            return Err(TxError::InsufficientBalance {
                balance: sender.balance,
                needed,
            }
            .into());
        }
        let address = tx.sender();
        let queue = self.by_sender.get(&address);
        if queue.is_some_and(|q| q.contains_key(&got)) {
            return Err(MempoolError::NonceTaken(got));
        }
        let pending = queue.map_or(0, BTreeMap::len);
        if pending >= self.config.max_per_account {
            return Err(MempoolError::AccountFull(pending));
        }
        if self.len() >= self.config.max_txs {
            return Err(MempoolError::Full(self.len()));
        }
        self.by_sender
            .entry(address)
            .or_default()
            .insert(got, (hash, tx));
        self.by_hash.insert(hash, (address, got));
        Ok(hash)
    }

    /// Up to `max` executable transactions: per sender a gap-free nonce run starting at the
    /// account nonce that the balance covers; across senders, highest fee of the next
    /// transaction first (ties by address).
    pub fn select(&self, max: usize, view: &impl AccountView) -> Vec<SignedTransfer> {
        let runs: Vec<Vec<&SignedTransfer>> = self
            .by_sender
            .iter()
            .map(|(address, queue)| {
                executable_run(queue, &view.account(address).unwrap_or_default())
            })
            .filter(|run| !run.is_empty())
            .collect();
        let mut heap: BinaryHeap<(u64, Reverse<usize>, usize)> = runs
            .iter()
            .enumerate()
            .filter_map(|(i, run)| run.first().map(|tx| (tx.transfer.fee, Reverse(i), 0)))
            .collect();
        let mut out = Vec::with_capacity(max.min(self.len()));
        while out.len() < max {
            let Some((_, Reverse(run), pos)) = heap.pop() else {
                break;
            };
            let Some(txs) = runs.get(run) else { break };
            if let Some(tx) = txs.get(pos) {
                out.push((*tx).clone());
            }
            if let Some(next) = txs.get(pos + 1) {
                heap.push((next.transfer.fee, Reverse(run), pos + 1));
            }
        }
        out
    }

    /// Up to `max` pending transactions, by sender then nonce (to hand to a newly linked peer).
    pub fn pending(&self, max: usize) -> Vec<&SignedTransfer> {
        self.by_sender
            .values()
            .flat_map(|queue| queue.values().map(|(_, tx)| tx))
            .take(max)
            .collect()
    }

    /// Up to `max` pending transactions sent by or to `address` (every one when `None`), by
    /// sender then nonce, and how many match in all. A recipient filter reads every queue:
    /// the pool is bounded (10,000 by default), so that is a short scan under its lock.
    pub fn pending_of(
        &self,
        address: Option<&Address>,
        max: usize,
    ) -> (Vec<&SignedTransfer>, usize) {
        let mut listed = Vec::new();
        let mut total = 0;
        let matching = self
            .by_sender
            .iter()
            .flat_map(|(sender, queue)| queue.values().map(move |(_, tx)| (sender, tx)))
            .filter(|(sender, tx)| address.is_none_or(|a| *sender == a || tx.transfer.to == *a));
        for (_, tx) in matching {
            total += 1;
            if listed.len() < max {
                listed.push(tx);
            }
        }
        (listed, total)
    }

    /// The next nonce the sender can use: the account nonce plus its gap-free pending run.
    pub fn pending_nonce(&self, address: &Address, account_nonce: u64) -> u64 {
        let Some(queue) = self.by_sender.get(address) else {
            return account_nonce;
        };
        let mut next = account_nonce;
        for nonce in queue.range(account_nonce..).map(|(n, _)| *n) {
            if nonce != next {
                break;
            }
            next = next.saturating_add(1);
        }
        next
    }

    /// Drops transactions included in a block, and any of their senders' lower nonces.
    pub fn remove_included(&mut self, txs: &[SignedTransfer]) {
        for tx in txs {
            let address = tx.sender();
            let Some(queue) = self.by_sender.get_mut(&address) else {
                continue;
            };
            let keep = queue.split_off(&tx.transfer.nonce.saturating_add(1));
            let dropped = std::mem::replace(queue, keep);
            for (hash, _) in dropped.values() {
                self.by_hash.remove(hash);
            }
            if queue.is_empty() {
                self.by_sender.remove(&address);
            }
        }
    }

    /// Drops every transaction whose nonce is below its sender's account nonce; returns how many.
    pub fn prune(&mut self, view: &impl AccountView) -> usize {
        let mut removed = 0;
        let by_hash = &mut self.by_hash;
        self.by_sender.retain(|address, queue| {
            let nonce = view.account(address).unwrap_or_default().nonce;
            let keep = queue.split_off(&nonce);
            for (hash, _) in queue.values() {
                by_hash.remove(hash);
                removed += 1;
            }
            *queue = keep;
            !queue.is_empty()
        });
        removed
    }

    /// Puts back transactions undone by a reorg; returns how many were admitted again.
    pub fn reinsert(&mut self, txs: Vec<SignedTransfer>, view: &impl AccountView) -> usize {
        txs.into_iter()
            .filter(|tx| {
                let account = view.account(&tx.sender()).unwrap_or_default();
                self.insert(tx.clone(), &account).is_ok()
            })
            .count()
    }
}

fn executable_run<'a>(
    queue: &'a BTreeMap<u64, (Hash, SignedTransfer)>,
    account: &Account,
) -> Vec<&'a SignedTransfer> {
    let mut run = Vec::new();
    let mut expected = account.nonce;
    let mut balance = account.balance;
    for (nonce, (_, tx)) in queue.range(account.nonce..) {
        if *nonce != expected {
            break;
        }
        let Some(cost) = tx.transfer.total_cost().filter(|c| *c <= balance) else {
            break;
        };
        balance -= cost;
        run.push(tx);
        let Some(next) = expected.checked_add(1) else {
            break;
        };
        expected = next;
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::tx::tests::{address_of, key, transfer};

    fn pool(max_txs: usize, max_per_account: usize) -> Mempool {
        Mempool::new(
            "test",
            MempoolConfig {
                max_txs,
                max_per_account,
            },
        )
    }

    #[test]
    fn pending_lists_by_sender_and_nonce_up_to_max() {
        let mut p = pool(10, 10);
        for (sender, nonce) in [(2, 1), (1, 0), (2, 0)] {
            p.insert(tx(sender, nonce, 1), &rich()).unwrap();
        }
        let listed: Vec<(Address, u64)> = p
            .pending(10)
            .iter()
            .map(|t| (t.sender(), t.transfer.nonce))
            .collect();
        let mut expected = vec![
            (tx(1, 0, 1).sender(), 0),
            (tx(2, 0, 1).sender(), 0),
            (tx(2, 0, 1).sender(), 1),
        ];
        expected.sort();
        assert_eq!(listed, expected);
        assert_eq!(p.pending(2).len(), 2);
        assert!(p.pending(0).is_empty());
    }

    #[test]
    fn pending_of_filters_by_sender_or_recipient_and_counts_past_the_bound() {
        let mut p = pool(10, 10);
        p.insert(tx(1, 0, 1), &rich()).unwrap();
        p.insert(tx(1, 1, 1), &rich()).unwrap();
        let to_sender_2 = transfer(&key(3), address_of(&key(2)), 10, 1, 0);
        p.insert(to_sender_2.clone(), &rich()).unwrap();
        p.insert(tx(4, 0, 1), &rich()).unwrap();

        let (all, total) = p.pending_of(None, 10);
        assert_eq!((all.len(), total), (4, 4));
        let (from_1, total) = p.pending_of(Some(&address_of(&key(1))), 1);
        assert_eq!(total, 2, "the total counts past the bound");
        assert_eq!(from_1, vec![&tx(1, 0, 1)]);
        let (to_2, total) = p.pending_of(Some(&address_of(&key(2))), 10);
        assert_eq!((to_2, total), (vec![&to_sender_2], 1));
        // every `tx` goes to key 99
        assert_eq!(p.pending_of(Some(&address_of(&key(99))), 10).1, 3);
        let (none, total) = p.pending_of(Some(&address_of(&key(50))), 10);
        assert!(none.is_empty());
        assert_eq!(total, 0);
    }

    fn rich() -> Account {
        Account {
            balance: 1_000,
            nonce: 0,
        }
    }

    fn tx(sender: u8, nonce: u64, fee: u64) -> SignedTransfer {
        transfer(&key(sender), address_of(&key(99)), 10, fee, nonce)
    }

    #[test]
    fn checked_transfers_are_admitted_with_the_account_checks_only() {
        let mut p = pool(10, 4);
        let mut forged = tx(1, 0, 1);
        forged.signature[1] ^= 1;
        assert_eq!(
            CheckedTransfer::check(forged, "test"),
            Err(TxError::BadSignature)
        );
        assert_eq!(
            CheckedTransfer::check(tx(1, 0, 1), "other"),
            Err(TxError::WrongChain)
        );
        let checked = CheckedTransfer::check(tx(1, 0, 1), "test").unwrap();
        assert_eq!(checked.hash(), tx(1, 0, 1).hash());
        assert_eq!(
            p.insert_checked(checked.clone(), &rich()),
            Ok(tx(1, 0, 1).hash())
        );
        assert_eq!(
            p.insert_checked(checked, &rich()),
            Err(MempoolError::Duplicate)
        );
        let late = CheckedTransfer::check(tx(2, 0, 1), "test").unwrap();
        let moved_on = Account {
            balance: 1_000,
            nonce: 1,
        };
        assert!(matches!(
            p.insert_checked(late, &moved_on),
            Err(MempoolError::Invalid(TxError::NonceTooLow { .. }))
        ));
        // checked for another chain than the pool's
        let mut other = Mempool::new("other", MempoolConfig::default());
        let checked = CheckedTransfer::check(tx(3, 0, 1), "test").unwrap();
        assert_eq!(
            other.insert_checked(checked, &rich()),
            Err(MempoolError::Invalid(TxError::WrongChain))
        );
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn check_all_fails_exactly_the_bad_transfers_in_order() {
        let mut batch: Vec<SignedTransfer> = (0..40).map(|n| tx(1, n, 1)).collect();
        batch[7].signature[0] ^= 1;
        batch[30].transfer.chain_id = "other".into();
        let checked = CheckedTransfer::check_all(batch.clone(), "test");
        assert_eq!(checked.len(), batch.len());
        for (i, (result, tx)) in checked.into_iter().zip(&batch).enumerate() {
            match i {
                7 => assert_eq!(result, Err(TxError::BadSignature)),
                30 => assert_eq!(result, Err(TxError::WrongChain)),
                _ => assert_eq!(result.map(|c| c.hash()), Ok(tx.hash()), "transfer {i}"),
            }
        }
        assert!(CheckedTransfer::check_all(Vec::new(), "test").is_empty());
    }

    fn view(entries: &[(u8, u64, u64)]) -> BTreeMap<Address, Account> {
        entries
            .iter()
            .map(|&(k, balance, nonce)| (address_of(&key(k)), Account { balance, nonce }))
            .collect()
    }

    #[test]
    fn insert_get_and_duplicate() {
        let mut p = pool(10, 4);
        let t = tx(1, 0, 1);
        let h = p.insert(t.clone(), &rich()).unwrap();
        assert_eq!(h, t.hash());
        assert!(p.contains(&h));
        assert_eq!(p.get(&h), Some(&t));
        assert_eq!(p.insert(t, &rich()), Err(MempoolError::Duplicate));
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn same_nonce_different_tx_is_refused() {
        let mut p = pool(10, 4);
        p.insert(tx(1, 0, 1), &rich()).unwrap();
        assert_eq!(
            p.insert(tx(1, 0, 2), &rich()),
            Err(MempoolError::NonceTaken(0))
        );
    }

    #[test]
    fn invalid_transactions_are_refused() {
        let mut p = pool(10, 4);
        let mut bad = tx(1, 0, 1);
        bad.signature[0] ^= 1;
        assert_eq!(
            p.insert(bad, &rich()),
            Err(MempoolError::Invalid(TxError::BadSignature))
        );
        let acc = Account {
            balance: 1_000,
            nonce: 5,
        };
        let err = p.insert(tx(1, 4, 1), &acc).unwrap_err();
        assert_eq!(err.as_str(), "nonce_too_low");
        let poor = Account {
            balance: 10,
            nonce: 0,
        };
        assert_eq!(
            p.insert(tx(1, 0, 1), &poor).unwrap_err().as_str(),
            "insufficient_balance"
        );
        assert!(p.insert(tx(1, 0, 0), &poor).is_ok());
        let mut other = tx(2, 0, 1).transfer;
        other.chain_id = "other".into();
        let other = other.sign(&key(2));
        assert_eq!(
            p.insert(other, &rich()).unwrap_err().as_str(),
            "wrong_chain"
        );
    }

    #[test]
    fn nonce_window_is_max_per_account() {
        let mut p = pool(10, 4);
        assert!(p.insert(tx(1, 3, 1), &rich()).is_ok());
        assert_eq!(
            p.insert(tx(1, 4, 1), &rich()),
            Err(MempoolError::Invalid(TxError::NonceTooHigh {
                expected: 0,
                got: 4
            }))
        );
    }

    #[test]
    fn per_account_and_global_bounds() {
        let mut p = pool(3, 2);
        p.insert(tx(1, 0, 1), &rich()).unwrap();
        p.insert(tx(1, 1, 1), &rich()).unwrap();
        // nonce 1 < window 2 would be fine, but the sender already has 2 pending
        let acc = Account {
            balance: 1_000,
            nonce: 1,
        };
        assert_eq!(
            p.insert(tx(1, 2, 1), &acc),
            Err(MempoolError::AccountFull(2))
        );
        p.insert(tx(2, 0, 1), &rich()).unwrap();
        assert_eq!(p.insert(tx(3, 0, 1), &rich()), Err(MempoolError::Full(3)));
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn pending_nonce_counts_the_gap_free_run() {
        let mut p = pool(100, 10);
        let sender = address_of(&key(1));
        assert_eq!(p.pending_nonce(&sender, 3), 3);
        for n in [0, 1, 3] {
            p.insert(tx(1, n, 1), &rich()).unwrap();
        }
        assert_eq!(p.pending_nonce(&sender, 0), 2);
        assert_eq!(p.pending_nonce(&sender, 1), 2);
        assert_eq!(p.pending_nonce(&sender, 2), 2);
        assert_eq!(p.pending_nonce(&sender, 3), 4);
        assert_eq!(p.pending_nonce(&address_of(&key(2)), 0), 0);
    }

    #[test]
    fn select_returns_gap_free_runs_in_nonce_order() {
        let mut p = pool(100, 10);
        for n in [2, 0, 1, 4] {
            p.insert(tx(1, n, 1), &rich()).unwrap();
        }
        let picked = p.select(10, &view(&[(1, 1_000, 0)]));
        let nonces: Vec<u64> = picked.iter().map(|t| t.transfer.nonce).collect();
        assert_eq!(nonces, vec![0, 1, 2]);
        // Account already at nonce 1: the run starts there.
        let picked = p.select(10, &view(&[(1, 1_000, 1)]));
        let nonces: Vec<u64> = picked.iter().map(|t| t.transfer.nonce).collect();
        assert_eq!(nonces, vec![1, 2]);
    }

    #[test]
    fn select_stops_when_balance_runs_out() {
        let mut p = pool(100, 10);
        for n in 0..3 {
            p.insert(tx(1, n, 1), &rich()).unwrap();
        }
        // Each costs 11: 22 covers exactly two.
        assert_eq!(p.select(10, &view(&[(1, 22, 0)])).len(), 2);
        assert_eq!(p.select(10, &view(&[(1, 21, 0)])).len(), 1);
        assert_eq!(p.select(10, &view(&[(1, 10, 0)])).len(), 0);
    }

    #[test]
    fn select_prefers_higher_fees_across_senders_and_respects_max() {
        let mut p = pool(100, 10);
        p.insert(tx(1, 0, 1), &rich()).unwrap();
        p.insert(tx(1, 1, 9), &rich()).unwrap();
        p.insert(tx(2, 0, 5), &rich()).unwrap();
        let v = view(&[(1, 1_000, 0), (2, 1_000, 0)]);
        let picked: Vec<(Address, u64)> = p
            .select(10, &v)
            .iter()
            .map(|t| (t.sender(), t.transfer.nonce))
            .collect();
        let (a, b) = (address_of(&key(1)), address_of(&key(2)));
        assert_eq!(picked, vec![(b, 0), (a, 0), (a, 1)]);
        assert_eq!(p.select(2, &v).len(), 2);
        assert_eq!(p.senders().copied().collect::<Vec<_>>(), {
            let mut s = vec![a, b];
            s.sort();
            s
        });
        assert!(p.select(0, &v).is_empty());
    }

    #[test]
    fn remove_included_drops_tx_and_lower_nonces() {
        let mut p = pool(100, 10);
        for n in 0..4 {
            p.insert(tx(1, n, 1), &rich()).unwrap();
        }
        p.insert(tx(2, 0, 1), &rich()).unwrap();
        p.remove_included(&[tx(1, 2, 1)]);
        assert_eq!(p.len(), 2);
        assert!(p.contains(&tx(1, 3, 1).hash()));
        assert!(!p.contains(&tx(1, 0, 1).hash()));
        p.remove_included(&[tx(1, 3, 1), tx(3, 0, 1)]);
        assert_eq!(p.len(), 1);
        assert!(p.contains(&tx(2, 0, 1).hash()));
    }

    #[test]
    fn prune_drops_stale_nonces() {
        let mut p = pool(100, 10);
        for n in 0..3 {
            p.insert(tx(1, n, 1), &rich()).unwrap();
        }
        assert_eq!(p.prune(&view(&[(1, 1_000, 2)])), 2);
        assert_eq!(p.len(), 1);
        assert!(p.get(&tx(1, 2, 1).hash()).is_some());
        assert_eq!(p.prune(&view(&[(1, 1_000, 2)])), 0);
        assert_eq!(p.prune(&view(&[(1, 1_000, 3)])), 1);
        assert!(p.is_empty());
    }

    #[test]
    fn reinsert_after_reorg_skips_what_the_new_chain_has() {
        let mut p = pool(100, 10);
        let undone = vec![tx(1, 0, 1), tx(1, 1, 1), tx(1, 2, 1)];
        // The new branch already executed nonce 0.
        let v = view(&[(1, 1_000, 1)]);
        assert_eq!(p.reinsert(undone, &v), 2);
        assert_eq!(p.select(10, &v).len(), 2);
    }
}
