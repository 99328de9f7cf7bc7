//! Built-in protections: a labeled agent may not leave its cgroup, make
//! namespaces or mounts, reach the daemon, call `bpf(2)`, open raw sockets,
//! make hard links or open the daemon's folders, whatever rules its policy
//! contains.
//! Each test checks the errno the agent gets, that the action had no
//! effect, and the ledger's denial with reason `protected`.
//!
//! The agent runs as root unless a test passes a user, so the kernel's own
//! permission checks pass and only lupid can deny.

mod daemon;
mod escape;
mod mounts;
mod objects;

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::common::Daemon;
use crate::common::ledger::wait_decision;

/// An unprivileged user for the agents of the unprivileged variants.
const AGENT_UID: u32 = 1000;

/// Waits for the denial of `agent` on `hook`, checks that a built-in
/// protection made it, and returns it.
fn protected_denial(daemon: &Daemon, agent: &str, hook: &str) -> Value {
    let (denial, _) = wait_decision(&daemon.ledger(), agent, hook, "deny");
    assert_eq!(denial["reason"], "protected", "a built-in protection must make the denial: {denial}");
    denial
}

/// Returns the daemon's process id, from the ledger's `daemon_start` record.
fn daemon_pid(daemon: &Daemon) -> u32 {
    let records = daemon.ledger().export();
    let start = records
        .iter()
        .rev()
        .find(|record| record["kind"] == "daemon_start")
        .unwrap_or_else(|| panic!("the ledger has no daemon_start record: {records:?}"));
    let pid = start["pid"].as_u64().unwrap_or_else(|| panic!("daemon_start has no pid: {start}"));
    u32::try_from(pid).expect("a process id fits in u32")
}

/// Returns the size of `path` in bytes, and panics when it cannot be read.
fn file_size(path: &Path) -> u64 {
    fs::metadata(path).unwrap_or_else(|error| panic!("failed to stat {}: {error}", path.display())).len()
}
