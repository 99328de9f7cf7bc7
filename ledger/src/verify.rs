//! Full check of a ledger's hash chain.
//!
//! [`verify()`] reads every record in key order. For each record it checks
//! that:
//!
//! - the key is an 8-byte sequence number, the next one (0 first, no gaps);
//! - the value decodes and re-encodes to the same bytes;
//! - the decoded `seq` equals the key;
//! - `prev_hash` is the hash of the previous stored value (all zero for
//!   record 0).
//!
//! From the same record bytes it rebuilds the RFC 6962 Merkle tree and
//! checks that:
//!
//! - every inner node the record completes on a level that the tree stores
//!   ([`crate::tree::STORED_LEVEL_STRIDE`]) is stored, with the same hash,
//!   and so is any node of another level that an older ledger stored;
//! - a checkpoint record at `seq` has `tree_size == seq` and the root hash
//!   of the records before it.
//!
//! After the last record it checks that the head metadata names that record
//! and its hash. Only this check catches a change to the last record, which
//! no later `prev_hash` covers. Verification stops at the first break.
//!
//! When the chain is intact and the ledger has complete query indexes in the
//! current layout, it also checks that every index contains exactly the
//! entries that the records define ([`crate::index_check`]). A disagreement
//! is an [`IndexBreak`]: the records are intact, and rebuilding the indexes
//! from them repairs it. Without complete indexes `query` reads every
//! record, so there is nothing to check.
//!
//! Signed checkpoints are checked on top of this by [`crate::audit`].

use std::{collections::BTreeMap, fmt, path::Path};

use crate::{
    codec::DecodeError,
    error::LedgerError,
    index_check::{self, IndexBreak, RecordPostings},
    merkle::Frontier,
    reader::LedgerReader,
    record::{Hash, Record, RecordBody, ZERO_HASH},
    scan::for_each_record,
    store::{decode_head, decode_key},
    timestamp::format_rfc3339,
    tree::{NodeChecker, NodeProblem},
};

/// Outcome of [`verify()`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records that passed every check before the first break, or all of them.
    pub records_checked: u64,
    /// The last good record's sequence number and hash.
    pub head: Option<(u64, Hash)>,
    /// Merkle root hash of the records checked.
    pub root_hash: Hash,
    /// The first break found, or `None` when the chain is intact.
    pub first_break: Option<Break>,
    /// The intervals that the checked records report as incomplete, in
    /// sequence order.
    pub gaps: Vec<Gap>,
    /// Whether the query indexes were compared with the records. They are
    /// not when the chain breaks, or when the ledger has no complete indexes
    /// in the current layout.
    pub indexes_checked: bool,
    /// The first disagreement between the query indexes and the records.
    pub index_break: Option<IndexBreak>,
}

/// An interval for which the ledger itself records that actions may be
/// missing: the kernel could not queue events, or no daemon was running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// The record that reports the gap.
    pub seq: u64,
    /// Start of the interval, wall time in Unix nanoseconds.
    pub from_ns: u64,
    /// End of the interval, wall time in Unix nanoseconds.
    pub to_ns: u64,
    pub cause: GapCause,
}

/// The cause of an incomplete interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GapCause {
    /// The kernel numbered these events but could not queue them
    /// (`events_lost`). The interval runs from the record before to this
    /// one.
    EventsLost { first_kernel_seq: u64, last_kernel_seq: u64 },
    /// No daemon was running (`daemon_gap`). The kernel programs went on
    /// deciding, and the events they could queue were recorded after it.
    DaemonAway,
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A daemon that found no earlier record (its state folder was new)
        // writes 0 as the start.
        let from = if self.from_ns == 0 { "unknown start".to_owned() } else { format_rfc3339(self.from_ns) };
        let to = format_rfc3339(self.to_ns);
        write!(f, "complete=false for interval [{from}, {to}]: ")?;
        match self.cause {
            GapCause::EventsLost { first_kernel_seq, last_kernel_seq } => write!(
                f,
                "{} kernel events lost (kernel sequence {first_kernel_seq}..={last_kernel_seq}), record {}",
                last_kernel_seq.saturating_sub(first_kernel_seq).saturating_add(1),
                self.seq
            ),
            GapCause::DaemonAway => write!(f, "no daemon was running, record {}", self.seq),
        }
    }
}

impl VerifyReport {
    /// Returns whether the chain is intact and the indexes agree with it.
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none() && self.index_break.is_none()
    }
}

/// The first record at which the chain does not hold, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Break {
    /// Sequence number of the bad or missing record.
    pub seq: u64,
    pub kind: BreakKind,
}

