//! lupid's kernel programs: BPF LSM hooks on exec, file open and connect.
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

mod gate;
mod lease;
mod maps;
mod net;
mod path;

use aya_ebpf::{macros::lsm, programs::LsmContext};

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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// The kernel refuses BPF LSM programs without a GPL-compatible license.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
