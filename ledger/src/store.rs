//! The writable ledger: a RocksDB database with these column families.
//!
//! - `records`: key = `seq` as u64 big-endian, value = the record's canonical
//!   bytes ([`crate::codec`]). Big-endian keys sort in sequence order.
//! - `meta`: key `head` = last `seq` (u64 big-endian) followed by that
//!   record's 32-byte hash.
//! - `tree`: the inner nodes of every eighth level of the RFC 6962 Merkle
//!   tree whose leaves are the record hashes ([`crate::tree`]).
//! - `checkpoints`: key = tree size (u64 big-endian), value = the signed
//!   checkpoint note ([`crate::checkpoint`]).
//! - `idx_agent`, `idx_rule`, `idx_verdict_hook`, `idx_time`: secondary
//!   indexes of decision and identity records ([`crate::index`]).
//!
//! Invariants kept by [`Ledger`]: sequence numbers start at 0 and are dense,
//! record `n`'s `prev_hash` is the hash of record `n - 1` (all zero for
//! record 0), `head` names the last record, `tree` contains every inner node
//! of a stored level whose records exist, and the indexes list every record
//! they cover. Each append writes its records, their tree nodes, their index
//! entries and the new head in one `WriteBatch` with `sync = true`, so they
//! become durable together, and an acknowledged append survives a crash.
//! An append of more than [`PART_RECORDS`] records is written in parts
//! ([`crate::parts`]), each one such batch with the head after it, and only
//! the last part is synced: a crash keeps a prefix of whole parts.
//! [`Ledger::append_batch_unsynced`] writes the same way without the sync,
//! and a [`WalSync`] handle makes its records durable from another thread
//! (group commit: the daemon's writer appends the next batch meanwhile).
//! [`Ledger::checkpoint`] writes its checkpoint record and note the same way,
//! synced.
//! Dropping the [`Ledger`] flushes the memtables, and so does a checkpoint
//! when they hold 32 MiB or more, so a later open, read-only ones included,
//! replays a short write-ahead log.
//!
//! [`Ledger::open`] checks only the head: the head metadata must name the
//! last record, that record must hash to the stored head hash, and it must
//! link to the record before it. [`crate::verify()`] walks the whole chain.

use std::{
    fs::OpenOptions,
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, FlushOptions, IteratorMode, Options, WriteBatch,
};

use crate::{
    checkpoint::Checkpoint,
    codec::leaf_hash,
    error::{HeadProblem, LedgerError},
    index::{self, INDEX_CFS, Postings},
    keys::SigningKey,
    merkle::Frontier,
    parts::{self, PART_RECORDS, Part},
    record::{CheckpointRecord, HASH_LEN, Hash, Record, RecordBody, ZERO_HASH},
    tree::{self, TREE_CF},
};

/// Column family of the records, keyed by big-endian `seq`.
pub const RECORDS_CF: &str = "records";
/// Column family of ledger metadata.
pub const META_CF: &str = "meta";
/// Key of the head entry in [`META_CF`].
pub const HEAD_KEY: &[u8] = b"head";
/// Column family of the signed checkpoint notes, keyed by big-endian tree
/// size.
pub const CHECKPOINTS_CF: &str = "checkpoints";

const HEAD_LEN: usize = 8 + HASH_LEN;

/// Sequence number and hash of a record that an append made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    pub hash: Hash,
}

/// The ledger, opened for appending. Only one process can hold it open.
pub struct Ledger {
    /// Shared with the [`WalSync`] handles of this ledger.
    db: Arc<DB>,
    path: PathBuf,
    head: Option<(u64, Hash)>,
    frontier: Frontier,
    checkpoint_sink: Option<PathBuf>,
}

