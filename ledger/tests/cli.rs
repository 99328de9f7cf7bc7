//! The `lupid-ledger` binary: exit codes and the JSON Lines export.

mod common;

use std::{path::Path, process::Command};

use lupid_ledger::{Decision, Hook, Ledger, Object, PolicyLoaded, RecordBody};
use serde_json::Value;
use tempfile::TempDir;

fn run(args: &[&str], ledger: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lupid-ledger"))
        .args(args)
        .arg("--ledger")
        .arg(ledger)
        .output()
        .expect("run lupid-ledger")
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

/// Creates a ledger with one record of every kind and returns the parsed
/// export lines.
fn export_every_kind() -> Vec<Value> {
    let dir = TempDir::new().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let bodies = common::every_kind().into_iter().map(|body| (5, body)).collect();
    ledger.append_batch(bodies).unwrap();
    drop(ledger);

    let output = run(&["export", "--format", "jsonl"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    stdout(&output).lines().map(|line| serde_json::from_str(line).expect("each line is JSON")).collect()
}

#[test]
fn verify_intact_exits_0() {
    let dir = TempDir::new().unwrap();
    let head = common::fill(dir.path(), 30).head().unwrap();
    let output = run(&["verify"], dir.path());
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains("OK: 30 records verified"));
    assert!(stdout(&output).contains(&hex::encode(head.1)));
}

#[test]
fn verify_names_gaps() {
    let dir = TempDir::new().unwrap();
    // Every seventh record, from record 4 on, reports lost events.
    drop(common::fill(dir.path(), 10));
    let output = run(&["verify"], dir.path());
    assert_eq!(output.status.code(), Some(0), "a recorded gap is not a break: {output:?}");
    let text = stdout(&output);
    let gaps: Vec<&str> = text.lines().filter(|line| line.starts_with("complete=false")).collect();
    assert_eq!(gaps.len(), 1, "{text}");
    // Records 3 and 4 were written 1 ns apart, from 1_700_000_000 s on.
    assert_eq!(
        gaps[0],
        "complete=false for interval [2023-11-14T22:13:20.000000003Z, 2023-11-14T22:13:20.000000004Z]: \
         40 kernel events lost (kernel sequence 101..=140), record 4"
    );
    assert!(!text.contains("complete=true"), "{text}");
}

#[test]
fn verify_without_gaps_complete() {
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), 4));
    let output = run(&["verify"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(stdout(&output).contains("complete=true"), "{output:?}");
}

#[test]
fn verify_break_exits_1() {
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), 30));
    let db = common::open_raw(dir.path());
    common::raw_delete(&db, 12);
    drop(db);

    let output = run(&["verify"], dir.path());
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("record 12 missing (records jump from 11 to 13)"));
}

#[test]
fn verify_missing_exits_2() {
    let dir = TempDir::new().unwrap();
    let output = run(&["verify"], &dir.path().join("absent"));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("ledger not found: "));
}

#[test]
fn verify_while_writer_open() {
    let dir = TempDir::new().unwrap();
    let _ledger = common::fill(dir.path(), 30);
    let output = run(&["verify"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}

#[test]
fn export_is_ascii() {
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), 14));
    let output = run(&["export"], dir.path());
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stdout.is_ascii());
    assert_eq!(stdout(&output).lines().count(), 14);
}

