//! Appending, reopening and reading a ledger.

mod common;

use lupid_ledger::{HeadProblem, Ledger, LedgerError, LedgerReader, SigningKey, ZERO_HASH, leaf_hash, verify};
use tempfile::TempDir;

#[test]
fn fresh_ledger_is_empty() {
    let dir = TempDir::new().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.len(), 0);
    assert_eq!(ledger.head(), None);
}

#[test]
fn open_creates_missing_dir() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("a/b/ledger");
    Ledger::open(&path).unwrap();
    assert!(path.join("CURRENT").is_file());
}

#[test]
fn append_assigns_dense_seqs() {
    let dir = TempDir::new().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let first = ledger.append(1, common::daemon_start()).unwrap();
    let batch = ledger.append_batch(vec![(2, common::identity()), (3, common::open_decision())]).unwrap();
    let seqs: Vec<u64> = [first].iter().chain(&batch).map(|a| a.seq).collect();
    assert_eq!(seqs, [0, 1, 2]);
    assert_eq!(ledger.len(), 3);
    assert_eq!(ledger.head(), Some((2, batch[1].hash)));
}

#[test]
fn empty_batch_writes_nothing() {
    let dir = TempDir::new().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.append_batch(Vec::new()).unwrap(), []);
    assert_eq!(ledger.len(), 0);
}

#[test]
fn chain_links_prev_hash() {
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), 20));

    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let records: Vec<_> = reader.records().unwrap().map(Result::unwrap).collect();
    assert_eq!(records[0].record.prev_hash, ZERO_HASH);
    for pair in records.windows(2) {
        assert_eq!(pair[1].record.prev_hash, pair[0].hash, "record {}", pair[1].record.seq);
    }
}

#[test]
fn large_append_matches_small_appends() {
    // One append of 3000 records is written in three parts. Its records,
    // tree and indexes must equal those of 30 appends of 100 records.
    let small_dir = TempDir::new().unwrap();
    let small = common::fill(small_dir.path(), 3000);
    let large_dir = TempDir::new().unwrap();
    let mut large = Ledger::open(large_dir.path()).unwrap();
    let kinds = common::every_kind();
    let bodies = (0..3000).map(|seq| (1_700_000_000_000_000_000 + seq, kinds[seq % kinds.len()].clone()));
    let bodies = bodies.map(|(time_ns, body)| (u64::try_from(time_ns).unwrap(), body)).collect();
    let appended = large.append_batch(bodies).unwrap();

    assert_eq!(appended.len(), 3000);
    assert_eq!(appended.last().map(|last| (last.seq, last.hash)), small.head());
    assert_eq!(large.head(), small.head());
    assert_eq!(large.tree_head(), small.tree_head());
    drop(large);
    let report = verify(large_dir.path()).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert!(report.indexes_checked);
    assert_eq!(report.records_checked, 3000);
}

#[test]
fn large_append_continues_after_reopen() {
    let dir = TempDir::new().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let bodies = (0..2500).map(|seq| (seq, common::daemon_stop())).collect();
    let head = ledger.append_batch(bodies).unwrap().last().copied();
    drop(ledger);

    let mut ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.head(), head.map(|head| (head.seq, head.hash)));
    let next = ledger.append(7, common::daemon_start()).unwrap();
    assert_eq!(next.seq, 2500);
    drop(ledger);
    assert!(verify(dir.path()).unwrap().is_intact());
}

#[test]
fn verify_passes_1000_records() {
    let dir = TempDir::new().unwrap();
    let ledger = common::fill(dir.path(), 1000);
    let head = ledger.head();
    drop(ledger);

    let report = verify(dir.path()).unwrap();
    assert_eq!(report.first_break, None);
    assert_eq!(report.records_checked, 1000);
    assert_eq!(report.head, head);
}

#[test]
fn stored_records_roundtrip() {
    let dir = TempDir::new().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let bodies: Vec<_> = common::every_kind()
        .into_iter()
        .enumerate()
        .map(|(index, body)| (u64::try_from(index).unwrap() * 10, body))
        .collect();
    let appended = ledger.append_batch(bodies.clone()).unwrap();

    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let stored: Vec<_> = reader.records().unwrap().map(Result::unwrap).collect();
    assert_eq!(stored.len(), bodies.len());
    for ((stored, (time_ns, body)), appended) in stored.iter().zip(&bodies).zip(&appended) {
        assert_eq!(&stored.record.body, body);
        assert_eq!(stored.record.time_ns, *time_ns);
        assert_eq!(stored.hash, appended.hash);
        assert_eq!(stored.hash, leaf_hash(&stored.record.encode().unwrap()));
    }
}