impl Ledger {
    /// Opens the ledger in `dir`, creating it if missing.
    ///
    /// Rejects a ledger whose head does not link to its stored records, with
    /// [`LedgerError::BrokenHead`] naming the problem. Builds the Merkle tree
    /// from the records when its nodes are missing, and the query indexes when
    /// they are missing or in an older layout (a ledger written by an older
    /// version).
    pub fn open(dir: &Path) -> Result<Self, LedgerError> {
        std::fs::create_dir_all(dir).map_err(|source| LedgerError::CreateDir { path: dir.to_owned(), source })?;
        // A ledger is created only in an empty folder: given a folder with
        // old table files and no CURRENT, RocksDB would start a new database
        // there and delete those files as obsolete.
        let has_current = dir.join("CURRENT").exists();
        let is_empty = std::fs::read_dir(dir)
            .map_err(|source| LedgerError::CreateDir { path: dir.to_owned(), source })?
            .next()
            .is_none();
        if !has_current && !is_empty {
            return Err(LedgerError::NotALedger { path: dir.to_owned() });
        }

        let mut options = db_options();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let mut db = DB::open_cf_descriptors(&options, dir, column_families())
            .map_err(|source| LedgerError::Open { path: dir.to_owned(), source })?;

        let head = check_head(&db, dir)?;
        let size = head.map_or(0, |(seq, _)| seq + 1);
        let frontier = tree::load_frontier(&db, dir, size)?;
        index::build_if_stale(&mut db, dir)?;
        Ok(Self { db: Arc::new(db), path: dir.to_owned(), head, frontier, checkpoint_sink: None })
    }

    /// Makes every later [`Ledger::checkpoint`] also append its note to
    /// `sink`, so that a copy leaves the ledger directory: to the file
    /// `sink`, or, when `sink` is an existing folder, to a new file
    /// `checkpoint-<tree size>` in it. `None` stops the copies.
    ///
    /// Point `sink` at storage the host's root cannot rewrite later (a
    /// remote mount, an append-only file) for the copies to pin the ledger.
    pub fn set_checkpoint_sink(&mut self, sink: Option<PathBuf>) {
        self.checkpoint_sink = sink;
    }

    /// Signs a checkpoint of the records so far, appends it as a
    /// [`RecordBody::Checkpoint`] record, stores the note under its tree
    /// size, and returns it once durable. The checkpoint covers records
    /// `0..n` and is itself record `n`.
    ///
    /// When a checkpoint sink is set, the note is then appended there too. If
    /// that fails the checkpoint is already stored, and the error is
    /// [`LedgerError::CheckpointSink`].
    pub fn checkpoint(&mut self, key: &SigningKey) -> Result<Checkpoint, LedgerError> {
        let tree_size = self.frontier.size();
        let root_hash = self.frontier.root();
        let checkpoint = Checkpoint::sign(key, tree_size, &root_hash);

        let time_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        let body = RecordBody::Checkpoint(CheckpointRecord { tree_size, root_hash });
        let note = (CHECKPOINTS_CF, tree_size.to_be_bytes().to_vec(), checkpoint.note.clone().into_bytes());
        self.write(vec![(time_ns, body)], Some(note), true)?;
        // A checkpoint also starts a flush when the memtables hold at least
        // CHECKPOINT_FLUSH_BYTES, so a read-only open replays at most about
        // that much write-ahead log plus what was written since. A flush at
        // every checkpoint wrote small table files that were moved to the
        // last level whole and never merged: thousands of files a day at
        // one checkpoint a minute. The flush runs in the background. If it
        // fails, the log keeps the records, and only that replay stays long.
        if self.memtable_bytes() >= CHECKPOINT_FLUSH_BYTES {
            let _ = self.flush_memtables(false);
        }

        if let Some(sink) = &self.checkpoint_sink {
            append_to_sink(sink, &checkpoint).map_err(|source| LedgerError::CheckpointSink {
                path: self.path.clone(),
                sink: sink.clone(),
                tree_size,
                source,
            })?;
        }
        Ok(checkpoint)
    }

    /// Drops the query indexes and builds them again from the records, to
    /// repair indexes that [`crate::verify()`] found damaged.
    pub fn rebuild_indexes(&mut self) -> Result<(), LedgerError> {
        let db = Arc::get_mut(&mut self.db).ok_or_else(|| LedgerError::SyncerInUse { path: self.path.clone() })?;
        index::rebuild(db, &self.path)
    }

