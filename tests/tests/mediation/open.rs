//! The file open hook (`file_open`).

use crate::common::ledger::find_decision;
use crate::common::{Daemon, Ledger, OK_FILE, SECRET, SECRETS_LINK, require_bpf_lsm};

/// Waits for agent `agent`'s denied open and returns the path it names.
fn denied_open_path(ledger: &Ledger, agent: &str) -> serde_json::Value {
    let records = ledger.wait_for(&format!("a denied open of {agent}"), |records| {
        find_decision(records, agent, "open", "deny").is_some()
    });
    let denial = find_decision(&records, agent, "open", "deny").expect("wait_for found it");
    denial["path"].clone()
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn allowed_file_reads() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();

    let outcome = daemon.run_probe("open-allowed", &policy, &["open", OK_FILE, "read"]);

    assert_eq!(outcome.code, 0, "allow-open covers {OK_FILE}; {outcome}");
    assert!(
        outcome.has_line("open /home/agent/work/ok.txt: ok (2 bytes)"),
        "expected the 2 bytes of \"OK\"; {outcome}"
    );
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn secret_read_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();

    let outcome = daemon.run_probe("open-secret-read", &policy, &["open", SECRET, "read"]);

    assert_eq!(outcome.code, 1, "deny-secrets must fail the open with EPERM; {outcome}");
    assert!(outcome.has_line("open /srv/secrets/token: EPERM (errno 1)"), "expected an EPERM report; {outcome}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn secret_write_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();

    let outcome = daemon.run_probe("open-secret-write", &policy, &["open", SECRET, "write"]);

    assert_eq!(outcome.code, 1, "deny-secrets covers write access too; {outcome}");
    assert!(outcome.has_line("open /srv/secrets/token: EPERM (errno 1)"), "expected an EPERM report; {outcome}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn linked_directory_resolves() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let through_link = format!("{SECRETS_LINK}/token");

    let outcome = daemon.run_probe("open-link", &policy, &["open", &through_link, "read"]);

    assert_eq!(outcome.code, 1, "{through_link} is {SECRET}, so deny-secrets applies; {outcome}");
    assert!(outcome.has_line("open /tmp/s/token: EPERM (errno 1)"), "expected an EPERM report; {outcome}");
    let path = denied_open_path(&daemon.ledger(), "open-link");
    assert_eq!(path, SECRET, "the ledger names the resolved path, not the link");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn proc_root_path_resolves() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let via_proc = format!("/proc/self/root{SECRET}");

    let outcome = daemon.run_probe("open-proc-root", &policy, &["open", &via_proc, "read"]);

    assert_eq!(outcome.code, 1, "{via_proc} is {SECRET}, so deny-secrets applies; {outcome}");
    assert!(
        outcome.has_line("open /proc/self/root/srv/secrets/token: EPERM (errno 1)"),
        "expected an EPERM report; {outcome}"
    );
    let path = denied_open_path(&daemon.ledger(), "open-proc-root");
    assert_eq!(path, SECRET, "the ledger names the resolved path, not the /proc alias");
}
