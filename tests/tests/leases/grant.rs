//! The lease lifecycle: request, grant, uses, deadline, revoke, restart,
//! wall clock.

use std::thread;
use std::time::Duration;

use crate::common::ledger::records_of;
use crate::common::{Daemon, Listener, require_bpf_lsm};

use super::{Holder, LEASE_POLICY, LEASED_ADDR, connect, ctl_json, ctl_ok};

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn requested_lease_ends_after_max_uses() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("lease", LEASE_POLICY);
    let listener = Listener::bind(LEASED_ADDR);
    let _holder = Holder::start(&daemon, "leasee", &policy);

    assert_eq!(connect(&daemon, "leasee", &policy), 1, "without a lease the connect is denied");
    assert_eq!(listener.accepted(), 0, "a denied connect must not reach the listener");
    let pending = ctl_json(&daemon, &["pending"]);
    let request = pending
        .as_array()
        .and_then(|requests| requests.iter().find(|r| r["agent"] == "leasee"))
        .unwrap_or_else(|| panic!("the denial must be an open request: {pending}"));
    assert_eq!(request["capability"], format!("connect {LEASED_ADDR} tcp"), "a request names the protocol it saw: {request}");
    assert_eq!(request["rule"], "need-lease", "{request}");
    let request_id = request["id"].as_u64().expect("a request id").to_string();

    ctl_ok(
        &daemon,
        &[
            "lease",
            "grant",
            "--request",
            &request_id,
            "--ttl",
            "10m",
            "--uses",
            "2",
            "--by",
            "alice",
            "--reason",
            "deploy",
        ],
    );
    assert_eq!(connect(&daemon, "leasee", &policy), 0, "the first use is allowed");
    assert_eq!(connect(&daemon, "leasee", &policy), 0, "the second use is allowed");
    assert_eq!(listener.accepted(), 2, "both allowed connects reach the listener");
    assert_eq!(connect(&daemon, "leasee", &policy), 1, "a third use is past the limit");
    assert_eq!(listener.accepted(), 0, "the denied third connect must not reach the listener");

    let records = daemon.ledger().wait_for("the lease's grant, uses and expiry", |records| {
        !records_of(records, "lease_expired", "leasee").is_empty()
    });
    let granted = records_of(&records, "lease_granted", "leasee");
    assert_eq!(granted.len(), 1, "one grant record: {granted:?}");
    assert_eq!(granted[0]["granted_by"], "alice", "{}", granted[0]);
    assert_eq!(granted[0]["reason"], "deploy", "{}", granted[0]);
    assert_eq!(granted[0]["rule"], "need-lease", "{}", granted[0]);
    let lease_id = granted[0]["lease_id"].clone();
    let uses: Vec<_> = records_of(&records, "decision", "leasee")
        .into_iter()
        .filter(|d| d["reason"] == "lease" && d["verdict"] == "allow")
        .collect();
    assert_eq!(uses.len(), 2, "each use is a decision naming the lease: {uses:?}");
    for decision in &uses {
        assert_eq!(decision["lease_id"], lease_id, "{decision}");
        assert_eq!(decision["rule"], "need-lease", "{decision}");
    }
    let expired = records_of(&records, "lease_expired", "leasee");
    assert_eq!(expired[0]["cause"], "uses", "{}", expired[0]);
    assert_eq!(daemon.ledger().verify().code, 0, "the ledger verifies");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn lease_ends_at_deadline_and_revoke() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("lease", LEASE_POLICY);
    let _listener = Listener::bind(LEASED_ADDR);
    let _holder = Holder::start(&daemon, "timed", &policy);
    let capability = format!("connect {LEASED_ADDR}");

    ctl_ok(
        &daemon,
        &[
            "lease",
            "grant",
            "--agent",
            "timed",
            "--allow",
            &capability,
            "--ttl",
            "3s",
            "--by",
            "bob",
            "--reason",
            "short",
        ],
    );
    assert_eq!(connect(&daemon, "timed", &policy), 0, "allowed while the lease is in force");
    thread::sleep(Duration::from_secs(4));
    assert_eq!(connect(&daemon, "timed", &policy), 1, "denied after the deadline");

    ctl_ok(
        &daemon,
        &[
            "lease",
            "grant",
            "--agent",
            "timed",
            "--allow",
            &capability,
            "--ttl",
            "10m",
            "--by",
            "bob",
            "--reason",
            "long",
        ],
    );
    assert_eq!(connect(&daemon, "timed", &policy), 0, "allowed under the new lease");
    let second =
        daemon.ctl(&["lease", "grant", "--agent", "timed", "--allow", &capability, "--ttl", "10m", "--reason", "again"]);
    assert_ne!(second.code, 0, "a second live lease on the same capability is refused; {second}");
    assert!(second.stderr.contains("already holds lease"), "the refusal names the lease it keeps; {second}");
    let leases = ctl_json(&daemon, &["lease", "list"]);
    let lease_id = leases[0]["id"].as_u64().unwrap_or_else(|| panic!("one live lease: {leases}")).to_string();
    ctl_ok(&daemon, &["lease", "revoke", &lease_id, "--by", "carol", "--reason", "done"]);
    assert_eq!(connect(&daemon, "timed", &policy), 1, "denied after the revoke");

    let records = daemon.ledger().wait_for("a deadline expiry and a revoke", |records| {
        !records_of(records, "lease_expired", "timed").is_empty()
            && !records_of(records, "lease_revoked", "timed").is_empty()
    });
    let expired = records_of(&records, "lease_expired", "timed");
    assert_eq!(expired[0]["cause"], "ttl", "{}", expired[0]);
    let revoked = records_of(&records, "lease_revoked", "timed");
    assert_eq!(revoked[0]["revoked_by"], "carol", "{}", revoked[0]);
    assert!(ctl_json(&daemon, &["lease", "list"]).as_array().is_some_and(Vec::is_empty), "no lease is left");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn restart_restores_only_live_leases() {
    require_bpf_lsm();
    let mut daemon = Daemon::start();
    let policy = daemon.write_policy("lease", LEASE_POLICY);
    let _listener = Listener::bind(LEASED_ADDR);
    let capability = format!("connect {LEASED_ADDR}");
    {
        let _holder = Holder::start(&daemon, "durable", &policy);
        ctl_ok(
            &daemon,
            &["lease", "grant", "--agent", "durable", "--allow", &capability, "--ttl", "10m", "--reason", "kept"],
        );
        // A second lease on the same capability is refused, so this one
        // names the protocol.
        let udp = format!("{capability} udp");
        ctl_ok(&daemon, &["lease", "grant", "--agent", "durable", "--allow", &udp, "--ttl", "10m", "--reason", "revoked"]);
        ctl_ok(&daemon, &["lease", "revoke", "2", "--reason", "gone"]);
    }
    daemon.restart();

    let leases = ctl_json(&daemon, &["lease", "list"]);
    let ids: Vec<_> = leases.as_array().expect("a list").iter().map(|lease| lease["id"].clone()).collect();
    assert_eq!(ids, [serde_json::json!(1)], "only the kept lease comes back: {leases}");
    let outcome = daemon.run_agent("durable", &policy, None, &[crate::common::PROBE_BIN, "connect", LEASED_ADDR]);
    assert_eq!(outcome.code, 0, "the restored lease allows the connect; {outcome}\ndaemon log:\n{}", daemon.log());
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn wall_clock_change_keeps_deadline() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("lease", LEASE_POLICY);
    let _listener = Listener::bind(LEASED_ADDR);
    let _holder = Holder::start(&daemon, "clock", &policy);
    ctl_ok(
        &daemon,
        &[
            "lease",
            "grant",
            "--agent",
            "clock",
            "--allow",
            &format!("connect {LEASED_ADDR}"),
            "--ttl",
            "8s",
            "--reason",
            "clock",
        ],
    );

    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid, writable timespec.
    assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &raw mut now) }, 0, "read the wall clock");
    let shift = |seconds: i64| {
        let moved = libc::timespec { tv_sec: now.tv_sec + seconds, tv_nsec: 0 };
        // SAFETY: `moved` is a valid timespec. Setting the clock needs root,
        // which the test has in the VM.
        let result = unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &raw const moved) };
        assert_eq!(result, 0, "set the wall clock: {}", std::io::Error::last_os_error());
    };
    shift(86_400);
    let ahead = connect(&daemon, "clock", &policy);
    shift(-86_400);
    let behind = connect(&daemon, "clock", &policy);
    shift(0);
    assert_eq!(ahead, 0, "a day forward leaves the lease in force");
    assert_eq!(behind, 0, "a day back leaves the lease in force");
    thread::sleep(Duration::from_secs(9));
    assert_eq!(connect(&daemon, "clock", &policy), 1, "the lease still ends 8 s after its grant");
}
