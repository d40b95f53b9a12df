//! Command-line interface: flags (each also read from `QNET_<FLAG>`) and subcommands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::api::ApiArgs;
use super::value::{parse_duration, LogFormat};
use crate::identity::NodeType;

/// qnet-node: a region-aware peer-to-peer node that produces and carries microblocks.
#[derive(Debug, Parser)]
#[command(name = "qnet-node", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; without a subcommand the node runs.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Node flags.
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the node key in the data dir (if missing) and print the node id and public key.
    Keygen(KeygenArgs),
    /// Start a local multi-region network of child processes and run until Ctrl-C.
    Devnet(DevnetArgs),
    /// Write a chain spec JSON file (producers, balances, slot length, genesis time).
    ChainSpec(ChainSpecArgs),
    /// Create keys, show addresses and balances, send signed transfers over JSON-RPC.
    Wallet(WalletArgs),
}

/// Flags of `qnet-node chain-spec`.
#[derive(Debug, Args)]
pub struct ChainSpecArgs {
    /// Comma-separated producer public keys (hex, as printed by `qnet-node keygen`), in schedule order.
    #[arg(long, value_delimiter = ',', required = true)]
    pub producers: Vec<String>,
    /// Initial balance as ADDRESS=AMOUNT; repeat for several accounts.
    #[arg(long = "balance")]
    pub balances: Vec<String>,
    /// Chain id.
    #[arg(long, default_value = "qnet-local")]
    pub chain_id: String,
    /// Slot length in milliseconds.
    #[arg(long, default_value_t = crate::chain::spec::DEFAULT_SLOT_MS)]
    pub slot_ms: u64,
    /// Start of slot 0 in ms since the Unix epoch (default: now, rounded down to the second).
    #[arg(long)]
    pub genesis_time_ms: Option<u64>,
    /// Output file.
    #[arg(long)]
    pub out: PathBuf,
}

/// Flags of `qnet-node wallet`.
#[derive(Debug, Args)]
pub struct WalletArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: WalletCommand,
}

/// Wallet subcommands.
#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// Create a new account key file and print its address.
    New {
        /// Key file to write (refuses to overwrite).
        #[arg(long, default_value = "./wallet.key")]
        out: PathBuf,
    },
    /// Print the address of a key file.
    Address {
        /// Key file.
        #[arg(long, env = "QNET_WALLET_KEY", default_value = "./wallet.key")]
        key: PathBuf,
    },
    /// Print an account's balance and nonces from a node.
    Balance {
        /// Node JSON-RPC URL, e.g. http://127.0.0.1:8001.
        #[arg(long, env = "QNET_RPC")]
        rpc: String,
        /// Address to look up (instead of the key file's).
        #[arg(long)]
        address: Option<String>,
        /// Key file whose address to look up.
        #[arg(long, env = "QNET_WALLET_KEY", default_value = "./wallet.key")]
        key: PathBuf,
    },
    /// Sign a transfer locally and submit it with JSON-RPC `tx_send`; prints the hash.
    Send {
        /// Key file of the sender.
        #[arg(long, env = "QNET_WALLET_KEY", default_value = "./wallet.key")]
        key: PathBuf,
        /// Recipient address.
        #[arg(long)]
        to: String,
        /// Amount.
        #[arg(long)]
        amount: u64,
        /// Fee paid to the producer.
        #[arg(long, default_value_t = 1)]
        fee: u64,
        /// Node JSON-RPC URL, e.g. http://127.0.0.1:8001.
        #[arg(long, env = "QNET_RPC")]
        rpc: String,
        /// Wait until the transfer is included in a block.
        #[arg(long)]
        wait: bool,
    },
}

/// Flags of `qnet-node keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Data directory that holds (or will hold) node.key.
    #[arg(long, env = "QNET_DATA_DIR", default_value = "./qnet-data")]
    pub data_dir: PathBuf,
}

/// Flags of `qnet-node devnet`.
#[derive(Debug, Args)]
pub struct DevnetArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub nodes: u16,
    /// Number of regions (taken in order from eu, na, asia, sa, africa, oceania).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=6))]
    pub regions: u16,
    /// First port: node i uses p2p port base+3i (bridge gossip base+3i+1) and API port base+3i+2.
    #[arg(long, default_value_t = 19_000)]
    pub base_port: u16,
    /// Directory for the nodes' data dirs (kept between runs).
    #[arg(long, default_value = "./devnet-data")]
    pub dir: PathBuf,
    /// Monitor intervals for the devnet nodes (short, so effects show quickly).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub monitor_interval: Duration,
    /// Write a Prometheus config scraping every node to FILE (alert rules go next to it).
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
}

