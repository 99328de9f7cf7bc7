//! Verification against signed checkpoints: each test changes the ledger or
//! the checkpoints the way an attacker with shell access could, and checks
//! that `audit` names the right record or checkpoint and reason.

mod common;

use std::{fs, path::Path};

use lupid_ledger::{
    AuditReport, BreakKind, CheckError, CheckpointBreakKind, CheckpointError, Ledger, LedgerReader, NoteError,
    SigningKey, audit,
    audit::Origin,
    checkpoint::{Checkpoint, split_notes},
    proof,
};
use tempfile::TempDir;

/// Records before the pinned checkpoint, which is record `BEFORE`.
const BEFORE: u64 = 300;
/// Records appended after the checkpoint record.
const AFTER: u64 = 120;

fn key() -> SigningKey {
    SigningKey::from_seed("lupid.local/test", &[7; 32]).unwrap()
}

fn other_key() -> SigningKey {
    SigningKey::from_seed("lupid.local/test", &[8; 32]).unwrap()
}

/// Appends `count` records like `common::fill` does, continuing its times.
fn append(ledger: &mut Ledger, count: u64) {
    let kinds = common::every_kind();
    let start = ledger.len();
    let bodies = (start..start + count)
        .map(|seq| (1_700_000_000_000_000_000 + seq, kinds[usize::try_from(seq).unwrap() % kinds.len()].clone()))
        .collect();
    ledger.append_batch(bodies).unwrap();
}

/// Builds a ledger of `BEFORE` records, a checkpoint, and `AFTER` more
/// records. Returns the folder and the checkpoint note to pin.
fn pinned_ledger() -> (TempDir, String) {
    let dir = TempDir::new().unwrap();
    let mut ledger = common::fill(dir.path(), BEFORE);
    let checkpoint = ledger.checkpoint(&key()).unwrap();
    append(&mut ledger, AFTER);
    (dir, checkpoint.note)
}

fn audit_pinned(dir: &Path, pinned: &[String]) -> AuditReport {
    audit(dir, Some(&key().verifier()), pinned).unwrap()
}

fn checkpoint_break(report: &AuditReport) -> (Origin, CheckpointBreakKind) {
    let found = report.first_checkpoint_break.clone().expect("audit must find a checkpoint break");
    (found.origin, found.kind)
}

#[test]
fn intact_ledger_extends_pin() {
    let (dir, pinned) = pinned_ledger();
    let report = audit_pinned(dir.path(), &[pinned]);
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.stored_checked, 1);
    assert_eq!(report.pinned_checked, 1);
    assert_eq!(report.chain.unwrap().records_checked, BEFORE + 1 + AFTER);
}

#[test]
fn checkpoint_record_in_chain() {
    let (dir, _) = pinned_ledger();
    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let record = reader.records().unwrap().nth(usize::try_from(BEFORE).unwrap()).unwrap().unwrap().record;
    let lupid_ledger::RecordBody::Checkpoint(body) = record.body else { panic!("record {BEFORE} is {record:?}") };
    assert_eq!(body.tree_size, BEFORE);
    assert_eq!(body.root_hash, reader.tree_root(BEFORE).unwrap());
}

#[test]
fn flipped_byte_names_record() {
    let (dir, pinned) = pinned_ledger();
    let db = common::open_raw(dir.path());
    let mut value = common::raw_get(&db, 100);
    let last = value.len() - 1;
    value[last] ^= 0x01;
    common::raw_put(&db, 100, &value);
    drop(db);

    let found = audit_pinned(dir.path(), &[pinned]).chain.unwrap().first_break.unwrap();
    assert_eq!(found.seq, 101);
    assert_eq!(found.kind, BreakKind::PrevHashMismatch);
}

#[test]
fn deleted_record_names_record() {
    let (dir, pinned) = pinned_ledger();
    let db = common::open_raw(dir.path());
    common::raw_delete(&db, 40);
    drop(db);

    let found = audit_pinned(dir.path(), &[pinned]).chain.unwrap().first_break.unwrap();
    assert_eq!(found.seq, 40);
    assert_eq!(found.kind, BreakKind::Missing { next: 41 });
}

