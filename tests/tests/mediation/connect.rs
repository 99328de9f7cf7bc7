//! The connect hook (`socket_connect`). Each test listens on the target
//! first, so a connect that lupid wrongly allows shows up as an accepted
//! connection rather than as ECONNREFUSED.

use crate::common::ledger::{find_decision, wait_decision};
use crate::common::{Daemon, Listener, Receiver, require_bpf_lsm};

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn allowed_port_connects() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let listener = Listener::bind("127.0.0.1:8080");

    let outcome = daemon.run_probe("connect-allowed", &policy, &["connect", "127.0.0.1:8080"]);

    assert_eq!(outcome.code, 0, "allow-local covers 127.0.0.1:8080; {outcome}");
    assert!(outcome.has_line("connect 127.0.0.1:8080: ok (connected)"), "expected a connected report; {outcome}");
    assert_eq!(listener.accepted(), 1, "the listener must accept the probe's one connection");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn unlisted_address_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let listener = Listener::bind("203.0.113.7:443");

    let outcome = daemon.run_probe("connect-denied", &policy, &["connect", "203.0.113.7:443"]);

    assert_eq!(outcome.code, 1, "no rule covers 203.0.113.7:443 and the default is deny; {outcome}");
    assert!(outcome.has_line("connect 203.0.113.7:443: EPERM (errno 1)"), "expected an EPERM report; {outcome}");
    assert_eq!(listener.accepted(), 0, "a denied connect must never reach the listener");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn ipv4_mapped_ipv6_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let listener = Listener::bind("203.0.113.7:443");

    let outcome = daemon.run_probe("connect-mapped", &policy, &["connect", "[::ffff:203.0.113.7]:443"]);

    assert_eq!(outcome.code, 1, "an IPv6 socket to a mapped IPv4 address is judged as that address; {outcome}");
    assert!(
        outcome.has_line("connect [::ffff:203.0.113.7]:443: EPERM (errno 1)"),
        "expected an EPERM report; {outcome}"
    );
    assert_eq!(listener.accepted(), 0, "a denied connect must never reach the listener");

    let records = daemon.ledger().wait_for("a denied connect of connect-mapped", |records| {
        find_decision(records, "connect-mapped", "connect", "deny").is_some()
    });
    let denial = find_decision(&records, "connect-mapped", "connect", "deny").expect("wait_for found it");
    assert_eq!(denial["family"], "inet6", "the socket was AF_INET6: {denial}");
    assert_eq!(denial["addr"], "203.0.113.7", "a mapped address is recorded as plain IPv4: {denial}");
    assert_eq!(denial["port"], 443, "the record names the port: {denial}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn ipv6_loopback_default_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();

    let outcome = daemon.run_probe("connect-ipv6", &policy, &["connect", "[::1]:8080"]);

    assert_eq!(outcome.code, 1, "allow-local names 127.0.0.1 only, so ::1 falls to the default deny; {outcome}");
    assert!(outcome.has_line("connect [::1]:8080: EPERM (errno 1)"), "expected an EPERM report; {outcome}");

    let records = daemon.ledger().wait_for("a denied connect of connect-ipv6", |records| {
        find_decision(records, "connect-ipv6", "connect", "deny").is_some()
    });
    let denial = find_decision(&records, "connect-ipv6", "connect", "deny").expect("wait_for found it");
    assert_eq!(denial["reason"], "default", "no rule matched: {denial}");
    assert!(denial["rule"].is_null(), "a default verdict names no rule: {denial}");
    assert_eq!(denial["addr"], "::1", "the record names the address: {denial}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn udp_send_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let receiver = Receiver::bind("203.0.113.7:53");

    let outcome = daemon.run_probe("udp-denied", &policy, &["connect", "203.0.113.7:53", "udp"]);

    assert_eq!(outcome.code, 1, "an unconnected sendto is judged like a connect to 203.0.113.7:53; {outcome}");
    assert_eq!(receiver.received(), 0, "a denied send must never reach the receiver");

    let (denial, _) = wait_decision(&daemon.ledger(), "udp-denied", "send", "deny");
    assert_eq!(denial["addr"], "203.0.113.7", "the record names the destination: {denial}");
    assert_eq!(denial["port"], 53, "the record names the port: {denial}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn udp_send_allowed() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let receiver = Receiver::bind("127.0.0.1:8080");

    let outcome = daemon.run_probe("udp-allowed", &policy, &["connect", "127.0.0.1:8080", "udp"]);

    assert_eq!(outcome.code, 0, "allow-local covers 127.0.0.1:8080 for sends too; {outcome}");
    assert_eq!(receiver.received(), 1, "the allowed datagram must arrive");

    let (allowed, _) = wait_decision(&daemon.ledger(), "udp-allowed", "send", "allow");
    assert_eq!(allowed["rule"], "allow-local", "the record names the rule: {allowed}");
}

/// Rules for one address and port by protocol: TCP allowed on one port,
/// UDP on another, and each protocol denied on the other's port.
const POLICY_PROTOCOLS: &str = "\
lupid-policy 1
default deny
allow-exec: allow exec    /**
allow-open: allow open    /**              read,write
tcp-only:   allow connect 127.0.0.1:9053   tcp
udp-only:   allow connect 127.0.0.1:9054   udp
";

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn protocol_rules() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("protocols", POLICY_PROTOCOLS);
    let tcp_listener = Listener::bind("127.0.0.1:9053");
    let udp_on_tcp_port = Receiver::bind("127.0.0.1:9053");
    let udp_receiver = Receiver::bind("127.0.0.1:9054");
    let tcp_on_udp_port = Listener::bind("127.0.0.1:9054");

    let outcome = daemon.run_probe("proto-tcp-ok", &policy, &["connect", "127.0.0.1:9053", "tcp"]);
    assert_eq!(outcome.code, 0, "tcp-only allows TCP to 9053; {outcome}");
    let outcome = daemon.run_probe("proto-udp-denied", &policy, &["connect", "127.0.0.1:9053", "udp"]);
    assert_eq!(outcome.code, 1, "tcp-only does not cover UDP, so the default denies; {outcome}");
    let outcome = daemon.run_probe("proto-udp-ok", &policy, &["connect", "127.0.0.1:9054", "udp"]);
    assert_eq!(outcome.code, 0, "udp-only allows UDP to 9054; {outcome}");
    let outcome = daemon.run_probe("proto-tcp-denied", &policy, &["connect", "127.0.0.1:9054", "tcp"]);
    assert_eq!(outcome.code, 1, "udp-only does not cover TCP, so the default denies; {outcome}");

    assert_eq!(tcp_listener.accepted(), 1, "the allowed TCP connect arrives");
    assert_eq!(udp_on_tcp_port.received(), 0, "the denied UDP datagram never arrives");
    assert_eq!(udp_receiver.received(), 1, "the allowed UDP datagram arrives");
    assert_eq!(tcp_on_udp_port.accepted(), 0, "the denied TCP connect never arrives");

    let ledger = daemon.ledger();
    let (allowed, _) = wait_decision(&ledger, "proto-udp-ok", "send", "allow");
    assert_eq!(allowed["rule"], "udp-only", "{allowed}");
    let (denied, _) = wait_decision(&ledger, "proto-tcp-denied", "connect", "deny");
    assert_eq!(denied["reason"], "default", "{denied}");
    assert_eq!(denied["port"], 9054, "{denied}");
}
