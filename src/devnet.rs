//! `qnet-node devnet`: a local multi-region network of child `qnet-node` processes on
//! 127.0.0.1, each with its own data dir and log file, stopped cleanly on Ctrl-C.
//! A node that exits (or is killed in a drill) is reported; the others keep running.
//! With `--prometheus FILE` it also writes a Prometheus config that scrapes every node.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::chain::spec::ChainSpec;
use crate::chain::tx::Address;
use crate::config::DevnetArgs;
use crate::identity::{to_hex, Identity, KEY_FILE};

/// Region names used by the devnet, in order.
pub const DEVNET_REGIONS: [&str; 6] = ["eu", "na", "asia", "sa", "africa", "oceania"];

/// The alert rules shipped with the binary (`dashboards/alerts.yml`).
pub const ALERT_RULES: &str = include_str!("../dashboards/alerts.yml");
/// File name of the alert rules written next to the Prometheus config.
pub const ALERT_RULES_FILE: &str = "qnet-alerts.yml";
/// Prometheus job name of the devnet's nodes (the alert rules refer to it).
pub const PROMETHEUS_JOB: &str = "qnet";

/// One planned devnet node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevnetNode {
    /// Index.
    pub index: usize,
    /// Region.
    pub region: &'static str,
    /// `super` for the first node of each region, `full` for the others.
    pub node_type: &'static str,
    /// p2p address (UDP gossip + TCP data plane; bridge gossip on the next port).
    pub p2p_addr: SocketAddr,
    /// API address.
    pub api_addr: SocketAddr,
    /// Data dir.
    pub data_dir: PathBuf,
}

/// Lays out the nodes: regions round-robin, ports base+3i.., node 0 is everyone's bootstrap.
pub fn plan(args: &DevnetArgs) -> anyhow::Result<Vec<DevnetNode>> {
    let n = usize::from(args.nodes);
    let last_port = u32::from(args.base_port) + 3 * n as u32;
    anyhow::ensure!(
        last_port <= 65_535,
        "--base-port {} leaves no room for {n} nodes",
        args.base_port
    );
    anyhow::ensure!(args.base_port >= 1024, "--base-port must be at least 1024");
    Ok((0..n)
        .map(|i| {
            let region = DEVNET_REGIONS[i % usize::from(args.regions)];
            let port = args.base_port + 3 * i as u16;
            DevnetNode {
                index: i,
                region,
                node_type: if i < usize::from(args.regions) {
                    "super"
                } else {
                    "full"
                },
                p2p_addr: SocketAddr::from(([127, 0, 0, 1], port)),
                api_addr: SocketAddr::from(([127, 0, 0, 1], port + 2)),
                data_dir: args.dir.join(format!("node-{i}")),
            }
        })
        .collect())
}

/// File under the devnet dir holding the chain spec shared by every node.
pub const CHAIN_FILE: &str = "chain.json";
/// File under the devnet dir holding the key of the funded account.
pub const FAUCET_KEY_FILE: &str = "faucet.key";
/// Balance of the funded account.
pub const FAUCET_BALANCE: u64 = 1_000_000_000_000;

/// Creates each node's key and the faucet key, and the chain spec with every node as a
/// producer; an existing spec with the same producers is kept so restarts continue the chain.
pub fn prepare_chain(
    nodes: &[DevnetNode],
    dir: &Path,
    now_ms: u64,
) -> anyhow::Result<(PathBuf, Address)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut producers = Vec::new();
    for node in nodes {
        std::fs::create_dir_all(&node.data_dir)
            .with_context(|| format!("cannot create {}", node.data_dir.display()))?;
        let identity = Identity::load_or_create(&node.data_dir.join(KEY_FILE))?;
        producers.push(to_hex(identity.public_key().as_bytes()));
    }
    let faucet = Identity::load_or_create(&dir.join(FAUCET_KEY_FILE))?;
    let faucet_address = Address::from_public_key(faucet.public_key().as_bytes());
    let path = dir.join(CHAIN_FILE);
    if let Ok(existing) = ChainSpec::load(&path) {
        if existing.producers == producers {
            return Ok((path, faucet_address));
        }
    }
    let spec = ChainSpec {
        chain_id: "qnet-devnet".into(),
        genesis_time_ms: now_ms - now_ms % 1_000,
        slot_ms: crate::chain::spec::DEFAULT_SLOT_MS,
        producers,
        balances: vec![(faucet_address.to_string(), FAUCET_BALANCE)],
    };
    spec.validate()?;
    std::fs::write(&path, spec.to_json())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok((path, faucet_address))
}

