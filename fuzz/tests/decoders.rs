//! Hostile input to every decoder (`qnet_fuzz::TARGETS`): property tests with arbitrary
//! and mutated-valid bytes (never a panic or a broken invariant), round trips of generated
//! valid values, and a replay of the checked-in corpus under `tests/corpus/<target>/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use proptest::collection::vec;
use proptest::prelude::*;
use qnet_fuzz::{Verdict, TARGETS};
use qnet_node::chain::block::{Block, BlockTemplate};
use qnet_node::chain::spec::ChainSpec;
use qnet_node::chain::tx::{Address, SignedTransfer, Transfer, ADDRESS_LEN};
use qnet_node::config::{FileConfig, NodeArgs, NodeConfig};
use qnet_node::identity::{to_hex, Identity, NodeType};
use qnet_node::membership::card::{chitchat_id, issue, verify_card};
use qnet_node::membership::keys::{Head, RegionSummary};
use qnet_node::net::message::{Hello, Message, Seeds};
use qnet_node::region::Region;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

/// Fewer cases where every case signs or verifies (ed25519 is slow in debug builds).
fn crypto_config() -> ProptestConfig {
    ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    }
}

fn run_all(input: &[u8]) -> Result<(), TestCaseError> {
    for t in TARGETS {
        let verdict = (t.run)(input);
        prop_assert!(verdict.is_ok(), "{}: {:?}", t.name, verdict);
    }
    Ok(())
}

/// One edit of a valid input.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Truncate(usize),
    Repeat(usize, u8, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<usize>(), vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Edit::Remove(i, n)),
        any::<usize>().prop_map(Edit::Truncate),
        (
            any::<usize>(),
            prop::sample::select(b"[{\"0,:=".to_vec()),
            1usize..2_000
        )
            .prop_map(|(i, b, n)| Edit::Repeat(i, b, n)),
    ]
}

fn apply(input: &mut Vec<u8>, e: &Edit) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
    match e {
        Edit::Set(i, b) => {
            if !input.is_empty() {
                let n = input.len();
                input[i % n] = *b;
            }
        }
        Edit::Insert(i, bytes) => {
            let i = at(*i, input.len());
            input.splice(i..i, bytes.iter().copied());
        }
        Edit::Remove(i, n) => {
            let i = at(*i, input.len());
            let end = (i + n).min(input.len());
            input.drain(i..end);
        }
        Edit::Truncate(i) => {
            let i = at(*i, input.len());
            input.truncate(i);
        }
        Edit::Repeat(i, b, n) => {
            let i = at(*i, input.len());
            input.splice(i..i, std::iter::repeat_n(*b, *n));
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_break_a_decoder(bytes in vec(any::<u8>(), 0..2048)) {
        run_all(&bytes)?;
    }

    #[test]
    fn arbitrary_text_never_breaks_a_decoder(text in "[ -~\n\t\u{80}-\u{10ffff}]{0,512}") {
        run_all(text.as_bytes())?;
    }

    #[test]
    fn mutated_valid_inputs_never_break_a_decoder(
        target in 0..TARGETS.len(),
        seed in any::<usize>(),
        edits in vec(edit(), 1..6),
    ) {
        let t = &TARGETS[target];
        let seeds = (t.seeds)();
        let mut input = seeds[seed % seeds.len()].clone();
        for e in &edits {
            apply(&mut input, e);
        }
        let verdict = (t.run)(&input);
        prop_assert!(verdict.is_ok(), "{}: {:?}", t.name, verdict);
    }
}

/// A few signing keys, derived once.
fn key(seed: u8) -> SigningKey {
    static KEYS: std::sync::OnceLock<Vec<SigningKey>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| (0..8u8).map(|s| SigningKey::from_bytes(&[s; 32])).collect())
        [usize::from(seed) % 8]
        .clone()
}

fn transfer() -> impl Strategy<Value = SignedTransfer> {
    (
        "[a-z0-9.-]{0,64}",
        any::<u8>(),
        any::<[u8; ADDRESS_LEN]>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(chain_id, seed, to, amount, fee, nonce)| {
            let k = key(seed);
            Transfer {
                chain_id,
                from: k.verifying_key().to_bytes(),
                to: Address::from_bytes(to),
                amount,
                fee,
                nonce,
            }
            .sign(&k)
        })
}

