//! Each error class, with the exact position and message it reports.

use super::{parse_errors, with_rules};

/// Asserts that `text` fails with exactly one error, at `position`
/// (`LINE:COLUMN`), whose message contains `needle`.
fn assert_one_error(text: &str, position: &str, needle: &str) {
    let errors = parse_errors(text);
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    let prefix = format!("test.lp:{position}: ");
    assert!(errors[0].starts_with(&prefix), "expected {prefix}..., got {}", errors[0]);
    assert!(errors[0].contains(needle), "expected {needle:?} in {}", errors[0]);
}

#[test]
fn empty_file() {
    assert_one_error("", "1:1", "empty policy file");
}

#[test]
fn only_comments() {
    assert_one_error("# nothing\n\n   # here\n", "1:1", "empty policy file");
}

#[test]
fn missing_header() {
    assert_one_error("default deny\n", "1:1", "missing header");
}

#[test]
fn missing_header_after_comment() {
    assert_one_error("# c\n  default deny\n", "2:3", "missing header");
}

#[test]
fn wrong_version() {
    assert_one_error("lupid-policy 2\ndefault deny\n", "1:14", "unsupported format version \"2\"");
}

#[test]
fn missing_version() {
    assert_one_error("lupid-policy\ndefault deny\n", "1:13", "missing format version");
}

#[test]
fn header_extra_token() {
    assert_one_error("lupid-policy 1 x\ndefault deny\n", "1:16", "unexpected \"x\"");
}

#[test]
fn duplicate_header() {
    assert_one_error("lupid-policy 1\ndefault deny\nlupid-policy 1\n", "3:1", "duplicate header");
}

#[test]
fn missing_default() {
    assert_one_error("lupid-policy 1\nr: allow exec /bin/**\n", "1:1", "missing default verdict");
}

#[test]
fn invalid_default() {
    assert_one_error("lupid-policy 1\ndefault maybe\n", "2:9", "invalid default verdict \"maybe\"");
}

#[test]
fn missing_default_word() {
    assert_one_error("lupid-policy 1\ndefault\n", "2:8", "missing verdict after `default`");
}

#[test]
fn header_after_other_line() {
    let errors = parse_errors("default deny\nlupid-policy 1\n");
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].starts_with("test.lp:1:1: missing header"));
    assert!(errors[1].starts_with("test.lp:2:1: duplicate header"));
}

#[test]
fn duplicate_default() {
    assert_one_error("lupid-policy 1\ndefault deny\ndefault allow\n", "3:1", "duplicate default verdict");
}

#[test]
fn unknown_keyword() {
    assert_one_error(&with_rules("allow exec /bin/sh\n"), "3:1", "unknown keyword \"allow\"");
}

#[test]
fn invalid_rule_id() {
    assert_one_error(&with_rules("-bad: allow exec /bin/sh\n"), "3:1", "invalid rule id \"-bad\"");
}

#[test]
fn empty_rule_id() {
    assert_one_error(&with_rules(": allow exec /bin/sh\n"), "3:1", "invalid rule id \"\"");
}

#[test]
fn rule_id_too_long() {
    let id = "a".repeat(65);
    assert_one_error(&with_rules(&format!("{id}: allow exec /bin/sh\n")), "3:1", "1 to 64 characters");
}

#[test]
fn rule_id_max_length_ok() {
    let id = "a".repeat(64);
    super::parse_ok(&with_rules(&format!("{id}: allow exec /bin/sh\n")));
}

#[test]
fn duplicate_rule_id() {
    let text = with_rules("r: allow exec /bin/sh\nr: deny exec /bin/ls\n");
    assert_one_error(&text, "4:1", "duplicate rule id \"r\": it is already used on line 3");
}

#[test]
fn missing_verdict() {
    assert_one_error(&with_rules("r:\n"), "3:3", "missing verdict");
}

#[test]
fn invalid_verdict() {
    assert_one_error(&with_rules("r: permit exec /bin/sh\n"), "3:4", "invalid verdict \"permit\"");
}

#[test]
fn missing_hook() {
    assert_one_error(&with_rules("r: allow\n"), "3:9", "missing hook");
}

#[test]
fn invalid_hook() {
    assert_one_error(&with_rules("r: allow read /bin/sh\n"), "3:10", "invalid hook \"read\"");
}

