//! `qnet-node devnet`: a local multi-region network of child `qnet-node` processes on
//! 127.0.0.1, each with its own data dir and log file, stopped cleanly on Ctrl-C.

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

/// Runs the devnet until Ctrl-C or SIGTERM.
pub async fn run(args: DevnetArgs) -> anyhow::Result<()> {
    let nodes = plan(&args)?;
    let now_ms = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
    let (chain, faucet) = prepare_chain(&nodes, &args.dir, now_ms)?;
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
    let ready_count = ready.iter().filter(|r| **r).count();
    println!(
        "devnet: {ready_count}/{} nodes ready after {:.1}s",
        nodes.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(first) = nodes.first() {
        println!("try:  curl -s http://{}/v1/regions", first.api_addr);
        println!("      curl -s http://{}/v1/peers", first.api_addr);
        println!(
            "      curl -s http://{}/metrics | grep ^qnet_",
            first.api_addr
        );
        println!("      curl -s http://{}/v1/blocks/latest", first.api_addr);
        println!(
            "      qnet-node wallet send --key {} --to {faucet} --amount 5 --rpc http://{} --wait",
            args.dir.join(FAUCET_KEY_FILE).display(),
            first.api_addr
        );
    }
    println!("devnet: running; press Ctrl-C to stop");
    let exited = tokio::select! {
        _ = crate::command::wait_for_signal() => None,
        i = first_exit(&mut children) => Some(i),
    };
    if let Some((i, status)) = exited {
        eprintln!(
            "devnet: node-{i} exited ({status}); see {}",
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

async fn first_exit(children: &mut [Child]) -> (usize, String) {
    loop {
        for (i, c) in children.iter_mut().enumerate() {
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
    fn plan_rejects_ports_past_the_end() {
        assert!(plan(&args(64, 3, 65_400)).is_err());
        assert!(plan(&args(2, 1, 80)).is_err());
    }
}
