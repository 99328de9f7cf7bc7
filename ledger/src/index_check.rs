//! Comparison of the query indexes with the records, for [`crate::verify()`].
//!
//! `query` reads and checks every record that an index lists, so a changed
//! index can hide records from a query but cannot add one. So verify checks
//! that each index contains exactly the postings that the records define
//! through [`index::for_each_posting`], the function that the append path
//! uses too. A posting is `(prefix, seq)`, and in `idx_time` also the time
//! offset, which `query --since/--until` reads from the index.
//!
//! Both sides are reduced to digests that do not depend on order. Per index
//! and per range of 2^16 sequence numbers, a digest is the number of
//! postings and the wrapping sum of a keyed 128-bit hash of each posting
//! (index, prefix, `seq`, time offset). After a mismatch, [`compare`] reads the first range
//! that differs again from both sides, sorts it and names the first posting
//! that only one side has.
//!
//! Most postings fit one 16-byte block ([`posting_block`]), and their hash is
//! that block encrypted with AES-128 under a key that each run draws from
//! the operating system. The index is edited before verify draws its key,
//! and verify never prints a hash, so compensating postings cannot be
//! computed. A hash without a secret key (`FxHash`, or a plain sum of the
//! postings) would allow that. AES is a pseudorandom permutation. With
//! AES-NI and [`QUEUED_BLOCKS`] blocks per call, a block took about 2 ns
//! in a profile of verify, and about 16 ns when encrypted one at a time.
//!
//! The other postings (agent names over 9 bytes, `seq` from 2^40 on) are
//! hashed with std's `RandomState`. In std's source (read for Rust 1.97
//! nightly; the build uses 1.95), it is SipHash-1-3 with a 128-bit key that
//! each thread draws once from the operating system. std does not promise
//! the algorithm, but it builds `RandomState` to resist hash flooding, where an
//! attacker picks inputs without knowing the key. Each posting is hashed
//! twice under the one key, with the domain bytes 0 and 1, for 128 bits.
//! Two `RandomState`s would not give independent keys, because std adds 1
//! to the thread's key for each new one.
//!
//! Which function hashes a posting depends only on the posting, so both
//! sides hash it the same way, and the two keys are unrelated. The layout
//! checks below make both sides sets, so an index whose postings differ
//! from the records' matches every digest with a probability of about
//! 2^-128 per run.
//!
//! The stored side must also have the layout that the writer produces and
//! that `query`'s seeks rely on:
//!
//! - every key has at least the 8 bytes of a `seq`, and its prefix has the
//!   length of the index's prefixes (for `idx_agent`, the length that its
//!   first 4 bytes state);
//! - every value is non-empty, its first delta is 0 (the first posting is
//!   the key's `seq`) and its later deltas are at least 1;
//! - the entries of one prefix do not overlap;
//! - every time offset is below 2^30;
//! - no `seq` is at or after the number of records.
//!
//! The records side is hashed on a second thread from postings that the
//! chain walk sends in batches, and the stored side is read and hashed on a
//! third, so the walk itself only builds the postings of each record. In
//! a profile of verify on 1 million decisions (`docs/benchmarks.md`), the
//! hashing took about 6% of the CPU time, against 21% when SipHash-1-3 hashed
//! every posting.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    hash::{BuildHasher, Hasher, RandomState},
    sync::mpsc::{Receiver, SyncSender, sync_channel},
    thread,
};

use aes::{
    Aes128,
    cipher::{Block, BlockEncrypt, KeyInit},
};

use crate::{
    error::LedgerError,
    index::{
        self, AGENT_SLOT, INDEX_CFS, RULE_SLOT, TIME_BUCKET_BITS, TIME_INDEX_CF, TIME_SLOT, VERDICT_HOOK_SLOT,
        split_key, take_varint,
    },
    reader::LedgerReader,
    record::{Hook, Record, Verdict},
    store::decode_head,
    timestamp::format_rfc3339,
};

/// Bits of `seq` below the range number: digests are kept per range of
/// 65,536 records.
const RANGE_BITS: u32 = 16;

/// Postings that the walk collects before it sends them to the hashing
/// thread.
const BATCH_POSTINGS: usize = 16 * 1024;

