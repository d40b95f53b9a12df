//! qnet-rss: measures the resident memory of one real `qnet-node` process whose region has
//! a given number of members (target: ≤ 150 MB RSS with a 1,000-member region).
//!
//! It starts the real node binary as the first node of a fresh network on 127.0.0.1, then
//! `--members` lightweight members in this process: each a real chitchat instance with its
//! own loopback address (127.0.x.y), in the node's regional cluster, with a valid signed
//! member card, so the node admits and tracks them exactly as it would real nodes. When the
//! node's `qnet_members` metric counts them all (live or dead), it samples `VmRSS` of the
//! node process from `/proc/<pid>/status` for `--measure`, prints the figures (with how many
//! members were live) and stops the node.
//!
//! `cargo build --release --bin qnet-node && cargo build --release -p qnet-sim --bin qnet-rss &&
//! target/release/qnet-rss --members 999`

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use chitchat::transport::UdpTransport;
use chitchat::{spawn_chitchat, ChitchatConfig, ChitchatHandle, FailureDetectorConfig};
use clap::Parser;
use qnet_node::identity::{Identity, NodeType};
use qnet_node::membership::{card, keys};
use qnet_node::region::Region;

/// Measures a real node's RSS with a region of many members.
#[derive(Debug, Parser)]
#[command(name = "qnet-rss", version)]
struct Args {
    /// The node binary (default: `qnet-node` next to this binary).
    #[arg(long)]
    node_bin: Option<PathBuf>,
    /// Lightweight members started besides the node (the region has this many + 1).
    #[arg(long, default_value_t = 999)]
    members: usize,
    /// Region of the node and the members.
    #[arg(long, default_value = "eu")]
    region: String,
    /// UDP port of the members; member `i` listens on `127.0.(1 + i / 250).(1 + i % 250)`,
    /// one loopback address each, as real members have one host each (the node limits
    /// datagrams per source address).
    #[arg(long, default_value_t = 30_000)]
    member_port: u16,
    /// The node's p2p port (UDP gossip, TCP data plane).
    #[arg(long, default_value_t = 29_000)]
    node_port: u16,
    /// The node's REST port.
    #[arg(long, default_value_t = 29_100)]
    rpc_port: u16,
    /// Gossip interval of the node.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    gossip_interval: Duration,
    /// Gossip interval of the lightweight members: longer than the node's so that one
    /// process can carry them all on a small machine; the node still gossips at its own
    /// interval and holds the full state of every member.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    member_gossip_interval: Duration,
    /// How long to wait for the node to see every member live.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    converge_limit: Duration,
    /// How long to sample RSS once every member is live.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    measure: Duration,
}

