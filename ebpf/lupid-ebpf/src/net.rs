//! Connect: read the destination the kernel copied in, canonicalize it to
//! an IPv6 address (IPv4 as `::ffff:a.b.c.d`), match the agent's network
//! rules for the socket's protocol, decide.
//!
//! A Unix socket's connect and sends pass here. The hooks in `unix` decide
//! them later, on the socket the kernel found for the name.
//!
//! A send may carry its own route in a control message (an IPv4 source
//! route, an IPv6 routing header), which would take the packet to a first
//! hop the rules never judged. Such a send is denied to a labeled caller,
//! on connected sockets too, as are the socket options of the same effect
//! (`protect::check_setsockopt`).

use aya_ebpf::{helpers::bpf_probe_read_kernel, maps::lpm_trie::Key, programs::LsmContext};
use lupid_common::{
    KernelOffsets, NetKey,
    decide::{Decision, decide_connect},
    error, family, hook,
    protect::{CMSG_HEADER_LEN, MAX_CONTROL_MESSAGES, control_message_denied, next_control_message},
    reason,
};

use crate::{
    lease,
    gate::{self, DENIED, Entry},
    maps::{NET_RULES, count_error, kernel_offsets},
};

/// Length of `struct sockaddr_in`.
const SOCKADDR_IN_LEN: i32 = 16;
/// Length of `struct sockaddr_in6`.
const SOCKADDR_IN6_LEN: i32 = 28;
/// Prefix length of a full lookup key: the policy id and 128 address bits.
const FULL_PREFIX: u32 = 32 + 128;

pub(crate) fn check_connect(ctx: &LsmContext) -> i32 {
    let Some((cgroup_id, agent)) = gate::caller_agent() else {
        return 0;
    };
    let socket: *const u8 = ctx.arg(0);
    let address: *const u8 = ctx.arg(1);
    let address_len: i32 = ctx.arg(2);
    if is_unix(socket, address, address_len) {
        return 0;
    }
    check_destination(gate::enter_labeled(hook::CONNECT, cgroup_id, agent), socket, address, address_len)
}

pub(crate) fn check_sendmsg(ctx: &LsmContext) -> i32 {
    // Every write on a socket passes this hook, so unlabeled callers and
    // sends without a destination leave before an event is reserved.
    let Some((cgroup_id, agent)) = gate::caller_agent() else {
        return 0;
    };
    let offsets = kernel_offsets();
    let socket: *const u8 = ctx.arg(0);
    let message: *const u8 = ctx.arg(1);
    match control_of(message, offsets) {
        Control::Plain => {}
        Control::Route => return deny_send(cgroup_id, agent, Decision::protected()),
        Control::Unreadable => {
            count_error(error::READ_FAILED);
            return deny_send(cgroup_id, agent, Decision::fail_closed(reason::READ_FAILED));
        }
    }
    // SAFETY: `message` is the hook's BTF-typed `struct msghdr *` and both
    // offsets come from the running kernel's BTF; the verifier checks the
    // loads against that BTF.
    let (address, address_len) = unsafe {
        let name = core::ptr::read_volatile(message.add(offsets.msghdr_msg_name as usize).cast::<*const u8>());
        let name_len = core::ptr::read_volatile(message.add(offsets.msghdr_msg_namelen as usize).cast::<i32>());
        (name, name_len)
    };
    if address.is_null() || is_unix(socket, address, address_len) {
        return 0;
    }
    check_destination(gate::enter_labeled(hook::SEND, cgroup_id, agent), socket, address, address_len)
}

/// The effect of the control messages of a send.
enum Control {
    /// None, or none that routes.
    Plain,
    /// A route of its own for this message.
    Route,
    /// A header that could not be read, or more than
    /// `MAX_CONTROL_MESSAGES` messages.
    Unreadable,
}

/// Reads the control message headers of the `struct msghdr *` `message`.
/// The kernel has copied them into its own memory before this hook runs
/// (`____sys_sendmsg`, io_uring's `sendmsg` alike), so a user pointer here
/// fails to read, and denies. A header the kernel would reject as
/// malformed ends the scan: the kernel then fails the send itself.
fn control_of(message: *const u8, offsets: &KernelOffsets) -> Control {
    // SAFETY: the helper checks kernel addresses and faults safely; the
    // offsets come from the running kernel's BTF.
    let (control, len) = unsafe {
        let control = bpf_probe_read_kernel::<u64>(message.add(offsets.msghdr_msg_control as usize).cast());
        let len = bpf_probe_read_kernel::<u64>(message.add(offsets.msghdr_msg_controllen as usize).cast());
        match (control, len) {
            (_, Ok(0)) => return Control::Plain,
            (Ok(control), Ok(len)) if control != 0 => (control, len),
            _ => return Control::Unreadable,
        }
    };
    let mut offset = 0u64;
    let mut i = 0;
    while i < MAX_CONTROL_MESSAGES {
        if offset.saturating_add(CMSG_HEADER_LEN) > len {
            return Control::Plain;
        }
        // SAFETY: as above; `cmsghdr` is a fixed UAPI layout: `cmsg_len`
        // (u64), then `cmsg_level` and `cmsg_type` (i32 each).
        let Ok(header) = (unsafe { bpf_probe_read_kernel::<[u64; 2]>((control + offset) as *const [u64; 2]) }) else {
            return Control::Unreadable;
        };
        let cmsg_len = header[0];
        if cmsg_len < CMSG_HEADER_LEN || cmsg_len > len - offset {
            return Control::Plain;
        }
        if control_message_denied(header[1] as u32 as i32, (header[1] >> 32) as u32 as i32) {
            return Control::Route;
        }
        offset = next_control_message(offset, cmsg_len);
        i += 1;
    }
    if offset.saturating_add(CMSG_HEADER_LEN) > len { Control::Plain } else { Control::Unreadable }
}

