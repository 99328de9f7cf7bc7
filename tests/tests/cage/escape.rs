//! Leaving the labeled cgroup: writes to cgroup control files,
//! `clone3(CLONE_INTO_CGROUP)`, new user, mount or cgroup namespaces, and
//! a move by someone outside the agent.

use std::fs;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use super::{AGENT_UID, protected_denial};
use crate::common::ledger::{records_of, wait_decision_where};
use crate::common::{Daemon, OK_FILE, PROBE_BIN, SECRET};

/// `CLONE_NEWNS`, `CLONE_NEWCGROUP` and `CLONE_NEWUSER` as the probe's
/// hexadecimal FLAGS.
const CLONE_NEWNS: &str = "0x20000";
const CLONE_NEWCGROUP: &str = "0x2000000";
const CLONE_NEWUSER: &str = "0x10000000";

/// A cgroup next to the agents' cgroups that an agent tries to move into.
/// Dropping it removes it.
struct SiblingCgroup {
    path: PathBuf,
}

impl SiblingCgroup {
    fn create(name: &str) -> Self {
        let path = Path::new("/sys/fs/cgroup").join(format!("lupid-cage-{name}-{}", std::process::id()));
        fs::create_dir(&path).unwrap_or_else(|error| panic!("failed to create the cgroup {}: {error}", path.display()));
        Self { path }
    }

    fn file(&self, name: &str) -> String {
        self.path.join(name).to_str().expect("the cgroup path is UTF-8").to_owned()
    }

    /// Returns the processes in the cgroup.
    fn procs(&self) -> String {
        fs::read_to_string(self.path.join("cgroup.procs")).expect("failed to read the sibling's cgroup.procs")
    }
}

