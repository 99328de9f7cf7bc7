//! Bundles: export, offline verification, and detection of a changed byte
//! in each bundle file.

mod common;

use std::{path::Path, process::Command};

use lupid_ledger::{
    Checkpoint, Ledger, LedgerReader, Record, SigningKey,
    bundle::{self, BundleBreak, BundleError, CHECKPOINTS_FILE, KEY_FILE, MANIFEST_FILE, RECORDS_FILE},
    checkpoint::split_notes,
};
use sha2::{Digest, Sha256};
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
    assert!(
        matches!(found, BundleBreak::Truncated { seq: 0, .. } | BundleBreak::Undecodable { seq: 0, .. }),
        "{found}"
    );
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

/// Rewrites the manifest of the bundle in `dir` to match its files as they
/// are now, as someone who edits a bundle would.
fn rewrite_manifest(dir: &Path) {
    let path = dir.join(MANIFEST_FILE);
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for name in [RECORDS_FILE, CHECKPOINTS_FILE, KEY_FILE] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        manifest["files"][name] =
            serde_json::json!({ "bytes": bytes.len(), "sha256": hex::encode(Sha256::digest(&bytes)) });
    }
    let notes = split_notes(&std::fs::read_to_string(dir.join(CHECKPOINTS_FILE)).unwrap());
    manifest["checkpoints"] = notes.len().into();
    std::fs::write(&path, format!("{manifest:#}\n")).unwrap();
}

/// Returns the tree sizes of the notes in the bundle in `dir`, in file order.
fn note_sizes(dir: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(dir.join(CHECKPOINTS_FILE)).unwrap();
    split_notes(&text).iter().map(|note| Checkpoint::parse_unverified(note).unwrap().tree_size).collect()
}

