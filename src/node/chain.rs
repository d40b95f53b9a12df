//! The chain runtime: the chain store and the mempool behind locks, block import with
//! metrics, block production in this node's slots, new heads for the API and for gossip,
//! and the relay queue the peer manager pushes along links.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use qnet_api::dto::HeadDto;
use qnet_storage::Store;
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

use super::NodeError;
use crate::chain::account::Account;
use crate::chain::block::{Block, BlockHeader, MAX_BLOCK_TXS};
use crate::chain::mempool::{CheckedTransfer, Mempool, MempoolConfig, MempoolError};
use crate::chain::signatures::Verified;
use crate::chain::spec::{ChainSpec, ScheduledSlot};
use crate::chain::store::{AccountReader, ChainStore, ChainStoreError, ImportOutcome};
use crate::chain::tx::{Address, SignedTransfer};
use crate::chain::validate::RejectReason;
use crate::chain::Hash;
use crate::clock::SharedClock;
use crate::config::NodeConfig;
use crate::identity::{to_hex, Identity, NodeId};
use crate::metrics::{ChainMetrics, TX_ACCEPTED};
use crate::net::message::{MAX_BLOCKS_PER_REQUEST, MAX_BLOCKS_RESPONSE_BYTES};
use crate::net::server::fetch_chain_spec;
use crate::net::Message;

/// File in the data dir holding the funded account key of a development chain.
pub const DEV_ACCOUNT_KEY_FILE: &str = "dev-account.key";
/// Rounds of chain spec requests between two warnings while waiting for bootstrap peers.
const SPEC_WARN_EVERY: u32 = 8;
/// Capacity of the relay queue read by the peer manager.
const RELAY_CAPACITY: usize = 4_096;

/// Something new to push along the links; `from` is the peer it came from (not pushed back).
#[derive(Debug, Clone)]
pub enum Relay {
    /// A block, canonically encoded.
    Block {
        /// Encoded block.
        bytes: Arc<Vec<u8>>,
        /// Sender, `None` when produced here.
        from: Option<NodeId>,
    },
    /// A transaction, canonically encoded.
    Tx {
        /// Encoded transaction.
        bytes: Arc<Vec<u8>>,
        /// Sender, `None` when submitted here.
        from: Option<NodeId>,
    },
}

/// Where a block comes from; decides flushing, relaying and penalties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Built by this node.
    Produced,
    /// Pushed by a peer.
    Pushed(NodeId),
    /// Pulled by sync (flushed per batch, not relayed).
    Synced,
}

/// Why a block was not imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The parent is unknown: sync should fetch the missing range.
    #[error("unknown parent")]
    Orphan,
    /// The block is invalid.
    #[error("invalid block: {0}")]
    Invalid(RejectReason),
    /// Storage failed.
    #[error("store: {0}")]
    Store(String),
}

impl ImportError {
    /// Whether the sending peer should be penalised (a bad block, not a race or clock skew).
    pub fn penalise(&self) -> bool {
        matches!(self, ImportError::Invalid(r) if !matches!(r, RejectReason::FutureSlot))
    }
}

/// Where a transaction is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxLookup {
    /// In the mempool.
    Pending(SignedTransfer),
    /// In the canonical chain.
    Included(SignedTransfer, Inclusion),
}

/// The block of the canonical chain holding a transaction, read under one store lock with the
/// head, so the confirmations agree with the block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inclusion {
    /// Height of the including block.
    pub height: u64,
    /// Hash of the including block.
    pub block_hash: Hash,
    /// Position of the transaction in the block, from 0.
    pub index: u32,
    /// Timestamp of the including block, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Height of the head when the lookup was made.
    pub head_height: u64,
}

impl Inclusion {
    /// Blocks from the including one to the head, both counted: 1 while it is the head.
    pub fn confirmations(&self) -> u64 {
        self.head_height
            .saturating_sub(self.height)
            .saturating_add(1)
    }
}

