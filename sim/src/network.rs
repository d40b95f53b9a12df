//! The simulated network under gossip: chitchat's in-memory [`ChannelTransport`] (which
//! serialises every message, so byte counts and the 65,507-byte datagram limit are real)
//! wrapped with the latency matrix, random loss, crashed hosts and regions cut off. No packet
//! leaves the process; addresses are only names.
//!
//! The wrapper acts on the receiving side: a datagram handed over by the channel is dropped
//! (loss, cut, crash, a deaf socket) or held until its sampled one-way delay has passed.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chitchat::transport::{ChannelTransport, RecvOutcome, SendOutcome, Socket, Transport};
use chitchat::{ChitchatEnvelope, ChitchatMessage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::{Duration, Instant};

use crate::latency::LatencyMatrix;

/// Regional gossip port of every simulated node (each node has its own address). Here and
/// not in `fleet`, which builds on this module, so the two do not import each other.
pub const SIM_PORT: u16 = 9876;

/// Port of the bridge cluster in the simulation (the regional port + 1).
const BRIDGE_PORT: u16 = SIM_PORT + 1;

/// Largest datagram payload, as for UDP over IPv4; larger sends fail like `EMSGSIZE`.
pub const MAX_DATAGRAM_BYTES: usize = 65_507;

/// Traffic counted by the network, by source and destination region.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Traffic {
    /// Bytes handed over by the channel, `[from region][to region]`.
    pub bytes: Vec<Vec<u64>>,
    /// Datagrams handed over by the channel, `[from region][to region]`.
    pub messages: Vec<Vec<u64>>,
    /// Datagrams dropped by loss, cuts or crashed hosts.
    pub dropped: u64,
    /// Sends refused because the datagram was larger than [`MAX_DATAGRAM_BYTES`].
    pub oversized: u64,
    /// Largest datagram sent, in bytes.
    pub largest: usize,
    /// Largest SYN datagram (cluster id and the digest of every member the sender knows).
    pub largest_syn: usize,
    /// Bytes by cluster (`[regional, bridge]`, told apart by the destination port) and by
    /// message kind (`[SYN, SYN-ACK, ACK and others]`).
    pub by_kind: [[u64; 3]; 2],
    /// Datagrams by cluster and message kind, as `by_kind`.
    pub msgs_by_kind: [[u64; 3]; 2],
    /// Largest datagram per cluster since the last [`SimNet::reset_window_max`].
    pub window_largest: [usize; 2],
    /// Largest SYN per cluster since the last [`SimNet::reset_window_max`].
    pub window_largest_syn: [usize; 2],
    /// Hosts that ever sent in the bridge cluster (every node that was a bridge at some time).
    pub bridge_hosts: usize,
}

impl Traffic {
    fn new(regions: usize) -> Self {
        Traffic {
            bytes: vec![vec![0; regions]; regions],
            messages: vec![vec![0; regions]; regions],
            ..Traffic::default()
        }
    }

    /// Total bytes sent.
    pub fn total_bytes(&self) -> u64 {
        self.bytes.iter().flatten().sum()
    }

    /// Bytes sent between different regions.
    pub fn cross_region_bytes(&self) -> u64 {
        let mut sum = 0;
        for (a, row) in self.bytes.iter().enumerate() {
            for (b, v) in row.iter().enumerate() {
                if a != b {
                    sum += v;
                }
            }
        }
        sum
    }

    /// The difference `self - earlier`, element by element (largest kept as is).
    pub fn since(&self, earlier: &Traffic) -> Traffic {
        let diff = |x: &Vec<Vec<u64>>, y: &Vec<Vec<u64>>| {
            x.iter()
                .zip(y)
                .map(|(r, s)| r.iter().zip(s).map(|(a, b)| a.saturating_sub(*b)).collect())
                .collect()
        };
        Traffic {
            bytes: diff(&self.bytes, &earlier.bytes),
            messages: diff(&self.messages, &earlier.messages),
            dropped: self.dropped.saturating_sub(earlier.dropped),
            oversized: self.oversized.saturating_sub(earlier.oversized),
            largest: self.largest,
            largest_syn: self.largest_syn,
            by_kind: diff_kinds(&self.by_kind, &earlier.by_kind),
            msgs_by_kind: diff_kinds(&self.msgs_by_kind, &earlier.msgs_by_kind),
            window_largest: self.window_largest,
            window_largest_syn: self.window_largest_syn,
            bridge_hosts: self.bridge_hosts,
        }
    }
}

