//! Built-in protections: actions a labeled agent may never take, whatever
//! rules its policy contains, because they would let it leave its cgroup, hide from
//! the hooks or stop the daemon.
//!
//! The kernel programs call these predicates at the hook and the host unit
//! tests call the same functions. Each denial is recorded with
//! `reason::PROTECTED`, and monitor mode does not turn it into an allow.
//! No policy rule can allow these actions yet.

/// `CLONE_NEWNS`: a new mount namespace.
pub const CLONE_NEWNS: u64 = 0x0002_0000;
/// `CLONE_NEWCGROUP`: a new cgroup namespace.
pub const CLONE_NEWCGROUP: u64 = 0x0200_0000;
/// `CLONE_NEWUSER`: a new user namespace.
pub const CLONE_NEWUSER: u64 = 0x1000_0000;
/// `CLONE_INTO_CGROUP` (`clone3` only): start the child in another cgroup.
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
/// `AF_PACKET`: raw link-layer sockets.
pub const AF_PACKET: i32 = 17;
/// `SOCK_RAW`: raw network-layer sockets.
pub const SOCK_RAW: i32 = 3;
/// Bits of a socket type that name the type. The other bits are flags such
/// as `SOCK_CLOEXEC`.
const SOCK_TYPE_MASK: i32 = 0xf;
/// `CGROUP2_SUPER_MAGIC`: `s_magic` of a cgroup v2 file system.
pub const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;
/// `PTRACE_MODE_ATTACH`: the access a debugger or a write to
/// `/proc/PID/mem` needs, as opposed to reading a process's status.
pub const PTRACE_MODE_ATTACH: u32 = 0x02;

/// Clone flags a labeled agent may not use: a child in another cgroup, or
/// new user, mount or cgroup namespaces, in which the agent's view of paths
/// and cgroups no longer matches its policy.
pub const PROTECTED_CLONE_FLAGS: u64 = CLONE_INTO_CGROUP | CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWCGROUP;

/// cgroup v2 interface files whose write moves, kills or freezes processes,
/// or hands controllers to child cgroups: a write to any of them could take
/// an agent out of its labeled cgroup or stop the daemon.
pub const CGROUP_CONTROL_FILES: [&[u8]; 5] =
    [b"cgroup.procs", b"cgroup.threads", b"cgroup.subtree_control", b"cgroup.kill", b"cgroup.freeze"];

/// `IPPROTO_IP`, `IP_OPTIONS`: IPv4 options, source routing among them.
pub const SOL_IP: i32 = 0;
pub const IP_OPTIONS: i32 = 4;
/// `IPPROTO_IPV6`, and its routing header options (current and RFC 2292,
/// whose `IPV6_2292PKTOPTIONS` can carry a routing header as well).
pub const SOL_IPV6: i32 = 41;
pub const IPV6_2292RTHDR: i32 = 5;
pub const IPV6_2292PKTOPTIONS: i32 = 6;
pub const IPV6_RTHDR: i32 = 57;

/// Returns whether `setsockopt(level, name)` is denied to a labeled caller:
/// IPv4 options and IPv6 routing headers send a packet to hops other than
/// the destination the connect and send rules judged.
#[inline(always)]
pub const fn socket_option_denied(level: i32, name: i32) -> bool {
    (level == SOL_IP && name == IP_OPTIONS)
        || (level == SOL_IPV6 && (name == IPV6_RTHDR || name == IPV6_2292RTHDR || name == IPV6_2292PKTOPTIONS))
}

/// `IP_RETOPTS`: IPv4 options for one message, as a control message of
/// `sendmsg`.
pub const IP_RETOPTS: i32 = 7;
/// Length of `struct cmsghdr` on 64-bit Linux: `cmsg_len` (8 bytes),
/// `cmsg_level` and `cmsg_type` (4 bytes each).
pub const CMSG_HEADER_LEN: u64 = 16;
/// Most control messages one `sendmsg` may carry for a labeled caller. The
/// kernel program reads each header; a message with more is denied.
pub const MAX_CONTROL_MESSAGES: u32 = 16;

/// Returns whether a control message of `level` and `kind` in a labeled
/// caller's `sendmsg` is denied: the per-message forms of the routing
/// options that `socket_option_denied` refuses, an IPv4 source route
/// (`IP_RETOPTS`) or an IPv6 routing header.
#[inline(always)]
pub const fn control_message_denied(level: i32, kind: i32) -> bool {
    (level == SOL_IP && kind == IP_RETOPTS) || (level == SOL_IPV6 && (kind == IPV6_RTHDR || kind == IPV6_2292RTHDR))
}

/// Returns the offset of the control message after one of `cmsg_len`
/// bytes at `offset` (`CMSG_ALIGN`, to 8 bytes).
#[inline(always)]
pub const fn next_control_message(offset: u64, cmsg_len: u64) -> u64 {
    offset.saturating_add(cmsg_len.saturating_add(7) & !7)
}

/// Returns whether a clone with `flags` is denied to a labeled caller.
#[inline(always)]
pub const fn clone_denied(flags: u64) -> bool {
    flags & PROTECTED_CLONE_FLAGS != 0
}

