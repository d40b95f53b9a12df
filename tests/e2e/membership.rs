//! Membership end to end: four processes in three regions converge, a killed
//! node turns dead at its peers, a restarted node rejoins from its peer store, bad input
//! exits with one clear line, SIGTERM shuts down cleanly.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const CONVERGE: Duration = Duration::from_secs(60);

fn regions_live(doc: &Value) -> Vec<(String, u64, u64)> {
    doc["regions"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    (
                        r["region"].as_str().unwrap_or("").to_string(),
                        r["known"].as_u64().unwrap_or(0),
                        r["live"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn peer<'a>(doc: &'a Value, node_id: &str) -> Option<&'a Value> {
    doc["peers"]
        .as_array()?
        .iter()
        .find(|p| p["node_id"].as_str() == Some(node_id))
}

async fn node_id(node: &NodeProcess) -> String {
    wait_for("node status", CONVERGE, || async {
        let s = get_json(&node.url("/v1/status")).await?;
        s["node_id"].as_str().map(str::to_string)
    })
    .await
}

async fn all_three_regions_live(node: &NodeProcess) {
    wait_for(
        &format!("{} sees eu, na, asia live", node.spec.data_dir.display()),
        CONVERGE,
        || async {
            let doc = get_json(&node.url("/v1/regions")).await?;
            let regions = regions_live(&doc);
            let live = |name: &str| regions.iter().any(|(r, _, l)| r == name && *l > 0);
            (regions.len() == 3 && live("eu") && live("na") && live("asia")).then_some(())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_nodes_converge_detect_death_and_rejoin_from_peer_store() {
    let root = test_dir("four-nodes");
    let first = NodeSpec::new(&root, "eu-super", "eu", "super");
    let bootstrap = vec![first.p2p_addr()];
    let mut specs = vec![first];
    for (name, region, kind) in [
        ("eu-full", "eu", "full"),
        ("na-super", "na", "super"),
        ("asia-full", "asia", "full"),
    ] {
        let mut s = NodeSpec::new(&root, name, region, kind);
        s.bootstrap = bootstrap.clone();
        specs.push(s);
    }
    let mut nodes: Vec<NodeProcess> = specs.into_iter().map(NodeProcess::start).collect();
    let mut ids = Vec::new();
    for n in &nodes {
        ids.push(node_id(n).await);
    }
    for n in &nodes {
        all_three_regions_live(n).await;
    }
    // same-region members are listed with the right region and type
    for (i, j) in [(0usize, 1usize), (1, 0)] {
        let expected_type = if j == 0 { "super" } else { "full" };
        let (id_j, node_i) = (ids[j].clone(), &nodes[i]);
        wait_for("same-region peer listed", CONVERGE, || async {
            let doc = get_json(&node_i.url("/v1/peers")).await?;
            let p = peer(&doc, &id_j)?;
            (p["region"] == "eu" && p["node_type"] == expected_type && p["live"] == true)
                .then_some(())
        })
        .await;
    }
    for n in &nodes {
        n.wait_ready("ready", CONVERGE).await;
    }

    // kill -9 the eu full node: its region peer marks it dead
    let killed = nodes.remove(1).kill();
    let eu_super = &nodes[0];
    let dead_id = ids[1].clone();
    wait_for("killed node turns live:false", CONVERGE, || async {
        let doc = get_json(&eu_super.url("/v1/peers")).await?;
        (peer(&doc, &dead_id)?["live"] == false).then_some(())
    })
    .await;

    // restart it without bootstrap peers: it rejoins from its peer store
    let mut again = killed.clone();
    again.bootstrap.clear();
    let restarted = NodeProcess::start(again);
    assert_eq!(
        node_id(&restarted).await,
        ids[1],
        "node id is stable across restarts"
    );
    wait_for(
        "restarted node live again at its peer",
        CONVERGE,
        || async {
            let doc = get_json(&eu_super.url("/v1/peers")).await?;
            (peer(&doc, &dead_id)?["live"] == true).then_some(())
        },
    )
    .await;
    all_three_regions_live(&restarted).await;
    assert!(
        restarted.log().contains("rejoining from the peer store"),
        "log: {}",
        restarted.log()
    );
}

fn assert_one_clear_line(args: &[&str], needle: &str) {
    let (code, stderr) = run_to_exit(args, Duration::from_secs(30));
    assert!(
        matches!(code, Some(c) if c != 0),
        "{args:?} exited with {code:?}"
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = lines.last().copied().unwrap_or("");
    assert!(
        last.contains(needle),
        "{args:?}: expected {needle:?} in the last line, got {stderr:?}"
    );
    assert!(
        lines.iter().filter(|l| l.contains("error")).count() <= 2,
        "{args:?}: too chatty: {stderr:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_with_a_clear_line() {
    let root = test_dir("bad-input");
    let dir = root.join("d");
    let dir = dir.to_str().unwrap();
    assert_one_clear_line(&["--region", "EU", "--data-dir", dir], "--region");
    assert_one_clear_line(
        &[
            "--region",
            "eu",
            "--gossip-interval",
            "soon",
            "--data-dir",
            dir,
        ],
        "--gossip-interval",
    );
    assert_one_clear_line(
        &["--region", "eu", "--p2p-addr", "nowhere", "--data-dir", dir],
        "--p2p-addr",
    );
    assert_one_clear_line(
        &[
            "--region",
            "eu",
            "--config",
            "/nonexistent/qnet.toml",
            "--data-dir",
            dir,
        ],
        "/nonexistent/qnet.toml",
    );
    let bad_toml = root.join("bad.toml");
    std::fs::write(&bad_toml, "region = [").unwrap();
    assert_one_clear_line(
        &["--config", bad_toml.to_str().unwrap(), "--data-dir", dir],
        "bad.toml",
    );
    assert_one_clear_line(&["--node-type", "mega", "--region", "eu"], "--node-type");

    // a data dir in use by a running node
    let spec = NodeSpec::new(&root, "locked", "eu", "full");
    let running = NodeProcess::start(spec.clone());
    wait_for("first node up", CONVERGE, || async {
        (get_status(&running.url("/health/live")).await? == 200).then_some(())
    })
    .await;
    let other = NodeSpec::new(&root, "locked", "eu", "full");
    let args = other.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_one_clear_line(&args, "in use");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_flushes_and_exits_zero() {
    let root = test_dir("sigterm");
    let first = NodeSpec::new(&root, "a", "eu", "super");
    let mut second = NodeSpec::new(&root, "b", "eu", "full");
    second.bootstrap = vec![first.p2p_addr()];
    let a = NodeProcess::start(first);
    let mut b = NodeProcess::start(second.clone());
    let b_id = node_id(&b).await;
    wait_for("a sees b live", CONVERGE, || async {
        let doc = get_json(&a.url("/v1/peers")).await?;
        (peer(&doc, &b_id)?["live"] == true).then_some(())
    })
    .await;
    b.signal(libc::SIGTERM);
    let status = b
        .wait_exit(Duration::from_secs(30))
        .expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "log: {}", b.log());
    let log = b.log();
    assert!(log.contains("left the cluster"), "log: {log}");
    assert!(log.contains("stopped"), "log: {log}");
    wait_for("a sees b not live", CONVERGE, || async {
        let doc = get_json(&a.url("/v1/peers")).await?;
        (peer(&doc, &b_id)?["live"] == false).then_some(())
    })
    .await;
    // the store was flushed and unlocked: the same data dir starts again with the same id
    let b2 = NodeProcess::start(second);
    assert_eq!(node_id(&b2).await, b_id);
}

/// A real chitchat node that speaks the protocol but cannot show a valid member card.
async fn forged_member(
    cluster_id: String,
    target: std::net::SocketAddr,
    card: String,
) -> chitchat::ChitchatHandle {
    let port = reserve_ports();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let id = chitchat::ChitchatId::new(format!("{:016x}", u64::from(port)), 1, addr);
    let config = chitchat::ChitchatConfig {
        chitchat_id: id,
        cluster_id,
        gossip_interval: Duration::from_millis(200),
        listen_addr: addr,
        seed_nodes: vec![target.to_string()],
        failure_detector_config: Default::default(),
        marked_for_deletion_grace_period: Duration::from_secs(60),
        catchup_callback: None,
        extra_liveness_predicate: None,
        protocol_version: chitchat::ProtocolVersion::V1,
    };
    chitchat::spawn_chitchat(
        config,
        vec![("card".into(), card), ("ready".into(), "1".into())],
        &chitchat::transport::UdpTransport,
    )
    .await
    .expect("forged chitchat node")
}

/// A chitchat SYN (wire protocol v0) for `cluster_id` whose digest names as many made-up
/// members as fit one datagram.
fn digest_flood(cluster_id: &str, salt: u32) -> Vec<u8> {
    fn str16(buf: &mut Vec<u8>, s: &str) {
        buf.extend((s.len() as u16).to_le_bytes());
        buf.extend(s.as_bytes());
    }
    let mut entries = Vec::new();
    let mut count: u16 = 0;
    while entries.len() + 57 + cluster_id.len() + 8 < 60_000 {
        str16(&mut entries, &format!("{salt:08x}{count:08x}"));
        entries.extend(u64::from(count).to_le_bytes());
        entries.extend([4, 127, 0, 0, 1]);
        entries.extend((10_000 + count).to_le_bytes());
        for v in [u64::MAX, 0, u64::MAX] {
            entries.extend(v.to_le_bytes());
        }
        count += 1;
    }
    let mut out = 45_139u16.to_le_bytes().to_vec();
    out.extend([0, 0]);
    out.extend(count.to_le_bytes());
    out.extend(entries);
    str16(&mut out, cluster_id);
    out
}

/// Two nodes of region `eu` (`a` super, `b` full, bootstrapped from `a`), started and
/// converged: the target of the forged-gossip tests.
struct GossipPair {
    a: NodeProcess,
    b: NodeProcess,
    b_id: String,
    /// `a`'s gossip address.
    target: std::net::SocketAddr,
    /// `a`'s regional cluster id.
    cluster_id: String,
}

impl GossipPair {
    async fn start(name: &str) -> GossipPair {
        let root = test_dir(name);
        let first = NodeSpec::new(&root, "a", "eu", "super");
        let mut second = NodeSpec::new(&root, "b", "eu", "full");
        second.bootstrap = vec![first.p2p_addr()];
        let target = first.p2p_addr();
        let a = NodeProcess::start(first);
        let b = NodeProcess::start(second);
        let b_id = node_id(&b).await;
        wait_for("a sees b", CONVERGE, || async {
            let doc = get_json(&a.url("/v1/peers")).await?;
            (peer(&doc, &b_id)?["live"] == true).then_some(())
        })
        .await;
        let status = get_json(&a.url("/v1/status")).await.expect("status");
        let cluster_id = format!("{}/eu", status["chain_id"].as_str().unwrap());
        GossipPair {
            a,
            b,
            b_id,
            target,
            cluster_id,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_malformed_and_flooding_gossip_neither_crashes_nor_adds_members() {
    let GossipPair {
        a,
        b: _b,
        b_id,
        target,
        cluster_id,
    } = GossipPair::start("gossip-guard").await;

    // members that speak chitchat but carry no valid card: garbage, a well-formed card with
    // a bad key and signature, no card at all (copied cards are covered by unit tests)
    let bad_sig_card = format!("v1 {} eu super {}", "00".repeat(32), "00".repeat(64));
    let forged = vec![
        forged_member(cluster_id.clone(), target, "garbage".into()).await,
        forged_member(cluster_id.clone(), target, bad_sig_card).await,
        forged_member(cluster_id.clone(), target, String::new()).await,
    ];

    // junk, oversized and flooding datagrams at the gossip port, bounded in count
    let junk = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let big = vec![0xA5u8; 65_000];
    for i in 0..5_000u32 {
        let payload: &[u8] = match i % 3 {
            0 => &big,
            1 => b"\x00\x01garbage",
            _ => &i.to_le_bytes(),
        };
        let _ = junk.send_to(payload, target).await;
        if i % 500 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // well-formed SYNs for another cluster, with a big digest: refused as a bad cluster
    for round in 0..50u32 {
        let _ = junk
            .send_to(&digest_flood(&"x".repeat(4_000), round), target)
            .await;
    }
    // give the forged members many gossip rounds to try
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        get_status(&a.url("/health/live")).await,
        Some(200),
        "node survives"
    );
    let doc = get_json(&a.url("/v1/peers")).await.expect("peers");
    let ids: Vec<&str> = doc["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["node_id"].as_str())
        .collect();
    assert_eq!(
        ids,
        vec![b_id.as_str()],
        "only the real member is admitted: {doc}"
    );
    assert_eq!(
        peer(&doc, &b_id).unwrap()["live"],
        true,
        "the real member stays live"
    );
    let regions = get_json(&a.url("/v1/regions")).await.expect("regions");
    let eu = regions["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == "eu")
        .cloned()
        .unwrap();
    assert_eq!(eu["known"], 2, "{regions}");
    let metrics = reqwest::get(a.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with(
            "qnet_gossip_messages_total{cluster=\"regional\",direction=\"received\"}"
        )),
        "gossip counters exported"
    );
    for f in forged {
        let _ = f.shutdown().await;
    }
}

/// A chitchat SYN (wire protocol v1) whose compressed digest stream is as many tiny zstd
/// blocks as fit one datagram, each expanding to 64 KiB of zeros: ~170 MB once decompressed.
fn decompression_bomb(cluster_id: &str) -> Vec<u8> {
    let block = zstd::bulk::compress(&[0u8; u16::MAX as usize], 19).expect("zstd");
    let mut out = 45_139u16.to_le_bytes().to_vec();
    out.extend([1, 0]);
    while out.len() + 3 + block.len() + 3 + cluster_id.len() < 60_000 {
        out.push(1);
        out.extend((block.len() as u16).to_le_bytes());
        out.extend(&block);
    }
    out.push(0);
    out.extend((cluster_id.len() as u16).to_le_bytes());
    out.extend(cluster_id.as_bytes());
    out
}

/// Compressed gossip streams are capped when decompressed (vendor/chitchat/QNET-PATCH.md):
/// bombs cost the node neither its memory nor its members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decompression_bombs_are_refused_in_bounded_memory() {
    let GossipPair {
        a,
        b: _b,
        b_id,
        target,
        cluster_id,
    } = GossipPair::start("gossip-bomb").await;
    let bomb = decompression_bomb(&cluster_id);
    let before = a.peak_rss_bytes().expect("peak rss");
    let junk = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..40 {
        let _ = junk.send_to(&bomb, target).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(get_status(&a.url("/health/live")).await, Some(200));
    let after = a.peak_rss_bytes().expect("peak rss");
    let bomb_len = bomb.len();
    assert!(
        after < before + 64 * 1024 * 1024,
        "peak RSS grew from {before} to {after} bytes after {bomb_len}-byte bombs"
    );
    let doc = get_json(&a.url("/v1/peers")).await.expect("peers");
    assert_eq!(peer(&doc, &b_id).unwrap()["live"], true, "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_bootstrap_peer_starts_late_joins_when_it_comes_up() {
    let root = test_dir("late-bootstrap");
    let first = NodeSpec::new(&root, "a", "eu", "super");
    let mut second = NodeSpec::new(&root, "b", "na", "super");
    second.bootstrap = vec![first.p2p_addr()];
    let b = NodeProcess::start(second);
    // b gives up its first bootstrap rounds, not joined: not ready
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        get_status(&b.url("/health/ready")).await,
        Some(503),
        "{}",
        b.log()
    );
    let a = NodeProcess::start(first);
    for n in [&a, &b] {
        wait_for("both regions live", CONVERGE, || async {
            let doc = get_json(&n.url("/v1/regions")).await?;
            let regions = regions_live(&doc);
            (regions.len() == 2 && regions.iter().all(|(_, _, live)| *live > 0)).then_some(())
        })
        .await;
    }
    assert_eq!(get_status(&b.url("/health/ready")).await, Some(200));
}

/// Digest flooding: well-formed SYNs of the node's own cluster whose digests name ~1,100
/// made-up members each. chitchat 0.13 would create a node state for every member named in a
/// digest (~220k), stalling the node's gossip; the transport guard (`membership::admission`)
/// lets a stranger introduce only itself, so every flood SYN reaches chitchat without its
/// digest, and the refusals are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_flood_leaves_the_node_up_with_its_real_members() {
    let GossipPair {
        a,
        b,
        b_id,
        target,
        cluster_id,
    } = GossipPair::start("gossip-digest-flood").await;
    let junk = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for round in 0..200u32 {
        let _ = junk
            .send_to(&digest_flood(&cluster_id, round), target)
            .await;
        if round % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // several gossip rounds with the flooded state
    tokio::time::sleep(Duration::from_secs(4)).await;
    wait_for(
        "node answers after the flood",
        Duration::from_secs(30),
        || async {
            get_status(&a.url("/health/live"))
                .await
                .filter(|s| *s == 200)
        },
    )
    .await;
    let doc = get_json(&a.url("/v1/peers")).await.expect("peers");
    let ids: Vec<&str> = doc["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["node_id"].as_str())
        .collect();
    assert_eq!(ids, vec![b_id.as_str()], "only the real member: {doc}");
    assert_eq!(peer(&doc, &b_id).unwrap()["live"], true);
    // gossip still flows both ways: b keeps seeing a live for many rounds
    let a_id = node_id(&a).await;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let doc = get_json(&b.url("/v1/peers")).await.expect("b answers");
        assert_eq!(
            peer(&doc, &a_id).map(|p| p["live"].clone()),
            Some(true.into()),
            "{doc}"
        );
        assert_eq!(get_status(&a.url("/health/live")).await, Some(200));
    }
    let metrics = reqwest::get(a.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused: u64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "qnet_gossip_digests_refused_total{cluster=\"regional\",reason=\"too_many\"} ",
            )
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(refused >= 1, "flood digests refused: {refused}");
    eprintln!("flood digests refused: {refused}");
}

/// A key file for `spec` whose node id falls in `cell` of `cells`; returns the node id.
fn key_in_cell(spec: &NodeSpec, cell: u16, cells: u16) -> String {
    key_in_cells(spec, &[(cell, cells)])
}

/// A key file for `spec` whose node id falls in each `(cell, of cells)`; returns the node id.
fn key_in_cells(spec: &NodeSpec, cells: &[(u16, u16)]) -> String {
    use qnet_node::identity::{Identity, KEY_FILE};
    use qnet_node::membership::cell::cell_of;
    let identity = std::iter::repeat_with(Identity::generate)
        .find(|i| {
            cells
                .iter()
                .all(|&(c, n)| cell_of(i.node_id().as_str(), n) == c)
        })
        .expect("an identity in the cells");
    std::fs::create_dir_all(&spec.data_dir).unwrap();
    identity
        .write_key_file(&spec.data_dir.join(KEY_FILE))
        .unwrap();
    identity.node_id().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_split_into_cells_gossips_per_cell_and_is_seen_whole() {
    let root = test_dir("cells");
    let cells = "2";
    // eu: two nodes in each of its two cells; na: one node. Everyone bootstraps from eu-0.
    let plan = [
        ("eu-0", "eu", "super", 0),
        ("eu-1", "eu", "full", 0),
        ("eu-2", "eu", "super", 1),
        ("eu-3", "eu", "full", 1),
        ("na-0", "na", "super", 0),
    ];
    let mut specs = Vec::new();
    let mut ids = Vec::new();
    for (name, region, kind, cell) in plan {
        let mut s = NodeSpec::new(&root, name, region, kind);
        s.extra = vec!["--cells-per-region".into(), cells.into()];
        ids.push(key_in_cell(&s, cell, 2));
        specs.push(s);
    }
    let bootstrap = vec![specs[0].p2p_addr()];
    for s in specs.iter_mut().skip(1) {
        s.bootstrap = bootstrap.clone();
    }
    // a misconfigured eu node: three cells where the network uses two. Its id falls in cell 0
    // by either count, eu-0's cell: the same cluster id but for the count, and a bridge
    // eu-0 would take for one of its own cell by the id alone
    let mut rogue = NodeSpec::new(&root, "eu-rogue", "eu", "super");
    rogue.extra = vec!["--cells-per-region".into(), "3".into()];
    rogue.bootstrap = bootstrap.clone();
    key_in_cells(&rogue, &[(0, 3), (0, 2)]);
    let nodes: Vec<NodeProcess> = specs.into_iter().map(NodeProcess::start).collect();
    let rogue = NodeProcess::start(rogue);
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(node_id(n).await, ids[i], "the prepared key is used");
    }
    // every node sees both regions whole: eu's four members over its two cells (the rogue,
    // in a cluster of its own, is not counted)
    for n in &nodes {
        wait_for(
            &format!("{} sees eu 4/4 and na 1/1", n.spec.data_dir.display()),
            CONVERGE,
            || async {
                let doc = get_json(&n.url("/v1/regions")).await?;
                let regions = regions_live(&doc);
                let has = |name: &str, k: u64| {
                    regions
                        .iter()
                        .any(|(r, known, live)| r == name && *known == k && *live == k)
                };
                (regions.len() == 2 && has("eu", 4) && has("na", 1)).then_some(())
            },
        )
        .await;
    }
    // each eu node gossips with its own cell only: its peers are its cell's members
    for (i, n) in nodes.iter().enumerate().take(4) {
        let mate = ids[i ^ 1].clone();
        let others = [ids[i ^ 2].clone(), ids[i ^ 3].clone()];
        wait_for("cell mate listed live", CONVERGE, || async {
            let doc = get_json(&n.url("/v1/peers")).await?;
            (peer(&doc, &mate)?["live"] == true).then_some(())
        })
        .await;
        let doc = get_json(&n.url("/v1/peers")).await.expect("peers");
        for other in &others {
            assert!(
                peer(&doc, other).is_none(),
                "{other} is in the other cell: {doc}"
            );
        }
    }
    // the rogue says why it is alone, and the bridges it meets say why they ignore it
    let why = "every node of the network must use the same --cells-per-region";
    wait_for("the rogue warns about the cell count", CONVERGE, || async {
        rogue.log().contains(why).then_some(())
    })
    .await;
    wait_for(
        "eu-0, a bridge of the rogue's cell, warns",
        CONVERGE,
        || async { nodes[0].log().contains(why).then_some(()) },
    )
    .await;
    for n in &nodes {
        let regions = regions_live(&get_json(&n.url("/v1/regions")).await.expect("regions"));
        assert!(
            regions.iter().any(|(r, known, _)| r == "eu" && *known == 4),
            "eu still counts 4 members, not the rogue: {regions:?}"
        );
    }
}