fn block() -> impl Strategy<Value = Block> {
    (
        "[a-z0-9.-]{0,64}",
        any::<u64>(),
        any::<u64>(),
        any::<[u8; 32]>(),
        any::<u64>(),
        any::<u8>(),
        vec(transfer(), 0..4),
    )
        .prop_map(
            |(chain_id, height, slot, parent_hash, timestamp_ms, seed, txs)| {
                Block::produce(
                    BlockTemplate {
                        chain_id,
                        height,
                        slot,
                        parent_hash,
                        timestamp_ms,
                    },
                    txs,
                    &key(seed),
                )
            },
        )
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)))
}

fn region() -> impl Strategy<Value = Region> {
    "[a-z0-9-]{1,32}".prop_map(|r| Region::new(&r).unwrap())
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            any::<u16>(),
            any::<[u8; 32]>(),
            ".{0,80}",
            any::<[u8; 32]>(),
            any::<[u8; 32]>()
        )
            .prop_map(|(protocol, public_key, chain_id, genesis, nonce)| {
                Message::Hello(Hello {
                    protocol,
                    public_key,
                    chain_id,
                    genesis,
                    nonce,
                })
            }),
        any::<[u8; 32]>().prop_map(|half| {
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&half);
            Message::Proof(sig)
        }),
        ".{0,40}".prop_map(|region| Message::GetSeeds { region }),
        (vec(".{0,30}", 0..8), vec(".{0,30}", 0..8)).prop_map(|(region_seeds, bridge_seeds)| {
            Message::Seeds(Seeds {
                region_seeds,
                bridge_seeds,
            })
        }),
        ".{0,80}".prop_map(|reason| Message::Error { reason }),
        Just(Message::GetChainSpec),
        ".{0,200}".prop_map(Message::ChainSpec),
        block().prop_map(|b| Message::Block(b.encode())),
        transfer().prop_map(|t| Message::Tx(t.encode())),
        (any::<u64>(), any::<u32>()).prop_map(|(from, limit)| Message::GetBlocks { from, limit }),
        vec(block(), 0..3).prop_map(|bs| Message::Blocks(bs.iter().map(Block::encode).collect())),
    ]
}

fn spec() -> impl Strategy<Value = ChainSpec> {
    (
        "[A-Za-z0-9._-]{1,64}",
        any::<u64>(),
        1u64..=u64::MAX,
        prop::collection::btree_set(0u8..8, 1..5),
        prop::collection::btree_map(any::<[u8; ADDRESS_LEN]>(), 0u64..=u64::MAX / 8, 0..6),
    )
        .prop_map(
            |(chain_id, genesis_time_ms, slot_ms, producers, balances)| ChainSpec {
                chain_id,
                genesis_time_ms,
                slot_ms,
                producers: producers
                    .into_iter()
                    .map(|s| to_hex(key(s).verifying_key().as_bytes()))
                    .collect(),
                balances: balances
                    .into_iter()
                    .map(|(a, b)| (Address::from_bytes(a).to_string(), b))
                    .collect(),
            },
        )
}

