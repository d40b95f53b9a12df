//! Sync: compares the heads peers announce in gossip (and the heights of orphan blocks they
//! push) with ours, and pulls missing ranges over the data plane, walking back to the fork
//! point when our chain and theirs differ. Logs progress while far behind.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tracing::{debug, info};

use super::chain::{ChainRuntime, ImportError, Source};
use super::peers::PeerManager;
use super::NodeShared;
use crate::chain::block::Block;
use crate::chain::signatures::Verified;
use crate::chain::store::MAX_REORG_DEPTH;
use crate::chain::Hash;
use crate::identity::NodeId;
use crate::membership::MembershipView;
use crate::net::handshake::Conn;
use crate::net::message::MAX_BLOCKS_PER_REQUEST;
use crate::net::server::{connect, fetch_blocks};
use crate::net::LocalInfo;

/// Behind by more than this many blocks, the node counts as syncing (not ready, not producing).
pub const SYNC_SLACK: u64 = 3;
/// Behind by more than this, progress lines are logged.
pub const LOG_GAP: u64 = 64;
/// Time between progress lines.
pub const LOG_EVERY: Duration = Duration::from_secs(2);
/// How often heads are compared when nothing else happens.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// A peer worth pulling from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSource {
    /// The peer.
    pub peer: NodeId,
    /// The height it announced.
    pub height: u64,
    /// The hash it announced.
    pub hash: Hash,
}

/// The best live peer head of our region that is higher than ours, or as high but
/// different (a fork that fork choice has to look at); ties go to the lowest node id, so the
/// choice is stable. Without one, a bridge of another region whose summary announces a
/// higher head.
pub fn pick_source(view: &MembershipView, our_height: u64, our_hash: &Hash) -> Option<SyncSource> {
    own_region_source(view, our_height, our_hash).or_else(|| {
        view.regions
            .values()
            .filter(|r| r.region != view.self_region && r.live > 0)
            .filter_map(|r| r.head_height.map(|h| (r, h)))
            .filter(|(_, h)| *h > our_height)
            .max_by_key(|(_, h)| *h)
            .and_then(|(r, height)| {
                let peer = r.bridges.iter().find(|b| view.p2p_addr_of(b).is_some())?;
                Some(SyncSource {
                    peer: peer.clone(),
                    height,
                    hash: [0; 32],
                })
            })
    })
}

fn own_region_source(
    view: &MembershipView,
    our_height: u64,
    our_hash: &Hash,
) -> Option<SyncSource> {
    view.members
        .iter()
        .filter(|m| m.live && m.node_id != view.self_id)
        .filter_map(|m| m.head.map(|h| (m, h)))
        .filter(|(_, h)| h.height > our_height || (h.height == our_height && h.hash != *our_hash))
        .max_by(|(a, ha), (b, hb)| ha.height.cmp(&hb.height).then(b.node_id.cmp(&a.node_id)))
        .map(|(m, h)| SyncSource {
            peer: m.node_id.clone(),
            height: h.height,
            hash: h.hash,
        })
}

/// The highest head height live peers and live regions announce (at least `our_height`).
pub fn target_height(view: &MembershipView, our_height: u64) -> u64 {
    let members = view
        .members
        .iter()
        .filter(|m| m.live && m.node_id != view.self_id)
        .filter_map(|m| m.head.map(|h| h.height));
    let regions = view
        .regions
        .values()
        .filter(|r| r.region != view.self_region && r.live > 0)
        .filter_map(|r| r.head_height);
    members.chain(regions).fold(our_height, u64::max)
}

/// Whether a node at `our_height` is far enough behind `target` to count as syncing.
pub fn is_syncing(our_height: u64, target: u64) -> bool {
    target > our_height.saturating_add(SYNC_SLACK)
}

/// Where the next request starts: right after our head, or `back` blocks below it when
/// looking for the fork point (never genesis).
pub fn request_start(our_height: u64, back: u64) -> u64 {
    if back == 0 {
        our_height.saturating_add(1)
    } else {
        our_height.saturating_sub(back).max(1)
    }
}

/// What importing one pulled batch did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Blocks new to this node.
    pub imported: usize,
    /// The first block's parent is unknown (walk back to find the fork point).
    pub orphan_first: bool,
    /// Why the batch was cut short by an invalid block.
    pub invalid: Option<String>,
}

