//! Read-only access to a ledger, also while the daemon has it open.
//!
//! The reader opens RocksDB in read-only mode, which takes no lock and
//! replays the write-ahead log, so it sees every record acknowledged before
//! the open. It does not see records appended after the open.

use std::path::{Path, PathBuf};

use rocksdb::{DB, DBRawIterator, IteratorMode, ReadOptions};

use crate::{
    checkpoint::Checkpoint,
    codec::leaf_hash,
    error::{HeadProblem, LedgerError},
    index::{self, INDEX_CFS},
    merkle,
    record::{Hash, Record},
    store::{
        CHECKPOINTS_CF, RECORDS_CF, column_families, column_family, db_options, decode_head, decode_key, decode_stored,
        read_head,
    },
    tree::StoredTree,
};

/// Bytes that a record scan reads ahead of the block it is on.
const SCAN_READAHEAD: usize = 4 << 20;

/// A stored key and value, as RocksDB returns them.
pub(crate) type RawEntry = (Box<[u8]>, Box<[u8]>);

/// A record as stored, with the hash of its stored bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub record: Record,
    pub hash: Hash,
}

/// A read-only view of a ledger.
pub struct LedgerReader {
    db: DB,
    path: PathBuf,
}

impl LedgerReader {
    /// Opens the ledger in `dir` without locking it, so a writer may hold it
    /// open at the same time. Fails with [`LedgerError::NotFound`] when `dir`
    /// contains no database.
    pub fn open_read_only(dir: &Path) -> Result<Self, LedgerError> {
        if !dir.join("CURRENT").is_file() {
            return Err(LedgerError::NotFound { path: dir.to_owned() });
        }
        // NOTE: if the writer deletes an old write-ahead log file while this
        // open reads the directory, the open may fail. It is not retried.
        // A ledger written by an older version lacks the index column
        // families, and a read-only open cannot create them, so open only
        // those that exist. Queries then scan the records instead.
        let open_error = |source| LedgerError::Open { path: dir.to_owned(), source };
        let existing = DB::list_cf(&db_options(), dir).map_err(open_error)?;
        let descriptors = column_families()
            .into_iter()
            .filter(|descriptor| existing.iter().any(|name| name == descriptor.name()));
        let db = DB::open_cf_descriptors_read_only(&db_options(), dir, descriptors, false).map_err(open_error)?;
        Ok(Self { db, path: dir.to_owned() })
    }

    /// Returns the head metadata as stored: the last `seq` and its hash.
    /// The value is not checked against the records; [`crate::verify()`]
    /// does that.
    pub fn head(&self) -> Result<Option<(u64, Hash)>, LedgerError> {
        read_head(&self.db, &self.path)?
            .map(|value| {
                decode_head(&value).map_err(|len| LedgerError::BrokenHead {
                    path: self.path.clone(),
                    problem: HeadProblem::InvalidHead { len },
                })
            })
            .transpose()
    }

