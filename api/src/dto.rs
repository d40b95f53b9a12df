//! JSON shapes served by the REST and JSON-RPC APIs (the wire contract).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Head of the local best chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HeadDto {
    /// Block height, genesis is 0.
    pub height: u64,
    /// Block hash, 64 lowercase hex chars (blake3 of the header).
    pub hash: String,
    /// Hash of the parent block.
    pub parent_hash: String,
    /// Slot the block was produced in.
    pub slot: u64,
    /// Block timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

/// What this node is and how it is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatusDto {
    /// Node id derived from its public key.
    pub node_id: String,
    /// `super`, `full` or `light`.
    pub node_type: String,
    /// Region of this node.
    pub region: String,
    /// Software version.
    pub version: String,
    /// Chain id from the chain spec.
    pub chain_id: String,
    /// Number of live peers seen by membership.
    pub peers_live: u64,
    /// Local head, absent before genesis is loaded.
    pub head: Option<HeadDto>,
    /// True while the node is catching up with its peers.
    pub syncing: bool,
    /// Routing strategy: `direct`, `regional_clustering` or `global_mesh`.
    pub strategy: String,
    /// True while conservative failover is active.
    pub failover_active: bool,
    /// True when joined and synced (same as `/health/ready`).
    pub ready: bool,
}

/// One member seen by membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PeerDto {
    /// Node id of the peer.
    pub node_id: String,
    /// Region of the peer.
    pub region: String,
    /// `super`, `full` or `light`.
    pub node_type: String,
    /// Gossip (UDP) address.
    pub gossip_addr: String,
    /// Data-plane (TCP) address, when announced.
    pub p2p_addr: Option<String>,
    /// API address, when announced.
    pub api_addr: Option<String>,
    /// True when the failure detector sees the peer alive.
    pub live: bool,
    /// Last time the peer was heard from, milliseconds since the Unix epoch.
    pub last_seen_ms: u64,
    /// True when the peer is a bridge of its region.
    pub bridge: bool,
    /// Head height announced by the peer in gossip; a head that only climbs is announced at
    /// most every 2 s, so this may lag the peer's chain by up to about 3 slots.
    pub head_height: Option<u64>,
}

/// Members seen by membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PeersDto {
    /// All members, live or not.
    pub peers: Vec<PeerDto>,
}

/// Health of one region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegionDto {
    /// Region name.
    pub region: String,
    /// Members seen within the retention window.
    pub known: u64,
    /// Members currently live.
    pub live: u64,
    /// `live / known`, 0.0 to 1.0.
    pub health: f64,
    /// True when the region is known but has no live member.
    pub missing: bool,
    /// Node ids of the region's bridges.
    pub bridges: Vec<String>,
}

/// Health of every region and of the whole network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegionsDto {
    /// `live / known` over all regions, 0.0 to 1.0.
    pub health_score: f64,
    /// One entry per known region.
    pub regions: Vec<RegionDto>,
}

/// Why a link is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// A peer of the node's own region.
    InRegion,
    /// A bridge link to another region.
    Bridge,
}

/// Whether a planned link's data-plane connection is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// The router plans the link; no connection is open (yet, or it failed).
    Planned,
    /// The router plans the link and its connection is open.
    Open,
}

/// A link the router currently uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinkDto {
    /// Node id of the peer at the other end.
    pub peer: String,
    /// Region of that peer.
    pub region: String,
    /// Kind of link.
    pub kind: LinkKind,
    /// Whether its connection is open.
    pub state: LinkState,
}

/// Routing strategy and the links in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TopologyDto {
    /// `direct`, `regional_clustering` or `global_mesh`.
    pub strategy: String,
    /// When the current strategy took effect, milliseconds since the Unix epoch.
    pub since_ms: u64,
    /// Regions with at least one live member.
    pub live_regions: Vec<String>,
    /// Bridge node ids by region.
    pub bridges: BTreeMap<String, Vec<String>>,
    /// Links in use.
    pub links: Vec<LinkDto>,
}

/// One failover event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FailoverEventDto {
    /// When it happened, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// `activated`, `deactivated`, `region_lost` or `region_returned`.
    pub kind: String,
    /// Regions concerned.
    pub regions: Vec<String>,
}

/// State of the failover monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FailoverDto {
    /// True while conservative failover is active.
    pub active: bool,
    /// Regions known but without a live member.
    pub missing_regions: Vec<String>,
    /// Returned regions still inside their restoration window.
    pub restoring_regions: Vec<String>,
    /// Time of the last check, milliseconds since the Unix epoch.
    pub last_check_ms: Option<u64>,
    /// Recent events, oldest first.
    pub events: Vec<FailoverEventDto>,
}

/// Whether a transaction is in the mempool or in a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TxStatus {
    /// In the mempool.
    Pending,
    /// In a block of the best chain.
    Included,
}

/// A transfer transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TxDto {
    /// Transaction hash, 64 hex chars.
    pub hash: String,
    /// Sender address.
    pub from: String,
    /// Recipient address.
    pub to: String,
    /// Amount transferred.
    pub amount: u64,
    /// Fee paid to the producer.
    pub fee: u64,
    /// Sender nonce.
    pub nonce: u64,
    /// `pending` or `included`.
    pub status: TxStatus,
    /// Height of the including block; null while pending.
    pub block_height: Option<u64>,
    /// Hash of the including block; null while pending.
    pub block_hash: Option<String>,
    /// Position of the transaction in its block, from 0; null while pending.
    pub index: Option<u32>,
    /// Timestamp of the including block, milliseconds since the Unix epoch; null while pending.
    pub timestamp_ms: Option<u64>,
    /// Head height - block height + 1 when the answer was made; 0 while pending.
    pub confirmations: u64,
}

