//! Secondary indexes over decision and identity records, for `query`.
//!
//! Each index is a column family of postings lists. One append batch writes
//! one entry per index and distinct prefix among its records:
//!
//! - key: the prefix, then the `seq` of the entry's first record (u64
//!   big-endian);
//! - value: for each record of the entry, in `seq` order, the unsigned
//!   LEB128 varint of its `seq` minus the previous record's `seq`. The
//!   first record's delta is taken from the key's `seq`, so it is 0. In
//!   `idx_time` each delta is followed by the varint of the record's
//!   `time_ns` minus the first nanosecond of its bucket
//!   (`time_ns & (2^30 - 1)`).
//!
//! | column family | prefix | records |
//! | --- | --- | --- |
//! | `idx_agent` | agent name length (u32) then the name | identity, decision |
//! | `idx_rule` | `rule_id` (u32) | decision |
//! | `idx_verdict_hook` | verdict code (u8), hook code (u8) | decision |
//! | `idx_time` | `time_ns >> 30` (u64), a bucket of about 1.07 s | identity, decision |
//!
//! Integers in prefixes are big-endian. A batch covers the sequence numbers
//! after every earlier batch, so the entries under one prefix cover
//! disjoint `seq` ranges in key order. A reader finds the entry that may
//! contain `seq` with a backward seek to `prefix || seq`.
//!
//! Invariant kept by [`crate::Ledger`]: the index entries of a record are
//! written in the same `WriteBatch` as the record, so an index never lags
//! its record. [`INDEX_VERSION_KEY`] in `meta` names the layout of complete
//! indexes. When it is missing (a ledger written before the indexes, or a
//! build cut short) or names another layout, [`crate::Ledger::open`] drops
//! the index column families, builds them again from the records and
//! writes the key last. Readers use the indexes only under the current
//! version. [`crate::verify()`] checks that the indexes contain exactly the
//! entries that the records define ([`crate::index_check`]), and
//! [`crate::Ledger::rebuild_indexes`] (`lupid-ledger reindex`) builds them
//! again from the records.

use std::{collections::HashMap, path::Path};

use rocksdb::{DB, IteratorMode, WriteBatch, WriteOptions};

use crate::{
    error::LedgerError,
    record::{Hook, Record, RecordBody, Verdict},
    store::{META_CF, RECORDS_CF, column_family, db_options, decode_stored},
};

/// Column family of the agent-name index.
pub const AGENT_INDEX_CF: &str = "idx_agent";
/// Column family of the rule-id index.
pub const RULE_INDEX_CF: &str = "idx_rule";
/// Column family of the verdict-and-hook index.
pub const VERDICT_HOOK_INDEX_CF: &str = "idx_verdict_hook";
/// Column family of the wall-time index.
pub const TIME_INDEX_CF: &str = "idx_time";

/// Every index column family.
pub const INDEX_CFS: [&str; 4] = [AGENT_INDEX_CF, RULE_INDEX_CF, VERDICT_HOOK_INDEX_CF, TIME_INDEX_CF];

// Positions of the indexes in [`INDEX_CFS`].
pub(crate) const AGENT_SLOT: usize = 0;
pub(crate) const RULE_SLOT: usize = 1;
pub(crate) const VERDICT_HOOK_SLOT: usize = 2;
pub(crate) const TIME_SLOT: usize = 3;

/// Key in `meta` whose value names the layout of complete indexes.
pub const INDEX_VERSION_KEY: &[u8] = b"index_version";
/// Version of the index layout above, stored under [`INDEX_VERSION_KEY`].
/// Version 1 had one key per record and index.
pub const INDEX_VERSION: u8 = 2;

/// Bits of `time_ns` below the bucket number in `idx_time`: a bucket spans
/// `2^30` ns, about 1.07 s.
pub const TIME_BUCKET_BITS: u32 = 30;

/// Records indexed per batch when [`build_if_stale`] fills the indexes.
const BUILD_BATCH: usize = 10_000;

/// Returns the prefix of the agent index for one agent name.
pub(crate) fn agent_prefix(agent: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(4 + agent.len());
    put_agent_prefix(&mut prefix, agent);
    prefix
}

fn put_agent_prefix(out: &mut Vec<u8>, agent: &str) {
    let len = u32::try_from(agent.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(agent.as_bytes());
}

/// Returns the prefix of the rule index for one rule id.
pub(crate) fn rule_prefix(rule_id: u32) -> Vec<u8> {
    rule_id.to_be_bytes().to_vec()
}

/// Returns the prefix of the verdict-and-hook index.
pub(crate) fn verdict_hook_prefix(verdict: Verdict, hook: Hook) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(2);
    put_verdict_hook_prefix(&mut prefix, verdict, hook);
    prefix
}