/// The ways a chain can break.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BreakKind {
    /// The key is not an 8-byte sequence number; `seq` is the expected one.
    InvalidKey { key: Vec<u8> },
    /// No record has this sequence number; `next` is the key found instead.
    Missing { next: u64 },
    /// The records end before the record that the head metadata names.
    MissingTail { head_seq: u64 },
    /// The value is not a valid record.
    Undecodable(DecodeError),
    /// The value decodes but is not in canonical form.
    NotCanonical,
    /// The value contains another `seq` than its key.
    KeyMismatch { stored: u64 },
    /// `prev_hash` is not the hash of the previous record.
    PrevHashMismatch,
    /// Records exist but the head metadata does not.
    HeadMissing,
    /// The head metadata value has the wrong size.
    HeadInvalid { len: usize },
    /// The head metadata names an earlier record than the last one.
    HeadBehind { head_seq: u64 },
    /// The last record does not hash to the head hash.
    HeadHashMismatch,
    /// The record completes a Merkle tree node that is not stored.
    TreeNodeMissing { level: u32, index: u64 },
    /// The stored Merkle tree node that the record completes differs from
    /// the one computed from the records.
    TreeNodeMismatch { level: u32, index: u64 },
    /// A checkpoint record states another tree size than its own `seq`.
    CheckpointSizeMismatch { tree_size: u64 },
    /// A checkpoint record's root hash is not the root of the records
    /// before it.
    CheckpointRootMismatch,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = self.seq;
        match &self.kind {
            BreakKind::InvalidKey { key } => {
                write!(f, "record {seq}: key {} is not an 8-byte sequence number", hex::encode(key))
            }
            BreakKind::Missing { next } => match seq.checked_sub(1) {
                Some(previous) => write!(f, "record {seq} missing (records jump from {previous} to {next})"),
                None => write!(f, "record 0 missing (the first record is {next})"),
            },
            BreakKind::MissingTail { head_seq } => match seq.checked_sub(1) {
                Some(previous) => write!(
                    f,
                    "record {seq} missing (the records end at {previous}, but the head metadata names record {head_seq})"
                ),
                None => {
                    write!(f, "record 0 missing (no records are stored, but the head metadata names record {head_seq})")
                }
            },
            BreakKind::Undecodable(error) => write!(f, "record {seq}: cannot decode: {error}"),
            BreakKind::NotCanonical => {
                write!(f, "record {seq}: stored bytes are not the canonical encoding of the record")
            }
            BreakKind::KeyMismatch { stored } => {
                write!(f, "record {seq}: stored under key {seq} but holds seq {stored}")
            }
            BreakKind::PrevHashMismatch => match seq.checked_sub(1) {
                Some(previous) => write!(f, "record {seq}: prev_hash does not match the hash of record {previous}"),
                None => write!(f, "record 0: prev_hash is not all zero"),
            },
            BreakKind::HeadMissing => write!(f, "record {seq}: last record, but the head metadata is missing"),
            BreakKind::HeadInvalid { len } => {
                write!(f, "record {seq}: last record, but the head metadata is {len} bytes, expected 40")
            }
            BreakKind::HeadBehind { head_seq } => {
                write!(f, "record {seq}: last record, but the head metadata names record {head_seq}")
            }
            BreakKind::HeadHashMismatch => {
                write!(f, "record {seq}: hash does not match the head metadata (the last record was changed)")
            }
            BreakKind::TreeNodeMissing { level, index } => {
                write!(f, "record {seq}: Merkle tree node at level {level}, index {index} is missing")
            }
            BreakKind::TreeNodeMismatch { level, index } => write!(
                f,
                "record {seq}: Merkle tree node at level {level}, index {index} does not match the records it covers"
            ),
            BreakKind::CheckpointSizeMismatch { tree_size } => {
                write!(f, "record {seq}: checkpoint record states tree size {tree_size}, expected {seq}")
            }
            BreakKind::CheckpointRootMismatch => {
                write!(f, "record {seq}: checkpoint record's root hash is not the root of records 0..{seq}")
            }
        }
    }
}

/// Verifies the whole chain and the query indexes of the ledger in `dir`,
/// opened read-only.
///
/// Returns an error only when the ledger cannot be opened or read. A broken
/// chain is a [`VerifyReport`] with `first_break` set, and a damaged index
/// is one with `index_break` set.
pub fn verify(dir: &Path) -> Result<VerifyReport, LedgerError> {
    let reader = LedgerReader::open_read_only(dir)?;
    verify_reader(&reader)
}

/// Verifies the chain and the query indexes visible through an open reader.
pub fn verify_reader(reader: &LedgerReader) -> Result<VerifyReport, LedgerError> {
    Ok(walk(reader, &[])?.report)
}

