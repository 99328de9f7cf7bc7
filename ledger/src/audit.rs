//! Verification against signed checkpoints: the ledger's own and those
//! pinned off the host.
//!
//! [`audit`] first runs the chain, tree and index check of
//! [`crate::verify`]. When the chain and tree are intact, it checks, in
//! this order:
//!
//! 1. each entry of the `checkpoints` column family: its key is an 8-byte
//!    tree size, its note is well formed and states that tree size, and,
//!    given a verifier key, its signature verifies;
//! 2. each pinned checkpoint: its signature verifies with the key;
//! 3. every checkpoint record in the chain has its note stored, with or
//!    without a key;
//! 4. no two checkpoints (stored or pinned) of one tree size have different
//!    root hashes;
//! 5. for each tree size, smallest first: the ledger has at least that many
//!    records, the root of its first `tree_size` records equals the
//!    checkpoints' root, and a consistency proof built from the stored tree
//!    leads from that checkpoint to the current root.
//!
//! Identical pinned notes, and pinned notes identical to a stored note, are
//! checked once, and each step costs about one lookup per checkpoint, so a
//! pin folder with many copies of the same notes stays fast.
//!
//! Someone who can rewrite the whole store can recompute every hash, but
//! not sign: a cut tail, a deleted store or a re-chained history no longer
//! extends a checkpoint pinned before the change, and step 4 reports it.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt,
    path::{Path, PathBuf},
};

use rocksdb::IteratorMode;

use crate::{
    checkpoint::{Checkpoint, CheckpointError},
    error::LedgerError,
    keys::VerifierKey,
    merkle::{self, ProofError},
    reader::LedgerReader,
    record::Hash,
    store::{CHECKPOINTS_CF, column_family, decode_key},
    verify::{VerifyReport, Walked, walk},
};

/// Where a checkpoint came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The ledger's `checkpoints` column family, under this key.
    Stored { key: u64 },
    /// The ledger's `checkpoints` column family, under this key, which is
    /// not an 8-byte tree size.
    StoredUnderInvalidKey { key: Vec<u8> },
    /// The pinned notes, at this position (0 first).
    Pinned { position: usize },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stored { key } => write!(f, "stored checkpoint {key}"),
            Self::StoredUnderInvalidKey { key } => {
                write!(f, "entry under key {} in the `checkpoints` column family", hex::encode(key))
            }
            Self::Pinned { position } => write!(f, "pinned checkpoint #{}", position + 1),
        }
    }
}

/// The first checkpoint that the ledger does not hold up against, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointBreak {
    pub origin: Origin,
    /// The checkpoint's tree size, when its note could be parsed.
    pub tree_size: Option<u64>,
    pub kind: CheckpointBreakKind,
}

/// The ways a checkpoint can fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckpointBreakKind {
    /// The note is malformed, signed by another key, or its signature or
    /// origin is wrong.
    Invalid(CheckpointError),
    /// The note is stored under another tree size than it states.
    StoredUnderWrongKey,
    /// An entry of the `checkpoints` column family has a key that is not an
    /// 8-byte tree size, so the ledger did not write it.
    InvalidKey,
    /// A checkpoint record in the chain has no stored note.
    NoteMissing,
    /// Another checkpoint of the same tree size has a different root hash.
    Disagrees { other: Origin },
    /// The ledger directory does not exist.
    LedgerMissing,
    /// The ledger has fewer records than the checkpoint covers: its tail was
    /// cut or the store was replaced.
    BeyondLedger { records: u64 },
    /// The ledger's first `tree_size` records have another root hash: they
    /// were changed, or the chain was rebuilt.
    RootMismatch { ledger_root: Hash },
    /// The consistency proof from the stored tree does not verify.
    Inconsistent(ProofError),
}