fn put_verdict_hook_prefix(out: &mut Vec<u8>, verdict: Verdict, hook: Hook) {
    // Records store both codes in one byte too.
    out.push(u8::try_from(verdict.code()).expect("verdict codes fit one byte"));
    out.push(u8::try_from(hook.code()).expect("hook codes fit one byte"));
}

/// Returns the `idx_time` bucket of a wall time.
pub fn time_bucket(time_ns: u64) -> u64 {
    time_ns >> TIME_BUCKET_BITS
}

/// Returns `(column family, prefix)` of every index entry that contains
/// `record`.
pub fn prefixes(record: &Record) -> Vec<(&'static str, Vec<u8>)> {
    let mut prefixes = Vec::new();
    let mut buffer = Vec::new();
    for_each_posting(record, &mut buffer, |slot, prefix, _| prefixes.push((INDEX_CFS[slot], prefix.to_vec())));
    prefixes
}

/// Returns the offset of a wall time in its `idx_time` bucket, which
/// `idx_time` stores after each `seq`.
pub fn time_offset(time_ns: u64) -> u64 {
    time_ns & ((1 << TIME_BUCKET_BITS) - 1)
}

/// Calls `visit` with the slot in [`INDEX_CFS`], the prefix and the time
/// offset of every posting of `record`, building each prefix in `buffer`.
/// The offset is 0 outside `idx_time`.
///
/// This is the one definition of a record's postings: the append path and
/// the index rebuild write them, and verify compares the stored indexes
/// with them.
pub(crate) fn for_each_posting(record: &Record, buffer: &mut Vec<u8>, mut visit: impl FnMut(usize, &[u8], u64)) {
    let (agent, decision) = match &record.body {
        RecordBody::Identity(identity) => (&identity.agent, None),
        RecordBody::Decision(decision) => (&decision.agent, Some(decision)),
        _ => return,
    };

    buffer.clear();
    put_agent_prefix(buffer, agent);
    visit(AGENT_SLOT, buffer, 0);
    if let Some(decision) = decision {
        buffer.clear();
        buffer.extend_from_slice(&decision.rule_id.to_be_bytes());
        visit(RULE_SLOT, buffer, 0);
        buffer.clear();
        put_verdict_hook_prefix(buffer, decision.verdict, decision.hook);
        visit(VERDICT_HOOK_SLOT, buffer, 0);
    }
    buffer.clear();
    buffer.extend_from_slice(&time_bucket(record.time_ns).to_be_bytes());
    visit(TIME_SLOT, buffer, time_offset(record.time_ns));
}

/// The postings lists of one batch of records, by index and prefix.
#[derive(Default)]
pub(crate) struct Postings {
    /// One map per index, in [`INDEX_CFS`] order.
    lists: [HashMap<Vec<u8>, List>; 4],
    /// Buffer for the prefix being looked up, so that a record with a known
    /// prefix allocates nothing.
    prefix: Vec<u8>,
}

/// One entry being built: its first and last `seq` and its encoded value.
struct List {
    first: u64,
    last: u64,
    value: Vec<u8>,
}

impl Postings {
    /// Adds `record` to the lists of its index values. Records must come in
    /// increasing `seq` order.
    pub(crate) fn add(&mut self, record: &Record) {
        let seq = record.seq;
        let Self { lists, prefix } = self;
        for_each_posting(record, prefix, |slot, prefix, time_offset| {
            let lists = &mut lists[slot];
            let list = match lists.get_mut(prefix) {
                Some(list) => list,
                None => lists.entry(prefix.to_vec()).or_insert(List { first: seq, last: seq, value: Vec::new() }),
            };
            put_varint(&mut list.value, seq - list.last);
            if slot == TIME_SLOT {
                put_varint(&mut list.value, time_offset);
            }
            list.last = seq;
        });
    }

    /// Adds one entry per list to `batch`.
    pub(crate) fn write(&self, db: &DB, path: &Path, batch: &mut WriteBatch) -> Result<(), LedgerError> {
        let mut key = Vec::new();
        for (name, lists) in INDEX_CFS.into_iter().zip(&self.lists) {
            let family = column_family(db, path, name)?;
            for (prefix, list) in lists {
                key.clear();
                key.extend_from_slice(prefix);
                key.extend_from_slice(&list.first.to_be_bytes());
                batch.put_cf(family, &key, &list.value);
            }
        }
        Ok(())
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(u8::try_from(value & 0x7f).expect("seven bits") | 0x80);
        value >>= 7;
    }
    out.push(u8::try_from(value).expect("below 0x80"));
}

