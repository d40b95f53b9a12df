//! Digest admission: how many members unknown to chitchat a gossip digest may introduce.
//! chitchat 0.13 creates a node state for every member a SYN or SYN-ACK digest names, before
//! any check of ours, so a flood of made-up members would grow its state until its own
//! digest no longer fits a datagram. The transport guard asks [`Admission::judge`] first.
//!
//! The rule: a digest that names only known members passes. New members may be introduced
//! by a *trusted* sender (the gossip address of a member whose card verified, or the answer
//! to a SYN this node sent there), at most `max(trusted_new_floor, known members)` per
//! digest and within a per-IP budget; a *stranger* may introduce only itself: at most
//! `stranger_max_new` ids, all on its own IP, within a per-IP and a node-wide budget.
//! A refused SYN still gets an answer (the guard clears its digest), so a newcomer over
//! budget learns the cluster and is introduced by the members it then gossips with.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use chitchat::ChitchatId;

/// Most keys tracked by a [`Buckets`] or in the SYN log; beyond it the stalest are dropped.
const MAX_TRACKED: usize = 4096;
/// Most ids remembered as admitted between two published views.
const MAX_ADMITTED: usize = 16_384;

/// What the membership task last saw of a cluster, published for its guard.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GuardView {
    /// Every member id chitchat holds a state for.
    pub known: HashSet<ChitchatId>,
    /// Gossip addresses of members whose cards verified.
    pub trusted: HashSet<SocketAddr>,
}

/// A shared, swappable [`GuardView`]: written by the membership task, read by the guard.
#[derive(Debug, Clone, Default)]
pub struct GuardHandle(Arc<RwLock<Arc<GuardView>>>);

impl GuardHandle {
    /// Replaces the view.
    pub fn publish(&self, view: GuardView) {
        let mut slot = self.0.write().unwrap_or_else(|e| e.into_inner());
        *slot = Arc::new(view);
    }

    /// The current view.
    pub fn get(&self) -> Arc<GuardView> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Which message carried the digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestKind {
    /// A SYN: unsolicited.
    Syn,
    /// A SYN-ACK: the answer to a SYN.
    SynAck,
}

/// Why a digest was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unreadable, or a member id that is not one of our node ids.
    Malformed,
    /// More new members than the sender may introduce in one digest.
    TooMany,
    /// A stranger naming new members on another host.
    Foreign,
    /// The sender's (or every stranger's) budget of new members is spent.
    Budget,
}

impl Refusal {
    /// Every reason, for metric labels.
    pub const ALL: [Refusal; 4] = [
        Refusal::Malformed,
        Refusal::TooMany,
        Refusal::Foreign,
        Refusal::Budget,
    ];

    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::TooMany => "too_many",
            Refusal::Foreign => "foreign",
            Refusal::Budget => "budget",
        }
    }
}

/// Limits of [`Admission`].
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// New ids a stranger may name in one digest.
    pub stranger_max_new: usize,
    /// New ids a trusted sender may always name in one digest (a cold start learns a whole
    /// region at once); larger clusters allow as many as they know.
    pub trusted_new_floor: usize,
    /// New ids strangers from one IP may introduce: burst.
    pub stranger_ip_burst: f64,
    /// New ids strangers from one IP may introduce: per second.
    pub stranger_ip_per_sec: f64,
    /// New ids all strangers together may introduce: burst.
    pub stranger_all_burst: f64,
    /// New ids all strangers together may introduce: per second.
    pub stranger_all_per_sec: f64,
    /// New ids trusted senders on one IP may introduce: burst.
    pub trusted_ip_burst: f64,
    /// New ids trusted senders on one IP may introduce: per second.
    pub trusted_ip_per_sec: f64,
    /// How long after a SYN its SYN-ACK counts as solicited, in ms.
    pub solicit_window_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            stranger_max_new: 2,
            trusted_new_floor: 2048,
            stranger_ip_burst: 16.0,
            stranger_ip_per_sec: 1.0,
            stranger_all_burst: 256.0,
            stranger_all_per_sec: 4.0,
            trusted_ip_burst: 2048.0,
            trusted_ip_per_sec: 8.0,
            solicit_window_ms: 10_000,
        }
    }
}

/// What [`decide`] needs to know about one digest.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestFacts {
    /// Ids chitchat does not know yet.
    pub new: usize,
    /// Of those, ids on another IP than the sender's.
    pub foreign: usize,
    /// Whether the sender is trusted.
    pub trusted: bool,
    /// Members chitchat knows.
    pub known: usize,
    /// Tokens left in the sender's IP budget (trusted or stranger, as fits).
    pub ip_tokens: f64,
    /// Tokens left in the strangers' node-wide budget.
    pub all_tokens: f64,
}

