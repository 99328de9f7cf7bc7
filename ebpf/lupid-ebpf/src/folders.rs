//! lupid's own folders (state, socket, pins): a labeled agent may not add,
//! remove or rename a name in them. Opens below them are denied by the
//! path rules the daemon adds to every policy, but creating, unlinking and
//! renaming a name opens no file, so these hooks check the directory the
//! kernel changes against `PROTECTED_DIRS`.
//!
//! The hooks see the directory's inode and the dentry of the name, and
//! `bpf_d_path` is not allowed in them, so the record names the folder by
//! the path the daemon stored with it, followed by the name.
//!
//! Failure policy: a labeled caller whose directory cannot be read is
//! denied.

use aya_ebpf::helpers::{
    bpf_probe_read_kernel,
    generated::{bpf_probe_read_kernel as probe_read_raw, bpf_probe_read_kernel_str},
};
use lupid_common::{Event, InodeKey, KernelOffsets, ProtectedDir, RULE_PATH_MAX, decide::Decision, error, reason};

use crate::{
    gate::{self, DENIED, Entry},
    maps::{PROTECTED_DIRS, count_error, kernel_offsets},
    request,
};

/// Maximum length of the name copied into the record after the folder's
/// path.
const NAME_MAX: u32 = 255;

/// The result of a directory lookup.
enum Folder {
    Unprotected,
    Protected(*const ProtectedDir),
    Unreadable,
}

/// A directory whose protection a change must check. It is resolved only
/// once the caller is known to be labeled, so other processes pay one map
/// lookup per hook.
#[derive(Clone, Copy)]
enum Dir {
    /// The directory's `struct inode *`, as the hook passes it.
    Inode(*const u8),
    /// The directory that contains a `struct dentry *`.
    ParentOf(*const u8),
    /// The inode of a `struct dentry *`, a directory when it is protected.
    Of(*const u8),
}

/// Denies a labeled caller's change of a name in a protected directory:
/// `dir` is the directory's `struct inode *`, `dentry` the name's `struct
/// dentry *`.
pub(crate) fn check_change(hook: u32, dir: *const u8, dentry: *const u8) -> i32 {
    check_changes(hook, [(Dir::Inode(dir), dentry), (Dir::Inode(dir), dentry)])
}

/// Denies a labeled caller a change of the attributes of `dentry` (a
/// `struct dentry *`): of a file in a protected directory, or of a
/// protected directory itself.
pub(crate) fn check_attr(dentry: *const u8) -> i32 {
    check_changes(lupid_common::hook::SET_ATTR, [(Dir::ParentOf(dentry), dentry), (Dir::Of(dentry), dentry)])
}

/// Decides `truncate(2)` of the file at `path` (a `struct path *`). The
/// hook also runs for `ftruncate` and `O_TRUNC` opens, which the open of
/// the file already decided, and those pass. A truncate by name needs the
/// file's path, which Linux 6.1 lets no program build in this hook, so it
/// is denied: `protected` in lupid's folders, else as unresolved, with
/// the name the agent passed kept in the record.
pub(crate) fn check_truncate(path: *const u8) -> i32 {
    // A system call that cannot be read counts as a truncate by name.
    if request::current_syscall().is_some_and(|syscall| syscall != request::NR_TRUNCATE) {
        return 0;
    }
    let Some((cgroup_id, agent)) = gate::caller_agent() else {
        return 0;
    };
    let offsets = kernel_offsets();
    // SAFETY: the helper checks the kernel address and faults safely.
    let dentry: *const u8 =
        unsafe { bpf_probe_read_kernel(path.add(offsets.path_dentry as usize).cast()) }.unwrap_or(core::ptr::null());
    let (decision, folder) = match folder_of(Dir::ParentOf(dentry), offsets) {
        Folder::Protected(folder) => (Decision::protected(), folder),
        Folder::Unprotected | Folder::Unreadable => {
            count_error(error::PATH_UNRESOLVED);
            (Decision::fail_closed(reason::PATH_UNRESOLVED), core::ptr::null())
        }
    };
    match gate::enter_labeled(lupid_common::hook::TRUNCATE, cgroup_id, agent) {
        Entry::Labeled { mut event, agent } => {
            let out = event.as_mut_ptr();
            write_name(out, folder, dentry, offsets);
            request::from_syscall(out);
            gate::finish(event, &agent, decision)
        }
        Entry::Unlabeled | Entry::Refused => DENIED,
    }
}

/// Looks `dir` up in `PROTECTED_DIRS`. A directory that cannot be read is
/// `Unreadable`, which denies.
fn folder_of(dir: Dir, offsets: &KernelOffsets) -> Folder {
    let inode = match dir {
        Dir::Inode(inode) => Ok(inode),
        Dir::ParentOf(dentry) => read_pointer(dentry, offsets.dentry_d_parent)
            .and_then(|parent| read_pointer(parent, offsets.dentry_d_inode)),
        Dir::Of(dentry) => read_pointer(dentry, offsets.dentry_d_inode),
    };
    match inode {
        Ok(inode) => lookup(inode, offsets),
        Err(()) => Folder::Unreadable,
    }
}

