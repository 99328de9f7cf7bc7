//! `verify` on damaged ledgers: each test breaks one thing and checks that
//! the first break names the right record, or for a query index, the
//! right index and posting.

mod common;

use std::path::Path;

use lupid_ledger::{Break, BreakKind, DecodeError, IndexBreakKind, Ledger, SigningKey, index, verify};
use tempfile::TempDir;

const RECORDS: u64 = 1000;

/// Builds a ledger of [`RECORDS`] records, applies `damage` through a raw
/// RocksDB handle, and returns the first break that `verify` reports.
fn first_break(damage: impl FnOnce(&rocksdb::DB)) -> (TempDir, Break) {
    first_break_in(RECORDS, damage)
}

/// [`first_break`] on a ledger of `records` records.
fn first_break_in(records: u64, damage: impl FnOnce(&rocksdb::DB)) -> (TempDir, Break) {
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), records));
    let db = common::open_raw(dir.path());
    damage(&db);
    drop(db);
    let report = verify(dir.path()).unwrap();
    let first_break = report.first_break.expect("verify must find a break");
    (dir, first_break)
}

fn flip_byte(db: &rocksdb::DB, seq: u64, offset: impl FnOnce(usize) -> usize) {
    let mut value = common::raw_get(db, seq);
    let index = offset(value.len());
    value[index] ^= 0x01;
    common::raw_put(db, seq, &value);
}

fn records_checked(dir: &Path) -> u64 {
    verify(dir).unwrap().records_checked
}

#[test]
fn changed_body_byte() {
    // Record 500 is a connect decision; its last byte is part of the port.
    let (dir, found) = first_break(|db| flip_byte(db, 500, |len| len - 1));
    assert_eq!(found.seq, 501);
    assert_eq!(found.kind, BreakKind::PrevHashMismatch);
    assert_eq!(found.to_string(), "record 501: prev_hash does not match the hash of record 500");
    assert_eq!(records_checked(dir.path()), 501);
}

#[test]
fn changed_record_before_scan_batch_boundary() {
    // The verify scan sends records in batches of 1024: record 1023 ends
    // the first one, and the link that breaks is in the second.
    let (dir, found) = first_break_in(2500, |db| flip_byte(db, 1023, |len| len - 1));
    assert_eq!(found.seq, 1024);
    assert_eq!(found.kind, BreakKind::PrevHashMismatch);
    assert_eq!(records_checked(dir.path()), 1024);
}

#[test]
fn changed_record_in_last_scan_batch() {
    let (dir, found) = first_break_in(2500, |db| flip_byte(db, 2200, |_| 16));
    assert_eq!(found.to_string(), "record 2201: prev_hash does not match the hash of record 2200");
    assert_eq!(records_checked(dir.path()), 2201);
}

#[test]
fn changed_prev_hash_byte() {
    let (_dir, found) = first_break(|db| flip_byte(db, 500, |_| 18));
    assert_eq!(found.seq, 500);
    assert_eq!(found.kind, BreakKind::PrevHashMismatch);
}

#[test]
fn changed_time_byte() {
    let (_dir, found) = first_break(|db| flip_byte(db, 41, |_| 16));
    assert_eq!(found.to_string(), "record 42: prev_hash does not match the hash of record 41");
}

#[test]
fn changed_last_record() {
    let (_dir, found) = first_break(|db| flip_byte(db, RECORDS - 1, |len| len - 1));
    assert_eq!(found.seq, RECORDS - 1);
    assert_eq!(found.kind, BreakKind::HeadHashMismatch);
}

#[test]
fn changed_first_prev_hash() {
    let (_dir, found) = first_break(|db| flip_byte(db, 0, |_| 49));
    assert_eq!(found.to_string(), "record 0: prev_hash is not all zero");
}

