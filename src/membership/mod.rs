//! Membership: the two-level chitchat design of DESIGN §3. Every super/full node joins its
//! region's cluster (`<chain_id>/<region>`); up to B bridges per region also join
//! `<chain_id>/bridges`, publish their region's summary there and copy the other regions'
//! summaries into their regional cluster. [`Membership`] is the only owner of chitchat; the
//! rest of the node reads a [`MembershipView`] from a watch channel.
//!
//! Choices that keep the bridge cluster small and quiet (measured in SIMULATION.md):
//! - the election is the deterministic one of DESIGN §3, but a node joins the bridge cluster
//!   only after being elected in [`bridge_role::BRIDGE_SETTLE_ROUNDS`] rounds in a row (a
//!   starting node sees too few members and would elect itself for a moment, leaving a dead
//!   member in every bridge's digest for minutes); a replacement bridge therefore joins a
//!   few rounds after the failure detector declares the old one dead;
//! - a summary (own or copied) is republished only when its content changes; a summary
//!   whose only change is a higher head is republished at most every
//!   [`keys::SUMMARY_HEAD_EVERY_MS`], so the head a summary announces may lag by that much;
//! - a node's own head key follows [`head_pace`]: a head that only climbs is written at most
//!   every [`head_pace::HEAD_EVERY_MS`] (2 s), so the heads other members see may lag by
//!   that much plus a round; a switch to another branch is written at once;
//! - the failure detector keeps 100 heartbeat intervals per member, not chitchat's 1,000;
//! - the bridge cluster forgets dead members after [`BRIDGE_GRACE`] (30 s), not the
//!   configured grace period.
//!
//! Choices that make a lost region known fast without false deaths (SIMULATION.md, issue 7):
//! - the regional detector counts the heartbeats that reach it within half a gossip interval
//!   as one and never takes its mean interval below the gossip interval (patches of
//!   chitchat's detector, `detector::detector_config`), so phi counts silent seconds; the
//!   threshold is 6 there.
//!   Counted one by one, with phi 8, the mean was 0.33–0.6 s and a cell's detector tolerated
//!   3 to 5 silent rounds depending on how bursty gossip had been (SIMULATION.md, "False
//!   deaths at 20 % loss: the detector's mean"). The bridge cluster keeps per-heartbeat
//!   intervals and phi 5 at its 0.5 s interval, since a region counts as lost when all its
//!   bridges die there;
//! - the failure detector ignores heartbeat intervals longer than phi × the gossip interval
//!   (`detector::detector_config`);
//! - a bridge counts a bridge-cluster member dead only once it has been silent 2 bridge
//!   intervals longer than the freshest member of another region (or 10 intervals in all):
//!   a bridge that hears nothing for a while under loss sees every member fall silent at
//!   once and would otherwise take several regions for lost ([`hearing`]); the other way
//!   round, a region all of whose bridge-cluster members have been silent 4 intervals
//!   longer than the freshest member of another region counts lost even while young
//!   detector windows hold some of them live ([`hearing::Hearing::region_cap`]);
//! - of the copies of one region a node's cell bridges publish, one saying it has no live
//!   member counts [`keys::MISSING_LEAD_MS`] newer than its stamp, so a cell follows its
//!   first bridge to see a region lost;
//! - besides its tick, the worker runs a round when woken: a `region:` copy gossiped into
//!   the regional cluster disagrees with the view on whether that region is missing, or the
//!   bridge cluster's live set changed; [`wake::WakeLimiter`] allows one woken round per
//!   fifth of the gossip interval, so a burst of changes costs a few rounds;
//! - when a round changes the regions the view shows missing, the node gossips at once with
//!   the two live members of its region that follow it in node-id order and four random
//!   others; each node does so once per change, so the news cascades through the region
//!   within a few network delays, not gossip rounds, and the ring leaves nobody out.

pub mod admission;
pub mod bridge_role;
pub mod card;
pub mod cell;
pub mod detector;
pub mod digest;
pub mod head_pace;
pub mod hearing;
pub mod keys;
pub mod liveness;
pub mod store;
pub mod transport;
pub mod view;
pub mod wake;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chitchat::{
    spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, NodeState,
};
use detector::{detector_config, Cluster};
use rand::SeedableRng;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

pub use keys::{Head, RegionSummary};
pub use store::MembershipStore;
pub use view::{Member, MembershipView, PeerRecord, RegionStatus};

use crate::clock::SharedClock;
use crate::config::MembershipConfig;
use crate::identity::{Identity, NodeType};
use crate::metrics::{Metrics, CLUSTER_BRIDGE, CLUSTER_REGIONAL};
use crate::region::Region;
use admission::{GuardHandle, GuardView};
use card::MemberCard;
use transport::{GossipCounters, GuardedTransport, TransportFactory};
use view::{HeardSummary, OwnRegionInput, RegionMemory};

