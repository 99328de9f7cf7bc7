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
//! [`export_bundle`] creates each file new: it fails when a file of that
//! name, or a symbolic link, is already in the folder, and removes the
//! files it created when it fails. It writes `manifest.json` last, so a
//! bundle that was cut short has no manifest and does not verify.
//!
//! # Checks
//!
//! [`verify_bundle`] opens each file without following a symbolic link and
//! only when it is a regular file of at most its size limit (see
//! [`MAX_MANIFEST_BYTES`] and the other limits). It reads `records.bin` one
//! record at a time. It recomputes the hash chain and the Merkle tree from
//! `records.bin`, as [`crate::verify()`] does for a ledger, and checks each
//! checkpoint record against the tree before it. It checks every
//! checkpoint note's signature and that its root hash is the root of the
//! tree at its size, and that every checkpoint record in the chain has a
//! note. It compares the counts, head, root and file hashes with the
//! manifest, and it collects the intervals that the records report as
//! incomplete ([`crate::verify::Gap`]). The key in the bundle only proves
//! that the bundle agrees with itself: pass the key obtained from the
//! ledger's owner to tie the bundle to them.

use std::{
    collections::{BTreeMap, HashSet, btree_map::Entry},
    fmt,
    fs::{self, File, OpenOptions},
    io::{self, BufReader, BufWriter, Read, Write},
    os::unix::fs::{FileTypeExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use nix::{errno::Errno, fcntl::OFlag};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    checkpoint::{Checkpoint, CheckpointError, split_notes},
    codec::{DecodeError, leaf_hash},
    error::LedgerError,
    keys::{KeyError, VerifierKey},
    merkle::Frontier,
    reader::LedgerReader,
    record::{Hash, Record, RecordBody, ZERO_HASH},
    verify::{Gap, gap_of},
};

/// File of the length-prefixed canonical records.
pub const RECORDS_FILE: &str = "records.bin";
/// File of the checkpoint notes.
pub const CHECKPOINTS_FILE: &str = "checkpoints.txt";
/// File of the verifier key.
pub const KEY_FILE: &str = "checkpoint.key.pub";
/// File of the manifest.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Largest `manifest.json` that [`verify_bundle`] reads. A manifest
/// contains a few counts and hashes, under 1 KiB.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024;
/// Largest `checkpoint.key.pub` that [`verify_bundle`] reads. A key and its
/// newline are under 100 bytes.
pub const MAX_KEY_BYTES: u64 = 4 * 1024;
/// Largest `checkpoints.txt` that [`verify_bundle`] reads. A note is about
/// 180 bytes, so this allows about 1.4 million checkpoints: more than two
/// years at the agent's default of one checkpoint a minute.
pub const MAX_CHECKPOINTS_BYTES: u64 = 256 * 1024 * 1024;
/// Largest record in `records.bin` that [`verify_bundle`] reads. The
/// records of a ledger are a few hundred bytes. `records.bin` itself has no
/// size limit: it is read one record at a time, so a bundle of 10 million
/// records (about 2.5 GB) needs no more memory than a small one.
pub const MAX_RECORD_BYTES: u32 = 16 * 1024 * 1024;

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
        source: io::Error,
    },
    #[error(
        "{} already exists, and export does not replace a file or follow a symbolic link: pass --out a new or empty folder, or remove {}",
        .path.display(),
        .path.display()
    )]
    Exists { path: PathBuf },
    #[error("failed to read {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{} is a symbolic link: a bundle file must be a regular file (copy the file itself into the bundle)",
        .path.display()
    )]
    Symlink { path: PathBuf },
    #[error("{} is {kind}, not a regular file: a bundle file must be a regular file", .path.display())]
    NotRegularFile { path: PathBuf, kind: &'static str },
    #[error(
        "{} is {len} bytes, more than the limit of {limit} bytes for this bundle file, so it was not read",
        .path.display()
    )]
    TooLarge { path: PathBuf, len: u64, limit: u64 },
    #[error("record {seq} is {len} bytes, more than a u32 length prefix allows")]
    RecordTooLong { seq: u64, len: usize },
    #[error(
        "the ledger's checkpoint note stored under tree size {tree_size} does not verify with the key: {problem}; run `lupid-ledger verify --key KEY` to see the break, since a bundle of it would not verify"
    )]
    InvalidStoredNote { tree_size: u64, problem: String },
}

/// Counts and root hash of a bundle that [`export_bundle`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleSummary {
    pub records: u64,
    pub checkpoints: u64,
    pub root_hash: Hash,
}

