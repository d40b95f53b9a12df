//! Membership: the two-level chitchat design of DESIGN §3. Every super/full node joins its
//! region's cluster (`<chain_id>/<region>`); up to B bridges per region also join
//! `<chain_id>/bridges`, publish their region's summary there and copy the other regions'
//! summaries into their regional cluster. [`Membership`] is the only owner of chitchat; the
//! rest of the node reads a [`MembershipView`] from a watch channel.
//!
//! Each membership round is a pure step, [`machine::Machine::round`]: what the clusters hold
//! in, the view and the actions out. The worker task here reads the clusters, runs the step
//! and carries the actions out; it decides nothing. The round's rules (`machine`, `hearing`,
//! `wake`, `liveness`, `bridge_role`, `detector`, `head_pace`) are private; the public
//! submodules are what outside code meets: the gossip values (`card`, `keys`), the gossip
//! transport and its guard (`transport`, `admission`, `digest`), cells (`cell`) and the view.
//!
//! Choices that keep the bridge cluster small and quiet (docs/adr/0003 to 0007):
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
//! Choices that make a lost region known fast without false deaths:
//! - the regional detector counts the heartbeats that reach it within half a gossip interval
//!   as one and never takes its mean interval below the gossip interval (patches of
//!   chitchat's detector, `detector::detector_config`), so phi counts silent seconds; the
//!   threshold is 6 there.
//!   Counted one by one, with phi 8, the mean was 0.33–0.6 s and a cell's detector tolerated
//!   3 to 5 silent rounds depending on how bursty gossip had been (docs/adr/0009). The
//!   bridge cluster keeps per-heartbeat intervals and phi 5 at its 0.5 s interval, since a
//!   region counts as lost when all its bridges die there;
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
mod bridge_role;
pub mod card;
pub mod cell;
mod detector;
pub mod digest;
mod head_pace;
mod hearing;
pub mod keys;
mod liveness;
mod machine;
mod store;
pub mod transport;
pub mod view;
mod wake;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chitchat::{spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};
use detector::{detector_config, Cluster};
use rand::SeedableRng;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use keys::{Head, RegionSummary};
pub use machine::bridge_gossip_addr;
pub use store::MembershipStore;
pub use view::{Member, MembershipView, PeerRecord, RegionStatus};

use crate::clock::SharedClock;
use crate::config::MembershipConfig;
use crate::identity::{Identity, NodeType};
use crate::metrics::{Metrics, CLUSTER_BRIDGE, CLUSTER_REGIONAL};
use crate::region::Region;
use admission::{GuardHandle, GuardView};
use machine::{bridge_interval, Action, Level, Machine, Observation, Settings, Sighted};
use transport::{GossipCounters, GuardedTransport, TransportFactory};

