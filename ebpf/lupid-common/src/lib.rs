//! Types that cross the line between lupid's kernel programs and its daemon.
//!
//! Every struct here is an ABI: `#[repr(C)]`, explicit padding, integers in
//! place of `bool` and enums, and compile-time size checks at the bottom of
//! the file. The kernel programs only read the maps described here; the
//! daemon is their only writer.
#![no_std]

pub mod decide;
pub mod protect;

/// Longest path the kernel hands back from `bpf_d_path`, NUL included.
pub const PATH_MAX: usize = 4096;
/// Longest path a rule may name. A longer rule path is rejected when the
/// policy is compiled, because the kernel program compares at most this many
/// bytes of a resolved path against the rule table.
pub const RULE_PATH_MAX: usize = 256;
/// Size of `Event::request`, NUL included.
pub const REQUEST_MAX: usize = 256;
/// Maximum length of one directory entry's name (`NAME_MAX`), NUL excluded.
pub const NAME_MAX: usize = 255;
/// Length of `task_struct::comm`.
pub const COMM_LEN: usize = 16;
/// Most port rules one network prefix can carry, inherited rules included.
pub const NET_RULES_PER_PREFIX: usize = 8;
/// Capacity of the `PATH_RULES` map, shared by every loaded policy.
pub const PATH_RULES_CAPACITY: u32 = 65536;
/// Capacity of the `NET_RULES` trie, shared by every loaded policy.
pub const NET_RULES_CAPACITY: u32 = 65536;
/// Capacity of the `EXEC_CONTENT` map, shared by every loaded policy.
pub const EXEC_CONTENT_CAPACITY: u32 = 16384;
/// Capacity of the `PROTECTED_DIRS` map: lupid's own folders and every
/// folder below them.
pub const PROTECTED_DIRS_CAPACITY: u32 = 1024;
/// Capacity of the `LABELED_TASKS` map: threads of labeled agents alive at
/// once.
pub const LABELED_TASKS_CAPACITY: u32 = 65536;
/// Slots of the `LEASES` array: the most leases in force at once.
pub const MAX_LEASES: u32 = 1024;
/// Length of a SHA-256 digest.
pub const SHA256_LEN: usize = 32;
/// `enum hash_algo` value of SHA-256, as `bpf_ima_file_hash` returns it.
pub const HASH_ALGO_SHA256: i64 = 4;

/// Codes of the LSM hooks that produce events.
pub mod hook {
    pub const EXEC: u32 = 1;
    pub const OPEN: u32 = 2;
    pub const CONNECT: u32 = 3;
    /// A datagram or Fast Open send to an explicit address
    /// (`socket_sendmsg` with `msg_name` set).
    pub const SEND: u32 = 4;
    /// `task_alloc`: a clone with protected flags
    /// (`protect::PROTECTED_CLONE_FLAGS`).
    pub const CLONE: u32 = 5;
    /// `userns_create`: a new user namespace (`unshare`, `clone`).
    pub const USERNS_CREATE: u32 = 6;
    /// `sb_mount`: `mount(2)`.
    pub const MOUNT: u32 = 7;
    /// `move_mount`: attaching or moving a mount with `move_mount(2)`.
    pub const MOVE_MOUNT: u32 = 8;
    /// `sb_umount`: `umount(2)`.
    pub const UMOUNT: u32 = 9;
    /// `task_kill`: a signal to the daemon.
    pub const KILL: u32 = 10;
    /// `ptrace_access_check`: ptrace or `/proc/PID/mem` access to the daemon
    /// or to a process outside the caller's cgroup.
    pub const PTRACE: u32 = 11;
    /// `bpf`: the `bpf(2)` system call.
    pub const BPF: u32 = 12;
    /// `socket_create`: a packet or raw socket.
    pub const SOCKET_CREATE: u32 = 13;
    /// `path_link`: a hard link.
    pub const LINK: u32 = 14;
    /// `inode_create`, `inode_mkdir`, `inode_mknod`, `inode_symlink`: a new
    /// name in one of lupid's own folders.
    pub const CREATE_NAME: u32 = 15;
    /// `inode_unlink`, `inode_rmdir`: a name removed from one of lupid's
    /// own folders.
    pub const REMOVE_NAME: u32 = 16;
    /// `inode_rename`: a rename into or out of one of lupid's own folders.
    pub const RENAME: u32 = 17;
    /// `path_truncate`: `truncate(2)` of a file by its path, which the
    /// kernel lets no program name on Linux 6.1, so it is denied.
    pub const TRUNCATE: u32 = 18;
    /// `inode_setattr`, `inode_setxattr`, `inode_removexattr`: a change of
    /// the mode, owner, times, size or extended attributes of a file in one
    /// of lupid's own folders.
    pub const SET_ATTR: u32 = 19;
    /// `task_setrlimit`, `task_setnice`, `task_setioprio`,
    /// `task_setscheduler`: a change of the daemon's limits or scheduling.
    pub const TASK_SET: u32 = 20;
    /// `socket_setsockopt`: an option that routes packets past the
    /// destination the connect rules judged (IPv4 options, IPv6 routing
    /// headers).
    pub const SETSOCKOPT: u32 = 21;
    /// `path_chroot`, `sb_pivotroot`: a new root directory, which would
    /// make every name the kernel programs build start from a folder of the
    /// agent's choice.
    pub const CHROOT: u32 = 22;
}

