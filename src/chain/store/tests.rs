//! Tests of the chain store on real sled databases: import, side chains, reorgs, reopen.

use super::*;
use crate::chain::spec::tests::spec_with;
use crate::chain::tx::tests::{address_of, key, transfer};
use crate::chain::tx::TxError;

// One producer, key(1); key(10) funded with 1000; genesis at 10 s, 1 s slots.
fn spec() -> ChainSpec {
    spec_with(&[&key(1)], &[(&key(10), 1_000)])
}

const NOW: u64 = 1_000_000;

fn open(dir: &std::path::Path) -> ChainStore {
    ChainStore::open(Store::open(dir).unwrap(), spec()).unwrap()
}

fn make(parent: &BlockHeader, slot: u64, txs: Vec<SignedTransfer>) -> Block {
    let template = BlockTemplate {
        chain_id: "test".into(),
        height: parent.height + 1,
        slot,
        parent_hash: parent.hash(),
        timestamp_ms: spec().slot_start_ms(slot),
    };
    Block::produce(template, txs, &key(1))
}

fn pay(to: u8, amount: u64, nonce: u64) -> SignedTransfer {
    transfer(&key(10), address_of(&key(to)), amount, 1, nonce)
}

fn balance(chain: &ChainStore, k: u8) -> u64 {
    chain.account(&address_of(&key(k))).unwrap().balance
}

#[test]
fn genesis_is_written_once_and_funds_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path());
    assert_eq!(chain.head().height, 0);
    assert_eq!(chain.head().hash, spec().genesis_hash());
    assert_eq!(chain.genesis_hash(), spec().genesis_hash());
    assert_eq!(balance(&chain, 10), 1_000);
    assert_eq!(
        chain.account(&address_of(&key(11))).unwrap(),
        Account::default()
    );
    let genesis = chain.block_by_height(0).unwrap().unwrap();
    assert_eq!(genesis, spec().genesis_block());
    assert_eq!(ChainStore::stored_spec(&chain.store).unwrap(), Some(spec()));
}

#[test]
fn other_spec_on_same_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let other = ChainSpec {
        genesis_time_ms: 1,
        ..spec()
    };
    let err = ChainStore::open(Store::open(dir.path()).unwrap(), other).unwrap_err();
    assert!(
        matches!(err, ChainStoreError::GenesisMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("--data-dir"));
}

#[test]
fn linear_import_updates_head_state_and_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path());
    let g = chain.head_header().clone();
    let b1 = make(&g, 1, vec![pay(11, 100, 0), pay(12, 50, 1)]);
    let b2 = make(&b1.header, 3, vec![pay(11, 10, 2)]);

    assert_eq!(
        chain.import(b1.clone(), NOW).unwrap(),
        ImportOutcome::Extended(Head::of(&b1.header))
    );
    assert_eq!(
        chain.import(b2.clone(), NOW).unwrap(),
        ImportOutcome::Extended(Head::of(&b2.header))
    );
    assert_eq!(
        chain.import(b2.clone(), NOW).unwrap(),
        ImportOutcome::AlreadyKnown
    );

    assert_eq!(chain.head().height, 2);
    assert_eq!(balance(&chain, 10), 1_000 - 163);
    assert_eq!(balance(&chain, 11), 110);
    assert_eq!(balance(&chain, 12), 50);
    assert_eq!(balance(&chain, 1), 3);
    assert_eq!(chain.account(&address_of(&key(10))).unwrap().nonce, 3);

    assert_eq!(chain.block_by_height(1).unwrap().unwrap(), b1);
    assert_eq!(chain.block_by_hash(&b2.hash()).unwrap().unwrap(), b2);
    assert_eq!(
        chain.blocks_from(1, 10).unwrap(),
        vec![b1.clone(), b2.clone()]
    );
    let (tx, location, header) = chain.tx(&b1.txs[1].hash()).unwrap().unwrap();
    assert_eq!(tx, b1.txs[1]);
    assert_eq!((location.height, location.index), (1, 1));
    assert_eq!(header, b1.header);
    assert!(chain.tx(&[0; 32]).unwrap().is_none());
}

#[test]
fn invalid_blocks_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path());
    let g = chain.head_header().clone();

    let overspend = make(&g, 1, vec![pay(11, 1_000, 0)]);
    let err = chain.import(overspend.clone(), NOW).unwrap_err();
    assert!(matches!(
        err,
        ChainStoreError::Rejected(RejectReason::BadTx {
            index: 0,
            error: TxError::InsufficientBalance { .. }
        })
    ));
    assert!(!chain.has_block(&overspend.hash()).unwrap());

    let orphan_parent = make(&g, 1, vec![]);
    let orphan = make(&orphan_parent.header, 2, vec![]);
    assert!(matches!(
        chain.import(orphan, NOW),
        Err(ChainStoreError::Rejected(RejectReason::UnknownParent))
    ));

    let future = make(&g, 5_000, vec![]);
    assert!(matches!(
        chain.import(future, NOW),
        Err(ChainStoreError::Rejected(RejectReason::FutureSlot))
    ));
    assert_eq!(chain.head().height, 0);
    assert_eq!(balance(&chain, 10), 1_000);
}