#[test]
fn missing_exec_path() {
    assert_one_error(&with_rules("r: allow exec\n"), "3:14", "missing path for an exec rule");
}

#[test]
fn exec_with_access() {
    assert_one_error(&with_rules("r: allow exec /bin/sh read\n"), "3:23", "exec rules take no access list");
}

#[test]
fn open_missing_access() {
    assert_one_error(&with_rules("r: allow open /etc/hosts\n"), "3:25", "missing access for an open rule");
}

#[test]
fn open_invalid_access() {
    let text = "lupid-policy 1\ndefault deny\n\n\n\n\nr:     allow open /etc/hosts exec\n";
    let errors = parse_errors(text);
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0],
        "test.lp:7:30: invalid access \"exec\" for an open rule: \
         expected read, write, create or a list of them such as read,write or write,create"
    );
}

#[test]
fn open_invalid_second_access() {
    assert_one_error(&with_rules("r: allow open /x read,exec\n"), "3:23", "invalid access \"exec\"");
}

#[test]
fn open_duplicate_access() {
    assert_one_error(&with_rules("r: allow open /x read,read\n"), "3:23", "duplicate access \"read\"");
}

#[test]
fn open_extra_token() {
    assert_one_error(&with_rules("r: allow open /x read x\n"), "3:23", "unexpected \"x\" at the end of the line");
}

#[test]
fn connect_with_access() {
    assert_one_error(&with_rules("r: allow connect 10.0.0.1:80 read\n"), "3:30", "connect rules take no access list");
    assert_one_error(&with_rules("r: allow connect 10.0.0.1:80 write,create\n"), "3:30", "take no access list");
}

#[test]
fn relative_path() {
    assert_one_error(&with_rules("r: allow exec bin/sh\n"), "3:15", "must be absolute");
}

#[test]
fn glob_star() {
    assert_one_error(&with_rules("r: allow exec /usr/bin/*\n"), "3:24", "unsupported glob");
}

#[test]
fn glob_question_mark() {
    assert_one_error(&with_rules("r: allow exec /usr/bin/p?thon\n"), "3:25", "unsupported glob");
}

#[test]
fn glob_double_star_inside() {
    assert_one_error(&with_rules("r: allow open /srv/**/key read\n"), "3:20", "unsupported glob");
}

#[test]
fn glob_double_star_suffix() {
    assert_one_error(&with_rules("r: allow open /srv** read\n"), "3:19", "unsupported glob");
}

#[test]
fn bare_double_star() {
    assert_one_error(&with_rules("r: allow open ** read\n"), "3:15", "must be absolute");
}

#[test]
fn double_slash() {
    assert_one_error(&with_rules("r: allow open /srv//a read\n"), "3:19", "empty path component");
}

#[test]
fn dot_component() {
    assert_one_error(&with_rules("r: allow open /srv/./a read\n"), "3:20", "\".\" component");
}

#[test]
fn dot_dot_component() {
    assert_one_error(&with_rules("r: allow open /srv/../a read\n"), "3:20", "\"..\" component");
}

#[test]
fn dot_dot_at_end() {
    assert_one_error(&with_rules("r: allow open /srv/.. read\n"), "3:20", "\"..\" component");
}

#[test]
fn trailing_slash() {
    assert_one_error(&with_rules("r: allow open /srv/ read\n"), "3:19", "trailing / in \"/srv/\": write /srv for");
}

#[test]
fn trailing_slash_before_subtree() {
    assert_one_error(&with_rules("r: allow open /srv//** read\n"), "3:19", "trailing /");
}

#[test]
fn path_at_limit_ok() {
    let path = format!("/{}", "a".repeat(255));
    super::parse_ok(&with_rules(&format!("r: allow open {path} read\n")));
}

#[test]
fn path_too_long() {
    let path = format!("/{}", "a".repeat(256));
    assert_one_error(&with_rules(&format!("r: allow open {path} read\n")), "3:15", "at most 256 bytes");
}

#[test]
fn subtree_too_long() {
    let path = format!("/{}/**", "a".repeat(256));
    assert_one_error(&with_rules(&format!("r: allow open {path} read\n")), "3:15", "rule path is 257 bytes long");
}

#[test]
fn control_character() {
    assert_one_error(&with_rules("r: allow open /a\u{1}b read\n"), "3:17", "invalid character U+0001");
}

