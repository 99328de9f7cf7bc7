//! Command line of the probe's actions against lupid's built-in
//! protections: leaving the cgroup, namespaces, mounts, signals, ptrace,
//! SIGIO, resource limits and priorities aimed at the daemon, `bpf(2)`, raw
//! sockets, source-routing socket options, hard links, and changes of names,
//! sizes and attributes in lupid's own folders.

use std::ffi::{OsStr, OsString};
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;

/// One action against a built-in protection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CageAction {
    /// `clone3` with `flags`, and with `CLONE_INTO_CGROUP` into the cgroup
    /// folder `cgroup` when given. The child exits at once.
    Clone { flags: u64, cgroup: Option<OsString> },
    /// `unshare(flags)`.
    Unshare { flags: u64 },
    /// Mounts a tmpfs on `target`.
    Mount { target: OsString },
    /// `open_tree(source, OPEN_TREE_CLONE)`, then `move_mount` of the copy
    /// onto `target`.
    MoveMount { source: OsString, target: OsString },
    /// `umount(target)`.
    Umount { target: OsString },
    /// `kill(pid, signal)`.
    Kill { pid: i32, signal: i32 },
    /// `PTRACE_ATTACH` to `pid`, then `PTRACE_DETACH`.
    PtraceAttach { pid: i32 },
    /// `bpf(BPF_MAP_CREATE)` of a one-slot array.
    Bpf,
    /// `socket(family, type, protocol)`.
    Socket { family: i32, socket_type: i32, protocol: i32 },
    /// `link(old, new)`.
    Link { old: OsString, new: OsString },
    /// `unlink(path)`.
    Unlink { path: OsString },
    /// `rename(old, new)`.
    Rename { old: OsString, new: OsString },
    /// `renameat2(old, new, RENAME_EXCHANGE)`: the two names swap files.
    Exchange { old: OsString, new: OsString },
    /// `symlink(target, link)`.
    Symlink { target: OsString, link: OsString },
    /// `mkdir(path, 0700)`.
    Mkdir { path: OsString },
    /// `truncate(path, 0)`.
    Truncate { path: OsString },
    /// `chmod(path, mode)`.
    Chmod { path: OsString, mode: u32 },
    /// `setxattr(path, name, value, 0)`. `name` is the whole attribute
    /// name with its namespace, such as `user.origin`.
    Setxattr { path: OsString, name: OsString, value: OsString },
    /// Asks the kernel to send SIGKILL to `pid` as the SIGIO of a pipe:
    /// `fcntl(F_SETOWN, pid)`, `fcntl(F_SETSIG, SIGKILL)` and
    /// `fcntl(F_SETFL, O_ASYNC)` on the read end, then a one-byte write.
    Sigio { pid: i32 },
    /// `prlimit64(pid, RLIMIT_CPU)` with a soft and hard limit of 1 s.
    Prlimit { pid: i32 },
    /// `setpriority(PRIO_PROCESS, pid, nice)`.
    Setpriority { pid: i32, nice: i32 },
    /// A UDP socket with a source route to `addr`, then a `sendto` of
    /// `addr` when the option was accepted. The route is `IP_OPTIONS` with
    /// an LSRR option for an IPv4 `addr`, and `IPV6_RTHDR` with a segment
    /// routing header for an IPv6 one.
    IpOptions { addr: SocketAddr },
    /// Connects a UDP socket to `addr`, then sends one datagram with
    /// `sendmsg` and a control message: the same route as `IpOptions`
    /// (`IP_RETOPTS`, `IPV6_RTHDR`) when `route` is set, else a hop limit
    /// (`IP_TTL`, `IPV6_HOPLIMIT`), which routes nothing.
    RouteMessage { addr: SocketAddr, route: bool },
    /// `open_tree(source, OPEN_TREE_CLONE | AT_RECURSIVE)`, a detached copy
    /// of the mount at `source`, then an `openat` and a read of `path`
    /// relative to the copy.
    TreeRead { source: OsString, path: OsString },
    /// As `TreeRead`, then `renameat` of `old` to `new`, both relative to
    /// the detached copy.
    TreeRename { source: OsString, old: OsString, new: OsString },
    /// `chroot(root)`, then an open and a read of `path`.
    ChrootRead { root: OsString, path: OsString },
    /// `chroot(root)`, then `rename(old, new)`.
    ChrootRename { root: OsString, old: OsString, new: OsString },
    /// As `RouteMessage` with `route` set, after `padding` hop limit control
    /// messages in the same `sendmsg`.
    PaddedRouteMessage { addr: SocketAddr, padding: u32 },
    /// An IPv6 UDP socket connected to the IPv4-mapped `addr`, then one
    /// `sendmsg` with an IPv4 `IP_RETOPTS` source route control message,
    /// which the kernel's IPv4 path applies to a mapped destination.
    MappedRouteMessage { addr: SocketAddr },
}

