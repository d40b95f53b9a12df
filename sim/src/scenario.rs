//! The simulator's scenarios, run one after another on one simulated network: cold start,
//! steady state, block propagation per strategy, a node crash, one region cut off and healed,
//! two regions cut off and healed, then 5 % and 20 % loss. Each writes a table (stdout and
//! CSV); every correctness property becomes a [`Check`].

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::fleet::{plan_nodes, Fleet};
use crate::journal::Journal;
use crate::latency::{LatencyMatrix, REGION_NAMES};
use crate::network::{SimNet, Traffic};
use crate::propagation::{propagate, LinkGraph};
use crate::report::{ms, percentile, svg_plot, Series, Table};
use qnet_node::clock::{SharedClock, TokioClock};
use qnet_node::config::MembershipConfig;
use qnet_node::identity::NodeId;
use qnet_node::membership::admission::Refusal;
use qnet_node::membership::{bridge_gossip_addr, Head, MembershipError};
use qnet_node::metrics::{CLUSTER_BRIDGE, CLUSTER_REGIONAL};
use qnet_node::monitor::{EventKind, FailoverPolicy};
use qnet_node::region::Region;
use qnet_node::topology::Strategy;

/// Simulated wall clock at the start (ms since epoch).
pub const START_MS: u64 = 1_700_000_000_000;

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Number of nodes.
    pub nodes: usize,
    /// Number of regions (names from the latency matrix).
    pub regions: usize,
    /// Random seed (plans, loss, jitter; chitchat's own peer choice is not seeded).
    pub seed: u64,
    /// Where CSV and SVG files go.
    pub out: PathBuf,
    /// Failover monitor interval (also the restoration window).
    pub failover_interval: Duration,
    /// Membership settings (gossip interval, bridges, settle time, grace period).
    pub membership: MembershipConfig,
    /// One in this many nodes is a super node.
    pub super_every: usize,
    /// Jitter as a fraction of each delay.
    pub jitter: f64,
    /// Per-hop processing time of a block push, ms.
    pub processing_ms: f64,
    /// Blocks pushed per strategy.
    pub blocks: usize,
    /// Steady-state measuring window.
    pub steady: Duration,
    /// Duration of each loss phase.
    pub loss_phase: Duration,
    /// Give up waiting for convergence after this long.
    pub converge_limit: Duration,
    /// Which scenarios run after the cold start.
    pub coverage: Coverage,
    /// How often the simulator reads every node's view (and runs its monitor checks).
    pub sample: Duration,
}

impl SimConfig {
    /// Defaults for `nodes` nodes in `regions` regions.
    pub fn new(nodes: usize, regions: usize) -> Self {
        SimConfig {
            nodes,
            regions,
            seed: 7,
            out: PathBuf::from("target/sim"),
            failover_interval: Duration::from_secs(5),
            membership: MembershipConfig::default(),
            super_every: 10,
            jitter: 0.1,
            processing_ms: 2.0,
            blocks: 20,
            steady: Duration::from_secs(30),
            loss_phase: Duration::from_secs(60),
            converge_limit: Duration::from_secs(180),
            coverage: Coverage::EVERY,
            sample: Duration::from_millis(100),
        }
    }

    /// The configuration of the CI test (this crate's `tests/sim.rs`), also `qnet-sim --ci`: 100 nodes in
    /// 6 regions split into `cells` gossip cells, every two-level scenario with short
    /// windows (2 s strategy settle time, 2 s steady window, 2 s failover interval, 10 s per
    /// loss phase, 3 blocks per strategy; about 100 s of simulated time).
    pub fn ci(cells: u16) -> Self {
        let mut cfg = SimConfig::new(100, 6);
        cfg.membership.cells_per_region = cells;
        cfg.membership.strategy_settle_time = Duration::from_secs(2);
        cfg.steady = Duration::from_secs(2);
        cfg.loss_phase = Duration::from_secs(10);
        cfg.failover_interval = Duration::from_secs(2);
        cfg.blocks = 3;
        cfg
    }
}

/// Which scenarios a run goes through after the cold start (large sizes run a part), in the
/// order steady state, propagation, crash, region cuts, loss, a deaf bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    /// Steady-state gossip, idle and with heads.
    pub steady: bool,
    /// Block propagation over each strategy.
    pub propagation: bool,
    /// One node crash.
    pub crash: bool,
    /// One and two regions cut off, then healed.
    pub cuts: bool,
    /// The 5 % and 20 % loss phases.
    pub loss: bool,
    /// One bridge deaf in the bridge cluster for [`DEAF_FOR`].
    pub deaf: bool,
}

impl Coverage {
    /// Every scenario.
    pub const EVERY: Coverage = Coverage {
        steady: true,
        propagation: true,
        crash: true,
        cuts: true,
        loss: true,
        deaf: true,
    };
    /// None: the cold start only; set the parts wanted.
    pub const NONE: Coverage = Coverage {
        steady: false,
        propagation: false,
        crash: false,
        cuts: false,
        loss: false,
        deaf: false,
    };
}

/// A correctness property and whether it held.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// Measured detail.
    pub detail: String,
}

/// Errors of a simulation run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A node could not start.
    #[error("cannot start a simulated node: {0}")]
    Start(#[from] MembershipError),
    /// An output file could not be written.
    #[error("cannot write simulation output: {0}")]
    Output(#[from] std::io::Error),
}

/// What a run found.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Correctness checks.
    pub checks: Vec<Check>,
    /// Tables produced, in order.
    pub tables: Vec<Table>,
}

/// The region names of a run.
pub fn region_names(regions: usize) -> Vec<Region> {
    (0..regions.max(1))
        .filter_map(|i| {
            let name = REGION_NAMES
                .get(i)
                .map_or_else(|| format!("r{i}"), |n| n.to_string());
            Region::new(&name).ok()
        })
        .collect()
}

