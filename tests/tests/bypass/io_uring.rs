//! `io_uring` operations: an `OPENAT` and `READ` of the secret, a
//! `CONNECT` and a UDP `SENDMSG` to a denied address, each inline and with
//! `IOSQE_ASYNC` (on an io-wq worker thread). The operations reach the
//! same LSM hooks as the system calls, in a thread of the agent's process
//! and cgroup, so the records name the agent, and mark the action
//! `via: io_uring`.

use serde_json::Value;

use crate::common::ledger::{decisions, records_of, u64_field, wait_decision};
use crate::common::{Daemon, Listener, OK_FILE, PROBE_BIN, Receiver, SECRET, require_bpf_lsm};

use super::{USERS, agent_name, assert_denied, probe_str};

/// Checks that `denial` belongs to the probe process of `agent`'s run: the
/// process whose exec of the probe is on record, in the run's cgroup.
fn assert_attributed(agent: &str, denial: &Value, records: &[Value]) {
    let identities = records_of(records, "identity", agent);
    let identity = identities.first().unwrap_or_else(|| panic!("no identity record of {agent}"));
    let probe_exec = decisions(records, agent, "exec")
        .into_iter()
        .find(|record| record["path"] == PROBE_BIN)
        .unwrap_or_else(|| panic!("no exec decision of {PROBE_BIN} for {agent}"));
    assert_eq!(denial["agent"], agent, "{denial}");
    assert_eq!(denial["agent_id"], identity["agent_id"], "{denial}");
    assert_eq!(u64_field(denial, "tgid"), u64_field(probe_exec, "tgid"), "the submitting process decided: {denial}");
    assert_eq!(u64_field(denial, "cgroup_id"), u64_field(identity, "cgroup_id"), "{denial}");
    assert_eq!(denial["via"], "io_uring", "{denial}");
    assert_eq!(probe_exec["via"], "syscall", "an execve is a plain system call: {probe_exec}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_io_uring_open_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let ledger = daemon.ledger();

    for user in USERS {
        for mode in ["inline", "async"] {
            let agent = agent_name(&format!("uring-open-{mode}"), user);
            let mut args = vec!["uring-open", SECRET];
            if mode == "async" {
                args.push("async");
            }
            let outcome = probe_str(&daemon, &agent, &policy, user, &args);
            assert_denied(&outcome, &format!("uring-open {SECRET}"), "deny-secrets covers io_uring opens");
            assert!(!outcome.stdout.contains("bytes"), "no byte of the secret may be read; {outcome}");
            let (denial, records) = wait_decision(&ledger, &agent, "open", "deny");
            assert_eq!(denial["path"], SECRET, "{denial}");
            assert_eq!(denial["rule"], "deny-secrets", "{denial}");
            assert_attributed(&agent, &denial, &records);
        }

        let agent = agent_name("uring-open-control", user);
        let outcome = probe_str(&daemon, &agent, &policy, user, &["uring-open", OK_FILE, "async"]);
        assert_eq!(outcome.code, 0, "allow-open covers {OK_FILE}; {outcome}");
        assert!(outcome.has_line(&format!("uring-open {OK_FILE}: ok (2 bytes)")), "{outcome}");
    }
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_io_uring_network_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let ledger = daemon.ledger();
    let outside = Listener::bind("203.0.113.7:443");
    let outside_dns = Receiver::bind("203.0.113.7:53");

    for mode in ["inline", "async"] {
        let extra: &[&str] = if mode == "async" { &["async"] } else { &[] };

        let agent = format!("uring-connect-{mode}");
        let args: Vec<&str> = ["uring-connect", "203.0.113.7:443"].iter().chain(extra).copied().collect();
        let outcome = probe_str(&daemon, &agent, &policy, None, &args);
        assert_denied(&outcome, "uring-connect 203.0.113.7:443", "no rule allows 203.0.113.7:443");
        let (denial, records) = wait_decision(&ledger, &agent, "connect", "deny");
        assert_eq!(denial["addr"], "203.0.113.7", "{denial}");
        assert_eq!(denial["protocol"], "tcp", "{denial}");
        assert_attributed(&agent, &denial, &records);

        let agent = format!("uring-sendmsg-{mode}");
        let args: Vec<&str> = ["uring-sendmsg", "203.0.113.7:53"].iter().chain(extra).copied().collect();
        let outcome = probe_str(&daemon, &agent, &policy, None, &args);
        assert_denied(&outcome, "uring-sendmsg 203.0.113.7:53", "no rule allows 203.0.113.7:53");
        let (denial, records) = wait_decision(&ledger, &agent, "send", "deny");
        assert_eq!(denial["port"], 53, "{denial}");
        assert_eq!(denial["protocol"], "udp", "{denial}");
        assert_attributed(&agent, &denial, &records);
    }
    assert_eq!(outside.accepted(), 0, "no connection may reach 203.0.113.7:443");
    assert_eq!(outside_dns.received(), 0, "no datagram may reach 203.0.113.7:53");
}
