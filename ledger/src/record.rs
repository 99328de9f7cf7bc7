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
    LeaseGranted(LeaseGranted),
    LeaseRevoked(LeaseRevoked),
    LeaseExpired(LeaseExpired),
    PolicyLoaded(PolicyLoaded),
    ModeChanged(ModeChanged),
    DaemonGap(DaemonGap),
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
            Self::LeaseGranted(_) => Kind::LeaseGranted,
            Self::LeaseRevoked(_) => Kind::LeaseRevoked,
            Self::LeaseExpired(_) => Kind::LeaseExpired,
            Self::PolicyLoaded(_) => Kind::PolicyLoaded,
            Self::ModeChanged(_) => Kind::ModeChanged,
            Self::DaemonGap(_) => Kind::DaemonGap,
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
    LeaseGranted = 8,
    LeaseRevoked = 9,
    LeaseExpired = 10,
    PolicyLoaded = 11,
    ModeChanged = 12,
    DaemonGap = 13,
}

impl Kind {
    /// Every kind, in code order.
    pub const ALL: [Self; 13] = [
        Self::DaemonStart,
        Self::DaemonStop,
        Self::Identity,
        Self::Decision,
        Self::AgentExit,
        Self::EventsLost,
        Self::Checkpoint,
        Self::LeaseGranted,
        Self::LeaseRevoked,
        Self::LeaseExpired,
        Self::PolicyLoaded,
        Self::ModeChanged,
        Self::DaemonGap,
    ];

    /// Returns the kind with this header code, or `None` for an unknown code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| *kind as u8 == code)
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
            Self::LeaseGranted => "lease_granted",
            Self::LeaseRevoked => "lease_revoked",
            Self::LeaseExpired => "lease_expired",
            Self::PolicyLoaded => "policy_loaded",
            Self::ModeChanged => "mode_changed",
            Self::DaemonGap => "daemon_gap",
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
    /// Id of the lease that allowed the action when `reason` is
    /// [`Reason::Lease`], 0 otherwise. A decision with a lease id is written
    /// as format version 2 or later ([`crate::codec`]).
    pub lease_id: u32,
    /// The socket's IP protocol number (`IPPROTO_*`: 6 TCP, 17 UDP, 1 ICMP,
    /// 58 `ICMPv6`) for a connect or send to an IPv4 or IPv6 address, 0
    /// otherwise. Decisions recorded before format version 3 have 0.
    pub protocol: u16,
    /// The way the action reached the hook. A decision with a `protocol` or
    /// with [`Via::IoUring`] is written as format version 3, or 4 when its
    /// object is an [`Object::Task`], or 5 when it has a requested name, or
    /// 6 when its object is an [`Object::PathPair`].
    pub via: Via,
    /// The name the agent passed to the system call (`open`, `creat`,
    /// `openat`, `openat2`, `execve`, `execveat`) before the kernel resolved
    /// it into `object`, as raw bytes. It is empty when the event carries
    /// none. An open's name is read from the agent's memory when the hook runs,
    /// and an exec's is the kernel's copy (`linux_binprm::filename`). It is
    /// evidence of how the agent spelled the object, never what the verdict
    /// was based on. At most `lupid_common::REQUEST_MAX - 1` (255) bytes.
    pub requested: Vec<u8>,
    /// Set when the requested name filled the kernel's buffer, so the name
    /// the agent passed may be longer than `requested`. A decision with a
    /// requested name or this flag is written as format version 5, or 6
    /// when its object is an [`Object::PathPair`].
    pub requested_truncated: bool,
}

impl Decision {
    /// Returns whether the decision stores a requested name: a non-empty
    /// [`Self::requested`], or [`Self::requested_truncated`] set.
    pub fn has_requested_name(&self) -> bool {
        !self.requested.is_empty() || self.requested_truncated
    }
}

/// The way an action reached the LSM hook.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Via {
    /// An action that the kernel program did not mark as `io_uring` work,
    /// such as a system call of the agent. Decisions recorded before format
    /// version 3 have this value.
    #[default]
    Syscall,
    /// Work that came through `io_uring`. The caller was an `io_uring` worker
    /// thread of the agent (io-wq or SQPOLL), or the action ran inside the
    /// agent's `io_uring_enter` call (`lupid_common::flags::VIA_IO_URING`).
    IoUring,
}

impl Via {
    /// Every value, in code order.
    pub const ALL: [Self; 2] = [Self::Syscall, Self::IoUring];

    /// Returns the one-byte code stored in the record. The codes are part
    /// of the on-disk format, so never renumber them.
    pub fn code(self) -> u8 {
        match self {
            Self::Syscall => 0,
            Self::IoUring => 1,
        }
    }