/// Writes the bundle of the ledger behind `reader` into `dir`, creating the
/// folder if missing.
///
/// Each bundle file is created new, so a file or symbolic link of the same
/// name in `dir` is an error ([`BundleError::Exists`]) and is left as it
/// is. When the export fails, the files it created are removed.
pub fn export_bundle(reader: &LedgerReader, key: &VerifierKey, dir: &Path) -> Result<BundleSummary, BundleError> {
    fs::create_dir_all(dir).map_err(|source| BundleError::Write { path: dir.to_owned(), source })?;
    let mut created = Vec::new();
    let result = write_bundle(reader, key, dir, &mut created);
    if result.is_err() {
        // Best effort: `manifest.json` is written last, so a file left
        // behind here belongs to a bundle without a manifest, which does
        // not verify.
        for path in &created {
            let _ = fs::remove_file(path);
        }
    }
    result
}

fn write_bundle(
    reader: &LedgerReader,
    key: &VerifierKey,
    dir: &Path,
    created: &mut Vec<PathBuf>,
) -> Result<BundleSummary, BundleError> {
    // Create every file but the manifest before writing any, so an existing
    // file stops the export before the ledger is read. The manifest is
    // created last, so an export that is killed leaves none. An existing
    // manifest stops the export now, and one planted meanwhile stops it at
    // the end, because `create_new` never opens an existing name.
    let manifest_path = dir.join(MANIFEST_FILE);
    if manifest_path.symlink_metadata().is_ok() {
        return Err(BundleError::Exists { path: manifest_path });
    }
    let mut records = create_new(dir, RECORDS_FILE, created)?;
    let mut checkpoints = create_new(dir, CHECKPOINTS_FILE, created)?;
    let mut key_file = create_new(dir, KEY_FILE, created)?;

    let mut frontier = Frontier::default();
    let mut head = None;
    for entry in reader.raw_records()? {
        let (_, value) = entry?;
        let seq = frontier.size();
        let len = u32::try_from(value.len()).map_err(|_| BundleError::RecordTooLong { seq, len: value.len() })?;
        records.write(&len.to_be_bytes())?;
        records.write(&value)?;
        let hash = leaf_hash(&value);
        frontier.push(hash);
        head = Some(hash);
    }

    let notes = reader.checkpoint_notes()?;
    for (tree_size, note) in &notes {
        check_stored_note(*tree_size, note, key)?;
    }
    let text = notes.iter().map(|(_, note)| note.as_str()).collect::<Vec<_>>().join("\n");
    checkpoints.write(text.as_bytes())?;
    key_file.write(format!("{key}\n").as_bytes())?;

    let mut listed = serde_json::Map::new();
    for (name, writer) in [(RECORDS_FILE, records), (CHECKPOINTS_FILE, checkpoints), (KEY_FILE, key_file)] {
        let (bytes, digest) = writer.finish()?;
        listed.insert(name.into(), json!({ "bytes": bytes, "sha256": hex::encode(digest) }));
    }
    let summary =
        BundleSummary { records: frontier.size(), checkpoints: notes.len() as u64, root_hash: frontier.root() };
    let manifest = json!({
        "format": FORMAT,
        "version": VERSION,
        "records": summary.records,
        "checkpoints": summary.checkpoints,
        "head_hash": head.map(hex::encode),
        "root_hash": hex::encode(summary.root_hash),
        "files": listed,
    });
    let mut manifest_file = create_new(dir, MANIFEST_FILE, created)?;
    // The alternate form of a JSON value's `Display` is the pretty form.
    manifest_file.write(format!("{manifest:#}\n").as_bytes())?;
    manifest_file.finish()?;
    Ok(summary)
}

/// Checks that a note stored under `tree_size` is a checkpoint of that size
/// signed by `key`, so that an export never ships a note that its own
/// verify rejects.
fn check_stored_note(tree_size: u64, note: &str, key: &VerifierKey) -> Result<(), BundleError> {
    let invalid = |problem: String| BundleError::InvalidStoredNote { tree_size, problem };
    let checkpoint = Checkpoint::open(note, key).map_err(|error| invalid(error.to_string()))?;
    if checkpoint.tree_size != tree_size {
        return Err(invalid(format!("the note states tree size {}", checkpoint.tree_size)));
    }
    Ok(())
}

