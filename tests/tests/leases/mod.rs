//! Capability leases, modes and policy reloads.
//!
//! A lease is keyed on the agent's name, and the daemon accepts a grant
//! only for a running agent. So each test starts a holder run (`busybox
//! sleep`) that keeps the agent alive while the test grants, revokes and
//! checks. The probe then runs as further runs of the same agent.

mod content;
mod grant;
mod reload;

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use serde_json::Value;

use crate::common::{Daemon, PROBE_BIN};

/// Address and port that the lease tests connect to. The VM puts
/// 203.0.113.7 on `lo`.
pub(crate) const LEASED_ADDR: &str = "203.0.113.7:8443";

/// A policy under which connecting to [`LEASED_ADDR`] needs a lease.
pub(crate) const LEASE_POLICY: &str = "\
lupid-policy 1
default deny
exec-bin:     allow exec    /bin/**
exec-tools:   allow exec    /usr/local/bin/**
read-all:     allow open    /**  read
need-lease:   lease connect 203.0.113.7:8443
";

/// How long a holder run may take to show up in `lupid-agent status`.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);

/// The holder run of an agent, killed when dropped.
pub(crate) struct Holder(Child);

impl Holder {
    /// Starts a holder run of `agent` and waits until the daemon lists it.
    pub(crate) fn start(daemon: &Daemon, agent: &str, policy: &Path) -> Self {
        let child = daemon.spawn_agent(agent, policy, &["/bin/busybox", "sleep", "600"]);
        let holder = Self(child);
        daemon.wait_for_agent(agent, REGISTER_TIMEOUT);
        holder
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `lupid-agent ARGS` and returns its stdout, failing the test unless
/// it exits 0.
pub(crate) fn ctl_ok(daemon: &Daemon, args: &[&str]) -> String {
    let outcome = daemon.ctl(args);
    assert_eq!(outcome.code, 0, "lupid-agent {} must exit 0; {outcome}", args.join(" "));
    outcome.stdout
}

/// Runs `lupid-agent ARGS --json` and parses the JSON that it prints.
pub(crate) fn ctl_json(daemon: &Daemon, args: &[&str]) -> Value {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let stdout = ctl_ok(daemon, &with_json);
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("invalid JSON from {args:?} ({error}): {stdout}"))
}

/// Runs the probe's connect to [`LEASED_ADDR`] as `agent` and returns its
/// exit code: 0 allowed, 1 denied.
pub(crate) fn connect(daemon: &Daemon, agent: &str, policy: &Path) -> i32 {
    daemon.run_agent(agent, policy, None, &[PROBE_BIN, "connect", LEASED_ADDR]).code
}
