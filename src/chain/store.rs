//! The chain on disk: genesis, block import with validation, fork choice and reorgs over
//! [`qnet_storage::Store`].
//!
//! Every block commit or revert is one sled transaction (block, tx index, accounts, undo).
//! A reorg is a sequence of such steps; a crash in the middle leaves a shorter but
//! consistent canonical chain, and the better branch stays stored as side blocks.

use std::collections::{BTreeMap, HashSet};

use ed25519_dalek::SigningKey;
use qnet_storage::{CommitBlock, RevertBlock, StorageError, Store, TxLocation};

use super::account::Account;
use super::block::{Block, BlockHeader, BlockTemplate};
use super::fork_choice::{is_better, Head};
use super::signatures::Verified;
use super::spec::ChainSpec;
use super::state::{BlockEffects, Overlay, UndoRecord};
use super::tx::{Address, SignedTransfer};
use super::validate::{check_block_verified, validate_block_verified, BlockContext, RejectReason};
use super::Hash;
use crate::identity::to_hex;

/// Meta key of the chain spec JSON the store was created with.
pub const META_SPEC: &str = "chain/spec";
/// Deepest reorg followed; a longer side branch is not switched to.
pub const MAX_REORG_DEPTH: u64 = 4_096;

/// Errors of the chain store.
#[derive(Debug, thiserror::Error)]
pub enum ChainStoreError {
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Stored chain data does not decode or does not link up.
    #[error("chain data corrupt: {0}")]
    Corrupt(String),
    /// The data dir holds another chain.
    #[error("data dir holds chain with genesis {stored}, but the chain spec has genesis {expected}; use the matching --chain or another --data-dir")]
    GenesisMismatch {
        /// Genesis hash in the store (hex).
        stored: String,
        /// Genesis hash of the spec (hex).
        expected: String,
    },
    /// The block is invalid.
    #[error("block rejected: {0}")]
    Rejected(#[from] RejectReason),
}

/// What importing a block did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// The block was already stored.
    AlreadyKnown,
    /// The block extended the canonical head.
    Extended(Head),
    /// The block is valid so far but its branch is not better: kept as a side block.
    SideChain,
    /// The block's branch became canonical.
    Reorg {
        /// The new head.
        head: Head,
        /// Blocks reverted from the old branch.
        depth: u64,
        /// Transactions of the reverted blocks not in the new branch (for the mempool).
        undone_txs: Vec<SignedTransfer>,
    },
}

/// The canonical chain, its side blocks and the account state.
#[derive(Debug)]
pub struct ChainStore {
    store: Store,
    /// Account reads over the same database, made once at open.
    accounts: AccountReader,
    spec: ChainSpec,
    genesis_hash: Hash,
    head: BlockHeader,
}

/// Reads committed accounts from the database (see [`ChainStore::reader`]).
#[derive(Debug, Clone)]
pub struct AccountReader(Store);

impl AccountReader {
    /// The account at `address` (default when it has never received anything).
    pub fn account(&self, address: &Address) -> Result<Account, ChainStoreError> {
        Ok(self.stored_account(address)?.unwrap_or_default())
    }

    fn stored_account(&self, address: &Address) -> Result<Option<Account>, ChainStoreError> {
        self.0
            .account(address.as_bytes())?
            .map(|bytes| {
                Account::decode(&bytes)
                    .map_err(|e| ChainStoreError::Corrupt(format!("account {address}: {e}")))
            })
            .transpose()
    }

    /// The stored accounts of `addresses`, as a view for pure logic (mempool, validation).
    pub fn accounts_view<'a>(
        &self,
        addresses: impl IntoIterator<Item = &'a Address>,
    ) -> Result<BTreeMap<Address, Account>, ChainStoreError> {
        let mut view = BTreeMap::new();
        for address in addresses {
            if let Some(account) = self.stored_account(address)? {
                view.insert(*address, account);
            }
        }
        Ok(view)
    }
}

