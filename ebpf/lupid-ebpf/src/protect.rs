//! Built-in protections at the hook: actions a labeled agent may never
//! take, whatever rules its policy contains (see `lupid_common::protect`). Each hook
//! checks its cheap facts first, so an unrelated call from any process
//! returns before the `AGENTS` lookup, and a denial is recorded like any
//! other, with `reason::PROTECTED`.
//!
//! Failure policy: a kernel object that cannot be read counts as protected,
//! so a labeled caller is denied.

use aya_ebpf::{
    helpers::generated::bpf_probe_read_kernel_str, macros::map, maps::Array, programs::LsmContext,
};
use lupid_common::{
    COMM_LEN, Event, KernelOffsets, PATH_MAX,
    decide::Decision,
    hook,
    protect::{self, CGROUP2_SUPER_MAGIC, PTRACE_MODE_ATTACH},
};

use crate::{
    gate::{self, DENIED, Entry},
    maps::kernel_offsets,
};

/// Slot 0 contains the thread group id of the daemon, as the initial pid
/// namespace numbers it. The daemon writes it after loading the programs;
/// until then it is 0, which no process has.
#[map]
pub(crate) static DAEMON: Array<u32> = Array::with_max_entries(1, 0);

/// Denies the action and records it when the caller is labeled, and allows
/// it for every other caller.
fn deny_labeled(hook: u32) -> i32 {
    match gate::enter(hook) {
        Entry::Unlabeled => 0,
        Entry::Refused => DENIED,
        Entry::Labeled { event, agent } => gate::finish(event, &agent, Decision::protected()),
    }
}

/// Denies a clone with `CLONE_INTO_CGROUP` or a new user, mount or cgroup
/// namespace. Otherwise the child gets its parent's label.
pub(crate) fn check_clone(ctx: &LsmContext) -> i32 {
    let child: *const u8 = ctx.arg(0);
    let flags: u64 = ctx.arg(1);
    if !protect::clone_denied(flags) {
        gate::label_child(child as u64);
        return 0;
    }
    deny_labeled(hook::CLONE)
}

/// Denies every action of a hook that a labeled agent may never take:
/// user namespaces, mounts, `bpf(2)`, hard links.
pub(crate) fn check_always(hook: u32) -> i32 {
    deny_labeled(hook)
}

/// Denies packet and raw sockets.
pub(crate) fn check_socket_create(ctx: &LsmContext) -> i32 {
    let family: i32 = ctx.arg(0);
    let socket_type: i32 = ctx.arg(1);
    let kern: i32 = ctx.arg(3);
    if !protect::socket_denied(family, socket_type, kern) {
        return 0;
    }
    deny_labeled(hook::SOCKET_CREATE)
}

/// Denies a signal to the daemon, signal 0 (the existence check) included.
pub(crate) fn check_kill(ctx: &LsmContext) -> i32 {
    let target: *const u8 = ctx.arg(0);
    if !is_daemon(target, kernel_offsets()) {
        return 0;
    }
    deny_labeled_at(hook::KILL, target)
}

/// Denies a change of the daemon's resource limits, nice value, I/O
/// priority or scheduling policy: a CPU-time limit of one second has the
/// kernel kill it. `target` is the hook's `struct task_struct *`.
pub(crate) fn check_task_set(ctx: &LsmContext) -> i32 {
    let target: *const u8 = ctx.arg(0);
    if !is_daemon(target, kernel_offsets()) {
        return 0;
    }
    deny_labeled_at(hook::TASK_SET, target)
}

/// Denies a signal to the daemon that arrives through `SIGIO` (`F_SETOWN`
/// on a file, then I/O on it), which the kernel sends without `task_kill`.
/// The daemon sets no file owner itself, so the signal is denied whatever
/// process triggers the I/O, and recorded when that process is labeled.
pub(crate) fn check_sigio(ctx: &LsmContext) -> i32 {
    let target: *const u8 = ctx.arg(0);
    if !is_daemon(target, kernel_offsets()) {
        return 0;
    }
    match deny_labeled_at(hook::KILL, target) {
        0 => DENIED,
        denied => denied,
    }
}

/// Denies the socket options that route packets past the destination the
/// connect and send rules judged: IPv4 options (source routing) and IPv6
/// routing headers.
pub(crate) fn check_setsockopt(ctx: &LsmContext) -> i32 {
    let level: i32 = ctx.arg(1);
    let name: i32 = ctx.arg(2);
    if !protect::socket_option_denied(level, name) {
        return 0;
    }
    deny_labeled(hook::SETSOCKOPT)
}

/// Denies the action and records it with its target task when the caller
/// is labeled, and allows it for every other caller.
fn deny_labeled_at(hook: u32, target: *const u8) -> i32 {
    match gate::enter(hook) {
        Entry::Unlabeled => 0,
        Entry::Refused => DENIED,
        Entry::Labeled { mut event, agent } => {
            write_target(event.as_mut_ptr(), target);
            gate::finish(event, &agent, Decision::protected())
        }
    }
}

