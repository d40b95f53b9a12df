//! Gossip transport guard: chitchat's UDP socket wrapped with per-source rate limits, digest
//! admission (see [`super::admission`]) and traffic counters, so datagram floods and digests
//! naming made-up members cannot starve the node or grow chitchat's state.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::time::Instant;

use async_trait::async_trait;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpTransport};
use chitchat::{ChitchatEnvelope, ChitchatId, ChitchatMessage};
use prometheus::IntCounter;

use super::admission::{Admission, DigestKind, GuardHandle, Limits, Refusal};
use super::digest::checked_ids;
use crate::metrics::Metrics;

/// Per-source-IP datagram budget: sustained rate per second.
pub const SOURCE_RATE_PER_SEC: f64 = 200.0;
/// Per-source-IP datagram budget: burst size.
pub const SOURCE_BURST: f64 = 400.0;
/// Most sources tracked at once; beyond it the stalest are forgotten.
const MAX_TRACKED_SOURCES: usize = 4096;

/// Counters of one cluster's gossip traffic.
#[derive(Clone)]
pub struct GossipCounters {
    sent_msgs: IntCounter,
    sent_bytes: IntCounter,
    recv_msgs: IntCounter,
    recv_bytes: IntCounter,
    dropped_msgs: IntCounter,
    dropped_bytes: IntCounter,
    refused: [IntCounter; Refusal::ALL.len()],
}

impl GossipCounters {
    /// Counters of `cluster` (a `metrics::CLUSTER_*` label).
    pub fn new(metrics: &Metrics, cluster: &str) -> Self {
        let m = |d: &str| metrics.gossip_messages.with_label_values(&[cluster, d]);
        let b = |d: &str| metrics.gossip_bytes.with_label_values(&[cluster, d]);
        GossipCounters {
            sent_msgs: m("sent"),
            sent_bytes: b("sent"),
            recv_msgs: m("received"),
            recv_bytes: b("received"),
            dropped_msgs: m("dropped"),
            dropped_bytes: b("dropped"),
            refused: Refusal::ALL.map(|r| {
                metrics
                    .gossip_digests_refused
                    .with_label_values(&[cluster, r.as_str()])
            }),
        }
    }

    fn refused(&self, reason: Refusal) -> &IntCounter {
        let i = Refusal::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or_default();
        &self.refused[i]
    }
}

/// A token bucket per source IP.
#[derive(Debug, Default)]
pub struct SourceLimiter {
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl SourceLimiter {
    /// Takes one token for `ip` at `now`; false when the source is over its budget.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.buckets.len() >= MAX_TRACKED_SOURCES && !self.buckets.contains_key(&ip) {
            let stalest = self
                .buckets
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(ip, _)| *ip);
            if let Some(stalest) = stalest {
                self.buckets.remove(&stalest);
            }
        }
        let (tokens, last) = self.buckets.entry(ip).or_insert((SOURCE_BURST, now));
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * SOURCE_RATE_PER_SEC).min(SOURCE_BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Makes the raw transport under one cluster's gossip socket: UDP in a node, an
/// in-memory network in the simulator.
pub type TransportFactory = Arc<dyn Fn() -> Box<dyn Transport> + Send + Sync>;

/// The real network: chitchat's UDP transport.
pub fn udp() -> TransportFactory {
    Arc::new(|| Box::new(UdpTransport) as Box<dyn Transport>)
}

/// A chitchat [`Transport`] with the guard and counters around another transport.
pub struct GuardedTransport {
    inner: Box<dyn Transport>,
    counters: GossipCounters,
    self_id: ChitchatId,
    view: GuardHandle,
}

impl GuardedTransport {
    /// Guards `inner` for the cluster member `self_id`, admitting digests against `view`
    /// (published by the membership task) and counting into `counters`.
    pub fn new(
        inner: Box<dyn Transport>,
        counters: GossipCounters,
        self_id: ChitchatId,
        view: GuardHandle,
    ) -> Self {
        GuardedTransport {
            inner,
            counters,
            self_id,
            view,
        }
    }
}

#[async_trait]
impl Transport for GuardedTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let inner = self.inner.open(listen_addr).await?;
        Ok(Box::new(GuardedSocket {
            inner,
            counters: self.counters.clone(),
            limiter: SourceLimiter::default(),
            admission: Admission::new(self.self_id.clone(), Limits::default(), 0),
            view: self.view.clone(),
            started: Instant::now(),
        }))
    }
}

