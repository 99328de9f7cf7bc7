//! Crash safety: a writer killed with SIGKILL loses no acknowledged record
//! and leaves no partial part of a batch, and a damaged database makes
//! `Ledger::open` or `verify` return an error that names the problem. A
//! batch of up to [`PART_RECORDS`] records survives whole or not at all,
//! and a larger one as a prefix of whole parts.
//!
//! The writer is this test binary run again with [`CHILD_DIR_ENV`] set, so
//! that [`child_appender`] appends batches to that ledger and prints the last
//! `seq` of each batch after `append_batch` returns.
//!
//! NOTE: SIGKILL ends the process but not the kernel, so data in the page
//! cache survives. These tests check RocksDB's write-ahead log recovery and
//! the atomicity of a batch. They do not show that `sync = true` survives a
//! power loss.

mod common;

use std::{
    hash::{BuildHasher, RandomState},
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use lupid_ledger::{HeadProblem, Ledger, LedgerError, LedgerReader, PART_RECORDS, RECORDS_CF, RecordBody, verify};
use tempfile::TempDir;

/// Set in the child process to the ledger directory it appends to.
const CHILD_DIR_ENV: &str = "LUPID_CRASH_CHILD_DIR";

/// Prefix of the child's output line for each acknowledged batch.
const ACKED: &str = "acked ";

/// Kill rounds on one ledger. Each round restarts the writer on the ledger
/// that the previous kill left behind.
const ROUNDS: usize = 6;

/// Maximum wait after the child's first acknowledged batch before the kill.
const MAX_KILL_DELAY_MS: u64 = 300;

/// Returns the length of the batch that starts at `first`. Both processes
/// compute it, so the parent can tell where each batch ends. About one
/// batch in eight has more than [`PART_RECORDS`] records, so that the
/// ledger writes it in parts.
fn batch_len(first: u64) -> u64 {
    let mixed = first.wrapping_mul(2_654_435_761);
    if mixed.is_multiple_of(8) { PART + 1 + mixed % 2000 } else { 1 + mixed % 200 }
}

/// [`PART_RECORDS`] as a record count.
const PART: u64 = PART_RECORDS as u64;

/// Returns a decision whose `kernel_seq` is `seq`, so a record read back can
/// be matched with the one appended at that position.
fn numbered(seq: u64) -> RecordBody {
    let RecordBody::Decision(mut decision) = common::open_decision() else {
        unreachable!("open_decision returns a decision");
    };
    decision.kernel_seq = seq;
    RecordBody::Decision(decision)
}

/// Set in the child process when it appends unsynced and syncs on a
/// second thread ([`Ledger::append_batch_unsynced`], [`lupid_ledger::WalSync`]).
const CHILD_PIPELINED_ENV: &str = "LUPID_CRASH_CHILD_PIPELINED";

/// Batches that the pipelined child may write ahead of its syncs.
const PIPELINED_AHEAD: usize = 2;

/// Appends batches until killed when [`CHILD_DIR_ENV`] is set; otherwise
/// does nothing, so a normal test run passes it.
#[test]
fn child_appender() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let mut ledger = Ledger::open(Path::new(&dir)).expect("child: open ledger");
    if std::env::var_os(CHILD_PIPELINED_ENV).is_some() {
        append_pipelined(ledger);
    }
    loop {
        let first = ledger.len();
        let bodies = (first..first + batch_len(first)).map(|seq| (seq, numbered(seq))).collect();
        let appended = ledger.append_batch(bodies).expect("child: append batch");
        let last = appended.last().expect("batches are not empty").seq;
        // `println!` flushes at the newline, so the parent receives the line
        // as soon as the batch is acknowledged.
        println!("{ACKED}{last}");
    }
}

/// Appends without syncing on this thread, while a second thread syncs and
/// prints the last `seq` that each sync made durable (the pipelined child).
fn append_pipelined(mut ledger: Ledger) -> ! {
    let syncer = ledger.wal_sync();
    let (written, to_sync) = mpsc::sync_channel::<u64>(PIPELINED_AHEAD);
    thread::spawn(move || {
        while let Ok(last) = to_sync.recv() {
            let last = to_sync.try_iter().fold(last, u64::max);
            syncer.sync().expect("child: sync");
            println!("{ACKED}{last}");
        }
    });
    loop {
        let first = ledger.len();
        let bodies = (first..first + batch_len(first)).map(|seq| (seq, numbered(seq))).collect();
        let appended = ledger.append_batch_unsynced(bodies).expect("child: append batch");
        written.send(appended.last().expect("batches are not empty").seq).expect("child: sync thread");
    }
}