/// Batches that the walk may send ahead of the hashing thread.
const QUEUED_BATCHES: usize = 8;

/// The first disagreement between a query index and the records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexBreak {
    /// Column family of the index.
    pub index: &'static str,
    pub kind: IndexBreakKind,
}

/// The ways an index can disagree with the records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexBreakKind {
    /// A record's posting is not in the index.
    Missing { seq: u64, prefix: Vec<u8>, time_offset: u64 },
    /// The index has a posting that the record it names does not have.
    Unexpected { seq: u64, prefix: Vec<u8>, time_offset: u64 },
    /// An entry lists a `seq` at or after the number of records.
    PastEnd { key: Vec<u8>, seq: u64, records: u64 },
    /// An entry is not a postings list in the layout that the writer
    /// produces.
    InvalidEntry { key: Vec<u8>, problem: EntryProblem },
    /// The digests of the records `first_seq..=last_seq` differ, but
    /// reading them again found no differing posting.
    RangeMismatch { first_seq: u64, last_seq: u64 },
}

/// The reason an index entry is invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryProblem {
    /// The key is shorter than the 8-byte `seq` it ends with.
    ShortKey,
    /// The prefix has a length that no prefix of the index has.
    InvalidPrefix { len: usize },
    /// The value lists no record.
    Empty,
    /// The value ends inside a varint, or a varint or `seq` overflows a u64.
    Undecodable,
    /// The first posting is not the `seq` in the key.
    FirstNotKey { key_seq: u64, first: u64 },
    /// A delta of 0 after the first posting lists `seq` twice.
    Repeated { seq: u64 },
    /// The entry starts at or before the last `seq` of the previous entry of
    /// the same prefix.
    Overlaps { first: u64, previous_last: u64 },
    /// An `idx_time` offset is not below the bucket size.
    TimeOffsetTooLarge { seq: u64, offset: u64 },
}

impl fmt::Display for IndexBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let index = self.index;
        // An index name outside INDEX_CFS describes its prefixes in hex.
        let slot = INDEX_CFS.iter().position(|name| *name == index).unwrap_or(usize::MAX);
        match &self.kind {
            IndexBreakKind::Missing { seq, prefix, time_offset } => {
                write!(f, "index `{index}` lacks record {seq} under {}", describe(slot, prefix, *time_offset))
            }
            IndexBreakKind::Unexpected { seq, prefix, time_offset } => write!(
                f,
                "index `{index}` lists record {seq} under {}, which the record does not have",
                describe(slot, prefix, *time_offset)
            ),
            IndexBreakKind::PastEnd { key, seq, records } => write!(
                f,
                "index `{index}` lists record {seq} in the entry under key {}, but the ledger has {records} records",
                hex::encode(key)
            ),
            IndexBreakKind::InvalidEntry { key, problem } => {
                write!(f, "index `{index}` has an invalid entry under key {}: {problem}", hex::encode(key))
            }
            IndexBreakKind::RangeMismatch { first_seq, last_seq } => {
                write!(f, "index `{index}` does not match records {first_seq}..={last_seq}")
            }
        }
    }
}

impl fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ShortKey => write!(f, "the key is shorter than the 8-byte sequence number it ends with"),
            Self::InvalidPrefix { len } => {
                write!(f, "the prefix is {len} bytes, which is not a valid length in this index")
            }
            Self::Empty => write!(f, "the postings list is empty"),
            Self::Undecodable => write!(f, "the postings list is not a valid list of varints"),
            Self::FirstNotKey { key_seq, first } => {
                write!(f, "the list starts at record {first}, not at record {key_seq} as its key states")
            }
            Self::Repeated { seq } => write!(f, "the list contains record {seq} twice"),
            Self::Overlaps { first, previous_last } => write!(
                f,
                "the list starts at record {first}, but the previous entry of the same prefix ends at record {previous_last}"
            ),
            Self::TimeOffsetTooLarge { seq, offset } => {
                write!(f, "record {seq} has time offset {offset}, which is not below 2^{TIME_BUCKET_BITS}")
            }
        }
    }
}