struct GuardedSocket {
    inner: Box<dyn Socket>,
    counters: GossipCounters,
    limiter: SourceLimiter,
    admission: Admission,
    view: GuardHandle,
    started: Instant,
}

/// What the guard does with a received envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Hand it to chitchat as is.
    Pass,
    /// Hand it to chitchat without its digest: a refused SYN still gets an answer.
    Strip(Refusal),
    /// Do not hand it over.
    Drop(Refusal),
    /// Over the source's datagram rate: dropped unread.
    RateLimited,
}

impl GuardedSocket {
    fn now_ms(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.started)
            .as_millis() as u64
    }

    /// Judges the digest a SYN or SYN-ACK carries; strips or drops refused ones.
    fn admit(&mut self, outcome: &mut RecvOutcome) -> Action {
        let now_ms = self.now_ms();
        self.admission.set_view(self.view.get());
        let from = outcome.from_addr;
        let action = match &outcome.envelope.message {
            ChitchatMessage::Syn { digest, .. } => {
                let verdict = self.admission.judge(
                    DigestKind::Syn,
                    from,
                    checked_ids(digest.node_ids()),
                    now_ms,
                );
                match verdict {
                    Ok(()) => Action::Pass,
                    Err(Refusal::Malformed) => Action::Drop(Refusal::Malformed),
                    Err(r) => Action::Strip(r),
                }
            }
            ChitchatMessage::SynAck { digest, .. } => {
                let verdict = self.admission.judge(
                    DigestKind::SynAck,
                    from,
                    checked_ids(digest.node_ids()),
                    now_ms,
                );
                match verdict {
                    Ok(()) => Action::Pass,
                    Err(r) => Action::Drop(r),
                }
            }
            _ => Action::Pass,
        };
        if let (Action::Strip(_), ChitchatMessage::Syn { digest, .. }) =
            (action, &mut outcome.envelope.message)
        {
            *digest = Default::default();
        }
        action
    }
}

