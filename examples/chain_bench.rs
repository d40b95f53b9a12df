//! Chain benchmarks: transfer throughput through mempool → block → sled beside the raw
//! ed25519 verification rate, and sync of N blocks from a loopback peer over the data plane.
//!
//! ```text
//! cargo run --example chain_bench -- [--txs 40960] [--blocks 10000] [--submit-threads 2] [--admit-batch 512]
//! cargo run --release --example chain_bench -- --txs 200000 --blocks 100000
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use qnet_node::chain::block::MAX_BLOCK_TXS;
use qnet_node::chain::signatures::verify_transfers;
use qnet_node::chain::spec::ChainSpec;
use qnet_node::chain::tx::{Address, SignedTransfer, Transfer};
use qnet_node::clock::{Clock, ManualClock, SharedClock};
use qnet_node::identity::{to_hex, Identity};
use qnet_node::metrics::Metrics;
use qnet_node::net::server::{connect, serve, Responder};
use qnet_node::net::{LocalInfo, Message, PeerInfo, Seeds};
use qnet_node::node::chain::ChainRuntime;
use qnet_node::node::sync::pull_blocks;
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

/// Splits `txs` into `threads` shares by sender, keeping each sender's transfers (and so its
/// nonces) in order within its share.
fn by_sender(
    txs: impl IntoIterator<Item = SignedTransfer>,
    threads: usize,
) -> Vec<Vec<SignedTransfer>> {
    let mut shares: Vec<Vec<SignedTransfer>> = vec![Vec::new(); threads];
    for tx in txs {
        shares[usize::from(tx.transfer.from[0]) % threads].push(tx);
    }
    shares
}

/// CPU time of this process so far (all threads, user + system): on a shared machine the
/// wall-clock rates depend on what else runs, CPU time per item much less.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the struct it is given
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage struct
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn verify_rate(txs: &[SignedTransfer]) -> f64 {
    let started = Instant::now();
    let ok = txs.iter().filter(|t| t.verify_signature()).count();
    assert_eq!(ok, txs.len());
    txs.len() as f64 / started.elapsed().as_secs_f64()
}

fn parallel_verify_rate(txs: &[SignedTransfer]) -> f64 {
    let started = Instant::now();
    let ok = verify_transfers(txs).into_iter().filter(|ok| *ok).count();
    assert_eq!(ok, txs.len());
    txs.len() as f64 / started.elapsed().as_secs_f64()
}

/// How transfers reach the mempool.
#[derive(Clone, Copy)]
enum Admission {
    /// `ChainRuntime::submit_tx` one by one from this many threads (like concurrent `tx_send`).
    OneByOne(usize),
    /// `ChainRuntime::submit_txs` in batches of this many, from one thread.
    Batched(usize),
}

fn admit(rt: &ChainRuntime, batch: Vec<SignedTransfer>, how: Admission) -> anyhow::Result<()> {
    match how {
        Admission::OneByOne(threads) => {
            // like concurrent RPC clients: each thread owns a share of the senders, so every
            // sender's nonces still arrive in order
            let shares = by_sender(batch, threads);
            std::thread::scope(|scope| {
                let handles: Vec<_> = shares
                    .into_iter()
                    .map(|share| {
                        scope.spawn(move || {
                            share
                                .into_iter()
                                .try_for_each(|tx| rt.submit_tx(tx, None).map(|_| ()))
                        })
                    })
                    .collect();
                handles.into_iter().try_for_each(|h| {
                    h.join()
                        .map_err(|_| anyhow::anyhow!("submit thread panicked"))?
                        .map_err(|e| anyhow::anyhow!("submit: {e}"))
                })
            })
        }
        Admission::Batched(size) => {
            let mut batch = batch.into_iter().peekable();
            while batch.peek().is_some() {
                let chunk: Vec<SignedTransfer> = batch.by_ref().take(size).collect();
                for result in rt.submit_txs(chunk, None) {
                    result.map_err(|e| anyhow::anyhow!("submit: {e}"))?;
                }
            }
            Ok(())
        }
    }
}

