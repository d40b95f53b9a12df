//! Fuzz targets: every decoder of outside input (data-plane frames and messages, handshake,
//! blocks, transactions, addresses, gossip values, chain spec, config file) as one function
//! from bytes to a verdict. The property tests, the corpus replay (`tests/decoders.rs`) and the
//! long-run fuzz loop (`examples/fuzz.rs`) of this crate drive the same list, [`TARGETS`].
//!
//! A crate of its own, not a module of the node behind a feature: the targets reach only the
//! node library's public decoders (what outside input reaches), so they need no internals,
//! and `cargo test -p qnet-fuzz` runs them with no feature to remember.
//!
//! A target never panics on any input. It returns [`Verdict::Accepted`] or
//! [`Verdict::Rejected`]; `Err` means an invariant broke (a decoded value does not round-trip).

use std::path::Path;

use bytes::BytesMut;
use chitchat::ChitchatId;
use ed25519_dalek::SigningKey;
use tokio_util::codec::Decoder;

use qnet_node::chain::block::{Block, BlockTemplate};
use qnet_node::chain::spec::ChainSpec;
use qnet_node::chain::tx::{check_tx_stateless, Address, SignedTransfer, Transfer};
use qnet_node::chain::validate::{check_block, BlockContext};
use qnet_node::config::{FileConfig, NodeArgs, NodeConfig};
use qnet_node::identity::{to_hex, Identity, NodeType};
use qnet_node::membership::card::{chitchat_id, issue, verify_card};
use qnet_node::membership::keys::{Head, RegionSummary};
use qnet_node::net::handshake::{check_hello, check_proof, codec, proof_payload, Challenge};
use qnet_node::net::message::{Hello, Message, Seeds, PROTOCOL_VERSION};
use qnet_node::region::Region;

/// What a target made of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The input decoded (and passed the checks the node runs next).
    Accepted,
    /// The input was refused with an error, as it should be for junk.
    Rejected,
}