#[test]
fn reordered_records_named() {
    let (dir, pinned) = pinned_ledger();
    let db = common::open_raw(dir.path());
    let (ten, eleven) = (common::raw_get(&db, 10), common::raw_get(&db, 11));
    common::raw_put(&db, 10, &eleven);
    common::raw_put(&db, 11, &ten);
    drop(db);

    let found = audit_pinned(dir.path(), &[pinned]).chain.unwrap().first_break.unwrap();
    assert_eq!(found.seq, 10);
    assert_eq!(found.kind, BreakKind::KeyMismatch { stored: 11 });
}

#[test]
fn changed_tree_node_named() {
    let (dir, pinned) = pinned_ledger();
    let db = common::open_raw(dir.path());
    let tree = db.cf_handle("tree").unwrap();
    // Node (level 2, index 3) covers records 12..16.
    db.put_cf(tree, [2, 0, 0, 0, 0, 0, 0, 0, 3], [0; 32]).unwrap();
    drop(db);

    let found = audit_pinned(dir.path(), &[pinned]).chain.unwrap().first_break.unwrap();
    assert_eq!(found.seq, 15);
    assert_eq!(found.kind, BreakKind::TreeNodeMismatch { level: 2, index: 3 });
    assert_eq!(
        found.to_string(),
        "record 15: Merkle tree node at level 2, index 3 does not match the records it covers"
    );
}

#[test]
fn cut_tail_beyond_ledger() {
    let (dir, pinned) = pinned_ledger();
    // The attacker replaces the store with its first 200 records, every
    // hash and node recomputed: the copy is internally intact.
    fs::remove_dir_all(dir.path()).unwrap();
    drop(common::fill(dir.path(), 200));

    let report = audit_pinned(dir.path(), &[pinned]);
    assert!(report.chain.as_ref().unwrap().is_intact());
    let (origin, kind) = checkpoint_break(&report);
    assert_eq!(origin, Origin::Pinned { position: 0 });
    assert_eq!(kind, CheckpointBreakKind::BeyondLedger { records: 200 });
}

#[test]
fn deleted_store_missing() {
    let (dir, pinned) = pinned_ledger();
    fs::remove_dir_all(dir.path()).unwrap();
    let report = audit_pinned(dir.path(), &[pinned]);
    let found = report.first_checkpoint_break.unwrap();
    assert_eq!(found.kind, CheckpointBreakKind::LedgerMissing);
    assert_eq!(found.tree_size, Some(BEFORE));
}

#[test]
fn deleted_store_recreated_empty() {
    let (dir, pinned) = pinned_ledger();
    fs::remove_dir_all(dir.path()).unwrap();
    drop(Ledger::open(dir.path()).unwrap());
    let (_, kind) = checkpoint_break(&audit_pinned(dir.path(), &[pinned]));
    assert_eq!(kind, CheckpointBreakKind::BeyondLedger { records: 0 });
}

#[test]
fn rechained_history_root_mismatch() {
    let (dir, pinned) = pinned_ledger();
    // The attacker rewrites record 5 and rebuilds the whole chain and tree
    // with valid hashes, but cannot sign with the ledger's key.
    fs::remove_dir_all(dir.path()).unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    append(&mut ledger, 5);
    ledger.append(1, common::daemon_stop()).unwrap();
    append(&mut ledger, BEFORE + AFTER);
    drop(ledger);

    let report = audit_pinned(dir.path(), &[pinned]);
    assert!(report.chain.as_ref().unwrap().is_intact());
    let (origin, kind) = checkpoint_break(&report);
    assert_eq!(origin, Origin::Pinned { position: 0 });
    assert!(matches!(kind, CheckpointBreakKind::RootMismatch { .. }), "{kind:?}");
}