struct Ctx {
    cfg: SimConfig,
    fleet: Fleet,
    journals: Vec<Journal>,
    clock: SharedClock,
    latency: LatencyMatrix,
    rng: StdRng,
    outcome: Outcome,
    /// (seconds, regional bytes sent by all nodes, bridge bytes sent by all nodes)
    traffic: Vec<(f64, u64, u64)>,
    phases: Vec<(f64, String)>,
    next_traffic_ms: u64,
    t0: u64,
    /// Announce a new chain head on every node every second (a 1 s microblock chain).
    heads: bool,
}

impl Ctx {
    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    fn secs(&self, at_ms: u64) -> f64 {
        at_ms.saturating_sub(self.t0) as f64 / 1000.0
    }

    fn phase(&mut self, name: &str) {
        let t = self.secs(self.now());
        println!("[{t:>7.1}s sim] {name}");
        self.phases.push((t, name.to_string()));
    }

    fn check(&mut self, name: &str, passed: bool, detail: String) {
        println!(
            "check {}: {name} ({detail})",
            if passed { "ok" } else { "FAILED" }
        );
        self.outcome.checks.push(Check {
            name: name.into(),
            passed,
            detail,
        });
    }

    fn emit(&mut self, table: Table, file: &str) -> Result<(), SimError> {
        table.emit(&self.cfg.out, file)?;
        self.outcome.tables.push(table);
        Ok(())
    }

    /// Advances simulated time by one sample and feeds every live node's view to its decision loop.
    async fn sample(&mut self) {
        tokio::time::sleep(self.cfg.sample).await;
        let now = self.now();
        for (node, journal) in self.fleet.nodes.iter().zip(self.journals.iter_mut()) {
            if node.crashed || !node.membership.joined() {
                continue;
            }
            journal.observe(&node.view(), now);
        }
        if now >= self.next_traffic_ms {
            self.next_traffic_ms = now + 1000;
            if self.heads {
                self.announce_heads(now).await;
            }
            let (mut regional, mut bridge) = (0, 0);
            for n in &self.fleet.nodes {
                let [r, b] = n.sent();
                regional += r.0;
                bridge += b.0;
            }
            self.traffic.push((self.secs(now), regional, bridge));
        }
    }

    /// Every live node announces head `height = seconds since start` (hash derived from it),
    /// as it would after importing each block of a 1 s slot chain.
    async fn announce_heads(&self, now: u64) {
        let height = now.saturating_sub(self.t0) / 1000;
        let hash = *blake3::hash(&height.to_le_bytes()).as_bytes();
        for n in self.fleet.nodes.iter().filter(|n| !n.crashed) {
            n.membership.set_head(Head { height, hash }).await;
        }
    }

    async fn run_for(&mut self, d: Duration) {
        let end = self.now() + d.as_millis() as u64;
        while self.now() < end {
            self.sample().await;
        }
    }

    /// Samples until `done(node index)` holds for every node in `who`, or `limit`; returns the
    /// first time (ms after `since`) each node satisfied it: the time its membership built
    /// the view that satisfied it, so the figure does not depend on the sampling period.
    async fn until_all(
        &mut self,
        who: &[usize],
        since: u64,
        limit: Duration,
        done: impl Fn(&Fleet, usize) -> bool,
    ) -> Vec<Option<f64>> {
        let mut first: Vec<Option<f64>> = vec![None; who.len()];
        let end = since + limit.as_millis() as u64;
        let mut report_at = since + 10_000;
        loop {
            let now = self.now();
            if now >= report_at {
                report_at += 10_000;
                let done = first.iter().flatten().count();
                println!(
                    "  {:>7.1}s sim: {done}/{} nodes done",
                    self.secs(now),
                    who.len()
                );
            }
            for (k, &i) in who.iter().enumerate() {
                if first[k].is_none() && done(&self.fleet, i) {
                    let built = self.fleet.nodes[i].view().at_ms.clamp(since, now);
                    first[k] = Some(built.saturating_sub(since) as f64);
                }
            }
            if first.iter().all(Option::is_some) || now >= end {
                return first;
            }
            self.sample().await;
        }
    }

    fn alive(&self) -> Vec<usize> {
        (0..self.fleet.nodes.len())
            .filter(|i| !self.fleet.nodes[*i].crashed)
            .collect()
    }

    fn in_regions(&self, regions: &[usize], inside: bool) -> Vec<usize> {
        self.alive()
            .into_iter()
            .filter(|i| regions.contains(&self.fleet.nodes[*i].plan.region) == inside)
            .collect()
    }

    fn names_of(&self, regions: &[usize]) -> Vec<Region> {
        regions
            .iter()
            .map(|r| self.fleet.regions[*r].clone())
            .collect()
    }

    /// Cuts `regions` off (phase `phase`) and samples until every node outside them sees them
    /// all missing (60 s at most). Returns when the cut began, the nodes outside, and when
    /// each of those saw it.
    async fn cut_regions(
        &mut self,
        phase: &str,
        regions: &[usize],
    ) -> (u64, Vec<usize>, Vec<Option<f64>>) {
        self.phase(phase);
        self.detection_timeouts(regions).await;
        for &r in regions {
            self.fleet.net.set_cut(r, true);
        }
        let cut_at = self.now();
        let survivors = self.in_regions(regions, false);
        let names = self.names_of(regions);
        let seen = self
            .until_all(&survivors, cut_at, Duration::from_secs(60), move |f, i| {
                sees_missing(f, i, &names, true)
            })
            .await;
        (cut_at, survivors, seen)
    }

