//! The membership round as a pure step: [`Machine::round`] takes the time and what the node
//! read from its chitchat clusters ([`Observation`]) and returns the new view with the
//! [`Action`]s the worker carries out (join or leave the bridge cluster, publish a summary
//! or region copies, gossip with some members, persist, tell the guards whom to admit).
//! Nothing here locks, sends or sleeps; the worker in `membership` owns the chitchat handles.
//!
//! The rules of one round, in order (each has unit tests below):
//! 1. members of the own cell whose signed card verifies are the region's members (latest
//!    generation per node); the liveness filter holds back revivals;
//! 2. bridges are elected deterministically; a node acts as a bridge only after
//!    [`BRIDGE_SETTLE_ROUNDS`] elected rounds in a row and leaves at once when not elected;
//! 3. a bridge publishes its cell's summary in the bridge cluster, restamped only on change
//!    (a head that only climbs at most every [`keys::SUMMARY_HEAD_EVERY_MS`]);
//! 4. a bridge reads the other bridges' summaries; a bridge-cluster death it cannot tell from
//!    its own deafness is held back ([`super::hearing`]); a bridge of another cell count is
//!    ignored with one warning; a bridge of its own cell its region does not know is a split
//!    cell: the node gossips with that bridge's seeds to merge the halves;
//! 5. a non-bridge reads the copies its cell's elected bridges publish; when every copy it
//!    hears comes from a dead source (bridges are elected among live members, so in practice
//!    the old incarnation of a restarted bridge) it is blind and keeps what it knew instead
//!    of counting every region missing;
//! 6. heard summaries update the remembered regions; a bridge republishes them as copies
//!    (restamped only on change) in its regional cluster and deletes copies of regions gone;
//! 7. the node has joined once it sees a live peer (or started alone);
//! 8. when the regions the view shows missing change, the node gossips at once with the two
//!    live members that follow it in node-id order and four random others;
//! 9. peers and regions are persisted when the set of peers changes, or every
//!    [`REFRESH_EVERY`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use chitchat::{ChitchatId, NodeState};
use rand::rngs::StdRng;
use tracing::{debug, warn};

use super::admission::{canonical, GuardView};
use super::bridge_role::{BridgeRole, BRIDGE_SETTLE_ROUNDS};
use super::card::{verify_card, MemberCard};
use super::hearing::{Hearing, Sighting};
use super::keys::{self, Head, RegionSummary};
use super::liveness::LivenessFilter;
use super::view::{
    self, HeardSummary, Member, MembershipView, OwnRegionInput, PeerRecord, RegionMemory,
    RegionStatus,
};
use super::{cell, wake};
use crate::identity::NodeId;
use crate::region::Region;

/// How often last-seen times are written when the set of members does not change (a
/// change is written at once).
pub const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// Members a node gossips with at once, picked at random, when the regions its view shows
/// missing change.
pub const PUSH_FANOUT: usize = 4;
/// Members that follow the node in node-id order it also gossips with then, so that nobody
/// is left out of the cascade ([`wake::push_targets`]).
pub const PUSH_SUCCESSORS: usize = 2;
/// Most bridges warned about for another cell count (the rest are ignored silently).
const MAX_CELL_COUNT_WARNINGS: usize = 64;
/// Most card verifications cached.
const MAX_CACHED_CARDS: usize = 20_000;

/// The bridge-cluster gossip address of a node: its advertised address, port + 1.
pub fn bridge_gossip_addr(advertise: SocketAddr) -> SocketAddr {
    SocketAddr::new(advertise.ip(), advertise.port().wrapping_add(1))
}

/// The bridge cluster's gossip interval: twice as often as the regional clusters.
pub fn bridge_interval(gossip_interval: Duration) -> Duration {
    (gossip_interval / 2).max(Duration::from_millis(50))
}

/// One member as read from a chitchat cluster, before its card is checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighted {
    /// Its chitchat id.
    pub id: ChitchatId,
    /// chitchat's failure detector's verdict.
    pub live: bool,
    /// Its heartbeat.
    pub heartbeat: u64,
    /// Time since its heartbeat last rose here (read in the bridge cluster only).
    pub silence: Option<Duration>,
    /// Its card value, if it published one.
    pub card: Option<String>,
    /// Whether it announces itself ready (not leaving).
    pub ready: bool,
    /// Its head value, if any.
    pub head: Option<String>,
    /// Its region summary and region copies (`summary`, `region:*`).
    pub kv: Vec<(String, String)>,
}

impl Sighted {
    /// What the round needs of a chitchat node state.
    pub fn from_state(state: &NodeState, live: bool, silence: Option<Duration>) -> Self {
        Sighted {
            id: state.chitchat_id().clone(),
            live,
            heartbeat: u64::from(state.heartbeat()),
            silence,
            card: state.get(keys::KEY_CARD).map(str::to_string),
            ready: state.get(keys::KEY_READY) != Some("0"),
            head: state.get(keys::KEY_HEAD).map(str::to_string),
            kv: state
                .key_values()
                .filter(|(k, _)| k.starts_with(keys::REGION_PREFIX) || *k == keys::KEY_SUMMARY)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

/// What the node read from its clusters at the start of a round.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Every member the regional cluster holds a state for.
    pub regional: Vec<Sighted>,
    /// Every member the bridge cluster holds a state for; `None` when the node is not in
    /// the bridge cluster.
    pub bridge: Option<Vec<Sighted>>,
}

/// A gossip level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The node's regional cluster (its cell).
    Regional,
    /// The bridge cluster.
    Bridge,
}

/// What the worker does after a round, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Tell a cluster's transport guard whom digests are admitted against.
    Guard {
        /// The cluster.
        level: Level,
        /// What it admits against.
        view: GuardView,
    },
    /// Join the bridge cluster with these seeds (and any learned since start).
    JoinBridge {
        /// Bridge-cluster seeds.
        seeds: Vec<SocketAddr>,
    },
    /// Leave the bridge cluster.
    LeaveBridge,
    /// Set the node's summary key in the bridge cluster (skipped when joining failed).
    PublishSummary(String),
    /// Set (and delete) region copies in the node's regional state.
    PublishCopies {
        /// Keys and values to set.
        set: Vec<(String, String)>,
        /// Keys to delete.
        delete: Vec<String>,
    },
    /// Gossip with these regional members now.
    Gossip(Vec<SocketAddr>),
    /// The node has joined the network.
    Joined {
        /// Live members of its cell besides itself.
        live_peers: usize,
        /// Live bridges of other cells (bridges only).
        bridge_peers_live: usize,
    },
    /// Write these peers and regions to the store.
    Persist {
        /// Peers seen within the retention window.
        peers: Vec<PeerRecord>,
        /// Remembered regions.
        regions: Vec<RegionSummary>,
    },
}

