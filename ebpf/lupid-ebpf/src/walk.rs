//! Full names of dentries, built by walking up the dentry and mount trees.
//!
//! Linux 6.1 allows `bpf_d_path` only in sleepable hooks that pass a
//! `struct path`, and the rename and link hooks are neither. So these
//! hooks build the names themselves, as the kernel's `d_path` does: from
//! the dentry up to the caller's root, crossing each mount at its mount
//! point.
//!
//! Failure policy: a name deeper than `MAX_STEPS` steps or longer than
//! `PATH_MAX - 1` bytes, a field that cannot be read, and a tree that
//! changed between the two passes of a walk are all failures, which the
//! callers deny. A shortened name is never returned.

use core::ffi::c_void;

use aya_ebpf::helpers::{
    bpf_probe_read_kernel,
    generated::{bpf_get_current_task, bpf_loop, bpf_probe_read_kernel as probe_read_raw},
};
use lupid_common::{KernelOffsets, NAME_MAX, PATH_MAX};

use crate::maps::kernel_offsets;

/// Most steps one walk takes: one per name, one per mount crossed. A
/// name of `PATH_MAX - 1` bytes has at most `PATH_MAX / 2` components.
const MAX_STEPS: u32 = PATH_MAX as u32;
/// Masks an offset into a `PATH_MAX` array, for the verifier.
const PATH_MASK: usize = PATH_MAX - 1;

/// The cause of a walk that produced no name.
#[derive(Clone, Copy)]
pub(crate) enum WalkError {
    /// The name is longer than `PATH_MAX - 1` bytes or takes more than
    /// `MAX_STEPS` steps.
    TooLong,
    /// A field could not be read, the dentry is not connected to its
    /// root, or the tree changed during the walk.
    Unreadable,
}

/// States of a [`Walk`].
mod state {
    pub(super) const RUNNING: u32 = 0;
    pub(super) const DONE: u32 = 1;
    pub(super) const TOO_LONG: u32 = 2;
    pub(super) const UNREADABLE: u32 = 3;
}

/// The context of one pass of a walk, shared with [`walk_step`] through
/// `bpf_loop`, so the verifier checks one step instead of every
/// iteration.
#[repr(C)]
struct Walk {
    /// The dentry the walk is at, and the `struct mount` it is seen in.
    dentry: *const u8,
    mount: *const u8,
    /// The caller's root: a dentry and its `struct vfsmount`.
    root_dentry: *const u8,
    root_vfsmount: *const u8,
    /// The first pass counts the length here. The second pass starts at
    /// that length and moves it back to 0 as it copies each name.
    end: u64,
    /// Null in the first pass; the array the second pass writes into.
    dst: *mut u8,
    state: u32,
    padding: u32,
}

/// Writes the full name of `dentry`, seen through the mount of the
/// `struct path` at `dir` (a directory on the same mount), into `dst` and
/// returns its length without the NUL.
///
/// # Safety
/// `dst` must point at a `PATH_MAX`-byte array inside a ring buffer
/// reservation that contains at least `NAME_MAX + 1` more bytes after it.
/// The verifier cannot tell that a name copied near the end stays inside
/// the array, though the walk checks that it does.
#[inline(never)]
pub(crate) unsafe fn name_of(dst: *mut u8, dir: *const u8, dentry: *const u8) -> Result<usize, WalkError> {
    let offsets = kernel_offsets();
    let vfsmount = read_pointer(dir, offsets.path_mnt)?;
    let (root_dentry, root_vfsmount) = caller_root(offsets)?;
    let mount = vfsmount.wrapping_sub(offsets.mount_mnt as usize);
    let mut walk =
        Walk { dentry, mount, root_dentry, root_vfsmount, end: 0, dst: core::ptr::null_mut(), state: 0, padding: 0 };
    run(&mut walk)?;
    let total = walk.end as usize;
    if total == 0 {
        // SAFETY: `dst` has room for `PATH_MAX` bytes (caller's promise).
        unsafe {
            dst.write(b'/');
            dst.add(1).write(0);
        }
        return Ok(1);
    }
    // SAFETY: `total` is below `PATH_MAX`, as the first pass checked.
    unsafe { dst.add(bounded(total, PATH_MASK)).write(0) };

    // The second pass copies each name to its place, from the end of the
    // path. It must end exactly at the start of `dst`, or the tree changed
    // since the first pass.
    let mut walk = Walk { dentry, mount, root_dentry, root_vfsmount, end: total as u64, dst, state: 0, padding: 0 };
    run(&mut walk)?;
    if walk.end != 0 {
        return Err(WalkError::Unreadable);
    }
    Ok(total)
}

