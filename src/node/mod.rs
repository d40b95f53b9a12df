//! Node wiring: opens the store and key, binds the ports, joins membership, starts the
//! data plane, the monitors and the API, and shuts all of it down in order.

pub mod chain;
pub mod decisions;
pub mod peers;
pub mod persist;
pub mod seeds;
pub mod service;
pub mod sync;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use qnet_storage::{StorageError, Store};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::clock::SharedClock;
use crate::config::NodeConfig;
use crate::identity::{Identity, KeyError, KEY_FILE};
use crate::membership::admission::Refusal;
use crate::membership::{Membership, MembershipError, MembershipParams, MembershipView};
use crate::metrics::{Metrics, CLUSTER_BRIDGE, CLUSTER_REGIONAL};
use crate::net::{self, LocalInfo};
use persist::SledMembershipStore;

/// Rounds of bootstrap requests before the node starts; later rounds run in the background.
const BOOTSTRAP_ATTEMPTS: u32 = 3;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The data dir could not be created.
    #[error("cannot create data dir {path}: {reason}")]
    DataDir {
        /// Path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The store could not be opened (e.g. locked by another process).
    #[error("{0}")]
    Storage(#[from] StorageError),
    /// The key file is unusable.
    #[error("{0}")]
    Key(#[from] KeyError),
    /// A port could not be bound.
    #[error("address {addr} is not available ({reason}); choose another with {flag}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Flag to change it.
        flag: &'static str,
        /// Why.
        reason: String,
    },
    /// Gossip could not start.
    #[error("{0}")]
    Membership(#[from] MembershipError),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The API server could not be built.
    #[error("api: {0}")]
    Api(String),
    /// The chain spec or the chain data is unusable.
    #[error("chain: {0}")]
    Chain(String),
}

/// State shared by the node's tasks and its API.
pub struct NodeShared {
    /// The node's configuration.
    pub config: NodeConfig,
    /// The node's identity.
    pub identity: Identity,
    /// Chain id.
    pub chain_id: String,
    /// The store.
    pub store: Arc<Store>,
    /// Metrics.
    pub metrics: Metrics,
    /// Clock.
    pub clock: SharedClock,
    /// Latest membership view.
    pub view: watch::Receiver<Arc<MembershipView>>,
    /// Whether membership has joined.
    pub joined: watch::Receiver<bool>,
    /// Set when shutdown begins.
    pub stopping: AtomicBool,
    /// Address the API listens on.
    pub api_addr: SocketAddr,
    /// Routing decision in force.
    pub routing: RwLock<crate::decision::RoutingState>,
    /// Failover monitor state.
    pub failover: RwLock<crate::decision::FailoverStatus>,
    /// Peers this node has an open data-plane connection to (written by the peer manager).
    pub open_links: RwLock<std::collections::BTreeSet<crate::identity::NodeId>>,
    /// New chain heads, for API subscribers.
    pub heads: tokio::sync::broadcast::Sender<qnet_api::dto::HeadDto>,
    /// The chain runtime.
    pub chain: Arc<chain::ChainRuntime>,
}

impl NodeShared {
    /// Ready: joined, synced and not shutting down.
    pub fn ready(&self) -> bool {
        *self.joined.borrow() && !self.chain.syncing() && !self.stopping.load(Ordering::SeqCst)
    }
}

/// A started node.
pub struct RunningNode {
    shared: Arc<NodeShared>,
    membership: Option<Arc<Membership>>,
    head_announcer: Option<JoinHandle<()>>,
    stop_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningNode {
    /// The API address actually bound.
    pub fn api_addr(&self) -> SocketAddr {
        self.shared.api_addr
    }

    /// Shared state, for tests and the simulator.
    pub fn shared(&self) -> &Arc<NodeShared> {
        &self.shared
    }

    /// Graceful shutdown: not ready, leave the cluster, stop tasks, flush the store.
    pub async fn shutdown(mut self) {
        info!("shutting down");
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.metrics.ready.set(0);
        if let Some(task) = self.head_announcer.take() {
            task.abort();
            let _ = task.await;
        }
        if let Some(m) = self.membership.take() {
            m.leave().await;
        }
        let _ = self.stop_tx.send(true);
        for t in self.tasks.drain(..) {
            if tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .is_err()
            {
                warn!("a task did not stop in time");
            }
        }
        if let Err(e) = self.shared.store.flush() {
            warn!(error = %e, "store flush failed");
        }
        info!("stopped");
    }
}

fn bind_error(addr: SocketAddr, flag: &'static str) -> impl Fn(std::io::Error) -> NodeError {
    move |e| NodeError::Bind {
        addr,
        flag,
        reason: e.to_string().to_lowercase(),
    }
}

fn bind_tcp(addr: SocketAddr, flag: &'static str) -> Result<TcpListener, NodeError> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(bind_error(addr, flag))?;
    socket.set_reuseaddr(true).map_err(bind_error(addr, flag))?;
    socket.bind(addr).map_err(bind_error(addr, flag))?;
    socket.listen(1024).map_err(bind_error(addr, flag))
}

/// Resolves the chain spec while the API port answers "starting" (live, not ready), so a node
/// waiting for its bootstrap peers is visibly alive; hands the listener back afterwards.
async fn resolve_spec_serving(
    config: &NodeConfig,
    store: &Store,
    identity: &Identity,
    now_ms: u64,
    api_listener: TcpListener,
) -> Result<(crate::chain::spec::ChainSpec, TcpListener), NodeError> {
    let rpc = config.rpc_addr;
    let listener = api_listener
        .into_std()
        .map_err(bind_error(rpc, "--rpc-addr"))?;
    let interim = listener
        .try_clone()
        .and_then(TcpListener::from_std)
        .map_err(bind_error(rpc, "--rpc-addr"))?;
    let api_listener = TcpListener::from_std(listener).map_err(bind_error(rpc, "--rpc-addr"))?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(qnet_api::starting::serve_starting(
        interim,
        "waiting for a bootstrap peer's chain spec".into(),
        async {
            let _ = done_rx.await;
        },
    ));
    let spec = chain::resolve_spec(config, store, identity, now_ms).await;
    let _ = done_tx.send(());
    if let Ok(Err(e)) = server.await {
        warn!(error = %e, "starting api server failed");
    }
    Ok((spec?, api_listener))
}

/// Starts a node.
pub async fn start(config: NodeConfig, clock: SharedClock) -> Result<RunningNode, NodeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| NodeError::DataDir {
        path: config.data_dir.clone(),
        reason: e.to_string().to_lowercase(),
    })?;
    let store = Arc::new(Store::open(&config.data_dir.join("db"))?);
    let identity = Identity::load_or_create(&config.data_dir.join(KEY_FILE))?;
    let metrics = Metrics::new()?;
    metrics
        .info
        .with_label_values(&[
            identity.node_id().as_str(),
            config.node_type.as_str(),
            config.region.as_str(),
            env!("CARGO_PKG_VERSION"),
        ])
        .set(1.0);
    metrics.start_time.set(clock.now_ms() as f64 / 1000.0);
    // Every refusal series of both clusters exists from the start (at 0), before the node
    // ever joins the bridge cluster. The wiring does it because metrics, a leaf, knows no
    // membership types.
    for cluster in [CLUSTER_REGIONAL, CLUSTER_BRIDGE] {
        for reason in Refusal::ALL {
            metrics
                .gossip_digests_refused
                .with_label_values(&[cluster, reason.as_str()]);
        }
    }

    let api_listener = bind_tcp(config.rpc_addr, "--rpc-addr")?;
    let api_addr = api_listener
        .local_addr()
        .map_err(bind_error(config.rpc_addr, "--rpc-addr"))?;
    let p2p_listener = bind_tcp(config.p2p_addr, "--p2p-addr")?;

    let (spec, api_listener) =
        resolve_spec_serving(&config, &store, &identity, clock.now_ms(), api_listener).await?;
    let heads = tokio::sync::broadcast::channel(256).0;
    let chain_runtime = Arc::new(
        chain::ChainRuntime::open(
            (*store).clone(),
            spec.clone(),
            &identity,
            config.enable_microblocks,
            metrics.chain.clone(),
            clock.clone(),
            heads.clone(),
        )
        .map_err(|e| NodeError::Chain(e.to_string()))?,
    );
    let chain_id = spec.chain_id.clone();
    let local = LocalInfo {
        identity: identity.clone(),
        chain_id: chain_id.clone(),
        genesis: chain_runtime.genesis_hash(),
        spec_json: spec.to_json(),
    };
    info!(
        chain_id = %chain_id,
        genesis = %crate::identity::to_hex(&chain_runtime.genesis_hash()),
        height = chain_runtime.head().height,
        producers = spec.producers.len(),
        "chain opened"
    );
    let membership_store = Arc::new(SledMembershipStore::new(store.clone()));
    let (region_seeds, bridge_seeds) = seeds::gather(
        &config,
        &local,
        membership_store.as_ref(),
        BOOTSTRAP_ATTEMPTS,
    )
    .await;

    let expect_peers =
        !config.bootstrap_peers.is_empty() || !region_seeds.is_empty() || !bridge_seeds.is_empty();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let membership = if config.node_type.gossips() {
        Some(Arc::new(
            Membership::start(MembershipParams {
                identity: identity.clone(),
                region: config.region.clone(),
                node_type: config.node_type,
                chain_id: chain_id.clone(),
                bind_addr: config.p2p_addr,
                advertise_addr: config.advertise_addr,
                config: config.membership.clone(),
                retention: config.monitor.retention_window,
                region_seeds,
                bridge_seeds,
                expect_peers,
                store: membership_store,
                metrics: metrics.clone(),
                clock: clock.clone(),
                transport: crate::membership::transport::udp(),
            })
            .await?,
        ))
    } else {
        None
    };
    let (view, joined) = match &membership {
        Some(m) => (m.subscribe(), m.joined_receiver()),
        None => {
            let v = MembershipView::empty(identity.node_id().clone(), config.region.clone());
            let (_tx, view) = watch::channel(Arc::new(v));
            let (_jtx, joined) = watch::channel(true);
            (view, joined)
        }
    };
    let now_ms = clock.now_ms();
    let shared = Arc::new(NodeShared {
        config,
        identity,
        chain_id,
        store,
        metrics: metrics.clone(),
        clock,
        view,
        joined,
        stopping: AtomicBool::new(false),
        api_addr,
        routing: RwLock::new(crate::decision::RoutingState::initial(now_ms)),
        failover: RwLock::new(crate::decision::FailoverStatus::default()),
        open_links: RwLock::new(std::collections::BTreeSet::new()),
        heads,
        chain: chain_runtime.clone(),
    });
    let (hint_tx, hint_rx) = tokio::sync::mpsc::channel(64);
    let peer_manager = Arc::new(peers::PeerManager::new(
        shared.clone(),
        local.clone(),
        hint_tx,
    ));
    tasks.push(tokio::spawn(net::server::serve(
        p2p_listener,
        local.clone(),
        peer_manager.clone(),
        metrics.clone(),
        stop_rx.clone(),
    )));
    tasks.push(tokio::spawn(
        peer_manager
            .clone()
            .run(chain_runtime.subscribe_relay(), stop_rx.clone()),
    ));
    tasks.push(tokio::spawn(sync::run(
        shared.clone(),
        local.clone(),
        peer_manager,
        hint_rx,
        stop_rx.clone(),
    )));
    tasks.push(tokio::spawn(chain::run_producer(
        chain_runtime.clone(),
        stop_rx.clone(),
    )));
    let head_announcer = membership
        .clone()
        .map(|m| tokio::spawn(announce_heads(m, chain_runtime.subscribe_head())));
    if let Some(m) = &membership {
        tasks.push(tokio::spawn(seeds::keep_bootstrapping(
            shared.config.clone(),
            local,
            m.clone(),
            stop_rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(readiness_gauge(
        shared.clone(),
        stop_rx.clone(),
    )));
    tasks.push(tokio::spawn(decisions::run(
        shared.clone(),
        stop_rx.clone(),
    )));
    tasks.push(service::spawn_api(
        api_listener,
        shared.clone(),
        stop_rx.clone(),
    )?);
    info!(
        node_id = %shared.identity.node_id(),
        node_type = %shared.config.node_type,
        region = %shared.config.region,
        p2p = %shared.config.advertise_addr,
        api = %api_addr,
        "node started"
    );
    Ok(RunningNode {
        shared,
        membership,
        head_announcer,
        stop_tx,
        tasks,
    })
}

/// Announces every new head in gossip (the membership handle is released when aborted).
async fn announce_heads(
    membership: Arc<Membership>,
    mut heads: watch::Receiver<crate::chain::block::BlockHeader>,
) {
    loop {
        let head = {
            let h = heads.borrow_and_update();
            crate::membership::Head {
                height: h.height,
                hash: h.hash(),
            }
        };
        membership.set_head(head).await;
        if heads.changed().await.is_err() {
            return;
        }
    }
}

async fn readiness_gauge(shared: Arc<NodeShared>, mut stop: watch::Receiver<bool>) {
    let mut joined = shared.joined.clone();
    loop {
        shared.metrics.ready.set(i64::from(shared.ready()));
        tokio::select! {
            r = joined.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}
