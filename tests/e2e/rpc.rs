//! JSON-RPC over WebSocket against a running network: a subscriber to new heads receives
//! every head in order for a minute, detects any reorg by its parent hash, and after a
//! reconnect backfills what it missed with `chain_getBlocks`.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::chain::{chain_for, rpc, start};
use crate::common::{test_dir, NodeProcess, NodeSpec};

/// How long the subscriber listens (the issue asks for a minute).
const LISTEN: Duration = Duration::from_secs(60);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Debug, Clone)]
struct Head {
    height: u64,
    hash: String,
    parent_hash: String,
}

impl Head {
    fn from_json(v: &Value) -> Head {
        Head {
            height: v["height"].as_u64().expect("height"),
            hash: v["hash"].as_str().expect("hash").to_string(),
            parent_hash: v["parent_hash"].as_str().expect("parent_hash").to_string(),
        }
    }
}

async fn subscribe(node: &NodeProcess) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", node.spec.api_addr()))
        .await
        .expect("websocket connect");
    let call =
        json!({"jsonrpc": "2.0", "id": 1, "method": "chain_subscribeNewHeads", "params": []});
    ws.send(Message::text(call.to_string())).await.unwrap();
    loop {
        let msg = next_json(&mut ws).await.expect("subscription answer");
        if msg["id"] == 1 {
            assert!(
                msg["result"].is_string() || msg["result"].is_u64(),
                "subscribe failed: {msg}"
            );
            return ws;
        }
    }
}

async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).ok(),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

async fn next_head(ws: &mut Ws) -> Head {
    loop {
        let msg = next_json(ws).await.expect("a head within 10 s");
        if msg["method"] == "chain_newHead" {
            return Head::from_json(&msg["params"]["result"]);
        }
    }
}

/// The canonical block hash at `height`, as the node serves it now.
async fn canonical(node: &NodeProcess, height: u64) -> String {
    let b = rpc(node, "chain_getBlockByHeight", json!([height])).await;
    b["result"]["hash"].as_str().expect("block").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_heads_arrive_in_order_and_backfill_after_reconnect() {
    let root = test_dir("rpc_ws_heads");
    let specs = [
        NodeSpec::new(&root, "a", "eu", "super"),
        NodeSpec::new(&root, "b", "na", "super"),
        NodeSpec::new(&root, "c", "eu", "full"),
    ];
    let net = chain_for(&specs, &root, 500);
    let a = start(&specs[0], &net, &[]);
    a.wait_ready("a ready", Duration::from_secs(15)).await;
    let b = start(&specs[1], &net, &[&specs[0]]);
    let c = start(&specs[2], &net, &[&specs[0], &specs[1]]);
    for n in [&b, &c] {
        n.wait_ready("node ready", Duration::from_secs(30)).await;
    }

    // A minute of heads: consecutive heights, each linked to the one before it, unless the
    // node switched branches, which the client sees as a parent mismatch and checks.
    let mut ws = subscribe(&c).await;
    let started = Instant::now();
    let mut heads = vec![next_head(&mut ws).await];
    let mut reorgs = 0;
    while started.elapsed() < LISTEN {
        let head = next_head(&mut ws).await;
        let prev = heads.last().unwrap();
        assert!(
            head.height <= prev.height + 1,
            "gap: head {} after {}",
            head.height,
            prev.height
        );
        if head.parent_hash != prev.hash {
            reorgs += 1;
            assert!(head.height > 0, "a reorg to genesis: {head:?}");
        }
        heads.push(head);
    }
    let first = heads[0].height;
    let last = heads.last().unwrap().height;
    assert!(last > first, "no new head in a minute");
    for h in first..=last {
        assert!(
            heads.iter().any(|x| x.height == h),
            "height {h} was never announced"
        );
    }
    // What the subscriber saw last is the node's chain: walk the parents back.
    let tail: Vec<&Head> = heads
        .iter()
        .rev()
        .take_while(|x| x.height > first)
        .collect();
    for pair in tail.windows(2) {
        if pair[0].height == pair[1].height + 1 && pair[0].parent_hash == pair[1].hash {
            assert_eq!(canonical(&c, pair[1].height).await, pair[1].hash);
        }
    }
    println!(
        "websocket: {} heads from {first} to {last} in {:?}, {reorgs} reorgs",
        heads.len(),
        LISTEN
    );

    // Disconnect for a few slots, reconnect, backfill the gap from chain_getBlocks.
    let seen = heads.last().unwrap().clone();
    drop(ws);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut ws = subscribe(&c).await;
    let fresh = next_head(&mut ws).await;
    assert!(fresh.height > seen.height + 1, "no slot passed while away");
    let mut from = seen.height;
    let mut linked = vec![];
    while from < fresh.height {
        let r = rpc(&c, "chain_getBlocks", json!([from, 100])).await;
        let blocks = r["result"].as_array().expect("blocks").clone();
        assert!(!blocks.is_empty(), "no blocks from {from}: {r}");
        for blk in &blocks {
            let h = Head::from_json(blk);
            if h.height >= from && h.height < fresh.height {
                linked.push(h);
            }
        }
        from = linked.last().unwrap().height + 1;
    }
    // The backfill starts at the last head seen (or the branch that replaced it), has every
    // height up to the fresh head, and each block's parent is the block before it.
    assert_eq!(linked[0].height, seen.height);
    for pair in linked.windows(2) {
        assert_eq!(pair[1].height, pair[0].height + 1);
        assert_eq!(
            pair[1].parent_hash, pair[0].hash,
            "backfill is not one chain"
        );
    }
    assert_eq!(
        fresh.parent_hash,
        linked.last().unwrap().hash,
        "fresh head does not extend the backfilled chain"
    );
    drop(ws);
    for n in [a, b, c] {
        n.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_limit_flags_take_effect() {
    let root = test_dir("rpc_limit_flags");
    let mut spec = NodeSpec::new(&root, "a", "eu", "super");
    spec.extra = vec![
        "--api-max-batch".into(),
        "2".into(),
        "--api-tx-rate".into(),
        "1".into(),
        "--api-tx-burst".into(),
        "1".into(),
    ];
    let node = NodeProcess::start(spec);
    node.wait_ready("ready", Duration::from_secs(20)).await;
    let call =
        |id: u64| json!({"jsonrpc": "2.0", "id": id, "method": "chain_getHead", "params": []});
    let client = reqwest::Client::new();
    let post = |body: Value| {
        let req = client.post(node.url("/")).json(&body);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let two = post(json!([call(1), call(2)])).await;
    assert_eq!(two.as_array().map(Vec::len), Some(2), "{two}");
    let three = post(json!([call(1), call(2), call(3)])).await;
    assert_eq!(three["error"]["code"], -32010, "{three}");
    // Burst 1: the second submission in a row is rate limited (the bytes need not be valid).
    let send = json!({"jsonrpc": "2.0", "id": 9, "method": "tx_send", "params": ["00"]});
    let first = post(send.clone()).await;
    assert_ne!(first["error"]["code"], -32002, "{first}");
    let second = post(send).await;
    assert_eq!(second["error"]["code"], -32002, "{second}");
    node.kill();
}
