//! Record types: what the daemon writes into the ledger.
//!
//! A [`Record`] is a header (sequence number, wall time, link to the previous
//! record) plus one [`RecordBody`]. The byte layout lives in [`crate::codec`];
//! this module only defines the values and their numeric codes.
//!
//! Byte strings that come from the kernel or from users (paths, `comm`,
//! command lines) are `Vec<u8>`, never `String`, because Linux names need not
//! be UTF-8. They are stored exactly as given.

use lupid_common::{hook, reason, verdict};

/// Length of a SHA-256 digest, the size of every hash in the ledger.
pub const HASH_LEN: usize = 32;

/// A SHA-256 digest.
pub type Hash = [u8; HASH_LEN];

/// The `prev_hash` of record 0.
pub const ZERO_HASH: Hash = [0; HASH_LEN];

/// One ledger entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Position in the chain. Record 0 is the first, and numbers are dense.
    pub seq: u64,
    /// Wall-clock time of the append, in nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// Hash of record `seq - 1`, or [`ZERO_HASH`] for record 0.
    pub prev_hash: Hash,
    pub body: RecordBody,
}

/// The payload of a record. The variant decides the record's [`Kind`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordBody {
    DaemonStart(DaemonStart),
    DaemonStop(DaemonStop),
    Identity(Identity),
    Decision(Decision),
    AgentExit(AgentExit),
    EventsLost(EventsLost),
    Checkpoint(CheckpointRecord),
}

impl RecordBody {
    /// Returns the kind code stored in the record header.
    pub fn kind(&self) -> Kind {
        match self {
            Self::DaemonStart(_) => Kind::DaemonStart,
            Self::DaemonStop(_) => Kind::DaemonStop,
            Self::Identity(_) => Kind::Identity,
            Self::Decision(_) => Kind::Decision,
            Self::AgentExit(_) => Kind::AgentExit,
            Self::EventsLost(_) => Kind::EventsLost,
            Self::Checkpoint(_) => Kind::Checkpoint,
        }
    }
}

/// Record kind, stored as one byte in the header. The codes are part of the
/// on-disk format: never renumber them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    DaemonStart = 1,
    DaemonStop = 2,
    Identity = 3,
    Decision = 4,
    AgentExit = 5,
    EventsLost = 6,
    Checkpoint = 7,
}

impl Kind {
    /// Returns the kind with this header code, or `None` for an unknown code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::DaemonStart),
            2 => Some(Self::DaemonStop),
            3 => Some(Self::Identity),
            4 => Some(Self::Decision),
            5 => Some(Self::AgentExit),
            6 => Some(Self::EventsLost),
            7 => Some(Self::Checkpoint),
            _ => None,
        }
    }

    /// Returns the `snake_case` name used in exports.
    pub fn name(self) -> &'static str {
        match self {
            Self::DaemonStart => "daemon_start",
            Self::DaemonStop => "daemon_stop",
            Self::Identity => "identity",
            Self::Decision => "decision",
            Self::AgentExit => "agent_exit",
            Self::EventsLost => "events_lost",
            Self::Checkpoint => "checkpoint",
        }
    }
}

/// The daemon started and opened the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonStart {
    /// Daemon version string.
    pub version: String,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    pub pid: u32,
}

/// The daemon is shutting down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonStop {
    pub reason: String,
}

/// The identity of one agent run, written once before any of its decisions.
/// Later records refer to it by `agent_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub agent_id: u32,
    pub agent: String,
    /// The person or service that started the agent.
    pub delegated_by: String,
    /// SHA-256 of the policy file as loaded.
    pub policy_sha256: Hash,
    pub policy_path: Vec<u8>,
    /// The agent's argv.
    pub command: Vec<Vec<u8>>,
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    pub exe_path: Vec<u8>,
    /// SHA-256 of the executable file.
    pub exe_sha256: Hash,
    /// cgroup v2 id of the agent's labeled cgroup.
    pub cgroup_id: u64,
    pub cgroup_path: Vec<u8>,
}

/// One verdict of an LSM hook, as reported by the kernel program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Kernel event sequence number. Gaps mean lost events.
    pub kernel_seq: u64,
    /// `bpf_ktime_get_boot_ns()` at the decision.
    pub boot_ns: u64,
    pub agent_id: u32,
    pub agent: String,
    pub policy_sha256: Hash,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cgroup_id: u64,
    /// `task_struct::comm`, without trailing NUL bytes.
    pub comm: Vec<u8>,
    pub hook: Hook,
    pub verdict: Verdict,
    pub reason: Reason,
    pub rule_id: u32,
    /// Name of the matching rule; empty when the default verdict applied.
    pub rule: String,
    /// `lupid_common::access` bits: 1 read, 2 write. 0 for exec and connect.
    pub access: u32,
    pub object: Object,
}