/// The chain as the node's tasks and API use it.
pub struct ChainRuntime {
    store: Mutex<ChainStore>,
    /// Reads accounts for admission without waiting for the store lock (held while a block
    /// is built or imported), so submitters and the producer work at the same time.
    accounts: AccountReader,
    mempool: Mutex<Mempool>,
    spec: ChainSpec,
    genesis_hash: Hash,
    key: SigningKey,
    produce: bool,
    metrics: ChainMetrics,
    clock: SharedClock,
    heads: broadcast::Sender<HeadDto>,
    head_tx: watch::Sender<BlockHeader>,
    relay_tx: broadcast::Sender<Relay>,
    syncing: AtomicBool,
    sync_target: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A header as the API shows a head.
pub fn head_dto(h: &BlockHeader) -> HeadDto {
    HeadDto {
        height: h.height,
        hash: to_hex(&h.hash()),
        parent_hash: to_hex(&h.parent_hash),
        slot: h.slot,
        timestamp_ms: h.timestamp_ms,
    }
}

/// Picks the chain spec: `--chain`, else the one stored in the data dir, else a bootstrap
/// peer's (waiting for one to answer), else a new development chain whose funded account key is written to the data dir.
pub async fn resolve_spec(
    config: &NodeConfig,
    store: &Store,
    identity: &Identity,
    now_ms: u64,
) -> Result<ChainSpec, NodeError> {
    if let Some(path) = &config.chain {
        return ChainSpec::load(path).map_err(|e| NodeError::Chain(e.to_string()));
    }
    if let Some(spec) =
        ChainStore::stored_spec(store).map_err(|e| NodeError::Chain(e.to_string()))?
    {
        info!(chain_id = %spec.chain_id, "using the chain spec stored in the data dir");
        return Ok(spec);
    }
    if !config.bootstrap_peers.is_empty() {
        return Ok(spec_from_peers(&config.bootstrap_peers).await);
    }
    let slot_start = now_ms - now_ms % crate::chain::spec::DEFAULT_SLOT_MS;
    let (spec, account) = ChainSpec::dev(identity, slot_start);
    write_dev_account(&config.data_dir, &account)?;
    Ok(spec)
}

/// Asks the bootstrap peers for their chain spec until one answers with a valid spec: a node
/// started before its bootstrap peers waits for them (its API says "starting" meanwhile).
/// The first failure is a warning, later ones a warning every [`SPEC_WARN_EVERY`] attempts.
async fn spec_from_peers(peers: &[String]) -> ChainSpec {
    let mut attempt: u32 = 0;
    loop {
        for peer in peers {
            let error = match fetch_chain_spec(peer).await {
                Ok(json) => match ChainSpec::from_json(&json) {
                    Ok(spec) => {
                        info!(peer = %peer, chain_id = %spec.chain_id, "adopted the bootstrap peer's chain spec");
                        return spec;
                    }
                    Err(e) => format!("bad chain spec: {e}"),
                },
                Err(e) => e.to_string(),
            };
            if attempt % SPEC_WARN_EVERY == 0 {
                warn!(peer = %peer, attempt = attempt + 1, error = %error, "waiting for a bootstrap peer's chain spec");
            }
        }
        tokio::time::sleep(spec_retry_delay(attempt)).await;
        attempt = attempt.saturating_add(1);
    }
}

/// Pause before the next round of chain spec requests: 0.5 s doubling up to 4 s.
pub fn spec_retry_delay(attempt: u32) -> Duration {
    Duration::from_millis(500 << attempt.min(3))
}

fn write_dev_account(data_dir: &Path, account: &Identity) -> Result<(), NodeError> {
    let path = data_dir.join(DEV_ACCOUNT_KEY_FILE);
    if !path.exists() {
        account.write_key_file(&path)?;
    }
    let address = Address::from_public_key(account.public_key().as_bytes());
    info!(address = %address, key_file = %path.display(), "development chain: funded account");
    Ok(())
}

impl ChainRuntime {
    /// Opens the chain in `store` for `spec`.
    pub fn open(
        store: Store,
        spec: ChainSpec,
        identity: &Identity,
        produce: bool,
        metrics: ChainMetrics,
        clock: SharedClock,
        heads: broadcast::Sender<HeadDto>,
    ) -> Result<ChainRuntime, ChainStoreError> {
        let chain = ChainStore::open(store, spec.clone())?;
        let head = chain.head_header().clone();
        metrics
            .height
            .set(i64::try_from(head.height).unwrap_or(i64::MAX));
        let genesis_hash = chain.genesis_hash();
        Ok(ChainRuntime {
            mempool: Mutex::new(Mempool::new(&spec.chain_id, MempoolConfig::default())),
            accounts: chain.reader(),
            store: Mutex::new(chain),
            genesis_hash,
            key: identity.signing_key().clone(),
            produce,
            spec,
            metrics,
            clock,
            heads,
            head_tx: watch::channel(head).0,
            relay_tx: broadcast::channel(RELAY_CAPACITY).0,
            syncing: AtomicBool::new(false),
            sync_target: AtomicU64::new(0),
        })
    }

    /// The chain spec.
    pub fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// The `n` slots after the running one, by the node's clock.
    pub fn upcoming_slots(&self, n: usize) -> Vec<ScheduledSlot> {
        self.spec.upcoming_slots(self.clock.now_ms(), n)
    }

    /// The genesis hash.
    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    /// The head's header.
    pub fn head(&self) -> BlockHeader {
        self.head_tx.borrow().clone()
    }

    /// A receiver of every new head.
    pub fn subscribe_head(&self) -> watch::Receiver<BlockHeader> {
        self.head_tx.subscribe()
    }

    /// A receiver of what to push along the links.
    pub fn subscribe_relay(&self) -> broadcast::Receiver<Relay> {
        self.relay_tx.subscribe()
    }

