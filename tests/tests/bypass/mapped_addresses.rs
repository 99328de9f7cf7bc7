//! IPv4 destinations spelled as IPv6: IPv4-mapped addresses are judged as
//! the IPv4 address, and the NAT64 form of a denied address is an IPv6
//! address that only the default covers.

use crate::common::fixture::POLICY_P0;
use crate::common::ledger::wait_decision;
use crate::common::{Daemon, Listener, Receiver, require_bpf_lsm};

use super::{assert_denied, probe_str};

/// The rule added to P0: an explicit denial of the metadata address.
const DENY_METADATA: &str = "deny-meta:    deny  connect 169.254.169.254/32:*\n";

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_mapped_addresses_judged_as_ipv4() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("mapped", &format!("{POLICY_P0}{DENY_METADATA}"));
    let ledger = daemon.ledger();
    let metadata = Listener::bind("169.254.169.254:80");
    let outside = Listener::bind("203.0.113.7:443");
    let local = Listener::bind("127.0.0.1:8080");
    let local_ssh = Listener::bind("127.0.0.1:22");
    let outside_dns = Receiver::bind("203.0.113.7:53");

    // (agent, destination, transport, rule, canonical address, port)
    let denied = [
        ("mapped-meta", "[::ffff:169.254.169.254]:80", "tcp", Some("deny-meta"), "169.254.169.254", 80),
        ("mapped-outside", "[::ffff:203.0.113.7]:443", "tcp", None, "203.0.113.7", 443),
        ("mapped-ssh", "[::ffff:127.0.0.1]:22", "tcp", None, "127.0.0.1", 22),
        ("mapped-udp", "[::ffff:203.0.113.7]:53", "udp", None, "203.0.113.7", 53),
        ("nat64", "[64:ff9b::cb00:7107]:443", "tcp", None, "64:ff9b::cb00:7107", 443),
    ];
    for (agent, destination, transport, rule, canonical, port) in denied {
        let outcome = probe_str(&daemon, agent, &policy, None, &["connect", destination, transport]);
        assert_denied(&outcome, &format!("connect {destination}"), &format!("{destination} is not allowed"));
        let hook = if transport == "udp" { "send" } else { "connect" };
        let (denial, _) = wait_decision(&ledger, agent, hook, "deny");
        assert_eq!(denial["family"], "inet6", "the record keeps the socket's family: {denial}");
        assert_eq!(denial["addr"], canonical, "the record contains the canonical address: {denial}");
        assert_eq!(denial["port"], port, "{denial}");
        match rule {
            Some(rule) => assert_eq!(denial["rule"], rule, "{denial}"),
            None => assert_eq!(denial["reason"], "default", "{denial}"),
        }
    }
    assert_eq!(metadata.accepted(), 0, "no connection may reach 169.254.169.254:80");
    assert_eq!(outside.accepted(), 0, "no connection may reach 203.0.113.7:443");
    assert_eq!(local_ssh.accepted(), 0, "no connection may reach 127.0.0.1:22");
    assert_eq!(outside_dns.received(), 0, "no datagram may reach 203.0.113.7:53");

    let outcome = probe_str(&daemon, "mapped-local", &policy, None, &["connect", "[::ffff:127.0.0.1]:8080"]);
    assert_eq!(outcome.code, 0, "::ffff:127.0.0.1 is 127.0.0.1, which allow-local covers; {outcome}");
    assert!(outcome.has_line("connect [::ffff:127.0.0.1]:8080: ok (connected)"), "{outcome}");
    assert_eq!(local.accepted(), 1, "the allowed connection must arrive");
    let (allowed, _) = wait_decision(&ledger, "mapped-local", "connect", "allow");
    assert_eq!(allowed["rule"], "allow-local", "{allowed}");
    assert_eq!(allowed["addr"], "127.0.0.1", "{allowed}");
}
