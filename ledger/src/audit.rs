//! Verification against signed checkpoints: the ledger's own and those
//! pinned off the host.
//!
//! [`audit`] first runs the chain, tree and index check of
//! [`crate::verify`]. When the chain and tree are intact, it checks, in
//! this order:
//!
//! 1. each stored checkpoint note: it is stored under its own tree size and,
//!    given a verifier key, its signature verifies; every checkpoint record
//!    in the chain has its note stored;
//! 2. each pinned checkpoint: its signature verifies with the key;
//! 3. no two checkpoints (stored or pinned) of one tree size have different
//!    root hashes;
//! 4. for each checkpoint, smallest first: the ledger has at least that many
//!    records, the root of its first `tree_size` records equals the
//!    checkpoint's root, and a consistency proof built from the stored tree
//!    leads from that checkpoint to the current root.
//!
//! Someone who can rewrite the whole store can recompute every hash, but
//! not sign: a cut tail, a deleted store or a re-chained history no longer
//! extends a checkpoint pinned before the change, and step 4 reports it.

use std::{fmt, path::Path};

use crate::{
    checkpoint::{Checkpoint, CheckpointError},
    error::LedgerError,
    keys::VerifierKey,
    merkle::{self, ProofError},
    reader::LedgerReader,
    record::{Hash, RecordBody},
    verify::{VerifyReport, walk},
};

/// Where a checkpoint came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The ledger's `checkpoints` column family, under this key.
    Stored { key: u64 },
    /// The pinned notes, at this position (0 first).
    Pinned { position: usize },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stored { key } => write!(f, "stored checkpoint {key}"),
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
                first_checkpoint_break: Some(first),
            });
        }
        result => result?,
    };

    let mut checkpoints = Vec::new();
    let mut first_break = None;
    let stored = reader.checkpoint_notes()?;
    for (stored_key, note) in &stored {
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
            Ok(checkpoint) => checkpoints.push((origin, checkpoint)),
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

    let sizes: Vec<u64> = checkpoints.iter().map(|(_, checkpoint)| checkpoint.tree_size).collect();
    let (chain, roots) = walk(&reader, &sizes)?;
    let mut report = AuditReport {
        chain: Some(chain.clone()),
        stored_checked: stored.len(),
        pinned_checked: pinned.len(),
        first_checkpoint_break: None,
    };
    // A damaged index does not stop the checkpoint checks, because it
    // leaves the records that they cover intact.
    if chain.first_break.is_some() {
        return Ok(report);
    }
    if first_break.is_none() && key.is_some() {
        first_break = find_missing_note(&reader, &stored)?;
    }
    if first_break.is_none() {
        first_break = find_disagreement(&checkpoints);
    }
    if first_break.is_none() {
        first_break = check_against_ledger(&reader, &chain, &roots, &mut checkpoints)?;
    }
    report.first_checkpoint_break = first_break;
    Ok(report)
}

/// Opens a stored note with the key, or parses it unchecked without one.
fn open_note(note: &str, key: Option<&VerifierKey>) -> Result<Checkpoint, CheckpointError> {
    match key {
        Some(key) => Checkpoint::open(note, key),
        None => Checkpoint::parse_unverified(note),
    }
}

/// Finds a checkpoint record in the chain without a stored note.
fn find_missing_note(reader: &LedgerReader, stored: &[(u64, String)]) -> Result<Option<CheckpointBreak>, LedgerError> {
    for entry in reader.records()? {
        let entry = entry?;
        if let RecordBody::Checkpoint(record) = entry.record.body
            && stored.binary_search_by_key(&record.tree_size, |(size, _)| *size).is_err()
        {
            let origin = Origin::Stored { key: record.tree_size };
            return Ok(Some(CheckpointBreak {
                origin,
                tree_size: Some(record.tree_size),
                kind: CheckpointBreakKind::NoteMissing,
            }));
        }
    }
    Ok(None)
}

/// Finds two checkpoints of one tree size with different root hashes.
fn find_disagreement(checkpoints: &[(Origin, Checkpoint)]) -> Option<CheckpointBreak> {
    for (position, (origin, checkpoint)) in checkpoints.iter().enumerate() {
        let other = checkpoints[..position]
            .iter()
            .find(|(_, other)| other.tree_size == checkpoint.tree_size && other.root_hash != checkpoint.root_hash);
        if let Some((other_origin, _)) = other {
            let kind = CheckpointBreakKind::Disagrees { other: other_origin.clone() };
            return Some(CheckpointBreak { origin: origin.clone(), tree_size: Some(checkpoint.tree_size), kind });
        }
    }
    None
}

/// Checks each checkpoint, smallest tree size first, against the roots
/// computed from the records and a consistency proof to the current tree.
fn check_against_ledger(
    reader: &LedgerReader,
    chain: &VerifyReport,
    roots: &std::collections::BTreeMap<u64, Hash>,
    checkpoints: &mut [(Origin, Checkpoint)],
) -> Result<Option<CheckpointBreak>, LedgerError> {
    checkpoints.sort_by_key(|(_, checkpoint)| checkpoint.tree_size);
    let records = chain.records_checked;
    for (origin, checkpoint) in checkpoints.iter() {
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
