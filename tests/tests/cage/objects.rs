//! Packet and raw sockets, and hard links.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};

use super::{AGENT_UID, protected_denial};
use crate::common::{Daemon, PROBE_BIN};

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
        protected_denial(&daemon, agent, "link");
    }
}
