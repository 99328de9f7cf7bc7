//! Exec rules by content: copies, hard links, symlinks and renames of a
//! binary match the rule that names its SHA-256.

use std::fs;
use std::os::unix::fs::symlink;

use crate::common::fixture::sha256_file;
use crate::common::{Daemon, LEDGER_BIN, PROBE_BIN, require_bpf_lsm};

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn content_rule_denies_every_copy() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let digest = sha256_file(std::path::Path::new(LEDGER_BIN));
    let policy = daemon.write_policy(
        "content",
        &format!(
            "lupid-policy 1\ndefault deny\nexec-all: allow exec /**\nread-all: allow open /** read\n\
             no-ledger-tool: deny exec sha256:{digest}\n"
        ),
    );
    let dir = tempfile::tempdir_in("/tmp").expect("a scratch folder");
    let copy = dir.path().join("copy");
    let hard = dir.path().join("hard");
    let link = dir.path().join("link");
    let renamed = dir.path().join("renamed");
    fs::copy(LEDGER_BIN, &copy).expect("copy the binary");
    fs::hard_link(&copy, &hard).expect("hard-link the copy");
    symlink(&copy, &link).expect("symlink the copy");
    fs::copy(LEDGER_BIN, dir.path().join("before-rename")).expect("copy the binary again");
    fs::rename(dir.path().join("before-rename"), &renamed).expect("rename the copy");

    for path in [LEDGER_BIN.into(), copy, hard, link, renamed] {
        let path = path.to_str().expect("a UTF-8 path").to_owned();
        let outcome = daemon.run_agent("content", &policy, None, &[PROBE_BIN, "exec", &path, "--help"]);
        assert_eq!(outcome.code, 1, "{path} has the denied content; {outcome}");
    }
    let outcome = daemon.run_agent("content", &policy, None, &[PROBE_BIN, "exec", "/bin/busybox", "true"]);
    assert_eq!(outcome.code, 0, "other binaries still run; {outcome}");

    let records = daemon.ledger().wait_for("five content denials", |records| {
        crate::common::ledger::decisions(records, "content", "exec")
            .iter()
            .filter(|d| d["verdict"] == "deny" && d["rule"] == "no-ledger-tool")
            .count()
            >= 5
    });
    assert!(!records.is_empty(), "the ledger contains the content denials");
}