/// Runs `walk` to its end with `bpf_loop`.
fn run(walk: &mut Walk) -> Result<(), WalkError> {
    // SAFETY: `walk_step` has the callback signature `bpf_loop` expects,
    // and `walk` outlives the call.
    unsafe { bpf_loop(MAX_STEPS, walk_step as *mut c_void, (walk as *mut Walk).cast(), 0) };
    forget_known_values(walk);
    match walk.state {
        state::DONE => Ok(()),
        state::UNREADABLE => Err(WalkError::Unreadable),
        // Still running after `MAX_STEPS` steps, or too long.
        _ => Err(WalkError::TooLong),
    }
}

/// Reads `value` back through `bpf_probe_read_kernel`, so the verifier
/// treats its contents as unknown.
///
/// Linux 6.1 verifies a `bpf_loop` callback as if it ran once. It then
/// removes the branches that only a later iteration reaches as dead code,
/// so a walk that ended after several names took the branch of a walk that
/// ended at once. Values the callback wrote must not look known after the
/// loop. Linux 6.8 verifies callbacks for any number of calls.
/// The value is copied onto itself, so no second copy takes stack space.
pub(crate) fn forget_known_values<T>(value: &mut T) {
    let address: *mut T = value;
    // SAFETY: `address` comes from a live `&mut T`, valid for reads and
    // writes of `size_of::<T>()` bytes. A copy onto the same bytes changes
    // nothing, and a failed read leaves them as they are.
    unsafe { probe_read_raw(address.cast(), size_of::<T>() as u32, address.cast_const().cast()) };
}

/// Takes one step up the tree for `bpf_loop`. Returns 1 to stop the loop
/// once the walk is done or failed, 0 to go on.
extern "C" fn walk_step(_index: u64, context: *mut c_void) -> i64 {
    // SAFETY: `run` passes its `Walk`, alive and not otherwise borrowed.
    let walk = unsafe { &mut *context.cast::<Walk>() };
    // The verifier checks this callback with the values of the first call
    // only (see `forget_known_values`): the length so far must look
    // unknown, or the branch of a name grown too long would be removed.
    forget_known_values(&mut walk.end);
    walk.state = step(walk, kernel_offsets());
    i64::from(walk.state != state::RUNNING)
}

/// Takes one step from where `walk` is and returns its new state.
fn step(walk: &mut Walk, offsets: &KernelOffsets) -> u32 {
    let vfsmount = walk.mount.wrapping_add(offsets.mount_mnt as usize);
    if walk.dentry == walk.root_dentry && vfsmount == walk.root_vfsmount {
        return state::DONE;
    }
    let Ok(mount_root) = read_pointer(vfsmount, offsets.vfsmount_mnt_root) else {
        return state::UNREADABLE;
    };
    if walk.dentry == mount_root {
        let Ok(parent) = read_pointer(walk.mount, offsets.mount_mnt_parent) else {
            return state::UNREADABLE;
        };
        if parent == walk.mount {
            // The root of the mount tree. In the caller's namespace the
            // caller's root lies outside it, and the name is the one from
            // the tree's root. A detached copy of a tree (`open_tree`) or
            // another namespace's tree would give a name the rules never
            // meant.
            return if in_caller_namespace(vfsmount) { state::DONE } else { state::UNREADABLE };
        }
        let Ok(mount_point) = read_pointer(walk.mount, offsets.mount_mnt_mountpoint) else {
            return state::UNREADABLE;
        };
        walk.dentry = mount_point;
        walk.mount = parent;
        return state::RUNNING;
    }
    let Ok(parent) = read_pointer(walk.dentry, offsets.dentry_d_parent) else {
        return state::UNREADABLE;
    };
    if parent == walk.dentry {
        // The root of a file system that is not the root of this mount:
        // the dentry is not connected to the caller's tree.
        return state::UNREADABLE;
    }
    let named = walk.dentry;
    walk.dentry = parent;
    let Ok(len) = name_len(named, offsets) else {
        return state::UNREADABLE;
    };
    if walk.dst.is_null() {
        walk.end += len as u64 + 1;
        return if walk.end > (PATH_MAX - 1) as u64 { state::TOO_LONG } else { state::RUNNING };
    }
    copy_name(walk, named, len, offsets)
}

