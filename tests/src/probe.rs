//! Command line and report format of `lupid-probe`.
//!
//! The probe performs one action and prints one line with the kernel's
//! result, `ACTION OBJECT: ok (DETAIL)` or `ACTION OBJECT: ERRNAME (errno N)`,
//! then exits with a code that tests can match without parsing:
//!
//! | exit | meaning |
//! | --- | --- |
//! | 0 | the kernel allowed the action |
//! | 1 | the action failed with `EPERM` or `EACCES` |
//! | 2 | any other failure, or an invalid command line |
//!
//! Paths are bytes: an object is printed exactly as it was given on the
//! command line, even when it is not UTF-8.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::errno;

/// Usage text printed with every command line error.
pub const USAGE: &str = "\
usage: lupid-probe exec PATH [ARG...]
       lupid-probe open PATH read|write|create
       lupid-probe connect ADDR:PORT [tcp|udp]
       lupid-probe listen ADDR:PORT
       lupid-probe connect-unix PATH | send-unix PATH
       lupid-probe open-loop PATH COUNT
       lupid-probe openat DIR NAME | openat2 DIR NAME | open-fd-path DIR NAME
       lupid-probe open-in DIR PATH | open-walk PATH | rename-walk PATH NEW-NAME
       lupid-probe openat-race WORK-DIR SECRET-DIR NAME COUNT
       lupid-probe open-mix ALLOWED DENIED COUNT EVERY
       lupid-probe memfd-exec SOURCE fexecve|procfd|execveat [ARG...] | memfd-script
       lupid-probe sendmsg ADDR:PORT | sendmmsg ADDR:PORT ADDR:PORT | udp-redirect ADDR:PORT ADDR:PORT
       lupid-probe fastopen ADDR:PORT | ping ADDR | connect-abstract NAME | connect-netlink
       lupid-probe uring-open PATH [async] | uring-connect ADDR:PORT [async] | uring-sendmsg ADDR:PORT [async]
       lupid-probe clone FLAGS [CGROUP-DIR] | unshare FLAGS
       lupid-probe mount TARGET | move-mount SOURCE TARGET | umount TARGET
       lupid-probe kill PID SIGNAL | ptrace-attach PID | bpf
       lupid-probe socket FAMILY TYPE PROTOCOL | link OLD NEW | unlink PATH | rename OLD NEW
       lupid-probe exchange OLD NEW
       lupid-probe symlink TARGET LINK | mkdir PATH | truncate PATH
       lupid-probe chmod PATH MODE | setxattr PATH NAME VALUE
       lupid-probe sigio PID | prlimit PID | setpriority PID NICE | ip-options ADDR:PORT
       lupid-probe route-message ADDR:PORT route|ttl | padded-route-message ADDR:PORT PADDING
       lupid-probe mapped-route-message ADDR:PORT | tree-read SOURCE PATH | tree-rename SOURCE OLD NEW
       lupid-probe chroot-read ROOT PATH | chroot-rename ROOT OLD NEW
FLAGS are clone flags in hexadecimal (0x10000000); FAMILY, TYPE, PROTOCOL, SIGNAL and NICE are decimal numbers.
MODE is an octal file mode (0644); NAME is a whole extended attribute name (user.origin).
ADDR is an IPv4 address or a bracketed IPv6 address: 127.0.0.1:8080, [::1]:8080.";

/// Exit code when the kernel allowed the action.
pub const EXIT_OK: u8 = 0;
/// Exit code when the action failed with `EPERM` or `EACCES`.
pub const EXIT_DENIED: u8 = 1;
/// Exit code for every other failure, command line errors included.
pub const EXIT_OTHER: u8 = 2;

