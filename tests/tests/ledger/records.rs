//! Identity and decision records of a few agent runs, read after the daemon
//! stopped, so every decision it received has been written.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::fixture::sha256_file;
use crate::common::ledger::{find_decision, records_of, u64_field};
use crate::common::{Daemon, OK_FILE, PROBE_BIN, SECRET, require_bpf_lsm};

/// The user the first run runs as.
const AGENT_UID: u32 = 1001;

/// Keys every decision record carries, besides those of its object.
const DECISION_KEYS: &[&str] = &[
    "seq",
    "kind",
    "time_ns",
    "hash",
    "prev_hash",
    "kernel_seq",
    "boot_ns",
    "agent",
    "agent_id",
    "policy_sha256",
    "pid",
    "tgid",
    "uid",
    "gid",
    "cgroup_id",
    "comm",
    "hook",
    "verdict",
    "reason",
    "rule_id",
    "rule",
    "access",
];

/// A stopped daemon's ledger after three runs of one agent under P0.
struct Audit {
    daemon: Daemon,
    agent: &'static str,
    policy: PathBuf,
    records: Vec<Value>,
}

/// Runs the probe three times as `agent` under P0: an allowed open as uid
/// 1001, a denied open of the secret, and a denied connect. Then stops the
/// daemon and exports its ledger. Each test passes its own agent name, so
/// no two tests share a cgroup name.
fn audited_runs(agent: &'static str) -> Audit {
    let mut daemon = Daemon::start();
    let policy = daemon.policy_p0();

    let allowed = daemon.run_agent(agent, &policy, Some(AGENT_UID), &[PROBE_BIN, "open", OK_FILE, "read"]);
    assert_eq!(allowed.code, 0, "uid 1001 may read {OK_FILE} under allow-open; {allowed}");
    let secret = daemon.run_probe(agent, &policy, &["open", SECRET, "read"]);
    assert_eq!(secret.code, 1, "deny-secrets must deny the open; {secret}");
    let connect = daemon.run_probe(agent, &policy, &["connect", "203.0.113.7:443"]);
    assert_eq!(connect.code, 1, "the default verdict must deny the connect; {connect}");

    let status = daemon.stop();
    assert!(
        status.success(),
        "the daemon must exit 0 on SIGTERM, but exited with {status}; its log:\n{}",
        daemon.log()
    );

    let records = daemon.ledger().export();
    Audit { daemon, agent, policy, records }
}