/// Returns a random number below `bound`, seeded by the standard library's
/// per-process random hasher keys.
fn random_below(bound: u64) -> u64 {
    RandomState::new().hash_one(0_u8) % bound
}

/// Runs the child on `dir`, kills it with SIGKILL at a random moment after
/// its first acknowledged batch, and returns the last acknowledged `seq`.
fn run_and_kill(dir: &Path, pipelined: bool) -> u64 {
    let mut child = Command::new(std::env::current_exe().expect("path of this test binary"))
        .args(["child_appender", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .envs(pipelined.then_some((CHILD_PIPELINED_ENV, "1")))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child writer");

    let stdout = child.stdout.take().expect("child stdout is piped");
    let (sender, receiver) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(seq) = line.strip_prefix(ACKED) {
                let seq: u64 = seq.parse().expect("child prints a number after `acked`");
                if sender.send(seq).is_err() {
                    break;
                }
            }
        }
    });

    let first_ack = receiver.recv_timeout(Duration::from_mins(1));
    if first_ack.is_ok() {
        thread::sleep(Duration::from_millis(random_below(MAX_KILL_DELAY_MS)));
    }
    child.kill().expect("send SIGKILL to the child");
    child.wait().expect("wait for the child");
    reader.join().expect("stdout reader thread");

    let first_ack = first_ack.expect("child acknowledged no batch within a minute");
    receiver.try_iter().fold(first_ack, u64::max)
}

/// Returns the record counts that a kill after acknowledging `last_acked`
/// can leave: the end of that batch, or of one of the `later` batches after
/// it, which were acknowledged but not yet printed, or in the write-ahead
/// log when the child died, or the end of a part of one of them.
fn possible_counts(last_acked: u64, later: usize) -> Vec<u64> {
    let mut counts = vec![last_acked + 1];
    let mut end = last_acked + 1;
    for _ in 0..later {
        let len = batch_len(end);
        counts.extend((1..).map(|part| end + part * PART).take_while(|count| *count < end + len));
        end += len;
        counts.push(end);
    }
    counts
}

/// Checks that every stored record is the numbered decision appended at its
/// position.
fn assert_records_numbered(dir: &Path, count: u64) {
    let reader = LedgerReader::open_read_only(dir).expect("open reader");
    let mut seen = 0;
    for stored in reader.records().expect("iterate records") {
        let stored = stored.expect("read record");
        assert_eq!(stored.record.seq, seen, "records are dense");
        assert_eq!(stored.record.body, numbered(seen), "record {seen} contains what was appended there");
        seen += 1;
    }
    assert_eq!(seen, count, "reader sees every verified record");
}

#[test]
fn kill_during_appends() {
    // Up to two batches past the last printed one: acknowledged but not
    // printed, or in the write-ahead log.
    kill_rounds(false, 2);
}

#[test]
fn kill_during_pipelined_appends() {
    // The group of batches that the last sync covered can be unprinted (up
    // to PIPELINED_AHEAD + 1), and after it come the batches queued for the
    // next sync, one that waits to be queued and one being written. What
    // must hold is that every count ends a batch or a part.
    kill_rounds(true, 2 * PIPELINED_AHEAD + 4);
}

/// Kills the child writer [`ROUNDS`] times on one ledger and checks what
/// each kill left. `later` is how many batches the child can have written
/// after the last one it printed as durable.
fn kill_rounds(pipelined: bool, later: usize) {
    let dir = TempDir::new().unwrap();
    let mut count = 0;
    for round in 0..ROUNDS {
        let last_acked = run_and_kill(dir.path(), pipelined);
        assert!(last_acked >= count, "round {round}: child continued from record {count}");

        let report = verify(dir.path()).expect("verify after kill");
        assert_eq!(report.first_break, None, "round {round}: chain verifies after kill");
        let allowed = possible_counts(last_acked, later);
        assert!(
            allowed.contains(&report.records_checked),
            "round {round}: {} records after acknowledging record {last_acked}, expected one of {allowed:?}",
            report.records_checked,
        );

        let ledger = Ledger::open(dir.path()).expect("reopen for writing after kill");
        assert_eq!(ledger.len(), report.records_checked, "round {round}: head matches the verified records");
        drop(ledger);

        count = report.records_checked;
        assert_records_numbered(dir.path(), count);
    }
}

