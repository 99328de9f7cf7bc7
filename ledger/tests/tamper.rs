//! `verify` on damaged ledgers: each test breaks one thing and checks that
//! the first break names the right record.

mod common;

use std::path::Path;

use lupid_ledger::{Break, BreakKind, DecodeError, verify};
use tempfile::TempDir;

const RECORDS: u64 = 1000;

/// Builds a ledger of [`RECORDS`] records, applies `damage` through a raw
/// RocksDB handle, and returns the first break that `verify` reports.
fn first_break(damage: impl FnOnce(&rocksdb::DB)) -> (TempDir, Break) {
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), RECORDS));
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