    /// Iterates over the records in key order, decoding each one.
    ///
    /// An item is an error when a record cannot be read or decoded, or when
    /// its key differs from its `seq`. The iterator does not check the hash
    /// chain; [`crate::verify()`] does.
    pub fn records(&self) -> Result<impl Iterator<Item = Result<StoredRecord, LedgerError>> + '_, LedgerError> {
        let records = self.raw_records()?.map(|entry| {
            let (key, value) = entry?;
            let record = decode_stored(&self.path, &key, &value)?;
            Ok(StoredRecord { record, hash: leaf_hash(&value) })
        });
        Ok(records)
    }

    /// Returns the ledger directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the stored checkpoint notes as `(tree size key, note)`, in
    /// tree size order, without checking them.
    pub fn checkpoint_notes(&self) -> Result<Vec<(u64, String)>, LedgerError> {
        let checkpoints = column_family(&self.db, &self.path, CHECKPOINTS_CF)?;
        let mut notes = Vec::new();
        for entry in self.db.iterator_cf(checkpoints, IteratorMode::Start) {
            let (key, value) =
                entry.map_err(|source| LedgerError::ReadCheckpoints { path: self.path.clone(), source })?;
            let key = decode_key(&key)
                .ok_or_else(|| LedgerError::InvalidKey { path: self.path.clone(), key: key.to_vec() })?;
            notes.push((key, String::from_utf8_lossy(&value).into_owned()));
        }
        Ok(notes)
    }

    /// Returns the stored checkpoint with the largest tree size, parsed but
    /// not signature-checked.
    pub fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, LedgerError> {
        let Some((tree_size, note)) = self.checkpoint_notes()?.pop() else {
            return Ok(None);
        };
        let checkpoint = Checkpoint::parse_unverified(&note).map_err(|source| LedgerError::InvalidCheckpoint {
            path: self.path.clone(),
            tree_size,
            source,
        })?;
        Ok(Some(checkpoint))
    }

    /// Returns one record's stored bytes.
    pub fn raw_record(&self, seq: u64) -> Result<Option<Vec<u8>>, LedgerError> {
        let records = column_family(&self.db, &self.path, RECORDS_CF)?;
        self.db
            .get_cf(records, seq.to_be_bytes())
            .map_err(|source| LedgerError::ReadRecords { path: self.path.clone(), source })
    }

    /// Computes the Merkle root of the first `size` records from the stored
    /// tree.
    pub fn tree_root(&self, size: u64) -> Result<Hash, LedgerError> {
        merkle::root(&self.tree(), size)
    }

    /// Computes the audit path of record `seq` in the tree of the first
    /// `size` records. Requires `seq < size`.
    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
        if seq >= size {
            return Err(LedgerError::MissingRecord { path: self.path.clone(), seq });
        }
        merkle::inclusion_proof(&self.tree(), seq, size)
    }

    /// Computes the consistency proof between the trees of the first
    /// `old_size` and `new_size` records. Requires `old_size <= new_size`.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, LedgerError> {
        if old_size > new_size {
            return Err(LedgerError::MissingRecord { path: self.path.clone(), seq: new_size });
        }
        merkle::consistency_proof(&self.tree(), old_size, new_size)
    }

    /// Returns whether the query indexes cover every record.
    pub(crate) fn has_indexes(&self) -> Result<bool, LedgerError> {
        if INDEX_CFS.iter().any(|name| self.db.cf_handle(name).is_none()) {
            return Ok(false);
        }
        index::is_complete(&self.db, &self.path)
    }

    pub(crate) fn db(&self) -> &DB {
        &self.db
    }

    pub(crate) fn tree(&self) -> StoredTree<'_> {
        StoredTree { db: &self.db, path: &self.path }
    }

    /// Reads the head metadata value without parsing it.
    pub(crate) fn raw_head(&self) -> Result<Option<Vec<u8>>, LedgerError> {
        read_head(&self.db, &self.path)
    }

    /// Iterates over the stored keys and values in key order.
    pub(crate) fn raw_records(&self) -> Result<impl Iterator<Item = Result<RawEntry, LedgerError>> + '_, LedgerError> {
        let records = column_family(&self.db, &self.path, RECORDS_CF)?;
        let entries = self
            .db
            .iterator_cf_opt(records, scan_options(), IteratorMode::Start)
            .map(|entry| entry.map_err(|source| LedgerError::ReadRecords { path: self.path.clone(), source }));
        Ok(entries)
    }

    /// Returns an iterator over the records for one pass in key order,
    /// positioned at the first record. It yields borrowed keys and values,
    /// so a long walk allocates nothing per record.
    pub(crate) fn record_scan(&self) -> Result<DBRawIterator<'_>, LedgerError> {
        let records = column_family(&self.db, &self.path, RECORDS_CF)?;
        let mut iterator = self.db.raw_iterator_cf_opt(records, scan_options());
        iterator.seek_to_first();
        Ok(iterator)
    }

    /// Returns an iterator over the index `name` for one pass in key order,
    /// positioned at its first entry.
    pub(crate) fn index_scan(&self, name: &'static str) -> Result<DBRawIterator<'_>, LedgerError> {
        let index = column_family(&self.db, &self.path, name)?;
        let mut iterator = self.db.raw_iterator_cf_opt(index, scan_options());
        iterator.seek_to_first();
        Ok(iterator)
    }
}

/// Read options for one pass over many records or index entries. The
/// readahead is large, because the pass reads the table files front to
/// back. The pass does not fill the block cache, because it reads each
/// block once and would only evict blocks that point reads use again.
fn scan_options() -> ReadOptions {
    let mut options = ReadOptions::default();
    options.set_readahead_size(SCAN_READAHEAD);
    options.fill_cache(false);
    options
}
