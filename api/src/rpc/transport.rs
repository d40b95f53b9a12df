//! Serves jsonrpsee (HTTP POST and WebSocket) on the axum route `/`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use jsonrpsee::server::http::content_type_is_json;
use jsonrpsee::server::middleware::rpc::RpcServiceBuilder;
use jsonrpsee::server::{
    ws, BatchRequestConfig, Methods, PingConfig, Server, ServerConfig, StopHandle,
    TowerServiceBuilder,
};
use tokio::sync::Semaphore;
use tower::layer::util::{Identity, Stack};
use tower::Service;

use crate::config::ApiConfig;
use crate::metrics::ApiMetrics;
use crate::rpc::codes;
use crate::rpc::middleware::RpcMetricsLayer;

/// jsonrpsee's own connection cap; WebSockets are bounded by our semaphore instead, and HTTP
/// calls by the request timeout, so this only has to be out of the way.
const JSONRPSEE_CONNECTION_CAP: u32 = 1 << 20;

type RpcStack = Stack<RpcMetricsLayer, Identity>;

/// Everything needed to answer one JSON-RPC HTTP request or WebSocket upgrade.
#[derive(Clone)]
pub struct RpcTransport {
    builder: TowerServiceBuilder<RpcStack, Identity>,
    methods: Methods,
    stop: StopHandle,
    ws_slots: Arc<Semaphore>,
    metrics: ApiMetrics,
    max_body_bytes: usize,
    method_names: Arc<Vec<String>>,
}

impl RpcTransport {
    /// A transport for `methods` with the limits of `config`; `stop` closes WebSockets.
    pub fn new(
        methods: Methods,
        config: &ApiConfig,
        metrics: ApiMetrics,
        stop: StopHandle,
    ) -> Self {
        let server_config = ServerConfig::builder()
            .max_request_body_size(config.max_body_bytes)
            .max_response_body_size(config.max_response_bytes)
            .max_connections(JSONRPSEE_CONNECTION_CAP)
            .max_subscriptions_per_connection(config.max_subscriptions_per_connection)
            .set_batch_request_config(BatchRequestConfig::Limit(config.max_batch_len))
            // Pings find dead peers, so their connection slots come back.
            .enable_ws_ping(PingConfig::new())
            .build();
        let names = methods
            .method_names()
            .map(str::to_string)
            .collect::<Vec<_>>();
        let mut method_names = names.clone();
        method_names.sort();
        let rpc_middleware = RpcServiceBuilder::new().layer(RpcMetricsLayer::new(
            metrics.clone(),
            names,
            config.max_response_bytes as usize,
        ));
        let builder = Server::builder()
            .set_config(server_config)
            .set_rpc_middleware(rpc_middleware)
            .to_service_builder();
        Self {
            builder,
            methods,
            stop,
            ws_slots: Arc::new(Semaphore::new(config.max_ws_connections as usize)),
            metrics,
            max_body_bytes: config.max_body_bytes as usize,
            method_names: Arc::new(method_names),
        }
    }

    async fn handle(&self, request: Request) -> Response {
        let upgrade = ws::is_upgrade_request(&request);
        let request = if upgrade {
            request
        } else {
            match self.screen_http(request).await {
                Ok(request) => request,
                Err(response) => return response,
            }
        };
        if !upgrade {
            if request.method() == Method::GET || request.method() == Method::HEAD {
                return self.describe();
            }
            if request.method() != Method::POST {
                return rpc_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    codes::INVALID_REQUEST,
                    "use POST or a WebSocket upgrade",
                );
            }
            if !content_type_is_json(&request) {
                return rpc_error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    codes::INVALID_REQUEST,
                    "content-type must be application/json",
                );
            }
        }
        let permit = if upgrade {
            match Arc::clone(&self.ws_slots).try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    return rpc_error(
                        StatusCode::TOO_MANY_REQUESTS,
                        codes::SERVER_BUSY,
                        "too many websocket connections",
                    )
                }
            }
        } else {
            None
        };
        // A service per request gives each WebSocket its own connection id, so one client
        // can never address another's subscriptions.
        let mut service = self
            .builder
            .clone()
            .build(self.methods.clone(), self.stop.clone());
        if let Some(permit) = permit {
            let closed = service.on_session_closed();
            let gauge = self.metrics.connection_guard();
            tokio::spawn(async move {
                closed.await;
                drop(gauge);
                drop(permit);
            });
        }
        match service.call(request).await {
            Ok(response) => response.map(Body::new),
            Err(e) => {
                tracing::error!(error = %e, "json-rpc transport failed");
                rpc_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    codes::INTERNAL_ERROR,
                    "internal error",
                )
            }
        }
    }
}

