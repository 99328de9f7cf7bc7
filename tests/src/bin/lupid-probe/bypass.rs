//! Actions that try to reach a file, a program or a destination by a way
//! other than the plain system call: descriptor-relative names, `/proc`
//! magic links, fileless exec, datagram sends and `io_uring`.
//!
//! Each prints the probe's usual one-line result, except the loops
//! (`openat-race`, `open-mix`), which print one line of counts.

use std::ffi::{CString, OsStr, OsString, c_char};
use std::fs::File;
use std::io::{self, Write};
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use lupid_tests::probe::{self, LoopTally, MemfdExec, Outcome};
use lupid_tests::uring::{OP_CONNECT, OP_OPENAT, OP_READ, OP_SENDMSG, Ring, SQE_ASYNC, Sqe};

use super::{read_prefix, report, to_cstring};

/// The descriptor number that `openat-race` points at two directories in turn.
const RACE_FD: RawFd = 7;
/// Payload of every datagram these actions send.
const PAYLOAD: &[u8] = b"lupid-probe\n";
/// Name of the `memfd` files, as fileless malware often names them.
const MEMFD_NAME: &std::ffi::CStr = c"kworker";
/// The script `memfd-script` executes.
const SCRIPT: &[u8] = b"#!/bin/sh\nid\n";

/// Returns the outcome of the last failed libc call.
fn last_error() -> Outcome {
    Outcome::from_error(&io::Error::last_os_error())
}

/// Joins words with spaces into one report object.
fn object(words: &[&[u8]]) -> Vec<u8> {
    words.join(&b' ')
}

/// Takes ownership of a descriptor a libc call returned, or its error.
fn owned(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `dir` with `O_PATH | O_DIRECTORY`. An `O_PATH` open does not reach
/// the `file_open` hook, so it is never what lupid decides.
fn path_descriptor(dir: &OsStr) -> io::Result<OwnedFd> {
    let dir = to_cstring(dir);
    // SAFETY: `dir` is a NUL-terminated string that outlives the call.
    owned(unsafe { libc::open(dir.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) })
}

/// Reports an open that returned `fd`: the bytes read on success.
fn report_opened(action: &str, object: &[u8], fd: RawFd) -> ExitCode {
    let file = match owned(fd) {
        Ok(fd) => File::from(fd),
        Err(error) => return report(action, object, &Outcome::from_error(&error)),
    };
    match read_prefix(file) {
        Ok(count) => report(action, object, &Outcome::Ok(format!("{count} bytes"))),
        Err(error) => report("read", object, &Outcome::from_error(&error)),
    }
}

/// Opens `name` read-only relative to `dir` with `openat`, or with
/// `openat2` and `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` when `openat2`
/// is set.
pub(crate) fn open_at(dir: &OsStr, name: &OsStr, openat2: bool) -> ExitCode {
    let action = if openat2 { "openat2" } else { "openat" };
    let reported = object(&[dir.as_bytes(), name.as_bytes()]);
    let dirfd = match path_descriptor(dir) {
        Ok(fd) => fd,
        Err(error) => return report("open", dir.as_bytes(), &Outcome::from_error(&error)),
    };
    let c_name = to_cstring(name);
    let fd = if openat2 {
        // SAFETY: `open_how` is plain integers, so all zeroes is valid.
        let mut how: libc::open_how = unsafe { zeroed() };
        how.flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
        how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
        // SAFETY: `c_name` and `how` outlive the call, and the size is `how`'s.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd.as_raw_fd(),
                c_name.as_ptr(),
                &raw const how,
                size_of::<libc::open_how>(),
            )
        };
        RawFd::try_from(fd).unwrap_or(-1)
    } else {
        // SAFETY: `c_name` outlives the call.
        unsafe { libc::openat(dirfd.as_raw_fd(), c_name.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) }
    };
    report_opened(action, &reported, fd)
}

/// Opens `/proc/self/fd/N/name`, with N an `O_PATH` descriptor of `dir`.
pub(crate) fn open_fd_path(dir: &OsStr, name: &OsStr) -> ExitCode {
    let dirfd = match path_descriptor(dir) {
        Ok(fd) => fd,
        Err(error) => return report("open", dir.as_bytes(), &Outcome::from_error(&error)),
    };
    let mut path = format!("/proc/self/fd/{}/", dirfd.as_raw_fd()).into_bytes();
    path.extend_from_slice(name.as_bytes());
    let c_path = CString::new(path.clone()).expect("a command line argument contains no NUL byte");
    // SAFETY: `c_path` outlives the call.
    let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    report_opened("open", &path, fd)
}