#[test]
fn worse_branch_is_kept_as_side_chain() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path());
    let g = chain.head_header().clone();
    let a1 = make(&g, 1, vec![]);
    chain.import(a1.clone(), NOW).unwrap();
    // Same height, later slot: worse.
    let b1 = make(&g, 2, vec![pay(11, 5, 0)]);
    assert_eq!(
        chain.import(b1.clone(), NOW).unwrap(),
        ImportOutcome::SideChain
    );
    assert_eq!(chain.head(), Head::of(&a1.header));
    assert!(chain.has_block(&b1.hash()).unwrap());
    assert!(chain.block_by_hash(&b1.hash()).unwrap().is_none());
    assert_eq!(balance(&chain, 11), 0);
}

fn fork_setup(chain: &mut ChainStore) -> (Block, Block, Block, Block) {
    let g = chain.head_header().clone();
    // Canonical branch a: slots 2 and 4.
    let a1 = make(&g, 2, vec![pay(11, 100, 0)]);
    let a2 = make(&a1.header, 4, vec![pay(11, 100, 1)]);
    chain.import(a1.clone(), NOW).unwrap();
    chain.import(a2.clone(), NOW).unwrap();
    // Competing branch b: slots 1 and 3, so b2 beats a2 at equal height (earlier slot).
    let b1 = make(&g, 1, vec![pay(12, 30, 0)]);
    let b2 = make(&b1.header, 3, vec![pay(12, 30, 1)]);
    (a1, a2, b1, b2)
}

#[test]
fn reorg_of_depth_two_switches_state_and_returns_undone_txs() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path());
    let (a1, a2, b1, b2) = fork_setup(&mut chain);
    assert_eq!(
        chain.import(b1.clone(), NOW).unwrap(),
        ImportOutcome::SideChain
    );

    let outcome = chain.import(b2.clone(), NOW).unwrap();
    let ImportOutcome::Reorg {
        head,
        depth,
        undone_txs,
    } = outcome
    else {
        panic!("expected reorg, got {outcome:?}");
    };
    assert_eq!(head, Head::of(&b2.header));
    assert_eq!(depth, 2);
    assert_eq!(undone_txs, vec![a1.txs[0].clone(), a2.txs[0].clone()]);

    assert_eq!(chain.head(), Head::of(&b2.header));
    assert_eq!(chain.block_by_height(1).unwrap().unwrap(), b1);
    assert_eq!(balance(&chain, 11), 0);
    assert_eq!(balance(&chain, 12), 60);
    assert_eq!(balance(&chain, 10), 1_000 - 62);
    assert_eq!(chain.account(&address_of(&key(10))).unwrap().nonce, 2);
    assert!(chain.tx(&a1.txs[0].hash()).unwrap().is_none());
    assert!(chain.tx(&b2.txs[0].hash()).unwrap().is_some());
    // The old branch is kept as side blocks.
    assert!(chain.has_block(&a2.hash()).unwrap());
    assert!(chain.block_by_hash(&a2.hash()).unwrap().is_none());
}

#[test]
fn reorg_back_and_forth_keeps_state_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path());
    let (_a1, a2, b1, b2) = fork_setup(&mut chain);
    chain.import(b1, NOW).unwrap();
    chain.import(b2, NOW).unwrap();
    // Extend the old branch a past b: it wins by height.
    let a3 = make(&a2.header, 5, vec![]);
    let outcome = chain.import(a3.clone(), NOW).unwrap();
    assert!(
        matches!(outcome, ImportOutcome::Reorg { depth: 2, ref undone_txs, .. } if undone_txs.len() == 2)
    );
    assert_eq!(chain.head(), Head::of(&a3.header));
    assert_eq!(balance(&chain, 11), 200);
    assert_eq!(balance(&chain, 12), 0);
    assert_eq!(balance(&chain, 10), 1_000 - 202);
}

#[test]
fn undone_txs_exclude_those_in_the_new_branch() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path());
    let g = chain.head_header().clone();
    let shared = pay(11, 100, 0);
    let a1 = make(&g, 2, vec![shared.clone()]);
    chain.import(a1, NOW).unwrap();
    let b1 = make(&g, 1, vec![shared]);
    let outcome = chain.import(b1, NOW).unwrap();
    assert!(
        matches!(outcome, ImportOutcome::Reorg { depth: 1, ref undone_txs, .. } if undone_txs.is_empty()),
        "{outcome:?}"
    );
    assert_eq!(balance(&chain, 11), 100);
}

