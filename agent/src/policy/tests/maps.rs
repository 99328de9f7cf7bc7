//! The map entries the compiler produces.

use std::fmt::Write as _;

use lupid_common::{NET_RULES_PER_PREFIX, PathRule, RULE_PATH_MAX, path_flags, protocol, verdict};

use super::{EXAMPLE, compiled, parse_ok, with_rules};
use crate::policy::{CompiledPolicy, compile};

fn key_path(path: &[u8; RULE_PATH_MAX]) -> &[u8] {
    let end = path.iter().position(|&byte| byte == 0).unwrap_or(RULE_PATH_MAX);
    &path[..end]
}

/// Returns the entry of `path`, and panics when there is none.
fn entry<'a>(policy: &'a CompiledPolicy, path: &str) -> &'a PathRule {
    let found = policy.path_rules.iter().find(|(key, _)| key_path(&key.path) == path.as_bytes());
    &found.unwrap_or_else(|| panic!("no entry for {path}")).1
}

#[test]
fn rule_names_in_file_order() {
    let policy = compiled(EXAMPLE);
    assert_eq!(policy.rule_names[0], "deny-secrets");
    assert_eq!(policy.rule_names[7], "allow-range");
    assert_eq!(policy.rule_names.len(), 8);
}

#[test]
fn default_verdict_abi() {
    assert_eq!(compiled(EXAMPLE).default_verdict, verdict::DENY);
    assert_eq!(compiled("lupid-policy 1\ndefault allow\n").default_verdict, verdict::ALLOW);
}

#[test]
fn one_path_entry_per_path() {
    let policy = compiled(EXAMPLE);
    let paths: Vec<&[u8]> = policy.path_rules.iter().map(|(key, _)| key_path(&key.path)).collect();
    // `/srv` and `/usr` carry no rule, only the mark of the rules below.
    let expected: [&[u8]; 6] = [b"/", b"/srv", b"/srv/secrets", b"/usr", b"/usr/bin", b"/usr/bin/curl"];
    assert_eq!(paths, expected);
}

#[test]
fn folders_above_rules_marked() {
    let policy = compiled(EXAMPLE);
    let marked = |path| entry(&policy, path).flags & path_flags::RULES_BELOW != 0;
    assert!(marked("/"));
    assert!(marked("/srv"));
    assert!(marked("/usr"));
    assert!(marked("/usr/bin"), "/usr/bin/curl lies below it");
    assert!(!marked("/srv/secrets"));
    assert!(!marked("/usr/bin/curl"));
    assert_eq!(*entry(&policy, "/srv"), PathRule { flags: path_flags::RULES_BELOW, ..PathRule::default() });
}