#[test]
fn reopen_continues_chain() {
    let dir = TempDir::new().unwrap();
    let head = common::fill(dir.path(), 5).head().unwrap();

    let mut ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.head(), Some(head));
    let next = ledger.append(9, common::daemon_start()).unwrap();
    assert_eq!(next.seq, 5);
    drop(ledger);

    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let last = reader.records().unwrap().last().unwrap().unwrap();
    assert_eq!(last.record.prev_hash, head.1);
    assert_eq!(verify(dir.path()).unwrap().first_break, None);
}

#[test]
fn read_while_writer_open() {
    let dir = TempDir::new().unwrap();
    let mut ledger = common::fill(dir.path(), 50);
    ledger.append(1, common::daemon_stop()).unwrap();

    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.records().unwrap().count(), 51);
    assert_eq!(reader.head().unwrap(), ledger.head());
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.first_break, None);
    assert_eq!(report.records_checked, 51);

    ledger.append(2, common::daemon_start()).unwrap();
    assert_eq!(ledger.len(), 52);
}

#[test]
fn second_writer_rejected() {
    let dir = TempDir::new().unwrap();
    let _ledger = Ledger::open(dir.path()).unwrap();
    let second = Ledger::open(dir.path());
    assert!(matches!(second, Err(LedgerError::Open { .. })));
}

#[test]
fn reader_rejects_missing_dir() {
    let dir = TempDir::new().unwrap();
    let result = LedgerReader::open_read_only(&dir.path().join("absent"));
    assert!(matches!(result, Err(LedgerError::NotFound { .. })));
}

#[test]
fn open_rejects_changed_last_record() {
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), 10));
    let db = common::open_raw(dir.path());
    let mut value = common::raw_get(&db, 9);
    *value.last_mut().unwrap() ^= 1;
    common::raw_put(&db, 9, &value);
    drop(db);

    let error = Ledger::open(dir.path()).err().expect("open must fail");
    let LedgerError::BrokenHead { problem, .. } = error else {
        panic!("unexpected error: {error}");
    };
    assert_eq!(problem, HeadProblem::HashMismatch { seq: 9 });
}

#[test]
fn open_rejects_deleted_last_record() {
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), 10));
    let db = common::open_raw(dir.path());
    common::raw_delete(&db, 9);
    drop(db);

    let error = Ledger::open(dir.path()).err().expect("open must fail");
    let LedgerError::BrokenHead { problem, .. } = error else {
        panic!("unexpected error: {error}");
    };
    assert_eq!(problem, HeadProblem::SeqMismatch { head_seq: 9, last_seq: 8 });
}

#[test]
fn open_rejects_broken_last_link() {
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), 10));
    let db = common::open_raw(dir.path());
    let mut value = common::raw_get(&db, 8);
    *value.last_mut().unwrap() ^= 1;
    common::raw_put(&db, 8, &value);
    drop(db);

    let error = Ledger::open(dir.path()).err().expect("open must fail");
    assert_eq!(
        error.to_string(),
        format!(
            "ledger {} has a broken head, so it was not opened for writing \
             (run `lupid-ledger verify`): record 9: prev_hash does not match the hash of record 8",
            dir.path().display()
        )
    );
}

#[test]
fn reader_sees_state_at_open() {
    let dir = TempDir::new().unwrap();
    let mut ledger = common::fill(dir.path(), 3);
    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    ledger.append(4, common::daemon_stop()).unwrap();
    assert_eq!(reader.records().unwrap().count(), 3);
    assert_eq!(reader.head().unwrap().map(|(seq, _)| seq), Some(2));
}

#[test]
fn frequent_checkpoints_write_few_table_files() {
    // A flush at every checkpoint wrote a table file per column family each
    // time, and they were never merged.
    let dir = TempDir::new().unwrap();
    let key = SigningKey::from_seed("lupid.test/store", &[5; 32]).unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    for seq in 0..200 {
        ledger.append(seq, common::daemon_stop()).unwrap();
        ledger.checkpoint(&key).unwrap();
    }
    let table_files = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().extension().is_some_and(|extension| extension == "sst"))
        .count();
    assert!(table_files < 10, "{table_files} table files after 200 checkpoints");
    drop(ledger);
    assert!(verify(dir.path()).unwrap().is_intact());
}
