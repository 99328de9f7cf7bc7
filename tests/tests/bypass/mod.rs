//! Bypass attempts. Each file takes one way around a rule that the plain
//! system call would meet: a link, a descriptor, a fileless program, an
//! address in another spelling, a send without connect, `io_uring` or a
//! stopped daemon. Each test checks the errno the agent gets, that the
//! forbidden side effect did not happen (bytes read, listener hits), and
//! the ledger record of the decision (rule, verdict, resolved object).
//!
//! File cases run as root and as uid 1001 (`--user`), the unprivileged
//! agent. The secret is world-readable, so only lupid can deny it.
//!
//! The ledger's resistance to cut, deleted and re-chained records is
//! tested where the ledger is built, and this folder adds only what those
//! tests lack:
//!
//! | attack on the ledger | test |
//! | --- | --- |
//! | cut the last records, then verify | `ledger/tests/pinned.rs` `cut_tail_beyond_ledger`; `ledger/tests/tamper.rs` `deleted_last_record`, `head_behind_last_record` |
//! | delete the whole store, then verify | `ledger/tests/pinned.rs` `deleted_store_missing`, `deleted_store_recreated_empty` |
//! | rewrite a record and recompute every later hash without the key | `ledger/tests/pinned.rs` `rechained_history_root_mismatch`, `rechained_with_own_key_rejected`; a changed record in the daemon's own ledger: `ledger::tamper` |
//! | SIGKILL during appends, then reopen | `ledger/tests/crash.rs` `kill_during_appends`; the real daemon killed under load and started again: `failure::daemon_gone::killed_daemon_keeps_enforcing` |

mod datagrams;
mod descriptors;
mod fileless_exec;
mod hostile_names;
mod io_uring;
mod long_paths;
mod magic_links;
mod mapped_addresses;
mod renames;
mod redteam;
mod ring_pressure;
mod sockets;
mod symlinks;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::fixture::hex;
use crate::common::ledger::decisions;
use crate::common::process;
use crate::common::{Daemon, Outcome, PROBE_BIN};

/// The unprivileged user the agents run as with `--user`.
pub(crate) const AGENT_UID: u32 = 1001;

/// How long one agent run may take, the probe's 3 s connect timeout and a
/// TCG-emulated exec included.
const RUN_TIMEOUT: Duration = Duration::from_mins(2);

/// An exec allowlist for the VM: programs run only from the system
/// folders (busybox is in `/bin`, the probe in `/usr/local/bin`), opens follow
/// P0 plus a denied subtree for the long path cases, and one loopback port
/// may be reached.
pub(crate) const POLICY_ALLOWLIST: &str = "\
lupid-policy 1
default deny
deny-secrets: deny  open    /srv/secrets/**          read,write
deny-deep:    deny  open    /home/agent/work/deep/** read,write
allow-open:   allow open    /**                      read,write
deny-curl:    deny  exec    /usr/bin/curl
exec-usr-bin: allow exec    /usr/bin/**
exec-usr-lib: allow exec    /usr/lib/**
exec-bin:     allow exec    /bin/**
exec-tools:   allow exec    /usr/local/bin/**
allow-local:  allow connect 127.0.0.1/32:8080
";

/// The users each file case runs as: root, then the unprivileged agent.
pub(crate) const USERS: [Option<u32>; 2] = [None, Some(AGENT_UID)];

/// Returns `base` with a suffix naming `user`, so every run of a case as
/// another user gets its own agent name.
pub(crate) fn agent_name(base: &str, user: Option<u32>) -> String {
    match user {
        Some(uid) => format!("{base}-uid{uid}"),
        None => format!("{base}-root"),
    }
}

/// Runs `lupid-probe ARGS` as `agent`, as `user` when given. Arguments are
/// byte strings, so a test can pass names that are not UTF-8.
pub(crate) fn probe(daemon: &Daemon, agent: &str, policy: &Path, user: Option<u32>, args: &[&OsStr]) -> Outcome {
    let mut command = daemon.run_command(agent, policy, user, &[PROBE_BIN]);
    command.args(args);
    process::run(&mut command, RUN_TIMEOUT)
}

/// As [`probe`], for UTF-8 arguments.
pub(crate) fn probe_str(daemon: &Daemon, agent: &str, policy: &Path, user: Option<u32>, args: &[&str]) -> Outcome {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    probe(daemon, agent, policy, user, &args)
}

/// Runs `command` (its arguments after the program) with a timeout.
pub(crate) fn run(command: &mut Command) -> Outcome {
    process::run(command, RUN_TIMEOUT)
}

/// Asserts that the probe reported a denial with `EPERM` or `EACCES` on
/// the line that starts with `prefix`, and exited 1.
pub(crate) fn assert_denied(outcome: &Outcome, prefix: &str, why: &str) {
    assert_eq!(outcome.code, 1, "{why}: the probe must exit 1 for a denial; {outcome}");
    let denied = outcome.stdout.lines().any(|line| {
        line.starts_with(prefix) && (line.ends_with(": EPERM (errno 1)") || line.ends_with(": EACCES (errno 13)"))
    });
    assert!(denied, "{why}: expected a line starting with {prefix:?} that ends in EPERM or EACCES; {outcome}");
}

/// Creates the folder `path` and its parents with mode 0755, so uid 1001
/// can reach what lies inside.
pub(crate) fn make_dir(path: &Path) {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .unwrap_or_else(|error| panic!("failed to create {}: {error}", path.display()));
}

/// Copies busybox to `path` with mode 0755, for a program that no rule
/// names by its path.
pub(crate) fn copy_busybox(path: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    fs::copy("/bin/busybox", path)
        .unwrap_or_else(|error| panic!("failed to copy busybox to {}: {error}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|error| panic!("failed to chmod {}: {error}", path.display()));
    path.to_owned()
}

/// Returns the decisions of `agent` on `hook` whose `path_hex` (for a
/// name that is not UTF-8) or `path` names exactly `path`.
pub(crate) fn decisions_on_path<'a>(records: &'a [Value], agent: &str, hook: &str, path: &[u8]) -> Vec<&'a Value> {
    let hex = hex(path);
    decisions(records, agent, hook)
        .into_iter()
        .filter(|record| match record.get("path_hex") {
            Some(stored) => stored == hex.as_str(),
            None => record["path"].as_str().map(str::as_bytes) == Some(path),
        })
        .collect()
}
