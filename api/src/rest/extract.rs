//! Extractors whose rejections are REST error bodies, and the tx rate-limit guard.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::http::request::Parts;

use crate::rest::error::RestError;
use crate::rest::AppState;

/// `axum::extract::Path` with a JSON 400 on failure.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(RestError))]
pub struct ApiPath<T>(pub T);

/// `axum::extract::Query` with a JSON 400 on failure.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(RestError))]
pub struct ApiQuery<T>(pub T);

/// `axum::Json` with JSON 400/413/415/422 on failure.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(RestError))]
pub struct ApiJson<T>(pub T);

/// Admits the request only if its client is within the tx submission rate (429 otherwise).
///
/// Keyed by the TCP peer address; `X-Forwarded-For` is ignored because anyone can forge it.
#[derive(Debug)]
pub struct TxRateLimited;

impl FromRequestParts<AppState> for TxRateLimited {
    type Rejection = RestError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, RestError> {
        let Some(limiter) = &state.limiter else {
            return Ok(Self);
        };
        match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(addr)) if !limiter.check(addr.ip()) => Err(RestError::rate_limited()),
            _ => Ok(Self),
        }
    }
}