/// Fills a ledger, flushes every column family to SST files and returns the
/// SST files of the `records` column family.
fn flushed_ledger(records: u64) -> (TempDir, Vec<PathBuf>) {
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), records));
    let db = common::open_raw(dir.path());
    for name in ["records", "meta", "tree", "checkpoints"] {
        db.flush_cf(db.cf_handle(name).unwrap()).expect("flush column family");
    }
    let files = db
        .live_files()
        .expect("list live files")
        .into_iter()
        .filter(|file| file.column_family_name == RECORDS_CF)
        .map(|file| dir.path().join(file.name.trim_start_matches('/')))
        .collect();
    drop(db);
    (dir, files)
}

fn flip_file_byte(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).expect("read file");
    bytes[offset] ^= 0x01;
    std::fs::write(path, bytes).expect("write file");
}

#[test]
fn flipped_last_record_byte() {
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), 100));
    let db = common::open_raw(dir.path());
    let mut value = common::raw_get(&db, 99);
    value[60] ^= 0x01;
    common::raw_put(&db, 99, &value);
    drop(db);

    let error = Ledger::open(dir.path()).err().expect("open must reject a changed last record");
    assert!(
        matches!(error, LedgerError::BrokenHead { problem: HeadProblem::HashMismatch { seq: 99 }, .. }),
        "unexpected error: {error}"
    );
    let report = verify(dir.path()).expect("verify reads the ledger");
    assert_eq!(report.first_break.map(|found| found.seq), Some(99));
}

#[test]
fn flipped_sst_data_byte() {
    let (dir, files) = flushed_ledger(1000);
    assert_eq!(files.len(), 1, "one flushed SST file of records: {files:?}");
    // Offset 100 lies in the first data block, whose checksum covers it.
    flip_file_byte(&files[0], 100);

    // NOTE: `Ledger::open` reads only the last two records, so it accepts
    // this ledger. Only a full `verify` reads the damaged block.
    let error = verify(dir.path()).expect_err("verify must fail on a corrupted data block");
    assert!(matches!(error, LedgerError::ReadRecords { .. }), "unexpected error: {error}");
    let source = std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default();
    assert!(source.contains("Corruption"), "RocksDB error names the corruption: {source}");
}

#[test]
fn missing_sst_file() {
    let (dir, files) = flushed_ledger(1000);
    std::fs::remove_file(&files[0]).expect("delete SST file");

    let error = Ledger::open(dir.path()).err().expect("open must fail without an SST file");
    assert!(matches!(error, LedgerError::Open { .. }), "unexpected error: {error}");
    let error = verify(dir.path()).expect_err("verify must fail without an SST file");
    assert!(matches!(error, LedgerError::Open { .. }), "unexpected error: {error}");
}

#[test]
fn missing_current_file_verify() {
    let (dir, _) = flushed_ledger(1000);
    std::fs::remove_file(dir.path().join("CURRENT")).expect("delete CURRENT");

    let error = verify(dir.path()).expect_err("verify must fail without CURRENT");
    assert!(matches!(error, LedgerError::NotFound { .. }), "unexpected error: {error}");
}

#[test]
fn missing_current_file_open() {
    let (dir, _) = flushed_ledger(1000);
    std::fs::remove_file(dir.path().join("CURRENT")).expect("delete CURRENT");

    // RocksDB rejects this only because the write-ahead log file is still
    // there; see `missing_current_and_wal_open` for the case without it.

    match Ledger::open(dir.path()) {
        Err(error) => assert!(matches!(error, LedgerError::NotALedger { .. }), "unexpected error: {error}"),
        Ok(ledger) => panic!("open accepted a ledger without CURRENT and shows {} records", ledger.len()),
    }
}

#[test]
fn missing_current_and_wal_open() {
    let (dir, files) = flushed_ledger(1000);
    std::fs::remove_file(dir.path().join("CURRENT")).expect("delete CURRENT");
    for entry in std::fs::read_dir(dir.path()).expect("list ledger folder") {
        let path = entry.expect("read folder entry").path();
        if path.extension().is_some_and(|extension| extension == "log") {
            std::fs::remove_file(&path).expect("delete write-ahead log");
        }
    }

    // With `create_if_missing`, RocksDB 11.8 would write a new MANIFEST and
    // CURRENT over a folder that still contains the SST files, then purge
    // them as obsolete, so open must reject the folder first.
    let opened = Ledger::open(dir.path());
    let survivors = files.iter().filter(|file| file.exists()).count();
    assert_eq!(survivors, files.len(), "open must not delete the SST files");
    match opened {
        Err(error) => assert!(matches!(error, LedgerError::NotALedger { .. }), "unexpected error: {error}"),
        Ok(ledger) => panic!("open accepted a ledger without CURRENT and shows {} records", ledger.len()),
    }
}