/// Changes to `dir` with `chdir`, then opens `path` read-only.
pub(crate) fn open_in(dir: &OsStr, path: &OsStr) -> ExitCode {
    if let Err(error) = std::env::set_current_dir(dir) {
        return report("chdir", dir.as_bytes(), &Outcome::from_error(&error));
    }
    let c_path = to_cstring(path);
    // SAFETY: `c_path` outlives the call.
    let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    report_opened("open", path.as_bytes(), fd)
}

/// Opens `path` one component at a time, so that no single call names
/// more than one component and a path beyond `PATH_MAX` can be opened.
pub(crate) fn open_walk(path: &OsStr) -> ExitCode {
    let (dirfd, last) = match walk_to_folder(path) {
        Ok(found) => found,
        Err(exit) => return exit,
    };
    // SAFETY: `last` outlives the call.
    let fd = unsafe { libc::openat(dirfd.as_raw_fd(), last.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    report_opened("open", path.as_bytes(), fd)
}

/// Renames `path` to `new_name` in its folder, which it reaches one
/// component at a time as [`open_walk`] does.
pub(crate) fn rename_walk(path: &OsStr, new_name: &OsStr) -> ExitCode {
    let (dirfd, last) = match walk_to_folder(path) {
        Ok(found) => found,
        Err(exit) => return exit,
    };
    let new_name = CString::new(new_name.as_bytes()).expect("a command line argument contains no NUL byte");
    // SAFETY: both names outlive the call, and `dirfd` is an open folder.
    let result = unsafe { libc::renameat(dirfd.as_raw_fd(), last.as_ptr(), dirfd.as_raw_fd(), new_name.as_ptr()) };
    let outcome = if result < 0 { Outcome::from_error(&io::Error::last_os_error()) } else { Outcome::Ok("renamed".into()) };
    report("rename", path.as_bytes(), &outcome)
}

/// Opens the folder of `path` one component at a time, with an `O_PATH`
/// descriptor per folder, and returns it with the last component. The
/// error is the exit code after the failure was reported.
fn walk_to_folder(path: &OsStr) -> Result<(OwnedFd, CString), ExitCode> {
    let components: Vec<&[u8]> = path.as_bytes().split(|&byte| byte == b'/').filter(|c| !c.is_empty()).collect();
    let Some((last, directories)) = components.split_last() else {
        return Err(report("open", path.as_bytes(), &Outcome::Failed(libc::EINVAL)));
    };
    let mut dirfd = match path_descriptor(OsStr::new("/")) {
        Ok(fd) => fd,
        Err(error) => return Err(report("open", b"/", &Outcome::from_error(&error))),
    };
    for directory in directories {
        let name = CString::new(*directory).expect("a command line argument contains no NUL byte");
        // SAFETY: `name` outlives the call.
        let next = unsafe {
            libc::openat(dirfd.as_raw_fd(), name.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        };
        dirfd = match owned(next) {
            Ok(fd) => fd,
            Err(error) => return Err(report("walk", directory, &Outcome::from_error(&error))),
        };
    }
    let last = CString::new(*last).expect("a command line argument contains no NUL byte");
    Ok((dirfd, last))
}

/// Opens `name` relative to descriptor [`RACE_FD`] `count` times while a
/// second thread points that descriptor at `work` and at `secrets` in
/// turn, and prints `openat-race NAME: N opened (B bytes), M EPERM, K
/// ENOENT, L other`. Exits 0 when any open succeeded, else 1 when any got
/// `EPERM`, else 2.
pub(crate) fn openat_race(work: &OsStr, secrets: &OsStr, name: &OsStr, count: u64) -> ExitCode {
    let directories = match (path_descriptor(work), path_descriptor(secrets)) {
        (Ok(work), Ok(secrets)) => [work, secrets],
        (Err(error), _) => return report("open", work.as_bytes(), &Outcome::from_error(&error)),
        (_, Err(error)) => return report("open", secrets.as_bytes(), &Outcome::from_error(&error)),
    };
    // SAFETY: dup2 has no memory-safety preconditions; RACE_FD is not one of
    // the descriptors this process uses otherwise.
    unsafe { libc::dup2(directories[0].as_raw_fd(), RACE_FD) };

    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = Arc::clone(&stop);
        let raw = [directories[0].as_raw_fd(), directories[1].as_raw_fd()];
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for fd in raw {
                    // SAFETY: as above; both descriptors stay open until the join.
                    unsafe { libc::dup2(fd, RACE_FD) };
                }
            }
        })
    };

    let c_name = to_cstring(name);
    let (mut opened, mut bytes, mut eperm, mut enoent, mut other) = (0u64, 0usize, 0u64, 0u64, 0u64);
    for _ in 0..count {
        // SAFETY: `c_name` outlives the call.
        let fd = unsafe { libc::openat(RACE_FD, c_name.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        match owned(fd) {
            Ok(fd) => {
                opened += 1;
                bytes += read_prefix(File::from(fd)).unwrap_or(0);
            }
            Err(error) => match error.raw_os_error() {
                Some(libc::EPERM) => eperm += 1,
                Some(libc::ENOENT) => enoent += 1,
                _ => other += 1,
            },
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().expect("the dup2 thread panicked");

    let mut line = b"openat-race ".to_vec();
    line.extend_from_slice(name.as_bytes());
    let counts = format!(": {opened} opened ({bytes} bytes), {eperm} EPERM, {enoent} ENOENT, {other} other\n");
    line.extend_from_slice(counts.as_bytes());
    print_line(&line);
    let code = if opened > 0 {
        probe::EXIT_OK
    } else if eperm > 0 {
        probe::EXIT_DENIED
    } else {
        probe::EXIT_OTHER
    };
    ExitCode::from(code)
}

/// Opens `allowed` read-only `count` times, `denied` in place of every
/// `every`-th open, and prints `open-mix ALLOWED DENIED: allowed A ok, B
/// EPERM, C other; denied D ok, E EPERM, F other`. Exits 2 when any open
/// failed with another error, else 1 when any got `EPERM`, else 0.
pub(crate) fn open_mix(allowed: &OsStr, denied: &OsStr, count: u64, every: u64) -> ExitCode {
    let (mut allowed_tally, mut denied_tally) = (LoopTally::default(), LoopTally::default());
    for index in 1..=count {
        if index % every == 0 {
            denied_tally.add(&File::open(denied));
        } else {
            allowed_tally.add(&File::open(allowed));
        }
    }
    let mut line = b"open-mix ".to_vec();
    line.extend_from_slice(&object(&[allowed.as_bytes(), denied.as_bytes()]));
    let (a, d) = (allowed_tally, denied_tally);
    let counts = format!(
        ": allowed {} ok, {} EPERM, {} other; denied {} ok, {} EPERM, {} other\n",
        a.ok, a.eperm, a.other, d.ok, d.eperm, d.other
    );
    line.extend_from_slice(counts.as_bytes());
    print_line(&line);
    ExitCode::from(a.exit_code().max(d.exit_code()))
}

/// Writes one line to stdout. A closed stdout must not change the exit
/// code, which carries the result on its own.
fn print_line(line: &[u8]) {
    let mut stdout = io::stdout().lock();
    let _ = stdout.write_all(line).and_then(|()| stdout.flush());
}

/// Returns `words` as C strings and a null-terminated pointer array over them.
fn c_array(words: &[OsString]) -> (Vec<CString>, Vec<*const c_char>) {
    let strings: Vec<CString> = words.iter().map(|word| to_cstring(word)).collect();
    let mut pointers: Vec<*const c_char> = strings.iter().map(|word| word.as_ptr()).collect();
    pointers.push(std::ptr::null());
    (strings, pointers)
}

/// Creates a memfd named [`MEMFD_NAME`] with `flags` holding `contents`.
fn memfd_with(contents: &[u8], flags: libc::c_uint) -> io::Result<File> {
    // SAFETY: the name is a NUL-terminated constant.
    let fd = owned(unsafe { libc::memfd_create(MEMFD_NAME.as_ptr(), flags) })?;
    let mut file = File::from(fd);
    file.write_all(contents)?;
    Ok(file)
}

/// Calls `execveat(fd, "", argv, envp, AT_EMPTY_PATH)` as a raw system
/// call. Returns only on failure.
fn execveat_empty_path(fd: RawFd, argv: &[*const c_char], envp: &[*const c_char]) {
    // SAFETY: `argv` and `envp` are null-terminated arrays of pointers to
    // C strings that outlive the call, and the path is an empty C string.
    unsafe {
        libc::syscall(libc::SYS_execveat, fd, c"".as_ptr(), argv.as_ptr(), envp.as_ptr(), libc::AT_EMPTY_PATH);
    }
}

/// Copies `source` into a memfd and executes it. `words` is the whole argv,
/// `kworker` when empty. The environment is empty.
pub(crate) fn memfd_exec(source: &OsStr, how: MemfdExec, words: &[OsString]) -> ExitCode {
    let how_name = match how {
        MemfdExec::Fexecve => "fexecve",
        MemfdExec::ProcFd => "procfd",
        MemfdExec::Execveat => "execveat",
    };
    let reported = object(&[b"memfd:kworker", b"via", how_name.as_bytes()]);
    let memfd = match std::fs::read(source).and_then(|contents| memfd_with(&contents, libc::MFD_CLOEXEC)) {
        Ok(file) => file,
        Err(error) => return report("memfd", source.as_bytes(), &Outcome::from_error(&error)),
    };
    let argv_words = if words.is_empty() { vec![OsString::from("kworker")] } else { words.to_vec() };
    let (_strings, argv) = c_array(&argv_words);
    let envp = [std::ptr::null::<c_char>()];
    let fd = memfd.as_raw_fd();
    match how {
        // SAFETY: as in `execveat_empty_path`.
        MemfdExec::Fexecve => unsafe {
            libc::fexecve(fd, argv.as_ptr(), envp.as_ptr());
        },
        MemfdExec::ProcFd => {
            let path = CString::new(format!("/proc/self/fd/{fd}")).expect("a number contains no NUL byte");
            // SAFETY: as in `execveat_empty_path`, for the path `path`.
            unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        }
        MemfdExec::Execveat => execveat_empty_path(fd, &argv, &envp),
    }
    report("exec", &reported, &last_error())
}

/// Executes a `#!/bin/sh` script from a memfd created without
/// `MFD_CLOEXEC`. With the flag, the kernel could not reopen the script for
/// its interpreter and the exec would fail with `ENOENT` whatever lupid
/// decided.
pub(crate) fn memfd_script() -> ExitCode {
    let memfd = match memfd_with(SCRIPT, 0) {
        Ok(file) => file,
        Err(error) => return report("memfd", b"script", &Outcome::from_error(&error)),
    };
    let (_strings, argv) = c_array(&[OsString::from("kworker")]);
    execveat_empty_path(memfd.as_raw_fd(), &argv, &[std::ptr::null()]);
    report("exec", b"memfd:kworker script via execveat", &last_error())
}

/// Returns `addr` as a kernel socket address and its length.
fn raw_sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: `sockaddr_storage` is plain integers, so all zeroes is valid.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match addr {
        SocketAddr::V4(v4) => {
            // SAFETY: `sockaddr_storage` is larger than and aligned for `sockaddr_in`.
            let sin = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::sa_family_t::try_from(libc::AF_INET).expect("AF_INET fits in sa_family_t");
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above, for `sockaddr_in6`.
            let sin6 = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::sa_family_t::try_from(libc::AF_INET6).expect("AF_INET6 fits in sa_family_t");
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            sin6.sin6_flowinfo = v6.flowinfo();
            sin6.sin6_scope_id = v6.scope_id();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, libc::socklen_t::try_from(len).expect("a socket address length fits in socklen_t"))
}

/// Creates a socket of the family of `addr`.
fn socket_for(addr: SocketAddr, kind: libc::c_int, protocol: libc::c_int) -> io::Result<OwnedFd> {
    let domain = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket has no pointer arguments.
    owned(unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, protocol) })
}

/// Binds an unconnected UDP socket of the family of `addr`.
fn udp_socket_for(addr: SocketAddr) -> io::Result<UdpSocket> {
    let local = match addr {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
    };
    UdpSocket::bind(local)
}

/// Builds a `msghdr` that names `name` and carries [`PAYLOAD`] through `iov`.
fn message(name: &mut (libc::sockaddr_storage, libc::socklen_t), iov: &mut libc::iovec) -> libc::msghdr {
    // SAFETY: `msghdr` is plain integers and pointers, so all zeroes is valid.
    let mut header: libc::msghdr = unsafe { zeroed() };
    header.msg_name = (&raw mut name.0).cast();
    header.msg_namelen = name.1;
    header.msg_iov = iov;
    header.msg_iovlen = 1;
    header
}

fn payload_iov() -> libc::iovec {
    libc::iovec { iov_base: PAYLOAD.as_ptr().cast_mut().cast(), iov_len: PAYLOAD.len() }
}

/// Sends one datagram with `sendmsg` and `msg_name` set.
pub(crate) fn send_msg(addr: SocketAddr) -> ExitCode {
    let reported = format!("{addr} udp");
    let socket = match udp_socket_for(addr) {
        Ok(socket) => socket,
        Err(error) => return report("socket", reported.as_bytes(), &Outcome::from_error(&error)),
    };
    let mut name = raw_sockaddr(addr);
    let mut iov = payload_iov();
    let header = message(&mut name, &mut iov);
    // SAFETY: `header` points at `name` and `iov`, which outlive the call.
    let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &raw const header, 0) };
    let outcome = if sent < 0 { last_error() } else { Outcome::Ok(format!("{sent} bytes sent")) };
    report("sendmsg", reported.as_bytes(), &outcome)
}

