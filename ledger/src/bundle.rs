//! Self-contained evidence bundles: a folder that a third party can check
//! without RocksDB or access to the host.
//!
//! # Layout
//!
//! - `records.bin`: every record in `seq` order, each as a u32 big-endian
//!   length followed by the record's canonical bytes ([`crate::codec`]).
//! - `checkpoints.txt`: every stored checkpoint note in tree size order,
//!   separated by one empty line ([`crate::checkpoint::split_notes`]).
//! - `checkpoint.key.pub`: the verifier key (`name+id+base64`) and a
//!   newline.
//! - `manifest.json`: `format` (`lupid-ledger-bundle`), `version` (1), the
//!   number of `records` and `checkpoints`, `head_hash` (hex of the last
//!   record's hash, or `null`), `root_hash` (hex of the Merkle root over all
//!   records), and `files`, which maps each file name above to its `bytes`
//!   and `sha256` (hex).
//!
//! # Checks
//!
//! [`verify_bundle`] recomputes the hash chain and the Merkle tree from
//! `records.bin`, as [`crate::verify()`] does for a ledger, checks each
//! checkpoint record against the tree before it, checks every checkpoint
//! note's signature and that its root hash is the root of the tree at its
//! size, and compares the counts, head, root and file hashes with the
//! manifest. The key in the bundle only proves that the bundle agrees with
//! itself: pass the key obtained from the ledger's owner to tie the bundle
//! to them.

use std::{
    collections::BTreeMap,
    fmt, fs,
    path::{Path, PathBuf},
};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    checkpoint::{Checkpoint, CheckpointError, split_notes},
    codec::{DecodeError, leaf_hash},
    error::LedgerError,
    keys::VerifierKey,
    merkle::Frontier,
    reader::LedgerReader,
    record::{Hash, Record, RecordBody, ZERO_HASH},
};

/// File of the length-prefixed canonical records.
pub const RECORDS_FILE: &str = "records.bin";
/// File of the checkpoint notes.
pub const CHECKPOINTS_FILE: &str = "checkpoints.txt";
/// File of the verifier key.
pub const KEY_FILE: &str = "checkpoint.key.pub";
/// File of the manifest.
pub const MANIFEST_FILE: &str = "manifest.json";

const FORMAT: &str = "lupid-ledger-bundle";
const VERSION: u64 = 1;

/// A bundle that cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("failed to write {}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("record {seq} is {len} bytes, more than a u32 length prefix allows")]
    RecordTooLong { seq: u64, len: usize },
}

/// Counts and root hash of a bundle that [`export_bundle`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleSummary {
    pub records: u64,
    pub checkpoints: u64,
    pub root_hash: Hash,
}

/// Writes the bundle of the ledger behind `reader` into `dir`, creating it
/// if missing and replacing the bundle files in it.
pub fn export_bundle(reader: &LedgerReader, key: &VerifierKey, dir: &Path) -> Result<BundleSummary, BundleError> {
    fs::create_dir_all(dir).map_err(|source| BundleError::Write { path: dir.to_owned(), source })?;

    let mut records = Vec::new();
    let mut frontier = Frontier::default();
    let mut head = None;
    for entry in reader.raw_records()? {
        let (_, value) = entry?;
        let seq = frontier.size();
        let len = u32::try_from(value.len()).map_err(|_| BundleError::RecordTooLong { seq, len: value.len() })?;
        records.extend_from_slice(&len.to_be_bytes());
        records.extend_from_slice(&value);
        let hash = leaf_hash(&value);
        frontier.push(hash);
        head = Some(hash);
    }

    let notes = reader.checkpoint_notes()?;
    let checkpoints = notes.iter().map(|(_, note)| note.as_str()).collect::<Vec<_>>().join("\n");
    let key_text = format!("{key}\n");

    let mut files = serde_json::Map::new();
    for (name, bytes) in [(RECORDS_FILE, &records[..]), (CHECKPOINTS_FILE, checkpoints.as_bytes()), (KEY_FILE, key_text.as_bytes())]
    {
        write_file(&dir.join(name), bytes)?;
        files.insert(name.into(), json!({ "bytes": bytes.len(), "sha256": hex::encode(Sha256::digest(bytes)) }));
    }
    let summary = BundleSummary { records: frontier.size(), checkpoints: notes.len() as u64, root_hash: frontier.root() };
    let manifest = json!({
        "format": FORMAT,
        "version": VERSION,
        "records": summary.records,
        "checkpoints": summary.checkpoints,
        "head_hash": head.map(hex::encode),
        "root_hash": hex::encode(summary.root_hash),
        "files": files,
    });
    // The alternate form of a JSON value's `Display` is the pretty form.
    write_file(&dir.join(MANIFEST_FILE), format!("{manifest:#}\n").as_bytes())?;
    Ok(summary)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), BundleError> {
    fs::write(path, bytes).map_err(|source| BundleError::Write { path: path.to_owned(), source })
}

