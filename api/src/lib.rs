//! qnet-api: the node's REST API, JSON-RPC 2.0 (HTTP and WebSocket) and `/metrics`, on one port.
//!
//! The node implements [`NodeService`], a narrow, synchronous set of queries and commands,
//! and starts the server with [`serve`] (or [`ApiServer`]) on a listener it bound itself.
//! The wire shapes live in [`dto`], the limits in [`ApiConfig`], the JSON-RPC error codes in
//! [`rpc::codes`], and the OpenAPI document comes from [`openapi_yaml`]. The page for people
//! at `GET /ui` is in [`ui`].

pub mod config;
pub mod cors;
pub mod dto;
pub mod metrics;
pub mod openapi;
pub mod origins;
mod params;
mod rate_limit;
mod rest;
pub mod rpc;
pub mod server;
pub mod service;
pub mod starting;
pub mod ui;

pub use config::{ApiConfig, RateLimit};
pub use openapi::openapi_yaml;
pub use origins::CorsOrigins;
pub use rest::error::code as rest_error_codes;
pub use server::{serve, ApiError, ApiServer};
pub use service::{NodeService, ServiceError};
