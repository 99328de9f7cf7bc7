//! Bundles: export, offline verification, and detection of a changed byte
//! in each bundle file.

mod common;

use std::{path::Path, process::Command};

use lupid_ledger::{
    Ledger, LedgerReader, Record, SigningKey,
    bundle::{self, BundleBreak, CHECKPOINTS_FILE, KEY_FILE, MANIFEST_FILE, RECORDS_FILE},
};
use tempfile::TempDir;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed("lupid.test/bundle", &[seed; 32]).unwrap()
}

/// Creates `<tmp>/ledger` with 50 records and three checkpoints, the
/// verifier key at `<tmp>/checkpoint.key.pub`, and the bundle in
/// `<tmp>/bundle`.
fn setup() -> TempDir {
    let tmp = TempDir::new().unwrap();
    let ledger_dir = tmp.path().join("ledger");
    let mut ledger = common::fill(&ledger_dir, 20);
    let signing = key(1);
    ledger.checkpoint(&signing).unwrap();
    for body in common::every_kind().into_iter().cycle().take(20) {
        ledger.append(9, body).unwrap();
    }
    ledger.checkpoint(&signing).unwrap();
    for body in common::every_kind().into_iter().take(7) {
        ledger.append(10, body).unwrap();
    }
    ledger.checkpoint(&signing).unwrap();
    drop(ledger);
    std::fs::write(tmp.path().join(KEY_FILE), format!("{}\n", signing.verifier())).unwrap();

    let reader = LedgerReader::open_read_only(&ledger_dir).unwrap();
    let summary = bundle::export_bundle(&reader, &signing.verifier(), &tmp.path().join("bundle")).unwrap();
    assert_eq!(summary.records, 50);
    assert_eq!(summary.checkpoints, 3);
    tmp
}

