//! The decision rules, in one place.
//!
//! The kernel programs call these functions at the hook, and the host unit
//! tests call the same functions, so both sides agree on precedence:
//! the most specific rule wins (the deepest path boundary, the longest
//! network prefix, then the narrowest port range), and an open that asks
//! for several kinds of access is allowed only when every one of them is.
//!
//! A slot that holds a lease (`verdict::LEASED`) cannot be decided from the
//! rule tables alone: the lease's expiry and use count live in the `LEASES`
//! map. So every `decide_*` function takes `lease`, which turns such a
//! pending decision into a final one. The kernel passes a function that
//! reads and counts the lease, and the host tests pass a model of it.

use crate::{NetRule, RuleSlot, reason, verdict};

/// A verdict with the rule that produced it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// `verdict::ALLOW` or `verdict::DENY`; `verdict::LEASED` only between
    /// the table lookup and the `lease` function.
    pub verdict: u32,
    /// 0 when the agent's default verdict applied. While the verdict is
    /// `LEASED`, the index of the lease in the `LEASES` array.
    pub rule_id: u32,
    pub reason: u32,
    /// The lease that allowed the action, 0 otherwise.
    pub lease_id: u32,
}

impl Decision {
    /// A denial caused by an internal failure, not by a rule.
    pub const fn fail_closed(reason: u32) -> Self {
        Self { verdict: verdict::DENY, rule_id: 0, reason, lease_id: 0 }
    }

    /// Returns a denial by a built-in protection, which no rule and no mode
    /// can turn into an allow.
    pub const fn protected() -> Self {
        Self { verdict: verdict::DENY, rule_id: 0, reason: reason::PROTECTED, lease_id: 0 }
    }

    /// Returns whether the action may go ahead.
    pub const fn allows(&self) -> bool {
        self.verdict == verdict::ALLOW
    }

    /// Applies monitor mode: a denial by a rule, a default or a missing
    /// lease becomes an allow marked `reason::MONITOR`. Failures (no path,
    /// no hash, unknown family) still deny.
    pub const fn monitored(self) -> Self {
        let by_policy = self.reason == reason::RULE
            || self.reason == reason::DEFAULT
            || self.reason == reason::LEASE_REQUIRED
            || self.reason == reason::RULES_BELOW;
        if self.verdict == verdict::DENY && by_policy {
            Self { verdict: verdict::ALLOW, reason: reason::MONITOR, ..self }
        } else {
            self
        }
    }

    const fn from_default(default_verdict: u32) -> Self {
        // Anything but an explicit allow is treated as deny, so a corrupt
        // default can never open the gate.
        let verdict = if default_verdict == verdict::ALLOW { verdict::ALLOW } else { verdict::DENY };
        Self { verdict, rule_id: 0, reason: reason::DEFAULT, lease_id: 0 }
    }

    const fn from_slot(slot: &RuleSlot, default_verdict: u32) -> Self {
        if slot.verdict == verdict::NONE as u16 {
            return Self::from_default(default_verdict);
        }
        Self::from_rule(slot.verdict as u32, slot.rule_id)
    }

    /// Maps a rule's verdict to a decision. Anything unknown denies, so a
    /// corrupt slot can never open the gate.
    pub const fn from_rule(rule_verdict: u32, rule_id: u32) -> Self {
        let (verdict, reason) = match rule_verdict {
            verdict::ALLOW => (verdict::ALLOW, reason::RULE),
            verdict::AUDIT => (verdict::ALLOW, reason::AUDIT),
            verdict::LEASE_REQUIRED => (verdict::DENY, reason::LEASE_REQUIRED),
            verdict::LEASED => (verdict::LEASED, reason::LEASE),
            verdict::PROTECTED => (verdict::DENY, reason::PROTECTED),
            _ => (verdict::DENY, reason::RULE),
        };
        Self { verdict, rule_id, reason, lease_id: 0 }
    }

