//! qnet-storage: the node's sled database, one tree per record kind.
//!
//! Entry type: [`Store`]. It stores opaque bytes under typed keys and knows nothing of the
//! network or of chain types. A block and its state changes land together through
//! [`Store::commit_block`] and leave together through [`Store::revert_block`].

use std::path::{Path, PathBuf};

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{Transactional, Tree};

/// The chain trees inside one transaction, in the order of [`Store::chain_transaction`].
type ChainTrees = (
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
);

/// A 32-byte hash (block or transaction).
pub type Hash = [u8; 32];

const TREE_BLOCKS: &str = "blocks";
const TREE_BLOCK_HASH: &str = "block_hash";
const TREE_SIDE_BLOCKS: &str = "side_blocks";
const TREE_TXS: &str = "txs";
const TREE_ACCOUNTS: &str = "accounts";
const TREE_UNDO: &str = "undo";
const TREE_PEERS: &str = "peers";
const TREE_EVENTS: &str = "failover_events";
const TREE_META: &str = "meta";

/// Meta key of the canonical tip height, maintained inside block transactions.
const META_TIP: &[u8] = b"chain/tip";

/// Marker sled 0.34 puts in the io error when another handle holds the `db` file lock.
const SLED_LOCK_MESSAGE: &str = "could not acquire lock";

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Another process (or another open handle) holds the data dir.
    #[error("data dir {} is in use by another process; stop it or choose another --data-dir", path.display())]
    Locked {
        /// The data dir.
        path: PathBuf,
    },
    /// The disk failed us.
    #[error("storage io error: {0}")]
    Io(#[from] std::io::Error),
    /// Stored bytes are not what they should be.
    #[error("storage corrupt: {0}")]
    Corrupt(String),
    /// A block commit or revert does not fit the stored chain tip.
    #[error("height {height} does not fit the stored tip {tip:?}")]
    NotTip {
        /// The height asked for.
        height: u64,
        /// The stored tip height, if any.
        tip: Option<u64>,
    },
}

impl From<sled::Error> for StorageError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(io) => StorageError::Io(io),
            sled::Error::Corruption { at, .. } => {
                StorageError::Corrupt(format!("sled corruption at {at:?}"))
            }
            other => StorageError::Corrupt(other.to_string()),
        }
    }
}

impl From<TransactionError<StorageError>> for StorageError {
    fn from(e: TransactionError<StorageError>) -> Self {
        match e {
            TransactionError::Abort(inner) => inner,
            TransactionError::Storage(inner) => inner.into(),
        }
    }
}

/// A canonical block and the state changes it makes, committed atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitBlock {
    /// Height; must be the stored tip + 1 (or any height on an empty chain).
    pub height: u64,
    /// Block hash.
    pub hash: Hash,
    /// Encoded block.
    pub block_bytes: Vec<u8>,
    /// Hashes of the block's transactions, in block order.
    pub tx_hashes: Vec<Hash>,
    /// Account records to write (key, value).
    pub account_writes: Vec<(Vec<u8>, Vec<u8>)>,
    /// Encoded undo record for this height.
    pub undo_bytes: Vec<u8>,
}

/// Removal of the canonical tip block, restoring the state before it, committed atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevertBlock {
    /// Height; must be the stored tip.
    pub height: u64,
    /// Hash of the tip block (kept as a side block after the revert).
    pub hash: Hash,
    /// Hashes of the block's transactions, unindexed by the revert.
    pub tx_hashes: Vec<Hash>,
    /// Account records to restore: `None` deletes the record.
    pub account_restores: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Where a transaction sits in the canonical chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxLocation {
    /// Block height.
    pub height: u64,
    /// Index inside the block.
    pub index: u32,
}

/// The node's database.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    blocks: Tree,
    block_hash: Tree,
    side_blocks: Tree,
    txs: Tree,
    accounts: Tree,
    undo: Tree,
    peers: Tree,
    events: Tree,
    meta: Tree,
}