/// Formats the value that a prefix stands for, such as `agent "coder"`,
/// or the prefix in hex when it is not valid for its index.
fn describe(slot: usize, prefix: &[u8], time_offset: u64) -> String {
    let fallback = || format!("prefix {}", hex::encode(prefix));
    match slot {
        AGENT_SLOT => match prefix.split_first_chunk::<4>() {
            Some((len, name)) if usize::try_from(u32::from_be_bytes(*len)).ok() == Some(name.len()) => {
                format!("agent {:?}", String::from_utf8_lossy(name))
            }
            _ => fallback(),
        },
        RULE_SLOT => match <[u8; 4]>::try_from(prefix) {
            Ok(rule_id) => format!("rule id {}", u32::from_be_bytes(rule_id)),
            Err(_) => fallback(),
        },
        VERDICT_HOOK_SLOT => match prefix {
            [verdict, hook] => {
                let verdict = Verdict::from_code(u32::from(*verdict))
                    .map_or_else(|| format!("verdict code {verdict}"), |verdict| format!("verdict {}", verdict.name()));
                let hook = Hook::from_code(u32::from(*hook))
                    .map_or_else(|| format!("hook code {hook}"), |hook| format!("hook {}", hook.name()));
                format!("{verdict}, {hook}")
            }
            _ => fallback(),
        },
        TIME_SLOT => {
            let time_ns = <[u8; 8]>::try_from(prefix)
                .ok()
                .and_then(|bucket| u64::from_be_bytes(bucket).checked_mul(1 << TIME_BUCKET_BITS))
                .and_then(|start| start.checked_add(time_offset));
            time_ns.map_or_else(fallback, |time_ns| format!("time {}", format_rfc3339(time_ns)))
        }
        _ => fallback(),
    }
}

/// The keyed 128-bit hash of each posting, added to [`Digests`]. See the
/// module documentation for the two keyed functions. A clone hashes with
/// the same keys.
#[derive(Clone)]
struct PostingHasher {
    /// AES-128 under a random key, for postings that [`posting_block`] encodes.
    cipher: Aes128,
    /// SipHash-1-3 (std's `RandomState`) for the other postings.
    state: RandomState,
    /// The bytes hashed with SipHash-1-3: domain, slot, `seq`, time offset,
    /// prefix.
    input: Vec<u8>,
    /// Blocks not encrypted yet, and the slot and `seq` of each. AES-NI
    /// works on several blocks at once, so they are encrypted together.
    blocks: Vec<Block<Aes128>>,
    postings: Vec<(usize, u64)>,
}

/// Blocks that [`PostingHasher`] encrypts in one call.
const QUEUED_BLOCKS: usize = 64;

impl PostingHasher {
    fn new() -> Result<Self, getrandom::Error> {
        let mut key = [0; 16];
        getrandom::fill(&mut key)?;
        Ok(Self {
            cipher: Aes128::new(&key.into()),
            state: RandomState::new(),
            input: Vec::new(),
            blocks: Vec::with_capacity(QUEUED_BLOCKS),
            postings: Vec::with_capacity(QUEUED_BLOCKS),
        })
    }

    /// Hashes a posting into `digests`, now or at the next [`Self::flush`].
    fn add(&mut self, digests: &mut Digests, slot: usize, prefix: &[u8], seq: u64, time_offset: u64) {
        if let Some(block) = posting_block(slot, prefix, seq, time_offset) {
            self.blocks.push(block.into());
            self.postings.push((slot, seq));
            if self.blocks.len() == QUEUED_BLOCKS {
                self.flush(digests);
            }
            return;
        }
        // The prefix is the only field of variable length, so the bytes
        // hashed determine every field. One `write` of all of them costs
        // about half as much as one `write_*` per field.
        let input = &mut self.input;
        input.clear();
        input.push(0);
        input.push(u8::try_from(slot).expect("four indexes"));
        input.extend_from_slice(&seq.to_le_bytes());
        input.extend_from_slice(&time_offset.to_le_bytes());
        input.extend_from_slice(prefix);
        let mut high = self.state.build_hasher();
        high.write(input);
        input[0] = 1;
        let mut low = self.state.build_hasher();
        low.write(input);
        digests.add(slot, seq, (u128::from(high.finish()) << 64) | u128::from(low.finish()));
    }

