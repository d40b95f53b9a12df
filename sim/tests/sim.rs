//! The simulator at CI size: 100 nodes of the real membership code across six
//! regions on a simulated clock. Asserts correctness only, never speed: every node converges,
//! one region cut off triggers no failover on the surviving nodes, two regions cut off trigger
//! it exactly once on every surviving node and healing restores it, neither 5 % nor 20 %
//! loss causes a false death or a false failover, and a bridge deaf in the bridge cluster
//! for 3 s makes no node see a region missing; one test per scenario, each after its own
//! cold start, and every scenario in one run with regions split into two gossip cells.
//!
//! Simulated time is kept short (`SimConfig::ci`: 2 s strategy settle time, 2 s steady
//! window, 2 s failover interval, 10 s per loss phase; about 100 s of simulated time in all)
//! so the debug build finishes in a few minutes on two cores. The long runs are `qnet-sim`
//! in release (SIMULATION.md).

use std::time::Duration;

use qnet_sim::{self as sim, Coverage, SimConfig};

const COLD_START: [&str; 2] = [
    "cold start: every node converges",
    "cold start: no gossip digest refused as malformed",
];
const STEADY: [&str; 1] = ["steady state: bridges elected"];
const PROPAGATION: [&str; 3] = [
    "propagation: direct reaches every target",
    "propagation: regional_clustering reaches every target",
    "propagation: global_mesh reaches every target",
];
const CRASH: [&str; 1] = ["crash: detected by its whole region"];
const CUTS: [&str; 7] = [
    "1 region cut: no failover on any surviving node",
    "1 region cut: region_lost seen by every surviving node",
    "1 region cut: no health warning on any surviving node",
    "2 regions cut: failover activated exactly once on every surviving node",
    "2 regions cut: health warning on every surviving node",
    "2 regions healed: failover deactivated on every surviving node",
    "after healing: failover inactive everywhere",
];
const LOSS: [&str; 6] = [
    "loss 5%: no false deaths",
    "loss 5%: no false failover",
    "loss 5%: no health warning",
    "loss 20%: no false deaths",
    "loss 20%: no false failover",
    "loss 20%: no health warning",
];
const DEAF: [&str; 3] = [
    "deaf bridge: its own detector counted members dead",
    "deaf bridge: no region seen missing",
    "deaf bridge: no failover",
];

#[test]
fn a_cold_start_converges_and_elects_bridges() {
    let parts = Coverage {
        steady: true,
        ..Coverage::NONE
    };
    scenario_passes(1, parts, &[&COLD_START, &STEADY], &["steady_state.csv"]);
}

#[test]
fn blocks_reach_every_target_in_each_strategy() {
    let parts = Coverage {
        propagation: true,
        ..Coverage::NONE
    };
    scenario_passes(1, parts, &[&COLD_START, &PROPAGATION], &["propagation.csv"]);
}

#[test]
fn a_crashed_node_is_detected_by_its_whole_region() {
    let parts = Coverage {
        crash: true,
        ..Coverage::NONE
    };
    scenario_passes(1, parts, &[&COLD_START, &CRASH], &[]);
}

#[test]
fn one_region_cut_raises_no_failover_and_two_raise_it_once_until_healed() {
    let parts = Coverage {
        cuts: true,
        ..Coverage::NONE
    };
    scenario_passes(1, parts, &[&COLD_START, &CUTS], &["regions.csv"]);
}

#[test]
fn loss_of_5_and_20_percent_causes_no_false_death_or_failover() {
    let parts = Coverage {
        loss: true,
        ..Coverage::NONE
    };
    scenario_passes(
        1,
        parts,
        &[&COLD_START, &LOSS],
        &["loss.csv", "loss_missing.csv"],
    );
}

#[test]
fn a_bridge_deaf_in_the_bridge_cluster_makes_no_region_missing() {
    let parts = Coverage {
        deaf: true,
        ..Coverage::NONE
    };
    scenario_passes(1, parts, &[&COLD_START, &DEAF], &["deaf_bridge.csv"]);
}

/// Every scenario in one run of a network whose regions are split into two gossip cells
/// (`membership::cell`): the same checks hold, each node gossiping with its cell only.
#[test]
fn regions_split_into_cells_pass_every_scenario() {
    scenario_passes(
        2,
        Coverage::EVERY,
        &[
            &COLD_START,
            &STEADY,
            &PROPAGATION,
            &CRASH,
            &CUTS,
            &LOSS,
            &DEAF,
        ],
        &[
            "steady_state.csv",
            "propagation.csv",
            "regions.csv",
            "loss.csv",
            "loss_missing.csv",
            "deaf_bridge.csv",
        ],
    );
}

/// Runs the CI configuration (`SimConfig::ci`, what `qnet-sim --ci` and
/// `scripts/sim-batch.sh` run in release) with `cells` gossip cells per region and only
/// `parts` after the cold start; every check must pass, every `expected` check must have run
/// and every file in `files` (besides the cold start's and the traffic plot) be written.
fn scenario_passes(cells: u16, parts: Coverage, expected: &[&[&str]], files: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::ci(cells);
    cfg.out = dir.path().to_path_buf();
    cfg.coverage = parts;
    let rt = sim::runtime().unwrap();
    let outcome = rt.block_on(sim::run(cfg)).unwrap();
    let failed: Vec<_> = outcome.checks.iter().filter(|c| !c.passed).collect();
    assert!(failed.is_empty(), "failed checks: {failed:#?}");
    let names: Vec<&str> = outcome.checks.iter().map(|c| c.name.as_str()).collect();
    for name in expected.iter().flat_map(|list| list.iter()) {
        assert!(names.contains(name), "check {name:?} did not run");
    }
    for file in ["cold_start.csv", "traffic.svg"].iter().chain(files) {
        assert!(dir.path().join(file).exists(), "{file} not written");
    }
}

#[test]
fn flat_baseline_converges_at_small_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::new(30, 3);
    cfg.out = dir.path().to_path_buf();
    cfg.steady = Duration::from_secs(5);
    cfg.converge_limit = Duration::from_secs(60);
    let rt = sim::runtime().unwrap();
    let outcome = rt.block_on(sim::flat::run(&cfg)).unwrap();
    assert_eq!(outcome.converged, 30);
    assert!(dir.path().join("flat_30.csv").exists());
}