    /// Settles a `LEASED` decision with `lease`. Other decisions pass
    /// unchanged.
    #[inline(always)]
    fn settle(self, lease: impl Fn(u32) -> Self) -> Self {
        if self.verdict == verdict::LEASED { lease(self.rule_id) } else { self }
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

/// Decides an exec from the slot of the binary's content, when the policy
/// has one, else from the best exec slot of its resolved path. A content
/// rule names the exact program, so it is the most specific match.
#[inline(always)]
pub fn decide_exec(
    content: Option<&RuleSlot>,
    exec: &RuleSlot,
    default_verdict: u32,
    lease: impl Fn(u32) -> Decision,
) -> Decision {
    let slot = match content {
        Some(content) if content.verdict != verdict::NONE as u16 => content,
        _ => exec,
    };
    Decision::from_slot(slot, default_verdict).settle(lease)
}

/// The best slot per kind of access for one open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenSlots {
    pub read: RuleSlot,
    pub write: RuleSlot,
    pub create: RuleSlot,
}

impl OpenSlots {
    /// Returns the slot that decides a create: the create slot, or the
    /// write slot where no create rule covers the path, because creating a
    /// file is then part of writing it.
    #[inline(always)]
    pub fn create_or_write(&self) -> &RuleSlot {
        if self.create.verdict == verdict::NONE as u16 { &self.write } else { &self.create }
    }
}

/// Decides an open from the best read, write and create slots of the
/// resolved path.
///
/// `access` contains `access::*` bits. An open with neither read nor write
/// is judged as a read, and `access::CREATE` is set when the open created
/// the file. The create slot is the deepest create rule. Where no create
/// rule covers the path, the write slot decides the create as well. A
/// denial of any requested access wins, checked in the order
/// read, write, create. A lease is settled (and counted) only for a
/// requested access, only once no requested access is denied outright, and
/// once per lease however many accesses it covers, so an open denied for
/// another reason uses up no lease. When every access is allowed, the
/// decision names a lease if one was used, else an audit rule if one
/// matched, else the rule of the last requested access.
#[inline(always)]
pub fn decide_open(access: u32, slots: &OpenSlots, default_verdict: u32, lease: impl Fn(u32) -> Decision) -> Decision {
    let wants_write = access & crate::access::WRITE != 0;
    let wants = [
        access & crate::access::READ != 0 || !wants_write,
        wants_write,
        access & crate::access::CREATE != 0,
    ];
    let mut decisions = [
        Decision::from_slot(&slots.read, default_verdict),
        Decision::from_slot(&slots.write, default_verdict),
        Decision::from_slot(slots.create_or_write(), default_verdict),
    ];
    // A plain denial of any requested access decides first.
    let mut i = 0;
    while i < 3 {
        if wants[i] && !decisions[i].allows() && decisions[i].verdict != verdict::LEASED {
            return decisions[i];
        }
        i += 1;
    }
    // Settle each lease once; a later access under the same lease shares
    // the first one's result.
    let mut settled: Option<(u32, Decision)> = None;
    let mut i = 0;
    while i < 3 {
        if wants[i] && decisions[i].verdict == verdict::LEASED {
            let slot = decisions[i].rule_id;
            let result = match settled {
                Some((settled_slot, result)) if settled_slot == slot => result,
                _ => lease(slot),
            };
            if !result.allows() {
                return result;
            }
            settled = Some((slot, result));
            decisions[i] = result;
        }
        i += 1;
    }
    // Every requested access is allowed now, and read or write is always
    // requested.
    let rank = |decision: &Decision| match decision.reason {
        reason::LEASE => 2,
        reason::AUDIT => 1,
        _ => 0,
    };
    let mut chosen = if wants[0] { decisions[0] } else { decisions[1] };
    let mut i = 1;
    while i < 3 {
        if wants[i] && rank(&decisions[i]) >= rank(&chosen) {
            chosen = decisions[i];
        }
        i += 1;
    }
    chosen
}

/// The best slots of one name of a rename or hard link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NameSlots {
    pub exec: RuleSlot,
    pub open: OpenSlots,
    /// Some rule names a path strictly below this name
    /// (`path_flags::RULES_BELOW` on the entry of the whole name).
    pub rules_below: bool,
}

