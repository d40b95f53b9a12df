//! API throughput and latency under 64 concurrent HTTP/1.1 keep-alive connections against a
//! running node: `chain_getBlockByHeight` and `GET /v1/blocks/{height}` beside a trivial
//! JSON-RPC method (`chain_getHead`, an in-memory read) in one run, with their ratios (and
//! `GET /health/live` as the trivial REST reference). Every load phase is bounded by `--seconds`.
//!
//! ```text
//! scripts/bench-api.sh            # starts a release node on 127.0.0.1, runs this, stops it
//! cargo run --release --example api_bench -- --url http://127.0.0.1:18001 --seconds 10
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const CONNECTIONS: usize = 64;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[derive(Clone, Copy)]
enum Load {
    RpcHead,
    RpcBlock,
    RestLive,
    RestBlock,
}

impl Load {
    fn name(self) -> &'static str {
        match self {
            Load::RpcHead => "JSON-RPC chain_getHead (trivial)",
            Load::RpcBlock => "JSON-RPC chain_getBlockByHeight",
            Load::RestLive => "REST GET /health/live (trivial)",
            Load::RestBlock => "REST GET /v1/blocks/{height}",
        }
    }
}

struct Result {
    requests: usize,
    errors: usize,
    per_second: f64,
    p50_us: u64,
    p99_us: u64,
}

async fn one(client: &reqwest::Client, url: &str, load: Load, height: u64) -> bool {
    let response = match load {
        Load::RpcHead => {
            client
                .post(url)
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "chain_getHead", "params": []}))
                .send()
                .await
        }
        Load::RpcBlock => {
            client
                .post(url)
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "chain_getBlockByHeight", "params": [height]}))
                .send()
                .await
        }
        Load::RestLive => client.get(format!("{url}/health/live")).send().await,
        Load::RestBlock => client.get(format!("{url}/v1/blocks/{height}")).send().await,
    };
    match response {
        Ok(r) if r.status().is_success() => match load {
            Load::RpcHead | Load::RpcBlock => r
                .json::<Value>()
                .await
                .map(|v| !v["result"].is_null())
                .unwrap_or(false),
            _ => r.bytes().await.is_ok(),
        },
        _ => false,
    }
}

async fn run(client: &reqwest::Client, url: &str, load: Load, top: u64, phase: Duration) -> Result {
    let url = Arc::new(url.to_string());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CONNECTIONS {
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let mut i = worker as u64;
            while started.elapsed() < phase {
                i = i
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let height = 1 + (i >> 33) % top.max(1);
                let t = Instant::now();
                if one(&client, &url, load, height).await {
                    latencies.push(t.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Result {
        requests: all.len(),
        errors,
        per_second: all.len() as f64 / elapsed,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
}

#[tokio::main]
async fn main() {
    let url = arg("--url").unwrap_or_else(|| "http://127.0.0.1:18001".into());
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(10);
    let phase = Duration::from_secs(seconds.clamp(1, 300));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");
    let head: Value = client
        .post(&url)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "chain_getHead", "params": []}))
        .send()
        .await
        .expect("node reachable")
        .json()
        .await
        .expect("json");
    let top = head["result"]["height"].as_u64().unwrap_or(0);
    if top == 0 {
        eprintln!("the node has no blocks yet; start it with --enable-microblocks and wait");
        std::process::exit(1);
    }
    println!("{CONNECTIONS} connections, {seconds} s per load, random heights 1..={top}, {url}\n");
    println!("| load | requests | errors | req/s | p50 | p99 |");
    println!("|---|---|---|---|---|---|");
    let mut results = Vec::new();
    for load in [
        Load::RpcHead,
        Load::RpcBlock,
        Load::RestLive,
        Load::RestBlock,
    ] {
        // A short warm-up opens the connections before the measured phase.
        let _ = run(&client, &url, load, top, Duration::from_millis(500)).await;
        let r = run(&client, &url, load, top, phase).await;
        println!(
            "| {} | {} | {} | {:.0} | {:.2} ms | {:.2} ms |",
            load.name(),
            r.requests,
            r.errors,
            r.per_second,
            r.p50_us as f64 / 1e3,
            r.p99_us as f64 / 1e3
        );
        results.push(r);
    }
    let ratio = |a: &Result, b: &Result| a.per_second / b.per_second.max(f64::MIN_POSITIVE);
    println!();
    let line = |what: &str, a: &Result, b: &Result| {
        println!(
            "| {what} | {:.2} | {:.2} |",
            ratio(a, b),
            a.p99_us as f64 / b.p99_us.max(1) as f64
        );
    };
    println!(
        "| ratio (target: throughput >= 0.7 of the trivial JSON-RPC method) | throughput | p99 |"
    );
    println!("|---|---|---|");
    line(
        "chain_getBlockByHeight / chain_getHead",
        &results[1],
        &results[0],
    );
    line(
        "GET /v1/blocks/{height} / chain_getHead",
        &results[3],
        &results[0],
    );
    line(
        "GET /v1/blocks/{height} / GET /health/live (for reference)",
        &results[3],
        &results[2],
    );
}
