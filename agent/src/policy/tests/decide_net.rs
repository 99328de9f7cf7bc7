//! Connect decisions computed from the compiled `NET_RULES` trie entries.

use lupid_common::{protocol, reason, verdict};

use super::{EXAMPLE, allowed, compiled, connect, connect_protocol, rule_name, with_rules};

#[test]
fn host_rule_exact_port() {
    let policy = compiled(EXAMPLE);
    assert_eq!(rule_name(&policy, connect(&policy, "127.0.0.1", 8080)), "allow-local");
    assert_eq!(connect(&policy, "127.0.0.1", 8081).reason, reason::DEFAULT);
}

#[test]
fn port_range_bounds() {
    let policy = compiled(EXAMPLE);
    assert!(allowed(connect(&policy, "10.9.8.7", 8000)));
    assert!(allowed(connect(&policy, "10.9.8.7", 8999)));
    assert!(!allowed(connect(&policy, "10.9.8.7", 7999)));
    assert!(!allowed(connect(&policy, "10.9.8.7", 9000)));
}

#[test]
fn ipv6_prefix() {
    let policy = compiled(EXAMPLE);
    assert!(allowed(connect(&policy, "2001:db8::53", 53)));
    assert!(!allowed(connect(&policy, "2001:db9::53", 53)));
}

#[test]
fn metadata_denied_every_port() {
    let policy = compiled(EXAMPLE);
    let decision = connect(&policy, "169.254.169.254", 80);
    assert_eq!(decision.verdict, verdict::DENY);
    assert_eq!(rule_name(&policy, decision), "deny-meta");
}

#[test]
fn mapped_address_hits_ipv4_rule() {
    let policy = compiled(EXAMPLE);
    let decision = connect(&policy, "::ffff:169.254.169.254", 80);
    assert_eq!(rule_name(&policy, decision), "deny-meta");
}

#[test]
fn mapped_rule_equals_ipv4_rule() {
    let v4 = compiled(&with_rules("m: deny connect 169.254.0.0/16:*\n"));
    let v6 = compiled(&with_rules("m: deny connect [::ffff:169.254.0.0/112]:*\n"));
    assert_eq!(v4, v6);
}

#[test]
fn all_ipv4_as_mapped_prefix() {
    let v4 = compiled(&with_rules("m: allow connect 0.0.0.0/0:443\n"));
    let v6 = compiled(&with_rules("m: allow connect [::ffff:0:0/96]:443\n"));
    assert_eq!(v4, v6);
    assert!(allowed(connect(&v4, "8.8.8.8", 443)));
    assert!(!allowed(connect(&v4, "2001:db8::1", 443)));
}

#[test]
fn ipv6_any_covers_ipv4() {
    let policy = compiled(&with_rules("any: allow connect [::/0]:443\n"));
    assert!(allowed(connect(&policy, "8.8.8.8", 443)));
}

#[test]
fn inherited_deny_applies() {
    let policy = compiled(&with_rules("d: deny connect 10.0.0.0/8:*\na: allow connect 10.1.0.0/16:443\n"));
    let decision = connect(&policy, "10.1.2.3", 80);
    assert_eq!(decision.verdict, verdict::DENY);
    assert_eq!(rule_name(&policy, decision), "d");
}

#[test]
fn inner_allow_wins_on_its_port() {
    let policy = compiled(&with_rules("d: deny connect 10.0.0.0/8:*\na: allow connect 10.1.0.0/16:443\n"));
    let decision = connect(&policy, "10.1.2.3", 443);
    assert_eq!(decision.verdict, verdict::ALLOW);
    assert_eq!(rule_name(&policy, decision), "a");
}

#[test]
fn outer_prefix_only_outer_rules() {
    let policy = compiled(&with_rules("d: deny connect 10.0.0.0/8:*\na: allow connect 10.1.0.0/16:443\n"));
    assert!(!allowed(connect(&policy, "10.2.0.1", 443)));
}

#[test]
fn longer_prefix_beats_narrower_port() {
    let policy = compiled(&with_rules("a: allow connect 10.0.0.0/8:443\nd: deny connect 10.1.0.0/16:*\n"));
    assert!(!allowed(connect(&policy, "10.1.0.1", 443)));
    assert!(allowed(connect(&policy, "10.2.0.1", 443)));
}

