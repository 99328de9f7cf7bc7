//! The steps every hook shares: find the agent, reserve the event, record
//! the verdict.

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_probe_read_kernel,
        generated::{
            bpf_get_current_cgroup_id, bpf_get_current_task, bpf_get_current_task_btf, bpf_ktime_get_boot_ns,
            bpf_task_pt_regs,
        },
    },
    maps::ring_buf::RingBufEntry,
};
use lupid_common::{AgentInfo, COMM_LEN, Event, agent_flags, decide::Decision, error, flags, verdict};

use crate::maps::{AGENTS, EVENTS, LABELED_TASKS, count_error, kernel_offsets, next_sequence};

/// `PF_IO_WORKER` in `task_struct::flags`: an io_uring worker thread
/// (io-wq or SQPOLL). A flag value, not a layout, unchanged since 5.12.
const PF_IO_WORKER: u32 = 0x10;
/// `__NR_io_uring_enter`, the same number on x86_64 and in the
/// architecture-independent table.
const NR_IO_URING_ENTER: u64 = 426;

/// The errno a denial returns, negated as LSM hooks expect.
pub(crate) const DENIED: i32 = -1; // -EPERM

/// The caller of a hook, as far as the decision needs it.
pub(crate) enum Entry {
    /// The caller is in no labeled cgroup: allow without a record.
    Unlabeled,
    /// The caller is labeled but its event could not be reserved: deny.
    /// The cause is already counted.
    Refused,
    /// The caller is labeled and its event is reserved, header filled in.
    Labeled { event: RingBufEntry<Event>, agent: AgentInfo },
}

/// The agent of a labeled task whose agent run has ended: its own cgroup
/// is gone from `AGENTS`, so it left the cgroup before the run ended.
/// Everything it does is denied by default.
const ORPHAN: AgentInfo = AgentInfo { agent_id: 0, policy_id: 0, default_verdict: verdict::DENY, flags: 0 };

/// Returns the cgroup id and agent of the caller, or `None` for a caller
/// that is no agent's. The task's label decides first, so a task that left
/// its agent's cgroup, or moved into another agent's, stays confined as
/// the agent it was born in. A task in a labeled cgroup without a label
/// gets one here. Its map keys live in a frame of its own.
#[inline(never)]
pub(crate) fn caller_agent() -> Option<(u64, AgentInfo)> {
    // SAFETY: the helper has no preconditions.
    let task = unsafe { bpf_get_current_task() };
    // SAFETY: the value is copied out before the program can sleep.
    if let Some(origin) = unsafe { LABELED_TASKS.get(&task) }.copied() {
        // SAFETY: as above.
        let agent = unsafe { AGENTS.get(&origin) }.copied().unwrap_or(ORPHAN);
        return Some((origin, agent));
    }
    // SAFETY: the helper has no preconditions.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: the value is copied out before the program can sleep.
    let agent = (unsafe { AGENTS.get(&cgroup_id) }).copied()?;
    // A full map leaves the task without a label; its cgroup still marks it.
    let _ = LABELED_TASKS.insert(&task, &cgroup_id, 0);
    Some((cgroup_id, agent))
}

/// Labels the new task `child` (a `task_struct` address) with the caller's
/// agent, when the caller has one. Called from `task_alloc`, in the
/// parent's context.
pub(crate) fn label_child(child: u64) {
    if let Some((origin, _)) = caller_agent() {
        // A full map leaves the child without a label; it starts in its
        // parent's cgroup, which still marks it.
        let _ = LABELED_TASKS.insert(&child, &origin, 0);
    }
}

/// Removes the label of the freed task `task` (a `task_struct` address).
pub(crate) fn unlabel(task: u64) {
    let _ = LABELED_TASKS.remove(&task);
}

/// Looks up the caller's agent and reserves its event.
pub(crate) fn enter(hook: u32) -> Entry {
    match caller_agent() {
        Some((cgroup_id, agent)) => enter_labeled(hook, cgroup_id, agent),
        None => Entry::Unlabeled,
    }
}

