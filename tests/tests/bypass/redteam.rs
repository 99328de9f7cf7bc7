//! Attacks on the rename and control message mediation: names built from
//! another root (a detached mount copy, a chroot), a new name whose read
//! rule needs a lease, and routing control messages hidden behind others
//! or sent through the IPv4 path of an IPv6 socket.
//!
//! Each test asserts what a secure system gives: a denial, no side effect
//! and a record that names the file the kernel resolved.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::common::ledger::{Ledger, decisions, wait_decision, wait_decision_where};
use crate::common::{Daemon, Outcome, Receiver, require_bpf_lsm};

use super::{agent_name, assert_denied, make_dir, probe_str};

/// Files below `/srv/vault` are hidden from agents, and the rest of the
/// tree is open.
const POLICY_VAULT: &str = "\
lupid-policy 1
default deny
deny-vault:   deny  open /srv/vault/**     read,write
allow-open:   allow open /**               read,write
allow-exec:   allow exec /**
";

/// A drop box: the agent may write into `/srv/drop` but not read it back,
/// and reading `/srv/shared` needs a lease.
const POLICY_DROP: &str = "\
lupid-policy 1
default deny
drop-no-read:  deny  open /srv/drop/**   read
drop-write:    allow open /srv/drop/**   write
shared-lease:  lease open /srv/shared/** read
allow-open:    allow open /**            read,write
exec-bin:      allow exec /bin/**
exec-usr:      allow exec /usr/**
";

/// Writes a world-readable secret at `path`, with its folders.
fn plant_secret(path: &str, contents: &[u8]) {
    make_dir(Path::new(path).parent().expect("the secret has a folder"));
    fs::write(path, contents).unwrap_or_else(|error| panic!("failed to write {path}: {error}"));
}

/// Returns every record of `agent`, for a failure message.
fn agent_records(ledger: &Ledger, agent: &str) -> String {
    let records = ledger.export();
    let lines: Vec<String> = ["open", "rename", "send"]
        .iter()
        .flat_map(|hook| decisions(&records, agent, hook))
        .map(Value::to_string)
        .collect();
    lines.join("\n")
}

/// Asserts a denial as [`assert_denied`] does, printing the agent's
/// records when the action went through.
fn assert_denied_with_records(ledger: &Ledger, agent: &str, outcome: &Outcome, prefix: &str, why: &str) {
    if outcome.code == 0 {
        std::thread::sleep(std::time::Duration::from_secs(2));
        panic!("{why}: the action was allowed; {outcome}\nrecords of {agent}:\n{}", agent_records(ledger, agent));
    }
    assert_denied(outcome, prefix, why);
}

/// A root agent clones the mount of `/srv` with `open_tree(OPEN_TREE_CLONE)`.
/// In the detached copy the vault is `/vault/...`, a name no rule covers,
/// for the open hook (`bpf_d_path`) and the rename walk alike.
#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn detached_tree_copy_read_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("vault", POLICY_VAULT);
    let ledger = daemon.ledger();
    plant_secret("/srv/vault/tree/credentials", b"tree-secret");

    let agent = agent_name("tree-read", None);
    let outcome = probe_str(&daemon, &agent, &policy, None, &["tree-read", "/srv", "vault/tree/credentials"]);
    assert_denied_with_records(
        &ledger,
        &agent,
        &outcome,
        "tree-read vault/tree/credentials",
        "a mount copy must not open the vault",
    );
    assert!(!outcome.stdout.contains("tree-secret"), "the secret must not be read; {outcome}");
    let (denial, _) = wait_decision(&ledger, &agent, "open", "deny");
    assert_eq!(denial["reason"], "path_unresolved", "a name outside the caller's tree matches no rule: {denial}");
}

/// Checks the rename form of [`detached_tree_copy_read_denied`].
#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn detached_tree_copy_rename_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("vault", POLICY_VAULT);
    let ledger = daemon.ledger();
    let secret = "/srv/vault/tree-move/credentials";
    plant_secret(secret, b"tree-secret");
    make_dir(Path::new("/srv/work/tree-move"));

    let agent = agent_name("tree-rename", None);
    let outcome = probe_str(
        &daemon,
        &agent,
        &policy,
        None,
        &["tree-rename", "/srv", "vault/tree-move/credentials", "work/tree-move/notes"],
    );
    let moved = Path::new("/srv/work/tree-move/notes").exists();
    assert_denied_with_records(
        &ledger,
        &agent,
        &outcome,
        "tree-rename vault/tree-move/credentials",
        "a mount copy must not move the secret",
    );
    assert!(!moved, "the secret must not leave the vault");
    assert_eq!(fs::read(secret).expect("the secret stays"), b"tree-secret");
    let (denial, _) = wait_decision(&ledger, &agent, "rename", "deny");
    assert_eq!(denial["reason"], "path_unresolved", "a name outside the caller's tree matches no rule: {denial}");
}

/// A root agent calls `chroot("/srv")`: the walk and `bpf_d_path` stop at
/// the new root, so the vault is `/vault/...` there.
#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn chroot_read_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("vault", POLICY_VAULT);
    let ledger = daemon.ledger();
    plant_secret("/srv/vault/chroot/credentials", b"chroot-secret");

    let agent = agent_name("chroot-read", None);
    let outcome = probe_str(&daemon, &agent, &policy, None, &["chroot-read", "/srv", "/vault/chroot/credentials"]);
    assert_denied_with_records(&ledger, &agent, &outcome, "chroot", "a chroot must not open the vault");
    assert!(!outcome.stdout.contains("chroot-secret"), "the secret must not be read; {outcome}");
    let (denial, _) = wait_decision(&ledger, &agent, "chroot", "deny");
    assert_eq!(denial["reason"], "protected", "{denial}");
}

/// Checks the rename form of [`chroot_read_denied`].
#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn chroot_rename_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("vault", POLICY_VAULT);
    let ledger = daemon.ledger();
    let secret = "/srv/vault/chroot-move/credentials";
    plant_secret(secret, b"chroot-secret");
    make_dir(Path::new("/srv/work/chroot-move"));

    let agent = agent_name("chroot-rename", None);
    let outcome = probe_str(
        &daemon,
        &agent,
        &policy,
        None,
        &["chroot-rename", "/srv", "/vault/chroot-move/credentials", "/work/chroot-move/notes"],
    );
    let moved = Path::new("/srv/work/chroot-move/notes").exists();
    assert_denied_with_records(&ledger, &agent, &outcome, "chroot", "a chroot must not move the secret");
    assert!(!moved, "the secret must not leave the vault");
    assert_eq!(fs::read(secret).expect("the secret stays"), b"chroot-secret");
    let (denial, _) = wait_decision(&ledger, &agent, "chroot", "deny");
    assert_eq!(denial["reason"], "protected", "{denial}");
}

/// A file the agent may write but not read moves to a folder whose reads
/// need a lease, and which no exec rule covers. Once someone grants that lease for `/srv/shared`, the
/// file is readable there, so the move must need read at the old name.
#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn rename_to_leased_read_needs_read() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("drop", POLICY_DROP);
    let ledger = daemon.ledger();
    let (dropped, shared) = ("/srv/drop/report", "/srv/shared/report");
    plant_secret(dropped, b"dropped");
    make_dir(Path::new("/srv/shared"));

    let agent = agent_name("drop-to-lease", None);
    let outcome = probe_str(&daemon, &agent, &policy, None, &["rename", dropped, shared]);
    let moved = Path::new(shared).exists();
    assert_denied_with_records(
        &ledger,
        &agent,
        &outcome,
        "rename /srv/drop/report",
        "a leased read name could read the file",
    );
    assert!(!moved, "the file must stay in the drop box");
    let (record, _) = wait_decision_where(&ledger, &agent, "rename", "deny", |record| record["old_path"] == dropped);
    assert_eq!(record["rule"], "drop-no-read", "{record}");
    assert_eq!(record["new_path"], shared, "{record}");
}

/// A source route after 15 and after 16 hop limit control messages: the
/// kernel program reads 16 headers, and a message with more is denied.
#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn route_behind_padding_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let text = format!("{}allow-local6: allow connect [::1/128]:8080\n", crate::common::fixture::POLICY_P0);
    let policy = daemon.write_policy("p0-ipv6", &text);
    let ledger = daemon.ledger();
    let local = Receiver::bind("127.0.0.1:8080");

    let steps = [
        ("padded-route-15", "127.0.0.1:8080", "15", "protected"),
        ("padded-route-16", "127.0.0.1:8080", "16", "read_failed"),
        ("padded-route6-15", "[::1]:8080", "15", "protected"),
        ("padded-route6-16", "[::1]:8080", "16", "read_failed"),
    ];
    for (agent, addr, padding, reason) in steps {
        let outcome = probe_str(&daemon, agent, &policy, None, &["padded-route-message", addr, padding]);
        assert_denied_with_records(&ledger, agent, &outcome, "sendmsg", "a route behind other control messages");
        let (denial, _) = wait_decision(&ledger, agent, "send", "deny");
        assert_eq!(denial["reason"], reason, "{denial}");
    }
    assert_eq!(local.received(), 0, "no routed message may arrive");
}

/// An IPv4 source route (`IP_RETOPTS`) on an IPv6 socket connected to an
/// IPv4-mapped address: the kernel sends it on the IPv4 path, which reads
/// `SOL_IP` control messages from IPv6 sockets too.
#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn mapped_route_message_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let ledger = daemon.ledger();
    let local = Receiver::bind("127.0.0.1:8080");

    let agent = "mapped-route";
    let outcome = probe_str(&daemon, agent, &policy, None, &["mapped-route-message", "127.0.0.1:8080"]);
    assert_denied_with_records(&ledger, agent, &outcome, "sendmsg", "an IPv4 route on an IPv6 socket");
    let (denial, _) = wait_decision(&ledger, agent, "send", "deny");
    assert_eq!(denial["reason"], "protected", "{denial}");
    assert_eq!(local.received(), 0, "no routed message may arrive");
}
