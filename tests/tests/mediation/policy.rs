//! Loading the policy given to `lupid-agent run`.

use crate::common::ledger::records_of;
use crate::common::{Daemon, OK_FILE, require_bpf_lsm};

/// A policy whose third line is not a rule.
const BROKEN_POLICY: &str = "\
lupid-policy 1
default deny
this line is not a rule
allow-open: allow open /** read
";

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn syntax_error_rejects_run() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let broken = daemon.write_policy("broken", BROKEN_POLICY);
    let broken_text = broken.display().to_string();

    let outcome = daemon.run_probe("bad-policy", &broken, &["open", OK_FILE, "read"]);

    assert_ne!(outcome.code, 0, "a policy with a syntax error must fail the run; {outcome}");
    assert!(outcome.stderr.contains(&broken_text), "the error must name {broken_text}; {outcome}");
    assert!(
        outcome.stderr.contains(&format!("{broken_text}:3")) || outcome.stderr.contains("line 3"),
        "the error must name line 3, as `{broken_text}:3` or `line 3`; {outcome}"
    );
    assert!(!outcome.has_line_starting("open "), "the command must not run under a broken policy; {outcome}");

    // The ledger is append-only, so once a later run's identity is there, a
    // record for the rejected run would be there too.
    let good = daemon.policy_p0();
    let after = daemon.run_probe("good-policy", &good, &["open", OK_FILE, "read"]);
    assert_eq!(after.code, 0, "a run with a valid policy must still work; {after}");
    let records = daemon.ledger().wait_for("the identity record of good-policy", |records| {
        !records_of(records, "identity", "good-policy").is_empty()
    });
    assert!(records_of(&records, "identity", "bad-policy").is_empty(), "a rejected run must leave no identity record");
}
