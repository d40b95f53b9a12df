//! Node configuration: flags, then `QNET_*` environment variables, then the TOML file,
//! then defaults. [`NodeConfig::resolve`] is the one place that merges and validates them.

pub mod api;
pub mod cli;
pub mod file;
pub mod value;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub use cli::{
    ChainSpecArgs, Cli, Command, DevnetArgs, KeygenArgs, NodeArgs, WalletArgs, WalletCommand,
};
pub use file::FileConfig;
pub use value::LogFormat;

use crate::identity::NodeType;
use crate::region::Region;

/// Default p2p address (UDP gossip and TCP data plane).
pub const DEFAULT_P2P_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9876);
/// Default API address.
pub const DEFAULT_RPC_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8001);

/// A configuration problem, reported as one line before the node starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A setting has a bad value.
    #[error("{setting}: {reason}")]
    Invalid {
        /// The flag name, e.g. `--region`.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.into(),
    }
}

/// Monitor settings (DESIGN §5).
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorConfig {
    /// Interval of the regional health monitor.
    pub regional_interval: Duration,
    /// Interval of the failover monitor; also the restoration window.
    pub failover_interval: Duration,
    /// Health score below which a warning is logged.
    pub health_warning_threshold: f64,
    /// Missing regions other than our own that activate failover.
    pub min_failed_regions: usize,
    /// How long a member counts as known after last seen.
    pub retention_window: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            regional_interval: Duration::from_secs(120),
            failover_interval: Duration::from_secs(300),
            health_warning_threshold: 0.8,
            min_failed_regions: 2,
            retention_window: Duration::from_secs(24 * 3600),
        }
    }
}

/// Most gossip cells a region may be split into (a protocol limit: summaries naming more
/// are refused).
pub const MAX_CELLS_PER_REGION: u16 = 64;

/// Membership and topology settings (DESIGN §3–4).
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipConfig {
    /// Gossip interval of the regional cluster (the bridge cluster gossips twice as often).
    pub gossip_interval: Duration,
    /// Bridges per region, or per cell of a region split into cells.
    pub bridges_per_region: usize,
    /// Gossip cells per region (`membership::cell`); the same on every node of a network.
    pub cells_per_region: u16,
    /// Hysteresis of the routing strategy.
    pub strategy_settle_time: Duration,
    /// How long dead members stay in gossip state.
    pub dead_node_grace_period: Duration,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            gossip_interval: Duration::from_secs(1),
            bridges_per_region: 3,
            cells_per_region: 1,
            strategy_settle_time: Duration::from_secs(10),
            dead_node_grace_period: Duration::from_secs(300),
        }
    }
}

/// Everything a node needs to start, validated.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Node type.
    pub node_type: NodeType,
    /// Region.
    pub region: Region,
    /// host:port addresses to join through.
    pub bootstrap_peers: Vec<String>,
    /// Whether to produce blocks.
    pub enable_microblocks: bool,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Chain spec file (`--chain`).
    pub chain: Option<PathBuf>,
    /// Bind address for gossip (UDP) and data plane (TCP).
    pub p2p_addr: SocketAddr,
    /// Address announced to other nodes.
    pub advertise_addr: SocketAddr,
    /// API bind address.
    pub rpc_addr: SocketAddr,
    /// Log format.
    pub log_format: LogFormat,
    /// Membership and topology.
    pub membership: MembershipConfig,
    /// Monitors.
    pub monitor: MonitorConfig,
    /// Limits of the API server.
    pub api: qnet_api::ApiConfig,
}

impl NodeConfig {
    /// Merges flags/env (`args`, already merged by clap) over the config file over defaults.
    pub fn resolve(args: NodeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Self::merge(args, file)
    }

