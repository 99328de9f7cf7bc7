//! OCSF export: class, activity, action and object fields per hook.

mod common;

use std::process::Command;

use lupid_ledger::{Decision, Hook, Ledger, LedgerReader, Object, Reason, RecordBody, Verdict, ocsf};
use serde_json::Value;
use tempfile::TempDir;

const TIME_NS: u64 = 1_700_000_000_123_456_789;

fn exec_decision() -> RecordBody {
    let RecordBody::Decision(template) = common::open_decision() else { unreachable!() };
    RecordBody::Decision(Decision {
        hook: Hook::Exec,
        verdict: Verdict::Allow,
        object: Object::Path { path: b"/usr/bin/git".to_vec(), truncated: false },
        access: 0,
        ..template
    })
}

/// Writes a ledger with one record of every kind plus an exec decision and
/// returns the exported events, one per decision.
fn export_events() -> Vec<Value> {
    let dir = TempDir::new().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let mut bodies = common::every_kind();
    bodies.push(exec_decision());
    ledger.append_batch(bodies.into_iter().map(|body| (TIME_NS, body)).collect()).unwrap();
    drop(ledger);

    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let mut out = Vec::new();
    let count = ocsf::export_ocsf(&reader, &mut out).unwrap();
    assert_eq!(count, 3, "one event per decision");
    let text = String::from_utf8(out).unwrap();
    text.lines().map(|line| serde_json::from_str(line).expect("each line is JSON")).collect()
}

fn event_of_class(events: &[Value], class_uid: u64) -> &Value {
    events.iter().find(|event| event["class_uid"] == class_uid).expect("event of the class")
}

#[test]
fn ocsf_common_fields() {
    for event in export_events() {
        assert_eq!(event["time"], 1_700_000_000_123_u64, "time is in milliseconds");
        assert_eq!(event["metadata"]["product"]["name"], "lupid");
        assert_eq!(event["metadata"]["version"], ocsf::OCSF_VERSION);
        assert_eq!(event["metadata"]["original_time"], "2023-11-14T22:13:20.123456789Z");
        assert_eq!(event["metadata"]["uid"].as_str().unwrap().len(), 64, "record hash in hex");
        assert_eq!(event["actor"]["process"]["pid"], 31337, "pid is the thread group id");
        assert_eq!(event["actor"]["process"]["tid"], 31338);
        assert_eq!(event["actor"]["user"]["uid"], "1000");
        assert_eq!(event["unmapped"]["policy_sha256"], "ab".repeat(32));
        let class_uid = event["class_uid"].as_u64().unwrap();
        let activity_id = event["activity_id"].as_u64().unwrap();
        assert_eq!(event["type_uid"].as_u64().unwrap(), class_uid * 100 + activity_id);
    }
}

#[test]
fn ocsf_process_launch() {
    let events = export_events();
    let event = event_of_class(&events, 1007);
    assert_eq!(event["class_name"], "Process Activity");
    assert_eq!(event["category_uid"], 1);
    assert_eq!(event["activity_id"], 1);
    assert_eq!(event["activity_name"], "Launch");
    assert_eq!(event["action_id"], 1);
    assert_eq!(event["action"], "Allowed");
    assert_eq!(event["disposition_id"], 1);
    assert_eq!(event["disposition"], "Allowed");
    assert_eq!(event["process"]["file"]["path"], "/usr/bin/git");
    assert_eq!(event["process"]["file"]["name"], "git");
}

#[test]
fn ocsf_file_open_denied() {
    let events = export_events();
    let event = event_of_class(&events, 1001);
    assert_eq!(event["class_name"], "File System Activity");
    assert_eq!(event["activity_id"], 14);
    assert_eq!(event["activity_name"], "Open");
    assert_eq!(event["action_id"], 2);
    assert_eq!(event["action"], "Denied");
    assert_eq!(event["disposition_id"], 2);
    assert_eq!(event["disposition"], "Blocked");
    assert!(event["file"]["path"].as_str().unwrap().starts_with("/home/alice/.ssh/"));
    assert_eq!(event["unmapped"]["rule"], "deny-ssh-keys");
    assert_eq!(event["unmapped"]["rule_id"], 3);
    assert_eq!(event["unmapped"]["kernel_seq"], 99);
    assert_eq!(event["unmapped"]["seq"], 2);
}

#[test]
fn ocsf_network_open() {
    let events = export_events();
    let event = event_of_class(&events, 4001);
    assert_eq!(event["class_name"], "Network Activity");
    assert_eq!(event["category_uid"], 4);
    assert_eq!(event["activity_id"], 1);
    assert_eq!(event["activity_name"], "Open");
    assert_eq!(event["action"], "Allowed");
    assert_eq!(event["dst_endpoint"]["ip"], "203.0.113.7");
    assert_eq!(event["dst_endpoint"]["port"], 443);
    assert_eq!(event["actor"]["process"]["name"], "curl");
    assert_eq!(event["connection_info"]["direction_id"], 2);
    assert_eq!(event["connection_info"].get("protocol_name"), None, "no protocol stored");
    assert_eq!(event["connection_info"].get("protocol_num"), None, "no protocol stored");
    assert_eq!(event["unmapped"]["via"], "syscall");
}