/// The node process; killed and reaped on drop, so no run leaves it behind.
struct NodeProcess {
    child: Child,
    dir: PathBuf,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let region = Region::new(&args.region).map_err(|e| anyhow::anyhow!("bad --region: {e}"))?;
    let node_bin = match &args.node_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("qnet-node"))
            .ok_or_else(|| anyhow::anyhow!("cannot locate qnet-node; pass --node-bin"))?,
    };
    let node_addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, args.node_port));
    let rpc_addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, args.rpc_port));
    let mut node = start_node(
        &node_bin,
        &region,
        node_addr,
        rpc_addr,
        args.gossip_interval,
    )?;
    let pid = node.child.id();
    println!("node pid {pid} on {node_addr}, rpc {rpc_addr}");
    let started = Instant::now();
    let first = loop {
        if let Some(s) = status(rpc_addr) {
            break s;
        }
        if let Some(code) = node.child.try_wait()? {
            anyhow::bail!("node exited early ({code}); see its log");
        }
        if started.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("node api did not come up within 60 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let chain_id = first["chain_id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("status has no chain_id"))?
        .to_string();
    let baseline = rss_kb(pid).unwrap_or(0);
    println!("chain {chain_id}; node RSS alone {} MiB", baseline / 1024);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let members = rt.block_on(start_members(args, &chain_id, &region, node_addr))?;
    println!("{} members started", members.len());
    let joined = Instant::now();
    let want = args.members as u64 + 1;
    loop {
        let (live, dead) = members_seen(rpc_addr, &region);
        if live + dead >= want {
            println!(
                "node knows {} members ({live} live) after {:.0} s",
                live + dead,
                joined.elapsed().as_secs_f64()
            );
            break;
        }
        if node.child.try_wait()?.is_some() {
            anyhow::bail!("node exited while members joined");
        }
        if joined.elapsed() > args.converge_limit {
            println!(
                "node knows only {} of {want} members after {:?}; measuring anyway",
                live + dead,
                args.converge_limit
            );
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let measure_start = Instant::now();
    let (mut max, mut last, mut samples) = (0u64, 0u64, 0u32);
    let (mut known_min, mut live_min, mut live_max) = (u64::MAX, u64::MAX, 0u64);
    while measure_start.elapsed() < args.measure {
        std::thread::sleep(Duration::from_secs(5));
        last = rss_kb(pid).ok_or_else(|| anyhow::anyhow!("cannot read /proc/{pid}/status"))?;
        max = max.max(last);
        samples += 1;
        let (live, dead) = members_seen(rpc_addr, &region);
        known_min = known_min.min(live + dead);
        live_min = live_min.min(live);
        live_max = live_max.max(live);
    }
    let hwm = hwm_kb(pid).unwrap_or(0);
    println!(
        "\n== real node RSS with a {want}-member region ({samples} samples over {:.0} s) ==",
        args.measure.as_secs_f64()
    );
    println!("members_known_min  members_live_min..max  rss_last_MiB  rss_max_MiB  vm_hwm_MiB  rss_before_members_MiB");
    println!(
        "{:<17}  {:<21}  {:<12.1}  {:<11.1}  {:<10.1}  {:.1}",
        known_min,
        format!("{live_min}..{live_max}"),
        last as f64 / 1024.0,
        max as f64 / 1024.0,
        hwm as f64 / 1024.0,
        baseline as f64 / 1024.0
    );
    rt.block_on(async {
        for m in members {
            let _ = m.initiate_shutdown();
        }
    });
    drop(node);
    Ok(())
}

fn start_node(
    bin: &Path,
    region: &Region,
    p2p: SocketAddr,
    rpc: SocketAddr,
    gossip: Duration,
) -> anyhow::Result<NodeProcess> {
    let dir = std::env::temp_dir().join(format!("qnet-rss-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let log = std::fs::File::create(dir.join("node.log"))?;
    let child = Command::new(bin)
        .arg("--node-type")
        .arg("super")
        .arg("--region")
        .arg(region.as_str())
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--p2p-addr")
        .arg(p2p.to_string())
        .arg("--rpc-addr")
        .arg(rpc.to_string())
        .arg("--gossip-interval")
        .arg(format!("{}ms", gossip.as_millis()))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", bin.display()))?;
    Ok(NodeProcess { child, dir })
}

async fn start_members(
    args: &Args,
    chain_id: &str,
    region: &Region,
    node_addr: SocketAddr,
) -> anyhow::Result<Vec<ChitchatHandle>> {
    let generation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let mut handles = Vec::with_capacity(args.members);
    for i in 0..args.members {
        let hi = u8::try_from(1 + i / 250)
            .map_err(|_| anyhow::anyhow!("at most 63,750 members (127.0.1.1 to 127.0.255.250)"))?;
        let lo = (1 + i % 250) as u8;
        let addr = SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::new(127, 0, hi, lo),
            args.member_port,
        ));
        let identity = Identity::generate();
        let id = card::chitchat_id(&identity, generation, addr);
        let card_value = card::issue(&identity, &id, region, NodeType::Full);
        let config = ChitchatConfig {
            chitchat_id: id,
            cluster_id: format!("{chain_id}/{region}"),
            gossip_interval: args.member_gossip_interval,
            listen_addr: addr,
            seed_nodes: vec![node_addr.to_string()],
            // the members stand in for other nodes; their own failure detection does not
            // matter, so a small sampling window keeps 999 of them in little memory
            failure_detector_config: FailureDetectorConfig {
                initial_interval: args.member_gossip_interval,
                sampling_window_size: 10,
                ..FailureDetectorConfig::default()
            },
            marked_for_deletion_grace_period: Duration::from_secs(300),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: chitchat::ProtocolVersion::V1,
        };
        let initial = vec![
            (keys::KEY_CARD.to_string(), card_value),
            (keys::KEY_READY.to_string(), "1".to_string()),
        ];
        handles.push(spawn_chitchat(config, initial, &UdpTransport).await?);
    }
    Ok(handles)
}

/// The body of `GET <path>` on the node, `None` unless it answers 200.
fn http_get(rpc: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&rpc, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {rpc}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// `GET /v1/status` of the node as JSON, `None` while it does not answer.
fn status(rpc: SocketAddr) -> Option<serde_json::Value> {
    serde_json::from_str(&http_get(rpc, "/v1/status")?).ok()
}

/// (live, dead) members of `region` in the node's own view, from `qnet_members` in /metrics
/// (the node itself included).
fn members_seen(rpc: SocketAddr, region: &Region) -> (u64, u64) {
    let Some(text) = http_get(rpc, "/metrics") else {
        return (0, 0);
    };
    let value = |state: &str| {
        let key = format!("qnet_members{{region=\"{region}\",state=\"{state}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    };
    (value("live"), value("dead"))
}

fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident set size of process `pid` in KiB.
fn rss_kb(pid: u32) -> Option<u64> {
    proc_status_kb(pid, "VmRSS:")
}

/// Peak resident set size of process `pid` in KiB.
fn hwm_kb(pid: u32) -> Option<u64> {
    proc_status_kb(pid, "VmHWM:")
}
