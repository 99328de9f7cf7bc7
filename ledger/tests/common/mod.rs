//! Records and helpers shared by the integration tests.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::Path;

use lupid_ledger::{
    AgentExit, DaemonStart, DaemonStop, Decision, EventsLost, Hook, Identity, LeaseExpired, LeaseGranted, LeaseRevoked,
    Ledger, ModeChanged, Object, PolicyLoaded, Reason, RecordBody, Verdict, Via,
};
use rocksdb::{DB, DBCompressionType, Options};

/// Bytes that are not UTF-8 and that a terminal or a line-based parser
/// would trip over: NUL, newline, an ANSI escape sequence, a C1 control.
pub(crate) const HOSTILE: &[u8] = b"a\xff\xfe\0\n\x1b[31mred\x1b[0m\xc2\x9b\r\"\\";

pub(crate) fn daemon_start() -> RecordBody {
    RecordBody::DaemonStart(DaemonStart { version: "0.1.0".into(), kernel: "6.8.0-lupid".into(), pid: 4242 })
}

pub(crate) fn daemon_stop() -> RecordBody {
    RecordBody::DaemonStop(DaemonStop { reason: "SIGTERM".into() })
}

pub(crate) fn identity() -> RecordBody {
    RecordBody::Identity(Identity {
        agent_id: 7,
        agent: "coder".into(),
        delegated_by: "alice@example.org".into(),
        policy_sha256: [0xab; 32],
        policy_path: b"/etc/lupid/policies/coder.toml".to_vec(),
        command: vec![b"/usr/bin/agent".to_vec(), HOSTILE.to_vec(), Vec::new()],
        uid: 1000,
        gid: 1000,
        pid: 31337,
        exe_path: b"/usr/bin/\xffagent".to_vec(),
        exe_sha256: [0xcd; 32],
        cgroup_id: 0x1234_5678_9abc,
        cgroup_path: b"/sys/fs/cgroup/lupid/coder-7".to_vec(),
    })
}

pub(crate) fn open_decision() -> RecordBody {
    RecordBody::Decision(Decision {
        kernel_seq: 99,
        boot_ns: 123_456_789,
        agent_id: 7,
        agent: "coder".into(),
        policy_sha256: [0xab; 32],
        pid: 31338,
        tgid: 31337,
        uid: 1000,
        gid: 1000,
        cgroup_id: 0x1234_5678_9abc,
        comm: b"cat\0\xff\n".to_vec(),
        hook: Hook::Open,
        verdict: Verdict::Deny,
        reason: Reason::Rule,
        rule_id: 3,
        rule: "deny-ssh-keys".into(),
        access: 1 | 2,
        object: Object::Path { path: [b"/home/alice/.ssh/", HOSTILE].concat(), truncated: false },
        lease_id: 0,
        protocol: 0,
        via: Via::Syscall,
        requested: Vec::new(),
        requested_truncated: false,
    })
}

pub(crate) fn connect_decision() -> RecordBody {
    let mut addr = [0; 16];
    addr[10] = 0xff;
    addr[11] = 0xff;
    addr[12..].copy_from_slice(&[203, 0, 113, 7]);
    RecordBody::Decision(Decision {
        kernel_seq: 100,
        boot_ns: 223_456_789,
        agent_id: 7,
        agent: "coder".into(),
        policy_sha256: [0xab; 32],
        pid: 31338,
        tgid: 31337,
        uid: 1000,
        gid: 1000,
        cgroup_id: 0x1234_5678_9abc,
        comm: b"curl".to_vec(),
        hook: Hook::Connect,
        verdict: Verdict::Allow,
        reason: Reason::Default,
        rule_id: 0,
        rule: String::new(),
        access: 0,
        object: Object::Socket { family: 2, addr, port: 443 },
        lease_id: 0,
        protocol: 0,
        via: Via::Syscall,
        requested: Vec::new(),
        requested_truncated: false,
    })
}

pub(crate) fn agent_exit() -> RecordBody {
    RecordBody::AgentExit(AgentExit { agent_id: 7, agent: "coder".into(), status: 128 + 9 })
}

