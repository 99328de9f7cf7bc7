//! Command line of the probe's actions against lupid's built-in
//! protections: leaving the cgroup, namespaces, mounts, signals and ptrace
//! to the daemon, `bpf(2)`, raw sockets, hard links, and changes of names
//! in lupid's own folders.

use std::ffi::{OsStr, OsString};
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
    /// `symlink(target, link)`.
    Symlink { target: OsString, link: OsString },
    /// `mkdir(path, 0700)`.
    Mkdir { path: OsString },
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
            | b"symlink"
            | b"mkdir"
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
        b"symlink" => CageAction::Symlink { target: next("TARGET")?, link: next("LINK")? },
        b"mkdir" => CageAction::Mkdir { path: next("PATH")? },
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
    fn missing_argument_named() {
        let error = parse_words(&["kill", "12"]).unwrap_err();
        assert!(error.contains("SIGNAL"), "{error}");
    }
}