#[test]
fn narrower_port_wins_same_prefix() {
    let policy = compiled(&with_rules("d: deny connect 10.0.0.0/8:*\na: allow connect 10.0.0.0/8:8000-8999\n"));
    assert!(allowed(connect(&policy, "10.0.0.1", 8500)));
    assert!(!allowed(connect(&policy, "10.0.0.1", 9000)));
}

#[test]
fn overlapping_ranges_narrower_first() {
    let text = "w: allow connect 10.0.0.0/8:1000-2000\nn: deny connect 10.0.0.0/8:1500-1600\n";
    let policy = compiled(&with_rules(text));
    assert_eq!(rule_name(&policy, connect(&policy, "10.0.0.1", 1550)), "n");
    assert_eq!(rule_name(&policy, connect(&policy, "10.0.0.1", 1400)), "w");
}

#[test]
fn star_covers_port_zero() {
    let policy = compiled(EXAMPLE);
    assert_eq!(rule_name(&policy, connect(&policy, "169.254.169.254", 0)), "deny-meta");
}

#[test]
fn no_prefix_uses_default() {
    let policy = compiled(EXAMPLE);
    let decision = connect(&policy, "192.0.2.1", 443);
    assert_eq!(decision.reason, reason::DEFAULT);
    assert_eq!(decision.verdict, verdict::DENY);
}

#[test]
fn protocol_rule_matches_only_its_protocol() {
    let policy = compiled(&with_rules("dns: allow connect 10.0.0.53:53 udp\n"));
    assert_eq!(rule_name(&policy, connect_protocol(&policy, "10.0.0.53", 53, protocol::UDP)), "dns");
    assert_eq!(connect_protocol(&policy, "10.0.0.53", 53, protocol::TCP).reason, reason::DEFAULT);
    assert_eq!(connect_protocol(&policy, "10.0.0.53", 53, 1).reason, reason::DEFAULT);
}

#[test]
fn rule_without_protocol_matches_all() {
    let policy = compiled(&with_rules("dns: allow connect 10.0.0.53:53\n"));
    for number in [protocol::TCP, protocol::UDP, 1, 132] {
        assert_eq!(rule_name(&policy, connect_protocol(&policy, "10.0.0.53", 53, number)), "dns", "protocol {number}");
    }
}

#[test]
fn protocol_beats_any_same_width() {
    let policy = compiled(&with_rules("any: deny connect 10.0.0.0/8:53\nudp: allow connect 10.0.0.0/8:53 udp\n"));
    assert_eq!(rule_name(&policy, connect_protocol(&policy, "10.1.2.3", 53, protocol::UDP)), "udp");
    assert_eq!(rule_name(&policy, connect_protocol(&policy, "10.1.2.3", 53, protocol::TCP)), "any");
}

#[test]
fn narrower_range_beats_protocol() {
    let policy = compiled(&with_rules("tcp: allow connect 10.0.0.0/8:1-1000 tcp\nany: deny connect 10.0.0.0/8:53\n"));
    assert_eq!(rule_name(&policy, connect_protocol(&policy, "10.1.2.3", 53, protocol::TCP)), "any");
    assert_eq!(rule_name(&policy, connect_protocol(&policy, "10.1.2.3", 80, protocol::TCP)), "tcp");
    assert_eq!(connect_protocol(&policy, "10.1.2.3", 80, protocol::UDP).reason, reason::DEFAULT);
}

#[test]
fn longer_prefix_beats_protocol() {
    let policy = compiled(&with_rules("udp: allow connect 10.0.0.0/8:53 udp\nhost: deny connect 10.0.0.53:*\n"));
    assert_eq!(rule_name(&policy, connect_protocol(&policy, "10.0.0.53", 53, protocol::UDP)), "host");
    assert_eq!(rule_name(&policy, connect_protocol(&policy, "10.0.0.54", 53, protocol::UDP)), "udp");
}

#[test]
fn inherited_rule_for_other_protocol() {
    let text = "udp: deny connect 10.0.0.0/8:* udp\ntcp: allow connect 10.1.0.0/16:* tcp\n";
    let policy = compiled(&with_rules(text));
    assert_eq!(rule_name(&policy, connect_protocol(&policy, "10.1.2.3", 53, protocol::UDP)), "udp");
    assert_eq!(rule_name(&policy, connect_protocol(&policy, "10.1.2.3", 53, protocol::TCP)), "tcp");
    assert_eq!(connect_protocol(&policy, "10.1.2.3", 53, 1).reason, reason::DEFAULT);
}