pub(crate) fn events_lost() -> RecordBody {
    RecordBody::EventsLost(EventsLost { first_kernel_seq: 101, last_kernel_seq: 140, kernel_drop_counter: 40 })
}

/// Returns one body of every kind up to events lost, with both object
/// variants of a decision. Checkpoint records come from
/// `Ledger::checkpoint`, and the lease kinds from [`lease_kinds`]. [`fill`]
/// cycles through this list, and tests count on its order.
pub(crate) fn every_kind() -> Vec<RecordBody> {
    vec![daemon_start(), identity(), open_decision(), connect_decision(), events_lost(), agent_exit(), daemon_stop()]
}

/// Returns a connect decision that lease 17 allowed.
pub(crate) fn lease_decision() -> RecordBody {
    let RecordBody::Decision(template) = connect_decision() else { unreachable!() };
    RecordBody::Decision(Decision {
        reason: Reason::Lease,
        rule_id: 5,
        rule: "net-needs-lease".into(),
        lease_id: 17,
        ..template
    })
}

/// Returns a UDP send to 203.0.113.7:53 that an `io_uring` worker of the
/// agent made, a decision that needs format version 3.
pub(crate) fn io_uring_send_decision() -> RecordBody {
    let RecordBody::Decision(template) = connect_decision() else { unreachable!() };
    let Object::Socket { family, addr, .. } = template.object else { unreachable!() };
    RecordBody::Decision(Decision {
        kernel_seq: 101,
        comm: b"iou-wrk-31337".to_vec(),
        hook: Hook::Send,
        object: Object::Socket { family, addr, port: 53 },
        protocol: 17,
        via: Via::IoUring,
        ..template
    })
}

/// Returns the denial of a signal that the agent's shell sent to pid 812,
/// the daemon, a decision that needs format version 4.
pub(crate) fn kill_decision() -> RecordBody {
    let RecordBody::Decision(template) = connect_decision() else { unreachable!() };
    RecordBody::Decision(Decision {
        kernel_seq: 102,
        comm: b"sh".to_vec(),
        hook: Hook::Kill,
        verdict: Verdict::Deny,
        reason: Reason::Protected,
        object: Object::Task { pid: 812, comm: b"lupid-agent".to_vec() },
        ..template
    })
}

/// Returns the denial of an open of `/etc/shadow` that the agent requested
/// through the symlink `/tmp/x`, a decision that needs format version 5.
pub(crate) fn requested_open_decision() -> RecordBody {
    let RecordBody::Decision(template) = connect_decision() else { unreachable!() };
    RecordBody::Decision(Decision {
        kernel_seq: 103,
        comm: b"cat".to_vec(),
        hook: Hook::Open,
        verdict: Verdict::Deny,
        reason: Reason::Rule,
        rule_id: 3,
        rule: "deny-shadow".into(),
        access: 1,
        object: Object::Path { path: b"/etc/shadow".to_vec(), truncated: false },
        requested: b"/tmp/x".to_vec(),
        ..template
    })
}

/// Returns the denial of a rename of `/home/alice/.ssh/id_ed25519` to
/// `/tmp/k` that the agent's `mv` requested, a decision that needs format
/// version 6.
pub(crate) fn rename_decision() -> RecordBody {
    let RecordBody::Decision(template) = connect_decision() else { unreachable!() };
    RecordBody::Decision(Decision {
        kernel_seq: 104,
        comm: b"mv".to_vec(),
        hook: Hook::Rename,
        verdict: Verdict::Deny,
        reason: Reason::Rule,
        rule_id: 4,
        rule: "keep-ssh-keys".into(),
        access: 2,
        object: Object::PathPair {
            old: b"/home/alice/.ssh/id_ed25519".to_vec(),
            new: b"/tmp/k".to_vec(),
            truncated: false,
        },
        ..template
    })
}

/// Returns an allowed hard link of `/usr/bin/git` as `/tmp/g`, a decision
/// that needs format version 6.
pub(crate) fn link_decision() -> RecordBody {
    let RecordBody::Decision(template) = rename_decision() else { unreachable!() };
    RecordBody::Decision(Decision {
        kernel_seq: 105,
        comm: b"ln".to_vec(),
        hook: Hook::Link,
        verdict: Verdict::Allow,
        reason: Reason::Default,
        rule_id: 0,
        rule: String::new(),
        object: Object::PathPair { old: b"/usr/bin/git".to_vec(), new: b"/tmp/g".to_vec(), truncated: false },
        ..template
    })
}