impl fmt::Display for CheckpointBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = &self.origin;
        match self.tree_size {
            Some(size) => write!(f, "{origin} (tree size {size}): ")?,
            None => write!(f, "{origin}: ")?,
        }
        match &self.kind {
            CheckpointBreakKind::Invalid(error) => write!(f, "{error}"),
            CheckpointBreakKind::StoredUnderWrongKey => write!(f, "note states another tree size than its key"),
            CheckpointBreakKind::InvalidKey => write!(
                f,
                "the key is not an 8-byte tree size, so the ledger did not write this entry (it stores each note \
                 under its tree size)"
            ),
            CheckpointBreakKind::NoteMissing => {
                write!(f, "the chain has a checkpoint record for this size, but no signed note is stored")
            }
            CheckpointBreakKind::Disagrees { other } => {
                write!(f, "disagrees with {other}: same tree size, different root hash")
            }
            CheckpointBreakKind::LedgerMissing => write!(f, "the ledger does not exist (the store was deleted)"),
            CheckpointBreakKind::BeyondLedger { records } => {
                write!(f, "the ledger has only {records} records (its tail was cut or the store was replaced)")
            }
            CheckpointBreakKind::RootMismatch { ledger_root } => write!(
                f,
                "the ledger's records up to this size have root hash {}, not the checkpoint's (history was changed or rebuilt)",
                hex::encode(ledger_root)
            ),
            CheckpointBreakKind::Inconsistent(error) => {
                write!(f, "consistency proof to the current tree does not verify: {error}")
            }
        }
    }
}

/// Outcome of [`audit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditReport {
    /// The chain and tree check. `None` when the ledger does not exist.
    pub chain: Option<VerifyReport>,
    /// Stored checkpoints checked.
    pub stored_checked: usize,
    /// Pinned checkpoints checked.
    pub pinned_checked: usize,
    /// Distinct tree sizes among the stored and pinned checkpoints that
    /// were checked against the ledger.
    pub distinct_checkpoints: usize,
    /// The largest tree size of a checkpoint whose signature verified with
    /// the key and which the ledger extends. Records from this size on are
    /// not covered by any checked signature. `None` without a key, or when
    /// no checkpoint holds.
    pub signed_tree_size: Option<u64>,
    pub first_checkpoint_break: Option<CheckpointBreak>,
}

impl AuditReport {
    /// Returns whether the chain, the tree and every checkpoint hold.
    pub fn is_intact(&self) -> bool {
        self.first_checkpoint_break.is_none() && self.chain.as_ref().is_some_and(VerifyReport::is_intact)
    }
}

/// Verifies the ledger in `dir` and its checkpoints, and checks that it
/// extends every note in `pinned`. Stored notes are signature-checked only
/// when `key` is given; pinned notes need `key`, and without it each one is
/// reported as signed by an unknown key.
pub fn audit(dir: &Path, key: Option<&VerifierKey>, pinned: &[String]) -> Result<AuditReport, LedgerError> {
    let reader = match LedgerReader::open_read_only(dir) {
        Err(LedgerError::NotFound { .. }) if !pinned.is_empty() => {
            let tree_size = pinned.iter().find_map(|note| Checkpoint::parse_unverified(note).ok()).map(|c| c.tree_size);
            let first = CheckpointBreak {
                origin: Origin::Pinned { position: 0 },
                tree_size,
                kind: CheckpointBreakKind::LedgerMissing,
            };
            return Ok(AuditReport {
                chain: None,
                stored_checked: 0,
                pinned_checked: 0,
                distinct_checkpoints: 0,
                signed_tree_size: None,
                first_checkpoint_break: Some(first),
            });
        }
        result => result?,
    };

    let stored = read_stored_notes(&reader)?;
    let (mut checkpoints, mut first_break) = open_checkpoints(&stored, key, pinned);
    let sizes: Vec<u64> = checkpoints.iter().map(|(_, checkpoint)| checkpoint.tree_size).collect();
    let Walked { report: chain, roots, checkpoint_records } = walk(&reader, &sizes)?;
    let mut report = AuditReport {
        chain: Some(chain.clone()),
        stored_checked: stored.notes.len(),
        pinned_checked: pinned.len(),
        distinct_checkpoints: 0,
        signed_tree_size: None,
        first_checkpoint_break: None,
    };
    // A damaged index does not stop the checkpoint checks, because it
    // leaves the records that they cover intact.
    if chain.first_break.is_some() {
        return Ok(report);
    }
    if first_break.is_none() {
        first_break = find_missing_note(&checkpoint_records, &stored.notes);
    }
    if first_break.is_none() {
        first_break = find_disagreement(&checkpoints);
    }
    // Every checkpoint of one tree size now has the same root hash, so one
    // of each size is enough from here on. The sort is stable: a stored
    // checkpoint stays ahead of a pinned one of its size.
    checkpoints.sort_by_key(|(_, checkpoint)| checkpoint.tree_size);
    checkpoints.dedup_by_key(|(_, checkpoint)| checkpoint.tree_size);
    report.distinct_checkpoints = checkpoints.len();
    if first_break.is_none() {
        first_break = check_against_ledger(&reader, &chain, &roots, &checkpoints)?;
    }
    if first_break.is_none() && key.is_some() {
        report.signed_tree_size = checkpoints.last().map(|(_, checkpoint)| checkpoint.tree_size);
    }
    report.first_checkpoint_break = first_break;
    Ok(report)
}

