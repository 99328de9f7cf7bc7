//! Host models of the kernel's rule lookups: unit tests check the compiler
//! with them, and the daemon uses them to check that a lease would satisfy
//! a lease-required rule before it grants one.
//!
//! They read only a [`CompiledPolicy`], the data the daemon writes into the
//! maps, and call the same `lupid_common::decide` functions as the kernel
//! programs, so a test that passes here checks both the compiler and the
//! precedence rules.

use std::collections::HashMap;
use std::net::IpAddr;

use lupid_common::decide::{self, Decision, OpenSlots};
use lupid_common::{NetRule, PathRule, RULE_PATH_MAX, RuleSlot, access};

use super::CompiledPolicy;

/// A hook that decides on a resolved path or a Unix socket name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathHook {
    Exec,
    /// Only the unit tests decide whole opens: the daemon checks an open
    /// lease one access slot at a time ([`open_slots`]).
    #[cfg_attr(not(test), expect(dead_code))]
    Open,
    /// A connect or datagram send to a Unix socket. The path is the peer's
    /// bound name (`@NAME` for an abstract socket).
    UnixConnect,
}

/// Decides an exec or an open of the resolved path `path`, or a connect to
/// the Unix socket named `path`, as the kernel program does.
///
/// The scan looks up the root `/` when `path` starts with `/`, then every
/// prefix of `path` that ends just before a `/`, then the whole path, each
/// zero-padded to a map key. Prefixes longer than `RULE_PATH_MAX` bytes are
/// not looked up. Each slot found is folded with `decide::fold_slot`, so
/// the deepest match wins and an exact rule counts only at the end of the
/// path. `access` takes `lupid_common::access` bits and is ignored for exec
/// and Unix connects.
#[cfg(test)]
pub(crate) fn decide_path_reference(compiled: &CompiledPolicy, hook: PathHook, path: &[u8], access: u32) -> Decision {
    decide_path_with(compiled, hook, path, access, None, unleased)
}

/// Settles a lease slot as a kernel with no valid lease would.
pub(crate) fn unleased(_slot: u32) -> Decision {
    Decision::fail_closed(lupid_common::reason::LEASE_REQUIRED)
}

/// Like [`decide_path_reference`], with the binary's content digest for an
/// exec and a model of the `LEASES` map.
pub(crate) fn decide_path_with(
    compiled: &CompiledPolicy,
    hook: PathHook,
    path: &[u8],
    access: u32,
    content: Option<&[u8; 32]>,
    lease: impl Fn(u32) -> Decision,
) -> Decision {
    let best = best_slots(compiled, path);
    let content_slot = content
        .and_then(|digest| compiled.content_rules.iter().find(|(key, _)| key.sha256 == *digest).map(|(_, slot)| slot));
    match hook {
        PathHook::Exec => decide::decide_exec(content_slot, &best.exec, compiled.default_verdict, lease),
        PathHook::Open => {
            let slots = OpenSlots { read: best.read, write: best.write, create: best.create };
            decide::decide_open(access, &slots, compiled.default_verdict, lease)
        }
        PathHook::UnixConnect => decide::decide_unix(&best.connect, compiled.default_verdict, lease),
    }
}

/// Decides a rename of `old` to `new`, as the kernel program does. `folder`
/// is set when `old` is a directory.
#[cfg(test)]
pub(crate) fn decide_rename_reference(compiled: &CompiledPolicy, old: &[u8], new: &[u8], folder: bool) -> Decision {
    use lupid_common::{decide::NameSlots, path_flags};

    let names = |path: &[u8]| {
        let best = best_slots(compiled, path);
        NameSlots {
            exec: best.exec,
            open: OpenSlots { read: best.read, write: best.write, create: best.create },
            rules_below: best.flags & path_flags::RULES_BELOW != 0,
        }
    };
    decide::decide_rename(&names(old), &names(new), folder, compiled.default_verdict, unleased)
}

/// Returns the best read, write and create slots for an open of `path`,
/// before `decide_open` uses the write slot in place of a missing create
/// slot.
pub(crate) fn open_slots(compiled: &CompiledPolicy, path: &[u8]) -> OpenSlots {
    let best = best_slots(compiled, path);
    OpenSlots { read: best.read, write: best.write, create: best.create }
}

/// Returns the slot that decides a create in `slots`, as `decide_open`
/// chooses it.
pub(crate) fn create_slot(slots: &OpenSlots) -> RuleSlot {
    *slots.create_or_write()
}