fn diff_kinds(a: &[[u64; 3]; 2], b: &[[u64; 3]; 2]) -> [[u64; 3]; 2] {
    let mut out = [[0; 3]; 2];
    for (c, row) in out.iter_mut().enumerate() {
        for (k, v) in row.iter_mut().enumerate() {
            *v = a[c][k].saturating_sub(b[c][k]);
        }
    }
    out
}

struct Pending {
    at: Instant,
    seq: u64,
    outcome: RecvOutcome,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    // reversed: the heap pops the earliest delivery first
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

struct State {
    region_of: HashMap<IpAddr, usize>,
    down: HashSet<IpAddr>,
    cut: HashSet<usize>,
    deaf: HashSet<SocketAddr>,
    loss: f64,
    rng: StdRng,
    seq: u64,
    traffic: Traffic,
    bridge_hosts: HashSet<IpAddr>,
}

/// The simulated network; cheap to clone (shared state).
#[derive(Clone)]
pub struct SimNet {
    channel: ChannelTransport,
    state: Arc<Mutex<State>>,
    latency: Arc<LatencyMatrix>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Puts `item` in `set` (`on`) or takes it out.
fn toggle<T: std::hash::Hash + Eq>(set: &mut HashSet<T>, item: T, on: bool) {
    if on {
        set.insert(item);
    } else {
        set.remove(&item);
    }
}

impl SimNet {
    /// An empty network with this latency matrix and random seed.
    pub fn new(latency: LatencyMatrix, seed: u64) -> Self {
        let regions = latency.regions();
        SimNet {
            channel: ChannelTransport::with_mtu(MAX_DATAGRAM_BYTES),
            state: Arc::new(Mutex::new(State {
                region_of: HashMap::new(),
                down: HashSet::new(),
                cut: HashSet::new(),
                deaf: HashSet::new(),
                loss: 0.0,
                rng: StdRng::seed_from_u64(seed),
                seq: 0,
                traffic: Traffic::new(regions),
                bridge_hosts: HashSet::new(),
            })),
            latency: Arc::new(latency),
        }
    }

    /// Places host `ip` in region `region` (an index of the latency matrix).
    pub fn place(&self, ip: IpAddr, region: usize) {
        lock(&self.state).region_of.insert(ip, region);
    }

    /// Sets the probability that any datagram is lost.
    pub fn set_loss(&self, loss: f64) {
        lock(&self.state).loss = loss.clamp(0.0, 1.0);
    }

    /// Crashes (`true`) or revives a host: a crashed host neither sends nor receives.
    pub fn set_down(&self, ip: IpAddr, down: bool) {
        toggle(&mut lock(&self.state).down, ip, down);
    }

    /// Cuts region `region` off from every other region (`true`) or heals it.
    pub fn set_cut(&self, region: usize, cut: bool) {
        toggle(&mut lock(&self.state).cut, region, cut);
    }

    /// Makes the socket at `addr` deaf (`true`: every datagram sent to it is lost; it still
    /// sends) or lets it hear again.
    pub fn set_deaf(&self, addr: SocketAddr, deaf: bool) {
        toggle(&mut lock(&self.state).deaf, addr, deaf);
    }

    /// Traffic counted so far.
    pub fn traffic(&self) -> Traffic {
        lock(&self.state).traffic.clone()
    }

    /// A chitchat transport on this network.
    pub fn transport(&self) -> SimTransport {
        SimTransport { net: self.clone() }
    }

    /// Starts a new window for the per-cluster largest datagram and SYN.
    pub fn reset_window_max(&self) {
        let mut s = lock(&self.state);
        s.traffic.window_largest = [0; 2];
        s.traffic.window_largest_syn = [0; 2];
    }

