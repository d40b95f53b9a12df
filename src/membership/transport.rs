//! Gossip transport guard: chitchat's UDP socket wrapped with per-source rate limits and
//! traffic counters, so datagram floods from strangers cannot starve the node.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::time::Instant;

use async_trait::async_trait;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpTransport};
use chitchat::ChitchatEnvelope;
use prometheus::IntCounter;

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
        }
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
}

impl GuardedTransport {
    /// Guards `inner`, counting into `counters`.
    pub fn new(inner: Box<dyn Transport>, counters: GossipCounters) -> Self {
        GuardedTransport { inner, counters }
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
        }))
    }
}

struct GuardedSocket {
    inner: Box<dyn Socket>,
    counters: GossipCounters,
    limiter: SourceLimiter,
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
        let outcome = self.inner.send(to, envelope).await?;
        self.counters.sent_msgs.inc();
        self.counters
            .sent_bytes
            .inc_by(outcome.num_bytes_sent as u64);
        Ok(outcome)
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            let outcome = self.inner.recv().await?;
            let bytes = outcome.num_bytes_received as u64;
            if self.limiter.allow(outcome.from_addr.ip(), Instant::now()) {
                self.counters.recv_msgs.inc();
                self.counters.recv_bytes.inc_by(bytes);
                return Ok(outcome);
            }
            self.counters.dropped_msgs.inc();
            self.counters.dropped_bytes.inc_by(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