/// A pulled range, decoded, with the signatures of its blocks and their transfers verified
/// on every core, ready for the sequential import.
#[derive(Debug)]
pub struct Prepared {
    /// Blocks received (decodable or not).
    count: usize,
    /// The decodable blocks before the first undecodable one.
    blocks: Vec<Block>,
    /// Why the block after `blocks` does not decode.
    undecodable: Option<String>,
    /// The valid signatures among them.
    verified: Verified,
}

impl Prepared {
    /// Blocks received, decodable or not.
    pub fn count(&self) -> usize {
        self.count
    }
}

/// Decodes pulled blocks up to the first undecodable one and verifies every signature in
/// them in parallel; validation still checks each block in order, trusting only the valid
/// signatures recorded here.
pub fn prepare(encoded: Vec<Vec<u8>>) -> Prepared {
    let count = encoded.len();
    let mut blocks = Vec::with_capacity(count);
    let mut undecodable = None;
    for bytes in &encoded {
        match Block::decode(bytes) {
            Ok(b) => blocks.push(b),
            Err(e) => {
                undecodable = Some(format!("undecodable block: {e}"));
                break;
            }
        }
    }
    let verified = Verified::of_blocks(&blocks);
    Prepared {
        count,
        blocks,
        undecodable,
        verified,
    }
}

/// Decodes and imports pulled blocks in order, stopping at the first that does not import,
/// then flushes once and only then announces the new head.
pub fn import_batch(chain: &ChainRuntime, blocks: Vec<Vec<u8>>) -> Batch {
    import_prepared(chain, prepare(blocks))
}

/// Imports a prepared range in order, stopping at the first block that does not import
/// (an undecodable one included), then flushes once and only then announces the new head.
pub fn import_prepared(chain: &ChainRuntime, prepared: Prepared) -> Batch {
    let Prepared {
        blocks,
        undecodable,
        verified,
        ..
    } = prepared;
    let mut batch = Batch::default();
    let mut all_imported = true;
    for (i, block) in blocks.into_iter().enumerate() {
        let stop = match chain.import_block_verified(block, Source::Synced, &verified) {
            Ok(new) => {
                batch.imported += usize::from(new);
                false
            }
            Err(ImportError::Orphan) => {
                batch.orphan_first = i == 0;
                true
            }
            Err(e) if e.penalise() => {
                batch.invalid = Some(e.to_string());
                true
            }
            Err(e) => {
                debug!(error = %e, "pulled block not imported");
                true
            }
        };
        if stop {
            all_imported = false;
            break;
        }
    }
    if all_imported {
        batch.invalid = undecodable;
    }
    chain.flush_and_announce();
    batch
}

/// [`prepare`] on a blocking thread.
async fn prepare_off_thread(encoded: Vec<Vec<u8>>) -> Result<Prepared, PullError> {
    tokio::task::spawn_blocking(move || prepare(encoded))
        .await
        .map_err(|e| PullError::Failed(format!("verify task: {e}")))
}

/// Why a pull stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullError {
    /// The peer sent an invalid block: penalise it.
    Invalid(String),
    /// The connection, the import task or the fork search failed.
    Failed(String),
}

impl std::fmt::Display for PullError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PullError::Invalid(r) => write!(f, "invalid block: {r}"),
            PullError::Failed(r) => f.write_str(r),
        }
    }
}

/// Whether a progress line is due: far behind, and the first line or [`LOG_EVERY`] since
/// the last one.
pub fn progress_due(height: u64, target: u64, since_last: Option<Duration>) -> bool {
    target.saturating_sub(height) > LOG_GAP && since_last.is_none_or(|d| d >= LOG_EVERY)
}

/// Blocks per second, 0 when no time has passed.
pub fn blocks_per_s(blocks: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        blocks as f64 / secs
    } else {
        0.0
    }
}

/// The progress lines of one pull.
struct Progress {
    started: Instant,
    start_height: u64,
    last: Option<Instant>,
}

impl Progress {
    fn new(height: u64) -> Progress {
        Progress {
            started: Instant::now(),
            start_height: height,
            last: None,
        }
    }

    fn update(&mut self, height: u64, target: u64) {
        if progress_due(height, target, self.last.map(|t| t.elapsed())) {
            let rate = blocks_per_s(
                height.saturating_sub(self.start_height),
                self.started.elapsed(),
            );
            info!(height, target, blocks_per_s = rate.round(), "syncing");
            self.last = Some(Instant::now());
        }
    }