#[test]
fn deleted_middle_record() {
    let (_dir, found) = first_break(|db| common::raw_delete(db, 40));
    assert_eq!(found.seq, 40);
    assert_eq!(found.kind, BreakKind::Missing { next: 41 });
    assert_eq!(found.to_string(), "record 40 missing (records jump from 39 to 41)");
}

#[test]
fn deleted_first_record() {
    let (_dir, found) = first_break(|db| common::raw_delete(db, 0));
    assert_eq!(found.to_string(), "record 0 missing (the first record is 1)");
}

#[test]
fn deleted_last_record() {
    let (_dir, found) = first_break(|db| common::raw_delete(db, RECORDS - 1));
    assert_eq!(found.seq, RECORDS - 1);
    assert_eq!(found.kind, BreakKind::MissingTail { head_seq: RECORDS - 1 });
}

#[test]
fn undecodable_record() {
    let (_dir, found) = first_break(|db| flip_byte(db, 7, |_| 0));
    assert_eq!(found.seq, 7);
    assert_eq!(found.kind, BreakKind::Undecodable(DecodeError::UnsupportedVersion(0)));
    assert_eq!(
        found.to_string(),
        "record 7: cannot decode: unsupported format version 0 (this build reads versions 1 to 6)"
    );
}

#[test]
fn truncated_record() {
    let (_dir, found) = first_break(|db| {
        let value = common::raw_get(db, 12);
        common::raw_put(db, 12, &value[..value.len() - 3]);
    });
    assert_eq!(found.seq, 12);
    assert!(matches!(found.kind, BreakKind::Undecodable(DecodeError::Truncated { .. })), "{found}");
}

#[test]
fn record_under_wrong_key() {
    let (_dir, found) = first_break(|db| {
        let value = common::raw_get(db, 5);
        common::raw_put(db, 6, &value);
    });
    assert_eq!(found.seq, 6);
    assert_eq!(found.kind, BreakKind::KeyMismatch { stored: 5 });
}

#[test]
fn invalid_key() {
    let (_dir, found) = first_break(|db| {
        let records = db.cf_handle("records").unwrap();
        db.put_cf(records, [0xff; 9], b"junk").unwrap();
    });
    assert_eq!(found.seq, RECORDS);
    assert_eq!(found.kind, BreakKind::InvalidKey { key: vec![0xff; 9] });
}

#[test]
fn head_behind_last_record() {
    let (_dir, found) = first_break(|db| {
        let meta = db.cf_handle("meta").unwrap();
        let mut head = db.get_cf(meta, b"head").unwrap().unwrap();
        head[7] -= 1;
        db.put_cf(meta, b"head", head).unwrap();
    });
    assert_eq!(found.seq, RECORDS - 1);
    assert_eq!(found.kind, BreakKind::HeadBehind { head_seq: RECORDS - 2 });
}

#[test]
fn head_missing() {
    let (_dir, found) = first_break(|db| {
        let meta = db.cf_handle("meta").unwrap();
        db.delete_cf(meta, b"head").unwrap();
    });
    assert_eq!(found.kind, BreakKind::HeadMissing);
}

#[test]
fn hostile_record_bytes() {
    // A value made of control bytes and escape sequences must produce a
    // break report, never a panic.
    let (_dir, found) = first_break(|db| common::raw_put(db, 3, common::HOSTILE));
    assert_eq!(found.seq, 3);
}

// The query indexes. `common::fill` writes batches of 100 records, so each
// index has one entry per batch and prefix. Agent "coder" is in the records
// with `seq % 7` in 1..=3, rule 3 and (deny, open) in those with `seq % 7
// == 2`, and every record of the first 1000 is in one `idx_time` bucket.

/// Bits of an `idx_time` offset.
const TIME_BUCKET_BITS: u32 = 30;

/// Runs `lupid-ledger verify` and returns its exit code and standard output.
fn run_verify(dir: &Path) -> (Option<i32>, String) {
    run_cli(&["verify"], dir)
}