    /// Prints, over the bridges outside `regions`, how long their failure detectors would
    /// wait before declaring the bridges inside dead: per observer the longest of these
    /// bounds when it can see the regions missing.
    async fn detection_timeouts(&self, regions: &[usize]) {
        let inside: HashSet<String> = self
            .in_regions(regions, true)
            .into_iter()
            .filter(|i| self.fleet.nodes[*i].view().is_bridge)
            .map(|i| self.fleet.nodes[i].plan.identity.node_id().to_string())
            .collect();
        let (mut all, mut longest) = (Vec::new(), Vec::new());
        for i in self.in_regions(regions, false) {
            let timeouts: Vec<f64> = self.fleet.nodes[i]
                .membership
                .bridge_detection_timeouts()
                .await
                .into_iter()
                .filter(|(id, _)| inside.contains(id))
                .map(|(_, t)| t.as_secs_f64() * 1000.0)
                .collect();
            if let Some(m) = timeouts.iter().copied().reduce(f64::max) {
                longest.push(m);
            }
            all.extend(timeouts);
        }
        let p = |v: &[f64], q| ms(percentile(v, q));
        println!(
            "  bridge detector timeouts for the {} bridges cut off: all {} p50 {} p99 {} max {}; \
             longest per observer ({}) p50 {} p99 {} max {}",
            inside.len(),
            all.len(),
            p(&all, 50.0),
            p(&all, 99.0),
            p(&all, 100.0),
            longest.len(),
            p(&longest, 50.0),
            p(&longest, 99.0),
            p(&longest, 100.0),
        );
    }

    /// Heals `regions` (phase `phase`) and samples until every node sees them live again and
    /// has converged (60 s at most). Returns when the heal began and when each node got there.
    async fn heal_regions(&mut self, phase: &str, regions: &[usize]) -> (u64, Vec<Option<f64>>) {
        self.phase(phase);
        for &r in regions {
            self.fleet.net.set_cut(r, false);
        }
        let healed_at = self.now();
        let all = self.alive();
        let names = self.names_of(regions);
        let back = self
            .until_all(&all, healed_at, Duration::from_secs(60), move |f, i| {
                sees_missing(f, i, &names, false) && converged(f, i)
            })
            .await;
        (healed_at, back)
    }

    /// How many of `who` logged at least one failover activation since `since`.
    /// How many of `who` had a health warning at or after `since` and before `until`.
    fn health_warned(&self, who: &[usize], since: u64, until: u64) -> usize {
        who.iter()
            .filter(|&&i| self.journals[i].health_warned(since, until))
            .count()
    }

    /// Failover activations of the nodes `who` at or after `since`, all counted.
    fn activations_since(&self, who: &[usize], since: u64) -> usize {
        who.iter()
            .map(|&i| {
                self.journals[i]
                    .events_since(EventKind::Activated, since)
                    .len()
            })
            .sum()
    }

    fn activated_since(&self, who: &[usize], since: u64) -> usize {
        who.iter()
            .filter(|&&i| {
                !self.journals[i]
                    .events_since(EventKind::Activated, since)
                    .is_empty()
            })
            .count()
    }
}

fn timing_row(label: &str, times: &[Option<f64>]) -> Vec<String> {
    let done: Vec<f64> = times.iter().flatten().copied().collect();
    vec![
        label.into(),
        format!("{}/{}", done.len(), times.len()),
        ms(percentile(&done, 50.0)),
        ms(percentile(&done, 99.0)),
        ms(percentile(&done, 100.0)),
    ]
}

const TIMING_HEADER: [&str; 5] = ["what", "nodes", "p50_ms", "p99_ms", "max_ms"];

/// Runs every scenario; call inside a current-thread tokio runtime with paused time.
pub async fn run(cfg: SimConfig) -> Result<Outcome, SimError> {
    let regions = region_names(cfg.regions);
    let latency = LatencyMatrix::continental(regions.len(), cfg.jitter);
    let net = SimNet::new(latency.clone(), cfg.seed);
    let clock: SharedClock = Arc::new(TokioClock::new(START_MS));
    let t0 = clock.now_ms();
    let plans = plan_nodes(cfg.nodes, &regions, cfg.super_every, cfg.seed);
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0x5eed);
    let interval_ms = cfg.failover_interval.as_millis() as u64;
    let settle_ms = cfg.membership.strategy_settle_time.as_millis() as u64;
    let journals = plans
        .iter()
        .map(|_| {
            let first = t0 + interval_ms + rng.gen_range(0..interval_ms.max(1));
            Journal::new(
                FailoverPolicy::for_interval(2, interval_ms),
                settle_ms,
                interval_ms,
                first,
            )
        })
        .collect();
    let fleet = Fleet::start(net, plans, regions, cfg.membership.clone(), clock.clone()).await?;
    let mut ctx = Ctx {
        cfg,
        fleet,
        journals,
        clock,
        latency,
        rng,
        outcome: Outcome::default(),
        traffic: Vec::new(),
        phases: Vec::new(),
        next_traffic_ms: t0,
        t0,
        heads: false,
    };
    cold_start(&mut ctx).await?;
    let parts = ctx.cfg.coverage;
    if parts.steady {
        steady_state(&mut ctx).await?;
    }
    if parts.propagation {
        propagation(&mut ctx)?;
    }
    if parts.crash {
        crash(&mut ctx).await?;
    }
    if parts.cuts {
        region_cuts(&mut ctx).await?;
    }
    if parts.loss {
        loss(&mut ctx).await?;
    }
    if parts.deaf {
        deaf_bridge(&mut ctx).await?;
    }
    traffic_plot(&mut ctx)?;
    Ok(ctx.outcome)
}

/// Digests refused by every node's gossip guard so far, by reason (both clusters).
fn refused_digests(fleet: &Fleet) -> Vec<(Refusal, u64)> {
    Refusal::ALL
        .iter()
        .map(|r| {
            let n = fleet
                .nodes
                .iter()
                .flat_map(|node| {
                    [CLUSTER_REGIONAL, CLUSTER_BRIDGE].map(|c| {
                        node.metrics
                            .gossip_digests_refused
                            .with_label_values(&[c, r.as_str()])
                            .get()
                    })
                })
                .sum();
            (*r, n)
        })
        .collect()
}