/// Opens the stored and the pinned checkpoints. Returns those that hold,
/// stored ones first, and the first one that does not.
fn open_checkpoints(
    stored: &StoredNotes,
    key: Option<&VerifierKey>,
    pinned: &[String],
) -> (Vec<(Origin, Checkpoint)>, Option<CheckpointBreak>) {
    let mut checkpoints = Vec::new();
    let mut first_break = stored.invalid_keys.first().map(|invalid| CheckpointBreak {
        origin: Origin::StoredUnderInvalidKey { key: invalid.clone() },
        tree_size: None,
        kind: CheckpointBreakKind::InvalidKey,
    });
    // The notes checked so far: stored notes whose signature verified, and
    // every pinned note. A pinned copy of one is not checked again.
    let mut seen: HashSet<&str> = HashSet::new();
    for (stored_key, note) in &stored.notes {
        let origin = Origin::Stored { key: *stored_key };
        match open_note(note, key) {
            Ok(checkpoint) if checkpoint.tree_size != *stored_key => {
                let tree_size = Some(checkpoint.tree_size);
                first_break.get_or_insert(CheckpointBreak {
                    origin,
                    tree_size,
                    kind: CheckpointBreakKind::StoredUnderWrongKey,
                });
            }
            Ok(checkpoint) => {
                if key.is_some() {
                    seen.insert(note);
                }
                checkpoints.push((origin, checkpoint));
            }
            Err(error) => {
                first_break.get_or_insert(CheckpointBreak {
                    origin,
                    tree_size: Some(*stored_key),
                    kind: CheckpointBreakKind::Invalid(error),
                });
            }
        }
    }
    for (position, note) in pinned.iter().enumerate() {
        // A copy of a note checked before adds nothing. An invalid note is
        // reported at its first copy.
        if !seen.insert(note) {
            continue;
        }
        let origin = Origin::Pinned { position };
        let opened = match key {
            Some(key) => Checkpoint::open(note, key),
            None => Err(CheckpointError::InvalidText("no verifier key was given to check pinned checkpoints")),
        };
        match opened {
            Ok(checkpoint) => checkpoints.push((origin, checkpoint)),
            Err(error) => {
                let tree_size = Checkpoint::parse_unverified(note).ok().map(|c| c.tree_size);
                first_break.get_or_insert(CheckpointBreak {
                    origin,
                    tree_size,
                    kind: CheckpointBreakKind::Invalid(error),
                });
            }
        }
    }

    (checkpoints, first_break)
}

/// The entries of a ledger's `checkpoints` column family, not checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredNotes {
    /// The notes under valid keys, as `(tree size key, note)`, in tree size
    /// order. Bytes that are not UTF-8 are replaced by U+FFFD, which no
    /// signature covers.
    pub notes: Vec<(u64, String)>,
    /// The keys that are not an 8-byte tree size, in key order.
    pub invalid_keys: Vec<Vec<u8>>,
}

/// Reads every entry of the ledger's `checkpoints` column family.
pub fn read_stored_notes(reader: &LedgerReader) -> Result<StoredNotes, LedgerError> {
    let path = reader.path();
    let checkpoints = column_family(reader.db(), path, CHECKPOINTS_CF)?;
    let mut stored = StoredNotes::default();
    for entry in reader.db().iterator_cf(checkpoints, IteratorMode::Start) {
        let (key, value) = entry.map_err(|source| LedgerError::ReadCheckpoints { path: path.to_owned(), source })?;
        match decode_key(&key) {
            Some(tree_size) => stored.notes.push((tree_size, String::from_utf8_lossy(&value).into_owned())),
            None => stored.invalid_keys.push(key.to_vec()),
        }
    }
    Ok(stored)
}

/// A stored checkpoint that `checkpoint` or `prove` cannot use.
#[derive(Debug, thiserror::Error)]
pub enum StoredCheckpointError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(
        "ledger {} has an entry under key {} in the `checkpoints` column family, which is not an 8-byte tree size: \
         run `lupid-ledger verify --ledger {}`",
        .path.display(), hex::encode(.key), .path.display()
    )]
    InvalidKey { path: PathBuf, key: Vec<u8> },
    #[error(
        "stored checkpoint {tree_size} of ledger {} is invalid: run `lupid-ledger verify --ledger {} --key KEY`",
        .path.display(), .path.display()
    )]
    InvalidNote {
        path: PathBuf,
        tree_size: u64,
        #[source]
        source: CheckpointError,
    },
    #[error(
        "stored checkpoint {key} of ledger {} states tree size {tree_size}: run `lupid-ledger verify --ledger {}`",
        .path.display(), .path.display()
    )]
    StoredUnderWrongKey { path: PathBuf, key: u64, tree_size: u64 },
}