    /// Encrypts the queued blocks and adds them to `digests`.
    fn flush(&mut self, digests: &mut Digests) {
        self.cipher.encrypt_blocks(&mut self.blocks);
        for (block, &(slot, seq)) in self.blocks.iter().zip(&self.postings) {
            digests.add(slot, seq, u128::from_le_bytes((*block).into()));
        }
        self.blocks.clear();
        self.postings.clear();
    }
}

/// Bytes of a prefix, without an agent name's length, that fit
/// [`posting_block`].
const BLOCK_PREFIX_MAX: usize = 9;

/// Encodes a posting as one 16-byte block, or returns `None` when it does
/// not fit. Byte 0 is the slot, byte 1 the prefix length, bytes 2 to 6 the
/// low 40 bits of `seq`, and bytes 7 to 15 the prefix, zero-padded. In
/// `idx_time` the prefix is replaced by the time (bucket and offset), and
/// in `idx_agent` by the name alone. Distinct postings that fit get
/// distinct blocks.
fn posting_block(slot: usize, prefix: &[u8], seq: u64, time_offset: u64) -> Option<[u8; 16]> {
    if seq >> 40 != 0 {
        return None;
    }
    let time;
    let body = match slot {
        TIME_SLOT => {
            let bucket = u64::from_be_bytes(prefix.try_into().ok()?);
            if bucket >> (64 - TIME_BUCKET_BITS) != 0 || time_offset >> TIME_BUCKET_BITS != 0 {
                return None;
            }
            time = ((bucket << TIME_BUCKET_BITS) | time_offset).to_le_bytes();
            &time[..]
        }
        _ if time_offset != 0 => return None,
        AGENT_SLOT => {
            let (len, name) = prefix.split_first_chunk::<4>()?;
            (usize::try_from(u32::from_be_bytes(*len)).ok()? == name.len()).then_some(name)?
        }
        _ => prefix,
    };
    if body.len() > BLOCK_PREFIX_MAX {
        return None;
    }
    let mut block = [0; 16];
    block[0] = u8::try_from(slot).ok()?;
    block[1] = u8::try_from(body.len()).ok()?;
    block[2..7].copy_from_slice(&seq.to_le_bytes()[..5]);
    block[7..7 + body.len()].copy_from_slice(body);
    Some(block)
}

/// The number and hash sum of the postings of one range of records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct RangeDigest {
    count: u64,
    sum: u128,
}

/// The digests of the postings of each index, by range of records.
///
/// The ranges are kept in maps, so that a forged `seq` far past the last
/// record costs one entry instead of a list up to its range.
#[derive(Debug, Default)]
struct Digests {
    /// One map per index, in [`INDEX_CFS`] order, from `seq >> RANGE_BITS`
    /// to the digest of that range.
    ranges: [BTreeMap<u64, RangeDigest>; 4],
    /// Per index, the range of the last posting added and its digest so
    /// far, which is not in `ranges` yet. Postings come mostly in `seq`
    /// order, so most of them need no map lookup.
    current: [(u64, RangeDigest); 4],
}

impl Digests {
    fn add(&mut self, slot: usize, seq: u64, hash: u128) {
        let range = seq >> RANGE_BITS;
        if self.current[slot].0 != range {
            self.flush(slot);
            self.current[slot].0 = range;
        }
        let digest = &mut self.current[slot].1;
        digest.count += 1;
        digest.sum = digest.sum.wrapping_add(hash);
    }

    /// Moves the current digest of index `slot` into its map.
    fn flush(&mut self, slot: usize) {
        let (range, digest) = std::mem::take(&mut self.current[slot]);
        if digest.count > 0 {
            let total = self.ranges[slot].entry(range).or_default();
            total.count += digest.count;
            total.sum = total.sum.wrapping_add(digest.sum);
        }
    }

    /// Returns the digests with every current digest in the maps.
    fn finish(mut self) -> Self {
        for slot in 0..INDEX_CFS.len() {
            self.flush(slot);
        }
        self
    }