/// The rule, without state: may a digest with these facts pass?
pub fn decide(f: &DigestFacts, limits: &Limits) -> Result<(), Refusal> {
    if f.new == 0 {
        return Ok(());
    }
    let new = f.new as f64;
    if f.trusted {
        if f.new > limits.trusted_new_floor.max(f.known) {
            return Err(Refusal::TooMany);
        }
        if f.ip_tokens < new {
            return Err(Refusal::Budget);
        }
        return Ok(());
    }
    if f.new > limits.stranger_max_new {
        return Err(Refusal::TooMany);
    }
    if f.foreign > 0 {
        return Err(Refusal::Foreign);
    }
    if f.ip_tokens < new || f.all_tokens < new {
        return Err(Refusal::Budget);
    }
    Ok(())
}

/// A token bucket on a millisecond clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    tokens: f64,
    at_ms: u64,
}

impl Bucket {
    /// A full bucket.
    pub fn full(burst: f64, now_ms: u64) -> Self {
        Bucket {
            tokens: burst,
            at_ms: now_ms,
        }
    }

    /// Tokens available at `now_ms` (refilled at `per_sec` up to `burst`).
    pub fn available(&mut self, burst: f64, per_sec: f64, now_ms: u64) -> f64 {
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * per_sec).min(burst);
        self.at_ms = self.at_ms.max(now_ms);
        self.tokens
    }

    /// Takes `n` tokens (call after [`Bucket::available`] showed enough).
    pub fn take(&mut self, n: f64) {
        self.tokens = (self.tokens - n).max(0.0);
    }
}

/// Token buckets by IP, at most [`MAX_TRACKED`] of them.
#[derive(Debug, Default)]
pub struct Buckets(HashMap<IpAddr, Bucket>);

impl Buckets {
    /// The bucket of `ip`, made full if new.
    fn get(&mut self, ip: IpAddr, burst: f64, now_ms: u64) -> &mut Bucket {
        if self.0.len() >= MAX_TRACKED && !self.0.contains_key(&ip) {
            let stalest = self
                .0
                .iter()
                .min_by_key(|(_, b)| b.at_ms)
                .map(|(ip, _)| *ip);
            if let Some(stalest) = stalest {
                self.0.remove(&stalest);
            }
        }
        self.0
            .entry(ip)
            .or_insert_with(|| Bucket::full(burst, now_ms))
    }

    /// Buckets tracked.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is tracked.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An address with IPv4-mapped IPv6 folded to IPv4.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// The guard's state for one cluster: the published view, ids admitted since, SYNs sent and
/// the budgets.
#[derive(Debug)]
pub struct Admission {
    self_id: ChitchatId,
    limits: Limits,
    view: Arc<GuardView>,
    admitted: HashSet<ChitchatId>,
    syns: HashMap<SocketAddr, u64>,
    stranger_ip: Buckets,
    trusted_ip: Buckets,
    stranger_all: Bucket,
}

impl Admission {
    /// The state of the guard of `self_id`'s cluster.
    pub fn new(self_id: ChitchatId, limits: Limits, now_ms: u64) -> Self {
        let all = Bucket::full(limits.stranger_all_burst, now_ms);
        Admission {
            self_id,
            limits,
            view: Arc::new(GuardView::default()),
            admitted: HashSet::new(),
            syns: HashMap::new(),
            stranger_ip: Buckets::default(),
            trusted_ip: Buckets::default(),
            stranger_all: all,
        }
    }

    /// Takes a newly published view; ids admitted before it are now in it (or gone).
    pub fn set_view(&mut self, view: Arc<GuardView>) {
        if !Arc::ptr_eq(&self.view, &view) {
            self.view = view;
            self.admitted.clear();
        }
    }

    /// Records a SYN sent to `to`, so its SYN-ACK counts as solicited.
    pub fn sent_syn(&mut self, to: SocketAddr, now_ms: u64) {
        let to = canonical(to);
        if self.syns.len() >= MAX_TRACKED && !self.syns.contains_key(&to) {
            let window = self.limits.solicit_window_ms;
            self.syns
                .retain(|_, at| now_ms.saturating_sub(*at) <= window);
            if self.syns.len() >= MAX_TRACKED {
                let stalest = self.syns.iter().min_by_key(|(_, at)| **at).map(|(a, _)| *a);
                if let Some(stalest) = stalest {
                    self.syns.remove(&stalest);
                }
            }
        }
        self.syns.insert(to, now_ms);
    }

