//! Filtered reads of decision and identity records ([`crate::index`]).
//!
//! Identity records match only a query with an agent and no hook, verdict,
//! rule or `via`, since they have none of those fields. Other record kinds never
//! match.
//!
//! Plan, in order:
//! - With an agent, rule, hook or verdict, each of those filters is a cursor
//!   over the postings lists of its index in `seq` order, and the cursors
//!   are intersected by seeking each one to the largest `seq` the others
//!   reached. A seek goes backward to the last entry that starts at or
//!   before that `seq`, because the entry may contain it, and decodes it. A
//!   hook without a verdict (or the reverse) is the union of two or three
//!   prefixes of `idx_verdict_hook`. Results come in `seq` order.
//! - Otherwise, with `since` or `until`, `idx_time` is read bucket by bucket
//!   over that range. Each bucket's records are sorted by time, then `seq`,
//!   so results come in that order.
//! - Otherwise, or when the ledger has no complete index (an older ledger
//!   opened read-only), every record is read in `seq` order.
//!
//! Every candidate record is then read and checked against all filters, so
//! the time range, the object text, the rule name and `via` are checked
//! there. The object, rule name and `via` filters have no index, so a query
//! with only those reads every record. The read stops after `limit` matches. The object filter also
//! matches a decision whose requested name (the name the agent passed to
//! the system call) contains the text, and a rename or link whose old or
//! new name contains it.
//!
//! Measured with the ignored test `query_large_ledger_timing` on 1,000,000
//! records and 2 shared cores: every indexed query took under 20 ms. Ten
//! million records were not measured.
//!
//! The hash chain does not cover the indexes. Since every candidate is
//! checked against the filters, a changed index entry can hide a record
//! from a query but not add one. `verify` compares the indexes with the
//! records to catch that ([`crate::index_check`]).

use std::path::Path;

use rocksdb::DBRawIterator;

use crate::{
    error::LedgerError,
    index::{
        AGENT_INDEX_CF, RULE_INDEX_CF, TIME_BUCKET_BITS, TIME_INDEX_CF, VERDICT_HOOK_INDEX_CF, agent_prefix,
        decode_postings, rule_prefix, split_key, time_bucket, verdict_hook_prefix,
    },
    reader::{LedgerReader, StoredRecord},
    record::{Decision, Hook, Object, Record, RecordBody, Verdict, Via},
    store::{column_family, decode_key},
};

/// The filters of one query. A `None` field matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    pub agent: Option<String>,
    pub hook: Option<Hook>,
    pub verdict: Option<Verdict>,
    pub rule_id: Option<u32>,
    /// Name of the rule that decided, as the policy file and the records
    /// spell it. Checked on each record that the other filters select, so
    /// alone it reads every record.
    pub rule_name: Option<String>,
    /// Text that the object, as [`object_text`] formats it (the path,
    /// `address:port` of a socket or `pid N (comm)` of a process), or the
    /// decision's requested name must contain. A rename or link matches when
    /// its old or its new name contains the text, which therefore cannot
    /// span both names. Matched against the lossy UTF-8 form of the path,
    /// `comm` and requested name.
    pub object: Option<String>,
    /// Earliest wall time, Unix nanoseconds, inclusive.
    pub since_ns: Option<u64>,
    /// Latest wall time, Unix nanoseconds, inclusive.
    pub until_ns: Option<u64>,
    /// The way the action reached the hook: a system call or `io_uring`.
    pub via: Option<Via>,
    /// Maximum number of records returned.
    pub limit: Option<usize>,
}

impl Query {
    /// Checks one record against every filter.
    pub fn matches(&self, record: &Record) -> bool {
        if self.since_ns.is_some_and(|since| record.time_ns < since)
            || self.until_ns.is_some_and(|until| record.time_ns > until)
        {
            return false;
        }
        match &record.body {
            RecordBody::Identity(identity) => {
                let has_decision_filter =
                    self.hook.is_some()
                        || self.verdict.is_some()
                        || self.rule_id.is_some()
                        || self.rule_name.is_some()
                        || self.via.is_some();
                self.agent.as_deref() == Some(identity.agent.as_str())
                    && !has_decision_filter
                    && self.object_matches(|| String::from_utf8_lossy(&identity.exe_path).into_owned())
            }
            RecordBody::Decision(decision) => {
                self.agent.as_ref().is_none_or(|agent| *agent == decision.agent)
                    && self.hook.is_none_or(|hook| hook == decision.hook)
                    && self.verdict.is_none_or(|verdict| verdict == decision.verdict)
                    && self.rule_id.is_none_or(|rule_id| rule_id == decision.rule_id)
                    && self.rule_name.as_ref().is_none_or(|name| *name == decision.rule)
                    && self.via.is_none_or(|via| via == decision.via)
                    && self.decision_object_matches(decision)
            }
            _ => false,
        }
    }

