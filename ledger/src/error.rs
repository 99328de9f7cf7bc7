//! Errors of the ledger store.

use std::{fmt, path::PathBuf};

use crate::{
    checkpoint::CheckpointError,
    codec::{DecodeError, EncodeError},
};

/// A failed ledger operation. Each variant names the ledger directory and,
/// where one is involved, the record sequence number.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("failed to create ledger directory {}", .path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ledger not found: {} has no RocksDB CURRENT file", .path.display())]
    NotFound { path: PathBuf },
    #[error("failed to open ledger {}", .path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    #[error(
        "{path} is not empty but has no RocksDB CURRENT file, so it is a damaged ledger or not a ledger; lupid will not create a new ledger over it (RocksDB would delete the files it does not know): restore CURRENT from a backup, or point --ledger at an empty folder"
    )]
    NotALedger { path: PathBuf },
    #[error("ledger {} has no column family `{name}`", .path.display())]
    MissingColumnFamily { path: PathBuf, name: &'static str },
    #[error("failed to read the head metadata of ledger {}", .path.display())]
    ReadHead {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    #[error("failed to read records of ledger {}", .path.display())]
    ReadRecords {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    #[error("failed to write records {first}..={last} to ledger {}", .path.display())]
    Write {
        path: PathBuf,
        first: u64,
        last: u64,
        #[source]
        source: rocksdb::Error,
    },
    #[error("failed to sync the write-ahead log of ledger {}", .path.display())]
    SyncLog {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    #[error("ledger {} has a write-ahead log sync handle in use; drop it before rebuilding the indexes", .path.display())]
    SyncerInUse { path: PathBuf },
    #[error("failed to encode record {seq}")]
    Encode {
        seq: u64,
        #[source]
        source: EncodeError,
    },
    #[error("failed to decode record {seq} of ledger {}", .path.display())]
    Decode {
        path: PathBuf,
        seq: u64,
        #[source]
        source: DecodeError,
    },
    #[error("ledger {} has a record key {} that is not an 8-byte sequence number", path.display(), hex::encode(.key))]
    InvalidKey { path: PathBuf, key: Vec<u8> },
    #[error("ledger {} stores record {stored} under key {key}", .path.display())]
    KeyMismatch { path: PathBuf, key: u64, stored: u64 },
    #[error("ledger {} has a broken head, so it was not opened for writing (run `lupid-ledger verify`): {problem}", .path.display())]
    BrokenHead { path: PathBuf, problem: HeadProblem },
    #[error("ledger {} is full: sequence numbers are exhausted", .path.display())]
    SeqExhausted { path: PathBuf },
    #[error("ledger {} has no record {seq}", .path.display())]
    MissingRecord { path: PathBuf, seq: u64 },
    #[error("failed to read the Merkle tree of ledger {}", .path.display())]
    ReadTree {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    #[error("failed to write the Merkle tree of ledger {}", .path.display())]
    WriteTree {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    #[error("ledger {} has no Merkle tree node at level {level}, index {index} (run `lupid-ledger verify`)", .path.display())]
    MissingTreeNode { path: PathBuf, level: u32, index: u64 },
    #[error("ledger {} has a Merkle tree node at level {level}, index {index} of {len} bytes, expected 32", .path.display())]
    InvalidTreeNode { path: PathBuf, level: u32, index: u64, len: usize },
    #[error("failed to write the query indexes of ledger {}", .path.display())]
    WriteIndex {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    #[error("failed to read the query indexes of ledger {}", .path.display())]
    ReadIndex {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    #[error("failed to draw the random key of the index check of ledger {} from the operating system", .path.display())]
    RandomKey {
        path: PathBuf,
        #[source]
        source: getrandom::Error,
    },
    #[error("ledger {} has an invalid entry in the index `{name}` under key {}", .path.display(), hex::encode(.key))]
    InvalidIndexEntry { path: PathBuf, name: &'static str, key: Vec<u8> },
    #[error("failed to read the checkpoints of ledger {}", .path.display())]
    ReadCheckpoints {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    #[error("ledger {} has an invalid checkpoint note for tree size {tree_size}", .path.display())]
    InvalidCheckpoint {
        path: PathBuf,
        tree_size: u64,
        #[source]
        source: CheckpointError,
    },
    #[error("ledger {} has no checkpoint{} yet: the daemon signs one at every checkpoint interval, and `sudo lupid-agent checkpoint` signs one now", .path.display(), .covering.map(|seq| format!(" that covers record {seq}")).unwrap_or_default())]
    NoCheckpoint { path: PathBuf, covering: Option<u64> },
    #[error("checkpoint of tree size {tree_size} is stored in ledger {}, but appending it to {} failed", .path.display(), .sink.display())]
    CheckpointSink {
        path: PathBuf,
        sink: PathBuf,
        tree_size: u64,
        #[source]
        source: std::io::Error,
    },
}

/// A mismatch between the stored head metadata and the stored records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadProblem {
    /// Records exist but the head metadata does not.
    MissingHead { last_seq: u64 },
    /// The head metadata exists but no record does.
    MissingRecords { head_seq: u64 },
    /// The head metadata value has the wrong size.
    InvalidHead { len: usize },
    /// The head names another record than the last one stored.
    SeqMismatch { head_seq: u64, last_seq: u64 },
    /// The last record does not hash to the head hash.
    HashMismatch { seq: u64 },
    /// The last record's `prev_hash` is not the hash of the record before it.
    PrevHashMismatch { seq: u64 },
    /// The record before the last one is missing.
    MissingPrevious { seq: u64 },
}

impl fmt::Display for HeadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingHead { last_seq } => {
                write!(f, "head metadata is missing but records exist up to record {last_seq}")
            }
            Self::MissingRecords { head_seq } => {
                write!(f, "head metadata names record {head_seq} but no records are stored")
            }
            Self::InvalidHead { len } => {
                write!(f, "head metadata is {len} bytes, expected 40")
            }
            Self::SeqMismatch { head_seq, last_seq } => {
                write!(f, "head metadata names record {head_seq} but the last stored record is {last_seq}")
            }
            Self::HashMismatch { seq } => write!(f, "record {seq} does not match the head hash"),
            Self::PrevHashMismatch { seq: 0 } => {
                write!(f, "record 0: prev_hash is not all zero")
            }
            Self::PrevHashMismatch { seq } => {
                write!(f, "record {seq}: prev_hash does not match the hash of record {}", seq - 1)
            }
            Self::MissingPrevious { seq } => {
                write!(f, "record {} missing before the last record {seq}", seq - 1)
            }
        }
    }
}