#[test]
fn rechained_with_own_key_rejected() {
    let (dir, pinned) = pinned_ledger();
    fs::remove_dir_all(dir.path()).unwrap();
    let mut ledger = common::fill(dir.path(), 10);
    ledger.checkpoint(&other_key()).unwrap();
    drop(ledger);

    let found = audit_pinned(dir.path(), &[pinned]).first_checkpoint_break.unwrap();
    assert_eq!(found.origin, Origin::Stored { key: 10 });
    assert!(
        matches!(found.kind, CheckpointBreakKind::Invalid(CheckpointError::Note(NoteError::UnknownKey { .. }))),
        "{found}"
    );
}

#[test]
fn pinned_signed_by_other_key() {
    let (dir, _) = pinned_ledger();
    let root = LedgerReader::open_read_only(dir.path()).unwrap().tree_root(BEFORE).unwrap();
    let forged = Checkpoint::sign(&other_key(), BEFORE, &root).note;

    let found = audit_pinned(dir.path(), &[forged]).first_checkpoint_break.unwrap();
    assert_eq!(found.origin, Origin::Pinned { position: 0 });
    assert!(
        matches!(found.kind, CheckpointBreakKind::Invalid(CheckpointError::Note(NoteError::UnknownKey { .. }))),
        "{found}"
    );
    assert!(found.to_string().contains("has no signature from key lupid.local/test+"), "{found}");
}

#[test]
fn disagreeing_checkpoints_detected() {
    let (dir, pinned) = pinned_ledger();
    // A second note of the same size and key with another root: the key
    // signed two histories.
    let split_view = Checkpoint::sign(&key(), BEFORE, &[0x55; 32]).note;

    let found = audit_pinned(dir.path(), &[pinned, split_view]).first_checkpoint_break.unwrap();
    assert_eq!(found.origin, Origin::Pinned { position: 1 });
    assert_eq!(found.kind, CheckpointBreakKind::Disagrees { other: Origin::Stored { key: BEFORE } });
}

#[test]
fn deleted_checkpoint_note_detected() {
    let (dir, pinned) = pinned_ledger();
    let db = common::open_raw(dir.path());
    let checkpoints = db.cf_handle("checkpoints").unwrap();
    db.delete_cf(checkpoints, BEFORE.to_be_bytes()).unwrap();
    drop(db);

    let (origin, kind) = checkpoint_break(&audit_pinned(dir.path(), &[pinned]));
    assert_eq!(origin, Origin::Stored { key: BEFORE });
    assert_eq!(kind, CheckpointBreakKind::NoteMissing);
}

#[test]
fn checkpoints_reopen_and_extend() {
    let dir = TempDir::new().unwrap();
    let mut ledger = common::fill(dir.path(), 37);
    let first = ledger.checkpoint(&key()).unwrap();
    drop(ledger);

    let mut ledger = Ledger::open(dir.path()).unwrap();
    append(&mut ledger, 64);
    let second = ledger.checkpoint(&key()).unwrap();
    assert_eq!(second.tree_size, 37 + 1 + 64);
    assert_eq!(ledger.tree_head().0, second.tree_size + 1);
    drop(ledger);

    let report = audit_pinned(dir.path(), &[first.note, second.note.clone()]);
    assert!(report.is_intact(), "{report:?}");
    let latest = LedgerReader::open_read_only(dir.path()).unwrap().latest_checkpoint().unwrap().unwrap();
    assert_eq!(latest.note, second.note);
}

#[test]
fn sink_file_collects_notes() {
    let dir = TempDir::new().unwrap();
    let pins = TempDir::new().unwrap();
    let sink = pins.path().join("pinned");
    let mut ledger = common::fill(dir.path(), 5);
    ledger.set_checkpoint_sink(Some(sink.clone()));
    let first = ledger.checkpoint(&key()).unwrap();
    append(&mut ledger, 3);
    let second = ledger.checkpoint(&key()).unwrap();
    drop(ledger);

    let notes = split_notes(&fs::read_to_string(&sink).unwrap());
    assert_eq!(notes, [first.note, second.note]);
    assert!(audit_pinned(dir.path(), &notes).is_intact());
}