/// One action, as parsed from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `execve(path, [path, args...])`, without a search of `PATH`.
    Exec { path: OsString, args: Vec<OsString> },
    /// `open(path)` read-only or write-only, without `O_CREAT` or `O_TRUNC`,
    /// or write-only with `O_CREAT | O_EXCL` to create a new file.
    Open { path: OsString, mode: OpenMode },
    /// A TCP `connect` or a UDP `sendto` on an unconnected socket.
    Connect { addr: SocketAddr, transport: Transport },
    /// A TCP listener that accepts connections until it is killed.
    Listen { addr: SocketAddr },
    /// A stream `connect` to the Unix socket at `path`.
    ConnectUnix { path: PathBuf },
    /// One datagram sent with `sendto` to the Unix socket at `path`, from an
    /// unbound datagram socket.
    SendUnix { path: PathBuf },
    /// `count` read-only opens of `path`, each closed at once, summed up in
    /// one [`LoopTally`] line.
    OpenLoop { path: OsString, count: u64 },
    /// `openat(dirfd, name)` read-only, with `dirfd` an `O_PATH` descriptor
    /// of `dir`. `O_PATH` opens do not reach the `file_open` hook, so only
    /// the open of `name` is decided.
    OpenAt { dir: OsString, name: OsString },
    /// As [`Action::OpenAt`], with `openat2` and `RESOLVE_BENEATH |
    /// RESOLVE_NO_MAGICLINKS`.
    OpenAt2 { dir: OsString, name: OsString },
    /// `open("/proc/self/fd/N/name")` read-only, with N an `O_PATH`
    /// descriptor of `dir`.
    OpenFdPath { dir: OsString, name: OsString },
    /// `chdir(dir)`, then `open(path)` read-only.
    OpenIn { dir: OsString, path: OsString },
    /// Opens `path` read-only one component at a time: an `O_PATH` descriptor
    /// per directory, then `openat` of the last component, so a path longer
    /// than `PATH_MAX` can be reached.
    OpenWalk { path: OsString },
    /// Renames `path` to `new_name` in the same folder, reached one
    /// component at a time as `OpenWalk` does, so a path longer than
    /// `PATH_MAX` can be renamed.
    RenameWalk { path: OsString, new_name: OsString },
    /// `count` reads of `openat(7, name)` while a second thread keeps
    /// pointing descriptor 7 at `work` and at `secrets` with `dup2`.
    OpenatRace { work: OsString, secrets: OsString, name: OsString, count: u64 },
    /// `count` read-only opens of `allowed`, with one open of `denied` in
    /// place of every `every`-th, each closed at once.
    OpenMix { allowed: OsString, denied: OsString, count: u64, every: u64 },
    /// Copies `source` into a `memfd_create("kworker", MFD_CLOEXEC)` file
    /// and executes it with `args` as its whole argv (`kworker` when empty).
    MemfdExec { source: OsString, how: MemfdExec, args: Vec<OsString> },
    /// Writes a `#!/bin/sh` script into a `memfd_create("kworker", 0)`
    /// file and executes it with `execveat(fd, "", AT_EMPTY_PATH)`.
    MemfdScript,
    /// One `sendmsg` with `msg_name` set on an unconnected UDP socket.
    SendMsg { addr: SocketAddr },
    /// One `sendmmsg` of two datagrams, to `first` and to `second`.
    SendMmsg { first: SocketAddr, second: SocketAddr },
    /// A UDP `connect` to `connected`, then a `sendto` to `destination`.
    UdpRedirect { connected: SocketAddr, destination: SocketAddr },
    /// A `sendto` with `MSG_FASTOPEN` on a new TCP socket.
    FastOpen { addr: SocketAddr },
    /// One ICMP echo request sent with `sendto` on an unprivileged ICMP
    /// datagram socket (`net.ipv4.ping_group_range`).
    Ping { addr: std::net::Ipv4Addr },
    /// A stream `connect` to the abstract Unix socket `name`.
    ConnectAbstract { name: OsString },
    /// A `connect` of a `NETLINK_ROUTE` datagram socket to the kernel: an
    /// address family that policies cannot describe.
    ConnectNetlink,
    /// An `IORING_OP_OPENAT` of `path` read-only, then an `IORING_OP_READ`.
    UringOpen { path: OsString, force_async: bool },
    /// An `IORING_OP_CONNECT` of a TCP socket to `addr`.
    UringConnect { addr: SocketAddr, force_async: bool },
    /// An `IORING_OP_SENDMSG` of one UDP datagram to `addr`.
    UringSendMsg { addr: SocketAddr, force_async: bool },
    /// An action against a built-in protection, see `crate::cage`.
    Cage(crate::cage::CageAction),
}

