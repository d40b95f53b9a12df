//! Starts the real API server on 127.0.0.1:0 with a fake `NodeService` and talks HTTP and
//! WebSocket to it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use prometheus::{Encoder, Registry, TextEncoder};
use qnet_api::dto::*;
use qnet_api::{serve, ApiConfig, CorsOrigins, NodeService, RateLimit, ServiceError};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

const TIP: u64 = 5;
const KNOWN_TX: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const SUBMITTED_HASH: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn hash_of(height: u64) -> String {
    format!("{height:064x}")
}

fn head(height: u64) -> HeadDto {
    HeadDto {
        height,
        hash: hash_of(height),
        parent_hash: hash_of(height.saturating_sub(1)),
        slot: height * 2,
        timestamp_ms: 1_700_000_000_000 + height,
    }
}

fn tx_dto() -> TxDto {
    TxDto {
        hash: KNOWN_TX.into(),
        from: "qa".into(),
        to: "qb".into(),
        amount: 5,
        fee: 1,
        nonce: 0,
        status: TxStatus::Included,
        block_height: Some(1),
        block_hash: Some("11".repeat(32)),
        index: Some(0),
        timestamp_ms: Some(1_000),
        confirmations: TIP,
    }
}

fn pending_dto(from: &str, nonce: u64) -> TxDto {
    TxDto {
        hash: format!("{nonce:064}"),
        from: from.into(),
        to: "qz".into(),
        amount: 3,
        fee: 1,
        nonce,
        status: TxStatus::Pending,
        block_height: None,
        block_hash: None,
        index: None,
        timestamp_ms: None,
        confirmations: 0,
    }
}

fn block(height: u64, full: bool) -> BlockDto {
    let h = head(height);
    BlockDto {
        height,
        hash: h.hash,
        parent_hash: h.parent_hash,
        slot: h.slot,
        timestamp_ms: h.timestamp_ms,
        producer: "producer".into(),
        tx_root: "00".repeat(32),
        tx_count: 1,
        txs: if full {
            BlockTxs::Full(vec![tx_dto()])
        } else {
            BlockTxs::Hashes(vec![KNOWN_TX.into()])
        },
    }
}

/// The test double of the node: a fixed chain of heights 0..=TIP.
struct FakeNode {
    registry: Registry,
    heads: broadcast::Sender<HeadDto>,
    ready: AtomicBool,
    slow_peers: AtomicBool,
    submitted: Mutex<Vec<Vec<u8>>>,
}

