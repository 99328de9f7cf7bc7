//! A full ring buffer. While the daemon is stopped nothing drains the
//! kernel's `EVENTS` ring buffer, so once it is full no event can be
//! reserved and the hooks deny: no record, no action. Each denial is
//! counted as `ring_buffer_full`. The kernel took a sequence number for each
//! denied event before the reservation failed, and the daemon must record
//! those numbers as an explicit `events_lost` gap.

use std::io::Read;
use std::mem::size_of;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::thread;
use std::time::Duration;

use lupid_common::Event;
use nix::sys::signal::Signal;
use serde_json::Value;

use crate::common::daemon::failure_count;
use crate::common::ledger::{decisions, kernel_seq_ranges, u64_field};
use crate::common::process::{self, exit_code};
use crate::common::{Daemon, OK_FILE, PROBE_BIN, require_bpf_lsm};

/// Size of the kernel's `EVENTS` ring buffer: `EVENTS_BYTES` in
/// `ebpf/lupid-ebpf/src/maps.rs`, which the kernel programs do not export.
const RING_BYTES: u64 = 32 << 20;
/// Bytes the kernel puts before each ring buffer record
/// (`BPF_RINGBUF_HDR_SZ`). The kernel then rounds a record up to 8 bytes.
const RECORD_HEADER: u64 = 8;
/// How long the agent may take to start and reach its first open.
const START_TIMEOUT: Duration = Duration::from_mins(1);
/// How long the open loop may take under TCG emulation.
const LOOP_TIMEOUT: Duration = Duration::from_mins(3);
/// How long the daemon may take to write every queued event after it
/// continues.
const DRAIN_TIMEOUT: Duration = Duration::from_mins(3);

/// Returns how many events fit in the empty ring buffer.
pub(crate) fn ring_capacity() -> u64 {
    let event = u64::try_from(size_of::<Event>()).expect("the event size fits in u64");
    RING_BYTES / (event + RECORD_HEADER).next_multiple_of(8)
}

/// Counts of an `open-loop PATH: N ok, M EPERM, K other` line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) ok: u64,
    pub(crate) eperm: u64,
    pub(crate) other: u64,
}

/// Parses the probe's `open-loop` line, or returns `None` for another line.
pub(crate) fn parse_tally(line: &str) -> Option<Tally> {
    let (_, counts) = line.strip_prefix("open-loop ")?.rsplit_once(": ")?;
    let mut numbers = counts.split(", ").map(|part| part.split_once(' ').and_then(|(n, _)| n.parse::<u64>().ok()));
    let tally = Tally { ok: numbers.next()??, eperm: numbers.next()??, other: numbers.next()?? };
    numbers.next().is_none().then_some(tally)
}

/// Runs `probe_args` as agent `agent` and stops the daemon while the
/// probe runs, until the probe prints its one line. Continues the daemon
/// and returns that line, the run's exit code and its stderr.
pub(crate) fn run_while_stopped(daemon: &Daemon, agent: &str, probe_args: &str) -> (String, i32, String) {
    let policy = daemon.policy_p0();
    // The agent must be registered before the daemon stops, because a
    // stopped daemon cannot answer `run`. So the agent first writes a marker
    // file and then sleeps, and the test stops the daemon during the sleep.
    let folder = tempfile::tempdir().expect("failed to create a folder for the marker file");
    let marker = folder.path().join("registered");
    let script = format!("echo > {}; sleep 3; exec {PROBE_BIN} {probe_args}", marker.display());
    let mut run = daemon.run_command(agent, &policy, None, &["/bin/sh", "-c", &script]);
    let mut child = run
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("failed to start lupid-agent run: {error}"));
    let received = process::lines_in_background(child.stdout.take().expect("stdout is piped"));
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let stderr_reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    process::wait_for_file(&marker, &mut child, START_TIMEOUT);
    daemon.signal(Signal::SIGSTOP);
    let line = received
        .recv_timeout(LOOP_TIMEOUT)
        .unwrap_or_else(|error| panic!("the probe printed no line within {LOOP_TIMEOUT:?} ({error})"));
    daemon.signal(Signal::SIGCONT);

    let status =
        process::wait_until(&mut child, START_TIMEOUT).expect("lupid-agent run exits once the daemon continues");
    let stderr_text = stderr_reader.join().expect("stderr reader thread panicked");
    (line, exit_code(status), stderr_text)
}

