//! Cross-origin access for browser pages (CORS): which origins may call the API, decided by
//! [`CorsOrigins`], and the middleware that answers preflights and marks allowed answers.
//!
//! Written by hand rather than with tower-http's layer, which is not a dependency of this
//! crate: the API needs only origin matching, a fixed method and header list, and preflight.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::origins::CorsOrigins;
use crate::rest::error::{code, RestError};

/// Methods a browser may use cross-origin: the REST reads, `POST /v1/txs` and JSON-RPC.
const ALLOWED_METHODS: &str = "GET, POST, OPTIONS";
/// Request headers a browser may send cross-origin (JSON bodies need `content-type`).
const ALLOWED_HEADERS: &str = "content-type";
/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// Answers preflights (`OPTIONS` with `access-control-request-method`) and adds
/// `access-control-allow-origin` to answers for allowed origins. A refused preflight is a
/// 403 error so the page's console says why; other requests from a refused origin are
/// answered without CORS headers, which the browser then hides from the page.
pub async fn cors(State(origins): State<Arc<CorsOrigins>>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_string);
    let Some(origin) = origin else {
        return next.run(req).await;
    };
    let allowed = origins
        .allow(&origin)
        .and_then(|a| HeaderValue::from_str(&a).ok());
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let Some(allowed) = allowed else {
            return RestError::new(
                StatusCode::FORBIDDEN,
                code::CORS_REFUSED,
                format!("origin {origin} may not call this API"),
            )
            .into_response();
        };
        let mut resp = StatusCode::NO_CONTENT.into_response();
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOWED_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOWED_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(PREFLIGHT_MAX_AGE),
        );
        h.insert(header::VARY, HeaderValue::from_static("origin"));
        return resp;
    }
    let mut resp = next.run(req).await;
    if let Some(allowed) = allowed {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        h.append(header::VARY, HeaderValue::from_static("origin"));
    }
    resp
}
