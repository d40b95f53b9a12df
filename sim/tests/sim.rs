//! The simulator at CI size: 100 nodes of the real membership code across six
//! regions on a simulated clock. Asserts correctness only, never speed: every node converges,
//! one region cut off triggers no failover on the surviving nodes, two regions cut off trigger
//! it exactly once on every surviving node and healing restores it, neither 5 % nor 20 %
//! loss causes a false death or a false failover, and a bridge deaf in the bridge cluster
//! for 3 s makes no node see a region missing; the same with regions split into two gossip
//! cells.
//!
//! Simulated time is kept short (`SimConfig::ci`: 2 s strategy settle time, 2 s steady
//! window, 2 s failover interval, 10 s per loss phase; about 100 s of simulated time in all)
//! so the debug build finishes in a few minutes on two cores. The long runs are `qnet-sim`
//! in release (SIMULATION.md).

use std::time::Duration;

use qnet_sim::{self as sim, SimConfig};

#[test]
fn hundred_nodes_in_six_regions_behave_correctly() {
    every_scenario_passes(SimConfig::ci(1));
}

/// The same network with every region split into two gossip cells (`membership::cell`):
/// the same checks hold, each node gossiping with its cell only.
#[test]
fn regions_split_into_cells_behave_correctly() {
    every_scenario_passes(SimConfig::ci(2));
}

/// Runs `cfg` (`SimConfig::ci`, the configuration `qnet-sim --ci` and
/// `scripts/sim-batch.sh` run in release) and checks that every check ran and passed.
fn every_scenario_passes(mut cfg: SimConfig) {
    let dir = tempfile::tempdir().unwrap();
    cfg.out = dir.path().to_path_buf();
    let rt = sim::runtime().unwrap();
    let outcome = rt.block_on(sim::run(cfg)).unwrap();
    let failed: Vec<_> = outcome.checks.iter().filter(|c| !c.passed).collect();
    assert!(failed.is_empty(), "failed checks: {failed:#?}");
    let names: Vec<&str> = outcome.checks.iter().map(|c| c.name.as_str()).collect();
    for expected in [
        "cold start: every node converges",
        "cold start: no gossip digest refused as malformed",
        "steady state: bridges elected",
        "propagation: direct reaches every target",
        "propagation: regional_clustering reaches every target",
        "propagation: global_mesh reaches every target",
        "crash: detected by its whole region",
        "1 region cut: no failover on any surviving node",
        "1 region cut: region_lost seen by every surviving node",
        "2 regions cut: failover activated exactly once on every surviving node",
        "2 regions healed: failover deactivated on every surviving node",
        "after healing: failover inactive everywhere",
        "loss 5%: no false deaths",
        "loss 5%: no false failover",
        "loss 20%: no false deaths",
        "loss 20%: no false failover",
        "1 region cut: no health warning on any surviving node",
        "2 regions cut: health warning on every surviving node",
        "loss 5%: no health warning",
        "loss 20%: no health warning",
        "deaf bridge: its own detector counted members dead",
        "deaf bridge: no region seen missing",
        "deaf bridge: no failover",
    ] {
        assert!(names.contains(&expected), "check {expected:?} did not run");
    }
    for file in [
        "cold_start.csv",
        "steady_state.csv",
        "propagation.csv",
        "regions.csv",
        "loss.csv",
        "loss_missing.csv",
        "deaf_bridge.csv",
        "traffic.svg",
    ] {
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