fn tx_throughput(total: usize, threads: usize, batch_size: usize) -> anyhow::Result<()> {
    let producer = Identity::generate();
    let senders: Vec<Identity> = (0..SENDERS).map(|_| Identity::generate()).collect();
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
    let sample = batches.first().map(Vec::as_slice).unwrap_or(&[]);
    let raw = verify_rate(sample);
    let raw_all = parallel_verify_rate(sample);
    println!(
        "raw ed25519 verify (same run): {raw:.0} verifications/s on 1 thread, {raw_all:.0}/s on {} threads",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    for how in [Admission::OneByOne(threads), Admission::Batched(batch_size)] {
        let dir = tempfile::tempdir()?;
        let clock = Arc::new(ManualClock::new(GENESIS_MS));
        let rt = runtime(
            &dir.path().join("db"),
            spec(&producer, &senders),
            &producer,
            clock.clone(),
        )?;
        let started = Instant::now();
        let cpu_started = cpu_time();
        let mut admitting = Duration::ZERO;
        let mut admitting_cpu = Duration::ZERO;
        let mut included = 0u64;
        for (i, batch) in batches.iter().enumerate() {
            let batch = batch.clone();
            let (admit_start, admit_cpu) = (Instant::now(), cpu_time());
            admit(&rt, batch, how)?;
            admitting += admit_start.elapsed();
            admitting_cpu += cpu_time().saturating_sub(admit_cpu);
            let slot = i as u64 + 1;
            clock.set(GENESIS_MS + slot * SLOT_MS + 1);
            let header = rt
                .produce(slot)
                .ok_or_else(|| anyhow::anyhow!("no block at slot {slot}"))?;
            included += u64::from(header.tx_count);
        }
        let secs = started.elapsed().as_secs_f64();
        let cpu = cpu_time().saturating_sub(cpu_started);
        let label = match how {
            Admission::OneByOne(t) => format!("submit_tx one by one, {t} threads"),
            Admission::Batched(b) => format!("submit_txs in batches of {b}"),
        };
        println!("admission by {label}:");
        println!(
            "  transfers mempool->block->sled: {included} txs in {secs:.2}s = {:.0} tx/s ({per_block} per block)",
            included as f64 / secs,
        );
        let blocks = secs - admitting.as_secs_f64();
        println!(
            "  of which mempool admission {:.2}s ({:.0} tx/s), block build+validate+commit {blocks:.2}s ({:.0} tx/s)",
            admitting.as_secs_f64(),
            included as f64 / admitting.as_secs_f64(),
            included as f64 / blocks
        );
        let per_tx_us = |d: Duration| d.as_secs_f64() * 1e6 / included.max(1) as f64;
        println!(
            "  CPU time (all threads) per transfer: {:.1} us in all, {:.1} us of it admission; {:.2} cores busy on average",
            per_tx_us(cpu),
            per_tx_us(admitting_cpu),
            cpu.as_secs_f64() / secs
        );
    }
    sustained(&producer, &senders, &batches, threads, per_block)
}

/// Sustained pipeline, as in a running node: `threads` submitters (each owning a share of
/// the senders, retrying while the mempool is full) and the producer work at the same time;
/// the producer builds a block whenever a block's worth of transfers waits (or the
/// submitters are done). Bounded: every transfer is submitted once and the run ends when
/// all are included, or fails after a generous deadline.
fn sustained(
    producer: &Identity,
    senders: &[Identity],
    batches: &[Vec<SignedTransfer>],
    threads: usize,
    per_block: usize,
) -> anyhow::Result<()> {
    use qnet_node::chain::mempool::MempoolError;
    use std::sync::atomic::{AtomicUsize, Ordering};
    const DEADLINE: Duration = Duration::from_secs(600);
    let dir = tempfile::tempdir()?;
    let clock = Arc::new(ManualClock::new(GENESIS_MS));
    let rt = runtime(
        &dir.path().join("db"),
        spec(producer, senders),
        producer,
        clock.clone(),
    )?;
    let total: usize = batches.iter().map(Vec::len).sum();
    let shares = by_sender(batches.iter().flatten().cloned(), threads);
    let submitting = AtomicUsize::new(threads);
    let started = Instant::now();
    let cpu_started = cpu_time();
    let (included, blocks) = std::thread::scope(|scope| -> anyhow::Result<(u64, u64)> {
        let handles: Vec<_> = shares
            .into_iter()
            .map(|share| {
                let (rt, submitting) = (&rt, &submitting);
                scope.spawn(move || -> anyhow::Result<()> {
                    let result = share.into_iter().try_for_each(|tx| loop {
                        match rt.submit_tx(tx.clone(), None) {
                            Ok(_) => return Ok(()),
                            Err(MempoolError::Full(_) | MempoolError::AccountFull(_))
                                if started.elapsed() < DEADLINE =>
                            {
                                std::thread::sleep(Duration::from_micros(200))
                            }
                            Err(e) => return Err(anyhow::anyhow!("submit: {e}")),
                        }
                    });
                    submitting.fetch_sub(1, Ordering::SeqCst);
                    result
                })
            })
            .collect();
        let (mut included, mut blocks, mut slot) = (0u64, 0u64, 0u64);
        while (included as usize) < total {
            anyhow::ensure!(started.elapsed() < DEADLINE, "pipeline stalled");
            let done = submitting.load(Ordering::SeqCst) == 0;
            if rt.mempool_len() >= per_block || (done && rt.mempool_len() > 0) {
                slot += 1;
                clock.set(GENESIS_MS + slot * SLOT_MS + 1);
                if let Some(header) = rt.produce(slot) {
                    included += u64::from(header.tx_count);
                    blocks += 1;
                }
            } else {
                anyhow::ensure!(
                    !done,
                    "{} transfers never reached the mempool",
                    total - included as usize
                );
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("submit thread panicked"))??;
        }
        Ok((included, blocks))
    })?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_time().saturating_sub(cpu_started);
    println!("sustained: {threads} submit threads and the producer at the same time:");
    println!(
        "  transfers mempool->block->sled: {included} txs in {blocks} blocks in {secs:.2}s = {:.0} tx/s",
        included as f64 / secs
    );
    println!(
        "  CPU time (all threads) per transfer: {:.1} us; {:.2} cores busy on average",
        cpu.as_secs_f64() * 1e6 / included.max(1) as f64,
        cpu.as_secs_f64() / secs
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
            Message::GetBlocks { from, limit } => Ok(Some(self.0.blocks_reply(from, limit))),
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
    let cpu_started = cpu_time();
    let mut conn = connect(&addr.to_string(), &local(&follower)).await?;
    // the node's own sync loop: pipelined range requests, each range's signatures verified
    // on every core while the previous range imports, batch import, one flush per batch
    pull_blocks(&dest, &mut conn, blocks)
        .await
        .map_err(|e| anyhow::anyhow!("sync: {e}"))?;
    anyhow::ensure!(
        dest.head().height == blocks,
        "synced to {} of {blocks}",
        dest.head().height
    );
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_time().saturating_sub(cpu_started).as_secs_f64();
    println!(
        "sync from a loopback peer: {blocks} blocks in {secs:.2}s = {:.0} blocks/s",
        blocks as f64 / secs
    );
    println!(
        "  CPU time (all threads, serving peer included) per block: {:.1} us; {:.2} cores busy on average",
        cpu * 1e6 / blocks.max(1) as f64,
        cpu / secs
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let txs = arg("--txs", 40_960);
    let threads = arg("--submit-threads", 2).max(1);
    let batch = arg("--admit-batch", 512).max(1);
    let blocks = arg("--blocks", 10_000) as u64;
    tx_throughput(txs, threads, batch)?;
    sync_rate(blocks).await
}