/// Returns whether `socket(family, type, ...)` is denied to a labeled
/// caller: packet sockets and raw sockets see and forge traffic that the
/// connect and send hooks never decide. Sockets the kernel creates for
/// itself (`kern` not 0) are not the caller's.
#[inline(always)]
pub const fn socket_denied(family: i32, socket_type: i32, kern: i32) -> bool {
    kern == 0 && (family == AF_PACKET || socket_type & SOCK_TYPE_MASK == SOCK_RAW)
}

/// Returns whether the resolved path of `len` bytes names a cgroup control
/// file, by its last component. `byte_at(i)` returns byte `i` of the path,
/// for `i < len`. The caller checks the file system's magic as well,
/// because a regular file may carry the same name.
#[inline(always)]
pub fn is_cgroup_control_file(len: usize, byte_at: impl Fn(usize) -> u8) -> bool {
    let mut n = 0;
    while n < CGROUP_CONTROL_FILES.len() {
        if ends_with_component(len, &byte_at, CGROUP_CONTROL_FILES[n]) {
            return true;
        }
        n += 1;
    }
    false
}

/// Returns whether the path ends with `/` followed by `name`.
#[inline(always)]
fn ends_with_component(len: usize, byte_at: &impl Fn(usize) -> u8, name: &[u8]) -> bool {
    if len < name.len() + 1 {
        return false;
    }
    let start = len - name.len();
    if byte_at(start - 1) != b'/' {
        return false;
    }
    let mut i = 0;
    while i < name.len() {
        if byte_at(start + i) != name[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_routing_options_denied() {
        assert!(socket_option_denied(SOL_IP, IP_OPTIONS));
        assert!(socket_option_denied(SOL_IPV6, IPV6_RTHDR));
        assert!(socket_option_denied(SOL_IPV6, IPV6_2292RTHDR));
        assert!(socket_option_denied(SOL_IPV6, IPV6_2292PKTOPTIONS));
        // IP_TTL and IPV6_V6ONLY route nothing.
        assert!(!socket_option_denied(SOL_IP, 2));
        assert!(!socket_option_denied(SOL_IPV6, 26));
        // IP_OPTIONS's number at another level is another option.
        assert!(!socket_option_denied(6, IP_OPTIONS));
    }

    #[test]
    fn routing_control_messages_denied() {
        assert!(control_message_denied(SOL_IP, IP_RETOPTS));
        assert!(control_message_denied(SOL_IPV6, IPV6_RTHDR));
        assert!(control_message_denied(SOL_IPV6, IPV6_2292RTHDR));
        // IP_TTL, IP_PKTINFO, IPV6_HOPLIMIT and SCM_RIGHTS route nothing.
        assert!(!control_message_denied(SOL_IP, 2));
        assert!(!control_message_denied(SOL_IP, 8));
        assert!(!control_message_denied(SOL_IPV6, 52));
        assert!(!control_message_denied(1, 1));
    }

    #[test]
    fn control_messages_are_aligned() {
        assert_eq!(next_control_message(0, 20), 24);
        assert_eq!(next_control_message(24, 16), 40);
        assert_eq!(next_control_message(0, u64::MAX), u64::MAX - 7);
    }

    fn control(path: &[u8]) -> bool {
        is_cgroup_control_file(path.len(), |i| path[i])
    }

    #[test]
    fn clone_flags_denied() {
        assert!(clone_denied(CLONE_INTO_CGROUP));
        assert!(clone_denied(CLONE_NEWUSER | 0x11));
        assert!(clone_denied(CLONE_NEWNS));
        assert!(clone_denied(CLONE_NEWCGROUP));
    }

    #[test]
    fn plain_fork_and_thread_allowed() {
        // SIGCHLD for fork, and the flags glibc passes for a new thread.
        assert!(!clone_denied(17));
        assert!(!clone_denied(0x003d_0f00));
    }

    #[test]
    fn raw_and_packet_sockets_denied() {
        assert!(socket_denied(AF_PACKET, SOCK_RAW, 0));
        assert!(socket_denied(AF_PACKET, 2, 0));
        assert!(socket_denied(2, SOCK_RAW, 0));
        // SOCK_RAW | SOCK_CLOEXEC
        assert!(socket_denied(10, SOCK_RAW | 0o2_000_000, 0));
    }

    #[test]
    fn ordinary_and_kernel_sockets_allowed() {
        assert!(!socket_denied(2, 1, 0));
        assert!(!socket_denied(1, 2, 0));
        assert!(!socket_denied(AF_PACKET, SOCK_RAW, 1));
    }

    #[test]
    fn control_files_matched() {
        assert!(control(b"/sys/fs/cgroup/cgroup.procs"));
        assert!(control(b"/sys/fs/cgroup/lupid/a-1/cgroup.threads"));
        assert!(control(b"/x/cgroup.subtree_control"));
        assert!(control(b"/x/cgroup.kill"));
        assert!(control(b"/x/cgroup.freeze"));
    }

    #[test]
    fn other_files_not_matched() {
        assert!(!control(b"/sys/fs/cgroup/memory.max"));
        assert!(!control(b"/x/mycgroup.procs"));
        assert!(!control(b"/x/cgroup.procs.bak"));
        assert!(!control(b"cgroup.procs"));
        assert!(!control(b""));
    }
}
