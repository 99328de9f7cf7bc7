//! A changed record must fail `lupid-ledger verify`.
//!
//! NOTE: this test depends on a hidden test-support subcommand,
//! `lupid-ledger debug-tamper --ledger PATH --seq N`, which flips one byte
//! of the stored value of record N. This crate does not link `RocksDB`, so it
//! cannot change a record any other way.

use crate::common::ledger::find_decision;
use crate::common::{Daemon, SECRET, require_bpf_lsm};

/// Whether `text` contains `number` as a whole number, not as part of a
/// longer one.
fn mentions_number(text: &str, number: u64) -> bool {
    let wanted = number.to_string();
    text.split(|c: char| !c.is_ascii_digit()).any(|word| word == wanted)
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn flipped_byte_fails_verify() {
    require_bpf_lsm();
    let mut daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let outcome = daemon.run_probe("tamper", &policy, &["open", SECRET, "read"]);
    assert_eq!(outcome.code, 1, "deny-secrets must deny the open; {outcome}");
    let status = daemon.stop();
    assert!(status.success(), "the daemon must exit 0 on SIGTERM, but exited with {status}");

    let ledger = daemon.ledger();
    let records = ledger.export();
    let denial = find_decision(&records, "tamper", "open", "deny").expect("a denied open in the ledger");
    let seq = denial["seq"].as_u64().expect("a record's seq is an unsigned integer");
    let before = ledger.verify();
    assert_eq!(before.code, 0, "the untouched ledger must verify; {before}");

    let tamper = ledger.command("debug-tamper", &["--seq", &seq.to_string()]);
    assert_eq!(tamper.code, 0, "lupid-ledger debug-tamper must flip a byte of record {seq}; {tamper}");

    let after = ledger.verify();
    assert_eq!(after.code, 1, "verify must reject the changed record {seq}; {after}");
    let output = format!("{}{}", after.stdout, after.stderr);
    assert!(mentions_number(&output, seq), "verify must name record {seq}; {after}");
}

#[test]
fn number_mention_is_whole() {
    assert!(mentions_number("record 12: hash mismatch", 12));
    assert!(mentions_number("seq=12", 12));
    assert!(!mentions_number("record 123: hash mismatch", 12));
    assert!(!mentions_number("record 112", 12));
}
