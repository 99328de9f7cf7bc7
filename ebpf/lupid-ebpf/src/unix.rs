//! Unix sockets: decide a connect or a datagram send on the socket the
//! kernel found for the name, by the name that socket is bound to.
//!
//! The name in the caller's `sockaddr_un` is only a spelling: a symlink, a
//! relative path or `/proc/self/root` can reach any socket. The hooks here
//! run after the kernel resolved it, and read the peer's bound name
//! (`unix_sock->addr`), which the server chose at `bind` time. A pathname
//! socket is matched by its absolute bound path, an abstract one by `@`
//! and its name, against the `connect` slots of the path rules.

use aya_ebpf::{
    helpers::{bpf_probe_read_kernel, generated::bpf_probe_read_kernel as probe_read_raw},
    programs::LsmContext,
};
use lupid_common::{
    Event, KernelOffsets,
    decide::{Decision, decide_unix},
    error, family, hook, reason,
};

use crate::{
    gate::{self, DENIED, Entry},
    lease,
    maps::{count_error, kernel_offsets},
    path::{path_of, scan, slots},
};

/// Length of `sockaddr_un::sun_path`.
const SUN_PATH_LEN: usize = 108;
/// Length of `sockaddr_un::sun_family`.
const SUN_FAMILY_LEN: i32 = 2;

/// `unix_stream_connect(struct sock *sock, struct sock *other, struct sock
/// *newsk)`: a stream or seqpacket connect to the listening socket `other`.
pub(crate) fn check_stream_connect(ctx: &LsmContext) -> i32 {
    let peer: *const u8 = ctx.arg(1);
    check_peer(gate::enter(hook::CONNECT), peer)
}

/// `unix_may_send(struct socket *sock, struct socket *other)`: a datagram
/// connect, or a send to `other`. A send to the peer the socket is already
/// connected to was decided by that connect and passes without a record,
/// as a send on a connected IP socket does.
pub(crate) fn check_may_send(ctx: &LsmContext) -> i32 {
    let Some((cgroup_id, agent)) = gate::caller_agent() else {
        return 0;
    };
    let offsets = kernel_offsets();
    let socket: *const u8 = ctx.arg(0);
    let other: *const u8 = ctx.arg(1);
    let (Some(sock), Some(peer)) = (sock_of(socket, offsets), sock_of(other, offsets)) else {
        return fail_unread(gate::enter_labeled(hook::CONNECT, cgroup_id, agent));
    };
    // SAFETY: the helper checks the kernel address and faults safely; the
    // offset comes from the running kernel's BTF.
    let connected: Result<*const u8, _> =
        unsafe { bpf_probe_read_kernel(sock.add(offsets.unix_sock_peer as usize).cast()) };
    match connected {
        Ok(connected) if connected == peer => 0,
        Ok(_) => check_peer(gate::enter_labeled(hook::CONNECT, cgroup_id, agent), peer),
        Err(_) => fail_unread(gate::enter_labeled(hook::CONNECT, cgroup_id, agent)),
    }
}

/// Decides the connect or send of the caller `entry` describes to the
/// socket `peer` (a `struct sock *`, which starts a `struct unix_sock`).
fn check_peer(entry: Entry, peer: *const u8) -> i32 {
    let (mut event, agent) = match entry {
        Entry::Unlabeled => return 0,
        Entry::Refused => return DENIED,
        Entry::Labeled { event, agent } => (event, agent),
    };
    let out = event.as_mut_ptr();
    // SAFETY: `out` is the reserved event, see `gate::enter`.
    unsafe { (&raw mut (*out).family).write(family::UNIX) };
    let decision = match read_name(out, peer) {
        Ok(()) => {
            // The length is read back from the event, so the verifier
            // tracks one unknown length below `PATH_MAX` instead of walking
            // the scan once for every length `read_name` can return.
            // SAFETY: `out` is the reserved event.
            let len = unsafe { core::ptr::read_volatile(&raw const (*out).path_len) } as usize;
            let found = scan::<{ slots::UNIX }>(path_of(out), agent.policy_id, len);
            decide_unix(&found.connect, agent.default_verdict, lease::settle)
        }
        Err(denial) => denial,
    };
    gate::finish(event, &agent, decision)
}

