//! Microblocks end to end: a multi-region network sharing a `--chain` spec produces blocks,
//! agrees on every height, includes a transfer everywhere, counts rejected inputs without
//! stalling, and a SIGKILLed producer restarts with its chain and catches up.

use std::path::Path;
use std::time::Duration;

use qnet_node::chain::block::{Block, BlockTemplate};
use qnet_node::chain::spec::ChainSpec;
use qnet_node::chain::tx::{Address, SignedTransfer, Transfer};
use qnet_node::identity::{to_hex, Identity, KEY_FILE};
use qnet_node::net::handshake::send;
use qnet_node::net::server::connect;
use qnet_node::net::{LocalInfo, Message};
use serde_json::{json, Value};

use crate::common::{
    get_json, run_to_exit, series_value, test_dir, wait_for, NodeProcess, NodeSpec,
};

const FAUCET_BALANCE: u64 = 1_000_000;

pub(crate) struct Net {
    spec: ChainSpec,
    spec_path: std::path::PathBuf,
    faucet: Identity,
    keys: Vec<Identity>,
}

/// Creates each node's key in its data dir and a spec with all of them as producers.
pub(crate) fn chain_for(specs: &[NodeSpec], root: &Path, slot_ms: u64) -> Net {
    let keys: Vec<Identity> = specs
        .iter()
        .map(|s| {
            std::fs::create_dir_all(&s.data_dir).unwrap();
            Identity::load_or_create(&s.data_dir.join(KEY_FILE)).unwrap()
        })
        .collect();
    let faucet = Identity::generate();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let spec = ChainSpec {
        chain_id: "e2e".into(),
        genesis_time_ms: now - now % slot_ms,
        slot_ms,
        producers: keys
            .iter()
            .map(|k| to_hex(k.public_key().as_bytes()))
            .collect(),
        balances: vec![(address(&faucet).to_string(), FAUCET_BALANCE)],
    };
    let spec_path = root.join("chain.json");
    std::fs::write(&spec_path, spec.to_json()).unwrap();
    Net {
        spec,
        spec_path,
        faucet,
        keys,
    }
}

fn address(id: &Identity) -> Address {
    Address::from_public_key(id.public_key().as_bytes())
}

fn transfer(
    chain_id: &str,
    from: &Identity,
    to: Address,
    amount: u64,
    nonce: u64,
) -> SignedTransfer {
    Transfer {
        chain_id: chain_id.into(),
        from: from.public_key().to_bytes(),
        to,
        amount,
        fee: 1,
        nonce,
    }
    .sign(from.signing_key())
}