impl RpcTransport {
    /// What a plain `GET /` (a person with curl) gets: how to talk to this endpoint.
    fn describe(&self) -> Response {
        let body = serde_json::json!({
            "service": "qnet-node JSON-RPC 2.0",
            "http": "POST / with Content-Type: application/json",
            "websocket": "upgrade GET / to a WebSocket for chain_subscribeNewHeads",
            "docs": "/openapi.yaml",
            "methods": *self.method_names,
        });
        (StatusCode::OK, Json(body)).into_response()
    }

    /// Checks method, content type and body of an HTTP call before jsonrpsee sees it: JSON that
    /// is neither a request object nor a batch array is an invalid request (-32600, HTTP 200 as
    /// JSON-RPC 2.0 says), not a parse error.
    async fn screen_http(&self, request: Request) -> Result<Request, Response> {
        if request.method() != Method::POST || !content_type_is_json(&request) {
            return Ok(request);
        }
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, self.max_body_bytes)
            .await
            .map_err(|_| {
                rpc_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    codes::OVERSIZED_REQUEST,
                    &format!("request body larger than {} bytes", self.max_body_bytes),
                )
            })?;
        if !is_request_shape(&bytes)
            && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok()
        {
            return Err(rpc_error(
                StatusCode::OK,
                codes::INVALID_REQUEST,
                "invalid request: expected a request object or a batch array",
            ));
        }
        Ok(Request::from_parts(parts, Body::from(bytes)))
    }
}

/// Whether a body starts like a request object or a batch array.
fn is_request_shape(body: &[u8]) -> bool {
    matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{') | Some(b'[')
    )
}

/// A JSON-RPC error object with a null id, for failures before any request is parsed.
fn rpc_error(status: StatusCode, code: i32, message: &str) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "error": { "code": code, "message": message },
        "id": null,
    });
    (status, Json(body)).into_response()
}

/// JSON-RPC 2.0 over HTTP: a request object or a batch array (see `api/RPC.md`).
#[utoipa::path(post, path = "/", tag = "json-rpc",
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "any JSON: a JSON-RPC 2.0 request or batch (at most 50 calls) is answered, \
            anything else gets a JSON-RPC error; see api/RPC.md. The same path also accepts \
            WebSocket upgrades (GET) for subscriptions."),
    responses(
        (status = 200, description = "JSON-RPC response or batch of responses; errors are inside", body = serde_json::Value),
        (status = 400, description = "body is not JSON (error -32700)", body = Object),
        (status = 413, description = "body larger than the limit (error -32007)", body = Object),
        (status = 415, description = "content type is not application/json", body = Object),
        (status = 503, description = "request timed out", body = crate::dto::ErrorBody),
    ))]
pub async fn rpc_http(State(rpc): State<RpcTransport>, request: Request) -> Response {
    rpc.handle(request).await
}

/// JSON-RPC 2.0 over WebSocket (needed for `chain_subscribeNewHeads`); a plain GET describes
/// the endpoint.
#[utoipa::path(get, path = "/", tag = "json-rpc",
    responses(
        (status = 101, description = "switched to WebSocket; then JSON-RPC messages"),
        (status = 200, description = "not a WebSocket upgrade: how to use this endpoint \
            (`service`, `http`, `websocket`, `docs`, `methods`)", body = Object),
        (status = 429, description = "too many WebSocket connections (error -32009)", body = Object),
    ))]
pub async fn rpc_ws(State(rpc): State<RpcTransport>, request: Request) -> Response {
    rpc.handle(request).await
}

#[cfg(test)]
mod tests {
    use super::is_request_shape;

    #[test]
    fn only_objects_and_arrays_look_like_requests() {
        assert!(is_request_shape(b"  {\"jsonrpc\":\"2.0\"}"));
        assert!(is_request_shape(b"\n[1]"));
        assert!(!is_request_shape(b"-1.5"));
        assert!(!is_request_shape(b"\"x\""));
        assert!(!is_request_shape(b"null"));
        assert!(!is_request_shape(b""));
    }
}
