//! A stopped daemon under load: while nothing drains the ring buffer, the
//! agent keeps opening an allowed file with a denied open mixed in. Each
//! denied open must still be denied, by its rule while its event fits and
//! for the full ring buffer after, and every action must end up either
//! recorded or inside an `events_lost` gap of exactly the dropped count.

use crate::common::daemon::failure_count;
use crate::common::ledger::decisions;
use crate::common::process::numbers_in;
use crate::common::{Daemon, OK_FILE, SECRET, require_bpf_lsm};
use crate::failure::ring::{check_gap_recorded, ring_capacity, run_while_stopped};

/// One open of the secret in place of every this many opens.
const DENIED_EVERY: u64 = 50;

/// Counts of an `open-mix` line: allowed ok, EPERM, other, then denied ok,
/// EPERM, other.
fn parse_mix(line: &str) -> Option<[u64; 6]> {
    let (_, counts) = line.strip_prefix("open-mix ")?.rsplit_once(": allowed ")?;
    numbers_in(counts)
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_stopped_daemon_still_denies() {
    require_bpf_lsm();
    let mut daemon = Daemon::start();
    let agent = "stopped-mix";
    let count = ring_capacity() * 3 / 2;
    let args = format!("open-mix {OK_FILE} {SECRET} {count} {DENIED_EVERY}");

    // The kernel's counters can outlive one daemon, so the test counts from
    // their values before the run.
    let ring_full_before = failure_count(&daemon.status(), "ring_buffer_full");
    let (line, code, stderr) = run_while_stopped(&daemon, agent, &args);
    let [allowed_ok, allowed_eperm, allowed_other, denied_ok, denied_eperm, denied_other] =
        parse_mix(&line).unwrap_or_else(|| panic!("expected an open-mix line, got {line:?}; stderr:\n{stderr}"));
    assert_eq!(code, 1, "some opens got EPERM: {line}");
    assert_eq!(denied_ok, 0, "every open of the secret must be denied while the daemon is stopped: {line}");
    assert_eq!(denied_other, 0, "{line}");
    assert_eq!(allowed_other, 0, "{line}");
    assert_eq!(denied_eperm, count / DENIED_EVERY, "{line}");
    assert!(allowed_eperm > 0, "the ring buffer must have filled: {line}");
    assert_eq!(allowed_ok + allowed_eperm + denied_eperm, count, "{line}");

    daemon.ledger().wait_for(&format!("{allowed_ok} allowed opens of {agent}"), |records| {
        let allowed = decisions(records, agent, "open").into_iter().filter(|r| r["verdict"] == "allow").count();
        allowed as u64 >= allowed_ok
    });
    let report = daemon.status();
    let ring_full = failure_count(&report, "ring_buffer_full") - ring_full_before;
    // Stops the daemon, so every event it received is written below.
    check_gap_recorded(&mut daemon, ring_full, &report);

    let records = daemon.ledger().export();
    let denial_records = decisions(&records, agent, "open")
        .into_iter()
        .filter(|r| r["verdict"] == "deny" && r["path"] == SECRET)
        .count();
    assert!(denial_records > 0, "the denials made before the ring buffer filled are recorded");
    assert_eq!(
        ring_full,
        allowed_eperm + denied_eperm - denial_records as u64,
        "every EPERM is either a recorded denial or a ring_buffer_full drop: {line}, {denial_records} denial records"
    );
}

#[test]
fn mix_line_parses() {
    let line = "open-mix /a /b: allowed 10 ok, 2 EPERM, 0 other; denied 0 ok, 3 EPERM, 0 other";
    assert_eq!(parse_mix(line), Some([10, 2, 0, 0, 3, 0]));
}
