//! A changed record must fail `lupid-ledger verify`, which must name it.
//!
//! `lupid-ledger-tamper` flips one bit in the body of a stored record
//! through `RocksDB`, as an attacker with root could, and leaves the head
//! metadata alone. The record still decodes, so only the hash chain shows
//! the change: for record N the break appears at N + 1, whose `prev_hash`
//! no longer matches, and for the last record at the head metadata.

use std::process::Command;
use std::time::Duration;

use crate::common::ledger::{find_decision, u64_field};
use crate::common::process;
use crate::common::{Daemon, Ledger, SECRET, TAMPER_BIN, require_bpf_lsm};

/// How long `lupid-ledger-tamper` may take.
const TAMPER_TIMEOUT: Duration = Duration::from_mins(1);

/// Whether `text` contains `number` as a whole number, not as part of a
/// longer one.
fn mentions_number(text: &str, number: u64) -> bool {
    let wanted = number.to_string();
    text.split(|c: char| !c.is_ascii_digit()).any(|word| word == wanted)
}

/// Runs one agent whose open of the secret is denied, stops the daemon and
/// returns it, so its ledger is complete and closed.
fn stopped_daemon(agent: &str) -> Daemon {
    let mut daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let outcome = daemon.run_probe(agent, &policy, &["open", SECRET, "read"]);
    assert_eq!(outcome.code, 1, "deny-secrets must deny the open; {outcome}");
    let status = daemon.stop();
    assert!(status.success(), "the daemon must exit 0 on SIGTERM, but exited with {status}");
    daemon
}

/// Flips a bit of record `seq` with `lupid-ledger-tamper` and checks that
/// `lupid-ledger verify` then exits 1 and names `seq`.
fn tamper_and_verify(ledger: &Ledger, seq: u64) {
    let before = ledger.verify();
    assert_eq!(before.code, 0, "the untouched ledger must verify; {before}");

    let mut command = Command::new(TAMPER_BIN);
    command.arg("--ledger").arg(ledger.path()).arg("--seq").arg(seq.to_string());
    let tamper = process::run(&mut command, TAMPER_TIMEOUT);
    assert_eq!(tamper.code, 0, "lupid-ledger-tamper must flip a byte of record {seq}; {tamper}");

    let after = ledger.verify();
    assert_eq!(after.code, 1, "verify must reject the changed record {seq}; {after}");
    let output = format!("{}{}", after.stdout, after.stderr);
    assert!(mentions_number(&output, seq), "verify must name record {seq}; {after}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn flipped_byte_fails_verify() {
    require_bpf_lsm();
    let daemon = stopped_daemon("tamper");
    let ledger = daemon.ledger();
    let records = ledger.export();
    let denial = find_decision(&records, "tamper", "open", "deny").expect("a denied open in the ledger");
    let seq = u64_field(denial, "seq");
    let last = u64_field(records.last().expect("the ledger is not empty"), "seq");
    assert!(seq < last, "the denial {seq} must not be the last record {last}, which the other test covers");

    tamper_and_verify(&ledger, seq);
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn flipped_last_record_fails_verify() {
    require_bpf_lsm();
    let daemon = stopped_daemon("tamper-last");
    let ledger = daemon.ledger();
    let records = ledger.export();
    let last = records.last().expect("the ledger is not empty");
    // The daemon's final checkpoint signs over every record before it.
    assert_eq!(last["kind"], "checkpoint", "the stopped daemon's last record: {last}");

    // No later record links to the last one, so only the head metadata and
    // the stored tree can reveal the change.
    tamper_and_verify(&ledger, u64_field(last, "seq"));
}

#[test]
fn number_mention_is_whole() {
    assert!(mentions_number("record 12: hash mismatch", 12));
    assert!(mentions_number("seq=12", 12));
    assert!(!mentions_number("record 123: hash mismatch", 12));
    assert!(!mentions_number("record 112", 12));
}
