//! Secondary indexes over decision and identity records, for `query`.
//!
//! Each index is a column family whose keys are a field value followed by
//! the record's `seq` (u64 big-endian), with empty values. For one field
//! value the keys therefore sort in `seq` order, and the records that
//! match a value are the keys under its prefix.
//!
//! | column family | prefix | records |
//! | --- | --- | --- |
//! | `idx_agent` | agent name length (u32) then the name | identity, decision |
//! | `idx_rule` | `rule_id` (u32) | decision |
//! | `idx_verdict_hook` | verdict code (u8), hook code (u8) | decision |
//! | `idx_time` | `time_ns` (u64) | identity, decision |
//!
//! Invariant kept by [`crate::Ledger`]: the index entries of a record are
//! written in the same `WriteBatch` as the record, so an index never lags
//! its record. A ledger written before the indexes existed has no
//! [`INDEX_VERSION_KEY`] in `meta`; [`crate::Ledger::open`] then builds the
//! indexes from the records and writes the key last, so an interrupted
//! build is redone on the next open.

use std::path::Path;

use rocksdb::{DB, IteratorMode, WriteBatch};

use crate::{
    error::LedgerError,
    record::{Hook, Record, RecordBody, Verdict},
    store::{META_CF, RECORDS_CF, column_family, decode_stored},
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

/// Key in `meta` whose presence means the indexes cover every record.
pub const INDEX_VERSION_KEY: &[u8] = b"index_version";
/// Version of the index layout above, stored under [`INDEX_VERSION_KEY`].
pub const INDEX_VERSION: u8 = 1;

/// Records indexed per batch when [`build_if_missing`] fills missing indexes.
const BUILD_BATCH: usize = 10_000;

/// Returns the prefix of the agent index for one agent name.
pub(crate) fn agent_prefix(agent: &str) -> Vec<u8> {
    let len = u32::try_from(agent.len()).unwrap_or(u32::MAX);
    let mut prefix = Vec::with_capacity(4 + agent.len());
    prefix.extend_from_slice(&len.to_be_bytes());
    prefix.extend_from_slice(agent.as_bytes());
    prefix
}

/// Returns the prefix of the rule index for one rule id.
pub(crate) fn rule_prefix(rule_id: u32) -> Vec<u8> {
    rule_id.to_be_bytes().to_vec()
}

/// Returns the prefix of the verdict-and-hook index.
pub(crate) fn verdict_hook_prefix(verdict: Verdict, hook: Hook) -> Vec<u8> {
    // Records store both codes in one byte too.
    let verdict = u8::try_from(verdict.code()).expect("verdict codes fit one byte");
    let hook = u8::try_from(hook.code()).expect("hook codes fit one byte");
    vec![verdict, hook]
}

fn entry(prefix: Vec<u8>, seq: u64) -> Vec<u8> {
    let mut key = prefix;
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Returns `(column family, key)` of every index entry of `record`.
pub fn entries(record: &Record) -> Vec<(&'static str, Vec<u8>)> {
    let seq = record.seq;
    let time = entry(record.time_ns.to_be_bytes().to_vec(), seq);
    match &record.body {
        RecordBody::Identity(identity) => {
            vec![(AGENT_INDEX_CF, entry(agent_prefix(&identity.agent), seq)), (TIME_INDEX_CF, time)]
        }
        RecordBody::Decision(decision) => vec![
            (AGENT_INDEX_CF, entry(agent_prefix(&decision.agent), seq)),
            (RULE_INDEX_CF, entry(rule_prefix(decision.rule_id), seq)),
            (VERDICT_HOOK_INDEX_CF, entry(verdict_hook_prefix(decision.verdict, decision.hook), seq)),
            (TIME_INDEX_CF, time),
        ],
        _ => Vec::new(),
    }
}

/// Adds the index entries of `record` to `batch`.
pub(crate) fn put_entries(db: &DB, path: &Path, record: &Record, batch: &mut WriteBatch) -> Result<(), LedgerError> {
    for (name, key) in entries(record) {
        batch.put_cf(column_family(db, path, name)?, key, []);
    }
    Ok(())
}

/// Returns whether the indexes cover every record of the ledger.
pub(crate) fn is_complete(db: &DB, path: &Path) -> Result<bool, LedgerError> {
    let value = db
        .get_cf(column_family(db, path, META_CF)?, INDEX_VERSION_KEY)
        .map_err(|source| LedgerError::ReadIndex { path: path.to_owned(), source })?;
    Ok(value.as_deref() == Some(&[INDEX_VERSION][..]))
}

/// Builds the indexes from every record when [`INDEX_VERSION_KEY`] is
/// missing, then writes that key. Rewriting an entry that exists is
/// harmless, so a build that a crash cut short is simply done again.
pub(crate) fn build_if_missing(db: &DB, path: &Path) -> Result<(), LedgerError> {
    if is_complete(db, path)? {
        return Ok(());
    }
    let write = |batch: WriteBatch| {
        db.write(batch).map_err(|source| LedgerError::WriteIndex { path: path.to_owned(), source })
    };
    let mut batch = WriteBatch::default();
    let mut pending = 0;
    for item in db.iterator_cf(column_family(db, path, RECORDS_CF)?, IteratorMode::Start) {
        let (key, value) = item.map_err(|source| LedgerError::ReadRecords { path: path.to_owned(), source })?;
        let record = decode_stored(path, &key, &value)?;
        put_entries(db, path, &record, &mut batch)?;
        pending += 1;
        if pending >= BUILD_BATCH {
            write(std::mem::take(&mut batch))?;
            pending = 0;
        }
    }
    batch.put_cf(column_family(db, path, META_CF)?, INDEX_VERSION_KEY, [INDEX_VERSION]);
    write(batch)
}