impl ChainStore {
    /// Opens the chain in `store`, writing genesis on first use; refuses another chain's data.
    pub fn open(store: Store, spec: ChainSpec) -> Result<ChainStore, ChainStoreError> {
        let genesis = spec.genesis_block();
        let genesis_hash = genesis.hash();
        match store.tip_height()? {
            None => Self::write_genesis(&store, &spec, &genesis)?,
            Some(_) => {
                let stored = decode_block(store.block_at(0)?, 0)?.hash();
                if stored != genesis_hash {
                    return Err(ChainStoreError::GenesisMismatch {
                        stored: to_hex(&stored),
                        expected: to_hex(&genesis_hash),
                    });
                }
            }
        }
        let tip = store
            .tip_height()?
            .ok_or_else(|| ChainStoreError::Corrupt("no tip after genesis".into()))?;
        let head = decode_block(store.block_at(tip)?, tip)?.header;
        Ok(ChainStore {
            accounts: AccountReader(store.clone()),
            store,
            spec,
            genesis_hash,
            head,
        })
    }

    /// The chain spec a store was created with, if any (to restart a development chain).
    pub fn stored_spec(store: &Store) -> Result<Option<ChainSpec>, ChainStoreError> {
        store
            .get_meta(META_SPEC)?
            .map(|bytes| {
                let text = String::from_utf8(bytes)
                    .map_err(|_| ChainStoreError::Corrupt("stored spec is not utf-8".into()))?;
                ChainSpec::from_json(&text)
                    .map_err(|e| ChainStoreError::Corrupt(format!("stored spec: {e}")))
            })
            .transpose()
    }

    fn write_genesis(
        store: &Store,
        spec: &ChainSpec,
        genesis: &Block,
    ) -> Result<(), ChainStoreError> {
        let accounts = spec
            .genesis_accounts()
            .map_err(|e| ChainStoreError::Corrupt(format!("chain spec: {e}")))?;
        let undo = UndoRecord {
            height: 0,
            previous: accounts.iter().map(|(a, _)| (*a, None)).collect(),
        };
        store.put_meta(META_SPEC, spec.to_json().as_bytes())?;
        store.commit_block(CommitBlock {
            height: 0,
            hash: genesis.hash(),
            block_bytes: genesis.encode(),
            tx_hashes: Vec::new(),
            account_writes: accounts
                .iter()
                .map(|(a, acc)| (a.as_bytes().to_vec(), acc.encode()))
                .collect(),
            undo_bytes: undo.encode(),
        })?;
        store.flush()?;
        Ok(())
    }

    /// The chain spec.
    pub fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// The genesis hash.
    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    /// The canonical head.
    pub fn head(&self) -> Head {
        Head::of(&self.head)
    }

    /// The canonical head's header.
    pub fn head_header(&self) -> &BlockHeader {
        &self.head
    }

    /// The canonical block at `height`.
    pub fn block_by_height(&self, height: u64) -> Result<Option<Block>, ChainStoreError> {
        self.store
            .block_at(height)?
            .map(|b| decode_block(Some(b), height))
            .transpose()
    }

    /// The canonical block with `hash`.
    pub fn block_by_hash(&self, hash: &Hash) -> Result<Option<Block>, ChainStoreError> {
        match self.store.height_of(hash)? {
            Some(height) => self.block_by_height(height),
            None => Ok(None),
        }
    }

    /// Up to `limit` canonical blocks from `from` upwards.
    pub fn blocks_from(&self, from: u64, limit: usize) -> Result<Vec<Block>, ChainStoreError> {
        self.store
            .blocks_from(from, limit)?
            .into_iter()
            .map(|bytes| {
                Block::decode(&bytes).map_err(|e| ChainStoreError::Corrupt(format!("block: {e}")))
            })
            .collect()
    }

