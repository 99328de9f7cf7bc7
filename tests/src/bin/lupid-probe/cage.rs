//! Actions against lupid's built-in protections. Each is one system call
//! (two for `move-mount` and `ptrace-attach`) and prints one report line,
//! except `sigio`, which needs a pipe and three `fcntl` calls before its
//! write, and `ip-options`, which prints a line for the `setsockopt` and one
//! for the send that follows it.

use std::ffi::{CString, OsStr};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
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
/// `F_SETSIG`, from `asm-generic/fcntl.h`, which the libc crate does not
/// define for glibc.
const F_SETSIG: libc::c_int = 10;
/// `IPOPT_NOP` and `IPOPT_LSRR` (loose source and record route), from
/// `linux/ip.h`.
const IPOPT_NOP: u8 = 1;
const IPOPT_LSRR: u8 = 131;
/// `IPV6_SRCRT_TYPE_4`, the segment routing header, from `linux/ipv6.h`.
const IPV6_SRCRT_TYPE_4: u8 = 4;
/// The first hop of the source routes of `ip-options`: addresses that
/// policy P0 does not allow the agent to reach. The test VM puts the IPv4
/// one on `lo`, and the IPv6 one (RFC 3849 documentation prefix) has no
/// route there.
const ROUTE_HOP_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
const ROUTE_HOP_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7);
/// Payload of the datagram `ip-options` sends.
const PAYLOAD: &[u8] = b"lupid-probe\n";

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
        CageAction::TreeRead { source, path } => tree_read(&source, &path),
        CageAction::TreeRename { source, old, new } => tree_rename(&source, &old, &new),
        CageAction::ChrootRead { root, path } => chroot_then(&root, || read_file(&path, "chroot-read")),
        CageAction::ChrootRename { root, old, new } => chroot_then(&root, || {
            let (old_c, new_c) = (c_string(&old), c_string(&new));
            // SAFETY: both pointers are NUL-terminated strings that outlive the call.
            let result = unsafe { libc::rename(old_c.as_ptr(), new_c.as_ptr()) };
            report("chroot-rename", old.as_bytes(), &outcome(result.into(), "renamed"))
        }),
        CageAction::PaddedRouteMessage { addr, padding } => padded_route_message(addr, padding),
        CageAction::MappedRouteMessage { addr } => mapped_route_message(addr),
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
        CageAction::Exchange { old, new } => {
            let (old_c, new_c) = (c_string(&old), c_string(&new));
            // SAFETY: both pointers are NUL-terminated strings that outlive
            // the call, and `AT_FDCWD` resolves them as `rename` does.
            let result = unsafe {
                libc::renameat2(libc::AT_FDCWD, old_c.as_ptr(), libc::AT_FDCWD, new_c.as_ptr(), libc::RENAME_EXCHANGE)
            };
            report("exchange", old.as_bytes(), &outcome(result.into(), "exchanged"))
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
        CageAction::Truncate { path } => {
            let path_c = c_string(&path);
            // SAFETY: the pointer is a NUL-terminated string that outlives the call.
            let result = unsafe { libc::truncate(path_c.as_ptr(), 0) };
            report("truncate", path.as_bytes(), &outcome(result.into(), "truncated to 0 bytes"))
        }
        CageAction::Chmod { path, mode } => {
            let path_c = c_string(&path);
            // SAFETY: the pointer is a NUL-terminated string that outlives the call.
            let result = unsafe { libc::chmod(path_c.as_ptr(), mode) };
            let object = [path.as_bytes(), format!(" {mode:04o}").as_bytes()].concat();
            report("chmod", &object, &outcome(result.into(), "mode changed"))
        }
        CageAction::Setxattr { path, name, value } => {
            let (path_c, name_c) = (c_string(&path), c_string(&name));
            // SAFETY: both names are NUL-terminated strings, and the value
            // pointer is valid for `value.len()` bytes. All outlive the call.
            let result = unsafe {
                libc::setxattr(path_c.as_ptr(), name_c.as_ptr(), value.as_bytes().as_ptr().cast(), value.len(), 0)
            };
            let object = [path.as_bytes(), b" ", name.as_bytes()].concat();
            report("setxattr", &object, &outcome(result.into(), "attribute set"))
        }
        CageAction::Sigio { pid } => sigio(pid),
        CageAction::Prlimit { pid } => {
            let limit = libc::rlimit64 { rlim_cur: 1, rlim_max: 1 };
            // SAFETY: `limit` is a valid `rlimit64` that outlives the call,
            // and prlimit64 accepts a null pointer for the old limit.
            let result = unsafe { libc::prlimit64(pid, libc::RLIMIT_CPU, &raw const limit, std::ptr::null_mut()) };
            report("prlimit", format!("{pid} RLIMIT_CPU").as_bytes(), &outcome(result.into(), "limit set to 1 s"))
        }
        CageAction::Setpriority { pid, nice } => {
            let object = format!("{pid} {nice}");
            let Ok(who) = libc::id_t::try_from(pid) else {
                return report("setpriority", object.as_bytes(), &Outcome::Failed(libc::EINVAL));
            };
            // SAFETY: setpriority has no memory-safety preconditions.
            let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, who, nice) };
            report("setpriority", object.as_bytes(), &outcome(result.into(), "priority set"))
        }
        CageAction::IpOptions { addr } => ip_options(addr),
        CageAction::RouteMessage { addr, route } => route_message(addr, route),
    }
}