fn converged(fleet: &Fleet, i: usize) -> bool {
    let node = &fleet.nodes[i];
    let view = node.view();
    let all_regions = fleet.regions.len();
    let regions_live =
        view.regions.len() == all_regions && view.regions.values().all(|r| r.live > 0);
    let own_live = view.members.iter().filter(|m| m.live).count();
    let cell = node.plan.cell(fleet.cells);
    let region_live = view
        .regions
        .get(&view.self_region)
        .map_or(0, |r| r.live as usize);
    regions_live
        && own_live == fleet.live_cell_size(node.plan.region, cell)
        && region_live == fleet.live_region_size(node.plan.region)
}

async fn cold_start(ctx: &mut Ctx) -> Result<(), SimError> {
    ctx.phase("cold start");
    let who = ctx.alive();
    let limit = ctx.cfg.converge_limit;
    let t0 = ctx.t0;
    let times = ctx.until_all(&who, t0, limit, converged).await;
    let mut table = Table::new(
        &format!(
            "cold start: {} nodes, {} regions",
            who.len(),
            ctx.fleet.regions.len()
        ),
        &TIMING_HEADER,
    );
    table.row(timing_row(
        "sees every region live and all own-region members",
        &times,
    ));
    let done = times.iter().flatten().count();
    ctx.check(
        "cold start: every node converges",
        done == times.len(),
        format!("{done}/{} within {:?}", times.len(), limit),
    );
    let refused = refused_digests(&ctx.fleet);
    let malformed = refused
        .iter()
        .find(|(r, _)| *r == Refusal::Malformed)
        .map_or(0, |(_, n)| *n);
    let detail: Vec<String> = refused
        .iter()
        .map(|(r, n)| format!("{} {n}", r.as_str()))
        .collect();
    ctx.check(
        "cold start: no gossip digest refused as malformed",
        malformed == 0,
        format!("digests refused by the guards: {}", detail.join(", ")),
    );
    let mut curve: Vec<f64> = times.iter().flatten().copied().collect();
    curve.sort_by(f64::total_cmp);
    let points: Vec<(f64, f64)> = curve
        .iter()
        .enumerate()
        .map(|(k, t)| (t / 1000.0, (k + 1) as f64 / who.len().max(1) as f64 * 100.0))
        .collect();
    std::fs::create_dir_all(&ctx.cfg.out)?;
    std::fs::write(
        ctx.cfg.out.join("cold_start.svg"),
        svg_plot(
            "cold start: nodes converged",
            "seconds after start",
            "% of nodes",
            &[Series {
                name: "converged".into(),
                points,
            }],
        ),
    )?;
    ctx.emit(table, "cold_start")
}

async fn steady_state(ctx: &mut Ctx) -> Result<(), SimError> {
    // let the strategy settle and bridges finish joining before measuring
    let gossip = ctx.cfg.membership.gossip_interval;
    ctx.run_for(ctx.cfg.membership.strategy_settle_time + gossip * 3)
        .await;
    ctx.phase("steady state, idle chain");
    let (idle, idle_clusters) = steady_window(ctx, "idle chain").await;
    ctx.heads = true;
    // a few rounds so every member's head key exists before the window opens
    ctx.run_for(gossip * 3).await;
    ctx.phase("steady state, head announced every 1 s slot");
    let (heads, heads_clusters) = steady_window(ctx, "head every 1 s").await;
    ctx.heads = false;
    let mut table = idle;
    table.title = format!(
        "steady state: gossip sent per node per second over {:.0} s, idle chain vs a head announced by every node every 1 s slot",
        ctx.cfg.steady.as_secs_f64()
    );
    table.rows.extend(heads.rows);
    let mut clusters = idle_clusters;
    clusters.rows.extend(heads_clusters.rows);
    ctx.emit(clusters, "steady_clusters")?;
    let bridges = ctx.fleet.bridges().len();
    let expected = ctx.fleet.expected_bridges;
    ctx.check(
        "steady state: bridges elected",
        bridges == expected,
        format!("{bridges} bridges, expected {expected}"),
    );
    ctx.emit(table, "steady_state")
}

async fn steady_window(ctx: &mut Ctx, label: &str) -> (Table, Table) {
    let before: Vec<[(u64, u64); 2]> = ctx.fleet.nodes.iter().map(|n| n.sent()).collect();
    ctx.fleet.net.reset_window_max();
    let net_before = ctx.fleet.net.traffic();
    let window = ctx.cfg.steady;
    ctx.run_for(window).await;
    let net = ctx.fleet.net.traffic().since(&net_before);
    let secs = window.as_secs_f64();
    let bridges: HashSet<usize> = ctx.fleet.bridges().into_iter().collect();
    let mut table = Table::new(
        "steady state",
        &[
            "class",
            "nodes",
            "regional_B/s_mean",
            "regional_B/s_max",
            "bridge_B/s_mean",
            "bridge_B/s_max",
            "total_B/s_mean",
            "total_B/s_p99",
            "total_B/s_max",
            "msgs/s_mean",
        ],
    );
    for (class, is_bridge) in [("non-bridge", false), ("bridge", true)] {
        let rows: Vec<[f64; 3]> = ctx
            .fleet
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| !n.crashed && bridges.contains(i) == is_bridge)
            .map(|(i, n)| {
                let [r, b] = n.sent();
                let [r0, b0] = before[i];
                [
                    (r.0 - r0.0) as f64 / secs,
                    (b.0 - b0.0) as f64 / secs,
                    ((r.1 - r0.1) + (b.1 - b0.1)) as f64 / secs,
                ]
            })
            .collect();
        let col = |k: usize| rows.iter().map(|r| r[k]).collect::<Vec<f64>>();
        let total: Vec<f64> = rows.iter().map(|r| r[0] + r[1]).collect();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        table.row(vec![
            format!("{class}, {label}"),
            rows.len().to_string(),
            format!("{:.0}", mean(&col(0))),
            format!("{:.0}", max(&col(0))),
            format!("{:.0}", mean(&col(1))),
            format!("{:.0}", max(&col(1))),
            format!("{:.0}", mean(&total)),
            format!("{:.0}", percentile(&total, 99.0).unwrap_or(0.0)),
            format!("{:.0}", max(&total)),
            format!("{:.1}", mean(&col(2))),
        ]);
    }
    let total = net.total_bytes();
    let cross = net.cross_region_bytes();
    table.row(vec![
        format!("network, {label}"),
        ctx.fleet.nodes.len().to_string(),
        format!(
            "cross-region share {:.2}%",
            cross as f64 / total.max(1) as f64 * 100.0
        ),
        format!(
            "largest datagram {} B, largest SYN {} B",
            net.largest, net.largest_syn
        ),
        format!("oversized sends {}", net.oversized),
        String::new(),
        format!(
            "{:.0}",
            total as f64 / secs / ctx.fleet.nodes.len().max(1) as f64
        ),
        String::new(),
        String::new(),
        String::new(),
    ]);
    (table, cluster_table(&net, secs, label))
}

