//! Renames, as the kernel decides them from the compiled maps: the new name
//! may reach no more than the old one.

use lupid_common::reason;

use super::{allowed, compiled, rule_name, with_rules};
use crate::policy::reference::decide_rename_reference;

/// Returns a policy for the bypass case: the agent may write its home and
/// read everything but its credentials.
fn home_policy() -> String {
    with_rules(
        "\
home:    allow open /home/agent/**             read,write
secret:  deny  open /home/agent/.aws/**        read,write
dropbox: allow open /home/agent/dropbox/**     write
sealed:  deny  open /home/agent/dropbox/**     read
",
    )
}

fn rename(text: &str, old: &str, new: &str, folder: bool) -> lupid_common::decide::Decision {
    decide_rename_reference(&compiled(text), old.as_bytes(), new.as_bytes(), folder)
}

#[test]
fn rename_within_writable_tree_is_allowed() {
    let text = home_policy();
    let decision = rename(&text, "/home/agent/work/a.txt", "/home/agent/work/b.txt", false);
    assert!(allowed(decision), "{decision:?}");
    assert_eq!(rule_name(&compiled(&text), decision), "home");
}

#[test]
fn protected_file_cannot_be_moved_out() {
    let text = home_policy();
    let decision = rename(&text, "/home/agent/.aws/credentials", "/home/agent/work/notes.txt", false);
    assert!(!allowed(decision), "{decision:?}");
    assert_eq!(rule_name(&compiled(&text), decision), "secret");
}

#[test]
fn write_only_file_cannot_become_readable() {
    // The agent may drop files into the dropbox but not read them back; a
    // move into its readable home would read them all the same.
    let text = home_policy();
    let decision = rename(&text, "/home/agent/dropbox/report", "/home/agent/work/report", false);
    assert!(!allowed(decision), "{decision:?}");
    assert_eq!(rule_name(&compiled(&text), decision), "sealed");
    // Into a place where it cannot be read either, the move takes nothing.
    let decision = rename(&text, "/home/agent/dropbox/report", "/home/agent/dropbox/old-report", false);
    assert!(allowed(decision), "{decision:?}");
}

#[test]
fn lease_rule_counts_as_readable() {
    // A lease granted later would read the moved file, so the old name
    // must be readable now.
    let text = with_rules(
        "\
drop:    allow open /srv/drop/**    write
sealed:  deny  open /srv/drop/**    read
all:     allow open /**             read,write
shared:  lease open /srv/shared/**  read
",
    );
    let decision = rename(&text, "/srv/drop/report", "/srv/shared/report", false);
    assert!(!allowed(decision), "{decision:?}");
    assert_eq!(rule_name(&compiled(&text), decision), "sealed");
}

#[test]
fn new_name_needs_create_or_write() {
    let text = home_policy();
    let decision = rename(&text, "/home/agent/work/a.txt", "/etc/a.txt", false);
    assert!(!allowed(decision), "{decision:?}");
    assert_eq!(decision.reason, reason::DEFAULT);
    let with_create = with_rules(
        "\
home:  allow open /home/agent/**  read,write
drop:  allow open /srv/drop/**    create
",
    );
    let decision = rename(&with_create, "/home/agent/work/a.txt", "/srv/drop/a.txt", false);
    assert!(allowed(decision), "{decision:?}");
    assert_eq!(rule_name(&compiled(&with_create), decision), "drop");
}

#[test]
fn folder_with_rules_below_cannot_move() {
    let text = home_policy();
    // The folder contains the credentials' folder, whose rule would not follow.
    let decision = rename(&text, "/home/agent", "/home/agent2", true);
    assert_eq!(decision.reason, reason::RULES_BELOW, "{decision:?}");
    // The protected folder itself: its own rule decides.
    let decision = rename(&text, "/home/agent/.aws", "/home/agent/work/aws", true);
    assert!(!allowed(decision), "{decision:?}");
    assert_eq!(rule_name(&compiled(&text), decision), "secret");
    // A folder with no rules below either name moves freely.
    let decision = rename(&text, "/home/agent/work/src", "/home/agent/work/src.old", true);
    assert!(allowed(decision), "{decision:?}");
}

#[test]
fn folder_cannot_move_over_rules_below_new_name() {
    let text = with_rules(
        "\
all:    allow open /**                read,write
secret: deny  open /srv/app/keys/**   read,write
",
    );
    // Files moved under /srv/app would fall under the keys rule: harmless
    // here, but one lookup cannot tell, so the move is refused.
    let decision = rename(&text, "/tmp/build", "/srv/app", true);
    assert_eq!(decision.reason, reason::RULES_BELOW, "{decision:?}");
    // The same name for a plain file carries nothing below it.
    let decision = rename(&text, "/tmp/build", "/srv/app", false);
    assert!(allowed(decision), "{decision:?}");
}

#[test]
fn unix_socket_rules_mark_no_folder() {
    let text = with_rules(
        "\
all:  allow open    /**                 read,write
sock: deny  connect unix:/run/app/app.sock
",
    );
    let decision = rename(&text, "/run/app", "/run/app.old", true);
    assert!(allowed(decision), "{decision:?}");
}

#[test]
fn default_allow_needs_no_rule() {
    let text = "lupid-policy 1\ndefault allow\nsecret: deny open /srv/secrets/** read\n";
    let decision = rename(text, "/tmp/a", "/tmp/b", false);
    assert!(allowed(decision), "{decision:?}");
    assert_eq!(decision.reason, reason::DEFAULT);
    let decision = rename(text, "/srv/secrets/token", "/tmp/token", false);
    assert!(!allowed(decision), "{decision:?}");
    // Into the secrets, the old name must be writable and readable: it is.
    let decision = rename(text, "/tmp/token", "/srv/secrets/token", false);
    assert!(allowed(decision), "{decision:?}");
}