/// Exports one decision as OCSF.
fn single_event(body: RecordBody) -> Value {
    let dir = TempDir::new().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    ledger.append_batch(vec![(TIME_NS, body)]).unwrap();
    drop(ledger);

    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let mut out = Vec::new();
    ocsf::export_ocsf(&reader, &mut out).unwrap();
    serde_json::from_str(String::from_utf8(out).unwrap().trim()).unwrap()
}

#[test]
fn ocsf_requested_name_unmapped() {
    let event = single_event(common::requested_open_decision());
    assert_eq!(event["file"]["path"], "/etc/shadow", "the resolved path stays the file");
    assert_eq!(event["unmapped"]["requested"], "/tmp/x");
    assert_eq!(event["unmapped"]["requested_truncated"], false);

    let event = single_event(common::open_decision());
    assert!(event["unmapped"].get("requested").is_none(), "{event}");
    assert!(event["unmapped"].get("requested_truncated").is_none(), "{event}");
}

#[test]
fn ocsf_io_uring_udp_send() {
    let event = single_event(common::io_uring_send_decision());
    assert_eq!(event["class_uid"], 4001);
    assert_eq!(event["activity_name"], "Traffic");
    assert_eq!(event["dst_endpoint"]["port"], 53);
    assert_eq!(event["connection_info"]["protocol_name"], "udp");
    assert_eq!(event["connection_info"]["protocol_num"], 17);
    assert_eq!(event["unmapped"]["via"], "io_uring");
}

#[test]
fn ocsf_protocol_iana_keywords() {
    let cases = [(6, Some("tcp")), (17, Some("udp")), (1, Some("icmp")), (58, Some("ipv6-icmp")), (132, None)];
    for (protocol, name) in cases {
        let RecordBody::Decision(template) = common::connect_decision() else { unreachable!() };
        let event = single_event(RecordBody::Decision(Decision { protocol, ..template }));
        let info = &event["connection_info"];
        assert_eq!(info["protocol_num"], protocol, "protocol {protocol}");
        assert_eq!(info.get("protocol_name").and_then(Value::as_str), name, "protocol {protocol}");
    }
}

/// Returns a decision allowed for `reason`, denied had the reason not
/// applied.
fn allowed_by(reason: Reason, lease_id: u32) -> RecordBody {
    let RecordBody::Decision(template) = common::open_decision() else { unreachable!() };
    RecordBody::Decision(Decision { verdict: Verdict::Allow, reason, lease_id, ..template })
}