/// Gossip received over a window by cluster and message kind, per second over the network.
fn cluster_table(net: &Traffic, secs: f64, label: &str) -> Table {
    let mut table = Table::new(
        "steady state: gossip by cluster and message kind (whole network, per second; largest in the window)",
        &[
            "cluster",
            "SYN_B/s",
            "SYN-ACK_B/s",
            "ACK_B/s",
            "msgs/s",
            "largest_SYN_B",
            "largest_datagram_B",
            "hosts_ever_bridging",
        ],
    );
    for (c, name) in ["regional", "bridge"].iter().enumerate() {
        let b = net.by_kind[c];
        let m: u64 = net.msgs_by_kind[c].iter().sum();
        table.row(vec![
            format!("{name}, {label}"),
            format!("{:.0}", b[0] as f64 / secs),
            format!("{:.0}", b[1] as f64 / secs),
            format!("{:.0}", b[2] as f64 / secs),
            format!("{:.1}", m as f64 / secs),
            net.window_largest_syn[c].to_string(),
            net.window_largest[c].to_string(),
            if c == 1 {
                net.bridge_hosts.to_string()
            } else {
                String::new()
            },
        ]);
    }
    table
}

fn link_graph(ctx: &Ctx, strategy: Strategy) -> LinkGraph {
    let fleet = &ctx.fleet;
    let mut graph = LinkGraph {
        region: fleet.nodes.iter().map(|n| n.plan.region).collect(),
        links: Vec::with_capacity(fleet.nodes.len()),
    };
    for (node, journal) in fleet.nodes.iter().zip(&ctx.journals) {
        let links = if node.crashed {
            Default::default()
        } else {
            journal.links(&node.view(), strategy)
        };
        let ids: Vec<&NodeId> = links.in_region.iter().chain(&links.cross_region).collect();
        graph.links.push(
            ids.into_iter()
                .filter_map(|id| fleet.by_id.get(id).copied())
                .collect(),
        );
    }
    graph
}

fn propagation(ctx: &mut Ctx) -> Result<(), SimError> {
    ctx.phase("block propagation");
    let in_force: BTreeSet<Strategy> = ctx.journals.iter().map(Journal::strategy).collect();
    let mut table = Table::new(
        &format!(
            "block propagation over planned links ({} blocks each, {} ms per hop processing; matrix floor {} ms)",
            ctx.cfg.blocks,
            ctx.cfg.processing_ms,
            ctx.latency.floor_ms()
        ),
        &[
            "strategy",
            "targets",
            "t50_ms_p50",
            "t99_ms_p50",
            "t99_ms_max",
            "t100_ms_p50",
            "t100_ms_max",
            "min_reached",
            "msgs/block/node",
        ],
    );
    let alive = ctx.alive();
    for strategy in Strategy::ALL {
        let graph = link_graph(ctx, *strategy);
        let (mut t50, mut t99, mut t100, mut msgs) = (vec![], vec![], vec![], vec![]);
        let mut min_reached = f64::MAX;
        let mut targets_n = 0;
        for _ in 0..ctx.cfg.blocks {
            let origin = alive[ctx.rng.gen_range(0..alive.len())];
            let origin_region = ctx.fleet.nodes[origin].plan.region;
            // direct is the 0-1 live region strategy: its targets are the producer's region
            let targets: Vec<usize> = if *strategy == Strategy::Direct {
                ctx.in_regions(&[origin_region], true)
            } else {
                alive.clone()
            };
            targets_n = targets.len();
            let spread = propagate(
                &graph,
                origin,
                &ctx.latency,
                ctx.cfg.processing_ms,
                &mut ctx.rng,
            );
            t50.extend(spread.time_to(0.5, &targets));
            t99.extend(spread.time_to(0.99, &targets));
            t100.extend(spread.time_to(1.0, &targets));
            msgs.push(spread.messages as f64 / targets.len().max(1) as f64);
            min_reached =
                min_reached.min(spread.reached(&targets) as f64 / targets.len().max(1) as f64);
        }
        let name = if in_force.contains(strategy) {
            format!("{strategy} (in force)")
        } else {
            strategy.to_string()
        };
        table.row(vec![
            name,
            targets_n.to_string(),
            ms(percentile(&t50, 50.0)),
            ms(percentile(&t99, 50.0)),
            ms(percentile(&t99, 100.0)),
            ms(percentile(&t100, 50.0)),
            ms(percentile(&t100, 100.0)),
            format!("{:.1}%", min_reached * 100.0),
            format!("{:.2}", msgs.iter().sum::<f64>() / msgs.len().max(1) as f64),
        ]);
        ctx.check(
            &format!("propagation: {strategy} reaches every target"),
            (min_reached - 1.0).abs() < f64::EPSILON,
            format!("min reached {:.1}%", min_reached * 100.0),
        );
    }
    ctx.emit(table, "propagation")
}