proptest! {
    #![proptest_config(crypto_config())]

    #[test]
    fn messages_round_trip(m in message()) {
        let bytes = m.encode();
        prop_assert_eq!(Message::decode(&bytes).unwrap(), m);
        let run = qnet_fuzz::target("message").unwrap().run;
        prop_assert!(run(&bytes).is_ok());
    }

    #[test]
    fn transfers_round_trip_and_verify(tx in transfer()) {
        let decoded = SignedTransfer::decode(&tx.encode()).unwrap();
        prop_assert!(decoded.verify_signature());
        prop_assert_eq!(decoded.hash(), tx.hash());
        prop_assert_eq!(decoded, tx);
    }

    #[test]
    fn blocks_round_trip_and_verify(b in block()) {
        let decoded = Block::decode(&b.encode()).unwrap();
        prop_assert!(decoded.verify_signature());
        prop_assert_eq!(decoded.computed_tx_root(), b.header.tx_root);
        prop_assert_eq!(decoded, b);
    }

    #[test]
    fn cards_verify_only_for_their_member(
        seed in any::<[u8; 32]>(),
        generation in 0u64..u64::MAX,
        gossip in addr(),
        region in region(),
        node_type in prop::sample::select(vec![NodeType::Super, NodeType::Full, NodeType::Light]),
    ) {
        let me = Identity::from_signing_key(SigningKey::from_bytes(&seed));
        let id = chitchat_id(&me, generation, gossip);
        let card = issue(&me, &id, &region, node_type);
        let verified = verify_card(&id, &card).unwrap();
        prop_assert_eq!(verified.region, region);
        prop_assert_eq!(verified.node_type, node_type);
        prop_assert_eq!(verified.public_key, me.public_key().to_bytes());
        let next = chitchat_id(&me, generation + 1, gossip);
        prop_assert!(verify_card(&next, &card).is_none());
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn addresses_round_trip(raw in any::<[u8; ADDRESS_LEN]>()) {
        let a = Address::from_bytes(raw);
        prop_assert_eq!(Address::parse(&a.to_string()), Ok(a));
    }

    #[test]
    fn heads_round_trip(height in any::<u64>(), hash in any::<[u8; 32]>()) {
        let head = Head { height, hash };
        prop_assert_eq!(Head::decode(&head.encode()), Some(head));
    }

    #[test]
    fn summaries_round_trip(
        region in region(),
        live in any::<u32>(),
        extra in any::<u32>(),
        (cell, cells) in (1..=qnet_node::membership::cell::MAX_CELLS)
            .prop_flat_map(|n| (0..n, Just(if n == 1 { 0 } else { n }))),
        bridges in vec(("[0-9a-f]{16}", addr()), 0..=32),
        seeds in vec(addr(), 0..=8),
        bridge_seeds in vec(addr(), 0..=32),
        head_height in any::<Option<u64>>(),
        updated_ms in any::<u64>(),
    ) {
        let s = RegionSummary {
            region,
            cell,
            cells,
            known: live.saturating_add(extra),
            live,
            bridges: bridges.iter().map(|(id, _)| id.clone()).collect(),
            bridge_addrs: bridges.iter().map(|(_, a)| *a).collect(),
            seeds,
            bridge_seeds,
            head_height,
            updated_ms,
        };
        prop_assert_eq!(RegionSummary::decode(&s.encode()), Some(s));
    }

    #[test]
    fn specs_round_trip(s in spec()) {
        let again = ChainSpec::from_json(&s.to_json()).unwrap();
        prop_assert_eq!(again.genesis_hash(), s.genesis_hash());
        prop_assert_eq!(again, s);
    }

    #[test]
    fn config_files_round_trip(
        region in region(),
        interval_ms in 1u64..100_000,
        threshold in 0.01f64..=1.0,
        bridges in 1usize..=16,
        min_failed in 1usize..10,
        port in 1u16..,
    ) {
        let text = format!(
            "region = \"{region}\"\ngossip_interval = \"{interval_ms}ms\"\n\
             health_warning_threshold = {threshold:?}\nbridges_per_region = {bridges}\n\
             min_failed_regions = {min_failed}\nrpc_addr = \"127.0.0.1:{port}\"\n"
        );
        let file = FileConfig::parse(Path::new("p.toml"), &text).unwrap();
        let c = NodeConfig::merge(NodeArgs::default(), file).unwrap();
        prop_assert_eq!(c.region, region);
        prop_assert_eq!(c.membership.gossip_interval.as_millis(), u128::from(interval_ms));
        prop_assert_eq!(c.monitor.health_warning_threshold, threshold);
        prop_assert_eq!(c.membership.bridges_per_region, bridges);
        prop_assert_eq!(c.monitor.min_failed_regions, min_failed);
        prop_assert_eq!(c.rpc_addr, SocketAddr::from(([127, 0, 0, 1], port)));
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Replays every checked-in input: no target may break; `seed-*` files must decode, and
/// `hostile-*` files (hand-made abuse) and `crash-*` files (fixed regressions) must not
/// break their target.
#[test]
fn corpus_replays_clean() {
    let mut replayed = 0;
    for t in TARGETS {
        let dir = corpus_dir().join(t.name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {} missing: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "corpus {} is empty", dir.display());
        for path in files {
            let input = std::fs::read(&path).unwrap();
            let verdict = (t.run)(&input);
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(verdict.is_ok(), "{}: {verdict:?}", path.display());
            if name.starts_with("seed-") {
                assert_eq!(verdict, Ok(Verdict::Accepted), "{}", path.display());
            }
            replayed += 1;
        }
    }
    assert!(replayed >= TARGETS.len());
}

/// The checked-in seeds are the current valid encodings: a format change shows up here, and
/// `cargo run -p qnet-fuzz --example fuzz -- --write-seeds` refreshes them.
#[test]
fn corpus_seeds_match_the_encoders() {
    for t in TARGETS {
        for (i, seed) in (t.seeds)().iter().enumerate() {
            let path = corpus_dir().join(t.name).join(format!("seed-{i}"));
            let on_disk = std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; run the fuzz example with --write-seeds",
                    path.display()
                )
            });
            assert_eq!(&on_disk, seed, "{} is stale", path.display());
        }
    }
}