/// How often last-seen times are written when the set of members does not change (a
/// change is written at once).
const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// A woken round runs at most once per gossip interval divided by this (200 ms at 1 s).
const WAKE_GAP_DIVISOR: u32 = 5;
/// Members a node gossips with at once, picked at random, when the regions its view shows
/// missing change.
const PUSH_FANOUT: usize = 4;
/// Members that follow the node in node-id order it also gossips with then, so that nobody
/// is left out of the cascade ([`wake::push_targets`]).
const PUSH_SUCCESSORS: usize = 2;
/// Longest dead-node grace period of the bridge cluster. Its members come and go with the
/// bridge role (a node that bridged for a moment at a cold start, a replaced bridge), and
/// chitchat keeps a dead member in every digest for half the grace period: at 10,000 nodes
/// in 72 cells, 265 such hosts beside 216 bridges made the bridge cluster's SYN 8.7 KB and a
/// bridge send 149 KB/s (SIMULATION.md). A region whose bridges all died is remembered as
/// missing by `RegionMemory`, not by chitchat, so forgetting dead bridges sooner loses
/// nothing; chitchat re-admits a collected member that gossips again.
const BRIDGE_GRACE: Duration = Duration::from_secs(30);
/// Most bridges warned about for another cell count (the rest are ignored silently).
const MAX_CELL_COUNT_WARNINGS: usize = 64;

/// Most card verifications cached.
const MAX_CACHED_CARDS: usize = 20_000;

/// The bridge-cluster gossip address of a node: its advertised address, port + 1.
pub fn bridge_gossip_addr(advertise: SocketAddr) -> SocketAddr {
    SocketAddr::new(advertise.ip(), advertise.port().wrapping_add(1))
}

/// What [`Membership::start`] needs.
pub struct MembershipParams {
    /// This node's identity.
    pub identity: Identity,
    /// Region.
    pub region: Region,
    /// Node type (super or full; light nodes do not gossip).
    pub node_type: NodeType,
    /// Chain id; part of every cluster id.
    pub chain_id: String,
    /// Bind address of the regional cluster (UDP).
    pub bind_addr: SocketAddr,
    /// Address other nodes reach this one at.
    pub advertise_addr: SocketAddr,
    /// Gossip settings.
    pub config: MembershipConfig,
    /// Retention window of known members and regions.
    pub retention: Duration,
    /// Regional gossip seeds (from bootstrap peers and the peer store).
    pub region_seeds: Vec<SocketAddr>,
    /// Bridge-cluster seeds.
    pub bridge_seeds: Vec<SocketAddr>,
    /// Whether other members are expected (bootstrap peers or a peer store were given);
    /// when not, the node counts as joined on its own, as the first node of a network.
    pub expect_peers: bool,
    /// Where peers and regions are remembered.
    pub store: Arc<dyn MembershipStore>,
    /// Metrics.
    pub metrics: Metrics,
    /// Clock.
    pub clock: SharedClock,
    /// The network under gossip ([`transport::udp`] in a node).
    pub transport: TransportFactory,
}

/// Errors starting membership.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The gossip socket could not be opened.
    #[error("cannot open gossip socket on {addr}/udp: {reason}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// A running membership: owns the chitchat clusters and publishes the view.
pub struct Membership {
    view_rx: watch::Receiver<Arc<MembershipView>>,
    joined_rx: watch::Receiver<bool>,
    shared: Arc<Shared>,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    stop_tx: watch::Sender<bool>,
}

struct Shared {
    regional: ChitchatHandle,
    bridge: tokio::sync::Mutex<Option<ChitchatHandle>>,
    gossip_interval: Duration,
    /// Bridge-cluster seeds learned after start (see [`Membership::add_seeds`]).
    late_bridge_seeds: std::sync::Mutex<Vec<SocketAddr>>,
    /// When the node's head is written to gossip; held across the write, so heads reach
    /// gossip in the order the pace released them.
    head_pace: tokio::sync::Mutex<head_pace::HeadPace>,
    clock: SharedClock,
}

impl Shared {
    /// Offers the node's new head (`Some`) or checks for a held-back one (`None`) and writes
    /// what the pace releases as this node's head key.
    async fn pace_head(&self, offered: Option<Head>) {
        let mut pace = self.head_pace.lock().await;
        let now = self.clock.now_ms();
        let release = match offered {
            Some(head) => pace.offer(head, now),
            None => pace.due(now),
        };
        if let Some(head) = release {
            self.regional
                .with_chitchat(|c| c.self_node_state().set(keys::KEY_HEAD, head.encode()))
                .await;
        }
    }
}