/// Reserves the event of a caller already known to be labeled.
///
/// The sequence number is taken before the reservation, so an event that
/// could not be reserved leaves a gap the daemon can see.
pub(crate) fn enter_labeled(hook: u32, cgroup_id: u64, agent: AgentInfo) -> Entry {
    let Some(seq) = next_sequence() else {
        count_error(error::READ_FAILED);
        return Entry::Refused;
    };
    let Some(mut event) = EVENTS.reserve::<Event>(0) else {
        count_error(error::RINGBUF_FULL);
        return Entry::Refused;
    };

    let out = event.as_mut_ptr();
    let comm = bpf_get_current_comm().unwrap_or([0; COMM_LEN]);
    // SAFETY: `out` points at a reserved, exclusively owned ring buffer
    // record of `size_of::<Event>()` bytes; fields are written through raw
    // pointers because the record starts uninitialized.
    unsafe {
        (&raw mut (*out).seq).write(seq);
        (&raw mut (*out).boot_ns).write(bpf_ktime_get_boot_ns());
        (&raw mut (*out).cgroup_id).write(cgroup_id);
        (&raw mut (*out).pid_tgid).write(bpf_get_current_pid_tgid());
        (&raw mut (*out).uid_gid).write(bpf_get_current_uid_gid());
        (&raw mut (*out).hook).write(hook);
        (&raw mut (*out).agent_id).write(agent.agent_id);
        (&raw mut (*out).policy_id).write(agent.policy_id);
        (&raw mut (*out).access).write(0);
        (&raw mut (*out).path_len).write(0);
        (&raw mut (*out).new_path_len).write(0);
        (&raw mut (*out).flags).write(via_flags());
        (&raw mut (*out).lease_id).write(0);
        (&raw mut (*out).family).write(0);
        (&raw mut (*out).port).write(0);
        (&raw mut (*out).protocol).write(0);
        (&raw mut (*out).padding).write([0; 2]);
        (&raw mut (*out).target_pid).write(0);
        (&raw mut (*out).request_len).write(0);
        (&raw mut (*out).addr).write([0; 16]);
        (&raw mut (*out).comm).write(comm);
    }
    Entry::Labeled { event, agent }
}

/// Returns `flags::VIA_IO_URING` when the current task is an io_uring
/// worker of the agent or is inside `io_uring_enter`, else 0. The mark is
/// for the record only, so a field that cannot be read leaves it off
/// instead of failing the action.
///
/// NOTE: work that io_uring retries from task work at the return of
/// another system call is not marked.
#[inline(never)]
fn via_flags() -> u32 {
    let offsets = kernel_offsets();
    // SAFETY: the helper has no preconditions; in a hook the current task
    // is never null, and the reads below fault safely if it were.
    let task = unsafe { bpf_get_current_task_btf() }.cast::<u8>();
    // SAFETY: the helper checks the kernel address and faults safely; the
    // offset comes from the running kernel's BTF.
    let task_flags: u32 = unsafe { bpf_probe_read_kernel(task.add(offsets.task_flags as usize).cast()) }.unwrap_or(0);
    if task_flags & PF_IO_WORKER != 0 {
        return flags::VIA_IO_URING;
    }
    // SAFETY: `task` is the current task, as the helper requires.
    let regs = unsafe { bpf_task_pt_regs(task.cast()) } as *const u8;
    if regs.is_null() {
        return 0;
    }
    // SAFETY: as above.
    let syscall: u64 =
        unsafe { bpf_probe_read_kernel(regs.add(offsets.pt_regs_orig_ax as usize).cast()) }.unwrap_or(u64::MAX);
    if syscall == NR_IO_URING_ENTER { flags::VIA_IO_URING } else { 0 }
}

/// Reads the caller's agent again, for a hook that slept long enough for
/// the daemon to swap the policy, and writes the new policy id into the
/// event. Keeps `agent` when the caller is no longer labeled.
pub(crate) fn refresh(event: &mut RingBufEntry<Event>, agent: AgentInfo) -> AgentInfo {
    let fresh = caller_agent().map_or(agent, |(_, fresh)| fresh);
    let out = event.as_mut_ptr();
    // SAFETY: as in `enter`.
    unsafe { (&raw mut (*out).policy_id).write(fresh.policy_id) };
    fresh
}

/// Applies the agent's mode, writes the verdict into the event, submits it
/// and returns the hook's return value.
pub(crate) fn finish(mut event: RingBufEntry<Event>, agent: &AgentInfo, decision: Decision) -> i32 {
    let decision = if agent.flags & agent_flags::MONITOR != 0 { decision.monitored() } else { decision };
    let out = event.as_mut_ptr();
    // SAFETY: as in `enter`.
    unsafe {
        (&raw mut (*out).verdict).write(decision.verdict);
        (&raw mut (*out).rule_id).write(decision.rule_id);
        (&raw mut (*out).reason).write(decision.reason);
        (&raw mut (*out).lease_id).write(decision.lease_id);
    }
    event.submit(0);
    if decision.verdict == verdict::ALLOW { 0 } else { DENIED }
}
