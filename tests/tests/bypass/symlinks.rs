//! Symlinks: lupid decides on the file the kernel resolved, so a link, a
//! `..` applied to a link's target, and an exec through a link with a
//! harmless name all meet the rule of the target.
//!
//! NOTE: the hooks get only the resolved file, so the ledger keeps no
//! record of the name the agent requested (`/tmp/s/token`).

use crate::common::fixture::replace_symlink;
use crate::common::ledger::{wait_decision, wait_decision_where};
use crate::common::{CURL, Daemon, OK_FILE, SECRET, SECRETS_LINK, TOOL_LINK, require_bpf_lsm};

use super::{USERS, agent_name, assert_denied, make_dir, probe_str};

/// A symlink to `/srv/secrets/sub`, whose `..` is `/srv/secrets`.
const SUB_LINK: &str = "/tmp/lupid-bypass-d";
/// A symlink to the folder of the allowed file.
const WORK_LINK: &str = "/tmp/lupid-bypass-w";

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_symlinks_meet_target_rules() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    make_dir(std::path::Path::new("/srv/secrets/sub"));
    replace_symlink("/srv/secrets/sub", SUB_LINK);
    replace_symlink("/home/agent/work", WORK_LINK);
    let ledger = daemon.ledger();

    for user in USERS {
        let denied_opens = [("link", format!("{SECRETS_LINK}/token")), ("dotdot", format!("{SUB_LINK}/../token"))];
        for (step, path) in &denied_opens {
            let agent = agent_name(&format!("symlink-{step}"), user);
            let outcome = probe_str(&daemon, &agent, &policy, user, &["open", path, "read"]);
            assert_denied(&outcome, &format!("open {path}"), &format!("{path} resolves to {SECRET}"));
            assert!(!outcome.stdout.contains("bytes"), "no byte of the secret may be read; {outcome}");
            let (denial, _) = wait_decision(&ledger, &agent, "open", "deny");
            assert_eq!(denial["path"], SECRET, "the ledger names the resolved file: {denial}");
            assert_eq!(denial["rule"], "deny-secrets", "{denial}");
        }

        let agent = agent_name("symlink-exec", user);
        let outcome = probe_str(&daemon, &agent, &policy, user, &["exec", TOOL_LINK]);
        assert_denied(&outcome, &format!("exec {TOOL_LINK}"), &format!("{TOOL_LINK} points at {CURL}"));
        let (denial, _) = wait_decision(&ledger, &agent, "exec", "deny");
        assert_eq!(denial["path"], CURL, "the ledger names the binary, not the link: {denial}");
        assert_eq!(denial["rule"], "deny-curl", "{denial}");

        let agent = agent_name("symlink-control", user);
        let through_link = format!("{WORK_LINK}/ok.txt");
        let outcome = probe_str(&daemon, &agent, &policy, user, &["open", &through_link, "read"]);
        assert_eq!(outcome.code, 0, "{through_link} is {OK_FILE}, which allow-open covers; {outcome}");
        assert!(outcome.has_line(&format!("open {through_link}: ok (2 bytes)")), "{outcome}");
        let (allowed, _) = wait_decision_where(&ledger, &agent, "open", "allow", |r| r["path"] == OK_FILE);
        assert_eq!(allowed["rule"], "allow-open", "{allowed}");
    }
}
