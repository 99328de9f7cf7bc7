use super::{EXAMPLE, parse_ok, with_rules};
use crate::policy::{Access, Protocol, Target, Verdict};

#[test]
fn example_parses() {
    let policy = parse_ok(EXAMPLE);
    assert_eq!(policy.rules().len(), 8);
    assert_eq!(policy.default_verdict(), Verdict::Deny);
    assert_eq!(policy.name(), "test.lp");
}

#[test]
fn example_rule_fields() {
    let policy = parse_ok(EXAMPLE);
    let rule = &policy.rules()[0];
    assert_eq!(rule.id, "deny-secrets");
    assert_eq!(rule.verdict, Verdict::Deny);
    assert_eq!(rule.at.line, 6);
    assert_eq!(rule.at.column, 1);
    assert_eq!(rule.object_at.column, 30);
    let Target::Open(path, access) = &rule.target else {
        panic!("expected an open rule, got {:?}", rule.target);
    };
    assert_eq!(path.path, "/srv/secrets");
    assert!(path.subtree);
    assert_eq!(*access, Access { read: true, write: true, create: false });
}

#[test]
fn example_hooks_in_order() {
    let policy = parse_ok(EXAMPLE);
    let hooks: Vec<&str> = policy
        .rules()
        .iter()
        .map(|rule| match rule.target {
            Target::Exec(_) | Target::ExecContent(_) => "exec",
            Target::Open(..) => "open",
            Target::Connect(_) | Target::ConnectUnix(_) => "connect",
        })
        .collect();
    assert_eq!(hooks, ["open", "open", "exec", "exec", "connect", "connect", "connect", "connect"]);
}

#[test]
fn default_allow() {
    let policy = parse_ok("lupid-policy 1\ndefault allow\n");
    assert_eq!(policy.default_verdict(), Verdict::Allow);
    assert!(policy.rules().is_empty());
}

#[test]
fn root_subtree() {
    let policy = parse_ok(&with_rules("all: allow exec /**\n"));
    let Target::Exec(path) = &policy.rules()[0].target else {
        panic!("expected an exec rule");
    };
    assert_eq!(path.path, "/");
    assert!(path.subtree);
    assert_eq!(path.to_string(), "/**");
}

#[test]
fn root_exact() {
    let policy = parse_ok(&with_rules("root: allow open / read\n"));
    let Target::Open(path, _) = &policy.rules()[0].target else {
        panic!("expected an open rule");
    };
    assert_eq!(path.path, "/");
    assert!(!path.subtree);
}

#[test]
fn write_read_order_accepted() {
    let policy = parse_ok(&with_rules("w: allow open /tmp/** write,read\n"));
    let Target::Open(_, access) = &policy.rules()[0].target else {
        panic!("expected an open rule");
    };
    assert_eq!(*access, Access { read: true, write: true, create: false });
}

#[test]
fn tabs_crlf_and_comments() {
    let policy = parse_ok("lupid-policy 1\r\n\tdefault\tdeny # why\r\nr1:\tallow\texec\t/bin/**\t# tools\r\n");
    assert_eq!(policy.rules().len(), 1);
}

#[test]
fn byte_order_mark_skipped() {
    let policy = parse_ok("\u{feff}lupid-policy 1\ndefault allow\n");
    assert_eq!(policy.default_verdict(), Verdict::Allow);
}

#[test]
fn hash_inside_path_kept() {
    let policy = parse_ok(&with_rules("h: allow open /srv/a#b read\n"));
    let Target::Open(path, _) = &policy.rules()[0].target else {
        panic!("expected an open rule");
    };
    assert_eq!(path.path, "/srv/a#b");
}

#[test]
fn no_space_after_colon() {
    let policy = parse_ok(&with_rules("tight:deny exec /usr/bin/curl\n"));
    assert_eq!(policy.rules()[0].id, "tight");
    assert_eq!(policy.rules()[0].verdict, Verdict::Deny);
}

#[test]
fn non_ascii_path() {
    let policy = parse_ok(&with_rules("u: allow open /srv/données/** read\n"));
    let Target::Open(path, _) = &policy.rules()[0].target else {
        panic!("expected an open rule");
    };
    assert_eq!(path.path, "/srv/données");
}

#[test]
fn default_after_rules() {
    let policy = parse_ok("lupid-policy 1\nr: allow exec /bin/**\ndefault allow\n");
    assert_eq!(policy.default_verdict(), Verdict::Allow);
}

