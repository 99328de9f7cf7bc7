//! The decision rules, in one place.
//!
//! The kernel programs call these functions at the hook, and the host unit
//! tests call the same functions, so both sides agree on precedence:
//! the most specific rule wins (the deepest path boundary, the longest
//! network prefix, then the narrowest port range), and an open that asks
//! for several kinds of access is allowed only when every one of them is.

use crate::{NetRule, RuleSlot, reason, verdict};

/// A verdict with the rule that produced it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub verdict: u32,
    /// 0 when the agent's default verdict applied.
    pub rule_id: u32,
    pub reason: u32,
}

impl Decision {
    /// A denial caused by an internal failure, not by a rule.
    pub const fn fail_closed(reason: u32) -> Self {
        Self { verdict: verdict::DENY, rule_id: 0, reason }
    }

    const fn from_default(default_verdict: u32) -> Self {
        // Anything but an explicit allow is treated as deny, so a corrupt
        // default can never open the gate.
        let verdict = if default_verdict == verdict::ALLOW { verdict::ALLOW } else { verdict::DENY };
        Self { verdict, rule_id: 0, reason: reason::DEFAULT }
    }

    const fn from_slot(slot: &RuleSlot, default_verdict: u32) -> Self {
        if slot.verdict == verdict::NONE as u16 {
            return Self::from_default(default_verdict);
        }
        let verdict = if slot.verdict == verdict::ALLOW as u16 { verdict::ALLOW } else { verdict::DENY };
        Self { verdict, rule_id: slot.rule_id, reason: reason::RULE }
    }
}

/// Folds the slot found at one path boundary into the best match so far.
///
/// The scan runs from the root down, so a later match is more specific and
/// replaces an earlier one. An exact rule applies only when the boundary is
/// the end of the path.
#[inline(always)]
pub fn fold_slot(best: &mut RuleSlot, found: &RuleSlot, at_end: bool) {
    if found.verdict != verdict::NONE as u16 && (found.exact == 0 || at_end) {
        *best = *found;
    }
}

/// Decides an exec from the best exec slot of the binary's resolved path.
#[inline(always)]
pub const fn decide_exec(exec: &RuleSlot, default_verdict: u32) -> Decision {
    Decision::from_slot(exec, default_verdict)
}

/// Decides an open from the best read and write slots of the resolved path.
///
/// `access` contains `access::READ` and/or `access::WRITE`; an open with
/// neither is judged as a read. A denial of any requested access wins.
#[inline(always)]
pub const fn decide_open(access: u32, read: &RuleSlot, write: &RuleSlot, default_verdict: u32) -> Decision {
    let wants_write = access & crate::access::WRITE != 0;
    let wants_read = access & crate::access::READ != 0 || !wants_write;
    let read_decision = Decision::from_slot(read, default_verdict);
    let write_decision = Decision::from_slot(write, default_verdict);
    if wants_read && read_decision.verdict != verdict::ALLOW {
        return read_decision;
    }
    if wants_write {
        return write_decision;
    }
    read_decision
}

/// Decides a connect from the trie value of the longest matching prefix.
///
/// `rule` is `None` when no prefix of the policy covers the address. The
/// entries are ordered most specific first, so the first one whose port
/// range holds `port` decides.
#[inline(always)]
pub fn decide_connect(rule: Option<&NetRule>, port: u16, default_verdict: u32) -> Decision {
    if let Some(rule) = rule {
        let mut i = 0;
        while i < rule.entries.len() {
            let entry = &rule.entries[i];
            if entry.verdict != verdict::NONE && entry.port_lo <= port && port <= entry.port_hi {
                let verdict = if entry.verdict == verdict::ALLOW { verdict::ALLOW } else { verdict::DENY };
                return Decision { verdict, rule_id: entry.rule_id, reason: reason::RULE };
            }
            i += 1;
        }
    }
    Decision::from_default(default_verdict)
}