impl NodeService for FakeNode {
    fn status(&self) -> StatusDto {
        StatusDto {
            node_id: "n1".into(),
            node_type: "full".into(),
            region: "eu".into(),
            version: "0.1.0".into(),
            chain_id: "dev".into(),
            peers_live: 3,
            head: Some(head(TIP)),
            syncing: false,
            strategy: "regional_clustering".into(),
            failover_active: false,
            ready: self.ready(),
        }
    }
    fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
    fn peers(&self) -> PeersDto {
        if self.slow_peers.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_secs(3));
        }
        PeersDto {
            peers: vec![PeerDto {
                node_id: "n2".into(),
                region: "na".into(),
                node_type: "super".into(),
                gossip_addr: "10.0.0.2:7000".into(),
                p2p_addr: Some("10.0.0.2:7000".into()),
                api_addr: None,
                live: true,
                last_seen_ms: 42,
                bridge: true,
                head_height: Some(TIP),
            }],
        }
    }
    fn regions(&self) -> RegionsDto {
        RegionsDto {
            health_score: 0.75,
            regions: vec![RegionDto {
                region: "eu".into(),
                known: 4,
                live: 3,
                health: 0.75,
                missing: false,
                bridges: vec!["n1".into()],
            }],
        }
    }
    fn topology(&self) -> TopologyDto {
        TopologyDto {
            strategy: "regional_clustering".into(),
            since_ms: 7,
            live_regions: vec!["eu".into(), "na".into()],
            bridges: BTreeMap::from([("na".to_string(), vec!["n2".to_string()])]),
            links: vec![LinkDto {
                peer: "n2".into(),
                region: "na".into(),
                kind: LinkKind::Bridge,
                state: LinkState::Open,
            }],
        }
    }
    fn failover(&self) -> FailoverDto {
        FailoverDto {
            active: true,
            missing_regions: vec!["asia".into(), "sa".into()],
            restoring_regions: vec![],
            last_check_ms: Some(9),
            events: vec![FailoverEventDto {
                at_ms: 9,
                kind: "activated".into(),
                regions: vec!["asia".into(), "sa".into()],
            }],
        }
    }
    fn head(&self) -> Option<HeadDto> {
        Some(head(TIP))
    }
    fn block_by_height(&self, height: u64, full: bool) -> Result<Option<BlockDto>, ServiceError> {
        Ok((height <= TIP).then(|| block(height, full)))
    }
    fn block_by_hash(&self, hash: &str, full: bool) -> Result<Option<BlockDto>, ServiceError> {
        Ok((0..=TIP)
            .find(|h| hash_of(*h) == hash)
            .map(|h| block(h, full)))
    }
    fn blocks(&self, from: u64, limit: u32) -> Result<Vec<BlockDto>, ServiceError> {
        Ok((from..=TIP)
            .take(limit as usize)
            .map(|h| block(h, false))
            .collect())
    }
    fn tx(&self, hash: &str) -> Result<Option<TxDto>, ServiceError> {
        Ok((hash == KNOWN_TX).then(tx_dto))
    }
    fn chain_spec(&self) -> ChainSpecDto {
        ChainSpecDto {
            chain_id: "dev".into(),
            genesis_time_ms: 1_000,
            genesis_hash: "00".repeat(32),
            slot_ms: 1_000,
            producers: vec!["aa".repeat(32)],
            next_slots: vec![ScheduledSlotDto {
                slot: TIP + 1,
                start_ms: 1_000 + (TIP + 1) * 1_000,
                producer: "aa".repeat(32),
            }],
        }
    }
    fn pending_txs(&self, address: Option<&str>) -> Result<PendingTxsDto, ServiceError> {
        let pool = [pending_dto("qa", 2), pending_dto("qb", 0)];
        let txs: Vec<TxDto> = match address {
            Some("bad!") => return Err(ServiceError::InvalidParams("malformed address".into())),
            Some(a) => pool
                .into_iter()
                .filter(|t| t.from == a || t.to == a)
                .collect(),
            None => pool.into(),
        };
        Ok(PendingTxsDto {
            total: txs.len() as u64,
            txs,
        })
    }
    fn submit_tx(&self, raw: &[u8]) -> Result<String, ServiceError> {
        if raw == [0xde, 0xad] {
            return Err(ServiceError::Rejected {
                code: "bad_signature".into(),
                message: "signature does not verify".into(),
            });
        }
        self.submitted.lock().unwrap().push(raw.to_vec());
        Ok(SUBMITTED_HASH.into())
    }
    fn account(&self, address: &str) -> Result<Option<AccountDto>, ServiceError> {
        match address {
            "qa" => Ok(Some(AccountDto {
                address: "qa".into(),
                balance: 100,
                nonce: 1,
                pending_nonce: 2,
            })),
            "bad!" => Err(ServiceError::InvalidParams("malformed address".into())),
            _ => Ok(None),
        }
    }
    fn subscribe_heads(&self) -> broadcast::Receiver<HeadDto> {
        self.heads.subscribe()
    }
    fn metrics_text(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }
}

struct Harness {
    addr: SocketAddr,
    node: Arc<FakeNode>,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), qnet_api::ApiError>>>,
}