/// Runs the agent `agent` with the daemon stopped until the ring buffer is
/// full and beyond, checks the probe's results, lets the daemon write what
/// the ring buffer held, and returns the daemon's `ring_buffer_full`
/// count and its status report.
fn overflow_ring(daemon: &Daemon, agent: &str) -> (u64, Value) {
    let capacity = ring_capacity();
    // Half as many again as fit, so about a third of the opens find the
    // ring buffer full.
    let count = capacity * 3 / 2;
    let (line, code, stderr_text) = run_while_stopped(daemon, agent, &format!("open-loop {OK_FILE} {count}"));
    let tally = parse_tally(&line)
        .unwrap_or_else(|| panic!("expected an open-loop line, got {line:?}; stderr:\n{stderr_text}"));
    assert_eq!(code, 1, "the probe exits 1 when some opens got EPERM: {line}; stderr:\n{stderr_text}");
    assert!(
        tally.eperm > 0,
        "with the daemon stopped, opens beyond the {capacity} events that fit must get EPERM: {line}"
    );
    assert_eq!(tally.other, 0, "no open may fail with another error: {line}");
    assert_eq!(tally.ok + tally.eperm, count, "every one of the {count} opens was allowed or denied: {line}");
    assert!(tally.ok <= capacity, "at most {capacity} events fit, so at most that many opens are allowed: {line}");

    daemon.ledger().wait_for_within(DRAIN_TIMEOUT, &format!("{} allowed opens of {agent}", tally.ok), |records| {
        let allowed =
            decisions(records, agent, "open").into_iter().filter(|r| r["path"] == OK_FILE && r["verdict"] == "allow");
        u64::try_from(allowed.count()).expect("a count fits in u64") >= tally.ok
    });
    let report = daemon.status();
    let ring_full = failure_count(&report, "ring_buffer_full");
    assert!(
        ring_full >= tally.eperm,
        "status must count each of the {} EPERM opens as ring_buffer_full, but counts {ring_full}",
        tally.eperm
    );
    (ring_full, report)
}

/// Stops the daemon and checks that its ledger records the `ring_full`
/// dropped events as `events_lost` ranges which, with the decisions, cover
/// every kernel sequence number once, and that the ledger verifies.
pub(crate) fn check_gap_recorded(daemon: &mut Daemon, ring_full: u64, report: &Value) {
    daemon.stop_cleanly();
    let ledger = daemon.ledger();
    let records = ledger.export();
    let lost: Vec<&Value> = records.iter().filter(|record| record["kind"] == "events_lost").collect();
    let ranges = kernel_seq_ranges(&records);
    let decided = records.iter().filter(|record| record["kind"] == "decision").count();
    let context = format!(
        "kernel_sequence {} in status, {ring_full} ring_buffer_full, {decided} decisions, kernel_seq from {:?} to {:?}, events_lost records: {lost:?}",
        report["kernel_sequence"],
        ranges.first(),
        ranges.last()
    );

    assert!(!lost.is_empty(), "the ledger must record the {ring_full} dropped events as events_lost; {context}");
    let lost_total: u64 = lost
        .iter()
        .map(|record| u64_field(record, "last_kernel_seq") - u64_field(record, "first_kernel_seq") + 1)
        .sum();
    assert_eq!(lost_total, ring_full, "the events_lost ranges must hold exactly the dropped events; {context}");
    for pair in ranges.windows(2) {
        assert_eq!(
            pair[1].0,
            pair[0].1 + 1,
            "kernel_seq ranges must follow each other without gap or overlap; {context}"
        );
    }
    let verify = ledger.verify();
    assert_eq!(verify.code, 0, "lupid-ledger verify must accept the ledger with its gap; {verify}");
}

/// The dropped events are the last the kernel numbered before the daemon
/// stops, so only the kernel's sequence counter bounds the gap.
#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn full_ring_denies_then_gap() {
    require_bpf_lsm();
    let mut daemon = Daemon::start();
    let (ring_full, report) = overflow_ring(&daemon, "ring-full");
    check_gap_recorded(&mut daemon, ring_full, &report);
}

/// As `full_ring_denies_then_gap`, but one more labeled open after the
/// drain gives the daemon an event beyond the gap.
#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn gap_before_later_event() {
    require_bpf_lsm();
    let mut daemon = Daemon::start();
    let (ring_full, report) = overflow_ring(&daemon, "ring-full-later");
    let policy = daemon.policy_p0();
    let later = daemon.run_probe("ring-full-later", &policy, &["open", OK_FILE, "read"]);
    assert_eq!(later.code, 0, "with the ring buffer drained, allow-open allows the open again; {later}");
    check_gap_recorded(&mut daemon, ring_full, &report);
}

#[test]
fn tally_line_parses() {
    let tally = parse_tally("open-loop /home/agent/work/ok.txt: 7489 ok, 3744 EPERM, 0 other");
    assert_eq!(tally, Some(Tally { ok: 7489, eperm: 3744, other: 0 }));
}

#[test]
fn other_line_is_no_tally() {
    assert_eq!(parse_tally("open /x: ok (2 bytes)"), None);
    assert_eq!(parse_tally("open-loop /x: 1 ok, 2 EPERM"), None);
}