pub(crate) async fn rpc(node: &NodeProcess, method: &str, params: Value) -> Value {
    let client = reqwest::Client::new();
    client
        .post(node.url("/"))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn height(node: &NodeProcess) -> Option<u64> {
    get_json(&node.url("/v1/status")).await?["head"]["height"].as_u64()
}

async fn hash_at(node: &NodeProcess, h: u64) -> Option<String> {
    Some(
        get_json(&node.url(&format!("/v1/blocks/{h}"))).await?["hash"]
            .as_str()?
            .to_string(),
    )
}

/// Every node has the same block hash at every height up to `upto`.
async fn agree(nodes: &[&NodeProcess], upto: u64) -> Option<()> {
    for h in 1..=upto {
        let first = hash_at(nodes[0], h).await?;
        for n in &nodes[1..] {
            if hash_at(n, h).await? != first {
                return None;
            }
        }
    }
    Some(())
}

pub(crate) fn start(spec: &NodeSpec, net: &Net, bootstrap: &[&NodeSpec]) -> NodeProcess {
    start_with(spec, net, bootstrap, &[])
}

/// As [`start`], with more flags.
fn start_with(spec: &NodeSpec, net: &Net, bootstrap: &[&NodeSpec], flags: &[&str]) -> NodeProcess {
    let mut s = spec.clone();
    s.bootstrap = bootstrap.iter().map(|b| b.p2p_addr()).collect();
    s.extra = vec![
        "--chain".into(),
        net.spec_path.display().to_string(),
        "--enable-microblocks".into(),
        "--strategy-settle-time".into(),
        "1s".into(),
    ];
    s.extra.extend(flags.iter().map(|f| f.to_string()));
    NodeProcess::start(s)
}

async fn send_raw_block(target: &NodeProcess, net: &Net, block: &Block) {
    let local = LocalInfo {
        identity: Identity::generate(),
        chain_id: net.spec.chain_id.clone(),
        genesis: net.spec.genesis_hash(),
        spec_json: net.spec.to_json(),
    };
    let mut conn = connect(&target.spec.p2p_addr().to_string(), &local)
        .await
        .unwrap();
    send(&mut conn, &Message::Block(block.encode()))
        .await
        .unwrap();
    // the node closes the connection of a peer that sent an invalid block
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        use futures::StreamExt;
        conn.next().await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_agrees_includes_transfers_and_counts_rejections() {
    let root = test_dir("chain_network");
    let specs = [
        NodeSpec::new(&root, "a", "eu", "super"),
        NodeSpec::new(&root, "b", "na", "super"),
        NodeSpec::new(&root, "c", "eu", "full"),
        NodeSpec::new(&root, "d", "na", "full"),
    ];
    let net = chain_for(&specs, &root, 500);
    let a = start(&specs[0], &net, &[]);
    a.wait_ready("a ready", Duration::from_secs(15)).await;
    let b = start(&specs[1], &net, &[&specs[0]]);
    b.wait_ready("b ready", Duration::from_secs(15)).await;
    let c = start(&specs[2], &net, &[&specs[0], &specs[1]]);
    let d = start(&specs[3], &net, &[&specs[1], &specs[0]]);
    let all = [&a, &b, &c, &d];

    wait_for(
        "every node past height 8",
        Duration::from_secs(25),
        || async {
            for n in all {
                if height(n).await? < 8 {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;

    // a transfer sent to one node is included on every node with the same effects
    let alice = Identity::generate();
    let tx = transfer(&net.spec.chain_id, &net.faucet, address(&alice), 250, 0);
    let answer = rpc(&d, "tx_send", json!([to_hex(&tx.encode())])).await;
    let hash = answer["result"].as_str().expect("tx hash").to_string();
    assert_eq!(hash, to_hex(&tx.hash()));
    wait_for(
        "transfer included everywhere",
        Duration::from_secs(15),
        || async {
            for n in all {
                let found = rpc(n, "tx_get", json!([hash])).await;
                if found["result"]["status"] != "included" {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    for n in all {
        let acc = rpc(n, "account_get", json!([address(&alice).to_string()])).await;
        assert_eq!(acc["result"]["balance"], 250);
        let f = rpc(n, "account_get", json!([address(&net.faucet).to_string()])).await;
        assert_eq!(f["result"]["balance"], FAUCET_BALANCE - 251);
        assert_eq!(f["result"]["nonce"], 1);
    }

    // rejected transactions: replayed nonce, bad signature, wrong chain, insufficient balance
    let replay = rpc(&a, "tx_send", json!([to_hex(&tx.encode())])).await;
    assert!(replay["error"].is_object(), "{replay}");
    let mut forged = transfer(&net.spec.chain_id, &net.faucet, address(&alice), 5, 1);
    forged.signature[3] ^= 0xff;
    let other_chain = transfer("other", &net.faucet, address(&alice), 5, 1);
    let broke = transfer(&net.spec.chain_id, &alice, address(&net.faucet), 10_000, 0);
    for bad in [forged, other_chain, broke] {
        let r = rpc(&a, "tx_send", json!([to_hex(&bad.encode())])).await;
        assert!(r["error"].is_object(), "{r}");
    }
    for reason in [
        "nonce_too_low",
        "bad_signature",
        "wrong_chain",
        "insufficient_balance",
    ] {
        let n = a
            .metric(&format!("qnet_transactions_total{{result=\"{reason}\"}}"))
            .await;
        assert!(n >= 1.0, "{reason} not counted");
    }

    // rejected blocks over the data plane: each is counted and the node keeps going
    let head = get_json(&a.url("/v1/blocks/latest")).await.unwrap();
    let head_height = head["height"].as_u64().unwrap();
    let parent = qnet_node::identity::from_hex(head["hash"].as_str().unwrap()).unwrap();
    let head_slot = head["slot"].as_u64().unwrap();
    let producer_of = |slot: u64| {
        let key = net.spec.producer_for_slot(slot).unwrap();
        net.keys
            .iter()
            .find(|k| k.public_key().to_bytes() == key)
            .unwrap()
            .signing_key()
            .clone()
    };
    let template = |slot: u64, parent: [u8; 32]| BlockTemplate {
        chain_id: net.spec.chain_id.clone(),
        height: head_height + 1,
        slot,
        parent_hash: parent,
        timestamp_ms: net.spec.slot_start_ms(slot),
    };
    let parent: [u8; 32] = parent.try_into().unwrap();
    let slot = head_slot + 1;
    let good_key = producer_of(slot);
    let wrong_key = producer_of(slot + 1);
    let mut bad_sig = Block::produce(template(slot, parent), vec![], &good_key);
    bad_sig.signature[0] ^= 1;
    let wrong_producer = Block::produce(template(slot, parent), vec![], &wrong_key);
    let unknown_parent = Block::produce(template(slot, [9; 32]), vec![], &good_key);
    let future = Block::produce(
        template(slot + 100, parent),
        vec![],
        &producer_of(slot + 100),
    );
    let mut bad_root = Block::produce(template(slot, parent), vec![], &good_key);
    bad_root.header.tx_root = [1; 32];
    let bad_root = {
        use ed25519_dalek::Signer;
        let sig = good_key.sign(&bad_root.header.signing_bytes()).to_bytes();
        Block {
            signature: sig,
            ..bad_root
        }
    };
    for block in [
        &bad_sig,
        &wrong_producer,
        &unknown_parent,
        &future,
        &bad_root,
    ] {
        send_raw_block(&a, &net, block).await;
    }
    for reason in [
        "bad_signature",
        "wrong_producer",
        "unknown_parent",
        "future_slot",
        "bad_merkle_root",
    ] {
        let series = format!("qnet_blocks_rejected_total{{reason=\"{reason}\"}}");
        wait_for(&format!("{reason} counted"), Duration::from_secs(5), || {
            let series = series.clone();
            let a = &a;
            async move { (a.metric(&series).await >= 1.0).then_some(()) }
        })
        .await;
    }

    // still producing, and every node stores the same hash at every height
    let target = height(&a).await.unwrap() + 3;
    wait_for(
        "progress after rejections",
        Duration::from_secs(15),
        || async {
            for n in all {
                if height(n).await? < target {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    wait_for("same hash at every height", Duration::from_secs(10), || {
        agree(&all, target - 1)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_producer_restarts_with_its_chain_and_catches_up() {
    let root = test_dir("chain_restart");
    let specs = [
        NodeSpec::new(&root, "a", "eu", "super"),
        NodeSpec::new(&root, "b", "eu", "full"),
    ];
    let net = chain_for(&specs, &root, 500);
    let a = start(&specs[0], &net, &[]);
    let b = start(&specs[1], &net, &[&specs[0]]);
    wait_for("both past height 6", Duration::from_secs(20), || async {
        (height(&a).await? >= 6 && height(&b).await? >= 6).then_some(())
    })
    .await;
    let before = hash_at(&b, 4).await.unwrap();
    let b_spec = b.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let a_height = height(&a).await.unwrap();
    let b = start(&b_spec, &net, &[&specs[0]]);
    wait_for("b answers", Duration::from_secs(15), || async {
        height(&b).await
    })
    .await;
    assert_eq!(
        hash_at(&b, 4).await.unwrap(),
        before,
        "chain intact after SIGKILL"
    );
    wait_for(
        "b caught up and continues",
        Duration::from_secs(20),
        || async { (height(&b).await? > a_height + 2).then_some(()) },
    )
    .await;
    wait_for("b produces again", Duration::from_secs(10), || async {
        (b.metric("qnet_blocks_produced_total").await >= 1.0).then_some(())
    })
    .await;
    let upto = height(&a).await.unwrap().min(height(&b).await.unwrap());
    let both = [&a, &b];
    wait_for("same chain", Duration::from_secs(10), || agree(&both, upto)).await;
}

/// Blocks built into the late test's source node before it starts.
const LATE_BLOCKS: u64 = 10_000;

/// Writes `LATE_BLOCKS` blocks of `producer` into `data_dir` through the library, one per
/// slot from slot 1, with a faucet transfer every 500 blocks; returns the spec and the
/// receiver of the transfers. Genesis lies far enough in the past that the last block's
/// slot has begun, so the node keeps producing on top of it once started.
fn prebuilt_chain(root: &Path, data_dir: &Path) -> (std::path::PathBuf, Address) {
    use qnet_node::chain::store::ChainStore;
    let producer = Identity::load_or_create(&data_dir.join(KEY_FILE)).unwrap();
    let faucet = Identity::generate();
    let receiver = address(&Identity::generate());
    let slot_ms = 1_000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let spec = ChainSpec {
        chain_id: "e2e-late".into(),
        genesis_time_ms: now - now % slot_ms - (LATE_BLOCKS + 5) * slot_ms,
        slot_ms,
        producers: vec![to_hex(producer.public_key().as_bytes())],
        balances: vec![(address(&faucet).to_string(), FAUCET_BALANCE)],
    };
    let spec_path = root.join("chain.json");
    std::fs::write(&spec_path, spec.to_json()).unwrap();
    let store = qnet_storage::Store::open(&data_dir.join("db")).unwrap();
    let mut chain = ChainStore::open(store, spec.clone()).unwrap();
    let mut nonce = 0;
    for slot in 1..=LATE_BLOCKS {
        let txs = if slot % 500 == 0 {
            nonce += 1;
            vec![transfer(&spec.chain_id, &faucet, receiver, 7, nonce - 1)]
        } else {
            vec![]
        };
        let at = spec.slot_start_ms(slot) + 1;
        let block = chain
            .build_block(txs, slot, at, producer.signing_key())
            .unwrap();
        assert_eq!(block.header.tx_count, u32::from(slot % 500 == 0));
        chain.import(block, at).unwrap();
    }
    chain.flush().unwrap();
    (spec_path, receiver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_started_10000_blocks_late_catches_up() {
    let root = test_dir("chain_late");
    let specs = [
        NodeSpec::new(&root, "a", "eu", "super"),
        NodeSpec::new(&root, "b", "eu", "full"),
    ];
    std::fs::create_dir_all(&specs[0].data_dir).unwrap();
    let (spec_path, receiver) = prebuilt_chain(&root, &specs[0].data_dir);
    let with_chain = |s: &NodeSpec, produce: bool, bootstrap: &[&NodeSpec]| {
        let mut s = s.clone();
        s.bootstrap = bootstrap.iter().map(|b| b.p2p_addr()).collect();
        s.extra = vec!["--chain".into(), spec_path.display().to_string()];
        if produce {
            s.extra.push("--enable-microblocks".into());
        }
        NodeProcess::start(s)
    };
    let a = with_chain(&specs[0], true, &[]);
    wait_for("a serves its chain", Duration::from_secs(30), || async {
        (height(&a).await? >= LATE_BLOCKS).then_some(())
    })
    .await;
    let b = with_chain(&specs[1], false, &[&specs[0]]);
    wait_for("b caught up with a", Duration::from_secs(180), || async {
        (height(&b).await? >= LATE_BLOCKS).then_some(())
    })
    .await;
    for h in [1, 2_500, 5_000, 7_500, LATE_BLOCKS] {
        assert_eq!(hash_at(&a, h).await, hash_at(&b, h).await, "height {h}");
    }
    let expected = LATE_BLOCKS / 500 * 7;
    for n in [&a, &b] {
        let acc = rpc(n, "account_get", json!([receiver.to_string()])).await;
        assert_eq!(acc["result"]["balance"], expected, "{acc}");
    }
    // b keeps following a's new blocks
    let next = height(&a).await.unwrap() + 2;
    wait_for("b follows new blocks", Duration::from_secs(30), || async {
        (height(&b).await? >= next).then_some(())
    })
    .await;
    wait_for(
        "same hash at the new head",
        Duration::from_secs(10),
        || async { (hash_at(&a, next).await? == hash_at(&b, next).await?).then_some(()) },
    )
    .await;
    let target = b.metric("qnet_sync_target_height").await;
    assert!(target >= LATE_BLOCKS as f64, "sync target {target}");
    let log = b.log();
    assert!(
        log.lines()
            .any(|l| l.contains("syncing") && l.contains("target=") && l.contains("blocks_per_s")),
        "no sync progress line in b's log"
    );
}

/// Runs the binary (e.g. a wallet command) to completion: exit code, stdout, stderr.
async fn cli(args: Vec<String>) -> (Option<i32>, String, String) {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(crate::common::BIN)
            .args(&args)
            .env_remove("RUST_LOG")
            .env_remove("QNET_RPC")
            .env_remove("QNET_WALLET_KEY")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The value after `key ` on a line of `out`.
fn field(out: &str, key: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .map(|v| v.trim().to_string())
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_chain_funds_a_dev_account_and_the_wallet_moves_money() {
    let root = test_dir("chain_dev_wallet");
    let mut spec = NodeSpec::new(&root, "a", "eu", "super");
    spec.extra = vec!["--enable-microblocks".into()];
    let mut a = NodeProcess::start(spec.clone());
    wait_for("dev chain produces", Duration::from_secs(20), || async {
        (height(&a).await? >= 2).then_some(())
    })
    .await;
    let status = get_json(&a.url("/v1/status")).await.unwrap();
    assert_eq!(status["chain_id"], "qnet-dev");
    let dev_key = spec.data_dir.join("dev-account.key");
    assert!(dev_key.exists(), "no dev account key in the data dir");
    let rpc_url = a.url("");
    let dev_key = dev_key.display().to_string();
    let wallet = root.join("w.key").display().to_string();

    let (code, out, err) = cli(strings(&["wallet", "new", "--out", &wallet])).await;
    assert_eq!(code, Some(0), "{err}");
    let me = field(&out, "address").expect("address line");
    let (code, _, err) = cli(strings(&["wallet", "new", "--out", &wallet])).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("exists"), "{err}");
    let (code, out, _) = cli(strings(&["wallet", "address", "--key", &wallet])).await;
    assert_eq!((code, out.trim()), (Some(0), me.as_str()));
    let (_, dev_out, _) = cli(strings(&["wallet", "address", "--key", &dev_key])).await;
    let dev = dev_out.trim().to_string();

    let send = |key: &str, to: &str, amount: &str| {
        strings(&[
            "wallet", "send", "--key", key, "--to", to, "--amount", amount, "--rpc", &rpc_url,
            "--wait",
        ])
    };
    let (code, out, err) = cli(send(&dev_key, &me, "500")).await;
    assert_eq!(code, Some(0), "{err}");
    let hash = out.lines().next().unwrap_or_default().to_string();
    assert_eq!(hash.len(), 64, "{out}");
    assert!(out.contains("included at height"), "{out}");
    let tx = rpc(&a, "tx_get", json!([hash])).await;
    assert_eq!(tx["result"]["status"], "included", "{tx}");

    let balance = |args: Vec<String>| async move {
        let (code, out, err) = cli(args).await;
        assert_eq!(code, Some(0), "{err}");
        (
            field(&out, "balance").unwrap().parse::<u64>().unwrap(),
            field(&out, "nonce").unwrap().parse::<u64>().unwrap(),
        )
    };
    let mine = strings(&["wallet", "balance", "--key", &wallet, "--rpc", &rpc_url]);
    assert_eq!(balance(mine.clone()).await, (500, 0));
    let dev_bal = strings(&["wallet", "balance", "--address", &dev, "--rpc", &rpc_url]);
    assert_eq!(
        balance(dev_bal).await,
        (qnet_node::chain::spec::DEV_BALANCE - 501, 1)
    );

    // spending more than the balance is refused with a reason, and nothing changes
    let (code, _, err) = cli(send(&wallet, &dev, "10000")).await;
    assert_eq!(code, Some(1));
    assert!(
        err.contains("insufficient balance 500, needed 10001"),
        "{err}"
    );
    // a second transfer back, then a restart keeps the dev chain and its state
    let (code, _, err) = cli(send(&wallet, &dev, "100")).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(balance(mine.clone()).await, (399, 1));
    let before = hash_at(&a, 1).await.unwrap();
    a.signal(libc::SIGTERM);
    assert!(
        a.wait_exit(Duration::from_secs(20)).is_some(),
        "no clean exit"
    );
    let a = NodeProcess::start(spec.clone());
    let h = wait_for(
        "restarted dev node answers",
        Duration::from_secs(15),
        || async { height(&a).await },
    )
    .await;
    assert_eq!(hash_at(&a, 1).await.unwrap(), before, "same dev chain");
    wait_for(
        "produces after restart",
        Duration::from_secs(15),
        || async { (height(&a).await? > h).then_some(()) },
    )
    .await;
    assert_eq!(balance(mine).await, (399, 1));
}

/// `qnet-node devnet` started by a test, in its own process group so that its child nodes
/// are killed with it even when the test fails.
struct Devnet {
    child: std::process::Child,
    base_port: u16,
}

impl Devnet {
    fn start(dir: &Path, nodes: u16, regions: u16) -> Devnet {
        use std::os::unix::process::CommandExt;
        let base_port = crate::common::reserve_port_triples(nodes);
        let out = std::fs::File::create(dir.join("devnet.out")).unwrap();
        let child = std::process::Command::new(crate::common::BIN)
            .args(strings(&[
                "devnet",
                "--nodes",
                &nodes.to_string(),
                "--regions",
                &regions.to_string(),
                "--base-port",
                &base_port.to_string(),
                "--dir",
                &dir.join("devnet").display().to_string(),
            ]))
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap();
        Devnet { child, base_port }
    }

    fn signal_term(&self) {
        // SAFETY: kill(2) on a child we spawned; no memory is touched.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }

    fn api(&self, i: u16) -> String {
        format!("http://127.0.0.1:{}", self.base_port + 3 * i + 2)
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group of a child we spawned; no memory is touched.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

async fn api_height(api: &str) -> Option<u64> {
    get_json(&format!("{api}/v1/status")).await?["head"]["height"].as_u64()
}

async fn api_block(api: &str, h: u64) -> Option<Value> {
    get_json(&format!("{api}/v1/blocks/{h}")).await
}

async fn api_metric(api: &str, series: &str) -> Option<f64> {
    series_value(&crate::common::metrics_text(api).await?, series)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devnet_of_six_nodes_in_three_regions_runs_one_chain() {
    let root = test_dir("chain_devnet");
    let mut devnet = Devnet::start(&root, 6, 3);
    let apis: Vec<String> = (0..6).map(|i| devnet.api(i)).collect();
    wait_for(
        "every devnet node ready",
        Duration::from_secs(60),
        || async {
            for api in &apis {
                if crate::common::get_status(&format!("{api}/health/ready")).await != Some(200) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;

    // one block per slot: a run of 8 consecutive slots each holding the next block
    let run = 8;
    let top = wait_for(
        "8 consecutive slots with one block each",
        Duration::from_secs(90),
        || async {
            let head = api_height(&apis[0]).await?;
            if head <= run {
                return None;
            }
            let mut slots = Vec::new();
            for h in head - run..=head {
                slots.push(api_block(&apis[0], h).await?["slot"].as_u64()?);
            }
            slots.windows(2).all(|w| w[1] == w[0] + 1).then_some(head)
        },
    )
    .await;
    // every node stores the same hash at every height
    wait_for(
        "same hash at every height",
        Duration::from_secs(30),
        || async {
            for h in 1..=top {
                let first = api_block(&apis[0], h).await?["hash"].clone();
                for api in &apis[1..] {
                    if api_block(api, h).await?["hash"] != first {
                        return None;
                    }
                }
            }
            Some(())
        },
    )
    .await;
    for api in &apis {
        let produced = api_metric(api, "qnet_blocks_produced_total").await;
        assert!(produced.unwrap_or(0.0) >= 1.0, "{api} never produced");
    }

    // a transfer sent to a full node of another region is right on every node
    let faucet = root.join("devnet").join("faucet.key").display().to_string();
    let wallet = root.join("w.key").display().to_string();
    let (_, out, _) = cli(strings(&["wallet", "new", "--out", &wallet])).await;
    let to = field(&out, "address").expect("address");
    let (_, faucet_addr, _) = cli(strings(&["wallet", "address", "--key", &faucet])).await;
    let faucet_addr = faucet_addr.trim().to_string();
    let (code, out, err) = cli(strings(&[
        "wallet", "send", "--key", &faucet, "--to", &to, "--amount", "777", "--rpc", &apis[4],
        "--wait",
    ]))
    .await;
    assert_eq!(code, Some(0), "{out}{err}");
    wait_for(
        "balances and nonces right on every node",
        Duration::from_secs(30),
        || async {
            for api in &apis {
                let acc = get_json(&format!("{api}/v1/accounts/{to}")).await?;
                let f = get_json(&format!("{api}/v1/accounts/{faucet_addr}")).await?;
                let ok = acc["balance"] == 777
                    && f["nonce"] == 1
                    && f["balance"] == qnet_node::devnet::FAUCET_BALANCE - 778;
                if !ok {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    for api in &apis[1..] {
        let seen = api_metric(api, "qnet_block_propagation_seconds_count").await;
        assert!(seen.unwrap_or(0.0) >= 1.0, "{api} imported no pushed block");
    }
    let accepted = api_metric(&apis[4], "qnet_transactions_total{result=\"accepted\"}").await;
    assert!(accepted.unwrap_or(0.0) >= 1.0);

    // Ctrl-C equivalent: the devnet stops every node and exits
    devnet.signal_term();
    let mut exited = None;
    for _ in 0..120 {
        if let Ok(Some(status)) = devnet.child.try_wait() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(exited.is_some(), "devnet did not stop");
    let out = std::fs::read_to_string(root.join("devnet.out")).unwrap();
    assert!(out.contains("devnet: stopped"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_without_a_spec_waits_for_a_late_bootstrap_peer_and_adopts_its_chain() {
    let root = test_dir("chain_late_spec");
    let mut first = NodeSpec::new(&root, "a", "eu", "super");
    first.extra = vec!["--enable-microblocks".into()];
    let mut second = NodeSpec::new(&root, "b", "eu", "full");
    second.bootstrap = vec![first.p2p_addr()];
    let mut b = NodeProcess::start(second);
    // b has no --chain and its bootstrap peer is down: it keeps asking instead of exiting
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        b.wait_exit(Duration::from_millis(100)).is_none(),
        "{}",
        b.log()
    );
    assert!(
        b.log()
            .contains("waiting for a bootstrap peer's chain spec"),
        "{}",
        b.log()
    );
    assert_eq!(
        crate::common::get_status(&b.url("/health/live")).await,
        Some(200)
    );
    assert_eq!(
        crate::common::get_status(&b.url("/health/ready")).await,
        Some(503)
    );
    let a = NodeProcess::start(first);
    wait_for(
        "a produces its dev chain",
        Duration::from_secs(20),
        || async { (height(&a).await? >= 2).then_some(()) },
    )
    .await;
    let h = wait_for("b follows a's chain", Duration::from_secs(40), || async {
        let h = height(&b).await?;
        (h >= 2).then_some(h)
    })
    .await;
    let status = get_json(&b.url("/v1/status")).await.unwrap();
    assert_eq!(status["chain_id"], "qnet-dev");
    for height in [0, h] {
        let ours = hash_at(&b, height).await.expect("block on b");
        assert_eq!(hash_at(&a, height).await.expect("block on a"), ours);
    }
    assert!(
        !b.spec.data_dir.join("dev-account.key").exists(),
        "b made its own dev chain"
    );
}

/// What a wallet reads: a preflight from its page's origin answered, another origin's refused;
/// the chain and its next 10 slots (REST and JSON-RPC agree with the
/// spec); a transfer held back by a nonce gap stays `pending` (block fields null, 0
/// confirmations) and is listed in the mempool by sender and by recipient while blocks pass;
/// once the gap is filled it is `included` at a block whose hash, time and transaction list
/// agree with the answer, the mempool is empty, and its confirmations rise with the head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallet_reads_the_schedule_and_a_transfer_pending_then_included() {
    let root = test_dir("chain_tx_status");
    let specs = [NodeSpec::new(&root, "a", "eu", "super")];
    let net = chain_for(&specs, &root, 500);
    let wallet_page = "https://wallet.example";
    let a = start_with(&specs[0], &net, &[], &["--api-cors-origins", wallet_page]);
    a.wait_ready("a ready", Duration::from_secs(15)).await;

    // a wallet page on another origin may call JSON-RPC; other origins are refused
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, a.url("/"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight(wallet_page).await.expect("preflight answered");
    assert_eq!(allowed.status(), 204);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        wallet_page
    );
    let refused = preflight("https://evil.example")
        .await
        .expect("preflight answered");
    assert_eq!(refused.status(), 403);
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    // the chain and its schedule, by REST and JSON-RPC alike
    let spec = rpc(&a, "chain_getSpec", json!([])).await["result"].clone();
    assert_eq!(spec["chain_id"], net.spec.chain_id.as_str(), "{spec}");
    assert_eq!(
        spec["genesis_hash"],
        to_hex(&net.spec.genesis_hash()),
        "{spec}"
    );
    assert_eq!(spec["slot_ms"], 500, "{spec}");
    let next = spec["next_slots"].as_array().expect("next_slots");
    assert_eq!(next.len(), 10, "{spec}");
    let first = next[0]["slot"].as_u64().expect("slot");
    for (i, s) in (0u64..).zip(next) {
        let slot = first + i;
        assert_eq!(s["slot"], slot, "{spec}");
        assert_eq!(s["start_ms"], net.spec.slot_start_ms(slot), "{spec}");
        let producer = net.spec.producer_for_slot(slot).expect("producer");
        assert_eq!(s["producer"], to_hex(&producer), "{spec}");
    }
    let rest = get_json(&a.url("/v1/chain")).await.expect("GET /v1/chain");
    assert_eq!(rest["genesis_hash"], spec["genesis_hash"]);

    let tx_get = |hash: String| {
        let a = &a;
        async move { rpc(a, "tx_get", json!([hash])).await["result"].clone() }
    };

    let alice = Identity::generate();
    let first = transfer(&net.spec.chain_id, &net.faucet, address(&alice), 5, 0);
    let second = transfer(&net.spec.chain_id, &net.faucet, address(&alice), 7, 1);
    let sent = rpc(&a, "tx_send", json!([to_hex(&second.encode())])).await;
    let hash = sent["result"].as_str().expect("tx hash").to_string();
    let before = height(&a).await.expect("height");
    wait_for(
        "two blocks after the send",
        Duration::from_secs(10),
        || async { (height(&a).await? >= before + 2).then_some(()) },
    )
    .await;
    let pending = tx_get(hash.clone()).await;
    assert_eq!(pending["status"], "pending", "{pending}");
    for field in ["block_height", "block_hash", "index", "timestamp_ms"] {
        assert!(pending[field].is_null(), "{field}: {pending}");
    }
    assert_eq!(pending["confirmations"], 0, "{pending}");
    let rest = get_json(&a.url(&format!("/v1/txs/{hash}"))).await;
    assert_eq!(rest.as_ref(), Some(&pending), "REST and JSON-RPC differ");
    // listed among the pending transfers of its sender and of its recipient
    let to_alice = address(&alice).to_string();
    let listed = json!({"txs": [pending.clone()], "total": 1});
    let pool = get_json(&a.url(&format!("/v1/mempool?address={to_alice}"))).await;
    assert_eq!(pool.as_ref(), Some(&listed), "REST mempool");
    let from_faucet = address(&net.faucet).to_string();
    let pool = rpc(&a, "tx_pending", json!([from_faucet])).await;
    assert_eq!(pool["result"], listed, "tx_pending");

    rpc(&a, "tx_send", json!([to_hex(&first.encode())])).await["result"]
        .as_str()
        .expect("tx hash");
    let included = wait_for("the transfer included", Duration::from_secs(10), || async {
        let tx = tx_get(hash.clone()).await;
        (tx["status"] == "included").then_some(tx)
    })
    .await;
    let at = included["block_height"].as_u64().expect("block_height");
    let block = get_json(&a.url(&format!("/v1/blocks/{at}")))
        .await
        .expect("block");
    assert_eq!(included["block_hash"], block["hash"], "{included}");
    assert_eq!(
        included["timestamp_ms"], block["timestamp_ms"],
        "{included}"
    );
    let index = included["index"].as_u64().expect("index") as usize;
    assert_eq!(block["txs"][index], json!(hash), "{block}");
    let confirmed = included["confirmations"].as_u64().expect("confirmations");
    assert!(confirmed >= 1, "{included}");
    let pool = rpc(&a, "tx_pending", json!([])).await;
    assert_eq!(
        pool["result"],
        json!({"txs": [], "total": 0}),
        "mempool emptied"
    );

    wait_for("two blocks on top", Duration::from_secs(10), || async {
        (height(&a).await? > at + confirmed).then_some(())
    })
    .await;
    let later = tx_get(hash.clone()).await;
    let head = height(&a).await.expect("height");
    let now = later["confirmations"].as_u64().expect("confirmations");
    assert!(now >= confirmed + 2, "confirmations {confirmed} then {now}");
    assert!(
        now <= head - at + 1,
        "{now} confirmations at head {head}, block {at}"
    );
    assert_eq!(later["block_hash"], included["block_hash"]);
}

/// A malformed `--api-cors-origins` stops the node at start-up with an error naming the flag.
#[test]
fn a_bad_cors_origin_is_a_start_up_error() {
    let root = test_dir("chain_bad_cors");
    let data_dir = root.join("data").display().to_string();
    let (code, stderr) = run_to_exit(
        &[
            "--data-dir",
            &data_dir,
            "--api-cors-origins",
            "wallet.example",
        ],
        Duration::from_secs(30),
    );
    assert!(matches!(code, Some(c) if c != 0), "exited with {code:?}");
    assert!(stderr.contains("--api-cors-origins"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