    /// Returns the first index, in [`INDEX_CFS`] order, whose digests differ
    /// from `other`'s, with the first range that differs there. Both must
    /// be finished.
    fn first_difference(&self, other: &Self) -> Option<(usize, u64)> {
        for (slot, (mine, theirs)) in self.ranges.iter().zip(&other.ranges).enumerate() {
            let ranges: BTreeSet<u64> = mine.keys().chain(theirs.keys()).copied().collect();
            if let Some(range) = ranges.into_iter().find(|range| mine.get(range) != theirs.get(range)) {
                return Some((slot, range));
            }
        }
        None
    }
}

/// Postings of consecutive records, as the walk sends them to the hashing
/// thread.
struct PostingBatch {
    /// Slot, `seq`, time offset and the end of the prefix in `prefixes`.
    postings: Vec<(usize, u64, u64, usize)>,
    prefixes: Vec<u8>,
}

impl PostingBatch {
    fn new() -> Self {
        Self { postings: Vec::with_capacity(BATCH_POSTINGS), prefixes: Vec::with_capacity(BATCH_POSTINGS * 12) }
    }
}

/// The walk's side of the index check: collects the postings of each
/// record that the walk decodes and sends them to the hashing thread.
pub(crate) struct RecordPostings {
    sender: SyncSender<PostingBatch>,
    batch: PostingBatch,
    buffer: Vec<u8>,
}

impl RecordPostings {
    /// Adds the postings of `record`, which must not have been added
    /// before.
    pub(crate) fn add(&mut self, record: &Record) {
        let Self { batch, buffer, .. } = self;
        index::for_each_posting(record, buffer, |slot, prefix, time_offset| {
            batch.prefixes.extend_from_slice(prefix);
            batch.postings.push((slot, record.seq, time_offset, batch.prefixes.len()));
        });
        if self.batch.postings.len() >= BATCH_POSTINGS {
            self.send();
        }
    }

    fn send(&mut self) {
        let batch = std::mem::replace(&mut self.batch, PostingBatch::new());
        // The send fails only when the hashing thread panicked, and joining
        // it reports that.
        let _ = self.sender.send(batch);
    }
}

/// The digests that the threads of [`digest_alongside`] computed.
pub(crate) struct Digested {
    records: Digests,
    /// The stored side, or the first entry that is invalid or lists a
    /// record past the end.
    stored: Result<Digests, IndexBreak>,
}

/// Runs `walk` on this thread while two more threads digest the postings
/// that `walk` passes to its argument and the stored index entries.
/// Returns what `walk` returned, with both digests for [`compare`].
pub(crate) fn digest_alongside<T>(
    reader: &LedgerReader,
    walk: impl FnOnce(&mut RecordPostings) -> T,
) -> Result<(T, Digested), LedgerError> {
    let hasher =
        PostingHasher::new().map_err(|source| LedgerError::RandomKey { path: reader.path().to_owned(), source })?;
    // A head that does not decode breaks the chain, and then the index
    // check is not reported, so any bound serves.
    let record_count = reader
        .raw_head()?
        .and_then(|value| decode_head(&value).ok())
        .map_or(u64::MAX, |(seq, _)| seq.saturating_add(1));

    thread::scope(|scope| {
        let stored_hasher = hasher.clone();
        let stored = scope.spawn(move || digest_stored(reader, stored_hasher, record_count));
        let (sender, receiver) = sync_channel(QUEUED_BATCHES);
        let hashed = scope.spawn(move || digest_batches(&receiver, hasher));

        let mut postings = RecordPostings { sender, batch: PostingBatch::new(), buffer: Vec::new() };
        let walked = walk(&mut postings);
        postings.send();
        drop(postings);

        let records = hashed.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let stored = stored.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        Ok((walked, Digested { records, stored }))
    })
}

/// Hashes the postings of every batch until the walk drops its sender.
fn digest_batches(receiver: &Receiver<PostingBatch>, mut hasher: PostingHasher) -> Digests {
    let mut digests = Digests::default();
    for batch in receiver {
        let mut start = 0;
        for &(slot, seq, time_offset, end) in &batch.postings {
            hasher.add(&mut digests, slot, &batch.prefixes[start..end], seq, time_offset);
            start = end;
        }
    }
    hasher.flush(&mut digests);
    digests.finish()
}