/// Most pending transactions one answer lists (`GET /v1/mempool`, `tx_pending`); `total`
/// says how many more match. The mempool holds 10,000 by default: a bound keeps an answer
/// under about 300 KB.
pub const MAX_PENDING_LISTED: usize = 1_000;

/// Pending transactions, by sender then nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PendingTxsDto {
    /// At most 1,000 (`MAX_PENDING_LISTED`) pending transactions, by sender then nonce.
    pub txs: Vec<TxDto>,
    /// How many pending transactions match the filter, listed or not.
    pub total: u64,
}

/// Slots listed ahead by `GET /v1/chain` and `chain_getSpec`: at the default 1 s slot, the
/// next 10 s of the schedule, enough for a wallet to time a transfer.
pub const UPCOMING_SLOTS: usize = 10;

/// A slot of the producer schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScheduledSlotDto {
    /// Slot number (slot 0 is genesis).
    pub slot: u64,
    /// Start of the slot, milliseconds since the Unix epoch.
    pub start_ms: u64,
    /// Public key of the slot's producer, hex (as `BlockDto::producer`).
    pub producer: String,
}

/// The chain this node follows and its producer schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChainSpecDto {
    /// Chain id.
    pub chain_id: String,
    /// Start of slot 0, milliseconds since the Unix epoch.
    pub genesis_time_ms: u64,
    /// Hash of the genesis block.
    pub genesis_hash: String,
    /// Slot length in milliseconds.
    pub slot_ms: u64,
    /// Producer public keys (hex) in schedule order: slot `s` is `producers[s % len]`.
    pub producers: Vec<String>,
    /// The 10 (`UPCOMING_SLOTS`) slots after the running one, by the node's clock.
    pub next_slots: Vec<ScheduledSlotDto>,
}

/// Transactions of a block: full objects or hashes only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BlockTxs {
    /// Full transactions (`full_txs=true`).
    Full(Vec<TxDto>),
    /// Transaction hashes (default).
    Hashes(Vec<String>),
}

/// `anyOf`, not the derived `oneOf`: an empty list is both forms at once.
impl utoipa::PartialSchema for BlockTxs {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, Type};
        use utoipa::openapi::Ref;
        AnyOfBuilder::new()
            .item(
                ArrayBuilder::new()
                    .items(Ref::from_schema_name("TxDto"))
                    .description(Some("Full transactions (`full_txs=true`).")),
            )
            .item(
                ArrayBuilder::new()
                    .items(ObjectBuilder::new().schema_type(Type::String))
                    .description(Some("Transaction hashes (default).")),
            )
            .description(Some(
                "Transactions of a block: full objects or hashes only.",
            ))
            .into()
    }
}

impl ToSchema for BlockTxs {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            TxDto::name().into_owned(),
            <TxDto as utoipa::PartialSchema>::schema(),
        ));
        <TxDto as ToSchema>::schemas(schemas);
    }
}

/// A microblock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlockDto {
    /// Block height.
    pub height: u64,
    /// Block hash.
    pub hash: String,
    /// Parent block hash.
    pub parent_hash: String,
    /// Slot the block was produced in.
    pub slot: u64,
    /// Block timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Node id or public key of the producer.
    pub producer: String,
    /// Merkle root of the transactions.
    pub tx_root: String,
    /// Number of transactions.
    pub tx_count: u64,
    /// Transactions, full or as hashes.
    pub txs: BlockTxs,
}

/// A range of blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlocksDto {
    /// Blocks in ascending height, transactions as hashes.
    pub blocks: Vec<BlockDto>,
}

/// Balance and nonces of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountDto {
    /// Account address.
    pub address: String,
    /// Balance at the head.
    pub balance: u64,
    /// Next nonce at the head.
    pub nonce: u64,
    /// Next nonce counting mempool transactions.
    pub pending_nonce: u64,
}

/// Body of `POST /v1/txs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SubmitTxDto {
    /// Signed transaction in its canonical encoding, hex (an optional `0x` prefix).
    #[schema(pattern = r"^(0x)?([0-9a-fA-F]{2})+$", min_length = 2)]
    pub tx: String,
}

/// Hash of an accepted transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TxHashDto {
    /// Transaction hash.
    pub hash: String,
}

/// Answer of the health probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthDto {
    /// `live` or `ready`.
    pub status: String,
}

/// Error detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

/// Body of every REST error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

impl ErrorBody {
    /// Builds an error body from a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_kind_and_status_use_snake_case() {
        assert_eq!(
            serde_json::to_string(&LinkKind::InRegion).unwrap(),
            "\"in_region\""
        );
        assert_eq!(
            serde_json::to_string(&TxStatus::Included).unwrap(),
            "\"included\""
        );
    }

    #[test]
    fn block_txs_serialize_as_plain_arrays() {
        let hashes = BlockTxs::Hashes(vec!["ab".into()]);
        assert_eq!(
            serde_json::to_value(&hashes).unwrap(),
            serde_json::json!(["ab"])
        );
        let back: BlockTxs = serde_json::from_value(serde_json::json!(["ab"])).unwrap();
        assert_eq!(back, hashes);
    }

    #[test]
    fn error_body_shape() {
        let v = serde_json::to_value(ErrorBody::new("not_found", "no such block")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"code": "not_found", "message": "no such block"}})
        );
    }
}
