//! Which processes lupid mediates: every descendant of an agent, and nothing
//! outside the agent's cgroup. Each unlabeled test first shows that the
//! agent is denied the action, then runs the same probe directly.

use std::process::Command;
use std::time::Duration;

use crate::common::process::run;
use crate::common::{CURL, Daemon, Listener, Outcome, PROBE_BIN, SECRET, require_bpf_lsm};

/// Runs the probe directly, outside any agent's cgroup.
fn run_unlabeled(args: &[&str]) -> Outcome {
    run(Command::new(PROBE_BIN).args(args), Duration::from_secs(30))
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn unlabeled_open_untouched() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();

    let agent = daemon.run_probe("scope-open", &policy, &["open", SECRET, "read"]);
    let direct = run_unlabeled(&["open", SECRET, "read"]);

    assert_eq!(agent.code, 1, "the agent must be denied the secret; {agent}");
    assert_eq!(direct.code, 0, "a process outside the agent's cgroup must read the secret; {direct}");
    assert!(direct.has_line("open /srv/secrets/token: ok (6 bytes)"), "expected the 6 bytes of \"secret\"; {direct}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn unlabeled_exec_untouched() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();

    let agent = daemon.run_probe("scope-exec", &policy, &["exec", CURL]);
    let direct = run_unlabeled(&["exec", CURL]);

    assert_eq!(agent.code, 1, "the agent must be denied {CURL}; {agent}");
    // The probe prints a line only when execve fails. Busybox then runs as
    // `curl`, which is not one of its applets, so its own exit code is not
    // the probe's and is not checked.
    assert!(
        !direct.has_line_starting("exec /usr/bin/curl:"),
        "a process outside the agent's cgroup must exec {CURL}; {direct}"
    );
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn unlabeled_connect_untouched() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let listener = Listener::bind("203.0.113.7:443");

    let agent = daemon.run_probe("scope-connect", &policy, &["connect", "203.0.113.7:443"]);
    let accepted_from_agent = listener.accepted();
    let direct = run_unlabeled(&["connect", "203.0.113.7:443"]);

    assert_eq!(agent.code, 1, "the agent must be denied 203.0.113.7:443; {agent}");
    assert_eq!(accepted_from_agent, 0, "the agent's connect must not reach the listener");
    assert_eq!(direct.code, 0, "a process outside the agent's cgroup must connect; {direct}");
    assert!(direct.has_line("connect 203.0.113.7:443: ok (connected)"), "expected a connected report; {direct}");
    assert_eq!(listener.accepted(), 1, "the direct connect must reach the listener");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn exec_child_is_mediated() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let script = format!("{PROBE_BIN} open {SECRET} read");

    let outcome = daemon.run_agent("scope-child", &policy, None, &["/bin/sh", "-c", &script]);

    assert_eq!(outcome.code, 1, "a program the agent's shell runs is mediated too; {outcome}");
    assert!(outcome.has_line("open /srv/secrets/token: EPERM (errno 1)"), "expected an EPERM report; {outcome}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn forked_child_is_mediated() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    // The command after the probe makes the shell fork for the probe
    // instead of replacing itself with it.
    let script = format!("{PROBE_BIN} open {SECRET} read; echo \"probe exited $?\"");

    let outcome = daemon.run_agent("scope-fork", &policy, None, &["/bin/sh", "-c", &script]);

    assert!(outcome.has_line("open /srv/secrets/token: EPERM (errno 1)"), "expected an EPERM report; {outcome}");
    assert!(outcome.has_line("probe exited 1"), "the forked probe must exit 1 for EPERM; {outcome}");
}