    /// Whether the node is far behind its peers.
    pub fn syncing(&self) -> bool {
        self.syncing.load(Ordering::SeqCst)
    }

    /// Sets the sync state and the target height shown in metrics.
    pub fn set_sync(&self, syncing: bool, target: u64) {
        self.syncing.store(syncing, Ordering::SeqCst);
        self.sync_target.store(target, Ordering::SeqCst);
        self.metrics
            .sync_target
            .set(i64::try_from(target).unwrap_or(i64::MAX));
    }

    /// Validates and stores a block, updates mempool and metrics; flushes and relays blocks
    /// that are new here unless they come from sync. Returns whether the block was new.
    pub fn import_block(&self, block: Block, source: Source) -> Result<bool, ImportError> {
        self.import_block_verified(block, source, &Verified::new())
    }

    /// [`ChainRuntime::import_block`] trusting the signatures `pre` recorded for this block
    /// (e.g. a synced range verified in parallel before its sequential import).
    pub fn import_block_verified(
        &self,
        block: Block,
        source: Source,
        pre: &Verified,
    ) -> Result<bool, ImportError> {
        let now = self.clock.now_ms();
        let timestamp_ms = block.header.timestamp_ms;
        let txs = block.txs.clone();
        let bytes = (source != Source::Synced).then(|| Arc::new(block.encode()));
        // signatures checked when these transfers entered the mempool are not checked again
        let mut verified = pre.for_block(&block);
        if !txs.is_empty() {
            let pool = lock(&self.mempool);
            for hash in txs.iter().map(SignedTransfer::hash) {
                if pool.contains(&hash) {
                    verified.add_tx(hash);
                }
            }
        }
        let mut store = lock(&self.store);
        let outcome = match store.import_verified(block, now, &verified) {
            Ok(outcome) => outcome,
            Err(ChainStoreError::Rejected(reason)) => {
                self.metrics
                    .blocks_rejected
                    .with_label_values(&[reason.as_str()])
                    .inc();
                return Err(match reason {
                    RejectReason::UnknownParent => ImportError::Orphan,
                    r => ImportError::Invalid(r),
                });
            }
            Err(e) => return Err(ImportError::Store(e.to_string())),
        };
        let new_head = match outcome {
            ImportOutcome::AlreadyKnown => return Ok(false),
            ImportOutcome::SideChain => None,
            ImportOutcome::Extended(_) => {
                lock(&self.mempool).remove_included(&txs);
                Some(store.head_header().clone())
            }
            ImportOutcome::Reorg {
                depth, undone_txs, ..
            } => {
                self.metrics.reorgs.inc();
                self.metrics.reorg_depth.observe(depth as f64);
                let mut pool = lock(&self.mempool);
                let mut senders: Vec<Address> = pool.senders().copied().collect();
                senders.extend(undone_txs.iter().map(SignedTransfer::sender));
                if let Ok(view) = store.accounts_view(&senders) {
                    pool.prune(&view);
                    let back = pool.reinsert(undone_txs, &view);
                    info!(depth, returned_txs = back, "chain reorganised");
                }
                Some(store.head_header().clone())
            }
        };
        // durable before anyone hears of it; synced blocks are flushed and announced per batch
        if source != Source::Synced {
            if let Err(e) = store.flush() {
                warn!(error = %e, "store flush failed");
            }
        }
        drop(store);
        self.metrics.blocks_imported.inc();
        if matches!(source, Source::Pushed(_)) {
            let delay_ms = now.saturating_sub(timestamp_ms);
            self.metrics.propagation.observe(delay_ms as f64 / 1000.0);
        }
        if let Some(head) = new_head.filter(|_| source != Source::Synced) {
            self.publish_head(head);
        }
        self.update_mempool_gauge();
        if let Some(bytes) = bytes {
            let from = match source {
                Source::Pushed(id) => Some(id),
                _ => None,
            };
            let _ = self.relay_tx.send(Relay::Block { bytes, from });
        }
        Ok(true)
    }

    /// Writes buffered chain data to disk.
    pub fn flush(&self) {
        if let Err(e) = lock(&self.store).flush() {
            warn!(error = %e, "store flush failed");
        }
    }

    /// Flushes, then announces the stored head if it changed (after a batch of synced blocks).
    pub fn flush_and_announce(&self) {
        let head = {
            let store = lock(&self.store);
            if let Err(e) = store.flush() {
                warn!(error = %e, "store flush failed; head not announced");
                return;
            }
            store.head_header().clone()
        };
        if head.hash() != self.head_tx.borrow().hash() {
            self.publish_head(head);
        }
    }

    fn publish_head(&self, head: BlockHeader) {
        self.metrics
            .height
            .set(i64::try_from(head.height).unwrap_or(i64::MAX));
        let _ = self.heads.send(head_dto(&head));
        self.head_tx.send_replace(head);
    }