    /// Returns the value with this code, or `None` for an unknown code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|via| via.code() == code)
    }

    /// Returns the `snake_case` name used in exports and queries.
    pub fn name(self) -> &'static str {
        match self {
            Self::Syscall => "syscall",
            Self::IoUring => "io_uring",
        }
    }
}

/// The LSM hook that produced a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Exec,
    Open,
    Connect,
    /// A send that names its destination: unconnected UDP, TCP Fast Open.
    Send,
    /// A clone with `CLONE_INTO_CGROUP` or a new user, mount or cgroup
    /// namespace (`task_alloc`). This hook and the ones below record only
    /// denials, most by built-in protections ([`Reason::Protected`]).
    /// [`Hook::Rename`] also records the rule decisions of `path_rename`.
    Clone,
    /// A new user namespace (`userns_create`).
    UsernsCreate,
    /// `mount(2)` (`sb_mount`).
    Mount,
    /// `move_mount(2)` (`move_mount`).
    MoveMount,
    /// `umount(2)` (`sb_umount`).
    Umount,
    /// A signal to the daemon (`task_kill`).
    Kill,
    /// ptrace access to the daemon or to a process outside the agent's
    /// cgroup (`ptrace_access_check`).
    Ptrace,
    /// The `bpf(2)` system call (`bpf`).
    Bpf,
    /// A packet or raw socket (`socket_create`).
    SocketCreate,
    /// A hard link (`path_link`), with both names in an
    /// [`Object::PathPair`].
    Link,
    /// A new name in one of lupid's own folders (`inode_create`,
    /// `inode_mkdir`, `inode_mknod`, `inode_symlink`).
    CreateName,
    /// A name removed from one of lupid's own folders (`inode_unlink`,
    /// `inode_rmdir`).
    RemoveName,
    /// A rename: decided by the path rules at both names (`path_rename`,
    /// with both names in an [`Object::PathPair`]), or denied into or out of
    /// one of lupid's own folders (`inode_rename`).
    Rename,
    /// `truncate(2)` of a file by name (`path_truncate`).
    Truncate,
    /// A change of the attributes of a file in one of lupid's own folders
    /// (`inode_setattr`, `inode_setxattr`, `inode_removexattr`).
    SetAttr,
    /// A change of the daemon's limits or scheduling (`task_setrlimit`,
    /// `task_setnice`, `task_setioprio`, `task_setscheduler`).
    TaskSet,
    /// IPv4 options or IPv6 routing headers (`socket_setsockopt`).
    Setsockopt,
    /// A change of the root directory: `chroot(2)` (`path_chroot`) or
    /// `pivot_root(2)` (`sb_pivotroot`).
    Chroot,
}

impl Hook {
    /// Every hook, in code order.
    pub const ALL: [Self; 22] = [
        Self::Exec,
        Self::Open,
        Self::Connect,
        Self::Send,
        Self::Clone,
        Self::UsernsCreate,
        Self::Mount,
        Self::MoveMount,
        Self::Umount,
        Self::Kill,
        Self::Ptrace,
        Self::Bpf,
        Self::SocketCreate,
        Self::Link,
        Self::CreateName,
        Self::RemoveName,
        Self::Rename,
        Self::Truncate,
        Self::SetAttr,
        Self::TaskSet,
        Self::Setsockopt,
        Self::Chroot,
    ];

    /// Returns the `lupid_common::hook` code.
    pub fn code(self) -> u32 {
        match self {
            Self::Exec => hook::EXEC,
            Self::Open => hook::OPEN,
            Self::Connect => hook::CONNECT,
            Self::Send => hook::SEND,
            Self::Clone => hook::CLONE,
            Self::UsernsCreate => hook::USERNS_CREATE,
            Self::Mount => hook::MOUNT,
            Self::MoveMount => hook::MOVE_MOUNT,
            Self::Umount => hook::UMOUNT,
            Self::Kill => hook::KILL,
            Self::Ptrace => hook::PTRACE,
            Self::Bpf => hook::BPF,
            Self::SocketCreate => hook::SOCKET_CREATE,
            Self::Link => hook::LINK,
            Self::CreateName => hook::CREATE_NAME,
            Self::RemoveName => hook::REMOVE_NAME,
            Self::Rename => hook::RENAME,
            Self::Truncate => hook::TRUNCATE,
            Self::SetAttr => hook::SET_ATTR,
            Self::TaskSet => hook::TASK_SET,
            Self::Setsockopt => hook::SETSOCKOPT,
            Self::Chroot => hook::CHROOT,
        }
    }