#[test]
fn ocsf_lease_audit_monitor_allowed() {
    let dir = TempDir::new().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let mut bodies = common::lease_kinds();
    bodies.push(allowed_by(Reason::Audit, 0));
    bodies.push(allowed_by(Reason::Monitor, 0));
    ledger.append_batch(bodies.into_iter().map(|body| (TIME_NS, body)).collect()).unwrap();
    drop(ledger);

    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let mut out = Vec::new();
    let count = ocsf::export_ocsf(&reader, &mut out).unwrap();
    assert_eq!(count, 3, "lease, policy and mode records are skipped");
    let events: Vec<Value> =
        String::from_utf8(out).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();

    let reasons: Vec<&str> = events.iter().map(|event| event["unmapped"]["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["lease", "audit", "monitor"]);
    for event in &events {
        assert_eq!(event["action_id"], 1, "{event}");
        assert_eq!(event["disposition_id"], 1, "{event}");
        assert_eq!(event["disposition"], "Allowed", "{event}");
    }
    assert_eq!(events[0]["unmapped"]["lease_id"], 17);
    assert_eq!(events[1]["unmapped"]["lease_id"], 0);
}

#[test]
fn ocsf_cli_one_event_per_line() {
    let dir = TempDir::new().unwrap();
    common::fill(dir.path(), 70);
    let output = Command::new(env!("CARGO_BIN_EXE_lupid-ledger"))
        .args(["export", "--format", "ocsf", "--ledger"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(text.lines().count(), 20, "two decisions in every seven records");
    for line in text.lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        assert!(matches!(event["class_uid"].as_u64(), Some(1001 | 4001)));
    }
}

/// Exports one protected denial on `hook`, with no object, as OCSF.
fn protected_event(hook: Hook) -> Value {
    let RecordBody::Decision(template) = common::open_decision() else { unreachable!() };
    let body = RecordBody::Decision(Decision {
        hook,
        verdict: Verdict::Deny,
        reason: Reason::Protected,
        rule_id: 0,
        rule: String::new(),
        access: 0,
        object: Object::Path { path: Vec::new(), truncated: false },
        ..template
    });
    single_event(body)
}

#[test]
fn ocsf_protected_denials() {
    let expected = [
        (Hook::Clone, 1007, 1),
        (Hook::Kill, 1007, 2),
        (Hook::Ptrace, 1007, 3),
        (Hook::UsernsCreate, 1007, 99),
        (Hook::Bpf, 1007, 99),
        (Hook::Mount, 1001, 12),
        (Hook::MoveMount, 1001, 12),
        (Hook::Umount, 1001, 13),
        (Hook::Link, 1001, 99),
        (Hook::SocketCreate, 4001, 99),
    ];
    for (hook, class_uid, activity_id) in expected {
        let event = protected_event(hook);
        assert_eq!(event["class_uid"], class_uid, "{hook:?}: {event}");
        assert_eq!(event["activity_id"], activity_id, "{hook:?}: {event}");
        assert_eq!(event["action"], "Denied", "{hook:?}: {event}");
        assert_eq!(event["unmapped"]["reason"], "protected", "{hook:?}: {event}");
        assert!(event.get("file").is_none(), "{hook:?} names no file: {event}");
        assert!(event.get("process").is_none(), "{hook:?} names no process: {event}");
    }
}

#[test]
fn ocsf_kill_and_ptrace_target() {
    let RecordBody::Decision(kill) = common::kill_decision() else { unreachable!() };
    let ptrace = Decision { hook: Hook::Ptrace, ..kill.clone() };
    for (decision, activity_id, activity_name) in [(kill, 2, "Terminate"), (ptrace, 3, "Open")] {
        let hook = decision.hook;
        let event = single_event(RecordBody::Decision(decision));
        assert_eq!(event["class_uid"], 1007, "{hook:?}: {event}");
        assert_eq!(event["activity_id"], activity_id, "{hook:?}: {event}");
        assert_eq!(event["activity_name"], activity_name, "{hook:?}: {event}");
        assert_eq!(event["action"], "Denied", "{hook:?}: {event}");
        assert_eq!(event["process"]["pid"], 812, "{hook:?}: the target process");
        assert_eq!(event["process"]["name"], "lupid-agent", "{hook:?}: the target process");
        assert_eq!(event["actor"]["process"]["pid"], 31337, "{hook:?}: the actor");
        assert_eq!(event["actor"]["process"]["name"], "sh", "{hook:?}: the actor");
        assert!(event.get("file").is_none(), "{hook:?} names no file: {event}");
        assert!(event["process"].get("file").is_none(), "{hook:?}: no executable is known: {event}");
    }
}

#[test]
fn protected_hook_codes_round_trip() {
    for code in 5..=14 {
        let hook = Hook::from_code(code).unwrap_or_else(|| panic!("hook code {code} is known"));
        assert_eq!(hook.code(), code);
    }
    assert_eq!(Reason::from_code(12), Reason::Protected);
    assert_eq!(Reason::Protected.name(), Some("protected"));
}

#[test]
fn ocsf_rename_old_and_new_file() {
    let event = single_event(common::rename_decision());
    assert_eq!(event["class_uid"], 1001, "{event}");
    assert_eq!(event["activity_id"], 5, "{event}");
    assert_eq!(event["activity_name"], "Rename", "{event}");
    assert_eq!(event["type_uid"], 100_105, "{event}");
    assert_eq!(event["type_name"], "File System Activity: Rename", "{event}");
    assert_eq!(event["action"], "Denied", "{event}");
    assert_eq!(event["file"]["path"], "/home/alice/.ssh/id_ed25519", "the existing file");
    assert_eq!(event["file"]["name"], "id_ed25519");
    assert_eq!(event["file_result"]["path"], "/tmp/k", "the new name");
    assert_eq!(event["file_result"]["name"], "k");
    assert_eq!(event["file_result"]["type_id"], 0);
    assert_eq!(event["actor"]["process"]["name"], "mv");
}

#[test]
fn ocsf_link_is_other_activity() {
    let event = single_event(common::link_decision());
    assert_eq!(event["class_uid"], 1001, "{event}");
    assert_eq!(event["activity_id"], 99, "{event}");
    assert_eq!(event["activity_name"], "Link", "{event}");
    assert_eq!(event["type_uid"], 100_199, "{event}");
    assert_eq!(event["type_name"], "File System Activity: Other", "the caption of type_uid");
    assert_eq!(event["action"], "Allowed", "{event}");
    assert_eq!(event["file"]["path"], "/usr/bin/git", "the existing file");
    assert_eq!(event["file_result"]["path"], "/tmp/g", "the new name");
}

#[test]
fn ocsf_path_pair_truncated_and_lossy() {
    let RecordBody::Decision(template) = common::rename_decision() else { unreachable!() };
    let object = Object::PathPair { old: b"/tmp/\xffa".to_vec(), new: Vec::new(), truncated: true };
    let event = single_event(RecordBody::Decision(Decision { object, ..template }));
    assert_eq!(event["file"]["path"], "/tmp/\u{fffd}a");
    assert_eq!(event["file_result"]["path"], "<truncated>");
}

#[test]
fn ocsf_other_activity_type_names() {
    for (hook, class_name) in [(Hook::Bpf, "Process Activity"), (Hook::SocketCreate, "Network Activity")] {
        let event = protected_event(hook);
        assert_eq!(event["activity_name"], "Other", "{hook:?}");
        assert_eq!(event["type_name"], format!("{class_name}: Other"), "{hook:?}");
    }
}