/// How [`Action::MemfdExec`] executes the memfd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemfdExec {
    /// glibc's `fexecve`, which is `execveat(fd, "", AT_EMPTY_PATH)`.
    Fexecve,
    /// `execve("/proc/self/fd/N")`.
    ProcFd,
    /// `syscall(SYS_execveat, fd, "", argv, envp, AT_EMPTY_PATH)`.
    Execveat,
}

/// Access mode of [`Action::Open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    Read,
    Write,
    /// Write-only, creating the file (`O_CREAT | O_EXCL`).
    Create,
}

/// Transport of [`Action::Connect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

/// An invalid command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage_error(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

/// Parses the probe's arguments, program name excluded.
pub fn parse_args<I>(args: I) -> Result<Action, UsageError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut args = args.into_iter();
    let action = args.next().ok_or_else(|| usage_error("missing action"))?;
    let action = match action.as_bytes() {
        b"exec" => {
            let path = args.next().ok_or_else(|| usage_error("exec: missing PATH"))?;
            Action::Exec { path, args: args.by_ref().collect() }
        }
        b"open" => {
            let path = args.next().ok_or_else(|| usage_error("open: missing PATH"))?;
            let mode = args.next().ok_or_else(|| usage_error("open: missing mode (read, write or create)"))?;
            Action::Open { path, mode: parse_open_mode(&mode)? }
        }
        b"connect" => {
            let addr = args.next().ok_or_else(|| usage_error("connect: missing ADDR:PORT"))?;
            let transport = match args.next() {
                None => Transport::Tcp,
                Some(text) => parse_transport(&text)?,
            };
            Action::Connect { addr: parse_socket_addr(&addr)?, transport }
        }
        b"listen" => {
            let addr = args.next().ok_or_else(|| usage_error("listen: missing ADDR:PORT"))?;
            Action::Listen { addr: parse_socket_addr(&addr)? }
        }
        b"connect-unix" => {
            let path = args.next().ok_or_else(|| usage_error("connect-unix: missing PATH"))?;
            Action::ConnectUnix { path: path.into() }
        }
        b"send-unix" => {
            let path = args.next().ok_or_else(|| usage_error("send-unix: missing PATH"))?;
            Action::SendUnix { path: path.into() }
        }
        b"open-loop" => {
            let path = args.next().ok_or_else(|| usage_error("open-loop: missing PATH"))?;
            let count = args.next().ok_or_else(|| usage_error("open-loop: missing COUNT"))?;
            Action::OpenLoop { path, count: parse_count(&count)? }
        }
        b"openat" | b"openat2" | b"open-fd-path" | b"open-in" => {
            let name = action.to_string_lossy().into_owned();
            let dir = args.next().ok_or_else(|| usage_error(format!("{name}: missing DIR")))?;
            let path = args.next().ok_or_else(|| usage_error(format!("{name}: missing NAME")))?;
            match action.as_bytes() {
                b"openat" => Action::OpenAt { dir, name: path },
                b"openat2" => Action::OpenAt2 { dir, name: path },
                b"open-fd-path" => Action::OpenFdPath { dir, name: path },
                _ => Action::OpenIn { dir, path },
            }
        }
        b"open-walk" => Action::OpenWalk { path: args.next().ok_or_else(|| usage_error("open-walk: missing PATH"))? },
        b"rename-walk" => Action::RenameWalk {
            path: args.next().ok_or_else(|| usage_error("rename-walk: missing PATH"))?,
            new_name: args.next().ok_or_else(|| usage_error("rename-walk: missing NEW-NAME"))?,
        },
        b"openat-race" => {
            let mut next = |what: &str| args.next().ok_or_else(|| usage_error(format!("openat-race: missing {what}")));
            let (work, secrets, name) = (next("WORK-DIR")?, next("SECRET-DIR")?, next("NAME")?);
            Action::OpenatRace { work, secrets, name, count: parse_count(&next("COUNT")?)? }
        }
        b"open-mix" => {
            let mut next = |what: &str| args.next().ok_or_else(|| usage_error(format!("open-mix: missing {what}")));
            let (allowed, denied) = (next("ALLOWED")?, next("DENIED")?);
            let (count, every) = (parse_count(&next("COUNT")?)?, parse_count(&next("EVERY")?)?);
            Action::OpenMix { allowed, denied, count, every }
        }
        b"memfd-exec" => {
            let source = args.next().ok_or_else(|| usage_error("memfd-exec: missing SOURCE"))?;
            let how = match args.next().as_deref().map(OsStr::as_bytes) {
                Some(b"fexecve") => MemfdExec::Fexecve,
                Some(b"procfd") => MemfdExec::ProcFd,
                Some(b"execveat") => MemfdExec::Execveat,
                _ => return Err(usage_error("memfd-exec: expected fexecve, procfd or execveat after SOURCE")),
            };
            Action::MemfdExec { source, how, args: args.by_ref().collect() }
        }
        b"memfd-script" => Action::MemfdScript,
        b"sendmsg" | b"fastopen" => {
            let text = args.next().ok_or_else(|| usage_error("missing ADDR:PORT"))?;
            let addr = parse_socket_addr(&text)?;
            if action.as_bytes() == b"sendmsg" { Action::SendMsg { addr } } else { Action::FastOpen { addr } }
        }
        b"sendmmsg" | b"udp-redirect" => {
            let first = parse_socket_addr(&args.next().ok_or_else(|| usage_error("missing first ADDR:PORT"))?)?;
            let second = parse_socket_addr(&args.next().ok_or_else(|| usage_error("missing second ADDR:PORT"))?)?;
            if action.as_bytes() == b"sendmmsg" {
                Action::SendMmsg { first, second }
            } else {
                Action::UdpRedirect { connected: first, destination: second }
            }
        }
        b"ping" => {
            let text = args.next().ok_or_else(|| usage_error("ping: missing ADDR"))?;
            let addr = text.to_str().and_then(|text| text.parse().ok());
            Action::Ping { addr: addr.ok_or_else(|| usage_error(format!("ping: invalid IPv4 address {text:?}")))? }
        }
        b"connect-netlink" => Action::ConnectNetlink,
        b"connect-abstract" => {
            Action::ConnectAbstract { name: args.next().ok_or_else(|| usage_error("connect-abstract: missing NAME"))? }
        }
        b"uring-open" | b"uring-connect" | b"uring-sendmsg" => {
            let object = args.next().ok_or_else(|| usage_error("missing PATH or ADDR:PORT"))?;
            let force_async = match args.next() {
                None => false,
                Some(word) if word == "async" => true,
                Some(word) => {
                    return Err(usage_error(format!("invalid argument {word:?}: expected async or no argument")));
                }
            };
            match action.as_bytes() {
                b"uring-open" => Action::UringOpen { path: object, force_async },
                b"uring-connect" => Action::UringConnect { addr: parse_socket_addr(&object)?, force_async },
                _ => Action::UringSendMsg { addr: parse_socket_addr(&object)?, force_async },
            }
        }
        name if crate::cage::is_action(name) => Action::Cage(crate::cage::parse(name, &mut args).map_err(usage_error)?),
        _ => {
            return Err(usage_error(format!(
                "unknown action {:?}: expected an action of the usage text below",
                action.to_string_lossy()
            )));
        }
    };

    if let Some(extra) = args.next() {
        return Err(usage_error(format!("unexpected argument {:?}", extra.to_string_lossy())));
    }
    Ok(action)
}

