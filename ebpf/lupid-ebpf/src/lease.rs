//! Leases at the hook: a `LEASED` rule slot points at a `LEASES` slot,
//! whose expiry and use limit decide.

use aya_ebpf::helpers::generated::bpf_ktime_get_boot_ns;
use lupid_common::{decide::Decision, reason, verdict};

use crate::maps::{LEASES, count_use};

/// Settles a decision that a lease slot produced: allowed while the lease
/// has not expired on the boot-time clock and has uses left, otherwise a
/// denial that asks for a lease again.
#[inline(always)]
pub(crate) fn settle(slot: u32) -> Decision {
    let Some(state) = LEASES.get_ptr_mut(slot) else {
        return Decision { verdict: verdict::DENY, rule_id: 0, reason: reason::LEASE_REQUIRED, lease_id: 0 };
    };
    // SAFETY: the pointer comes from a successful array lookup and stays
    // valid until the program returns; the daemon may rewrite the slot at
    // any time, so every field is read once, volatile.
    let (expires, max_uses, lease_id, rule_id) = unsafe {
        (
            core::ptr::read_volatile(&raw const (*state).expires_boot_ns),
            core::ptr::read_volatile(&raw const (*state).max_uses),
            core::ptr::read_volatile(&raw const (*state).lease_id),
            core::ptr::read_volatile(&raw const (*state).rule_id),
        )
    };
    let expired = Decision { verdict: verdict::DENY, rule_id, reason: reason::LEASE_REQUIRED, lease_id: 0 };
    // SAFETY: the helper has no preconditions.
    if unsafe { bpf_ktime_get_boot_ns() } >= expires {
        return expired;
    }
    // SAFETY: `state` points into a live `LEASES` slot, as above.
    let used = unsafe { count_use(&raw mut (*state).uses) };
    if max_uses != 0 && used >= max_uses {
        return expired;
    }
    Decision { verdict: verdict::ALLOW, rule_id, reason: reason::LEASE, lease_id }
}