/// Reads and hashes every stored posting, checking the layout of each
/// entry. `records` is the number of records that the head names.
fn digest_stored(
    reader: &LedgerReader,
    mut hasher: PostingHasher,
    records: u64,
) -> Result<Result<Digests, IndexBreak>, LedgerError> {
    let mut digests = Digests::default();
    let mut postings = Vec::new();
    for (slot, index) in INDEX_CFS.into_iter().enumerate() {
        let mut entries = reader.index_scan(index)?;
        // The prefix and last `seq` of the previous entry.
        let mut previous: Option<(Vec<u8>, u64)> = None;
        while let (Some(key), Some(value)) = (entries.key(), entries.value()) {
            let invalid =
                |problem| Err(IndexBreak { index, kind: IndexBreakKind::InvalidEntry { key: key.to_vec(), problem } });
            let Some((prefix, key_seq)) = split_key(key) else {
                return Ok(invalid(EntryProblem::ShortKey));
            };
            if !has_valid_length(slot, prefix) {
                return Ok(invalid(EntryProblem::InvalidPrefix { len: prefix.len() }));
            }
            postings.clear();
            if let Err(problem) = decode_canonical(key_seq, value, slot == TIME_SLOT, &mut postings) {
                return Ok(invalid(problem));
            }
            let (first, last) = (postings[0].0, postings[postings.len() - 1].0);
            if let Some((previous_prefix, previous_last)) = &previous
                && previous_prefix.as_slice() == prefix
                && first <= *previous_last
            {
                return Ok(invalid(EntryProblem::Overlaps { first, previous_last: *previous_last }));
            }
            if last >= records {
                let seq = postings.iter().map(|(seq, _)| *seq).find(|seq| *seq >= records).unwrap_or(last);
                return Ok(Err(IndexBreak {
                    index,
                    kind: IndexBreakKind::PastEnd { key: key.to_vec(), seq, records },
                }));
            }
            for &(seq, time_offset) in &postings {
                hasher.add(&mut digests, slot, prefix, seq, time_offset);
            }
            previous = Some((prefix.to_vec(), last));
            entries.next();
        }
        entries.status().map_err(|source| LedgerError::ReadIndex { path: reader.path().to_owned(), source })?;
    }
    hasher.flush(&mut digests);
    Ok(Ok(digests.finish()))
}

/// Returns whether `prefix` has a length that the index `slot` writes.
/// When every prefix does, the entries of one prefix are adjacent in key
/// order, which the overlap check relies on.
fn has_valid_length(slot: usize, prefix: &[u8]) -> bool {
    match slot {
        AGENT_SLOT => prefix
            .split_first_chunk::<4>()
            .is_some_and(|(len, name)| usize::try_from(u32::from_be_bytes(*len)).ok() == Some(name.len())),
        RULE_SLOT => prefix.len() == 4,
        VERDICT_HOOK_SLOT => prefix.len() == 2,
        TIME_SLOT => prefix.len() == 8,
        _ => false,
    }
}

/// Decodes an entry's value into `(seq, time offset)` pairs, accepting only
/// the layout that the writer produces. The offset is 0 unless `timed`.
fn decode_canonical(key_seq: u64, value: &[u8], timed: bool, out: &mut Vec<(u64, u64)>) -> Result<(), EntryProblem> {
    if value.is_empty() {
        return Err(EntryProblem::Empty);
    }
    let mut rest = value;
    let mut seq = key_seq;
    while !rest.is_empty() {
        let delta = take_varint(&mut rest).ok_or(EntryProblem::Undecodable)?;
        seq = seq.checked_add(delta).ok_or(EntryProblem::Undecodable)?;
        if out.is_empty() && delta != 0 {
            return Err(EntryProblem::FirstNotKey { key_seq, first: seq });
        }
        if !out.is_empty() && delta == 0 {
            return Err(EntryProblem::Repeated { seq });
        }
        let time_offset = if timed { take_varint(&mut rest).ok_or(EntryProblem::Undecodable)? } else { 0 };
        if time_offset >> TIME_BUCKET_BITS != 0 {
            return Err(EntryProblem::TimeOffsetTooLarge { seq, offset: time_offset });
        }
        out.push((seq, time_offset));
    }
    Ok(())
}

