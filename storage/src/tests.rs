//! Tests of the store against real sled databases in temp dirs.

use super::*;

fn h(n: u8) -> Hash {
    [n; 32]
}

fn commit(height: u64, hash: u8, txs: &[u8], accounts: &[(&str, &str)]) -> CommitBlock {
    CommitBlock {
        height,
        hash: h(hash),
        block_bytes: format!("block-{height}-{hash}").into_bytes(),
        tx_hashes: txs.iter().map(|t| h(*t)).collect(),
        account_writes: accounts
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect(),
        undo_bytes: format!("undo-{height}").into_bytes(),
    }
}

fn account(store: &Store, key: &str) -> Option<String> {
    store
        .account(key.as_bytes())
        .unwrap()
        .map(|v| String::from_utf8(v).unwrap())
}

#[test]
fn commit_updates_every_tree_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.tip_height().unwrap(), None);
    store
        .commit_block(commit(0, 1, &[], &[("alice", "100")]))
        .unwrap();
    store
        .commit_block(commit(1, 2, &[10, 11], &[("alice", "90"), ("bob", "10")]))
        .unwrap();

    assert_eq!(store.tip_height().unwrap(), Some(1));
    assert_eq!(store.block_at(1).unwrap().unwrap(), b"block-1-2");
    assert_eq!(store.height_of(&h(2)).unwrap(), Some(1));
    assert_eq!(store.block_by_hash(&h(2)).unwrap().unwrap(), b"block-1-2");
    assert_eq!(
        store.tx_location(&h(11)).unwrap(),
        Some(TxLocation {
            height: 1,
            index: 1
        })
    );
    assert_eq!(account(&store, "alice").as_deref(), Some("90"));
    assert_eq!(account(&store, "bob").as_deref(), Some("10"));
    assert_eq!(store.undo(1).unwrap().unwrap(), b"undo-1");
    assert_eq!(store.blocks_from(0, 10).unwrap().len(), 2);
    assert_eq!(
        store.blocks_from(1, 10).unwrap(),
        vec![b"block-1-2".to_vec()]
    );
    assert_eq!(store.blocks_from(0, 1).unwrap().len(), 1);
}

#[test]
fn commit_at_wrong_height_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .commit_block(commit(0, 1, &[], &[("a", "1")]))
        .unwrap();

    for bad in [0, 2, 5] {
        let err = store
            .commit_block(commit(bad, 9, &[42], &[("a", "999")]))
            .unwrap_err();
        assert!(
            matches!(err, StorageError::NotTip { height, tip: Some(0) } if height == bad),
            "{err}"
        );
    }
    // Nothing of the aborted commits landed in any tree.
    assert_eq!(store.tip_height().unwrap(), Some(0));
    assert_eq!(account(&store, "a").as_deref(), Some("1"));
    assert_eq!(store.height_of(&h(9)).unwrap(), None);
    assert_eq!(store.tx_location(&h(42)).unwrap(), None);
    assert_eq!(store.block_at(2).unwrap(), None);
    assert_eq!(store.undo(2).unwrap(), None);
}

#[test]
fn revert_restores_state_and_keeps_block_as_side() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .commit_block(commit(0, 1, &[], &[("a", "100")]))
        .unwrap();
    store
        .commit_block(commit(1, 2, &[10], &[("a", "90"), ("b", "10")]))
        .unwrap();

    // Only the tip can be reverted.
    assert!(matches!(
        store.revert_block(RevertBlock {
            height: 0,
            hash: h(1),
            ..Default::default()
        }),
        Err(StorageError::NotTip {
            height: 0,
            tip: Some(1)
        })
    ));

    store
        .revert_block(RevertBlock {
            height: 1,
            hash: h(2),
            tx_hashes: vec![h(10)],
            account_restores: vec![
                (b"a".to_vec(), Some(b"100".to_vec())),
                (b"b".to_vec(), None),
            ],
        })
        .unwrap();
    assert_eq!(store.tip_height().unwrap(), Some(0));
    assert_eq!(store.block_at(1).unwrap(), None);
    assert_eq!(store.height_of(&h(2)).unwrap(), None);
    assert_eq!(store.tx_location(&h(10)).unwrap(), None);
    assert_eq!(store.undo(1).unwrap(), None);
    assert_eq!(account(&store, "a").as_deref(), Some("100"));
    assert_eq!(account(&store, "b"), None);
    assert_eq!(store.side_block(&h(2)).unwrap().unwrap(), b"block-1-2");
    assert!(store.has_block(&h(2)).unwrap());
    assert_eq!(store.block_by_hash(&h(2)).unwrap().unwrap(), b"block-1-2");

    // Re-committing it makes it canonical again and drops the side copy.
    store.commit_block(commit(1, 2, &[10], &[])).unwrap();
    assert_eq!(store.side_block(&h(2)).unwrap(), None);
    assert_eq!(store.side_block_count(), 0);
    assert_eq!(store.height_of(&h(2)).unwrap(), Some(1));
}