/// Scrape interval for a devnet: twice per monitor interval, between 1 s and 5 s.
pub fn scrape_interval(monitor_interval: Duration) -> Duration {
    (monitor_interval / 2).clamp(Duration::from_secs(1), Duration::from_secs(5))
}

/// A Prometheus config that scrapes every node's `/metrics` with `region`, `instance`
/// (`node-<i>`) and `node_type` labels and loads the alert rules from `rules_file`.
pub fn prometheus_config(nodes: &[DevnetNode], rules_file: &str, every: Duration) -> String {
    let every = format!("{}s", every.as_secs().max(1));
    let mut out = String::from(
        "# Prometheus config for a qnet devnet, written by `qnet-node devnet --prometheus`.\n",
    );
    for line in [
        "global:".to_string(),
        format!("  scrape_interval: {every}"),
        format!("  scrape_timeout: {every}"),
        format!("  evaluation_interval: {every}"),
        "rule_files:".to_string(),
        format!("  - {rules_file}"),
        "scrape_configs:".to_string(),
        format!("  - job_name: {PROMETHEUS_JOB}"),
        "    metrics_path: /metrics".to_string(),
        "    # a metric's own `region` label (the observed region of qnet_region_health and"
            .to_string(),
        "    # qnet_members) wins; every other series gets the scraped node's region".to_string(),
        "    honor_labels: true".to_string(),
        "    static_configs:".to_string(),
    ] {
        out.push_str(&line);
        out.push('\n');
    }
    for n in nodes {
        // Writing into a String cannot fail.
        let _ = writeln!(
            out,
            "      - targets: [\"{}\"]\n        labels: {{ region: {}, instance: node-{}, node_type: {} }}",
            n.api_addr, n.region, n.index, n.node_type
        );
    }
    out
}

/// How to name this binary in a printed command: `qnet-node` when that name on `PATH` is this
/// very file, else its absolute path, so the command works for someone who started the devnet
/// with `cargo run` (nothing on `PATH`) or who has another `qnet-node` installed.
fn program_name(exe: &Path, path_var: Option<&std::ffi::OsStr>) -> String {
    let exe = std::fs::canonicalize(exe).unwrap_or_else(|_| exe.to_path_buf());
    let on_path = path_var
        .map(|dirs| std::env::split_paths(dirs).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("qnet-node"))
        .find(|candidate| candidate.is_file());
    match on_path.and_then(|found| std::fs::canonicalize(found).ok()) {
        Some(found) if found == exe => "qnet-node".to_string(),
        _ => shell_word(&exe.to_string_lossy()),
    }
}

/// `text` as one shell word: unchanged when it has no character the shell treats specially,
/// else in single quotes.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=,@%".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// The commands printed after start-up for trying the first node's API and the wallet;
/// `program` names this binary and `faucet_key` is an absolute path, so each line works
/// when pasted into another shell.
fn try_commands(
    api: SocketAddr,
    program: &str,
    faucet_key: &Path,
    faucet: &Address,
) -> Vec<String> {
    vec![
        format!("curl -s http://{api}/v1/regions"),
        format!("curl -s http://{api}/v1/peers"),
        format!("curl -s http://{api}/metrics | grep ^qnet_"),
        format!("curl -s http://{api}/v1/blocks/latest"),
        format!(
            "{program} wallet send --key {} --to {faucet} --amount 5 --rpc http://{api} --wait",
            shell_word(&faucet_key.to_string_lossy())
        ),
    ]
}

