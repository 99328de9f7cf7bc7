//! Packet and raw sockets, hard links, and `truncate(2)` by path. A
//! truncate is decided as an open for writing of the resolved path, so
//! unlike the other cases here its denial comes from a policy rule.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;

use super::{AGENT_UID, file_size, protected_denial};
use crate::common::ledger::wait_decision;
use crate::common::{Daemon, PROBE_BIN, SECRET, SECRETS_LINK};

/// `socket(2)` arguments as the probe takes them: family, type, protocol.
/// `AF_PACKET` with `htons(ETH_P_ALL)`, and `AF_INET` with `IPPROTO_RAW`.
const PACKET_SOCKET: [&str; 3] = ["17", "3", "768"];
const RAW_SOCKET: [&str; 3] = ["2", "3", "255"];
/// `AF_INET`, `SOCK_RAW`, `IPPROTO_ICMP`.
const RAW_ICMP_SOCKET: [&str; 3] = ["2", "3", "1"];
/// `AF_INET`, `SOCK_DGRAM`, protocol 0: an ordinary UDP socket.
const UDP_SOCKET: [&str; 3] = ["2", "2", "0"];

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn raw_sockets_denied() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();

    for (agent, user, args) in [
        ("socket-packet", None, PACKET_SOCKET),
        ("socket-raw", None, RAW_SOCKET),
        ("socket-user", Some(AGENT_UID), RAW_ICMP_SOCKET),
    ] {
        let command = [PROBE_BIN, "socket", args[0], args[1], args[2]];
        let outcome = daemon.run_agent(agent, &policy, user, &command);
        let object = args.join(" ");
        assert_eq!(outcome.code, 1, "socket({object}) must be denied to {agent}; {outcome}");
        assert!(outcome.has_line(&format!("socket {object}: EPERM (errno 1)")), "expected EPERM; {outcome}");
        protected_denial(&daemon, agent, "socket_create");
    }
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn udp_socket_allowed() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();

    let outcome = daemon.run_probe("socket-udp", &policy, &["socket", UDP_SOCKET[0], UDP_SOCKET[1], UDP_SOCKET[2]]);

    assert_eq!(outcome.code, 0, "an ordinary UDP socket must stay allowed; {outcome}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn hard_links_denied() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    // The agent's user owns the folder and the file, so the kernel's
    // protected_hardlinks check lets the link through and only lupid can
    // deny it.
    let dir = tempfile::tempdir().expect("failed to create a folder");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("failed to chmod the folder");
    chown(dir.path(), Some(AGENT_UID), Some(AGENT_UID)).expect("failed to chown the folder");
    let file = dir.path().join("credentials");
    fs::write(&file, b"secret").expect("failed to write the file");
    chown(&file, Some(AGENT_UID), Some(AGENT_UID)).expect("failed to chown the file");
    let file = file.to_str().expect("UTF-8");

    for (agent, user) in [("link-root", None), ("link-user", Some(AGENT_UID))] {
        let alias = dir.path().join(format!("{agent}.txt"));
        let alias = alias.to_str().expect("UTF-8");
        let outcome = daemon.run_agent(agent, &policy, user, &[PROBE_BIN, "link", file, alias]);
        assert_eq!(outcome.code, 1, "a hard link must be denied to {agent}; {outcome}");
        assert!(outcome.has_line(&format!("link {alias}: EPERM (errno 1)")), "expected EPERM; {outcome}");
        assert!(fs::symlink_metadata(alias).is_err(), "the link {alias} must not exist");
        let denial = protected_denial(&daemon, agent, "link");
        assert_eq!(denial["old_path"], file, "the record names the linked file: {denial}");
        assert_eq!(denial["new_path"], alias, "the record names the link that was refused: {denial}");
    }
}

/// `truncate(2)` names a file the kernel does not let a program resolve on
/// Linux 6.1, so lupid denies it to every agent, whatever the rules, and
/// records the name the agent passed. Emptying a file through an open for
/// writing (`O_TRUNC`) is decided by the open's rules.
#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn truncate_by_name_denied() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let ledger = daemon.ledger();
    let size = file_size(Path::new(SECRET));
    assert!(size > 0, "the fixture writes a secret that is not empty");
    let linked = format!("{SECRETS_LINK}/token");
    let scratch = Path::new("/tmp/lupid-truncate-scratch");
    fs::write(scratch, b"scratch").expect("failed to write the scratch file");
    let scratch_text = scratch.to_str().expect("UTF-8");

    let cases = [("truncate-secret", SECRET), ("truncate-secret-link", linked.as_str()), ("truncate-scratch", scratch_text)];
    for (agent, path) in cases {
        let outcome = daemon.run_probe(agent, &policy, &["truncate", path]);
        assert_eq!(outcome.code, 1, "truncate(2) of {path} must be denied; {outcome}");
        assert!(outcome.has_line(&format!("truncate {path}: EPERM (errno 1)")), "expected EPERM; {outcome}");
        let (denial, _) = wait_decision(&ledger, agent, "truncate", "deny");
        assert_eq!(denial["reason"], "path_unresolved", "{denial}");
        assert_eq!(denial["requested"], path, "the record keeps the name the agent passed: {denial}");
    }
    assert_eq!(file_size(Path::new(SECRET)), size, "the secret keeps its size");
    assert_eq!(file_size(scratch), 7, "the scratch file keeps its size");
}
