//! Exec, open and Unix connect decisions computed from the compiled
//! `PATH_RULES` entries.

use lupid_common::{access, reason, verdict};

use super::{EXAMPLE, allowed, compiled, connect_unix, exec, open, read, rule_name, with_rules, write};

#[test]
fn subtree_covers_its_root() {
    let policy = compiled(EXAMPLE);
    assert_eq!(rule_name(&policy, read(&policy, "/srv/secrets")), "deny-secrets");
}

#[test]
fn subtree_covers_children() {
    let policy = compiled(EXAMPLE);
    assert_eq!(rule_name(&policy, read(&policy, "/srv/secrets/token")), "deny-secrets");
    assert_eq!(rule_name(&policy, read(&policy, "/srv/secrets/a/b/c")), "deny-secrets");
}

#[test]
fn subtree_not_sibling_prefix() {
    let policy = compiled(EXAMPLE);
    assert_eq!(rule_name(&policy, read(&policy, "/srv/secretsX")), "allow-reads");
    assert_eq!(rule_name(&policy, read(&policy, "/srv/secrets.bak/x")), "allow-reads");
}

#[test]
fn exact_rule_wins_over_subtree() {
    let policy = compiled(EXAMPLE);
    let curl = exec(&policy, "/usr/bin/curl");
    assert_eq!(curl.verdict, verdict::DENY);
    assert_eq!(rule_name(&policy, curl), "deny-curl");
    assert_eq!(rule_name(&policy, exec(&policy, "/usr/bin/git")), "allow-usr-bin");
}

#[test]
fn exact_rule_not_below_it() {
    let policy = compiled(&with_rules("a: allow exec /usr/bin/**\nb: deny exec /usr/bin/tool\n"));
    assert!(allowed(exec(&policy, "/usr/bin/tool/x")));
    assert!(allowed(exec(&policy, "/usr/bin/toolbox")));
    assert!(!allowed(exec(&policy, "/usr/bin/tool")));
}

#[test]
fn default_when_nothing_matches() {
    let policy = compiled(EXAMPLE);
    let decision = exec(&policy, "/opt/tool");
    assert_eq!(decision.verdict, verdict::DENY);
    assert_eq!(decision.reason, reason::DEFAULT);
    assert_eq!(decision.rule_id, 0);
}

#[test]
fn default_allow_applies() {
    let policy = compiled("lupid-policy 1\ndefault allow\nd: deny exec /usr/bin/curl\n");
    let decision = exec(&policy, "/bin/ls");
    assert_eq!(decision.verdict, verdict::ALLOW);
    assert_eq!(decision.reason, reason::DEFAULT);
}

#[test]
fn deeper_deny_beats_allow() {
    let policy = compiled(&with_rules("a: allow open /a/** read\nb: deny open /a/b/** read\n"));
    assert!(allowed(read(&policy, "/a/x")));
    assert!(!allowed(read(&policy, "/a/b/x")));
    assert!(!allowed(read(&policy, "/a/b")));
}

#[test]
fn deeper_allow_beats_deny() {
    let policy = compiled(&with_rules("a: deny open /a/** read\nb: allow open /a/b/** read\n"));
    assert!(!allowed(read(&policy, "/a/x")));
    assert!(allowed(read(&policy, "/a/b/x")));
    assert!(!allowed(read(&policy, "/a")));
}

#[test]
fn rule_order_irrelevant() {
    let policy = compiled(&with_rules("b: allow open /a/b/** read\na: deny open /a/** read\n"));
    assert!(allowed(read(&policy, "/a/b/x")));
    assert!(!allowed(read(&policy, "/a/c")));
}

#[test]
fn read_write_needs_both() {
    let policy = compiled(&with_rules("r: allow open /data/** read\n"));
    let both = open(&policy, "/data/f", access::READ | access::WRITE);
    assert_eq!(both.verdict, verdict::DENY);
    assert_eq!(both.reason, reason::DEFAULT);
}

#[test]
fn read_write_both_allowed() {
    let policy = compiled(&with_rules("r: allow open /data/** read,write\n"));
    assert!(allowed(open(&policy, "/data/f", access::READ | access::WRITE)));
}

