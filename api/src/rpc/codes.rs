//! JSON-RPC error codes: the standard ones, those raised by jsonrpsee, and our own.

use jsonrpsee::types::ErrorObjectOwned;

use crate::service::ServiceError;

/// Invalid JSON was received.
pub const PARSE_ERROR: i32 = -32700;
/// The JSON sent is not a valid request object (also: an empty batch).
pub const INVALID_REQUEST: i32 = -32600;
/// The method does not exist.
pub const METHOD_NOT_FOUND: i32 = -32601;
/// Invalid method parameters.
pub const INVALID_PARAMS: i32 = -32602;
/// Internal error.
pub const INTERNAL_ERROR: i32 = -32603;
/// The node refused the transaction; `data.code` holds the reason.
pub const TX_REJECTED: i32 = -32001;
/// Too many transactions from this client; retry later.
pub const RATE_LIMITED: i32 = -32002;
/// The node cannot answer now (e.g. syncing); retry later.
pub const UNAVAILABLE: i32 = -32003;
/// Too many subscriptions on this connection (raised by jsonrpsee).
pub const TOO_MANY_SUBSCRIPTIONS: i32 = -32006;
/// The request is larger than the body limit (raised by jsonrpsee).
pub const OVERSIZED_REQUEST: i32 = -32007;
/// The response is larger than the response limit (raised by jsonrpsee).
pub const OVERSIZED_RESPONSE: i32 = -32008;
/// Too many WebSocket connections.
pub const SERVER_BUSY: i32 = -32009;
/// The batch has more calls than allowed (raised by jsonrpsee).
pub const BATCH_TOO_LARGE: i32 = -32010;

/// Every error code a client may see: (code, name, meaning). `RPC.md` documents the same table.
pub const ERROR_CODES: &[(i32, &str, &str)] = &[
    (PARSE_ERROR, "parse_error", "invalid JSON"),
    (
        INVALID_REQUEST,
        "invalid_request",
        "not a JSON-RPC 2.0 request, or an empty batch",
    ),
    (METHOD_NOT_FOUND, "method_not_found", "no such method"),
    (
        INVALID_PARAMS,
        "invalid_params",
        "wrong parameter count, type or value",
    ),
    (
        INTERNAL_ERROR,
        "internal_error",
        "the node failed; see its log",
    ),
    (
        TX_REJECTED,
        "tx_rejected",
        "the node refused the transaction; data.code holds the reason",
    ),
    (
        RATE_LIMITED,
        "rate_limited",
        "too many transactions from this client",
    ),
    (UNAVAILABLE, "unavailable", "the node cannot answer now"),
    (
        TOO_MANY_SUBSCRIPTIONS,
        "too_many_subscriptions",
        "subscription limit of the connection reached",
    ),
    (
        OVERSIZED_REQUEST,
        "oversized_request",
        "request larger than the body limit",
    ),
    (
        OVERSIZED_RESPONSE,
        "oversized_response",
        "response larger than the response limit",
    ),
    (
        SERVER_BUSY,
        "server_busy",
        "WebSocket connection limit reached",
    ),
    (
        BATCH_TOO_LARGE,
        "batch_too_large",
        "batch longer than the batch limit",
    ),
];

/// The JSON-RPC error for a service failure; internal details are logged, not sent.
pub fn service_error(err: ServiceError) -> ErrorObjectOwned {
    match err {
        ServiceError::InvalidParams(msg) => {
            ErrorObjectOwned::owned(INVALID_PARAMS, msg, None::<()>)
        }
        ServiceError::Rejected { code, message } => ErrorObjectOwned::owned(
            TX_REJECTED,
            message,
            Some(serde_json::json!({ "code": code })),
        ),
        ServiceError::Unavailable(msg) => ErrorObjectOwned::owned(UNAVAILABLE, msg, None::<()>),
        ServiceError::Internal(msg) => {
            tracing::error!(error = %msg, "rpc call failed");
            internal()
        }
    }
}

/// Invalid params with a message.
pub fn invalid_params(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(INVALID_PARAMS, msg.into(), None::<()>)
}

/// The rate-limited error.
pub fn rate_limited() -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        RATE_LIMITED,
        "too many transactions, retry later",
        None::<()>,
    )
}

/// The internal error.
pub fn internal() -> ErrorObjectOwned {
    ErrorObjectOwned::owned(INTERNAL_ERROR, "internal error", None::<()>)
}

/// The `outcome` label of a JSON-RPC response: `ok` or a bounded name for its error code.
pub fn outcome(error_code: Option<i32>) -> &'static str {
    match error_code {
        None => "ok",
        Some(PARSE_ERROR) => "parse_error",
        Some(INVALID_REQUEST) => "invalid_request",
        Some(METHOD_NOT_FOUND) => "method_not_found",
        Some(INVALID_PARAMS) => "invalid_params",
        Some(INTERNAL_ERROR) => "internal_error",
        Some(TX_REJECTED) => "tx_rejected",
        Some(RATE_LIMITED) => "rate_limited",
        Some(UNAVAILABLE) => "unavailable",
        Some(TOO_MANY_SUBSCRIPTIONS) => "too_many_subscriptions",
        Some(_) => "other_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_match_jsonrpsee() {
        let mut seen: Vec<i32> = ERROR_CODES.iter().map(|c| c.0).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), ERROR_CODES.len());
        use jsonrpsee::types::error as j;
        assert_eq!(TOO_MANY_SUBSCRIPTIONS, j::TOO_MANY_SUBSCRIPTIONS_CODE);
        assert_eq!(OVERSIZED_REQUEST, j::OVERSIZED_REQUEST_CODE);
        assert_eq!(OVERSIZED_RESPONSE, j::OVERSIZED_RESPONSE_CODE);
        assert_eq!(SERVER_BUSY, j::SERVER_IS_BUSY_CODE);
        assert_eq!(BATCH_TOO_LARGE, j::TOO_BIG_BATCH_REQUEST_CODE);
    }

    #[test]
    fn rpc_md_lists_every_code() {
        let doc = include_str!("../../RPC.md");
        for (code, name, _) in ERROR_CODES {
            let row = format!("| {code} | `{name}` |");
            assert!(doc.contains(&row), "RPC.md lacks row {row}");
        }
    }

    #[test]
    fn service_errors_map_to_codes() {
        let e = service_error(ServiceError::Rejected {
            code: "nonce_too_low".into(),
            message: "nonce too low".into(),
        });
        assert_eq!(e.code(), TX_REJECTED);
        assert_eq!(e.data().unwrap().get(), r#"{"code":"nonce_too_low"}"#);
        assert_eq!(
            service_error(ServiceError::InvalidParams("x".into())).code(),
            INVALID_PARAMS
        );
        assert_eq!(
            service_error(ServiceError::Unavailable("x".into())).code(),
            UNAVAILABLE
        );
        let internal = service_error(ServiceError::Internal("disk on fire".into()));
        assert_eq!(internal.code(), INTERNAL_ERROR);
        assert_eq!(internal.message(), "internal error");
    }

    #[test]
    fn outcome_labels_are_bounded() {
        assert_eq!(outcome(None), "ok");
        assert_eq!(outcome(Some(-32601)), "method_not_found");
        assert_eq!(outcome(Some(-32001)), "tx_rejected");
        assert_eq!(outcome(Some(-1234)), "other_error");
    }
}