impl Harness {
    async fn start(config: ApiConfig) -> Self {
        let registry = Registry::new();
        let node = Arc::new(FakeNode {
            registry: registry.clone(),
            heads: broadcast::channel(64).0,
            ready: AtomicBool::new(true),
            slow_peers: AtomicBool::new(false),
            submitted: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let fut = serve(listener, node.clone(), config, &registry, async {
            let _ = stopped.await;
        });
        let task = tokio::spawn(fut);
        Self {
            addr,
            node,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self.http.get(self.url(path)).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    async fn post_raw(&self, path: &str, content_type: &str, body: String) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    async fn rpc(&self, method: &str, params: Value) -> Value {
        let (status, body) = self
            .post_json(
                "/",
                &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn metrics(&self) -> String {
        let resp = self.http.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/plain; version=0.0.4"
        );
        resp.text().await.unwrap()
    }

    async fn ws(&self) -> Ws {
        let (stream, _) = tokio_tungstenite::connect_async(format!("ws://{}/", self.addr))
            .await
            .unwrap();
        Ws(stream)
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).unwrap();
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

struct Ws(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl Ws {
    async fn send(&mut self, v: Value) {
        self.0.send(Message::text(v.to_string())).await.unwrap();
    }

    async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(30), self.0.next())
                .await
                .expect("no websocket message")
                .unwrap()
                .unwrap();
            if let Message::Text(text) = msg {
                return serde_json::from_str(text.as_str()).unwrap();
            }
        }
    }
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

#[tokio::test]
async fn rest_routes_answer_with_their_shapes() {
    let h = Harness::start(ApiConfig::default()).await;

    assert_eq!(
        h.get("/health/live").await,
        (200, json!({"status": "live"}))
    );
    assert_eq!(
        h.get("/health/ready").await,
        (200, json!({"status": "ready"}))
    );

    let (s, b) = h.get("/v1/status").await;
    assert_eq!(s, 200);
    for key in [
        "node_id",
        "node_type",
        "region",
        "version",
        "chain_id",
        "peers_live",
        "head",
        "syncing",
        "strategy",
        "failover_active",
        "ready",
    ] {
        assert!(b.get(key).is_some(), "status lacks {key}: {b}");
    }
    assert_eq!(b["head"]["height"], TIP);

    let (s, b) = h.get("/v1/peers").await;
    assert_eq!(s, 200);
    assert_eq!(b["peers"][0]["node_id"], "n2");
    assert_eq!(b["peers"][0]["api_addr"], Value::Null);
    assert_eq!(b["peers"][0]["bridge"], true);

    let (s, b) = h.get("/v1/regions").await;
    assert_eq!(s, 200);
    assert_eq!(b["health_score"], 0.75);
    assert_eq!(b["regions"][0]["bridges"], json!(["n1"]));

    let (s, b) = h.get("/v1/topology").await;
    assert_eq!(s, 200);
    assert_eq!(b["bridges"], json!({"na": ["n2"]}));
    assert_eq!(b["links"][0]["kind"], "bridge");

    let (s, b) = h.get("/v1/failover").await;
    assert_eq!(s, 200);
    assert_eq!(b["active"], true);
    assert_eq!(b["events"][0]["kind"], "activated");

    let (s, b) = h.get("/v1/blocks/latest").await;
    assert_eq!(s, 200);
    assert_eq!(b["height"], TIP);
    assert_eq!(b["txs"], json!([KNOWN_TX]));

    let (s, b) = h.get("/v1/blocks/2?full_txs=true").await;
    assert_eq!(s, 200);
    assert_eq!(b["hash"], hash_of(2));
    assert_eq!(b["txs"][0]["status"], "included");

    let (s, b) = h.get("/v1/blocks?from=1&limit=3").await;
    assert_eq!(s, 200);
    let heights: Vec<u64> = b["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["height"].as_u64().unwrap())
        .collect();
    assert_eq!(heights, vec![1, 2, 3]);
    let (s, b) = h.get("/v1/blocks").await;
    assert_eq!(s, 200);
    assert_eq!(b["blocks"].as_array().unwrap().len(), TIP as usize + 1);

    let (s, b) = h
        .get(&format!("/v1/blocks/hash/{}", hash_of(3).to_uppercase()))
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["height"], 3);

    let (s, b) = h.get("/v1/chain").await;
    assert_eq!(s, 200);
    assert_eq!(b, serde_json::to_value(h.node.chain_spec()).unwrap());
    assert_eq!(b["next_slots"][0]["slot"], TIP + 1);
    assert_eq!(b["genesis_hash"], "00".repeat(32));

    let (s, b) = h.get("/v1/mempool").await;
    assert_eq!(s, 200);
    assert_eq!(b["total"], 2);
    assert_eq!(b["txs"][0]["status"], "pending");
    assert_eq!(b["txs"][0]["confirmations"], 0);
    assert_eq!(b["txs"][0]["block_hash"], Value::Null);
    let (s, b) = h.get("/v1/mempool?address=qa").await;
    assert_eq!(s, 200);
    assert_eq!(b, json!({"txs": [pending_dto("qa", 2)], "total": 1}));

    let (s, b) = h.get(&format!("/v1/txs/{KNOWN_TX}")).await;
    assert_eq!(s, 200);
    assert_eq!(b["amount"], 5);
    // where the transfer is, under the names wallets and explorers read
    assert_eq!(b["status"], "included");
    assert_eq!(b["block_height"], 1);
    assert_eq!(b["block_hash"], "11".repeat(32));
    assert_eq!(b["index"], 0);
    assert_eq!(b["timestamp_ms"], 1_000);
    assert_eq!(b["confirmations"], TIP);

    let (s, b) = h.post_json("/v1/txs", &json!({"tx": "0x0102"})).await;
    assert_eq!(s, 202);
    assert_eq!(b, json!({"hash": SUBMITTED_HASH}));
    assert_eq!(
        h.node.submitted.lock().unwrap().last().unwrap(),
        &vec![1, 2]
    );

    let (s, b) = h.get("/v1/accounts/qa").await;
    assert_eq!(s, 200);
    assert_eq!(b["pending_nonce"], 2);

    let resp = h.http.get(h.url("/openapi.yaml")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/yaml");
    assert_eq!(resp.text().await.unwrap(), qnet_api::openapi_yaml());

    h.shutdown().await;
}

#[tokio::test]
async fn rest_errors_are_json_with_proper_status() {
    let config = ApiConfig {
        max_body_bytes: 1024,
        ..ApiConfig::default()
    };
    let h = Harness::start(config).await;

    let (s, b) = h.get("/no/such/route").await;
    assert_eq!(s, 404);
    assert_error(&b, "not_found");

    let resp = h.http.delete(h.url("/v1/status")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_error(&resp.json().await.unwrap(), "method_not_allowed");

    let (s, b) = h.get("/v1/blocks/abc").await;
    assert_eq!(s, 400);
    assert_error(&b, "bad_request");
    let (s, b) = h.get("/v1/blocks/-1").await;
    assert_eq!(s, 400);
    assert_error(&b, "bad_request");

    let (s, b) = h.get("/v1/blocks/99").await;
    assert_eq!(s, 404);
    assert_error(&b, "not_found");

    for bad in ["limit=0", "limit=101", "limit=abc", "from=-3"] {
        let (s, b) = h.get(&format!("/v1/blocks?{bad}")).await;
        assert_eq!(s, 400, "{bad}");
        assert!(b["error"]["code"].is_string(), "{bad}: {b}");
    }
    let (s, _) = h.get("/v1/blocks?limit=100").await;
    assert_eq!(s, 200);

    let (s, b) = h.get("/v1/blocks/hash/xyz").await;
    assert_eq!(s, 400);
    assert_error(&b, "invalid_params");
    let (s, b) = h.get(&format!("/v1/blocks/hash/{}", "ab".repeat(32))).await;
    assert_eq!(s, 404);
    assert_error(&b, "not_found");
    let (s, b) = h.get("/v1/txs/nothex").await;
    assert_eq!(s, 400);
    assert_error(&b, "invalid_params");
    let (s, b) = h.get(&format!("/v1/txs/{}", "ab".repeat(32))).await;
    assert_eq!(s, 404);
    assert_error(&b, "not_found");

    let (s, b) = h.get("/v1/accounts/bad!").await;
    assert_eq!(s, 400);
    assert_error(&b, "invalid_params");
    let (s, b) = h.get("/v1/mempool?address=bad!").await;
    assert_eq!(s, 400);
    assert_error(&b, "invalid_params");
    let (s, b) = h.get("/v1/accounts/nobody").await;
    assert_eq!(s, 404);
    assert_error(&b, "not_found");

    let (s, b) = h
        .post_raw("/v1/txs", "text/plain", r#"{"tx":"01"}"#.into())
        .await;
    assert_eq!(s, 415);
    assert_error(&b, "unsupported_media_type");

    let big = json!({"tx": "00".repeat(1024)}).to_string();
    let (s, b) = h.post_raw("/v1/txs", "application/json", big).await;
    assert_eq!(s, 413);
    assert_error(&b, "payload_too_large");

    let (s, b) = h
        .post_raw("/v1/txs", "application/json", "{not json".into())
        .await;
    assert_eq!(s, 400);
    assert_error(&b, "bad_request");

    let (s, b) = h.post_json("/v1/txs", &json!({"nope": 1})).await;
    assert_eq!(s, 422);
    assert_error(&b, "unprocessable_entity");

    let (s, b) = h.post_json("/v1/txs", &json!({"tx": "zz"})).await;
    assert_eq!(s, 400);
    assert_error(&b, "invalid_params");

    let (s, b) = h.post_json("/v1/txs", &json!({"tx": "dead"})).await;
    assert_eq!(s, 422);
    assert_error(&b, "bad_signature");

    h.node.ready.store(false, Ordering::SeqCst);
    let (s, b) = h.get("/health/ready").await;
    assert_eq!(s, 503);
    assert_error(&b, "not_ready");
    assert_eq!(h.get("/health/live").await.0, 200);

    h.shutdown().await;
}

#[tokio::test]
async fn tx_submission_is_rate_limited_across_rest_and_rpc() {
    let config = ApiConfig {
        tx_rate_limit: Some(RateLimit {
            per_second: 1,
            burst: 2,
        }),
        ..ApiConfig::default()
    };
    let h = Harness::start(config).await;

    // Two tokens at start, one more per second: twenty quick tries cannot all pass.
    let mut limited = None;
    for _ in 0..20 {
        let resp = h
            .http
            .post(h.url("/v1/txs"))
            .json(&json!({"tx": "01"}))
            .send()
            .await
            .unwrap();
        if resp.status().as_u16() == 429 {
            limited = Some(resp);
            break;
        }
        assert_eq!(resp.status().as_u16(), 202);
    }
    let resp = limited.expect("never rate limited");
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_error(&resp.json().await.unwrap(), "rate_limited");

    let mut code = None;
    for _ in 0..20 {
        let b = h.rpc("tx_send", json!(["01"])).await;
        if let Some(c) = b["error"]["code"].as_i64() {
            code = Some(c);
            break;
        }
    }
    assert_eq!(code, Some(-32002));

    // Reads are never limited.
    assert_eq!(h.get("/v1/status").await.0, 200);
    h.shutdown().await;
}

#[tokio::test]
async fn json_rpc_methods_and_standard_errors() {
    let h = Harness::start(ApiConfig::default()).await;

    let b = h.rpc("chain_getHead", json!([])).await;
    assert_eq!(b["result"]["height"], TIP);
    assert_eq!(b["id"], 1);
    let b = h.rpc("chain_getBlockByHeight", json!([2, true])).await;
    assert_eq!(b["result"]["txs"][0]["hash"], KNOWN_TX);
    let b = h.rpc("chain_getBlockByHeight", json!([2])).await;
    assert_eq!(b["result"]["txs"], json!([KNOWN_TX]));
    let b = h.rpc("chain_getBlockByHeight", json!([99])).await;
    assert_eq!(b["result"], Value::Null);
    assert!(b.get("error").is_none());
    let b = h.rpc("chain_getBlockByHash", json!([hash_of(4)])).await;
    assert_eq!(b["result"]["height"], 4);
    let b = h.rpc("chain_getBlocks", json!([4, 10])).await;
    assert_eq!(b["result"].as_array().unwrap().len(), 2);
    let b = h.rpc("chain_getBlocks", json!([0, 101])).await;
    assert_eq!(b["error"]["code"], -32602);
    let b = h.rpc("tx_get", json!([KNOWN_TX])).await;
    assert_eq!(b["result"]["fee"], 1);
    assert_eq!(b["result"]["block_hash"], "11".repeat(32));
    assert_eq!(b["result"]["confirmations"], TIP);
    let b = h.rpc("tx_get", json!(["ab".repeat(32)])).await;
    assert_eq!(b["result"], Value::Null);
    let b = h.rpc("chain_getSpec", json!([])).await;
    assert_eq!(
        b["result"],
        serde_json::to_value(h.node.chain_spec()).unwrap()
    );
    let b = h.rpc("tx_pending", json!([])).await;
    assert_eq!(b["result"]["total"], 2);
    let b = h.rpc("tx_pending", json!(["qb"])).await;
    assert_eq!(
        b["result"],
        json!({"txs": [pending_dto("qb", 0)], "total": 1})
    );
    let b = h.rpc("tx_pending", json!(["bad!"])).await;
    assert_eq!(b["error"]["code"], -32602);
    let b = h.rpc("account_get", json!(["qa"])).await;
    assert_eq!(b["result"]["balance"], 100);
    let b = h.rpc("account_get", json!(["bad!"])).await;
    assert_eq!(b["error"]["code"], -32602);
    let b = h.rpc("tx_send", json!(["0a0b"])).await;
    assert_eq!(b["result"], SUBMITTED_HASH);
    let b = h.rpc("tx_send", json!(["dead"])).await;
    assert_eq!(b["error"]["code"], -32001);
    assert_eq!(b["error"]["data"]["code"], "bad_signature");
    for (method, key) in [
        ("net_peers", "peers"),
        ("net_regions", "health_score"),
        ("net_topology", "strategy"),
        ("net_failover", "missing_regions"),
        ("node_status", "node_id"),
    ] {
        let b = h.rpc(method, json!([])).await;
        assert!(b["result"].get(key).is_some(), "{method}: {b}");
    }

    // -32700: not JSON, either truncated or not even an object or array.
    let (s, b) = h
        .post_raw("/", "application/json", "{\"jsonrpc\": ".into())
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["error"]["code"], -32700);
    assert_eq!(b["id"], Value::Null);
    let (s, b) = h.post_raw("/", "application/json", "garbage".into()).await;
    assert_eq!(s, 400);
    assert_eq!(b["error"]["code"], -32700);
    // -32600: not a request object.
    let (_, b) = h.post_json("/", &json!({"jsonrpc": "2.0", "id": 3})).await;
    assert_eq!(b["error"]["code"], -32600);
    // -32601: unknown method.
    let b = h.rpc("chain_nope", json!([])).await;
    assert_eq!(b["error"]["code"], -32601);
    // -32602: wrong parameter type.
    let b = h.rpc("chain_getBlockByHeight", json!(["x"])).await;
    assert_eq!(b["error"]["code"], -32602);
    let b = h.rpc("chain_getBlockByHash", json!(["short"])).await;
    assert_eq!(b["error"]["code"], -32602);
    // Subscriptions need a WebSocket.
    let b = h.rpc("chain_subscribeNewHeads", json!([])).await;
    assert!(b["error"]["code"].is_i64(), "{b}");

    // Batches: a good one, an empty one, an oversized one.
    let call =
        |id: u64| json!({"jsonrpc": "2.0", "id": id, "method": "chain_getHead", "params": []});
    let (s, b) = h.post_json("/", &json!([call(1), call(2)])).await;
    assert_eq!(s, 200);
    assert_eq!(b.as_array().unwrap().len(), 2);
    let (_, b) = h.post_json("/", &json!([])).await;
    assert_eq!(b["error"]["code"], -32600, "{b}");
    let big: Vec<Value> = (0..51).map(call).collect();
    let (_, b) = h.post_json("/", &Value::Array(big)).await;
    assert_eq!(b["error"]["code"], -32010, "{b}");

    // Transport errors stay JSON-RPC shaped.
    let (s, b) = h.post_raw("/", "text/plain", call(1).to_string()).await;
    assert_eq!(s, 415);
    assert_eq!(b["error"]["code"], -32600);
    // A plain GET (no WebSocket upgrade) explains the endpoint.
    let (s, b) = h.get("/").await;
    assert_eq!(s, 200);
    assert!(b["methods"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "chain_getHead"));
    // Valid JSON that is not a request object or batch is an invalid request, not a parse error.
    let (s, b) = h
        .post_raw("/", "application/json", "-1.5".to_string())
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["error"]["code"], -32600, "{b}");

    // The server keeps serving after all that.
    let b = h.rpc("chain_getHead", json!([])).await;
    assert_eq!(b["result"]["height"], TIP);
    h.shutdown().await;
}

#[tokio::test]
async fn oversized_rpc_body_is_refused_with_413() {
    let config = ApiConfig {
        max_body_bytes: 512,
        ..ApiConfig::default()
    };
    let h = Harness::start(config).await;
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tx_send", "params": ["00".repeat(600)]});
    let (s, b) = h.post_json("/", &body).await;
    assert_eq!(s, 413);
    assert_eq!(b["error"]["code"], -32007);
    let b = h.rpc("chain_getHead", json!([])).await;
    assert_eq!(b["result"]["height"], TIP);
    h.shutdown().await;
}

#[tokio::test]
async fn websocket_subscription_receives_heads_in_order() {
    let h = Harness::start(ApiConfig::default()).await;
    let mut ws = h.ws().await;

    ws.send(json!({"jsonrpc": "2.0", "id": 1, "method": "node_status", "params": []}))
        .await;
    assert_eq!(ws.recv().await["result"]["region"], "eu");

    ws.send(json!({"jsonrpc": "2.0", "id": 2, "method": "chain_subscribeNewHeads", "params": []}))
        .await;
    let reply = ws.recv().await;
    assert_eq!(reply["id"], 2);
    let sub = reply["result"].clone();
    assert!(!sub.is_null(), "{reply}");
    assert_eq!(metric(&h.metrics().await, "qnet_ws_subscriptions"), 1.0);
    assert_eq!(metric(&h.metrics().await, "qnet_ws_connections"), 1.0);

    for height in 10..15 {
        h.node.heads.send(head(height)).unwrap();
    }
    for height in 10..15 {
        let n = ws.recv().await;
        assert_eq!(n["method"], "chain_newHead", "{n}");
        assert_eq!(n["params"]["subscription"], sub);
        assert_eq!(n["params"]["result"]["height"], height);
        assert_eq!(n["params"]["result"]["hash"], hash_of(height));
    }

    ws.send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "chain_unsubscribeNewHeads", "params": [sub]}),
    )
    .await;
    let reply = ws.recv().await;
    assert_eq!(reply["result"], true, "{reply}");
    h.shutdown().await;
}

#[tokio::test]
async fn websocket_connection_and_subscription_limits() {
    let config = ApiConfig {
        max_ws_connections: 1,
        max_subscriptions_per_connection: 1,
        ..ApiConfig::default()
    };
    let h = Harness::start(config).await;
    let mut ws = h.ws().await;

    let second = tokio_tungstenite::connect_async(format!("ws://{}/", h.addr)).await;
    match second {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 429)
        }
        other => panic!("second websocket not refused: {other:?}"),
    }

    let sub = json!({"jsonrpc": "2.0", "id": 1, "method": "chain_subscribeNewHeads", "params": []});
    ws.send(sub.clone()).await;
    assert!(ws.recv().await["result"].is_u64());
    ws.send(sub).await;
    assert_eq!(ws.recv().await["error"]["code"], -32006);

    // Closing the first connection frees its slot.
    ws.0.close(None).await.unwrap();
    drop(ws);
    let mut reopened = None;
    for _ in 0..100 {
        if let Ok((s, _)) = tokio_tungstenite::connect_async(format!("ws://{}/", h.addr)).await {
            reopened = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened.is_some(), "slot never freed");
    h.shutdown().await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_method() {
    let h = Harness::start(ApiConfig::default()).await;
    let before = h.metrics().await;
    let head_ok = "qnet_rpc_requests_total{method=\"chain_getHead\",outcome=\"ok\"}";
    let by_height = "qnet_http_requests_total{route=\"/v1/blocks/{height}\",status=\"200\"}";

    h.get("/v1/blocks/1").await;
    h.get("/v1/blocks/2").await;
    h.get("/nowhere").await;
    h.rpc("chain_getHead", json!([])).await;
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "chain_getHead", "params": []});
    h.post_json("/", &json!([call.clone(), call])).await;
    h.rpc("chain_nope", json!([])).await;

    let after = h.metrics().await;
    assert_eq!(metric(&after, by_height) - metric(&before, by_height), 2.0);
    assert!(!after.contains("route=\"/v1/blocks/1\""));
    assert!(
        metric(
            &after,
            "qnet_http_requests_total{route=\"unmatched\",status=\"404\"}"
        ) >= 1.0
    );
    assert_eq!(metric(&after, head_ok) - metric(&before, head_ok), 3.0);
    assert_eq!(
        metric(
            &after,
            "qnet_rpc_requests_total{method=\"unknown\",outcome=\"method_not_found\"}"
        ),
        1.0
    );
    assert!(
        metric(
            &after,
            "qnet_rpc_request_duration_seconds_count{method=\"chain_getHead\"}"
        ) >= 3.0
    );
    assert!(
        metric(
            &after,
            "qnet_http_request_duration_seconds_count{route=\"/v1/blocks/{height}\"}"
        ) >= 2.0
    );
    assert!(
        metric(
            &after,
            "qnet_http_requests_total{route=\"/\",status=\"200\"}"
        ) >= 2.0
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_fresh_server_exports_every_method_and_route_at_zero() {
    let h = Harness::start(ApiConfig::default()).await;
    let fresh = h.metrics().await;
    let (_, info) = h.get("/").await;
    let methods: Vec<String> = info["methods"]
        .as_array()
        .expect("method list")
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    assert!(methods.iter().any(|m| m == "chain_getHead"), "{methods:?}");
    let openapi = h.http.get(h.url("/openapi.yaml")).send().await.unwrap();
    let openapi = openapi.text().await.unwrap();
    // The documented paths: two-space indented keys under `paths:`.
    let routes: Vec<String> = openapi
        .lines()
        .filter_map(|l| l.strip_prefix("  /")?.strip_suffix(':'))
        .map(|p| format!("/{p}"))
        .chain(qnet_api::ui::paths().map(str::to_string))
        .collect();
    assert!(routes.len() > 16, "{routes:?}");
    let present = |series: &str| fresh.lines().any(|l| l == format!("{series} 0"));
    for method in &methods {
        let labels = format!("{{method=\"{method}\"}}");
        for series in [
            format!("qnet_rpc_requests_total{{method=\"{method}\",outcome=\"ok\"}}"),
            format!("qnet_rpc_request_duration_seconds_count{labels}"),
        ] {
            assert!(present(&series), "{series} not at 0 on a fresh server");
        }
    }
    for route in &routes {
        let status = if route == "/v1/txs" { 202 } else { 200 };
        for series in [
            format!("qnet_http_requests_total{{route=\"{route}\",status=\"{status}\"}}"),
            format!("qnet_http_request_duration_seconds_count{{route=\"{route}\"}}"),
        ] {
            assert!(present(&series), "{series} not at 0 on a fresh server");
        }
    }
    for series in [
        "qnet_rpc_requests_total{method=\"unknown\",outcome=\"method_not_found\"}",
        "qnet_http_requests_total{route=\"unmatched\",status=\"404\"}",
    ] {
        assert!(present(series), "{series} not at 0 on a fresh server");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn registering_twice_on_one_registry_fails_cleanly() {
    let registry = Registry::new();
    let node = Arc::new(FakeNode {
        registry: registry.clone(),
        heads: broadcast::channel(4).0,
        ready: AtomicBool::new(true),
        slow_peers: AtomicBool::new(false),
        submitted: Mutex::new(Vec::new()),
    });
    let first = qnet_api::ApiServer::new(node.clone(), ApiConfig::default(), &registry);
    assert!(first.is_ok());
    let second = qnet_api::ApiServer::new(node, ApiConfig::default(), &registry);
    assert!(matches!(second, Err(qnet_api::ApiError::Metrics(_))));
}

#[tokio::test]
async fn slow_service_call_answers_503_timeout() {
    let config = ApiConfig {
        request_timeout: Duration::from_millis(100),
        ..ApiConfig::default()
    };
    let h = Harness::start(config).await;
    h.node.slow_peers.store(true, Ordering::SeqCst);
    let (s, b) = h.get("/v1/peers").await;
    assert_eq!(s, 503);
    assert_error(&b, "timeout");
    // Other routes are not held up by the stuck call.
    assert_eq!(h.get("/v1/status").await.0, 200);
    h.node.slow_peers.store(false, Ordering::SeqCst);
    h.shutdown().await;
}

#[tokio::test]
async fn tx_send_over_websocket_shares_the_rate_limit() {
    let config = ApiConfig {
        tx_rate_limit: Some(RateLimit {
            per_second: 1,
            burst: 1,
        }),
        ..ApiConfig::default()
    };
    let h = Harness::start(config).await;
    let mut ws = h.ws().await;
    let mut code = None;
    for id in 0..20 {
        ws.send(json!({"jsonrpc": "2.0", "id": id, "method": "tx_send", "params": ["01"]}))
            .await;
        let reply = ws.recv().await;
        if let Some(c) = reply["error"]["code"].as_i64() {
            code = Some(c);
            break;
        }
        assert_eq!(reply["result"], SUBMITTED_HASH);
    }
    assert_eq!(code, Some(-32002));
    h.shutdown().await;
}

/// Connections that never finish their headers (slowloris) are closed after the header read
/// timeout, and connections over the limit are closed at once; the API keeps answering.
#[tokio::test]
async fn slow_and_surplus_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = ApiConfig {
        header_read_timeout: Duration::from_millis(500),
        max_connections: 4,
        ..ApiConfig::default()
    };
    let h = Harness::start(config).await;
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(h.addr).await.unwrap();
        s.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    // a fourth holds the last slot; a fifth is over the limit and closed without an answer
    let _fourth = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fifth = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let _ = fifth
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), fifth.read(&mut buf))
        .await
        .expect("surplus connection closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "surplus connection got an answer");
    // the slow ones keep trickling but are cut at the header timeout
    for s in &mut slow {
        let _ = s.write_all(b"a").await;
    }
    for s in &mut slow {
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "slow connection still open");
    }
    drop(_fourth);
    let served = async {
        loop {
            if let Ok(r) = h.http.get(h.url("/health/live")).send().await {
                return r.status().as_u16();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let status = tokio::time::timeout(Duration::from_secs(5), served).await;
    assert_eq!(status.ok(), Some(200));
    h.shutdown().await;
}

#[tokio::test]
async fn ui_page_and_assets_are_static_with_a_strict_policy() {
    let h = Harness::start(ApiConfig::default()).await;
    for (path, content_type, needle) in [
        (
            "/ui",
            "text/html; charset=utf-8",
            "<script src=\"/ui/app.js\"",
        ),
        (
            "/ui/app.js",
            "text/javascript; charset=utf-8",
            "chain_subscribeNewHeads",
        ),
        ("/ui/app.css", "text/css; charset=utf-8", ".regions"),
        ("/ui/icon.svg", "image/svg+xml", "<svg"),
    ] {
        let resp = h.http.get(h.url(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let headers = resp.headers().clone();
        assert_eq!(headers["content-type"], content_type, "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(
            headers["content-security-policy"],
            qnet_api::ui::CONTENT_SECURITY_POLICY,
            "{path}"
        );
        let body = resp.text().await.unwrap();
        assert!(body.contains(needle), "{path} lacks {needle}");
    }
    let policy = qnet_api::ui::CONTENT_SECURITY_POLICY;
    assert!(policy.starts_with("default-src 'none';"));
    assert!(!policy.contains("unsafe"), "{policy}");
    let (status, body) = h.get("/ui/nothing-here").await;
    assert_eq!(status, 404);
    assert_error(&body, "not_found");
    let metrics = h.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "qnet_http_requests_total{route=\"/ui\",status=\"200\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "qnet_http_requests_total{route=\"/ui/app.js\",status=\"200\"}"
        ),
        1.0
    );
    h.shutdown().await;
}

/// CORS: with `cors_origins` set, a preflight from a listed origin is answered 204 with the
/// allowed origin, methods and headers (REST and the JSON-RPC endpoint alike), a preflight
/// from another origin is a 403 error, and answers to allowed origins carry the origin; by
/// default no CORS header is sent.
#[tokio::test]
async fn cors_preflight_allows_listed_origins_only() {
    let config = ApiConfig {
        cors_origins: CorsOrigins::parse("https://wallet.example").unwrap(),
        ..ApiConfig::default()
    };
    let h = Harness::start(config).await;
    let preflight = |path: &'static str, origin: &'static str| {
        h.http
            .request(reqwest::Method::OPTIONS, h.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    for path in ["/", "/v1/txs"] {
        let resp = preflight(path, "https://wallet.example").await.unwrap();
        assert_eq!(resp.status(), 204, "{path}");
        let hd = resp.headers();
        assert_eq!(hd["access-control-allow-origin"], "https://wallet.example");
        assert!(hd["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST"));
        assert_eq!(hd["access-control-allow-headers"], "content-type");
    }
    let resp = preflight("/", "https://evil.example").await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    assert_error(&resp.json().await.unwrap(), "cors_refused");

    let get = |origin: &'static str| {
        h.http
            .get(h.url("/v1/status"))
            .header("origin", origin)
            .send()
    };
    let resp = get("https://wallet.example").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://wallet.example"
    );
    let resp = get("https://evil.example").await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());

    let plain = Harness::start(ApiConfig::default()).await;
    let resp = plain
        .http
        .get(plain.url("/v1/status"))
        .header("origin", "https://wallet.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}
