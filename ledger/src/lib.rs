//! lupid's evidence ledger: an append-only, hash-chained record store on
//! RocksDB.
//!
//! The daemon appends [`Record`]s through [`Ledger`]; tools read them with
//! [`LedgerReader`], check the chain and the query indexes with
//! [`verify()`], filter it with
//! [`query::run`] and export it with [`export_jsonl`], [`ocsf::export_ocsf`]
//! or, as a folder checkable without RocksDB, [`bundle::export_bundle`].
//!
//! Each record's canonical bytes ([`codec`]) start with its sequence number
//! and the hash of the record before it, and a record's hash is the RFC 6962
//! leaf hash of those bytes. Changing, removing or reordering any record
//! therefore breaks a link that [`verify()`] reports, and changing the last
//! record breaks its match with the stored head.

pub mod audit;
pub mod bundle;
pub mod checkpoint;
pub mod codec;
mod error;
pub mod export;
pub mod index;
pub mod index_check;
pub mod keys;
pub mod merkle;
pub mod note;
pub mod ocsf;
mod parts;
pub mod proof;
pub mod query;
mod reader;
pub mod record;
mod scan;
mod store;
pub mod timestamp;
pub mod tree;
pub mod verify;

pub use audit::{AuditReport, CheckpointBreak, CheckpointBreakKind, audit};
pub use checkpoint::{Checkpoint, CheckpointError};
pub use codec::{DecodeError, EncodeError, leaf_hash};
pub use error::{HeadProblem, LedgerError};
pub use index_check::{EntryProblem, IndexBreak, IndexBreakKind};
pub use export::{ExportError, export_jsonl, record_json};
pub use keys::{KeyError, SigningKey, VerifierKey};
pub use merkle::ProofError;
pub use note::NoteError;
pub use proof::{CheckError, InclusionProof, ProveError};
pub use reader::{LedgerReader, StoredRecord};
pub use record::{
    AgentExit, CheckpointRecord, DaemonGap, DaemonStart, DaemonStop, Decision, EventsLost, Hash, Hook, Identity, Kind,
    LeaseExpired, LeaseGranted, LeaseRevoked, ModeChanged, Object, PolicyLoaded, Reason, Record, RecordBody, Verdict,
    Via, EXIT_UNKNOWN, ZERO_HASH,
};
pub use parts::PART_RECORDS;
pub use store::{Appended, WalSync, CHECKPOINTS_CF, HEAD_KEY, Ledger, META_CF, RECORDS_CF};
pub use tree::TREE_CF;
pub use verify::{Break, BreakKind, Gap, GapCause, VerifyReport, verify, verify_reader};
