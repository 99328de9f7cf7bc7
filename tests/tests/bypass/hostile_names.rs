//! Names that are not UTF-8 or that contain JSON and terminal syntax. Each
//! decision must give exactly one record, the export must keep the raw
//! bytes (`path_hex` next to the lossy `path`), the chain must verify,
//! and the daemon must still reply to `status`.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::common::fixture::hex;
use crate::common::ledger::{records_of, u64_field};
use crate::common::{Daemon, require_bpf_lsm};

use super::{POLICY_ALLOWLIST, USERS, agent_name, assert_denied, copy_busybox, decisions_on_path, probe, run};

/// A program name with invalid UTF-8, a quote, a newline and a brace.
const HOSTILE_BINARY: &[u8] = b"/home/agent/work/\xff\xfe\"\n{.bin";
/// A denied file whose name is not UTF-8. A shell's `\x80\x00ignored`
/// ends at the NUL byte, so this is the name such a command opens.
const HOSTILE_SECRET: &[u8] = b"/srv/secrets/\x80";
/// A name in the same folder that does not exist.
const MISSING_SECRET: &[u8] = b"/srv/secrets/\x81";
/// An allowed file whose name is not UTF-8.
const HOSTILE_ALLOWED: &[u8] = b"/home/agent/work/\xc3\x28";
/// Bytes of the long argument.
const LONG_ARGUMENT: usize = 100_000;

/// Returns `len` bytes without NUL from a fixed linear congruential
/// sequence, so a failure can be reproduced.
fn argument_bytes(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let byte = (state >> 56) as u8;
            if byte == 0 { b'0' } else { byte }
        })
        .collect()
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_hostile_names_recorded_losslessly() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("allowlist", POLICY_ALLOWLIST);
    let ledger = daemon.ledger();
    copy_busybox(Path::new(OsStr::from_bytes(HOSTILE_BINARY)));
    fs::write(OsStr::from_bytes(HOSTILE_SECRET), b"secret").expect("failed to write the hostile secret");
    fs::write(OsStr::from_bytes(HOSTILE_ALLOWED), b"OK").expect("failed to write the hostile allowed file");
    let _ = fs::remove_file(OsStr::from_bytes(MISSING_SECRET));

    let mut expected = Vec::new();
    for user in USERS {
        let agent = agent_name("hostile-exec", user);
        let outcome = probe(&daemon, &agent, &policy, user, &[OsStr::new("exec"), OsStr::from_bytes(HOSTILE_BINARY)]);
        // The name contains a newline, so the report spans two lines.
        assert_eq!(outcome.code, 1, "no exec rule covers /home/agent/work; {outcome}");
        assert!(outcome.stdout.starts_with("exec /home/agent/work/"), "{outcome}");
        assert!(outcome.stdout.ends_with(".bin: EPERM (errno 1)\n"), "{outcome}");
        expected.push((agent, "exec", HOSTILE_BINARY, "deny"));

        let agent = agent_name("hostile-secret", user);
        let args = [OsStr::new("open"), OsStr::from_bytes(HOSTILE_SECRET), OsStr::new("read")];
        let outcome = probe(&daemon, &agent, &policy, user, &args);
        assert_denied(&outcome, "open /srv/secrets/", "deny-secrets covers every name in the folder");
        expected.push((agent, "open", HOSTILE_SECRET, "deny"));

        let agent = agent_name("hostile-missing", user);
        let args = [OsStr::new("open"), OsStr::from_bytes(MISSING_SECRET), OsStr::new("read")];
        let outcome = probe(&daemon, &agent, &policy, user, &args);
        assert_eq!(outcome.code, 2, "a missing file fails in the lookup, before any hook; {outcome}");
        assert!(outcome.stdout.contains("ENOENT (errno 2)"), "{outcome}");

        let agent = agent_name("hostile-allowed", user);
        let args = [OsStr::new("open"), OsStr::from_bytes(HOSTILE_ALLOWED), OsStr::new("read")];
        let outcome = probe(&daemon, &agent, &policy, user, &args);
        assert_eq!(outcome.code, 0, "allow-open covers the file; {outcome}");
        assert!(outcome.stdout.contains("ok (2 bytes)"), "{outcome}");
        expected.push((agent, "open", HOSTILE_ALLOWED, "allow"));
    }

    let argument = argument_bytes(LONG_ARGUMENT);
    let mut command = daemon.run_command("hostile-argv", &policy, None, &["/bin/true"]);
    command.arg(OsStr::from_bytes(&argument));
    let outcome = run(&mut command);
    assert_eq!(outcome.code, 0, "/bin/true with a {LONG_ARGUMENT}-byte argument runs; {outcome}");

    let records = ledger.wait_for("every hostile decision and the identity of hostile-argv", |records| {
        let all_decided =
            expected.iter().all(|(agent, hook, path, _)| !decisions_on_path(records, agent, hook, path).is_empty());
        all_decided && !records_of(records, "identity", "hostile-argv").is_empty()
    });
    for (agent, hook, path, verdict) in &expected {
        let found = decisions_on_path(&records, agent, hook, path);
        assert_eq!(
            found.len(),
            1,
            "exactly one record for {agent}'s {hook} of {:?}: {found:?}",
            path.escape_ascii().to_string()
        );
        let record = found[0];
        assert_eq!(record["verdict"], *verdict, "{record}");
        assert_eq!(record["path_hex"], hex(path), "the raw bytes are kept: {record}");
        assert!(
            record["path"].as_str().is_some_and(|text| text.contains('\u{fffd}')),
            "a lossy display string: {record}"
        );
    }
    for user in USERS {
        let agent = agent_name("hostile-missing", user);
        let missing = decisions_on_path(&records, &agent, "open", MISSING_SECRET);
        assert!(missing.is_empty(), "a failed lookup reaches no hook and leaves no decision: {missing:?}");
    }

    let identity = records_of(&records, "identity", "hostile-argv")[0];
    assert_eq!(identity["command_hex"][1], hex(&argument), "the argument is kept byte for byte");
    let kernel_seqs: Vec<u64> = records
        .iter()
        .filter(|record| record["kind"] == "decision")
        .map(|record| u64_field(record, "kernel_seq"))
        .collect();
    let mut unique = kernel_seqs.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), kernel_seqs.len(), "no decision may be recorded twice");

    daemon.status();
    let verify = ledger.verify();
    assert_eq!(verify.code, 0, "the chain with hostile names must verify; {verify}");
}