/// Writes the bound name of `peer` into the event's path, `@` in place of
/// the leading NUL of an abstract name, and its length into `path_len`. A
/// name that no rule can describe is a denial, with its bytes kept in the
/// event: an unbound peer, a relative path (its directory is unknown), and
/// an abstract name that contains a NUL.
fn read_name(out: *mut Event, peer: *const u8) -> Result<(), Decision> {
    let offsets = kernel_offsets();
    let (address, size) = bound_address(peer, offsets)?;
    // The mask repeats the bound for the verifier, which may not carry it
    // through the return of `bound_address`.
    let size = size & 0x7f;

    // SAFETY: `out` is the reserved event, and its `path` is longer than
    // `SUN_PATH_LEN` bytes.
    let path = unsafe { (&raw mut (*out).path).cast::<u8>() };
    // SAFETY: `size` is at most `SUN_PATH_LEN`, within the event's path. The
    // source is the bound `sockaddr_un` past its family.
    let read = unsafe {
        let name = address.add(offsets.unix_address_name as usize + SUN_FAMILY_LEN as usize);
        probe_read_raw(path.cast(), size, name.cast())
    };
    if read != 0 {
        return Err(unread());
    }

    let size = size as usize;
    // SAFETY: the index is below `size`, inside the bytes just read.
    let abstract_name = unsafe { path.read() } == 0;
    let len = if abstract_name { size } else { nul_at(path, size) };
    // SAFETY: as above.
    unsafe { (&raw mut (*out).path_len).write(len as u32) };
    if abstract_name {
        // SAFETY: as above.
        unsafe { path.write(b'@') };
        if nul_at(path, size) != size {
            return Err(unresolved());
        }
        return Ok(());
    }
    // SAFETY: as above.
    if unsafe { path.read() } != b'/' {
        return Err(unresolved());
    }
    Ok(())
}

/// Returns the bound `struct unix_address` of `peer` and the length of its
/// `sun_path` bytes, at most `SUN_PATH_LEN`. An unbound peer, or a length
/// out of range, is unresolved.
fn bound_address(peer: *const u8, offsets: &KernelOffsets) -> Result<(*const u8, u32), Decision> {
    // SAFETY: the helper checks kernel addresses and faults safely. The
    // offsets come from the running kernel's BTF.
    let (address, address_len) = unsafe {
        let address: *const u8 = bpf_probe_read_kernel(peer.add(offsets.unix_sock_addr as usize).cast())
            .map_err(|_| unread())?;
        if address.is_null() {
            return Err(unresolved());
        }
        let address_len: i32 =
            bpf_probe_read_kernel(address.add(offsets.unix_address_len as usize).cast()).map_err(|_| unread())?;
        (address, address_len)
    };
    let raw_len = address_len - SUN_FAMILY_LEN;
    if raw_len <= 0 || raw_len > SUN_PATH_LEN as i32 {
        return Err(unresolved());
    }
    Ok((address, (raw_len as u32) & 0x7f))
}

/// Returns the index of the first NUL among the first `size` bytes of
/// `path`, or `size`.
fn nul_at(path: *const u8, size: usize) -> usize {
    let mut i = 0;
    while i < SUN_PATH_LEN && i < size {
        // SAFETY: `i` is below `size`, which the caller read into `path`.
        if unsafe { path.add(i).read() } == 0 {
            return i;
        }
        i += 1;
    }
    size
}

/// Reads `socket->sk`, a `struct sock *`, which starts a `struct unix_sock`
/// for a Unix socket.
fn sock_of(socket: *const u8, offsets: &KernelOffsets) -> Option<*const u8> {
    // SAFETY: the helper checks the kernel address and faults safely.
    let sock: *const u8 = unsafe { bpf_probe_read_kernel(socket.add(offsets.socket_sk as usize).cast()) }.ok()?;
    (!sock.is_null()).then_some(sock)
}

fn unread() -> Decision {
    count_error(error::READ_FAILED);
    Decision::fail_closed(reason::READ_FAILED)
}

fn unresolved() -> Decision {
    count_error(error::PATH_UNRESOLVED);
    Decision::fail_closed(reason::PATH_UNRESOLVED)
}

/// Denies the send of the caller `entry` describes, whose sockets could not
/// be read, with a record.
fn fail_unread(entry: Entry) -> i32 {
    match entry {
        Entry::Unlabeled => 0,
        Entry::Refused => DENIED,
        Entry::Labeled { mut event, agent } => {
            let out = event.as_mut_ptr();
            // SAFETY: `out` is the reserved event.
            unsafe { (&raw mut (*out).family).write(family::UNIX) };
            gate::finish(event, &agent, unread())
        }
    }
}