    /// Checks the object filter against a decision's object (each name of
    /// a path pair on its own), then against its requested name when it
    /// stores one.
    fn decision_object_matches(&self, decision: &Decision) -> bool {
        let object_matched = match &decision.object {
            Object::PathPair { old, new, truncated } => {
                self.object_matches(|| name_text(old, *truncated)) || self.object_matches(|| name_text(new, *truncated))
            }
            object => self.object_matches(|| object_text(object)),
        };
        if object_matched {
            return true;
        }
        decision.has_requested_name()
            && self.object_matches(|| String::from_utf8_lossy(&decision.requested).into_owned())
    }

    /// Checks the object filter against the text that `text` formats, which
    /// is formatted only when the query has an object filter.
    fn object_matches(&self, text: impl FnOnce() -> String) -> bool {
        self.object.as_ref().is_none_or(|needle| text().contains(needle.as_str()))
    }
}

/// Formats a decision's object: the path (lossy UTF-8, `<truncated>` when
/// the kernel could not read it), `address:port` (`[address]:port` for
/// IPv6), `pid N (comm)` for the target of a kill or ptrace, with `comm`
/// as lossy UTF-8, or `OLD -> NEW` for a rename or link, each name as a
/// path is.
///
/// NOTE: a file name may itself contain ` -> `, so `OLD -> NEW` can be
/// read more than one way. The JSON Lines export keeps the names apart.
pub fn object_text(object: &Object) -> String {
    match object {
        Object::Path { truncated: true, .. } => "<truncated>".into(),
        Object::Path { path, .. } => String::from_utf8_lossy(path).into_owned(),
        Object::Socket { addr, port, .. } => {
            let address = std::net::Ipv6Addr::from(*addr);
            match address.to_ipv4_mapped() {
                Some(ipv4) => format!("{ipv4}:{port}"),
                None => format!("[{address}]:{port}"),
            }
        }
        Object::Task { pid, comm } => format!("pid {pid} ({})", String::from_utf8_lossy(comm)),
        Object::PathPair { old, new, truncated } => {
            format!("{} -> {}", name_text(old, *truncated), name_text(new, *truncated))
        }
    }
}

/// Formats one name of a path pair as lossy UTF-8, or `<truncated>` for the
/// name the kernel could not build: the pair's `truncated` flag is set and
/// the name is empty.
pub(crate) fn name_text(name: &[u8], truncated: bool) -> String {
    if truncated && name.is_empty() {
        "<truncated>".into()
    } else {
        String::from_utf8_lossy(name).into_owned()
    }
}

/// Runs `query` and returns the matching records, at most `query.limit`.
pub fn run(reader: &LedgerReader, query: &Query) -> Result<Vec<StoredRecord>, LedgerError> {
    let limit = query.limit.unwrap_or(usize::MAX);
    let mut found = Vec::new();
    if limit == 0 {
        return Ok(found);
    }
    let mut accept = |seq: u64| -> Result<bool, LedgerError> {
        let stored = read(reader, seq)?;
        if query.matches(&stored.record) {
            found.push(stored);
        }
        Ok(found.len() < limit)
    };

    if !reader.has_indexes()? {
        for seq in scan_all(reader)? {
            if !accept(seq?)? {
                break;
            }
        }
        return Ok(found);
    }

    let mut cursors = index_cursors(reader, query)?;
    if !cursors.is_empty() {
        intersect(&mut cursors, &mut accept)?;
    } else if query.since_ns.is_some() || query.until_ns.is_some() {
        scan_time(reader, query, &mut accept)?;
    } else {
        for seq in scan_all(reader)? {
            if !accept(seq?)? {
                break;
            }
        }
    }
    Ok(found)
}

/// Reads record `seq`. A record that an index lists but the ledger lacks
/// is an error, so a query never hides a deleted record.
fn read(reader: &LedgerReader, seq: u64) -> Result<StoredRecord, LedgerError> {
    let path = || reader.path().to_owned();
    let bytes = reader.raw_record(seq)?.ok_or_else(|| LedgerError::MissingRecord { path: path(), seq })?;
    let record = Record::decode(&bytes).map_err(|source| LedgerError::Decode { path: path(), seq, source })?;
    Ok(StoredRecord { hash: crate::leaf_hash(&bytes), record })
}

