//! Reaching the daemon: signals (SIGIO included), ptrace, resource limits
//! and priorities, `bpf(2)`, and opens and changes of files in the
//! daemon's folders.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{daemon_pid, file_size, protected_denial};
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
    let state = daemon.state_dir();
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
        // A rename names both files; its old name is the one in lupid's folder.
        let field = if *hook == "rename" { "old_path" } else { "path" };
        assert_eq!(denial[field], object.as_str(), "the record names the file: {denial}");
    }
    assert!(current.exists(), "the ledger's CURRENT file is still there");
    assert!(key.exists(), "the signing key is still there");
    assert!(pinned_map.exists(), "the pinned map is still there");
    assert!(!planted.exists(), "no symlink was planted in the state folder");
    assert!(!state.join("planted").exists(), "no folder was planted in the state folder");

    // A change outside lupid's folders is not affected.
    let scratch = Path::new("/tmp/lupid-scratch-file");
    std::fs::write(scratch, b"x").expect("failed to write the scratch file");
    let outcome = daemon.run_probe("unlink-scratch", &policy, &["unlink", &text(scratch)]);
    assert_eq!(outcome.code, 0, "unlinking a file in /tmp is allowed; {outcome}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn daemon_folder_files_kept() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let ledger = daemon.ledger();
    let state = daemon.state_dir();
    let current = ledger.path().join("CURRENT");
    let key = state.join("checkpoint.key");
    let current_text = current.to_str().expect("UTF-8");
    let key_text = key.to_str().expect("UTF-8");
    let current_size = file_size(&current);
    let key_mode = file_mode(&key);
    assert_eq!(key_mode, 0o600, "the daemon writes its signing key with mode 0600");

    let outcome = daemon.run_probe("truncate-ledger", &policy, &["truncate", current_text]);
    assert_eq!(outcome.code, 1, "truncating the ledger's CURRENT file must be denied; {outcome}");
    assert!(outcome.has_line(&format!("truncate {current_text}: EPERM (errno 1)")), "expected EPERM; {outcome}");
    let denial = protected_denial(&daemon, "truncate-ledger", "truncate");
    assert_eq!(denial["path"], current_text, "the record names the file: {denial}");
    assert_eq!(file_size(&current), current_size, "the ledger's CURRENT file keeps its size");

    let outcome = daemon.run_probe("chmod-key", &policy, &["chmod", key_text, "0644"]);
    assert_eq!(outcome.code, 1, "a chmod of the signing key must be denied; {outcome}");
    assert!(outcome.has_line(&format!("chmod {key_text} 0644: EPERM (errno 1)")), "expected EPERM; {outcome}");
    let denial = protected_denial(&daemon, "chmod-key", "set_attr");
    assert_eq!(denial["path"], key_text, "the record names the file: {denial}");
    assert_eq!(file_mode(&key), key_mode, "the signing key keeps mode 0600");

    let outcome = daemon.run_probe("setxattr-key", &policy, &["setxattr", key_text, "user.lupid-test", "planted"]);
    assert_eq!(outcome.code, 1, "setting an extended attribute on the signing key must be denied; {outcome}");
    let line = format!("setxattr {key_text} user.lupid-test: EPERM (errno 1)");
    assert!(outcome.has_line(&line), "expected EPERM; {outcome}");
    let denial = protected_denial(&daemon, "setxattr-key", "set_attr");
    assert_eq!(denial["path"], key_text, "the record names the file: {denial}");
    assert!(!has_xattr(&key, "user.lupid-test"), "the signing key has no user.lupid-test attribute");

    let verify = ledger.verify();
    assert_eq!(verify.code, 0, "the ledger must still verify after the denied changes; {verify}");

    // A change of a file outside lupid's folders is not affected.
    let scratch = Path::new("/tmp/lupid-scratch-mode");
    fs::write(scratch, b"x").expect("failed to write the scratch file");
    fs::set_permissions(scratch, fs::Permissions::from_mode(0o600)).expect("failed to chmod the scratch file");
    let scratch_text = scratch.to_str().expect("UTF-8");
    let outcome = daemon.run_probe("chmod-scratch", &policy, &["chmod", scratch_text, "0644"]);
    assert_eq!(outcome.code, 0, "a chmod of a file in /tmp is allowed; {outcome}");
    assert_eq!(file_mode(scratch), 0o644, "the allowed chmod changed the mode");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn daemon_limits_and_sigio_denied() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let target = daemon_pid(&daemon);
    let pid = target.to_string();
    let cpu_limit = cpu_time_limit(target);
    let nice = stat_fields(target)[STAT_NICE].clone();

    // An allowed 1 s CPU limit would end the daemon with SIGXCPU once its
    // CPU time passes 1 s.
    let outcome = daemon.run_probe("prlimit-daemon", &policy, &["prlimit", &pid]);
    assert_eq!(outcome.code, 1, "prlimit on the daemon must be denied; {outcome}");
    assert!(outcome.has_line(&format!("prlimit {pid} RLIMIT_CPU: EPERM (errno 1)")), "expected EPERM; {outcome}");
    let denial = protected_denial(&daemon, "prlimit-daemon", "task_set");
    assert_eq!(denial["target_pid"], target, "the record names the daemon as the target: {denial}");
    assert_eq!(cpu_time_limit(target), cpu_limit, "the daemon keeps its CPU time limit");

    let outcome = daemon.run_probe("nice-daemon", &policy, &["setpriority", &pid, "19"]);
    assert_eq!(outcome.code, 1, "setpriority on the daemon must be denied; {outcome}");
    assert!(outcome.has_line(&format!("setpriority {pid} 19: EPERM (errno 1)")), "expected EPERM; {outcome}");
    let denial = protected_denial(&daemon, "nice-daemon", "task_set");
    assert_eq!(denial["target_pid"], target, "the record names the daemon as the target: {denial}");
    assert_eq!(stat_fields(target)[STAT_NICE], nice, "the daemon keeps its nice value");

    // The kernel sends SIGIO signals from the writer's `write`, which
    // succeeds either way, so the probe reports ok and only the daemon and
    // the ledger show the denial.
    let outcome = daemon.run_probe("sigio-daemon", &policy, &["sigio", &pid]);
    assert_eq!(outcome.code, 0, "the pipe setup and the write succeed; {outcome}");
    assert!(outcome.has_line_starting(&format!("sigio {pid}: ok")), "expected the sigio line; {outcome}");
    let status = daemon.status();
    assert!(status.is_object(), "the daemon must still reply to status after the SIGIO: {status}");
    let fields = stat_fields(target);
    assert_ne!(fields[STAT_STATE], "Z", "the daemon must not be a zombie after the SIGIO: {fields:?}");
    let denial = protected_denial(&daemon, "sigio-daemon", "kill");
    assert_eq!(denial["target_pid"], target, "the record names the daemon as the target: {denial}");
}

