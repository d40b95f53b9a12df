//! The chain runtime: the chain store and the mempool behind locks, block import with
//! metrics, block production in this node's slots, new heads for the API and for gossip,
//! and the relay queue the peer manager pushes along links.

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
use crate::chain::block::{Block, BlockHeader, MAX_BLOCK_TXS};
use crate::chain::mempool::{Mempool, MempoolConfig, MempoolError};
use crate::chain::spec::ChainSpec;
use crate::chain::state::Account;
use crate::chain::store::{ChainStore, ChainStoreError, ImportOutcome};
use crate::chain::tx::{Address, SignedTransfer};
use crate::chain::validate::RejectReason;
use crate::chain::Hash;
use crate::clock::SharedClock;
use crate::config::NodeConfig;
use crate::identity::{to_hex, Identity, NodeId};
use crate::metrics::{ChainMetrics, TX_ACCEPTED};
use crate::net::server::fetch_chain_spec;

/// File in the data dir holding the funded account key of a development chain.
pub const DEV_ACCOUNT_KEY_FILE: &str = "dev-account.key";
/// How many rounds the node asks its bootstrap peers for the chain spec.
const SPEC_ATTEMPTS: u32 = 8;
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
    /// In the canonical chain at `height`.
    Included(SignedTransfer, u64),
}

/// The chain as the node's tasks and API use it.
pub struct ChainRuntime {
    store: Mutex<ChainStore>,
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
/// peer's, else a new development chain whose funded account key is written to the data dir.
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
        for attempt in 0..SPEC_ATTEMPTS {
            for peer in &config.bootstrap_peers {
                match fetch_chain_spec(peer).await {
                    Ok(json) => match ChainSpec::from_json(&json) {
                        Ok(spec) => {
                            info!(peer = %peer, chain_id = %spec.chain_id, "adopted the bootstrap peer's chain spec");
                            return Ok(spec);
                        }
                        Err(e) => {
                            warn!(peer = %peer, error = %e, "bootstrap peer sent a bad chain spec")
                        }
                    },
                    Err(e) => warn!(peer = %peer, error = %e, "cannot get the chain spec"),
                }
            }
            tokio::time::sleep(Duration::from_millis(500 << attempt.min(3))).await;
        }
        return Err(NodeError::Chain(
            "no bootstrap peer gave a chain spec; pass --chain FILE".into(),
        ));
    }
    let slot_start = now_ms - now_ms % crate::chain::spec::DEFAULT_SLOT_MS;
    let (spec, account) = ChainSpec::dev(identity, slot_start);
    write_dev_account(&config.data_dir, &account)?;
    Ok(spec)
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
        let now = self.clock.now_ms();
        let timestamp_ms = block.header.timestamp_ms;
        let txs = block.txs.clone();
        let bytes = (source != Source::Synced).then(|| Arc::new(block.encode()));
        let mut store = lock(&self.store);
        let outcome = match store.import(block, now) {
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
        if source != Source::Synced {
            if let Err(e) = store.flush() {
                warn!(error = %e, "store flush failed");
            }
        }
        drop(store);
        self.metrics.blocks_imported.inc();
        let delay_ms = now.saturating_sub(timestamp_ms);
        self.metrics.propagation.observe(delay_ms as f64 / 1000.0);
        if let Some(head) = new_head {
            self.publish_head(head);
        }
        self.metrics
            .mempool
            .set(i64::try_from(lock(&self.mempool).len()).unwrap_or(i64::MAX));
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

    fn publish_head(&self, head: BlockHeader) {
        self.metrics
            .height
            .set(i64::try_from(head.height).unwrap_or(i64::MAX));
        let _ = self.heads.send(head_dto(&head));
        self.head_tx.send_replace(head);
    }

    /// Admits a transaction to the mempool and relays it; `from` is the peer that sent it.
    pub fn submit_tx(
        &self,
        tx: SignedTransfer,
        from: Option<NodeId>,
    ) -> Result<Hash, MempoolError> {
        let account = lock(&self.store).account(&tx.sender()).unwrap_or_default();
        let bytes = Arc::new(tx.encode());
        let result = lock(&self.mempool).insert(tx, &account);
        match &result {
            Ok(_) => {
                self.metrics
                    .transactions
                    .with_label_values(&[TX_ACCEPTED])
                    .inc();
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
        self.metrics
            .mempool
            .set(i64::try_from(lock(&self.mempool).len()).unwrap_or(i64::MAX));
        result
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
            match store.build_block(candidates, slot, now, &self.key) {
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

    /// Encoded canonical blocks from `from`, at most `limit` blocks and about `max_bytes`.
    pub fn encoded_blocks_from(
        &self,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, ChainStoreError> {
        let blocks = self.blocks_from(from, limit)?;
        let mut total = 0usize;
        let mut out = Vec::with_capacity(blocks.len());
        for b in blocks {
            let bytes = b.encode();
            total = total.saturating_add(bytes.len());
            if total > max_bytes && !out.is_empty() {
                break;
            }
            out.push(bytes);
        }
        Ok(out)
    }

    /// A transaction, pending or in the canonical chain.
    pub fn tx(&self, hash: &Hash) -> Result<Option<TxLookup>, ChainStoreError> {
        if let Some(tx) = lock(&self.mempool).get(hash) {
            return Ok(Some(TxLookup::Pending(tx.clone())));
        }
        Ok(lock(&self.store)
            .tx(hash)?
            .map(|(tx, at)| TxLookup::Included(tx, at.height)))
    }

    /// An account and the next nonce counting pending transactions.
    pub fn account(&self, address: &Address) -> Result<(Account, u64), ChainStoreError> {
        let account = lock(&self.store).account(address)?;
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
    use super::*;
    use crate::chain::tx::Transfer;
    use crate::clock::ManualClock;

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
        assert_eq!(
            rt.tx(&hash).unwrap(),
            Some(TxLookup::Included(tx.clone(), 1))
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
}