/// Flags of the node; every one is optional here so the config file and defaults can fill in.
#[derive(Debug, Default, Args)]
pub struct NodeArgs {
    /// Node type: super, full or light.
    #[arg(long, env = "QNET_NODE_TYPE")]
    pub node_type: Option<NodeType>,
    /// Region of this node: [a-z0-9-]{1,32}, e.g. eu, na, asia.
    #[arg(long, env = "QNET_REGION")]
    pub region: Option<String>,
    /// Comma-separated host:port p2p addresses of nodes to join through (any region).
    #[arg(long, env = "QNET_BOOTSTRAP_PEERS", value_delimiter = ',')]
    pub bootstrap_peers: Option<Vec<String>>,
    /// Produce microblocks in this node's slots.
    #[arg(long, env = "QNET_ENABLE_MICROBLOCKS", num_args = 0..=1, default_missing_value = "true")]
    pub enable_microblocks: Option<bool>,
    /// Data directory (key, database).
    #[arg(long, env = "QNET_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Chain spec JSON file; without it the spec stored in the data dir, a bootstrap
    /// peer's spec, or a new single-producer development chain is used.
    #[arg(long, env = "QNET_CHAIN")]
    pub chain: Option<PathBuf>,
    /// Address for gossip (UDP) and the data plane (TCP).
    #[arg(long, env = "QNET_P2P_ADDR")]
    pub p2p_addr: Option<SocketAddr>,
    /// Address other nodes use to reach this one (defaults to --p2p-addr).
    #[arg(long, env = "QNET_ADVERTISE_ADDR")]
    pub advertise_addr: Option<SocketAddr>,
    /// Address of the REST, JSON-RPC and metrics server.
    #[arg(long, env = "QNET_RPC_ADDR")]
    pub rpc_addr: Option<SocketAddr>,
    /// TOML config file.
    #[arg(long, env = "QNET_CONFIG")]
    pub config: Option<PathBuf>,
    /// Gossip interval, e.g. 1s or 500ms.
    #[arg(long, env = "QNET_GOSSIP_INTERVAL", value_parser = parse_duration)]
    pub gossip_interval: Option<Duration>,
    /// Log format: text or json.
    #[arg(long, env = "QNET_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Interval of the regional health monitor.
    #[arg(long, env = "QNET_REGIONAL_MONITOR_INTERVAL", value_parser = parse_duration)]
    pub regional_monitor_interval: Option<Duration>,
    /// Interval of the failover monitor (also the restoration window).
    #[arg(long, env = "QNET_FAILOVER_MONITOR_INTERVAL", value_parser = parse_duration)]
    pub failover_monitor_interval: Option<Duration>,
    /// Network health below which the health monitor warns (0 < x <= 1).
    #[arg(long, env = "QNET_HEALTH_WARNING_THRESHOLD")]
    pub health_warning_threshold: Option<f64>,
    /// Missing regions (other than this node's) needed to activate failover.
    #[arg(long, env = "QNET_MIN_FAILED_REGIONS")]
    pub min_failed_regions: Option<usize>,
    /// How long members count as known after they were last seen.
    #[arg(long, env = "QNET_RETENTION_WINDOW", value_parser = parse_duration)]
    pub retention_window: Option<Duration>,
    /// Bridges per region in the bridge cluster.
    #[arg(long, env = "QNET_BRIDGES_PER_REGION")]
    pub bridges_per_region: Option<usize>,
    /// Gossip cells per region: a region of more than about 200 members gossips in this
    /// many clusters (the same value on every node of the network).
    #[arg(long, env = "QNET_CELLS_PER_REGION")]
    pub cells_per_region: Option<u16>,
    /// How long a new routing strategy must hold before the node switches to it.
    #[arg(long, env = "QNET_STRATEGY_SETTLE_TIME", value_parser = parse_duration)]
    pub strategy_settle_time: Option<Duration>,
    /// How long a dead member stays in gossip state before it is forgotten.
    #[arg(long, env = "QNET_DEAD_NODE_GRACE_PERIOD", value_parser = parse_duration)]
    pub dead_node_grace_period: Option<Duration>,
    /// API limits.
    #[command(flatten)]
    pub api: ApiArgs,
}
