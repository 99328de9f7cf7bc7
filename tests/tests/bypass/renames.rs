//! Renames: a second name for a file (LUP-T03, the rename variant). The
//! kernel builds both names by walking the dentry and mount trees, and the
//! new name may reach no more than the old one: a file the rules hide
//! cannot be moved to where they do not, under any spelling. The ledger
//! keeps both resolved names.

use std::fs;
use std::os::unix::fs::{chown, symlink};
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use serde_json::Value;

use crate::common::ledger::{Ledger, wait_decision_where};
use crate::common::{Daemon, require_bpf_lsm};

use super::{USERS, agent_name, assert_denied, make_dir, probe_str};

/// Files below `/srv/vault` are hidden from agents; everything else may
/// be read and written. `/srv/tree/keys` is hidden too, so `/srv/tree`
/// has a rule below it.
const POLICY_VAULT: &str = "\
lupid-policy 1
default deny
deny-vault:   deny  open /srv/vault/**     read,write
deny-keys:    deny  open /srv/tree/keys/** read,write
allow-open:   allow open /**               read,write
allow-exec:   allow exec /**
";

/// Creates the folder `path` owned by `user` (root when `None`).
fn owned_dir(path: &str, user: Option<u32>) {
    make_dir(Path::new(path));
    chown(path, user, user).unwrap_or_else(|error| panic!("failed to chown {path}: {error}"));
}

/// Writes `contents` to `path`, owned by `user`.
fn owned_file(path: &str, contents: &[u8], user: Option<u32>) {
    fs::write(path, contents).unwrap_or_else(|error| panic!("failed to write {path}: {error}"));
    chown(path, user, user).unwrap_or_else(|error| panic!("failed to chown {path}: {error}"));
}

/// Waits for `agent`'s rename decision with `verdict` whose old name is
/// `old`, and checks its new name and rule.
fn rename_record(ledger: &Ledger, agent: &str, verdict: &str, old: &str, new: &str) -> Value {
    let (record, _) = wait_decision_where(ledger, agent, "rename", verdict, |record| record["old_path"] == old);
    assert_eq!(record["new_path"], new, "the record names the new name as resolved: {record}");
    assert_eq!(record["path_truncated"], false, "{record}");
    record
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_rename_out_of_rules_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("vault", POLICY_VAULT);
    let ledger = daemon.ledger();

    for user in USERS {
        let agent = agent_name("rename-out", user);
        // The agent owns both folders and the file, so only lupid can
        // deny the move.
        let vault = format!("/srv/vault/{agent}");
        // On the same file system as the vault: a rename never crosses one.
        let work = format!("/srv/work/{agent}");
        owned_dir(&vault, user);
        owned_dir(&work, user);
        let secret = format!("{vault}/credentials");
        owned_file(&secret, b"secret", user);
        let alias = format!("{work}/notes.txt");
        let link = format!("{work}/vault-link");
        symlink(&vault, &link).unwrap_or_else(|error| panic!("failed to link {link}: {error}"));

        let outcome = probe_str(&daemon, &agent, &policy, user, &["rename", &secret, &alias]);
        assert_denied(&outcome, &format!("rename {secret}"), "the secret must not move out of the vault");
        let record = rename_record(&ledger, &agent, "deny", &secret, &alias);
        assert_eq!(record["rule"], "deny-vault", "{record}");

        // The same file, named through a symlinked folder: the kernel's
        // resolved name is the vault's.
        let spelled = format!("{link}/credentials");
        let outcome = probe_str(&daemon, &agent, &policy, user, &["rename", &spelled, &alias]);
        assert_denied(&outcome, &format!("rename {spelled}"), "a symlink spelling changes nothing");
        rename_record(&ledger, &agent, "deny", &secret, &alias);

        // Swapping the secret with a file of the agent moves it all the same.
        owned_file(&alias, b"decoy", user);
        let outcome = probe_str(&daemon, &agent, &policy, user, &["exchange", &secret, &alias]);
        assert_denied(&outcome, &format!("exchange {secret}"), "an exchange moves the secret too");
        let (record, _) = wait_decision_where(&ledger, &agent, "rename", "deny", |record| {
            record["old_path"] == secret.as_str() && record["reason"] == "protected"
        });
        assert_eq!(record["new_path"], alias.as_str(), "{record}");
        assert_eq!(fs::read(&secret).expect("the secret stays"), b"secret", "the secret must stay in place");
        assert_eq!(fs::read(&alias).expect("the decoy stays"), b"decoy", "the decoy must stay in place");

        // A rename inside the open tree goes ahead, with both names kept.
        let renamed = format!("{work}/renamed.txt");
        let outcome = probe_str(&daemon, &agent, &policy, user, &["rename", &alias, &renamed]);
        assert_eq!(outcome.code, 0, "a rename inside the open tree must be allowed; {outcome}");
        let record = rename_record(&ledger, &agent, "allow", &alias, &renamed);
        assert_eq!(record["rule"], "allow-open", "{record}");
        assert!(Path::new(&renamed).exists(), "the file must have moved");
    }
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_folder_renames_and_mounts() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("vault", POLICY_VAULT);
    let ledger = daemon.ledger();

    // A folder with a rule below it would carry its files out of the rule.
    make_dir(Path::new("/srv/tree/keys"));
    let outcome = probe_str(&daemon, "rename-tree", &policy, None, &["rename", "/srv/tree", "/srv/tree-moved"]);
    assert_denied(&outcome, "rename /srv/tree", "a folder with rules below must stay");
    let (record, _) =
        wait_decision_where(&ledger, "rename-tree", "rename", "deny", |record| record["old_path"] == "/srv/tree");
    assert_eq!(record["reason"], "rules_below", "{record}");
    assert!(Path::new("/srv/tree/keys").is_dir(), "the folder must stay");

    // On another mount, the name is built across the mount point.
    let mount_point = "/mnt/lupid-walk";
    make_dir(Path::new(mount_point));
    mount(Some("lupid-walk"), mount_point, Some("tmpfs"), MsFlags::empty(), None::<&str>)
        .unwrap_or_else(|error| panic!("mounting a tmpfs on {mount_point} failed: {error}"));
    make_dir(Path::new(&format!("{mount_point}/a/b")));
    owned_file(&format!("{mount_point}/a/b/file"), b"data", None);
    let (old, new) = (format!("{mount_point}/a/b/file"), format!("{mount_point}/a/file"));
    let outcome = probe_str(&daemon, "rename-mount", &policy, None, &["rename", &old, &new]);
    assert_eq!(outcome.code, 0, "a rename on a tmpfs in the open tree must be allowed; {outcome}");
    rename_record(&ledger, "rename-mount", "allow", &old, &new);

    // A deep tree: both names are built in full, 300 folders down.
    let deep = format!("{mount_point}/{}", vec!["d"; 300].join("/"));
    make_dir(Path::new(&deep));
    let (old, new) = (format!("{deep}/f"), format!("{deep}/g"));
    owned_file(&old, b"deep", None);
    let outcome = probe_str(&daemon, "rename-deep", &policy, None, &["rename", &old, &new]);
    assert_eq!(outcome.code, 0, "a deep rename in the open tree must be allowed; {outcome}");
    rename_record(&ledger, "rename-deep", "allow", &old, &new);

    umount2(mount_point, MntFlags::MNT_DETACH)
        .unwrap_or_else(|error| panic!("unmounting the tmpfs on {mount_point} failed: {error}"));
}