fn read_file(path: &Path) -> Result<Vec<u8>, BundleError> {
    fs::read(path).map_err(|source| BundleError::Read { path: path.to_owned(), source })
}

/// The first problem found in a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleBreak {
    /// `manifest.json` is not the expected JSON object.
    InvalidManifest(&'static str),
    /// A file's size or SHA-256 differs from the manifest.
    FileMismatch { file: &'static str },
    /// `records.bin` ends inside the length prefix or bytes of a record.
    Truncated { seq: u64, offset: usize },
    Undecodable { seq: u64, error: DecodeError },
    NotCanonical { seq: u64 },
    /// The record at position `seq` states another sequence number.
    SeqMismatch { seq: u64, stored: u64 },
    PrevHashMismatch { seq: u64 },
    CheckpointRecordMismatch { seq: u64 },
    /// The manifest states another record or checkpoint count, or root.
    ManifestMismatch { field: &'static str },
    /// The last record does not hash to the manifest's `head_hash`.
    HeadMismatch { seq: u64 },
    /// The verifier key file cannot be parsed.
    InvalidKey(String),
    /// Checkpoint note `index` (from 0, in file order) is invalid or not
    /// signed by the key.
    InvalidCheckpoint { index: usize, error: CheckpointError },
    /// A checkpoint covers more records than the bundle holds.
    CheckpointBeyondRecords { tree_size: u64, records: u64 },
    /// A checkpoint's root hash is not the root of the records it covers.
    CheckpointRootMismatch { tree_size: u64 },
}

impl fmt::Display for BundleBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidManifest(problem) => write!(f, "{MANIFEST_FILE}: {problem}"),
            Self::FileMismatch { file } => write!(f, "{file}: size or SHA-256 differs from {MANIFEST_FILE}"),
            Self::Truncated { seq, offset } => {
                write!(f, "{RECORDS_FILE}: record {seq} at byte offset {offset} runs past the end of the file")
            }
            Self::Undecodable { seq, error } => write!(f, "{RECORDS_FILE}: record {seq}: cannot decode: {error}"),
            Self::NotCanonical { seq } => {
                write!(f, "{RECORDS_FILE}: record {seq}: bytes are not the canonical encoding of the record")
            }
            Self::SeqMismatch { seq, stored } => {
                write!(f, "{RECORDS_FILE}: record {seq}: states sequence number {stored}")
            }
            Self::PrevHashMismatch { seq: 0 } => write!(f, "{RECORDS_FILE}: record 0: prev_hash is not all zero"),
            Self::PrevHashMismatch { seq } => {
                write!(f, "{RECORDS_FILE}: record {seq}: prev_hash does not match the hash of record {}", seq - 1)
            }
            Self::CheckpointRecordMismatch { seq } => write!(
                f,
                "{RECORDS_FILE}: record {seq}: checkpoint record does not match the tree of records 0..{seq}"
            ),
            Self::ManifestMismatch { field } => {
                write!(f, "{MANIFEST_FILE}: `{field}` does not match the records and checkpoints in the bundle")
            }
            Self::HeadMismatch { seq } => write!(
                f,
                "{RECORDS_FILE}: record {seq}: hash does not match `head_hash` in {MANIFEST_FILE} (the last record was changed)"
            ),
            Self::InvalidKey(error) => write!(f, "verifier key is invalid: {error}"),
            Self::InvalidCheckpoint { index, error } => {
                write!(f, "{CHECKPOINTS_FILE}: checkpoint note {index} is invalid: {error}")
            }
            Self::CheckpointBeyondRecords { tree_size, records } => write!(
                f,
                "{CHECKPOINTS_FILE}: checkpoint of tree size {tree_size} covers more than the {records} records"
            ),
            Self::CheckpointRootMismatch { tree_size } => write!(
                f,
                "{CHECKPOINTS_FILE}: checkpoint of tree size {tree_size} has a root hash that is not the root of records 0..{tree_size}"
            ),
        }
    }
}