/// Makes the kernel send SIGKILL to `pid` as the SIGIO of a pipe: the
/// read end is owned by `pid`, signals with SIGKILL and is in async mode,
/// so the one-byte write to the other end sends the signal. The write
/// succeeds whether or not the signal is sent, so the report cannot show a
/// denial. The caller checks the target and the ledger.
fn sigio(pid: i32) -> ExitCode {
    let object = pid.to_string();
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return report("pipe", object.as_bytes(), &Outcome::from_error(&io::Error::last_os_error()));
    }
    // SAFETY: pipe2 just returned both descriptors, and nothing else owns them.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

    // SAFETY: F_GETFL takes no argument.
    let status_flags = unsafe { libc::fcntl(read_end.as_raw_fd(), libc::F_GETFL) };
    if status_flags < 0 {
        return report("fcntl", b"F_GETFL", &Outcome::from_error(&io::Error::last_os_error()));
    }
    let steps = [
        ("F_SETOWN", libc::F_SETOWN, pid),
        ("F_SETSIG", F_SETSIG, libc::SIGKILL),
        ("F_SETFL", libc::F_SETFL, status_flags | libc::O_ASYNC),
    ];
    for (name, command, argument) in steps {
        // SAFETY: each command takes an integer argument.
        let result = unsafe { libc::fcntl(read_end.as_raw_fd(), command, argument) };
        if result < 0 {
            let object = format!("{name} {argument}");
            return report("fcntl", object.as_bytes(), &Outcome::from_error(&io::Error::last_os_error()));
        }
    }

    // SAFETY: the buffer is one valid byte.
    let written = unsafe { libc::write(write_end.as_raw_fd(), b"x".as_ptr().cast(), 1) };
    if written < 0 {
        return report("write", object.as_bytes(), &Outcome::from_error(&io::Error::last_os_error()));
    }
    report("sigio", object.as_bytes(), &Outcome::Ok("SIGKILL requested through the SIGIO of a pipe".into()))
}