    fn finish(&self, height: u64) {
        if self.last.is_some() {
            let blocks = height.saturating_sub(self.start_height);
            let rate = blocks_per_s(blocks, self.started.elapsed());
            info!(
                height,
                blocks,
                blocks_per_s = rate.round(),
                "sync caught up"
            );
        }
    }
}

/// Pulls blocks over `conn` until the peer has nothing more for us, walking back to the
/// fork point when its chain and ours differ; while one batch is imported the next range
/// is already being fetched. `target` is the height the peer announced. Returns the number
/// of blocks imported.
pub async fn pull_blocks(
    chain: &Arc<ChainRuntime>,
    conn: &mut Conn,
    target: u64,
) -> Result<u64, PullError> {
    let mut progress = Progress::new(chain.head().height);
    let mut imported = 0u64;
    let mut back = 0u64;
    let mut prefetched: Option<(u64, Prepared)> = None;
    loop {
        let ours = chain.head().height;
        progress.update(ours, target.max(ours));
        let from = request_start(ours, back);
        let prepared = match prefetched.take() {
            Some((at, prepared)) if at == from => prepared,
            _ => {
                let blocks = fetch_blocks(conn, from, MAX_BLOCKS_PER_REQUEST)
                    .await
                    .map_err(PullError::Failed)?;
                prepare_off_thread(blocks).await?
            }
        };
        let count = prepared.count();
        if count == 0 {
            break;
        }
        let c = chain.clone();
        let import = tokio::task::spawn_blocking(move || import_prepared(&c, prepared));
        // the next range, fetched and verified while this one imports, assuming it extends
        // our head (verification needs no chain state, so it holds either way)
        let next_from = from.saturating_add(count as u64);
        let ahead = async {
            if count == MAX_BLOCKS_PER_REQUEST as usize {
                Some(
                    match fetch_blocks(conn, next_from, MAX_BLOCKS_PER_REQUEST).await {
                        Ok(next) => prepare_off_thread(next).await,
                        Err(e) => Err(PullError::Failed(e)),
                    },
                )
            } else {
                None
            }
        };
        let (batch, ahead) = tokio::join!(import, ahead);
        let batch = batch.map_err(|e| PullError::Failed(format!("import task: {e}")))?;
        imported += batch.imported as u64;
        if let Some(reason) = batch.invalid {
            return Err(PullError::Invalid(reason));
        }
        if batch.orphan_first {
            back = back.saturating_mul(2).max(16);
            if back > MAX_REORG_DEPTH {
                return Err(PullError::Failed(
                    "no common ancestor within the reorg limit".into(),
                ));
            }
            continue;
        }
        back = 0;
        let height = chain.head().height;
        chain.set_sync(is_syncing(height, target.max(height)), target.max(height));
        match ahead {
            Some(Ok(next)) => prefetched = Some((next_from, next)),
            // a late answer could be taken for the next request's: drop this connection
            Some(Err(e)) => return Err(e),
            None => {}
        }
        if count < MAX_BLOCKS_PER_REQUEST as usize && batch.imported == 0 {
            break;
        }
    }
    progress.finish(chain.head().height);
    Ok(imported)
}

/// Pulls from `source` until its chain is ours or it has nothing more.
async fn pull(
    shared: &Arc<NodeShared>,
    local: &LocalInfo,
    peers: &PeerManager,
    source: &SyncSource,
    addr: String,
) -> Result<u64, PullError> {
    let mut conn = connect(&addr, local)
        .await
        .map_err(|e| PullError::Failed(e.to_string()))?;
    let result = pull_blocks(&shared.chain, &mut conn, source.height).await;
    if let Err(PullError::Invalid(reason)) = &result {
        peers.penalise(&source.peer, reason);
    }
    result
}

