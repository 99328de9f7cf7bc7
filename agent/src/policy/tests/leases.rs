//! The verdicts added for leases and audits, content rules, and leases
//! compiled into a policy.

use std::cell::Cell;

use lupid_common::decide::Decision;
use lupid_common::protocol::{TCP, UDP};
use lupid_common::{access, reason, verdict};

use super::{allowed, compiled, connect, exec, parse_errors, parse_ok, read, rule_name, with_rules};
use crate::policy::reference::{PathHook, decide_connect_with, decide_path_with};
use crate::policy::{Position, Rule, Target, Verdict, compile_with, parse_lease_path};

const DIGEST: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// Returns a lease model that counts its calls: slot 0 is valid, every
/// other slot has expired.
fn lease_model(calls: &Cell<u32>) -> impl Fn(u32) -> Decision + '_ {
    move |slot| {
        calls.set(calls.get() + 1);
        if slot == 0 {
            Decision { verdict: verdict::ALLOW, rule_id: 1, reason: reason::LEASE, lease_id: 42 }
        } else {
            Decision { verdict: verdict::DENY, rule_id: 1, reason: reason::LEASE_REQUIRED, lease_id: 0 }
        }
    }
}

fn lease_rule(slot: u32, target: Target) -> Rule {
    let at = Position { line: 0, column: 0 };
    Rule { id: format!("lease-{slot}"), verdict: Verdict::Leased { slot }, target, at, object_at: at }
}

#[test]
fn audit_allows_lease_denies() {
    let compiled = compiled(&with_rules("watch: audit exec /usr/bin/**\nask: lease open /srv/data/** read\n"));
    let audited = exec(&compiled, "/usr/bin/git");
    assert!(allowed(audited));
    assert_eq!(audited.reason, reason::AUDIT);
    let asked = read(&compiled, "/srv/data/x");
    assert_eq!((asked.verdict, asked.reason), (verdict::DENY, reason::LEASE_REQUIRED));
    assert_eq!(rule_name(&compiled, asked), "ask");
}

#[test]
fn default_rejects_audit_and_lease() {
    for verdict in ["audit", "lease"] {
        let errors = parse_errors(&format!("lupid-policy 1\ndefault {verdict}\n"));
        assert!(errors[0].contains("invalid default verdict"), "{errors:?}");
    }
}

#[test]
fn content_rule_rejects_bad_digests() {
    let policy = parse_ok(&with_rules(&format!("no-tool: deny exec sha256:{DIGEST}\n")));
    assert!(matches!(policy.rules()[0].target, Target::ExecContent(digest) if digest == [0xaa; 32]));
    let errors = parse_errors(&with_rules("no-tool: deny exec sha256:abc\n"));
    assert!(errors[0].contains("test.lp:3:20: invalid content digest"), "{errors:?}");
    let errors = parse_errors(&with_rules(&format!("a: deny exec sha256:{DIGEST}\nb: allow exec sha256:{DIGEST}\n")));
    assert!(errors[0].contains("duplicate rule"), "{errors:?}");
}

#[test]
fn content_rule_precedes_path_rules() {
    let compiled = compiled(&with_rules(&format!("run-all: allow exec /**\nno-tool: deny exec sha256:{DIGEST}\n")));
    assert_ne!(compiled.flags, 0, "a policy with content rules makes the kernel hash");
    let calls = Cell::new(0);
    let digest = [0xaa; 32];
    let denied = decide_path_with(&compiled, PathHook::Exec, b"/tmp/renamed", 0, Some(&digest), lease_model(&calls));
    assert_eq!(rule_name(&compiled, denied), "no-tool");
    let other = decide_path_with(&compiled, PathHook::Exec, b"/tmp/renamed", 0, Some(&[1; 32]), lease_model(&calls));
    assert_eq!(rule_name(&compiled, other), "run-all");
}

#[test]
fn leased_slot_replaces_lease_rule() {
    let policy = parse_ok(&with_rules("ask: lease open /srv/data/** read,write\nrun: allow exec /**\n"));
    let target = Target::Open(
        parse_lease_path("/srv/data/report").unwrap(),
        crate::policy::Access { read: true, ..Default::default() },
    );
    let compiled = compile_with(&policy, 3, &[lease_rule(0, target)]).expect("compiles");
    let calls = Cell::new(0);
    let decide = |path: &[u8], bits| decide_path_with(&compiled, PathHook::Open, path, bits, None, lease_model(&calls));

    let leased = decide(b"/srv/data/report", access::READ);
    assert_eq!((leased.verdict, leased.reason, leased.lease_id), (verdict::ALLOW, reason::LEASE, 42));
    let other = decide(b"/srv/data/other", access::READ);
    assert_eq!(other.reason, reason::LEASE_REQUIRED, "the lease covers only its own file");
    assert_eq!(calls.get(), 1, "only the leased slot consults the lease");

    // Read is leased, write still needs a lease: denied, and the lease is
    // not used up by an open it cannot allow.
    calls.set(0);
    let both = decide(b"/srv/data/report", access::READ | access::WRITE);
    assert_eq!(both.reason, reason::LEASE_REQUIRED);
    assert_eq!(calls.get(), 0, "a denial of the other access decides before the lease is counted");
}