#[test]
fn read_write_denied_by_write_rule() {
    let policy = compiled(&with_rules("r: allow open /data/** read\nw: deny open /data/** write\n"));
    assert!(allowed(read(&policy, "/data/f")));
    let both = open(&policy, "/data/f", access::READ | access::WRITE);
    assert_eq!(rule_name(&policy, both), "w");
}

#[test]
fn write_separate_from_read() {
    let policy = compiled(EXAMPLE);
    assert!(allowed(read(&policy, "/etc/hosts")));
    assert!(!allowed(write(&policy, "/etc/hosts")));
}

#[test]
fn open_without_bits_is_read() {
    let policy = compiled(EXAMPLE);
    assert!(allowed(open(&policy, "/etc/hosts", 0)));
}

#[test]
fn exec_ignores_open_rules() {
    let policy = compiled(EXAMPLE);
    assert_eq!(exec(&policy, "/srv/secrets/run").reason, reason::DEFAULT);
}

#[test]
fn root_subtree_covers_everything() {
    let policy = compiled(&with_rules("all: allow exec /**\n"));
    assert!(allowed(exec(&policy, "/")));
    assert!(allowed(exec(&policy, "/x")));
    assert!(allowed(exec(&policy, "/very/deep/path/to/a/binary")));
}

#[test]
fn root_exact_only_root() {
    let policy = compiled(&with_rules("root: allow open / read\n"));
    assert!(allowed(read(&policy, "/")));
    assert!(!allowed(read(&policy, "/etc")));
}

#[test]
fn long_path_uses_limited_prefix() {
    let deep = format!("/{}", "d".repeat(200));
    let policy = compiled(&with_rules(&format!("a: allow open /** read\nb: deny open {deep}/** read\n")));
    let long_file = format!("{deep}/{}", "f".repeat(400));
    assert!(!allowed(read(&policy, &long_file)));
}

#[test]
fn rule_at_limit_still_matches() {
    let limit_dir = format!("/{}", "d".repeat(255));
    let policy = compiled(&with_rules(&format!("a: allow open /** read\nb: deny open {limit_dir}/** read\n")));
    assert!(!allowed(read(&policy, &limit_dir)));
    assert!(!allowed(read(&policy, &format!("{limit_dir}/file"))));
}

#[test]
fn create_follows_write_without_create_rule() {
    let policy = compiled(&with_rules("w: allow open /tmp/** write\nr: allow open /srv/** read\n"));
    let created = open(&policy, "/tmp/new", access::WRITE | access::CREATE);
    assert_eq!(rule_name(&policy, created), "w");
    assert!(allowed(created));
    let read_only = open(&policy, "/srv/new", access::READ | access::CREATE);
    assert_eq!((read_only.verdict, read_only.reason), (verdict::DENY, reason::DEFAULT), "no write rule, no create");
}

#[test]
fn create_rule_beats_write_rule() {
    let policy = compiled(&with_rules("w: allow open /tmp/** write\nc: deny open /tmp/** create\n"));
    assert!(allowed(write(&policy, "/tmp/old")));
    let created = open(&policy, "/tmp/new", access::WRITE | access::CREATE);
    assert_eq!(rule_name(&policy, created), "c");
    assert_eq!(created.verdict, verdict::DENY);
}

#[test]
fn shallow_create_rule_beats_deep_write() {
    let policy = compiled(&with_rules("c: deny open /srv/** create\nw: allow open /srv/tmp/** write\n"));
    let created = open(&policy, "/srv/tmp/new", access::WRITE | access::CREATE);
    assert_eq!(rule_name(&policy, created), "c", "the deepest create rule decides, however deep the write rule");
}

#[test]
fn create_allowed_with_write() {
    let policy = compiled(&with_rules("w: allow open /tmp/** write,create\n"));
    let created = open(&policy, "/tmp/new", access::WRITE | access::CREATE);
    assert!(allowed(created));
    assert_eq!(rule_name(&policy, created), "w");
}

