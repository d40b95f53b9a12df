//! Prometheus metrics of the API, registered on the node's registry.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

/// Route label for requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";
/// Method label for JSON-RPC calls to a method that does not exist.
pub const UNKNOWN_METHOD: &str = "unknown";
/// Outcome label of a JSON-RPC call that succeeded.
const OUTCOME_OK: &str = "ok";
/// Outcome label of a call to a method that does not exist.
const OUTCOME_METHOD_NOT_FOUND: &str = "method_not_found";
/// Status of a request that matched no route.
const STATUS_NOT_FOUND: u16 = 404;

/// Counters, histograms and gauges of the API server.
#[derive(Debug, Clone)]
pub struct ApiMetrics {
    rpc_requests: IntCounterVec,
    rpc_duration: HistogramVec,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    ws_subscriptions: IntGauge,
    ws_connections: IntGauge,
}

impl ApiMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let rpc_requests = IntCounterVec::new(
            Opts::new(
                "qnet_rpc_requests_total",
                "JSON-RPC calls by method and outcome",
            ),
            &["method", "outcome"],
        )?;
        let rpc_duration = HistogramVec::new(
            HistogramOpts::new(
                "qnet_rpc_request_duration_seconds",
                "JSON-RPC call latency by method",
            ),
            &["method"],
        )?;
        let http_requests = IntCounterVec::new(
            Opts::new(
                "qnet_http_requests_total",
                "HTTP requests by route template and status",
            ),
            &["route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "qnet_http_request_duration_seconds",
                "HTTP request latency by route template",
            ),
            &["route"],
        )?;
        let ws_subscriptions = IntGauge::new(
            "qnet_ws_subscriptions",
            "JSON-RPC WebSocket subscriptions open",
        )?;
        let ws_connections =
            IntGauge::new("qnet_ws_connections", "JSON-RPC WebSocket connections open")?;
        registry.register(Box::new(rpc_requests.clone()))?;
        registry.register(Box::new(rpc_duration.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(ws_subscriptions.clone()))?;
        registry.register(Box::new(ws_connections.clone()))?;
        Ok(Self {
            rpc_requests,
            rpc_duration,
            http_requests,
            http_duration,
            ws_subscriptions,
            ws_connections,
        })
    }

    /// Creates at 0 the series the dashboards query before any request, so a fresh node shows
    /// zeros instead of "No data": for every JSON-RPC method in `methods` its call counter
    /// with outcome `ok` and its latency histogram, and for every route template in `routes`
    /// its request counter with the route's success status and its latency histogram.
    ///
    /// Success labels because the request-rate and latency panels sum over every label set;
    /// one error series each (`unknown` method / `method_not_found`, `unmatched` route / 404,
    /// both reachable by any client) so the error panels, which select `outcome!="ok"` and
    /// `status=~"[45].."`, show 0 too without a zero line per method or route.
    pub fn precreate<'m, 'r>(
        &self,
        methods: impl IntoIterator<Item = &'m str>,
        routes: impl IntoIterator<Item = (&'r str, u16)>,
    ) {
        let methods = methods.into_iter().map(|m| (m, OUTCOME_OK));
        for (method, outcome) in methods.chain([(UNKNOWN_METHOD, OUTCOME_METHOD_NOT_FOUND)]) {
            self.rpc_requests.with_label_values(&[method, outcome]);
            self.rpc_duration.with_label_values(&[method]);
        }
        for (route, status) in routes
            .into_iter()
            .chain([(UNMATCHED_ROUTE, STATUS_NOT_FOUND)])
        {
            let status = status.to_string();
            self.http_requests
                .with_label_values(&[route, status.as_str()]);
            self.http_duration.with_label_values(&[route]);
        }
    }

    /// Records one JSON-RPC call.
    pub fn observe_rpc(&self, method: &str, outcome: &str, elapsed: Duration) {
        self.rpc_requests
            .with_label_values(&[method, outcome])
            .inc();
        self.rpc_duration
            .with_label_values(&[method])
            .observe(elapsed.as_secs_f64());
    }

    /// Records one HTTP request.
    pub fn observe_http(&self, route: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        self.http_requests
            .with_label_values(&[route, status.as_str()])
            .inc();
        self.http_duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// A guard counting one open subscription until dropped.
    pub fn subscription_guard(&self) -> GaugeGuard {
        GaugeGuard::new(self.ws_subscriptions.clone())
    }

    /// A guard counting one open WebSocket connection until dropped.
    pub fn connection_guard(&self) -> GaugeGuard {
        GaugeGuard::new(self.ws_connections.clone())
    }
}

/// Increments a gauge on creation and decrements it on drop.
#[derive(Debug)]
pub struct GaugeGuard(IntGauge);

impl GaugeGuard {
    fn new(gauge: IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_every_metric_once() {
        let registry = Registry::new();
        let m = ApiMetrics::register(&registry).unwrap();
        m.observe_rpc("chain_getHead", "ok", Duration::from_millis(1));
        m.observe_http("/v1/status", 200, Duration::from_millis(1));
        let _sub = m.subscription_guard();
        let _conn = m.connection_guard();
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        for name in [
            "qnet_rpc_requests_total",
            "qnet_rpc_request_duration_seconds",
            "qnet_http_requests_total",
            "qnet_http_request_duration_seconds",
            "qnet_ws_subscriptions",
            "qnet_ws_connections",
        ] {
            assert!(names.iter().any(|n| n == name), "missing {name}");
        }
        assert!(ApiMetrics::register(&registry).is_err());
    }

    #[test]
    fn precreated_series_exist_at_zero() {
        let registry = Registry::new();
        let m = ApiMetrics::register(&registry).unwrap();
        m.precreate(["chain_getHead"], [("/v1/txs", 202)]);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        for series in [
            r#"qnet_rpc_requests_total{method="chain_getHead",outcome="ok"} 0"#,
            r#"qnet_rpc_requests_total{method="unknown",outcome="method_not_found"} 0"#,
            r#"qnet_rpc_request_duration_seconds_count{method="chain_getHead"} 0"#,
            r#"qnet_http_requests_total{route="/v1/txs",status="202"} 0"#,
            r#"qnet_http_requests_total{route="unmatched",status="404"} 0"#,
            r#"qnet_http_request_duration_seconds_count{route="/v1/txs"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == series), "missing {series}");
        }
        let counters = text
            .lines()
            .filter(|l| {
                l.starts_with("qnet_rpc_requests_total{")
                    || l.starts_with("qnet_http_requests_total{")
            })
            .count();
        assert_eq!(counters, 4, "no other label sets");
    }

    #[test]
    fn gauge_guard_counts_while_alive() {
        let registry = Registry::new();
        let m = ApiMetrics::register(&registry).unwrap();
        let a = m.subscription_guard();
        let b = m.subscription_guard();
        assert_eq!(m.ws_subscriptions.get(), 2);
        drop(a);
        assert_eq!(m.ws_subscriptions.get(), 1);
        drop(b);
        assert_eq!(m.ws_subscriptions.get(), 0);
    }
}