#[test]
fn unix_socket_rules_mark_nothing() {
    let policy = compiled(&with_rules("a: allow connect unix:/run/app/app.sock
"));
    let paths: Vec<&[u8]> = policy.path_rules.iter().map(|(key, _)| key_path(&key.path)).collect();
    assert_eq!(paths, [b"/run/app/app.sock".as_slice()]);
}

#[test]
fn path_keys_carry_policy_id() {
    let policy = compiled(EXAMPLE);
    assert!(policy.path_rules.iter().all(|(key, _)| key.policy_id == 7));
    assert_eq!(policy.policy_id, 7);
}

#[test]
fn path_key_zero_padded() {
    let policy = compiled(EXAMPLE);
    let (key, _) = &policy.path_rules[2];
    assert_eq!(key_path(&key.path), b"/srv/secrets");
    assert!(key.path[b"/srv/secrets".len()..].iter().all(|&byte| byte == 0));
}

#[test]
fn path_slots_filled() {
    let policy = compiled(EXAMPLE);
    let secrets = entry(&policy, "/srv/secrets");
    assert_eq!(secrets.read.rule_id, 1);
    assert_eq!(secrets.write.rule_id, 1);
    assert_eq!(u32::from(secrets.read.verdict), verdict::DENY);
    assert_eq!(secrets.read.exact, 0);
    assert_eq!(secrets.exec.verdict, 0);
}

#[test]
fn exact_flag_set() {
    let policy = compiled(EXAMPLE);
    let curl = entry(&policy, "/usr/bin/curl");
    assert_eq!(curl.exec.exact, 1);
    assert_eq!(curl.exec.rule_id, 3);
    assert_eq!(curl.read.verdict, 0);
}

#[test]
fn exec_and_open_share_entry() {
    let policy = compiled(&with_rules("x: allow exec /opt/**\nr: deny open /opt/** write\n"));
    assert_eq!(policy.path_rules.len(), 2, "/opt and the mark on /");
    let rule = entry(&policy, "/opt");
    assert_eq!(rule.exec.rule_id, 1);
    assert_eq!(rule.write.rule_id, 2);
}

#[test]
fn net_entry_prefix_lengths() {
    let policy = compiled(EXAMPLE);
    let lengths: Vec<u32> = policy.net_rules.iter().map(|(length, _, _)| *length).collect();
    // Sorted by address: the IPv4-mapped 10.0.0.0/8, 127.0.0.1/32 and
    // 169.254.169.254/32, then 2001:db8::/32.
    assert_eq!(lengths, [32 + 104, 32 + 128, 32 + 128, 32 + 32]);
}

#[test]
fn net_key_layout() {
    let policy = compiled(EXAMPLE);
    let (_, key, _) = &policy.net_rules[0];
    assert_eq!(key.policy_id_be, [0, 0, 0, 7]);
    assert_eq!(key.addr, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 0]);
}

#[test]
fn net_entries_inherit_enclosing() {
    let policy = compiled(&with_rules("d: deny connect 10.0.0.0/8:*\na: allow connect 10.1.0.0/16:443\n"));
    let (_, _, inner) = policy.net_rules.iter().find(|(length, _, _)| *length == 32 + 112).expect("inner prefix");
    assert_eq!(inner.entries[0].rule_id, 2);
    assert_eq!(inner.entries[1].rule_id, 1);
    assert_eq!(u32::from(inner.entries[2].verdict), verdict::NONE);
}

#[test]
fn net_entries_narrowest_first() {
    let text = "a: allow connect 10.0.0.0/8:*\nb: deny connect 10.0.0.0/8:1-100\nc: allow connect 10.0.0.0/8:7\n";
    let policy = compiled(&with_rules(text));
    let (_, _, rule) = &policy.net_rules[0];
    let ids: Vec<u32> = rule.entries[..3].iter().map(|entry| entry.rule_id).collect();
    assert_eq!(ids, [3, 2, 1]);
}

#[test]
fn too_many_entries_rejected() {
    let mut rules = String::new();
    for port in 1..=9 {
        writeln!(rules, "r{port}: allow connect 10.0.0.0/8:{port}").unwrap();
    }
    let policy = parse_ok(&with_rules(&rules));
    let errors = compile(&policy, 1).expect_err("nine rules on one prefix");
    assert_eq!(errors.len(), 1);
    let message = errors[0].to_string();
    assert!(message.starts_with("test.lp:3:19: prefix 10.0.0.0/8 needs 9 port rules"), "{message}");
    assert!(message.contains(&format!("cannot enforce more than {NET_RULES_PER_PREFIX}")), "{message}");
}

#[test]
fn too_many_inherited_entries_rejected() {
    let mut rules = String::new();
    for port in 1..=7 {
        writeln!(rules, "o{port}: deny connect 10.0.0.0/8:{port}").unwrap();
    }
    rules.push_str("i1: allow connect 10.1.0.0/16:100\ni2: allow connect 10.1.0.0/16:200\n");
    let policy = parse_ok(&with_rules(&rules));
    let errors = compile(&policy, 1).expect_err("seven inherited plus two own");
    assert_eq!(errors.len(), 1);
    let message = errors[0].to_string();
    assert!(message.starts_with("test.lp:10:19: prefix 10.1.0.0/16 needs 9"), "{message}");
    assert!(message.contains("2 of its own and 7 inherited"), "{message}");
}

#[test]
fn eight_entries_fit() {
    let mut rules = String::new();
    for port in 1..=8 {
        writeln!(rules, "r{port}: allow connect [2001:db8::/32]:{port}").unwrap();
    }
    let policy = compiled(&with_rules(&rules));
    assert_eq!(policy.net_rules[0].2.entries[7].rule_id, 8);
}

#[test]
fn compile_rejects_path_map_overflow() {
    let mut rules = String::new();
    for i in 0..=lupid_common::PATH_RULES_CAPACITY {
        writeln!(rules, "r{i}: allow open /d/f{i} read").expect("writing to a String succeeds");
    }
    let errors = compile(&parse_ok(&with_rules(&rules)), 1).expect_err("more path entries than the map has room for");
    // The rules, plus the marks on `/` and `/d`.
    assert!(errors[0].to_string().contains("65539 path entries"), "{errors:?}");
}

#[test]
fn create_slot_filled() {
    let policy = compiled(&with_rules("w: allow open /tmp/** write,create\nr: deny open /tmp/** read\n"));
    let tmp = entry(&policy, "/tmp");
    assert_eq!((tmp.write.rule_id, tmp.create.rule_id, tmp.read.rule_id), (1, 1, 2));
    assert_eq!(u32::from(tmp.create.verdict), verdict::ALLOW);
    assert_eq!(tmp.create.exact, 0);
    assert_eq!(tmp.connect.verdict, 0);
}

#[test]
fn unix_rules_fill_connect_slot() {
    let text = "a: allow connect unix:/run/app.sock\nb: deny connect unix:/run/**\nc: allow connect unix:@bus\n\
                d: allow open /run/** read\n";
    let policy = compiled(&with_rules(text));
    let keys: Vec<&[u8]> = policy.path_rules.iter().map(|(key, _)| key_path(&key.path)).collect();
    // `/` is marked for the open rule on `/run`.
    let expected: [&[u8]; 4] = [b"/", b"/run", b"/run/app.sock", b"@bus"];
    assert_eq!(keys, expected);
    let run = entry(&policy, "/run");
    assert_eq!((run.connect.rule_id, u32::from(run.connect.verdict), run.connect.exact), (2, verdict::DENY, 0));
    assert_eq!(run.read.rule_id, 4, "an open rule on the same path shares the entry");
    let app = entry(&policy, "/run/app.sock");
    assert_eq!((app.connect.rule_id, app.connect.exact), (1, 1));
    assert_eq!(app.read.verdict, 0);
    let bus = entry(&policy, "@bus");
    assert_eq!((bus.connect.rule_id, bus.connect.exact), (3, 1));
}

#[test]
fn port_rules_carry_protocol() {
    let policy = compiled(&with_rules("u: allow connect 10.0.0.53:53 udp\nt: deny connect 10.0.0.53:53 tcp\n"));
    let (_, _, rule) = &policy.net_rules[0];
    let entries: Vec<(u32, u16)> = rule.entries[..2].iter().map(|entry| (entry.rule_id, entry.protocol)).collect();
    assert_eq!(entries, [(1, protocol::UDP), (2, protocol::TCP)]);
    assert_eq!(u32::from(rule.entries[0].verdict), verdict::ALLOW);
}

#[test]
fn port_rules_protocol_before_any() {
    let text = "any: deny connect 10.0.0.0/8:53\nwide: allow connect 10.0.0.0/8:1-1000 tcp\nudp: allow connect 10.0.0.0/8:53 udp\n";
    let policy = compiled(&with_rules(text));
    let (_, _, rule) = &policy.net_rules[0];
    let ids: Vec<u32> = rule.entries[..3].iter().map(|entry| entry.rule_id).collect();
    // Width first: both rules on port 53 come before the range; at equal
    // width the UDP rule comes before the rule for every protocol.
    assert_eq!(ids, [3, 1, 2]);
    assert_eq!(rule.entries[1].protocol, protocol::ANY);
}