#[test]
fn expired_lease_denies_as_request() {
    let policy = parse_ok(&with_rules("ask: lease connect 203.0.113.0/24:*\n"));
    let target = Target::Connect(crate::policy::NetPattern {
        network: "::ffff:203.0.113.7".parse().unwrap(),
        prefix_len: 128,
        port_lo: 443,
        port_hi: 443,
        protocol: crate::policy::Protocol::Any,
    });
    let compiled = compile_with(&policy, 3, &[lease_rule(5, target)]).expect("compiles");
    let calls = Cell::new(0);
    let expired = decide_connect_with(&compiled, "203.0.113.7".parse().unwrap(), 443, TCP, lease_model(&calls));
    assert_eq!((expired.verdict, expired.reason), (verdict::DENY, reason::LEASE_REQUIRED));
    let other_port = decide_connect_with(&compiled, "203.0.113.7".parse().unwrap(), 80, TCP, lease_model(&calls));
    assert_eq!(other_port.reason, reason::LEASE_REQUIRED, "other ports fall back to the lease rule");
    assert_eq!(calls.get(), 1);
    let mapped = connect(&compiled, "::ffff:203.0.113.7", 443);
    assert_eq!(mapped.reason, reason::LEASE_REQUIRED, "an IPv4-mapped address obeys the IPv4 rules");
}

#[test]
fn monitor_allows_denials_not_failures() {
    let denial = Decision { verdict: verdict::DENY, rule_id: 3, reason: reason::RULE, lease_id: 0 };
    let monitored = denial.monitored();
    assert_eq!((monitored.verdict, monitored.reason, monitored.rule_id), (verdict::ALLOW, reason::MONITOR, 3));
    let failure = Decision::fail_closed(reason::PATH_UNRESOLVED);
    assert_eq!(failure.monitored(), failure, "a failure still denies in monitor mode");
}

#[test]
fn protocol_lease_covers_only_its_protocol() {
    let policy = parse_ok(&with_rules("ask: lease connect 203.0.113.0/24:*\nudp: deny connect 203.0.113.7:53 udp\n"));
    let target = Target::Connect(crate::policy::NetPattern {
        network: "::ffff:203.0.113.7".parse().unwrap(),
        prefix_len: 128,
        port_lo: 53,
        port_hi: 53,
        protocol: crate::policy::Protocol::Tcp,
    });
    let compiled = compile_with(&policy, 3, &[lease_rule(0, target)]).expect("compiles");
    let calls = Cell::new(0);
    let addr = "203.0.113.7".parse().unwrap();
    let tcp = decide_connect_with(&compiled, addr, 53, TCP, lease_model(&calls));
    assert_eq!((tcp.verdict, tcp.reason), (verdict::ALLOW, reason::LEASE));
    let udp = decide_connect_with(&compiled, addr, 53, UDP, lease_model(&calls));
    assert_eq!(rule_name(&compiled, udp), "udp", "the TCP lease leaves UDP to its own rule");
    let other = decide_connect_with(&compiled, addr, 53, 1, lease_model(&calls));
    assert_eq!(other.reason, reason::LEASE_REQUIRED, "other protocols fall back to the lease rule");
    assert_eq!(calls.get(), 1);
}

#[test]
fn create_lease_fills_create_slot() {
    let policy = parse_ok(&with_rules("w: allow open /srv/** write\nask: lease open /srv/** create\n"));
    let target = Target::Open(
        parse_lease_path("/srv/new").unwrap(),
        crate::policy::Access { create: true, ..Default::default() },
    );
    let compiled = compile_with(&policy, 3, &[lease_rule(0, target)]).expect("compiles");
    let calls = Cell::new(0);
    let decide = |path: &[u8], bits| decide_path_with(&compiled, PathHook::Open, path, bits, None, lease_model(&calls));
    let leased = decide(b"/srv/new", access::WRITE | access::CREATE);
    assert_eq!((leased.verdict, leased.reason), (verdict::ALLOW, reason::LEASE));
    let other = decide(b"/srv/other", access::WRITE | access::CREATE);
    assert_eq!(other.reason, reason::LEASE_REQUIRED);
    assert!(allowed(decide(b"/srv/other", access::WRITE)), "an open of an existing file needs no lease");
}

#[test]
fn unix_lease_fills_connect_slot() {
    let policy = parse_ok(&with_rules("ask: lease connect unix:/run/**\n"));
    let target = Target::ConnectUnix(parse_lease_path("/run/app.sock").unwrap());
    let compiled = compile_with(&policy, 3, &[lease_rule(0, target)]).expect("compiles");
    let calls = Cell::new(0);
    let decide = |name: &[u8]| decide_path_with(&compiled, PathHook::UnixConnect, name, 0, None, lease_model(&calls));
    assert_eq!(decide(b"/run/app.sock").reason, reason::LEASE);
    assert_eq!(decide(b"/run/other.sock").reason, reason::LEASE_REQUIRED);
    assert_eq!(calls.get(), 1);
}