/// How often a locked data dir is retried before `Locked` is reported.
const LOCK_RETRIES: u32 = 10;
/// Pause between lock retries.
const LOCK_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

impl Store {
    /// Opens (or creates) the database in `dir`; a dir held by another handle is `Locked`.
    pub fn open(dir: &Path) -> Result<Store, StorageError> {
        // A handle dropped in this process releases its lock only when sled's flusher
        // thread has exited (up to one flush interval), so a lock is retried briefly.
        let mut attempts = 0;
        let db = loop {
            match sled::Config::new().path(dir).open() {
                Ok(db) => break db,
                Err(e) => match map_open_error(dir, e) {
                    StorageError::Locked { .. } if attempts < LOCK_RETRIES => {
                        attempts += 1;
                        std::thread::sleep(LOCK_RETRY_PAUSE);
                    }
                    other => return Err(other),
                },
            }
        };
        let tree = |name: &str| db.open_tree(name);
        Ok(Store {
            blocks: tree(TREE_BLOCKS)?,
            block_hash: tree(TREE_BLOCK_HASH)?,
            side_blocks: tree(TREE_SIDE_BLOCKS)?,
            txs: tree(TREE_TXS)?,
            accounts: tree(TREE_ACCOUNTS)?,
            undo: tree(TREE_UNDO)?,
            peers: tree(TREE_PEERS)?,
            events: tree(TREE_EVENTS)?,
            meta: tree(TREE_META)?,
            db,
        })
    }