impl Membership {
    /// Joins the regional cluster and starts the membership task.
    pub async fn start(params: MembershipParams) -> Result<Self, MembershipError> {
        let now = params.clock.now_ms();
        let generation = params.store.next_generation(now);
        let id = card::chitchat_id(&params.identity, generation, params.advertise_addr);
        let card_value = card::issue(&params.identity, &id, &params.region, params.node_type);
        let cells = params.config.cells_per_region;
        let cell = cell::cell_of(params.identity.node_id().as_str(), cells);
        let cluster_id = cell::cluster_id(&params.chain_id, &params.region, cell, cells);
        let regional_guard = GuardHandle::default();
        let regional = spawn_cluster(
            id.clone(),
            cluster_id,
            params.bind_addr,
            &params.region_seeds,
            params.config.gossip_interval,
            detector_config(
                Cluster::Regional,
                params.config.gossip_interval,
                params.config.dead_node_grace_period,
            ),
            vec![
                (keys::KEY_CARD.into(), card_value),
                (keys::KEY_READY.into(), "1".into()),
            ],
            GuardedTransport::new(
                (params.transport)(),
                GossipCounters::new(&params.metrics, CLUSTER_REGIONAL),
                id.clone(),
                regional_guard.clone(),
            ),
        )
        .await?;
        info!(
            node_id = %params.identity.node_id(),
            region = %params.region,
            cell,
            generation,
            seeds = params.region_seeds.len(),
            "joined regional cluster"
        );
        let self_view =
            MembershipView::empty(params.identity.node_id().clone(), params.region.clone());
        let (view_tx, view_rx) = watch::channel(Arc::new(self_view));
        let (joined_tx, joined_rx) = watch::channel(false);
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            regional,
            bridge: tokio::sync::Mutex::new(None),
            gossip_interval: params.config.gossip_interval,
            late_bridge_seeds: std::sync::Mutex::new(Vec::new()),
            head_pace: tokio::sync::Mutex::new(head_pace::HeadPace::default()),
            clock: params.clock.clone(),
        });
        // remembered regions only seed the bridge cluster (see node::seeds); they are not
        // restored as missing, so a restarted node never raises a stale failover
        let memory = RegionMemory::default();
        let bridge_hearing =
            hearing::Hearing::for_interval(bridge_interval(params.config.gossip_interval));
        let worker = Worker {
            cell,
            lone_start: !params.expect_peers,
            records: params
                .store
                .load_peers()
                .into_iter()
                .map(|r| (r.node_id.clone(), r))
                .collect(),
            params,
            shared: shared.clone(),
            cards: HashMap::new(),
            memory,
            view_tx,
            joined_tx,
            last_persist_ms: 0,
            persisted_ids: HashSet::new(),
            self_id: id,
            regional_liveness: liveness::LivenessFilter::default(),
            bridge_liveness: liveness::LivenessFilter::default(),
            bridge_hearing,
            bridge_recheck_in: None,
            regional_guard,
            bridge_guard: GuardHandle::default(),
            bridge_role: bridge_role::BridgeRole::default(),
            cell_count_warned: HashSet::new(),
        };
        let task = tokio::spawn(worker.run(stop_rx));
        Ok(Membership {
            view_rx,
            joined_rx,
            shared,
            task: tokio::sync::Mutex::new(Some(task)),
            stop_tx,
        })
    }

    /// The current view.
    pub fn view(&self) -> Arc<MembershipView> {
        self.view_rx.borrow().clone()
    }

    /// A receiver that changes whenever the view is rebuilt with a different content.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MembershipView>> {
        self.view_rx.clone()
    }

    /// Whether the node has joined (seen another member, or started alone).
    pub fn joined(&self) -> bool {
        *self.joined_rx.borrow()
    }

    /// A receiver of the joined flag.
    pub fn joined_receiver(&self) -> watch::Receiver<bool> {
        self.joined_rx.clone()
    }

    /// Seeds learned after start (a bootstrap peer that answered late): gossips with the
    /// regional ones at once and uses the bridge ones when (or while) this node bridges.
    pub async fn add_seeds(&self, region_seeds: &[SocketAddr], bridge_seeds: &[SocketAddr]) {
        for addr in region_seeds {
            let _ = self.shared.regional.gossip(*addr);
        }
        if let Some(bridge) = self.shared.bridge.lock().await.as_ref() {
            for addr in bridge_seeds {
                let _ = bridge.gossip(*addr);
            }
        }
        self.shared
            .late_bridge_seeds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bridge_seeds);
    }

    /// For each member of the bridge cluster this node's failure detector tracks (none when it
    /// does not bridge): its node id and the silence after which the detector declares it
    /// dead (phi threshold × the mean heartbeat interval). A diagnostic: how long a region
    /// cut takes to show here is the largest of these over the region's bridges.
    #[cfg(feature = "testing")]
    pub async fn bridge_detection_timeouts(&self) -> Vec<(String, Duration)> {
        let guard = self.shared.bridge.lock().await;
        let Some(bridge) = guard.as_ref() else {
            return Vec::new();
        };
        bridge
            .with_chitchat(|c| {
                c.node_states()
                    .keys()
                    .filter_map(|id| {
                        let t = c.failure_detection_timeout(id)?;
                        Some((id.node_id.to_string(), t))
                    })
                    .collect()
            })
            .await
    }

    /// How many other members of the bridge cluster its failure detector counts dead now
    /// (0 when this node is not a bridge); a diagnostic of the simulator.
    pub async fn bridge_detector_dead(&self) -> usize {
        let guard = self.shared.bridge.lock().await;
        let Some(bridge) = guard.as_ref() else {
            return 0;
        };
        bridge
            .with_chitchat(|c| {
                let live: HashSet<&ChitchatId> = c.live_nodes().collect();
                c.node_states()
                    .keys()
                    .filter(|id| !live.contains(id))
                    .count()
            })
            .await
    }

    /// Announces this node's chain head in its regional cluster, at the pace of
    /// [`head_pace`]: a held-back head goes out at a later membership round.
    pub async fn set_head(&self, head: Head) {
        self.shared.pace_head(Some(head)).await;
    }

    /// Leaves politely: marks the node not ready, waits two gossip intervals so peers learn
    /// it, then stops gossiping.
    pub async fn leave(&self) {
        let _ = self.stop_tx.send(true);
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
        self.shared
            .regional
            .with_chitchat(|c| c.self_node_state().set(keys::KEY_READY, "0"))
            .await;
        if let Some(bridge) = self.shared.bridge.lock().await.as_ref() {
            bridge
                .with_chitchat(|c| c.self_node_state().set(keys::KEY_READY, "0"))
                .await;
        }
        tokio::time::sleep(self.shared.gossip_interval * 2).await;
        if let Some(bridge) = self.shared.bridge.lock().await.take() {
            let _ = bridge.shutdown().await;
        }
        let _ = self.shared.regional.initiate_shutdown();
        info!("left the cluster");
    }
}

