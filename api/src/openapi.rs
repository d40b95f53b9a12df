//! The OpenAPI document of the REST API, generated from the handlers and DTOs.

use utoipa::OpenApi;

use crate::dto;
use crate::rest::handlers;
use crate::rpc::transport;

/// Path of the checked-in document, relative to the workspace root.
pub const OPENAPI_FILE: &str = "openapi.yaml";
/// Command that regenerates the checked-in document.
pub const REGENERATE_COMMAND: &str = "QNET_UPDATE_OPENAPI=1 cargo test -p qnet-api openapi";

/// The OpenAPI description of every route.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "qnet-node API",
        description = "REST for operators and JSON-RPC 2.0 for wallets, on one port. \
            Errors are `{\"error\": {\"code\", \"message\"}}`."
    ),
    paths(
        handlers::health_live,
        handlers::health_ready,
        handlers::status,
        handlers::peers,
        handlers::regions,
        handlers::topology,
        handlers::failover,
        handlers::latest_block,
        handlers::block_by_height,
        handlers::blocks,
        handlers::block_by_hash,
        handlers::tx,
        handlers::submit_tx,
        handlers::mempool,
        handlers::chain,
        handlers::account,
        handlers::metrics,
        handlers::openapi,
        transport::rpc_http,
        transport::rpc_ws,
    ),
    components(schemas(
        dto::StatusDto,
        dto::HeadDto,
        dto::PeersDto,
        dto::PeerDto,
        dto::RegionsDto,
        dto::RegionDto,
        dto::TopologyDto,
        dto::LinkDto,
        dto::LinkKind,
        dto::LinkState,
        dto::FailoverDto,
        dto::FailoverEventDto,
        dto::BlockDto,
        dto::BlockTxs,
        dto::BlocksDto,
        dto::TxDto,
        dto::TxStatus,
        dto::PendingTxsDto,
        dto::ChainSpecDto,
        dto::ScheduledSlotDto,
        dto::AccountDto,
        dto::SubmitTxDto,
        dto::TxHashDto,
        dto::HealthDto,
        dto::ErrorBody,
        dto::ErrorDetail,
    )),
    tags(
        (name = "health", description = "liveness and readiness probes"),
        (name = "node", description = "this node"),
        (name = "network", description = "membership, regions, routing, failover"),
        (name = "chain", description = "blocks, transactions, accounts"),
        (name = "json-rpc", description = "JSON-RPC 2.0 endpoint, see api/RPC.md"),
    )
)]
pub struct ApiDoc;

/// The OpenAPI document as YAML.
pub fn openapi_yaml() -> String {
    ApiDoc::openapi()
        .to_yaml()
        .unwrap_or_else(|e| format!("# openapi generation failed: {e}\n"))
}

/// Every documented route template with the status each of its operations answers on
/// success (its lowest documented 2xx): the label sets a fresh server's request counters
/// start at, read from the contract so that a new route cannot be left out.
pub fn success_statuses() -> Vec<(String, u16)> {
    let doc = ApiDoc::openapi();
    let mut out = Vec::new();
    for (path, item) in &doc.paths.paths {
        let operations = [&item.get, &item.put, &item.post, &item.delete, &item.patch];
        for op in operations.into_iter().flatten() {
            let success = op
                .responses
                .responses
                .keys()
                .filter_map(|code| code.parse::<u16>().ok())
                .filter(|code| (200..300).contains(code))
                .min();
            if let Some(status) = success {
                out.push((path.clone(), status));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_matches_checked_in_file() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(OPENAPI_FILE);
        let generated = openapi_yaml();
        if std::env::var_os("QNET_UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).unwrap();
            return;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "{OPENAPI_FILE} at the workspace root is out of date with the code; \
             regenerate it with `{REGENERATE_COMMAND}`"
        );
    }

    #[test]
    fn openapi_documents_every_route() {
        let doc = ApiDoc::openapi();
        for path in [
            "/health/live",
            "/health/ready",
            "/v1/status",
            "/v1/peers",
            "/v1/regions",
            "/v1/topology",
            "/v1/failover",
            "/v1/blocks",
            "/v1/blocks/latest",
            "/v1/blocks/{height}",
            "/v1/blocks/hash/{hash}",
            "/v1/txs",
            "/v1/txs/{hash}",
            "/v1/accounts/{address}",
            "/metrics",
            "/openapi.yaml",
            "/",
        ] {
            assert!(
                doc.paths.paths.contains_key(path),
                "undocumented route {path}"
            );
        }
        let yaml = openapi_yaml();
        for status in [
            "'400'", "'404'", "'413'", "'415'", "'422'", "'429'", "'503'",
        ] {
            assert!(yaml.contains(status), "no route documents status {status}");
        }
    }
}
