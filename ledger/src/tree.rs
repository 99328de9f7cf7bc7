//! The stored Merkle tree: inner nodes of the RFC 6962 tree over the
//! records, in the `tree` column family.
//!
//! Key: level (u8) followed by the index within the level (u64 big-endian);
//! value: the 32-byte node hash. Node `(level, index)` is the root of the
//! perfect subtree over records `index << level .. (index + 1) << level`.
//! Only levels 1 and up are stored: a level-0 node is a record hash, which
//! [`StoredTree`] computes from the record bytes.
//!
//! Invariant kept by [`crate::Ledger`]: every node whose records all exist
//! is stored, and it is written in the same `WriteBatch` as the record that
//! completes it. A tree of `n` records therefore has `n - popcount(n)`
//! stored nodes, and a root or proof for any size up to `n` needs
//! `O(log n)` reads.

use std::path::Path;

use rocksdb::{DB, WriteBatch};

use crate::{
    codec::leaf_hash,
    error::LedgerError,
    merkle::{Frontier, SubtreeSource},
    record::{HASH_LEN, Hash},
    store::{RECORDS_CF, column_family},
};

/// Column family of the tree's inner nodes.
pub const TREE_CF: &str = "tree";

/// Nodes written per batch when [`rebuild`] fills a missing tree.
const REBUILD_BATCH: usize = 10_000;

pub(crate) fn node_key(level: u32, index: u64) -> [u8; 9] {
    let mut key = [0; 9];
    key[0] = u8::try_from(level).expect("tree levels are below 64");
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

/// The tree as stored in a ledger's database.
pub(crate) struct StoredTree<'a> {
    pub(crate) db: &'a DB,
    pub(crate) path: &'a Path,
}

impl SubtreeSource for StoredTree<'_> {
    type Error = LedgerError;

    fn subtree(&self, level: u32, index: u64) -> Result<Hash, LedgerError> {
        let path = self.path.to_owned();
        if level == 0 {
            let records = column_family(self.db, self.path, RECORDS_CF)?;
            let value = self
                .db
                .get_pinned_cf(records, index.to_be_bytes())
                .map_err(|source| LedgerError::ReadRecords { path: path.clone(), source })?
                .ok_or(LedgerError::MissingRecord { path, seq: index })?;
            return Ok(leaf_hash(&value));
        }

        let tree = column_family(self.db, self.path, TREE_CF)?;
        let value = self
            .db
            .get_pinned_cf(tree, node_key(level, index))
            .map_err(|source| LedgerError::ReadTree { path: path.clone(), source })?
            .ok_or(LedgerError::MissingTreeNode { path: path.clone(), level, index })?;
        Hash::try_from(&value[..]).map_err(|_| LedgerError::InvalidTreeNode { path, level, index, len: value.len() })
    }
}

/// Adds the nodes that `leaf` completes to `batch` and advances `frontier`.
pub(crate) fn push_leaf(
    db: &DB,
    path: &Path,
    frontier: &mut Frontier,
    leaf: Hash,
    batch: &mut WriteBatch,
) -> Result<(), LedgerError> {
    let tree = column_family(db, path, TREE_CF)?;
    for (level, index, hash) in frontier.push(leaf) {
        batch.put_cf(tree, node_key(level, index), hash);
    }
    Ok(())
}

/// Loads the frontier of the stored tree of `size` records, rebuilding the
/// tree from the records when nodes are missing (a ledger written before
/// the tree existed).
pub(crate) fn load_frontier(db: &DB, path: &Path, size: u64) -> Result<Frontier, LedgerError> {
    match Frontier::load(&StoredTree { db, path }, size) {
        Err(LedgerError::MissingTreeNode { .. }) => rebuild(db, path, size),
        result => result,
    }
}

/// Recomputes every inner node from the records `0..size` and writes them.
fn rebuild(db: &DB, path: &Path, size: u64) -> Result<Frontier, LedgerError> {
    let records = column_family(db, path, RECORDS_CF)?;
    let mut frontier = Frontier::default();
    let mut batch = WriteBatch::default();
    let write =
        |batch: WriteBatch| db.write(batch).map_err(|source| LedgerError::WriteTree { path: path.to_owned(), source });
    for entry in db.iterator_cf(records, rocksdb::IteratorMode::Start) {
        if frontier.size() == size {
            break;
        }
        let (_, value) = entry.map_err(|source| LedgerError::ReadRecords { path: path.to_owned(), source })?;
        push_leaf(db, path, &mut frontier, leaf_hash(&value), &mut batch)?;
        if batch.len() >= REBUILD_BATCH {
            write(std::mem::take(&mut batch))?;
        }
    }
    write(batch)?;
    if frontier.size() != size {
        return Err(LedgerError::MissingRecord { path: path.to_owned(), seq: frontier.size() });
    }
    Ok(frontier)
}

/// Checks a stored node value's length.
pub(crate) fn node_from_value(value: &[u8]) -> Option<Hash> {
    (value.len() == HASH_LEN).then(|| value.try_into().expect("checked length"))
}