    /// Up to `limit` canonical blocks from `from` upwards, as stored (canonical encoding).
    pub fn encoded_blocks_from(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, ChainStoreError> {
        Ok(self.store.blocks_from(from, limit)?)
    }

    /// Whether a block (canonical or side) is stored.
    pub fn has_block(&self, hash: &Hash) -> Result<bool, ChainStoreError> {
        Ok(self.store.has_block(hash)?)
    }

    /// A canonical transaction, where it is, and the header of its block (the API shows the
    /// block's hash and time with the transaction).
    pub fn tx(
        &self,
        hash: &Hash,
    ) -> Result<Option<(SignedTransfer, TxLocation, BlockHeader)>, ChainStoreError> {
        let Some(location) = self.store.tx_location(hash)? else {
            return Ok(None);
        };
        let block = self.block_by_height(location.height)?.ok_or_else(|| {
            ChainStoreError::Corrupt(format!(
                "tx index points at missing block {}",
                location.height
            ))
        })?;
        let index = usize::try_from(location.index).unwrap_or(usize::MAX);
        let tx = block
            .txs
            .get(index)
            .cloned()
            .ok_or_else(|| ChainStoreError::Corrupt("tx index out of block".into()))?;
        Ok(Some((tx, location, block.header)))
    }

    /// An account in the canonical state (default if never written).
    pub fn account(&self, address: &Address) -> Result<Account, ChainStoreError> {
        self.accounts.account(address)
    }

    /// The stored accounts of `addresses`, as a view for pure logic (mempool, validation).
    pub fn accounts_view<'a>(
        &self,
        addresses: impl IntoIterator<Item = &'a Address>,
    ) -> Result<BTreeMap<Address, Account>, ChainStoreError> {
        self.accounts.accounts_view(addresses)
    }

    /// A handle that reads committed accounts without this store (or its lock): every block
    /// commits atomically, so a read sees the state before or after a block, never between.
    pub fn reader(&self) -> AccountReader {
        self.accounts.clone()
    }

    fn block_view(&self, block: &Block) -> Result<BTreeMap<Address, Account>, ChainStoreError> {
        let producer = Address::from_public_key(&block.header.producer);
        let mut addresses = vec![producer];
        for tx in &block.txs {
            addresses.push(tx.sender());
            addresses.push(tx.transfer.to);
        }
        self.accounts_view(&addresses)
    }

    /// Builds and signs a block on the head from `candidates`, skipping any that do not apply.
    pub fn build_block(
        &self,
        candidates: Vec<SignedTransfer>,
        slot: u64,
        timestamp_ms: u64,
        key: &SigningKey,
    ) -> Result<Block, ChainStoreError> {
        self.build_block_verified(candidates, slot, timestamp_ms, key, &HashSet::new())
    }

    /// [`ChainStore::build_block`] trusting the signatures of the candidates whose hashes are
    /// in `verified` (e.g. all of them when they come from the mempool).
    pub fn build_block_verified(
        &self,
        candidates: Vec<SignedTransfer>,
        slot: u64,
        timestamp_ms: u64,
        key: &SigningKey,
        verified: &HashSet<Hash>,
    ) -> Result<Block, ChainStoreError> {
        let producer = Address::from_public_key(key.verifying_key().as_bytes());
        let mut addresses = vec![producer];
        for tx in &candidates {
            addresses.push(tx.sender());
            addresses.push(tx.transfer.to);
        }
        let view = self.accounts_view(&addresses)?;
        let mut overlay =
            Overlay::new(&view, &self.spec.chain_id, producer).with_verified(verified);
        let txs: Vec<SignedTransfer> = candidates
            .into_iter()
            .filter(|tx| overlay.apply(tx).is_ok())
            .take(super::block::MAX_BLOCK_TXS)
            .collect();
        let template = BlockTemplate {
            chain_id: self.spec.chain_id.clone(),
            height: self.head.height.saturating_add(1),
            slot,
            parent_hash: self.head.hash(),
            timestamp_ms,
        };
        Ok(Block::produce(template, txs, key))
    }