/// Returns a source route for a datagram to `addr`: the socket family, the option
/// level and name, its name in reports, the first hop, and the option's
/// bytes. `IP_OPTIONS` with an LSRR option through [`ROUTE_HOP_V4`] for an
/// IPv4 `addr`; `IPV6_RTHDR` with a segment routing header through
/// [`ROUTE_HOP_V6`] for an IPv6 one.
fn source_route(addr: SocketAddr) -> (libc::c_int, libc::c_int, libc::c_int, &'static str, IpAddr, Vec<u8>) {
    match addr.ip() {
        IpAddr::V4(_) => {
            let [a, b, c, d] = ROUTE_HOP_V4.octets();
            // A no-op for 4-byte alignment, then LSRR: type, length 7,
            // pointer 4 (the first address), one address. The kernel takes
            // that address as the first hop and writes the destination in
            // its place when it sends.
            let value = vec![IPOPT_NOP, IPOPT_LSRR, 7, 4, a, b, c, d];
            (libc::AF_INET, libc::IPPROTO_IP, libc::IP_OPTIONS, "IP_OPTIONS LSRR", IpAddr::V4(ROUTE_HOP_V4), value)
        }
        IpAddr::V6(_) => {
            // `struct ipv6_sr_hdr` of `linux/seg6.h` with two segments:
            // next header (set by the kernel), length in 8-byte units after
            // the first 8 bytes, type 4, segments left 1, last entry 1,
            // flags, tag. Segment 1 is the first hop, and the kernel
            // writes the destination into segment 0 when it sends.
            let mut value = vec![0, 4, IPV6_SRCRT_TYPE_4, 1, 1, 0, 0, 0];
            value.extend_from_slice(&Ipv6Addr::UNSPECIFIED.octets());
            value.extend_from_slice(&ROUTE_HOP_V6.octets());
            (libc::AF_INET6, libc::IPPROTO_IPV6, libc::IPV6_RTHDR, "IPV6_RTHDR SRH", IpAddr::V6(ROUTE_HOP_V6), value)
        }
    }
}

/// Opens a UDP socket of `family`.
fn udp_socket(family: libc::c_int) -> io::Result<UdpSocket> {
    // SAFETY: socket has no memory-safety preconditions.
    let fd = unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    Ok(UdpSocket::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Sets the [`source_route`] of `addr` on a new UDP socket; with the route
/// set, a `sendto` of `addr` goes to the first hop. Prints the
/// `setsockopt` line, and sends only when the option was accepted,
/// printing a second line.
fn ip_options(addr: SocketAddr) -> ExitCode {
    let (family, level, option, name, hop, value) = source_route(addr);
    let object = format!("{name} {hop}");
    let socket = match udp_socket(family) {
        Ok(socket) => socket,
        Err(error) => return report("socket", object.as_bytes(), &Outcome::from_error(&error)),
    };
    let length = libc::socklen_t::try_from(value.len()).expect("an option of at most 40 bytes fits in socklen_t");
    // SAFETY: the pointer is valid for `length` bytes for the whole call.
    let result = unsafe { libc::setsockopt(socket.as_raw_fd(), level, option, value.as_ptr().cast(), length) };
    let option_outcome = outcome(result.into(), "option set");
    if result < 0 {
        return report("setsockopt", object.as_bytes(), &option_outcome);
    }
    // The exit code follows the send, so this line's is not needed.
    let _ = report("setsockopt", object.as_bytes(), &option_outcome);

    let send_outcome = match socket.send_to(PAYLOAD, addr) {
        Ok(count) => Outcome::Ok(format!("{count} bytes sent")),
        Err(error) => Outcome::from_error(&error),
    };
    report("sendto", format!("{addr} udp").as_bytes(), &send_outcome)
}

/// `IP_RETOPTS` from `linux/in.h`: IPv4 options for one message.
const IP_RETOPTS: libc::c_int = 7;

/// Connects a UDP socket to `addr` and sends one datagram with `sendmsg`
/// and one control message: the [`source_route`] of `addr` when `route` is
/// set (`IP_RETOPTS` or `IPV6_RTHDR`), else a hop limit of 9. Prints one
/// `sendmsg` line.
fn route_message(addr: SocketAddr, route: bool) -> ExitCode {
    let (family, level, option, name, hop, value) = source_route(addr);
    let (kind, object, value) = match (route, addr) {
        (true, SocketAddr::V4(_)) => (IP_RETOPTS, format!("{addr} IP_RETOPTS LSRR {hop}"), value),
        (true, SocketAddr::V6(_)) => (option, format!("{addr} {name} {hop}"), value),
        (false, SocketAddr::V4(_)) => (libc::IP_TTL, format!("{addr} IP_TTL 9"), 9i32.to_ne_bytes().to_vec()),
        (false, SocketAddr::V6(_)) => (libc::IPV6_HOPLIMIT, format!("{addr} IPV6_HOPLIMIT 9"), 9i32.to_ne_bytes().to_vec()),
    };
    let socket = match udp_socket(family).and_then(|socket| socket.connect(addr).map(|()| socket)) {
        Ok(socket) => socket,
        Err(error) => return report("connect", object.as_bytes(), &Outcome::from_error(&error)),
    };
    // One `struct cmsghdr` (length, level, type) and the value, padded to
    // 8 bytes as `CMSG_SPACE` pads it.
    let header = std::mem::size_of::<libc::cmsghdr>();
    let mut control = vec![0u8; (header + value.len()).next_multiple_of(8)];
    control[..8].copy_from_slice(&((header + value.len()) as u64).to_ne_bytes());
    control[8..12].copy_from_slice(&level.to_ne_bytes());
    control[12..16].copy_from_slice(&kind.to_ne_bytes());
    control[header..header + value.len()].copy_from_slice(&value);
    let mut payload = libc::iovec { iov_base: PAYLOAD.as_ptr().cast_mut().cast(), iov_len: PAYLOAD.len() };
    // SAFETY: an all-zero `msghdr` is valid: no name, no buffers.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &raw mut payload;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = control.len();
    // SAFETY: every pointer in `message` is valid for its length for the
    // whole call, and the kernel only reads them.
    let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &raw const message, 0) };
    report("sendmsg", object.as_bytes(), &outcome(sent.try_into().unwrap_or(-1), "sent"))
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

/// `AT_RECURSIVE`, from `linux/fcntl.h`.
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// Returns a detached copy of the mount tree at `source`
/// (`open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)`), or the failed line.
fn clone_tree(source: &OsStr) -> Result<OwnedFd, ExitCode> {
    let source_c = c_string(source);
    // SAFETY: the pointer is a NUL-terminated string that outlives the call.
    let tree = unsafe {
        libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, source_c.as_ptr(), OPEN_TREE_CLONE | AT_RECURSIVE)
    };
    if tree < 0 {
        return Err(report("open_tree", source.as_bytes(), &Outcome::from_error(&io::Error::last_os_error())));
    }
    // SAFETY: `tree` is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(libc::c_int::try_from(tree).expect("a descriptor fits in c_int")) })
}