#[async_trait]
impl Socket for GuardedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.inner.local_addr()
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        if matches!(envelope.message, ChitchatMessage::Syn { .. }) {
            let now_ms = self.now_ms();
            self.admission.sent_syn(to, now_ms);
        }
        let outcome = self.inner.send(to, envelope).await?;
        self.counters.sent_msgs.inc();
        self.counters
            .sent_bytes
            .inc_by(outcome.num_bytes_sent as u64);
        Ok(outcome)
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            let mut outcome = self.inner.recv().await?;
            let bytes = outcome.num_bytes_received as u64;
            let action = if self.limiter.allow(outcome.from_addr.ip(), Instant::now()) {
                self.admit(&mut outcome)
            } else {
                Action::RateLimited
            };
            if let Action::Strip(r) | Action::Drop(r) = action {
                self.counters.refused(r).inc();
            }
            match action {
                Action::Pass | Action::Strip(_) => {
                    self.counters.recv_msgs.inc();
                    self.counters.recv_bytes.inc_by(bytes);
                    return Ok(outcome);
                }
                Action::Drop(_) | Action::RateLimited => {
                    self.counters.dropped_msgs.inc();
                    self.counters.dropped_bytes.inc_by(bytes);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chitchat::transport::ChannelTransport;
    use chitchat::{spawn_chitchat, ChitchatConfig, ChitchatHandle, FailureDetectorConfig};

    use super::*;
    use crate::metrics::CLUSTER_REGIONAL;

    fn node_id(n: u16) -> ChitchatId {
        ChitchatId::new(
            format!("{n:016x}"),
            1,
            SocketAddr::from(([10, 0, 0, n as u8], 7000)),
        )
    }

    async fn spawn(
        id: ChitchatId,
        seeds: &[SocketAddr],
        transport: &dyn Transport,
    ) -> ChitchatHandle {
        let config = ChitchatConfig {
            chitchat_id: id.clone(),
            cluster_id: "test".into(),
            gossip_interval: Duration::from_millis(50),
            listen_addr: id.gossip_advertise_addr,
            seed_nodes: seeds.iter().map(|s| s.to_string()).collect(),
            failure_detector_config: FailureDetectorConfig::default(),
            marked_for_deletion_grace_period: Duration::from_secs(60),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: chitchat::ProtocolVersion::V1,
        };
        spawn_chitchat(config, Vec::new(), transport).await.unwrap()
    }

    async fn known(handle: &ChitchatHandle) -> Vec<ChitchatId> {
        handle
            .with_chitchat(|c| c.node_states().keys().cloned().collect())
            .await
    }

    /// Real chitchat nodes over the in-memory transport: a stranger whose digest names
    /// members on other hosts is answered without its digest, so the guarded node learns
    /// nobody from it, while the stranger learns the guarded node (it pulls).
    #[tokio::test]
    async fn a_stranger_cannot_introduce_others_but_still_learns_the_cluster() {
        let net = ChannelTransport::with_mtu(65_507);
        // three members that know each other, unguarded
        let (a, b, c) = (node_id(1), node_id(2), node_id(3));
        let ha = spawn(a.clone(), &[], &net).await;
        let hb = spawn(b.clone(), &[a.gossip_advertise_addr], &net).await;
        let hc = spawn(c.clone(), &[a.gossip_advertise_addr], &net).await;
        for _ in 0..100 {
            if known(&ha).await.len() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(known(&ha).await.len(), 3, "the members converge");
        // the guarded node: nobody gossips to it but `a`, a stranger to it
        let metrics = Metrics::new().unwrap();
        let g = node_id(9);
        let guarded = GuardedTransport::new(
            Box::new(net.clone()),
            GossipCounters::new(&metrics, CLUSTER_REGIONAL),
            g.clone(),
            GuardHandle::default(),
        );
        let hg = spawn(g.clone(), &[], &guarded).await;
        ha.gossip(g.gossip_advertise_addr).unwrap();
        for _ in 0..100 {
            if known(&ha).await.contains(&g) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            known(&ha).await.contains(&g),
            "the stranger learned the node"
        );
        assert_eq!(known(&hg).await, vec![g.clone()], "nobody introduced");
        let refused = metrics
            .gossip_digests_refused
            .with_label_values(&[CLUSTER_REGIONAL, "too_many"])
            .get();
        assert!(refused >= 1, "refusal counted");
        for h in [ha, hb, hc, hg] {
            let _ = h.shutdown().await;
        }
    }

    #[test]
    fn limiter_allows_burst_then_refills() {
        let mut limiter = SourceLimiter::default();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let t0 = Instant::now();
        let allowed = (0..1000).filter(|_| limiter.allow(ip, t0)).count();
        assert_eq!(allowed, SOURCE_BURST as usize);
        assert!(!limiter.allow(ip, t0));
        assert!(limiter.allow(ip, t0 + Duration::from_millis(10)));
        let other: IpAddr = "127.0.0.10".parse().unwrap();
        assert!(limiter.allow(other, t0), "sources are limited separately");
    }

    #[test]
    fn limiter_tracks_a_bounded_number_of_sources() {
        let mut limiter = SourceLimiter::default();
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED_SOURCES as u32 + 100) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            limiter.allow(ip, t0);
        }
        assert!(limiter.buckets.len() <= MAX_TRACKED_SOURCES);
    }
}
