//! The TOML config file: the same settings as the flags, every one optional.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::value::LogFormat;
use super::ConfigError;
use crate::identity::NodeType;

/// Settings read from `--config FILE`; keys are the flag names with `_` for `-`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See `--node-type`.
    pub node_type: Option<NodeType>,
    /// See `--region`.
    pub region: Option<String>,
    /// See `--bootstrap-peers` (a list of host:port).
    pub bootstrap_peers: Option<Vec<String>>,
    /// See `--enable-microblocks`.
    pub enable_microblocks: Option<bool>,
    /// See `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// See `--chain`.
    pub chain: Option<PathBuf>,
    /// See `--p2p-addr`.
    pub p2p_addr: Option<SocketAddr>,
    /// See `--advertise-addr`.
    pub advertise_addr: Option<SocketAddr>,
    /// See `--rpc-addr`.
    pub rpc_addr: Option<SocketAddr>,
    /// See `--gossip-interval` (e.g. "1s").
    pub gossip_interval: Option<String>,
    /// See `--log-format`.
    pub log_format: Option<LogFormat>,
    /// See `--regional-monitor-interval`.
    pub regional_monitor_interval: Option<String>,
    /// See `--failover-monitor-interval`.
    pub failover_monitor_interval: Option<String>,
    /// See `--health-warning-threshold`.
    pub health_warning_threshold: Option<f64>,
    /// See `--min-failed-regions`.
    pub min_failed_regions: Option<usize>,
    /// See `--retention-window`.
    pub retention_window: Option<String>,
    /// See `--bridges-per-region`.
    pub bridges_per_region: Option<usize>,
    /// See `--cells-per-region`.
    pub cells_per_region: Option<u16>,
    /// See `--strategy-settle-time`.
    pub strategy_settle_time: Option<String>,
    /// See `--dead-node-grace-period`.
    pub dead_node_grace_period: Option<String>,
    /// See `--api-max-body-bytes`.
    pub api_max_body_bytes: Option<u32>,
    /// See `--api-max-response-bytes`.
    pub api_max_response_bytes: Option<u32>,
    /// See `--api-max-batch`.
    pub api_max_batch: Option<u32>,
    /// See `--api-max-connections`.
    pub api_max_connections: Option<u32>,
    /// See `--api-max-ws-connections`.
    pub api_max_ws_connections: Option<u32>,
    /// See `--api-max-subscriptions`.
    pub api_max_subscriptions: Option<u32>,
    /// See `--api-request-timeout`.
    pub api_request_timeout: Option<String>,
    /// See `--api-header-read-timeout`.
    pub api_header_read_timeout: Option<String>,
    /// See `--api-tx-rate`.
    pub api_tx_rate: Option<u32>,
    /// See `--api-tx-burst`.
    pub api_tx_burst: Option<u32>,
    /// See `--api-cors-origins`.
    pub api_cors_origins: Option<String>,
}

impl FileConfig {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            reason: e.to_string().to_lowercase(),
        })?;
        Self::parse(path, &text)
    }

    /// Parses config file text; `path` is only used in error messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
            let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
            ConfigError::File {
                path: path.to_path_buf(),
                reason: match line {
                    Some(line) => format!("line {line}: {message}"),
                    None => message,
                },
            }
        })
    }
}