    /// Returns a handle that syncs this ledger's write-ahead log, for a
    /// thread that makes the records of [`Ledger::append_batch_unsynced`]
    /// durable while this one appends the next batch.
    pub fn wal_sync(&self) -> WalSync {
        WalSync { db: Arc::clone(&self.db), path: self.path.clone() }
    }

    /// Returns the number of leaves and the root hash of the Merkle tree
    /// over all records.
    pub fn tree_head(&self) -> (u64, Hash) {
        (self.frontier.size(), self.frontier.root())
    }

    /// Returns the Merkle root hash of the first `size` records, from the
    /// stored tree. Fails with [`LedgerError::MissingRecord`] when the ledger
    /// has fewer than `size` records.
    pub fn root_at(&self, size: u64) -> Result<Hash, LedgerError> {
        if size > self.len() {
            return Err(LedgerError::MissingRecord { path: self.path.clone(), seq: self.len() });
        }
        crate::merkle::root(&tree::StoredTree { db: &self.db, path: &self.path }, size)
    }

    /// Appends records, one per `(wall time in Unix nanoseconds, body)`, in
    /// the given order. Returns once the records are durable, with their
    /// sequence numbers and hashes. An empty batch writes nothing.
    ///
    /// On error the in-memory head names the last record that RocksDB
    /// accepted: none of this batch's, or for a batch written in parts, the
    /// end of the last part written before the failed one. Records that the
    /// write-ahead log got before a sync failed can still reach the disk.
    /// They then show up after a reopen, which continues the chain from
    /// them.
    pub fn append_batch(&mut self, bodies: Vec<(u64, RecordBody)>) -> Result<Vec<Appended>, LedgerError> {
        self.write(bodies, None, true)
    }

    /// Appends records like [`Ledger::append_batch`], but returns once
    /// RocksDB has them in its write-ahead log and memtables, before they are
    /// durable. They are durable once a [`WalSync::sync`] that started
    /// after this call returned has returned, or a later synced append or
    /// checkpoint. A process crash keeps them (the log is in the page
    /// cache); a power loss before the sync can lose them.
    pub fn append_batch_unsynced(&mut self, bodies: Vec<(u64, RecordBody)>) -> Result<Vec<Appended>, LedgerError> {
        self.write(bodies, None, false)
    }