fn run_cli(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lupid-ledger"))
        .args(args)
        .arg("--ledger")
        .arg(dir)
        .output()
        .expect("run lupid-ledger");
    (output.status.code(), String::from_utf8(output.stdout).expect("stdout is UTF-8"))
}

/// Builds a ledger of `records` records, applies `damage` to its indexes
/// through a raw RocksDB handle, and returns the `BROKEN:` line that
/// `lupid-ledger verify` prints, after checking that it exits 1 and names
/// the fix.
fn index_break_of(records: u64, damage: impl FnOnce(&rocksdb::DB)) -> (TempDir, String) {
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), records));
    let db = common::open_raw(dir.path());
    damage(&db);
    drop(db);

    let (code, stdout) = run_verify(dir.path());
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains(&format!("run `lupid-ledger reindex --ledger {}`", dir.path().display())), "{stdout}");
    let line = stdout.lines().find(|line| line.starts_with("BROKEN: ")).expect("a BROKEN line").to_owned();
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.first_break, None, "the chain holds: {line}");
    assert!(report.index_break.is_some(), "{line}");
    (dir, line)
}

fn agent_prefix(agent: &str) -> Vec<u8> {
    [&u32::try_from(agent.len()).unwrap().to_be_bytes()[..], agent.as_bytes()].concat()
}

fn index_key(prefix: &[u8], first: u64) -> Vec<u8> {
    [prefix, &first.to_be_bytes()].concat()
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(u8::try_from(value & 0x7f).unwrap() | 0x80);
        value >>= 7;
    }
    out.push(u8::try_from(value).unwrap());
}

/// Encodes a postings list of `(seq, time offset)` pairs as the writer
/// does. The offsets are written only for `idx_time`.
fn encode_postings(postings: &[(u64, u64)], timed: bool) -> Vec<u8> {
    let mut value = Vec::new();
    let mut previous = postings[0].0;
    for &(seq, offset) in postings {
        put_varint(&mut value, seq - previous);
        if timed {
            put_varint(&mut value, offset);
        }
        previous = seq;
    }
    value
}

/// Returns the `(seq, time offset)` pairs of the entry under `key`.
fn read_postings(db: &rocksdb::DB, name: &str, key: &[u8]) -> Vec<(u64, u64)> {
    let value = db.get_cf(db.cf_handle(name).unwrap(), key).unwrap().expect("index entry present");
    let (_, first) = index::split_key(key).unwrap();
    let mut postings = Vec::new();
    index::decode_postings(first, &value, name == "idx_time", &mut postings).unwrap();
    postings
}

fn put_entry(db: &rocksdb::DB, name: &str, key: &[u8], postings: &[(u64, u64)]) {
    db.put_cf(db.cf_handle(name).unwrap(), key, encode_postings(postings, name == "idx_time")).unwrap();
}

fn put_raw_entry(db: &rocksdb::DB, name: &str, key: &[u8], value: &[u8]) {
    db.put_cf(db.cf_handle(name).unwrap(), key, value).unwrap();
}

fn delete_entry(db: &rocksdb::DB, name: &str, key: &[u8]) {
    db.delete_cf(db.cf_handle(name).unwrap(), key).unwrap();
}

/// Returns the `idx_time` key prefix and offset of record `seq` of a
/// ledger that `common::fill` wrote.
fn time_posting(seq: u64) -> (Vec<u8>, u64) {
    let time_ns = 1_700_000_000_000_000_000 + seq;
    ((time_ns >> TIME_BUCKET_BITS).to_be_bytes().to_vec(), time_ns & ((1 << TIME_BUCKET_BITS) - 1))
}

#[test]
fn index_intact_verifies() {
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), RECORDS));
    let (code, stdout) = run_verify(dir.path());
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("indexes: all 4 match the records"), "{stdout}");
    let report = verify(dir.path()).unwrap();
    assert!(report.indexes_checked);
    assert_eq!(report.index_break, None);
}