/// Returns whether `action` names one of these actions.
pub fn is_action(action: &[u8]) -> bool {
    matches!(
        action,
        b"clone"
            | b"unshare"
            | b"mount"
            | b"move-mount"
            | b"umount"
            | b"kill"
            | b"ptrace-attach"
            | b"bpf"
            | b"socket"
            | b"link"
            | b"unlink"
            | b"rename"
            | b"exchange"
            | b"symlink"
            | b"mkdir"
            | b"truncate"
            | b"chmod"
            | b"setxattr"
            | b"sigio"
            | b"prlimit"
            | b"setpriority"
            | b"ip-options"
            | b"route-message"
            | b"tree-read"
            | b"tree-rename"
            | b"chroot-read"
            | b"chroot-rename"
            | b"padded-route-message"
            | b"mapped-route-message"
    )
}

/// Parses the arguments of `action`, taking only those it needs. The
/// error is the usage message.
pub fn parse(action: &[u8], args: &mut impl Iterator<Item = OsString>) -> Result<CageAction, String> {
    let name = String::from_utf8_lossy(action).into_owned();
    let mut next = |what: &str| args.next().ok_or_else(|| format!("{name}: missing {what}"));
    let parsed = match action {
        b"clone" => {
            let flags = parse_flags(&next("FLAGS")?)?;
            CageAction::Clone { flags, cgroup: next("CGROUP-DIR").ok() }
        }
        b"unshare" => CageAction::Unshare { flags: parse_flags(&next("FLAGS")?)? },
        b"mount" => CageAction::Mount { target: next("TARGET")? },
        b"move-mount" => CageAction::MoveMount { source: next("SOURCE")?, target: next("TARGET")? },
        b"umount" => CageAction::Umount { target: next("TARGET")? },
        b"kill" => CageAction::Kill { pid: parse_number(&next("PID")?)?, signal: parse_number(&next("SIGNAL")?)? },
        b"ptrace-attach" => CageAction::PtraceAttach { pid: parse_number(&next("PID")?)? },
        b"bpf" => CageAction::Bpf,
        b"socket" => CageAction::Socket {
            family: parse_number(&next("FAMILY")?)?,
            socket_type: parse_number(&next("TYPE")?)?,
            protocol: parse_number(&next("PROTOCOL")?)?,
        },
        b"link" => CageAction::Link { old: next("OLD")?, new: next("NEW")? },
        b"unlink" => CageAction::Unlink { path: next("PATH")? },
        b"rename" => CageAction::Rename { old: next("OLD")?, new: next("NEW")? },
        b"exchange" => CageAction::Exchange { old: next("OLD")?, new: next("NEW")? },
        b"symlink" => CageAction::Symlink { target: next("TARGET")?, link: next("LINK")? },
        b"mkdir" => CageAction::Mkdir { path: next("PATH")? },
        b"truncate" => CageAction::Truncate { path: next("PATH")? },
        b"chmod" => CageAction::Chmod { path: next("PATH")?, mode: parse_mode(&next("MODE")?)? },
        b"setxattr" => CageAction::Setxattr { path: next("PATH")?, name: next("NAME")?, value: next("VALUE")? },
        b"sigio" => CageAction::Sigio { pid: parse_number(&next("PID")?)? },
        b"prlimit" => CageAction::Prlimit { pid: parse_number(&next("PID")?)? },
        b"setpriority" => {
            CageAction::Setpriority { pid: parse_number(&next("PID")?)?, nice: parse_number(&next("NICE")?)? }
        }
        b"ip-options" => CageAction::IpOptions {
            addr: crate::probe::parse_socket_addr(&next("ADDR:PORT")?).map_err(|error| error.to_string())?,
        },
        b"route-message" => {
            let addr = crate::probe::parse_socket_addr(&next("ADDR:PORT")?).map_err(|error| error.to_string())?;
            let route = match next("route|ttl")?.as_bytes() {
                b"route" => true,
                b"ttl" => false,
                other => {
                    return Err(format!(
                        "route-message: expected route or ttl, got {:?}",
                        String::from_utf8_lossy(other)
                    ));
                }
            };
            CageAction::RouteMessage { addr, route }
        }
        b"tree-read" => CageAction::TreeRead { source: next("SOURCE")?, path: next("PATH")? },
        b"tree-rename" => CageAction::TreeRename { source: next("SOURCE")?, old: next("OLD")?, new: next("NEW")? },
        b"chroot-read" => CageAction::ChrootRead { root: next("ROOT")?, path: next("PATH")? },
        b"chroot-rename" => CageAction::ChrootRename { root: next("ROOT")?, old: next("OLD")?, new: next("NEW")? },
        b"padded-route-message" => CageAction::PaddedRouteMessage {
            addr: crate::probe::parse_socket_addr(&next("ADDR:PORT")?).map_err(|error| error.to_string())?,
            padding: parse_number(&next("PADDING")?)?
                .try_into()
                .map_err(|_| "padded-route-message: PADDING must not be negative".to_owned())?,
        },
        b"mapped-route-message" => CageAction::MappedRouteMessage {
            addr: crate::probe::parse_socket_addr(&next("ADDR:PORT")?).map_err(|error| error.to_string())?,
        },
        _ => return Err(format!("unknown action {name:?}")),
    };
    Ok(parsed)
}