/// Indexes into [`stat_fields`] of the state (field 3 of `proc_pid_stat(5)`)
/// and the nice value (field 19).
const STAT_STATE: usize = 0;
const STAT_NICE: usize = 16;

/// Returns the fields of `/proc/PID/stat` after the command name, which
/// ends at the last `)`, starting with the state.
fn stat_fields(pid: u32) -> Vec<String> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).unwrap_or_else(|error| panic!("failed to read {path}: {error}"));
    let (_, fields) = text.rsplit_once(')').unwrap_or_else(|| panic!("{path} has no command name: {text}"));
    fields.split_whitespace().map(str::to_owned).collect()
}

/// Returns the `Max cpu time` line of `/proc/PID/limits`.
fn cpu_time_limit(pid: u32) -> String {
    let path = format!("/proc/{pid}/limits");
    let text = fs::read_to_string(&path).unwrap_or_else(|error| panic!("failed to read {path}: {error}"));
    let line = text.lines().find(|line| line.starts_with("Max cpu time"));
    line.unwrap_or_else(|| panic!("{path} has no Max cpu time line: {text}")).to_owned()
}

/// Returns the permission bits of `path`, set-id and sticky bits included.
fn file_mode(path: &Path) -> u32 {
    let metadata = fs::metadata(path).unwrap_or_else(|error| panic!("failed to stat {}: {error}", path.display()));
    metadata.permissions().mode() & 0o7777
}

/// Returns whether `path` has the extended attribute `name`. `ENODATA`
/// (no such attribute) and `EOPNOTSUPP` (a file system without user
/// attributes) return false, and any other error panics.
fn has_xattr(path: &Path, name: &str) -> bool {
    let path_c = CString::new(path.to_str().expect("UTF-8")).expect("a path contains no NUL byte");
    let name_c = CString::new(name).expect("an attribute name contains no NUL byte");
    // SAFETY: both names are NUL-terminated strings that outlive the call,
    // and with a null buffer of size 0 getxattr returns only the value's size.
    let size = unsafe { libc::getxattr(path_c.as_ptr(), name_c.as_ptr(), std::ptr::null_mut(), 0) };
    if size >= 0 {
        return true;
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::ENODATA | libc::EOPNOTSUPP) => false,
        _ => panic!("getxattr {name} of {} failed: {error}", path.display()),
    }
}