#[test]
fn bundle_dropped_note_is_a_break() {
    let tmp = setup();
    let dir = tmp.path().join("bundle");
    let sizes = note_sizes(&dir);
    assert_eq!(sizes.len(), 3);
    let text = std::fs::read_to_string(dir.join(CHECKPOINTS_FILE)).unwrap();
    let notes = split_notes(&text);

    // Drop the last note: its checkpoint record is still in the chain.
    std::fs::write(dir.join(CHECKPOINTS_FILE), notes[..2].join("\n")).unwrap();
    rewrite_manifest(&dir);
    let last = sizes[2];
    let expected = BundleBreak::NoteMissing { seq: last, tree_size: last };
    for key in [Some(key(1).verifier()), None] {
        let report = bundle::verify_bundle(&dir, key.as_ref()).unwrap();
        assert_eq!(report.first_break.as_ref(), Some(&expected), "key given: {}", key.is_some());
    }
    let message = expected.to_string();
    assert!(message.contains(&format!("record {last}")), "{message}");
    assert!(message.contains(&format!("tree size {last}")), "{message}");
    assert!(message.contains("no signed note"), "{message}");

    // Drop every note: the first checkpoint record is named.
    std::fs::write(dir.join(CHECKPOINTS_FILE), "").unwrap();
    rewrite_manifest(&dir);
    let first = sizes[0];
    for key in [Some(key(1).verifier()), None] {
        let report = bundle::verify_bundle(&dir, key.as_ref()).unwrap();
        assert_eq!(report.first_break, Some(BundleBreak::NoteMissing { seq: first, tree_size: first }));
    }

    let path = |name: &str| tmp.path().join(name).to_str().unwrap().to_owned();
    let output = cli(&["verify", "--bundle", &path("bundle")]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(String::from_utf8(output.stdout).unwrap().contains("no signed note"));
}

#[test]
fn bundle_copies_of_a_note_count_once() {
    let tmp = setup();
    let dir = tmp.path().join("bundle");
    let text = std::fs::read_to_string(dir.join(CHECKPOINTS_FILE)).unwrap();
    std::fs::write(dir.join(CHECKPOINTS_FILE), [text.as_str(); 50].join("\n")).unwrap();
    rewrite_manifest(&dir);
    let report = bundle::verify_bundle(&dir, Some(&key(1).verifier())).unwrap();
    assert_eq!(report.first_break, None);
    assert_eq!(report.checkpoints_checked, 3, "150 notes in the file, 3 distinct ones");
}

#[test]
fn bundle_conflicting_notes_break() {
    let tmp = setup();
    let dir = tmp.path().join("bundle");
    let size = note_sizes(&dir)[0];
    // A second note for the same tree size, signed with the same key, for
    // another root.
    let other = Checkpoint::sign(&key(1), size, &[7; 32]);
    let mut text = std::fs::read_to_string(dir.join(CHECKPOINTS_FILE)).unwrap();
    text.push('\n');
    text.push_str(&other.note);
    std::fs::write(dir.join(CHECKPOINTS_FILE), text).unwrap();
    rewrite_manifest(&dir);
    assert_eq!(first_break(&dir), Some(BundleBreak::ConflictingCheckpoints { tree_size: size, other: 0, index: 3 }));
}

#[test]
fn bundle_reports_gaps_as_verify_does() {
    let tmp = TempDir::new().unwrap();
    let ledger_dir = tmp.path().join("ledger");
    // The first four records of `every_kind` report no gap.
    let mut ledger = common::fill(&ledger_dir, 4);
    let daemon_gap = lupid_ledger::DaemonGap {
        from_ns: 1_000,
        to_ns: 2_000,
        first_kernel_seq: 7,
        next_kernel_seq: 9,
        kernel_drop_counter: 0,
        programs: "kept".into(),
    };
    for body in [common::events_lost(), lupid_ledger::RecordBody::DaemonGap(daemon_gap), common::events_lost()] {
        ledger.append(12, body).unwrap();
    }
    let signing = key(1);
    ledger.checkpoint(&signing).unwrap();
    drop(ledger);

    let verified = lupid_ledger::verify(&ledger_dir).unwrap();
    assert_eq!(verified.gaps.len(), 3, "{:?}", verified.gaps);
    let reader = LedgerReader::open_read_only(&ledger_dir).unwrap();
    let dir = tmp.path().join("bundle");
    bundle::export_bundle(&reader, &signing.verifier(), &dir).unwrap();
    let report = bundle::verify_bundle(&dir, Some(&signing.verifier())).unwrap();
    assert_eq!(report.first_break, None);
    assert_eq!(report.gaps, verified.gaps);

    let output = cli(&["verify", "--bundle", dir.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().filter(|line| line.starts_with("complete=false for interval")).collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[1].ends_with("no daemon was running, record 5"), "{stdout}");
}

#[test]
fn bundle_bad_key_file_checks_no_record() {
    let tmp = setup();
    let dir = tmp.path().join("bundle");
    // A regular key file that contains a secret instead of a key.
    std::fs::write(dir.join(KEY_FILE), "SECRET-PASSWORD=hunter2\n").unwrap();
    let report = bundle::verify_bundle(&dir, None).unwrap();
    assert!(!report.records_read);
    assert_eq!(report.records_checked, 0);
    let found = report.first_break.unwrap();
    assert!(matches!(found, BundleBreak::InvalidKey(_)), "{found}");
    let message = found.to_string();
    assert!(!message.contains("hunter2"), "the key file's content is printed: {message}");
    assert!(message.contains(KEY_FILE), "{message}");
    assert!(message.contains("no records were checked"), "{message}");

    let report = bundle::verify_bundle(&dir, Some(&key(1).verifier())).unwrap();
    assert!(report.records_read);
}

#[test]
fn bundle_export_does_not_follow_or_replace_files() {
    let tmp = setup();
    let reader = LedgerReader::open_read_only(&tmp.path().join("ledger")).unwrap();
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, "precious content\n").unwrap();

    for name in [RECORDS_FILE, MANIFEST_FILE] {
        let out = tmp.path().join(format!("out-{name}"));
        std::fs::create_dir(&out).unwrap();
        std::os::unix::fs::symlink(&victim, out.join(name)).unwrap();
        let error = bundle::export_bundle(&reader, &key(1).verifier(), &out).unwrap_err();
        assert!(matches!(&error, BundleError::Exists { path } if *path == out.join(name)), "{error}");
        assert!(error.to_string().contains("--out"), "{error}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious content\n");
        // Nothing but the link is left in the folder.
        let left: Vec<_> = std::fs::read_dir(&out).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        assert_eq!(left, [name], "{name}");
    }

    // A bundle already in the folder is not replaced either.
    let error = bundle::export_bundle(&reader, &key(1).verifier(), &tmp.path().join("bundle")).unwrap_err();
    assert!(matches!(error, BundleError::Exists { .. }), "{error}");
    assert_eq!(first_break(&tmp.path().join("bundle")), None);
}

/// Runs `verify_bundle` in a thread and fails when it does not return
/// within 20 seconds.
fn verify_with_timeout(dir: &Path) -> Result<bundle::BundleReport, BundleError> {
    let (send, receive) = std::sync::mpsc::channel();
    let dir = dir.to_owned();
    std::thread::spawn(move || {
        let _ = send.send(bundle::verify_bundle(&dir, Some(&key(1).verifier())));
    });
    receive.recv_timeout(std::time::Duration::from_secs(20)).expect("verify_bundle returns within 20 s")
}

#[test]
fn bundle_hostile_files_are_errors() {
    let tmp = setup();
    let dir = tmp.path().join("bundle");
    let copy = |name: &str| {
        let target = tmp.path().join(name);
        std::fs::create_dir(&target).unwrap();
        for file in [RECORDS_FILE, CHECKPOINTS_FILE, KEY_FILE, MANIFEST_FILE] {
            std::fs::copy(dir.join(file), target.join(file)).unwrap();
        }
        target
    };

    // records.bin as a link to an endless device.
    let zero = copy("zero");
    std::fs::remove_file(zero.join(RECORDS_FILE)).unwrap();
    std::os::unix::fs::symlink("/dev/zero", zero.join(RECORDS_FILE)).unwrap();
    let error = verify_with_timeout(&zero).unwrap_err();
    assert!(matches!(&error, BundleError::Symlink { path } if *path == zero.join(RECORDS_FILE)), "{error}");

    // checkpoints.txt as a FIFO that no one writes.
    let fifo = copy("fifo");
    std::fs::remove_file(fifo.join(CHECKPOINTS_FILE)).unwrap();
    nix::unistd::mkfifo(&fifo.join(CHECKPOINTS_FILE), nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR)
        .unwrap();
    let error = verify_with_timeout(&fifo).unwrap_err();
    assert!(matches!(error, BundleError::NotRegularFile { kind: "a FIFO", .. }), "{error}");
    assert!(error.to_string().contains(CHECKPOINTS_FILE), "{error}");

    // checkpoint.key.pub as a link to a private file.
    let leak = copy("leak");
    let secret = tmp.path().join("secret.txt");
    std::fs::write(&secret, "SECRET-PASSWORD=hunter2\n").unwrap();
    std::fs::remove_file(leak.join(KEY_FILE)).unwrap();
    std::os::unix::fs::symlink(&secret, leak.join(KEY_FILE)).unwrap();
    let error = bundle::verify_bundle(&leak, None).unwrap_err();
    assert!(matches!(error, BundleError::Symlink { .. }), "{error}");
    assert!(!format!("{error:#}").contains("hunter2"));

    // A folder in place of a file.
    let folder = copy("folder");
    std::fs::remove_file(folder.join(MANIFEST_FILE)).unwrap();
    std::fs::create_dir(folder.join(MANIFEST_FILE)).unwrap();
    let error = verify_with_timeout(&folder).unwrap_err();
    assert!(matches!(error, BundleError::NotRegularFile { kind: "a folder", .. }), "{error}");

    // A manifest over its size limit.
    let large = copy("large");
    std::fs::File::options()
        .write(true)
        .open(large.join(MANIFEST_FILE))
        .unwrap()
        .set_len(bundle::MAX_MANIFEST_BYTES + 1)
        .unwrap();
    let error = verify_with_timeout(&large).unwrap_err();
    assert!(matches!(error, BundleError::TooLarge { .. }), "{error}");

    // A record whose length is over the limit, in a sparse file large
    // enough to hold it.
    let record = copy("record");
    let mut bytes = (bundle::MAX_RECORD_BYTES + 1).to_be_bytes().to_vec();
    bytes.extend(std::fs::read(record.join(RECORDS_FILE)).unwrap());
    std::fs::write(record.join(RECORDS_FILE), bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(record.join(RECORDS_FILE))
        .unwrap()
        .set_len(u64::from(bundle::MAX_RECORD_BYTES) + 8)
        .unwrap();
    let report = verify_with_timeout(&record).unwrap();
    let expected = BundleBreak::RecordTooLarge { seq: 0, offset: 0, len: bundle::MAX_RECORD_BYTES + 1 };
    assert_eq!(report.first_break, Some(expected));

    let path = |dir: &Path| dir.to_str().unwrap().to_owned();
    let output = cli(&["verify", "--bundle", &path(&fifo)]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8(output.stderr).unwrap().contains("checkpoints.txt is a FIFO"));
}

#[test]
fn export_rejects_forged_stored_note() {
    let tmp = setup();
    let ledger_dir = tmp.path().join("ledger");
    let db = common::open_raw(&ledger_dir);
    let checkpoints = db.cf_handle("checkpoints").unwrap();
    let (size, note) = db.iterator_cf(checkpoints, rocksdb::IteratorMode::Start).next().unwrap().unwrap();
    let forged = format!("{}NOTE: verified by an auditor\n", String::from_utf8(note.to_vec()).unwrap());
    db.put_cf(checkpoints, &size, forged).unwrap();
    drop(db);

    let reader = LedgerReader::open_read_only(&ledger_dir).unwrap();
    let dir = tmp.path().join("forged-bundle");
    let error = bundle::export_bundle(&reader, &key(1).verifier(), &dir).unwrap_err();
    assert!(matches!(error, BundleError::InvalidStoredNote { tree_size: 20, .. }), "{error}");
    assert!(!dir.join(MANIFEST_FILE).exists(), "no bundle is left behind");
}

#[test]
fn bundle_without_signed_checkpoint_not_signed() {
    // A chain anyone could have written: no checkpoint ties it to the key.
    let tmp = TempDir::new().unwrap();
    let ledger_dir = tmp.path().join("ledger");
    drop(common::fill(&ledger_dir, 20));
    let signing = key(1);
    let reader = LedgerReader::open_read_only(&ledger_dir).unwrap();
    let dir = tmp.path().join("bundle");
    bundle::export_bundle(&reader, &signing.verifier(), &dir).unwrap();
    let key_file = tmp.path().join(KEY_FILE);
    std::fs::write(&key_file, format!("{}\n", signing.verifier())).unwrap();

    let output = cli(&["verify", "--bundle", dir.to_str().unwrap(), "--key", key_file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("NOT SIGNED: no signed checkpoint covers any record"), "{stdout}");
}

#[test]
fn bundle_names_unsigned_tail() {
    let tmp = setup();
    let path = |name: &str| tmp.path().join(name).to_str().unwrap().to_owned();
    let output = cli(&["export", "--format", "bundle", "--ledger", &path("ledger"), "--out", &path("tail-bundle")]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let output = cli(&["verify", "--bundle", &path("tail-bundle"), "--key", &path(KEY_FILE)]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    // The last checkpoint covers the 49 records before it, and not itself.
    assert!(
        stdout.contains(
            "signed: records 0..=48 are covered by the checkpoint of tree size 49; records 49..=49 are not covered by a signed checkpoint"
        ),
        "{stdout}"
    );
}

#[test]
fn bundle_notes_with_crlf_named() {
    let tmp = setup();
    let dir = tmp.path().join("bundle");
    let path = dir.join(CHECKPOINTS_FILE);
    let text = std::fs::read_to_string(&path).unwrap().replace('\n', "\r\n");
    std::fs::write(&path, text).unwrap();
    let report = bundle::verify_bundle(&dir, Some(&key(1).verifier())).unwrap();
    let found = report.first_break.expect("a break").to_string();
    assert!(!found.contains("manifest.json"), "the notes, not the manifest, are named: {found}");
    assert!(found.contains("checkpoints.txt"), "{found}");
}
