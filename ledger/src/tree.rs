//! The stored Merkle tree: inner nodes of the RFC 6962 tree over the
//! records, in the `tree` column family.
//!
//! Key: level (u8) followed by the index within the level (u64 big-endian);
//! value: the 32-byte node hash. Node `(level, index)` is the root of the
//! perfect subtree over records `index << level .. (index + 1) << level`.
//!
//! Only the levels that are a multiple of [`STORED_LEVEL_STRIDE`] are
//! stored, so a ledger stores about one node per 255 records. [`StoredTree`]
//! computes every other node from the nearest stored level below it. A
//! level-0 node (a record hash) comes from the record bytes. A node of
//! levels 1 to 7 comes from at most 128 records, read with one iterator,
//! and a node of a higher level from at most 128 stored nodes, read the
//! same way.
//!
//! Invariant kept by [`crate::Ledger`]: every node of a stored level whose
//! records all exist is stored, and it is written in the same `WriteBatch`
//! as the record that completes it. A root or proof for any size up to the
//! number of records therefore needs `O(log n)` range reads of at most 128
//! entries each.
//!
//! Ledgers written before the stride stored every level. Their extra nodes
//! stay where they are: [`StoredTree`] never reads them, and
//! [`crate::verify()`] compares each one it finds with the records.

use std::path::Path;

use rocksdb::{ColumnFamily, DB, DBRawIterator, ReadOptions, WriteBatch};

use crate::{
    codec::leaf_hash,
    error::LedgerError,
    merkle::{Frontier, SubtreeSource, node_hash},
    record::{HASH_LEN, Hash},
    store::{RECORDS_CF, column_family},
};

/// Column family of the tree's inner nodes.
pub const TREE_CF: &str = "tree";

/// Distance between the stored levels: the tree stores the inner nodes of
/// levels 8, 16, 24 and so on. A node of another level is computed from at
/// most `2^7 = 128` entries of the stored level below it, which bounds the
/// reads of a proof. The writer stores one node per 256 records (plus one
/// per 65,536, and so on) instead of about one per record.
pub const STORED_LEVEL_STRIDE: u32 = 8;

/// Nodes written per batch when [`rebuild`] fills a missing tree.
const REBUILD_BATCH: usize = 10_000;

/// Returns whether the tree stores the inner nodes of `level`.
pub(crate) fn is_stored_level(level: u32) -> bool {
    level > 0 && level.is_multiple_of(STORED_LEVEL_STRIDE)
}

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

impl StoredTree<'_> {
    /// Reads the stored node `(level, index)` of a stored level.
    fn stored_node(&self, level: u32, index: u64) -> Result<Hash, LedgerError> {
        let tree = column_family(self.db, self.path, TREE_CF)?;
        let value = self
            .db
            .get_pinned_cf(tree, node_key(level, index))
            .map_err(|source| LedgerError::ReadTree { path: self.path.to_owned(), source })?
            .ok_or_else(|| LedgerError::MissingTreeNode { path: self.path.to_owned(), level, index })?;
        self.node_hash_from(level, index, &value)
    }

    fn node_hash_from(&self, level: u32, index: u64, value: &[u8]) -> Result<Hash, LedgerError> {
        node_from_value(value).ok_or_else(|| LedgerError::InvalidTreeNode {
            path: self.path.to_owned(),
            level,
            index,
            len: value.len(),
        })
    }

    /// Reads `count` consecutive nodes of `level` starting at `first`, with
    /// one iterator: record hashes for level 0, stored nodes otherwise.
    fn consecutive(&self, level: u32, first: u64, count: u64) -> Result<Vec<Hash>, LedgerError> {
        // Record keys are the 8-byte `seq`, node keys the level byte and the
        // 8-byte index.
        let (family, key_start) = if level == 0 { (RECORDS_CF, 1) } else { (TREE_CF, 0) };
        let mut iterator = self.db.raw_iterator_cf(column_family(self.db, self.path, family)?);
        iterator.seek(&node_key(level, first)[key_start..]);

        let mut hashes = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        for index in first..first + count {
            let expected = node_key(level, index);
            let entry = iterator.key().zip(iterator.value()).filter(|(key, _)| *key == &expected[key_start..]);
            let Some((_, value)) = entry else {
                return Err(self.missing(&iterator, level, index));
            };
            let hash = if level == 0 { leaf_hash(value) } else { self.node_hash_from(level, index, value)? };
            hashes.push(hash);
            iterator.next();
        }
        Ok(hashes)
    }

    /// Returns the error for a node that [`StoredTree::consecutive`] did not
    /// find: the iterator's read error, or the missing record or node.
    fn missing(&self, iterator: &DBRawIterator<'_>, level: u32, index: u64) -> LedgerError {
        let path = self.path.to_owned();
        match (iterator.status(), level) {
            (Err(source), 0) => LedgerError::ReadRecords { path, source },
            (Err(source), _) => LedgerError::ReadTree { path, source },
            (Ok(()), 0) => LedgerError::MissingRecord { path, seq: index },
            (Ok(()), _) => LedgerError::MissingTreeNode { path, level, index },
        }
    }
}