#[test]
fn index_entry_deleted() {
    let (dir, line) = index_break_of(RECORDS, |db| delete_entry(db, "idx_rule", &index_key(&3_u32.to_be_bytes(), 2)));
    assert_eq!(line, "BROKEN: index `idx_rule` lacks record 2 under rule id 3");
    let found = verify(dir.path()).unwrap().index_break.unwrap();
    assert_eq!(found.index, "idx_rule");
    assert_eq!(found.kind, IndexBreakKind::Missing { seq: 2, prefix: 3_u32.to_be_bytes().to_vec(), time_offset: 0 });
}

#[test]
fn index_posting_deleted() {
    let (_dir, line) = index_break_of(RECORDS, |db| {
        let key = index_key(&agent_prefix("coder"), 1);
        let mut postings = read_postings(db, "idx_agent", &key);
        assert_eq!(postings.pop(), Some((99, 0)), "the first batch ends with a coder record");
        put_entry(db, "idx_agent", &key, &postings);
    });
    assert_eq!(line, "BROKEN: index `idx_agent` lacks record 99 under agent \"coder\"");
}

#[test]
fn index_posting_of_other_record() {
    // Record 3 is a connect decision of rule 0, added to the list of rule 3.
    let (dir, line) = index_break_of(RECORDS, |db| {
        let key = index_key(&3_u32.to_be_bytes(), 2);
        let mut postings = read_postings(db, "idx_rule", &key);
        postings.insert(1, (3, 0));
        put_entry(db, "idx_rule", &key, &postings);
    });
    assert_eq!(line, "BROKEN: index `idx_rule` lists record 3 under rule id 3, which the record does not have");
    let found = verify(dir.path()).unwrap().index_break.unwrap();
    assert_eq!(found.kind, IndexBreakKind::Unexpected { seq: 3, prefix: 3_u32.to_be_bytes().to_vec(), time_offset: 0 });
}

#[test]
fn index_entry_of_absent_agent() {
    // A new prefix cannot overlap an entry, so only the digest catches it.
    let (_dir, line) =
        index_break_of(RECORDS, |db| put_entry(db, "idx_agent", &index_key(&agent_prefix("mallory"), 9), &[(9, 0)]));
    assert_eq!(
        line,
        "BROKEN: index `idx_agent` lists record 9 under agent \"mallory\", which the record does not have"
    );
}

#[test]
fn index_term_changed() {
    // The entry of (deny, open) from record 2 on moves to (allow, open).
    let (_dir, line) = index_break_of(RECORDS, |db| {
        let deny_open = index_key(&[2, 2], 2);
        let value = db.get_cf(db.cf_handle("idx_verdict_hook").unwrap(), &deny_open).unwrap().unwrap();
        delete_entry(db, "idx_verdict_hook", &deny_open);
        put_raw_entry(db, "idx_verdict_hook", &index_key(&[1, 2], 2), &value);
    });
    assert_eq!(
        line,
        "BROKEN: index `idx_verdict_hook` lists record 2 under verdict allow, hook open, which the record does not have"
    );
}

#[test]
fn index_agent_renamed() {
    let (_dir, line) = index_break_of(RECORDS, |db| {
        let coder = index_key(&agent_prefix("coder"), 100);
        let postings = read_postings(db, "idx_agent", &coder);
        delete_entry(db, "idx_agent", &coder);
        put_entry(db, "idx_agent", &index_key(&agent_prefix("codex"), 100), &postings);
    });
    assert_eq!(line, "BROKEN: index `idx_agent` lacks record 100 under agent \"coder\"");
}

#[test]
fn index_time_offset_changed() {
    let (_dir, line) = index_break_of(RECORDS, |db| {
        let (bucket, _) = time_posting(1);
        let key = index_key(&bucket, 1);
        let mut postings = read_postings(db, "idx_time", &key);
        assert_eq!(postings[1].0, 2);
        postings[1].1 += 1_000;
        put_entry(db, "idx_time", &key, &postings);
    });
    assert_eq!(line, "BROKEN: index `idx_time` lacks record 2 under time 2023-11-14T22:13:20.000000002Z");
}