    /// Transactions waiting in the mempool.
    pub fn mempool_len(&self) -> usize {
        lock(&self.mempool).len()
    }

    /// Admits a transaction to the mempool and relays it; `from` is the peer that sent it.
    pub fn submit_tx(
        &self,
        tx: SignedTransfer,
        from: Option<NodeId>,
    ) -> Result<Hash, MempoolError> {
        let bytes = Arc::new(tx.encode());
        // the signature is checked outside the locks, so concurrent submitters use every core;
        // a known transaction (the echo of a push) is not checked at all
        let result = if lock(&self.mempool).contains(&tx.hash()) {
            Err(MempoolError::Duplicate)
        } else {
            match CheckedTransfer::check(tx, &self.spec.chain_id) {
                Ok(checked) => {
                    let sender = checked.transfer().sender();
                    let account = self.accounts.account(&sender).unwrap_or_default();
                    lock(&self.mempool).insert_checked(checked, &account)
                }
                Err(e) => Err(e.into()),
            }
        };
        self.admitted(&result, bytes, from.as_ref());
        self.update_mempool_gauge();
        result
    }

    /// Admits a batch of transactions in order, as [`ChainRuntime::submit_tx`] one by one
    /// would: signatures are checked on every core outside the locks, then each lock is
    /// taken once and nonces, duplicates and balances are checked in input order. Returns
    /// one result per transaction, in input order.
    pub fn submit_txs(
        &self,
        txs: Vec<SignedTransfer>,
        from: Option<NodeId>,
    ) -> Vec<Result<Hash, MempoolError>> {
        let encoded: Vec<Arc<Vec<u8>>> = txs.iter().map(|tx| Arc::new(tx.encode())).collect();
        // a transaction hash is blake3 of the canonical encoding
        let hashes: Vec<Hash> = encoded
            .iter()
            .map(|b| *blake3::hash(b).as_bytes())
            .collect();
        let known: Vec<bool> = {
            let pool = lock(&self.mempool);
            hashes.iter().map(|h| pool.contains(h)).collect()
        };
        // only what is new here is checked; an echo keeps its place as a duplicate
        let fresh: Vec<SignedTransfer> = txs
            .into_iter()
            .zip(&known)
            .filter(|(_, known)| !**known)
            .map(|(tx, _)| tx)
            .collect();
        let senders: Vec<Address> = fresh.iter().map(SignedTransfer::sender).collect();
        let chain_id = self.spec.chain_id.as_str();
        let (checked, accounts) = std::thread::scope(|scope| {
            let checking = scope.spawn(move || CheckedTransfer::check_all(fresh, chain_id));
            // the senders' accounts are read while the signatures are checked; a failed read
            // counts as an empty account, as for a single submission
            let accounts = self.accounts.accounts_view(&senders).unwrap_or_default();
            let checked = checking
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e));
            (checked, accounts)
        });
        let mut checked = checked.into_iter();
        let checked: Vec<Result<CheckedTransfer, MempoolError>> = known
            .iter()
            .map(|known| {
                let result = (!known).then(|| checked.next()).flatten();
                result.map_or(Err(MempoolError::Duplicate), |r| {
                    r.map_err(MempoolError::from)
                })
            })
            .collect();
        let results: Vec<Result<Hash, MempoolError>> = {
            let mut pool = lock(&self.mempool);
            checked
                .into_iter()
                .map(|c| {
                    c.and_then(|c| {
                        let account = accounts
                            .get(&c.transfer().sender())
                            .copied()
                            .unwrap_or_default();
                        pool.insert_checked(c, &account)
                    })
                })
                .collect()
        };
        for (result, bytes) in results.iter().zip(encoded) {
            self.admitted(result, bytes, from.as_ref());
        }
        self.update_mempool_gauge();
        results
    }

    /// Counts an admission result and relays what was admitted.
    fn admitted(
        &self,
        result: &Result<Hash, MempoolError>,
        bytes: Arc<Vec<u8>>,
        from: Option<&NodeId>,
    ) {
        match result {
            Ok(_) => {
                self.metrics
                    .transactions
                    .with_label_values(&[TX_ACCEPTED])
                    .inc();
                let from = from.cloned();
                let _ = self.relay_tx.send(Relay::Tx { bytes, from });
            }
            // a relayed copy of a known transaction is the normal echo of a push, not an error
            Err(MempoolError::Duplicate) if from.is_some() => {}
            Err(e) => self
                .metrics
                .transactions
                .with_label_values(&[e.as_str()])
                .inc(),
        }
    }

    fn update_mempool_gauge(&self) {
        self.metrics
            .mempool
            .set(i64::try_from(self.mempool_len()).unwrap_or(i64::MAX));
    }

    /// Up to `max` pending transactions, encoded (pushed to a peer when its link opens).
    pub fn pending_txs(&self, max: usize) -> Vec<Vec<u8>> {
        lock(&self.mempool)
            .pending(max)
            .into_iter()
            .map(SignedTransfer::encode)
            .collect()
    }

    /// Counts a transaction refused before it reached the mempool (e.g. undecodable).
    pub fn count_rejected_tx(&self, reason: &str) {
        self.metrics.transactions.with_label_values(&[reason]).inc();
    }

    /// Builds, stores and relays a block for `slot` if this node is its producer and the
    /// head is older. Returns the block's header when one was produced.
    pub fn produce(&self, slot: u64) -> Option<BlockHeader> {
        let me = self.key.verifying_key().to_bytes();
        if !self.produce || self.spec.producer_for_slot(slot) != Some(me) {
            return None;
        }
        let now = self.clock.now_ms();
        let start = self.spec.slot_start_ms(slot);
        let end = self.spec.slot_start_ms(slot.saturating_add(1));
        if now < start || now >= end {
            debug!(slot, "missed the slot window");
            return None;
        }
        let block = {
            let store = lock(&self.store);
            if store.head_header().slot >= slot {
                return None;
            }
            let candidates = {
                let pool = lock(&self.mempool);
                let senders: Vec<Address> = pool.senders().copied().collect();
                match store.accounts_view(&senders) {
                    Ok(view) => pool.select(MAX_BLOCK_TXS, &view),
                    Err(e) => {
                        warn!(error = %e, "cannot read accounts for the block");
                        Vec::new()
                    }
                }
            };
            // every candidate comes from the mempool, which checked its signature
            let verified: HashSet<Hash> = candidates.iter().map(SignedTransfer::hash).collect();
            match store.build_block_verified(candidates, slot, now, &self.key, &verified) {
                Ok(b) => b,
                Err(e) => {
                    warn!(error = %e, "cannot build a block");
                    return None;
                }
            }
        };
        let header = block.header.clone();
        match self.import_block(block, Source::Produced) {
            Ok(_) => {
                self.metrics.blocks_produced.inc();
                debug!(
                    height = header.height,
                    slot,
                    txs = header.tx_count,
                    "block produced"
                );
                Some(header)
            }
            Err(e) => {
                warn!(error = %e, slot, "own block not imported");
                None
            }
        }
    }

    /// Canonical block at `height`.
    pub fn block_by_height(&self, height: u64) -> Result<Option<Block>, ChainStoreError> {
        lock(&self.store).block_by_height(height)
    }

    /// Canonical block by hash.
    pub fn block_by_hash(&self, hash: &Hash) -> Result<Option<Block>, ChainStoreError> {
        lock(&self.store).block_by_hash(hash)
    }

    /// Up to `limit` canonical blocks from `from`.
    pub fn blocks_from(&self, from: u64, limit: usize) -> Result<Vec<Block>, ChainStoreError> {
        lock(&self.store).blocks_from(from, limit)
    }

    /// Encoded canonical blocks from `from`, at most `limit` blocks and `max_bytes` (but at
    /// least one block), as stored: no decoding on the serving side.
    pub fn encoded_blocks_from(
        &self,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, ChainStoreError> {
        let blocks = lock(&self.store).encoded_blocks_from(from, limit)?;
        let mut total = 0usize;
        let mut out = Vec::with_capacity(blocks.len());
        for bytes in blocks {
            total = total.saturating_add(bytes.len());
            if total > max_bytes && !out.is_empty() {
                break;
            }
            out.push(bytes);
        }
        Ok(out)
    }

    /// The answer to a peer's `GetBlocks`: at most [`MAX_BLOCKS_PER_REQUEST`] blocks and
    /// [`MAX_BLOCKS_RESPONSE_BYTES`] from `from`, or an error message when the store fails.
    pub fn blocks_reply(&self, from: u64, limit: u32) -> Message {
        let limit = limit.min(MAX_BLOCKS_PER_REQUEST) as usize;
        match self.encoded_blocks_from(from, limit, MAX_BLOCKS_RESPONSE_BYTES) {
            Ok(blocks) => Message::Blocks(blocks),
            Err(e) => Message::Error {
                reason: format!("cannot read blocks: {e}"),
            },
        }
    }

    /// A transaction, pending or in the canonical chain.
    pub fn tx(&self, hash: &Hash) -> Result<Option<TxLookup>, ChainStoreError> {
        if let Some(tx) = lock(&self.mempool).get(hash) {
            return Ok(Some(TxLookup::Pending(tx.clone())));
        }
        let store = lock(&self.store);
        let head_height = store.head().height;
        Ok(store.tx(hash)?.map(|(tx, at, header)| {
            TxLookup::Included(
                tx,
                Inclusion {
                    height: at.height,
                    block_hash: header.hash(),
                    index: at.index,
                    timestamp_ms: header.timestamp_ms,
                    head_height,
                },
            )
        }))
    }

    /// Up to `max` pending transactions sent by or to `address` (all when `None`), by sender
    /// then nonce, and how many match in all.
    pub fn pending_of(
        &self,
        address: Option<&Address>,
        max: usize,
    ) -> (Vec<SignedTransfer>, usize) {
        let pool = lock(&self.mempool);
        let (listed, total) = pool.pending_of(address, max);
        (listed.into_iter().cloned().collect(), total)
    }

    /// An account and the next nonce counting pending transactions.
    pub fn account(&self, address: &Address) -> Result<(Account, u64), ChainStoreError> {
        let account = self.accounts.account(address)?;
        let pending = lock(&self.mempool).pending_nonce(address, account.nonce);
        Ok((account, pending))
    }
}