/// The two commands that start Prometheus on `config` and Grafana with the dashboards.
pub fn monitoring_commands(config: &Path) -> [String; 2] {
    let data = config
        .parent()
        .unwrap_or_else(|| Path::new(""))
        .join("prometheus-data");
    [
        format!(
            "prometheus --config.file={} --storage.tsdb.path={} --web.listen-address=127.0.0.1:9090",
            config.display(),
            data.display()
        ),
        "docker run --rm --network host \
         -v \"$PWD/dashboards:/var/lib/grafana/dashboards/qnet:ro\" \
         -v \"$PWD/dashboards/provisioning:/etc/grafana/provisioning:ro\" grafana/grafana"
            .to_string(),
    ]
}

fn write_prometheus(path: &Path, nodes: &[DevnetNode], args: &DevnetArgs) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new(""));
    if !dir.as_os_str().is_empty() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let rules = dir.join(ALERT_RULES_FILE);
    std::fs::write(&rules, ALERT_RULES)
        .with_context(|| format!("cannot write {}", rules.display()))?;
    let every = scrape_interval(args.monitor_interval);
    std::fs::write(path, prometheus_config(nodes, ALERT_RULES_FILE, every))
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "prometheus: {} scrapes {} nodes every {}s, alert rules in {}; start monitoring with:",
        path.display(),
        nodes.len(),
        every.as_secs(),
        rules.display()
    );
    let [prometheus, grafana] = monitoring_commands(path);
    println!("  {prometheus}");
    println!("  {grafana}");
    println!("  (Grafana from the repository root, then open http://127.0.0.1:3000)");
    Ok(())
}

