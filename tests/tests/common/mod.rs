//! Fixture shared by the VM tests.
//!
//! Each test starts its own daemon with [`Daemon::start`], in a fresh state
//! directory under `/var/lib`, and the daemon is stopped when the test ends.
//! A fresh daemon per test costs a BPF load each time, which is slow under
//! TCG, but it gives every test a ledger that contains only its own records and
//! lets the ledger tests stop the daemon without disturbing other tests.
//!
//! The files the policy talks about (`/srv/secrets`, `/usr/bin/curl`, …)
//! are created once per test binary by [`fixture::install`], which
//! `Daemon::start` calls.

pub(crate) mod daemon;
pub(crate) mod fixture;
pub(crate) mod ledger;
pub(crate) mod net;
pub(crate) mod process;

use std::fs;
use std::path::Path;

pub(crate) use daemon::Daemon;
pub(crate) use fixture::{CURL, OK_FILE, SECRET, SECRETS_LINK, TOOL_LINK};
pub(crate) use ledger::Ledger;
pub(crate) use net::{Listener, Receiver, UnixSocketListener};
pub(crate) use process::Outcome;

/// The daemon and agent launcher, as the VM image installs it.
pub(crate) const AGENT_BIN: &str = "/usr/local/bin/lupid-agent";
/// The ledger tool, as the VM image installs it.
pub(crate) const LEDGER_BIN: &str = "/usr/local/bin/lupid-ledger";
/// The probe the tests run as an agent, as the VM image installs it.
pub(crate) const PROBE_BIN: &str = "/usr/local/bin/lupid-probe";
/// The tool that edits a stored ledger record, as the VM image installs it.
pub(crate) const TAMPER_BIN: &str = "/usr/local/bin/lupid-ledger-tamper";

/// Panics unless this process is root, the kernel runs the BPF LSM, and the
/// lupid binaries are installed. These tests must never pass without
/// running, so a missing requirement is a failure, not a skip.
pub(crate) fn require_bpf_lsm() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(euid == 0, "these tests need root, but the effective uid is {euid}; run them with `cargo xtask vm-test`");

    let lsm_list = "/sys/kernel/security/lsm";
    let active = fs::read_to_string(lsm_list)
        .unwrap_or_else(|error| panic!("cannot read {lsm_list} ({error}); is securityfs mounted?"));
    assert!(
        active.trim().split(',').any(|name| name == "bpf"),
        "the kernel does not run the BPF LSM: {lsm_list} lists {:?}; boot with `lsm=...,bpf`",
        active.trim()
    );

    for binary in [AGENT_BIN, LEDGER_BIN, PROBE_BIN, TAMPER_BIN] {
        assert!(Path::new(binary).is_file(), "missing {binary}; the VM image must install it");
    }
}
