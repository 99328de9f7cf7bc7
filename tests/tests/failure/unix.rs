//! Connects on families the policy decides by default or cannot describe:
//! a Unix socket that no rule names falls to the default, and a netlink
//! socket, whose family policies cannot describe, is denied as
//! `unknown_family` and counted.

use std::process::Command;
use std::time::Duration;

use crate::common::daemon::failure_count;
use crate::common::ledger::find_decision;
use crate::common::process;
use crate::common::{Daemon, PROBE_BIN, UnixSocketListener, require_bpf_lsm};

/// How long the unlabeled probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_mins(1);

/// Binds a Unix socket in a fresh temporary folder and returns the folder,
/// which must outlive the listener, the listener and the socket path.
fn unix_listener() -> (tempfile::TempDir, UnixSocketListener, String) {
    let folder = tempfile::tempdir().expect("failed to create a temporary folder for the Unix socket");
    let path = folder.path().join("listener.sock");
    let listener = UnixSocketListener::bind(&path);
    let path = path.to_str().expect("the temporary folder's path is UTF-8").to_owned();
    (folder, listener, path)
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn unix_connect_default_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let (_folder, listener, path) = unix_listener();

    let outcome = daemon.run_probe("connect-unix", &policy, &["connect-unix", &path]);

    assert_eq!(outcome.code, 1, "P0 names no Unix socket and denies by default; {outcome}");
    assert!(outcome.has_line(&format!("connect {path}: EPERM (errno 1)")), "expected an EPERM report; {outcome}");
    assert_eq!(listener.accepted(), 0, "a denied connect must never reach the listener");

    let records = daemon.ledger().wait_for("a denied connect of connect-unix", |records| {
        find_decision(records, "connect-unix", "connect", "deny").is_some()
    });
    let denial = find_decision(&records, "connect-unix", "connect", "deny").expect("wait_for found it");
    assert_eq!(denial["reason"], "default", "{denial}");
    assert_eq!(denial["family"], "unix", "{denial}");
    assert_eq!(denial["path"], path.as_str(), "the record names the socket the kernel found: {denial}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn unknown_family_denied_and_counted() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();

    let outcome = daemon.run_probe("connect-netlink", &policy, &["connect-netlink"]);

    assert_eq!(outcome.code, 1, "a connect on a family no policy can describe must be denied; {outcome}");
    assert!(outcome.has_line("connect netlink: EPERM (errno 1)"), "expected an EPERM report; {outcome}");
    let records = daemon.ledger().wait_for("a denied connect of connect-netlink", |records| {
        find_decision(records, "connect-netlink", "connect", "deny").is_some()
    });
    let denial = find_decision(&records, "connect-netlink", "connect", "deny").expect("wait_for found it");
    assert_eq!(denial["reason"], "unknown_family", "netlink is neither IP nor Unix: {denial}");
    assert_eq!(denial["family"], 16, "the record names the family it could not decide: {denial}");

    let status = daemon.status();
    let count = failure_count(&status, "unknown_family");
    assert!(count >= 1, "status must count the unknown_family denial, but counts {count}: {status}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn unlabeled_unix_connect_allowed() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let (_folder, listener, path) = unix_listener();

    let mut probe = Command::new(PROBE_BIN);
    probe.arg("connect-unix").arg(&path);
    let outcome = process::run(&mut probe, PROBE_TIMEOUT);

    assert_eq!(outcome.code, 0, "lupid must not decide for a process in no labeled cgroup; {outcome}");
    assert!(outcome.has_line(&format!("connect {path}: ok (connected)")), "expected a connected report; {outcome}");
    assert_eq!(listener.accepted(), 1, "the listener must accept the probe's one connection");
    let status = daemon.status();
    let count = failure_count(&status, "unknown_family");
    assert_eq!(count, 0, "an unlabeled connect must not be counted as a failure: {status}");
}