pub(crate) fn lease_granted() -> RecordBody {
    RecordBody::LeaseGranted(LeaseGranted {
        lease_id: 17,
        agent: "coder".into(),
        capability: "connect 203.0.113.7:443".into(),
        rule: "net-needs-lease".into(),
        request_id: 42,
        ttl_ns: 900_000_000_000,
        expires_boot_ns: 901_000_000_000,
        boot_id: "4f1c3a52-8a0e-4c1b-9d4e-0a1b2c3d4e5f".into(),
        max_uses: 10,
        granted_by: "alice@example.org".into(),
        reason: "fetch the release tarball".into(),
    })
}

pub(crate) fn lease_revoked() -> RecordBody {
    RecordBody::LeaseRevoked(LeaseRevoked {
        lease_id: 17,
        agent: "coder".into(),
        revoked_by: "bob@example.org".into(),
        reason: "download finished".into(),
        uses: 3,
    })
}

pub(crate) fn lease_expired() -> RecordBody {
    RecordBody::LeaseExpired(LeaseExpired {
        lease_id: 18,
        agent: "coder".into(),
        cause: "reboot".into(),
        expired_boot_ns: 0,
        uses: 1,
        recorded_late: true,
    })
}

pub(crate) fn policy_loaded() -> RecordBody {
    RecordBody::PolicyLoaded(PolicyLoaded {
        agent_id: 7,
        agent: "coder".into(),
        policy_sha256: [0xee; 32],
        policy_path: b"/etc/lupid/policies/\xffcoder.lp".to_vec(),
        previous_sha256: [0xab; 32],
        loaded_by: "lupid-agent".into(),
    })
}

pub(crate) fn mode_changed() -> RecordBody {
    RecordBody::ModeChanged(ModeChanged {
        agent_id: 7,
        agent: "coder".into(),
        mode: "monitor".into(),
        changed_by: "alice@example.org".into(),
    })
}

/// Returns one body of each lease, policy and mode kind, and a decision
/// that a lease allowed.
pub(crate) fn lease_kinds() -> Vec<RecordBody> {
    vec![lease_granted(), lease_decision(), lease_revoked(), lease_expired(), policy_loaded(), mode_changed()]
}

/// Creates a ledger in `dir` with `count` records, written in batches of 100.
pub(crate) fn fill(dir: &Path, count: u64) -> Ledger {
    let mut ledger = Ledger::open(dir).expect("open ledger");
    let kinds = every_kind();
    let mut batch = Vec::new();
    for seq in 0..count {
        let index = usize::try_from(seq).unwrap() % kinds.len();
        batch.push((1_700_000_000_000_000_000 + seq, kinds[index].clone()));
        if batch.len() == 100 {
            ledger.append_batch(std::mem::take(&mut batch)).expect("append batch");
        }
    }
    ledger.append_batch(batch).expect("append batch");
    ledger
}

/// Opens the ledger's RocksDB directly, bypassing the ledger API, to damage it.
pub(crate) fn open_raw(dir: &Path) -> DB {
    let mut options = Options::default();
    options.set_compression_type(DBCompressionType::Lz4);
    let names = DB::list_cf(&options, dir).expect("list column families");
    DB::open_cf(&options, dir, names).expect("open raw RocksDB")
}

pub(crate) fn raw_get(db: &DB, seq: u64) -> Vec<u8> {
    let records = db.cf_handle("records").unwrap();
    db.get_cf(records, seq.to_be_bytes()).unwrap().expect("record present")
}

pub(crate) fn raw_put(db: &DB, seq: u64, value: &[u8]) {
    let records = db.cf_handle("records").unwrap();
    db.put_cf(records, seq.to_be_bytes(), value).unwrap();
}

pub(crate) fn raw_delete(db: &DB, seq: u64) {
    let records = db.cf_handle("records").unwrap();
    db.delete_cf(records, seq.to_be_bytes()).unwrap();
}