    /// Writes records, their tree nodes and index entries, the new head and
    /// the `extra` entry (column family, key, value), in one batch, or, for
    /// more than [`PART_RECORDS`] records, in parts ([`crate::parts`]). With
    /// `sync`, the last write syncs the write-ahead log.
    ///
    /// When a part fails, the parts written before it stay in the ledger and
    /// the head moves to their last record, because the next append must
    /// continue the chain that RocksDB holds.
    fn write(
        &mut self,
        bodies: Vec<(u64, RecordBody)>,
        extra: Option<(&'static str, Vec<u8>, Vec<u8>)>,
        sync: bool,
    ) -> Result<Vec<Appended>, LedgerError> {
        let Some(last_body) = bodies.len().checked_sub(1) else {
            return Ok(Vec::new());
        };
        let first = self.next_seq()?;
        u64::try_from(last_body)
            .ok()
            .and_then(|offset| first.checked_add(offset))
            .ok_or_else(|| LedgerError::SeqExhausted { path: self.path.clone() })?;

        let mut chain = Chain {
            next_seq: first,
            prev_hash: self.head.map_or(ZERO_HASH, |(_, hash)| hash),
            frontier: self.frontier.clone(),
        };
        let mut appended = Vec::with_capacity(bodies.len());
        // The chain after each part that was prepared.
        let mut prepared: Vec<((u64, Hash), Frontier)> = Vec::new();
        let single = bodies.len() <= PART_RECORDS;
        let mut bodies = bodies.into_iter();
        let mut extra = extra;
        let mut prepare = || {
            if bodies.len() == 0 {
                return None;
            }
            let part: Vec<_> = bodies.by_ref().take(PART_RECORDS).collect();
            let last_part = bodies.len() == 0;
            let extra = if last_part { extra.take() } else { None };
            let part = self.prepare(&mut chain, part, extra, &mut appended).map(|mut part| {
                part.sync = sync && last_part;
                prepared.push(((part.last, chain.prev_hash), chain.frontier.clone()));
                part
            });
            Some(part)
        };
        let (written, result) = if single {
            match prepare() {
                Some(Ok(part)) => (1, parts::write_part(&self.db, &self.path, part)),
                Some(Err(error)) => (0, Err(error)),
                None => (0, Ok(())),
            }
        } else {
            parts::write_parts(&self.db, &self.path, prepare)
        };
        let written = if result.is_ok() { prepared.len() } else { written };
        prepared.truncate(written);
        if let Some((head, frontier)) = prepared.pop() {
            self.head = Some(head);
            self.frontier = frontier;
        }
        result.map(|()| appended)
    }

    /// Encodes and hashes `bodies` as the records after `chain`, adds them
    /// to `appended`, and returns an unsynced part with their records, tree
    /// nodes, index entries, the head after them and the `extra` entry.
    fn prepare(
        &self,
        chain: &mut Chain,
        bodies: Vec<(u64, RecordBody)>,
        extra: Option<(&'static str, Vec<u8>, Vec<u8>)>,
        appended: &mut Vec<Appended>,
    ) -> Result<Part, LedgerError> {
        let records = self.cf(RECORDS_CF)?;
        let tree_cf = self.cf(TREE_CF)?;
        let mut batch = WriteBatch::default();
        let mut postings = Postings::default();
        let first = chain.next_seq;
        // `put_cf` copies the bytes into the batch, so one buffer serves
        // every record.
        let mut bytes = Vec::new();
        for (time_ns, body) in bodies {
            let seq = chain.next_seq;
            let record = Record { seq, time_ns, prev_hash: chain.prev_hash, body };
            record.encode_into(&mut bytes).map_err(|source| LedgerError::Encode { seq, source })?;
            let hash = leaf_hash(&bytes);
            batch.put_cf(records, seq.to_be_bytes(), &bytes);
            postings.add(&record);
            tree::push_leaf(tree_cf, &mut chain.frontier, hash, &mut batch);
            appended.push(Appended { seq, hash });
            chain.prev_hash = hash;
            chain.next_seq = seq + 1;
        }
        let last = chain.next_seq - 1;
        postings.write(&self.db, &self.path, &mut batch)?;
        batch.put_cf(self.cf(META_CF)?, HEAD_KEY, encode_head(last, &chain.prev_hash));
        if let Some((name, key, value)) = extra {
            batch.put_cf(self.cf(name)?, key, value);
        }
        Ok(Part { batch, first, last, sync: false })
    }

    /// Appends one record and returns once it is durable.
    pub fn append(&mut self, time_ns: u64, body: RecordBody) -> Result<Appended, LedgerError> {
        let mut appended = self.append_batch(vec![(time_ns, body)])?;
        Ok(appended.remove(0))
    }

    /// Returns the number of records.
    pub fn len(&self) -> u64 {
        self.head.map_or(0, |(seq, _)| seq.saturating_add(1))
    }

    pub fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// Returns the sequence number and hash of the last record.
    pub fn head(&self) -> Option<(u64, Hash)> {
        self.head
    }

    /// Returns the ledger directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn next_seq(&self) -> Result<u64, LedgerError> {
        match self.head {
            None => Ok(0),
            Some((seq, _)) => seq.checked_add(1).ok_or_else(|| LedgerError::SeqExhausted { path: self.path.clone() }),
        }
    }

    fn cf(&self, name: &'static str) -> Result<&ColumnFamily, LedgerError> {
        column_family(&self.db, &self.path, name)
    }

    /// Returns the bytes in the memtables of every column family, as
    /// RocksDB counts them. A column family whose size cannot be read
    /// counts as empty.
    fn memtable_bytes(&self) -> u64 {
        ALL_CFS
            .iter()
            .filter_map(|name| self.db.cf_handle(name))
            .filter_map(|family| self.db.property_int_value_cf(family, "rocksdb.cur-size-all-mem-tables").ok()?)
            .sum()
    }

    /// Writes the memtables of every column family to table files. With
    /// `wait`, returns when they are written, otherwise once the flush is
    /// scheduled.
    fn flush_memtables(&self, wait: bool) -> Result<(), rocksdb::Error> {
        let families: Vec<&ColumnFamily> = ALL_CFS.iter().filter_map(|name| self.db.cf_handle(name)).collect();
        let mut options = FlushOptions::default();
        options.set_wait(wait);
        self.db.flush_cfs_opt(&families, &options)
    }
}

impl Drop for Ledger {
    /// Flushes the memtables, so that the next open, read-only ones
    /// included, replays an almost empty write-ahead log. A failed flush
    /// loses nothing, because the log still contains the records, so its
    /// error is ignored.
    fn drop(&mut self) {
        let _ = self.flush_memtables(true);
    }
}

/// A handle that syncs the write-ahead log of a [`Ledger`], from any
/// thread. Every record that an append had written when [`WalSync::sync`]
/// started is durable when it returns.
pub struct WalSync {
    db: Arc<DB>,
    path: PathBuf,
}

impl WalSync {
    /// Writes RocksDB's log buffer to the log file and syncs it.
    pub fn sync(&self) -> Result<(), LedgerError> {
        self.db.flush_wal(true).map_err(|source| LedgerError::SyncLog { path: self.path.clone(), source })
    }
}

/// The end of the chain while an append prepares its records.
struct Chain {
    next_seq: u64,
    prev_hash: Hash,
    frontier: Frontier,
}

/// Every column family of a ledger.
const ALL_CFS: [&str; 8] =
    [RECORDS_CF, META_CF, TREE_CF, CHECKPOINTS_CF, INDEX_CFS[0], INDEX_CFS[1], INDEX_CFS[2], INDEX_CFS[3]];

/// Memtable bytes from which [`Ledger::checkpoint`] also flushes the
/// memtables to table files.
const CHECKPOINT_FLUSH_BYTES: u64 = 32 << 20;

/// Write-ahead log size above which RocksDB flushes the column families
/// whose data keeps the oldest log file alive.
const MAX_TOTAL_WAL_SIZE: u64 = 128 << 20;

/// Returns the database options shared by writers and readers: LZ4 for every
/// column family, because the workspace builds RocksDB with LZ4 only.
///
/// The index, tree and meta column families receive a few bytes per record,
/// so without a limit on the log their memtables would fill only after
/// millions of records. Until then every log file stays alive: the writer's
/// memory grows with the ledger, and a read-only open replays the whole log.
/// [`MAX_TOTAL_WAL_SIZE`] bounds both.
///
/// Every column family uses these options. Two changes were measured with
/// `cargo xtask bench` (1 million records, 2 shared cores) and not kept. A
/// `write_buffer_size` of 128 or 256 MiB for the records changed the append
/// rate by less than the run-to-run noise, and it raised the writer's
/// resident memory from about 130 MB to 200 or 280 MB. Turning compression
/// off for the tree saved nothing measurable, because the tree stores only
/// one node per about 255 records.
pub(crate) fn db_options() -> Options {
    let mut options = Options::default();
    options.set_compression_type(DBCompressionType::Lz4);
    options.set_max_total_wal_size(MAX_TOTAL_WAL_SIZE);
    options
}

pub(crate) fn column_families() -> Vec<ColumnFamilyDescriptor> {
    ALL_CFS.into_iter().map(|name| ColumnFamilyDescriptor::new(name, db_options())).collect()
}

pub(crate) fn column_family<'db>(
    db: &'db DB,
    path: &Path,
    name: &'static str,
) -> Result<&'db ColumnFamily, LedgerError> {
    db.cf_handle(name).ok_or_else(|| LedgerError::MissingColumnFamily { path: path.to_owned(), name })
}