    /// Validates and stores a block; follows fork choice, reorganising if its branch is better.
    pub fn import(&mut self, block: Block, now_ms: u64) -> Result<ImportOutcome, ChainStoreError> {
        self.import_verified(block, now_ms, &Verified::new())
    }

    /// [`ChainStore::import`] trusting the signatures recorded in `verified` (transfers
    /// checked when they entered the mempool, blocks and transfers of a synced range checked
    /// in parallel before the import).
    pub fn import_verified(
        &mut self,
        block: Block,
        now_ms: u64,
        verified: &Verified,
    ) -> Result<ImportOutcome, ChainStoreError> {
        let hash = block.hash();
        if self.store.has_block(&hash)? {
            return Ok(ImportOutcome::AlreadyKnown);
        }
        let head_hash = self.head.hash();
        if block.header.parent_hash == head_hash {
            let effects = self.validate_on_head(&block, now_ms, verified)?;
            self.commit(&block, effects)?;
            return Ok(ImportOutcome::Extended(self.head()));
        }
        let parent = self
            .any_block(&block.header.parent_hash)?
            .ok_or(RejectReason::UnknownParent)?;
        let ctx = BlockContext {
            spec: &self.spec,
            parent: Some(&parent.header),
            now_ms,
        };
        check_block_verified(&block, &ctx, verified)?;
        self.store.put_side_block(&hash, &block.encode())?;
        if !is_better(&Head::of(&block.header), &self.head()) {
            return Ok(ImportOutcome::SideChain);
        }
        self.reorg_to(block, now_ms, verified)
    }

    fn validate_on_head(
        &self,
        block: &Block,
        now_ms: u64,
        verified: &Verified,
    ) -> Result<BlockEffects, ChainStoreError> {
        let view = self.block_view(block)?;
        let ctx = BlockContext {
            spec: &self.spec,
            parent: Some(&self.head),
            now_ms,
        };
        Ok(validate_block_verified(block, &ctx, &view, verified)?)
    }

    fn any_block(&self, hash: &Hash) -> Result<Option<Block>, ChainStoreError> {
        self.store
            .block_by_hash(hash)?
            .map(|bytes| {
                Block::decode(&bytes).map_err(|e| ChainStoreError::Corrupt(format!("block: {e}")))
            })
            .transpose()
    }

    /// The side branch ending at `tip`, oldest first, and the canonical height it forks
    /// from; `None` if it is longer than [`MAX_REORG_DEPTH`].
    fn side_branch(&self, tip: Block) -> Result<Option<(Vec<Block>, u64)>, ChainStoreError> {
        let mut branch = vec![tip];
        loop {
            let parent_hash = branch
                .last()
                .map(|b| b.header.parent_hash)
                .unwrap_or_default();
            if let Some(height) = self.store.height_of(&parent_hash)? {
                branch.reverse();
                return Ok(Some((branch, height)));
            }
            if branch.len() as u64 > MAX_REORG_DEPTH {
                return Ok(None);
            }
            let parent = self
                .store
                .side_block(&parent_hash)?
                .ok_or(RejectReason::UnknownParent)?;
            let parent = Block::decode(&parent)
                .map_err(|e| ChainStoreError::Corrupt(format!("side block: {e}")))?;
            branch.push(parent);
        }
    }