/// Returns the stored checkpoint with the largest tree size. Its note must
/// be well formed and state the tree size it is stored under, and, given
/// `key`, its signature must verify. Fails when the `checkpoints` column
/// family has an entry under a key that is not a tree size.
pub fn latest_stored_checkpoint(
    reader: &LedgerReader,
    key: Option<&VerifierKey>,
) -> Result<Option<Checkpoint>, StoredCheckpointError> {
    let path = reader.path().to_owned();
    let mut stored = read_stored_notes(reader)?;
    if let Some(invalid) = stored.invalid_keys.pop() {
        return Err(StoredCheckpointError::InvalidKey { path, key: invalid });
    }
    let Some((tree_size, note)) = stored.notes.pop() else {
        return Ok(None);
    };
    let checkpoint = open_note(&note, key).map_err(|source| StoredCheckpointError::InvalidNote {
        path: path.clone(),
        tree_size,
        source,
    })?;
    if checkpoint.tree_size != tree_size {
        let stated = checkpoint.tree_size;
        return Err(StoredCheckpointError::StoredUnderWrongKey { path, key: tree_size, tree_size: stated });
    }
    Ok(Some(checkpoint))
}

/// Opens a stored note with the key, or parses it unchecked without one.
fn open_note(note: &str, key: Option<&VerifierKey>) -> Result<Checkpoint, CheckpointError> {
    match key {
        Some(key) => Checkpoint::open(note, key),
        None => Checkpoint::parse_unverified(note),
    }
}

/// Finds a checkpoint record in the chain without a stored note.
/// `checkpoint_records` and `stored` are in ascending order.
fn find_missing_note(checkpoint_records: &[u64], stored: &[(u64, String)]) -> Option<CheckpointBreak> {
    let missing =
        checkpoint_records.iter().copied().find(|seq| stored.binary_search_by_key(seq, |(size, _)| *size).is_err())?;
    Some(CheckpointBreak {
        origin: Origin::Stored { key: missing },
        tree_size: Some(missing),
        kind: CheckpointBreakKind::NoteMissing,
    })
}

/// Finds two checkpoints of one tree size with different root hashes, and
/// reports the later one against the first of that size.
fn find_disagreement(checkpoints: &[(Origin, Checkpoint)]) -> Option<CheckpointBreak> {
    let mut first_of_size: HashMap<u64, (&Origin, &Hash)> = HashMap::new();
    for (origin, checkpoint) in checkpoints {
        let (first_origin, first_root) =
            *first_of_size.entry(checkpoint.tree_size).or_insert((origin, &checkpoint.root_hash));
        if *first_root != checkpoint.root_hash {
            let kind = CheckpointBreakKind::Disagrees { other: first_origin.clone() };
            return Some(CheckpointBreak { origin: origin.clone(), tree_size: Some(checkpoint.tree_size), kind });
        }
    }
    None
}

/// Checks each checkpoint, in the given order, against the roots computed
/// from the records and a consistency proof to the current tree.
fn check_against_ledger(
    reader: &LedgerReader,
    chain: &VerifyReport,
    roots: &BTreeMap<u64, Hash>,
    checkpoints: &[(Origin, Checkpoint)],
) -> Result<Option<CheckpointBreak>, LedgerError> {
    let records = chain.records_checked;
    for (origin, checkpoint) in checkpoints {
        let tree_size = checkpoint.tree_size;
        let found = |kind| Ok(Some(CheckpointBreak { origin: origin.clone(), tree_size: Some(tree_size), kind }));
        let Some(ledger_root) = roots.get(&tree_size) else {
            return found(CheckpointBreakKind::BeyondLedger { records });
        };
        if *ledger_root != checkpoint.root_hash {
            return found(CheckpointBreakKind::RootMismatch { ledger_root: *ledger_root });
        }
        let proof = reader.consistency_proof(tree_size, records)?;
        if let Err(error) =
            merkle::verify_consistency(tree_size, records, &checkpoint.root_hash, &chain.root_hash, &proof)
        {
            return found(CheckpointBreakKind::Inconsistent(error));
        }
    }
    Ok(None)
}
