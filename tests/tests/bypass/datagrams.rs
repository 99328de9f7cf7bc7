//! Sends that name their destination without a `connect`: unconnected UDP
//! `sendto`, `sendmsg` and `sendmmsg`, a `sendto` to another address on a
//! connected UDP socket, and TCP Fast Open. The `socket_sendmsg` hook
//! judges each destination by the connect rules.
//!
//! `sendmmsg` is one `socket_sendmsg` decision per message. The kernel
//! stops at the first denied message and returns the number sent before
//! it. So a batch of an allowed and then a denied destination returns 1,
//! and a batch that starts with the denied one fails with `EPERM` and
//! sends nothing.

use crate::common::ledger::wait_decision;
use crate::common::{Daemon, Listener, Receiver, require_bpf_lsm};

use super::{assert_denied, probe_str};

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_unconnected_sends_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let ledger = daemon.ledger();
    let outside = Receiver::bind("203.0.113.7:53");
    let local = Receiver::bind("127.0.0.1:8080");

    let steps: [(&str, &[&str], &str); 3] = [
        ("udp-sendto", &["connect", "203.0.113.7:53", "udp"], "connect 203.0.113.7:53 udp"),
        ("udp-sendmsg", &["sendmsg", "203.0.113.7:53"], "sendmsg 203.0.113.7:53 udp"),
        ("udp-redirect", &["udp-redirect", "127.0.0.1:8080", "203.0.113.7:53"], "sendto 203.0.113.7:53 udp"),
    ];
    for (agent, args, line) in steps {
        let outcome = probe_str(&daemon, agent, &policy, None, args);
        assert_denied(&outcome, line, "no rule allows 203.0.113.7:53");
        let (denial, _) = wait_decision(&ledger, agent, "send", "deny");
        assert_eq!(denial["addr"], "203.0.113.7", "{denial}");
        assert_eq!(denial["port"], 53, "{denial}");
        assert_eq!(denial["reason"], "default", "{denial}");
    }
    let (connected, _) = wait_decision(&ledger, "udp-redirect", "connect", "allow");
    assert_eq!(connected["rule"], "allow-local", "the UDP connect itself is allowed: {connected}");
    assert_eq!(outside.received(), 0, "no datagram may reach 203.0.113.7:53");
    assert_eq!(local.received(), 0, "the redirect sends nothing to the connected address");

    let outcome = probe_str(&daemon, "udp-batch", &policy, None, &["sendmmsg", "127.0.0.1:8080", "203.0.113.7:53"]);
    assert_eq!(outcome.code, 0, "the first message is allowed; {outcome}");
    assert!(outcome.has_line("sendmmsg 127.0.0.1:8080 203.0.113.7:53 udp: ok (1 of 2 sent)"), "{outcome}");
    assert_eq!(local.received(), 1, "the allowed message arrives");
    assert_eq!(outside.received(), 0, "the denied message never arrives");
    let (denial, _) = wait_decision(&ledger, "udp-batch", "send", "deny");
    assert_eq!(denial["addr"], "203.0.113.7", "{denial}");
    let (allowed, _) = wait_decision(&ledger, "udp-batch", "send", "allow");
    assert_eq!(allowed["addr"], "127.0.0.1", "{allowed}");

    let outcome =
        probe_str(&daemon, "udp-batch-denied-first", &policy, None, &["sendmmsg", "203.0.113.7:53", "127.0.0.1:8080"]);
    assert_denied(&outcome, "sendmmsg 203.0.113.7:53", "the first message is denied, so the call fails");
    assert_eq!(local.received(), 0, "the kernel stops at the denied message");
    assert_eq!(outside.received(), 0, "the denied message never arrives");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_fast_open_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let outside = Listener::bind("203.0.113.7:443");
    let local = Listener::bind("127.0.0.1:8080");

    let outcome = probe_str(&daemon, "fastopen", &policy, None, &["fastopen", "203.0.113.7:443"]);
    assert_denied(&outcome, "fastopen 203.0.113.7:443", "no rule allows 203.0.113.7:443");
    assert_eq!(outside.accepted(), 0, "no connection may reach 203.0.113.7:443");
    let (denial, _) = wait_decision(&daemon.ledger(), "fastopen", "send", "deny");
    assert_eq!(denial["addr"], "203.0.113.7", "{denial}");
    assert_eq!(denial["port"], 443, "{denial}");

    let outcome = probe_str(&daemon, "fastopen-local", &policy, None, &["fastopen", "127.0.0.1:8080"]);
    assert_eq!(outcome.code, 0, "allow-local covers a Fast Open send to 127.0.0.1:8080; {outcome}");
    assert_eq!(local.accepted(), 1, "the allowed connection must arrive");
    let (allowed, _) = wait_decision(&daemon.ledger(), "fastopen-local", "send", "allow");
    assert_eq!(allowed["rule"], "allow-local", "{allowed}");
}
