//! Reaching the daemon: signals, ptrace, `bpf(2)`, and opens in the
//! daemon's folders.

use std::path::Path;
use std::process::{Command, Stdio};

use super::{daemon_pid, protected_denial};
use crate::common::Daemon;
use crate::common::ledger::decisions;

/// SIGTERM, SIGKILL, SIGSTOP and signal 0, the existence check.
const SIGNALS: [i32; 4] = [15, 9, 19, 0];

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn daemon_signals_denied() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let target = daemon_pid(&daemon);
    let pid = target.to_string();

    for signal in SIGNALS {
        let agent = format!("kill-{signal}");
        let outcome = daemon.run_probe(&agent, &policy, &["kill", &pid, &signal.to_string()]);
        assert_eq!(outcome.code, 1, "signal {signal} to the daemon must be denied; {outcome}");
        assert!(outcome.has_line(&format!("kill {pid} {signal}: EPERM (errno 1)")), "expected EPERM; {outcome}");
        let denial = protected_denial(&daemon, &agent, "kill");
        assert_eq!(denial["target_pid"], target, "the record names the daemon as the target: {denial}");
    }
    // `status` gets a reply only while the daemon runs and is not stopped.
    let status = daemon.status();
    assert!(status.is_object(), "the daemon must still reply to status after the signals: {status}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn daemon_ptrace_denied() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let target = daemon_pid(&daemon);
    let pid = target.to_string();

    let outcome = daemon.run_probe("ptrace-daemon", &policy, &["ptrace-attach", &pid]);
    assert_eq!(outcome.code, 1, "PTRACE_ATTACH to the daemon must be denied; {outcome}");
    assert!(outcome.has_line(&format!("ptrace {pid}: EPERM (errno 1)")), "expected EPERM; {outcome}");
    let denial = protected_denial(&daemon, "ptrace-daemon", "ptrace");
    assert_eq!(denial["target_pid"], target, "the record names the daemon as the target: {denial}");

    // The kernel checks ptrace access when /proc/PID/mem is opened, and
    // reports the denial as EACCES.
    let mem = format!("/proc/{pid}/mem");
    let outcome = daemon.run_probe("mem-daemon", &policy, &["open", &mem, "write"]);
    assert_eq!(outcome.code, 1, "a write open of the daemon's memory must be denied; {outcome}");
    assert!(outcome.has_line(&format!("open {mem}: EACCES (errno 13)")), "expected EACCES; {outcome}");
    let denial = protected_denial(&daemon, "mem-daemon", "ptrace");
    assert_eq!(denial["target_pid"], target, "the record names the daemon as the target: {denial}");

    let status = daemon.status();
    assert!(status.is_object(), "the daemon must still reply to status: {status}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn ptrace_outside_cgroup_denied() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let mut sleeper = Command::new("/bin/sleep")
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("failed to start sleep: {error}"));
    let target = sleeper.id();
    let pid = target.to_string();

    let outcome = daemon.run_probe("ptrace-outside", &policy, &["ptrace-attach", &pid]);
    let _ = sleeper.kill();
    let _ = sleeper.wait();

    assert_eq!(outcome.code, 1, "PTRACE_ATTACH to a process outside the agent's cgroup must be denied; {outcome}");
    assert!(outcome.has_line(&format!("ptrace {pid}: EPERM (errno 1)")), "expected EPERM; {outcome}");
    let denial = protected_denial(&daemon, "ptrace-outside", "ptrace");
    assert_eq!(denial["target_pid"], target, "the record names the sleeper as the target: {denial}");
    assert_eq!(denial["target_comm"], "sleep", "{denial}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bpf_syscall_denied() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();

    let outcome = daemon.run_probe("bpf", &policy, &["bpf"]);

    assert_eq!(outcome.code, 1, "bpf(2) must be denied to an agent; {outcome}");
    assert!(outcome.has_line("bpf map_create: EPERM (errno 1)"), "expected EPERM; {outcome}");
    protected_denial(&daemon, "bpf", "bpf");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn daemon_folders_denied() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let ledger = daemon.ledger();
    let state = ledger.path().parent().expect("the ledger lies in the state folder");
    let key = state.join("checkpoint.key");
    let mut targets = vec![
        ("state", key.to_str().expect("UTF-8").to_owned(), "read", "lupid-protected-state"),
        ("state-write", key.to_str().expect("UTF-8").to_owned(), "write", "lupid-protected-state"),
        ("socket", policy.to_str().expect("UTF-8").to_owned(), "read", "lupid-protected-socket"),
    ];
    if Path::new("/sys/fs/bpf/lupid").is_dir() {
        targets.push(("pins", "/sys/fs/bpf/lupid".to_owned(), "read", "lupid-protected-bpf"));
    }

    for (name, path, mode, rule) in &targets {
        let agent = format!("folder-{name}");
        let outcome = daemon.run_probe(&agent, &policy, &["open", path, mode]);
        assert_eq!(outcome.code, 1, "opening {path} for {mode} must be denied; {outcome}");
        assert!(outcome.has_line(&format!("open {path}: EPERM (errno 1)")), "expected EPERM; {outcome}");
        let denial = protected_denial(&daemon, &agent, "open");
        assert_eq!(denial["rule"], *rule, "{denial}");
        assert_eq!(denial["path"], path.as_str(), "{denial}");
    }
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn policy_rule_in_state_rejected() {
    let daemon = Daemon::start();
    let ledger = daemon.ledger();
    let state = ledger.path().parent().expect("the ledger lies in the state folder").to_str().expect("UTF-8");
    let text =
        format!("lupid-policy 1\ndefault deny\nread-state: allow open {state}/** read\nallow-exec: allow exec /**\n");
    let policy = daemon.write_policy("state-rule", &text);

    let outcome = daemon.run_probe("state-rule", &policy, &["open", "/etc/hostname", "read"]);

    assert_ne!(outcome.code, 0, "a policy with a rule in the state folder must not start; {outcome}");
    assert!(outcome.stderr.contains("read-state"), "the error must name the rule; {outcome}");
    assert!(outcome.stderr.contains(state), "the error must name the folder; {outcome}");
    let records = ledger.export();
    assert!(decisions(&records, "state-rule", "open").is_empty(), "the probe must never have run: {records:?}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn daemon_folder_names_kept() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let ledger = daemon.ledger();
    let state = ledger.path().parent().expect("the ledger lies in the state folder").to_owned();
    let current = ledger.path().join("CURRENT");
    let key = state.join("checkpoint.key");
    let text = |path: &Path| path.to_str().expect("UTF-8").to_owned();
    let planted = state.join("leases.json.tmp");
    let pinned_map = Path::new("/sys/fs/bpf/lupid/maps/AGENTS");
    let cases = [
        ("unlink-ledger", vec!["unlink".to_owned(), text(&current)], "remove_name", text(&current)),
        ("rename-key", vec!["rename".to_owned(), text(&key), "/var/lib/lupid-stolen.key".to_owned()], "rename", text(&key)),
        (
            "symlink-state",
            vec!["symlink".to_owned(), "/etc/shadow".to_owned(), text(&planted)],
            "create_name",
            text(&planted),
        ),
        ("mkdir-state", vec!["mkdir".to_owned(), text(&state.join("planted"))], "create_name", text(&state.join("planted"))),
        ("unlink-pin", vec!["unlink".to_owned(), text(pinned_map)], "remove_name", text(pinned_map)),
    ];

    for (agent, args, hook, object) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let outcome = daemon.run_probe(agent, &policy, &args);
        assert_eq!(outcome.code, 1, "{agent}: a change in lupid's folders must be denied; {outcome}");
        let denial = protected_denial(&daemon, agent, hook);
        assert_eq!(denial["path"], object.as_str(), "the record names the file: {denial}");
    }
    assert!(current.exists(), "the ledger's CURRENT file is still there");
    assert!(key.exists(), "the signing key is still there");
    assert!(pinned_map.exists(), "the pinned map is still there");
    assert!(!planted.exists() && !state.join("planted").exists(), "nothing was planted in the state folder");

    // A change outside lupid's folders is not affected.
    let scratch = Path::new("/tmp/lupid-scratch-file");
    std::fs::write(scratch, b"x").expect("failed to write the scratch file");
    let outcome = daemon.run_probe("unlink-scratch", &policy, &["unlink", &text(scratch)]);
    assert_eq!(outcome.code, 0, "unlinking a file in /tmp is allowed; {outcome}");
}
