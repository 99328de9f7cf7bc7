//! Policy reloads and mode switches of running agents.

use crate::common::ledger::records_of;
use crate::common::{Daemon, PROBE_BIN, SECRET, require_bpf_lsm};

use super::{Holder, ctl_ok};

const DENY_SECRETS_A: &str = "\
lupid-policy 1
default allow
deny-secrets: deny open /srv/secrets/** read,write
";

const DENY_SECRETS_B: &str = "\
lupid-policy 1
default allow
deny-secrets-b: deny open /srv/secrets/** read,write
deny-curl: deny exec /usr/bin/curl
";

/// Number of opens in each run of the open loop. The test starts runs one
/// after another while it reloads.
const OPENS_PER_RUN: &str = "2000";

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn reload_under_load_denies_every_open() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy_a = daemon.write_policy("a", DENY_SECRETS_A);
    let policy_b = daemon.write_policy("b", DENY_SECRETS_B);
    let _holder = Holder::start(&daemon, "reloaded", &policy_a);
    let start_loop = || {
        daemon
            .run_command("reloaded", &policy_a, None, &[PROBE_BIN, "open-loop", SECRET, OPENS_PER_RUN])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the open loop")
    };
    let mut tallies = Vec::new();
    let mut opener = start_loop();
    for round in 0..100 {
        if opener.try_wait().expect("poll the open loop").is_some() {
            tallies.push(finish(opener));
            opener = start_loop();
        }
        let policy = if round % 2 == 0 { &policy_b } else { &policy_a };
        let outcome =
            daemon.ctl(&["policy", "reload", "--agent", "reloaded", policy.to_str().expect("UTF-8"), "--by", "tester"]);
        assert_eq!(outcome.code, 0, "reload {round} must succeed; {outcome}");
    }
    tallies.push(finish(opener));

    let expected = format!(": 0 ok, {OPENS_PER_RUN} EPERM, 0 other");
    for tally in &tallies {
        assert!(tally.contains(&expected), "every open during the reloads is denied: {tally}");
    }
    let records = daemon
        .ledger()
        .wait_for("the reload records", |records| records_of(records, "policy_loaded", "reloaded").len() >= 100);
    for loaded in records_of(&records, "policy_loaded", "reloaded") {
        assert_eq!(loaded["loaded_by"], "tester", "{loaded}");
    }
}

/// Waits for one run of the open loop and returns its tally line.
fn finish(opener: std::process::Child) -> String {
    let output = opener.wait_with_output().expect("wait for the open loop");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn broken_reload_changes_nothing() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("a", DENY_SECRETS_A);
    let broken = daemon.write_policy("broken", "lupid-policy 1\ndefault allow\nbad: deny open /srv/** rwx\n");
    let _holder = Holder::start(&daemon, "steady", &policy);

    let outcome = daemon.ctl(&["policy", "reload", "--agent", "steady", broken.to_str().expect("UTF-8")]);
    assert_eq!(outcome.code, 2, "a broken policy is rejected; {outcome}");
    assert!(outcome.stderr.contains("broken.policy:3:"), "the error names the file and line; {outcome}");
    let open = daemon.run_agent("steady", &policy, None, &[PROBE_BIN, "open", SECRET, "read"]);
    assert_eq!(open.code, 1, "the running policy stays in force; {open}");
    let records = daemon.ledger().export();
    assert!(records_of(&records, "policy_loaded", "steady").is_empty(), "nothing is recorded as loaded");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn monitor_mode_allows_and_records_denials() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("a", DENY_SECRETS_A);
    let _holder = Holder::start(&daemon, "watched", &policy);

    ctl_ok(&daemon, &["mode", "--agent", "watched", "monitor", "--by", "dana"]);
    let status = daemon.status();
    let agents = status["agents"].as_array().expect("agents");
    assert!(agents.iter().any(|a| a["agent"] == "watched" && a["mode"] == "monitor"), "{status}");
    // A new run of the agent starts in the agent's mode.
    let allowed = daemon.run_agent("watched", &policy, None, &[PROBE_BIN, "open", SECRET, "read"]);
    assert_eq!(allowed.code, 0, "monitor mode allows; {allowed}");
    ctl_ok(&daemon, &["mode", "--agent", "watched", "enforce", "--by", "dana"]);
    let denied = daemon.run_agent("watched", &policy, None, &[PROBE_BIN, "open", SECRET, "read"]);
    assert_eq!(denied.code, 1, "enforce mode denies; {denied}");

    let records = daemon.ledger().wait_for("two mode changes and both opens", |records| {
        records_of(records, "mode_changed", "watched").len() >= 2
            && crate::common::ledger::decisions(records, "watched", "open").iter().any(|d| d["verdict"] == "deny")
    });
    let changes = records_of(&records, "mode_changed", "watched");
    assert_eq!(changes[0]["mode"], "monitor");
    assert_eq!(changes[0]["changed_by"], "dana");
    assert_eq!(changes[1]["mode"], "enforce");
    let opens = crate::common::ledger::decisions(&records, "watched", "open");
    let monitored = opens.iter().find(|d| d["reason"] == "monitor").expect("the monitored open is recorded");
    assert_eq!(monitored["verdict"], "allow", "{monitored}");
    assert_eq!(monitored["rule"], "deny-secrets", "the record names the rule that would have denied: {monitored}");
}