fn parse_open_mode(text: &OsStr) -> Result<OpenMode, UsageError> {
    match text.as_bytes() {
        b"read" => Ok(OpenMode::Read),
        b"write" => Ok(OpenMode::Write),
        b"create" => Ok(OpenMode::Create),
        _ => Err(usage_error(format!(
            "open: invalid mode {:?}: expected read, write or create",
            text.to_string_lossy()
        ))),
    }
}

fn parse_transport(text: &OsStr) -> Result<Transport, UsageError> {
    match text.as_bytes() {
        b"tcp" => Ok(Transport::Tcp),
        b"udp" => Ok(Transport::Udp),
        _ => Err(usage_error(format!("connect: invalid transport {:?}: expected tcp or udp", text.to_string_lossy()))),
    }
}

/// Parses the COUNT of `open-loop`: a decimal number of at least 1.
fn parse_count(text: &OsStr) -> Result<u64, UsageError> {
    let invalid = || {
        usage_error(format!("open-loop: invalid COUNT {:?}: expected a number of at least 1", text.to_string_lossy()))
    };
    let count: u64 = text.to_str().ok_or_else(invalid)?.parse().map_err(|_| invalid())?;
    if count == 0 {
        return Err(invalid());
    }
    Ok(count)
}

/// Parses `IPV4:PORT` or `[IPV6]:PORT`. Host names are rejected, because the
/// probe must perform exactly one connect and no DNS lookup.
pub fn parse_socket_addr(text: &OsStr) -> Result<SocketAddr, UsageError> {
    let invalid =
        || usage_error(format!("invalid address {:?}: expected IPV4:PORT or [IPV6]:PORT", text.to_string_lossy()));
    let text = text.to_str().ok_or_else(invalid)?;
    text.parse().map_err(|_| invalid())
}