/// Sends two datagrams, to `first` and to `second`, with one `sendmmsg`
/// and reports how many the kernel sent.
pub(crate) fn send_mmsg(first: SocketAddr, second: SocketAddr) -> ExitCode {
    let reported = format!("{first} {second} udp");
    let socket = match udp_socket_for(first) {
        Ok(socket) => socket,
        Err(error) => return report("socket", reported.as_bytes(), &Outcome::from_error(&error)),
    };
    let mut names = [raw_sockaddr(first), raw_sockaddr(second)];
    let mut iovs = [payload_iov(), payload_iov()];
    let [first_name, second_name] = &mut names;
    let [first_iov, second_iov] = &mut iovs;
    let mut messages = [
        libc::mmsghdr { msg_hdr: message(first_name, first_iov), msg_len: 0 },
        libc::mmsghdr { msg_hdr: message(second_name, second_iov), msg_len: 0 },
    ];
    // SAFETY: both headers point at names and buffers that outlive the call.
    let sent = unsafe { libc::sendmmsg(socket.as_raw_fd(), messages.as_mut_ptr(), 2, 0) };
    let outcome = if sent < 0 { last_error() } else { Outcome::Ok(format!("{sent} of 2 sent")) };
    report("sendmmsg", reported.as_bytes(), &outcome)
}