/// Reads one varint from the front of `bytes` and advances it. Returns
/// `None` when `bytes` ends inside the varint or it overflows a u64.
pub(crate) fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0_u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        let bits = u64::from(byte & 0x7f);
        if shift == 63 && bits > 1 {
            return None;
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Splits an index key into its prefix and the entry's first `seq`.
pub fn split_key(key: &[u8]) -> Option<(&[u8], u64)> {
    let split = key.len().checked_sub(8)?;
    let (prefix, seq) = key.split_at(split);
    Some((prefix, u64::from_be_bytes(seq.try_into().ok()?)))
}

/// Decodes the value of an entry whose first `seq` is `first`, appending
/// `(seq, time offset)` pairs to `out`. The offset is 0 unless `timed`,
/// which is whether the entry is from `idx_time`. Returns `None` when the
/// value is not a valid postings list.
pub fn decode_postings(first: u64, value: &[u8], timed: bool, out: &mut Vec<(u64, u64)>) -> Option<()> {
    let mut rest = value;
    let mut seq = first;
    while !rest.is_empty() {
        seq = seq.checked_add(take_varint(&mut rest)?)?;
        let offset = if timed { take_varint(&mut rest)? } else { 0 };
        out.push((seq, offset));
    }
    Some(())
}

/// Returns the sequence numbers of one stored entry of index `name`, or
/// `None` when the key or value is invalid.
pub fn entry_seqs(name: &str, key: &[u8], value: &[u8]) -> Option<Vec<u64>> {
    let (_, first) = split_key(key)?;
    let mut postings = Vec::new();
    decode_postings(first, value, name == TIME_INDEX_CF, &mut postings)?;
    Some(postings.into_iter().map(|(seq, _)| seq).collect())
}

/// Returns whether the indexes cover every record of the ledger in the
/// current layout.
pub(crate) fn is_complete(db: &DB, path: &Path) -> Result<bool, LedgerError> {
    let value = db
        .get_cf(column_family(db, path, META_CF)?, INDEX_VERSION_KEY)
        .map_err(|source| LedgerError::ReadIndex { path: path.to_owned(), source })?;
    Ok(value.as_deref() == Some(&[INDEX_VERSION][..]))
}

/// Builds the indexes from every record unless [`INDEX_VERSION_KEY`] names
/// the current layout.
pub(crate) fn build_if_stale(db: &mut DB, path: &Path) -> Result<(), LedgerError> {
    if is_complete(db, path)? {
        return Ok(());
    }
    build(db, path)
}

/// Builds the indexes from every record, whatever they contain now.
///
/// [`INDEX_VERSION_KEY`] is deleted first, with a synced write, so a crash
/// during the build leaves the indexes marked incomplete, and the next
/// writable open builds them again.
pub(crate) fn rebuild(db: &mut DB, path: &Path) -> Result<(), LedgerError> {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    db.delete_cf_opt(column_family(db, path, META_CF)?, INDEX_VERSION_KEY, &options)
        .map_err(|source| LedgerError::WriteIndex { path: path.to_owned(), source })?;
    build(db, path)
}

/// Fills the indexes from every record, then writes [`INDEX_VERSION_KEY`].
/// The build starts from empty column families, so neither an older layout
/// nor a build that a crash cut short leaves entries behind.
fn build(db: &mut DB, path: &Path) -> Result<(), LedgerError> {
    let write_error = |source| LedgerError::WriteIndex { path: path.to_owned(), source };
    for name in INDEX_CFS {
        if db.cf_handle(name).is_some() {
            db.drop_cf(name).map_err(write_error)?;
        }
        db.create_cf(name, &db_options()).map_err(write_error)?;
    }

    let db = &*db;
    let write = |batch: WriteBatch| db.write(batch).map_err(write_error);
    let mut postings = Postings::default();
    let mut pending = 0;
    for item in db.iterator_cf(column_family(db, path, RECORDS_CF)?, IteratorMode::Start) {
        let (key, value) = item.map_err(|source| LedgerError::ReadRecords { path: path.to_owned(), source })?;
        let record = decode_stored(path, &key, &value)?;
        postings.add(&record);
        pending += 1;
        if pending >= BUILD_BATCH {
            let mut batch = WriteBatch::default();
            std::mem::take(&mut postings).write(db, path, &mut batch)?;
            write(batch)?;
            pending = 0;
        }
    }
    let mut batch = WriteBatch::default();
    postings.write(db, path, &mut batch)?;
    batch.put_cf(column_family(db, path, META_CF)?, INDEX_VERSION_KEY, [INDEX_VERSION]);
    write(batch)
}