/// What happened to an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The kernel allowed the action. The text describes what followed, such as
    /// the number of bytes read; it may be empty.
    Ok(String),
    /// The kernel allowed a connect, but the peer refused or reset it. The
    /// text names the error, such as `ECONNREFUSED`.
    Allowed(String),
    /// The action failed with this `errno` value.
    Failed(i32),
}

impl Outcome {
    /// Converts an I/O error into a failure. Errors that std builds without
    /// an OS error map to the `errno` the kernel would have used: a connect
    /// that std timed out becomes `ETIMEDOUT`, and the rest `EINVAL` or
    /// `EIO`.
    pub fn from_error(error: &io::Error) -> Self {
        let errno = error.raw_os_error().unwrap_or(match error.kind() {
            io::ErrorKind::TimedOut => libc::ETIMEDOUT,
            io::ErrorKind::InvalidInput => libc::EINVAL,
            _ => libc::EIO,
        });
        Self::Failed(errno)
    }

    /// Returns the process exit code for this outcome.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Ok(_) | Self::Allowed(_) => EXIT_OK,
            Self::Failed(libc::EPERM | libc::EACCES) => EXIT_DENIED,
            Self::Failed(_) => EXIT_OTHER,
        }
    }
}

/// Formats one report line, newline included. `object` is raw bytes so a
/// non-UTF-8 path prints as given.
pub fn report_line(action: &str, object: &[u8], outcome: &Outcome) -> Vec<u8> {
    let mut line = Vec::with_capacity(action.len() + object.len() + 32);
    line.extend_from_slice(action.as_bytes());
    line.push(b' ');
    line.extend_from_slice(object);
    line.extend_from_slice(b": ");

    let result = match outcome {
        Outcome::Ok(detail) if detail.is_empty() => "ok".to_owned(),
        Outcome::Ok(detail) => format!("ok ({detail})"),
        Outcome::Allowed(detail) => format!("allowed, {detail}"),
        Outcome::Failed(value) => match errno::name(*value) {
            Some(name) => format!("{name} (errno {value})"),
            None => format!("unknown error (errno {value})"),
        },
    };
    line.extend_from_slice(result.as_bytes());
    line.push(b'\n');
    line
}

/// Results of the opens of an `open-loop` run, by kind.
///
/// Only `EPERM` counts as denied, because that is the errno lupid's hooks
/// return; `EACCES` from file permissions counts as another error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopTally {
    pub ok: u64,
    pub eperm: u64,
    pub other: u64,
}

impl LoopTally {
    /// Counts the result of one open.
    pub fn add<T>(&mut self, result: &io::Result<T>) {
        match result {
            Ok(_) => self.ok += 1,
            Err(error) if error.raw_os_error() == Some(libc::EPERM) => self.eperm += 1,
            Err(_) => self.other += 1,
        }
    }

    /// Formats the report line, newline included:
    /// `open-loop PATH: N ok, M EPERM, K other`.
    pub fn report_line(&self, object: &[u8]) -> Vec<u8> {
        let mut line = b"open-loop ".to_vec();
        line.extend_from_slice(object);
        line.extend_from_slice(format!(": {} ok, {} EPERM, {} other\n", self.ok, self.eperm, self.other).as_bytes());
        line
    }