/// Compares the digests of [`digest_alongside`] after a walk that found the
/// chain intact, and returns the first disagreement.
pub(crate) fn compare(reader: &LedgerReader, digested: Digested) -> Result<Option<IndexBreak>, LedgerError> {
    let stored = match digested.stored {
        Ok(stored) => stored,
        Err(index_break) => return Ok(Some(index_break)),
    };
    let Some((slot, range)) = digested.records.first_difference(&stored) else {
        return Ok(None);
    };
    let first_seq = range << RANGE_BITS;
    let last_seq = first_seq | ((1 << RANGE_BITS) - 1);
    let kind =
        locate(reader, slot, first_seq, last_seq)?.unwrap_or(IndexBreakKind::RangeMismatch { first_seq, last_seq });
    Ok(Some(IndexBreak { index: INDEX_CFS[slot], kind }))
}

/// A posting as [`locate`] compares them: `seq`, prefix, time offset.
type Posting = (u64, Vec<u8>, u64);

/// Lists the postings of index `slot` for the records `first_seq..=last_seq`
/// from both sides, and returns the first that only one side has.
fn locate(
    reader: &LedgerReader,
    slot: usize,
    first_seq: u64,
    last_seq: u64,
) -> Result<Option<IndexBreakKind>, LedgerError> {
    let path = || reader.path().to_owned();
    let mut expected: Vec<Posting> = Vec::new();
    let mut buffer = Vec::new();
    let mut records = reader.record_scan()?;
    records.seek(first_seq.to_be_bytes());
    while let (Some(key), Some(value)) = (records.key(), records.value()) {
        if key > &last_seq.to_be_bytes()[..] {
            break;
        }
        // The walk decoded these records already, so this error is not
        // expected.
        let record = Record::decode(value).map_err(|source| LedgerError::Decode {
            path: path(),
            seq: crate::store::decode_key(key).unwrap_or(first_seq),
            source,
        })?;
        index::for_each_posting(&record, &mut buffer, |posting_slot, prefix, time_offset| {
            if posting_slot == slot {
                expected.push((record.seq, prefix.to_vec(), time_offset));
            }
        });
        records.next();
    }
    records.status().map_err(|source| LedgerError::ReadRecords { path: path(), source })?;

    let mut stored: Vec<Posting> = Vec::new();
    let mut postings = Vec::new();
    let mut entries = reader.index_scan(INDEX_CFS[slot])?;
    while let (Some(key), Some(value)) = (entries.key(), entries.value()) {
        // The stored side passed its layout checks, so every entry decodes.
        if let Some((prefix, key_seq)) = split_key(key) {
            postings.clear();
            if decode_canonical(key_seq, value, INDEX_CFS[slot] == TIME_INDEX_CF, &mut postings).is_ok() {
                let in_range = postings.iter().filter(|(seq, _)| (first_seq..=last_seq).contains(seq));
                stored.extend(in_range.map(|&(seq, time_offset)| (seq, prefix.to_vec(), time_offset)));
            }
        }
        entries.next();
    }
    entries.status().map_err(|source| LedgerError::ReadIndex { path: path(), source })?;

    expected.sort_unstable();
    stored.sort_unstable();
    let mut expected = expected.into_iter().peekable();
    let mut stored = stored.into_iter().peekable();
    loop {
        let kind = match (expected.peek(), stored.peek()) {
            (None, None) => return Ok(None),
            (Some(want), Some(have)) if want == have => {
                expected.next();
                stored.next();
                continue;
            }
            (Some(want), Some(have)) if want < have => expected.next().map(missing),
            (Some(_), None) => expected.next().map(missing),
            (_, Some(_)) => stored.next().map(unexpected),
        };
        return Ok(kind);
    }
}

fn missing((seq, prefix, time_offset): Posting) -> IndexBreakKind {
    IndexBreakKind::Missing { seq, prefix, time_offset }
}