#[test]
fn index_posting_past_end() {
    let (dir, line) = index_break_of(RECORDS, |db| {
        let (bucket, offset) = time_posting(RECORDS);
        put_entry(db, "idx_time", &index_key(&bucket, RECORDS), &[(RECORDS, offset)]);
    });
    let (bucket, _) = time_posting(RECORDS);
    let key = hex::encode(index_key(&bucket, RECORDS));
    assert_eq!(
        line,
        format!(
            "BROKEN: index `idx_time` lists record 1000 in the entry under key {key}, but the ledger has 1000 records"
        )
    );
    let found = verify(dir.path()).unwrap().index_break.unwrap();
    assert!(matches!(found.kind, IndexBreakKind::PastEnd { seq: 1000, records: 1000, .. }), "{found:?}");
}

#[test]
fn index_posting_past_end_appended() {
    // The last coder entry, from record 904 on, gains a record after the
    // last one.
    let (_dir, line) = index_break_of(RECORDS, |db| {
        let key = index_key(&agent_prefix("coder"), 904);
        let mut postings = read_postings(db, "idx_agent", &key);
        postings.push((RECORDS + 5, 0));
        put_entry(db, "idx_agent", &key, &postings);
    });
    let key = hex::encode(index_key(&agent_prefix("coder"), 904));
    assert_eq!(
        line,
        format!(
            "BROKEN: index `idx_agent` lists record 1005 in the entry under key {key}, but the ledger has 1000 records"
        )
    );
}

#[test]
fn index_entry_undecodable() {
    let key = index_key(&3_u32.to_be_bytes(), 2);
    let (_dir, line) = index_break_of(RECORDS, |db| put_raw_entry(db, "idx_rule", &key, &[0, 0x87]));
    assert_eq!(
        line,
        format!(
            "BROKEN: index `idx_rule` has an invalid entry under key {}: the postings list is not a valid list of varints",
            hex::encode(&key)
        )
    );
}

#[test]
fn index_entry_invalid_layouts() {
    let rule_3 = 3_u32.to_be_bytes();
    let cases: [(&str, Vec<u8>, Vec<u8>, &str); 6] = [
        ("empty value", index_key(&rule_3, 2), Vec::new(), "the postings list is empty"),
        ("short key", vec![0, 0, 3], vec![0], "the key is shorter than the 8-byte sequence number it ends with"),
        (
            "prefix of 5 bytes",
            index_key(&[0, 0, 0, 3, 0], 2),
            vec![0],
            "the prefix is 5 bytes, which is not a valid length in this index",
        ),
        (
            "first posting not the key's",
            index_key(&rule_3, 2),
            vec![7, 7],
            "the list starts at record 9, not at record 2 as its key states",
        ),
        ("repeated record", index_key(&rule_3, 2), vec![0, 7, 0], "the list contains record 9 twice"),
        (
            "overlapping entries",
            index_key(&rule_3, 9),
            vec![0],
            "the list starts at record 9, but the previous entry of the same prefix ends at record 93",
        ),
    ];
    for (case, key, value, problem) in cases {
        let (_dir, line) = index_break_of(RECORDS, |db| put_raw_entry(db, "idx_rule", &key, &value));
        let expected =
            format!("BROKEN: index `idx_rule` has an invalid entry under key {}: {problem}", hex::encode(&key));
        assert_eq!(line, expected, "{case}");
    }
}

#[test]
fn index_time_offset_too_large() {
    let (_dir, line) = index_break_of(RECORDS, |db| {
        // Record 0 starts the daemon, so the first entry starts at record 1.
        let (bucket, _) = time_posting(1);
        let key = index_key(&bucket, 1);
        let mut postings = read_postings(db, "idx_time", &key);
        assert_eq!(postings[3].0, 8);
        postings[3].1 = 1 << TIME_BUCKET_BITS;
        put_entry(db, "idx_time", &key, &postings);
    });
    assert!(line.ends_with(": record 8 has time offset 1073741824, which is not below 2^30"), "{line}");
}