    /// Returns the exit code: [`EXIT_OTHER`] when any open failed with
    /// another error, else [`EXIT_DENIED`] when any failed with `EPERM`,
    /// else [`EXIT_OK`].
    pub fn exit_code(&self) -> u8 {
        if self.other > 0 {
            EXIT_OTHER
        } else if self.eperm > 0 {
            EXIT_DENIED
        } else {
            EXIT_OK
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    use std::os::unix::ffi::OsStringExt;

    use super::*;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    fn addr(text: &str) -> Result<SocketAddr, UsageError> {
        parse_socket_addr(OsStr::new(text))
    }

    #[test]
    fn ipv4_address_parses() {
        let parsed = addr("127.0.0.1:8080").unwrap();
        assert_eq!(parsed, SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080));
    }

    #[test]
    fn bracketed_ipv6_address_parses() {
        let parsed = addr("[::1]:8080").unwrap();
        assert_eq!(parsed, SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 8080));
    }

    #[test]
    fn ipv4_mapped_address_stays_ipv6() {
        // The probe must open an AF_INET6 socket for a mapped address, so the
        // parser must not fold it into an IPv4 address.
        let parsed = addr("[::ffff:203.0.113.7]:443").unwrap();
        let expected = Ipv4Addr::new(203, 0, 113, 7).to_ipv6_mapped();
        assert_eq!(parsed, SocketAddr::new(IpAddr::V6(expected), 443));
        assert!(parsed.is_ipv6(), "a mapped address must stay an IPv6 socket address");
    }

    #[test]
    fn unbracketed_ipv6_is_rejected() {
        assert!(addr("::1:8080").is_err(), "IPv6 without brackets is ambiguous and must be rejected");
    }

    #[test]
    fn address_without_port_is_rejected() {
        assert!(addr("127.0.0.1").is_err());
        assert!(addr("[::1]").is_err());
    }

    #[test]
    fn out_of_range_port_is_rejected() {
        assert!(addr("127.0.0.1:65536").is_err());
    }

    #[test]
    fn host_name_is_rejected() {
        let error = addr("localhost:80").unwrap_err();
        assert!(error.to_string().contains("localhost:80"), "the error must name the value: {error}");
    }

    #[test]
    fn non_utf8_address_is_rejected() {
        let text = OsString::from_vec(b"127.0.0.\xff:80".to_vec());
        assert!(parse_socket_addr(&text).is_err());
    }

    #[test]
    fn exec_keeps_arguments() {
        let action = parse_args(args(&["exec", "/bin/busybox", "true", "--flag"])).unwrap();
        let expected = Action::Exec { path: "/bin/busybox".into(), args: args(&["true", "--flag"]) };
        assert_eq!(action, expected);
    }

    #[test]
    fn exec_passes_action_words_through() {
        // Words after PATH belong to the executed program, even when they
        // look like probe syntax.
        let action = parse_args(args(&["exec", "/bin/sh", "open", "read"])).unwrap();
        let expected = Action::Exec { path: "/bin/sh".into(), args: args(&["open", "read"]) };
        assert_eq!(action, expected);
    }

    #[test]
    fn exec_without_path_is_rejected() {
        assert!(parse_args(args(&["exec"])).is_err());
    }

    #[test]
    fn open_accepts_non_utf8_path() {
        let path = OsString::from_vec(b"/tmp/\xff\xfe".to_vec());
        let action = parse_args(vec!["open".into(), path.clone(), "read".into()]).unwrap();
        assert_eq!(action, Action::Open { path, mode: OpenMode::Read });
    }

    #[test]
    fn open_write_mode_parses() {
        let action = parse_args(args(&["open", "/srv/x", "write"])).unwrap();
        assert_eq!(action, Action::Open { path: "/srv/x".into(), mode: OpenMode::Write });
    }

    #[test]
    fn open_without_mode_is_rejected() {
        assert!(parse_args(args(&["open", "/srv/x"])).is_err());
    }

    #[test]
    fn open_with_invalid_mode_is_rejected() {
        let error = parse_args(args(&["open", "/srv/x", "rw"])).unwrap_err();
        assert!(error.to_string().contains("\"rw\""), "the error must name the mode: {error}");
    }

    #[test]
    fn connect_defaults_to_tcp() {
        let action = parse_args(args(&["connect", "127.0.0.1:8080"])).unwrap();
        let expected = Action::Connect { addr: addr("127.0.0.1:8080").unwrap(), transport: Transport::Tcp };
        assert_eq!(action, expected);
    }

