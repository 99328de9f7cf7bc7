//! The exec hook (`bprm_check_security`).

use crate::common::ledger::find_decision;
use crate::common::{CURL, Daemon, TOOL_LINK, require_bpf_lsm};

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn allowed_binary_runs() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();

    let outcome = daemon.run_probe("exec-allowed", &policy, &["exec", "/bin/busybox", "true"]);

    assert_eq!(outcome.code, 0, "busybox true is allowed by allow-exec and exits 0; {outcome}");
    assert!(!outcome.has_line_starting("exec "), "the probe reports only a failed execve; {outcome}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn denied_path_gets_eperm() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();

    let outcome = daemon.run_probe("exec-denied", &policy, &["exec", CURL]);

    assert_eq!(outcome.code, 1, "deny-curl must fail the execve with EPERM; {outcome}");
    assert!(outcome.has_line("exec /usr/bin/curl: EPERM (errno 1)"), "expected an EPERM report; {outcome}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn symlink_judged_by_target() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();

    let outcome = daemon.run_probe("exec-link", &policy, &["exec", TOOL_LINK]);

    assert_eq!(outcome.code, 1, "{TOOL_LINK} points at {CURL}, so deny-curl applies; {outcome}");
    assert!(outcome.has_line("exec /tmp/git: EPERM (errno 1)"), "expected an EPERM report; {outcome}");

    let records = daemon.ledger().wait_for("a denied exec of exec-link", |records| {
        find_decision(records, "exec-link", "exec", "deny").is_some()
    });
    let denial = find_decision(&records, "exec-link", "exec", "deny").expect("wait_for found it");
    assert_eq!(denial["path"], CURL, "the ledger names the file the kernel resolved, not the link: {denial}");
    assert_eq!(denial["rule"], "deny-curl", "the denial names its rule: {denial}");
    assert_eq!(denial["requested"], TOOL_LINK, "the record keeps the name the agent asked for: {denial}");
}