/// Reads the pointer at `offset` in the kernel object `object`.
fn read_pointer(object: *const u8, offset: u32) -> Result<*const u8, ()> {
    if object.is_null() {
        return Err(());
    }
    // SAFETY: the helper checks the kernel address and faults safely; the
    // offset comes from the running kernel's BTF.
    unsafe { bpf_probe_read_kernel(object.add(offset as usize).cast()) }.map_err(|_| ())
}

/// As [`check_change`] for a rename, which changes two directories.
pub(crate) fn check_rename(old: (*const u8, *const u8), new: (*const u8, *const u8)) -> i32 {
    check_changes(lupid_common::hook::RENAME, [(Dir::Inode(old.0), old.1), (Dir::Inode(new.0), new.1)])
}

fn check_changes(hook: u32, changes: [(Dir, *const u8); 2]) -> i32 {
    let Some((cgroup_id, agent)) = gate::caller_agent() else {
        return 0;
    };
    let offsets = kernel_offsets();
    let mut found = (Folder::Unprotected, core::ptr::null::<u8>());
    for (dir, dentry) in changes {
        match folder_of(dir, offsets) {
            Folder::Unprotected => {}
            other => {
                found = (other, dentry);
                break;
            }
        }
    }
    let (decision, folder, dentry) = match found {
        (Folder::Unprotected, _) => return 0,
        (Folder::Protected(folder), dentry) => (Decision::protected(), folder, dentry),
        (Folder::Unreadable, dentry) => {
            count_error(error::READ_FAILED);
            (Decision::fail_closed(reason::READ_FAILED), core::ptr::null(), dentry)
        }
    };
    match gate::enter_labeled(hook, cgroup_id, agent) {
        Entry::Labeled { mut event, agent } => {
            write_name(event.as_mut_ptr(), folder, dentry, offsets);
            gate::finish(event, &agent, decision)
        }
        Entry::Unlabeled | Entry::Refused => DENIED,
    }
}

/// Looks the directory `dir` (a `struct inode *`) up in `PROTECTED_DIRS`.
/// A null `dir` (no inode yet) is no protected directory.
fn lookup(dir: *const u8, offsets: &KernelOffsets) -> Folder {
    if dir.is_null() {
        return Folder::Unprotected;
    }
    // SAFETY: the helper checks kernel addresses and faults safely; the
    // offsets come from the running kernel's BTF.
    let key = unsafe {
        let Ok(ino) = bpf_probe_read_kernel::<u64>(dir.add(offsets.inode_i_ino as usize).cast()) else {
            return Folder::Unreadable;
        };
        let Ok(super_block) = bpf_probe_read_kernel::<*const u8>(dir.add(offsets.inode_i_sb as usize).cast()) else {
            return Folder::Unreadable;
        };
        let Ok(dev) = bpf_probe_read_kernel::<u32>(super_block.add(offsets.super_block_s_dev as usize).cast()) else {
            return Folder::Unreadable;
        };
        InodeKey { ino, dev, padding: 0 }
    };
    match PROTECTED_DIRS.get_ptr(&key) {
        Some(folder) => Folder::Protected(folder),
        None => Folder::Unprotected,
    }
}

/// Writes `FOLDER/NAME` into the event's path, or only the name when the
/// folder is unknown. A name that cannot be read leaves the folder alone.
fn write_name(out: *mut Event, folder: *const ProtectedDir, dentry: *const u8, offsets: &KernelOffsets) {
    // SAFETY: `out` is the reserved event; its `path` has room for
    // `PATH_MAX` bytes, more than `RULE_PATH_MAX + 1 + NAME_MAX + 1`.
    let path = unsafe { (&raw mut (*out).path).cast::<u8>() };
    let mut len = 0;
    if !folder.is_null() {
        // SAFETY: `folder` points at a `PROTECTED_DIRS` value; the read
        // fault checks the source and `size` is at most `RULE_PATH_MAX`.
        unsafe {
            let size = ((*folder).len as usize).min(RULE_PATH_MAX) as u32 & 0x1ff;
            if probe_read_raw(path.cast(), size, (&raw const (*folder).path).cast()) == 0 {
                len = size as usize;
                path.add(len & 0x1ff).write(b'/');
                len += 1;
            }
        }
    }
    // SAFETY: as above; the name is at most `NAME_MAX` bytes past `len`,
    // which is at most `RULE_PATH_MAX + 1`.
    let copied = unsafe {
        let Ok(name) = bpf_probe_read_kernel::<*const u8>(dentry.add((offsets.dentry_d_name + offsets.qstr_name) as usize).cast())
        else {
            return set_len(out, len);
        };
        bpf_probe_read_kernel_str(path.add(len & 0x1ff).cast(), NAME_MAX + 1, name.cast())
    };
    if copied > 1 {
        len += (copied - 1) as usize;
    }
    set_len(out, len);
}

fn set_len(out: *mut Event, len: usize) {
    // SAFETY: `out` is the reserved event.
    unsafe { (&raw mut (*out).path_len).write(len as u32) };
}