fn spawn(
    node: &DevnetNode,
    bootstrap: Option<SocketAddr>,
    args: &DevnetArgs,
    chain: &Path,
) -> anyhow::Result<Child> {
    std::fs::create_dir_all(&node.data_dir)
        .with_context(|| format!("cannot create {}", node.data_dir.display()))?;
    let log_path = node.data_dir.join("node.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let exe = std::env::current_exe().context("cannot find the qnet-node executable")?;
    let interval = humantime::format_duration(args.monitor_interval).to_string();
    let mut cmd = Command::new(exe);
    cmd.arg("--node-type")
        .arg(node.node_type)
        .arg("--region")
        .arg(node.region)
        .arg("--data-dir")
        .arg(&node.data_dir)
        .arg("--p2p-addr")
        .arg(node.p2p_addr.to_string())
        .arg("--rpc-addr")
        .arg(node.api_addr.to_string())
        .arg("--regional-monitor-interval")
        .arg(&interval)
        .arg("--failover-monitor-interval")
        .arg(&interval)
        .arg("--strategy-settle-time")
        .arg("3s")
        .arg("--chain")
        .arg(chain)
        .arg("--enable-microblocks");
    if let Some(b) = bootstrap {
        cmd.arg("--bootstrap-peers").arg(b.to_string());
    }
    for (key, _) in std::env::vars() {
        if key.starts_with("QNET_") {
            cmd.env_remove(key);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    cmd.spawn().context("cannot start a devnet node")
}

/// Minimal HTTP/1.0 GET against a node's API on loopback; returns status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream =
        tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await??;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await??;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("bad http answer")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn terminate(child: &Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) with a pid we spawned and still own; no memory is touched.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
}

/// Runs the devnet until `stop` completes (the binary passes Ctrl-C or SIGTERM). The caller
/// hands the signal in so the devnet, a tool, does not depend on the command layer above it.
pub async fn run(
    args: DevnetArgs,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let nodes = plan(&args)?;
    let now_ms = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
    let (chain, faucet) = prepare_chain(&nodes, &args.dir, now_ms)?;
    if let Some(path) = &args.prometheus {
        write_prometheus(path, &nodes, &args)?;
    }
    let bootstrap = nodes.first().map(|n| n.p2p_addr);
    let mut children = Vec::new();
    for node in &nodes {
        let b = if node.index == 0 { None } else { bootstrap };
        children.push(spawn(node, b, &args, &chain)?);
        if node.index == 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    println!(
        "devnet: {} nodes in {} regions, data and logs under {}",
        nodes.len(),
        args.regions,
        args.dir.display()
    );
    println!(
        "devnet: chain spec {} (every node produces), funded account {faucet}",
        chain.display()
    );
    for n in &nodes {
        println!(
            "  node-{:<2} {:<7} {:<5}  api http://{}  p2p {}",
            n.index, n.region, n.node_type, n.api_addr, n.p2p_addr
        );
    }
    let started = Instant::now();
    let mut ready = vec![false; nodes.len()];
    let deadline = Duration::from_secs(60);
    while !ready.iter().all(|r| *r) && started.elapsed() < deadline {
        for (i, n) in nodes.iter().enumerate() {
            if !ready[i] {
                ready[i] = matches!(http_get(n.api_addr, "/health/ready").await, Ok((200, _)));
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let waited = started.elapsed().as_secs_f64();
    let not_ready: Vec<String> = nodes
        .iter()
        .zip(&ready)
        .filter(|(_, r)| !**r)
        .map(|(n, _)| format!("node-{}", n.index))
        .collect();
    // A fixed line when every node is ready: scripts (the README check) wait for it.
    if not_ready.is_empty() {
        println!("devnet: all {} nodes ready after {waited:.1}s", nodes.len());
    } else {
        println!(
            "devnet: {}/{} nodes ready after {waited:.1}s; not ready: {} (see their node.log)",
            nodes.len() - not_ready.len(),
            nodes.len(),
            not_ready.join(", ")
        );
    }
    if let Some(first) = nodes.first() {
        println!("open: http://{}/ui", first.api_addr);
        let exe = std::env::current_exe().context("cannot find the qnet-node executable")?;
        let program = program_name(&exe, std::env::var_os("PATH").as_deref());
        let key = args.dir.join(FAUCET_KEY_FILE);
        let key = std::fs::canonicalize(&key).unwrap_or(key);
        for (i, line) in try_commands(first.api_addr, &program, &key, &faucet)
            .iter()
            .enumerate()
        {
            println!("{}{line}", if i == 0 { "try:  " } else { "      " });
        }
    }
    println!("devnet: running; press Ctrl-C to stop");
    let mut running = vec![true; children.len()];
    // One signal listener for the whole run, so no signal falls between two loop turns.
    tokio::pin!(stop);
    while running.iter().any(|r| *r) {
        let (i, status) = tokio::select! {
            _ = &mut stop => break,
            e = next_exit(&mut children, &running) => e,
        };
        running[i] = false;
        eprintln!(
            "devnet: node-{i} exited ({status}); see {}; the others keep running",
            nodes[i].data_dir.join("node.log").display()
        );
    }
    for c in &children {
        terminate(c);
    }
    for (i, c) in children.iter_mut().enumerate() {
        match tokio::time::timeout(Duration::from_secs(10), c.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("devnet: node-{i} did not stop in time; killing it");
                let _ = c.kill().await;
            }
        }
    }
    println!("devnet: stopped");
    Ok(())
}

async fn next_exit(children: &mut [Child], running: &[bool]) -> (usize, String) {
    loop {
        for (i, c) in children.iter_mut().enumerate() {
            if !running.get(i).copied().unwrap_or(false) {
                continue;
            }
            if let Ok(Some(status)) = c.try_wait() {
                return (i, status.to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(nodes: u16, regions: u16, base_port: u16) -> DevnetArgs {
        DevnetArgs {
            nodes,
            regions,
            base_port,
            dir: PathBuf::from("/tmp/devnet-test"),
            monitor_interval: Duration::from_secs(10),
            prometheus: None,
        }
    }

    #[test]
    fn plan_spreads_regions_and_ports() {
        let nodes = plan(&args(6, 3, 19_000)).unwrap();
        let regions: Vec<_> = nodes.iter().map(|n| n.region).collect();
        assert_eq!(regions, ["eu", "na", "asia", "eu", "na", "asia"]);
        let types: Vec<_> = nodes.iter().map(|n| n.node_type).collect();
        assert_eq!(types, ["super", "super", "super", "full", "full", "full"]);
        assert_eq!(nodes[1].p2p_addr.port(), 19_003);
        assert_eq!(nodes[1].api_addr.port(), 19_005);
    }

    #[test]
    fn chain_has_every_node_as_producer_and_is_kept_across_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(3, 2, 19_000);
        a.dir = dir.path().to_path_buf();
        let nodes = plan(&a).unwrap();
        let (path, faucet) = prepare_chain(&nodes, dir.path(), 5_500).unwrap();
        let spec = ChainSpec::load(&path).unwrap();
        assert_eq!(spec.producers.len(), 3);
        assert_eq!(spec.genesis_time_ms, 5_000);
        assert_eq!(spec.balances, vec![(faucet.to_string(), FAUCET_BALANCE)]);
        let (again, faucet2) = prepare_chain(&nodes, dir.path(), 99_000).unwrap();
        assert_eq!(ChainSpec::load(&again).unwrap(), spec);
        assert_eq!(faucet2, faucet);
    }

    #[test]
    fn prometheus_config_scrapes_every_node_with_labels_and_rules() {
        let nodes = plan(&args(2, 2, 19_000)).unwrap();
        let text = prometheus_config(&nodes, ALERT_RULES_FILE, Duration::from_secs(1));
        let expected = "\
# Prometheus config for a qnet devnet, written by `qnet-node devnet --prometheus`.
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - qnet-alerts.yml
scrape_configs:
  - job_name: qnet
    metrics_path: /metrics
    # a metric's own `region` label (the observed region of qnet_region_health and
    # qnet_members) wins; every other series gets the scraped node's region
    honor_labels: true
    static_configs:
      - targets: [\"127.0.0.1:19002\"]
        labels: { region: eu, instance: node-0, node_type: super }
      - targets: [\"127.0.0.1:19005\"]
        labels: { region: na, instance: node-1, node_type: super }
";
        assert_eq!(text, expected);
    }

    #[test]
    fn prometheus_config_lists_one_target_per_node() {
        let nodes = plan(&args(8, 4, 19_000)).unwrap();
        let text = prometheus_config(&nodes, "rules.yml", Duration::from_secs(5));
        assert_eq!(text.matches("- targets: ").count(), 8);
        for n in &nodes {
            let line = format!(
                "      - targets: [\"{}\"]\n        labels: {{ region: {}, instance: node-{}, ",
                n.api_addr, n.region, n.index
            );
            assert!(text.contains(&line), "missing {line}");
        }
        assert!(text.contains("scrape_interval: 5s\n"));
        assert!(text.contains("rule_files:\n  - rules.yml\n"));
        assert!(text.contains("instance: node-7, node_type: full"));
    }

    #[test]
    fn example_config_matches_a_default_devnet() {
        let defaults = DevnetArgs {
            dir: PathBuf::from("./devnet-data"),
            ..args(6, 3, 19_000)
        };
        let nodes = plan(&defaults).unwrap();
        let every = scrape_interval(defaults.monitor_interval);
        assert_eq!(
            include_str!("../dashboards/prometheus.yml"),
            prometheus_config(&nodes, "alerts.yml", every)
        );
    }

    #[test]
    fn scrape_interval_is_half_the_monitor_interval_within_bounds() {
        assert_eq!(
            scrape_interval(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
        assert_eq!(
            scrape_interval(Duration::from_millis(500)),
            Duration::from_secs(1)
        );
        assert_eq!(
            scrape_interval(Duration::from_secs(6)),
            Duration::from_secs(3)
        );
        assert_eq!(
            scrape_interval(Duration::from_secs(10)),
            Duration::from_secs(5)
        );
        assert_eq!(
            scrape_interval(Duration::from_secs(300)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn alert_rules_ship_with_the_binary_and_name_the_job() {
        assert!(ALERT_RULES.contains("alert: QnetFailoverActive"));
        assert!(ALERT_RULES.contains(&format!("job=\"{PROMETHEUS_JOB}\"")));
    }

    #[test]
    fn monitoring_commands_point_at_the_config() {
        let [prometheus, grafana] = monitoring_commands(Path::new("/tmp/dn/prometheus.yml"));
        assert_eq!(
            prometheus,
            "prometheus --config.file=/tmp/dn/prometheus.yml \
             --storage.tsdb.path=/tmp/dn/prometheus-data --web.listen-address=127.0.0.1:9090"
        );
        assert!(grafana.contains("dashboards/provisioning:/etc/grafana/provisioning"));
        assert!(grafana.contains("/var/lib/grafana/dashboards/qnet"));
    }

    #[test]
    fn printed_program_is_qnet_node_only_when_path_finds_this_file() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        let other = dir.path().join("other");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        let exe = dir.path().join("target-release-qnet-node");
        std::fs::write(&exe, b"").unwrap();
        std::fs::write(other.join("qnet-node"), b"").unwrap();
        std::os::unix::fs::symlink(&exe, bin.join("qnet-node")).unwrap();
        let absolute = std::fs::canonicalize(&exe).unwrap();
        let absolute = absolute.to_str().unwrap();

        let path = |dirs: &[&Path]| std::env::join_paths(dirs).unwrap();
        assert_eq!(program_name(&exe, Some(&path(&[&bin]))), "qnet-node");
        // The first qnet-node on PATH is another file: it would run another binary.
        assert_eq!(program_name(&exe, Some(&path(&[&other, &bin]))), absolute);
        assert_eq!(program_name(&exe, Some(&path(&[dir.path()]))), absolute);
        assert_eq!(program_name(&exe, None), absolute);
    }

    #[test]
    fn shell_words_survive_pasting() {
        assert_eq!(
            shell_word("/home/a/devnet-data/faucet.key"),
            "/home/a/devnet-data/faucet.key"
        );
        assert_eq!(shell_word("/my dir/qnet-node"), "'/my dir/qnet-node'");
        assert_eq!(shell_word("/it's"), "'/it'\\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn try_commands_name_the_binary_and_an_absolute_key() {
        let api = SocketAddr::from(([127, 0, 0, 1], 19_002));
        let faucet = Address::from_public_key(&[7; 32]);
        let lines = try_commands(
            api,
            "/src/target/release/qnet-node",
            Path::new("/src/devnet data/faucet.key"),
            &faucet,
        );
        assert_eq!(lines[0], "curl -s http://127.0.0.1:19002/v1/regions");
        assert!(lines[..4]
            .iter()
            .all(|l| l.starts_with("curl -s http://127.0.0.1:19002/")));
        assert_eq!(
            lines[4],
            format!(
                "/src/target/release/qnet-node wallet send --key '/src/devnet data/faucet.key' \
                 --to {faucet} --amount 5 --rpc http://127.0.0.1:19002 --wait"
            )
        );
    }

    #[test]
    fn plan_rejects_ports_past_the_end() {
        assert!(plan(&args(64, 3, 65_400)).is_err());
        assert!(plan(&args(2, 1, 80)).is_err());
    }
}