/// Parses clone flags written in hexadecimal, with or without `0x`.
fn parse_flags(text: &OsStr) -> Result<u64, String> {
    let invalid = || format!("invalid FLAGS {:?}: expected hexadecimal", text.to_string_lossy());
    let digits = text.to_str().ok_or_else(invalid)?;
    let digits = digits.strip_prefix("0x").unwrap_or(digits);
    u64::from_str_radix(digits, 16).map_err(|_| invalid())
}

/// Parses a file mode written in octal, such as `0644`, up to `07777`.
fn parse_mode(text: &OsStr) -> Result<u32, String> {
    let invalid = || format!("invalid MODE {:?}: expected octal digits up to 07777", text.to_string_lossy());
    let digits = text.to_str().ok_or_else(invalid)?;
    let mode = u32::from_str_radix(digits, 8).map_err(|_| invalid())?;
    if mode > 0o7777 {
        return Err(invalid());
    }
    Ok(mode)
}

/// Parses a decimal number, negative ones included.
fn parse_number(text: &OsStr) -> Result<i32, String> {
    let invalid = || format!("invalid number {:?}", String::from_utf8_lossy(text.as_bytes()));
    text.to_str().ok_or_else(invalid)?.parse().map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Result<CageAction, String> {
        let mut args = words[1..].iter().map(OsString::from);
        parse(words[0].as_bytes(), &mut args)
    }

    #[test]
    fn clone_with_cgroup() {
        let action = parse_words(&["clone", "0x200000000", "/sys/fs/cgroup/x"]).unwrap();
        assert_eq!(action, CageAction::Clone { flags: 0x2_0000_0000, cgroup: Some("/sys/fs/cgroup/x".into()) });
    }

    #[test]
    fn clone_without_cgroup() {
        assert_eq!(parse_words(&["clone", "20000"]).unwrap(), CageAction::Clone { flags: 0x20000, cgroup: None });
    }

    #[test]
    fn socket_numbers_parsed() {
        let action = parse_words(&["socket", "17", "3", "768"]).unwrap();
        assert_eq!(action, CageAction::Socket { family: 17, socket_type: 3, protocol: 768 });
    }

    #[test]
    fn invalid_flags_rejected() {
        assert!(parse_words(&["unshare", "0xzz"]).is_err());
    }

    #[test]
    fn truncate_takes_path() {
        let action = parse_words(&["truncate", "/srv/secrets/token"]).unwrap();
        assert_eq!(action, CageAction::Truncate { path: "/srv/secrets/token".into() });
        assert!(parse_words(&["truncate"]).is_err());
    }

    #[test]
    fn chmod_mode_is_octal() {
        let action = parse_words(&["chmod", "/x", "0644"]).unwrap();
        assert_eq!(action, CageAction::Chmod { path: "/x".into(), mode: 0o644 });
        let action = parse_words(&["chmod", "/x", "4755"]).unwrap();
        assert_eq!(action, CageAction::Chmod { path: "/x".into(), mode: 0o4755 }, "set-id bits are kept");
    }

    #[test]
    fn chmod_invalid_mode_rejected() {
        let error = parse_words(&["chmod", "/x", "0999"]).unwrap_err();
        assert!(error.contains("\"0999\""), "the error must name the mode: {error}");
        assert!(parse_words(&["chmod", "/x", "17777"]).is_err(), "a mode above 07777 must be rejected");
        assert!(parse_words(&["chmod", "/x", "-644"]).is_err());
        assert!(parse_words(&["chmod", "/x"]).unwrap_err().contains("MODE"));
    }

    #[test]
    fn setxattr_takes_name_and_value() {
        let action = parse_words(&["setxattr", "/x", "user.origin", "agent"]).unwrap();
        let expected = CageAction::Setxattr { path: "/x".into(), name: "user.origin".into(), value: "agent".into() };
        assert_eq!(action, expected);
        assert!(parse_words(&["setxattr", "/x", "user.origin"]).unwrap_err().contains("VALUE"));
    }

    #[test]
    fn task_actions_take_pid() {
        assert_eq!(parse_words(&["sigio", "812"]).unwrap(), CageAction::Sigio { pid: 812 });
        assert_eq!(parse_words(&["prlimit", "812"]).unwrap(), CageAction::Prlimit { pid: 812 });
        assert!(parse_words(&["sigio", "daemon"]).is_err());
    }

    #[test]
    fn setpriority_takes_negative_nice() {
        let action = parse_words(&["setpriority", "812", "-20"]).unwrap();
        assert_eq!(action, CageAction::Setpriority { pid: 812, nice: -20 });
        assert!(parse_words(&["setpriority", "812"]).unwrap_err().contains("NICE"));
    }

    #[test]
    fn ip_options_takes_address() {
        let action = parse_words(&["ip-options", "127.0.0.1:8080"]).unwrap();
        assert_eq!(action, CageAction::IpOptions { addr: "127.0.0.1:8080".parse().unwrap() });
        let action = parse_words(&["ip-options", "[::1]:8080"]).unwrap();
        assert_eq!(action, CageAction::IpOptions { addr: "[::1]:8080".parse().unwrap() });
    }

    #[test]
    fn ip_options_invalid_address_rejected() {
        let error = parse_words(&["ip-options", "localhost:8080"]).unwrap_err();
        assert!(error.contains("localhost:8080"), "the error must name the address: {error}");
        assert!(parse_words(&["ip-options"]).unwrap_err().contains("ADDR:PORT"));
    }

    #[test]
    fn missing_argument_named() {
        let error = parse_words(&["kill", "12"]).unwrap_err();
        assert!(error.contains("SIGNAL"), "{error}");
    }
}
