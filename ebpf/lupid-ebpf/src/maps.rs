//! The maps and read-only globals shared with the daemon, which is their
//! only writer.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, PerCpuArray, RingBuf},
};
use lupid_common::{
    AgentInfo, ContentKey, EXEC_CONTENT_CAPACITY, InodeKey, KernelOffsets, LeaseState, MAX_LEASES, NET_RULES_CAPACITY,
    LABELED_TASKS_CAPACITY, NetKey, NetRule, PATH_RULES_CAPACITY, PROTECTED_DIRS_CAPACITY, PathKey, PathRule, ProtectedDir, RuleSlot, error,
};

/// Labeled cgroups: cgroup v2 id to the agent that runs in it.
#[map]
pub(crate) static AGENTS: HashMap<u64, AgentInfo> = HashMap::with_max_entries(4096, 0);

/// Path rules of every loaded policy, keyed by policy id and path.
#[map]
pub(crate) static PATH_RULES: HashMap<PathKey, PathRule> = HashMap::with_max_entries(PATH_RULES_CAPACITY, 0);

/// Network rules of every loaded policy: an LPM trie over the policy id and
/// the IPv6 (or IPv4-mapped) address.
#[map]
pub(crate) static NET_RULES: LpmTrie<NetKey, NetRule> =
    LpmTrie::with_max_entries(NET_RULES_CAPACITY, BPF_F_NO_PREALLOC);

/// Exec rules by content: policy id and SHA-256 of a binary to the rule
/// that names it. Looked up only for agents with `agent_flags::EXEC_CONTENT`.
#[map]
pub(crate) static EXEC_CONTENT: HashMap<ContentKey, RuleSlot> = HashMap::with_max_entries(EXEC_CONTENT_CAPACITY, 0);

/// Every thread of a labeled agent, by `task_struct` address, to the cgroup
/// id of the agent it belongs to. A task is labeled at its first hook in a
/// labeled cgroup and at its birth from a labeled parent (`task_alloc`).
/// It is unlabeled when it is freed (`task_free`). So a task that leaves
/// its cgroup, by any means, stays confined as its agent.
#[map]
pub(crate) static LABELED_TASKS: HashMap<u64, u64> = HashMap::with_max_entries(LABELED_TASKS_CAPACITY, 0);

/// lupid's own folders and every folder below them: a labeled agent may not
/// add, remove or rename a name in them. The daemon fills it at start.
#[map]
pub(crate) static PROTECTED_DIRS: HashMap<InodeKey, ProtectedDir> =
    HashMap::with_max_entries(PROTECTED_DIRS_CAPACITY, 0);

/// Granted leases, indexed by the slot numbers that `LEASED` rule slots
/// carry. The kernel checks expiry and counts uses here at every use.
#[map]
pub(crate) static LEASES: Array<LeaseState> = Array::with_max_entries(MAX_LEASES, 0);

/// One event per decision, for the daemon to write into the ledger.
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// Slot 0 contains the next kernel sequence number.
#[map]
pub(crate) static SEQUENCE: Array<u64> = Array::with_max_entries(1, 0);

/// Per-CPU counters of denials caused by internal failures, indexed by
/// `lupid_common::error`.
#[map]
pub(crate) static ERRORS: PerCpuArray<u64> = PerCpuArray::with_max_entries(error::COUNT, 0);