/// Connects a UDP socket to `connected`, then sends to `destination` with
/// `sendto`, which Linux delivers to the explicit address.
pub(crate) fn udp_redirect(connected: SocketAddr, destination: SocketAddr) -> ExitCode {
    let socket = match udp_socket_for(connected).and_then(|socket| socket.connect(connected).map(|()| socket)) {
        Ok(socket) => socket,
        Err(error) => return report("connect", format!("{connected} udp").as_bytes(), &Outcome::from_error(&error)),
    };
    let outcome = match socket.send_to(PAYLOAD, destination) {
        Ok(count) => Outcome::Ok(format!("{count} bytes sent")),
        Err(error) => Outcome::from_error(&error),
    };
    report("sendto", format!("{destination} udp").as_bytes(), &outcome)
}

/// Sends [`PAYLOAD`] with `sendto(MSG_FASTOPEN)` on a new TCP socket, which
/// connects inside the send without calling `connect`.
pub(crate) fn fast_open(addr: SocketAddr) -> ExitCode {
    let reported = format!("{addr} tcp");
    let socket = match socket_for(addr, libc::SOCK_STREAM, 0) {
        Ok(socket) => socket,
        Err(error) => return report("socket", reported.as_bytes(), &Outcome::from_error(&error)),
    };
    let timeout = libc::timeval { tv_sec: 3, tv_usec: 0 };
    // SAFETY: `timeout` outlives the call and the length is its size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&raw const timeout).cast(),
            libc::socklen_t::try_from(size_of::<libc::timeval>()).expect("a timeval fits in socklen_t"),
        );
    }
    let (name, len) = raw_sockaddr(addr);
    // SAFETY: the buffer and `name` outlive the call.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            PAYLOAD.as_ptr().cast(),
            PAYLOAD.len(),
            libc::MSG_FASTOPEN,
            (&raw const name).cast(),
            len,
        )
    };
    let outcome = match sent {
        count if count >= 0 => Outcome::Ok(format!("{count} bytes sent")),
        _ if io::Error::last_os_error().raw_os_error() == Some(libc::ECONNREFUSED) => {
            Outcome::Allowed("ECONNREFUSED".into())
        }
        _ => last_error(),
    };
    report("fastopen", reported.as_bytes(), &outcome)
}

