//! Fileless exec: a program copied into a memfd and run with `fexecve`,
//! through `/proc/self/fd/N`, with a direct `execveat` system call, or
//! from `/dev/shm`, and a script in a memfd. `bprm_check_security` judges
//! the file the kernel runs, whose path names no allowed folder, so an
//! exec allowlist denies each one.
//!
//! A deny rule on a path cannot catch a byte-identical copy: under P0,
//! which denies `/usr/bin/curl` by path only, the memfd copy runs. Use an
//! allowlist or a content rule for programs.

use std::path::Path;

use crate::common::ledger::{wait_decision, wait_decision_where};
use crate::common::{CURL, Daemon, require_bpf_lsm};

use super::{POLICY_ALLOWLIST, USERS, agent_name, assert_denied, copy_busybox, make_dir, probe_str};

/// The copy in `/dev/shm`.
const SHM_COPY: &str = "/dev/shm/lupid-bypass-x";

/// Mounts a tmpfs on `/dev/shm` when the VM has none there.
fn ensure_dev_shm() {
    make_dir(Path::new("/dev/shm"));
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("failed to read /proc/self/mounts");
    if !mounts.lines().any(|line| line.split(' ').nth(1) == Some("/dev/shm")) {
        let status = std::process::Command::new("/bin/busybox")
            .args(["mount", "-t", "tmpfs", "tmpfs", "/dev/shm"])
            .status()
            .expect("failed to run mount");
        assert!(status.success(), "mounting a tmpfs on /dev/shm failed: {status}");
    }
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_fileless_exec_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("allowlist", POLICY_ALLOWLIST);
    let ledger = daemon.ledger();
    ensure_dev_shm();
    copy_busybox(Path::new(SHM_COPY));

    for user in USERS {
        for how in ["fexecve", "procfd", "execveat"] {
            let agent = agent_name(&format!("memfd-{how}"), user);
            let outcome = probe_str(&daemon, &agent, &policy, user, &["memfd-exec", CURL, how, "curl"]);
            assert_denied(&outcome, &format!("exec memfd:kworker via {how}"), "no exec rule covers a memfd");
            let (denial, _) = wait_decision(&ledger, &agent, "exec", "deny");
            let path = denial["path"].as_str().unwrap_or_default();
            assert!(path.starts_with("/memfd:kworker"), "the ledger names the memfd: {denial}");
            assert_eq!(denial["reason"], "default", "the allowlist's default denies: {denial}");
            assert_eq!(denial["path_truncated"], false, "{denial}");
        }

        let agent = agent_name("memfd-script", user);
        let outcome = probe_str(&daemon, &agent, &policy, user, &["memfd-script"]);
        assert_denied(&outcome, "exec memfd:kworker script", "a script in a memfd is judged as the memfd");
        let (denial, _) = wait_decision(&ledger, &agent, "exec", "deny");
        assert!(denial["path"].as_str().unwrap_or_default().starts_with("/memfd:kworker"), "{denial}");

        let agent = agent_name("shm-copy", user);
        let outcome = probe_str(&daemon, &agent, &policy, user, &["exec", SHM_COPY, "id"]);
        assert_denied(&outcome, &format!("exec {SHM_COPY}"), "no exec rule covers /dev/shm");
        let (denial, _) = wait_decision(&ledger, &agent, "exec", "deny");
        assert_eq!(denial["path"], SHM_COPY, "{denial}");
    }
}

/// Under P0, whose only exec denial is the path `/usr/bin/curl`, a memfd
/// copy of that binary runs: path rules never judge content.
#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_path_denylist_misses_copy() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();

    let outcome = probe_str(&daemon, "memfd-p0", &policy, None, &["memfd-exec", CURL, "fexecve", "true"]);
    assert_eq!(outcome.code, 0, "allow-exec covers the memfd, so busybox runs as true; {outcome}");
    let (allowed, _) = wait_decision_where(&daemon.ledger(), "memfd-p0", "exec", "allow", |r| {
        r["path"].as_str().is_some_and(|path| path.starts_with("/memfd:kworker"))
    });
    assert_eq!(allowed["rule"], "allow-exec", "{allowed}");
}
