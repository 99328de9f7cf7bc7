//! Actions against lupid's built-in protections. Each is one system call
//! (two for `move-mount` and `ptrace-attach`) and prints one report line.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use lupid_tests::cage::CageAction;
use lupid_tests::probe::Outcome;

use super::report;

/// `CLONE_INTO_CGROUP`, from `linux/sched.h`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
/// `OPEN_TREE_CLONE`, from `linux/mount.h`.
const OPEN_TREE_CLONE: libc::c_uint = 1;
/// `MOVE_MOUNT_F_EMPTY_PATH`, from `linux/mount.h`.
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
/// `BPF_MAP_CREATE` and `BPF_MAP_TYPE_ARRAY`, from `linux/bpf.h`.
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_TYPE_ARRAY: u32 = 2;

/// `struct clone_args` of `linux/sched.h`, up to `cgroup` (version 2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

pub(crate) fn run(action: CageAction) -> ExitCode {
    match action {
        CageAction::Clone { flags, cgroup } => clone(flags, cgroup.as_deref()),
        CageAction::Unshare { flags } => {
            let Ok(flags_int) = libc::c_int::try_from(flags) else {
                return report("unshare", format!("{flags:#x}").as_bytes(), &Outcome::Failed(libc::EINVAL));
            };
            // SAFETY: unshare has no memory-safety preconditions.
            let result = unsafe { libc::unshare(flags_int) };
            report("unshare", format!("{flags:#x}").as_bytes(), &outcome(result.into(), "unshared"))
        }
        CageAction::Mount { target } => {
            let target_c = c_string(&target);
            // SAFETY: every pointer is a NUL-terminated string that outlives
            // the call, and tmpfs takes no data.
            let result =
                unsafe { libc::mount(c"none".as_ptr(), target_c.as_ptr(), c"tmpfs".as_ptr(), 0, std::ptr::null()) };
            report("mount", target.as_bytes(), &outcome(result.into(), "mounted"))
        }
        CageAction::MoveMount { source, target } => move_mount(&source, &target),
        CageAction::Umount { target } => {
            let target_c = c_string(&target);
            // SAFETY: the pointer is a NUL-terminated string that outlives the call.
            let result = unsafe { libc::umount(target_c.as_ptr()) };
            report("umount", target.as_bytes(), &outcome(result.into(), "unmounted"))
        }
        CageAction::Kill { pid, signal } => {
            // SAFETY: kill has no memory-safety preconditions.
            let result = unsafe { libc::kill(pid, signal) };
            report("kill", format!("{pid} {signal}").as_bytes(), &outcome(result.into(), "sent"))
        }
        CageAction::PtraceAttach { pid } => ptrace_attach(pid),
        CageAction::Bpf => bpf(),
        CageAction::Socket { family, socket_type, protocol } => {
            // SAFETY: socket has no memory-safety preconditions.
            let fd = unsafe { libc::socket(family, socket_type, protocol) };
            if fd >= 0 {
                // SAFETY: `fd` is a new descriptor that nothing else owns.
                drop(unsafe { OwnedFd::from_raw_fd(fd) });
            }
            let object = format!("{family} {socket_type} {protocol}");
            report("socket", object.as_bytes(), &outcome(fd.min(0).into(), "created"))
        }
        CageAction::Link { old, new } => {
            let (old_c, new_c) = (c_string(&old), c_string(&new));
            // SAFETY: both pointers are NUL-terminated strings that outlive the call.
            let result = unsafe { libc::link(old_c.as_ptr(), new_c.as_ptr()) };
            report("link", new.as_bytes(), &outcome(result.into(), "linked"))
        }
        CageAction::Unlink { path } => {
            let path_c = c_string(&path);
            // SAFETY: the pointer is a NUL-terminated string that outlives the call.
            let result = unsafe { libc::unlink(path_c.as_ptr()) };
            report("unlink", path.as_bytes(), &outcome(result.into(), "removed"))
        }
        CageAction::Rename { old, new } => {
            let (old_c, new_c) = (c_string(&old), c_string(&new));
            // SAFETY: both pointers are NUL-terminated strings that outlive the call.
            let result = unsafe { libc::rename(old_c.as_ptr(), new_c.as_ptr()) };
            report("rename", old.as_bytes(), &outcome(result.into(), "renamed"))
        }
        CageAction::Symlink { target, link } => {
            let (target_c, link_c) = (c_string(&target), c_string(&link));
            // SAFETY: both pointers are NUL-terminated strings that outlive the call.
            let result = unsafe { libc::symlink(target_c.as_ptr(), link_c.as_ptr()) };
            report("symlink", link.as_bytes(), &outcome(result.into(), "created"))
        }
        CageAction::Mkdir { path } => {
            let path_c = c_string(&path);
            // SAFETY: the pointer is a NUL-terminated string that outlives the call.
            let result = unsafe { libc::mkdir(path_c.as_ptr(), 0o700) };
            report("mkdir", path.as_bytes(), &outcome(result.into(), "created"))
        }
    }
}

