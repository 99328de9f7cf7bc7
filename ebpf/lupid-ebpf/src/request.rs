//! The name an agent passed to the system call, kept in the event as
//! evidence of how it spelled the object: a symlink, `..` or
//! `/proc/self/root` shows here, while the resolved path decides. It is read
//! from the agent's memory when the hook runs, so it is only a record,
//! never matched against a rule.
//!
//! Both functions keep their own stack frame (`inline(never)`), so their
//! locals never add to the path scan's in the 512 bytes the verifier
//! allows one chain of calls.

use aya_ebpf::helpers::{
    bpf_probe_read_kernel,
    generated::{bpf_get_current_task_btf, bpf_probe_read_kernel_str, bpf_probe_read_user_str, bpf_task_pt_regs},
};
use lupid_common::{Event, REQUEST_MAX, flags};

use crate::maps::kernel_offsets;

/// System call numbers on x86_64 of the calls that name a file by path.
const NR_OPEN: u64 = 2;
const NR_EXECVE: u64 = 59;
pub(crate) const NR_TRUNCATE: u64 = 76;
const NR_CREAT: u64 = 85;
const NR_OPENAT: u64 = 257;
const NR_EXECVEAT: u64 = 322;
const NR_OPENAT2: u64 = 437;

/// Returns the number of the current system call, or `None` when the task
/// has no saved registers to read it from.
#[inline(never)]
pub(crate) fn current_syscall() -> Option<u64> {
    let offsets = kernel_offsets();
    // SAFETY: as in `from_syscall`.
    unsafe {
        let regs = bpf_task_pt_regs(bpf_get_current_task_btf().cast()) as *const u8;
        if regs.is_null() {
            return None;
        }
        bpf_probe_read_kernel::<u64>(regs.add(offsets.pt_regs_orig_ax as usize).cast()).ok()
    }
}

/// Copies the path argument of the current system call into the event's
/// `request`, when the call is one of those that name a file by path. For
/// any other call (io_uring work among them) the event keeps no request.
#[inline(never)]
pub(crate) fn from_syscall(out: *mut Event) {
    let offsets = kernel_offsets();
    // SAFETY: the helpers need only the current task, which a hook always
    // has. The reads fault safely, and the offsets come from the running
    // kernel's BTF.
    unsafe {
        let task = bpf_get_current_task_btf();
        let regs = bpf_task_pt_regs(task.cast()) as *const u8;
        if regs.is_null() {
            return;
        }
        let Ok(syscall) = bpf_probe_read_kernel::<u64>(regs.add(offsets.pt_regs_orig_ax as usize).cast()) else {
            return;
        };
        let argument = match syscall {
            NR_OPEN | NR_CREAT | NR_EXECVE | NR_TRUNCATE => offsets.pt_regs_di,
            NR_OPENAT | NR_OPENAT2 | NR_EXECVEAT => offsets.pt_regs_si,
            _ => return,
        };
        let Ok(name) = bpf_probe_read_kernel::<*const u8>(regs.add(argument as usize).cast()) else {
            return;
        };
        let copied = bpf_probe_read_user_str((&raw mut (*out).request).cast(), REQUEST_MAX as u32, name.cast());
        set_len(out, copied);
    }
}

/// Copies the name the exec was asked for (`linux_binprm::filename`, the
/// kernel's copy of the `execve` argument, or `/dev/fd/N` for an exec by
/// descriptor) into the event's `request`.
#[inline(never)]
pub(crate) fn from_binprm(out: *mut Event, bprm: *const u8) {
    let offsets = kernel_offsets();
    // SAFETY: `bprm` is the hook's `struct linux_binprm *`; the reads fault
    // safely and the offset comes from the running kernel's BTF.
    unsafe {
        let Ok(name) = bpf_probe_read_kernel::<*const u8>(bprm.add(offsets.binprm_filename as usize).cast()) else {
            return;
        };
        let copied = bpf_probe_read_kernel_str((&raw mut (*out).request).cast(), REQUEST_MAX as u32, name.cast());
        set_len(out, copied);
    }
}

/// Records the length of a name the helper copied, `copied` bytes with the
/// NUL, and marks it truncated when it filled the buffer.
fn set_len(out: *mut Event, copied: i64) {
    if copied <= 1 {
        return;
    }
    // SAFETY: `out` is the reserved event.
    unsafe {
        (&raw mut (*out).request_len).write((copied - 1) as u32);
        if copied >= REQUEST_MAX as i64 {
            (&raw mut (*out).flags).write((*out).flags | flags::REQUEST_TRUNCATED);
        }
    }
}