#[test]
fn sink_folder_one_file_each() {
    let dir = TempDir::new().unwrap();
    let pins = TempDir::new().unwrap();
    let mut ledger = common::fill(dir.path(), 5);
    ledger.set_checkpoint_sink(Some(pins.path().to_owned()));
    let checkpoint = ledger.checkpoint(&key()).unwrap();
    let stored = fs::read_to_string(pins.path().join("checkpoint-5")).unwrap();
    assert_eq!(stored, checkpoint.note);
}

#[test]
fn old_ledger_tree_rebuilt() {
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), 300));
    // A ledger written before the tree existed has no nodes. The first one
    // that the tree stores covers records 0..256.
    let db = common::open_raw(dir.path());
    let tree = db.cf_handle("tree").unwrap();
    db.delete_range_cf(tree, [0_u8; 9], [0xff_u8; 9]).unwrap();
    drop(db);
    assert!(matches!(
        lupid_ledger::verify(dir.path()).unwrap().first_break.unwrap().kind,
        BreakKind::TreeNodeMissing { level: 8, index: 0 }
    ));

    let mut ledger = Ledger::open(dir.path()).unwrap();
    ledger.checkpoint(&key()).unwrap();
    drop(ledger);
    assert!(audit_pinned(dir.path(), &[]).is_intact());
}

#[test]
fn proof_checks_offline() {
    let (dir, pinned) = pinned_ledger();
    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let verifier = key().verifier();
    for seq in [0, 1, 150, BEFORE - 1] {
        let built = proof::prove(&reader, seq, None).unwrap();
        assert_eq!(built.checkpoint, pinned);
        let json = serde_json::to_string(&built).unwrap();
        let (record, checkpoint) = proof::check(&json, &verifier).unwrap();
        assert_eq!(record.seq, seq);
        assert_eq!(checkpoint.tree_size, BEFORE);
    }
}

#[test]
fn proof_tampering_rejected() {
    let (dir, _) = pinned_ledger();
    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let built = proof::prove(&reader, 42, None).unwrap();

    let mut other_record = built.clone();
    other_record.record = proof::prove(&reader, 43, None).unwrap().record;
    let json = serde_json::to_string(&other_record).unwrap();
    assert!(matches!(proof::check(&json, &key().verifier()), Err(CheckError::SeqMismatch { seq: 43, leaf_index: 42 })));

    let mut other_path = built.clone();
    other_path.audit_path.swap(0, 1);
    let json = serde_json::to_string(&other_path).unwrap();
    assert!(matches!(proof::check(&json, &key().verifier()), Err(CheckError::Path(_))));

    let json = serde_json::to_string(&built).unwrap();
    assert!(matches!(proof::check(&json, &other_key().verifier()), Err(CheckError::Checkpoint(_))));
}

#[test]
fn proof_record_after_checkpoint() {
    let (dir, _) = pinned_ledger();
    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let error = proof::prove(&reader, BEFORE, None).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "ledger {} has no checkpoint that covers record {BEFORE} yet: the daemon signs one at every checkpoint interval, and `sudo lupid-agent checkpoint` signs one now",
            dir.path().display()
        )
    );
    let records = reader.head().unwrap().unwrap().0 + 1;
    let error = proof::prove(&reader, records, None).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("record {records} does not exist: the ledger has {records} records, numbered from 0")
    );
}

#[test]
fn stored_note_trailing_line_invalid() {
    let (dir, pinned) = pinned_ledger();
    let db = common::open_raw(dir.path());
    let checkpoints = db.cf_handle("checkpoints").unwrap();
    let forged = format!("{pinned}NOTE: tree size 999999 verified by auditor\n");
    db.put_cf(checkpoints, BEFORE.to_be_bytes(), forged).unwrap();
    drop(db);

    let (origin, kind) = checkpoint_break(&audit_pinned(dir.path(), &[]));
    assert_eq!(origin, Origin::Stored { key: BEFORE });
    let CheckpointBreakKind::Invalid(CheckpointError::Note(error)) = kind else { panic!("{kind:?}") };
    assert!(matches!(error, NoteError::InvalidSignatureLine { line: 6, .. }), "{error:?}");
}

