//! Early membership rounds: what wakes the worker between its ticks (a copied region summary
//! that disagrees with the view on whether the region is missing, a change in the bridge
//! cluster's live set), how often it may wake, and whom it pushes a changed view to.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use chitchat::{ChitchatId, NodeState};
use rand::seq::SliceRandom;
use rand::Rng;
use tokio::sync::watch;

use super::keys::RegionSummary;
use super::view::MembershipView;

/// Bounds the rounds run on a wake-up: a requested round runs at once unless the last round
/// (woken or ticked) ran less than `min_gap_ms` ago, then at that last round plus the gap.
/// Requests made while one is pending merge into it, so a burst of changes costs at most one
/// round per gap.
#[derive(Debug, Clone)]
pub struct WakeLimiter {
    min_gap_ms: u64,
    last_round_ms: Option<u64>,
    pending: bool,
    /// A round asked for at this time ([`WakeLimiter::request_after`]).
    later: Option<u64>,
}

impl WakeLimiter {
    /// A limiter allowing at most one woken round per `min_gap_ms`.
    pub fn new(min_gap_ms: u64) -> Self {
        Self {
            min_gap_ms,
            last_round_ms: None,
            pending: false,
            later: None,
        }
    }

    /// A change asks for a round.
    pub fn request(&mut self) {
        self.pending = true;
    }

    /// Asks for a round `wait_ms` after `now_ms` (a decision that comes due then); an
    /// earlier request, or a round that runs before, answers it.
    pub fn request_after(&mut self, wait_ms: u64, now_ms: u64) {
        let at = now_ms.saturating_add(wait_ms);
        self.later = Some(self.later.map_or(at, |l| l.min(at)));
    }

    /// Milliseconds until the requested round may run (0: now); `None` when none is requested.
    pub fn due_in(&self, now_ms: u64) -> Option<u64> {
        let wanted = match (self.pending, self.later) {
            (true, _) => 0,
            (false, Some(at)) => at,
            (false, None) => return None,
        };
        let earliest = self
            .last_round_ms
            .map_or(0, |last| last.saturating_add(self.min_gap_ms));
        Some(earliest.max(wanted).saturating_sub(now_ms))
    }

    /// A round ran at `now_ms` (ticked or woken): it answers every request made before it.
    pub fn ran(&mut self, now_ms: u64) {
        self.last_round_ms = Some(now_ms);
        self.pending = false;
        self.later = None;
    }
}

/// Whether a copied summary (`region:<name>` = `value`) says the region is missing while the
/// view says it is not, or the reverse; an unknown region counts as not missing. A value that
/// does not decode, or names another region, wakes nothing.
pub fn copy_disagrees(view: &MembershipView, name: &str, value: &str) -> bool {
    let Some(summary) = RegionSummary::decode(value) else {
        return false;
    };
    if summary.region.as_str() != name || summary.region == view.self_region {
        return false;
    }
    let viewed_missing = view
        .regions
        .get(&summary.region)
        .is_some_and(|r| r.live == 0);
    (summary.live == 0) != viewed_missing
}

/// Whom to gossip with at once when the view's missing regions changed: the `successors`
/// live members of the view's own region (its cell when split) that follow the node in
/// node-id order, wrapping around, then up to `fanout` others picked at random; distinct,
/// never the node itself.
///
/// The random picks spread the news in a few network delays, but with every node picking
/// 4 at random about e^-4 = 1.8 % of a region is picked by nobody and waits for its own
/// next gossip round (the last survivors to see a region cut, up to 1 s after the rest;
/// docs/adr/0010). The successors close that gap:
/// each node's predecessors in the ring are among the first to learn, and they push to it.
pub fn push_targets(
    view: &MembershipView,
    successors: usize,
    fanout: usize,
    rng: &mut impl Rng,
) -> Vec<SocketAddr> {
    let mut peers: Vec<(&str, SocketAddr)> = view
        .live_peers()
        .map(|m| (m.node_id.as_str(), m.gossip_addr))
        .collect();
    peers.sort_unstable();
    peers.dedup();
    // the ring from the node's successor on
    let me = view.self_id.as_str();
    let start = peers.partition_point(|(id, _)| *id < me);
    peers.rotate_left(start);
    let (ring, rest) = peers.split_at(successors.min(peers.len()));
    ring.iter()
        .chain(rest.choose_multiple(rng, fanout))
        .map(|(_, addr)| *addr)
        .collect()
}

