//! Unified P2P end to end: the routing strategy follows the live regions on every
//! node, failover is conservative (one missing region never activates it, two do, exactly
//! once) and restores gradually; the health monitor is silent while healthy and warns once
//! per check while degraded.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const DEADLINE: Duration = Duration::from_secs(90);
const MONITOR: &str = "2s";

fn spec(
    root: &std::path::Path,
    name: &str,
    region: &str,
    bootstrap: Option<std::net::SocketAddr>,
) -> NodeSpec {
    let mut s = NodeSpec::new(root, name, region, "super");
    s.bootstrap = bootstrap.into_iter().collect();
    s.extra = vec![
        "--strategy-settle-time".into(),
        "2s".into(),
        "--regional-monitor-interval".into(),
        MONITOR.into(),
        "--failover-monitor-interval".into(),
        MONITOR.into(),
    ];
    s
}

async fn strategy(node: &NodeProcess) -> Option<String> {
    let t = get_json(&node.url("/v1/topology")).await?;
    t["strategy"].as_str().map(str::to_string)
}

async fn all_report(nodes: &[&NodeProcess], expected: &str) {
    for n in nodes {
        wait_for(
            &format!("{} reports {expected}", n.spec.data_dir.display()),
            DEADLINE,
            || async { (strategy(n).await? == expected).then_some(()) },
        )
        .await;
    }
}

fn events_of(f: &Value, kind: &str) -> Vec<Value> {
    f["events"]
        .as_array()
        .map(|es| es.iter().filter(|e| e["kind"] == kind).cloned().collect())
        .unwrap_or_default()
}