/// Bits of `PathRule::flags`.
pub mod path_flags {
    /// Some rule of the policy names a path strictly below this one, so
    /// renaming a folder at this path is denied (`reason::RULES_BELOW`).
    /// The daemon sets it on every ancestor of every rule path.
    pub const RULES_BELOW: u32 = 1;
}

/// Verdicts, as stored in rule slots, agents and events. Zero in a rule slot
/// means "this rule has no opinion on this access".
///
/// Events carry only `ALLOW` or `DENY`, and the reason names the rule
/// verdict that led there. `AUDIT`, `LEASE_REQUIRED` and `LEASED` appear only in rule
/// slots and port rules.
pub mod verdict {
    pub const NONE: u32 = 0;
    pub const ALLOW: u32 = 1;
    pub const DENY: u32 = 2;
    /// Allow, and mark the record.
    pub const AUDIT: u32 = 3;
    /// Deny until a person grants a lease; the denial is a lease request.
    pub const LEASE_REQUIRED: u32 = 4;
    /// A granted lease: the slot's `rule_id` field contains the index of the
    /// lease in the `LEASES` array, whose state decides.
    pub const LEASED: u32 = 5;
    /// A built-in protection rule that the daemon adds to every policy (the
    /// daemon's own folders): deny, with `reason::PROTECTED`, in monitor
    /// mode too.
    pub const PROTECTED: u32 = 6;
}

/// Bits of `AgentInfo::flags`.
pub mod agent_flags {
    /// Monitor mode: a rule or default denial is allowed and recorded with
    /// `reason::MONITOR`. Failures that leave no record still deny.
    pub const MONITOR: u32 = 1;
    /// The policy has content rules: exec hashes the binary (IMA, SHA-256)
    /// and looks the digest up in `EXEC_CONTENT` before the path rules.
    pub const EXEC_CONTENT: u32 = 2;
}

/// Access bits of a file open, taken from `file->f_mode`.
pub mod access {
    pub const READ: u32 = 1;
    pub const WRITE: u32 = 2;
    /// The open created the file (`O_CREAT` on a name that did not exist).
    pub const CREATE: u32 = 4;
}

/// IP protocol numbers (`IPPROTO_*` from the UAPI) that connect rules can
/// name. A port rule with protocol 0 matches every protocol.
pub mod protocol {
    pub const ANY: u16 = 0;
    pub const TCP: u16 = 6;
    pub const UDP: u16 = 17;
}