/// Returns whether `slot` could allow its access: an allow, audit or lease
/// rule, or no rule under an allowing default. A lease rule counts as
/// allowing whether or not a lease is granted now, because one may be
/// valid when the file is used under its new name.
#[inline(always)]
const fn may_allow(slot: &RuleSlot, default_verdict: u32) -> bool {
    let rule = slot.verdict as u32;
    if rule == verdict::NONE {
        return default_verdict == verdict::ALLOW;
    }
    rule == verdict::ALLOW || rule == verdict::AUDIT || rule == verdict::LEASED || rule == verdict::LEASE_REQUIRED
}

/// Decides a rename of the name `old` to the name `new`. `folder` is set
/// when `old` is a directory.
///
/// A rename gives a file a second name, which must not reach more than
/// the first: the move must need no more than a copy would. So the old
/// name needs write access (the move removes it), and read access when
/// the new name could allow reading or running the file, as a copy reads
/// it. The new name needs create access (the write rule where no create
/// rule covers it), as an open that creates a file does. A folder moves
/// every file below it, which one lookup per name cannot judge when rules
/// name paths below either name: such a move is denied with
/// `reason::RULES_BELOW`.
///
/// Plain denials decide first, in the order create, write, read, then
/// leases are settled, so a rename denied for another reason uses up no
/// lease. When everything is allowed, the decision names a lease if one
/// was used, else an audit rule, else the rule of the new name. The steps
/// form one chain without loops, so the kernel's verifier walks few paths.
#[inline(always)]
pub fn decide_rename(
    old: &NameSlots,
    new: &NameSlots,
    folder: bool,
    default_verdict: u32,
    lease: impl Fn(u32) -> Decision,
) -> Decision {
    if folder && (old.rules_below || new.rules_below) {
        return Decision { verdict: verdict::DENY, rule_id: 0, reason: reason::RULES_BELOW, lease_id: 0 };
    }
    let needs_read = may_allow(&new.open.read, default_verdict) || may_allow(&new.exec, default_verdict);
    let create = Decision::from_slot(new.open.create_or_write(), default_verdict);
    let write = Decision::from_slot(&old.open.write, default_verdict);
    let read = if needs_read { Decision::from_slot(&old.open.read, default_verdict) } else { write };
    for decision in [create, write, read] {
        if !decision.allows() && decision.verdict != verdict::LEASED {
            return decision;
        }
    }
    let create = create.settle(&lease);
    if !create.allows() {
        return create;
    }
    let write = write.settle(&lease);
    if !write.allows() {
        return write;
    }
    let read = if needs_read { read.settle(&lease) } else { write };
    if !read.allows() {
        return read;
    }
    let mut chosen = create;
    for decision in [write, read] {
        let rank = |candidate: &Decision| match candidate.reason {
            reason::LEASE => 2,
            reason::AUDIT => 1,
            _ => 0,
        };
        if rank(&decision) > rank(&chosen) {
            chosen = decision;
        }
    }
    chosen
}

/// Decides a connect or datagram send to a Unix socket from the best
/// connect slot of the peer's bound name.
#[inline(always)]
pub fn decide_unix(slot: &RuleSlot, default_verdict: u32, lease: impl Fn(u32) -> Decision) -> Decision {
    Decision::from_slot(slot, default_verdict).settle(lease)
}

/// Decides a connect from the trie value of the longest matching prefix.
///
/// `rule` is `None` when no prefix of the policy covers the address. The
/// entries are ordered most specific first, so the first one whose port
/// range contains `port` and whose protocol is `protocol` or any decides.
#[inline(always)]
pub fn decide_connect(
    rule: Option<&NetRule>,
    port: u16,
    protocol: u16,
    default_verdict: u32,
    lease: impl Fn(u32) -> Decision,
) -> Decision {
    if let Some(rule) = rule {
        let mut i = 0;
        while i < rule.entries.len() {
            let entry = &rule.entries[i];
            let protocol_matches = entry.protocol == crate::protocol::ANY || entry.protocol == protocol;
            if entry.verdict != verdict::NONE as u16 && entry.port_lo <= port && port <= entry.port_hi && protocol_matches
            {
                return Decision::from_rule(entry.verdict as u32, entry.rule_id).settle(lease);
            }
            i += 1;
        }
    }
    Decision::from_default(default_verdict)
}