fn scan_all(reader: &LedgerReader) -> Result<impl Iterator<Item = Result<u64, LedgerError>> + '_, LedgerError> {
    let keys = reader.raw_records()?.map(|entry| {
        let (key, _) = entry?;
        decode_key(&key).ok_or_else(|| LedgerError::InvalidKey { path: reader.path().to_owned(), key: key.to_vec() })
    });
    Ok(keys)
}

/// Scans `idx_time` from `since` to `until`, inclusive, one bucket at a
/// time. Within a bucket the records are sorted by time, then `seq`.
fn scan_time(
    reader: &LedgerReader,
    query: &Query,
    accept: &mut impl FnMut(u64) -> Result<bool, LedgerError>,
) -> Result<(), LedgerError> {
    let db = reader.db();
    let path = reader.path();
    let since = query.since_ns.unwrap_or(0);
    let until = query.until_ns.unwrap_or(u64::MAX);
    let last_bucket = time_bucket(until);
    let mut iterator = db.raw_iterator_cf(column_family(db, path, TIME_INDEX_CF)?);
    iterator.seek(time_bucket(since).to_be_bytes());

    // `(time_ns, seq)` of the bucket being read.
    let mut bucket_records = Vec::new();
    let mut current_bucket = None;
    let mut postings = Vec::new();
    loop {
        iterator.status().map_err(|source| LedgerError::ReadIndex { path: path.to_owned(), source })?;
        let entry = match iterator.key().zip(iterator.value()) {
            None => None,
            Some((key, value)) => {
                let invalid =
                    || LedgerError::InvalidIndexEntry { path: path.to_owned(), name: TIME_INDEX_CF, key: key.to_vec() };
                let (bucket, first) = split_key(key).filter(|(bucket, _)| bucket.len() == 8).ok_or_else(invalid)?;
                let bucket = decode_key(bucket).ok_or_else(invalid)?;
                Some((bucket, first, value, invalid))
            }
        };
        let bucket = entry.as_ref().map(|(bucket, ..)| *bucket);
        if bucket != current_bucket {
            bucket_records.sort_unstable();
            for (_, seq) in bucket_records.drain(..) {
                if !accept(seq)? {
                    return Ok(());
                }
            }
            current_bucket = bucket;
        }
        let Some((bucket, first, value, invalid)) = entry.filter(|(bucket, ..)| *bucket <= last_bucket) else {
            return Ok(());
        };

        postings.clear();
        decode_postings(first, value, true, &mut postings).ok_or_else(invalid)?;
        let bucket_start = bucket << TIME_BUCKET_BITS;
        for &(seq, offset) in &postings {
            let time_ns = bucket_start | offset;
            if (since..=until).contains(&time_ns) {
                bucket_records.push((time_ns, seq));
            }
        }
        iterator.next();
    }
}

/// A position in one or more prefixes of one index, moving forward in `seq`.
struct Cursor<'db> {
    parts: Vec<Part<'db>>,
    name: &'static str,
    path: &'db Path,
}

/// The entries of one prefix of an index.
struct Part<'db> {
    iterator: DBRawIterator<'db>,
    prefix: Vec<u8>,
    /// Sequence numbers of the entry last decoded, in order.
    seqs: Vec<u64>,
    /// The target of a seek that found no entry at or after it. Later seeks
    /// to a larger target return `None` without reading.
    exhausted_from: Option<u64>,
}

impl Cursor<'_> {
    /// Returns the smallest `seq` at or after `target` under any prefix, or
    /// `None` when every prefix is exhausted.
    fn seek(&mut self, target: u64) -> Result<Option<u64>, LedgerError> {
        let mut smallest = None;
        for part in &mut self.parts {
            if let Some(seq) = part.seek(target, self.name, self.path)? {
                smallest = Some(smallest.map_or(seq, |current: u64| current.min(seq)));
            }
        }
        Ok(smallest)
    }
}