pub(crate) fn encode_head(seq: u64, hash: &Hash) -> Vec<u8> {
    let mut value = Vec::with_capacity(HEAD_LEN);
    value.extend_from_slice(&seq.to_be_bytes());
    value.extend_from_slice(hash);
    value
}

/// Parses a head entry, or returns its length when it has the wrong size.
pub(crate) fn decode_head(value: &[u8]) -> Result<(u64, Hash), usize> {
    if value.len() != HEAD_LEN {
        return Err(value.len());
    }
    let (seq, hash) = value.split_at(8);
    let seq = u64::from_be_bytes(seq.try_into().expect("split at 8"));
    Ok((seq, hash.try_into().expect("head hash is 32 bytes")))
}

/// Parses a record key, or returns `None` when it is not 8 bytes.
pub(crate) fn decode_key(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// Reads the stored head metadata without checking it.
pub(crate) fn read_head(db: &DB, path: &Path) -> Result<Option<Vec<u8>>, LedgerError> {
    db.get_cf(column_family(db, path, META_CF)?, HEAD_KEY)
        .map_err(|source| LedgerError::ReadHead { path: path.to_owned(), source })
}

/// Reads one record's key and value by sequence number.
fn read_record(db: &DB, path: &Path, seq: u64) -> Result<Option<Vec<u8>>, LedgerError> {
    db.get_cf(column_family(db, path, RECORDS_CF)?, seq.to_be_bytes())
        .map_err(|source| LedgerError::ReadRecords { path: path.to_owned(), source })
}

/// Checks that the head metadata names the last record and that the last
/// record links to the one before it. Returns the head.
fn check_head(db: &DB, path: &Path) -> Result<Option<(u64, Hash)>, LedgerError> {
    let broken = |problem| LedgerError::BrokenHead { path: path.to_owned(), problem };

    let head = read_head(db, path)?
        .map(|value| decode_head(&value).map_err(|len| broken(HeadProblem::InvalidHead { len })))
        .transpose()?;
    let last = db
        .iterator_cf(column_family(db, path, RECORDS_CF)?, IteratorMode::End)
        .next()
        .transpose()
        .map_err(|source| LedgerError::ReadRecords { path: path.to_owned(), source })?;

    let ((head_seq, head_hash), (key, value)) = match (head, last) {
        (None, None) => return Ok(None),
        (Some((head_seq, _)), None) => {
            return Err(broken(HeadProblem::MissingRecords { head_seq }));
        }
        (None, Some((key, value))) => {
            let last_seq = decode_stored(path, &key, &value)?.seq;
            return Err(broken(HeadProblem::MissingHead { last_seq }));
        }
        (Some(head), Some(last)) => (head, last),
    };

    let record = decode_stored(path, &key, &value)?;
    if record.seq != head_seq {
        return Err(broken(HeadProblem::SeqMismatch { head_seq, last_seq: record.seq }));
    }
    if leaf_hash(&value) != head_hash {
        return Err(broken(HeadProblem::HashMismatch { seq: head_seq }));
    }

    let expected_prev = match head_seq.checked_sub(1) {
        None => ZERO_HASH,
        Some(prev_seq) => match read_record(db, path, prev_seq)? {
            Some(prev) => leaf_hash(&prev),
            None => return Err(broken(HeadProblem::MissingPrevious { seq: head_seq })),
        },
    };
    if record.prev_hash != expected_prev {
        return Err(broken(HeadProblem::PrevHashMismatch { seq: head_seq }));
    }
    Ok(Some((head_seq, head_hash)))
}

/// Decodes a stored record and checks that its key matches its `seq`.
pub(crate) fn decode_stored(path: &Path, key: &[u8], value: &[u8]) -> Result<Record, LedgerError> {
    let key_seq =
        decode_key(key).ok_or_else(|| LedgerError::InvalidKey { path: path.to_owned(), key: key.to_vec() })?;
    let record =
        Record::decode(value).map_err(|source| LedgerError::Decode { path: path.to_owned(), seq: key_seq, source })?;
    if record.seq != key_seq {
        return Err(LedgerError::KeyMismatch { path: path.to_owned(), key: key_seq, stored: record.seq });
    }
    Ok(record)
}

/// Appends a checkpoint note to the sink file, or writes it to a new file
/// in the sink folder, and syncs it.
fn append_to_sink(sink: &Path, checkpoint: &Checkpoint) -> std::io::Result<()> {
    let (path, text) = if sink.is_dir() {
        (sink.join(format!("checkpoint-{}", checkpoint.tree_size)), checkpoint.note.clone())
    } else {
        // An empty line keeps the notes in one file apart for readers.
        (sink.to_owned(), format!("{}\n", checkpoint.note))
    };
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
