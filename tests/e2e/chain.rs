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

use crate::common::{get_json, test_dir, wait_for, NodeProcess, NodeSpec};

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

async fn metric(node: &NodeProcess, series: &str) -> f64 {
    let text = reqwest::get(node.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

pub(crate) async fn ready(node: &NodeProcess) -> bool {
    crate::common::get_status(&node.url("/health/ready")).await == Some(200)
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
    let mut s = spec.clone();
    s.bootstrap = bootstrap.iter().map(|b| b.p2p_addr()).collect();
    s.extra = vec![
        "--chain".into(),
        net.spec_path.display().to_string(),
        "--enable-microblocks".into(),
        "--strategy-settle-time".into(),
        "1s".into(),
    ];
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
    wait_for("a ready", Duration::from_secs(15), || async {
        ready(&a).await.then_some(())
    })
    .await;
    let b = start(&specs[1], &net, &[&specs[0]]);
    wait_for("b ready", Duration::from_secs(15), || async {
        ready(&b).await.then_some(())
    })
    .await;
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
        let n = metric(
            &a,
            &format!("qnet_transactions_total{{result=\"{reason}\"}}"),
        )
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
            async move { (metric(a, &series).await >= 1.0).then_some(()) }
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
        (metric(&b, "qnet_blocks_produced_total").await >= 1.0).then_some(())
    })
    .await;
    let upto = height(&a).await.unwrap().min(height(&b).await.unwrap());
    let both = [&a, &b];
    wait_for("same chain", Duration::from_secs(10), || agree(&both, upto)).await;
}