#[allow(clippy::too_many_arguments)]
async fn spawn_cluster(
    id: ChitchatId,
    cluster_id: String,
    bind_addr: SocketAddr,
    seeds: &[SocketAddr],
    gossip_interval: Duration,
    detector: FailureDetectorConfig,
    initial: Vec<(String, String)>,
    transport: GuardedTransport,
) -> Result<ChitchatHandle, MembershipError> {
    let config = ChitchatConfig {
        chitchat_id: id.clone(),
        cluster_id,
        gossip_interval,
        listen_addr: bind_addr,
        seed_nodes: seeds
            .iter()
            .filter(|s| **s != id.gossip_advertise_addr)
            .map(|s| s.to_string())
            .collect(),
        marked_for_deletion_grace_period: detector.dead_node_grace_period,
        failure_detector_config: detector,
        catchup_callback: None,
        extra_liveness_predicate: None,
        protocol_version: chitchat::ProtocolVersion::V1,
    };
    spawn_chitchat(config, initial, &transport)
        .await
        .map_err(|e| MembershipError::Bind {
            addr: bind_addr,
            reason: format!("{e:#}").to_lowercase(),
        })
}

/// The bridge cluster's gossip interval: twice as often as the regional clusters.
fn bridge_interval(gossip_interval: Duration) -> Duration {
    (gossip_interval / 2).max(Duration::from_millis(50))
}

/// Shared access to one chitchat cluster's state.
type ClusterRef = Arc<tokio::sync::Mutex<chitchat::Chitchat>>;

/// A member observed in a cluster snapshot, with its verified card.
struct Observed {
    id: ChitchatId,
    card: MemberCard,
    live: bool,
    ready: bool,
    head: Option<Head>,
    kv: Vec<(String, String)>,
}

struct Worker {
    params: MembershipParams,
    /// This node's gossip cell in its region (`cell`).
    cell: u16,
    /// Bridges already warned about for another cell count.
    cell_count_warned: HashSet<String>,
    shared: Arc<Shared>,
    cards: HashMap<(ChitchatId, String), Option<MemberCard>>,
    memory: RegionMemory,
    records: BTreeMap<crate::identity::NodeId, PeerRecord>,
    view_tx: watch::Sender<Arc<MembershipView>>,
    joined_tx: watch::Sender<bool>,
    last_persist_ms: u64,
    persisted_ids: HashSet<crate::identity::NodeId>,
    lone_start: bool,
    self_id: ChitchatId,
    regional_liveness: liveness::LivenessFilter,
    bridge_liveness: liveness::LivenessFilter,
    /// Confirms bridge-cluster deaths against what this node hears of other regions.
    bridge_hearing: hearing::Hearing,
    /// When a death held back by `bridge_hearing` is due to be confirmed.
    bridge_recheck_in: Option<Duration>,
    /// What the regional cluster's transport guard admits against.
    regional_guard: GuardHandle,
    /// What the bridge cluster's transport guard admits against.
    bridge_guard: GuardHandle,
    bridge_role: bridge_role::BridgeRole,
}

