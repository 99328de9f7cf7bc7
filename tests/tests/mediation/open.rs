//! The file open hook (`file_open`).

use crate::common::ledger::{find_decision, wait_decision_where};
use crate::common::{Daemon, Ledger, OK_FILE, SECRET, SECRETS_LINK, require_bpf_lsm};

/// Waits for agent `agent`'s denied open and returns the path it names.
fn denied_open_path(ledger: &Ledger, agent: &str) -> serde_json::Value {
    let records = ledger.wait_for(&format!("a denied open of {agent}"), |records| {
        find_decision(records, agent, "open", "deny").is_some()
    });
    let denial = find_decision(&records, agent, "open", "deny").expect("wait_for found it");
    denial["path"].clone()
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn allowed_file_reads() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();

    let outcome = daemon.run_probe("open-allowed", &policy, &["open", OK_FILE, "read"]);

    assert_eq!(outcome.code, 0, "allow-open covers {OK_FILE}; {outcome}");
    assert!(
        outcome.has_line("open /home/agent/work/ok.txt: ok (2 bytes)"),
        "expected the 2 bytes of \"OK\"; {outcome}"
    );
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn secret_read_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();

    let outcome = daemon.run_probe("open-secret-read", &policy, &["open", SECRET, "read"]);

    assert_eq!(outcome.code, 1, "deny-secrets must fail the open with EPERM; {outcome}");
    assert!(outcome.has_line("open /srv/secrets/token: EPERM (errno 1)"), "expected an EPERM report; {outcome}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn secret_write_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();

    let outcome = daemon.run_probe("open-secret-write", &policy, &["open", SECRET, "write"]);

    assert_eq!(outcome.code, 1, "deny-secrets covers write access too; {outcome}");
    assert!(outcome.has_line("open /srv/secrets/token: EPERM (errno 1)"), "expected an EPERM report; {outcome}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn linked_directory_resolves() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let through_link = format!("{SECRETS_LINK}/token");

    let outcome = daemon.run_probe("open-link", &policy, &["open", &through_link, "read"]);

    assert_eq!(outcome.code, 1, "{through_link} is {SECRET}, so deny-secrets applies; {outcome}");
    assert!(outcome.has_line("open /tmp/s/token: EPERM (errno 1)"), "expected an EPERM report; {outcome}");
    let path = denied_open_path(&daemon.ledger(), "open-link");
    assert_eq!(path, SECRET, "the ledger names the resolved path, not the link");
    let records = daemon.ledger().export();
    let denial = find_decision(&records, "open-link", "open", "deny").expect("denied_open_path found it");
    assert_eq!(denial["requested"], through_link.as_str(), "the record keeps the name the agent asked for: {denial}");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn proc_root_path_resolves() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let via_proc = format!("/proc/self/root{SECRET}");

    let outcome = daemon.run_probe("open-proc-root", &policy, &["open", &via_proc, "read"]);

    assert_eq!(outcome.code, 1, "{via_proc} is {SECRET}, so deny-secrets applies; {outcome}");
    assert!(
        outcome.has_line("open /proc/self/root/srv/secrets/token: EPERM (errno 1)"),
        "expected an EPERM report; {outcome}"
    );
    let path = denied_open_path(&daemon.ledger(), "open-proc-root");
    assert_eq!(path, SECRET, "the ledger names the resolved path, not the /proc alias");
}

/// Files under `/home/agent/work` may be read and written, but creating
/// one below `no-create` is denied. Where no create rule applies, the
/// write rule decides a create.
const POLICY_CREATE: &str = "\
lupid-policy 1
default deny
allow-exec:  allow exec /**
allow-open:  allow open /**                            read,write
no-create:   deny  open /home/agent/work/no-create/**  create
";

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn create_rules() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("create", POLICY_CREATE);
    let folder = std::path::Path::new("/home/agent/work/no-create");
    let _ = std::fs::remove_dir_all(folder);
    std::fs::create_dir_all(folder).expect("failed to create the no-create folder");
    let existing = folder.join("existing.txt");
    std::fs::write(&existing, b"kept").expect("failed to write existing.txt");
    let new_file = folder.join("new.txt");
    let elsewhere = std::path::Path::new("/home/agent/work/created-elsewhere.txt");
    let _ = std::fs::remove_file(elsewhere);

    let new_text = new_file.to_str().expect("UTF-8");
    let outcome = daemon.run_probe("create-denied", &policy, &["open", new_text, "create"]);
    assert_eq!(outcome.code, 1, "no-create denies creating a file there; {outcome}");
    // The kernel decides after the file exists, so an empty file stays
    // behind, but nothing can be written through the denied open.
    let left = std::fs::metadata(&new_file).map_or(0, |meta| meta.len());
    assert_eq!(left, 0, "the denied create wrote no byte");

    let outcome = daemon.run_probe("create-existing", &policy, &["open", existing.to_str().expect("UTF-8"), "write"]);
    assert_eq!(outcome.code, 0, "writing an existing file is not a create; {outcome}");
    let outcome = daemon.run_probe("create-elsewhere", &policy, &["open", elsewhere.to_str().expect("UTF-8"), "create"]);
    assert_eq!(outcome.code, 0, "outside no-create, allow-open's write decides the create; {outcome}");

    let ledger = daemon.ledger();
    let elsewhere_text = elsewhere.to_str().expect("UTF-8");
    let (denied, _) = wait_decision_where(&ledger, "create-denied", "open", "deny", |record| record["path"] == new_text);
    assert_eq!(denied["rule"], "no-create", "{denied}");
    assert_eq!(denied["access"], serde_json::json!(["write", "create"]), "{denied}");
    let (allowed, _) =
        wait_decision_where(&ledger, "create-elsewhere", "open", "allow", |record| record["path"] == elsewhere_text);
    assert_eq!(allowed["rule"], "allow-open", "{allowed}");
    assert_eq!(allowed["access"], serde_json::json!(["write", "create"]), "{allowed}");
}
