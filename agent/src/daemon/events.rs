//! The event reader: drains the kernel's ring buffer and turns each event
//! into one decision record, and notices events the kernel could not queue.

use std::{collections::BTreeSet, mem::size_of};

use lupid_common::{Event, hook, reason, verdict};
use lupid_ledger::{Decision, EventsLost, Hook, Object, Reason, RecordBody, Verdict};

use super::agents::AgentEntry;

/// Decodes a ring buffer item. Returns `None` for an item of the wrong
/// size, which would mean the daemon and the kernel programs disagree on
/// the ABI.
pub(crate) fn decode(bytes: &[u8]) -> Option<Event> {
    if bytes.len() < size_of::<Event>() {
        return None;
    }
    // SAFETY: the slice holds at least `size_of::<Event>()` bytes, `Event`
    // is plain integers with explicit padding, and the read is unaligned.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) })
}

/// Builds the decision record of one event. `agent` is `None` when the
/// event names an agent id the daemon never registered.
pub(crate) fn to_record(event: &Event, agent: Option<&AgentEntry>) -> RecordBody {
    let (name, policy_sha256, rule) = agent.map_or_else(
        || (String::new(), [0; 32], String::new()),
        |a| (a.name.clone(), a.policy_sha256, a.rule_name(event.rule_id)),
    );
    let object = if event.hook == hook::CONNECT {
        Object::Socket { family: event.family, addr: event.addr, port: event.port }
    } else {
        let len = (event.path_len as usize).min(event.path.len());
        let truncated = event.flags & lupid_common::flags::PATH_TRUNCATED != 0;
        Object::Path { path: event.path[..len].to_vec(), truncated }
    };
    let comm_len = event.comm.iter().position(|&b| b == 0).unwrap_or(event.comm.len());
    RecordBody::Decision(Decision {
        kernel_seq: event.seq,
        boot_ns: event.boot_ns,
        agent_id: event.agent_id,
        agent: name,
        policy_sha256,
        pid: low_half(event.pid_tgid),
        tgid: high_half(event.pid_tgid),
        uid: low_half(event.uid_gid),
        gid: high_half(event.uid_gid),
        cgroup_id: event.cgroup_id,
        comm: event.comm[..comm_len].to_vec(),
        hook: match event.hook {
            hook::EXEC => Hook::Exec,
            hook::OPEN => Hook::Open,
            _ => Hook::Connect,
        },
        verdict: if event.verdict == verdict::ALLOW { Verdict::Allow } else { Verdict::Deny },
        reason: match event.reason {
            reason::RULE => Reason::Rule,
            reason::DEFAULT => Reason::Default,
            reason::PATH_UNRESOLVED => Reason::PathUnresolved,
            reason::READ_FAILED => Reason::ReadFailed,
            reason::UNKNOWN_FAMILY => Reason::UnknownFamily,
            reason::NO_POLICY => Reason::NoPolicy,
            other => Reason::Other(other),
        },
        rule_id: event.rule_id,
        rule,
        access: event.access,
        object,
    })
}

/// Tracks which kernel sequence numbers have arrived, so events that were
/// never queued show up as an explicit gap.
///
/// Events from different CPUs can arrive out of order, so a missing number
/// is only declared lost once the kernel's drop counter has grown.
#[derive(Default)]
pub(crate) struct SequenceTracker {
    /// Every number below this has arrived or been declared lost.
    next: u64,
    /// Numbers at or above `next` that have arrived.
    ahead: BTreeSet<u64>,
    /// Drop counter value already accounted for in gap records.
    drops_recorded: u64,
}

impl SequenceTracker {
    /// Starts after the events that were in flight before the daemon began.
    pub(crate) fn starting_at(next: u64, drops: u64) -> Self {
        Self { next, ahead: BTreeSet::new(), drops_recorded: drops }
    }

    pub(crate) fn saw(&mut self, seq: u64) {
        if seq >= self.next {
            self.ahead.insert(seq);
        }
        while self.ahead.remove(&self.next) {
            self.next += 1;
        }
    }

    /// Returns gap records when the kernel's drop counter went up: every
    /// missing number below the newest arrival is then declared lost.
    pub(crate) fn gaps(&mut self, drop_counter: u64) -> Vec<RecordBody> {
        if drop_counter <= self.drops_recorded {
            return Vec::new();
        }
        let Some(&newest) = self.ahead.last() else {
            // Nothing arrived after the drops yet; wait for a later event to
            // bound the gap.
            return Vec::new();
        };
        let mut gaps = Vec::new();
        while self.next < newest {
            let first = self.next;
            while self.next < newest && !self.ahead.contains(&self.next) {
                self.next += 1;
            }
            if self.next > first {
                gaps.push(RecordBody::EventsLost(EventsLost {
                    first_kernel_seq: first,
                    last_kernel_seq: self.next - 1,
                    kernel_drop_counter: drop_counter,
                }));
            }
            self.saw(self.next);
        }
        self.drops_recorded = drop_counter;
        gaps
    }
}

/// Returns the lower 32 bits of a helper's packed pair, such as the pid of
/// `bpf_get_current_pid_tgid()`.
#[expect(clippy::cast_possible_truncation, reason = "the kernel packs two u32 values into one u64")]
fn low_half(packed: u64) -> u32 {
    packed as u32
}

/// Returns the upper 32 bits of a helper's packed pair.
fn high_half(packed: u64) -> u32 {
    (packed >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost(records: &[RecordBody]) -> Vec<(u64, u64)> {
        records
            .iter()
            .filter_map(|r| match r {
                RecordBody::EventsLost(l) => Some((l.first_kernel_seq, l.last_kernel_seq)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn tracker_in_order_has_no_gap() {
        let mut tracker = SequenceTracker::default();
        for seq in 0..5 {
            tracker.saw(seq);
        }
        assert!(tracker.gaps(0).is_empty());
    }

    #[test]
    fn tracker_waits_without_drops() {
        let mut tracker = SequenceTracker::default();
        tracker.saw(0);
        tracker.saw(2);
        assert!(tracker.gaps(0).is_empty());
    }

    #[test]
    fn tracker_reports_gap_after_drop() {
        let mut tracker = SequenceTracker::default();
        tracker.saw(0);
        tracker.saw(3);
        assert_eq!(lost(&tracker.gaps(2)), vec![(1, 2)]);
    }

    #[test]
    fn tracker_reports_two_gaps() {
        let mut tracker = SequenceTracker::default();
        for seq in [0, 2, 5] {
            tracker.saw(seq);
        }
        assert_eq!(lost(&tracker.gaps(3)), vec![(1, 1), (3, 4)]);
    }

    #[test]
    fn tracker_reports_drop_once() {
        let mut tracker = SequenceTracker::default();
        tracker.saw(0);
        tracker.saw(2);
        let _ = tracker.gaps(1);
        tracker.saw(3);
        assert!(tracker.gaps(1).is_empty());
    }

    #[test]
    fn short_item_is_rejected() {
        assert!(decode(&[0u8; 16]).is_none());
    }
}