impl Worker {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let interval = self.params.config.gossip_interval;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let woken = Arc::new(tokio::sync::Notify::new());
        // a copied region summary that disagrees with the view on whether its region is
        // missing wakes the worker (the listener lives as long as the handle)
        let _copies = {
            let view_rx = self.view_tx.subscribe();
            let self_id = self.self_id.clone();
            let woken = woken.clone();
            let regional = self.shared.regional.chitchat();
            let c = regional.lock().await;
            c.subscribe_event(keys::REGION_PREFIX, move |e| {
                if *e.node != self_id && wake::copy_disagrees(&view_rx.borrow(), e.key, e.value) {
                    woken.notify_one();
                }
            })
        };
        let mut limiter = wake::WakeLimiter::new((interval / WAKE_GAP_DIVISOR).as_millis() as u64);
        let mut bridge_live: Option<wake::BridgeLiveWatch> = None;
        let mut rng = rand::rngs::StdRng::from_entropy();
        loop {
            let due = limiter.due_in(self.params.clock.now_ms());
            let bridge_changed = async {
                match bridge_live.as_mut() {
                    Some(w) => w.changed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tick.tick() => {}
                _ = async {
                    match due {
                        Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                        None => std::future::pending().await,
                    }
                } => {}
                _ = woken.notified() => {
                    limiter.request();
                    continue;
                }
                changed = bridge_changed => {
                    match changed {
                        Some(true) => limiter.request(),
                        Some(false) => {}
                        None => bridge_live = None,
                    }
                    continue;
                }
                _ = stop.changed() => break,
            }
            let missing_before = self.view_tx.borrow().missing_regions();
            self.round().await;
            limiter.ran(self.params.clock.now_ms());
            if let Some(wait) = self.bridge_recheck_in.take() {
                // a bridge-cluster death held back for want of hearing comes due then
                // (rounded up: a round a millisecond early would find it not yet due)
                let wait_ms = (wait.as_millis() as u64).saturating_add(1);
                limiter.request_after(wait_ms, self.params.clock.now_ms());
            }
            let view = self.view_tx.borrow().clone();
            if view.missing_regions() != missing_before {
                // tell a few members at once instead of waiting for their gossip rounds;
                // each node does this once per change of its view, so it cascades
                for addr in wake::push_targets(&view, PUSH_SUCCESSORS, PUSH_FANOUT, &mut rng) {
                    let _ = self.shared.regional.gossip(addr);
                }
            }
            let bridge = self
                .shared
                .bridge
                .lock()
                .await
                .as_ref()
                .map(|h| h.chitchat());
            match bridge {
                None => bridge_live = None,
                Some(c) if bridge_live.is_none() => {
                    bridge_live = Some(wake::BridgeLiveWatch::new(
                        c.lock().await.live_nodes_watcher(),
                    ));
                }
                Some(_) => {}
            }
        }
        self.persist(self.params.clock.now_ms(), true);
    }

    /// Reads a cluster and returns its members whose cards verify; publishes what the
    /// cluster's transport guard admits digests against.
    /// In the bridge cluster a death is also weighed against the node's hearing of the other
    /// regions ([`hearing`]).
    async fn observe(&mut self, cluster: &ClusterRef, bridge: bool) -> Vec<Observed> {
        let (states, live, silences) = {
            let c = cluster.lock().await;
            let live: HashSet<ChitchatId> = c.live_nodes().cloned().collect();
            let states: Vec<NodeState> = c.node_states().values().cloned().collect();
            let silences: Vec<Option<Duration>> = if bridge {
                states
                    .iter()
                    .map(|s| c.heartbeat_silence(s.chitchat_id()))
                    .collect()
            } else {
                Vec::new()
            };
            (states, live, silences)
        };
        let known: HashSet<ChitchatId> = states.iter().map(|s| s.chitchat_id().clone()).collect();
        if self.cards.len() > MAX_CACHED_CARDS {
            self.cards.clear();
        }
        let mut out = Vec::with_capacity(states.len());
        let mut heard: Vec<Option<Duration>> = Vec::with_capacity(silences.len());
        for (i, state) in states.into_iter().enumerate() {
            let id = state.chitchat_id().clone();
            let Some(card_value) = state.get(keys::KEY_CARD) else {
                continue;
            };
            let key = (id.clone(), card_value.to_string());
            let card = self
                .cards
                .entry(key)
                .or_insert_with(|| card::verify_card(&id, card_value))
                .clone();
            let Some(card) = card else {
                debug!(node = ?id, "ignoring member with an invalid card");
                continue;
            };
            let filter = if bridge {
                &mut self.bridge_liveness
            } else {
                &mut self.regional_liveness
            };
            let heartbeat = u64::from(state.heartbeat());
            if bridge {
                heard.push(silences.get(i).copied().flatten());
            }
            out.push(Observed {
                live: filter.live(&id, live.contains(&id), heartbeat),
                ready: state.get(keys::KEY_READY) != Some("0"),
                head: state.get(keys::KEY_HEAD).and_then(Head::decode),
                kv: state
                    .key_values()
                    .filter(|(k, _)| k.starts_with(keys::REGION_PREFIX) || *k == keys::KEY_SUMMARY)
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                id,
                card,
            });
        }
        if bridge {
            self.judge_bridge_deaths(&mut out, &heard);
        }
        let guard = if bridge {
            &self.bridge_guard
        } else {
            &self.regional_guard
        };
        guard.publish(GuardView {
            known,
            trusted: out
                .iter()
                .map(|o| admission::canonical(o.id.gossip_advertise_addr))
                .collect(),
        });
        out
    }

    /// Holds back the deaths of bridge-cluster members `observed` (with their heartbeat
    /// silences) that this node cannot tell from its own deafness, and notes when to look
    /// again.
    fn judge_bridge_deaths(&mut self, observed: &mut [Observed], silences: &[Option<Duration>]) {
        let self_id = self.bridge_self_id();
        let others: Vec<usize> = (0..observed.len())
            .filter(|&i| observed[i].id != self_id)
            .collect();
        let sightings: Vec<hearing::Sighting<'_>> = others
            .iter()
            .map(|&i| hearing::Sighting {
                id: &observed[i].id,
                region: observed[i].card.region.as_str(),
                live: observed[i].live,
                silence: silences.get(i).copied().flatten(),
            })
            .collect();
        let verdicts = self.bridge_hearing.judge(&sightings);
        drop(sightings);
        for (&i, live) in others.iter().zip(verdicts.live) {
            observed[i].live = live;
        }
        self.bridge_recheck_in = verdicts.recheck_in;
    }