#[test]
fn create_denied_by_create_rule() {
    let policy = compiled(&with_rules("w: allow open /tmp/** read,write\nc: deny open /tmp/** create\n"));
    assert!(allowed(open(&policy, "/tmp/old", access::READ | access::WRITE)));
    let created = open(&policy, "/tmp/new", access::READ | access::WRITE | access::CREATE);
    assert_eq!(rule_name(&policy, created), "c");
    assert_eq!(created.verdict, verdict::DENY);
}

#[test]
fn create_without_write_denied() {
    let policy = compiled(&with_rules("c: allow open /tmp/** create\n"));
    let created = open(&policy, "/tmp/new", access::WRITE | access::CREATE);
    assert_eq!(created.reason, reason::DEFAULT, "write is still needed");
    assert!(!allowed(created));
}

#[test]
fn create_read_only_open() {
    let policy = compiled(&with_rules("r: allow open /tmp/** read\nc: allow open /tmp/** create\n"));
    assert!(allowed(open(&policy, "/tmp/new", access::READ | access::CREATE)));
    assert!(allowed(open(&policy, "/tmp/new", access::CREATE)), "an open without read or write is a read");
}

#[test]
fn deeper_create_rule_wins() {
    let policy = compiled(&with_rules("w: allow open /srv/** write,create\nc: deny open /srv/locked/** create\n"));
    assert!(allowed(open(&policy, "/srv/a", access::WRITE | access::CREATE)));
    assert!(!allowed(open(&policy, "/srv/locked/a", access::WRITE | access::CREATE)));
    assert!(allowed(write(&policy, "/srv/locked/a")));
}

#[test]
fn unix_exact_rule() {
    let policy = compiled(&with_rules("app: allow connect unix:/run/app.sock\n"));
    assert_eq!(rule_name(&policy, connect_unix(&policy, "/run/app.sock")), "app");
    assert_eq!(connect_unix(&policy, "/run/app.sock2").reason, reason::DEFAULT);
    assert_eq!(connect_unix(&policy, "/run/app.sock/x").reason, reason::DEFAULT);
}

#[test]
fn unix_subtree_rule() {
    let policy =
        compiled(&with_rules("run: deny connect unix:/run/**\nbus: allow connect unix:/run/dbus/system_bus_socket\n"));
    assert_eq!(rule_name(&policy, connect_unix(&policy, "/run/user/1000/bus")), "run");
    assert_eq!(rule_name(&policy, connect_unix(&policy, "/run")), "run");
    assert_eq!(rule_name(&policy, connect_unix(&policy, "/run/dbus/system_bus_socket")), "bus");
    assert_eq!(connect_unix(&policy, "/tmp/x.sock").reason, reason::DEFAULT);
}

#[test]
fn unix_root_subtree_misses_abstract() {
    let policy = compiled("lupid-policy 1\ndefault allow\nno-unix: deny connect unix:/**\n");
    assert_eq!(rule_name(&policy, connect_unix(&policy, "/tmp/x.sock")), "no-unix");
    let abstract_socket = connect_unix(&policy, "@lupid-test");
    assert_eq!((abstract_socket.verdict, abstract_socket.reason), (verdict::ALLOW, reason::DEFAULT));
}

#[test]
fn unix_abstract_exact_only() {
    let policy = compiled(&with_rules("bus: allow connect unix:@bus\n"));
    assert_eq!(rule_name(&policy, connect_unix(&policy, "@bus")), "bus");
    assert_eq!(connect_unix(&policy, "@bus/x").reason, reason::DEFAULT);
    assert_eq!(connect_unix(&policy, "@bus2").reason, reason::DEFAULT);
    assert_eq!(connect_unix(&policy, "@").reason, reason::DEFAULT);
}

#[test]
fn unix_and_open_rules_separate() {
    let policy = compiled(&with_rules("files: allow open /run/** read,write\nsock: deny connect unix:/run/**\n"));
    assert!(allowed(open(&policy, "/run/app.sock", access::READ | access::WRITE)));
    assert!(!allowed(connect_unix(&policy, "/run/app.sock")));
    assert_eq!(exec(&policy, "/run/app.sock").reason, reason::DEFAULT);
}