impl Part<'_> {
    /// Returns the smallest `seq` at or after `target` under this prefix.
    fn seek(&mut self, target: u64, name: &'static str, path: &Path) -> Result<Option<u64>, LedgerError> {
        if let Some(seq) = self.seek_in_entry(target) {
            return Ok(Some(seq));
        }
        if self.exhausted_from.is_some_and(|from| target >= from) {
            return Ok(None);
        }

        // The entry that starts at or before `target` may still contain it,
        // so start there. When it ends before `target`, the next entry
        // starts after `target`.
        let mut key = self.prefix.clone();
        key.extend_from_slice(&target.to_be_bytes());
        self.iterator.seek_for_prev(&key);
        if self.decode_entry(name, path)? {
            if let Some(seq) = self.seek_in_entry(target) {
                return Ok(Some(seq));
            }
            self.iterator.next();
        } else {
            self.iterator.seek(&key);
        }
        if self.decode_entry(name, path)? {
            return Ok(self.seek_in_entry(target));
        }
        self.exhausted_from = Some(target);
        Ok(None)
    }

    /// Returns the smallest `seq` at or after `target` in the entry last
    /// decoded, when it contains one and `target` is not before the entry.
    fn seek_in_entry(&self, target: u64) -> Option<u64> {
        let (&first, &last) = (self.seqs.first()?, self.seqs.last()?);
        if target > last {
            return None;
        }
        if target <= first {
            return Some(first);
        }
        Some(self.seqs[self.seqs.partition_point(|&seq| seq < target)])
    }

    /// Decodes the entry at the iterator into `seqs`. Returns `false`, with
    /// `seqs` empty, when the iterator is not on an entry of this prefix.
    fn decode_entry(&mut self, name: &'static str, path: &Path) -> Result<bool, LedgerError> {
        self.seqs.clear();
        self.iterator.status().map_err(|source| LedgerError::ReadIndex { path: path.to_owned(), source })?;
        let Some((key, value)) = self.iterator.key().zip(self.iterator.value()) else {
            return Ok(false);
        };
        let Some((prefix, first)) = split_key(key) else {
            return Ok(false);
        };
        if prefix != self.prefix.as_slice() {
            return Ok(false);
        }
        let mut postings = Vec::new();
        decode_postings(first, value, false, &mut postings).ok_or_else(|| LedgerError::InvalidIndexEntry {
            path: path.to_owned(),
            name,
            key: key.to_vec(),
        })?;
        self.seqs.extend(postings.into_iter().map(|(seq, _)| seq));
        Ok(!self.seqs.is_empty())
    }
}

/// Builds one cursor per indexed filter of `query`.
fn index_cursors<'db>(reader: &'db LedgerReader, query: &Query) -> Result<Vec<Cursor<'db>>, LedgerError> {
    let db = reader.db();
    let path = reader.path();
    let cursor = |name: &'static str, prefixes: Vec<Vec<u8>>| -> Result<Cursor<'db>, LedgerError> {
        let family = column_family(db, path, name)?;
        let parts = prefixes
            .into_iter()
            .map(|prefix| Part { iterator: db.raw_iterator_cf(family), prefix, seqs: Vec::new(), exhausted_from: None })
            .collect();
        Ok(Cursor { parts, name, path })
    };

    let mut cursors = Vec::new();
    if let Some(agent) = &query.agent {
        cursors.push(cursor(AGENT_INDEX_CF, vec![agent_prefix(agent)])?);
    }
    if let Some(rule_id) = query.rule_id {
        cursors.push(cursor(RULE_INDEX_CF, vec![rule_prefix(rule_id)])?);
    }
    if query.hook.is_some() || query.verdict.is_some() {
        let verdicts = query.verdict.map_or(vec![Verdict::Allow, Verdict::Deny], |verdict| vec![verdict]);
        // Every hook the record format knows, so that a new hook is covered.
        let every_hook = (0..=u8::MAX).filter_map(|code| Hook::from_code(code.into())).collect();
        let hooks = query.hook.map_or(every_hook, |hook| vec![hook]);
        let prefixes =
            verdicts.iter().flat_map(|verdict| hooks.iter().map(|hook| verdict_hook_prefix(*verdict, *hook))).collect();
        cursors.push(cursor(VERDICT_HOOK_INDEX_CF, prefixes)?);
    }
    Ok(cursors)
}

/// Calls `accept` with every `seq` that all cursors contain, in order,
/// until it returns `false`.
fn intersect(
    cursors: &mut [Cursor<'_>],
    accept: &mut impl FnMut(u64) -> Result<bool, LedgerError>,
) -> Result<(), LedgerError> {
    let mut target = 0;
    'search: loop {
        for cursor in cursors.iter_mut() {
            match cursor.seek(target)? {
                None => return Ok(()),
                Some(seq) if seq > target => {
                    target = seq;
                    continue 'search;
                }
                Some(_) => {}
            }
        }
        if !accept(target)? {
            return Ok(());
        }
        let Some(next) = target.checked_add(1) else {
            return Ok(());
        };
        target = next;
    }
}
