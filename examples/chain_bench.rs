//! Chain benchmarks: transfer throughput through mempool → block → sled beside the raw
//! ed25519 verification rate, and sync of N blocks from a loopback peer over the data plane.
//!
//! ```text
//! cargo run --example chain_bench -- [--txs 40960] [--blocks 10000]
//! cargo run --release --example chain_bench -- --txs 200000 --blocks 100000
//! ```

use std::sync::Arc;
use std::time::Instant;

use qnet_node::chain::block::MAX_BLOCK_TXS;
use qnet_node::chain::spec::ChainSpec;
use qnet_node::chain::tx::{Address, SignedTransfer, Transfer};
use qnet_node::clock::{Clock, ManualClock, SharedClock};
use qnet_node::identity::{to_hex, Identity};
use qnet_node::metrics::Metrics;
use qnet_node::net::message::{MAX_BLOCKS_PER_REQUEST, MAX_BLOCKS_RESPONSE_BYTES};
use qnet_node::net::server::{connect, fetch_blocks, serve, Responder};
use qnet_node::net::{LocalInfo, Message, PeerInfo, Seeds};
use qnet_node::node::chain::ChainRuntime;
use qnet_node::node::sync::import_batch;
use qnet_storage::Store;

const SENDERS: usize = 1_024;
const SLOT_MS: u64 = 1_000;
const GENESIS_MS: u64 = 1_000_000;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn spec(producer: &Identity, senders: &[Identity]) -> ChainSpec {
    ChainSpec {
        chain_id: "bench".into(),
        genesis_time_ms: GENESIS_MS,
        slot_ms: SLOT_MS,
        producers: vec![to_hex(producer.public_key().as_bytes())],
        balances: senders
            .iter()
            .map(|s| {
                (
                    Address::from_public_key(s.public_key().as_bytes()).to_string(),
                    1_000_000_000,
                )
            })
            .collect(),
    }
}

fn runtime(
    dir: &std::path::Path,
    spec: ChainSpec,
    producer: &Identity,
    clock: SharedClock,
) -> anyhow::Result<ChainRuntime> {
    let store = Store::open(dir)?;
    let metrics = Metrics::new()?.chain;
    Ok(ChainRuntime::open(
        store,
        spec,
        producer,
        true,
        metrics,
        clock,
        tokio::sync::broadcast::channel(16).0,
    )?)
}

fn verify_rate(txs: &[SignedTransfer]) -> f64 {
    let started = Instant::now();
    let ok = txs.iter().filter(|t| t.verify_signature()).count();
    assert_eq!(ok, txs.len());
    txs.len() as f64 / started.elapsed().as_secs_f64()
}

fn tx_throughput(total: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let producer = Identity::generate();
    let senders: Vec<Identity> = (0..SENDERS).map(|_| Identity::generate()).collect();
    let spec = spec(&producer, &senders);
    let to = Address::from_public_key(producer.public_key().as_bytes());
    let per_block = MAX_BLOCK_TXS.min(total.max(1));
    let rounds = total.div_ceil(per_block);
    let nonces_per_round = per_block.div_ceil(SENDERS);
    print!("signing {} transfers ... ", rounds * per_block);
    let mut batches: Vec<Vec<SignedTransfer>> = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let mut batch = Vec::with_capacity(per_block);
        'fill: for n in 0..nonces_per_round {
            for s in &senders {
                if batch.len() == per_block {
                    break 'fill;
                }
                let nonce = (round * nonces_per_round + n) as u64;
                batch.push(
                    Transfer {
                        chain_id: "bench".into(),
                        from: s.public_key().to_bytes(),
                        to,
                        amount: 1,
                        fee: 1,
                        nonce,
                    }
                    .sign(s.signing_key()),
                );
            }
        }
        batches.push(batch);
    }
    println!("done");
    let raw = verify_rate(batches.first().map(Vec::as_slice).unwrap_or(&[]));
    let clock = Arc::new(ManualClock::new(GENESIS_MS));
    let rt = runtime(&dir.path().join("db"), spec, &producer, clock.clone())?;
    let started = Instant::now();
    let mut included = 0u64;
    for (i, batch) in batches.into_iter().enumerate() {
        for tx in batch {
            rt.submit_tx(tx, None)
                .map_err(|e| anyhow::anyhow!("submit: {e}"))?;
        }
        let slot = i as u64 + 1;
        clock.set(GENESIS_MS + slot * SLOT_MS + 1);
        let header = rt
            .produce(slot)
            .ok_or_else(|| anyhow::anyhow!("no block at slot {slot}"))?;
        included += u64::from(header.tx_count);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "transfers mempool->block->sled: {included} txs in {secs:.2}s = {:.0} tx/s ({} per block)",
        included as f64 / secs,
        per_block
    );
    println!("raw ed25519 verify (same run):  {raw:.0} verifications/s");
    println!(
        "ratio: {:.2} (each transfer is verified twice: mempool admission and block validation)",
        included as f64 / secs / raw
    );
    Ok(())
}