/// The result of [`verify_bundle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleReport {
    /// Records whose chain links were checked before any break.
    pub records_checked: u64,
    pub checkpoints_checked: u64,
    /// Root of the Merkle tree over the checked records.
    pub root_hash: Hash,
    /// Whether the verifier key came from the bundle itself.
    pub key_from_bundle: bool,
    pub first_break: Option<BundleBreak>,
}

/// Verifies the bundle in `dir` against `key`, or against the key file in
/// the bundle when `key` is `None`.
///
/// Returns an error only when a bundle file cannot be read. A bundle that
/// fails a check is a [`BundleReport`] with `first_break` set. After the
/// manifest and the key are parsed, the order of the checks decides which
/// break is reported: the records, then the manifest's counts, head and
/// root, then the checkpoints, then the file hashes. So a changed record is
/// named by its sequence number rather than by the file hash it breaks.
pub fn verify_bundle(dir: &Path, key: Option<&VerifierKey>) -> Result<BundleReport, BundleError> {
    let manifest_bytes = read_file(&dir.join(MANIFEST_FILE))?;
    let records = read_file(&dir.join(RECORDS_FILE))?;
    let checkpoints = read_file(&dir.join(CHECKPOINTS_FILE))?;
    let key_bytes = read_file(&dir.join(KEY_FILE))?;
    let mut report = BundleReport {
        records_checked: 0,
        checkpoints_checked: 0,
        root_hash: Frontier::default().root(),
        key_from_bundle: key.is_none(),
        first_break: None,
    };

    let manifest = match Manifest::parse(&manifest_bytes) {
        Ok(manifest) => manifest,
        Err(problem) => {
            report.first_break = Some(BundleBreak::InvalidManifest(problem));
            return Ok(report);
        }
    };

    let bundle_key;
    let key = match key {
        Some(key) => key,
        None => match std::str::from_utf8(&key_bytes).map_err(|error| error.to_string()).and_then(|text| {
            VerifierKey::parse(text.trim_end()).map_err(|error| error.to_string())
        }) {
            Ok(parsed) => {
                bundle_key = parsed;
                &bundle_key
            }
            Err(error) => {
                report.first_break = Some(BundleBreak::InvalidKey(error));
                return Ok(report);
            }
        },
    };

    let notes = split_notes(&String::from_utf8_lossy(&checkpoints));
    let mut opened = Vec::with_capacity(notes.len());
    let mut checkpoint_break = None;
    for (index, note) in notes.iter().enumerate() {
        match Checkpoint::open(note, key) {
            Ok(checkpoint) => opened.push(checkpoint),
            Err(error) => {
                checkpoint_break.get_or_insert(BundleBreak::InvalidCheckpoint { index, error });
            }
        }
    }
    let sizes: Vec<u64> = opened.iter().map(|checkpoint| checkpoint.tree_size).collect();

    let walk = walk_records(&records, &sizes);
    report.records_checked = walk.records;
    report.root_hash = walk.root;
    if let Some(record_break) = walk.first_break {
        report.first_break = Some(record_break);
        return Ok(report);
    }

    let mismatch = |field| Some(BundleBreak::ManifestMismatch { field });
    report.first_break = if manifest.records != walk.records {
        mismatch("records")
    } else if manifest.head_hash != walk.head {
        Some(BundleBreak::HeadMismatch { seq: walk.records.saturating_sub(1) })
    } else if manifest.root_hash != walk.root {
        mismatch("root_hash")
    } else if manifest.checkpoints != notes.len() as u64 {
        mismatch("checkpoints")
    } else {
        None
    };
    if report.first_break.is_some() {
        return Ok(report);
    }

    if let Some(checkpoint_break) = checkpoint_break {
        report.first_break = Some(checkpoint_break);
        return Ok(report);
    }
    for checkpoint in &opened {
        let tree_size = checkpoint.tree_size;
        match walk.roots.get(&tree_size) {
            None => {
                report.first_break =
                    Some(BundleBreak::CheckpointBeyondRecords { tree_size, records: walk.records });
                return Ok(report);
            }
            Some(root) if *root != checkpoint.root_hash => {
                report.first_break = Some(BundleBreak::CheckpointRootMismatch { tree_size });
                return Ok(report);
            }
            Some(_) => report.checkpoints_checked += 1,
        }
    }

    for (file, bytes) in [
        (RECORDS_FILE, &records),
        (CHECKPOINTS_FILE, &checkpoints),
        (KEY_FILE, &key_bytes),
    ] {
        let expected = manifest.files.get(file);
        if expected != Some(&(bytes.len() as u64, Sha256::digest(bytes).into())) {
            report.first_break = Some(BundleBreak::FileMismatch { file });
            return Ok(report);
        }
    }
    Ok(report)
}