#[test]
fn nul_byte() {
    assert_one_error(&with_rules("r: allow open /a\0b read\n"), "3:17", "invalid character U+0000");
}

#[test]
fn invalid_utf8() {
    let mut text = with_rules("r: allow open /a").into_bytes();
    text.extend_from_slice(b"\xff read\n");
    let Err(errors) = crate::policy::Policy::parse("test.lp", &text) else {
        panic!("invalid UTF-8 accepted");
    };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].to_string(), "test.lp:3:17: invalid UTF-8 byte 0xff: a policy file must be UTF-8 text");
}

#[test]
fn duplicate_path_rule() {
    let text = with_rules("a: allow open /srv/** read\nb: deny open /srv/** read,write\n");
    assert_one_error(&text, "4:14", "duplicate rule: \"b\" and \"a\" on line 3 both decide read access to /srv/**");
}

#[test]
fn duplicate_exec_rule() {
    let text = with_rules("a: allow exec /bin/sh\nb: allow exec /bin/sh\n");
    assert_one_error(&text, "4:15", "duplicate rule");
}

#[test]
fn exact_and_subtree_conflict() {
    let text = with_rules("a: allow open /srv read\nb: deny open /srv/** read\n");
    assert_one_error(&text, "4:14", "conflicting rules");
}

#[test]
fn exact_and_subtree_other_access_ok() {
    super::parse_ok(&with_rules("a: allow open /srv read\nb: deny open /srv/** write\n"));
}

#[test]
fn read_and_write_rules_merge() {
    super::parse_ok(&with_rules("a: allow open /srv/** read\nb: deny open /srv/** write\n"));
}

#[test]
fn duplicate_connect_rule() {
    let text = with_rules("a: allow connect 10.0.0.0/8:443\nb: deny connect 10.0.0.0/8:443\n");
    assert_one_error(&text, "4:17", "duplicate rule: \"b\" and \"a\" on line 3 both decide connect to 10.0.0.0/8:443");
}

#[test]
fn mapped_ipv6_duplicates_ipv4() {
    let text = with_rules("a: allow connect 10.0.0.0/8:443\nb: deny connect [::ffff:10.0.0.0/104]:443\n");
    assert_one_error(&text, "4:17", "duplicate rule");
}

#[test]
fn equal_width_overlap_ambiguous() {
    let text = with_rules("a: allow connect 10.0.0.0/8:100-200\nb: deny connect 10.0.0.0/8:150-250\n");
    assert_one_error(&text, "4:17", "ambiguous rules");
}

#[test]
fn unequal_overlap_ok() {
    super::parse_ok(&with_rules("a: allow connect 10.0.0.0/8:100-200\nb: deny connect 10.0.0.0/8:150-160\n"));
}

#[test]
fn host_bits_set_v4() {
    assert_one_error(
        &with_rules("r: allow connect 10.0.0.1/8:*\n"),
        "3:18",
        "10.0.0.1/8 has host bits set past its prefix length: write the network address, 10.0.0.0/8",
    );
}

#[test]
fn host_bits_set_v6() {
    assert_one_error(
        &with_rules("r: allow connect [2001:db8::1/32]:*\n"),
        "3:19",
        "write the network address, 2001:db8::/32",
    );
}

#[test]
fn ipv4_length_too_big() {
    assert_one_error(&with_rules("r: allow connect 10.0.0.0/33:*\n"), "3:27", "invalid prefix length \"33\"");
}

#[test]
fn ipv6_length_too_big() {
    assert_one_error(&with_rules("r: allow connect [::/129]:*\n"), "3:22", "invalid prefix length \"129\"");
}

#[test]
fn host_name_rejected() {
    assert_one_error(&with_rules("r: allow connect example.com:443\n"), "3:18", "not host names");
}

#[test]
fn unbracketed_ipv6() {
    assert_one_error(&with_rules("r: allow connect ::1:443\n"), "3:18", "must be in brackets");
}

#[test]
fn bracketed_ipv4() {
    assert_one_error(&with_rules("r: allow connect [10.0.0.1]:443\n"), "3:19", "without brackets");
}

#[test]
fn missing_close_bracket() {
    assert_one_error(&with_rules("r: allow connect [::1:443\n"), "3:18", "missing ]");
}

#[test]
fn missing_ports() {
    assert_one_error(&with_rules("r: allow connect 10.0.0.1\n"), "3:26", "missing :PORTS");
}