struct Source(Arc<ChainRuntime>);

impl Responder for Source {
    fn seeds(&self, _region: &str) -> Result<Seeds, String> {
        Err("no seeds".into())
    }
    fn admit(&self, _peer: &PeerInfo) -> bool {
        true
    }
    fn chain_message(&self, _peer: &PeerInfo, msg: Message) -> Result<Option<Message>, String> {
        match msg {
            Message::GetBlocks { from, limit } => Ok(Some(Message::Blocks(
                self.0
                    .encoded_blocks_from(
                        from,
                        limit.min(MAX_BLOCKS_PER_REQUEST) as usize,
                        MAX_BLOCKS_RESPONSE_BYTES,
                    )
                    .map_err(|e| e.to_string())?,
            ))),
            _ => Ok(None),
        }
    }
}

async fn sync_rate(blocks: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let producer = Identity::generate();
    let spec = spec(&producer, &[]);
    let clock = Arc::new(ManualClock::new(GENESIS_MS));
    let source = Arc::new(runtime(
        &dir.path().join("source"),
        spec.clone(),
        &producer,
        clock.clone(),
    )?);
    print!("producing {blocks} blocks on the source ... ");
    for slot in 1..=blocks {
        clock.set(GENESIS_MS + slot * SLOT_MS + 1);
        source
            .produce(slot)
            .ok_or_else(|| anyhow::anyhow!("no block at slot {slot}"))?;
    }
    source.flush();
    println!("done");
    let local = |id: &Identity| LocalInfo {
        identity: id.clone(),
        chain_id: spec.chain_id.clone(),
        genesis: spec.genesis_hash(),
        spec_json: spec.to_json(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(serve(
        listener,
        local(&producer),
        Arc::new(Source(source)),
        Metrics::new()?,
        stop_rx,
    ));
    let follower = Identity::generate();
    let dest_clock: SharedClock = Arc::new(ManualClock::new(clock.now_ms() + SLOT_MS));
    let dest = Arc::new(runtime(
        &dir.path().join("dest"),
        spec.clone(),
        &follower,
        dest_clock,
    )?);
    let started = Instant::now();
    let mut conn = connect(&addr.to_string(), &local(&follower)).await?;
    while dest.head().height < blocks {
        let from = dest.head().height + 1;
        let batch = fetch_blocks(&mut conn, from, MAX_BLOCKS_PER_REQUEST)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        if batch.is_empty() {
            anyhow::bail!("source ran out of blocks at {from}");
        }
        let d = dest.clone();
        let result = tokio::task::spawn_blocking(move || import_batch(&d, batch)).await?;
        if let Some(reason) = result.invalid {
            anyhow::bail!("invalid block: {reason}");
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "sync from a loopback peer: {blocks} blocks in {secs:.2}s = {:.0} blocks/s",
        blocks as f64 / secs
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let txs = arg("--txs", 40_960);
    let blocks = arg("--blocks", 10_000) as u64;
    tx_throughput(txs)?;
    sync_rate(blocks).await
}