/// Sends one ICMP echo request to `addr` on an unprivileged ICMP datagram
/// socket. The kernel fills in the identifier and the checksum.
pub(crate) fn ping(addr: Ipv4Addr) -> ExitCode {
    let reported = addr.to_string();
    // SAFETY: socket has no pointer arguments.
    let socket = match owned(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP) }) {
        Ok(socket) => socket,
        Err(error) => return report("socket", b"icmp", &Outcome::from_error(&error)),
    };
    // Type 8 (echo request), code 0, checksum, identifier, sequence 1.
    let mut packet = vec![8u8, 0, 0, 0, 0, 0, 0, 1];
    packet.extend_from_slice(PAYLOAD);
    let (name, len) = raw_sockaddr(SocketAddr::from((addr, 0)));
    // SAFETY: the packet and `name` outlive the call.
    let sent = unsafe {
        libc::sendto(socket.as_raw_fd(), packet.as_ptr().cast(), packet.len(), 0, (&raw const name).cast(), len)
    };
    let outcome = if sent < 0 { last_error() } else { Outcome::Ok(format!("{sent} bytes sent")) };
    report("ping", reported.as_bytes(), &outcome)
}

/// Connects a stream socket to the abstract Unix socket `name`.
pub(crate) fn connect_abstract(name: &OsStr) -> ExitCode {
    let reported = [b"@", name.as_bytes()].concat();
    let outcome = match UnixAddr::from_abstract_name(name.as_bytes()).and_then(|addr| UnixStream::connect_addr(&addr)) {
        Ok(_stream) => Outcome::Ok("connected".into()),
        Err(error) if error.raw_os_error() == Some(libc::ECONNREFUSED) => Outcome::Allowed("ECONNREFUSED".into()),
        Err(error) => Outcome::from_error(&error),
    };
    report("connect", &reported, &outcome)
}