fn unexpected((seq, prefix, time_offset): Posting) -> IndexBreakKind {
    IndexBreakKind::Unexpected { seq, prefix, time_offset }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUCKET: [u8; 8] = 1_700_000_000_u64.to_be_bytes();

    fn agent(name: &str) -> Vec<u8> {
        [&u32::try_from(name.len()).unwrap().to_be_bytes()[..], name.as_bytes()].concat()
    }

    #[test]
    fn posting_block_distinct_postings() {
        let postings: [(usize, Vec<u8>, u64, u64); 9] = [
            (AGENT_SLOT, agent("coder"), 7, 0),
            (AGENT_SLOT, agent("coder"), 8, 0),
            (AGENT_SLOT, agent("code"), 7, 0),
            (AGENT_SLOT, agent("coder\0"), 7, 0),
            (RULE_SLOT, 3_u32.to_be_bytes().to_vec(), 7, 0),
            (RULE_SLOT, 4_u32.to_be_bytes().to_vec(), 7, 0),
            (VERDICT_HOOK_SLOT, vec![2, 2], 7, 0),
            (TIME_SLOT, BUCKET.to_vec(), 7, 5),
            (TIME_SLOT, BUCKET.to_vec(), 7, 6),
        ];
        let blocks: BTreeSet<[u8; 16]> = postings
            .iter()
            .map(|(slot, prefix, seq, offset)| posting_block(*slot, prefix, *seq, *offset).expect("fits one block"))
            .collect();
        assert_eq!(blocks.len(), postings.len());
    }

    #[test]
    fn posting_block_rejects_what_does_not_fit() {
        assert_eq!(posting_block(AGENT_SLOT, &agent("ten-letter"), 7, 0), None, "a name of 10 bytes");
        assert_eq!(posting_block(AGENT_SLOT, &[0, 0, 0, 9, b'a'], 7, 0), None, "a wrong name length");
        assert_eq!(posting_block(RULE_SLOT, &3_u32.to_be_bytes(), 1 << 40, 0), None, "a seq of 2^40");
        assert_eq!(posting_block(RULE_SLOT, &3_u32.to_be_bytes(), 7, 1), None, "a time offset outside idx_time");
        assert_eq!(posting_block(TIME_SLOT, &(1_u64 << 34).to_be_bytes(), 7, 0), None, "a bucket of 2^34");
        assert_eq!(posting_block(TIME_SLOT, &BUCKET, 7, 1 << 30), None, "an offset of 2^30");
        assert_eq!(posting_block(TIME_SLOT, &BUCKET[..7], 7, 0), None, "a bucket of 7 bytes");
    }

    /// Returns the digests of `postings` hashed by `hasher`.
    fn digest(hasher: &mut PostingHasher, postings: &[(usize, &[u8], u64, u64)]) -> Digests {
        let mut digests = Digests::default();
        for &(slot, prefix, seq, offset) in postings {
            hasher.add(&mut digests, slot, prefix, seq, offset);
        }
        hasher.flush(&mut digests);
        digests.finish()
    }

    #[test]
    fn hasher_clone_gives_same_digests() {
        let long = agent("an-agent-with-a-long-name");
        let short = agent("coder");
        let rule = 3_u32.to_be_bytes();
        let postings: Vec<(usize, &[u8], u64, u64)> = (0..200)
            .flat_map(|seq| {
                [(AGENT_SLOT, &long[..], seq, 0), (AGENT_SLOT, &short[..], seq, 0), (RULE_SLOT, &rule[..], seq, 0)]
            })
            .collect();
        let mut hasher = PostingHasher::new().unwrap();
        let mut clone = hasher.clone();
        let mut reversed = postings.clone();
        reversed.reverse();

        let digests = digest(&mut hasher, &postings);
        assert_eq!(digests.first_difference(&digest(&mut clone, &reversed)), None, "order does not matter");
        assert_eq!(digests.ranges[AGENT_SLOT][&0].count, 400);
        let other_key = digest(&mut PostingHasher::new().unwrap(), &postings);
        assert!(digests.first_difference(&other_key).is_some(), "another key gives other sums");
    }

    #[test]
    fn hasher_tells_long_names_apart() {
        let (first, second) = (agent("an-agent-with-a-long-name"), agent("an-agent-with-a-long-namf"));
        let mut hasher = PostingHasher::new().unwrap();
        let one = digest(&mut hasher, &[(AGENT_SLOT, &first, 1, 0)]);
        let other = digest(&mut hasher, &[(AGENT_SLOT, &second, 1, 0)]);
        assert_eq!(one.first_difference(&other), Some((AGENT_SLOT, 0)));
    }
}
