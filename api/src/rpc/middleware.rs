//! JSON-RPC middleware counting calls and their latency by method and outcome.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use jsonrpsee::core::server::BatchResponseBuilder;
use jsonrpsee::server::middleware::rpc::{
    Batch, BatchEntry, MethodResponse, Notification, Request, RpcServiceT,
};
use tower::Layer;

use super::codes;
use crate::metrics::{ApiMetrics, UNKNOWN_METHOD};

/// Shared state of the metrics middleware.
#[derive(Debug)]
struct Shared {
    metrics: ApiMetrics,
    methods: HashSet<String>,
    max_response_bytes: usize,
}

impl Shared {
    /// The method label: the name when registered, else [`UNKNOWN_METHOD`] (bounded cardinality).
    fn label<'a>(&'a self, method: &str) -> &'a str {
        self.methods
            .get(method)
            .map(String::as_str)
            .unwrap_or(UNKNOWN_METHOD)
    }
}

/// Layer adding [`RpcMetrics`] to the jsonrpsee service stack.
#[derive(Debug, Clone)]
pub struct RpcMetricsLayer(Arc<Shared>);

impl RpcMetricsLayer {
    /// A layer labelling calls to `methods` by name and all others as unknown.
    pub fn new(
        metrics: ApiMetrics,
        methods: impl IntoIterator<Item = String>,
        max_response_bytes: usize,
    ) -> Self {
        Self(Arc::new(Shared {
            metrics,
            methods: methods.into_iter().collect(),
            max_response_bytes,
        }))
    }
}

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics {
            inner,
            shared: Arc::clone(&self.0),
        }
    }
}

/// Records every call, including each call of a batch.
#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> RpcServiceT for RpcMetrics<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(&self, request: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let inner = self.inner.clone();
        let shared = Arc::clone(&self.shared);
        async move {
            let started = Instant::now();
            let method = shared.label(request.method_name()).to_string();
            let response = inner.call(request).await;
            let outcome = codes::outcome(response.as_error_code());
            let elapsed = started.elapsed();
            shared.metrics.observe_rpc(&method, outcome, elapsed);
            tracing::debug!(
                target: "qnet_api::access",
                %method,
                outcome,
                ms = elapsed.as_secs_f64() * 1e3,
                "json-rpc call"
            );
            response
        }
    }

    // The inner service's batch calls its own `call`, bypassing this layer, so the batch is
    // unrolled here the same way jsonrpsee does it.
    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let this = self.clone();
        async move {
            let mut responses =
                BatchResponseBuilder::new_with_limit(this.shared.max_response_bytes);
            let mut got_notification = false;
            for entry in batch {
                let response = match entry {
                    Ok(BatchEntry::Call(request)) => this.call(request).await,
                    Ok(BatchEntry::Notification(n)) => {
                        got_notification = true;
                        this.inner.notification(n).await;
                        continue;
                    }
                    Err(err) => {
                        let (err, id) = err.into_parts();
                        MethodResponse::error(id, err)
                    }
                };
                if let Err(too_large) = responses.append(response) {
                    return too_large;
                }
            }
            if responses.is_empty() && got_notification {
                MethodResponse::notification()
            } else {
                // An empty batch becomes a single "invalid request" error here.
                MethodResponse::from_batch(responses.finish())
            }
        }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.inner.notification(n)
    }
}
