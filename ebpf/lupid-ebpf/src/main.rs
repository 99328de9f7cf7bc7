//! lupid's kernel programs: BPF LSM hooks on exec, file open, connect
//! (Unix sockets included), and the built-in protections that keep an
//! agent in its cgroup and away from the daemon (`protect`).
//!
//! Each hook is a thin adapter: it finds the caller's agent in `AGENTS`
//! (one map lookup, and processes outside a labeled cgroup stop there),
//! reserves the event in the ring buffer, gathers the object as the kernel
//! resolved it, asks `lupid_common::decide` for the verdict and submits the
//! event. Failure policy, for every hook: an internal error (no room in the
//! ring buffer, a path the kernel cannot build, an unreadable address, an
//! unknown address family, a missing policy) denies the action with EPERM
//! and increments a slot of the per-CPU `ERRORS` array. Nothing allows on
//! error, and an action whose event cannot be reserved is denied, so no
//! allowed action goes unrecorded.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![expect(internal_features, reason = "the BPF target lacks AtomicU64::fetch_add")]

mod folders;
mod gate;
mod lease;
mod maps;
mod net;
mod path;
mod protect;
mod rename;
mod request;
mod unix;
mod walk;

use aya_ebpf::{macros::lsm, programs::LsmContext};
use lupid_common::hook;

/// `bprm_check_security(struct linux_binprm *bprm)`: decides an exec on the
/// file the kernel opened for it, so symlinks and relative names are
/// already resolved. Sleepable, because `bpf_d_path` needs it.
#[lsm(hook = "bprm_check_security", sleepable)]
pub(crate) fn bprm_check_security(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(1);
    if previous != 0 {
        return previous;
    }
    path::check_exec(&ctx)
}

/// `file_open(struct file *file)`: decides an open on the opened file.
/// Sleepable, because `bpf_d_path` needs it.
#[lsm(hook = "file_open", sleepable)]
pub(crate) fn file_open(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(1);
    if previous != 0 {
        return previous;
    }
    path::check_open(&ctx)
}

/// `socket_connect(struct socket *sock, struct sockaddr *address, int
/// addrlen)`: decides a connect on the address the kernel copied in.
#[lsm(hook = "socket_connect")]
pub(crate) fn socket_connect(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(3);
    if previous != 0 {
        return previous;
    }
    net::check_connect(&ctx)
}

/// `socket_sendmsg(struct socket *sock, struct msghdr *msg, int size)`:
/// decides a send that names its destination (an unconnected UDP
/// `sendto`/`sendmsg`, TCP Fast Open) by the same network rules as a
/// connect. A send without a destination goes where the socket's connect,
/// already decided, pointed it.
#[lsm(hook = "socket_sendmsg")]
pub(crate) fn socket_sendmsg(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(3);
    if previous != 0 {
        return previous;
    }
    net::check_sendmsg(&ctx)
}

/// `unix_stream_connect(struct sock *sock, struct sock *other, struct sock
/// *newsk)`: decides a stream or seqpacket connect to a Unix socket, on
/// the listening socket the kernel found for the name.
#[lsm(hook = "unix_stream_connect")]
pub(crate) fn unix_stream_connect(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(3);
    if previous != 0 {
        return previous;
    }
    unix::check_stream_connect(&ctx)
}

/// `unix_may_send(struct socket *sock, struct socket *other)`: decides a
/// datagram connect or send to a Unix socket, on the socket the kernel
/// found for the name.
#[lsm(hook = "unix_may_send")]
pub(crate) fn unix_may_send(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(2);
    if previous != 0 {
        return previous;
    }
    unix::check_may_send(&ctx)
}

/// `task_alloc(struct task_struct *task, unsigned long clone_flags)`:
/// denies a labeled caller's `clone`/`clone3` with `CLONE_INTO_CGROUP` or
/// a new user, mount or cgroup namespace.
#[lsm(hook = "task_alloc")]
pub(crate) fn task_alloc(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(2);
    if previous != 0 {
        return previous;
    }
    protect::check_clone(&ctx)
}

/// `task_free(struct task_struct *task)`: removes the label of a freed
/// task, so its `task_struct` address can serve a new one.
#[lsm(hook = "task_free")]
pub(crate) fn task_free(ctx: LsmContext) -> i32 {
    let task: *const u8 = ctx.arg(0);
    gate::unlabel(task as u64);
    0
}

/// `userns_create(const struct cred *cred)`: denies a labeled caller a new
/// user namespace, by `unshare` as well as by `clone`.
#[lsm(hook = "userns_create")]
pub(crate) fn userns_create(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(1);
    if previous != 0 {
        return previous;
    }
    protect::check_always(hook::USERNS_CREATE)
}