/// Codes of the causes of a verdict.
pub mod reason {
    /// A rule matched; the event carries its id.
    pub const RULE: u32 = 1;
    /// No rule matched, so the agent's default verdict applied.
    pub const DEFAULT: u32 = 2;
    /// `bpf_d_path` failed, so the object has no name to match. Denied.
    pub const PATH_UNRESOLVED: u32 = 3;
    /// Reading a kernel object failed. Denied.
    pub const READ_FAILED: u32 = 4;
    /// The socket address family is not one the policy can describe. Denied.
    pub const UNKNOWN_FAMILY: u32 = 5;
    /// The agent points at a policy id with no table entry. Denied.
    /// NOTE: no kernel program produces this code yet; the ledger format
    /// keeps it so records stay decodable when one does.
    pub const NO_POLICY: u32 = 6;
    /// An audit rule matched: allowed and marked.
    pub const AUDIT: u32 = 7;
    /// A lease allowed the action; the event carries the lease id.
    pub const LEASE: u32 = 8;
    /// A lease-required rule matched and no valid lease covered the action:
    /// denied, and the daemon lists it as a lease request.
    pub const LEASE_REQUIRED: u32 = 9;
    /// The agent runs in monitor mode: the rule or default would have denied
    /// the action, which was allowed. `rule_id` names the denying rule.
    pub const MONITOR: u32 = 10;
    /// The binary's content could not be hashed for the content rules.
    /// Denied.
    pub const HASH_FAILED: u32 = 11;
    /// A built-in protection denied the action (`protect`, or a rule with
    /// `verdict::PROTECTED`). Monitor mode does not allow it.
    pub const PROTECTED: u32 = 12;
    /// A folder was to be renamed while rules of the policy name paths
    /// below its old or its new name: the move would carry those files out
    /// of their rules, or under rules written for other files. Denied, and
    /// allowed in monitor mode like a rule's denial.
    pub const RULES_BELOW: u32 = 13;
}

/// Indexes into the per-CPU `ERRORS` counter array. Each counts a failure
/// path that ended in a denial.
pub mod error {
    /// The ring buffer had no room for the event, so the action was denied
    /// without a record and its sequence number was skipped.
    pub const RINGBUF_FULL: u32 = 0;
    pub const PATH_UNRESOLVED: u32 = 1;
    pub const READ_FAILED: u32 = 2;
    pub const UNKNOWN_FAMILY: u32 = 3;
    pub const HASH_FAILED: u32 = 4;
    /// Number of slots in the `ERRORS` array.
    pub const COUNT: u32 = 8;
}

/// Event flags.
pub mod flags {
    /// The path did not fit in `PATH_MAX` bytes. The event contains no path.
    pub const PATH_TRUNCATED: u32 = 1;
    /// The action came through io_uring: the caller is an io_uring worker
    /// thread (io-wq or SQPOLL) of the agent, or the action ran inside its
    /// `io_uring_enter` call.
    pub const VIA_IO_URING: u32 = 2;
    /// The requested name filled `request`, so it may be longer than what
    /// the event holds.
    pub const REQUEST_TRUNCATED: u32 = 4;
    /// The event names two paths, the old name in `path` and the new one
    /// in `new_path` (a rename or hard link). `PATH_TRUNCATED` then means
    /// that one of them did not fit.
    pub const TWO_NAMES: u32 = 8;
}

/// Address families the connect hook understands (`AF_*` from the UAPI).
pub mod family {
    pub const UNIX: u16 = 1;
    pub const INET: u16 = 2;
    pub const INET6: u16 = 10;
}

/// Value of the `AGENTS` map, keyed by the cgroup v2 id of a labeled cgroup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentInfo {
    /// Daemon-assigned id of this agent run; the ledger maps it to a name.
    pub agent_id: u32,
    /// Key prefix of the agent's rules in `PATH_RULES` and `NET_RULES`.
    pub policy_id: u32,
    /// Verdict when no rule matches (`verdict::ALLOW` or `verdict::DENY`).
    pub default_verdict: u32,
    /// `agent_flags::*` bits.
    pub flags: u32,
}

/// Key of the `PATH_RULES` hash map: a policy id and a path, zero-padded.
///
/// A path never contains NUL, so the padding makes the key unambiguous.
/// Rule paths carry no trailing slash, except the root, which is `/`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathKey {
    pub policy_id: u32,
    pub path: [u8; RULE_PATH_MAX],
}

impl Default for PathKey {
    fn default() -> Self {
        Self { policy_id: 0, path: [0; RULE_PATH_MAX] }
    }
}

/// One rule's opinion on one kind of access to a path.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleSlot {
    /// Numeric rule id; the daemon maps it to the rule's name.
    pub rule_id: u32,
    /// `verdict::NONE` when no rule covers this access at this path.
    pub verdict: u16,
    /// 1 when the rule names exactly this file, 0 when it covers the whole
    /// subtree (`/path/**`).
    pub exact: u16,
}