    async fn round(&mut self) {
        self.shared.pace_head(None).await;
        let now = self.params.clock.now_ms();
        let region = self.params.region.clone();
        let regional = self.shared.regional.chitchat();
        let observed = self.observe(&regional, false).await;
        let mut members: Vec<Member> = Vec::new();
        let mut copies: Vec<HeardSummary> = Vec::new();
        for o in &observed {
            if !self.in_own_cell(&o.card.region, &o.id) {
                continue;
            }
            let node_id = crate::identity::NodeId::parse(&o.id.node_id);
            let Some(node_id) = node_id else { continue };
            let last_seen_ms = if o.live {
                now
            } else {
                self.records.get(&node_id).map_or(0, |r| r.last_seen_ms)
            };
            members.push(Member {
                node_id,
                generation: o.id.generation_id,
                gossip_addr: o.id.gossip_advertise_addr,
                region: o.card.region.clone(),
                node_type: o.card.node_type,
                live: o.live,
                ready: o.ready,
                head: o.head,
                last_seen_ms,
                bridge: false,
            });
        }
        let mut members = view::latest_generations(members);
        let bridges = view::elect_bridges(&members, self.params.config.bridges_per_region);
        for m in &mut members {
            m.bridge = bridges.contains(&m.node_id);
        }
        for m in members.iter().filter(|m| m.live) {
            self.records.insert(
                m.node_id.clone(),
                PeerRecord {
                    node_id: m.node_id.clone(),
                    region: m.region.clone(),
                    node_type: m.node_type,
                    gossip_addr: m.gossip_addr,
                    last_seen_ms: now,
                },
            );
        }
        let records: Vec<PeerRecord> = self.records.values().cloned().collect();
        let own = view::own_region_status(OwnRegionInput {
            region: &region,
            members: &members,
            records: &records,
            now_ms: now,
            retention_ms: self.params.retention.as_millis() as u64,
            bridge_addr: &|m: &Member| bridge_gossip_addr(m.gossip_addr),
        });
        let self_node_id = self.params.identity.node_id().clone();
        let is_bridge = self.bridge_role.update(
            bridges.contains(&self_node_id),
            bridge_role::BRIDGE_SETTLE_ROUNDS,
        );
        let mut bridge_peers_live = 0;
        if is_bridge {
            if let Some(cluster) = self.ensure_bridge(&own).await {
                {
                    let mut c = cluster.lock().await;
                    let state = c.self_node_state();
                    let prev = state.get(keys::KEY_SUMMARY).and_then(RegionSummary::decode);
                    let summary = keys::restamp(
                        prev.as_ref(),
                        RegionSummary {
                            cell: self.cell,
                            cells: self.split_cells(),
                            ..own.to_summary(now)
                        },
                        now,
                        keys::SUMMARY_HEAD_EVERY_MS,
                    );
                    state.set(keys::KEY_SUMMARY, summary.encode());
                }
                let known_addrs: HashSet<SocketAddr> =
                    members.iter().map(|m| m.gossip_addr).collect();
                for o in self.observe(&cluster, true).await {
                    let summary = published_summary(&o.kv);
                    let fits = summary.as_ref().map(|s| {
                        cell::check_cell_summary(
                            s,
                            &o.card.region,
                            &o.id.node_id,
                            self.params.config.cells_per_region,
                        )
                    });
                    if let Some(Err(cell::CellMismatch::Cells { theirs })) = fits {
                        // another cell count: not a bridge of any cell of ours, whatever
                        // its id hashes to
                        self.warn_cell_count(&o.id.node_id, &o.card.region, theirs);
                        continue;
                    }
                    let own_cell = self.in_own_cell(&o.card.region, &o.id);
                    if own_cell && o.live && o.id != self.bridge_self_id() {
                        // another bridge of our own cell that our regional cluster does
                        // not know: the cell is split (e.g. two nodes joined it at once);
                        // gossip with its members to merge the two halves
                        for addr in summary.iter().flat_map(|s| &s.seeds) {
                            if !known_addrs.contains(addr) {
                                let _ = self.shared.regional.gossip(*addr);
                            }
                        }
                    }
                    if own_cell || !o.ready {
                        continue;
                    }
                    if o.live {
                        bridge_peers_live += 1;
                    }
                    if let (Some(summary), Some(Ok(()))) = (summary, fits) {
                        copies.push(HeardSummary {
                            summary,
                            source_live: o.live,
                        });
                    }
                }
            }
        } else {
            self.drop_bridge().await;
            let bridge_ids: HashSet<&str> = bridges.iter().map(|b| b.as_str()).collect();
            for o in &observed {
                if !self.in_own_cell(&o.card.region, &o.id) || !bridge_ids.contains(&*o.id.node_id)
                {
                    continue;
                }
                for (k, v) in &o.kv {
                    if !k.starts_with(keys::REGION_PREFIX) {
                        continue;
                    }
                    if let Some(summary) = RegionSummary::decode(v) {
                        copies.push(HeardSummary {
                            summary,
                            source_live: o.live,
                        });
                    }
                }
            }
        }
        let retention_ms = self.params.retention.as_millis() as u64;
        // a non-bridge that sees every bridge of its cell dead has lost its only window on
        // the other regions, not the regions: it keeps what it knew instead of counting
        // them all missing (at 20 % loss a small cell's member sometimes sees its bridges
        // dead for a few seconds, and five missing regions would raise failover)
        let blind = !is_bridge && view::all_sources_dead(&copies);
        if !blind {
            // one summary per region: a bridge hears every cell of every region; the copies
            // a bridge publishes are combined already. In a split region the own region's
            // other cells are kept like any region; in a region of one cell nothing of it
            // is heard.
            let heard = cell::combine(&copies);
            let split = self.params.config.cells_per_region > 1;
            self.memory
                .update((!split).then_some(&region), &heard, now, retention_ms);
        }
        if is_bridge {
            self.publish_copies(now).await;
        }
        let live_peers = members
            .iter()
            .filter(|m| m.live && m.node_id != self_node_id)
            .count();
        if !*self.joined_tx.borrow() && (self.lone_start || live_peers > 0 || bridge_peers_live > 0)
        {
            info!(live_peers, bridge_peers_live, "membership joined");
            let _ = self.joined_tx.send(true);
        }
        let mut regions: BTreeMap<Region, RegionStatus> = self
            .memory
            .regions()
            .map(|r| (r.region.clone(), r.clone()))
            .collect();
        let other_cells = regions.remove(&region);
        regions.insert(
            region.clone(),
            cell::whole_region(own, other_cells.as_ref()),
        );
        let view = MembershipView {
            self_id: self_node_id,
            self_region: region,
            members,
            regions,
            is_bridge,
            at_ms: now,
        };
        self.update_metrics(&view);
        self.view_tx.send_if_modified(|current| {
            let changed = !same_view(current, &view);
            *current = Arc::new(view);
            changed
        });
        self.persist(now, false);
    }