#[test]
fn export_common_keys() {
    let lines = export_every_kind();
    let kinds: Vec<&str> = lines.iter().map(|line| line["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["daemon_start", "identity", "decision", "decision", "events_lost", "agent_exit", "daemon_stop"]);
    assert_eq!(lines[1]["seq"], 1);
    assert_eq!(lines[1]["time_ns"], 5);
    assert_eq!(lines[1]["prev_hash"], lines[0]["hash"]);
    assert_eq!(lines[0]["prev_hash"], "0".repeat(64));
}

#[test]
fn export_identity_fields() {
    let identity = &export_every_kind()[1];
    assert_eq!(identity["agent"], "coder");
    assert_eq!(identity["agent_id"], 7);
    assert_eq!(identity["delegated_by"], "alice@example.org");
    assert_eq!(identity["policy_sha256"], "ab".repeat(32));
    assert_eq!(identity["policy_path"], "/etc/lupid/policies/coder.toml");
    assert_eq!(identity["command"][0], "/usr/bin/agent");
    assert_eq!(identity["command_hex"][1], hex::encode(common::HOSTILE));
    assert_eq!(identity["command"][2], "");
    assert_eq!(identity["exe"], "/usr/bin/\u{fffd}agent");
    assert_eq!(identity["exe_hex"], hex::encode(b"/usr/bin/\xffagent"));
    assert_eq!(identity["cgroup"], "/sys/fs/cgroup/lupid/coder-7");
    assert_eq!(identity.get("cgroup_hex"), None);
    assert_eq!(identity["cgroup_id"], 0x1234_5678_9abc_u64);
}

#[test]
fn export_open_decision() {
    let decision = &export_every_kind()[2];
    assert_eq!(decision["hook"], "open");
    assert_eq!(decision["verdict"], "deny");
    assert_eq!(decision["reason"], "rule");
    assert_eq!(decision["rule"], "deny-ssh-keys");
    assert_eq!(decision["access"], serde_json::json!(["read", "write"]));
    assert_eq!(decision["comm_hex"], hex::encode(b"cat\0\xff\n"));
    let path_hex = hex::encode([b"/home/alice/.ssh/", common::HOSTILE].concat());
    assert_eq!(decision["path_hex"], path_hex);
    assert_eq!(decision["path_truncated"], false);
    assert_eq!(decision["via"], "syscall");
    assert_eq!(decision.get("protocol"), None, "a file has no protocol");
}

#[test]
fn export_connect_decision() {
    let decision = &export_every_kind()[3];
    assert_eq!(decision["hook"], "connect");
    assert_eq!(decision["reason"], "default");
    assert_eq!(decision["rule"], Value::Null);
    assert_eq!(decision["access"], serde_json::json!([]));
    assert_eq!(decision["family"], "inet");
    assert_eq!(decision["addr"], "203.0.113.7");
    assert_eq!(decision["port"], 443);
    assert_eq!(decision["protocol"], Value::Null, "a version 1 record has no protocol");
    assert_eq!(decision["via"], "syscall");
}

#[test]
fn export_io_uring_send_decision() {
    let lines = export_bodies(vec![common::io_uring_send_decision()]);
    assert_eq!(lines.len(), 1);
    let decision = &lines[0];
    assert_eq!(decision["hook"], "send");
    assert_eq!(decision["via"], "io_uring");
    assert_eq!(decision["protocol"], "udp");
    assert_eq!(decision["addr"], "203.0.113.7");
    assert_eq!(decision["port"], 53);
    assert_eq!(decision["lease_id"], 0);
}

/// Creates a ledger of `bodies`, all at wall time 5 ns, and returns its
/// folder.
fn ledger_of(bodies: Vec<RecordBody>) -> TempDir {
    let dir = TempDir::new().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    ledger.append_batch(bodies.into_iter().map(|body| (5, body)).collect()).unwrap();
    dir
}

/// Parses each line of the command's standard output as JSON.
fn json_lines(output: &std::process::Output) -> Vec<Value> {
    stdout(output).lines().map(|line| serde_json::from_str(line).expect("each line is JSON")).collect()
}

/// Runs `lupid-ledger query` with `args` and the JSON format, checks that
/// it exits 0, and returns the `seq` of each record printed.
fn query_seqs(args: &[&str], ledger: &Path) -> Vec<u64> {
    let output = run(&[&["query"], args, &["--format", "json"]].concat(), ledger);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    json_lines(&output).iter().map(|line| line["seq"].as_u64().expect("each record has a seq")).collect()
}

/// Exports a ledger of `bodies` and returns the parsed export lines.
fn export_bodies(bodies: Vec<RecordBody>) -> Vec<Value> {
    let dir = ledger_of(bodies);
    let output = run(&["export"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    json_lines(&output)
}

#[test]
fn export_kill_target() {
    let lines = export_bodies(vec![common::kill_decision()]);
    let decision = &lines[0];
    assert_eq!(decision["hook"], "kill");
    assert_eq!(decision["reason"], "protected");
    assert_eq!(decision["comm"], "sh");
    assert_eq!(decision["target_pid"], 812);
    assert_eq!(decision["target_comm"], "lupid-agent");
    assert_eq!(decision.get("target_comm_hex"), None, "a UTF-8 comm has no hex");
    assert_eq!(decision.get("path"), None, "a task object has no path");
    assert_eq!(decision.get("path_truncated"), None);
    assert_eq!(decision.get("family"), None);
    assert_eq!(decision.get("protocol"), None, "a task has no protocol");
}

#[test]
fn export_ptrace_hostile_target_comm() {
    let RecordBody::Decision(template) = common::kill_decision() else { unreachable!() };
    let object = Object::Task { pid: 4_000_000, comm: common::HOSTILE.to_vec() };
    let lines = export_bodies(vec![RecordBody::Decision(Decision { hook: Hook::Ptrace, object, ..template })]);
    let decision = &lines[0];
    assert_eq!(decision["hook"], "ptrace");
    assert_eq!(decision["target_pid"], 4_000_000);
    assert_eq!(decision["target_comm"], String::from_utf8_lossy(common::HOSTILE).as_ref());
    assert_eq!(decision["target_comm_hex"], hex::encode(common::HOSTILE));
}

#[test]
fn export_kill_without_target() {
    // A kill decision recorded before format version 4 has an empty path.
    let RecordBody::Decision(template) = common::kill_decision() else { unreachable!() };
    let object = Object::Path { path: Vec::new(), truncated: false };
    let lines = export_bodies(vec![RecordBody::Decision(Decision { object, ..template })]);
    assert_eq!(lines[0]["path"], "");
    assert_eq!(lines[0].get("target_pid"), None);
}

#[test]
fn export_requested_name() {
    let lines = export_bodies(vec![common::requested_open_decision(), common::open_decision()]);
    let requested = &lines[0];
    assert_eq!(requested["path"], "/etc/shadow");
    assert_eq!(requested["requested"], "/tmp/x");
    assert_eq!(requested["requested_truncated"], false);
    assert_eq!(requested.get("requested_hex"), None, "a UTF-8 name has no hex");

    let without = &lines[1];
    assert_eq!(without.get("requested"), None, "a decision with no requested name has no key");
    assert_eq!(without.get("requested_truncated"), None);
}

#[test]
fn export_hostile_truncated_requested_name() {
    let RecordBody::Decision(template) = common::requested_open_decision() else { unreachable!() };
    let body = Decision { requested: common::HOSTILE.to_vec(), requested_truncated: true, ..template };
    let lines = export_bodies(vec![RecordBody::Decision(body)]);
    let decision = &lines[0];
    assert_eq!(decision["requested"], String::from_utf8_lossy(common::HOSTILE).as_ref());
    assert_eq!(decision["requested_hex"], hex::encode(common::HOSTILE));
    assert_eq!(decision["requested_truncated"], true);
}

#[test]
fn export_truncated_flag_without_name() {
    let RecordBody::Decision(template) = common::requested_open_decision() else { unreachable!() };
    let body = Decision { requested: Vec::new(), requested_truncated: true, ..template };
    let lines = export_bodies(vec![RecordBody::Decision(body)]);
    assert_eq!(lines[0]["requested"], "");
    assert_eq!(lines[0]["requested_truncated"], true);
}

#[test]
fn query_object_finds_requested_name() {
    let dir = ledger_of([common::every_kind(), vec![common::requested_open_decision()]].concat());

    let output = run(&["query", "--object", "/tmp/x", "--format", "json"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let lines = json_lines(&output);
    let seqs: Vec<u64> = lines.iter().map(|line| line["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [7], "only the decision requested as /tmp/x");
    assert_eq!(lines[0]["requested"], "/tmp/x");
}

#[test]
fn query_table_shows_target() {
    let dir = ledger_of([common::every_kind(), vec![common::kill_decision()]].concat());

    let output = run(&["query", "--hook", "kill"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let table = stdout(&output);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "header and the kill decision: {table}");
    assert!(lines[1].ends_with("pid 812 (lupid-agent)"), "{table}");

    assert_eq!(query_seqs(&["--object", "pid 812"], dir.path()), [7], "only the kill decision");
}

#[test]
fn export_rename_names() {
    let lines = export_bodies(vec![common::rename_decision(), common::link_decision()]);
    let rename = &lines[0];
    assert_eq!(rename["hook"], "rename");
    assert_eq!(rename["old_path"], "/home/alice/.ssh/id_ed25519");
    assert_eq!(rename["new_path"], "/tmp/k");
    assert_eq!(rename["path_truncated"], false);
    assert_eq!(rename.get("old_path_hex"), None, "a UTF-8 name has no hex");
    assert_eq!(rename.get("new_path_hex"), None, "a UTF-8 name has no hex");
    assert_eq!(rename.get("path"), None, "a path pair has no single path");
    assert_eq!(rename.get("requested"), None, "no requested name is stored");
    assert_eq!(rename.get("family"), None);
    assert_eq!(rename.get("protocol"), None);

    let link = &lines[1];
    assert_eq!(link["hook"], "link");
    assert_eq!(link["old_path"], "/usr/bin/git");
    assert_eq!(link["new_path"], "/tmp/g");
}

#[test]
fn export_hostile_path_pair() {
    let RecordBody::Decision(template) = common::rename_decision() else { unreachable!() };
    let old = [b"/tmp/".as_slice(), common::HOSTILE].concat();
    let new = b"/tmp/\xff".to_vec();
    let object = Object::PathPair { old: old.clone(), new: new.clone(), truncated: false };
    let dir = ledger_of(vec![RecordBody::Decision(Decision { object, ..template })]);
    let output = run(&["export"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(output.stdout.is_ascii(), "the export is ASCII");

    let lines = json_lines(&output);
    let decision = &lines[0];
    assert_eq!(decision["old_path"], String::from_utf8_lossy(&old).as_ref());
    assert_eq!(decision["old_path_hex"], hex::encode(&old));
    assert_eq!(decision["new_path"], "/tmp/\u{fffd}");
    assert_eq!(decision["new_path_hex"], hex::encode(&new));
}

#[test]
fn export_truncated_path_pair() {
    let RecordBody::Decision(template) = common::rename_decision() else { unreachable!() };
    let object = Object::PathPair { old: b"/tmp/a".to_vec(), new: Vec::new(), truncated: true };
    let lines = export_bodies(vec![RecordBody::Decision(Decision { object, ..template })]);
    assert_eq!(lines[0]["old_path"], "/tmp/a");
    assert_eq!(lines[0]["new_path"], "");
    assert_eq!(lines[0]["path_truncated"], true);
}

#[test]
fn query_table_shows_path_pair() {
    let dir = ledger_of([common::every_kind(), vec![common::rename_decision(), common::link_decision()]].concat());

    let output = run(&["query", "--hook", "rename"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let table = stdout(&output);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "header and the rename decision: {table}");
    assert!(lines[1].ends_with("/home/alice/.ssh/id_ed25519 -> /tmp/k"), "{table}");

    assert_eq!(query_seqs(&["--object", ".ssh/id_ed25519"], dir.path()), [7], "the old name");
    assert_eq!(query_seqs(&["--object", "/tmp/k"], dir.path()), [7], "the new name");
    assert_eq!(query_seqs(&["--object", "/tmp/"], dir.path()), [7, 8], "the new names of both");
    assert_eq!(query_seqs(&["--object", "/usr/bin/git"], dir.path()), [8], "the old name of the link");
    let across = query_seqs(&["--object", "id_ed25519 -> /tmp"], dir.path());
    assert!(across.is_empty(), "a match across both names: {across:?}");
}

#[test]
fn export_protocol_names() {
    let cases = [
        (6, serde_json::json!("tcp")),
        (17, serde_json::json!("udp")),
        (1, serde_json::json!("icmp")),
        (58, serde_json::json!("icmpv6")),
        (132, serde_json::json!(132)),
    ];
    let RecordBody::Decision(template) = common::connect_decision() else { unreachable!() };
    let bodies =
        cases.iter().map(|(protocol, _)| RecordBody::Decision(Decision { protocol: *protocol, ..template.clone() }));
    let lines = export_bodies(bodies.collect());
    assert_eq!(lines.len(), cases.len());
    for (line, (protocol, expected)) in lines.iter().zip(&cases) {
        assert_eq!(&line["protocol"], expected, "protocol {protocol}");
    }
}

#[test]
fn export_exit_and_loss() {
    let lines = export_every_kind();
    assert_eq!(lines[4]["first_kernel_seq"], 101);
    assert_eq!(lines[4]["last_kernel_seq"], 140);
    assert_eq!(lines[4]["kernel_drop_counter"], 40);
    assert_eq!(lines[5]["status"], 137);
    assert_eq!(lines[5]["agent"], "coder");
}

/// Creates a ledger with the lease, policy and mode records and returns the
/// parsed export lines, in the order of `common::lease_kinds`.
fn export_lease_kinds() -> Vec<Value> {
    let dir = TempDir::new().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let bodies = common::lease_kinds().into_iter().map(|body| (5, body)).collect();
    ledger.append_batch(bodies).unwrap();
    drop(ledger);

    let output = run(&["export", "--format", "jsonl"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(output.stdout.is_ascii());
    stdout(&output).lines().map(|line| serde_json::from_str(line).expect("each line is JSON")).collect()
}

#[test]
fn export_lease_kind_names() {
    let lines = export_lease_kinds();
    let kinds: Vec<&str> = lines.iter().map(|line| line["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["lease_granted", "decision", "lease_revoked", "lease_expired", "policy_loaded", "mode_changed"]);
    assert_eq!(lines[1]["prev_hash"], lines[0]["hash"]);
}

#[test]
fn export_lease_granted() {
    let granted = &export_lease_kinds()[0];
    assert_eq!(granted["lease_id"], 17);
    assert_eq!(granted["agent"], "coder");
    assert_eq!(granted["capability"], "connect 203.0.113.7:443");
    assert_eq!(granted["rule"], "net-needs-lease");
    assert_eq!(granted["request_id"], 42);
    assert_eq!(granted["ttl_ns"], 900_000_000_000_u64);
    assert_eq!(granted["expires_boot_ns"], 901_000_000_000_u64);
    assert_eq!(granted["boot_id"], "4f1c3a52-8a0e-4c1b-9d4e-0a1b2c3d4e5f");
    assert_eq!(granted["max_uses"], 10);
    assert_eq!(granted["granted_by"], "alice@example.org");
    assert_eq!(granted["reason"], "fetch the release tarball");
}

#[test]
fn export_lease_decision() {
    let decision = &export_lease_kinds()[1];
    assert_eq!(decision["reason"], "lease");
    assert_eq!(decision["lease_id"], 17);
    assert_eq!(decision["verdict"], "allow");
    assert_eq!(decision["rule"], "net-needs-lease");
    assert_eq!(export_every_kind()[2]["lease_id"], 0, "a decision without a lease");
}

#[test]
fn export_lease_revoked() {
    let revoked = &export_lease_kinds()[2];
    assert_eq!(revoked["lease_id"], 17);
    assert_eq!(revoked["agent"], "coder");
    assert_eq!(revoked["revoked_by"], "bob@example.org");
    assert_eq!(revoked["reason"], "download finished");
    assert_eq!(revoked["uses"], 3);
}

#[test]
fn export_lease_expired() {
    let expired = &export_lease_kinds()[3];
    assert_eq!(expired["lease_id"], 18);
    assert_eq!(expired["agent"], "coder");
    assert_eq!(expired["cause"], "reboot");
    assert_eq!(expired["expired_boot_ns"], 0);
    assert_eq!(expired["uses"], 1);
    assert_eq!(expired["recorded_late"], true);
}

#[test]
fn export_policy_loaded() {
    let loaded = &export_lease_kinds()[4];
    assert_eq!(loaded["agent"], "coder");
    assert_eq!(loaded["agent_id"], 7);
    assert_eq!(loaded["policy_sha256"], "ee".repeat(32));
    assert_eq!(loaded["policy_path"], "/etc/lupid/policies/\u{fffd}coder.lp");
    assert_eq!(loaded["policy_path_hex"], hex::encode(b"/etc/lupid/policies/\xffcoder.lp"));
    assert_eq!(loaded["previous_sha256"], "ab".repeat(32));
    assert_eq!(loaded["loaded_by"], "lupid-agent");
}

#[test]
fn export_first_policy_no_previous() {
    let dir = TempDir::new().unwrap();
    let RecordBody::PolicyLoaded(loaded) = common::policy_loaded() else { unreachable!() };
    let first = RecordBody::PolicyLoaded(PolicyLoaded { previous_sha256: [0; 32], ..loaded });
    let mut ledger = Ledger::open(dir.path()).unwrap();
    ledger.append(5, first).unwrap();
    drop(ledger);

    let output = run(&["export"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let line: Value = serde_json::from_str(stdout(&output).trim_end()).unwrap();
    assert_eq!(line["previous_sha256"], Value::Null);
}

#[test]
fn export_mode_changed() {
    let changed = &export_lease_kinds()[5];
    assert_eq!(changed["agent"], "coder");
    assert_eq!(changed["agent_id"], 7);
    assert_eq!(changed["mode"], "monitor");
    assert_eq!(changed["changed_by"], "alice@example.org");
}

#[test]
fn query_table_shows_lease() {
    let dir = TempDir::new().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let bodies = [common::every_kind(), common::lease_kinds()].concat().into_iter().map(|body| (5, body)).collect();
    ledger.append_batch(bodies).unwrap();
    drop(ledger);

    let output = run(&["query", "--agent", "coder", "--hook", "connect"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let table = stdout(&output);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "header and two connect decisions: {table}");
    assert!(!lines[1].contains("lease"), "{table}");
    assert!(lines[2].contains("allow (lease 17)"), "{table}");
    assert!(lines[2].contains("5:net-needs-lease"), "{table}");

    let output = run(&["query", "--agent", "coder", "--hook", "connect", "--format", "json"], dir.path());
    let lines: Vec<Value> = stdout(&output).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines[1]["lease_id"], 17);
}

#[test]
fn query_table_shows_io_uring() {
    let dir = ledger_of(vec![common::connect_decision(), common::io_uring_send_decision()]);

    let output = run(&["query", "--agent", "coder"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let table = stdout(&output);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "header and two decisions: {table}");
    assert!(!lines[1].contains("io_uring"), "{table}");
    assert!(lines[2].contains("send via io_uring"), "{table}");
}

#[test]
fn query_via_filter() {
    let dir = ledger_of([common::every_kind(), vec![common::io_uring_send_decision()]].concat());

    assert_eq!(query_seqs(&["--via", "io_uring"], dir.path()), [7], "only the io_uring send");
    let seqs = query_seqs(&["--agent", "coder", "--via", "syscall"], dir.path());
    assert_eq!(seqs, [2, 3], "the open and connect decisions, not the identity");

    let output = run(&["query", "--via", "uring"], dir.path());
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("[possible values: syscall, io_uring]"), "{output:?}");
}

fn run_plain(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lupid-ledger")).args(args).output().expect("run lupid-ledger")
}

/// Creates a ledger of 20 records with a checkpoint after them, and returns
/// the folder, the pinned note file and the verifier key.
fn checkpointed() -> (TempDir, std::path::PathBuf, String) {
    let dir = TempDir::new().unwrap();
    let ledger_dir = dir.path().join("ledger");
    let key = lupid_ledger::SigningKey::from_seed("lupid.local/cli", &[3; 32]).unwrap();
    let mut ledger = common::fill(&ledger_dir, 20);
    let pinned = dir.path().join("pinned");
    ledger.set_checkpoint_sink(Some(pinned.clone()));
    ledger.checkpoint(&key).unwrap();
    drop(ledger);
    (dir, pinned, key.verifier().to_string())
}

#[test]
fn verify_pinned_exits_0() {
    let (dir, pinned, key) = checkpointed();
    let output = run(&["verify", "--pinned", pinned.to_str().unwrap(), "--key", &key], &dir.path().join("ledger"));
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(stdout(&output).contains("OK: 21 records verified"));
    assert!(stdout(&output).contains("checkpoints: 1 stored (signatures checked), 1 pinned"));
}

#[test]
fn verify_pinned_cut_exits_1() {
    let (dir, pinned, key) = checkpointed();
    let ledger = dir.path().join("ledger");
    std::fs::remove_dir_all(&ledger).unwrap();
    drop(common::fill(&ledger, 10));
    let output = run(&["verify", "--pinned", pinned.to_str().unwrap(), "--key", &key], &ledger);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(stdout(&output).starts_with("BROKEN: pinned checkpoint #1 (tree size 20): the ledger has only 10 records"));
}

#[test]
fn verify_pinned_key_file() {
    let (dir, pinned, key) = checkpointed();
    let key_file = dir.path().join("key.pub");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let output = run(
        &["verify", "--pinned", pinned.to_str().unwrap(), "--key", key_file.to_str().unwrap()],
        &dir.path().join("ledger"),
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}

#[test]
fn checkpoint_prints_note() {
    let (dir, pinned, _) = checkpointed();
    let output = run(&["checkpoint"], &dir.path().join("ledger"));
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(format!("{}\n", stdout(&output)), std::fs::read_to_string(pinned).unwrap());
    assert!(stdout(&output).starts_with("lupid.local/cli\n20\n"));
}

#[test]
fn prove_then_verify_proof() {
    let (dir, _, key) = checkpointed();
    let output = run(&["prove", "7"], &dir.path().join("ledger"));
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let proof: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(proof["leaf_index"], 7);
    assert_eq!(proof["tree_size"], 20);
    let proof_file = dir.path().join("proof.json");
    std::fs::write(&proof_file, &output.stdout).unwrap();

    let output = run_plain(&["verify-proof".as_ref(), proof_file.as_os_str(), "--key".as_ref(), key.as_ref()]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(stdout(&output).starts_with("OK: record 7 is leaf 7 of the tree of size 20"));

    let other = lupid_ledger::SigningKey::from_seed("lupid.local/cli", &[4; 32]).unwrap().verifier().to_string();
    let output = run_plain(&["verify-proof".as_ref(), proof_file.as_os_str(), "--key".as_ref(), other.as_ref()]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(stdout(&output).contains("has no signature from key lupid.local/cli+"));
}

#[test]
fn key_verb_creates_key() {
    let dir = TempDir::new().unwrap();
    let key_file = dir.path().join("ledger.key");
    let args = ["key".as_ref(), "--key-file".as_ref(), key_file.as_os_str()];
    let output = run_plain(&args);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let verifier = stdout(&output);
    assert!(lupid_ledger::VerifierKey::parse(&verifier).is_ok(), "{verifier}");
    assert_eq!(stdout(&run_plain(&args)), verifier);
}

#[test]
fn query_table_escapes_reordering_characters() {
    // Shown raw, U+202E would make the path read `.../tmp/status_cat.jpg`.
    let RecordBody::Decision(template) = common::open_decision() else { unreachable!() };
    let path = "/home/alice/.ssh/\u{202e}gpj.tac_sutats/pmt/\u{200b}\u{2028}".as_bytes().to_vec();
    let object = Object::Path { path, truncated: false };
    let dir = ledger_of(vec![RecordBody::Decision(Decision { object, ..template })]);

    let output = run(&["query", "--hook", "open"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.contains("/home/alice/.ssh/\\u{202e}gpj.tac_sutats/pmt/\\u{200b}\\u{2028}"), "{table}");
}

#[test]
fn ocsf_export_is_ascii() {
    let dir = ledger_of(vec![common::open_decision()]);
    let output = run(&["export", "--format", "ocsf"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(output.stdout.is_ascii(), "C1 controls and other characters are escaped");
    let event: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(event["actor"]["process"]["name"], "cat\0\u{fffd}\n");
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn verify_pinned_nothing_exits_2() {
    let (dir, _, key) = checkpointed();
    let empty_folder = dir.path().join("empty-pins");
    std::fs::create_dir(&empty_folder).unwrap();
    let empty_file = dir.path().join("empty-pins.txt");
    std::fs::write(&empty_file, "\n").unwrap();
    for pinned in [empty_folder, empty_file] {
        let output = run(&["verify", "--pinned", pinned.to_str().unwrap(), "--key", &key], &dir.path().join("ledger"));
        assert_eq!(output.status.code(), Some(2), "{output:?}");
        assert!(stderr(&output).contains("no checkpoint notes were found"), "{output:?}");
        assert!(stderr(&output).contains(pinned.to_str().unwrap()), "{output:?}");
    }
}

#[test]
fn verify_names_unsigned_records() {
    let (dir, pinned, key) = checkpointed();
    let output = run(&["verify", "--pinned", pinned.to_str().unwrap(), "--key", &key], &dir.path().join("ledger"));
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = stdout(&output);
    assert!(text.contains("1 pinned, 1 distinct tree sizes"), "{text}");
    assert!(
        text.contains(
            "signed: records 0..=19 are covered by the checkpoint of tree size 20; record 20 is not yet covered by a \
             signed checkpoint"
        ),
        "{text}"
    );

    let output = run(&["verify"], &dir.path().join("ledger"));
    assert!(stdout(&output).contains("signed: not checked, because no --key was given"), "{output:?}");
}

#[test]
fn verify_missing_note_without_key_exits_1() {
    let (dir, _, _) = checkpointed();
    let ledger = dir.path().join("ledger");
    let db = common::open_raw(&ledger);
    db.delete_cf(db.cf_handle("checkpoints").unwrap(), 20u64.to_be_bytes()).unwrap();
    drop(db);
    let output = run(&["verify"], &ledger);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(stdout(&output).starts_with("BROKEN: stored checkpoint 20 (tree size 20): the chain has a checkpoint"));
}

#[test]
fn invalid_checkpoints_key_reported() {
    let (dir, _, key) = checkpointed();
    let ledger = dir.path().join("ledger");
    let db = common::open_raw(&ledger);
    db.put_cf(db.cf_handle("checkpoints").unwrap(), b"abc", b"hi").unwrap();
    drop(db);

    let output = run(&["verify", "--key", &key], &ledger);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(stdout(&output).starts_with("BROKEN: entry under key 616263 in the `checkpoints` column family"));
    for args in [&["checkpoint"][..], &["prove", "3"]] {
        let output = run(args, &ledger);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        assert!(stderr(&output).contains("key 616263 in the `checkpoints` column family"), "{output:?}");
    }
}

#[test]
fn checkpoint_signature_checked_with_key() {
    let (dir, _, key) = checkpointed();
    let ledger = dir.path().join("ledger");
    let output = run(&["checkpoint"], &ledger);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(stderr(&output).contains("the signature of checkpoint 20 was not checked: pass --key"), "{output:?}");

    let output = run(&["checkpoint", "--key", &key], &ledger);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(stderr(&output).is_empty(), "{output:?}");
    assert!(stdout(&output).starts_with("lupid.local/cli\n20\n"));

    let other = lupid_ledger::SigningKey::from_seed("lupid.local/cli", &[4; 32]).unwrap().verifier().to_string();
    let output = run(&["checkpoint", "--key", &other], &ledger);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(output.stdout.is_empty(), "{output:?}");
}

#[test]
fn checkpoint_trailing_line_rejected() {
    let (dir, pinned, _) = checkpointed();
    let ledger = dir.path().join("ledger");
    // The sink file ends each note with an empty line.
    let note = format!("{}\n", std::fs::read_to_string(pinned).unwrap().trim_end());
    let db = common::open_raw(&ledger);
    let forged = format!("{note}NOTE: tree size 999999 verified by auditor\u{9b}2J\n");
    db.put_cf(db.cf_handle("checkpoints").unwrap(), 20u64.to_be_bytes(), forged).unwrap();
    drop(db);

    let output = run(&["checkpoint"], &ledger);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(output.stdout.is_empty(), "{output:?}");
    assert!(stderr(&output).contains("line 6 is not a signature line"), "{output:?}");
    let output = run(&["verify"], &ledger);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
}