async fn crash(ctx: &mut Ctx) -> Result<(), SimError> {
    let bridges: HashSet<usize> = ctx.fleet.bridges().into_iter().collect();
    let Some(victim) = ctx
        .in_regions(&[0], true)
        .into_iter()
        .find(|i| !bridges.contains(i))
    else {
        return Ok(());
    };
    ctx.phase("one node crash");
    let victim_id = ctx.fleet.nodes[victim].plan.identity.node_id().clone();
    let cells = ctx.fleet.cells;
    let victim_cell = ctx.fleet.nodes[victim].plan.cell(cells);
    ctx.fleet.crash(victim);
    let since = ctx.now();
    // its region's members that gossip with it: its cell when regions are split
    let who: Vec<usize> = ctx
        .in_regions(&[0], true)
        .into_iter()
        .filter(|i| ctx.fleet.nodes[*i].plan.cell(cells) == victim_cell)
        .collect();
    let times = ctx
        .until_all(&who, since, Duration::from_secs(60), |f, i| {
            f.nodes[i]
                .view()
                .members
                .iter()
                .all(|m| m.node_id != victim_id || !m.live)
        })
        .await;
    let mut table = Table::new(
        "one node crash: detection across its region",
        &TIMING_HEADER,
    );
    table.row(timing_row("crashed member seen dead", &times));
    let done = times.iter().flatten().count();
    ctx.check(
        "crash: detected by its whole region",
        done == times.len(),
        format!("{done}/{}", times.len()),
    );
    ctx.emit(table, "crash")
}

fn sees_missing(fleet: &Fleet, i: usize, regions: &[Region], missing: bool) -> bool {
    let view = fleet.nodes[i].view();
    regions.iter().all(|r| {
        view.regions
            .get(r)
            .is_some_and(|s| (s.live == 0) == missing)
    })
}

fn first_event_after(
    ctx: &Ctx,
    i: usize,
    kind: EventKind,
    since: u64,
    region: Option<&Region>,
) -> Option<f64> {
    ctx.journals[i]
        .events_since(kind, since)
        .into_iter()
        .find(|e| region.is_none_or(|r| e.regions.contains(r)))
        .map(|e| e.at_ms.saturating_sub(since) as f64)
}

async fn region_cuts(ctx: &mut Ctx) -> Result<(), SimError> {
    let n_regions = ctx.fleet.regions.len();
    if n_regions < 4 {
        return Ok(());
    }
    let interval = ctx.cfg.failover_interval;
    let mut table = Table::new(
        "region cut-offs (times from the cut or heal)",
        &TIMING_HEADER,
    );

    // when each survivor saw each cut, one row per node (region_cut_nodes.csv)
    let mut per_node = Table::new(
        "region cut-offs per surviving node",
        &["cut", "node", "region", "cell", "bridge", "seen_ms"],
    );

    // one region cut off
    let one = [1usize];
    let one_names = ctx.names_of(&one);
    let bridges: HashSet<usize> = ctx.fleet.bridges().into_iter().collect();
    let (cut_at, survivors, seen) = ctx.cut_regions("one region cut off", &one).await;
    per_node_rows(ctx, &mut per_node, "1", &bridges, &survivors, &seen);
    ctx.run_for(interval * 2 + Duration::from_secs(2)).await;
    table.row(timing_row(
        "1 cut: survivors' view shows the region missing",
        &seen,
    ));
    let lost: Vec<Option<f64>> = survivors
        .iter()
        .map(|&i| first_event_after(ctx, i, EventKind::RegionLost, cut_at, one_names.first()))
        .collect();
    table.row(timing_row("1 cut: region_lost event on survivors", &lost));
    let activated = ctx.activated_since(&survivors, cut_at);
    let inside = ctx.in_regions(&one, true);
    let inside_activated = ctx.activated_since(&inside, cut_at);
    let lost_n = lost.iter().flatten().count();
    ctx.check(
        "1 region cut: region_lost seen by every surviving node",
        lost_n == survivors.len(),
        format!("{lost_n}/{}", survivors.len()),
    );
    ctx.check(
        "1 region cut: no failover on any surviving node",
        activated == 0,
        format!(
            "{activated} of {} activated; inside the cut region {inside_activated}/{} activated (they see {} regions missing)",
            survivors.len(),
            inside.len(),
            n_regions - 1
        ),
    );
    let warned = ctx.health_warned(&survivors, cut_at, ctx.now());
    ctx.check(
        "1 region cut: no health warning on any surviving node",
        warned == 0,
        format!(
            "{warned} of {} warned (one region of six missing: health about 0.83, threshold 0.8)",
            survivors.len()
        ),
    );
    let (healed_at, back) = ctx.heal_regions("heal one region", &one).await;
    table.row(timing_row(
        "1 heal: every node sees all regions live again",
        &back,
    ));
    ctx.run_for(interval * 2 + Duration::from_secs(2)).await;
    let restored: Vec<Option<f64>> = inside
        .iter()
        .map(|&i| first_event_after(ctx, i, EventKind::Deactivated, healed_at, None))
        .collect();
    table.row(timing_row(
        "1 heal: failover deactivated inside the cut region",
        &restored,
    ));

    // two regions cut off
    let two = [1usize, 2usize];
    let bridges: HashSet<usize> = ctx.fleet.bridges().into_iter().collect();
    let (cut_at, survivors, seen) = ctx.cut_regions("two regions cut off", &two).await;
    per_node_rows(ctx, &mut per_node, "2", &bridges, &survivors, &seen);
    table.row(timing_row(
        "2 cut: survivors' view shows both missing",
        &seen,
    ));
    ctx.run_for(interval * 2 + Duration::from_secs(2)).await;
    let activation: Vec<Option<f64>> = survivors
        .iter()
        .map(|&i| first_event_after(ctx, i, EventKind::Activated, cut_at, None))
        .collect();
    table.row(timing_row(
        "2 cut: failover activated on survivors",
        &activation,
    ));
    let warned = ctx.health_warned(&survivors, cut_at, ctx.now());
    ctx.check(
        "2 regions cut: health warning on every surviving node",
        warned == survivors.len(),
        format!(
            "{warned}/{} (health about 0.67, threshold 0.8)",
            survivors.len()
        ),
    );
    let (healed_at, back) = ctx.heal_regions("heal two regions", &two).await;
    table.row(timing_row(
        "2 heal: every node sees all regions live again",
        &back,
    ));
    ctx.run_for(interval * 3 + Duration::from_secs(2)).await;
    let restore: Vec<Option<f64>> = survivors
        .iter()
        .map(|&i| first_event_after(ctx, i, EventKind::Deactivated, healed_at, None))
        .collect();
    table.row(timing_row(
        "2 heal: failover deactivated on survivors",
        &restore,
    ));
    let once = survivors
        .iter()
        .filter(|&&i| {
            ctx.journals[i]
                .events_since(EventKind::Activated, cut_at)
                .len()
                == 1
        })
        .count();
    ctx.check(
        "2 regions cut: failover activated exactly once on every surviving node",
        once == survivors.len(),
        format!("{once}/{}", survivors.len()),
    );
    let restored_n = restore.iter().flatten().count();
    ctx.check(
        "2 regions healed: failover deactivated on every surviving node",
        restored_n == survivors.len(),
        format!("{restored_n}/{}", survivors.len()),
    );
    let still = ctx
        .alive()
        .iter()
        .filter(|&&i| ctx.journals[i].failover_active())
        .count();
    ctx.check(
        "after healing: failover inactive everywhere",
        still == 0,
        format!("{still} still active"),
    );
    per_node.write_csv(&ctx.cfg.out, "region_cut_nodes")?;
    ctx.emit(table, "regions")
}