/// Clones with `clone3`. The child exits at once and the parent reaps it.
fn clone(flags: u64, cgroup: Option<&OsStr>) -> ExitCode {
    let object = format!("{flags:#x}");
    let mut args = CloneArgs { flags, exit_signal: u64::from(libc::SIGCHLD.unsigned_abs()), ..CloneArgs::default() };
    // Kept open until the clone returns.
    let _cgroup_dir = match cgroup {
        Some(dir) => match std::fs::File::open(dir) {
            Ok(file) => {
                args.flags |= CLONE_INTO_CGROUP;
                args.cgroup = u64::from(file.as_raw_fd().unsigned_abs());
                Some(file)
            }
            Err(error) => return report("clone", dir.as_bytes(), &Outcome::from_error(&error)),
        },
        None => None,
    };
    // SAFETY: `args` is a valid `struct clone_args` of the size passed. The
    // child shares no memory with the parent (no CLONE_VM) and calls only
    // `_exit`.
    let pid = unsafe { libc::syscall(libc::SYS_clone3, &raw const args, size_of::<CloneArgs>()) };
    if pid == 0 {
        // SAFETY: `_exit` is always safe in a child.
        unsafe { libc::_exit(0) };
    }
    if pid > 0 {
        let mut status = 0;
        let child = libc::pid_t::try_from(pid).expect("a process id fits in pid_t");
        // SAFETY: `status` is a valid out pointer, and `child` is our child.
        unsafe { libc::waitpid(child, &raw mut status, 0) };
    }
    report("clone", object.as_bytes(), &outcome(pid.min(0), "cloned"))
}

fn move_mount(source: &OsStr, target: &OsStr) -> ExitCode {
    let (source_c, target_c) = (c_string(source), c_string(target));
    // SAFETY: the pointer is a NUL-terminated string that outlives the call.
    let tree = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, source_c.as_ptr(), OPEN_TREE_CLONE) };
    if tree < 0 {
        return report("open_tree", source.as_bytes(), &Outcome::from_error(&io::Error::last_os_error()));
    }
    // SAFETY: `tree` is a new descriptor that nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(libc::c_int::try_from(tree).expect("a descriptor fits in c_int")) };
    // SAFETY: both paths are NUL-terminated strings that outlive the call.
    let result = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target_c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    report("move_mount", target.as_bytes(), &outcome(result, "moved"))
}

fn ptrace_attach(pid: i32) -> ExitCode {
    // SAFETY: PTRACE_ATTACH takes no pointers.
    let result = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) };
    let outcome = outcome(result, "attached");
    if result == 0 {
        let mut status = 0;
        // SAFETY: `status` is a valid out pointer; the tracee stops after
        // the attach, and detaching takes no pointers.
        unsafe {
            libc::waitpid(pid, &raw mut status, libc::__WALL);
            libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0);
        }
    }
    report("ptrace", pid.to_string().as_bytes(), &outcome)
}

fn bpf() -> ExitCode {
    // The first four fields of `union bpf_attr` for BPF_MAP_CREATE:
    // map_type, key_size, value_size, max_entries; the rest stays zero.
    let mut attr = [0u32; 32];
    attr[..4].copy_from_slice(&[BPF_MAP_TYPE_ARRAY, 4, 4, 1]);
    // SAFETY: `attr` is a zeroed `union bpf_attr` prefix of the size passed.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_MAP_CREATE, attr.as_ptr(), size_of_val(&attr)) };
    if fd >= 0 {
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        drop(unsafe { OwnedFd::from_raw_fd(libc::c_int::try_from(fd).expect("a descriptor fits in c_int")) });
    }
    report("bpf", b"map_create", &outcome(fd.min(0), "created"))
}

/// Returns the outcome of a system call that returned `result`, reading
/// `errno` when it is negative.
fn outcome(result: libc::c_long, done: &str) -> Outcome {
    if result < 0 { Outcome::from_error(&io::Error::last_os_error()) } else { Outcome::Ok(done.into()) }
}

fn c_string(word: &OsStr) -> CString {
    CString::new(word.as_bytes()).expect("a command line argument contains no NUL byte")
}