    fn is_down(&self, ip: IpAddr) -> bool {
        lock(&self.state).down.contains(&ip)
    }

    fn refuse_oversized(&self) {
        lock(&self.state).traffic.oversized += 1;
    }

    /// Accounts a datagram arriving at `to`; returns when to deliver it, `None` to drop it.
    fn arrive(&self, outcome: &RecvOutcome, to: SocketAddr) -> Option<(Instant, u64)> {
        let mut s = lock(&self.state);
        let src = s
            .region_of
            .get(&outcome.from_addr.ip())
            .copied()
            .unwrap_or(0);
        let dst = s.region_of.get(&to.ip()).copied().unwrap_or(0);
        let bytes = outcome.num_bytes_received;
        if let Some(v) = s.traffic.bytes.get_mut(src).and_then(|r| r.get_mut(dst)) {
            *v += bytes as u64;
        }
        if let Some(v) = s.traffic.messages.get_mut(src).and_then(|r| r.get_mut(dst)) {
            *v += 1;
        }
        s.traffic.largest = s.traffic.largest.max(bytes);
        let is_syn = matches!(outcome.envelope.message, ChitchatMessage::Syn { .. });
        if is_syn {
            s.traffic.largest_syn = s.traffic.largest_syn.max(bytes);
        }
        let cluster = usize::from(to.port() == BRIDGE_PORT);
        if cluster == 1 && s.bridge_hosts.insert(outcome.from_addr.ip()) {
            s.traffic.bridge_hosts = s.bridge_hosts.len();
        }
        let kind = match outcome.envelope.message {
            ChitchatMessage::Syn { .. } => 0,
            ChitchatMessage::SynAck { .. } => 1,
            _ => 2,
        };
        s.traffic.by_kind[cluster][kind] += bytes as u64;
        s.traffic.msgs_by_kind[cluster][kind] += 1;
        let w = &mut s.traffic.window_largest[cluster];
        *w = (*w).max(bytes);
        if is_syn {
            let w = &mut s.traffic.window_largest_syn[cluster];
            *w = (*w).max(bytes);
        }
        let cut = src != dst && (s.cut.contains(&src) || s.cut.contains(&dst));
        let down = s.down.contains(&outcome.from_addr.ip())
            || s.down.contains(&to.ip())
            || s.deaf.contains(&to);
        let loss = s.loss;
        let lost = loss > 0.0 && s.rng.gen::<f64>() < loss;
        if cut || down || lost {
            s.traffic.dropped += 1;
            return None;
        }
        let delay_ms = self.latency.sample_ms(src, dst, &mut s.rng);
        s.seq += 1;
        Some((
            Instant::now() + Duration::from_secs_f64(delay_ms / 1000.0),
            s.seq,
        ))
    }
}

/// A chitchat [`Transport`] over a [`SimNet`].
pub struct SimTransport {
    net: SimNet,
}

#[async_trait]
impl Transport for SimTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let inner = self.net.channel.open(listen_addr).await?;
        Ok(Box::new(SimSocket {
            addr: listen_addr,
            net: self.net.clone(),
            inner,
            pending: BinaryHeap::new(),
        }))
    }
}

struct SimSocket {
    addr: SocketAddr,
    net: SimNet,
    inner: Box<dyn Socket>,
    pending: BinaryHeap<Pending>,
}

#[async_trait]
impl Socket for SimSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.addr)
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        if self.net.is_down(self.addr.ip()) {
            return Ok(SendOutcome { num_bytes_sent: 0 });
        }
        let outcome = self.inner.send(to, envelope).await;
        if outcome.is_err() {
            self.net.refuse_oversized();
        }
        outcome
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            let next = self.pending.peek().map(|p| p.at);
            if let Some(at) = next {
                if at <= Instant::now() {
                    if let Some(p) = self.pending.pop() {
                        return Ok(p.outcome);
                    }
                }
            }
            tokio::select! {
                received = self.inner.recv() => {
                    let outcome = received?;
                    if let Some((at, seq)) = self.net.arrive(&outcome, self.addr) {
                        self.pending.push(Pending { at, seq, outcome });
                    }
                }
                _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {}
            }
        }
    }
}