fn has_region(e: &Value, region: &str) -> bool {
    e["regions"]
        .as_array()
        .is_some_and(|rs| rs.iter().any(|r| r == region))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategy_follows_regions_and_failover_is_conservative() {
    let root = test_dir("unified");
    let eu_spec = spec(&root, "eu", "eu", None);
    let boot = Some(eu_spec.p2p_addr());
    let eu = NodeProcess::start(eu_spec);
    all_report(&[&eu], "direct").await;

    let na = NodeProcess::start(spec(&root, "na", "na", boot));
    let asia_spec = spec(&root, "asia", "asia", boot);
    let asia = NodeProcess::start(asia_spec);
    all_report(&[&eu, &na, &asia], "regional_clustering").await;

    let sa_spec = spec(&root, "sa", "sa", boot);
    let sa = NodeProcess::start(sa_spec);
    all_report(&[&eu, &na, &asia, &sa], "global_mesh").await;

    // one region down: region_lost, no failover, strategy back to regional clustering
    let sa_spec = sa.kill();
    for n in [&eu, &na] {
        wait_for("sa lost", DEADLINE, || async {
            let f = get_json(&n.url("/v1/failover")).await?;
            events_of(&f, "region_lost")
                .iter()
                .any(|e| has_region(e, "sa"))
                .then_some(())
        })
        .await;
    }
    all_report(&[&eu, &na, &asia], "regional_clustering").await;
    // two more monitor intervals with one region missing: still no failover
    tokio::time::sleep(Duration::from_secs(5)).await;
    for n in [&eu, &na, &asia] {
        let f = get_json(&n.url("/v1/failover"))
            .await
            .expect("failover doc");
        assert_eq!(
            f["active"], false,
            "one missing region must not activate failover: {f}"
        );
        assert!(events_of(&f, "activated").is_empty(), "{f}");
    }

    // a second region down: failover activates on the survivors, exactly once
    let asia_spec = asia.kill();
    for n in [&eu, &na] {
        wait_for("failover active", DEADLINE, || async {
            let f = get_json(&n.url("/v1/failover")).await?;
            (f["active"] == true).then_some(())
        })
        .await;
        let status = get_json(&n.url("/v1/status")).await.expect("status");
        assert_eq!(status["failover_active"], true);
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    for n in [&eu, &na] {
        let f = get_json(&n.url("/v1/failover"))
            .await
            .expect("failover doc");
        assert_eq!(
            events_of(&f, "activated").len(),
            1,
            "exactly one activation: {f}"
        );
        let missing: Vec<&str> = f["missing_regions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r.as_str())
            .collect();
        assert!(missing.contains(&"sa") && missing.contains(&"asia"), "{f}");
        let metrics = reqwest::get(n.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("qnet_failover_active 1"),
            "metrics say active"
        );
        assert!(
            metrics.contains("qnet_failover_activations_total 1"),
            "one activation counted"
        );
    }

    // both regions return: region_returned, deactivation only after the restoration window
    let asia = NodeProcess::start(asia_spec);
    let sa = NodeProcess::start(sa_spec);
    for n in [&eu, &na] {
        let f = wait_for("failover deactivated", DEADLINE, || async {
            let f = get_json(&n.url("/v1/failover")).await?;
            (f["active"] == false).then_some(f)
        })
        .await;
        let returned = events_of(&f, "region_returned");
        assert!(returned.iter().any(|e| has_region(e, "asia")), "{f}");
        assert!(returned.iter().any(|e| has_region(e, "sa")), "{f}");
        let deactivated = events_of(&f, "deactivated");
        assert_eq!(deactivated.len(), 1, "{f}");
        assert_eq!(events_of(&f, "activated").len(), 1, "no flapping: {f}");
        // while both regions are missing or inside their restoration window, two regions
        // count as failed: deactivation waits until the earlier return is a window old
        let last_return = |region: &str| {
            returned
                .iter()
                .filter(|e| has_region(e, region))
                .filter_map(|e| e["at_ms"].as_u64())
                .max()
                .unwrap()
        };
        let first_back = last_return("asia").min(last_return("sa"));
        let off_at = deactivated[0]["at_ms"].as_u64().unwrap();
        assert!(
            off_at >= first_back + 2_000,
            "deactivated at {off_at}, a region came back at {first_back}: {f}"
        );
        // no region flapped: one loss and one return each
        for region in ["asia", "sa"] {
            let lost = events_of(&f, "region_lost")
                .iter()
                .filter(|e| has_region(e, region))
                .count();
            let back = returned.iter().filter(|e| has_region(e, region)).count();
            assert_eq!((lost, back), (1, 1), "{region} flapped: {f}");
        }
    }
    all_report(&[&eu, &na, &asia, &sa], "global_mesh").await;
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

async fn metric(node: &NodeProcess, series: &str) -> Option<f64> {
    series_value(&metrics_text(&node.url("")).await?, series)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_monitor_is_silent_when_healthy_and_warns_once_per_check() {
    let root = test_dir("health-monitor");
    let mk = |name: &str, region: &str, boot| {
        let mut s = spec(&root, name, region, boot);
        s.extra = vec!["--regional-monitor-interval".into(), "1s".into()];
        s
    };
    let a_spec = mk("a", "eu", None);
    let boot = Some(a_spec.p2p_addr());
    let a = NodeProcess::start(a_spec);
    let b = NodeProcess::start(mk("b", "eu", boot));
    let c = NodeProcess::start(mk("c", "na", boot));
    let d = NodeProcess::start(mk("d", "asia", boot));
    for n in [&a, &b, &c, &d] {
        n.wait_ready("ready", DEADLINE).await;
    }
    wait_for("a sees 4 live", DEADLINE, || async {
        let r = get_json(&a.url("/v1/regions")).await?;
        (r["health_score"].as_f64()? >= 1.0 && r["regions"].as_array()?.len() == 3).then_some(())
    })
    .await;
    let checks_before = metric(&a, "qnet_monitor_checks_total{monitor=\"regional_health\"}")
        .await
        .unwrap();
    // ten healthy monitor intervals
    wait_for("ten healthy checks", DEADLINE, || async {
        let checks = metric(&a, "qnet_monitor_checks_total{monitor=\"regional_health\"}").await?;
        (checks >= checks_before + 10.0).then_some(())
    })
    .await;
    assert_eq!(
        count(&a.log(), "qnet_node::node::monitors"),
        0,
        "healthy: no monitor lines: {}",
        a.log()
    );
    assert_eq!(metric(&a, "qnet_health_warnings_total").await, Some(0.0));

    // degrade: one of four members dies -> health 0.75 < 0.8 -> one WARN per check
    drop(b);
    wait_for("first warning", DEADLINE, || async {
        (metric(&a, "qnet_health_warnings_total").await? >= 1.0).then_some(())
    })
    .await;
    let w0 = metric(&a, "qnet_health_warnings_total").await.unwrap();
    let c0 = metric(&a, "qnet_monitor_checks_total{monitor=\"regional_health\"}")
        .await
        .unwrap();
    wait_for("five degraded checks", DEADLINE, || async {
        let checks = metric(&a, "qnet_monitor_checks_total{monitor=\"regional_health\"}").await?;
        (checks >= c0 + 5.0).then_some(())
    })
    .await;
    let w1 = metric(&a, "qnet_health_warnings_total").await.unwrap();
    let c1 = metric(&a, "qnet_monitor_checks_total{monitor=\"regional_health\"}")
        .await
        .unwrap();
    assert_eq!(w1 - w0, c1 - c0, "one warning per degraded check");
    let log = a.log();
    let warn_lines = count(&log, "network health below threshold");
    assert!(
        warn_lines as f64 >= w1 - 1.0 && warn_lines as f64 <= w1 + 1.0,
        "one WARN line per warning: {warn_lines} lines, {w1} warnings"
    );
    assert!(
        log.lines()
            .filter(|l| l.contains("network health below threshold"))
            .all(|l| l.contains("WARN") && l.contains("eu=")),
        "{log}"
    );
    drop((c, d));
}
