//! Hostile input against a real node process on 127.0.0.1: a forged data plane (wrong chain,
//! bad key proof, garbage, oversized frames, frame and connection floods) and API abuse
//! (malformed JSON, huge bodies, deep nesting, batch floods, WebSocket and slowloris floods).
//! Every loop is bounded; the node must cut the offender off and keep serving.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use qnet_node::chain::spec::ChainSpec;
use qnet_node::chain::tx::{Address, Transfer};
use qnet_node::identity::Identity;
use qnet_node::net::handshake::{framed, recv, send, Conn};
use qnet_node::net::message::{Hello, PROTOCOL_VERSION};
use qnet_node::net::server::{connect, fetch_chain_spec};
use qnet_node::net::{LocalInfo, Message};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{get_json, get_status, test_dir, wait_for, NodeProcess, NodeSpec};

const START: Duration = Duration::from_secs(60);
/// Longer than the node's handshake timeout (5 s).
const CUT_OFF: Duration = Duration::from_secs(8);

/// A single producing node of its own development chain.
async fn producing_node(name: &str) -> NodeProcess {
    let root = test_dir(name);
    let mut spec = NodeSpec::new(&root, "a", "eu", "super");
    spec.extra = vec!["--enable-microblocks".into()];
    let node = NodeProcess::start(spec);
    wait_for("node ready and producing", START, || async {
        (node.is_ready().await && height(&node).await? >= 1).then_some(())
    })
    .await;
    node
}

async fn height(node: &NodeProcess) -> Option<u64> {
    get_json(&node.url("/v1/status")).await?["head"]["height"].as_u64()
}

/// The node keeps answering and producing: readiness, then a head above `before`.
async fn still_serving(node: &NodeProcess, before: u64) {
    wait_for("node still ready and producing", START, || async {
        (node.is_ready().await && height(node).await? > before).then_some(())
    })
    .await;
}