    fn reorg_to(
        &mut self,
        tip: Block,
        now_ms: u64,
        verified: &Verified,
    ) -> Result<ImportOutcome, ChainStoreError> {
        let tip_hash = tip.hash();
        let (branch, fork_height) = match self.side_branch(tip) {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(ImportOutcome::SideChain),
            Err(e) => {
                // An ancestor was dropped as invalid: the tip cannot become canonical.
                if matches!(e, ChainStoreError::Rejected(_)) {
                    self.store.remove_side_block(&tip_hash)?;
                }
                return Err(e);
            }
        };
        let depth = self.head.height.saturating_sub(fork_height);
        if depth > MAX_REORG_DEPTH {
            return Ok(ImportOutcome::SideChain);
        }
        let mut reverted = Vec::new();
        while self.head.height > fork_height {
            reverted.push(self.revert_head()?);
        }
        reverted.reverse();

        for (i, block) in branch.iter().enumerate() {
            match self.validate_on_head(block, now_ms, verified) {
                Ok(effects) => self.commit(block, effects)?,
                Err(e) => {
                    // The branch is invalid from here: drop it and restore the old branch.
                    if matches!(e, ChainStoreError::Rejected(_)) {
                        for bad in branch.iter().skip(i) {
                            self.store.remove_side_block(&bad.hash())?;
                        }
                    }
                    while self.head.height > fork_height {
                        self.revert_head()?;
                    }
                    for old in &reverted {
                        let effects =
                            self.validate_on_head(old, now_ms, verified).map_err(|e| {
                                ChainStoreError::Corrupt(format!(
                                    "old branch no longer applies: {e}"
                                ))
                            })?;
                        self.commit(old, effects)?;
                    }
                    return Err(e);
                }
            }
        }

        let included: HashSet<Hash> = branch.iter().flat_map(Block::tx_hashes).collect();
        let undone_txs = reverted
            .into_iter()
            .flat_map(|b| b.txs)
            .filter(|tx| !included.contains(&tx.hash()))
            .collect();
        Ok(ImportOutcome::Reorg {
            head: self.head(),
            depth,
            undone_txs,
        })
    }

    fn commit(&mut self, block: &Block, effects: BlockEffects) -> Result<(), ChainStoreError> {
        self.store.commit_block(CommitBlock {
            height: block.header.height,
            hash: block.hash(),
            block_bytes: block.encode(),
            tx_hashes: block.tx_hashes(),
            account_writes: effects
                .writes
                .iter()
                .map(|(a, acc)| (a.as_bytes().to_vec(), acc.encode()))
                .collect(),
            undo_bytes: effects.undo.encode(),
        })?;
        self.head = block.header.clone();
        Ok(())
    }

    /// Reverts the head block (never genesis) and returns it.
    fn revert_head(&mut self) -> Result<Block, ChainStoreError> {
        let height = self.head.height;
        if height == 0 {
            return Err(ChainStoreError::Corrupt("reorg reached genesis".into()));
        }
        let block = decode_block(self.store.block_at(height)?, height)?;
        let undo_bytes = self
            .store
            .undo(height)?
            .ok_or_else(|| ChainStoreError::Corrupt(format!("no undo record at {height}")))?;
        let undo = UndoRecord::decode(&undo_bytes)
            .map_err(|e| ChainStoreError::Corrupt(format!("undo record {height}: {e}")))?;
        self.store.revert_block(RevertBlock {
            height,
            hash: block.hash(),
            tx_hashes: block.tx_hashes(),
            account_restores: undo
                .previous
                .iter()
                .map(|(a, acc)| (a.as_bytes().to_vec(), acc.map(|acc| acc.encode())))
                .collect(),
        })?;
        self.head = decode_block(self.store.block_at(height - 1)?, height - 1)?.header;
        Ok(block)
    }

    /// Writes buffered data to disk.
    pub fn flush(&self) -> Result<(), ChainStoreError> {
        Ok(self.store.flush()?)
    }
}

fn decode_block(bytes: Option<Vec<u8>>, height: u64) -> Result<Block, ChainStoreError> {
    let bytes = bytes.ok_or_else(|| ChainStoreError::Corrupt(format!("block {height} missing")))?;
    Block::decode(&bytes).map_err(|e| ChainStoreError::Corrupt(format!("block {height}: {e}")))
}

#[cfg(test)]
mod tests;