    /// Returns the hook with this `lupid_common::hook` code.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|hook| hook.code() == code)
    }

    /// Returns the lowercase name used in exports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::Open => "open",
            Self::Connect => "connect",
            Self::Send => "send",
            Self::Clone => "clone",
            Self::UsernsCreate => "userns_create",
            Self::Mount => "mount",
            Self::MoveMount => "move_mount",
            Self::Umount => "umount",
            Self::Kill => "kill",
            Self::Ptrace => "ptrace",
            Self::Bpf => "bpf",
            Self::SocketCreate => "socket_create",
            Self::Link => "link",
            Self::CreateName => "create_name",
            Self::RemoveName => "remove_name",
            Self::Rename => "rename",
            Self::Truncate => "truncate",
            Self::SetAttr => "set_attr",
            Self::TaskSet => "task_set",
            Self::Setsockopt => "setsockopt",
            Self::Chroot => "chroot",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
}

impl Verdict {
    /// Every verdict.
    pub const ALL: [Self; 2] = [Self::Allow, Self::Deny];

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
    /// An audit rule matched: allowed and marked.
    Audit,
    /// A lease allowed the action. [`Decision::lease_id`] names it.
    Lease,
    /// A lease-required rule matched and no valid lease covered the action,
    /// so it was denied. The denial is a lease request.
    LeaseRequired,
    /// The agent runs in monitor mode: rule `rule_id`, or the default
    /// verdict when it is 0, would have denied the action, which was
    /// allowed.
    Monitor,
    /// The binary's content could not be hashed for the content rules, so
    /// the exec was denied.
    HashFailed,
    /// A built-in protection denied the action: it would let the agent
    /// leave its cgroup, hide from the hooks or reach the daemon. No rule
    /// and no mode allows it.
    Protected,
    /// A folder was to be renamed while rules name paths below its old or
    /// new name, so the move would carry files out of their rules or under
    /// rules written for others. Denied.
    RulesBelow,
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
            Self::Audit => reason::AUDIT,
            Self::Lease => reason::LEASE,
            Self::LeaseRequired => reason::LEASE_REQUIRED,
            Self::Monitor => reason::MONITOR,
            Self::HashFailed => reason::HASH_FAILED,
            Self::Protected => reason::PROTECTED,
            Self::RulesBelow => reason::RULES_BELOW,
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
            reason::AUDIT => Self::Audit,
            reason::LEASE => Self::Lease,
            reason::LEASE_REQUIRED => Self::LeaseRequired,
            reason::MONITOR => Self::Monitor,
            reason::HASH_FAILED => Self::HashFailed,
            reason::PROTECTED => Self::Protected,
            reason::RULES_BELOW => Self::RulesBelow,
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
            Self::Audit => Some("audit"),
            Self::Lease => Some("lease"),
            Self::LeaseRequired => Some("lease_required"),
            Self::Monitor => Some("monitor"),
            Self::HashFailed => Some("hash_failed"),
            Self::Protected => Some("protected"),
            Self::RulesBelow => Some("rules_below"),
            Self::Other(_) => None,
        }
    }
}

/// The object of a decision: a file, a socket destination, a process, or
/// the two names of a rename or hard link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    /// A file, for exec and open. `truncated` is set when the kernel could
    /// not fit the path in its buffer, in which case `path` is empty.
    Path { path: Vec<u8>, truncated: bool },
    /// A connect destination. `family` is an `AF_*` value; IPv4 addresses
    /// are stored IPv4-mapped (`::ffff:a.b.c.d`). `port` is in host order.
    Socket { family: u16, addr: [u8; 16], port: u16 },
    /// The process that a signal or a ptrace access was aimed at, for kill
    /// and ptrace. `pid` is its thread group id in the initial pid
    /// namespace, and `comm` its `task_struct::comm` without trailing NUL
    /// bytes. A decision with this object is written as format version 4,
    /// or 5 when it has a requested name.
    Task { pid: u32, comm: Vec<u8> },
    /// The two names of a rename or hard link: `old` is the existing file's
    /// resolved path, `new` the name it gets. `truncated` is set when the
    /// kernel could not build one of them, in which case that name is
    /// empty. A decision with this object is written as format version 6.
    PathPair { old: Vec<u8>, new: Vec<u8>, truncated: bool },
}

/// An agent's main process exited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentExit {
    pub agent_id: u32,
    pub agent: String,
    /// Exit code, or 128 plus the signal number when a signal killed it, or
    /// [`EXIT_UNKNOWN`] when the daemon found the run's cgroup empty and no
    /// exit was reported.
    pub status: i32,
}

