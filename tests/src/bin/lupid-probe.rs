//! `lupid-probe`: performs one action as an agent would and prints the
//! kernel's result on one line. The command line, the line format and the
//! exit codes are described in `lupid_tests::probe`.
//!
//! Every action is a single system call that lupid mediates, with nothing
//! around it that could hit a hook first: no `PATH` search for exec, no
//! `O_CREAT` or `O_TRUNC` for open, and no DNS lookup for connect.

use std::ffi::{CString, OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use lupid_tests::probe::{self, Action, LoopTally, OpenMode, Outcome, Transport};

// A folder without main.rs, so cargo does not take it for another binary.
#[path = "lupid-probe/bypass.rs"]
mod bypass;
#[path = "lupid-probe/cage.rs"]
mod cage;

/// Time a TCP connect may take before the probe reports `ETIMEDOUT`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Bytes an allowed read-only open reads from the file.
const READ_LIMIT: u64 = 64;
/// Payload of a UDP probe datagram.
const UDP_PAYLOAD: &[u8] = b"lupid-probe\n";

fn main() -> ExitCode {
    let action = match probe::parse_args(std::env::args_os().skip(1)) {
        Ok(action) => action,
        Err(error) => {
            eprintln!("lupid-probe: {error}\n{}", probe::USAGE);
            return ExitCode::from(probe::EXIT_OTHER);
        }
    };

    match action {
        Action::Exec { path, args } => exec(&path, &args),
        Action::Open { path, mode } => open(&path, mode),
        Action::Connect { addr, transport: Transport::Tcp } => connect_tcp(addr),
        Action::Connect { addr, transport: Transport::Udp } => send_udp(addr),
        Action::Listen { addr } => listen(addr),
        Action::ConnectUnix { path } => connect_unix(&path),
        Action::SendUnix { path } => send_unix(&path),
        Action::OpenLoop { path, count } => open_loop(&path, count),
        Action::OpenAt { dir, name } => bypass::open_at(&dir, &name, false),
        Action::OpenAt2 { dir, name } => bypass::open_at(&dir, &name, true),
        Action::OpenFdPath { dir, name } => bypass::open_fd_path(&dir, &name),
        Action::OpenIn { dir, path } => bypass::open_in(&dir, &path),
        Action::OpenWalk { path } => bypass::open_walk(&path),
        Action::RenameWalk { path, new_name } => bypass::rename_walk(&path, &new_name),
        Action::OpenatRace { work, secrets, name, count } => bypass::openat_race(&work, &secrets, &name, count),
        Action::OpenMix { allowed, denied, count, every } => bypass::open_mix(&allowed, &denied, count, every),
        Action::MemfdExec { source, how, args } => bypass::memfd_exec(&source, how, &args),
        Action::MemfdScript => bypass::memfd_script(),
        Action::SendMsg { addr } => bypass::send_msg(addr),
        Action::SendMmsg { first, second } => bypass::send_mmsg(first, second),
        Action::UdpRedirect { connected, destination } => bypass::udp_redirect(connected, destination),
        Action::FastOpen { addr } => bypass::fast_open(addr),
        Action::Ping { addr } => bypass::ping(addr),
        Action::ConnectAbstract { name } => bypass::connect_abstract(&name),
        Action::ConnectNetlink => bypass::connect_netlink(),
        Action::UringOpen { path, force_async } => bypass::uring_open(&path, force_async),
        Action::UringConnect { addr, force_async } => bypass::uring_connect(addr, force_async),
        Action::UringSendMsg { addr, force_async } => bypass::uring_sendmsg(addr, force_async),
        Action::Cage(action) => cage::run(action),
    }
}

/// Prints the report line and returns the matching exit code.
fn report(action: &str, object: &[u8], outcome: &Outcome) -> ExitCode {
    let line = probe::report_line(action, object, outcome);
    let mut stdout = io::stdout().lock();
    // A closed stdout must not change the exit code, which carries the
    // verdict on its own.
    let _ = stdout.write_all(&line).and_then(|()| stdout.flush());
    ExitCode::from(outcome.exit_code())
}

/// Replaces the process with `path`. Returns only when `execve` failed.
fn exec(path: &OsStr, args: &[OsString]) -> ExitCode {
    let c_path = to_cstring(path);
    let c_words: Vec<CString> = std::iter::once(c_path.clone()).chain(args.iter().map(|arg| to_cstring(arg))).collect();
    let mut pointers: Vec<*const libc::c_char> = c_words.iter().map(|word| word.as_ptr()).collect();
    pointers.push(std::ptr::null());

    // SAFETY: `c_path` and every element of `pointers` point into CStrings
    // in `c_path` and `c_words`, which outlive the call, and `pointers` ends
    // with a null pointer as execv requires. execv only returns on failure.
    unsafe {
        libc::execv(c_path.as_ptr(), pointers.as_ptr());
    }
    let error = io::Error::last_os_error();
    report("exec", path.as_bytes(), &Outcome::from_error(&error))
}

/// Converts a command line word to a C string. Words from `argv` are C
/// strings already, so they cannot contain a NUL byte.
fn to_cstring(word: &OsStr) -> CString {
    CString::new(word.as_bytes()).expect("a command line argument contains no NUL byte")
}

fn open(path: &OsStr, mode: OpenMode) -> ExitCode {
    let mut options = OpenOptions::new();
    match mode {
        OpenMode::Read => options.read(true),
        OpenMode::Write => options.write(true),
        OpenMode::Create => options.write(true).create_new(true),
    };
    let file = match options.open(path) {
        Ok(file) => file,
        Err(error) => return report("open", path.as_bytes(), &Outcome::from_error(&error)),
    };

    match mode {
        OpenMode::Write => report("open", path.as_bytes(), &Outcome::Ok("opened for writing".into())),
        OpenMode::Create => report("open", path.as_bytes(), &Outcome::Ok("created".into())),
        OpenMode::Read => match read_prefix(file) {
            Ok(count) => report("open", path.as_bytes(), &Outcome::Ok(format!("{count} bytes"))),
            // The open was allowed; the read is what failed, so the line
            // names the read.
            Err(error) => report("read", path.as_bytes(), &Outcome::from_error(&error)),
        },
    }
}

/// Reads up to [`READ_LIMIT`] bytes and returns how many there were.
fn read_prefix(file: File) -> io::Result<usize> {
    let mut buffer = Vec::new();
    file.take(READ_LIMIT).read_to_end(&mut buffer)?;
    Ok(buffer.len())
}

fn connect_tcp(addr: SocketAddr) -> ExitCode {
    let object = addr.to_string();
    let outcome = match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
        Ok(_stream) => Outcome::Ok("connected".into()),
        // The connect left the host, so the kernel allowed it; only the
        // peer said no.
        Err(error) if error.raw_os_error() == Some(libc::ECONNREFUSED) => Outcome::Allowed("ECONNREFUSED".into()),
        Err(error) => Outcome::from_error(&error),
    };
    report("connect", object.as_bytes(), &outcome)
}