    /// Whether a member of `region` with chitchat id `id` gossips in this node's cell.
    fn in_own_cell(&self, region: &Region, id: &ChitchatId) -> bool {
        *region == self.params.region && self.cell_of(id) == self.cell
    }

    /// This node's cell count as published in its cell summaries (0 when not split).
    fn split_cells(&self) -> u16 {
        match self.params.config.cells_per_region {
            0 | 1 => 0,
            n => n,
        }
    }

    /// Warns, once per bridge, that a bridge splits regions into another number of cells
    /// (its summaries are ignored: every node must use the same `--cells-per-region`).
    fn warn_cell_count(&mut self, node_id: &str, region: &Region, theirs: u16) {
        if self.cell_count_warned.len() >= MAX_CELL_COUNT_WARNINGS
            || !self.cell_count_warned.insert(node_id.to_string())
        {
            return;
        }
        warn!(
            bridge = node_id,
            %region,
            their_cells_per_region = theirs,
            our_cells_per_region = self.params.config.cells_per_region.max(1),
            "a bridge splits regions into another number of gossip cells; its region summary \
             is ignored: every node of the network must use the same --cells-per-region"
        );
    }

    /// The gossip cell of a member of any region, by its chitchat id.
    fn cell_of(&self, id: &ChitchatId) -> u16 {
        cell::cell_of(&id.node_id, self.params.config.cells_per_region)
    }

    /// This node's id in the bridge cluster (same node id and generation, bridge address).
    fn bridge_self_id(&self) -> ChitchatId {
        ChitchatId::new(
            self.self_id.node_id.clone(),
            self.self_id.generation_id,
            bridge_gossip_addr(self.params.advertise_addr),
        )
    }

    async fn ensure_bridge(&mut self, own: &RegionStatus) -> Option<ClusterRef> {
        let mut guard = self.shared.bridge.lock().await;
        if guard.is_none() {
            let advertise = bridge_gossip_addr(self.params.advertise_addr);
            let bind = bridge_gossip_addr(self.params.bind_addr);
            let id = ChitchatId::new(
                self.self_id.node_id.clone(),
                self.self_id.generation_id,
                advertise,
            );
            let card_value = card::issue(
                &self.params.identity,
                &id,
                &self.params.region,
                self.params.node_type,
            );
            let mut seeds: Vec<SocketAddr> = self.params.bridge_seeds.clone();
            seeds.extend(
                self.shared
                    .late_bridge_seeds
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .copied(),
            );
            seeds.extend(own.bridge_seeds.iter().copied());
            for r in self.memory.regions() {
                seeds.extend(r.bridge_seeds.iter().copied());
            }
            seeds.sort();
            seeds.dedup();
            let interval = bridge_interval(self.params.config.gossip_interval);
            self.bridge_guard.publish(GuardView::default());
            match spawn_cluster(
                id.clone(),
                format!("{}/bridges", self.params.chain_id),
                bind,
                &seeds,
                interval,
                detector_config(
                    Cluster::Bridge,
                    interval,
                    self.params.config.dead_node_grace_period.min(BRIDGE_GRACE),
                ),
                vec![
                    (keys::KEY_CARD.into(), card_value),
                    (keys::KEY_READY.into(), "1".into()),
                ],
                GuardedTransport::new(
                    (self.params.transport)(),
                    GossipCounters::new(&self.params.metrics, CLUSTER_BRIDGE),
                    id,
                    self.bridge_guard.clone(),
                ),
            )
            .await
            {
                Ok(handle) => {
                    info!(addr = %advertise, seeds = seeds.len(), "became a bridge");
                    self.params.metrics.bridge.set(1);
                    *guard = Some(handle);
                }
                Err(e) => warn!(error = %e, "cannot join the bridge cluster"),
            }
        }
        guard.as_ref().map(|h| h.chitchat())
    }