/// A woken round runs at most once per gossip interval divided by this (200 ms at 1 s).
const WAKE_GAP_DIVISOR: u32 = 5;
/// Longest dead-node grace period of the bridge cluster. Its members come and go with the
/// bridge role (a node that bridged for a moment at a cold start, a replaced bridge), and
/// chitchat keeps a dead member in every digest for half the grace period: at 10,000 nodes
/// in 72 cells, 265 such hosts beside 216 bridges made the bridge cluster's SYN 8.7 KB and a
/// bridge send 149 KB/s. A region whose bridges all died is remembered as missing by
/// `RegionMemory`, not by chitchat, so forgetting dead bridges sooner loses nothing;
/// chitchat re-admits a collected member that gossips again.
const BRIDGE_GRACE: Duration = Duration::from_secs(30);

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
        let machine = Machine::new(
            Settings {
                node_id: params.identity.node_id().clone(),
                region: params.region.clone(),
                bridge_id: ChitchatId::new(
                    id.node_id.clone(),
                    id.generation_id,
                    bridge_gossip_addr(params.advertise_addr),
                ),
                cells_per_region: params.config.cells_per_region,
                bridges_per_region: params.config.bridges_per_region,
                retention: params.retention,
                bridge_seeds: params.bridge_seeds.clone(),
                lone_start: !params.expect_peers,
                gossip_interval: params.config.gossip_interval,
            },
            params.store.load_peers(),
            rand::rngs::StdRng::from_entropy(),
        );
        let worker = Worker {
            params,
            shared: shared.clone(),
            machine,
            view_tx,
            joined_tx,
            self_id: id,
            regional_guard,
            bridge_guard: GuardHandle::default(),
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

/// Carries out the membership rounds of [`Machine`]: reads the clusters, runs the step and
/// does what it returns. Holds the chitchat handles; decides nothing.
struct Worker {
    params: MembershipParams,
    shared: Arc<Shared>,
    machine: Machine,
    view_tx: watch::Sender<Arc<MembershipView>>,
    joined_tx: watch::Sender<bool>,
    self_id: ChitchatId,
    /// What the regional cluster's transport guard admits against.
    regional_guard: GuardHandle,
    /// What the bridge cluster's transport guard admits against.
    bridge_guard: GuardHandle,
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
            let recheck_in = self.round().await;
            limiter.ran(self.params.clock.now_ms());
            if let Some(wait) = recheck_in {
                // a bridge-cluster death held back for want of hearing comes due then
                // (rounded up: a round a millisecond early would find it not yet due)
                let wait_ms = (wait.as_millis() as u64).saturating_add(1);
                limiter.request_after(wait_ms, self.params.clock.now_ms());
            }
            match self.bridge_cluster().await {
                None => bridge_live = None,
                Some(c) if bridge_live.is_none() => {
                    bridge_live = Some(wake::BridgeLiveWatch::new(
                        c.lock().await.live_nodes_watcher(),
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(persist) = self.machine.persist(self.params.clock.now_ms(), true) {
            self.carry_out(persist, &mut true).await;
        }
    }

    /// One round: reads both clusters, runs the step, carries out its actions and publishes
    /// the view. Returns when a held-back bridge-cluster death comes due.
    async fn round(&mut self) -> Option<Duration> {
        self.shared.pace_head(None).await;
        let now = self.params.clock.now_ms();
        let regional = read_cluster(&self.shared.regional.chitchat(), false).await;
        let bridge = match self.bridge_cluster().await {
            Some(c) => Some(read_cluster(&c, true).await),
            None => None,
        };
        let step = self.machine.round(now, Observation { regional, bridge });
        let mut bridged = true;
        for action in step.actions {
            self.carry_out(action, &mut bridged).await;
        }
        self.update_metrics(&step.view);
        let view = step.view;
        self.view_tx.send_if_modified(|current| {
            let changed = !same_view(current, &view);
            *current = Arc::new(view);
            changed
        });
        step.recheck_in
    }

    /// Does what the step asked. `bridged` turns false when joining the bridge cluster
    /// failed, and the bridge-cluster actions after it are skipped.
    async fn carry_out(&mut self, action: Action, bridged: &mut bool) {
        match action {
            Action::Guard { level, view } => match level {
                Level::Regional => self.regional_guard.publish(view),
                Level::Bridge => self.bridge_guard.publish(view),
            },
            Action::JoinBridge { seeds } => *bridged = self.join_bridge(seeds).await,
            Action::LeaveBridge => self.leave_bridge().await,
            Action::PublishSummary(value) => {
                if let Some(c) = self.bridge_cluster().await.filter(|_| *bridged) {
                    c.lock()
                        .await
                        .self_node_state()
                        .set(keys::KEY_SUMMARY, value);
                }
            }
            Action::PublishCopies { set, delete } => {
                self.shared
                    .regional
                    .with_chitchat(|c| {
                        let state = c.self_node_state();
                        for k in &delete {
                            state.delete(k);
                        }
                        for (k, v) in &set {
                            state.set(k, v);
                        }
                    })
                    .await;
            }
            Action::Gossip(addrs) => {
                for addr in addrs {
                    let _ = self.shared.regional.gossip(addr);
                }
            }
            Action::Joined {
                live_peers,
                bridge_peers_live,
            } => {
                info!(live_peers, bridge_peers_live, "membership joined");
                let _ = self.joined_tx.send(true);
            }
            Action::Persist { peers, regions } => {
                if let Err(e) = self.params.store.save_peers(&peers) {
                    warn!(error = %e, "cannot save peers");
                }
                if let Err(e) = self.params.store.save_regions(&regions) {
                    warn!(error = %e, "cannot save regions");
                }
            }
        }
    }

    /// The bridge cluster's state, when this node is in it.
    async fn bridge_cluster(&self) -> Option<ClusterRef> {
        self.shared
            .bridge
            .lock()
            .await
            .as_ref()
            .map(|h| h.chitchat())
    }

    /// Joins the bridge cluster; false when it could not.
    async fn join_bridge(&mut self, mut seeds: Vec<SocketAddr>) -> bool {
        let mut guard = self.shared.bridge.lock().await;
        if guard.is_some() {
            return true;
        }
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
        seeds.extend(
            self.shared
                .late_bridge_seeds
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .copied(),
        );
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
                true
            }
            Err(e) => {
                warn!(error = %e, "cannot join the bridge cluster");
                false
            }
        }
    }

    async fn leave_bridge(&mut self) {
        let handle = self.shared.bridge.lock().await.take();
        if let Some(handle) = handle {
            info!("no longer a bridge");
            self.params.metrics.bridge.set(0);
            let _ = handle.shutdown().await;
        }
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
        m.peer_store_records.set(self.machine.peer_records() as i64);
    }
}

/// Shared access to one chitchat cluster's state.
type ClusterRef = Arc<tokio::sync::Mutex<chitchat::Chitchat>>;

/// Reads every member a cluster holds a state for; in the bridge cluster with the time
/// since each member's heartbeat last rose (for [`hearing`]).
async fn read_cluster(cluster: &ClusterRef, bridge: bool) -> Vec<Sighted> {
    let c = cluster.lock().await;
    let live: HashSet<&ChitchatId> = c.live_nodes().collect();
    c.node_states()
        .values()
        .map(|state| {
            let id = state.chitchat_id();
            let silence = if bridge {
                c.heartbeat_silence(id)
            } else {
                None
            };
            Sighted::from_state(state, live.contains(id), silence)
        })
        .collect()
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
