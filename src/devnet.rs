//! `qnet-node devnet`: a local multi-region network of child `qnet-node` processes on
//! 127.0.0.1, each with its own data dir and log file, stopped cleanly on Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::config::DevnetArgs;

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

fn spawn(
    node: &DevnetNode,
    bootstrap: Option<SocketAddr>,
    args: &DevnetArgs,
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
    let bootstrap = nodes.first().map(|n| n.p2p_addr);
    let mut children = Vec::new();
    for node in &nodes {
        let b = if node.index == 0 { None } else { bootstrap };
        children.push(spawn(node, b, &args)?);
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
    fn plan_rejects_ports_past_the_end() {
        assert!(plan(&args(64, 3, 65_400)).is_err());
        assert!(plan(&args(2, 1, 80)).is_err());
    }
}