/// Compares heads and pulls what is missing until `stop`.
pub async fn run(
    shared: Arc<NodeShared>,
    local: LocalInfo,
    peers: Arc<PeerManager>,
    mut hints: mpsc::Receiver<(NodeId, u64)>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tried: Option<(NodeId, Hash)> = None;
    loop {
        let hint = tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => None,
            h = hints.recv() => h,
            _ = stop.changed() => return,
        };
        let chain = shared.chain.clone();
        let head = chain.head();
        let view = shared.view.borrow().clone();
        let mut target = target_height(&view, head.height);
        let source = match hint {
            Some((peer, height)) => {
                target = target.max(height);
                Some(SyncSource {
                    peer,
                    height,
                    hash: [0; 32],
                })
            }
            None => pick_source(&view, head.height, &head.hash()).filter(|s| {
                // an equal-height fork is looked at once per announced head
                s.height > head.height || tried.as_ref() != Some(&(s.peer.clone(), s.hash))
            }),
        };
        chain.set_sync(is_syncing(head.height, target), target);
        shared.metrics.ready.set(i64::from(shared.ready()));
        let Some(source) = source else {
            continue;
        };
        tried = Some((source.peer.clone(), source.hash));
        let Some(addr) = view.p2p_addr_of(&source.peer) else {
            continue;
        };
        if let Err(e) = pull(&shared, &local, &peers, &source, addr.to_string()).await {
            debug!(peer = %source.peer, error = %e, "sync pull failed");
        }
        let height = chain.head().height;
        let target = target_height(&shared.view.borrow(), height);
        chain.set_sync(is_syncing(height, target), target);
        shared.metrics.ready.set(i64::from(shared.ready()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::membership::keys::Head;
    use crate::membership::{Member, RegionStatus};
    use crate::region::Region;

    fn member(live: bool, head: Option<(u64, u8)>) -> Member {
        Member {
            node_id: Identity::generate().node_id().clone(),
            generation: 1,
            gossip_addr: "127.0.0.1:1".parse().unwrap(),
            region: Region::new("eu").unwrap(),
            node_type: crate::identity::NodeType::Full,
            live,
            ready: true,
            head: head.map(|(height, b)| Head {
                height,
                hash: [b; 32],
            }),
            last_seen_ms: 0,
            bridge: false,
        }
    }

    fn view(members: Vec<Member>) -> MembershipView {
        let mut v = MembershipView::empty(
            Identity::generate().node_id().clone(),
            Region::new("eu").unwrap(),
        );
        v.members = members;
        v
    }

    #[test]
    fn picks_the_highest_live_head_above_ours() {
        let best = member(true, Some((10, 1)));
        let v = view(vec![
            member(true, Some((7, 2))),
            best.clone(),
            member(false, Some((50, 3))),
            member(true, None),
        ]);
        let s = pick_source(&v, 5, &[0; 32]).unwrap();
        assert_eq!(s.peer, best.node_id);
        assert_eq!(s.height, 10);
        assert_eq!(target_height(&v, 5), 10);
        assert_eq!(target_height(&v, 12), 12);
        assert_eq!(pick_source(&v, 10, &[1; 32]), None);
    }

    #[test]
    fn equal_height_with_another_hash_is_a_fork_to_look_at() {
        let v = view(vec![member(true, Some((10, 4)))]);
        assert!(pick_source(&v, 10, &[5; 32]).is_some());
        assert!(pick_source(&v, 10, &[4; 32]).is_none());
        assert!(pick_source(&v, 11, &[5; 32]).is_none());
    }

    #[test]
    fn falls_back_to_a_bridge_of_a_region_that_is_ahead() {
        let mut v = view(vec![member(true, Some((3, 1)))]);
        let bridge = Identity::generate().node_id().clone();
        let na = Region::new("na").unwrap();
        v.regions.insert(
            na.clone(),
            RegionStatus {
                bridges: vec![bridge.clone()],
                bridge_addrs: vec!["127.0.0.1:2".parse().unwrap()],
                head_height: Some(40),
                ..RegionStatus::counted(na, 1, 1)
            },
        );
        let s = pick_source(&v, 5, &[0; 32]).unwrap();
        assert_eq!((s.peer, s.height), (bridge, 40));
        assert_eq!(target_height(&v, 5), 40);
        assert_eq!(pick_source(&v, 40, &[0; 32]), None);
    }

    #[test]
    fn syncing_threshold_edges() {
        assert!(!is_syncing(10, 10));
        assert!(!is_syncing(10, 10 + SYNC_SLACK));
        assert!(is_syncing(10, 11 + SYNC_SLACK));
        assert!(!is_syncing(u64::MAX, u64::MAX));
    }

    #[test]
    fn progress_lines_only_far_behind_first_at_once_then_spaced() {
        assert!(progress_due(0, LOG_GAP + 1, None));
        assert!(!progress_due(0, LOG_GAP, None));
        assert!(!progress_due(10, 5, None));
        assert!(!progress_due(
            0,
            1_000,
            Some(LOG_EVERY - Duration::from_millis(1))
        ));
        assert!(progress_due(0, 1_000, Some(LOG_EVERY)));
    }

    #[test]
    fn rate_is_blocks_over_seconds() {
        assert_eq!(blocks_per_s(500, Duration::from_millis(250)), 2_000.0);
        assert_eq!(blocks_per_s(500, Duration::ZERO), 0.0);
        assert_eq!(blocks_per_s(0, Duration::from_secs(1)), 0.0);
    }

    #[test]
    fn request_start_walks_back_but_not_to_genesis() {
        assert_eq!(request_start(10, 0), 11);
        assert_eq!(request_start(10, 4), 6);
        assert_eq!(request_start(10, 16), 1);
        assert_eq!(request_start(0, 0), 1);
    }

    mod pull {
        use super::*;
        use crate::chain::spec::ChainSpec;
        use crate::clock::{Clock, ManualClock};
        use crate::identity::to_hex;
        use crate::metrics::Metrics;
        use crate::net::handshake::PeerInfo;
        use crate::net::server::{serve, Responder};
        use crate::net::{Message, Seeds};

        struct Serve(Arc<ChainRuntime>);

        impl Responder for Serve {
            fn seeds(&self, _region: &str) -> Result<Seeds, String> {
                Err("no seeds".into())
            }
            fn admit(&self, _peer: &PeerInfo) -> bool {
                true
            }
            fn chain_message(
                &self,
                _peer: &PeerInfo,
                msg: Message,
            ) -> Result<Option<Message>, String> {
                match msg {
                    Message::GetBlocks { from, limit } => {
                        Ok(Some(self.0.blocks_reply(from, limit)))
                    }
                    _ => Ok(None),
                }
            }
        }

        fn runtime(
            dir: &std::path::Path,
            spec: &ChainSpec,
            key: &Identity,
            clock: Arc<ManualClock>,
        ) -> Arc<ChainRuntime> {
            let store = qnet_storage::Store::open(dir).unwrap();
            Arc::new(
                ChainRuntime::open(
                    store,
                    spec.clone(),
                    key,
                    true,
                    Metrics::new().unwrap().chain,
                    clock,
                    tokio::sync::broadcast::channel(16).0,
                )
                .unwrap(),
            )
        }

        fn local(key: &Identity, spec: &ChainSpec) -> LocalInfo {
            LocalInfo {
                identity: key.clone(),
                chain_id: spec.chain_id.clone(),
                genesis: spec.genesis_hash(),
                spec_json: spec.to_json(),
            }
        }

        /// Produces `slots` (each this runtime's own) with the clock inside each slot.
        fn produce(rt: &ChainRuntime, clock: &ManualClock, spec: &ChainSpec, slots: &[u64]) {
            for &slot in slots {
                clock.set(spec.slot_start_ms(slot) + 1);
                assert!(rt.produce(slot).is_some(), "slot {slot}");
            }
        }

        #[test]
        fn a_bad_block_in_a_range_is_rejected_with_its_reason_after_the_good_ones() {
            use crate::chain::block::BlockTemplate;
            use crate::chain::tx::{Address, Transfer};
            let (p1, alice) = (Identity::generate(), Identity::generate());
            let alice_addr = Address::from_public_key(alice.public_key().as_bytes());
            let spec = ChainSpec {
                chain_id: "pull".into(),
                genesis_time_ms: 1_000_000,
                slot_ms: 1_000,
                producers: vec![to_hex(p1.public_key().as_bytes())],
                balances: vec![(alice_addr.to_string(), 1_000)],
            };
            let send = |nonce: u64| {
                Transfer {
                    chain_id: "pull".into(),
                    from: alice.public_key().to_bytes(),
                    to: alice_addr,
                    amount: 1,
                    fee: 1,
                    nonce,
                }
                .sign(alice.signing_key())
            };
            let dir = tempfile::tempdir().unwrap();
            let clock = Arc::new(ManualClock::new(0));
            let source = runtime(&dir.path().join("s"), &spec, &p1, clock.clone());
            for n in 0..3 {
                source.submit_tx(send(n), None).unwrap();
                produce(&source, &clock, &spec, &[n + 1]);
            }
            let block4 = |txs: Vec<_>| {
                let template = BlockTemplate {
                    chain_id: "pull".into(),
                    height: 4,
                    slot: 4,
                    parent_hash: source.head().hash(),
                    timestamp_ms: spec.slot_start_ms(4) + 1,
                };
                Block::produce(template, txs, p1.signing_key())
            };
            let mut forged = send(3);
            forged.signature[0] ^= 1;
            let bad_tx = block4(vec![send(3), forged]);
            let mut bad_sig = block4(vec![send(3)]);
            bad_sig.signature[0] ^= 1;
            let good = block4(vec![send(3)]);
            clock.set(spec.slot_start_ms(9));

            let metrics = Metrics::new().unwrap().chain;
            let dest = Arc::new(
                ChainRuntime::open(
                    qnet_storage::Store::open(&dir.path().join("d")).unwrap(),
                    spec.clone(),
                    &Identity::generate(),
                    false,
                    metrics.clone(),
                    clock.clone(),
                    tokio::sync::broadcast::channel(16).0,
                )
                .unwrap(),
            );
            let rejected =
                |reason: &str| metrics.blocks_rejected.with_label_values(&[reason]).get();
            let mut range = source.encoded_blocks_from(1, 10, usize::MAX).unwrap();
            assert_eq!(range.len(), 3);
            range.push(bad_tx.encode());
            range.push(good.encode());
            let batch = import_batch(&dest, range);
            assert_eq!(batch.imported, 3);
            assert_eq!(
                batch.invalid.as_deref(),
                Some("invalid block: transaction 1: bad signature")
            );
            assert_eq!(dest.head(), source.head());
            assert_eq!(rejected("bad_tx"), 1);

            let batch = import_batch(&dest, vec![bad_sig.encode(), good.encode()]);
            assert_eq!(batch.imported, 0);
            assert_eq!(
                batch.invalid.as_deref(),
                Some("invalid block: bad block signature")
            );
            assert_eq!(rejected("bad_signature"), 1);

            let batch = import_batch(&dest, vec![good.encode(), vec![1, 2, 3]]);
            assert_eq!(batch.imported, 1);
            assert!(batch
                .invalid
                .is_some_and(|r| r.starts_with("undecodable block")));
            assert_eq!(dest.head().height, 4);
            assert_eq!(metrics.blocks_imported.get(), 4);
            assert_eq!(import_batch(&dest, Vec::new()), Batch::default());
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn pulls_across_pipelined_batches_and_reorgs_off_a_short_fork() {
            let (p1, p2) = (Identity::generate(), Identity::generate());
            let spec = ChainSpec {
                chain_id: "pull".into(),
                genesis_time_ms: 1_000_000,
                slot_ms: 1_000,
                producers: vec![
                    to_hex(p1.public_key().as_bytes()),
                    to_hex(p2.public_key().as_bytes()),
                ],
                balances: vec![],
            };
            let dir = tempfile::tempdir().unwrap();
            // the source: 1,100 blocks in p1's (even) slots, more than two full requests
            let source_clock = Arc::new(ManualClock::new(0));
            let source = runtime(&dir.path().join("s"), &spec, &p1, source_clock.clone());
            let even: Vec<u64> = (1..=1_100).map(|i| 2 * i).collect();
            produce(&source, &source_clock, &spec, &even);
            // the follower built 3 blocks of its own in p2's (odd) slots: a shorter fork
            let clock = Arc::new(ManualClock::new(0));
            let dest = runtime(&dir.path().join("d"), &spec, &p2, clock.clone());
            produce(&dest, &clock, &spec, &[1, 3, 5]);
            assert_eq!(dest.head().height, 3);
            clock.set(source_clock.now_ms());

            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let (stop_tx, stop_rx) = watch::channel(false);
            let server = tokio::spawn(serve(
                listener,
                local(&p1, &spec),
                Arc::new(Serve(source.clone())),
                Metrics::new().unwrap(),
                stop_rx,
            ));
            let mut conn = connect(&addr, &local(&p2, &spec)).await.unwrap();
            let imported = pull_blocks(&dest, &mut conn, 1_100).await.unwrap();
            assert_eq!(imported, 1_100);
            assert_eq!(dest.head(), source.head());
            for h in [1, 512, 513, 1_024, 1_025, 1_100] {
                assert_eq!(
                    dest.block_by_height(h).unwrap().map(|b| b.hash()),
                    source.block_by_height(h).unwrap().map(|b| b.hash()),
                    "height {h}"
                );
            }
            assert!(!dest.syncing());
            // nothing more to pull: a second pull imports nothing and stops
            assert_eq!(pull_blocks(&dest, &mut conn, 1_100).await, Ok(0));
            let _ = stop_tx.send(true);
            let _ = server.await;
        }
    }
}