/// Rows of `table` for cut `cut`: each survivor's region, cell, whether it was a bridge when
/// the cut began (`bridges`), and when it saw the cut regions missing (empty: never).
fn per_node_rows(
    ctx: &Ctx,
    table: &mut Table,
    cut: &str,
    bridges: &HashSet<usize>,
    survivors: &[usize],
    seen: &[Option<f64>],
) {
    let cells = ctx.fleet.cells;
    for (&i, t) in survivors.iter().zip(seen) {
        let plan = &ctx.fleet.nodes[i].plan;
        table.row(vec![
            cut.to_string(),
            i.to_string(),
            ctx.fleet.regions[plan.region].to_string(),
            plan.cell(cells).to_string(),
            bridges.contains(&i).to_string(),
            t.map_or(String::new(), |v| format!("{v:.0}")),
        ]);
    }
}

async fn loss(ctx: &mut Ctx) -> Result<(), SimError> {
    let mut table = Table::new(
        "loss: false deaths and false failovers",
        &[
            "loss",
            "seconds",
            "false_dead_pairs",
            "false_dead_members",
            "false_missing_regions",
            "failover_activations",
        ],
    );
    // each (observer, region) pair that saw a region missing, when it first did and whether
    // the observer was a bridge then (loss_missing.csv; empty when none did)
    let mut first_missing = Table::new(
        "regions seen missing under loss",
        &[
            "loss",
            "node",
            "node_region",
            "cell",
            "bridge",
            "region",
            "first_ms",
        ],
    );
    for loss in [0.05, 0.20] {
        ctx.phase(&format!("loss {:.0}%", loss * 100.0));
        ctx.fleet.net.set_loss(loss);
        let since = ctx.now();
        let end = since + ctx.cfg.loss_phase.as_millis() as u64;
        let crashed: HashSet<NodeId> = ctx
            .fleet
            .nodes
            .iter()
            .filter(|n| n.crashed)
            .map(|n| n.plan.identity.node_id().clone())
            .collect();
        let mut pairs: HashSet<(usize, NodeId)> = HashSet::new();
        let mut missing: HashSet<(usize, Region)> = HashSet::new();
        let cells = ctx.fleet.cells;
        while ctx.now() < end {
            ctx.sample().await;
            for i in ctx.alive() {
                let view = ctx.fleet.nodes[i].view();
                for m in view
                    .members
                    .iter()
                    .filter(|m| !m.live && !crashed.contains(&m.node_id))
                {
                    pairs.insert((i, m.node_id.clone()));
                }
                for r in view.regions.values().filter(|r| r.live == 0) {
                    if missing.insert((i, r.region.clone())) {
                        let plan = &ctx.fleet.nodes[i].plan;
                        first_missing.row(vec![
                            format!("{:.0}%", loss * 100.0),
                            i.to_string(),
                            ctx.fleet.regions[plan.region].to_string(),
                            plan.cell(cells).to_string(),
                            view.is_bridge.to_string(),
                            r.region.to_string(),
                            (ctx.now() - since).to_string(),
                        ]);
                    }
                }
            }
        }
        let members: HashSet<&NodeId> = pairs.iter().map(|(_, id)| id).collect();
        let activations = ctx.activations_since(&ctx.alive(), since);
        table.row(vec![
            format!("{:.0}%", loss * 100.0),
            format!("{:.0}", ctx.cfg.loss_phase.as_secs_f64()),
            pairs.len().to_string(),
            members.len().to_string(),
            missing.len().to_string(),
            activations.to_string(),
        ]);
        let pct = loss * 100.0;
        ctx.check(
            &format!("loss {pct:.0}%: no false deaths"),
            pairs.is_empty() && missing.is_empty(),
            format!(
                "{} (observer, member) pairs, {} missing regions",
                pairs.len(),
                missing.len()
            ),
        );
        ctx.check(
            &format!("loss {pct:.0}%: no false failover"),
            activations == 0,
            format!("{activations} activations"),
        );
        let warned = ctx.health_warned(&ctx.alive(), since, end + 1);
        ctx.check(
            &format!("loss {pct:.0}%: no health warning"),
            warned == 0,
            format!("{warned} nodes warned"),
        );
    }
    ctx.fleet.net.set_loss(0.0);
    first_missing.write_csv(&ctx.cfg.out, "loss_missing")?;
    ctx.emit(table, "loss")
}