/// A named decoder under test.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Short name; also the corpus folder name.
    pub name: &'static str,
    /// Runs the decoder; `Err` names a broken invariant.
    pub run: fn(&[u8]) -> Result<Verdict, String>,
    /// Valid inputs to start from.
    pub seeds: fn() -> Vec<Vec<u8>>,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "frame",
        run: run_frame,
        seeds: seeds_frame,
    },
    Target {
        name: "message",
        run: run_message,
        seeds: seeds_message,
    },
    Target {
        name: "handshake",
        run: run_handshake,
        seeds: seeds_handshake,
    },
    Target {
        name: "block",
        run: run_block,
        seeds: seeds_block,
    },
    Target {
        name: "tx",
        run: run_tx,
        seeds: seeds_tx,
    },
    Target {
        name: "address",
        run: run_address,
        seeds: seeds_address,
    },
    Target {
        name: "head",
        run: run_head,
        seeds: seeds_head,
    },
    Target {
        name: "summary",
        run: run_summary,
        seeds: seeds_summary,
    },
    Target {
        name: "card",
        run: run_card,
        seeds: seeds_card,
    },
    Target {
        name: "spec",
        run: run_spec,
        seeds: seeds_spec,
    },
    Target {
        name: "config",
        run: run_config,
        seeds: seeds_config,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

fn verdict<T, E>(r: &Result<T, E>) -> Verdict {
    if r.is_ok() {
        Verdict::Accepted
    } else {
        Verdict::Rejected
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Fixed keys of the fixture chain: a producer and a funded sender.
fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The chain the block and transaction targets check against: one producer, `key(1)`.
pub fn fixture_spec() -> ChainSpec {
    ChainSpec {
        chain_id: "fuzz".into(),
        genesis_time_ms: 1_000_000,
        slot_ms: 1_000,
        producers: vec![to_hex(key(1).verifying_key().as_bytes())],
        balances: vec![(
            Address::from_public_key(key(2).verifying_key().as_bytes()).to_string(),
            1_000_000,
        )],
    }
}

/// The identity whose member card the card target verifies.
fn card_identity() -> Identity {
    Identity::from_signing_key(key(3))
}

fn card_id() -> ChitchatId {
    chitchat_id(
        &card_identity(),
        7,
        std::net::SocketAddr::from(([127, 0, 0, 1], 9000)),
    )
}

/// Every length-delimited frame in a byte stream, each decoded as a [`Message`].
fn run_frame(bytes: &[u8]) -> Result<Verdict, String> {
    let mut codec = codec();
    let mut buf = BytesMut::from(bytes);
    let mut all_ok = true;
    loop {
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => all_ok &= run_message(&frame)? == Verdict::Accepted,
            Ok(None) => break,
            Err(_) => return Ok(Verdict::Rejected),
        }
    }
    match codec.decode_eof(&mut buf) {
        Ok(Some(frame)) => all_ok &= run_message(&frame)? == Verdict::Accepted,
        Ok(None) => {}
        Err(_) => return Ok(Verdict::Rejected),
    }
    Ok(if all_ok {
        Verdict::Accepted
    } else {
        Verdict::Rejected
    })
}

/// A message, then the payload decoders the node runs on it.
fn run_message(bytes: &[u8]) -> Result<Verdict, String> {
    let Ok(msg) = Message::decode(bytes) else {
        return Ok(Verdict::Rejected);
    };
    if msg.encode() != bytes {
        return Err(format!("message does not re-encode to its bytes: {msg:?}"));
    }
    match msg {
        Message::Block(b) => run_block(&b),
        Message::Tx(t) => run_tx(&t),
        Message::Blocks(list) => {
            for b in &list {
                run_block(b)?;
            }
            Ok(Verdict::Accepted)
        }
        Message::ChainSpec(json) => run_spec(json.as_bytes()),
        _ => Ok(Verdict::Accepted),
    }
}

/// A handshake message checked as the node checks the peer's `Hello` and `Proof`.
fn run_handshake(bytes: &[u8]) -> Result<Verdict, String> {
    let spec = fixture_spec();
    let genesis = spec.genesis_hash();
    let me = key(4).verifying_key().to_bytes();
    match Message::decode(bytes) {
        Ok(Message::Hello(hello)) => Ok(verdict(&check_hello(&hello, &spec.chain_id, &genesis))),
        Ok(Message::Proof(sig)) => {
            let challenge = Challenge {
                nonce: &[5; 32],
                my_key: &me,
                chain_id: &spec.chain_id,
                genesis: &genesis,
            };
            let peer = key(6).verifying_key().to_bytes();
            Ok(verdict(&check_proof(&challenge, &peer, &sig)))
        }
        _ => Ok(Verdict::Rejected),
    }
}

/// A block, then the stateless checks against the fixture chain's genesis.
fn run_block(bytes: &[u8]) -> Result<Verdict, String> {
    let Ok(block) = Block::decode(bytes) else {
        return Ok(Verdict::Rejected);
    };
    if block.encode() != bytes {
        return Err("block does not re-encode to its bytes".into());
    }
    let spec = fixture_spec();
    let genesis = spec.genesis_block();
    let ctx = BlockContext {
        spec: &spec,
        parent: Some(&genesis.header),
        now_ms: 2_000_000,
    };
    let checked = check_block(&block, &ctx);
    for tx in &block.txs {
        let _ = check_tx_stateless(tx, &spec.chain_id);
    }
    Ok(verdict(&checked))
}

/// A signed transfer, then its stateless checks.
fn run_tx(bytes: &[u8]) -> Result<Verdict, String> {
    let Ok(tx) = SignedTransfer::decode(bytes) else {
        return Ok(Verdict::Rejected);
    };
    if tx.encode() != bytes {
        return Err("transaction does not re-encode to its bytes".into());
    }
    let _ = (tx.hash(), tx.sender(), tx.transfer.total_cost());
    Ok(verdict(&check_tx_stateless(&tx, "fuzz")))
}

/// An address string (API paths, wallet input, chain spec balances).
fn run_address(bytes: &[u8]) -> Result<Verdict, String> {
    let Ok(address) = Address::parse(&text(bytes)) else {
        return Ok(Verdict::Rejected);
    };
    if Address::parse(&address.to_string()) != Ok(address) {
        return Err(format!("address {address} does not round-trip"));
    }
    Ok(Verdict::Accepted)
}

/// The `head` gossip value.
fn run_head(bytes: &[u8]) -> Result<Verdict, String> {
    let Some(head) = Head::decode(&text(bytes)) else {
        return Ok(Verdict::Rejected);
    };
    if Head::decode(&head.encode()) != Some(head) {
        return Err(format!("head {head:?} does not round-trip"));
    }
    Ok(Verdict::Accepted)
}

/// The `summary` gossip value of a region.
fn run_summary(bytes: &[u8]) -> Result<Verdict, String> {
    let Some(summary) = RegionSummary::decode(&text(bytes)) else {
        return Ok(Verdict::Rejected);
    };
    if RegionSummary::decode(&summary.encode()).as_ref() != Some(&summary) {
        return Err(format!("summary {summary:?} does not round-trip"));
    }
    Ok(Verdict::Accepted)
}

/// The `card` gossip value, verified under a fixed member id.
fn run_card(bytes: &[u8]) -> Result<Verdict, String> {
    let id = card_id();
    let Some(card) = verify_card(&id, &text(bytes)) else {
        return Ok(Verdict::Rejected);
    };
    if card.public_key != card_identity().public_key().to_bytes() {
        return Err("a card verified for a key other than the member's".into());
    }
    Ok(Verdict::Accepted)
}

/// A chain spec JSON file, then everything the node derives from it.
fn run_spec(bytes: &[u8]) -> Result<Verdict, String> {
    let Ok(spec) = ChainSpec::from_json(&text(bytes)) else {
        return Ok(Verdict::Rejected);
    };
    let again = ChainSpec::from_json(&spec.to_json()).map_err(|e| e.to_string())?;
    if again != spec || again.genesis_hash() != spec.genesis_hash() {
        return Err("chain spec does not round-trip".into());
    }
    for slot in [0, 1, u64::MAX] {
        let _ = (spec.producer_for_slot(slot), spec.slot_start_ms(slot));
    }
    let _ = (spec.slot_at(u64::MAX), spec.genesis_accounts());
    Ok(Verdict::Accepted)
}

/// A TOML config file, then the merge with (empty) flags that validates every setting.
fn run_config(bytes: &[u8]) -> Result<Verdict, String> {
    let Ok(file) = FileConfig::parse(Path::new("fuzz.toml"), &text(bytes)) else {
        return Ok(Verdict::Rejected);
    };
    Ok(verdict(&NodeConfig::merge(NodeArgs::default(), file)))
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(payload);
    out
}

/// A valid transfer from the fixture's funded key.
pub fn sample_tx(nonce: u64) -> SignedTransfer {
    Transfer {
        chain_id: "fuzz".into(),
        from: key(2).verifying_key().to_bytes(),
        to: Address::from_public_key(key(9).verifying_key().as_bytes()),
        amount: 10,
        fee: 1,
        nonce,
    }
    .sign(&key(2))
}

/// A valid block at height 1 of the fixture chain carrying `txs`.
pub fn sample_block(txs: usize) -> Block {
    let spec = fixture_spec();
    let genesis = spec.genesis_block();
    let slot = 3;
    Block::produce(
        BlockTemplate {
            chain_id: spec.chain_id.clone(),
            height: 1,
            slot,
            parent_hash: genesis.hash(),
            timestamp_ms: spec.slot_start_ms(slot) + 10,
        },
        (0..txs).map(|n| sample_tx(n as u64)).collect(),
        &key(1),
    )
}

fn sample_messages() -> Vec<Message> {
    let spec = fixture_spec();
    vec![
        Message::Hello(sample_hello()),
        Message::Proof([9; 64]),
        Message::GetSeeds {
            region: "eu".into(),
        },
        Message::Seeds(Seeds {
            region_seeds: vec!["127.0.0.1:9000".into()],
            bridge_seeds: vec!["127.0.0.1:9001".into()],
        }),
        Message::Error {
            reason: "not joined".into(),
        },
        Message::GetChainSpec,
        Message::ChainSpec(spec.to_json()),
        Message::Block(sample_block(2).encode()),
        Message::Tx(sample_tx(0).encode()),
        Message::GetBlocks { from: 1, limit: 64 },
        Message::Blocks(vec![sample_block(0).encode(), sample_block(1).encode()]),
    ]
}

fn sample_hello() -> Hello {
    let spec = fixture_spec();
    Hello {
        protocol: PROTOCOL_VERSION,
        public_key: key(6).verifying_key().to_bytes(),
        chain_id: spec.chain_id.clone(),
        genesis: spec.genesis_hash(),
        nonce: [8; 32],
    }
}

fn seeds_frame() -> Vec<Vec<u8>> {
    let all: Vec<u8> = sample_messages()
        .iter()
        .flat_map(|m| frame(&m.encode()))
        .collect();
    let mut out: Vec<Vec<u8>> = sample_messages()
        .iter()
        .map(|m| frame(&m.encode()))
        .collect();
    out.push(all);
    out
}

fn seeds_message() -> Vec<Vec<u8>> {
    sample_messages().iter().map(Message::encode).collect()
}

fn seeds_handshake() -> Vec<Vec<u8>> {
    let spec = fixture_spec();
    let genesis = spec.genesis_hash();
    let peer = key(6);
    let payload = proof_payload(
        &[5; 32],
        &peer.verifying_key().to_bytes(),
        &key(4).verifying_key().to_bytes(),
        &spec.chain_id,
        &genesis,
    );
    let sig = ed25519_dalek::Signer::sign(&peer, &payload).to_bytes();
    vec![
        Message::Hello(sample_hello()).encode(),
        Message::Proof(sig).encode(),
    ]
}

fn seeds_block() -> Vec<Vec<u8>> {
    vec![
        sample_block(0).encode(),
        sample_block(1).encode(),
        sample_block(3).encode(),
    ]
}

fn seeds_tx() -> Vec<Vec<u8>> {
    vec![sample_tx(0).encode(), sample_tx(u64::MAX).encode()]
}

fn seeds_address() -> Vec<Vec<u8>> {
    vec![sample_tx(0).transfer.to.to_string().into_bytes()]
}

fn seeds_head() -> Vec<Vec<u8>> {
    let head = Head {
        height: 42,
        hash: sample_block(0).hash(),
    };
    vec![head.encode().into_bytes()]
}

fn seeds_summary() -> Vec<Vec<u8>> {
    let Ok(region) = Region::new("eu") else {
        return Vec::new();
    };
    let summary = RegionSummary {
        region,
        cell: 0,
        cells: 0,
        known: 5,
        live: 4,
        bridges: vec!["a1b2c3d4e5f60718".into(), "0011223344556677".into()],
        bridge_addrs: vec![
            std::net::SocketAddr::from(([127, 0, 0, 1], 9000)),
            std::net::SocketAddr::from(([10, 0, 0, 2], 9000)),
        ],
        seeds: vec![std::net::SocketAddr::from(([127, 0, 0, 1], 9002))],
        bridge_seeds: vec![std::net::SocketAddr::from(([127, 0, 0, 1], 9003))],
        head_height: Some(17),
        updated_ms: 1_700_000_000_000,
    };
    vec![summary.encode().into_bytes()]
}

fn seeds_card() -> Vec<Vec<u8>> {
    let Ok(region) = Region::new("eu") else {
        return Vec::new();
    };
    vec![issue(&card_identity(), &card_id(), &region, NodeType::Super).into_bytes()]
}

fn seeds_spec() -> Vec<Vec<u8>> {
    let spec = fixture_spec();
    vec![
        spec.to_json().into_bytes(),
        serde_json::to_vec(&spec).unwrap_or_default(),
    ]
}

fn seeds_config() -> Vec<Vec<u8>> {
    vec![br#"node_type = "super"
region = "eu"
bootstrap_peers = ["127.0.0.1:9000", "seed.example.org:9876"]
enable_microblocks = true
data_dir = "./data"
chain = "./chain.json"
p2p_addr = "0.0.0.0:9876"
advertise_addr = "10.0.0.2:9876"
rpc_addr = "127.0.0.1:8001"
gossip_interval = "500ms"
log_format = "json"
regional_monitor_interval = "30s"
failover_monitor_interval = "2m"
health_warning_threshold = 0.5
min_failed_regions = 2
retention_window = "24h"
bridges_per_region = 3
strategy_settle_time = "30s"
dead_node_grace_period = "5m"
"#
    .to_vec()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_is_accepted() {
        for t in TARGETS {
            let seeds = (t.seeds)();
            assert!(!seeds.is_empty(), "{} has no seeds", t.name);
            for (i, s) in seeds.iter().enumerate() {
                assert_eq!(
                    (t.run)(s),
                    Ok(Verdict::Accepted),
                    "seed {i} of {} refused",
                    t.name
                );
            }
        }
    }

    #[test]
    fn junk_is_rejected_by_every_target() {
        for t in TARGETS {
            assert_eq!(
                (t.run)(b"\xff\xfe junk"),
                Ok(Verdict::Rejected),
                "{}",
                t.name
            );
        }
    }

    #[test]
    fn names_are_unique_and_found() {
        for t in TARGETS {
            assert_eq!(target(t.name).map(|f| f.name), Some(t.name));
        }
        assert!(target("nope").is_none());
    }
}