fn flip_byte(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

fn first_break(dir: &Path) -> Option<BundleBreak> {
    bundle::verify_bundle(dir, Some(&key(1).verifier())).unwrap().first_break
}

#[test]
fn bundle_round_trip_verifies() {
    let tmp = setup();
    let report = bundle::verify_bundle(&tmp.path().join("bundle"), Some(&key(1).verifier())).unwrap();
    assert_eq!(report.first_break, None);
    assert_eq!(report.records_checked, 50);
    assert_eq!(report.checkpoints_checked, 3);
    assert!(!report.key_from_bundle);

    let own_key = bundle::verify_bundle(&tmp.path().join("bundle"), None).unwrap();
    assert_eq!(own_key.first_break, None);
    assert!(own_key.key_from_bundle);
}

#[test]
fn bundle_flipped_record_named() {
    let tmp = setup();
    let records = tmp.path().join("bundle").join(RECORDS_FILE);
    // File byte 16 is byte 12 of record 0, inside its time field.
    flip_byte(&records, 4 + 12);
    let found = first_break(&tmp.path().join("bundle"));
    assert_eq!(found, Some(BundleBreak::PrevHashMismatch { seq: 1 }));
    assert!(found.unwrap().to_string().contains("hash of record 0"));
}

#[test]
fn bundle_flipped_last_record_named() {
    let tmp = setup();
    let records = tmp.path().join("bundle").join(RECORDS_FILE);
    let len = std::fs::metadata(&records).unwrap().len();
    // The last record is a checkpoint record: its last byte is in the root
    // hash, so the record no longer matches the tree before it.
    flip_byte(&records, usize::try_from(len).unwrap() - 1);
    assert_eq!(first_break(&tmp.path().join("bundle")), Some(BundleBreak::CheckpointRecordMismatch { seq: 49 }));
}

#[test]
fn bundle_flipped_length_named() {
    let tmp = setup();
    let records = tmp.path().join("bundle").join(RECORDS_FILE);
    flip_byte(&records, 0);
    let found = first_break(&tmp.path().join("bundle")).unwrap();
    assert!(matches!(found, BundleBreak::Truncated { seq: 0, .. } | BundleBreak::Undecodable { seq: 0, .. }), "{found}");
}

#[test]
fn bundle_flipped_checkpoint_named() {
    let tmp = setup();
    let notes = tmp.path().join("bundle").join(CHECKPOINTS_FILE);
    // The tree size line of the first note follows the origin line.
    let text = std::fs::read_to_string(&notes).unwrap();
    let offset = text.find('\n').unwrap() + 1;
    flip_byte(&notes, offset);
    let found = first_break(&tmp.path().join("bundle")).unwrap();
    assert!(matches!(found, BundleBreak::InvalidCheckpoint { index: 0, .. }), "{found}");
    assert!(found.to_string().contains(CHECKPOINTS_FILE));
}

#[test]
fn bundle_flipped_manifest_named() {
    let tmp = setup();
    let manifest = tmp.path().join("bundle").join(MANIFEST_FILE);
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    // Change the first hex digit of the records file's SHA-256 to another
    // hex digit.
    let entry = text.find(&format!("\"{RECORDS_FILE}\"")).unwrap();
    let digit = entry + text[entry..].find("\"sha256\": \"").unwrap() + "\"sha256\": \"".len();
    let replacement = if &text[digit..=digit] == "0" { "1" } else { "0" };
    text.replace_range(digit..=digit, replacement);
    std::fs::write(&manifest, &text).unwrap();
    let found = first_break(&tmp.path().join("bundle")).unwrap();
    assert_eq!(found, BundleBreak::FileMismatch { file: RECORDS_FILE });

    flip_byte(&manifest, 0);
    let found = first_break(&tmp.path().join("bundle")).unwrap();
    assert!(matches!(found, BundleBreak::InvalidManifest(_)), "{found}");
}

#[test]
fn bundle_flipped_key_file_named() {
    let tmp = setup();
    let key_file = tmp.path().join("bundle").join(KEY_FILE);
    flip_byte(&key_file, 2);
    assert_eq!(first_break(&tmp.path().join("bundle")), Some(BundleBreak::FileMismatch { file: KEY_FILE }));
}

#[test]
fn bundle_wrong_key_rejected() {
    let tmp = setup();
    let report = bundle::verify_bundle(&tmp.path().join("bundle"), Some(&key(2).verifier())).unwrap();
    assert!(matches!(report.first_break, Some(BundleBreak::InvalidCheckpoint { index: 0, .. })));
}

#[test]
fn bundle_carries_lease_kinds() {
    let tmp = TempDir::new().unwrap();
    let ledger_dir = tmp.path().join("ledger");
    let mut ledger = Ledger::open(&ledger_dir).unwrap();
    for body in [common::every_kind(), common::lease_kinds()].concat() {
        ledger.append(11, body).unwrap();
    }
    let signing = key(1);
    ledger.checkpoint(&signing).unwrap();
    drop(ledger);

    let reader = LedgerReader::open_read_only(&ledger_dir).unwrap();
    let expected: Vec<Record> = reader.records().unwrap().map(|stored| stored.unwrap().record).collect();
    let dir = tmp.path().join("bundle");
    let summary = bundle::export_bundle(&reader, &signing.verifier(), &dir).unwrap();
    assert_eq!(summary.records, 14);
    let report = bundle::verify_bundle(&dir, Some(&signing.verifier())).unwrap();
    assert_eq!(report.first_break, None);
    assert_eq!(report.records_checked, 14);

    // records.bin is each record's canonical bytes behind a u32 length.
    let bytes = std::fs::read(dir.join(RECORDS_FILE)).unwrap();
    let mut offset = 0;
    let mut found = Vec::new();
    while offset < bytes.len() {
        let len = u32::from_be_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        found.push(Record::decode(&bytes[offset + 4..offset + 4 + len]).unwrap());
        offset += 4 + len;
    }
    assert_eq!(found, expected);
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lupid-ledger")).args(args).output().expect("run lupid-ledger")
}

#[test]
fn bundle_cli_exit_codes() {
    let tmp = setup();
    let path = |name: &str| tmp.path().join(name).to_str().unwrap().to_owned();

    // The key defaults to checkpoint.key.pub beside the ledger directory.
    let output = cli(&["export", "--format", "bundle", "--ledger", &path("ledger"), "--out", &path("cli-bundle")]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let output = cli(&["verify", "--bundle", &path("cli-bundle"), "--key", &path(KEY_FILE)]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(String::from_utf8(output.stdout).unwrap().contains("OK: 50 records verified"));

    flip_byte(&tmp.path().join("cli-bundle").join(RECORDS_FILE), 4 + 12);
    let output = cli(&["verify", "--bundle", &path("cli-bundle"), "--key", &path(KEY_FILE)]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(String::from_utf8(output.stdout).unwrap().contains("BROKEN: records.bin: record 1"));

    let output = cli(&["verify", "--bundle", &path("missing")]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");

    std::fs::remove_file(tmp.path().join(KEY_FILE)).unwrap();
    let output = cli(&["export", "--format", "bundle", "--ledger", &path("ledger"), "--out", &path("no-key")]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8(output.stderr).unwrap().contains("--key"));

    let output = cli(&["export", "--format", "bundle", "--ledger", &path("ledger")]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8(output.stderr).unwrap().contains("--out"));

    let output = cli(&["export", "--format", "jsonl", "--ledger", &path("ledger"), "--out", &path("unused")]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8(output.stderr).unwrap().contains("--out is only valid with --format bundle"));
}

#[test]
fn bundle_and_verify_every_format_version() {
    let tmp = TempDir::new().unwrap();
    let ledger_dir = tmp.path().join("ledger");
    let mut ledger = Ledger::open(&ledger_dir).unwrap();
    let decisions = [
        common::open_decision(),
        common::lease_decision(),
        common::io_uring_send_decision(),
        common::kill_decision(),
        common::requested_open_decision(),
        common::rename_decision(),
        common::link_decision(),
    ];
    for body in decisions {
        ledger.append(11, body).unwrap();
    }
    let signing = key(1);
    ledger.checkpoint(&signing).unwrap();
    drop(ledger);

    let report = lupid_ledger::verify(&ledger_dir).unwrap();
    assert_eq!(report.first_break, None);
    assert_eq!(report.records_checked, 8, "seven decisions and the checkpoint");

    let reader = LedgerReader::open_read_only(&ledger_dir).unwrap();
    let versions: Vec<u8> = (0..7).map(|seq| reader.raw_record(seq).unwrap().unwrap()[0]).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 6]);
    let bundle_dir = tmp.path().join("bundle");
    bundle::export_bundle(&reader, &signing.verifier(), &bundle_dir).unwrap();
    let bundled = bundle::verify_bundle(&bundle_dir, Some(&signing.verifier())).unwrap();
    assert_eq!(bundled.first_break, None);
    assert_eq!(bundled.records_checked, 8);
}