/// Follows the bridge cluster's live set (chitchat's live-nodes watch, which also fires when
/// a live member's version moves) and reports only changes in who is live.
pub struct BridgeLiveWatch {
    rx: watch::Receiver<BTreeMap<ChitchatId, NodeState>>,
    live: BTreeSet<ChitchatId>,
}

impl BridgeLiveWatch {
    /// Starts following from the watch's current value.
    pub fn new(rx: watch::Receiver<BTreeMap<ChitchatId, NodeState>>) -> Self {
        let live = rx.borrow().keys().cloned().collect();
        Self { rx, live }
    }

    /// Waits for the next change of the watch: `Some(true)` when the live set changed,
    /// `Some(false)` when only versions moved, `None` when the cluster is gone.
    pub async fn changed(&mut self) -> Option<bool> {
        self.rx.changed().await.ok()?;
        let live: BTreeSet<ChitchatId> = self.rx.borrow_and_update().keys().cloned().collect();
        if live == self.live {
            return Some(false);
        }
        self.live = live;
        Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Identity, NodeId, NodeType};
    use crate::membership::view::{Member, RegionStatus};
    use crate::region::Region;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn region(name: &str) -> Region {
        Region::new(name).unwrap()
    }

    fn view_with(regions: &[(&str, u32)]) -> MembershipView {
        let id = Identity::generate().node_id().clone();
        let mut view = MembershipView::empty(id, region("eu"));
        for (name, live) in regions {
            view.regions
                .insert(region(name), RegionStatus::counted(region(name), 3, *live));
        }
        view
    }

    fn copy(name: &str, live: u32) -> String {
        RegionStatus::counted(region(name), 3, live)
            .to_summary(1_000)
            .encode()
    }

    #[test]
    fn limiter_runs_at_once_after_a_quiet_gap() {
        let mut l = WakeLimiter::new(200);
        assert_eq!(l.due_in(0), None, "nothing requested");
        l.request();
        assert_eq!(l.due_in(0), Some(0), "no round ran yet");
        l.ran(1_000);
        assert_eq!(l.due_in(1_000), None, "the round answered the request");
        l.request();
        assert_eq!(l.due_in(1_200), Some(0), "exactly the gap later");
        assert_eq!(l.due_in(5_000), Some(0));
    }

    #[test]
    fn limiter_delays_a_request_inside_the_gap() {
        let mut l = WakeLimiter::new(200);
        l.ran(1_000);
        l.request();
        assert_eq!(l.due_in(1_000), Some(200));
        assert_eq!(l.due_in(1_199), Some(1));
        assert_eq!(l.due_in(1_200), Some(0));
    }

    #[test]
    fn limiter_merges_a_burst_into_one_round_per_gap() {
        let mut l = WakeLimiter::new(200);
        l.ran(0);
        let mut rounds = 0;
        for now in 0..1_000u64 {
            l.request();
            if l.due_in(now) == Some(0) {
                l.ran(now);
                rounds += 1;
            }
        }
        assert_eq!(rounds, 4, "one round at 200, 400, 600 and 800 ms");
    }

    #[test]
    fn a_tick_round_answers_a_pending_request() {
        let mut l = WakeLimiter::new(200);
        l.request();
        l.ran(50);
        assert_eq!(l.due_in(60), None);
    }

    #[test]
    fn a_request_for_later_waits_for_its_time_and_the_gap() {
        let mut l = WakeLimiter::new(200);
        l.ran(1_000);
        l.request_after(500, 1_000);
        l.request_after(700, 1_000);
        assert_eq!(l.due_in(1_000), Some(500), "the earlier of the two");
        assert_eq!(l.due_in(1_500), Some(0));
        l.ran(1_500);
        assert_eq!(l.due_in(1_500), None, "answered by the round");
        l.request_after(50, 1_500);
        assert_eq!(l.due_in(1_500), Some(200), "not inside the gap");
        l.request();
        assert_eq!(
            l.due_in(1_600),
            Some(100),
            "a request now is not held to the later time"
        );
    }