/// The outcome of [`walk`].
pub(crate) struct Walked {
    pub report: VerifyReport,
    /// The Merkle root hash at each requested size that the checked records
    /// reach.
    pub roots: BTreeMap<u64, Hash>,
    /// The sequence numbers of the checkpoint records among the checked
    /// records, in ascending order.
    pub checkpoint_records: Vec<u64>,
}

/// Verifies the chain, the tree and the query indexes, and returns the
/// Merkle root hash at each of `sizes` that the checked records reach.
pub(crate) fn walk(reader: &LedgerReader, sizes: &[u64]) -> Result<Walked, LedgerError> {
    let mut sizes = sizes.to_vec();
    sizes.sort_unstable();
    sizes.dedup();
    if !reader.has_indexes()? {
        return walk_chain(reader, &sizes, None);
    }
    let (walked, digested) =
        index_check::digest_alongside(reader, |postings| walk_chain(reader, &sizes, Some(postings)))?;
    let mut walked = walked?;
    if walked.report.first_break.is_none() {
        walked.report.index_break = index_check::compare(reader, digested)?;
        walked.report.indexes_checked = true;
    }
    Ok(walked)
}

/// Verifies the chain and tree, and passes each record that passes its
/// checks to `postings` when given. `sizes` must be sorted and without
/// duplicates.
fn walk_chain(
    reader: &LedgerReader,
    sizes: &[u64],
    mut postings: Option<&mut RecordPostings>,
) -> Result<Walked, LedgerError> {
    let mut report = VerifyReport {
        records_checked: 0,
        head: None,
        root_hash: Frontier::default().root(),
        first_break: None,
        gaps: Vec::new(),
        indexes_checked: false,
        index_break: None,
    };
    let mut last_time_ns = 0;
    let mut roots = RootsAt::new(sizes);
    let mut checkpoint_records = Vec::new();
    let mut frontier = Frontier::default();
    let mut nodes = NodeChecker::new(reader.tree());
    let mut canonical = Vec::new();

    // A changed record also changes the tree nodes it completes, but the
    // chain names it more directly: through the next record's `prev_hash`,
    // or the head for the last record. So a tree break waits one record, and
    // a chain break there takes its place.
    let mut pending: Option<(Break, VerifyReport)> = None;
    let mut stopped: Option<VerifyReport> = None;
    for_each_record(reader, |key, value, hash| {
        roots.visit(&frontier);
        let seq = report.records_checked;
        let prev_hash = report.head.map_or(ZERO_HASH, |(_, hash)| hash);
        let record = match check_record(seq, &prev_hash, (key, value), &frontier, &mut canonical) {
            Ok(record) => record,
            Err(kind) => {
                stopped = Some(VerifyReport { first_break: Some(Break { seq, kind }), ..report.clone() });
                return Ok(false);
            }
        };
        if let Some((tree_break, before)) = pending.take() {
            stopped = Some(VerifyReport { first_break: Some(tree_break), ..before });
            return Ok(false);
        }
        if let Err(kind) = check_nodes(&mut nodes, &mut frontier, hash)? {
            pending = Some((Break { seq, kind }, report.clone()));
        }
        if let Some(gap) = gap_of(&record, last_time_ns) {
            report.gaps.push(gap);
        }
        if let Some(postings) = postings.as_deref_mut() {
            postings.add(&record);
        }
        if matches!(record.body, RecordBody::Checkpoint(_)) {
            checkpoint_records.push(seq);
        }
        last_time_ns = record.time_ns;
        report.head = Some((seq, hash));
        report.records_checked += 1;
        Ok(true)
    })?;
    let report = if let Some(stopped) = stopped {
        stopped
    } else {
        roots.visit(&frontier);
        report.root_hash = frontier.root();
        report.first_break = check_head(reader, report.head)?;
        match pending {
            Some((tree_break, before)) if report.first_break.is_none() => {
                VerifyReport { first_break: Some(tree_break), ..before }
            }
            _ => report,
        }
    };
    Ok(Walked { report, roots: roots.roots, checkpoint_records })
}

/// Collects the Merkle root at each of a sorted list of tree sizes while
/// the tree grows one leaf at a time, with one comparison per leaf.
struct RootsAt<'a> {
    /// The sizes not reached yet, in ascending order.
    sizes: &'a [u64],
    roots: BTreeMap<u64, Hash>,
}

impl<'a> RootsAt<'a> {
    fn new(sizes: &'a [u64]) -> Self {
        Self { sizes, roots: BTreeMap::new() }
    }