/// The parsed manifest.
struct Manifest {
    records: u64,
    checkpoints: u64,
    head_hash: Option<Hash>,
    root_hash: Hash,
    /// File name to size and SHA-256.
    files: BTreeMap<String, (u64, Hash)>,
}

impl Manifest {
    fn parse(bytes: &[u8]) -> Result<Self, &'static str> {
        let value: Value = serde_json::from_slice(bytes).map_err(|_| "is not valid JSON")?;
        if value["format"] != FORMAT || value["version"] != VERSION {
            return Err("is not a version 1 lupid-ledger-bundle manifest");
        }
        let hash = |value: &Value| -> Option<Hash> { hex::decode(value.as_str()?).ok()?.try_into().ok() };
        let records = value["records"].as_u64().ok_or("`records` is not a number")?;
        let checkpoints = value["checkpoints"].as_u64().ok_or("`checkpoints` is not a number")?;
        let head_hash = match &value["head_hash"] {
            Value::Null => None,
            other => Some(hash(other).ok_or("`head_hash` is not the hex of 32 bytes")?),
        };
        let root_hash = hash(&value["root_hash"]).ok_or("`root_hash` is not the hex of 32 bytes")?;
        let mut files = BTreeMap::new();
        for (name, entry) in value["files"].as_object().ok_or("`files` is not an object")? {
            let size = entry["bytes"].as_u64().ok_or("a file's `bytes` is not a number")?;
            let digest = hash(&entry["sha256"]).ok_or("a file's `sha256` is not the hex of 32 bytes")?;
            files.insert(name.clone(), (size, digest));
        }
        Ok(Self { records, checkpoints, head_hash, root_hash, files })
    }
}

/// The outcome of walking `records.bin`.
struct Walk {
    records: u64,
    head: Option<Hash>,
    root: Hash,
    /// Root hash at each requested size that the records reach.
    roots: BTreeMap<u64, Hash>,
    first_break: Option<BundleBreak>,
}

fn walk_records(bytes: &[u8], sizes: &[u64]) -> Walk {
    let mut frontier = Frontier::default();
    let mut walk = Walk { records: 0, head: None, root: frontier.root(), roots: BTreeMap::new(), first_break: None };
    let mut offset = 0;
    loop {
        let seq = frontier.size();
        if sizes.contains(&seq) {
            walk.roots.insert(seq, frontier.root());
        }
        if offset == bytes.len() {
            break;
        }
        let Some(value) = length_prefixed(bytes, offset) else {
            walk.first_break = Some(BundleBreak::Truncated { seq, offset });
            break;
        };
        offset += 4 + value.len();
        if let Err(record_break) = check_record(seq, walk.head.unwrap_or(ZERO_HASH), value, &frontier) {
            walk.first_break = Some(record_break);
            break;
        }
        let hash = leaf_hash(value);
        frontier.push(hash);
        walk.head = Some(hash);
        walk.records = frontier.size();
    }
    walk.root = frontier.root();
    walk
}

fn length_prefixed(bytes: &[u8], offset: usize) -> Option<&[u8]> {
    let prefix = bytes.get(offset..offset.checked_add(4)?)?;
    let len = usize::try_from(u32::from_be_bytes(prefix.try_into().ok()?)).ok()?;
    let start = offset + 4;
    bytes.get(start..start.checked_add(len)?)
}

fn check_record(seq: u64, prev_hash: Hash, value: &[u8], frontier: &Frontier) -> Result<(), BundleBreak> {
    let record = Record::decode(value).map_err(|error| BundleBreak::Undecodable { seq, error })?;
    if record.encode().ok().as_deref() != Some(value) {
        return Err(BundleBreak::NotCanonical { seq });
    }
    if record.seq != seq {
        return Err(BundleBreak::SeqMismatch { seq, stored: record.seq });
    }
    if record.prev_hash != prev_hash {
        return Err(BundleBreak::PrevHashMismatch { seq });
    }
    if let RecordBody::Checkpoint(checkpoint) = record.body
        && (checkpoint.tree_size != seq || checkpoint.root_hash != frontier.root())
    {
        return Err(BundleBreak::CheckpointRecordMismatch { seq });
    }
    Ok(())
}