/// Returns the decision of `agent` on an open of `path`.
fn open_decision<'a>(records: &'a [Value], agent: &str, path: &str) -> &'a Value {
    records_of(records, "decision", agent)
        .into_iter()
        .find(|record| record["hook"] == "open" && record["path"] == path)
        .unwrap_or_else(|| panic!("no open decision for {path} in the ledger"))
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn identity_per_run() {
    require_bpf_lsm();
    let audit = audited_runs("audit-identity");
    let identities = records_of(&audit.records, "identity", audit.agent);
    let policy_sha256 = sha256_file(&audit.policy);
    let probe_sha256 = sha256_file(Path::new(PROBE_BIN));

    assert_eq!(identities.len(), 3, "each of the 3 runs writes one identity record");
    let expected_commands = [
        json!([PROBE_BIN, "open", OK_FILE, "read"]),
        json!([PROBE_BIN, "open", SECRET, "read"]),
        json!([PROBE_BIN, "connect", "203.0.113.7:443"]),
    ];
    for (identity, command) in identities.iter().zip(&expected_commands) {
        assert_eq!(identity["delegated_by"], "tester", "identity: {identity}");
        assert_eq!(identity["policy_sha256"], policy_sha256.as_str(), "SHA-256 of the policy file: {identity}");
        assert_eq!(identity["policy_path"], audit.policy.to_str().unwrap(), "identity: {identity}");
        assert_eq!(&identity["command"], command, "the command as given to run: {identity}");
        assert_eq!(identity["exe"], PROBE_BIN, "identity: {identity}");
        assert_eq!(identity["exe_sha256"], probe_sha256.as_str(), "SHA-256 of the probe binary: {identity}");
        assert_ne!(u64_field(identity, "cgroup_id"), 0, "identity: {identity}");
    }

    assert_eq!(u64_field(identities[0], "uid"), u64::from(AGENT_UID), "the first run used --user 1001");
    assert_eq!(u64_field(identities[1], "uid"), 0, "the second run ran as root");
    let agent_ids: HashSet<u64> = identities.iter().map(|identity| u64_field(identity, "agent_id")).collect();
    assert_eq!(agent_ids.len(), 3, "each run gets its own agent_id");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn decisions_name_rule_and_object() {
    require_bpf_lsm();
    let audit = audited_runs("audit-decisions");
    let records = &audit.records;

    let secret = open_decision(records, audit.agent, SECRET);
    assert_eq!(secret["verdict"], "deny", "{secret}");
    assert_eq!(secret["reason"], "rule", "{secret}");
    assert_eq!(secret["rule"], "deny-secrets", "{secret}");
    assert_eq!(secret["access"], json!(["read"]), "{secret}");
    assert_eq!(secret["path_truncated"], false, "{secret}");
    assert_eq!(u64_field(secret, "uid"), 0, "{secret}");

    let allowed = open_decision(records, audit.agent, OK_FILE);
    assert_eq!(allowed["verdict"], "allow", "{allowed}");
    assert_eq!(allowed["rule"], "allow-open", "{allowed}");
    assert_eq!(u64_field(allowed, "uid"), u64::from(AGENT_UID), "the run used --user 1001: {allowed}");

    let connect = find_decision(records, audit.agent, "connect", "deny").expect("a denied connect in the ledger");
    assert_eq!(connect["reason"], "default", "{connect}");
    assert!(connect["rule"].is_null(), "a default verdict names no rule: {connect}");
    assert_eq!(connect["family"], "inet", "{connect}");
    assert_eq!(connect["addr"], "203.0.113.7", "{connect}");
    assert_eq!(connect["port"], 443, "{connect}");

    let exec = records_of(records, "decision", audit.agent)
        .into_iter()
        .find(|record| record["hook"] == "exec" && record["path"] == PROBE_BIN)
        .expect("an exec decision for the probe in the ledger");
    assert_eq!(exec["verdict"], "allow", "{exec}");
    assert_eq!(exec["rule"], "allow-exec", "{exec}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn decisions_match_their_identity() {
    require_bpf_lsm();
    let audit = audited_runs("audit-match");
    let identities = records_of(&audit.records, "identity", audit.agent);
    let decisions = records_of(&audit.records, "decision", audit.agent);
    let agent_ids: HashSet<u64> = identities.iter().map(|identity| u64_field(identity, "agent_id")).collect();
    let policy_sha256 = sha256_file(&audit.policy);

    assert!(!decisions.is_empty(), "the runs must leave decision records");
    for decision in &decisions {
        let object_keys: &[&str] =
            if decision["hook"] == "connect" { &["family", "addr", "port"] } else { &["path", "path_truncated"] };
        for key in DECISION_KEYS.iter().chain(object_keys) {
            assert!(decision.get(*key).is_some(), "decision record lacks {key:?}: {decision}");
        }
        assert_eq!(decision["kind"], "decision", "{decision}");
        assert!(agent_ids.contains(&u64_field(decision, "agent_id")), "agent_id of no identity: {decision}");
        assert_eq!(decision["policy_sha256"], policy_sha256.as_str(), "{decision}");
    }
    for agent_id in &agent_ids {
        let count = decisions.iter().filter(|decision| u64_field(decision, "agent_id") == *agent_id).count();
        assert!(count > 0, "agent_id {agent_id} has no decision, but its probe was exec'd");
    }
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn kernel_seq_has_no_gaps() {
    require_bpf_lsm();
    let audit = audited_runs("audit-sequence");
    let decisions: Vec<&Value> = audit.records.iter().filter(|record| record["kind"] == "decision").collect();

    let mut all: Vec<u64> = decisions.iter().map(|decision| u64_field(decision, "kernel_seq")).collect();
    all.sort_unstable();
    let distinct: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "each decision is recorded exactly once, but kernel_seq repeats: {all:?}");
    // The three runs ran one after another and nothing else was labeled, so
    // the kernel numbered their decisions without a gap. A gap means a lost
    // event.
    assert!(all.windows(2).all(|pair| pair[1] == pair[0] + 1), "kernel_seq values must be consecutive: {all:?}");
    assert!(
        !audit.records.iter().any(|record| record["kind"] == "events_lost"),
        "no events may be lost in so small a run"
    );
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn chain_links_and_verifies() {
    require_bpf_lsm();
    let audit = audited_runs("audit-chain");
    let records = &audit.records;

    let first = records.first().expect("the ledger is not empty");
    let last = records.last().expect("the ledger is not empty");
    assert_eq!(first["kind"], "daemon_start", "the daemon's first record: {first}");
    // The daemon signs a checkpoint over everything, its stop included,
    // as it exits.
    assert_eq!(last["kind"], "checkpoint", "the stopped daemon's last record: {last}");
    let before_last = &records[records.len() - 2];
    assert_eq!(before_last["kind"], "daemon_stop", "the record before the final checkpoint: {before_last}");
    assert_eq!(u64_field(last, "tree_size"), u64_field(last, "seq"), "the final checkpoint covers every record before it: {last}");
    for pair in records.windows(2) {
        let (previous, record) = (&pair[0], &pair[1]);
        assert_eq!(u64_field(record, "seq"), u64_field(previous, "seq") + 1, "seq is consecutive: {record}");
        assert_eq!(record["prev_hash"], previous["hash"], "prev_hash is the previous record's hash: {record}");
    }

    let verify = audit.daemon.ledger().verify();
    assert_eq!(verify.code, 0, "lupid-ledger verify must accept an untouched ledger; {verify}");
}