/// `sb_mount(const char *dev_name, const struct path *path, const char
/// *type, unsigned long flags, void *data)`: denies a labeled caller's
/// `mount(2)`, remounts and bind mounts included.
#[lsm(hook = "sb_mount")]
pub(crate) fn sb_mount(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(5);
    if previous != 0 {
        return previous;
    }
    protect::check_always(hook::MOUNT)
}

/// `move_mount(const struct path *from_path, const struct path *to_path)`:
/// denies a labeled caller's `move_mount(2)`.
#[lsm(hook = "move_mount")]
pub(crate) fn move_mount(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(2);
    if previous != 0 {
        return previous;
    }
    protect::check_always(hook::MOVE_MOUNT)
}

/// `sb_umount(struct vfsmount *mnt, int flags)`: denies a labeled caller's
/// `umount(2)`.
#[lsm(hook = "sb_umount")]
pub(crate) fn sb_umount(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(2);
    if previous != 0 {
        return previous;
    }
    protect::check_always(hook::UMOUNT)
}

/// `task_kill(struct task_struct *p, struct kernel_siginfo *info, int sig,
/// const struct cred *cred)`: denies a labeled caller's signal to the
/// daemon.
#[lsm(hook = "task_kill")]
pub(crate) fn task_kill(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(4);
    if previous != 0 {
        return previous;
    }
    protect::check_kill(&ctx)
}

/// `ptrace_access_check(struct task_struct *child, unsigned int mode)`:
/// denies a labeled caller ptrace access to the daemon, and attach-mode
/// access to processes outside its cgroup.
#[lsm(hook = "ptrace_access_check")]
pub(crate) fn ptrace_access_check(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(2);
    if previous != 0 {
        return previous;
    }
    protect::check_ptrace(&ctx)
}

/// `bpf(int cmd, union bpf_attr *attr, unsigned int size)`: denies a
/// labeled caller every `bpf(2)` command, so it can neither detach nor
/// inspect lupid's programs and maps.
#[lsm(hook = "bpf")]
pub(crate) fn bpf_syscall(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(3);
    if previous != 0 {
        return previous;
    }
    protect::check_always(hook::BPF)
}

/// `socket_create(int family, int type, int protocol, int kern)`: denies a
/// labeled caller packet and raw sockets.
#[lsm(hook = "socket_create")]
pub(crate) fn socket_create(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(4);
    if previous != 0 {
        return previous;
    }
    protect::check_socket_create(&ctx)
}

/// `path_link(struct dentry *old_dentry, const struct path *new_dir, struct
/// dentry *new_dentry)`: denies a labeled caller every hard link, because a
/// second name for a file escapes the path rules of the first, and records
/// both names. Needs `CONFIG_SECURITY_PATH`, which Debian's kernels set.
#[lsm(hook = "path_link")]
pub(crate) fn path_link(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(3);
    if previous != 0 {
        return previous;
    }
    rename::check_link(&ctx)
}

/// `path_chroot(const struct path *path)`: denies a labeled caller
/// `chroot(2)`. Names are built from the caller's root, so a new root
/// would rename every file the rules name.
#[lsm(hook = "path_chroot")]
pub(crate) fn path_chroot(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(1);
    if previous != 0 {
        return previous;
    }
    protect::check_always(hook::CHROOT)
}

/// `sb_pivotroot(const struct path *old_path, const struct path
/// *new_path)`: denies a labeled caller `pivot_root(2)`, for the reason of
/// `path_chroot`.
#[lsm(hook = "sb_pivotroot")]
pub(crate) fn sb_pivotroot(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(2);
    if previous != 0 {
        return previous;
    }
    protect::check_always(hook::CHROOT)
}

/// `path_rename(const struct path *old_dir, struct dentry *old_dentry,
/// const struct path *new_dir, struct dentry *new_dentry, unsigned int
/// flags)`: decides a labeled caller's rename by the path rules at the old
/// and the new name (`rename`).
#[lsm(hook = "path_rename")]
pub(crate) fn path_rename(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(5);
    if previous != 0 {
        return previous;
    }
    rename::check_rename(&ctx)
}

/// Defines an LSM program on `$hook(struct inode *dir, struct dentry
/// *dentry, ...)` that denies a labeled caller the change of a name in one
/// of lupid's own folders. `$ret` is the index of the hook's previous
/// return value among its arguments.
macro_rules! folder_hook {
    ($hook:ident, $name:tt, $ret:literal, $code:ident, $what:literal) => {
        #[doc = concat!("`", $name, "`: denies a labeled caller ", $what, " in one of lupid's own folders.")]
        #[lsm(hook = $name)]
        pub(crate) fn $hook(ctx: LsmContext) -> i32 {
            let previous: i32 = ctx.arg($ret);
            if previous != 0 {
                return previous;
            }
            folders::check_change(hook::$code, ctx.arg(0), ctx.arg(1))
        }
    };
}