/// Produces a block at the start of every slot scheduled for this node, until `stop`.
pub async fn run_producer(chain: Arc<ChainRuntime>, mut stop: watch::Receiver<bool>) {
    if !chain.produce {
        return;
    }
    let me = chain.key.verifying_key().to_bytes();
    if !chain.spec.producer_keys().contains(&me) {
        info!("microblocks enabled but this node is not a producer of the chain");
        return;
    }
    loop {
        let now = chain.clock.now_ms();
        let next = chain.spec.slot_at(now).saturating_add(1);
        // a few ms into the slot, so the timestamp is inside it on every node's clock
        let wait = chain.spec.slot_start_ms(next).saturating_sub(now) + 5;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            _ = stop.changed() => return,
        }
        if chain.syncing() {
            continue;
        }
        let c = chain.clone();
        let _ = tokio::task::spawn_blocking(move || c.produce(next)).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn spec_retries_back_off_to_four_seconds() {
        let d: Vec<u64> = (0..6)
            .map(|a| super::spec_retry_delay(a).as_millis() as u64)
            .collect();
        assert_eq!(d, vec![500, 1_000, 2_000, 4_000, 4_000, 4_000]);
        assert_eq!(super::spec_retry_delay(u32::MAX).as_millis(), 4_000);
    }

    use super::*;
    use crate::chain::tx::Transfer;
    use crate::chain::tx::TxError;
    use crate::clock::ManualClock;

    #[test]
    fn confirmations_count_the_including_block_and_every_block_above() {
        let at = |head_height| Inclusion {
            height: 5,
            block_hash: [0; 32],
            index: 0,
            timestamp_ms: 0,
            head_height,
        };
        assert_eq!(at(5).confirmations(), 1);
        assert_eq!(at(7).confirmations(), 3);
        // a head read below the block (a reorg between the reads) never underflows
        assert_eq!(at(3).confirmations(), 1);
    }

    fn runtime(
        dir: &tempfile::TempDir,
        clock: Arc<ManualClock>,
        producer: &Identity,
        funded: &Identity,
    ) -> ChainRuntime {
        let store = Store::open(&dir.path().join("db")).unwrap();
        let spec = ChainSpec {
            chain_id: "t".into(),
            genesis_time_ms: 10_000,
            slot_ms: 1_000,
            producers: vec![to_hex(producer.public_key().as_bytes())],
            balances: vec![(
                Address::from_public_key(funded.public_key().as_bytes()).to_string(),
                1_000,
            )],
        };
        let metrics = crate::metrics::Metrics::new().unwrap().chain;
        ChainRuntime::open(
            store,
            spec,
            producer,
            true,
            metrics,
            clock,
            broadcast::channel(16).0,
        )
        .unwrap()
    }

    fn transfer(from: &Identity, to: Address, amount: u64, nonce: u64) -> SignedTransfer {
        Transfer {
            chain_id: "t".into(),
            from: from.public_key().to_bytes(),
            to,
            amount,
            fee: 1,
            nonce,
        }
        .sign(from.signing_key())
    }

    #[test]
    fn produce_includes_pending_txs_and_updates_state() {
        let clock = Arc::new(ManualClock::new(12_100));
        let producer = Identity::generate();
        let alice = Identity::generate();
        let bob = Address::from_public_key(Identity::generate().public_key().as_bytes());
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(&dir, clock.clone(), &producer, &alice);
        let mut relay = rt.subscribe_relay();
        let tx = transfer(&alice, bob, 10, 0);
        let hash = rt.submit_tx(tx.clone(), None).unwrap();
        assert!(matches!(relay.try_recv(), Ok(Relay::Tx { from: None, .. })));
        assert!(matches!(rt.tx(&hash).unwrap(), Some(TxLookup::Pending(_))));
        let alice_addr = Address::from_public_key(alice.public_key().as_bytes());
        assert_eq!(rt.account(&alice_addr).unwrap().1, 1);
        // not our slot window: slot 3 starts at 13_000
        assert!(rt.produce(3).is_none());
        let header = rt.produce(2).unwrap();
        assert_eq!(header.height, 1);
        assert_eq!(header.tx_count, 1);
        assert!(matches!(
            relay.try_recv(),
            Ok(Relay::Block { from: None, .. })
        ));
        let inclusion = Inclusion {
            height: 1,
            block_hash: header.hash(),
            index: 0,
            timestamp_ms: header.timestamp_ms,
            head_height: 1,
        };
        assert_eq!(inclusion.confirmations(), 1);
        assert_eq!(
            rt.tx(&hash).unwrap(),
            Some(TxLookup::Included(tx.clone(), inclusion))
        );
        let (account, pending) = rt.account(&alice_addr).unwrap();
        assert_eq!((account.balance, account.nonce, pending), (989, 1, 1));
        assert_eq!(rt.head().height, 1);
        // the same slot is not produced twice
        assert!(rt.produce(2).is_none());
        // a replay is rejected and counted
        assert!(rt.submit_tx(tx, None).is_err());
        let rendered = rt
            .metrics
            .transactions
            .with_label_values(&["nonce_too_low"])
            .get();
        assert_eq!(rendered, 1);
    }

    #[test]
    fn submit_txs_answers_as_one_by_one_submission_and_rejects_exactly_the_bad_ones() {
        let clock = Arc::new(ManualClock::new(12_100));
        let producer = Identity::generate();
        let alice = Identity::generate();
        let bob = Address::from_public_key(Identity::generate().public_key().as_bytes());
        // 40 transfers of 11 each, a bad signature at nonce 5, a copy of nonce 3, a transfer
        // the balance cannot cover, one from an unfunded sender, one for another chain
        let mut batch: Vec<SignedTransfer> =
            (0..40).map(|n| transfer(&alice, bob, 10, n)).collect();
        batch[5].signature[0] ^= 1;
        batch.push(batch[3].clone());
        batch.push(transfer(&alice, bob, 2_000, 40));
        batch.push(transfer(&Identity::generate(), bob, 1, 0));
        let mut other_chain = transfer(&alice, bob, 1, 41).transfer;
        other_chain.chain_id = "other".into();
        batch.push(other_chain.sign(alice.signing_key()));
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let batched = runtime(&d1, clock.clone(), &producer, &alice);
        let single = runtime(&d2, clock.clone(), &producer, &alice);
        let mut relay = batched.subscribe_relay();
        let results = batched.submit_txs(batch.clone(), None);
        let one_by_one: Vec<_> = batch
            .iter()
            .map(|tx| single.submit_tx(tx.clone(), None))
            .collect();
        assert_eq!(results, one_by_one);
        for (i, result) in results.iter().enumerate() {
            let expected = match i {
                5 => Err("bad_signature"),
                40 => Err("duplicate"),
                41 | 42 => Err("insufficient_balance"),
                43 => Err("wrong_chain"),
                _ => Ok(batch[i].hash()),
            };
            assert_eq!(
                result.as_ref().map_err(|e| e.as_str()),
                expected.as_ref().map_err(|e| *e),
                "transfer {i}"
            );
        }
        let mut relayed = 0;
        while let Ok(Relay::Tx { from: None, .. }) = relay.try_recv() {
            relayed += 1;
        }
        assert_eq!(relayed, 39);
        let m = &batched.metrics;
        for (label, count) in [
            (TX_ACCEPTED, 39),
            ("bad_signature", 1),
            ("duplicate", 1),
            ("insufficient_balance", 2),
            ("wrong_chain", 1),
        ] {
            assert_eq!(
                m.transactions.with_label_values(&[label]).get(),
                count,
                "{label}"
            );
        }
        assert_eq!(m.mempool.get(), 39);
        // a relayed batch: known transfers are quiet duplicates, the rest is checked again
        let peer = Identity::generate().node_id().clone();
        let again = batched.submit_txs(batch.clone(), Some(peer));
        assert!(matches!(again[0], Err(MempoolError::Duplicate)));
        assert_eq!(again[5], Err(MempoolError::Invalid(TxError::BadSignature)));
        assert_eq!(m.transactions.with_label_values(&["duplicate"]).get(), 1);
        assert!(batched.submit_txs(Vec::new(), None).is_empty());
        // nonces 0-4 are executable, the gap at 5 holds back the rest
        let header = batched.produce(2).unwrap();
        assert_eq!(header.tx_count, 5);
    }

    #[test]
    fn invalid_and_orphan_blocks_are_counted_and_classified() {
        let clock = Arc::new(ManualClock::new(12_100));
        let producer = Identity::generate();
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(&dir, clock.clone(), &producer, &Identity::generate());
        let block = {
            let store = lock(&rt.store);
            store
                .build_block(Vec::new(), 2, 12_100, producer.signing_key())
                .unwrap()
        };
        let mut bad = block.clone();
        bad.signature[0] ^= 1;
        let err = rt
            .import_block(bad, Source::Pushed(producer.node_id().clone()))
            .unwrap_err();
        assert_eq!(err, ImportError::Invalid(RejectReason::BadSignature));
        assert!(err.penalise());
        let mut orphan = block.clone();
        orphan.header.parent_hash = [7; 32];
        let err = rt.import_block(orphan, Source::Synced).unwrap_err();
        assert_eq!(err, ImportError::Orphan);
        assert!(!err.penalise());
        assert!(rt.import_block(block.clone(), Source::Synced).unwrap());
        // a synced block is announced only after the batch is flushed
        assert_eq!(rt.head().height, 0);
        rt.flush_and_announce();
        assert_eq!(rt.head().height, 1);
        assert!(!rt.import_block(block, Source::Synced).unwrap());
        let m = &rt.metrics;
        assert_eq!(
            m.blocks_rejected
                .with_label_values(&["bad_signature"])
                .get(),
            1
        );
        assert_eq!(
            m.blocks_rejected
                .with_label_values(&["unknown_parent"])
                .get(),
            1
        );
        assert_eq!(m.blocks_imported.get(), 1);
        assert_eq!(m.height.get(), 1);
        assert!(!ImportError::Invalid(RejectReason::FutureSlot).penalise());
    }

    #[test]
    fn reorg_returns_undone_txs_to_the_mempool_and_counts() {
        let clock = Arc::new(ManualClock::new(12_100));
        let (p1, p2) = (Identity::generate(), Identity::generate());
        let alice = Identity::generate();
        let bob = Address::from_public_key(Identity::generate().public_key().as_bytes());
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let spec = ChainSpec {
            chain_id: "t".into(),
            genesis_time_ms: 10_000,
            slot_ms: 1_000,
            producers: vec![
                to_hex(p1.public_key().as_bytes()),
                to_hex(p2.public_key().as_bytes()),
            ],
            balances: vec![(
                Address::from_public_key(alice.public_key().as_bytes()).to_string(),
                1_000,
            )],
        };
        let metrics = crate::metrics::Metrics::new().unwrap().chain;
        let rt = ChainRuntime::open(
            store,
            spec.clone(),
            &p1,
            true,
            metrics,
            clock.clone(),
            broadcast::channel(16).0,
        )
        .unwrap();
        let tx = transfer(&alice, bob, 10, 0);
        let hash = rt.submit_tx(tx.clone(), None).unwrap();
        // slot 2 is p1's: the transfer goes into a1
        let a1 = rt.produce(2).unwrap();
        assert_eq!((a1.height, a1.tx_count), (1, 1));
        assert!(matches!(
            rt.tx(&hash).unwrap(),
            Some(TxLookup::Included(_, Inclusion { height: 1, .. }))
        ));
        // p2's block at slot 1 on genesis: same height, earlier slot, so fork choice prefers it
        let template = |slot: u64, height: u64, parent: Hash| crate::chain::block::BlockTemplate {
            chain_id: "t".into(),
            height,
            slot,
            parent_hash: parent,
            timestamp_ms: spec.slot_start_ms(slot) + 1,
        };
        let b1 = Block::produce(template(1, 1, rt.genesis_hash()), vec![], p2.signing_key());
        assert!(rt
            .import_block(b1.clone(), Source::Pushed(p2.node_id().clone()))
            .unwrap());
        assert_eq!(rt.head().hash(), b1.hash());
        assert_eq!(rt.tx(&hash).unwrap(), Some(TxLookup::Pending(tx.clone())));
        let alice_addr = Address::from_public_key(alice.public_key().as_bytes());
        let (account, pending) = rt.account(&alice_addr).unwrap();
        assert_eq!((account.balance, account.nonce, pending), (1_000, 0, 1));
        assert_eq!(rt.metrics.reorgs.get(), 1);
        assert_eq!(rt.metrics.reorg_depth.get_sample_count(), 1);
        assert_eq!(rt.metrics.reorg_depth.get_sample_sum(), 1.0);
        assert_eq!(rt.metrics.mempool.get(), 1);
        // the returned transfer is included again in p1's next slot, exactly once
        clock.set(14_100);
        let a2 = rt.produce(4).unwrap();
        assert_eq!((a2.height, a2.tx_count, a2.parent_hash), (2, 1, b1.hash()));
        assert_eq!(
            rt.tx(&hash).unwrap(),
            Some(TxLookup::Included(
                tx,
                Inclusion {
                    height: 2,
                    block_hash: a2.hash(),
                    index: 0,
                    timestamp_ms: a2.timestamp_ms,
                    head_height: 2,
                }
            ))
        );
        let (account, _) = rt.account(&alice_addr).unwrap();
        assert_eq!((account.balance, account.nonce), (989, 1));
        assert_eq!(rt.metrics.mempool.get(), 0);
    }
}