/// Decides one rule slot by itself, with no valid lease, as an open for
/// reading is decided by its read slot alone. The kernel never decides an
/// access alone, but a lease on one access fills only that access's slot,
/// so the daemon checks each one apart.
pub(crate) fn decide_slot(compiled: &CompiledPolicy, slot: RuleSlot) -> Decision {
    let slots = OpenSlots { read: slot, ..OpenSlots::default() };
    decide::decide_open(access::READ, &slots, compiled.default_verdict, unleased)
}

/// Returns the best slot per access for `path`, scanned as the kernel
/// program scans it (see [`decide_path_with`]), with the flags of the
/// entry of the whole path.
fn best_slots(compiled: &CompiledPolicy, path: &[u8]) -> PathRule {
    let table: HashMap<(u32, [u8; RULE_PATH_MAX]), PathRule> =
        compiled.path_rules.iter().map(|(key, rule)| ((key.policy_id, key.path), *rule)).collect();
    let lookup = |prefix: &[u8]| {
        let mut key = [0; RULE_PATH_MAX];
        key[..prefix.len()].copy_from_slice(prefix);
        table.get(&(compiled.policy_id, key))
    };

    let mut best = PathRule::default();
    let mut flags = 0;
    let mut fold = |found: Option<&PathRule>, at_end: bool| {
        if let Some(found) = found {
            decide::fold_slot(&mut best.exec, &found.exec, at_end);
            decide::fold_slot(&mut best.read, &found.read, at_end);
            decide::fold_slot(&mut best.write, &found.write, at_end);
            decide::fold_slot(&mut best.create, &found.create, at_end);
            decide::fold_slot(&mut best.connect, &found.connect, at_end);
        }
    };
    // An abstract socket name (`@NAME`) has no root to look up.
    if path.first() == Some(&b'/') {
        fold(lookup(b"/"), false);
    }
    for end in 1..=path.len().min(RULE_PATH_MAX) {
        if end == path.len() {
            let whole = lookup(path);
            fold(whole, true);
            flags = whole.map_or(0, |rule| rule.flags);
        } else if path[end] == b'/' {
            fold(lookup(&path[..end]), false);
        }
    }
    best.flags = flags;
    best
}

/// Decides a connect to `addr`:`port` on a socket of IP protocol
/// `protocol` (`IPPROTO_*`), as the kernel program does: IPv4 is mapped to
/// `::ffff:a.b.c.d`, then the longest matching prefix of the policy's trie
/// entries decides.
pub(crate) fn decide_connect_reference(compiled: &CompiledPolicy, addr: IpAddr, port: u16, protocol: u16) -> Decision {
    decide_connect_with(compiled, addr, port, protocol, unleased)
}

/// Like [`decide_connect_reference`], with a model of the `LEASES` map.
pub(crate) fn decide_connect_with(
    compiled: &CompiledPolicy,
    addr: IpAddr,
    port: u16,
    protocol: u16,
    lease: impl Fn(u32) -> Decision,
) -> Decision {
    let v6 = match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let mut lookup_key = [0u8; 20];
    lookup_key[..4].copy_from_slice(&compiled.policy_id.to_be_bytes());
    lookup_key[4..].copy_from_slice(&v6.octets());

    let mut longest: Option<(u32, &NetRule)> = None;
    for (prefix_len, key, rule) in &compiled.net_rules {
        let mut entry_key = [0u8; 20];
        entry_key[..4].copy_from_slice(&key.policy_id_be);
        entry_key[4..].copy_from_slice(&key.addr);
        let longer = longest.is_none_or(|(best_len, _)| *prefix_len > best_len);
        if longer && prefix_matches(&entry_key, &lookup_key, *prefix_len) {
            longest = Some((*prefix_len, rule));
        }
    }
    decide::decide_connect(longest.map(|(_, rule)| rule), port, protocol, compiled.default_verdict, lease)
}

/// Returns whether the first `bits` bits of `a` and `b` are equal.
fn prefix_matches(a: &[u8; 20], b: &[u8; 20], bits: u32) -> bool {
    a.iter().zip(b).enumerate().all(|(index, (x, y))| {
        let start = u32::try_from(index).unwrap_or(u32::MAX).saturating_mul(8);
        let used = bits.saturating_sub(start).min(8);
        let mask = if used == 0 { 0 } else { 0xffu8 << (8 - used) };
        x & mask == y & mask
    })
}
