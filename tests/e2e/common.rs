//! Shared helpers of the end-to-end tests: start real `qnet-node` processes on 127.0.0.1
//! with their own data dirs and ports, talk to their REST API, poll with generous deadlines.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_qnet-node");

/// Ports handed out so far by this test binary (an offset into the test port range).
static NEXT_PORT: AtomicU32 = AtomicU32::new(0);

/// Lowest test port.
const PORT_FLOOR: u32 = 10_000;

fn port_free(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpListener::bind(addr).is_ok() && UdpSocket::bind(addr).is_ok()
}

/// First port of the kernel's ephemeral range (source ports of outgoing connections); test
/// ports stay below it, or a connection made by a test running alongside can take a port
/// between its reservation and the node's bind ("address already in use").
fn ephemeral_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .filter(|&p: &u32| p >= PORT_FLOOR + 5_000)
        .unwrap_or(32_768)
}

/// Three consecutive free ports: p2p (TCP+UDP), bridge gossip (UDP), API (TCP).
pub fn reserve_ports() -> u16 {
    reserve_port_triples(1)
}

/// `n` consecutive free port triples (node i uses base+3i .. base+3i+2), taken in one step
/// so that tests reserving ports at the same time never interleave with the run. The ports
/// lie between 10,000 and the ephemeral range, from a start that depends on the process id
/// (test binaries running at once rarely meet), wrapping around.
pub fn reserve_port_triples(n: u16) -> u16 {
    let want = 3 * u32::from(n);
    let span = ephemeral_start() - PORT_FLOOR - want;
    let seed = (std::process::id() % 100) * 100;
    for _ in 0..span {
        let offset = NEXT_PORT.fetch_add(want, Ordering::SeqCst);
        let base = PORT_FLOOR + (seed + offset) % span;
        if (base..base + want).all(|p| port_free(p as u16)) {
            return base as u16;
        }
    }
    panic!("no {want} free consecutive test ports below the ephemeral range");
}

/// A fresh directory for one test's nodes under `target/tmp/`, kept after the run so the
/// logs of a failed test can be read (`target/tmp/<name>/*.log`).
pub fn test_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

/// How to start one node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Region.
    pub region: String,
    /// Node type.
    pub node_type: String,
    /// Data dir.
    pub data_dir: PathBuf,
    /// First of three reserved ports.
    pub base_port: u16,
    /// Bootstrap peers.
    pub bootstrap: Vec<SocketAddr>,
    /// Extra flags.
    pub extra: Vec<String>,
}

impl NodeSpec {
    /// A node of `region` and `node_type` with fresh ports under `root`.
    pub fn new(root: &Path, name: &str, region: &str, node_type: &str) -> Self {
        NodeSpec {
            region: region.into(),
            node_type: node_type.into(),
            data_dir: root.join(name),
            base_port: reserve_ports(),
            bootstrap: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// The p2p address.
    pub fn p2p_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.base_port))
    }

    /// The API address.
    pub fn api_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.base_port + 2))
    }

    /// The command line.
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--node-type".into(),
            self.node_type.clone(),
            "--region".into(),
            self.region.clone(),
            "--data-dir".into(),
            self.data_dir.display().to_string(),
            "--p2p-addr".into(),
            self.p2p_addr().to_string(),
            "--rpc-addr".into(),
            self.api_addr().to_string(),
            "--gossip-interval".into(),
            "300ms".into(),
            "--dead-node-grace-period".into(),
            "60s".into(),
        ];
        if !self.bootstrap.is_empty() {
            let list: Vec<String> = self.bootstrap.iter().map(|b| b.to_string()).collect();
            a.push("--bootstrap-peers".into());
            a.push(list.join(","));
        }
        a.extend(self.extra.iter().cloned());
        a
    }
}

/// A running node process; killed when dropped.
pub struct NodeProcess {
    /// How it was started.
    pub spec: NodeSpec,
    child: Child,
    log: PathBuf,
}

impl NodeProcess {
    /// Starts the node; its stderr goes to `<data_dir>.log`.
    pub fn start(spec: NodeSpec) -> NodeProcess {
        let log = spec.data_dir.with_extension("log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("create log file");
        let child = Command::new(BIN)
            .args(spec.args())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn qnet-node");
        NodeProcess { spec, child, log }
    }

    /// Base URL of the API.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.spec.api_addr(), path)
    }

    /// The node's peak resident memory in bytes (`VmHWM` of /proc/<pid>/status).
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    }

    /// The value of one metric series (`name{labels}` as exposed), 0 when absent; panics when
    /// the node does not answer.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = metrics_text(&self.url("")).await.expect("metrics");
        series_value(&text, series).unwrap_or(0.0)
    }

    /// Whether `/health/ready` answers 200 now.
    pub async fn is_ready(&self) -> bool {
        get_status(&self.url("/health/ready")).await == Some(200)
    }

    /// Polls `/health/ready` until it answers 200; panics naming `what` after `timeout`.
    pub async fn wait_ready(&self, what: &str, timeout: Duration) {
        wait_for(what, timeout, || async {
            self.is_ready().await.then_some(())
        })
        .await
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal (e.g. libc::SIGTERM).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on a child we spawned; no memory is touched.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    /// Kills with SIGKILL and reaps.
    pub fn kill(mut self) -> NodeSpec {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.spec.clone()
    }

    /// Waits for exit up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET a JSON document; `None` on any error.
pub async fn get_json(url: &str) -> Option<Value> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .ok()?;
    let resp = client.get(url).send().await.ok()?;
    resp.json().await.ok()
}

/// GET and return the status code; `None` when the server does not answer.
pub async fn get_status(url: &str) -> Option<u16> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .ok()?;
    client
        .get(url)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// Polls `check` every 250 ms until it returns `Some`, or panics with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The `/metrics` text of the API at `base` (`http://host:port`), `None` when it does not answer.
pub async fn metrics_text(base: &str) -> Option<String> {
    reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()
}

/// The value of the series `name{labels}` (exactly as exposed) in a `/metrics` text.
pub fn series_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Runs the binary to completion with `args`; returns exit status and stderr.
pub fn run_to_exit(args: &[&str], timeout: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn qnet-node");
    let start = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("qnet-node {args:?} did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("collect output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}
