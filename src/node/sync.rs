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
use crate::chain::store::MAX_REORG_DEPTH;
use crate::chain::Hash;
use crate::identity::NodeId;
use crate::membership::MembershipView;
use crate::net::message::MAX_BLOCKS_PER_REQUEST;
use crate::net::server::{connect, fetch_blocks};
use crate::net::LocalInfo;

/// Behind by more than this many blocks, the node counts as syncing (not ready, not producing).
pub const SYNC_SLACK: u64 = 3;
/// Behind by more than this, progress lines are logged.
const LOG_GAP: u64 = 64;
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

/// Decodes and imports pulled blocks in order, stopping at the first that does not import,
/// then flushes once.
pub fn import_batch(chain: &ChainRuntime, blocks: Vec<Vec<u8>>) -> Batch {
    let mut batch = Batch::default();
    for (i, bytes) in blocks.into_iter().enumerate() {
        let block = match Block::decode(&bytes) {
            Ok(b) => b,
            Err(e) => {
                batch.invalid = Some(format!("undecodable block: {e}"));
                break;
            }
        };
        match chain.import_block(block, Source::Synced) {
            Ok(new) => batch.imported += usize::from(new),
            Err(ImportError::Orphan) => {
                batch.orphan_first = i == 0;
                break;
            }
            Err(e) if e.penalise() => {
                batch.invalid = Some(e.to_string());
                break;
            }
            Err(e) => {
                debug!(error = %e, "pulled block not imported");
                break;
            }
        }
    }
    chain.flush();
    batch
}

/// Pulls from `source` until its chain is ours or it has nothing more.
async fn pull(
    shared: &Arc<NodeShared>,
    local: &LocalInfo,
    peers: &PeerManager,
    source: &SyncSource,
    addr: String,
) -> Result<(), String> {
    let chain = shared.chain.clone();
    let mut conn = connect(&addr, local).await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let start_height = chain.head().height;
    let mut last_log = Instant::now();
    let mut back = 0u64;
    loop {
        let ours = chain.head().height;
        let from = request_start(ours, back);
        let blocks = fetch_blocks(&mut conn, from, MAX_BLOCKS_PER_REQUEST).await?;
        let count = blocks.len();
        if count == 0 {
            return Ok(());
        }
        let c = chain.clone();
        let batch = tokio::task::spawn_blocking(move || import_batch(&c, blocks))
            .await
            .map_err(|e| format!("import task: {e}"))?;
        if let Some(reason) = batch.invalid {
            peers.penalise(&source.peer, &reason);
            return Err(reason);
        }
        if batch.orphan_first {
            back = back.saturating_mul(2).max(16);
            if back > MAX_REORG_DEPTH {
                return Err("no common ancestor within the reorg limit".into());
            }
            continue;
        }
        back = 0;
        let height = chain.head().height;
        let target = source.height.max(height);
        chain.set_sync(is_syncing(height, target), target);
        if target.saturating_sub(height) > LOG_GAP && last_log.elapsed() >= Duration::from_secs(2) {
            let rate = height.saturating_sub(start_height) as f64
                / started.elapsed().as_secs_f64().max(0.001);
            info!(height, target, blocks_per_s = rate.round(), "syncing");
            last_log = Instant::now();
        }
        if count < MAX_BLOCKS_PER_REQUEST as usize && batch.imported == 0 {
            return Ok(());
        }
    }
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
                region: na,
                known: 1,
                live: 1,
                missing: false,
                bridges: vec![bridge.clone()],
                bridge_addrs: vec!["127.0.0.1:2".parse().unwrap()],
                seeds: vec![],
                bridge_seeds: vec![],
                head_height: Some(40),
                last_live_ms: 0,
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
    fn request_start_walks_back_but_not_to_genesis() {
        assert_eq!(request_start(10, 0), 11);
        assert_eq!(request_start(10, 4), 6);
        assert_eq!(request_start(10, 16), 1);
        assert_eq!(request_start(0, 0), 1);
    }
}
