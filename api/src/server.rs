//! Wiring: REST, JSON-RPC, `/metrics` and the `/ui` page on one listener, with limits and
//! metrics layers.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use jsonrpsee::server::{stop_channel, Methods, ServerHandle};
use prometheus::Registry;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::config::ApiConfig;
use crate::cors::cors;
use crate::metrics::{ApiMetrics, UNMATCHED_ROUTE};
use crate::openapi::{openapi_yaml, success_statuses};
use crate::origins::CorsOrigins;
use crate::rate_limit::RateLimiter;
use crate::rest::error::RestError;
use crate::rest::{handlers, routes, AppState};
use crate::rpc::api::{QnetRpcServer, RpcHandler};
use crate::rpc::transport::{rpc_http, rpc_ws, RpcTransport};
use crate::service::NodeService;
use crate::ui;

/// Why the API server could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum ApiError {
    /// The API metrics could not be registered (already registered?).
    #[error("cannot register api metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Two JSON-RPC methods share a name (a bug).
    #[error("cannot register json-rpc methods: {0}")]
    Rpc(#[from] jsonrpsee::core::RegisterMethodError),
    /// The listener failed.
    #[error("api server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The route of JSON-RPC over HTTP (POST) and WebSocket (GET upgrade).
const RPC_ROUTE: &str = "/";

/// A configured API server, ready to serve a listener.
pub struct ApiServer {
    router: Router,
    stop: ServerHandle,
    header_read_timeout: Duration,
    max_connections: usize,
    drain_timeout: Duration,
}

impl ApiServer {
    /// Registers the API metrics on `registry` and builds the routes.
    pub fn new(
        service: Arc<dyn NodeService>,
        config: ApiConfig,
        registry: &Registry,
    ) -> Result<Self, ApiError> {
        let metrics = ApiMetrics::register(registry)?;
        let config = Arc::new(config);
        let limiter = config
            .tx_rate_limit
            .map(|limit| Arc::new(RateLimiter::new(limit, config.rate_limit_max_clients)));
        let rpc = RpcHandler::new(
            Arc::clone(&service),
            Arc::clone(&config),
            limiter.clone(),
            metrics.clone(),
        );
        let mut methods = Methods::new();
        methods.merge(rpc.into_rpc())?;
        let documented = success_statuses();
        let pages = ui::paths().map(|path| (path, 200));
        metrics.precreate(
            methods.method_names(),
            documented
                .iter()
                .map(|(path, status)| (path.as_str(), *status))
                .chain(pages)
                .chain([(RPC_ROUTE, 200)]),
        );
        let (stop_handle, stop) = stop_channel();
        let transport = RpcTransport::new(methods, &config, metrics.clone(), stop_handle);

        let rest = routes(AppState {
            service,
            config: Arc::clone(&config),
            limiter,
            openapi_yaml: openapi_yaml().into(),
        });
        let rpc_routes = Router::new()
            .route(RPC_ROUTE, get(rpc_ws).post(rpc_http))
            .with_state(transport);
        let router = rest
            .merge(rpc_routes)
            .merge(ui::routes())
            .fallback(handlers::not_found)
            .method_not_allowed_fallback(handlers::method_not_allowed)
            .layer(DefaultBodyLimit::max(config.max_body_bytes as usize))
            .layer(middleware::from_fn_with_state(
                config.request_timeout,
                request_timeout,
            ));
        // outside the routes and the limits, so a preflight is answered for every path
        let router = match &config.cors_origins {
            CorsOrigins::None => router,
            origins => router.layer(middleware::from_fn_with_state(
                Arc::new(origins.clone()),
                cors,
            )),
        }
        .layer(middleware::from_fn_with_state(metrics, track_http));
        Ok(Self {
            router,
            stop,
            header_read_timeout: config.header_read_timeout,
            max_connections: config.max_connections as usize,
            drain_timeout: config.request_timeout,
        })
    }

    /// Serves `listener` until `shutdown` resolves, then closes WebSockets and drains requests.
    ///
    /// Each connection gets the header read timeout (slowloris) and counts against the
    /// connection limit until it closes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ApiError> {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "api server listening");
        }
        // HTTP/1.1 only, as before: no unbounded HTTP/2 surface
        let mut builder = Builder::new(TokioExecutor::new()).http1_only();
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout);
        let permits = Arc::new(Semaphore::new(self.max_connections));
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = &mut shutdown => break,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // out of file descriptors and the like: back off instead of spinning
                    tracing::warn!(error = %e, "api accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                tracing::debug!(%peer, "api connection limit reached");
                continue;
            };
            let service = self
                .router
                .clone()
                .map_request(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req
                });
            let conn = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(service),
            );
            let conn = graceful.watch(conn.into_owned());
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = conn.await {
                    tracing::trace!(error = %e, "api connection ended with an error");
                }
            });
        }
        // stop() fails only when already stopped; nothing left to do then.
        let _ = self.stop.stop();
        if tokio::time::timeout(self.drain_timeout, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::debug!("api connections still open after the drain timeout");
        }
        Ok(())
    }
}

/// Serves REST, JSON-RPC (HTTP and WebSocket) and `/metrics` on `listener` until `shutdown`.
///
/// Metrics are registered on `registry` before the returned future is first polled, so the
/// future borrows nothing and can be spawned.
pub fn serve(
    listener: TcpListener,
    service: Arc<dyn NodeService>,
    config: ApiConfig,
    registry: &Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = Result<(), ApiError>> + Send + 'static {
    let server = ApiServer::new(service, config, registry);
    async move { server?.serve(listener, shutdown).await }
}

/// Answers 503 `timeout` when a request takes longer than the configured timeout.
async fn request_timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => RestError::timeout().into_response(),
    }
}

/// Counts requests by matched route template (never the raw path) and status.
async fn track_http(State(metrics): State<ApiMetrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_string());
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let client = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    metrics.observe_http(&route, status, elapsed);
    // Access log: one debug line per request (`RUST_LOG=qnet_api=debug`).
    tracing::debug!(
        target: "qnet_api::access",
        %client,
        %method,
        %path,
        status,
        ms = elapsed.as_secs_f64() * 1e3,
        "http request"
    );
    response
}
