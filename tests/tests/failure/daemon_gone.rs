//! The daemon killed or stopped while an agent runs. Its programs and maps
//! are pinned, so the kernel goes on deciding: denied actions get EPERM and
//! allowed ones work, their events wait in the pinned ring buffer, and a
//! full buffer denies. A restarted daemon takes the pins over, adopts the
//! agent, writes a `daemon_gap` record, records the waiting events as
//! decisions and every event the kernel could not queue as `events_lost`.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::common::daemon::{failure_count, lists_agent};
use crate::common::ledger::{decisions, kernel_seq_ranges, u64_field};
use crate::common::process;
use crate::common::{Daemon, OK_FILE, PROBE_BIN, SECRET, require_bpf_lsm};

/// How long the agent may take to reach a step of its script.
const STEP_TIMEOUT: Duration = Duration::from_mins(2);
/// How long the restarted daemon may take to record the waiting events.
const DRAIN_TIMEOUT: Duration = Duration::from_mins(3);
/// Most events a daemon killed right after the agent registered can have
/// read from the ring buffer without recording them: the agent's shell
/// makes a handful of opens and execs before the flood.
const UNRECORDED_MAX: u64 = 64;
/// A destination that policy P0 denies (its default verdict).
const DENIED_DESTINATION: &str = "203.0.113.7:443";

/// Returns the exit code the agent's script wrote for `step` in `results`.
fn step_code(results: &str, step: &str) -> i32 {
    results
        .lines()
        .find_map(|line| line.strip_prefix(step)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("the agent wrote no result for {step:?}; its results:\n{results}"))
}

/// Checks that the decisions and `events_lost` ranges cover every kernel
/// sequence number from 0 once, and that exactly one `daemon_gap` record
/// with `programs` "kept" lies inside that cover. Returns the gap record.
fn check_cover_and_gap(records: &[Value]) -> Value {
    let ranges = kernel_seq_ranges(records);
    assert_eq!(ranges.first().map(|range| range.0), Some(0), "the kernel numbers events from 0: {:?}", ranges.first());
    for pair in ranges.windows(2) {
        assert_eq!(pair[1].0, pair[0].1 + 1, "kernel_seq ranges must follow each other without gap or overlap");
    }
    let gaps: Vec<&Value> = records.iter().filter(|record| record["kind"] == "daemon_gap").collect();
    assert_eq!(gaps.len(), 1, "one restart writes one daemon_gap record: {gaps:?}");
    let gap = gaps[0].clone();
    assert_eq!(gap["programs"], "kept", "the restarted daemon keeps the pinned programs of its build: {gap}");
    let (from, to) = (u64_field(&gap, "from_ns"), u64_field(&gap, "to_ns"));
    assert!(from > 0, "the gap starts at the last record before it: {gap}");
    assert!(from <= to, "the gap ends at the takeover, after it starts: {gap}");
    let (first, next) = (u64_field(&gap, "first_kernel_seq"), u64_field(&gap, "next_kernel_seq"));
    assert!(first <= next, "the gap's kernel_seq range must not be reversed: {gap}");
    let last = ranges.last().expect("the ledger contains decisions").1;
    assert!(next <= last + 1, "every number below next_kernel_seq must be accounted for: {gap}, last {last}");
    gap
}