    #[test]
    fn connect_udp_parses() {
        let action = parse_args(args(&["connect", "[::1]:53", "udp"])).unwrap();
        let expected = Action::Connect { addr: addr("[::1]:53").unwrap(), transport: Transport::Udp };
        assert_eq!(action, expected);
    }

    #[test]
    fn connect_with_invalid_transport_is_rejected() {
        assert!(parse_args(args(&["connect", "127.0.0.1:80", "sctp"])).is_err());
    }

    #[test]
    fn listen_parses() {
        let action = parse_args(args(&["listen", "203.0.113.7:443"])).unwrap();
        assert_eq!(action, Action::Listen { addr: addr("203.0.113.7:443").unwrap() });
    }

    #[test]
    fn connect_unix_parses() {
        let action = parse_args(args(&["connect-unix", "/tmp/lupid.sock"])).unwrap();
        assert_eq!(action, Action::ConnectUnix { path: "/tmp/lupid.sock".into() });
    }

    #[test]
    fn connect_unix_without_path_is_rejected() {
        assert!(parse_args(args(&["connect-unix"])).is_err());
    }

    #[test]
    fn open_loop_parses() {
        let action = parse_args(args(&["open-loop", "/home/agent/work/ok.txt", "12000"])).unwrap();
        assert_eq!(action, Action::OpenLoop { path: "/home/agent/work/ok.txt".into(), count: 12000 });
    }

    #[test]
    fn open_loop_without_count_is_rejected() {
        assert!(parse_args(args(&["open-loop", "/x"])).is_err());
    }

    #[test]
    fn open_loop_zero_count_is_rejected() {
        let error = parse_args(args(&["open-loop", "/x", "0"])).unwrap_err();
        assert!(error.to_string().contains("\"0\""), "the error must name the count: {error}");
    }

    #[test]
    fn open_loop_invalid_count_is_rejected() {
        assert!(parse_args(args(&["open-loop", "/x", "-3"])).is_err());
        assert!(parse_args(args(&["open-loop", "/x", "many"])).is_err());
    }

    #[test]
    fn tally_counts_by_kind() {
        let mut tally = LoopTally::default();
        tally.add(&Ok::<(), io::Error>(()));
        tally.add(&Err::<(), _>(io::Error::from_raw_os_error(libc::EPERM)));
        tally.add(&Err::<(), _>(io::Error::from_raw_os_error(libc::EACCES)));
        assert_eq!(tally, LoopTally { ok: 1, eperm: 1, other: 1 });
    }

    #[test]
    fn tally_report_line() {
        let tally = LoopTally { ok: 7, eperm: 3, other: 0 };
        assert_eq!(tally.report_line(b"/x"), b"open-loop /x: 7 ok, 3 EPERM, 0 other\n");
    }

    #[test]
    fn tally_exit_codes() {
        assert_eq!(LoopTally { ok: 2, eperm: 0, other: 0 }.exit_code(), EXIT_OK);
        assert_eq!(LoopTally { ok: 1, eperm: 1, other: 0 }.exit_code(), EXIT_DENIED);
        assert_eq!(LoopTally { ok: 0, eperm: 1, other: 1 }.exit_code(), EXIT_OTHER);
    }

    #[test]
    fn openat_takes_dir_and_name() {
        let action = parse_args(args(&["openat", "/srv", "secrets/token"])).unwrap();
        assert_eq!(action, Action::OpenAt { dir: "/srv".into(), name: "secrets/token".into() });
        assert!(parse_args(args(&["openat2", "/srv"])).is_err());
    }

    #[test]
    fn openat_race_parses() {
        let action = parse_args(args(&["openat-race", "/w", "/s", "token", "20"])).unwrap();
        let expected = Action::OpenatRace { work: "/w".into(), secrets: "/s".into(), name: "token".into(), count: 20 };
        assert_eq!(action, expected);
    }

    #[test]
    fn open_mix_rejects_zero_interval() {
        assert!(parse_args(args(&["open-mix", "/a", "/b", "10", "0"])).is_err());
    }