/// Copies the name of `named`, `len` bytes, and the slash before it to
/// the end of the free part of the second pass's array.
fn copy_name(walk: &mut Walk, named: *const u8, len: usize, offsets: &KernelOffsets) -> u32 {
    let end = walk.end as usize;
    if len + 1 > end {
        return state::UNREADABLE;
    }
    let end = end - len;
    let Ok(name) = read_pointer(named, offsets.dentry_d_name + offsets.qstr_name) else {
        return state::UNREADABLE;
    };
    // SAFETY: `end + len` is at most the first pass's length, inside the
    // array. The masks bound the offset by `PATH_MAX - 1` and the length
    // by `NAME_MAX`, so the bytes after the array cover the copy for the
    // verifier. The helper checks the kernel source and faults safely.
    let copied = unsafe {
        probe_read_raw(walk.dst.add(bounded(end, PATH_MASK)).cast(), bounded(len, NAME_MAX) as u32, name.cast())
    };
    if copied != 0 {
        return state::UNREADABLE;
    }
    let end = end - 1;
    // SAFETY: `end` is below the first pass's length.
    unsafe { walk.dst.add(bounded(end, PATH_MASK)).write(b'/') };
    walk.end = end as u64;
    state::RUNNING
}

/// Returns `value & mask` in a form the compiler cannot drop. LLVM
/// removes a mask it can prove redundant, but the verifier may have lost
/// the bound that made it so when the value went through the stack.
#[inline(always)]
fn bounded(value: usize, mask: usize) -> usize {
    // SAFETY: `value` is a local, valid for a read.
    unsafe { core::ptr::read_volatile(&value) & mask }
}

/// Returns the length of the name of `dentry`, which is at most
/// `NAME_MAX` and not 0.
fn name_len(dentry: *const u8, offsets: &KernelOffsets) -> Result<usize, WalkError> {
    // SAFETY: the helper checks the kernel address and faults safely; the
    // offsets come from the running kernel's BTF.
    let len: u32 =
        unsafe { bpf_probe_read_kernel(dentry.add((offsets.dentry_d_name + offsets.qstr_len) as usize).cast()) }
            .map_err(|_| WalkError::Unreadable)?;
    let len = len as usize;
    if len == 0 || len > NAME_MAX {
        return Err(WalkError::Unreadable);
    }
    Ok(len)
}

/// Returns whether the `struct vfsmount` at `vfsmount` is in the caller's
/// mount namespace, or in none: the kernel's internal mounts (pipes,
/// sockets, memfd) and lazily unmounted ones have no namespace. A mount of
/// another namespace, or of a detached copy made by `open_tree`, is not:
/// a name built there starts at that tree's root, which the rules never
/// meant. A field that cannot be read counts as another namespace.
#[inline(never)]
pub(crate) fn in_caller_namespace(vfsmount: *const u8) -> bool {
    let offsets = kernel_offsets();
    let mount = vfsmount.wrapping_sub(offsets.mount_mnt as usize);
    // SAFETY: the helper checks the kernel address and faults safely.
    let Ok(namespace) = (unsafe { bpf_probe_read_kernel::<u64>(mount.wrapping_add(offsets.mount_mnt_ns as usize).cast()) })
    else {
        return false;
    };
    // `MNT_NS_INTERNAL` is `ERR_PTR(-EINVAL)`: any error pointer counts.
    if namespace == 0 || namespace >= MAX_ERRNO_POINTER {
        return true;
    }
    // SAFETY: the helper has no preconditions.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let Ok(nsproxy) = read_pointer(task, offsets.task_nsproxy) else {
        return false;
    };
    read_pointer(nsproxy, offsets.nsproxy_mnt_ns).is_ok_and(|caller| caller as u64 == namespace)
}

/// The lowest error pointer (`ERR_PTR(-MAX_ERRNO)`, `MAX_ERRNO` 4095).
const MAX_ERRNO_POINTER: u64 = 0u64.wrapping_sub(4095);

/// Returns the caller's root directory (`current->fs->root`): its dentry
/// and its `struct vfsmount`.
fn caller_root(offsets: &KernelOffsets) -> Result<(*const u8, *const u8), WalkError> {
    // SAFETY: the helper has no preconditions.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let fs = read_pointer(task, offsets.task_fs)?;
    let root = fs.wrapping_add(offsets.fs_struct_root as usize);
    Ok((read_pointer(root, offsets.path_dentry)?, read_pointer(root, offsets.path_mnt)?))
}

/// Reads the pointer at `offset` in the kernel object `object`. A null
/// object or a null result is an error.
pub(crate) fn read_pointer(object: *const u8, offset: u32) -> Result<*const u8, WalkError> {
    if object.is_null() {
        return Err(WalkError::Unreadable);
    }
    // SAFETY: the helper checks the kernel address and faults safely.
    let value: *const u8 = unsafe { bpf_probe_read_kernel(object.wrapping_add(offset as usize).cast()) }
        .map_err(|_| WalkError::Unreadable)?;
    if value.is_null() { Err(WalkError::Unreadable) } else { Ok(value) }
}
