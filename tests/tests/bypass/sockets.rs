//! Sockets other than TCP and UDP: a Unix socket at a path (the session
//! bus), an abstract Unix socket, and an unprivileged ICMP echo socket.
//! P0 names no Unix socket, so its default denies both, recorded with the
//! name the peer is bound to. An ICMP echo names its destination, so
//! `socket_sendmsg` judges it by the connect rules.

use std::fs;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::Path;

use crate::common::ledger::wait_decision;
use crate::common::{Daemon, UnixSocketListener, require_bpf_lsm};

use super::{AGENT_UID, USERS, agent_name, assert_denied, probe_str};

/// The session bus path of uid 1001.
const BUS_DIR: &str = "/run/user/1001";
/// The abstract socket name, without the leading NUL byte.
const ABSTRACT_NAME: &str = "lupid-test";
/// Who may open ICMP echo sockets, as `net.ipv4.ping_group_range` takes it.
const PING_GROUP_RANGE: &str = "/proc/sys/net/ipv4/ping_group_range";

/// Returns the `InEchos` counter of `/proc/net/snmp`: echo requests the
/// kernel received.
fn echo_requests_received() -> u64 {
    let snmp = fs::read_to_string("/proc/net/snmp").expect("failed to read /proc/net/snmp");
    let mut icmp = snmp.lines().filter(|line| line.starts_with("Icmp: "));
    let names = icmp.next().expect("an Icmp header line");
    let values = icmp.next().expect("an Icmp value line");
    let index = names.split_whitespace().position(|name| name == "InEchos").expect("an InEchos column");
    values.split_whitespace().nth(index).and_then(|value| value.parse().ok()).expect("an InEchos number")
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_unix_sockets_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let ledger = daemon.ledger();
    fs::create_dir_all(BUS_DIR).expect("failed to create /run/user/1001");
    std::os::unix::fs::chown(BUS_DIR, Some(AGENT_UID), Some(AGENT_UID)).expect("failed to chown /run/user/1001");
    let bus_path = Path::new(BUS_DIR).join("bus");
    let _ = fs::remove_file(&bus_path);
    let bus = UnixSocketListener::bind(&bus_path);
    fs::set_permissions(&bus_path, fs::Permissions::from_mode(0o777)).expect("failed to open up the bus socket");
    let abstract_address = SocketAddr::from_abstract_name(ABSTRACT_NAME).expect("a valid abstract name");
    let abstract_listener = UnixListener::bind_addr(&abstract_address).expect("failed to listen on @lupid-test");
    abstract_listener.set_nonblocking(true).expect("failed to make the abstract listener non-blocking");
    let bus_text = bus_path.to_str().expect("the bus path is UTF-8");

    for user in USERS {
        let agent = agent_name("unix-path", user);
        let outcome = probe_str(&daemon, &agent, &policy, user, &["connect-unix", bus_text]);
        assert_denied(&outcome, &format!("connect {bus_text}"), "P0 names no Unix socket, so its default denies");
        let (denial, _) = wait_decision(&ledger, &agent, "connect", "deny");
        assert_eq!(denial["family"], "unix", "{denial}");
        assert_eq!(denial["path"], bus_text, "the record names the bound socket: {denial}");
        assert_eq!(denial["reason"], "default", "{denial}");

        let agent = agent_name("unix-abstract", user);
        let outcome = probe_str(&daemon, &agent, &policy, user, &["connect-abstract", ABSTRACT_NAME]);
        assert_denied(&outcome, "connect @lupid-test", "P0 names no abstract socket, so its default denies");
        let (denial, _) = wait_decision(&ledger, &agent, "connect", "deny");
        assert_eq!(denial["family"], "unix", "{denial}");
        assert_eq!(denial["path"], "@lupid-test", "an abstract name is recorded after an @: {denial}");
        assert_eq!(denial["reason"], "default", "{denial}");
    }
    assert_eq!(bus.accepted(), 0, "no connection may reach the bus socket");
    assert!(abstract_listener.accept().is_err(), "no connection may reach @lupid-test");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_icmp_echo_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let ledger = daemon.ledger();
    let previous_range = fs::read_to_string(PING_GROUP_RANGE).expect("failed to read ping_group_range");
    fs::write(PING_GROUP_RANGE, "0 2147483647").expect("failed to open ICMP echo sockets to every group");
    let echoes_before = echo_requests_received();

    let mut outcomes = Vec::new();
    for user in USERS {
        let agent = agent_name("icmp-echo", user);
        outcomes.push((agent.clone(), probe_str(&daemon, &agent, &policy, user, &["ping", "203.0.113.7"])));
    }
    let echoes_after = echo_requests_received();
    fs::write(PING_GROUP_RANGE, previous_range.trim()).expect("failed to restore ping_group_range");

    for (agent, outcome) in outcomes {
        assert_denied(&outcome, "ping 203.0.113.7", "no rule allows 203.0.113.7");
        let (denial, _) = wait_decision(&ledger, &agent, "send", "deny");
        assert_eq!(denial["addr"], "203.0.113.7", "{denial}");
        assert_eq!(denial["family"], "inet", "{denial}");
        assert_eq!(denial["reason"], "default", "{denial}");
    }
    assert_eq!(echoes_after, echoes_before, "no echo request may reach 203.0.113.7");
}