/// Field offsets of the running kernel's structs, read by the daemon from
/// BTF and written here before the programs load. The `.rodata` map is
/// frozen, so the verifier treats these as constants.
#[unsafe(no_mangle)]
static KERNEL_OFFSETS: KernelOffsets = KernelOffsets {
    binprm_file: 0,
    file_f_path: 0,
    file_f_mode: 0,
    msghdr_msg_name: 0,
    msghdr_msg_namelen: 0,
    file_f_inode: 0,
    inode_i_sb: 0,
    super_block_s_magic: 0,
    task_tgid: 0,
    task_cgroups: 0,
    css_set_dfl_cgrp: 0,
    cgroup_kn: 0,
    kernfs_node_id: 0,
    socket_sk: 0,
    sock_sk_protocol: 0,
    sock_family: 0,
    unix_sock_addr: 0,
    unix_sock_peer: 0,
    unix_address_len: 0,
    unix_address_name: 0,
    task_flags: 0,
    pt_regs_orig_ax: 0,
    inode_i_ino: 0,
    super_block_s_dev: 0,
    dentry_d_name: 0,
    qstr_name: 0,
    task_comm: 0,
    binprm_filename: 0,
    pt_regs_di: 0,
    pt_regs_si: 0,
    dentry_d_inode: 0,
    dentry_d_parent: 0,
    path_dentry: 0,
    path_mnt: 0,
    qstr_len: 0,
    mount_mnt: 0,
    mount_mnt_parent: 0,
    mount_mnt_mountpoint: 0,
    vfsmount_mnt_root: 0,
    task_fs: 0,
    fs_struct_root: 0,
    inode_i_mode: 0,
    msghdr_msg_control: 0,
    msghdr_msg_controllen: 0,
    mount_mnt_ns: 0,
    task_nsproxy: 0,
    nsproxy_mnt_ns: 0,
};

const EVENTS_BYTES: u32 = 32 << 20;
const BPF_F_NO_PREALLOC: u32 = 1;

/// Returns the kernel's field offsets. A reference, not a copy: the struct
/// would take 188 bytes of the 512 that the verifier allows the stack of one
/// chain of calls, in every function that holds it.
pub(crate) fn kernel_offsets() -> &'static KernelOffsets {
    let address = &raw const KERNEL_OFFSETS;
    // SAFETY: the static lives in `.rodata` for the whole program run. The
    // address goes through a volatile read, so the compiler cannot see which
    // static the fields are loaded from and fold in its zero initializer.
    unsafe { &*core::ptr::read_volatile(&address) }
}

/// Counts one denial caused by an internal failure.
pub(crate) fn count_error(slot: u32) {
    if let Some(counter) = ERRORS.get_ptr_mut(slot) {
        // SAFETY: the pointer comes from a successful lookup in a per-CPU
        // array and stays valid until the program returns. The add is atomic
        // because a sleepable program can be preempted on the same CPU.
        unsafe { fetch_add(counter) };
    }
}

/// Takes the next kernel sequence number, or `None` if the counter is
/// missing (which cannot happen for an array map, but is handled as a
/// failure all the same).
pub(crate) fn next_sequence() -> Option<u64> {
    let counter = SEQUENCE.get_ptr_mut(0)?;
    // SAFETY: as in `count_error`; the slot is shared by all CPUs, so the
    // fetch-add must be atomic.
    Some(unsafe { fetch_add(counter) })
}

/// Counts one use of the lease in `slot` and returns the uses before it.
///
/// # Safety
/// `uses` must point into a live `LEASES` slot.
pub(crate) unsafe fn count_use(uses: *mut u64) -> u64 {
    // SAFETY: guaranteed by the caller.
    unsafe { fetch_add(uses) }
}

/// Atomically adds one to `*counter` and returns the old value. The BPF
/// target has no compare-and-swap, so `AtomicU64::fetch_add` is not
/// available, but the instruction set has a fetching atomic add.
///
/// The ordering must stay `SeqCst`: with `Relaxed`, the BPF backend of
/// LLVM 22 (the nightly 1.97 toolchain) emits a non-fetching add and hands
/// back the addend, so every event got sequence number 1. The VM test
/// that checks the ledger's kernel sequence numbers catches this.
///
/// # Safety
/// `counter` must be valid for reads and writes of a `u64`.
unsafe fn fetch_add(counter: *mut u64) -> u64 {
    // SAFETY: guaranteed by the caller.
    unsafe { core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::SeqCst }>(counter, 1) }
}