#[test]
fn missing_ports_after_bracket() {
    assert_one_error(&with_rules("r: allow connect [::1]\n"), "3:23", "missing :PORTS after ]");
}

#[test]
fn port_zero() {
    assert_one_error(&with_rules("r: allow connect 10.0.0.1:0\n"), "3:27", "invalid port \"0\"");
}

#[test]
fn port_too_big() {
    assert_one_error(&with_rules("r: allow connect 10.0.0.1:65536\n"), "3:27", "invalid port \"65536\"");
}

#[test]
fn port_plus_sign() {
    assert_one_error(&with_rules("r: allow connect 10.0.0.1:+80\n"), "3:27", "invalid port \"+80\"");
}

#[test]
fn port_range_reversed() {
    assert_one_error(&with_rules("r: allow connect 10.0.0.1:9000-8000\n"), "3:27", "write 8000-9000");
}

#[test]
fn port_range_bad_end() {
    assert_one_error(&with_rules("r: allow connect [::1]:80-x\n"), "3:27", "invalid port \"x\"");
}

#[test]
fn missing_destination() {
    assert_one_error(&with_rules("r: allow connect\n"), "3:17", "missing destination");
}

#[test]
fn all_errors_collected() {
    let text = "default deny\nr: allow exec x\nr2: allow open /a//b read\nr3: allow connect 1.2.3.4:0\n";
    let errors = parse_errors(text);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(errors[0].starts_with("test.lp:1:1: missing header"));
    assert!(errors[1].starts_with("test.lp:2:15: invalid path"));
    assert!(errors[2].starts_with("test.lp:3:18: empty path component"));
    assert!(errors[3].starts_with("test.lp:4:27: invalid port"));
}

#[test]
fn several_errors_on_one_line() {
    let errors = parse_errors(&with_rules("r: permit open /a//b exec\n"));
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(errors[0].starts_with("test.lp:3:4: invalid verdict"));
    assert!(errors[1].starts_with("test.lp:3:18: empty path component"));
    assert!(errors[2].starts_with("test.lp:3:22: invalid access"));
}

#[test]
fn column_counts_characters() {
    assert_one_error(&with_rules("r: allow open /é//b read\n"), "3:17", "empty path component");
}

#[test]
fn open_duplicate_create() {
    assert_one_error(&with_rules("r: allow open /x create,write,create\n"), "3:31", "duplicate access \"create\"");
}

#[test]
fn duplicate_create_rule() {
    let text = with_rules("a: allow open /srv/** create\nb: deny open /srv/** write,create\n");
    assert_one_error(&text, "4:14", "\"b\" and \"a\" on line 3 both decide create access to /srv/**");
}

#[test]
fn create_and_write_rules_merge() {
    super::parse_ok(&with_rules("a: allow open /srv/** write\nb: deny open /srv/** create\n"));
}

#[test]
fn invalid_protocol() {
    assert_one_error(
        &with_rules("r: allow connect 10.0.0.1:53 icmp\n"),
        "3:30",
        "invalid protocol \"icmp\": expected tcp or udp, or no protocol field for every IP protocol",
    );
}

#[test]
fn protocol_is_lowercase() {
    assert_one_error(&with_rules("r: allow connect 10.0.0.1:53 UDP\n"), "3:30", "invalid protocol \"UDP\"");
}

#[test]
fn protocol_extra_token() {
    assert_one_error(
        &with_rules("r: allow connect 10.0.0.1:53 udp tcp\n"),
        "3:34",
        "unexpected \"tcp\" at the end of the line: a connect rule is `ID: VERDICT connect DESTINATION [tcp|udp]`",
    );
}

#[test]
fn duplicate_protocol_rule() {
    let text = with_rules("a: allow connect 10.0.0.0/8:53 udp\nb: deny connect 10.0.0.0/8:53 udp\n");
    assert_one_error(&text, "4:17", "\"b\" and \"a\" on line 3 both decide connect to 10.0.0.0/8:53 udp");
}

#[test]
fn ambiguous_same_protocol() {
    let text = with_rules("a: allow connect 10.0.0.0/8:100-200 tcp\nb: deny connect 10.0.0.0/8:150-250 tcp\n");
    assert_one_error(&text, "4:17", "ambiguous rules");
}