#[test]
fn deleted_note_detected_without_key() {
    let (dir, _) = pinned_ledger();
    let db = common::open_raw(dir.path());
    let checkpoints = db.cf_handle("checkpoints").unwrap();
    db.delete_cf(checkpoints, BEFORE.to_be_bytes()).unwrap();
    drop(db);

    let report = audit(dir.path(), None, &[]).unwrap();
    let (origin, kind) = checkpoint_break(&report);
    assert_eq!(origin, Origin::Stored { key: BEFORE });
    assert_eq!(kind, CheckpointBreakKind::NoteMissing);
}

#[test]
fn invalid_checkpoints_key_named() {
    let (dir, _) = pinned_ledger();
    let db = common::open_raw(dir.path());
    let checkpoints = db.cf_handle("checkpoints").unwrap();
    db.put_cf(checkpoints, b"abc", b"hi").unwrap();
    drop(db);

    let report = audit_pinned(dir.path(), &[]);
    let found = report.first_checkpoint_break.clone().expect("audit must find a checkpoint break");
    assert_eq!(found.origin, Origin::StoredUnderInvalidKey { key: b"abc".to_vec() });
    assert_eq!(found.kind, CheckpointBreakKind::InvalidKey);
    let message = found.to_string();
    assert!(message.starts_with("entry under key 616263 in the `checkpoints` column family: "), "{message}");
    assert!(!message.contains("record key"), "{message}");

    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let error = lupid_ledger::audit::latest_stored_checkpoint(&reader, None).unwrap_err().to_string();
    assert!(error.contains("key 616263 in the `checkpoints` column family"), "{error}");
    let error = proof::prove(&reader, 1, None).unwrap_err().to_string();
    assert!(error.contains("key 616263 in the `checkpoints` column family"), "{error}");
}

#[test]
fn repeated_pins_checked_once() {
    let (dir, pinned) = pinned_ledger();
    let copies = vec![pinned; 5_000];
    let report = audit_pinned(dir.path(), &copies);
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.pinned_checked, 5_000);
    assert_eq!(report.distinct_checkpoints, 1);
}

#[test]
fn repeated_pins_disagreement_detected() {
    let (dir, pinned) = pinned_ledger();
    let forged = Checkpoint::sign(&key(), BEFORE, &[0xab; 32]).note;
    let mut pins = vec![pinned.clone(); 3];
    pins.push(forged);
    pins.push(pinned);
    let (origin, kind) = checkpoint_break(&audit_pinned(dir.path(), &pins));
    assert_eq!(origin, Origin::Pinned { position: 3 });
    assert_eq!(kind, CheckpointBreakKind::Disagrees { other: Origin::Stored { key: BEFORE } });
}

#[test]
fn signed_tree_size_reported() {
    let (dir, pinned) = pinned_ledger();
    assert_eq!(audit_pinned(dir.path(), &[pinned]).signed_tree_size, Some(BEFORE));
    assert_eq!(audit(dir.path(), None, &[]).unwrap().signed_tree_size, None);
}

#[test]
fn prove_rejects_damaged_record() {
    let (dir, _) = pinned_ledger();
    let db = common::open_raw(dir.path());
    let mut value = common::raw_get(&db, 7);
    let last = value.len() - 1;
    value[last] ^= 1;
    db.put_cf(db.cf_handle("records").unwrap(), 7u64.to_be_bytes(), value).unwrap();
    drop(db);

    // The checkpoint's root comes from the stored node over records
    // 0..256, which still matches, but the record no longer does.
    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let error = proof::prove(&reader, 7, None).unwrap_err();
    assert!(matches!(error, lupid_ledger::ProveError::TreeMismatch { seq: 7, tree_size: BEFORE, .. }), "{error:?}");
    assert!(error.to_string().contains("run `lupid-ledger verify`"), "{error}");
}