/// Value of the `PATH_RULES` map: the rules for one path, per access.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathRule {
    pub exec: RuleSlot,
    pub read: RuleSlot,
    pub write: RuleSlot,
    pub create: RuleSlot,
    /// A connect or datagram send to a Unix socket bound to this name. A
    /// pathname socket is keyed by its bound path; an abstract one by `@`
    /// and its name.
    pub connect: RuleSlot,
    /// `path_flags::*` bits.
    pub flags: u32,
    pub padding: u32,
}

/// Key of the `NET_RULES` LPM trie, after the 4-byte prefix length that the
/// trie puts in front. The policy id is big-endian so it forms the first 32
/// bits of every prefix; IPv4 addresses are stored IPv4-mapped
/// (`::ffff:a.b.c.d`), so one trie serves both families.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetKey {
    pub policy_id_be: [u8; 4],
    pub addr: [u8; 16],
}

/// One port rule of a network prefix.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortRule {
    pub port_lo: u16,
    pub port_hi: u16,
    pub rule_id: u32,
    /// `verdict::NONE` marks an unused entry.
    pub verdict: u16,
    /// `protocol::*`: the socket's IP protocol this rule applies to, or
    /// `protocol::ANY`.
    pub protocol: u16,
}

/// Value of the `NET_RULES` trie: the port rules that apply to addresses in
/// a prefix, most specific first. The compiler copies the rules of every
/// enclosing prefix into this list, so the kernel needs one trie lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetRule {
    pub entries: [PortRule; NET_RULES_PER_PREFIX],
}

/// Key of the `EXEC_CONTENT` hash map: a policy id and the SHA-256 digest
/// of a binary's content.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContentKey {
    pub policy_id: u32,
    pub sha256: [u8; SHA256_LEN],
}

/// Key of the `PROTECTED_DIRS` hash map: a directory's inode, as the kernel
/// numbers it (`i_sb->s_dev`, `i_ino`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InodeKey {
    pub ino: u64,
    /// The kernel's internal device number: major in the upper 12 bits,
    /// minor in the lower 20.
    pub dev: u32,
    pub padding: u32,
}

/// Value of the `PROTECTED_DIRS` hash map: the directory's path, as
/// `d_path` would report it, for the record of a denied change.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtectedDir {
    /// Length of `path`, at most `RULE_PATH_MAX`.
    pub len: u32,
    pub path: [u8; RULE_PATH_MAX],
}

/// One slot of the `LEASES` array: the bounds of a granted lease, checked
/// by the kernel at every use. The daemon writes a slot when it grants the
/// lease and sets `expires_boot_ns` to 0 when it revokes it; the kernel
/// only adds to `uses`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaseState {
    /// `bpf_ktime_get_boot_ns()` value from which the lease no longer
    /// holds. The boot-time clock counts suspend and ignores changes of the
    /// wall clock. 0 for a free or revoked slot.
    pub expires_boot_ns: u64,
    /// Uses so far, counted atomically by the kernel, denied attempts past
    /// the limit included.
    pub uses: u64,
    /// Most uses allowed; 0 for no limit.
    pub max_uses: u64,
    /// Daemon-assigned lease id, for events and the ledger.
    pub lease_id: u32,
    /// The lease-required rule this lease satisfies, for events.
    pub rule_id: u32,
}