    #[test]
    fn memfd_exec_keeps_argv() {
        let action = parse_args(args(&["memfd-exec", "/usr/bin/curl", "execveat", "curl", "-V"])).unwrap();
        let expected =
            Action::MemfdExec { source: "/usr/bin/curl".into(), how: MemfdExec::Execveat, args: args(&["curl", "-V"]) };
        assert_eq!(action, expected);
        assert!(parse_args(args(&["memfd-exec", "/usr/bin/curl", "spawn"])).is_err());
    }

    #[test]
    fn sendmmsg_takes_two_addresses() {
        let action = parse_args(args(&["sendmmsg", "127.0.0.1:8080", "203.0.113.7:53"])).unwrap();
        let expected =
            Action::SendMmsg { first: addr("127.0.0.1:8080").unwrap(), second: addr("203.0.113.7:53").unwrap() };
        assert_eq!(action, expected);
    }

    #[test]
    fn ping_rejects_port() {
        assert!(parse_args(args(&["ping", "203.0.113.7:0"])).is_err());
    }

    #[test]
    fn uring_async_word_parses() {
        let action = parse_args(args(&["uring-open", "/x", "async"])).unwrap();
        assert_eq!(action, Action::UringOpen { path: "/x".into(), force_async: true });
        assert!(parse_args(args(&["uring-connect", "127.0.0.1:1", "later"])).is_err());
    }

    #[test]
    fn extra_argument_is_rejected() {
        let error = parse_args(args(&["listen", "127.0.0.1:80", "now"])).unwrap_err();
        assert!(error.to_string().contains("\"now\""), "the error must name the argument: {error}");
    }

    #[test]
    fn missing_action_is_rejected() {
        assert!(parse_args(Vec::new()).is_err());
    }

    #[test]
    fn unknown_action_is_rejected() {
        assert!(parse_args(args(&["fallocate", "/tmp/x"])).is_err());
    }

    #[test]
    fn denial_report_names_errno() {
        let line = report_line("exec", b"/usr/bin/curl", &Outcome::Failed(libc::EPERM));
        assert_eq!(line, b"exec /usr/bin/curl: EPERM (errno 1)\n");
    }

    #[test]
    fn success_report_has_detail() {
        let line = report_line("open", b"/home/agent/work/ok.txt", &Outcome::Ok("2 bytes".into()));
        assert_eq!(line, b"open /home/agent/work/ok.txt: ok (2 bytes)\n");
    }

    #[test]
    fn refused_connect_reports_allowed() {
        let outcome = Outcome::Allowed("ECONNREFUSED".into());
        let line = report_line("connect", b"127.0.0.1:8080", &outcome);
        assert_eq!(line, b"connect 127.0.0.1:8080: allowed, ECONNREFUSED\n");
    }

    #[test]
    fn report_keeps_non_utf8_object() {
        let line = report_line("open", b"/tmp/\xff", &Outcome::Failed(libc::ENOENT));
        assert_eq!(line, b"open /tmp/\xff: ENOENT (errno 2)\n");
    }

    #[test]
    fn report_of_unnamed_errno() {
        let line = report_line("open", b"/x", &Outcome::Failed(4000));
        assert_eq!(line, b"open /x: unknown error (errno 4000)\n");
    }

    #[test]
    fn exit_codes_follow_errno() {
        assert_eq!(Outcome::Ok(String::new()).exit_code(), EXIT_OK);
        assert_eq!(Outcome::Allowed("ECONNREFUSED".into()).exit_code(), EXIT_OK);
        assert_eq!(Outcome::Failed(libc::EPERM).exit_code(), EXIT_DENIED);
        assert_eq!(Outcome::Failed(libc::EACCES).exit_code(), EXIT_DENIED);
        assert_eq!(Outcome::Failed(libc::ENOENT).exit_code(), EXIT_OTHER);
    }

    #[test]
    fn std_timeout_maps_to_etimedout() {
        let error = io::Error::new(io::ErrorKind::TimedOut, "connection timed out");
        assert_eq!(Outcome::from_error(&error), Outcome::Failed(libc::ETIMEDOUT));
    }

    #[test]
    fn os_error_keeps_errno() {
        let error = io::Error::from_raw_os_error(libc::EPERM);
        assert_eq!(Outcome::from_error(&error), Outcome::Failed(libc::EPERM));
    }
}