    async fn drop_bridge(&mut self) {
        let handle = self.shared.bridge.lock().await.take();
        if let Some(handle) = handle {
            info!("no longer a bridge");
            self.bridge_recheck_in = None;
            self.bridge_hearing.forget();
            self.params.metrics.bridge.set(0);
            let _ = handle.shutdown().await;
        }
    }

    async fn publish_copies(&self, now: u64) {
        let copies: Vec<(String, RegionSummary)> = self
            .memory
            .regions()
            .map(|r| {
                (
                    format!("{}{}", keys::REGION_PREFIX, r.region),
                    r.to_summary(now),
                )
            })
            .collect();
        self.shared
            .regional
            .with_chitchat(|c| {
                let state = c.self_node_state();
                let copies: Vec<(String, String)> = copies
                    .iter()
                    .map(|(k, next)| {
                        let prev = state.get(k).and_then(RegionSummary::decode);
                        let s = keys::restamp(
                            prev.as_ref(),
                            next.clone(),
                            now,
                            keys::SUMMARY_HEAD_EVERY_MS,
                        );
                        (k.clone(), s.encode())
                    })
                    .collect();
                let stale: Vec<String> = state
                    .key_values()
                    .map(|(k, _)| k.to_string())
                    .filter(|k| {
                        k.starts_with(keys::REGION_PREFIX) && !copies.iter().any(|(c, _)| c == k)
                    })
                    .collect();
                for k in stale {
                    state.delete(&k);
                }
                for (k, v) in &copies {
                    state.set(k, v);
                }
            })
            .await;
    }

    fn update_metrics(&self, view: &MembershipView) {
        let m = &self.params.metrics;
        m.members.reset();
        for r in view.regions.values() {
            m.members
                .with_label_values(&[r.region.as_str(), "live"])
                .set(i64::from(r.live));
            m.members
                .with_label_values(&[r.region.as_str(), "dead"])
                .set(i64::from(r.known.saturating_sub(r.live)));
        }
        m.regions_known.set(view.regions.len() as i64);
        m.peer_store_records.set(self.records.len() as i64);
    }

    fn persist(&mut self, now: u64, force: bool) {
        let ids: HashSet<_> = self.records.keys().cloned().collect();
        let since = now.saturating_sub(self.last_persist_ms);
        let changed = ids != self.persisted_ids;
        let refresh = since >= REFRESH_EVERY.as_millis() as u64;
        if !(force || changed || refresh) {
            return;
        }
        let cutoff = now.saturating_sub(self.params.retention.as_millis() as u64);
        self.records.retain(|_, r| r.last_seen_ms >= cutoff);
        let records: Vec<PeerRecord> = self.records.values().cloned().collect();
        if let Err(e) = self.params.store.save_peers(&records) {
            warn!(error = %e, "cannot save peers");
        }
        let regions: Vec<RegionSummary> = self
            .memory
            .regions()
            .map(|r| r.to_summary(r.last_live_ms))
            .collect();
        if let Err(e) = self.params.store.save_regions(&regions) {
            warn!(error = %e, "cannot save regions");
        }
        self.persisted_ids = ids;
        self.last_persist_ms = now;
    }
}

/// The region summary a bridge publishes in the bridge cluster, if it has a valid one.
fn published_summary(kv: &[(String, String)]) -> Option<RegionSummary> {
    kv.iter()
        .find(|(k, _)| k == keys::KEY_SUMMARY)
        .and_then(|(_, v)| RegionSummary::decode(v))
}

/// Views equal but for the build time and last-seen stamps.
fn same_view(a: &MembershipView, b: &MembershipView) -> bool {
    let members_eq = a.members.len() == b.members.len()
        && a.members.iter().zip(&b.members).all(|(x, y)| {
            x.node_id == y.node_id
                && x.generation == y.generation
                && x.live == y.live
                && x.ready == y.ready
                && x.bridge == y.bridge
                && x.head == y.head
        });
    let regions_eq = a.regions.len() == b.regions.len()
        && a.regions.values().zip(b.regions.values()).all(|(x, y)| {
            x.region == y.region
                && x.known == y.known
                && x.live == y.live
                && x.bridges == y.bridges
                && x.head_height == y.head_height
        });
    members_eq && regions_eq && a.is_bridge == b.is_bridge
}
