//! The metrics catalogue (README-metrics.md) against a real node's `/metrics`:
//! every family the node serves is listed with its type, label names and help text, and
//! nothing else is. `scripts/observability-check.sh --update-catalogue` regenerates it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::common::*;

const CONVERGE: Duration = Duration::from_secs(60);

/// Type, label names and help text of one metric family.
type Family = (String, BTreeSet<String>, String);

/// Families of a Prometheus text exposition; histogram series fold into their family.
fn families(text: &str) -> BTreeMap<String, Family> {
    let mut out: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.entry(name.to_string()).or_default().2 = help.to_string();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            out.entry(name.to_string()).or_default().0 = kind.to_string();
        } else if !line.is_empty() && !line.starts_with('#') {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let sample = &line[..end];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|s| sample.strip_suffix(s))
                .find(|f| out.get(*f).is_some_and(|fam| fam.0 == "histogram"))
                .unwrap_or(sample)
                .to_string();
            let labels = line[end..]
                .strip_prefix('{')
                .and_then(|l| l.split_once('}'))
                .map(|(l, _)| l)
                .unwrap_or("");
            let names = labels
                .split(',')
                .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.trim().to_string()))
                .filter(|k| k != "le" && k != "quantile");
            out.entry(family).or_default().1.extend(names);
        }
    }
    out
}

/// Rows of the catalogue table: `| `name` | type | `label` (values), ... | help |`.
fn catalogue(markdown: &str) -> BTreeMap<String, Family> {
    markdown
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cols: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cols.len(), 4, "bad catalogue row: {l}");
            let labels = cols[2]
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect();
            let help = cols[3].replace("\\|", "|");
            (
                cols[0].trim_matches('`').to_string(),
                (cols[1].to_string(), labels, help),
            )
        })
        .collect()
}

#[test]
fn exposition_parser_folds_histograms_and_drops_le() {
    let text = "# HELP a_seconds lat\n# TYPE a_seconds histogram\n\
                a_seconds_bucket{route=\"/x\",le=\"0.1\"} 1\na_seconds_sum{route=\"/x\"} 0.1\n\
                a_seconds_count{route=\"/x\"} 1\n# HELP b_total n\n# TYPE b_total counter\nb_total 3\n";
    let f = families(text);
    assert_eq!(f.len(), 2);
    assert_eq!(f["a_seconds"].0, "histogram");
    assert_eq!(f["a_seconds"].1, BTreeSet::from(["route".to_string()]));
    assert_eq!(
        f["b_total"],
        ("counter".into(), BTreeSet::new(), "n".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_matches_a_live_node() {
    let root = test_dir("metrics-catalogue");
    let mut spec = NodeSpec::new(&root, "eu-super", "eu", "super");
    spec.extra = [
        "--regional-monitor-interval",
        "1s",
        "--failover-monitor-interval",
        "1s",
    ]
    .map(String::from)
    .to_vec();
    let node = NodeProcess::start(spec);
    node.wait_ready("ready", CONVERGE).await;
    // Traffic, so the API families have series.
    let client = reqwest::Client::new();
    let _ = get_status(&node.url("/v1/status")).await;
    let _ = client
        .post(node.url("/"))
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "node_status"}))
        .send()
        .await;
    let text = wait_for("every family served", CONVERGE, || async {
        let text = client
            .get(node.url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        [
            "qnet_region_health{",
            "qnet_rpc_requests_total{",
            "qnet_http_requests_total{",
        ]
        .iter()
        .all(|m| text.contains(m))
        .then_some(text)
    })
    .await;
    let live = families(&text);
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README-metrics.md"))
        .expect("README-metrics.md");
    let listed = catalogue(&doc);
    let only_live: Vec<_> = live.keys().filter(|k| !listed.contains_key(*k)).collect();
    let only_listed: Vec<_> = listed.keys().filter(|k| !live.contains_key(*k)).collect();
    assert!(
        only_live.is_empty() && only_listed.is_empty(),
        "README-metrics.md is stale (scripts/observability-check.sh --update-catalogue): \
         served but not listed {only_live:?}, listed but not served {only_listed:?}"
    );
    for (name, family) in &live {
        assert_eq!(
            &listed[name], family,
            "README-metrics.md row of {name} is stale"
        );
    }
}