    /// Writes everything buffered to disk; call at durability points and on shutdown.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.db.flush()?;
        Ok(())
    }

    // --- chain ---

    /// Height of the canonical tip, `None` on an empty chain.
    pub fn tip_height(&self) -> Result<Option<u64>, StorageError> {
        self.meta.get(META_TIP)?.map(|v| decode_u64(&v)).transpose()
    }

    /// Runs `f` as one atomic sled transaction over every chain tree (blocks, block_hash,
    /// side_blocks, txs, accounts, undo, meta).
    fn chain_transaction(
        &self,
        f: impl Fn(&ChainTrees) -> Result<(), ConflictableTransactionError<StorageError>>,
    ) -> Result<(), StorageError> {
        (
            &self.blocks,
            &self.block_hash,
            &self.side_blocks,
            &self.txs,
            &self.accounts,
            &self.undo,
            &self.meta,
        )
            .transaction(f)?;
        Ok(())
    }

    /// Appends a canonical block with its tx index, account writes and undo record.
    pub fn commit_block(&self, commit: CommitBlock) -> Result<(), StorageError> {
        let height = commit.height;
        let height_key = height.to_be_bytes();
        self.chain_transaction(
            |(blocks, block_hash, side_blocks, txs, accounts, undo, meta)| {
                let tip = tx_tip(meta)?;
                let fits = match tip {
                    None => true,
                    Some(t) => t.checked_add(1) == Some(height),
                };
                if !fits {
                    return abort(StorageError::NotTip { height, tip });
                }
                blocks.insert(&height_key, commit.block_bytes.as_slice())?;
                block_hash.insert(&commit.hash, &height_key)?;
                side_blocks.remove(&commit.hash)?;
                for (index, tx_hash) in commit.tx_hashes.iter().enumerate() {
                    let index = u32::try_from(index).map_err(|_| {
                        ConflictableTransactionError::Abort(StorageError::Corrupt(
                            "too many transactions in one block".into(),
                        ))
                    })?;
                    txs.insert(tx_hash, &encode_location(height, index))?;
                }
                for (key, value) in &commit.account_writes {
                    accounts.insert(key.as_slice(), value.as_slice())?;
                }
                undo.insert(&height_key, commit.undo_bytes.as_slice())?;
                meta.insert(META_TIP, &height_key)?;
                Ok(())
            },
        )
    }

    /// Removes the canonical tip block, restores accounts, and keeps the block as a side block.
    pub fn revert_block(&self, revert: RevertBlock) -> Result<(), StorageError> {
        let height = revert.height;
        let height_key = height.to_be_bytes();
        self.chain_transaction(
            |(blocks, block_hash, side_blocks, txs, accounts, undo, meta)| {
                let tip = tx_tip(meta)?;
                if tip != Some(height) {
                    return abort(StorageError::NotTip { height, tip });
                }
                let Some(bytes) = blocks.remove(&height_key)? else {
                    return abort(StorageError::Corrupt(format!(
                        "tip block {height} is missing"
                    )));
                };
                side_blocks.insert(&revert.hash, bytes)?;
                block_hash.remove(&revert.hash)?;
                for tx_hash in &revert.tx_hashes {
                    txs.remove(tx_hash)?;
                }
                for (key, value) in &revert.account_restores {
                    match value {
                        Some(v) => accounts.insert(key.as_slice(), v.as_slice())?,
                        None => accounts.remove(key.as_slice())?,
                    };
                }
                undo.remove(&height_key)?;
                match height.checked_sub(1) {
                    Some(below) => meta.insert(META_TIP, &below.to_be_bytes())?,
                    None => meta.remove(META_TIP)?,
                };
                Ok(())
            },
        )
    }

    /// Canonical block bytes at `height`.
    pub fn block_at(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.blocks.get(height.to_be_bytes())?.map(|v| v.to_vec()))
    }

    /// Canonical blocks from `from` upwards, at most `limit`.
    pub fn blocks_from(&self, from: u64, limit: usize) -> Result<Vec<Vec<u8>>, StorageError> {
        self.blocks
            .range(from.to_be_bytes()..)
            .take(limit)
            .map(|r| Ok(r?.1.to_vec()))
            .collect()
    }

    /// Height of a canonical block by hash.
    pub fn height_of(&self, hash: &Hash) -> Result<Option<u64>, StorageError> {
        self.block_hash
            .get(hash)?
            .map(|v| decode_u64(&v))
            .transpose()
    }

    /// Block bytes by hash, canonical or side.
    pub fn block_by_hash(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some(height) = self.height_of(hash)? {
            return self.block_at(height);
        }
        self.side_block(hash)
    }

    /// Whether a block (canonical or side) is stored.
    pub fn has_block(&self, hash: &Hash) -> Result<bool, StorageError> {
        Ok(self.block_hash.contains_key(hash)? || self.side_blocks.contains_key(hash)?)
    }

    /// Stores a non-canonical block (a fork candidate).
    pub fn put_side_block(&self, hash: &Hash, bytes: &[u8]) -> Result<(), StorageError> {
        self.side_blocks.insert(hash, bytes)?;
        Ok(())
    }

    /// A non-canonical block by hash.
    pub fn side_block(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.side_blocks.get(hash)?.map(|v| v.to_vec()))
    }

    /// Drops a non-canonical block.
    pub fn remove_side_block(&self, hash: &Hash) -> Result<(), StorageError> {
        self.side_blocks.remove(hash)?;
        Ok(())
    }

    /// Number of stored non-canonical blocks.
    pub fn side_block_count(&self) -> usize {
        self.side_blocks.len()
    }

    /// Location of a canonical transaction.
    pub fn tx_location(&self, hash: &Hash) -> Result<Option<TxLocation>, StorageError> {
        self.txs.get(hash)?.map(|v| decode_location(&v)).transpose()
    }

    /// An account record.
    pub fn account(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.accounts.get(key)?.map(|v| v.to_vec()))
    }

    /// Writes account records outside a block (genesis state).
    pub fn put_accounts(&self, writes: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for (key, value) in writes {
            batch.insert(key.as_slice(), value.as_slice());
        }
        self.accounts.apply_batch(batch)?;
        Ok(())
    }

    /// The undo record stored with the canonical block at `height`.
    pub fn undo(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.undo.get(height.to_be_bytes())?.map(|v| v.to_vec()))
    }

    // --- peers ---

    /// Stores (or replaces) a peer record.
    pub fn put_peer(&self, node_id: &str, record: &[u8]) -> Result<(), StorageError> {
        self.peers.insert(node_id.as_bytes(), record)?;
        Ok(())
    }

    /// All peer records, ordered by node id.
    pub fn peers(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.peers
            .iter()
            .map(|r| {
                let (k, v) = r?;
                let id = String::from_utf8(k.to_vec())
                    .map_err(|_| StorageError::Corrupt("peer key is not utf-8".into()))?;
                Ok((id, v.to_vec()))
            })
            .collect()
    }

    /// Forgets a peer.
    pub fn remove_peer(&self, node_id: &str) -> Result<(), StorageError> {
        self.peers.remove(node_id.as_bytes())?;
        Ok(())
    }

    // --- failover events ---

    /// Appends an event and returns its sequence number (increasing, possibly with gaps).
    pub fn append_event(&self, event: &[u8]) -> Result<u64, StorageError> {
        let seq = self.db.generate_id()?;
        self.events.insert(seq.to_be_bytes(), event)?;
        Ok(seq)
    }

    /// The newest `limit` events, newest first, with their sequence numbers.
    pub fn recent_events(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        self.events
            .iter()
            .rev()
            .take(limit)
            .map(|r| {
                let (k, v) = r?;
                Ok((decode_u64(&k)?, v.to_vec()))
            })
            .collect()
    }

    /// Deletes all but the newest `keep` events; returns how many were deleted.
    pub fn retain_events(&self, keep: usize) -> Result<usize, StorageError> {
        let old: Vec<_> = self
            .events
            .iter()
            .keys()
            .rev()
            .skip(keep)
            .collect::<Result<_, _>>()?;
        let mut batch = sled::Batch::default();
        for key in &old {
            batch.remove(key);
        }
        self.events.apply_batch(batch)?;
        Ok(old.len())
    }

    // --- meta ---

    /// Stores a meta value.
    pub fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.meta.insert(key.as_bytes(), value)?;
        Ok(())
    }

    /// A meta value.
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.meta.get(key.as_bytes())?.map(|v| v.to_vec()))
    }
}