#[test]
fn index_break_in_later_range() {
    // Digests are kept per 65,536 records, so a posting past the first
    // range is found through the second one.
    const MANY: u64 = 70_000;
    let first = (66_000..).find(|seq| (1..=3).contains(&(seq % 7))).unwrap();
    let mut removed = 0;
    let (_dir, line) = index_break_of(MANY, |db| {
        let key = index_key(&agent_prefix("coder"), first);
        let mut postings = read_postings(db, "idx_agent", &key);
        removed = postings.remove(5).0;
        put_entry(db, "idx_agent", &key, &postings);
    });
    assert!(removed > 65_536);
    assert_eq!(line, format!("BROKEN: index `idx_agent` lacks record {removed} under agent \"coder\""));
}

#[test]
fn index_and_checkpoint_breaks_both_reported() {
    // `verify` still checks the checkpoints when only an index is damaged.
    let dir = TempDir::new().unwrap();
    let mut ledger = common::fill(dir.path(), 100);
    let key = SigningKey::generate("test").unwrap();
    ledger.checkpoint(&key).unwrap();
    drop(ledger);
    let db = common::open_raw(dir.path());
    delete_entry(&db, "idx_rule", &index_key(&3_u32.to_be_bytes(), 2));
    let checkpoints = db.cf_handle("checkpoints").unwrap();
    db.put_cf(checkpoints, 100_u64.to_be_bytes(), b"not a note").unwrap();
    drop(db);

    let (code, stdout) = run_verify(dir.path());
    assert_eq!(code, Some(1), "{stdout}");
    let broken: Vec<&str> = stdout.lines().filter(|line| line.starts_with("BROKEN: ")).collect();
    assert_eq!(broken.len(), 2, "{stdout}");
    assert!(broken[0].starts_with("BROKEN: stored checkpoint 100"), "{stdout}");
    assert_eq!(broken[1], "BROKEN: index `idx_rule` lacks record 2 under rule id 3");
}

#[test]
fn chain_break_hides_index_check() {
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), RECORDS));
    let db = common::open_raw(dir.path());
    common::raw_delete(&db, 40);
    delete_entry(&db, "idx_rule", &index_key(&3_u32.to_be_bytes(), 2));
    drop(db);
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.first_break.map(|found| found.seq), Some(40));
    assert!(!report.indexes_checked);
    assert_eq!(report.index_break, None, "a broken chain is reported alone");
}

#[test]
fn reindex_repairs_index() {
    let (dir, _) = index_break_of(RECORDS, |db| delete_entry(db, "idx_rule", &index_key(&3_u32.to_be_bytes(), 2)));
    let (code, stdout) = run_cli(&["reindex"], dir.path());
    assert_eq!(code, Some(0), "{stdout}");
    let display = dir.path().display();
    assert_eq!(
        stdout.trim(),
        format!(
            "OK: rebuilt the query indexes of 1000 records in {display}\nthe hash chain was not checked: run `lupid-ledger verify --ledger {display}`"
        )
    );
    let (code, stdout) = run_verify(dir.path());
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("indexes: all 4 match the records"), "{stdout}");
}

#[test]
fn reindex_missing_ledger_fails() {
    let dir = TempDir::new().unwrap();
    let absent = dir.path().join("absent");
    let (code, _) = run_cli(&["reindex"], &absent);
    assert_eq!(code, Some(2));
    assert!(!absent.exists(), "reindex must not create a ledger");
}