/// Whether the node closes `conn` (end of stream or error) within [`CUT_OFF`].
async fn closed(conn: &mut Conn) -> bool {
    tokio::time::timeout(CUT_OFF, async {
        loop {
            match conn.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Whether the node closes a raw socket within `within`.
async fn raw_closed(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

fn hello(spec: &ChainSpec, identity: &Identity, chain_id: &str) -> Message {
    Message::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        public_key: identity.public_key().to_bytes(),
        chain_id: chain_id.into(),
        genesis: spec.genesis_hash(),
        nonce: [7; 32],
    })
}

fn local(spec: &ChainSpec, identity: Identity) -> LocalInfo {
    LocalInfo {
        identity,
        chain_id: spec.chain_id.clone(),
        genesis: spec.genesis_hash(),
        spec_json: spec.to_json(),
    }
}

/// Asks for seeds; `Some` when the node answered at all (seeds or a refusal).
async fn answers(conn: &mut Conn) -> bool {
    let asked = send(
        conn,
        &Message::GetSeeds {
            region: "eu".into(),
        },
    )
    .await;
    if asked.is_err() {
        return false;
    }
    matches!(
        tokio::time::timeout(CUT_OFF, recv(conn)).await,
        Ok(Ok(Some(Message::Seeds(_) | Message::Error { .. })))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_data_plane_is_cut_off_and_penalised_node_unaffected() {
    let node = producing_node("hostile-data-plane").await;
    let addr = node.spec.p2p_addr().to_string();
    let spec = ChainSpec::from_json(&fetch_chain_spec(&addr).await.unwrap()).unwrap();
    let before = height(&node).await.unwrap();
    let failures_before = node.metric("qnet_handshake_failures_total").await;

    // wrong chain id
    let mut conn = framed(TcpStream::connect(&addr).await.unwrap());
    send(
        &mut conn,
        &hello(&spec, &Identity::generate(), "evil-chain"),
    )
    .await
    .unwrap();
    assert!(closed(&mut conn).await, "wrong chain id: connection kept");

    // right chain, but a proof that does not verify
    let mut conn = framed(TcpStream::connect(&addr).await.unwrap());
    send(
        &mut conn,
        &hello(&spec, &Identity::generate(), &spec.chain_id),
    )
    .await
    .unwrap();
    assert!(matches!(recv(&mut conn).await, Ok(Some(Message::Hello(_)))));
    assert!(matches!(recv(&mut conn).await, Ok(Some(Message::Proof(_)))));
    send(&mut conn, &Message::Proof([0x5a; 64])).await.unwrap();
    assert!(closed(&mut conn).await, "bad signature: connection kept");

    // garbage bytes, a frame over the 8 MiB limit, a 1 MiB frame before authentication
    let mut garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    garbage[..4].copy_from_slice(&[0, 0, 0, 40]);
    let oversized = 16u32 * 1024 * 1024;
    let early = 1024u32 * 1024;
    for (what, payload) in [
        ("garbage", garbage),
        ("oversized frame", oversized.to_be_bytes().to_vec()),
    ] {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let _ = s.write_all(&payload).await;
        assert!(raw_closed(&mut s, CUT_OFF).await, "{what}: connection kept");
    }
    // the start of a 1 MiB frame before authentication is refused at its length prefix,
    // well before the 5 s handshake timeout would end the connection
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let mut f = early.to_be_bytes().to_vec();
    f.resize(4 + 1000, 0xab);
    let _ = s.write_all(&f).await;
    assert!(
        raw_closed(&mut s, Duration::from_secs(3)).await,
        "1 MiB frame before the handshake: connection kept"
    );
    wait_for("handshake failures counted", CUT_OFF, || async {
        (node.metric("qnet_handshake_failures_total").await >= failures_before + 5.0).then_some(())
    })
    .await;

    // an authenticated peer that sends an undecodable block is cut off and banned
    let offender = Identity::generate();
    let mut conn = connect(&addr, &local(&spec, offender.clone()))
        .await
        .unwrap();
    send(&mut conn, &Message::Block(vec![1, 2, 3]))
        .await
        .unwrap();
    assert!(closed(&mut conn).await, "bad block: connection kept");
    let mut again = connect(&addr, &local(&spec, offender)).await.unwrap();
    assert!(!answers(&mut again).await, "banned peer still served");
    assert!(
        node.metric("qnet_peer_disconnects_total{reason=\"banned\"}")
            .await
            >= 1.0
    );
    assert!(
        node.metric("qnet_peer_disconnects_total{reason=\"bad_message\"}")
            .await
            >= 1.0
    );

    // a frame flood (duplicates of one transaction) trips the per-peer rate limit
    let mut conn = connect(&addr, &local(&spec, Identity::generate()))
        .await
        .unwrap();
    let payer = Identity::generate();
    let tx = Transfer {
        chain_id: spec.chain_id.clone(),
        from: payer.public_key().to_bytes(),
        to: Address::from_public_key(&[9; 32]),
        amount: 1,
        fee: 1,
        nonce: 0,
    }
    .sign(payer.signing_key());
    let frame = bytes::Bytes::from(Message::Tx(tx.encode()).encode());
    for _ in 0..20_000 {
        if conn.feed(frame.clone()).await.is_err() {
            break;
        }
    }
    let _ = SinkExt::<bytes::Bytes>::flush(&mut conn).await;
    assert!(closed(&mut conn).await, "flooding peer not cut off");
    wait_for("rate-limit disconnect counted", CUT_OFF, || async {
        (node
            .metric("qnet_peer_disconnects_total{reason=\"rate_limit\"}")
            .await
            >= 1.0)
            .then_some(())
    })
    .await;

    // a connection flood past the limit (256): silent sockets are dropped by the handshake
    // timeout, and honest peers get in again afterwards
    let mut flood = Vec::new();
    for _ in 0..300 {
        if let Ok(s) = TcpStream::connect(&addr).await {
            flood.push(s);
        }
    }
    assert_eq!(get_status(&node.url("/health/live")).await, Some(200));
    tokio::time::sleep(CUT_OFF).await;
    drop(flood);
    wait_for("an honest peer is served again", START, || async {
        let mut conn = connect(&addr, &local(&spec, Identity::generate()))
            .await
            .ok()?;
        answers(&mut conn).await.then_some(())
    })
    .await;

    still_serving(&node, before).await;
}

async fn post_raw(node: &NodeProcess, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(node.url("/"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// POSTs a JSON body of `size` bytes over a raw socket and returns the status and the body
/// of the answer; the write side may be cut off by the node, which is fine.
async fn oversized_post(node: &NodeProcess, path: &str, size: usize) -> (u16, String) {
    let stream = TcpStream::connect(node.spec.api_addr()).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {size}\r\nConnection: close\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(head.as_bytes()).await;
        let chunk = vec![b'['; 64 * 1024];
        for _ in 0..size / chunk.len() {
            if wr.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(CUT_OFF, async {
        let mut buf = [0u8; 8192];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    writer.abort();
    assert!(read.is_ok(), "no answer to an oversized body on {path}");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_abuse_gets_clear_errors_and_the_node_keeps_serving() {
    let node = producing_node("hostile-api").await;
    let before = height(&node).await.unwrap();

    // malformed JSON: truncated (jsonrpsee answers 200) or not JSON at all (400)
    let (s, b) = post_raw(&node, "{\"jsonrpc\": \"2.0\", \"method\": ").await;
    assert_eq!((s, b["error"]["code"].as_i64()), (200, Some(-32700)), "{b}");
    let (s, b) = post_raw(&node, "\u{0}\u{1}garbage").await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(-32700)), "{b}");

    // 4 MiB bodies (limit 1 MiB), sent raw: the node answers 413 without reading them all
    for (path, code) in [("/", Some(-32007)), ("/v1/txs", None)] {
        let (status, body) = oversized_post(&node, path, 4 * 1024 * 1024).await;
        assert_eq!(status, 413, "{path}: {body}");
        if let Some(code) = code {
            assert!(body.contains(&code.to_string()), "{path}: {body}");
        }
    }

    // deep nesting: 100k '[' is refused as a parse error, not a stack overflow
    let (s, b) = post_raw(&node, "[".repeat(100_000)).await;
    assert_eq!(b["error"]["code"].as_i64(), Some(-32700), "{s} {b}");
    let deep = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"chain_getBlockByHeight\",\"params\":{}1{}}}",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let (s, b) = post_raw(&node, deep).await;
    assert!(b["error"]["code"].as_i64().is_some(), "{s} {b}");

    // batches: over the limit is refused, a bounded flood of full batches is answered
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "chain_getHead", "params": []});
    let (_, b) = post_raw(&node, Value::Array(vec![call.clone(); 51]).to_string()).await;
    assert_eq!(b["error"]["code"].as_i64(), Some(-32010), "{b}");
    let full = Value::Array(vec![call; 50]).to_string();
    for _ in 0..100 {
        let (s, b) = post_raw(&node, full.clone()).await;
        assert_eq!(s, 200);
        assert_eq!(b.as_array().map(Vec::len), Some(50));
    }

    // WebSockets beyond the limit (100) are refused with 429
    let url = format!("ws://{}/", node.spec.api_addr());
    let mut sockets = Vec::new();
    let mut refused = 0;
    for _ in 0..110 {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((ws, _)) => sockets.push(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), 429);
                refused += 1;
            }
            Err(e) => panic!("websocket: {e}"),
        }
    }
    assert_eq!((sockets.len(), refused), (100, 10));
    drop(sockets);

    // slowloris: connections that trickle their headers are closed by the header timeout
    // (10 s), while normal requests are served
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(node.spec.api_addr()).await.unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    for i in 0..6 {
        for s in &mut slow {
            let _ = s.write_all(format!("X-{i}: a\r\n").as_bytes()).await;
        }
        assert_eq!(get_status(&node.url("/health/live")).await, Some(200));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let deadline = Duration::from_secs(20);
    for s in &mut slow {
        let mut buf = [0u8; 1024];
        let cut = tokio::time::timeout(deadline, async {
            loop {
                let _ = s.write_all(b"X-More: a\r\n").await;
                match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return,
                    _ => {}
                }
            }
        })
        .await;
        assert!(cut.is_ok(), "slowloris connection still open");
    }

    still_serving(&node, before).await;
    let head = get_json(&node.url("/v1/blocks/latest")).await.unwrap();
    assert!(head["height"].as_u64().unwrap() > before);
}