/// One decision, as the kernel program writes it into the ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Event {
    /// Kernel sequence number. Taken before the ring buffer reservation, so
    /// an event that could not be reserved leaves a gap in the sequence.
    pub seq: u64,
    /// `bpf_ktime_get_boot_ns()` at the decision.
    pub boot_ns: u64,
    pub cgroup_id: u64,
    /// `bpf_get_current_pid_tgid()`: thread group id in the upper half.
    pub pid_tgid: u64,
    /// `bpf_get_current_uid_gid()`: gid in the upper half.
    pub uid_gid: u64,
    pub hook: u32,
    pub verdict: u32,
    pub reason: u32,
    pub rule_id: u32,
    pub agent_id: u32,
    pub policy_id: u32,
    /// `access::*` bits for opens, 0 otherwise.
    pub access: u32,
    /// Length of `path` without its NUL, 0 when the event has no path.
    pub path_len: u32,
    pub flags: u32,
    /// The lease that allowed the action (`reason::LEASE`), 0 otherwise.
    pub lease_id: u32,
    pub family: u16,
    /// Destination port in host byte order.
    pub port: u16,
    /// The socket's IP protocol (`IPPROTO_*`) for a connect or send to an
    /// IPv4 or IPv6 address, 0 otherwise.
    pub protocol: u16,
    pub padding: [u8; 2],
    /// The process a signal, ptrace access or limit change was aimed at
    /// (`hook::KILL`, `hook::PTRACE`, `hook::TASK_SET`), by its thread group
    /// id in the initial pid namespace. Its `comm` is in `path`. 0 for
    /// other hooks.
    pub target_pid: u32,
    /// Destination address; IPv4 is stored IPv4-mapped.
    pub addr: [u8; 16],
    pub comm: [u8; COMM_LEN],
    /// Working space for rule lookups in the kernel. Userspace ignores it.
    pub scratch: PathKey,
    /// Length of `request` without its NUL, 0 when the event has none.
    pub request_len: u32,
    /// The name as the agent passed it to the system call (`open`,
    /// `openat`, `openat2`, `creat`, `execve`, `execveat`), before the
    /// kernel resolved it: evidence for the record, never matched. At most
    /// `REQUEST_MAX - 1` bytes; see `flags::REQUEST_TRUNCATED`.
    pub request: [u8; REQUEST_MAX],
    pub path: [u8; PATH_MAX],
    /// Length of `new_path` without its NUL, 0 when the event has none.
    pub new_path_len: u32,
    /// The new name of a rename or hard link (`hook::RENAME`,
    /// `hook::LINK`), resolved by the kernel program. `path` then contains
    /// the old name.
    pub new_path: [u8; PATH_MAX],
    /// Room that a name copied near the end of `new_path` may run into as
    /// far as the verifier can tell. The program never writes past
    /// `new_path`, whose length it checks first.
    pub slack: [u8; NAME_MAX + 1],
}

