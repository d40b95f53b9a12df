//! The simulator's scenarios, run one after another on one simulated network: cold start,
//! steady state, block propagation per strategy, a node crash, one region cut off and healed,
//! two regions cut off and healed, 5 % and 20 % loss, then a bridge deaf for a few seconds;
//! one file each. Each writes a table (stdout and CSV); every correctness property becomes a
//! [`Check`]. This module holds what they share: the settings, the run and the sampling loop
//! that feeds every node's view to its decision loop.

mod blocks;
mod cold_start;
mod crash;
mod cuts;
mod deaf;
mod loss;
mod steady;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::fleet::{plan_nodes, Fleet};
use crate::journal::Journal;
use crate::latency::{LatencyMatrix, REGION_NAMES};
use crate::network::SimNet;
use crate::report::{ms, percentile, svg_plot, Series, Table};
use qnet_node::clock::{SharedClock, TokioClock};
use qnet_node::config::MembershipConfig;
use qnet_node::membership::{Head, MembershipError};
use qnet_node::metrics::{CLUSTER_BRIDGE, CLUSTER_REGIONAL};
use qnet_node::monitor::{EventKind, FailoverPolicy};
use qnet_node::region::Region;

pub use deaf::DEAF_FOR;

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
            self.fleet.cut(r);
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
            self.fleet.heal(r);
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
    cold_start::cold_start(&mut ctx).await?;
    let parts = ctx.cfg.coverage;
    if parts.steady {
        steady::steady_state(&mut ctx).await?;
    }
    if parts.propagation {
        blocks::propagation(&mut ctx)?;
    }
    if parts.crash {
        crash::crash(&mut ctx).await?;
    }
    if parts.cuts {
        cuts::region_cuts(&mut ctx).await?;
    }
    if parts.loss {
        loss::loss(&mut ctx).await?;
    }
    if parts.deaf {
        deaf::deaf_bridge(&mut ctx).await?;
    }
    traffic_plot(&mut ctx)?;
    Ok(ctx.outcome)
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

fn sees_missing(fleet: &Fleet, i: usize, regions: &[Region], missing: bool) -> bool {
    let view = fleet.nodes[i].view();
    regions.iter().all(|r| {
        view.regions
            .get(r)
            .is_some_and(|s| (s.live == 0) == missing)
    })
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
