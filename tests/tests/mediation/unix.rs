//! Unix socket rules (`connect unix:…`). The kernel decides on the socket
//! it found for the name, by the name that socket is bound to. So a link
//! to a socket is judged as the socket, and the daemon's own socket stays
//! out of reach under any rule.

use std::fs;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::net::{SocketAddr, UnixDatagram, UnixListener};
use std::path::Path;
use std::thread;
use std::time::Duration;

use crate::common::ledger::wait_decision_where;
use crate::common::{Daemon, UnixSocketListener, require_bpf_lsm};

const FOLDER: &str = "/run/lupid-unix";

const POLICY: &str = "\
lupid-policy 1
default deny
allow-exec:     allow exec    /**
allow-files:    allow open    /**                               read,write
allow-app:      allow connect unix:/run/lupid-unix/app.sock
allow-dgram:    allow connect unix:/run/lupid-unix/allowed.dgram
allow-abstract: allow connect unix:@lupid-allowed
allow-var-lib:  allow connect unix:/var/lib/**
";

/// Binds a datagram socket at `path` that every user may send to.
fn datagram_receiver(path: &Path) -> UnixDatagram {
    let _ = fs::remove_file(path);
    let socket = UnixDatagram::bind(path).unwrap_or_else(|error| panic!("failed to bind {}: {error}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o777)).expect("failed to open up the datagram socket");
    socket.set_nonblocking(true).expect("failed to make the datagram socket non-blocking");
    socket
}

/// Returns how many datagrams `socket` received, after a short settle time.
fn received(socket: &UnixDatagram) -> usize {
    thread::sleep(Duration::from_millis(300));
    let mut buffer = [0u8; 64];
    let mut count = 0;
    while socket.recv(&mut buffer).is_ok() {
        count += 1;
    }
    count
}

/// Waits for the decision of `agent` whose recorded socket name is `name`.
fn decision_on(daemon: &Daemon, agent: &str, verdict: &str, name: &str) -> serde_json::Value {
    let (record, _) = wait_decision_where(&daemon.ledger(), agent, "connect", verdict, |record| record["path"] == name);
    assert_eq!(record["family"], "unix", "{record}");
    record
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn unix_socket_rules() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("unix", POLICY);
    fs::create_dir_all(FOLDER).expect("failed to create the socket folder");
    let app_path = Path::new(FOLDER).join("app.sock");
    let other_path = Path::new(FOLDER).join("other.sock");
    for path in [&app_path, &other_path] {
        let _ = fs::remove_file(path);
    }
    let app = UnixSocketListener::bind(&app_path);
    let other = UnixSocketListener::bind(&other_path);
    let app_text = app_path.to_str().expect("UTF-8");
    let other_text = other_path.to_str().expect("UTF-8");

    // A named socket: allowed by its rule, another one denied by default.
    let outcome = daemon.run_probe("unix-app", &policy, &["connect-unix", app_text]);
    assert_eq!(outcome.code, 0, "allow-app names the socket; {outcome}");
    let allowed = decision_on(&daemon, "unix-app", "allow", app_text);
    assert_eq!(allowed["rule"], "allow-app", "{allowed}");
    let outcome = daemon.run_probe("unix-other", &policy, &["connect-unix", other_text]);
    assert_eq!(outcome.code, 1, "no rule names other.sock; {outcome}");
    assert_eq!(decision_on(&daemon, "unix-other", "deny", other_text)["reason"], "default");

    // A link is judged as the socket it reaches, whatever its own name.
    let link_to_other = Path::new("/tmp/lupid-unix-link.sock");
    let _ = fs::remove_file(link_to_other);
    symlink(&other_path, link_to_other).expect("failed to link to other.sock");
    let outcome =
        daemon.run_probe("unix-link", &policy, &["connect-unix", link_to_other.to_str().expect("UTF-8")]);
    assert_eq!(outcome.code, 1, "a link to other.sock is other.sock; {outcome}");
    decision_on(&daemon, "unix-link", "deny", other_text);
    assert_eq!(app.accepted(), 1, "only the allowed connect reaches app.sock");
    assert_eq!(other.accepted(), 0, "no connect may reach other.sock");

    // Abstract names.
    let allowed_name = SocketAddr::from_abstract_name("lupid-allowed").expect("a valid abstract name");
    let allowed_abstract = UnixListener::bind_addr(&allowed_name).expect("failed to listen on @lupid-allowed");
    let outcome = daemon.run_probe("unix-abstract", &policy, &["connect-abstract", "lupid-allowed"]);
    assert_eq!(outcome.code, 0, "allow-abstract names @lupid-allowed; {outcome}");
    assert_eq!(decision_on(&daemon, "unix-abstract", "allow", "@lupid-allowed")["rule"], "allow-abstract");
    drop(allowed_abstract);

    // Datagrams: each send is judged by the receiving socket's name.
    let allowed_dgram = datagram_receiver(&Path::new(FOLDER).join("allowed.dgram"));
    let denied_dgram_path = Path::new(FOLDER).join("denied.dgram");
    let denied_dgram = datagram_receiver(&denied_dgram_path);
    let outcome =
        daemon.run_probe("unix-dgram-ok", &policy, &["send-unix", &format!("{FOLDER}/allowed.dgram")]);
    assert_eq!(outcome.code, 0, "allow-dgram names the receiver; {outcome}");
    let denied_text = denied_dgram_path.to_str().expect("UTF-8");
    let outcome = daemon.run_probe("unix-dgram-denied", &policy, &["send-unix", denied_text]);
    assert_eq!(outcome.code, 1, "no rule names denied.dgram; {outcome}");
    decision_on(&daemon, "unix-dgram-denied", "deny", denied_text);
    assert_eq!(received(&allowed_dgram), 1, "the allowed datagram arrives");
    assert_eq!(received(&denied_dgram), 0, "the denied datagram never arrives");

    // The daemon's socket lies in a protected folder, below allow-var-lib.
    let socket = daemon.socket_path();
    let socket_text = socket.to_str().expect("UTF-8");
    let outcome = daemon.run_probe("unix-daemon", &policy, &["connect-unix", socket_text]);
    assert_eq!(outcome.code, 1, "the daemon's socket is protected; {outcome}");
    assert_eq!(decision_on(&daemon, "unix-daemon", "deny", socket_text)["reason"], "protected");
}
