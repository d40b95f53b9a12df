//! qnet-sim: runs the large-scale simulation on a simulated clock.
//!
//! `cargo run --release -p qnet-sim -- --nodes 1000 --regions 6 --scenario all --out target/sim`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use qnet_sim::{self as sim, Coverage, SimConfig};

/// Which scenarios to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Every two-level scenario, then the flat baseline.
    All,
    /// Every two-level scenario.
    TwoLevel,
    /// Cold start and steady state only (large sizes).
    Short,
    /// Cold start and the loss phases only (large sizes).
    Loss,
    /// Cold start and the one-node crash only (large sizes).
    Crash,
    /// The flat chitchat baseline only.
    Flat,
}

/// A two-level scenario run after the cold start (`--parts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    /// Steady-state gossip, idle and with heads.
    Steady,
    /// Block propagation over each strategy.
    Propagation,
    /// One node crash.
    Crash,
    /// One and two regions cut off, then healed.
    Cuts,
    /// The 5 % and 20 % loss phases.
    Loss,
    /// One bridge deaf in the bridge cluster for 3 s.
    Deaf,
}

/// Simulates a qnet network of many nodes in one process.
#[derive(Debug, Parser)]
#[command(name = "qnet-sim", version)]
struct Args {
    /// The CI test's configuration (sim/tests/sim.rs): 100 nodes in 6 regions, every two-level
    /// scenario with its short windows; only --cells, --seed and --out apply.
    #[arg(long, conflicts_with_all = [
        "nodes", "regions", "scenario", "parts", "flat_nodes", "failover_interval", "steady",
        "loss_phase", "sample", "bridges", "settle", "blocks", "converge_limit",
    ])]
    ci: bool,
    /// Number of nodes.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Number of regions (eu, na, asia, sa, africa, oceania).
    #[arg(long, default_value_t = 6)]
    regions: usize,
    /// Scenarios to run.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    scenario: Scenario,
    /// Two-level scenarios to run after the cold start, comma-separated, in place of those
    /// of --scenario (one cold start for several parts of a large run); they run in the
    /// order steady, propagation, crash, cuts, loss, deaf.
    #[arg(long, value_enum, value_delimiter = ',', conflicts_with = "scenario")]
    parts: Vec<Part>,
    /// Output directory for CSV and SVG files.
    #[arg(long, default_value = "target/sim")]
    out: PathBuf,
    /// Nodes of the flat baseline (defaults to --nodes).
    #[arg(long)]
    flat_nodes: Option<usize>,
    /// Failover monitor interval (also the restoration window).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    failover_interval: Duration,
    /// Random seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Steady-state measuring window.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    steady: Duration,
    /// Duration of each loss phase.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    loss_phase: Duration,
    /// How often the simulator reads every node's view and runs its monitor checks.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    sample: Duration,
    /// Gossip cells per region (`--cells-per-region` of a node; 1: one cluster per region).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    cells: u16,
    /// Bridges per region, or per cell when regions are split.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=16))]
    bridges: u16,
    /// Strategy settle time of every node (how long a new strategy must hold before it is used).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    settle: Duration,
    /// Blocks pushed per strategy in the propagation scenario.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    blocks: u16,
    /// Give up waiting for convergence (cold start, heal) after this much simulated time.
    #[arg(long, default_value = "180s", value_parser = humantime::parse_duration)]
    converge_limit: Duration,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .init();
    if args.sample.is_zero() {
        eprintln!("error: --sample must be greater than zero");
        return ExitCode::FAILURE;
    }
    let mut cfg = if args.ci {
        SimConfig::ci(args.cells)
    } else {
        let mut cfg = SimConfig::new(args.nodes, args.regions);
        cfg.failover_interval = args.failover_interval;
        cfg.steady = args.steady;
        cfg.loss_phase = args.loss_phase;
        cfg.coverage = coverage(args.scenario, &args.parts);
        cfg.sample = args.sample;
        cfg.converge_limit = args.converge_limit;
        cfg.membership.cells_per_region = args.cells;
        cfg.membership.bridges_per_region = usize::from(args.bridges);
        cfg.membership.strategy_settle_time = args.settle;
        cfg.blocks = usize::from(args.blocks);
        cfg
    };
    cfg.out = args.out.clone();
    cfg.seed = args.seed;
    let mut failed = 0;
    if args.scenario != Scenario::Flat {
        match run_two_level(cfg.clone()) {
            Ok(n) => failed += n,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let flat_too = !args.ci && args.parts.is_empty();
    if flat_too && matches!(args.scenario, Scenario::All | Scenario::Flat) {
        let mut flat = cfg.clone();
        flat.nodes = args.flat_nodes.unwrap_or(args.nodes);
        flat.converge_limit = args.converge_limit.min(Duration::from_secs(120));
        if let Err(e) = run_flat(&flat) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    if failed > 0 {
        eprintln!("{failed} checks failed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The scenarios run after the cold start: `parts` if given, else those of `scenario`.
fn coverage(scenario: Scenario, parts: &[Part]) -> Coverage {
    let parts: &[Part] = match scenario {
        _ if !parts.is_empty() => parts,
        Scenario::Short => &[Part::Steady],
        Scenario::Loss => &[Part::Loss],
        Scenario::Crash => &[Part::Crash],
        Scenario::All | Scenario::TwoLevel | Scenario::Flat => return Coverage::EVERY,
    };
    let mut c = Coverage::NONE;
    for part in parts {
        match part {
            Part::Steady => c.steady = true,
            Part::Propagation => c.propagation = true,
            Part::Crash => c.crash = true,
            Part::Cuts => c.cuts = true,
            Part::Loss => c.loss = true,
            Part::Deaf => c.deaf = true,
        }
    }
    c
}

fn run_two_level(cfg: SimConfig) -> Result<usize, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let rt = sim::runtime()?;
    let outcome = rt.block_on(sim::run(cfg))?;
    let rss = sim::rss_bytes().unwrap_or(0);
    drop(rt);
    let failed = outcome.checks.iter().filter(|c| !c.passed).count();
    println!(
        "\ntwo-level: {} checks, {failed} failed; wall time {:.0} s; process RSS {} MiB",
        outcome.checks.len(),
        started.elapsed().as_secs_f64(),
        rss >> 20
    );
    Ok(failed)
}

fn run_flat(cfg: &SimConfig) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let rt = sim::runtime()?;
    let outcome = rt.block_on(sim::flat::run(cfg))?;
    let rss = sim::rss_bytes().unwrap_or(0);
    drop(rt);
    println!(
        "flat: {} of {} converged; wall time {:.0} s; process RSS {} MiB",
        outcome.converged,
        cfg.nodes,
        started.elapsed().as_secs_f64(),
        rss >> 20
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_replace_the_scenarios_of_the_preset() {
        let c = coverage(Scenario::All, &[Part::Loss, Part::Crash]);
        assert_eq!(
            c,
            Coverage {
                crash: true,
                loss: true,
                ..Coverage::NONE
            }
        );
    }

    #[test]
    fn presets_map_to_their_parts() {
        assert_eq!(coverage(Scenario::TwoLevel, &[]), Coverage::EVERY);
        let steady = coverage(Scenario::Short, &[]);
        assert_eq!(
            steady,
            Coverage {
                steady: true,
                ..Coverage::NONE
            }
        );
        assert!(coverage(Scenario::Crash, &[]).crash);
        assert!(!coverage(Scenario::Crash, &[]).loss);
    }

    #[test]
    fn ci_takes_only_cells_seed_and_out() {
        let args =
            Args::try_parse_from(["qnet-sim", "--ci", "--cells", "2", "--seed", "5"]).unwrap();
        assert!(args.ci);
        assert!(Args::try_parse_from(["qnet-sim", "--ci", "--nodes", "1000"]).is_err());
        assert!(Args::try_parse_from(["qnet-sim", "--ci", "--steady", "30s"]).is_err());
    }

    #[test]
    fn parts_parse_comma_separated_and_refuse_unknown_names() {
        let args = Args::try_parse_from(["qnet-sim", "--parts", "steady,cuts"]).unwrap();
        assert_eq!(args.parts, vec![Part::Steady, Part::Cuts]);
        assert!(Args::try_parse_from(["qnet-sim", "--parts", "steady,bogus"]).is_err());
        assert!(
            Args::try_parse_from(["qnet-sim", "--parts", "loss", "--scenario", "short"]).is_err()
        );
    }
}