/// Creates the file `name` in `dir` for writing and adds its path to
/// `created`. It fails when any file or symbolic link of that name is
/// there: `create_new` opens with `O_EXCL`, which never follows a symbolic
/// link.
fn create_new(dir: &Path, name: &str, created: &mut Vec<PathBuf>) -> Result<HashingWriter, BundleError> {
    let path = dir.join(name);
    let file = OpenOptions::new().write(true).create_new(true).mode(0o644).open(&path).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            BundleError::Exists { path: path.clone() }
        } else {
            BundleError::Write { path: path.clone(), source }
        }
    })?;
    created.push(path.clone());
    Ok(HashingWriter::new(path, file))
}

/// A buffered file writer that counts and hashes what it writes.
struct HashingWriter {
    path: PathBuf,
    out: BufWriter<File>,
    hasher: Sha256,
    bytes: u64,
}

impl HashingWriter {
    fn new(path: PathBuf, file: File) -> Self {
        Self { path, out: BufWriter::with_capacity(1 << 20, file), hasher: Sha256::new(), bytes: 0 }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), BundleError> {
        self.out.write_all(bytes).map_err(|source| BundleError::Write { path: self.path.clone(), source })?;
        self.hasher.update(bytes);
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Flushes the file to disk and returns its size and SHA-256.
    fn finish(self) -> Result<(u64, Hash), BundleError> {
        let Self { path, out, hasher, bytes } = self;
        let file =
            out.into_inner().map_err(|error| BundleError::Write { path: path.clone(), source: error.into_error() })?;
        file.sync_all().map_err(|source| BundleError::Write { path, source })?;
        Ok((bytes, hasher.finalize().into()))
    }
}

/// Opens the bundle file `name` in `dir` for reading: not through a
/// symbolic link (`O_NOFOLLOW`), without waiting for a writer when it is a
/// FIFO (`O_NONBLOCK`), and only when the opened file is a regular file.
/// Returns the file and its size.
fn open_bundle_file(dir: &Path, name: &str) -> Result<(File, u64), BundleError> {
    let path = dir.join(name);
    let flags = OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK;
    let file = OpenOptions::new().read(true).custom_flags(flags.bits()).open(&path).map_err(|source| {
        if source.raw_os_error() == Some(Errno::ELOOP as i32) {
            BundleError::Symlink { path: path.clone() }
        } else {
            BundleError::Read { path: path.clone(), source }
        }
    })?;
    let metadata = file.metadata().map_err(|source| BundleError::Read { path: path.clone(), source })?;
    let file_type = metadata.file_type();
    if !file_type.is_file() {
        let kind = if file_type.is_dir() {
            "a folder"
        } else if file_type.is_fifo() {
            "a FIFO"
        } else if file_type.is_char_device() {
            "a character device"
        } else if file_type.is_block_device() {
            "a block device"
        } else if file_type.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(BundleError::NotRegularFile { path, kind });
    }
    Ok((file, metadata.len()))
}

/// Reads the whole bundle file `name`, which may hold at most `limit`
/// bytes.
fn read_small(dir: &Path, name: &str, limit: u64) -> Result<Vec<u8>, BundleError> {
    let (file, len) = open_bundle_file(dir, name)?;
    let path = || dir.join(name);
    if len > limit {
        return Err(BundleError::TooLarge { path: path(), len, limit });
    }
    let mut bytes = Vec::new();
    // Reading one byte past the limit detects a file that grew after the
    // size check.
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|source| BundleError::Read { path: path(), source })?;
    if bytes.len() as u64 > limit {
        return Err(BundleError::TooLarge { path: path(), len: bytes.len() as u64, limit });
    }
    Ok(bytes)
}

