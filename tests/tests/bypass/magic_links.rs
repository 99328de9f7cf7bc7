//! Magic links under `/proc`: `/proc/self/root`, a `/proc/self/fd/N` of an
//! `O_PATH` descriptor and `/proc/self/cwd` name files that the kernel
//! resolves, so the rules of the resolved file apply.

use std::process::Stdio;

use crate::common::ledger::wait_decision;
use crate::common::{CURL, Daemon, SECRET, require_bpf_lsm};

use super::{USERS, agent_name, assert_denied, make_dir, probe_str, run};

/// A variable that only the agent's environment contains.
const MARKER: &str = "LUPID_BYPASS_MARKER=agent-environment";

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_magic_links_resolve() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    make_dir(std::path::Path::new("/srv/secrets/sub"));
    let ledger = daemon.ledger();
    let via_root = format!("/proc/self/root{SECRET}");

    for user in USERS {
        let steps: [(&str, Vec<&str>, &str); 3] = [
            ("root", vec!["open", &via_root, "read"], "open /proc/self/root/srv/secrets/token"),
            ("fd", vec!["open-fd-path", "/srv/secrets", "token"], "open /proc/self/fd/"),
            ("cwd", vec!["open-in", "/srv/secrets/sub", "/proc/self/cwd/../token"], "open /proc/self/cwd/../token"),
        ];
        for (step, args, line) in steps {
            let agent = agent_name(&format!("magic-{step}"), user);
            let outcome = probe_str(&daemon, &agent, &policy, user, &args);
            assert_denied(&outcome, line, &format!("{args:?} resolves to {SECRET}"));
            let (denial, _) = wait_decision(&ledger, &agent, "open", "deny");
            assert_eq!(denial["path"], SECRET, "the ledger names the resolved file: {denial}");
            assert_eq!(denial["rule"], "deny-secrets", "{denial}");
        }

        let agent = agent_name("magic-exec", user);
        let via_root_exec = format!("/proc/self/root{CURL}");
        let outcome = probe_str(&daemon, &agent, &policy, user, &["exec", &via_root_exec]);
        assert_denied(&outcome, &format!("exec {via_root_exec}"), "the binary is /usr/bin/curl");
        let (denial, _) = wait_decision(&ledger, &agent, "exec", "deny");
        assert_eq!(denial["path"], CURL, "{denial}");
        assert_eq!(denial["rule"], "deny-curl", "{denial}");
    }
}

/// `/proc/self/environ` read by the agent is the agent's own: nothing in
/// lupid opens an agent's path in the daemon's process.
#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_proc_environ_is_agents() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let (name, value) = MARKER.split_once('=').expect("the marker is NAME=VALUE");

    for user in USERS {
        let agent = agent_name("magic-environ", user);
        // cat opens the file itself, so /proc/self is the reading agent.
        let mut command = daemon.run_command(&agent, &policy, user, &["/bin/busybox", "cat", "/proc/self/environ"]);
        command.env(name, value).stdin(Stdio::null());
        let outcome = run(&mut command);
        assert_eq!(outcome.code, 0, "reading its own environment is allowed; {outcome}");
        let variables: Vec<&str> = outcome.stdout.split('\0').collect();
        assert!(variables.contains(&MARKER), "the agent must read its own environment, with {MARKER}; {outcome}");
    }
}