/// SIGKILL: the kernel goes on denying a secret and a connect and allowing
/// an open. The restarted daemon records those decisions from the ring
/// buffer under the adopted agent's name, after a gap record, and goes on
/// enforcing for the adopted agent.
#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn killed_daemon_keeps_enforcing() {
    require_bpf_lsm();
    let mut daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let folder = tempfile::tempdir().expect("failed to create a folder for the agent's files");
    let dir = folder.path().display().to_string();
    let script = format!(
        "echo > {dir}/registered
         while [ ! -e {dir}/go ]; do sleep 1; done
         {PROBE_BIN} open {SECRET} read; echo \"secret $?\" >> {dir}/results
         {PROBE_BIN} connect {DENIED_DESTINATION}; echo \"connect $?\" >> {dir}/results
         {PROBE_BIN} open {OK_FILE} read; echo \"ok $?\" >> {dir}/results
         echo > {dir}/done
         while [ ! -e {dir}/again ]; do sleep 1; done
         {PROBE_BIN} open {SECRET} read; echo \"secret-again $?\" >> {dir}/results
         {PROBE_BIN} open {OK_FILE} read; echo \"ok-again $?\" >> {dir}/results
         echo > {dir}/finished"
    );
    let mut child = daemon
        .run_command("gone", &policy, None, &["/bin/sh", "-c", &script])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("failed to start lupid-agent run: {error}"));
    process::wait_for_file(&folder.path().join("registered"), &mut child, STEP_TIMEOUT);

    daemon.kill();
    fs::write(folder.path().join("go"), b"").expect("failed to write the go file");
    process::wait_for_file(&folder.path().join("done"), &mut child, STEP_TIMEOUT);
    let results = fs::read_to_string(folder.path().join("results")).expect("the agent wrote its results");
    assert_eq!(step_code(&results, "secret"), 1, "with the daemon killed, the secret stays denied: {results}");
    assert_eq!(step_code(&results, "connect"), 1, "with the daemon killed, the connect stays denied: {results}");
    assert_eq!(step_code(&results, "ok"), 0, "with the daemon killed, allowed opens still work: {results}");

    daemon.start_again();
    let status = daemon.status();
    assert!(lists_agent(&status, "gone"), "the restarted daemon adopts the running agent by name: {status}");
    assert_eq!(
        status["links"].as_array().map(Vec::len),
        status["programs"].as_array().map(Vec::len),
        "every program the kernel lists is attached by a link: {status}"
    );
    let records =
        daemon.ledger().wait_for_within(DRAIN_TIMEOUT, "the decisions made while the daemon was away", |records| {
            let opens = decisions(records, "gone", "open");
            let denied_secret = opens.iter().any(|r| r["path"] == SECRET && r["verdict"] == "deny");
            let allowed_ok = opens.iter().any(|r| r["path"] == OK_FILE && r["verdict"] == "allow");
            let denied_connect = decisions(records, "gone", "connect").iter().any(|r| r["verdict"] == "deny");
            denied_secret && allowed_ok && denied_connect
        });
    let gap = check_cover_and_gap(&records);
    let gap_index = records.iter().position(|record| record == &gap).expect("the gap is among the records");
    let drained = records[gap_index..]
        .iter()
        .filter(|r| r["kind"] == "decision" && r["agent"] == "gone" && r["path"] == SECRET)
        .count();
    assert!(drained >= 1, "the denied secret is recorded after the gap record, by the restarted daemon");

    fs::write(folder.path().join("again"), b"").expect("failed to write the again file");
    process::wait_for_file(&folder.path().join("finished"), &mut child, STEP_TIMEOUT);
    let results = fs::read_to_string(folder.path().join("results")).expect("the agent wrote its results");
    assert_eq!(step_code(&results, "secret-again"), 1, "the adopted agent's secret stays denied: {results}");
    assert_eq!(step_code(&results, "ok-again"), 0, "the adopted agent's allowed open works: {results}");
    // The run lost the daemon it registered with, and reports the exit to
    // the restarted one.
    let exit = process::wait_until(&mut child, STEP_TIMEOUT).expect("lupid-agent run ends after its agent");
    assert_eq!(exit.code(), Some(0), "lupid-agent run returns the agent's own exit status");

    daemon.stop_cleanly();
    let ledger = daemon.ledger();
    let records = ledger.export();
    check_cover_and_gap(&records);
    let exits: Vec<&Value> =
        records.iter().filter(|record| record["kind"] == "agent_exit" && record["agent"] == "gone").collect();
    assert_eq!(exits.len(), 1, "the adopted run's exit is recorded once: {exits:?}");
    assert_eq!(exits[0]["status"], 0, "with the status the agent returned: {exits:?}");
    let denied_after: Vec<&Value> = decisions(&records, "gone", "open")
        .into_iter()
        .filter(|r| r["path"] == SECRET && r["verdict"] == "deny")
        .collect();
    assert_eq!(denied_after.len(), 2, "both denied secret opens are recorded once each: {denied_after:?}");
    let verify = ledger.verify();
    assert_eq!(verify.code, 0, "lupid-ledger verify must accept the ledger with its gap; {verify}");
}