/// Writes the thread group id and `comm` of the task `target` into the
/// event, for the record. A field that cannot be read stays empty.
fn write_target(out: *mut Event, target: *const u8) {
    let offsets = kernel_offsets();
    // SAFETY: `target` is the hook's BTF-typed `struct task_struct *` and
    // the offset of `tgid` comes from the running kernel's BTF.
    let tgid = unsafe { core::ptr::read_volatile(target.add(offsets.task_tgid as usize).cast::<i32>()) };
    // SAFETY: `out` is the reserved event; its `path` has room for more
    // than `COMM_LEN` bytes, and the helper faults safely.
    unsafe {
        (&raw mut (*out).target_pid).write(tgid as u32);
        let path = (&raw mut (*out).path).cast::<u8>();
        let copied = bpf_probe_read_kernel_str(
            path.cast(),
            COMM_LEN as u32,
            target.add(offsets.task_comm as usize).cast(),
        );
        if copied > 1 {
            (&raw mut (*out).path_len).write((copied - 1) as u32);
        }
    }
}

/// Denies any ptrace access to the daemon, and attach-mode access (a
/// debugger, a write to `/proc/PID/mem`, `process_vm_writev`) to any
/// process outside the caller's cgroup. Read-mode access to other processes
/// stays allowed, because `ps` and `/proc` readers need it. The kernel
/// does not call this hook for the caller's own thread group.
pub(crate) fn check_ptrace(ctx: &LsmContext) -> i32 {
    let target: *const u8 = ctx.arg(0);
    let mode: u32 = ctx.arg(1);
    let Some((cgroup_id, agent)) = gate::caller_agent() else {
        return 0;
    };
    let offsets = kernel_offsets();
    let outside = mode & PTRACE_MODE_ATTACH != 0 && task_cgroup_id(target, &offsets) != cgroup_id;
    if !outside && !is_daemon(target, &offsets) {
        return 0;
    }
    match gate::enter_labeled(hook::PTRACE, cgroup_id, agent) {
        Entry::Labeled { mut event, agent } => {
            write_target(event.as_mut_ptr(), target);
            gate::finish(event, &agent, Decision::protected())
        }
        Entry::Unlabeled | Entry::Refused => DENIED,
    }
}

/// Returns whether the opened file is a cgroup control file
/// (`protect::CGROUP_CONTROL_FILES`) on a cgroup v2 file system. `path`
/// points at the resolved path of `len` bytes.
pub(crate) fn is_cgroup_control(file: *const u8, path: *const u8, len: usize, offsets: &KernelOffsets) -> bool {
    // SAFETY: `path` points at a buffer of `PATH_MAX` bytes and the mask
    // keeps every index inside it.
    let byte_at = |i: usize| unsafe { path.add(i & (PATH_MAX - 1)).read() };
    if !protect::is_cgroup_control_file(len, byte_at) {
        return false;
    }
    let magic = super_block_magic(file, offsets);
    // A magic that cannot be read counts as cgroup v2.
    magic == CGROUP2_SUPER_MAGIC || magic == 0
}

/// Returns `file->f_inode->i_sb->s_magic`, or 0 when a pointer on the way
/// is null.
fn super_block_magic(file: *const u8, offsets: &KernelOffsets) -> u64 {
    // SAFETY: `file` is the hook's BTF-typed `struct file *`, and every
    // offset comes from the running kernel's BTF. The verifier types each
    // loaded pointer from that BTF, and a load through a bad pointer reads
    // 0 instead of faulting.
    unsafe {
        let inode = core::ptr::read_volatile(file.add(offsets.file_f_inode as usize).cast::<*const u8>());
        if inode.is_null() {
            return 0;
        }
        let super_block = core::ptr::read_volatile(inode.add(offsets.inode_i_sb as usize).cast::<*const u8>());
        if super_block.is_null() {
            return 0;
        }
        core::ptr::read_volatile(super_block.add(offsets.super_block_s_magic as usize).cast::<u64>())
    }
}

/// Returns whether `task` belongs to the daemon. A missing `DAEMON` slot
/// counts as a match.
fn is_daemon(task: *const u8, offsets: &KernelOffsets) -> bool {
    // SAFETY: `task` is the hook's BTF-typed `struct task_struct *` and the
    // offset of `tgid` comes from the running kernel's BTF.
    let tgid = unsafe { core::ptr::read_volatile(task.add(offsets.task_tgid as usize).cast::<i32>()) };
    match DAEMON.get(0) {
        Some(&daemon) => daemon != 0 && tgid as u32 == daemon,
        None => true,
    }
}

/// Returns the cgroup v2 id of `task`
/// (`task->cgroups->dfl_cgrp->kn->id`, what `bpf_get_current_cgroup_id`
/// returns for the current task), or 0 when a pointer on the way is null.
fn task_cgroup_id(task: *const u8, offsets: &KernelOffsets) -> u64 {
    // SAFETY: as in `super_block_magic`, starting from the hook's BTF-typed
    // `struct task_struct *`. Non-sleepable programs run under the RCU read
    // lock that `task->cgroups` needs.
    unsafe {
        let css_set = core::ptr::read_volatile(task.add(offsets.task_cgroups as usize).cast::<*const u8>());
        if css_set.is_null() {
            return 0;
        }
        let cgroup = core::ptr::read_volatile(css_set.add(offsets.css_set_dfl_cgrp as usize).cast::<*const u8>());
        if cgroup.is_null() {
            return 0;
        }
        let node = core::ptr::read_volatile(cgroup.add(offsets.cgroup_kn as usize).cast::<*const u8>());
        if node.is_null() {
            return 0;
        }
        core::ptr::read_volatile(node.add(offsets.kernfs_node_id as usize).cast::<u64>())
    }
}