/// The result of a round.
#[derive(Debug, Clone)]
pub struct Step {
    /// The new view.
    pub view: MembershipView,
    /// What to do, in order.
    pub actions: Vec<Action>,
    /// When a bridge-cluster death held back now comes due: run a round then.
    pub recheck_in: Option<Duration>,
}

/// What does not change over a node's life.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's id.
    pub node_id: NodeId,
    /// Its region.
    pub region: Region,
    /// Its id in the bridge cluster (same node id and generation, bridge address).
    pub bridge_id: ChitchatId,
    /// Gossip cells per region (0 or 1: one cell).
    pub cells_per_region: u16,
    /// Bridges elected per cell.
    pub bridges_per_region: usize,
    /// Retention window of known members and regions.
    pub retention: Duration,
    /// Bridge-cluster seeds given at start.
    pub bridge_seeds: Vec<SocketAddr>,
    /// No other member was expected: the node counts as joined on its own.
    pub lone_start: bool,
    /// The regional gossip interval.
    pub gossip_interval: Duration,
}

/// A member observed in a cluster, with its verified card.
struct Observed {
    id: ChitchatId,
    card: MemberCard,
    live: bool,
    /// Time since its heartbeat last rose (bridge cluster only).
    silence: Option<Duration>,
    ready: bool,
    head: Option<Head>,
    kv: Vec<(String, String)>,
}

/// The membership state machine of one node.
pub struct Machine {
    s: Settings,
    /// This node's gossip cell in its region.
    cell: u16,
    cards: HashMap<(ChitchatId, String), Option<MemberCard>>,
    records: BTreeMap<NodeId, PeerRecord>,
    memory: RegionMemory,
    joined: bool,
    regional_liveness: LivenessFilter,
    bridge_liveness: LivenessFilter,
    /// Confirms bridge-cluster deaths against what this node hears of other regions.
    bridge_hearing: Hearing,
    bridge_role: BridgeRole,
    /// Bridges already warned about for another cell count.
    cell_count_warned: HashSet<String>,
    /// The summary value last published in the bridge cluster.
    summary: Option<String>,
    /// The region copies last published in the regional cluster, by key.
    copies: BTreeMap<String, String>,
    /// The regions the last view showed missing.
    missing: Vec<Region>,
    last_persist_ms: u64,
    persisted_ids: HashSet<NodeId>,
    rng: StdRng,
}

impl Machine {
    /// A machine that remembers `records` (the peer store) and draws push targets from `rng`.
    pub fn new(settings: Settings, records: Vec<PeerRecord>, rng: StdRng) -> Self {
        let cell = cell::cell_of(settings.node_id.as_str(), settings.cells_per_region);
        let bridge_hearing = Hearing::for_interval(bridge_interval(settings.gossip_interval));
        Machine {
            cell,
            cards: HashMap::new(),
            records: records
                .into_iter()
                .map(|r| (r.node_id.clone(), r))
                .collect(),
            memory: RegionMemory::default(),
            joined: false,
            regional_liveness: LivenessFilter::default(),
            bridge_liveness: LivenessFilter::default(),
            bridge_hearing,
            bridge_role: BridgeRole::default(),
            cell_count_warned: HashSet::new(),
            summary: None,
            copies: BTreeMap::new(),
            missing: Vec::new(),
            last_persist_ms: 0,
            persisted_ids: HashSet::new(),
            rng,
            s: settings,
        }
    }

    /// Peers remembered (within the retention window).
    pub fn peer_records(&self) -> usize {
        self.records.len()
    }