    fn known(&self, id: &ChitchatId) -> bool {
        *id == self.self_id || self.view.known.contains(id) || self.admitted.contains(id)
    }

    /// Judges a digest from `from` naming `ids` (read from the digest; `Err` when it could
    /// not be read). Admitted new ids draw on the budgets and count as known from now on.
    pub fn judge<E>(
        &mut self,
        kind: DigestKind,
        from: SocketAddr,
        ids: Result<Vec<ChitchatId>, E>,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        let Ok(ids) = ids else {
            return Err(Refusal::Malformed);
        };
        let from = canonical(from);
        let mut new: Vec<ChitchatId> = ids.into_iter().filter(|id| !self.known(id)).collect();
        new.sort();
        new.dedup();
        // a SYN-ACK answers at most one SYN
        let solicited = kind == DigestKind::SynAck
            && self
                .syns
                .remove(&from)
                .is_some_and(|at| now_ms.saturating_sub(at) <= self.limits.solicit_window_ms);
        if new.is_empty() {
            return Ok(());
        }
        let trusted = solicited || self.view.trusted.contains(&from);
        let foreign = new
            .iter()
            .filter(|id| id.gossip_advertise_addr.ip().to_canonical() != from.ip())
            .count();
        let l = &self.limits;
        let ip_tokens = if trusted {
            self.trusted_ip
                .get(from.ip(), l.trusted_ip_burst, now_ms)
                .available(l.trusted_ip_burst, l.trusted_ip_per_sec, now_ms)
        } else {
            self.stranger_ip
                .get(from.ip(), l.stranger_ip_burst, now_ms)
                .available(l.stranger_ip_burst, l.stranger_ip_per_sec, now_ms)
        };
        let all_tokens =
            self.stranger_all
                .available(l.stranger_all_burst, l.stranger_all_per_sec, now_ms);
        let facts = DigestFacts {
            new: new.len(),
            foreign,
            trusted,
            known: self.view.known.len(),
            ip_tokens,
            all_tokens,
        };
        decide(&facts, l)?;
        let n = new.len() as f64;
        if trusted {
            self.trusted_ip.get(from.ip(), 0.0, now_ms).take(n);
        } else {
            self.stranger_ip.get(from.ip(), 0.0, now_ms).take(n);
            self.stranger_all.take(n);
        }
        if self.admitted.len() + new.len() > MAX_ADMITTED {
            self.admitted.clear();
        }
        self.admitted.extend(new);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(new: usize, trusted: bool) -> DigestFacts {
        DigestFacts {
            new,
            foreign: 0,
            trusted,
            known: 10,
            ip_tokens: 1e9,
            all_tokens: 1e9,
        }
    }

    #[test]
    fn decide_passes_digests_without_new_ids() {
        let l = Limits::default();
        let mut f = facts(0, false);
        f.foreign = 3;
        f.ip_tokens = 0.0;
        f.all_tokens = 0.0;
        assert_eq!(decide(&f, &l), Ok(()));
    }

    #[test]
    fn decide_bounds_a_stranger_at_each_edge() {
        let l = Limits::default();
        assert_eq!(decide(&facts(2, false), &l), Ok(()));
        assert_eq!(decide(&facts(3, false), &l), Err(Refusal::TooMany));
        let mut f = facts(1, false);
        f.foreign = 1;
        assert_eq!(decide(&f, &l), Err(Refusal::Foreign));
        let mut f = facts(2, false);
        f.ip_tokens = 2.0;
        f.all_tokens = 2.0;
        assert_eq!(decide(&f, &l), Ok(()));
        f.ip_tokens = 1.99;
        assert_eq!(decide(&f, &l), Err(Refusal::Budget));
        f.ip_tokens = 2.0;
        f.all_tokens = 1.99;
        assert_eq!(decide(&f, &l), Err(Refusal::Budget));
    }

    #[test]
    fn decide_bounds_a_trusted_sender_by_cluster_size_and_budget() {
        let l = Limits::default();
        assert_eq!(decide(&facts(l.trusted_new_floor, true), &l), Ok(()));
        assert_eq!(
            decide(&facts(l.trusted_new_floor + 1, true), &l),
            Err(Refusal::TooMany)
        );
        let mut big = facts(5000, true);
        big.known = 5000;
        assert_eq!(decide(&big, &l), Ok(()));
        big.new = 5001;
        assert_eq!(decide(&big, &l), Err(Refusal::TooMany));
        // trusted senders may name other hosts and ignore the strangers' budget
        let mut f = facts(100, true);
        f.foreign = 100;
        f.all_tokens = 0.0;
        f.ip_tokens = 100.0;
        assert_eq!(decide(&f, &l), Ok(()));
        f.ip_tokens = 99.5;
        assert_eq!(decide(&f, &l), Err(Refusal::Budget));
    }

    #[test]
    fn bucket_refills_to_its_burst() {
        let mut b = Bucket::full(4.0, 1000);
        assert_eq!(b.available(4.0, 2.0, 1000), 4.0);
        b.take(4.0);
        assert_eq!(b.available(4.0, 2.0, 1000), 0.0);
        assert_eq!(b.available(4.0, 2.0, 1500), 1.0);
        assert_eq!(b.available(4.0, 2.0, 60_000), 4.0);
        // a clock that goes back refills nothing
        b.take(4.0);
        assert_eq!(b.available(4.0, 2.0, 10), 0.0);
    }

    #[test]
    fn buckets_track_a_bounded_number_of_ips() {
        let mut b = Buckets::default();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            b.get(IpAddr::from(std::net::Ipv4Addr::from(i)), 1.0, u64::from(i));
        }
        assert_eq!(b.len(), MAX_TRACKED);
        assert!(!b.is_empty());
    }