/// Reads `path` relative to a detached copy of the mount at `source`.
fn tree_read(source: &OsStr, path: &OsStr) -> ExitCode {
    let tree = match clone_tree(source) {
        Ok(tree) => tree,
        Err(code) => return code,
    };
    let path_c = c_string(path);
    // SAFETY: the pointer is a NUL-terminated string that outlives the call.
    let fd = unsafe { libc::openat(tree.as_raw_fd(), path_c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return report("tree-read", path.as_bytes(), &Outcome::from_error(&io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    report("tree-read", path.as_bytes(), &read_outcome(file))
}

/// Renames `old` to `new`, both relative to a detached copy of the mount
/// at `source`.
fn tree_rename(source: &OsStr, old: &OsStr, new: &OsStr) -> ExitCode {
    let tree = match clone_tree(source) {
        Ok(tree) => tree,
        Err(code) => return code,
    };
    let (old_c, new_c) = (c_string(old), c_string(new));
    // SAFETY: both pointers are NUL-terminated strings that outlive the call.
    let result = unsafe { libc::renameat(tree.as_raw_fd(), old_c.as_ptr(), tree.as_raw_fd(), new_c.as_ptr()) };
    report("tree-rename", old.as_bytes(), &outcome(result.into(), "renamed"))
}

/// Changes the root directory to `root` and the working directory to the
/// new root, then runs `then`.
fn chroot_then(root: &OsStr, then: impl FnOnce() -> ExitCode) -> ExitCode {
    let root_c = c_string(root);
    // SAFETY: both pointers are NUL-terminated strings that outlive the calls.
    let result = unsafe {
        let result = libc::chroot(root_c.as_ptr());
        if result == 0 { libc::chdir(c"/".as_ptr()) } else { result }
    };
    if result < 0 {
        return report("chroot", root.as_bytes(), &outcome(result.into(), "changed"));
    }
    then()
}

/// Opens and reads `path`, and prints one `action` line with the bytes read.
fn read_file(path: &OsStr, action: &str) -> ExitCode {
    match std::fs::File::open(path) {
        Ok(file) => report(action, path.as_bytes(), &read_outcome(file)),
        Err(error) => report(action, path.as_bytes(), &Outcome::from_error(&error)),
    }
}

/// Reads `file` to its end: the outcome names the bytes, as UTF-8 text
/// where they are.
fn read_outcome(mut file: std::fs::File) -> Outcome {
    use std::io::Read;
    let mut contents = Vec::new();
    match file.read_to_end(&mut contents) {
        Ok(count) => Outcome::Ok(format!("{count} bytes read: {}", String::from_utf8_lossy(&contents))),
        Err(error) => Outcome::from_error(&error),
    }
}

/// Appends one control message of `level` and `kind` with `value` to
/// `control`, padded to 8 bytes as `CMSG_SPACE` pads it.
fn push_control(control: &mut Vec<u8>, level: libc::c_int, kind: libc::c_int, value: &[u8]) {
    let header = std::mem::size_of::<libc::cmsghdr>();
    let start = control.len();
    control.resize(start + (header + value.len()).next_multiple_of(8), 0);
    control[start..start + 8].copy_from_slice(&((header + value.len()) as u64).to_ne_bytes());
    control[start + 8..start + 12].copy_from_slice(&level.to_ne_bytes());
    control[start + 12..start + 16].copy_from_slice(&kind.to_ne_bytes());
    control[start + header..start + header + value.len()].copy_from_slice(value);
}

/// Sends one datagram on the connected `socket` with `sendmsg` and the
/// control messages in `control`, and prints one `sendmsg` line.
fn send_with_control(socket: &UdpSocket, control: &mut [u8], object: &str) -> ExitCode {
    let mut payload = libc::iovec { iov_base: PAYLOAD.as_ptr().cast_mut().cast(), iov_len: PAYLOAD.len() };
    // SAFETY: an all-zero `msghdr` is valid: no name, no buffers.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &raw mut payload;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = control.len();
    // SAFETY: every pointer in `message` is valid for its length for the
    // whole call, and the kernel only reads them.
    let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &raw const message, 0) };
    report("sendmsg", object.as_bytes(), &outcome(sent.try_into().unwrap_or(-1), "sent"))
}

/// Sends `padding` hop limit control messages and then the source route of
/// `addr` in one `sendmsg` on a UDP socket connected to `addr`.
fn padded_route_message(addr: SocketAddr, padding: u32) -> ExitCode {
    let (family, _, option, name, hop, value) = source_route(addr);
    let (level, kind, hop_limit_kind, object) = match addr {
        SocketAddr::V4(_) => {
            (libc::IPPROTO_IP, IP_RETOPTS, libc::IP_TTL, format!("{addr} {padding} IP_TTL IP_RETOPTS LSRR {hop}"))
        }
        SocketAddr::V6(_) => {
            (libc::IPPROTO_IPV6, option, libc::IPV6_HOPLIMIT, format!("{addr} {padding} IPV6_HOPLIMIT {name} {hop}"))
        }
    };
    let socket = match udp_socket(family).and_then(|socket| socket.connect(addr).map(|()| socket)) {
        Ok(socket) => socket,
        Err(error) => return report("connect", object.as_bytes(), &Outcome::from_error(&error)),
    };
    let mut control = Vec::new();
    for _ in 0..padding {
        push_control(&mut control, level, hop_limit_kind, &9i32.to_ne_bytes());
    }
    push_control(&mut control, level, kind, &value);
    send_with_control(&socket, &mut control, &object)
}

/// Sends an IPv4 source route (`IP_RETOPTS`) on an IPv6 UDP socket
/// connected to the IPv4-mapped form of the IPv4 `addr`.
fn mapped_route_message(addr: SocketAddr) -> ExitCode {
    let SocketAddr::V4(v4) = addr else {
        return report("mapped-route-message", addr.to_string().as_bytes(), &Outcome::Failed(libc::EINVAL));
    };
    let (_, _, _, _, hop, value) = source_route(addr);
    let mapped = SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port());
    let object = format!("{mapped} IP_RETOPTS LSRR {hop}");
    let socket = match udp_socket(libc::AF_INET6).and_then(|socket| socket.connect(mapped).map(|()| socket)) {
        Ok(socket) => socket,
        Err(error) => return report("connect", object.as_bytes(), &Outcome::from_error(&error)),
    };
    let mut control = Vec::new();
    push_control(&mut control, libc::IPPROTO_IP, IP_RETOPTS, &value);
    send_with_control(&socket, &mut control, &object)
}