fn map_open_error(dir: &Path, e: sled::Error) -> StorageError {
    match e {
        sled::Error::Io(io) if io.to_string().contains(SLED_LOCK_MESSAGE) => StorageError::Locked {
            path: dir.to_path_buf(),
        },
        other => other.into(),
    }
}

fn abort<T>(e: StorageError) -> Result<T, ConflictableTransactionError<StorageError>> {
    Err(ConflictableTransactionError::Abort(e))
}

fn tx_tip(
    meta: &TransactionalTree,
) -> Result<Option<u64>, ConflictableTransactionError<StorageError>> {
    match meta.get(META_TIP)? {
        None => Ok(None),
        Some(v) => decode_u64(&v)
            .map(Some)
            .map_err(ConflictableTransactionError::Abort),
    }
}

fn decode_u64(bytes: &[u8]) -> Result<u64, StorageError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StorageError::Corrupt(format!("expected 8 bytes, found {}", bytes.len())))?;
    Ok(u64::from_be_bytes(arr))
}

fn encode_location(height: u64, index: u32) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&height.to_be_bytes());
    out[8..].copy_from_slice(&index.to_be_bytes());
    out
}

fn decode_location(bytes: &[u8]) -> Result<TxLocation, StorageError> {
    let arr: [u8; 12] = bytes
        .try_into()
        .map_err(|_| StorageError::Corrupt(format!("bad tx location of {} bytes", bytes.len())))?;
    let (h, i) = arr.split_at(8);
    let height = decode_u64(h)?;
    let index = u32::from_be_bytes(
        i.try_into()
            .map_err(|_| StorageError::Corrupt("bad tx index".into()))?,
    );
    Ok(TxLocation { height, index })
}

#[cfg(test)]
mod tests;