/// The first problem found in a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleBreak {
    /// `manifest.json` is not the expected JSON object.
    InvalidManifest(&'static str),
    /// A file's size or SHA-256 differs from the manifest.
    FileMismatch {
        file: &'static str,
    },
    /// `records.bin` ends inside the length prefix or bytes of a record.
    Truncated {
        seq: u64,
        offset: u64,
    },
    /// A record's length prefix is more than [`MAX_RECORD_BYTES`].
    RecordTooLarge {
        seq: u64,
        offset: u64,
        len: u32,
    },
    Undecodable {
        seq: u64,
        error: DecodeError,
    },
    NotCanonical {
        seq: u64,
    },
    /// The record at position `seq` states another sequence number.
    SeqMismatch {
        seq: u64,
        stored: u64,
    },
    PrevHashMismatch {
        seq: u64,
    },
    CheckpointRecordMismatch {
        seq: u64,
    },
    /// The manifest states another record or checkpoint count, or root.
    ManifestMismatch {
        field: &'static str,
    },
    /// The last record does not hash to the manifest's `head_hash`.
    HeadMismatch {
        seq: u64,
    },
    /// The verifier key file cannot be parsed. The text states the reason
    /// without the file's content.
    InvalidKey(String),
    /// Checkpoint note `index` (from 0, in file order) is invalid or not
    /// signed by the key.
    InvalidCheckpoint {
        index: usize,
        error: CheckpointError,
    },
    /// Checkpoint notes `other` and `index` state the same tree size but
    /// are not the same note. A copy of a note is ignored.
    ConflictingCheckpoints {
        tree_size: u64,
        other: usize,
        index: usize,
    },
    /// The checkpoint record `seq` of the chain, for tree size `tree_size`,
    /// has no signed note in `checkpoints.txt`.
    NoteMissing {
        seq: u64,
        tree_size: u64,
    },
    /// A checkpoint covers more records than the bundle holds.
    CheckpointBeyondRecords {
        tree_size: u64,
        records: u64,
    },
    /// A checkpoint's root hash is not the root of the records it covers.
    CheckpointRootMismatch {
        tree_size: u64,
    },
}

impl fmt::Display for BundleBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidManifest(problem) => write!(f, "{MANIFEST_FILE}: {problem} (no records were checked)"),
            Self::FileMismatch { file } => write!(f, "{file}: size or SHA-256 differs from {MANIFEST_FILE}"),
            Self::Truncated { seq, offset } => {
                write!(f, "{RECORDS_FILE}: record {seq} at byte offset {offset} runs past the end of the file")
            }
            Self::RecordTooLarge { seq, offset, len } => write!(
                f,
                "{RECORDS_FILE}: record {seq} at byte offset {offset} states a length of {len} bytes, more than the limit of {MAX_RECORD_BYTES} bytes for a record"
            ),
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
            Self::CheckpointRecordMismatch { seq } => {
                write!(f, "{RECORDS_FILE}: record {seq}: checkpoint record does not match the tree of records 0..{seq}")
            }
            Self::ManifestMismatch { field } => {
                write!(f, "{MANIFEST_FILE}: `{field}` does not match the records and checkpoints in the bundle")
            }
            Self::HeadMismatch { seq } => write!(
                f,
                "{RECORDS_FILE}: record {seq}: hash does not match `head_hash` in {MANIFEST_FILE} (the last record was changed)"
            ),
            Self::InvalidKey(problem) => write!(
                f,
                "{KEY_FILE}: the verifier key {problem} (no records were checked): pass --key with the owner's key"
            ),
            Self::InvalidCheckpoint { index, error } => {
                write!(f, "{CHECKPOINTS_FILE}: checkpoint note {index} is invalid: {error}")
            }
            Self::ConflictingCheckpoints { tree_size, other, index } => write!(
                f,
                "{CHECKPOINTS_FILE}: checkpoint notes {other} and {index} both state tree size {tree_size} but are not the same note"
            ),
            Self::NoteMissing { seq, tree_size } => write!(
                f,
                "{RECORDS_FILE}: record {seq} (tree size {tree_size}): the chain has a checkpoint record for this size, but {CHECKPOINTS_FILE} has no signed note for it (notes were removed, or records were changed and the chain rebuilt)"
            ),
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
    /// Whether `records.bin` was read. It is not when the manifest or the
    /// key in the bundle is invalid: then `records_checked` is 0 because no
    /// record was checked, not because the first record is bad.
    pub records_read: bool,
    /// Distinct checkpoint notes checked against the tree. A copy of a note
    /// is counted once.
    pub checkpoints_checked: u64,
    /// The largest tree size of a checked note: records `0..signed_tree_size`
    /// are covered by a signed checkpoint, and the rest by none.
    pub signed_tree_size: u64,
    /// Root of the Merkle tree over the checked records.
    pub root_hash: Hash,
    /// The intervals that the checked records report as incomplete
    /// (`events_lost` and `daemon_gap` records), in sequence order, as
    /// [`crate::verify()`] reports them for a ledger.
    pub gaps: Vec<Gap>,
    /// Whether the verifier key came from the bundle itself.
    pub key_from_bundle: bool,
    pub first_break: Option<BundleBreak>,
}