/// Connects a stream socket to the Unix socket at `path`.
fn connect_unix(path: &Path) -> ExitCode {
    let outcome = match UnixStream::connect(path) {
        Ok(_stream) => Outcome::Ok("connected".into()),
        Err(error) if error.raw_os_error() == Some(libc::ECONNREFUSED) => Outcome::Allowed("ECONNREFUSED".into()),
        Err(error) => Outcome::from_error(&error),
    };
    report("connect", path.as_os_str().as_bytes(), &outcome)
}

/// Sends one datagram to the Unix socket at `path` from an unbound socket.
fn send_unix(path: &Path) -> ExitCode {
    let outcome = match UnixDatagram::unbound().and_then(|socket| socket.send_to(b"lupid", path)) {
        Ok(sent) => Outcome::Ok(format!("{sent} bytes sent")),
        Err(error) => Outcome::from_error(&error),
    };
    report("send", path.as_os_str().as_bytes(), &outcome)
}

/// Opens `path` read-only `count` times, closing each file at once, and
/// prints one line with the results by kind.
fn open_loop(path: &OsStr, count: u64) -> ExitCode {
    let mut tally = LoopTally::default();
    for _ in 0..count {
        tally.add(&File::open(path));
    }
    let mut stdout = io::stdout().lock();
    // As in `report`, the exit code carries the result on its own.
    let _ = stdout.write_all(&tally.report_line(path.as_bytes())).and_then(|()| stdout.flush());
    ExitCode::from(tally.exit_code())
}

/// Sends one datagram with `sendto` on an unconnected socket.
///
/// NOTE: an unconnected `sendto` does not pass through the `socket_connect`
/// LSM hook, so lupid's connect rules do not see it.
fn send_udp(addr: SocketAddr) -> ExitCode {
    let object = format!("{addr} udp");
    let local = match addr {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let outcome = match UdpSocket::bind(local).and_then(|socket| socket.send_to(UDP_PAYLOAD, addr)) {
        Ok(count) => Outcome::Ok(format!("{count} bytes sent")),
        Err(error) => Outcome::from_error(&error),
    };
    report("connect", object.as_bytes(), &outcome)
}

/// Accepts TCP connections until killed, printing one line per connection.
/// Returns only when the bind or listen fails.
fn listen(addr: SocketAddr) -> ExitCode {
    let object = addr.to_string();
    let listener = match TcpListener::bind(addr) {
        Ok(listener) => listener,
        Err(error) => return report("listen", object.as_bytes(), &Outcome::from_error(&error)),
    };
    report("listen", object.as_bytes(), &Outcome::Ok("listening".into()));

    loop {
        match listener.accept() {
            Ok((_stream, peer)) => {
                report("accept", peer.to_string().as_bytes(), &Outcome::Ok(String::new()));
            }
            Err(error) => {
                report("accept", object.as_bytes(), &Outcome::from_error(&error));
                // A persistent error such as EMFILE must not spin the CPU.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