impl SubtreeSource for StoredTree<'_> {
    type Error = LedgerError;

    fn subtree(&self, level: u32, index: u64) -> Result<Hash, LedgerError> {
        if is_stored_level(level) {
            return self.stored_node(level, index);
        }
        // `base` is the nearest stored level below, or 0 for the records,
        // and the node covers `2^height` consecutive nodes of that level.
        let base = level - level % STORED_LEVEL_STRIDE;
        let height = level - base;
        let mut hashes = self.consecutive(base, index << height, 1 << height)?;
        while hashes.len() > 1 {
            for parent in 0..hashes.len() / 2 {
                hashes[parent] = node_hash(&hashes[2 * parent], &hashes[2 * parent + 1]);
            }
            hashes.truncate(hashes.len() / 2);
        }
        Ok(hashes[0])
    }
}

/// Adds the stored-level nodes that `leaf` completes to `batch`, in the
/// [`TREE_CF`] column family `tree`, and advances `frontier`.
pub(crate) fn push_leaf(tree: &ColumnFamily, frontier: &mut Frontier, leaf: Hash, batch: &mut WriteBatch) {
    frontier.push_each(leaf, |level, index, hash| {
        if is_stored_level(level) {
            batch.put_cf(tree, node_key(level, index), hash);
        }
    });
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

/// Recomputes every stored-level node from the records `0..size` and
/// writes them.
fn rebuild(db: &DB, path: &Path, size: u64) -> Result<Frontier, LedgerError> {
    let records = column_family(db, path, RECORDS_CF)?;
    let tree = column_family(db, path, TREE_CF)?;
    let mut frontier = Frontier::default();
    let mut batch = WriteBatch::default();
    let write =
        |batch: WriteBatch| db.write(batch).map_err(|source| LedgerError::WriteTree { path: path.to_owned(), source });
    for entry in db.iterator_cf(records, rocksdb::IteratorMode::Start) {
        if frontier.size() == size {
            break;
        }
        let (_, value) = entry.map_err(|source| LedgerError::ReadRecords { path: path.to_owned(), source })?;
        push_leaf(tree, &mut frontier, leaf_hash(&value), &mut batch);
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

/// Compares the inner nodes that [`crate::verify()`] computes with the
/// stored ones, reading each level of the `tree` column family with its
/// own iterator. Nodes complete in index order within a level, so each
/// iterator only moves forward.
pub(crate) struct NodeChecker<'a> {
    tree: StoredTree<'a>,
    /// One iterator per level, created when the level's first node
    /// completes, with the index of the stored node it is on.
    levels: Vec<Option<LevelCursor<'a>>>,
}

struct LevelCursor<'a> {
    iterator: DBRawIterator<'a>,
    /// Index of the stored node at the iterator, `None` past the level's
    /// last stored node.
    current: Option<u64>,
}

/// A computed node that does not match the stored tree.
pub(crate) enum NodeProblem {
    Missing,
    Mismatch,
}

impl<'a> NodeChecker<'a> {
    pub(crate) fn new(tree: StoredTree<'a>) -> Self {
        Self { tree, levels: Vec::new() }
    }

    /// Compares the computed node `(level, index)` with the stored one. A
    /// node of a stored level must be stored. A node of another level is
    /// compared only when present, as in a ledger written before the stride.
    pub(crate) fn check(&mut self, level: u32, index: u64, hash: &Hash) -> Result<Option<NodeProblem>, LedgerError> {
        let slot = usize::try_from(level).expect("tree levels are below 64");
        if self.levels.len() <= slot {
            self.levels.resize_with(slot + 1, || None);
        }
        if self.levels[slot].is_none() {
            let family = column_family(self.tree.db, self.tree.path, TREE_CF)?;
            let mut iterator = self.tree.db.raw_iterator_cf_opt(family, ReadOptions::default());
            iterator.seek(node_key(level, index));
            let current = Self::index_at(&self.tree, &mut iterator, level)?;
            self.levels[slot] = Some(LevelCursor { iterator, current });
        }

        let cursor = self.levels[slot].as_mut().expect("created above");
        while cursor.current.is_some_and(|current| current < index) {
            cursor.iterator.next();
            cursor.current = Self::index_at(&self.tree, &mut cursor.iterator, level)?;
        }
        if cursor.current != Some(index) {
            return Ok(is_stored_level(level).then_some(NodeProblem::Missing));
        }
        let stored = cursor.iterator.value().and_then(node_from_value);
        cursor.iterator.next();
        cursor.current = Self::index_at(&self.tree, &mut cursor.iterator, level)?;
        Ok((stored != Some(*hash)).then_some(NodeProblem::Mismatch))
    }

    /// Returns the index of the node of `level` that the iterator is on, or
    /// `None` when it is past that level. Skips keys of that level that are
    /// not 9 bytes long, which no writer stores.
    fn index_at(
        tree: &StoredTree<'_>,
        iterator: &mut DBRawIterator<'_>,
        level: u32,
    ) -> Result<Option<u64>, LedgerError> {
        let level_byte = u8::try_from(level).expect("tree levels are below 64");
        loop {
            iterator.status().map_err(|source| LedgerError::ReadTree { path: tree.path.to_owned(), source })?;
            let Some((&key_level, index)) = iterator.key().and_then(<[u8]>::split_first) else {
                return Ok(None);
            };
            if key_level != level_byte {
                return Ok(None);
            }
            if let Some(index) = crate::store::decode_key(index) {
                return Ok(Some(index));
            }
            iterator.next();
        }
    }
}