/// Verifies the bundle in `dir` against `key`, or against the key file in
/// the bundle when `key` is `None`.
///
/// Returns an error when a bundle file cannot be read, or is not a regular
/// file, or is larger than its limit. A bundle that fails a check is a
/// [`BundleReport`] with `first_break` set. After the manifest and the key
/// are parsed, the order of the checks decides which break is reported.
/// The records come first, then the manifest's counts, head and root. Then
/// come the checkpoint notes: each is valid, there is one note per tree
/// size, every checkpoint record has a note, and each note's root is the
/// tree's. The file hashes come last, so a changed record is named by its
/// sequence number rather than by the file hash it breaks.
pub fn verify_bundle(dir: &Path, key: Option<&VerifierKey>) -> Result<BundleReport, BundleError> {
    let manifest_bytes = read_small(dir, MANIFEST_FILE, MAX_MANIFEST_BYTES)?;
    let (records, records_len) = open_bundle_file(dir, RECORDS_FILE)?;
    let checkpoints = read_small(dir, CHECKPOINTS_FILE, MAX_CHECKPOINTS_BYTES)?;
    let key_bytes = read_small(dir, KEY_FILE, MAX_KEY_BYTES)?;
    let mut report = BundleReport {
        records_checked: 0,
        records_read: false,
        checkpoints_checked: 0,
        signed_tree_size: 0,
        root_hash: Frontier::default().root(),
        gaps: Vec::new(),
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
        None => match parse_key(&key_bytes) {
            Ok(parsed) => {
                bundle_key = parsed;
                &bundle_key
            }
            Err(problem) => {
                report.first_break = Some(BundleBreak::InvalidKey(problem.into()));
                return Ok(report);
            }
        },
    };

    let notes = split_notes(&String::from_utf8_lossy(&checkpoints));
    let (opened, checkpoint_break) = open_notes(&notes, key);

    report.records_read = true;
    let walk = walk_records(dir, records, records_len, &opened)?;
    report.records_checked = walk.records;
    report.root_hash = walk.root;
    report.gaps = walk.gaps;
    if let Some(record_break) = walk.first_break {
        report.first_break = Some(record_break);
        return Ok(report);
    }

    // A note that does not open comes first: notes merged by a wrong line
    // end would otherwise show as a wrong note count in the manifest.
    if let Some(checkpoint_break) = checkpoint_break {
        report.first_break = Some(checkpoint_break);
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
    // Every checkpoint record needs its note. The record's root hash is the
    // root of the records before it (checked in the walk), so a note of the
    // same size that passes the root check below has the same root too.
    if let Some(&seq) = walk.checkpoint_records.iter().find(|seq| !opened.contains_key(seq)) {
        report.first_break = Some(BundleBreak::NoteMissing { seq, tree_size: seq });
        return Ok(report);
    }
    for (&tree_size, (_, checkpoint)) in &opened {
        match walk.roots.get(&tree_size) {
            None => {
                report.first_break = Some(BundleBreak::CheckpointBeyondRecords { tree_size, records: walk.records });
                return Ok(report);
            }
            Some(root) if *root != checkpoint.root_hash => {
                report.first_break = Some(BundleBreak::CheckpointRootMismatch { tree_size });
                return Ok(report);
            }
            Some(_) => {
                report.checkpoints_checked += 1;
                report.signed_tree_size = report.signed_tree_size.max(tree_size);
            }
        }
    }

    for (file, bytes, digest) in [
        (RECORDS_FILE, records_len, walk.sha256),
        (CHECKPOINTS_FILE, checkpoints.len() as u64, Sha256::digest(&checkpoints).into()),
        (KEY_FILE, key_bytes.len() as u64, Sha256::digest(&key_bytes).into()),
    ] {
        if manifest.files.get(file) != Some(&(bytes, digest)) {
            report.first_break = Some(BundleBreak::FileMismatch { file });
            return Ok(report);
        }
    }
    Ok(report)
}

/// Parses the bundle's key file. The error states the reason without the
/// file's content, which may not be a key at all.
fn parse_key(bytes: &[u8]) -> Result<VerifierKey, &'static str> {
    let text = std::str::from_utf8(bytes).map_err(|_| "is not UTF-8 text")?;
    VerifierKey::parse(text.trim_end()).map_err(|error| match error {
        KeyError::IdMismatch { .. } => "states a key id that does not match the key",
        _ => "is not a single line of the form `<name>+<8 hex digits>+<base64 key>`",
    })
}