#[test]
fn reverting_genesis_empties_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.commit_block(commit(0, 1, &[], &[])).unwrap();
    store
        .revert_block(RevertBlock {
            height: 0,
            hash: h(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(store.tip_height().unwrap(), None);
    assert!(matches!(
        store.revert_block(RevertBlock::default()),
        Err(StorageError::NotTip { tip: None, .. })
    ));
}

#[test]
fn reopen_after_drop_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store
            .commit_block(commit(0, 1, &[7], &[("a", "5")]))
            .unwrap();
        store.put_peer("node-a", b"peer").unwrap();
        store.append_event(b"e1").unwrap();
        store.put_meta("spec", b"json").unwrap();
        store.put_side_block(&h(3), b"side").unwrap();
        store.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.tip_height().unwrap(), Some(0));
    assert_eq!(store.block_at(0).unwrap().unwrap(), b"block-0-1");
    assert_eq!(store.tx_location(&h(7)).unwrap().unwrap().height, 0);
    assert_eq!(account(&store, "a").as_deref(), Some("5"));
    assert_eq!(
        store.peers().unwrap(),
        vec![("node-a".to_string(), b"peer".to_vec())]
    );
    assert_eq!(store.recent_events(10).unwrap().len(), 1);
    assert_eq!(store.get_meta("spec").unwrap().unwrap(), b"json");
    assert_eq!(store.side_block(&h(3)).unwrap().unwrap(), b"side");
}

#[test]
fn second_open_of_same_dir_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path()).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    match &err {
        StorageError::Locked { path } => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("is in use by another process"),
        "{message}"
    );
    assert!(message.contains("--data-dir"), "{message}");
}

#[test]
fn lock_is_released_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    assert!(Store::open(dir.path()).is_ok());
}

#[test]
fn peers_put_list_remove() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.put_peer("b", b"2").unwrap();
    store.put_peer("a", b"1").unwrap();
    store.put_peer("a", b"1bis").unwrap();
    assert_eq!(
        store.peers().unwrap(),
        vec![("a".into(), b"1bis".to_vec()), ("b".into(), b"2".to_vec())]
    );
    store.remove_peer("a").unwrap();
    assert_eq!(store.peers().unwrap(), vec![("b".into(), b"2".to_vec())]);
}

#[test]
fn events_are_newest_first_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let seqs: Vec<u64> = (0..5u8)
        .map(|i| store.append_event(&[i]).unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let recent = store.recent_events(3).unwrap();
    let bodies: Vec<Vec<u8>> = recent.iter().map(|(_, b)| b.clone()).collect();
    assert_eq!(bodies, vec![vec![4], vec![3], vec![2]]);
    assert_eq!(recent[0].0, seqs[4]);
    assert_eq!(store.recent_events(0).unwrap().len(), 0);
    assert_eq!(store.retain_events(2).unwrap(), 3);
    let left: Vec<Vec<u8>> = store
        .recent_events(10)
        .unwrap()
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    assert_eq!(left, vec![vec![4], vec![3]]);
    assert_eq!(store.retain_events(2).unwrap(), 0);
}

#[test]
fn meta_round_trip_and_missing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.get_meta("x").unwrap(), None);
    store.put_meta("x", b"1").unwrap();
    store.put_meta("x", b"2").unwrap();
    assert_eq!(store.get_meta("x").unwrap().unwrap(), b"2");
}

#[test]
fn put_accounts_writes_outside_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .put_accounts(&[
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec()),
        ])
        .unwrap();
    assert_eq!(account(&store, "b").as_deref(), Some("2"));
}

/// Set in the child process of [`second_process_is_locked_out`] to the dir to open.
const LOCK_CHILD_ENV: &str = "QNET_STORAGE_LOCK_CHILD_DIR";

#[test]
fn second_process_is_locked_out() {
    if let Ok(dir) = std::env::var(LOCK_CHILD_ENV) {
        let err = Store::open(Path::new(&dir)).unwrap_err();
        assert!(matches!(err, StorageError::Locked { .. }), "{err:?}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _held = Store::open(dir.path()).unwrap();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tests::second_process_is_locked_out",
            "--test-threads=1",
        ])
        .env(LOCK_CHILD_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "child failed: {stdout}");
    assert!(stdout.contains("1 passed"), "child ran no test: {stdout}");
}