#[test]
fn stale_index_not_checked_nor_rebuilt() {
    // Readers ignore indexes of another layout version, so verify skips
    // them, and its read-only open leaves the version as it is.
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), RECORDS));
    let db = common::open_raw(dir.path());
    db.put_cf(db.cf_handle("meta").unwrap(), index::INDEX_VERSION_KEY, [1]).unwrap();
    put_raw_entry(&db, "idx_rule", &index_key(&3_u32.to_be_bytes(), 2), &[0x80]);
    drop(db);

    let (code, stdout) = run_verify(dir.path());
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("indexes: not checked, because the ledger has none in the current layout"), "{stdout}");
    let db = common::open_raw(dir.path());
    let version = db.get_cf(db.cf_handle("meta").unwrap(), index::INDEX_VERSION_KEY).unwrap();
    assert_eq!(version, Some(vec![1]), "verify does not rebuild the indexes");
    drop(db);

    // A writable open rebuilds them, and they then verify.
    drop(Ledger::open(dir.path()).unwrap());
    let (code, stdout) = run_verify(dir.path());
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("indexes: all 4 match the records"), "{stdout}");
}

#[test]
fn dropped_indexes_not_checked() {
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), RECORDS));
    let mut db = common::open_raw(dir.path());
    for name in index::INDEX_CFS {
        db.drop_cf(name).unwrap();
    }
    db.delete_cf(db.cf_handle("meta").unwrap(), index::INDEX_VERSION_KEY).unwrap();
    drop(db);

    let report = verify(dir.path()).unwrap();
    assert!(report.is_intact());
    assert!(!report.indexes_checked);
}

#[test]
fn index_far_posting_with_forged_head() {
    // A head that names a record far past the last one lets a posting up
    // there pass the check against the number of records. Verify must
    // still report the chain break instead of running out of memory.
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), RECORDS));
    let db = common::open_raw(dir.path());
    let meta = db.cf_handle("meta").unwrap();
    let mut head = db.get_cf(meta, b"head").unwrap().unwrap();
    head[..8].copy_from_slice(&(1_u64 << 62).to_be_bytes());
    db.put_cf(meta, b"head", head).unwrap();
    put_entry(&db, "idx_rule", &index_key(&3_u32.to_be_bytes(), 1 << 61), &[(1 << 61, 0)]);
    drop(db);

    let report = verify(dir.path()).unwrap();
    assert_eq!(report.first_break.map(|found| found.kind), Some(BreakKind::MissingTail { head_seq: 1 << 62 }));
    assert_eq!(report.index_break, None);
}

#[test]
fn index_check_writes_nothing() {
    // Verify reads a damaged ledger without repairing or rebuilding
    // anything. RocksDB's own info log (`LOG*`) is not ledger data.
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), RECORDS));
    let db = common::open_raw(dir.path());
    delete_entry(&db, "idx_rule", &index_key(&3_u32.to_be_bytes(), 2));
    drop(db);
    let files = |dir: &Path| -> std::collections::BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap())
            .map(|entry| (entry.file_name().into_string().unwrap(), entry.path()))
            .filter(|(name, _)| !name.starts_with("LOG"))
            .map(|(name, path)| (name, std::fs::read(path).unwrap()))
            .collect()
    };

    let before = files(dir.path());
    let (code, _) = run_verify(dir.path());
    assert_eq!(code, Some(1));
    assert_eq!(files(dir.path()), before, "verify changed the ledger's files");
}

#[test]
fn changed_record_named_in_output() {
    let (dir, _) = first_break(|db| flip_byte(db, 500, |len| len - 1));
    let (code, stdout) = run_verify(dir.path());
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("record 500 was changed, or the link to it in record 501: the chain alone cannot tell which"),
        "{stdout}"
    );
}

#[test]
fn gap_of_unknown_start() {
    let gap = lupid_ledger::Gap {
        seq: 1,
        from_ns: 0,
        to_ns: 1_700_000_000_000_000_000,
        cause: lupid_ledger::GapCause::DaemonAway,
    };
    assert_eq!(
        gap.to_string(),
        "complete=false for interval [unknown start, 2023-11-14T22:13:20.000000000Z]: no daemon was running, record 1"
    );
}