    #[test]
    fn copy_disagreeing_on_missing_wakes() {
        let view = view_with(&[("na", 3), ("asia", 0)]);
        assert!(copy_disagrees(&view, "na", &copy("na", 0)), "na lost");
        assert!(
            !copy_disagrees(&view, "na", &copy("na", 2)),
            "na still live"
        );
        assert!(copy_disagrees(&view, "asia", &copy("asia", 1)), "asia back");
        assert!(
            !copy_disagrees(&view, "asia", &copy("asia", 0)),
            "asia still lost"
        );
        assert!(
            copy_disagrees(&view, "sa", &copy("sa", 0)),
            "unknown region lost"
        );
        assert!(
            !copy_disagrees(&view, "sa", &copy("sa", 2)),
            "unknown region live"
        );
    }

    #[test]
    fn odd_copies_wake_nothing() {
        let view = view_with(&[("na", 3)]);
        assert!(!copy_disagrees(&view, "na", "junk"));
        assert!(!copy_disagrees(&view, "asia", &copy("na", 0)), "wrong key");
        assert!(!copy_disagrees(&view, "eu", &copy("eu", 0)), "own region");
    }

    /// A full member of `eu` gossiping on 127.0.0.1:(9000 + `i`).
    fn member(i: u16, node_id: NodeId, live: bool) -> Member {
        Member {
            node_id,
            generation: 1,
            gossip_addr: SocketAddr::from(([127, 0, 0, 1], 9_000 + i)),
            region: region("eu"),
            node_type: NodeType::Full,
            live,
            ready: true,
            head: None,
            last_seen_ms: 0,
            bridge: false,
        }
    }

    #[test]
    fn push_targets_are_distinct_live_peers() {
        let mut view = view_with(&[]);
        let me = view.self_id.clone();
        view.members.push(member(0, me, true));
        for i in 1..=5u16 {
            let id = Identity::generate().node_id().clone();
            view.members.push(member(i, id, i != 5));
        }
        let mut rng = StdRng::seed_from_u64(1);
        let picked = push_targets(&view, 1, 2, &mut rng);
        assert_eq!(picked.len(), 3);
        let distinct: BTreeSet<_> = picked.iter().collect();
        assert_eq!(distinct.len(), 3);
        for addr in &picked {
            assert!((9_001..=9_004).contains(&addr.port()), "{addr}");
        }
        let all = push_targets(&view, 2, 10, &mut rng);
        assert_eq!(all.len(), 4, "only the live peers, never self");
        let distinct: BTreeSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), 4);
    }

    #[test]
    fn every_member_is_pushed_to_by_its_ring_predecessors() {
        let ids: Vec<_> = (0..20)
            .map(|_| Identity::generate().node_id().clone())
            .collect();
        let views: Vec<MembershipView> = ids
            .iter()
            .map(|me| {
                let mut view = MembershipView::empty(me.clone(), region("eu"));
                for (i, id) in (0u16..).zip(&ids) {
                    view.members.push(member(i, id.clone(), true));
                }
                view
            })
            .collect();
        let mut rng = StdRng::seed_from_u64(3);
        let mut pushed_to = vec![0; ids.len()];
        for view in &views {
            // no random picks: only the ring
            for a in push_targets(view, 2, 0, &mut rng) {
                pushed_to[usize::from(a.port() - 9_000)] += 1;
            }
        }
        assert!(pushed_to.iter().all(|&n| n == 2), "{pushed_to:?}");
    }

    fn live_map(ids: &[u16], version: u64) -> BTreeMap<ChitchatId, NodeState> {
        ids.iter()
            .map(|&i| {
                let id = ChitchatId::new(
                    format!("n{i}"),
                    1,
                    SocketAddr::from(([127, 0, 0, 1], 9_000 + i)),
                );
                let mut state = NodeState::for_test();
                state.set_max_version(version);
                (id, state)
            })
            .collect()
    }

    #[tokio::test]
    async fn bridge_watch_reports_only_live_set_changes() {
        let (tx, rx) = watch::channel(live_map(&[1, 2], 1));
        let mut w = BridgeLiveWatch::new(rx);
        tx.send(live_map(&[1, 2], 2)).unwrap();
        assert_eq!(w.changed().await, Some(false), "only a version moved");
        tx.send(live_map(&[1], 2)).unwrap();
        assert_eq!(w.changed().await, Some(true), "a bridge died");
        tx.send(live_map(&[1, 3], 2)).unwrap();
        assert_eq!(w.changed().await, Some(true), "another one came");
        drop(tx);
        assert_eq!(w.changed().await, None, "the cluster is gone");
    }
}