/// The LSM hook that produced a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Exec,
    Open,
    Connect,
    /// A send that names its destination: unconnected UDP, TCP Fast Open.
    Send,
}

impl Hook {
    /// Returns the `lupid_common::hook` code.
    pub fn code(self) -> u32 {
        match self {
            Self::Exec => hook::EXEC,
            Self::Open => hook::OPEN,
            Self::Connect => hook::CONNECT,
            Self::Send => hook::SEND,
        }
    }

    /// Returns the hook with this `lupid_common::hook` code.
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            hook::EXEC => Some(Self::Exec),
            hook::OPEN => Some(Self::Open),
            hook::CONNECT => Some(Self::Connect),
            hook::SEND => Some(Self::Send),
            _ => None,
        }
    }

    /// Returns the lowercase name used in exports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::Open => "open",
            Self::Connect => "connect",
            Self::Send => "send",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
}

impl Verdict {
    /// Returns the `lupid_common::verdict` code.
    pub fn code(self) -> u32 {
        match self {
            Self::Allow => verdict::ALLOW,
            Self::Deny => verdict::DENY,
        }
    }

    /// Returns the verdict with this `lupid_common::verdict` code.
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            verdict::ALLOW => Some(Self::Allow),
            verdict::DENY => Some(Self::Deny),
            _ => None,
        }
    }

    /// Returns the lowercase name used in exports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// The cause of a hook's verdict. The codes are `lupid_common::reason::*`.
///
/// `Other` carries a code this version does not know. `Other(n)` with a known
/// code `n` is stored as that code, so it decodes as the named variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Rule,
    Default,
    PathUnresolved,
    ReadFailed,
    UnknownFamily,
    NoPolicy,
    Other(u32),
}

impl Reason {
    /// Returns the `lupid_common::reason` code.
    pub fn code(self) -> u32 {
        match self {
            Self::Rule => reason::RULE,
            Self::Default => reason::DEFAULT,
            Self::PathUnresolved => reason::PATH_UNRESOLVED,
            Self::ReadFailed => reason::READ_FAILED,
            Self::UnknownFamily => reason::UNKNOWN_FAMILY,
            Self::NoPolicy => reason::NO_POLICY,
            Self::Other(code) => code,
        }
    }

    /// Returns the reason with this code; unknown codes become `Other`.
    pub fn from_code(code: u32) -> Self {
        match code {
            reason::RULE => Self::Rule,
            reason::DEFAULT => Self::Default,
            reason::PATH_UNRESOLVED => Self::PathUnresolved,
            reason::READ_FAILED => Self::ReadFailed,
            reason::UNKNOWN_FAMILY => Self::UnknownFamily,
            reason::NO_POLICY => Self::NoPolicy,
            other => Self::Other(other),
        }
    }

    /// Returns the `snake_case` name used in exports, or `None` for `Other`.
    pub fn name(self) -> Option<&'static str> {
        match Self::from_code(self.code()) {
            Self::Rule => Some("rule"),
            Self::Default => Some("default"),
            Self::PathUnresolved => Some("path_unresolved"),
            Self::ReadFailed => Some("read_failed"),
            Self::UnknownFamily => Some("unknown_family"),
            Self::NoPolicy => Some("no_policy"),
            Self::Other(_) => None,
        }
    }
}

/// The object of a decision: a file or a socket destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    /// A file, for exec and open. `truncated` is set when the kernel could
    /// not fit the path in its buffer, in which case `path` is empty.
    Path { path: Vec<u8>, truncated: bool },
    /// A connect destination. `family` is an `AF_*` value; IPv4 addresses
    /// are stored IPv4-mapped (`::ffff:a.b.c.d`). `port` is in host order.
    Socket { family: u16, addr: [u8; 16], port: u16 },
}

/// An agent's main process exited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentExit {
    pub agent_id: u32,
    pub agent: String,
    /// Exit code, or 128 plus the signal number when a signal killed it.
    pub status: i32,
}

/// The kernel produced events that never reached the ledger: a gap in the
/// kernel sequence numbers, or a rise of the kernel's drop counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventsLost {
    pub first_kernel_seq: u64,
    pub last_kernel_seq: u64,
    /// Value of the kernel's ring-buffer-full counter when the loss was seen.
    pub kernel_drop_counter: u64,
}

/// The daemon signed a checkpoint of the Merkle tree over the records before
/// this one. The record's own `seq` equals `tree_size`, so the checkpoint
/// covers exactly the records `0..seq`; the signed note is stored beside the
/// records (see [`crate::checkpoint`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointRecord {
    /// Number of leaves (records) in the tree that the checkpoint signs.
    pub tree_size: u64,
    /// RFC 6962 root hash of that tree.
    pub root_hash: Hash,
}