#[test]
fn protocols_never_clash() {
    super::parse_ok(&with_rules("a: allow connect 10.0.0.0/8:53 udp\nb: deny connect 10.0.0.0/8:53 tcp\n"));
    super::parse_ok(&with_rules("a: allow connect 10.0.0.0/8:53\nb: deny connect 10.0.0.0/8:53 tcp\n"));
    super::parse_ok(&with_rules("a: allow connect 10.0.0.0/8:100-200 tcp\nb: deny connect 10.0.0.0/8:150-250\n"));
}

#[test]
fn unix_relative_name() {
    assert_one_error(
        &with_rules("r: allow connect unix:run/app.sock\n"),
        "3:23",
        "invalid Unix socket name \"run/app.sock\"",
    );
}

#[test]
fn unix_empty_name() {
    assert_one_error(&with_rules("r: allow connect unix:\n"), "3:23", "invalid Unix socket name \"\"");
}

#[test]
fn unix_path_not_normalised() {
    assert_one_error(&with_rules("r: allow connect unix:/run//app.sock\n"), "3:27", "empty path component");
    assert_one_error(&with_rules("r: allow connect unix:/run/\n"), "3:27", "trailing /");
    assert_one_error(&with_rules("r: allow connect unix:/run/*.sock\n"), "3:28", "unsupported glob");
}

#[test]
fn unix_path_too_long() {
    let path = format!("/{}", "s".repeat(107));
    assert_one_error(
        &with_rules(&format!("r: allow connect unix:{path}\n")),
        "3:23",
        "socket path is 108 bytes long, but a Unix socket address holds at most 107 bytes",
    );
}

#[test]
fn unix_path_at_limit_ok() {
    let exact = format!("/{}", "s".repeat(106));
    let subtree = format!("/{}/**", "t".repeat(106));
    super::parse_ok(&with_rules(&format!("r: allow connect unix:{exact}\nt: deny connect unix:{subtree}\n")));
}

#[test]
fn unix_abstract_empty() {
    assert_one_error(&with_rules("r: allow connect unix:@\n"), "3:24", "missing abstract socket name after @");
}

#[test]
fn unix_abstract_subtree() {
    assert_one_error(&with_rules("r: allow connect unix:@app/**\n"), "3:27", "abstract socket names have no subtree");
}

#[test]
fn unix_abstract_non_ascii() {
    assert_one_error(
        &with_rules("r: allow connect unix:@aé\n"),
        "3:25",
        "invalid character 'é' in abstract socket name",
    );
}

#[test]
fn unix_abstract_too_long() {
    let name = "n".repeat(108);
    assert_one_error(
        &with_rules(&format!("r: allow connect unix:@{name}\n")),
        "3:23",
        "abstract socket name is 108 bytes long",
    );
}

#[test]
fn unix_abstract_at_limit_ok() {
    super::parse_ok(&with_rules(&format!("r: allow connect unix:@{}\n", "n".repeat(107))));
}

#[test]
fn unix_rule_with_protocol() {
    assert_one_error(
        &with_rules("r: allow connect unix:/run/app.sock tcp\n"),
        "3:37",
        "unexpected \"tcp\": Unix socket rules take no protocol and no access list, remove it",
    );
}

#[test]
fn unix_rule_with_access() {
    assert_one_error(&with_rules("r: allow connect unix:@bus read\n"), "3:28", "take no protocol and no access list");
}

#[test]
fn duplicate_unix_rule() {
    let text = with_rules("a: allow connect unix:/run/app.sock\nb: deny connect unix:/run/app.sock\n");
    assert_one_error(&text, "4:17", "\"b\" and \"a\" on line 3 both decide connect to unix:/run/app.sock; remove one");
}

#[test]
fn duplicate_abstract_rule() {
    let text = with_rules("a: allow connect unix:@bus\nb: deny connect unix:@bus\n");
    assert_one_error(&text, "4:17", "both decide connect to unix:@bus");
}

#[test]
fn unix_exact_and_subtree_conflict() {
    let text = with_rules("a: allow connect unix:/run/app\nb: deny connect unix:/run/app/**\n");
    assert_one_error(
        &text,
        "4:17",
        "conflicting rules: \"b\" and \"a\" on line 3 both decide connect to unix:/run/app, one for the socket",
    );
}

#[test]
fn unix_and_open_rule_same_path_ok() {
    super::parse_ok(&with_rules("a: allow connect unix:/run/**\nb: deny open /run/** read,write,create\n"));
}