/// Struct field offsets the daemon reads from the running kernel's BTF and
/// writes into the programs' read-only globals before loading them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `struct linux_binprm`, field `file`.
    pub binprm_file: u32,
    /// `struct file`, field `f_path`.
    pub file_f_path: u32,
    /// `struct file`, field `f_mode`.
    pub file_f_mode: u32,
    /// `struct msghdr`, field `msg_name`.
    pub msghdr_msg_name: u32,
    /// `struct msghdr`, field `msg_namelen`.
    pub msghdr_msg_namelen: u32,
    /// `struct file`, field `f_inode`.
    pub file_f_inode: u32,
    /// `struct inode`, field `i_sb`.
    pub inode_i_sb: u32,
    /// `struct super_block`, field `s_magic`.
    pub super_block_s_magic: u32,
    /// `struct task_struct`, field `tgid`.
    pub task_tgid: u32,
    /// `struct task_struct`, field `cgroups`.
    pub task_cgroups: u32,
    /// `struct css_set`, field `dfl_cgrp`.
    pub css_set_dfl_cgrp: u32,
    /// `struct cgroup`, field `kn`.
    pub cgroup_kn: u32,
    /// `struct kernfs_node`, field `id`.
    pub kernfs_node_id: u32,
    /// `struct socket`, field `sk`.
    pub socket_sk: u32,
    /// `struct sock`, field `sk_protocol`.
    pub sock_sk_protocol: u32,
    /// `struct sock`, field `__sk_common.skc_family`.
    pub sock_family: u32,
    /// `struct unix_sock`, field `addr`.
    pub unix_sock_addr: u32,
    /// `struct unix_sock`, field `peer`.
    pub unix_sock_peer: u32,
    /// `struct unix_address`, field `len`.
    pub unix_address_len: u32,
    /// `struct unix_address`, field `name`.
    pub unix_address_name: u32,
    /// `struct task_struct`, field `flags`.
    pub task_flags: u32,
    /// `struct pt_regs`, field `orig_ax` (x86_64): the system call number.
    pub pt_regs_orig_ax: u32,
    /// `struct inode`, field `i_ino`.
    pub inode_i_ino: u32,
    /// `struct super_block`, field `s_dev`.
    pub super_block_s_dev: u32,
    /// `struct dentry`, field `d_name`.
    pub dentry_d_name: u32,
    /// `struct qstr`, field `name`.
    pub qstr_name: u32,
    /// `struct task_struct`, field `comm`.
    pub task_comm: u32,
    /// `struct linux_binprm`, field `filename`.
    pub binprm_filename: u32,
    /// `struct pt_regs`, field `di` (x86_64): the first system call argument.
    pub pt_regs_di: u32,
    /// `struct pt_regs`, field `si` (x86_64): the second system call argument.
    pub pt_regs_si: u32,
    /// `struct dentry`, field `d_inode`.
    pub dentry_d_inode: u32,
    /// `struct dentry`, field `d_parent`.
    pub dentry_d_parent: u32,
    /// `struct path`, field `dentry`.
    pub path_dentry: u32,
    /// `struct path`, field `mnt`.
    pub path_mnt: u32,
    /// `struct qstr`, field `len`.
    pub qstr_len: u32,
    /// `struct mount`, field `mnt`: where the `struct vfsmount` that
    /// `path.mnt` points at lies inside its `struct mount`.
    pub mount_mnt: u32,
    /// `struct mount`, field `mnt_parent`.
    pub mount_mnt_parent: u32,
    /// `struct mount`, field `mnt_mountpoint`.
    pub mount_mnt_mountpoint: u32,
    /// `struct vfsmount`, field `mnt_root`.
    pub vfsmount_mnt_root: u32,
    /// `struct task_struct`, field `fs`.
    pub task_fs: u32,
    /// `struct fs_struct`, field `root`.
    pub fs_struct_root: u32,
    /// `struct inode`, field `i_mode`.
    pub inode_i_mode: u32,
    /// `struct msghdr`, field `msg_control`.
    pub msghdr_msg_control: u32,
    /// `struct msghdr`, field `msg_controllen`.
    pub msghdr_msg_controllen: u32,
    /// `struct mount`, field `mnt_ns`.
    pub mount_mnt_ns: u32,
    /// `struct task_struct`, field `nsproxy`.
    pub task_nsproxy: u32,
    /// `struct nsproxy`, field `mnt_ns`.
    pub nsproxy_mnt_ns: u32,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: every type below is `#[repr(C)]`, made only of integers and
    // integer arrays, with explicit padding fields, so any bit pattern is a
    // valid value.
    unsafe impl aya::Pod for super::AgentInfo {}
    unsafe impl aya::Pod for super::PathKey {}
    unsafe impl aya::Pod for super::PathRule {}
    unsafe impl aya::Pod for super::NetKey {}
    unsafe impl aya::Pod for super::NetRule {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::ContentKey {}
    unsafe impl aya::Pod for super::LeaseState {}
    unsafe impl aya::Pod for super::RuleSlot {}
    unsafe impl aya::Pod for super::InodeKey {}
    unsafe impl aya::Pod for super::ProtectedDir {}
}

const _: () = {
    assert!(core::mem::size_of::<AgentInfo>() == 16);
    assert!(core::mem::size_of::<PathKey>() == 4 + RULE_PATH_MAX);
    assert!(core::mem::size_of::<RuleSlot>() == 8);
    assert!(core::mem::size_of::<PathRule>() == 48);
    assert!(core::mem::size_of::<NetKey>() == 20);
    assert!(core::mem::size_of::<PortRule>() == 12);
    assert!(core::mem::size_of::<NetRule>() == 12 * NET_RULES_PER_PREFIX);
    assert!(core::mem::size_of::<KernelOffsets>() == 188);
    assert!(core::mem::size_of::<InodeKey>() == 16);
    assert!(core::mem::size_of::<ProtectedDir>() == 4 + RULE_PATH_MAX);
    assert!(core::mem::size_of::<ContentKey>() == 36);
    assert!(core::mem::size_of::<LeaseState>() == 32);
    assert!(core::mem::offset_of!(Event, addr) == 92);
    assert!(core::mem::offset_of!(Event, scratch) == 124);
    assert!(core::mem::offset_of!(Event, request) == 124 + 4 + RULE_PATH_MAX + 4);
    assert!(core::mem::offset_of!(Event, path) == 124 + 4 + RULE_PATH_MAX + 4 + REQUEST_MAX);
    assert!(core::mem::offset_of!(Event, new_path) == 124 + 4 + RULE_PATH_MAX + 4 + REQUEST_MAX + PATH_MAX + 4);
    assert!(core::mem::size_of::<Event>() == 4480 + 4 + REQUEST_MAX + 4 + PATH_MAX + NAME_MAX + 1);
};
