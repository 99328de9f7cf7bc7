//! Leases at the hook: a `LEASED` rule points at a `LEASES` slot, and the
//! slot's deadline and use limit decide.

use aya_ebpf::helpers::generated::bpf_ktime_get_boot_ns;
use lupid_common::{decide::Decision, reason, verdict};

use crate::maps::{LEASES, count_use};

/// Decides an action that a `LEASED` rule matched. The action is allowed
/// while the lease in `slot` has not expired on the boot-time clock and has
/// uses left. Otherwise, and when the slot lookup fails, it is denied with
/// reason `lease_required`, which opens a lease request again.
#[inline(always)]
pub(crate) fn settle(slot: u32) -> Decision {
    let Some(state) = LEASES.get_ptr_mut(slot) else {
        return Decision { verdict: verdict::DENY, rule_id: 0, reason: reason::LEASE_REQUIRED, lease_id: 0 };
    };
    // SAFETY: the pointer comes from a successful array lookup and stays
    // valid until the program returns. The daemon may rewrite the slot at
    // any time, so every field is read once, with a volatile read.
    let (expires, max_uses, lease_id, rule_id) = unsafe {
        (
            core::ptr::read_volatile(&raw const (*state).expires_boot_ns),
            core::ptr::read_volatile(&raw const (*state).max_uses),
            core::ptr::read_volatile(&raw const (*state).lease_id),
            core::ptr::read_volatile(&raw const (*state).rule_id),
        )
    };
    let ended = Decision { verdict: verdict::DENY, rule_id, reason: reason::LEASE_REQUIRED, lease_id: 0 };
    // SAFETY: the helper has no preconditions.
    if unsafe { bpf_ktime_get_boot_ns() } >= expires {
        return ended;
    }
    // SAFETY: `state` points into a live `LEASES` slot, as above.
    let used = unsafe { count_use(&raw mut (*state).uses) };
    if max_uses != 0 && used >= max_uses {
        return ended;
    }
    Decision { verdict: verdict::ALLOW, rule_id, reason: reason::LEASE, lease_id }
}