    /// One membership round at `now_ms`.
    pub fn round(&mut self, now_ms: u64, seen: Observation) -> Step {
        let mut actions = Vec::new();
        let region = self.s.region.clone();
        let regional = self.admit(seen.regional, Level::Regional, &mut actions);
        let mut members: Vec<Member> = Vec::new();
        for o in &regional {
            if !self.in_own_cell(&o.card.region, &o.id) {
                continue;
            }
            let Some(node_id) = NodeId::parse(&o.id.node_id) else {
                continue;
            };
            let last_seen_ms = if o.live {
                now_ms
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
        let bridges = view::elect_bridges(&members, self.s.bridges_per_region);
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
                    last_seen_ms: now_ms,
                },
            );
        }
        let records: Vec<PeerRecord> = self.records.values().cloned().collect();
        let retention_ms = self.s.retention.as_millis() as u64;
        let own = view::own_region_status(OwnRegionInput {
            region: &region,
            members: &members,
            records: &records,
            now_ms,
            retention_ms,
            bridge_addr: &|m: &Member| bridge_gossip_addr(m.gossip_addr),
        });
        let is_bridge = self
            .bridge_role
            .update(bridges.contains(&self.s.node_id), BRIDGE_SETTLE_ROUNDS);
        let heard = if is_bridge {
            let bridge = match seen.bridge {
                Some(bridge) => bridge,
                None => {
                    actions.push(Action::JoinBridge {
                        seeds: self.bridge_seeds(&own),
                    });
                    // a fresh bridge state holds no summary yet
                    self.summary = None;
                    Vec::new()
                }
            };
            self.publish_summary(&own, now_ms, &mut actions);
            self.hear_bridges(bridge, &members, &mut actions)
        } else {
            if seen.bridge.is_some() {
                actions.push(Action::LeaveBridge);
                self.bridge_hearing.forget();
            }
            Heard {
                copies: self.bridges_copies(&regional, &bridges),
                live: 0,
                recheck_in: None,
            }
        };
        let Heard {
            copies,
            live: bridge_peers_live,
            recheck_in,
        } = heard;
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
            let split = self.s.cells_per_region > 1;
            self.memory
                .update((!split).then_some(&region), &heard, now_ms, retention_ms);
        }
        if is_bridge {
            self.publish_copies(now_ms, &mut actions);
        }
        let live_peers = members
            .iter()
            .filter(|m| m.live && m.node_id != self.s.node_id)
            .count();
        if !self.joined && (self.s.lone_start || live_peers > 0 || bridge_peers_live > 0) {
            self.joined = true;
            actions.push(Action::Joined {
                live_peers,
                bridge_peers_live,
            });
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
            self_id: self.s.node_id.clone(),
            self_region: region,
            members,
            regions,
            is_bridge,
            at_ms: now_ms,
        };
        if let Some(persist) = self.persist(now_ms, false) {
            actions.push(persist);
        }
        let missing = view.missing_regions();
        if missing != self.missing {
            // tell a few members at once instead of waiting for their gossip rounds; each
            // node does this once per change of its view, so it cascades
            let targets = wake::push_targets(&view, PUSH_SUCCESSORS, PUSH_FANOUT, &mut self.rng);
            actions.push(Action::Gossip(targets));
            self.missing = missing;
        }
        Step {
            view,
            actions,
            recheck_in,
        }
    }

    /// Peers and regions to write now: when the set of peers changed, every
    /// [`REFRESH_EVERY`], or always when `force` (leaving).
    pub fn persist(&mut self, now_ms: u64, force: bool) -> Option<Action> {
        let ids: HashSet<NodeId> = self.records.keys().cloned().collect();
        let since = now_ms.saturating_sub(self.last_persist_ms);
        let changed = ids != self.persisted_ids;
        let refresh = since >= REFRESH_EVERY.as_millis() as u64;
        if !(force || changed || refresh) {
            return None;
        }
        let cutoff = now_ms.saturating_sub(self.s.retention.as_millis() as u64);
        self.records.retain(|_, r| r.last_seen_ms >= cutoff);
        self.persisted_ids = ids;
        self.last_persist_ms = now_ms;
        Some(Action::Persist {
            peers: self.records.values().cloned().collect(),
            regions: self
                .memory
                .regions()
                .map(|r| r.to_summary(r.last_live_ms))
                .collect(),
        })
    }

    /// Checks the cards of a cluster's members, applies the liveness filter (and in the
    /// bridge cluster the hearing rule), and tells the cluster's guard whom to admit.
    fn admit(
        &mut self,
        seen: Vec<Sighted>,
        level: Level,
        actions: &mut Vec<Action>,
    ) -> Vec<Observed> {
        let known: HashSet<ChitchatId> = seen.iter().map(|s| s.id.clone()).collect();
        if self.cards.len() > MAX_CACHED_CARDS {
            self.cards.clear();
        }
        let mut out = Vec::with_capacity(seen.len());
        for s in seen {
            let Some(card_value) = s.card else {
                continue;
            };
            let card = self
                .cards
                .entry((s.id.clone(), card_value))
                .or_insert_with_key(|(id, value)| verify_card(id, value))
                .clone();
            let Some(card) = card else {
                debug!(node = ?s.id, "ignoring member with an invalid card");
                continue;
            };
            let filter = match level {
                Level::Regional => &mut self.regional_liveness,
                Level::Bridge => &mut self.bridge_liveness,
            };
            out.push(Observed {
                live: filter.live(&s.id, s.live, s.heartbeat),
                silence: s.silence,
                ready: s.ready,
                head: s.head.as_deref().and_then(Head::decode),
                kv: s.kv,
                id: s.id,
                card,
            });
        }
        let trusted = out
            .iter()
            .map(|o| canonical(o.id.gossip_advertise_addr))
            .collect();
        actions.push(Action::Guard {
            level,
            view: GuardView { known, trusted },
        });
        out
    }

    /// Seeds of the bridge cluster: those given at start, the own region's live bridges
    /// and every remembered region's.
    fn bridge_seeds(&self, own: &RegionStatus) -> Vec<SocketAddr> {
        let mut seeds = self.s.bridge_seeds.clone();
        seeds.extend(own.bridge_seeds.iter().copied());
        for r in self.memory.regions() {
            seeds.extend(r.bridge_seeds.iter().copied());
        }
        seeds.sort();
        seeds.dedup();
        seeds
    }

    /// Publishes the own cell's summary in the bridge cluster, restamped only on change.
    fn publish_summary(&mut self, own: &RegionStatus, now_ms: u64, actions: &mut Vec<Action>) {
        let prev = self.summary.as_deref().and_then(RegionSummary::decode);
        let summary = keys::restamp(
            prev.as_ref(),
            RegionSummary {
                cell: self.cell,
                cells: self.split_cells(),
                ..own.to_summary(now_ms)
            },
            now_ms,
            keys::SUMMARY_HEAD_EVERY_MS,
        );
        let value = summary.encode();
        self.summary = Some(value.clone());
        actions.push(Action::PublishSummary(value));
    }

    /// Reads the bridge cluster: the summaries of the other cells' live and dead bridges.
    fn hear_bridges(
        &mut self,
        bridge: Vec<Sighted>,
        members: &[Member],
        actions: &mut Vec<Action>,
    ) -> Heard {
        let mut observed = self.admit(bridge, Level::Bridge, actions);
        let recheck_in = self.judge_bridge_deaths(&mut observed);
        let known_addrs: HashSet<SocketAddr> = members.iter().map(|m| m.gossip_addr).collect();
        let mut heard = Heard {
            copies: Vec::new(),
            live: 0,
            recheck_in,
        };
        let mut merge = Vec::new();
        for o in observed {
            let summary = published_summary(&o.kv);
            let fits = summary.as_ref().map(|s| {
                cell::check_cell_summary(s, &o.card.region, &o.id.node_id, self.s.cells_per_region)
            });
            if let Some(Err(cell::CellMismatch::Cells { theirs })) = fits {
                // another cell count: not a bridge of any cell of ours, whatever its id
                // hashes to
                self.warn_cell_count(&o.id.node_id, &o.card.region, theirs);
                continue;
            }
            let own_cell = self.in_own_cell(&o.card.region, &o.id);
            if own_cell && o.live && o.id != self.s.bridge_id {
                // another bridge of our own cell that our regional cluster does not know:
                // the cell is split (e.g. two nodes joined it at once); gossip with its
                // members to merge the two halves
                merge.extend(
                    summary
                        .iter()
                        .flat_map(|s| &s.seeds)
                        .filter(|a| !known_addrs.contains(a)),
                );
            }
            if own_cell || !o.ready {
                continue;
            }
            if o.live {
                heard.live += 1;
            }
            if let (Some(summary), Some(Ok(()))) = (summary, fits) {
                heard.copies.push(HeardSummary {
                    summary,
                    source_live: o.live,
                });
            }
        }
        if !merge.is_empty() {
            actions.push(Action::Gossip(merge));
        }
        heard
    }

    /// Holds back the deaths of bridge-cluster members that this node cannot tell from its
    /// own deafness; returns when to look again.
    fn judge_bridge_deaths(&mut self, observed: &mut [Observed]) -> Option<Duration> {
        let others: Vec<usize> = (0..observed.len())
            .filter(|&i| observed[i].id != self.s.bridge_id)
            .collect();
        let sightings: Vec<Sighting<'_>> = others
            .iter()
            .map(|&i| Sighting {
                id: &observed[i].id,
                region: observed[i].card.region.as_str(),
                live: observed[i].live,
                silence: observed[i].silence,
            })
            .collect();
        let verdicts = self.bridge_hearing.judge(&sightings);
        drop(sightings);
        for (&i, live) in others.iter().zip(verdicts.live) {
            observed[i].live = live;
        }
        verdicts.recheck_in
    }

    /// The region copies the own cell's bridges publish in the regional cluster.
    fn bridges_copies(&self, regional: &[Observed], bridges: &[NodeId]) -> Vec<HeardSummary> {
        let bridge_ids: HashSet<&str> = bridges.iter().map(|b| b.as_str()).collect();
        let mut copies = Vec::new();
        for o in regional {
            if !self.in_own_cell(&o.card.region, &o.id) || !bridge_ids.contains(&*o.id.node_id) {
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
        copies
    }

    /// Republishes the remembered regions as copies in the regional cluster, each
    /// restamped only on change, and deletes the copies of regions no longer remembered.
    fn publish_copies(&mut self, now_ms: u64, actions: &mut Vec<Action>) {
        let next: BTreeMap<String, String> = self
            .memory
            .regions()
            .map(|r| {
                let key = format!("{}{}", keys::REGION_PREFIX, r.region);
                let prev = self.copies.get(&key).and_then(|v| RegionSummary::decode(v));
                let s = keys::restamp(
                    prev.as_ref(),
                    r.to_summary(now_ms),
                    now_ms,
                    keys::SUMMARY_HEAD_EVERY_MS,
                );
                (key, s.encode())
            })
            .collect();
        let delete: Vec<String> = self
            .copies
            .keys()
            .filter(|k| !next.contains_key(*k))
            .cloned()
            .collect();
        let set = next.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        self.copies = next;
        actions.push(Action::PublishCopies { set, delete });
    }

    /// Whether a member of `region` with chitchat id `id` gossips in this node's cell.
    fn in_own_cell(&self, region: &Region, id: &ChitchatId) -> bool {
        *region == self.s.region && cell::cell_of(&id.node_id, self.s.cells_per_region) == self.cell
    }

    /// This node's cell count as published in its cell summaries (0 when not split).
    fn split_cells(&self) -> u16 {
        match self.s.cells_per_region {
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
            our_cells_per_region = self.s.cells_per_region.max(1),
            "a bridge splits regions into another number of gossip cells; its region summary \
             is ignored: every node of the network must use the same --cells-per-region"
        );
    }
}

/// What a bridge heard in the bridge cluster.
struct Heard {
    copies: Vec<HeardSummary>,
    /// Live bridges of other cells.
    live: usize,
    recheck_in: Option<Duration>,
}

/// The region summary a bridge publishes in the bridge cluster, if it has a valid one.
fn published_summary(kv: &[(String, String)]) -> Option<RegionSummary> {
    kv.iter()
        .find(|(k, _)| k == keys::KEY_SUMMARY)
        .and_then(|(_, v)| RegionSummary::decode(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Identity, NodeType};
    use crate::membership::card;
    use rand::SeedableRng;

    const NOW: u64 = 1_700_000_000_000;
    const SECOND: u64 = 1_000;

    /// A node of the test network: its identity, region, type and gossip address.
    #[derive(Clone)]
    struct Node {
        identity: Identity,
        region: Region,
        node_type: NodeType,
        addr: SocketAddr,
    }

    impl Node {
        fn new(region: &str, node_type: NodeType, port: u16) -> Node {
            Node {
                identity: Identity::generate(),
                region: Region::new(region).unwrap(),
                node_type,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            }
        }

        fn regional_id(&self) -> ChitchatId {
            card::chitchat_id(&self.identity, 1, self.addr)
        }

        fn bridge_id(&self) -> ChitchatId {
            card::chitchat_id(&self.identity, 1, bridge_gossip_addr(self.addr))
        }

        fn id(&self) -> NodeId {
            self.identity.node_id().clone()
        }

        /// As seen in its regional cluster, live, with a valid card.
        fn regional(&self) -> Sighted {
            self.sighted(self.regional_id())
        }

        /// As seen in the bridge cluster, live, with a valid card.
        fn bridge(&self) -> Sighted {
            self.sighted(self.bridge_id())
        }

        fn sighted(&self, id: ChitchatId) -> Sighted {
            Sighted {
                card: Some(card::issue(
                    &self.identity,
                    &id,
                    &self.region,
                    self.node_type,
                )),
                id,
                live: true,
                heartbeat: 100,
                silence: Some(Duration::from_millis(100)),
                ready: true,
                head: None,
                kv: Vec::new(),
            }
        }

        fn machine(&self, lone_start: bool) -> Machine {
            Machine::new(
                Settings {
                    node_id: self.id(),
                    region: self.region.clone(),
                    bridge_id: self.bridge_id(),
                    cells_per_region: 1,
                    bridges_per_region: 3,
                    retention: Duration::from_secs(60),
                    bridge_seeds: Vec::new(),
                    lone_start,
                    gossip_interval: Duration::from_secs(1),
                },
                Vec::new(),
                StdRng::seed_from_u64(7),
            )
        }
    }

    /// A sighted member with its liveness set.
    fn with_live(mut s: Sighted, live: bool, silence_ms: u64) -> Sighted {
        s.live = live;
        s.silence = Some(Duration::from_millis(silence_ms));
        s
    }

    /// A bridge-cluster sighting publishing `summary` for its region.
    fn publishing(mut s: Sighted, summary: &RegionSummary) -> Sighted {
        s.kv = vec![(keys::KEY_SUMMARY.to_string(), summary.encode())];
        s
    }

    /// The summary a bridge of `node`'s region publishes with `live` of `known` members.
    fn summary_of(node: &Node, known: u32, live: u32, at: u64) -> RegionSummary {
        RegionSummary {
            region: node.region.clone(),
            cell: 0,
            cells: 0,
            known,
            live,
            bridges: vec![node.id().to_string()],
            bridge_addrs: vec![node.addr],
            seeds: vec![node.addr],
            bridge_seeds: vec![bridge_gossip_addr(node.addr)],
            head_height: None,
            updated_ms: at,
        }
    }

    fn regional(members: &[Sighted]) -> Observation {
        Observation {
            regional: members.to_vec(),
            bridge: None,
        }
    }

    /// Runs rounds one second apart from `*now` until the machine acts as a bridge, feeding
    /// it `obs` with the bridge cluster it joined.
    fn settle_as_bridge(m: &mut Machine, now: &mut u64, obs: &Observation) -> Step {
        let mut joined = false;
        for _ in 0..BRIDGE_SETTLE_ROUNDS {
            let mut o = obs.clone();
            if !joined {
                o.bridge = None;
            }
            let step = m.round(*now, o);
            joined |= step
                .actions
                .iter()
                .any(|a| matches!(a, Action::JoinBridge { .. }));
            *now += SECOND;
            if step.view.is_bridge {
                return step;
            }
        }
        panic!("never became a bridge");
    }

    fn has(step: &Step, pred: impl Fn(&Action) -> bool) -> bool {
        step.actions.iter().any(pred)
    }

    fn summary_value(step: &Step) -> Option<RegionSummary> {
        step.actions.iter().find_map(|a| match a {
            Action::PublishSummary(v) => RegionSummary::decode(v),
            _ => None,
        })
    }

    /// The keys and values set, and the keys deleted, by a step's `PublishCopies`.
    type Copies<'a> = (&'a [(String, String)], &'a [String]);

    fn copies(step: &Step) -> Option<Copies<'_>> {
        step.actions.iter().find_map(|a| match a {
            Action::PublishCopies { set, delete } => Some((set.as_slice(), delete.as_slice())),
            _ => None,
        })
    }

    #[test]
    fn only_members_of_the_own_region_with_a_valid_card_are_members() {
        let me = Node::new("eu", NodeType::Full, 1000);
        let peer = Node::new("eu", NodeType::Full, 1010);
        let stranger = Node::new("na", NodeType::Full, 1020);
        let mut forged = Node::new("eu", NodeType::Full, 1030).regional();
        forged.card = Some(peer.regional().card.unwrap());
        let mut no_card = Node::new("eu", NodeType::Full, 1040).regional();
        no_card.card = None;
        let mut m = me.machine(false);
        let step = m.round(
            NOW,
            regional(&[
                me.regional(),
                peer.regional(),
                stranger.regional(),
                forged.clone(),
                no_card.clone(),
            ]),
        );
        let ids: Vec<NodeId> = step
            .view
            .members
            .iter()
            .map(|m| m.node_id.clone())
            .collect();
        let mut expected = vec![me.id(), peer.id()];
        expected.sort();
        assert_eq!(ids, expected);
        let guard = step
            .actions
            .iter()
            .find_map(|a| match a {
                Action::Guard {
                    level: Level::Regional,
                    view,
                } => Some(view),
                _ => None,
            })
            .expect("the regional guard is told");
        assert_eq!(
            guard.known.len(),
            5,
            "the guard knows every state chitchat holds"
        );
        assert!(guard.trusted.contains(&peer.addr));
        assert!(guard.trusted.contains(&stranger.addr), "its card verifies");
        assert!(!guard.trusted.contains(&forged.id.gossip_advertise_addr));
        assert!(!guard.trusted.contains(&no_card.id.gossip_advertise_addr));
    }

    #[test]
    fn a_revived_member_stays_dead_until_its_heartbeat_moves_on() {
        let me = Node::new("eu", NodeType::Full, 1000);
        let peer = Node::new("eu", NodeType::Full, 1010);
        let mut m = me.machine(false);
        let live = |step: &Step| {
            step.view
                .members
                .iter()
                .any(|x| x.node_id == peer.id() && x.live)
        };
        assert!(live(
            &m.round(NOW, regional(&[me.regional(), peer.regional()]))
        ));
        let dead = with_live(peer.regional(), false, 0);
        assert!(!live(
            &m.round(NOW + SECOND, regional(&[me.regional(), dead]))
        ));
        // a late heartbeat makes chitchat count it live again for a moment
        let mut late = peer.regional();
        late.heartbeat = 101;
        assert!(!live(&m.round(
            NOW + 2 * SECOND,
            regional(&[me.regional(), late.clone()])
        )));
        late.heartbeat = 100 + super::super::liveness::REVIVE_MARGIN;
        assert!(live(
            &m.round(NOW + 3 * SECOND, regional(&[me.regional(), late]))
        ));
    }

    #[test]
    fn a_node_bridges_only_after_settle_rounds_and_leaves_at_once() {
        let me = Node::new("eu", NodeType::Super, 1000);
        let mut m = me.machine(false);
        let obs = Observation {
            regional: vec![me.regional()],
            bridge: Some(vec![me.bridge()]),
        };
        for round in 1..BRIDGE_SETTLE_ROUNDS {
            let step = m.round(NOW + u64::from(round) * SECOND, regional(&[me.regional()]));
            assert!(!step.view.is_bridge, "round {round}");
            assert!(!has(&step, |a| matches!(a, Action::JoinBridge { .. })));
        }
        let step = m.round(NOW + 10 * SECOND, regional(&[me.regional()]));
        assert!(step.view.is_bridge);
        assert!(matches!(step.actions[1], Action::JoinBridge { .. }));
        assert!(
            matches!(step.actions[2], Action::PublishSummary(_)),
            "after joining"
        );
        let step = m.round(NOW + 11 * SECOND, obs.clone());
        assert!(
            !has(&step, |a| matches!(a, Action::JoinBridge { .. })),
            "joined already"
        );
        // three live super nodes of lower id outrank it: it leaves at once
        let mut others: Vec<Node> = Vec::new();
        while others.len() < 3 {
            let n = Node::new("eu", NodeType::Super, 1010 + others.len() as u16 * 10);
            if n.id() < me.id() {
                others.push(n);
            }
        }
        let mut members = vec![me.regional()];
        members.extend(others.iter().map(Node::regional));
        let step = m.round(
            NOW + 12 * SECOND,
            Observation {
                regional: members,
                bridge: obs.bridge,
            },
        );
        assert!(!step.view.is_bridge);
        assert!(has(&step, |a| *a == Action::LeaveBridge));
    }

    #[test]
    fn a_bridge_restamps_its_summary_only_on_change() {
        let me = Node::new("eu", NodeType::Super, 1000);
        let mut m = me.machine(true);
        let mut now = NOW;
        let head = |height| {
            Some(
                Head {
                    height,
                    hash: [1; 32],
                }
                .encode(),
            )
        };
        let mut obs = Observation {
            regional: vec![me.regional()],
            bridge: Some(vec![me.bridge()]),
        };
        obs.regional[0].head = head(4);
        let first = summary_value(&settle_as_bridge(&mut m, &mut now, &obs)).unwrap();
        assert_eq!(first.live, 1);
        let same = summary_value(&m.round(now, obs.clone())).unwrap();
        assert_eq!(
            same, first,
            "nothing changed: the same value, the old stamp"
        );
        // a head that only climbs waits SUMMARY_HEAD_EVERY_MS after the last stamp
        obs.regional[0].head = Some(
            Head {
                height: 5,
                hash: [1; 32],
            }
            .encode(),
        );
        let held = summary_value(&m.round(now + SECOND, obs.clone())).unwrap();
        assert_eq!(held, first);
        let later = first.updated_ms + keys::SUMMARY_HEAD_EVERY_MS;
        let moved = summary_value(&m.round(later, obs.clone())).unwrap();
        assert_eq!((moved.head_height, moved.updated_ms), (Some(5), later));
        // any other change is stamped at once
        let peer = Node::new("eu", NodeType::Full, 1010);
        obs.regional.push(peer.regional());
        let grown = summary_value(&m.round(later + 1, obs)).unwrap();
        assert_eq!((grown.live, grown.updated_ms), (2, later + 1));
    }

    #[test]
    fn a_bridge_copies_other_regions_and_sees_a_lost_one_missing() {
        let me = Node::new("eu", NodeType::Super, 1000);
        let na = Node::new("na", NodeType::Super, 2000);
        let asia = Node::new("asia", NodeType::Super, 3000);
        let mut m = me.machine(false);
        let mut now = NOW;
        let bridge = |asia_live: bool, asia_silence: u64, at: u64| {
            Some(vec![
                me.bridge(),
                publishing(
                    with_live(na.bridge(), true, 100),
                    &summary_of(&na, 4, 4, at),
                ),
                publishing(
                    with_live(asia.bridge(), asia_live, asia_silence),
                    &summary_of(&asia, 3, 3, at),
                ),
            ])
        };
        let obs = Observation {
            regional: vec![me.regional()],
            bridge: bridge(true, 100, now),
        };
        settle_as_bridge(&mut m, &mut now, &obs);
        let step = m.round(
            now,
            Observation {
                regional: vec![me.regional()],
                bridge: bridge(true, 100, now),
            },
        );
        assert!(step.view.missing_regions().is_empty());
        assert_eq!(step.view.live_regions().len(), 3);
        let (set, delete) = copies(&step).expect("a bridge publishes copies");
        let keys: Vec<&str> = set.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["region:asia", "region:na"]);
        assert!(delete.is_empty());
        // asia's bridge dies while na is heard: confirmed once silent a margin longer
        now += SECOND;
        let step = m.round(
            now,
            Observation {
                regional: vec![me.regional()],
                bridge: bridge(false, 3_000, now - 3_000),
            },
        );
        assert_eq!(step.view.missing_regions(), vec![asia.region.clone()]);
        assert!(step.view.regions[&asia.region].missing);
        let (set, _) = copies(&step).unwrap();
        let asia_copy = RegionSummary::decode(&set[0].1).unwrap();
        assert_eq!((asia_copy.region, asia_copy.live), (asia.region.clone(), 0));
    }

    #[test]
    fn a_bridge_holds_back_a_death_it_cannot_tell_from_its_own_deafness() {
        let me = Node::new("eu", NodeType::Super, 1000);
        let na = Node::new("na", NodeType::Super, 2000);
        let asia = Node::new("asia", NodeType::Super, 3000);
        let mut m = me.machine(false);
        let mut now = NOW;
        let obs = |asia_live: bool, silence: u64, at: u64| Observation {
            regional: vec![me.regional()],
            bridge: Some(vec![
                me.bridge(),
                publishing(
                    with_live(na.bridge(), true, silence),
                    &summary_of(&na, 4, 4, at),
                ),
                publishing(
                    with_live(asia.bridge(), asia_live, silence),
                    &summary_of(&asia, 3, 3, at),
                ),
            ]),
        };
        let first = obs(true, 100, now);
        settle_as_bridge(&mut m, &mut now, &first);
        m.round(now, obs(true, 100, now));
        // everybody fell silent at once: the node is deaf, asia is not lost
        now += SECOND;
        let step = m.round(now, obs(false, 1_200, now - 1_200));
        assert!(step.view.missing_regions().is_empty(), "held back");
        let recheck = step.recheck_in.expect("a recheck is due");
        assert!(recheck > Duration::ZERO && recheck <= Duration::from_secs(5));
    }

    #[test]
    fn a_bridge_of_another_cell_count_is_ignored() {
        let me = Node::new("eu", NodeType::Super, 1000);
        let na = Node::new("na", NodeType::Super, 2000);
        let mut m = me.machine(false);
        let mut now = NOW;
        let mut split = summary_of(&na, 4, 4, now);
        split.cells = 2;
        split.cell = cell::cell_of(na.id().as_str(), 2);
        let obs = Observation {
            regional: vec![me.regional()],
            bridge: Some(vec![me.bridge(), publishing(na.bridge(), &split)]),
        };
        settle_as_bridge(&mut m, &mut now, &obs);
        let step = m.round(now, obs);
        assert_eq!(step.view.regions.len(), 1, "only the own region");
        assert!(
            !has(&step, |a| matches!(a, Action::Joined { .. })),
            "not a peer either"
        );
    }

    #[test]
    fn a_bridge_of_the_own_cell_unknown_to_the_region_is_gossiped_with() {
        let me = Node::new("eu", NodeType::Super, 1000);
        let half = Node::new("eu", NodeType::Super, 1100);
        let mut m = me.machine(true);
        let mut now = NOW;
        let mut theirs = summary_of(&half, 5, 5, now);
        theirs.seeds = vec![half.addr, me.addr, SocketAddr::from(([127, 0, 0, 9], 1200))];
        let obs = Observation {
            regional: vec![me.regional()],
            bridge: Some(vec![me.bridge(), publishing(half.bridge(), &theirs)]),
        };
        settle_as_bridge(&mut m, &mut now, &obs);
        let step = m.round(now, obs);
        let gossip = step.actions.iter().find_map(|a| match a {
            Action::Gossip(addrs) => Some(addrs.clone()),
            _ => None,
        });
        assert_eq!(
            gossip,
            Some(vec![half.addr, SocketAddr::from(([127, 0, 0, 9], 1200))]),
            "the other half's seeds, not the members known already"
        );
    }

    #[test]
    fn a_non_bridge_reads_its_bridges_copies_and_keeps_them_when_blind_to_them() {
        let me = Node::new("eu", NodeType::Full, 1000);
        let bridge = Node::new("eu", NodeType::Super, 1010);
        let na = Node::new("na", NodeType::Super, 2000);
        let mut m = me.machine(false);
        let with_copy = |live: bool, at: u64| {
            let mut b = with_live(bridge.regional(), live, 0);
            b.kv = vec![("region:na".into(), summary_of(&na, 4, 4, at).encode())];
            regional(&[me.regional(), b])
        };
        let step = m.round(NOW, with_copy(true, NOW));
        assert!(!step.view.is_bridge);
        assert_eq!(step.view.regions[&na.region].live, 4);
        // a copy from a member that is not a bridge is not used
        let step = m.round(NOW + SECOND, {
            let mut o = with_copy(true, NOW);
            o.regional[1].kv[0].1 = summary_of(&na, 4, 0, NOW + SECOND).encode();
            let impostor = Node::new("eu", NodeType::Full, 1020);
            let mut i = impostor.regional();
            i.kv = vec![(
                "region:na".into(),
                summary_of(&na, 4, 0, NOW + SECOND).encode(),
            )];
            o.regional[1].kv = vec![("region:na".into(), summary_of(&na, 4, 4, NOW).encode())];
            o.regional.push(i);
            o
        });
        assert_eq!(step.view.regions[&na.region].live, 4);
        // its bridge restarted: the copies it hears come only from the dead incarnation, so
        // it is blind and keeps what it knew
        let mut old = with_live(bridge.regional(), false, 0);
        old.kv = vec![("region:na".into(), summary_of(&na, 4, 4, NOW).encode())];
        let restarted = bridge.sighted(card::chitchat_id(&bridge.identity, 2, bridge.addr));
        let step = m.round(NOW + 2 * SECOND, regional(&[me.regional(), old, restarted]));
        assert!(step
            .view
            .members
            .iter()
            .any(|x| x.node_id == bridge.id() && x.bridge));
        assert!(step.view.missing_regions().is_empty());
        assert_eq!(step.view.regions[&na.region].live, 4);
    }

    #[test]
    fn a_bridge_deletes_copies_of_regions_forgotten() {
        let me = Node::new("eu", NodeType::Super, 1000);
        let na = Node::new("na", NodeType::Super, 2000);
        let mut m = me.machine(false);
        let mut now = NOW;
        let obs = Observation {
            regional: vec![me.regional()],
            bridge: Some(vec![
                me.bridge(),
                publishing(na.bridge(), &summary_of(&na, 4, 4, now)),
            ]),
        };
        settle_as_bridge(&mut m, &mut now, &obs);
        m.round(now, obs);
        // na's bridge is gone from the bridge cluster; past the retention window (60 s)
        let alone = Observation {
            regional: vec![me.regional()],
            bridge: Some(vec![me.bridge()]),
        };
        let step = m.round(now + SECOND, alone.clone());
        assert_eq!(step.view.missing_regions(), vec![na.region.clone()]);
        let step = m.round(now + 62 * SECOND, alone);
        assert!(!step.view.regions.contains_key(&na.region));
        let (set, delete) = copies(&step).unwrap();
        assert!(set.is_empty());
        assert_eq!(delete, ["region:na".to_string()]);
    }

    #[test]
    fn a_node_joins_once_when_it_sees_a_peer_or_started_alone() {
        let me = Node::new("eu", NodeType::Full, 1000);
        let peer = Node::new("eu", NodeType::Full, 1010);
        let joined = |s: &Step| has(s, |a| matches!(a, Action::Joined { .. }));
        let mut waiting = me.machine(false);
        assert!(!joined(&waiting.round(NOW, regional(&[me.regional()]))));
        let step = waiting.round(NOW + SECOND, regional(&[me.regional(), peer.regional()]));
        assert!(has(&step, |a| *a
            == Action::Joined {
                live_peers: 1,
                bridge_peers_live: 0
            }));
        assert!(!joined(&waiting.round(
            NOW + 2 * SECOND,
            regional(&[me.regional(), peer.regional()])
        )));
        let mut first = me.machine(true);
        assert!(joined(&first.round(NOW, regional(&[me.regional()]))));
    }

    #[test]
    fn a_change_of_missing_regions_is_pushed_to_successors_and_random_peers() {
        let me = Node::new("eu", NodeType::Full, 1000);
        let bridge = Node::new("eu", NodeType::Super, 1010);
        let mut peers: Vec<Node> = (0..10)
            .map(|i| Node::new("eu", NodeType::Full, 1100 + i * 10))
            .collect();
        peers.push(bridge.clone());
        let na = Node::new("na", NodeType::Super, 2000);
        let mut m = me.machine(false);
        let obs = |na_live: u32, at: u64| {
            let mut members = vec![me.regional()];
            for p in &peers {
                let mut s = p.regional();
                if p.id() == bridge.id() {
                    s.kv = vec![("region:na".into(), summary_of(&na, 4, na_live, at).encode())];
                }
                members.push(s);
            }
            regional(&members)
        };
        let pushes = |s: &Step| -> Vec<Vec<SocketAddr>> {
            s.actions
                .iter()
                .filter_map(|a| match a {
                    Action::Gossip(t) => Some(t.clone()),
                    _ => None,
                })
                .collect()
        };
        assert!(
            pushes(&m.round(NOW, obs(4, NOW))).is_empty(),
            "nothing missing yet"
        );
        let step = m.round(NOW + SECOND, obs(0, NOW + SECOND));
        assert_eq!(step.view.missing_regions(), vec![na.region.clone()]);
        let targets = pushes(&step);
        assert_eq!(targets.len(), 1);
        let targets = &targets[0];
        assert_eq!(targets.len(), PUSH_SUCCESSORS + PUSH_FANOUT);
        let mut ring: Vec<(NodeId, SocketAddr)> = peers.iter().map(|p| (p.id(), p.addr)).collect();
        ring.sort();
        let next = ring.iter().position(|(id, _)| *id > me.id()).unwrap_or(0);
        let successors: Vec<SocketAddr> = (0..PUSH_SUCCESSORS)
            .map(|k| ring[(next + k) % ring.len()].1)
            .collect();
        assert_eq!(targets[..PUSH_SUCCESSORS], successors[..]);
        assert!(
            pushes(&m.round(NOW + 2 * SECOND, obs(0, NOW + SECOND))).is_empty(),
            "once"
        );
    }

    #[test]
    fn peers_are_persisted_on_change_every_minute_and_when_leaving() {
        let me = Node::new("eu", NodeType::Full, 1000);
        let peer = Node::new("eu", NodeType::Full, 1010);
        let mut m = me.machine(false);
        let persisted = |s: &Step| {
            s.actions.iter().find_map(|a| match a {
                Action::Persist { peers, .. } => Some(peers.len()),
                _ => None,
            })
        };
        assert_eq!(
            persisted(&m.round(NOW, regional(&[me.regional()]))),
            Some(1)
        );
        let both = regional(&[me.regional(), peer.regional()]);
        assert_eq!(
            persisted(&m.round(NOW + SECOND, both.clone())),
            Some(2),
            "a new peer"
        );
        assert_eq!(persisted(&m.round(NOW + 2 * SECOND, both.clone())), None);
        let refresh = NOW + SECOND + REFRESH_EVERY.as_millis() as u64;
        assert_eq!(persisted(&m.round(refresh, both)), Some(2), "refreshed");
        assert!(matches!(
            m.persist(refresh + 1, true),
            Some(Action::Persist { .. })
        ));
        assert_eq!(m.peer_records(), 2);
    }
}