/// Connects a `NETLINK_ROUTE` datagram socket to the kernel (port id 0).
pub(crate) fn connect_netlink() -> ExitCode {
    // SAFETY: socket has no memory-safety preconditions.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
    if fd < 0 {
        return report("socket", b"netlink", &Outcome::from_error(&std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero `sockaddr_nl` is valid: port 0 is the kernel.
    let mut address: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    address.nl_family = libc::sa_family_t::try_from(libc::AF_NETLINK).expect("AF_NETLINK fits sa_family_t");
    let length = libc::socklen_t::try_from(size_of::<libc::sockaddr_nl>()).expect("sockaddr_nl is small");
    // SAFETY: `address` is a valid `sockaddr_nl` of `length` bytes.
    let result = unsafe { libc::connect(socket.as_raw_fd(), (&raw const address).cast(), length) };
    let outcome = if result == 0 { Outcome::Ok("connected".into()) } else { Outcome::from_error(&std::io::Error::last_os_error()) };
    report("connect", b"netlink", &outcome)
}

/// Creates a ring, or reports why it could not.
fn new_ring() -> Result<Ring, ExitCode> {
    Ring::new().map_err(|error| report("io_uring_setup", b"", &Outcome::from_error(&error)))
}

fn sqe_flags(force_async: bool) -> u8 {
    if force_async { SQE_ASYNC } else { 0 }
}

/// Turns a completion's `res` into a failure, or `None` when it is not
/// negative.
fn failed(res: i32) -> Option<Outcome> {
    (res < 0).then(|| Outcome::Failed(-res))
}

/// Submits `sqe` and waits for it. Returns a failure for a negative `res`,
/// or else `Ok` with the text `describe` makes of `res`.
fn run_sqe(ring: &mut Ring, sqe: Sqe, describe: impl FnOnce(i32) -> String) -> Outcome {
    match ring.run(sqe) {
        Ok(res) => failed(res).unwrap_or_else(|| Outcome::Ok(describe(res))),
        Err(error) => Outcome::from_error(&error),
    }
}

/// Opens `path` read-only with `IORING_OP_OPENAT` and reads it with
/// `IORING_OP_READ`.
pub(crate) fn uring_open(path: &OsStr, force_async: bool) -> ExitCode {
    let mut ring = match new_ring() {
        Ok(ring) => ring,
        Err(code) => return code,
    };
    let c_path = to_cstring(path);
    let open = Sqe {
        opcode: OP_OPENAT,
        flags: sqe_flags(force_async),
        fd: libc::AT_FDCWD,
        addr: c_path.as_ptr() as u64,
        op_flags: (libc::O_RDONLY | libc::O_CLOEXEC) as u32,
        ..Sqe::default()
    };
    let fd = match ring.run(open) {
        Ok(res) => res,
        Err(error) => return report("io_uring_enter", path.as_bytes(), &Outcome::from_error(&error)),
    };
    if let Some(outcome) = failed(fd) {
        return report("uring-open", path.as_bytes(), &outcome);
    }
    let file = owned(fd).expect("the ring returned a valid descriptor");

    let mut buffer = [0u8; 64];
    let read = Sqe {
        opcode: OP_READ,
        flags: sqe_flags(force_async),
        fd: file.as_raw_fd(),
        addr: buffer.as_mut_ptr() as u64,
        len: 64,
        ..Sqe::default()
    };
    let outcome = run_sqe(&mut ring, read, |res| format!("{res} bytes"));
    report("uring-open", path.as_bytes(), &outcome)
}

/// Connects a new TCP socket to `addr` with `IORING_OP_CONNECT`.
pub(crate) fn uring_connect(addr: SocketAddr, force_async: bool) -> ExitCode {
    let reported = addr.to_string();
    let mut ring = match new_ring() {
        Ok(ring) => ring,
        Err(code) => return code,
    };
    let socket = match socket_for(addr, libc::SOCK_STREAM, 0) {
        Ok(socket) => socket,
        Err(error) => return report("socket", reported.as_bytes(), &Outcome::from_error(&error)),
    };
    let (name, len) = raw_sockaddr(addr);
    let connect = Sqe {
        opcode: OP_CONNECT,
        flags: sqe_flags(force_async),
        fd: socket.as_raw_fd(),
        addr: (&raw const name) as u64,
        off: u64::from(len),
        ..Sqe::default()
    };
    let outcome = match ring.run(connect) {
        Ok(0) => Outcome::Ok("connected".into()),
        Ok(res) if res == -libc::ECONNREFUSED => Outcome::Allowed("ECONNREFUSED".into()),
        Ok(res) => failed(res).unwrap_or_else(|| Outcome::Ok(format!("res {res}"))),
        Err(error) => Outcome::from_error(&error),
    };
    report("uring-connect", reported.as_bytes(), &outcome)
}

/// Sends one UDP datagram to `addr` with `IORING_OP_SENDMSG`.
pub(crate) fn uring_sendmsg(addr: SocketAddr, force_async: bool) -> ExitCode {
    let reported = format!("{addr} udp");
    let mut ring = match new_ring() {
        Ok(ring) => ring,
        Err(code) => return code,
    };
    let socket = match udp_socket_for(addr) {
        Ok(socket) => socket,
        Err(error) => return report("socket", reported.as_bytes(), &Outcome::from_error(&error)),
    };
    let mut name = raw_sockaddr(addr);
    let mut iov = payload_iov();
    let header = message(&mut name, &mut iov);
    let send = Sqe {
        opcode: OP_SENDMSG,
        flags: sqe_flags(force_async),
        fd: socket.as_raw_fd(),
        addr: (&raw const header) as u64,
        len: 1,
        ..Sqe::default()
    };
    let outcome = run_sqe(&mut ring, send, |res| format!("{res} bytes sent"));
    report("uring-sendmsg", reported.as_bytes(), &outcome)
}