#[test]
fn ipv4_stored_mapped() {
    let policy = parse_ok(&with_rules("n: allow connect 10.0.0.0/8:443\n"));
    let Target::Connect(net) = &policy.rules()[0].target else {
        panic!("expected a connect rule");
    };
    assert_eq!(net.network, "::ffff:10.0.0.0".parse::<std::net::Ipv6Addr>().unwrap());
    assert_eq!(net.prefix_len, 104);
    assert_eq!((net.port_lo, net.port_hi), (443, 443));
    assert_eq!(net.to_string(), "10.0.0.0/8:443");
}

#[test]
fn ipv4_host_is_32() {
    let policy = parse_ok(&with_rules("n: allow connect 127.0.0.1:8080\n"));
    let Target::Connect(net) = &policy.rules()[0].target else {
        panic!("expected a connect rule");
    };
    assert_eq!(net.prefix_len, 128);
}

#[test]
fn ipv6_host_and_ports() {
    let policy = parse_ok(&with_rules("n: allow connect [::1]:1-1024\n"));
    let Target::Connect(net) = &policy.rules()[0].target else {
        panic!("expected a connect rule");
    };
    assert_eq!(net.prefix_len, 128);
    assert_eq!((net.port_lo, net.port_hi), (1, 1024));
    assert_eq!(net.to_string(), "[::1/128]:1-1024");
}

#[test]
fn star_is_every_port() {
    let policy = parse_ok(&with_rules("n: deny connect [::/0]:*\n"));
    let Target::Connect(net) = &policy.rules()[0].target else {
        panic!("expected a connect rule");
    };
    assert_eq!((net.port_lo, net.port_hi), (0, 65535));
    assert_eq!(net.prefix_len, 0);
}

#[test]
fn create_access_any_order() {
    let policy = parse_ok(&with_rules("c: allow open /tmp/** create,read\nw: allow open /srv/** write,create\n"));
    let Target::Open(_, access) = &policy.rules()[0].target else {
        panic!("expected an open rule");
    };
    assert_eq!(*access, Access { read: true, write: false, create: true });
    let Target::Open(_, access) = &policy.rules()[1].target else {
        panic!("expected an open rule");
    };
    assert_eq!(*access, Access { read: false, write: true, create: true });
    assert_eq!(access.text(), "write,create");
}

#[test]
fn connect_protocol_parsed() {
    let policy = parse_ok(&with_rules("dns: allow connect 10.0.0.53:53 udp\nweb: allow connect [::/0]:443 tcp\n"));
    let Target::Connect(dns) = &policy.rules()[0].target else {
        panic!("expected a connect rule");
    };
    assert_eq!(dns.protocol, Protocol::Udp);
    assert_eq!(dns.to_string(), "10.0.0.53/32:53 udp");
    let Target::Connect(web) = &policy.rules()[1].target else {
        panic!("expected a connect rule");
    };
    assert_eq!(web.protocol, Protocol::Tcp);
}

#[test]
fn connect_without_protocol_any() {
    let policy = parse_ok(&with_rules("n: allow connect 10.0.0.0/8:443\n"));
    let Target::Connect(net) = &policy.rules()[0].target else {
        panic!("expected a connect rule");
    };
    assert_eq!(net.protocol, Protocol::Any);
}

#[test]
fn unix_rules_parsed() {
    let text =
        "a: allow connect unix:/run/app.sock\nb: deny connect unix:/run/user/**\nc: allow connect unix:@lupid-test\n";
    let policy = parse_ok(&with_rules(text));
    let names: Vec<(String, bool)> = policy
        .rules()
        .iter()
        .map(|rule| match &rule.target {
            Target::ConnectUnix(pattern) => (pattern.path.clone(), pattern.subtree),
            other => panic!("expected a Unix connect rule, got {other:?}"),
        })
        .collect();
    let expected = [("/run/app.sock", false), ("/run/user", true), ("@lupid-test", false)];
    assert_eq!(names, expected.map(|(path, subtree)| (path.to_owned(), subtree)));
    assert_eq!(policy.rules()[0].object_at.column, 18);
}

#[test]
fn unix_abstract_keeps_punctuation() {
    let policy = parse_ok(&with_rules("x: allow connect unix:@/tmp/.X11-unix/X0\n"));
    assert_eq!(
        policy.rules()[0].target,
        Target::ConnectUnix(crate::policy::PathPattern { path: "@/tmp/.X11-unix/X0".into(), subtree: false })
    );
}