folder_hook!(inode_create, "inode_create", 3, CREATE_NAME, "a new file");
folder_hook!(inode_mkdir, "inode_mkdir", 3, CREATE_NAME, "a new directory");
folder_hook!(inode_mknod, "inode_mknod", 4, CREATE_NAME, "a new device, FIFO or socket node");
folder_hook!(inode_symlink, "inode_symlink", 3, CREATE_NAME, "a new symbolic link");
folder_hook!(inode_unlink, "inode_unlink", 2, REMOVE_NAME, "an unlink");
folder_hook!(inode_rmdir, "inode_rmdir", 2, REMOVE_NAME, "a directory removal");

/// `inode_setattr(struct dentry *dentry, struct iattr *attr)`: denies a
/// labeled caller a change of the mode, owner, times or size of a file in
/// one of lupid's own folders, or of such a folder.
#[lsm(hook = "inode_setattr")]
pub(crate) fn inode_setattr(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(2);
    if previous != 0 {
        return previous;
    }
    folders::check_attr(ctx.arg(0))
}

/// `inode_setxattr(struct user_namespace *mnt_userns, struct dentry
/// *dentry, const char *name, const void *value, size_t size, int flags)`:
/// as `inode_setattr`, for extended attributes.
#[lsm(hook = "inode_setxattr")]
pub(crate) fn inode_setxattr(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(6);
    if previous != 0 {
        return previous;
    }
    folders::check_attr(ctx.arg(1))
}

/// `inode_removexattr(struct user_namespace *mnt_userns, struct dentry
/// *dentry, const char *name)`: as `inode_setxattr`.
#[lsm(hook = "inode_removexattr")]
pub(crate) fn inode_removexattr(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(3);
    if previous != 0 {
        return previous;
    }
    folders::check_attr(ctx.arg(1))
}

/// `path_truncate(const struct path *path)`: denies a labeled caller's
/// `truncate(2)` by name; `ftruncate` and `O_TRUNC` opens were decided by
/// the open.
#[lsm(hook = "path_truncate")]
pub(crate) fn path_truncate(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(1);
    if previous != 0 {
        return previous;
    }
    folders::check_truncate(ctx.arg(0))
}

/// Defines an LSM program on `$hook(struct task_struct *p, ...)` that
/// denies a labeled caller a change of the daemon's limits or scheduling.
/// `$ret` is the index of the hook's previous return value.
macro_rules! task_set_hook {
    ($hook:ident, $name:tt, $ret:literal, $what:literal) => {
        #[doc = concat!("`", $name, "`: denies a labeled caller ", $what, " of the daemon.")]
        #[lsm(hook = $name)]
        pub(crate) fn $hook(ctx: LsmContext) -> i32 {
            let previous: i32 = ctx.arg($ret);
            if previous != 0 {
                return previous;
            }
            protect::check_task_set(&ctx)
        }
    };
}

task_set_hook!(task_setrlimit, "task_setrlimit", 3, "a change of the resource limits");
task_set_hook!(task_setnice, "task_setnice", 2, "a change of the nice value");
task_set_hook!(task_setioprio, "task_setioprio", 2, "a change of the I/O priority");
task_set_hook!(task_setscheduler, "task_setscheduler", 1, "a change of the scheduling policy");

/// `file_send_sigiotask(struct task_struct *tsk, struct fown_struct *fown,
/// int sig)`: refuses a `SIGIO`-style signal to the daemon.
#[lsm(hook = "file_send_sigiotask")]
pub(crate) fn file_send_sigiotask(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(3);
    if previous != 0 {
        return previous;
    }
    protect::check_sigio(&ctx)
}

/// `socket_setsockopt(struct socket *sock, int level, int optname)`: denies
/// a labeled caller IPv4 options and IPv6 routing headers.
#[lsm(hook = "socket_setsockopt")]
pub(crate) fn socket_setsockopt(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(3);
    if previous != 0 {
        return previous;
    }
    protect::check_setsockopt(&ctx)
}

/// `inode_rename(struct inode *old_dir, struct dentry *old_dentry, struct
/// inode *new_dir, struct dentry *new_dentry)`: denies a labeled caller a
/// rename out of or into one of lupid's own folders.
#[lsm(hook = "inode_rename")]
pub(crate) fn inode_rename(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(4);
    if previous != 0 {
        return previous;
    }
    folders::check_rename((ctx.arg(0), ctx.arg(1)), (ctx.arg(2), ctx.arg(3)))
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// The kernel refuses BPF LSM programs without a GPL-compatible license.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