/// How long the deaf bridge hears nothing in the bridge cluster: longer than the bridge
/// detector's timeouts (about 1.6 s settled, 2–3 s in young windows), shorter than the
/// silence after which a death counts whatever a bridge hears (`hearing::LIMIT_INTERVALS`,
/// 5 s at the default interval).
pub const DEAF_FOR: Duration = Duration::from_secs(3);
/// How long the network is watched after the deaf bridge hears again.
const DEAF_AFTER: Duration = Duration::from_secs(8);
/// Loss-free time before the deafness begins.
const DEAF_SETTLE: Duration = Duration::from_secs(3);

/// After [`DEAF_SETTLE`] without loss, one bridge of the first region hears nothing in the
/// bridge cluster for [`DEAF_FOR`] (every datagram to its bridge socket lost, as a streak of
/// losses would do), then hears again: its own detector must count members dead (the
/// deafness bites), and no node may see a region missing or raise failover. Its regional
/// cluster is untouched.
async fn deaf_bridge(ctx: &mut Ctx) -> Result<(), SimError> {
    let bridges: HashSet<usize> = ctx.fleet.bridges().into_iter().collect();
    let Some(deaf) = ctx
        .in_regions(&[0], true)
        .into_iter()
        .find(|i| bridges.contains(i))
    else {
        return Ok(());
    };
    ctx.phase("a deaf bridge");
    // a moment without loss first: what the loss phases left is not the deaf bridge's doing
    ctx.run_for(DEAF_SETTLE).await;
    let addr = bridge_gossip_addr(ctx.fleet.nodes[deaf].plan.addr);
    let since = ctx.now();
    let hears_at = since + DEAF_FOR.as_millis() as u64;
    let end = hears_at + DEAF_AFTER.as_millis() as u64;
    ctx.fleet.net.set_deaf(addr, true);
    let mut missing: HashSet<(usize, Region)> = HashSet::new();
    let mut deaf_saw = 0;
    // the most bridge-cluster members the deaf bridge's own detector counted dead at once:
    // the deafness did bite (without the hearing rule their regions were seen lost)
    let mut detector_dead = 0;
    while ctx.now() < end {
        if ctx.now() >= hears_at {
            ctx.fleet.net.set_deaf(addr, false);
        }
        ctx.sample().await;
        detector_dead = detector_dead.max(
            ctx.fleet.nodes[deaf]
                .membership
                .bridge_detector_dead()
                .await,
        );
        for i in ctx.alive() {
            let view = ctx.fleet.nodes[i].view();
            for r in view.regions.values().filter(|r| r.live == 0) {
                if missing.insert((i, r.region.clone())) && i == deaf {
                    deaf_saw += 1;
                }
            }
        }
    }
    ctx.fleet.net.set_deaf(addr, false);
    let observers: HashSet<usize> = missing.iter().map(|(i, _)| *i).collect();
    let activations = ctx.activations_since(&ctx.alive(), since);
    let mut table = Table::new(
        "a bridge deaf in the bridge cluster",
        &[
            "deaf_s",
            "watched_s",
            "missing_pairs",
            "observers",
            "detector_dead_max",
            "regions_missing_at_deaf_bridge",
            "failover_activations",
        ],
    );
    table.row(vec![
        format!("{:.1}", DEAF_FOR.as_secs_f64()),
        format!("{:.1}", (DEAF_FOR + DEAF_AFTER).as_secs_f64()),
        missing.len().to_string(),
        observers.len().to_string(),
        detector_dead.to_string(),
        deaf_saw.to_string(),
        activations.to_string(),
    ]);
    ctx.check(
        "deaf bridge: its own detector counted members dead",
        detector_dead > 0,
        format!("up to {detector_dead} at once"),
    );
    ctx.check(
        "deaf bridge: no region seen missing",
        missing.is_empty(),
        format!(
            "{} (observer, region) pairs on {} nodes, {deaf_saw} at the deaf bridge",
            missing.len(),
            observers.len()
        ),
    );
    ctx.check(
        "deaf bridge: no failover",
        activations == 0,
        format!("{activations} activations"),
    );
    ctx.emit(table, "deaf_bridge")
}

fn traffic_plot(ctx: &mut Ctx) -> Result<(), SimError> {
    let n = ctx.fleet.nodes.len().max(1) as f64;
    let mut regional = Vec::new();
    let mut bridge = Vec::new();
    let mut table = Table::new(
        "gossip sent per node, per second (time series)",
        &["t_s", "regional_B/s", "bridge_B/s"],
    );
    for w in ctx.traffic.windows(2) {
        let (t0, r0, b0) = w[0];
        let (t1, r1, b1) = w[1];
        let dt = (t1 - t0).max(1e-9);
        let r = (r1 - r0) as f64 / dt / n;
        let b = (b1 - b0) as f64 / dt / n;
        regional.push((t1, r));
        bridge.push((t1, b));
        table.row(vec![
            format!("{t1:.1}"),
            format!("{r:.0}"),
            format!("{b:.0}"),
        ]);
    }
    std::fs::create_dir_all(&ctx.cfg.out)?;
    std::fs::write(ctx.cfg.out.join("traffic.csv"), table.csv())?;
    let mut phases = Table::new("phases", &["t_s", "phase"]);
    for (t, p) in &ctx.phases {
        phases.row(vec![format!("{t:.1}"), p.clone()]);
    }
    std::fs::write(ctx.cfg.out.join("phases.csv"), phases.csv())?;
    std::fs::write(
        ctx.cfg.out.join("traffic.svg"),
        svg_plot(
            "gossip bytes sent per node per second (mean over all nodes)",
            "simulated seconds",
            "B/s per node",
            &[
                Series {
                    name: CLUSTER_REGIONAL.into(),
                    points: regional,
                },
                Series {
                    name: CLUSTER_BRIDGE.into(),
                    points: bridge,
                },
            ],
        ),
    )?;
    Ok(())
}