/// SIGSTOP and then SIGKILL while an agent floods the ring buffer: opens
/// past its capacity are denied, and the restarted daemon records the
/// events that waited as decisions and the kernel's exact
/// `ring_buffer_full` count as `events_lost` ranges.
#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn killed_while_full_records_loss() {
    require_bpf_lsm();
    let mut daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let capacity = super::ring::ring_capacity();
    let count = capacity * 3 / 2;
    let folder = tempfile::tempdir().expect("failed to create a folder for the agent's files");
    let marker = folder.path().join("registered");
    // The probe replaces the shell and prints its tally on a pipe, so no
    // open follows the flood: an open that finds the buffer full is denied
    // and counted even when O_CREAT has created the file already.
    let script = format!("echo > {}; sleep 3; exec {PROBE_BIN} open-loop {OK_FILE} {count}", marker.display());
    let mut child = daemon
        .run_command("flood", &policy, None, &["/bin/sh", "-c", &script])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("failed to start lupid-agent run: {error}"));
    let received = process::lines_in_background(child.stdout.take().expect("stdout is piped"));
    process::wait_for_file(&marker, &mut child, STEP_TIMEOUT);
    daemon.signal(Signal::SIGSTOP);
    let line = received
        .recv_timeout(STEP_TIMEOUT)
        .unwrap_or_else(|error| panic!("the probe printed no line within {STEP_TIMEOUT:?} ({error})"));
    daemon.kill();

    let tally = super::ring::parse_tally(&line).unwrap_or_else(|| panic!("expected an open-loop line: {line:?}"));
    assert!(tally.eperm > 0, "opens past the {capacity} events that fit are denied: {line}");
    assert_eq!(tally.other, 0, "no open fails with another error: {line}");
    assert_eq!(tally.ok + tally.eperm, count, "every open was allowed or denied: {line}");

    daemon.start_again();
    let records = daemon.ledger().wait_for_within(DRAIN_TIMEOUT, "the allowed opens and the loss", |records| {
        let allowed = decisions(records, "flood", "open")
            .into_iter()
            .filter(|r| r["path"] == OK_FILE && r["verdict"] == "allow")
            .count();
        let lost = records.iter().any(|record| record["kind"] == "events_lost");
        u64::try_from(allowed).expect("a count fits in u64") >= tally.ok && lost
    });
    let ring_full = failure_count(&daemon.status(), "ring_buffer_full");
    assert_eq!(ring_full, tally.eperm, "the kernel counts each open that found the buffer full");
    let lost_total: u64 = records
        .iter()
        .filter(|record| record["kind"] == "events_lost")
        .map(|record| u64_field(record, "last_kernel_seq") - u64_field(record, "first_kernel_seq") + 1)
        .sum();
    // The killed daemon may have taken a few of the agent's first events
    // out of the ring buffer without recording them. Those are lost too,
    // and the kernel's drop counter does not count them.
    assert!(
        lost_total >= ring_full,
        "events_lost ranges cover every event the kernel could not queue ({ring_full}), but cover {lost_total}"
    );
    assert!(
        lost_total <= ring_full + UNRECORDED_MAX,
        "events_lost ranges cover {lost_total} events: the {ring_full} the kernel could not queue, and at most {UNRECORDED_MAX} the killed daemon read without recording"
    );
    check_cover_and_gap(&records);
    let _ = process::wait_until(&mut child, STEP_TIMEOUT);

    daemon.stop_cleanly();
    let verify = daemon.ledger().verify();
    assert_eq!(verify.code, 0, "lupid-ledger verify must accept the ledger with its gap; {verify}");
}

/// `lupid-agent unload` removes the pins, and a clean stop leaves them.
#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn stop_keeps_pins_until_unload() {
    require_bpf_lsm();
    let mut daemon = Daemon::start();
    daemon.stop_cleanly();
    let links = Path::new("/sys/fs/bpf/lupid/links");
    let builds = fs::read_dir(links).map_or(0, Iterator::count);
    assert_eq!(builds, 1, "a clean stop leaves the links of one build pinned under {}", links.display());
    assert!(Path::new("/sys/fs/bpf/lupid/maps/AGENTS").exists(), "a clean stop leaves the maps pinned");
    daemon.unload();
    assert!(!Path::new("/sys/fs/bpf/lupid").exists(), "unload removes every pin and folder");
}