/// The [`AgentExit`] status of a run whose exit code is unknown: its
/// `lupid-agent run` died or lost its daemon before reporting it.
pub const EXIT_UNKNOWN: i32 = -1;

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

/// A person or the daemon granted an agent a capability lease: a bounded
/// exception to a lease-required rule, checked by the kernel at every use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseGranted {
    /// Id that the daemon assigned. Decisions allowed by the lease carry it.
    pub lease_id: u32,
    pub agent: String,
    /// The action the lease allows, as text: `connect 203.0.113.7:443`,
    /// `exec /usr/bin/curl`, `write /home/a/repo/**`.
    pub capability: String,
    /// Name of the lease-required rule that the lease is an exception to.
    pub rule: String,
    /// Id of the lease request that this grant fulfils, or 0 when the lease
    /// was granted without a request.
    pub request_id: u64,
    /// Lifetime of the lease in nanoseconds.
    pub ttl_ns: u64,
    /// `bpf_ktime_get_boot_ns()` value at which the lease expires,
    /// on the boot named by `boot_id`.
    pub expires_boot_ns: u64,
    /// `/proc/sys/kernel/random/boot_id` of the boot whose clock
    /// `expires_boot_ns` counts. A lease never outlives that boot.
    pub boot_id: String,
    /// Maximum number of uses; 0 for no limit.
    pub max_uses: u64,
    /// The person, or the daemon, that granted the lease.
    pub granted_by: String,
    /// Reason for the grant, as `granted_by` stated it.
    pub reason: String,
}

/// A person or the daemon ended a lease before it expired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRevoked {
    pub lease_id: u32,
    pub agent: String,
    /// The person, or the daemon, that revoked the lease.
    pub revoked_by: String,
    /// Reason for the revocation, as `revoked_by` stated it.
    pub reason: String,
    /// Uses the kernel counted before the revocation.
    pub uses: u64,
}

/// A lease ended on its own: its time or uses ran out, the machine
/// rebooted, or a policy reload removed the rule it was an exception to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseExpired {
    pub lease_id: u32,
    pub agent: String,
    /// Cause of the expiry: `ttl`, `uses`, `reboot` or `policy`.
    pub cause: String,
    /// `bpf_ktime_get_boot_ns()` at the expiry, or 0 when unknown, as after
    /// a reboot.
    pub expired_boot_ns: u64,
    /// Uses the kernel counted before the expiry.
    pub uses: u64,
    /// Set when the daemon was not running at the expiry and recorded it at
    /// its next start, so the record's wall time is later than the expiry.
    pub recorded_late: bool,
}

/// The daemon loaded a policy for a running agent, in place of the one in
/// force (a reload).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyLoaded {
    pub agent_id: u32,
    pub agent: String,
    /// SHA-256 of the policy file as loaded.
    pub policy_sha256: Hash,
    pub policy_path: Vec<u8>,
    /// SHA-256 of the policy it replaced, or all zero when there was none.
    pub previous_sha256: Hash,
    /// The person, or the daemon, that loaded the policy.
    pub loaded_by: String,
}

/// An agent switched between enforcing its policy and monitor mode, where
/// actions the policy denies are allowed and recorded with
/// [`Reason::Monitor`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModeChanged {
    pub agent_id: u32,
    pub agent: String,
    /// The new mode: `enforce` or `monitor`, or `deny` when the daemon
    /// denies the run everything because a change to it failed.
    pub mode: String,
    /// The person, or the daemon, that switched the mode.
    pub changed_by: String,
}

/// The time a daemon was away while the kernel programs it left pinned went
/// on deciding. The daemon that takes over the pins writes it. Every event
/// the kernel numbered from `first_kernel_seq` up to `next_kernel_seq`
/// (exclusive) follows as a decision drained from the ring buffer, or is
/// covered by an [`EventsLost`] record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonGap {
    /// Wall time of the last record before the gap, in nanoseconds since
    /// the Unix epoch, or 0 when the ledger had no record.
    pub from_ns: u64,
    /// Wall time at which the new daemon took over the programs.
    pub to_ns: u64,
    /// First kernel sequence number that no record accounted for when the
    /// new daemon took over.
    pub first_kernel_seq: u64,
    /// The kernel's next sequence number when the new daemon took over.
    pub next_kernel_seq: u64,
    /// The kernel's count of events that found the ring buffer full, at the
    /// takeover.
    pub kernel_drop_counter: u64,
    /// `kept` when the new daemon reused the pinned programs, `replaced`
    /// when it attached programs of its own build in their place.
    pub programs: String,
}