    /// Merges already-read flags and file settings; flags win.
    pub fn merge(args: NodeArgs, file: FileConfig) -> Result<Self, ConfigError> {
        let api = api::resolve(&args.api, &file)?;
        let region_text = args.region.or(file.region).ok_or_else(|| {
            invalid(
                "--region",
                "missing; set --region, QNET_REGION or region in the config file",
            )
        })?;
        let region = Region::new(&region_text).map_err(|e| invalid("--region", e.to_string()))?;
        let bootstrap_peers = args
            .bootstrap_peers
            .or(file.bootstrap_peers)
            .unwrap_or_default();
        let bootstrap_peers: Vec<String> = bootstrap_peers
            .into_iter()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        for peer in &bootstrap_peers {
            check_host_port(peer).map_err(|r| invalid("--bootstrap-peers", r))?;
        }
        let p2p_addr = args.p2p_addr.or(file.p2p_addr).unwrap_or(DEFAULT_P2P_ADDR);
        let advertise_addr = args.advertise_addr.or(file.advertise_addr);
        let advertise_addr = resolve_advertise(p2p_addr, advertise_addr)?;
        // a seed node given the shared seed list must not wait for an answer from itself
        let bootstrap_peers: Vec<String> = bootstrap_peers
            .into_iter()
            .filter(|p| !is_own_addr(p, p2p_addr, advertise_addr))
            .collect();

        let defaults_m = MembershipConfig::default();
        let defaults_mon = MonitorConfig::default();
        let membership = MembershipConfig {
            gossip_interval: pick_duration(
                "--gossip-interval",
                args.gossip_interval,
                file.gossip_interval,
                defaults_m.gossip_interval,
            )?,
            bridges_per_region: args
                .bridges_per_region
                .or(file.bridges_per_region)
                .unwrap_or(defaults_m.bridges_per_region),
            cells_per_region: args
                .cells_per_region
                .or(file.cells_per_region)
                .unwrap_or(defaults_m.cells_per_region),
            strategy_settle_time: pick_duration(
                "--strategy-settle-time",
                args.strategy_settle_time,
                file.strategy_settle_time,
                defaults_m.strategy_settle_time,
            )?,
            dead_node_grace_period: pick_duration(
                "--dead-node-grace-period",
                args.dead_node_grace_period,
                file.dead_node_grace_period,
                defaults_m.dead_node_grace_period,
            )?,
        };
        if !(1..=16).contains(&membership.bridges_per_region) {
            return Err(invalid("--bridges-per-region", "must be between 1 and 16"));
        }
        if !(1..=MAX_CELLS_PER_REGION).contains(&membership.cells_per_region) {
            return Err(invalid(
                "--cells-per-region",
                format!("must be between 1 and {MAX_CELLS_PER_REGION}"),
            ));
        }
        let monitor = MonitorConfig {
            regional_interval: pick_duration(
                "--regional-monitor-interval",
                args.regional_monitor_interval,
                file.regional_monitor_interval,
                defaults_mon.regional_interval,
            )?,
            failover_interval: pick_duration(
                "--failover-monitor-interval",
                args.failover_monitor_interval,
                file.failover_monitor_interval,
                defaults_mon.failover_interval,
            )?,
            health_warning_threshold: args
                .health_warning_threshold
                .or(file.health_warning_threshold)
                .unwrap_or(defaults_mon.health_warning_threshold),
            min_failed_regions: args
                .min_failed_regions
                .or(file.min_failed_regions)
                .unwrap_or(defaults_mon.min_failed_regions),
            retention_window: pick_duration(
                "--retention-window",
                args.retention_window,
                file.retention_window,
                defaults_mon.retention_window,
            )?,
        };
        let t = monitor.health_warning_threshold;
        if !(t > 0.0 && t <= 1.0) {
            return Err(invalid(
                "--health-warning-threshold",
                format!("{t} is out of range; expected 0 < x <= 1"),
            ));
        }
        if monitor.min_failed_regions == 0 {
            return Err(invalid("--min-failed-regions", "must be at least 1"));
        }
        Ok(NodeConfig {
            node_type: args.node_type.or(file.node_type).unwrap_or(NodeType::Full),
            region,
            bootstrap_peers,
            enable_microblocks: args
                .enable_microblocks
                .or(file.enable_microblocks)
                .unwrap_or(false),
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./qnet-data")),
            chain: args.chain.or(file.chain),
            p2p_addr,
            advertise_addr,
            rpc_addr: args.rpc_addr.or(file.rpc_addr).unwrap_or(DEFAULT_RPC_ADDR),
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            membership,
            monitor,
            api,
        })
    }
}

fn pick_duration(
    setting: &'static str,
    flag: Option<Duration>,
    file: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match (flag, file) {
        (Some(d), _) => Ok(d),
        (None, Some(text)) => value::parse_duration(&text).map_err(|r| invalid(setting, r)),
        (None, None) => Ok(default),
    }
}

/// Checks the shape `host:port` without resolving the host.
fn check_host_port(peer: &str) -> Result<(), String> {
    if peer.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = peer
        .rsplit_once(':')
        .ok_or_else(|| format!("{peer:?} is not host:port"))?;
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if !host_ok || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("{peer:?} is not host:port"));
    }
    Ok(())
}

/// The advertised address: explicit, else the bind address; an unspecified bind IP is
/// advertised as 127.0.0.1 (set --advertise-addr when other hosts must reach the node).
fn resolve_advertise(
    p2p_addr: SocketAddr,
    advertise: Option<SocketAddr>,
) -> Result<SocketAddr, ConfigError> {
    match advertise {
        Some(a) if a.ip().is_unspecified() || a.port() == 0 => Err(invalid(
            "--advertise-addr",
            format!("{a} cannot be reached by other nodes; give a concrete ip:port"),
        )),
        Some(a) => Ok(a),
        None if p2p_addr.ip().is_unspecified() => Ok(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            p2p_addr.port(),
        )),
        None => Ok(p2p_addr),
    }
}