    /// Stores the root of `frontier` when its size is the next wanted one.
    fn visit(&mut self, frontier: &Frontier) {
        let size = frontier.size();
        while let Some((&wanted, rest)) = self.sizes.split_first()
            && wanted <= size
        {
            if wanted == size {
                self.roots.insert(size, frontier.root());
            }
            self.sizes = rest;
        }
    }
}

/// Adds a leaf to `frontier` and compares each inner node it completes with
/// the stored one, when the tree stores it.
fn check_nodes(
    nodes: &mut NodeChecker<'_>,
    frontier: &mut Frontier,
    leaf: Hash,
) -> Result<Result<(), BreakKind>, LedgerError> {
    let mut outcome = Ok(Ok(()));
    frontier.push_each(leaf, |level, index, hash| {
        if !matches!(outcome, Ok(Ok(()))) {
            return;
        }
        outcome = match nodes.check(level, index, hash) {
            Err(error) => Err(error),
            Ok(None) => Ok(Ok(())),
            Ok(Some(NodeProblem::Missing)) => Ok(Err(BreakKind::TreeNodeMissing { level, index })),
            Ok(Some(NodeProblem::Mismatch)) => Ok(Err(BreakKind::TreeNodeMismatch { level, index })),
        };
    });
    outcome
}

/// Returns the gap that `record` reports, if any. `previous_ns` is the
/// wall time of the record before it.
pub(crate) fn gap_of(record: &Record, previous_ns: u64) -> Option<Gap> {
    let (from_ns, to_ns, cause) = match &record.body {
        RecordBody::EventsLost(lost) => (
            if previous_ns == 0 { record.time_ns } else { previous_ns },
            record.time_ns,
            GapCause::EventsLost { first_kernel_seq: lost.first_kernel_seq, last_kernel_seq: lost.last_kernel_seq },
        ),
        RecordBody::DaemonGap(gap) => (gap.from_ns, gap.to_ns, GapCause::DaemonAway),
        _ => return None,
    };
    Some(Gap { seq: record.seq, from_ns, to_ns, cause })
}

/// Checks one stored record against the expected `seq` and `prev_hash`, and
/// a checkpoint record against the tree of the records before it, and
/// returns the decoded record.
/// `canonical` is a buffer for the re-encoding, reused across records.
fn check_record(
    seq: u64,
    prev_hash: &Hash,
    (key, value): (&[u8], &[u8]),
    frontier: &Frontier,
    canonical: &mut Vec<u8>,
) -> Result<Record, BreakKind> {
    let key_seq = decode_key(key).ok_or_else(|| BreakKind::InvalidKey { key: key.to_vec() })?;
    if key_seq != seq {
        return Err(BreakKind::Missing { next: key_seq });
    }

    let record = Record::decode(value).map_err(BreakKind::Undecodable)?;
    if record.encode_into(canonical).is_err() || canonical.as_slice() != value {
        return Err(BreakKind::NotCanonical);
    }
    if record.seq != seq {
        return Err(BreakKind::KeyMismatch { stored: record.seq });
    }
    if record.prev_hash != *prev_hash {
        return Err(BreakKind::PrevHashMismatch);
    }
    if let RecordBody::Checkpoint(checkpoint) = &record.body {
        if checkpoint.tree_size != seq {
            return Err(BreakKind::CheckpointSizeMismatch { tree_size: checkpoint.tree_size });
        }
        if checkpoint.root_hash != frontier.root() {
            return Err(BreakKind::CheckpointRootMismatch);
        }
    }
    Ok(record)
}

/// Checks the head metadata against the last record of an unbroken chain.
fn check_head(reader: &LedgerReader, last: Option<(u64, Hash)>) -> Result<Option<Break>, LedgerError> {
    let Some(value) = reader.raw_head()? else {
        let first_break = last.map(|(seq, _)| Break { seq, kind: BreakKind::HeadMissing });
        return Ok(first_break);
    };

    let Ok((head_seq, head_hash)) = decode_head(&value) else {
        let first_break =
            Break { seq: last.map_or(0, |(seq, _)| seq), kind: BreakKind::HeadInvalid { len: value.len() } };
        return Ok(Some(first_break));
    };

    let first_break = match last {
        None => Some(Break { seq: 0, kind: BreakKind::MissingTail { head_seq } }),
        Some((seq, _)) if head_seq > seq => Some(Break { seq: seq + 1, kind: BreakKind::MissingTail { head_seq } }),
        Some((seq, _)) if head_seq < seq => Some(Break { seq, kind: BreakKind::HeadBehind { head_seq } }),
        Some((seq, hash)) if hash != head_hash => Some(Break { seq, kind: BreakKind::HeadHashMismatch }),
        Some(_) => None,
    };
    Ok(first_break)
}