    const SELF: &str = "00000000000000aa";

    fn id(n: u32, addr: &str) -> ChitchatId {
        ChitchatId::new(format!("{n:016x}"), 1, addr.parse().unwrap())
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn admission() -> Admission {
        Admission::new(
            ChitchatId::new(SELF, 1, addr("10.0.0.1:7000")),
            Limits::default(),
            0,
        )
    }

    fn ok(ids: Vec<ChitchatId>) -> Result<Vec<ChitchatId>, ()> {
        Ok(ids)
    }

    #[test]
    fn unreadable_digests_are_malformed() {
        let mut a = admission();
        let r = a.judge(DigestKind::Syn, addr("10.0.0.2:7000"), Err(()), 0);
        assert_eq!(r, Err(Refusal::Malformed));
    }

    #[test]
    fn a_newcomer_introduces_itself_but_nobody_else() {
        let mut a = admission();
        let from = addr("10.0.0.2:7000");
        let me = ChitchatId::new(SELF, 1, addr("10.0.0.1:7000"));
        assert_eq!(
            a.judge(
                DigestKind::Syn,
                from,
                ok(vec![id(2, "10.0.0.2:7000"), me.clone()]),
                0
            ),
            Ok(())
        );
        // now known: naming it again costs nothing
        assert_eq!(
            a.judge(DigestKind::Syn, from, ok(vec![id(2, "10.0.0.2:7000")]), 0),
            Ok(())
        );
        // a stranger naming a member on another host, or three new ones
        assert_eq!(
            a.judge(DigestKind::Syn, from, ok(vec![id(3, "10.0.0.3:7000")]), 0),
            Err(Refusal::Foreign)
        );
        let three = vec![
            id(4, "10.0.0.2:7001"),
            id(5, "10.0.0.2:7002"),
            id(6, "10.0.0.2:7003"),
        ];
        assert_eq!(
            a.judge(DigestKind::Syn, from, ok(three), 0),
            Err(Refusal::TooMany)
        );
    }

    #[test]
    fn a_stranger_ip_spends_its_budget_then_refills() {
        let mut a = admission();
        let l = Limits::default();
        let from = addr("10.0.0.9:1");
        for n in 0..l.stranger_ip_burst as u32 {
            let r = a.judge(
                DigestKind::Syn,
                from,
                ok(vec![id(100 + n, "10.0.0.9:2")]),
                0,
            );
            assert_eq!(r, Ok(()), "{n}");
        }
        let next = || ok(vec![id(999, "10.0.0.9:2")]);
        assert_eq!(
            a.judge(DigestKind::Syn, from, next(), 0),
            Err(Refusal::Budget)
        );
        // refused ids are not remembered
        assert_eq!(
            a.judge(DigestKind::Syn, from, next(), 999),
            Err(Refusal::Budget)
        );
        assert_eq!(a.judge(DigestKind::Syn, from, next(), 1000), Ok(()));
        // another IP has its own budget
        let other = addr("10.0.0.10:1");
        assert_eq!(
            a.judge(DigestKind::Syn, other, ok(vec![id(7, "10.0.0.10:1")]), 1000),
            Ok(())
        );
    }

    #[test]
    fn strangers_share_a_node_wide_budget() {
        let mut a = admission();
        let l = Limits::default();
        let mut admitted = 0;
        for n in 0..(l.stranger_all_burst as u32 + 10) {
            let ip = std::net::Ipv4Addr::from(0x0b00_0000 + n);
            let from = SocketAddr::new(ip.into(), 1);
            let new = ChitchatId::new(format!("{n:016x}"), 0, from);
            if a.judge(DigestKind::Syn, from, ok(vec![new]), 0).is_ok() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, l.stranger_all_burst as u32);
    }

    #[test]
    fn a_solicited_syn_ack_may_teach_a_whole_region_once() {
        let mut a = admission();
        let seed = addr("10.0.1.1:7000");
        let region: Vec<ChitchatId> = (0..1500).map(|n| id(n, "10.0.2.1:7000")).collect();
        // not solicited: a stranger
        assert_eq!(
            a.judge(DigestKind::SynAck, seed, ok(region.clone()), 0),
            Err(Refusal::TooMany)
        );
        a.sent_syn(seed, 0);
        // a SYN does not become solicited by our SYN
        assert_eq!(
            a.judge(DigestKind::Syn, seed, ok(region.clone()), 10),
            Err(Refusal::TooMany)
        );
        assert_eq!(
            a.judge(DigestKind::SynAck, seed, ok(region.clone()), 10),
            Ok(())
        );
        // one answer per SYN
        let more: Vec<ChitchatId> = (2000..2100).map(|n| id(n, "10.0.2.1:7000")).collect();
        assert_eq!(
            a.judge(DigestKind::SynAck, seed, ok(more.clone()), 20),
            Err(Refusal::TooMany)
        );
        // too late
        a.sent_syn(seed, 100);
        assert_eq!(
            a.judge(DigestKind::SynAck, seed, ok(more.clone()), 100 + 10_001),
            Err(Refusal::TooMany)
        );
        a.sent_syn(seed, 20_000);
        assert_eq!(
            a.judge(DigestKind::SynAck, seed, ok(more), 20_000 + 10_000),
            Ok(())
        );
    }

    #[test]
    fn trusted_senders_draw_on_their_ip_budget() {
        let mut a = admission();
        let member = addr("10.0.3.1:7000");
        a.set_view(Arc::new(GuardView {
            known: HashSet::new(),
            trusted: [member].into_iter().collect(),
        }));
        let l = Limits::default();
        let batch = |from: u32, n: u32| -> Vec<ChitchatId> {
            (from..from + n).map(|k| id(k, "10.0.4.1:7000")).collect()
        };
        assert_eq!(
            a.judge(
                DigestKind::Syn,
                member,
                ok(batch(0, l.trusted_new_floor as u32)),
                0
            ),
            Ok(())
        );
        assert_eq!(
            a.judge(DigestKind::Syn, member, ok(batch(10_000, 9)), 1000),
            Err(Refusal::Budget)
        );
        assert_eq!(
            a.judge(DigestKind::Syn, member, ok(batch(10_000, 8)), 1000),
            Ok(())
        );
    }

    #[test]
    fn a_new_view_replaces_what_was_admitted() {
        let mut a = admission();
        let from = addr("10.0.0.2:7000");
        let newcomer = id(2, "10.0.0.2:7000");
        assert_eq!(
            a.judge(DigestKind::Syn, from, ok(vec![newcomer.clone()]), 0),
            Ok(())
        );
        assert!(a.known(&newcomer));
        let view = Arc::new(GuardView::default());
        a.set_view(view.clone());
        assert!(!a.known(&newcomer), "gone from chitchat: new again");
        a.set_view(Arc::new(GuardView {
            known: [newcomer.clone()].into_iter().collect(),
            trusted: HashSet::new(),
        }));
        assert!(a.known(&newcomer));
    }

    #[test]
    fn mapped_ipv6_senders_count_as_their_ipv4() {
        let mut a = admission();
        let mapped = addr("[::ffff:10.0.0.2]:7000");
        assert_eq!(
            a.judge(DigestKind::Syn, mapped, ok(vec![id(2, "10.0.0.2:7000")]), 0),
            Ok(())
        );
        assert_eq!(canonical(mapped), addr("10.0.0.2:7000"));
    }

    #[test]
    fn syn_log_is_bounded() {
        let mut a = admission();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            let to = SocketAddr::new(std::net::Ipv4Addr::from(i).into(), 1);
            a.sent_syn(to, u64::from(i));
        }
        assert!(a.syns.len() <= MAX_TRACKED);
    }

    #[test]
    fn refusal_labels_are_distinct() {
        let labels: HashSet<&str> = Refusal::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), Refusal::ALL.len());
    }
}
