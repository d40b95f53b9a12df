//! REST error responses: `{"error": {"code", "message"}}` with the matching status.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::dto::ErrorBody;
use crate::service::ServiceError;

/// Stable error codes of the REST API.
pub mod code {
    /// Malformed request (bad path, query or JSON syntax).
    pub const BAD_REQUEST: &str = "bad_request";
    /// A parameter has the right type but a wrong value.
    pub const INVALID_PARAMS: &str = "invalid_params";
    /// No such route or object.
    pub const NOT_FOUND: &str = "not_found";
    /// The route exists but not with this HTTP method.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// The body is larger than the limit.
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// The body is not `application/json`.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    /// The JSON body does not have the expected shape.
    pub const UNPROCESSABLE: &str = "unprocessable_entity";
    /// Too many transactions from this client.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// The node is not joined or not synced.
    pub const NOT_READY: &str = "not_ready";
    /// The node cannot answer now.
    pub const UNAVAILABLE: &str = "unavailable";
    /// The request took longer than the request timeout.
    pub const TIMEOUT: &str = "timeout";
    /// A failure inside the node.
    pub const INTERNAL: &str = "internal";
    /// A CORS preflight from an origin that is not allowed (`--api-cors-origins`).
    pub const CORS_REFUSED: &str = "cors_refused";
}

/// An error answer of the REST API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestError {
    status: StatusCode,
    code: String,
    message: String,
}

impl RestError {
    /// An error with an explicit status, code and message.
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    /// 400 with code `invalid_params`.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code::INVALID_PARAMS, message)
    }

    /// 404 with code `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code::NOT_FOUND, message)
    }

    /// 405 with code `method_not_allowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            code::METHOD_NOT_ALLOWED,
            "method not allowed on this route",
        )
    }

    /// 429 with code `rate_limited`.
    pub fn rate_limited() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            code::RATE_LIMITED,
            "too many transactions, retry later",
        )
    }

    /// 503 with code `not_ready`.
    pub fn not_ready() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::NOT_READY,
            "node is not joined or not synced",
        )
    }

    /// 503 with code `timeout`.
    pub fn timeout() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::TIMEOUT,
            "request timed out",
        )
    }

    /// 500 with code `internal`.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL,
            "internal error",
        )
    }
}

impl From<ServiceError> for RestError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::InvalidParams(msg) => Self::invalid_params(msg),
            ServiceError::Rejected { code, message } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            ServiceError::Unavailable(msg) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, code::UNAVAILABLE, msg)
            }
            ServiceError::Internal(msg) => {
                tracing::error!(error = %msg, "rest request failed");
                Self::internal()
            }
        }
    }
}

/// A code for an axum rejection, chosen by its status.
fn rejection_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => code::PAYLOAD_TOO_LARGE,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => code::UNSUPPORTED_MEDIA_TYPE,
        StatusCode::UNPROCESSABLE_ENTITY => code::UNPROCESSABLE,
        s if s.is_server_error() => code::INTERNAL,
        _ => code::BAD_REQUEST,
    }
}

macro_rules! from_rejection {
    ($rejection:ty) => {
        impl From<$rejection> for RestError {
            fn from(rejection: $rejection) -> Self {
                let status = rejection.status();
                Self::new(status, rejection_code(status), rejection.body_text())
            }
        }
    };
}

from_rejection!(JsonRejection);
from_rejection!(PathRejection);
from_rejection!(QueryRejection);

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody::new(self.code, self.message));
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            (self.status, [(header::RETRY_AFTER, "1")], body).into_response()
        } else {
            (self.status, body).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_errors_map_to_statuses() {
        let rejected = RestError::from(ServiceError::Rejected {
            code: "bad_signature".into(),
            message: "bad signature".into(),
        });
        assert_eq!(
            rejected,
            RestError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_signature",
                "bad signature"
            )
        );
        let invalid = RestError::from(ServiceError::InvalidParams("bad address".into()));
        assert_eq!(invalid, RestError::invalid_params("bad address"));
        let unavailable = RestError::from(ServiceError::Unavailable("syncing".into()));
        assert_eq!(
            unavailable,
            RestError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code::UNAVAILABLE,
                "syncing"
            )
        );
        let internal = RestError::from(ServiceError::Internal("secret path".into()));
        assert_eq!(internal, RestError::internal());
    }

    #[test]
    fn too_many_requests_carries_retry_after() {
        let response = RestError::rate_limited().into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn rejection_codes_follow_status() {
        assert_eq!(
            rejection_code(StatusCode::PAYLOAD_TOO_LARGE),
            code::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            rejection_code(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            code::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            rejection_code(StatusCode::UNPROCESSABLE_ENTITY),
            code::UNPROCESSABLE
        );
        assert_eq!(
            rejection_code(StatusCode::INTERNAL_SERVER_ERROR),
            code::INTERNAL
        );
        assert_eq!(rejection_code(StatusCode::BAD_REQUEST), code::BAD_REQUEST);
    }
}