/// Whether a bootstrap peer `host:port` is this node's own p2p or advertised address.
fn is_own_addr(peer: &str, p2p_addr: SocketAddr, advertise_addr: SocketAddr) -> bool {
    peer.parse::<SocketAddr>()
        .is_ok_and(|a| a == advertise_addr || a == p2p_addr)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn args_with_region(region: &str) -> NodeArgs {
        NodeArgs {
            region: Some(region.into()),
            ..NodeArgs::default()
        }
    }

    fn file(text: &str) -> FileConfig {
        FileConfig::parse(Path::new("test.toml"), text).unwrap()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c = NodeConfig::merge(args_with_region("eu"), FileConfig::default()).unwrap();
        assert_eq!(c.node_type, NodeType::Full);
        assert_eq!(c.p2p_addr, DEFAULT_P2P_ADDR);
        assert_eq!(c.advertise_addr, "127.0.0.1:9876".parse().unwrap());
        assert_eq!(c.rpc_addr, DEFAULT_RPC_ADDR);
        assert_eq!(c.monitor, MonitorConfig::default());
        assert_eq!(c.monitor.regional_interval, Duration::from_secs(120));
        assert_eq!(c.monitor.failover_interval, Duration::from_secs(300));
        assert!(!c.enable_microblocks);
    }

    #[test]
    fn file_overrides_defaults_and_flags_override_file() {
        let f = file(
            "region = \"na\"\nnode_type = \"super\"\ngossip_interval = \"2s\"\n\
             regional_monitor_interval = \"5m\"\nbootstrap_peers = [\"a.example:9876\"]\n",
        );
        let c = NodeConfig::merge(NodeArgs::default(), f).unwrap();
        assert_eq!(c.region.as_str(), "na");
        assert_eq!(c.node_type, NodeType::Super);
        assert_eq!(c.membership.gossip_interval, Duration::from_secs(2));
        assert_eq!(c.monitor.regional_interval, Duration::from_secs(300));
        assert_eq!(c.bootstrap_peers, vec!["a.example:9876".to_string()]);

        let f = file("region = \"na\"\ngossip_interval = \"2s\"\n");
        let args = NodeArgs {
            region: Some("eu".into()),
            gossip_interval: Some(Duration::from_millis(300)),
            ..NodeArgs::default()
        };
        let c = NodeConfig::merge(args, f).unwrap();
        assert_eq!(c.region.as_str(), "eu");
        assert_eq!(c.membership.gossip_interval, Duration::from_millis(300));
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = NodeConfig::merge(args_with_region("EU"), FileConfig::default()).unwrap_err();
        assert!(
            err.to_string().starts_with("--region: invalid region"),
            "{err}"
        );
        let err = NodeConfig::merge(NodeArgs::default(), FileConfig::default()).unwrap_err();
        assert!(err.to_string().starts_with("--region: missing"), "{err}");
        let err = NodeConfig::merge(
            args_with_region("eu"),
            file("failover_monitor_interval = \"soon\""),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--failover-monitor-interval: invalid duration"),
            "{err}"
        );
        let mut args = args_with_region("eu");
        args.bootstrap_peers = Some(vec!["nohostport".into()]);
        let err = NodeConfig::merge(args, FileConfig::default()).unwrap_err();
        assert!(err.to_string().starts_with("--bootstrap-peers:"), "{err}");
        let mut args = args_with_region("eu");
        args.health_warning_threshold = Some(1.5);
        assert!(NodeConfig::merge(args, FileConfig::default()).is_err());
        let mut args = args_with_region("eu");
        args.min_failed_regions = Some(0);
        assert!(NodeConfig::merge(args, FileConfig::default()).is_err());
    }

    #[test]
    fn own_address_is_dropped_from_bootstrap_peers() {
        let mut args = args_with_region("eu");
        args.p2p_addr = Some("10.0.0.1:9876".parse().unwrap());
        args.bootstrap_peers = Some(vec![
            "10.0.0.1:9876".into(),
            "10.0.0.2:9876".into(),
            "seed.example:9876".into(),
        ]);
        let c = NodeConfig::merge(args, FileConfig::default()).unwrap();
        assert_eq!(
            c.bootstrap_peers,
            vec!["10.0.0.2:9876", "seed.example:9876"]
        );
        let mut args = args_with_region("eu");
        args.p2p_addr = Some("0.0.0.0:9876".parse().unwrap());
        args.advertise_addr = Some("203.0.113.7:9876".parse().unwrap());
        args.bootstrap_peers = Some(vec!["203.0.113.7:9876".into(), "203.0.113.7:9877".into()]);
        let c = NodeConfig::merge(args, FileConfig::default()).unwrap();
        assert_eq!(c.bootstrap_peers, vec!["203.0.113.7:9877"]);
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let err = FileConfig::parse(Path::new("x.toml"), "regoin = \"eu\"").unwrap_err();
        assert!(err.to_string().contains("x.toml"), "{err}");
        assert!(err.to_string().contains("regoin"), "{err}");
    }

    #[test]
    fn host_port_shapes() {
        assert!(check_host_port("127.0.0.1:9876").is_ok());
        assert!(check_host_port("[::1]:9876").is_ok());
        assert!(check_host_port("node-1.example:9876").is_ok());
        assert!(check_host_port("host").is_err());
        assert!(check_host_port("host:0").is_err());
        assert!(check_host_port(":9876").is_err());
        assert!(check_host_port("host:99999").is_err());
    }
}
