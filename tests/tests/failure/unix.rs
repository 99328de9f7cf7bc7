//! Connects to a Unix socket. lupid decides IPv4 and IPv6 destinations
//! only, so the connect hook denies every other address family as
//! `unknown_family`.

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
fn unix_connect_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let (_folder, listener, path) = unix_listener();

    let outcome = daemon.run_probe("connect-unix", &policy, &["connect-unix", &path]);

    assert_eq!(outcome.code, 1, "a connect to an AF_UNIX address must be denied as an unknown family; {outcome}");
    assert!(outcome.has_line(&format!("connect {path}: EPERM (errno 1)")), "expected an EPERM report; {outcome}");
    assert_eq!(listener.accepted(), 0, "a denied connect must never reach the listener");

    let records = daemon.ledger().wait_for("a denied connect of connect-unix", |records| {
        find_decision(records, "connect-unix", "connect", "deny").is_some()
    });
    let denial = find_decision(&records, "connect-unix", "connect", "deny").expect("wait_for found it");
    assert_eq!(denial["verdict"], "deny", "{denial}");
    assert_eq!(denial["reason"], "unknown_family", "AF_UNIX is neither IPv4 nor IPv6: {denial}");
    assert_eq!(denial["family"], "unix", "the record names the family it could not decide: {denial}");

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