impl Drop for SiblingCgroup {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.path);
    }
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn cgroup_control_writes_denied() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let sibling = SiblingCgroup::create("writes");
    let targets = [
        ("procs", sibling.file("cgroup.procs")),
        ("threads", sibling.file("cgroup.threads")),
        ("subtree", sibling.file("cgroup.subtree_control")),
        ("kill", sibling.file("cgroup.kill")),
        ("root-procs", "/sys/fs/cgroup/cgroup.procs".to_owned()),
    ];

    for (name, path) in &targets {
        let agent = format!("cgroup-{name}");
        let outcome = daemon.run_probe(&agent, &policy, &["open", path, "write"]);
        assert_eq!(outcome.code, 1, "a labeled write open of {path} must be denied; {outcome}");
        assert!(outcome.has_line(&format!("open {path}: EPERM (errno 1)")), "expected EPERM; {outcome}");

        let denial = protected_denial(&daemon, &agent, "open");
        assert_eq!(denial["path"], path.as_str(), "{denial}");
        assert!(denial["rule"].is_null(), "no policy rule decides a protected open: {denial}");
    }
    assert_eq!(sibling.procs(), "", "no process may have moved into the sibling cgroup");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn cgroup_procs_write_denied_unprivileged() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    // A delegated subtree: the agent's user owns the cgroup, so only lupid
    // can prevent the move.
    let sibling = SiblingCgroup::create("delegated");
    for path in [sibling.path.clone(), sibling.path.join("cgroup.procs")] {
        chown(&path, Some(AGENT_UID), Some(AGENT_UID))
            .unwrap_or_else(|error| panic!("failed to chown {}: {error}", path.display()));
    }
    let procs = sibling.file("cgroup.procs");

    let outcome =
        daemon.run_agent("cgroup-user", &policy, Some(AGENT_UID), &[crate::common::PROBE_BIN, "open", &procs, "write"]);

    assert_eq!(outcome.code, 1, "an unprivileged write open of a delegated cgroup.procs must be denied; {outcome}");
    assert!(outcome.has_line(&format!("open {procs}: EPERM (errno 1)")), "expected EPERM; {outcome}");
    let denial = protected_denial(&daemon, "cgroup-user", "open");
    assert_eq!(denial["uid"], AGENT_UID, "{denial}");
    assert_eq!(sibling.procs(), "", "no process may have moved into the delegated cgroup");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn cgroup_procs_read_allowed() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();

    let outcome = daemon.run_probe("cgroup-read", &policy, &["open", "/sys/fs/cgroup/cgroup.procs", "read"]);

    assert_eq!(outcome.code, 0, "reading cgroup.procs moves nothing and must stay allowed; {outcome}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn clone_into_cgroup_denied() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let sibling = SiblingCgroup::create("clone");
    let dir = sibling.path.to_str().expect("the cgroup path is UTF-8");

    let outcome = daemon.run_probe("clone-cgroup", &policy, &["clone", "0", dir]);

    assert_eq!(outcome.code, 1, "clone3 with CLONE_INTO_CGROUP must be denied; {outcome}");
    assert!(outcome.has_line("clone 0x0: EPERM (errno 1)"), "expected EPERM; {outcome}");
    assert_eq!(sibling.procs(), "", "no child may have started in the sibling cgroup");
    protected_denial(&daemon, "clone-cgroup", "clone");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn clone_new_namespaces_denied() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();

    for (name, flags) in [("mount", CLONE_NEWNS), ("cgroup", CLONE_NEWCGROUP)] {
        let agent = format!("clone-{name}");
        let outcome = daemon.run_probe(&agent, &policy, &["clone", flags]);
        assert_eq!(outcome.code, 1, "a clone into a new {name} namespace must be denied; {outcome}");
        assert!(outcome.has_line(&format!("clone {flags}: EPERM (errno 1)")), "expected EPERM; {outcome}");
        protected_denial(&daemon, &agent, "clone");
    }
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn plain_fork_allowed() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();

    let outcome = daemon.run_probe("clone-plain", &policy, &["clone", "0"]);

    assert_eq!(outcome.code, 0, "a clone without protected flags must stay allowed; {outcome}");
    let records = daemon.ledger().export();
    let clones = crate::common::ledger::decisions(&records, "clone-plain", "clone");
    assert!(clones.is_empty(), "an allowed clone leaves no record: {clones:?}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn user_namespace_denied() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();

    for (agent, user) in [("userns-root", None), ("userns-user", Some(AGENT_UID))] {
        let outcome = daemon.run_agent(agent, &policy, user, &[crate::common::PROBE_BIN, "unshare", CLONE_NEWUSER]);
        assert_eq!(outcome.code, 1, "unshare(CLONE_NEWUSER) must be denied to {agent}; {outcome}");
        assert!(outcome.has_line(&format!("unshare {CLONE_NEWUSER}: EPERM (errno 1)")), "expected EPERM; {outcome}");
        protected_denial(&daemon, agent, "userns_create");
    }

    // clone(CLONE_NEWUSER) creates the namespace before the task, so the
    // same hook denies it.
    let outcome = daemon.run_probe("userns-clone", &policy, &["clone", CLONE_NEWUSER]);
    assert_eq!(outcome.code, 1, "clone(CLONE_NEWUSER) must be denied; {outcome}");
    protected_denial(&daemon, "userns-clone", "userns_create");
}

/// Someone outside the agent (root, here the test) moves the agent's
/// process into another cgroup. The label belongs to the task, not to the
/// cgroup, so the process stays confined as the same agent.
#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn moved_process_stays_confined() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let sibling = SiblingCgroup::create("moved");
    let script = format!("sleep 6; {PROBE_BIN} open {SECRET} read; {PROBE_BIN} open {OK_FILE} read");
    let mut child = daemon.spawn_agent("moved", &policy, &["/bin/sh", "-c", &script]);
    daemon.wait_for_agent("moved", Duration::from_mins(1));
    let records = daemon.ledger().wait_for("the identity of moved", |records| {
        !records_of(records, "identity", "moved").is_empty()
    });
    let identity = records_of(&records, "identity", "moved")[0].clone();
    let cgroup = PathBuf::from(identity["cgroup"].as_str().expect("the identity names its cgroup"));

    // Wait for the shell to be in the agent's cgroup, then move it out.
    let deadline = Instant::now() + Duration::from_secs(30);
    let procs = loop {
        let procs = fs::read_to_string(cgroup.join("cgroup.procs")).expect("failed to read the agent's cgroup.procs");
        if !procs.trim().is_empty() {
            break procs;
        }
        assert!(Instant::now() < deadline, "the agent's shell never entered {}", cgroup.display());
        thread::sleep(Duration::from_millis(100));
    };
    for pid in procs.lines() {
        fs::write(sibling.path.join("cgroup.procs"), pid).expect("failed to move the agent's process");
    }
    assert!(!sibling.procs().trim().is_empty(), "the agent's shell now runs in the sibling cgroup");

    let status = child.wait().expect("failed to wait for the agent");
    assert!(status.success(), "the shell's last command, an allowed open, succeeds: {status}");
    let ledger = daemon.ledger();
    let (denial, _) = wait_decision_where(&ledger, "moved", "open", "deny", |record| record["path"] == SECRET);
    assert_eq!(denial["rule"], "deny-secrets", "the moved process is still judged by its agent's policy: {denial}");
    assert_eq!(denial["cgroup_id"], identity["cgroup_id"], "the record names the agent's own cgroup: {denial}");
    let (allowed, _) = wait_decision_where(&ledger, "moved", "open", "allow", |record| record["path"] == OK_FILE);
    assert_eq!(allowed["rule"], "allow-open", "{allowed}");
}