#[test]
fn reorg_to_invalid_branch_restores_old_branch() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path());
    let (_a1, a2, b1, _) = fork_setup(&mut chain);
    chain.import(b1.clone(), NOW).unwrap();
    // b2 replays b1's nonce: passes the stateless checks, fails on execution.
    let bad_b2 = make(&b1.header, 3, vec![pay(12, 30, 0)]);
    let err = chain.import(bad_b2.clone(), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            ChainStoreError::Rejected(RejectReason::BadTx {
                error: TxError::NonceTooLow { .. },
                ..
            })
        ),
        "{err}"
    );
    assert_eq!(chain.head(), Head::of(&a2.header));
    assert_eq!(balance(&chain, 11), 200);
    assert_eq!(balance(&chain, 12), 0);
    assert!(!chain.has_block(&bad_b2.hash()).unwrap());
    // The valid part of the branch stays available as a side block.
    assert!(chain.has_block(&b1.hash()).unwrap());
}

#[test]
fn reopen_keeps_head_and_state_after_reorg() {
    let dir = tempfile::tempdir().unwrap();
    let head = {
        let mut chain = open(dir.path());
        let (_, _, b1, b2) = fork_setup(&mut chain);
        chain.import(b1, NOW).unwrap();
        chain.import(b2, NOW).unwrap();
        chain.flush().unwrap();
        chain.head()
    };
    let mut chain = open(dir.path());
    assert_eq!(chain.head(), head);
    assert_eq!(balance(&chain, 12), 60);
    let next = make(chain.head_header(), 6, vec![pay(12, 1, 2)]);
    assert!(matches!(
        chain.import(next, NOW).unwrap(),
        ImportOutcome::Extended(_)
    ));
}

#[test]
fn build_block_skips_inapplicable_txs_and_imports() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path());
    let candidates = vec![
        pay(11, 100, 0),
        pay(11, 100, 5),    // nonce gap: skipped
        pay(11, 10_000, 1), // unaffordable: skipped
        pay(12, 10, 1),
    ];
    let slot = 7;
    let block = chain
        .build_block(candidates, slot, spec().slot_start_ms(slot), &key(1))
        .unwrap();
    assert_eq!(block.txs.len(), 2);
    assert_eq!(block.header.height, 1);
    assert!(matches!(
        chain.import(block, NOW).unwrap(),
        ImportOutcome::Extended(_)
    ));
    assert_eq!(balance(&chain, 12), 10);
}

#[test]
fn accounts_view_only_holds_stored_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path());
    let funded = address_of(&key(10));
    let unknown = address_of(&key(11));
    let view = chain.accounts_view([&funded, &unknown]).unwrap();
    assert_eq!(view.len(), 1);
    assert_eq!(view[&funded].balance, 1_000);
}

#[test]
fn descendants_of_a_dropped_invalid_block_cannot_win() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = open(dir.path());
    let (_a1, a2, b1, _) = fork_setup(&mut chain);
    let a3 = make(&a2.header, 6, vec![]);
    chain.import(a3.clone(), NOW).unwrap();
    chain.import(b1.clone(), NOW).unwrap();
    // Invalid on execution, but stored as a side block while its branch is not better.
    let bad_b2 = make(&b1.header, 3, vec![pay(12, 30, 0)]);
    assert_eq!(
        chain.import(bad_b2.clone(), NOW).unwrap(),
        ImportOutcome::SideChain
    );
    let late_b3 = make(&bad_b2.header, 7, vec![]);
    assert_eq!(
        chain.import(late_b3.clone(), NOW).unwrap(),
        ImportOutcome::SideChain
    );
    // This one is better than a3: the reorg attempt finds bad_b2 and drops it.
    let b3 = make(&bad_b2.header, 5, vec![]);
    assert!(matches!(
        chain.import(b3.clone(), NOW),
        Err(ChainStoreError::Rejected(RejectReason::BadTx { .. }))
    ));
    assert_eq!(chain.head(), Head::of(&a3.header));
    assert!(!chain.has_block(&bad_b2.hash()).unwrap());
    assert!(!chain.has_block(&b3.hash()).unwrap());
    // late_b3 is now cut off; a better child of it is refused and not kept.
    let b4 = make(&late_b3.header, 8, vec![]);
    assert!(matches!(
        chain.import(b4.clone(), NOW),
        Err(ChainStoreError::Rejected(RejectReason::UnknownParent))
    ));
    assert!(!chain.has_block(&b4.hash()).unwrap());
    assert_eq!(chain.head(), Head::of(&a3.header));
    assert_eq!(balance(&chain, 11), 200);
}
