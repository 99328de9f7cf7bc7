//! Names relative to a descriptor: the current directory, an `openat`
//! dirfd, `openat2` with `RESOLVE_*` flags, and a dirfd that another
//! thread swaps with `dup2` while the opens run. The hook decides on the
//! opened file, so no spelling of the name and no race reaches the secret.

use crate::common::ledger::{decisions, wait_decision, wait_decision_where};
use crate::common::process::numbers_in;
use crate::common::{Daemon, SECRET, require_bpf_lsm};

use super::{USERS, agent_name, assert_denied, probe_str};

/// P0 with an explicit read rule for the dynamic loader's libraries.
const POLICY: &str = "\
lupid-policy 1
default deny
deny-secrets: deny  open    /srv/secrets/**  read,write
allow-lib:    allow open    /usr/lib/**      read
allow-open:   allow open    /**              read,write
deny-curl:    deny  exec    /usr/bin/curl
allow-exec:   allow exec    /**
allow-local:  allow connect 127.0.0.1/32:8080
";

/// Opens per race run: enough for the swapping thread to interleave
/// under TCG emulation, few enough to record each decision quickly.
const RACE_OPENS: u32 = 2000;

/// Parses `openat-race NAME: N opened (B bytes), M EPERM, K ENOENT, L other`.
fn parse_race(line: &str) -> Option<[u64; 5]> {
    let (_, counts) = line.strip_prefix("openat-race ")?.rsplit_once(": ")?;
    numbers_in(counts)
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_relative_names_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("descriptors", POLICY);
    let ledger = daemon.ledger();

    for user in USERS {
        let steps: [(&str, [&str; 3], &str); 3] = [
            ("cwd", ["open-in", "/srv/secrets", "token"], "open token"),
            ("openat", ["openat", "/srv", "secrets/token"], "openat /srv secrets/token"),
            ("openat2", ["openat2", "/srv/secrets", "token"], "openat2 /srv/secrets token"),
        ];
        for (step, args, line) in steps {
            let agent = agent_name(&format!("relative-{step}"), user);
            let outcome = probe_str(&daemon, &agent, &policy, user, &args);
            assert_denied(&outcome, line, &format!("{args:?} opens {SECRET}"));
            let (denial, _) = wait_decision(&ledger, &agent, "open", "deny");
            assert_eq!(denial["path"], SECRET, "the ledger names the kernel-resolved path: {denial}");
            assert_eq!(denial["rule"], "deny-secrets", "{denial}");
        }
    }
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_dup2_race_reads_nothing() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("descriptors", POLICY);
    let ledger = daemon.ledger();
    let count = RACE_OPENS.to_string();

    for user in USERS {
        let agent = agent_name("relative-race", user);
        let args = ["openat-race", "/home/agent/work", "/srv/secrets", "token", &count];
        let outcome = probe_str(&daemon, &agent, &policy, user, &args);
        let line = outcome.stdout.lines().find(|line| line.starts_with("openat-race ")).unwrap_or_default();
        let [opened, bytes, eperm, enoent, other] =
            parse_race(line).unwrap_or_else(|| panic!("expected an openat-race line; {outcome}"));

        assert_eq!(opened, 0, "no open of token may succeed in either folder; {outcome}");
        assert_eq!(bytes, 0, "no byte of the secret may be read; {outcome}");
        assert_eq!(other, 0, "every open is denied or not found; {outcome}");
        assert_eq!(eperm + enoent, u64::from(RACE_OPENS), "{outcome}");
        assert!(eperm > 0, "some opens must have met /srv/secrets and been denied; {outcome}");

        // Each denial is one record naming the secret. An open of the
        // missing work/token fails in the lookup and reaches no hook.
        let records = ledger.wait_for(&format!("{eperm} denied opens of {agent}"), |records| {
            decisions(records, &agent, "open").iter().filter(|r| r["verdict"] == "deny").count() as u64 >= eperm
        });
        let denials: Vec<_> =
            decisions(&records, &agent, "open").into_iter().filter(|r| r["verdict"] == "deny").collect();
        assert_eq!(denials.len() as u64, eperm, "exactly one record per denied open");
        assert!(denials.iter().all(|r| r["path"] == SECRET), "every denial names {SECRET}");
    }
}

/// Runs a program with an empty `LD_LIBRARY_PATH`: the dynamic loader's
/// opens of the probe's libraries must meet no denial.
#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_loader_opens_allowed() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("descriptors", POLICY);

    let mut command =
        daemon.run_command("relative-loader", &policy, None, &[crate::common::PROBE_BIN, "exec", "/bin/true"]);
    command.env("LD_LIBRARY_PATH", "");
    let outcome = super::run(&mut command);
    assert_eq!(outcome.code, 0, "the probe and /bin/true must run; {outcome}");

    let records = ledger_after_exec(&daemon, "relative-loader");
    let denied: Vec<_> = crate::common::ledger::records_of(&records, "decision", "relative-loader")
        .into_iter()
        .filter(|r| r["verdict"] == "deny")
        .collect();
    assert!(denied.is_empty(), "the loader must meet no denial: {denied:?}");
}

/// Waits for the agent's allowed exec of `/bin/true` (busybox) and returns
/// the records.
fn ledger_after_exec(daemon: &Daemon, agent: &str) -> Vec<serde_json::Value> {
    let (_, records) = wait_decision_where(&daemon.ledger(), agent, "exec", "allow", |r| r["path"] == "/bin/busybox");
    records
}

#[test]
fn race_line_parses() {
    let line = "openat-race token: 0 opened (0 bytes), 998 EPERM, 1002 ENOENT, 0 other";
    assert_eq!(parse_race(line), Some([0, 0, 998, 1002, 0]));
    assert_eq!(parse_race("open x: ok"), None);
}