/// Opens each note with `key`, and returns the notes by tree size with
/// their position in the file, and the first note that is invalid or
/// conflicts with another. A copy of an earlier note is skipped, so it is
/// neither opened again nor counted twice.
fn open_notes(notes: &[String], key: &VerifierKey) -> (BTreeMap<u64, (usize, Checkpoint)>, Option<BundleBreak>) {
    let mut opened: BTreeMap<u64, (usize, Checkpoint)> = BTreeMap::new();
    let mut seen = HashSet::new();
    for (index, note) in notes.iter().enumerate() {
        if !seen.insert(note.trim_end()) {
            continue;
        }
        let checkpoint = match Checkpoint::open(note, key) {
            Ok(checkpoint) => checkpoint,
            Err(error) => return (opened, Some(BundleBreak::InvalidCheckpoint { index, error })),
        };
        match opened.entry(checkpoint.tree_size) {
            Entry::Vacant(entry) => {
                entry.insert((index, checkpoint));
            }
            Entry::Occupied(entry) => {
                let conflict = BundleBreak::ConflictingCheckpoints {
                    tree_size: checkpoint.tree_size,
                    other: entry.get().0,
                    index,
                };
                return (opened, Some(conflict));
            }
        }
    }
    (opened, None)
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
    /// Sequence numbers of the checkpoint records, in order.
    checkpoint_records: Vec<u64>,
    gaps: Vec<Gap>,
    /// SHA-256 of the whole file, valid only when the walk has no break.
    sha256: Hash,
    first_break: Option<BundleBreak>,
}

/// Reads `records.bin` (`len` bytes, as opened) one record at a time,
/// checks each record, and computes the root at each size in `sizes`.
fn walk_records<T>(dir: &Path, file: File, len: u64, sizes: &BTreeMap<u64, T>) -> Result<Walk, BundleError> {
    let path = || dir.join(RECORDS_FILE);
    let read_error = |source| BundleError::Read { path: path(), source };
    // Reading no more than `len` bytes keeps a file that grows from being
    // read without end.
    let mut input = BufReader::with_capacity(1 << 20, file.take(len));
    let mut hasher = Sha256::new();
    let mut frontier = Frontier::default();
    let mut walk = Walk {
        records: 0,
        head: None,
        root: frontier.root(),
        roots: BTreeMap::new(),
        checkpoint_records: Vec::new(),
        gaps: Vec::new(),
        sha256: ZERO_HASH,
        first_break: None,
    };
    let mut value = Vec::new();
    let mut offset = 0u64;
    let mut last_time_ns = 0;
    loop {
        let seq = frontier.size();
        if sizes.contains_key(&seq) {
            walk.roots.insert(seq, frontier.root());
        }
        if offset == len {
            break;
        }
        if len - offset < 4 {
            walk.first_break = Some(BundleBreak::Truncated { seq, offset });
            break;
        }
        let mut prefix = [0; 4];
        input.read_exact(&mut prefix).map_err(read_error)?;
        let record_len = u32::from_be_bytes(prefix);
        if u64::from(record_len) > len - offset - 4 {
            walk.first_break = Some(BundleBreak::Truncated { seq, offset });
            break;
        }
        if record_len > MAX_RECORD_BYTES {
            walk.first_break = Some(BundleBreak::RecordTooLarge { seq, offset, len: record_len });
            break;
        }
        value.resize(record_len as usize, 0);
        input.read_exact(&mut value).map_err(read_error)?;
        hasher.update(prefix);
        hasher.update(&value);
        offset += 4 + u64::from(record_len);
        let record = match check_record(seq, walk.head.unwrap_or(ZERO_HASH), &value, &frontier) {
            Ok(record) => record,
            Err(record_break) => {
                walk.first_break = Some(record_break);
                break;
            }
        };
        if matches!(record.body, RecordBody::Checkpoint(_)) {
            walk.checkpoint_records.push(seq);
        }
        if let Some(gap) = gap_of(&record, last_time_ns) {
            walk.gaps.push(gap);
        }
        last_time_ns = record.time_ns;
        let hash = leaf_hash(&value);
        frontier.push(hash);
        walk.head = Some(hash);
        walk.records = frontier.size();
    }
    walk.root = frontier.root();
    walk.sha256 = hasher.finalize().into();
    Ok(walk)
}

/// Checks one record against its position, the previous record's hash and,
/// for a checkpoint record, the tree before it, and returns it decoded.
fn check_record(seq: u64, prev_hash: Hash, value: &[u8], frontier: &Frontier) -> Result<Record, BundleBreak> {
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
    if let RecordBody::Checkpoint(checkpoint) = &record.body
        && (checkpoint.tree_size != seq || checkpoint.root_hash != frontier.root())
    {
        return Err(BundleBreak::CheckpointRecordMismatch { seq });
    }
    Ok(record)
}