/// Records and denies a send of a labeled caller for its control
/// messages.
fn deny_send(cgroup_id: u64, agent: lupid_common::AgentInfo, decision: Decision) -> i32 {
    match gate::enter_labeled(hook::SEND, cgroup_id, agent) {
        Entry::Labeled { event, agent } => gate::finish(event, &agent, decision),
        Entry::Unlabeled | Entry::Refused => DENIED,
    }
}

/// Returns whether both the socket and the address are `AF_UNIX`, so the
/// `unix` hooks decide. Anything unreadable is not Unix, and goes on to be
/// denied by `check_destination`.
fn is_unix(socket: *const u8, address: *const u8, address_len: i32) -> bool {
    if address_len < 2 {
        return false;
    }
    // SAFETY: the helper checks the kernel address and faults safely.
    let address_family = unsafe { bpf_probe_read_kernel(address.cast::<u16>()) };
    address_family == Ok(family::UNIX) && socket_fields(socket).is_some_and(|(family, _)| family == family::UNIX)
}

/// Reads the address family and the IP protocol of the `struct socket *`
/// `socket`, through its `struct sock`.
fn socket_fields(socket: *const u8) -> Option<(u16, u16)> {
    let offsets = kernel_offsets();
    // SAFETY: the helper checks kernel addresses and faults safely; the
    // offsets come from the running kernel's BTF.
    unsafe {
        let sock: *const u8 = bpf_probe_read_kernel(socket.add(offsets.socket_sk as usize).cast()).ok()?;
        if sock.is_null() {
            return None;
        }
        let family: u16 = bpf_probe_read_kernel(sock.add(offsets.sock_family as usize).cast()).ok()?;
        let protocol: u16 = bpf_probe_read_kernel(sock.add(offsets.sock_sk_protocol as usize).cast()).ok()?;
        Some((family, protocol))
    }
}

/// Decides an action of `socket` on a destination address the kernel
/// copied in, for the caller `entry` describes.
fn check_destination(entry: Entry, socket: *const u8, address: *const u8, address_len: i32) -> i32 {
    let (mut event, agent) = match entry {
        Entry::Unlabeled => return 0,
        Entry::Refused => return DENIED,
        Entry::Labeled { event, agent } => (event, agent),
    };
    let out = event.as_mut_ptr();

    let decision = match read_destination(address, address_len) {
        Ok((family, addr, port)) => {
            // SAFETY: `out` is the reserved event, see `gate::enter`.
            unsafe {
                (&raw mut (*out).family).write(family);
                (&raw mut (*out).addr).write(addr);
                (&raw mut (*out).port).write(port);
            }
            match socket_fields(socket) {
                Some((_, protocol)) => {
                    // SAFETY: as above.
                    unsafe { (&raw mut (*out).protocol).write(protocol) };
                    let key = Key::new(FULL_PREFIX, NetKey { policy_id_be: agent.policy_id.to_be_bytes(), addr });
                    decide_connect(NET_RULES.get(&key), port, protocol, agent.default_verdict, lease::settle)
                }
                None => {
                    count_error(error::READ_FAILED);
                    Decision::fail_closed(reason::READ_FAILED)
                }
            }
        }
        Err((family, denial)) => {
            // SAFETY: as above.
            unsafe { (&raw mut (*out).family).write(family) };
            denial
        }
    };
    gate::finish(event, &agent, decision)
}

/// Returns the family, the canonical address and the port in host order.
/// An unreadable address, one too short for its family, or a family other
/// than IPv4 and IPv6 is a denial.
fn read_destination(address: *const u8, address_len: i32) -> Result<(u16, [u8; 16], u16), (u16, Decision)> {
    let unreadable = |family| {
        count_error(error::READ_FAILED);
        (family, Decision::fail_closed(reason::READ_FAILED))
    };
    if address_len < 2 {
        return Err(unreadable(0));
    }
    // SAFETY: the helper checks the kernel address and faults safely.
    let family: u16 = unsafe { bpf_probe_read_kernel(address.cast::<u16>()) }.map_err(|_| unreadable(0))?;
    match family {
        family::INET => {
            if address_len < SOCKADDR_IN_LEN {
                return Err(unreadable(family));
            }
            // SAFETY: as above; `sockaddr_in` is a fixed UAPI layout.
            let raw: [u8; 8] = unsafe { bpf_probe_read_kernel(address.cast::<[u8; 8]>()) }.map_err(|_| unreadable(family))?;
            let mut addr = [0u8; 16];
            addr[10] = 0xff;
            addr[11] = 0xff;
            addr[12..16].copy_from_slice(&raw[4..8]);
            Ok((family, addr, u16::from_be_bytes([raw[2], raw[3]])))
        }
        family::INET6 => {
            if address_len < SOCKADDR_IN6_LEN {
                return Err(unreadable(family));
            }
            // SAFETY: as above; `sockaddr_in6` is a fixed UAPI layout.
            let raw: [u8; 24] = unsafe { bpf_probe_read_kernel(address.cast::<[u8; 24]>()) }.map_err(|_| unreadable(family))?;
            let mut addr = [0u8; 16];
            addr.copy_from_slice(&raw[8..24]);
            Ok((family, addr, u16::from_be_bytes([raw[2], raw[3]])))
        }
        other => {
            count_error(error::UNKNOWN_FAMILY);
            Err((other, Decision::fail_closed(reason::UNKNOWN_FAMILY)))
        }
    }
}
