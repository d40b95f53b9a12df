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

use crate::rest::error::{code, RestError};

/// Methods a browser may use cross-origin: the REST reads, `POST /v1/txs` and JSON-RPC.
const ALLOWED_METHODS: &str = "GET, POST, OPTIONS";
/// Request headers a browser may send cross-origin (JSON bodies need `content-type`).
const ALLOWED_HEADERS: &str = "content-type";
/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// Origins allowed to call the API from a browser.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No cross-origin access: no CORS headers, preflights are not answered (the default).
    #[default]
    None,
    /// Every origin (`*`).
    Any,
    /// These origins exactly, each `scheme://host[:port]`, lowercased.
    List(Vec<String>),
}

impl CorsOrigins {
    /// Parses `*` or a comma-separated list of `http(s)://host[:port]` origins.
    pub fn parse(value: &str) -> Result<CorsOrigins, String> {
        let value = value.trim();
        if value == "*" {
            return Ok(CorsOrigins::Any);
        }
        let mut origins = Vec::new();
        for entry in value.split(',').map(str::trim) {
            origins.push(parse_origin(entry)?);
        }
        Ok(CorsOrigins::List(origins))
    }

    /// The `access-control-allow-origin` value for a request from `origin`, `None` when the
    /// origin is not allowed.
    pub fn allow(&self, origin: &str) -> Option<String> {
        match self {
            CorsOrigins::None => None,
            CorsOrigins::Any => Some("*".to_string()),
            CorsOrigins::List(list) => {
                let origin = origin.to_ascii_lowercase();
                list.contains(&origin).then_some(origin)
            }
        }
    }
}

/// One origin as browsers send it: a scheme, a host and maybe a port, no path.
fn parse_origin(entry: &str) -> Result<String, String> {
    let invalid = |why: &str| format!("origin {entry:?} {why}");
    if entry.is_empty() {
        return Err("empty origin in the list".to_string());
    }
    let rest = entry
        .strip_prefix("http://")
        .or_else(|| entry.strip_prefix("https://"))
        .ok_or_else(|| invalid("must start with http:// or https:// (or be * alone)"))?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if !host_ok {
        return Err(invalid("must be scheme://host[:port], without a path"));
    }
    if let Some(port) = port {
        if port.parse::<u16>().is_err() {
            return Err(invalid("has a port that is not a number up to 65535"));
        }
    }
    Ok(entry.to_ascii_lowercase())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_and_lists_parse_and_bad_values_say_why() {
        assert_eq!(CorsOrigins::parse("*"), Ok(CorsOrigins::Any));
        assert_eq!(
            CorsOrigins::parse("https://Wallet.example, http://127.0.0.1:8080"),
            Ok(CorsOrigins::List(vec![
                "https://wallet.example".into(),
                "http://127.0.0.1:8080".into()
            ]))
        );
        for bad in [
            "",
            "wallet.example",
            "https://wallet.example/",
            "https://a.example/path",
            "https://a.example:99999",
            "https://a.example,,https://b.example",
            "*, https://a.example",
        ] {
            let err = CorsOrigins::parse(bad).expect_err(bad);
            assert!(err.contains("origin"), "{bad}: {err}");
        }
    }

    #[test]
    fn only_listed_origins_are_allowed() {
        let list = CorsOrigins::parse("https://wallet.example").unwrap();
        assert_eq!(
            list.allow("https://WALLET.example").as_deref(),
            Some("https://wallet.example")
        );
        assert_eq!(list.allow("https://evil.example"), None);
        assert_eq!(list.allow("http://wallet.example"), None);
        assert_eq!(
            CorsOrigins::Any.allow("https://x.example").as_deref(),
            Some("*")
        );
        assert_eq!(CorsOrigins::None.allow("https://x.example"), None);
    }
}
