//! The event reader: drains the kernel's ring buffer and turns each event
//! into one decision record, and notices events the kernel could not queue.

use std::{
    collections::{BTreeSet, VecDeque},
    mem::size_of,
    time::{Duration, Instant},
};

use lupid_common::{Event, family, flags, hook, reason, verdict};
use lupid_ledger::{Decision, EventsLost, Hook, Object, Reason, RecordBody, Verdict, Via};

use super::agents::AgentEntry;

/// Decodes a ring buffer item. Returns `None` for an item of the wrong
/// size, which would mean the daemon and the kernel programs disagree on
/// the ABI.
pub(crate) fn decode(bytes: &[u8]) -> Option<Event> {
    if bytes.len() < size_of::<Event>() {
        return None;
    }
    // SAFETY: the slice contains at least `size_of::<Event>()` bytes, `Event`
    // is plain integers with explicit padding, and the read is unaligned.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) })
}

/// Builds the decision record of one event. `agent` is `None` when the
/// event names an agent id the daemon never registered. The policy hash and
/// rule name come from the policy version the event names, which may be an
/// older one than the agent's current policy. `lease_rule` is the name of the
/// lease-required rule that the lease satisfies, for an event that a lease
/// allowed.
pub(crate) fn to_record(event: &Event, agent: Option<&AgentEntry>, lease_rule: Option<&str>) -> RecordBody {
    let version = agent.and_then(|a| a.version(event.policy_id));
    let name = agent.map(|a| a.name.clone()).unwrap_or_default();
    let policy_sha256 = version.map_or([0; 32], |v| v.policy_sha256);
    let rule = match (event.reason, lease_rule) {
        (reason::LEASE, Some(rule)) => rule.to_owned(),
        _ => version.map(|v| v.rule_name(event.rule_id)).unwrap_or_default(),
    };
    // A Unix socket is named by the bound name of the peer, so its object
    // is a path (`@NAME` for an abstract socket).
    let socket = (event.hook == hook::CONNECT || event.hook == hook::SEND) && event.family != family::UNIX;
    let path_len = (event.path_len as usize).min(event.path.len());
    let object = if socket {
        Object::Socket { family: event.family, addr: event.addr, port: event.port }
    } else if event.hook == hook::KILL || event.hook == hook::PTRACE || event.hook == hook::TASK_SET {
        // The kernel writes the target's `comm` into `path`.
        Object::Task { pid: event.target_pid, comm: event.path[..path_len].to_vec() }
    } else if event.flags & flags::TWO_NAMES != 0 {
        let new_len = (event.new_path_len as usize).min(event.new_path.len());
        Object::PathPair {
            old: event.path[..path_len].to_vec(),
            new: event.new_path[..new_len].to_vec(),
            truncated: event.flags & flags::PATH_TRUNCATED != 0,
        }
    } else {
        let truncated = event.flags & flags::PATH_TRUNCATED != 0;
        Object::Path { path: event.path[..path_len].to_vec(), truncated }
    };
    let comm_len = event.comm.iter().position(|&b| b == 0).unwrap_or(event.comm.len());
    let request_len = (event.request_len as usize).min(event.request.len());
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
            hook::SEND => Hook::Send,
            hook::CLONE => Hook::Clone,
            hook::USERNS_CREATE => Hook::UsernsCreate,
            hook::MOUNT => Hook::Mount,
            hook::MOVE_MOUNT => Hook::MoveMount,
            hook::UMOUNT => Hook::Umount,
            hook::KILL => Hook::Kill,
            hook::PTRACE => Hook::Ptrace,
            hook::BPF => Hook::Bpf,
            hook::SOCKET_CREATE => Hook::SocketCreate,
            hook::LINK => Hook::Link,
            hook::CREATE_NAME => Hook::CreateName,
            hook::REMOVE_NAME => Hook::RemoveName,
            hook::RENAME => Hook::Rename,
            hook::TRUNCATE => Hook::Truncate,
            hook::SET_ATTR => Hook::SetAttr,
            hook::TASK_SET => Hook::TaskSet,
            hook::SETSOCKOPT => Hook::Setsockopt,
            hook::CHROOT => Hook::Chroot,
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
            reason::AUDIT => Reason::Audit,
            reason::LEASE => Reason::Lease,
            reason::LEASE_REQUIRED => Reason::LeaseRequired,
            reason::MONITOR => Reason::Monitor,
            reason::HASH_FAILED => Reason::HashFailed,
            reason::PROTECTED => Reason::Protected,
            reason::RULES_BELOW => Reason::RulesBelow,
            other => Reason::Other(other),
        },
        rule_id: event.rule_id,
        rule,
        access: event.access,
        object,
        lease_id: event.lease_id,
        protocol: event.protocol,
        via: if event.flags & flags::VIA_IO_URING != 0 { Via::IoUring } else { Via::Syscall },
        requested: event.request[..request_len].to_vec(),
        requested_truncated: event.flags & flags::REQUEST_TRUNCATED != 0,
    })
}

/// Tracks which kernel sequence numbers have arrived, so events that were
/// never queued show up as an explicit gap.
///
/// Events from different CPUs can arrive out of order, and an event can be
/// numbered but not yet submitted. So a missing number is declared lost only
/// once the kernel's drop counter has grown, and only below a bound. The
/// bound is the newest number that arrived, or a reading of the kernel's
/// sequence counter old enough ([`SETTLE`]) that every event numbered below
/// it has been submitted and read.
#[derive(Default)]
pub(crate) struct SequenceTracker {
    /// Every number below this has arrived or been declared lost.
    next: u64,
    /// Numbers at or above `next` that have arrived.
    ahead: BTreeSet<u64>,
    /// Drop counter value already accounted for in gap records.
    drops_recorded: u64,
    /// Readings of the kernel's sequence counter, oldest first, each taken
    /// just before a drain of the ring buffer.
    readings: VecDeque<(Instant, u64)>,
    /// A counter reading below which every number still missing once
    /// [`SETTLE`] has passed is lost, whatever the drop counter shows.
    missing_below: Option<(Instant, u64)>,
}

/// Minimum age of a reading of the kernel's sequence counter before every
/// number below it counts as settled: submitted by the kernel program and
/// read by the daemon. A program submits its event microseconds after
/// numbering it, and the reader drains the whole buffer every 500 ms.
pub(crate) const SETTLE: Duration = Duration::from_secs(2);

impl SequenceTracker {
    /// Starts after the events that were in flight before the daemon began.
    pub(crate) fn starting_at(next: u64, drops: u64) -> Self {
        Self { next, drops_recorded: drops, ..Self::default() }
    }

    /// Starts at `first` with the inclusive ranges the ledger already contains
    /// and the drop count they account for, after a daemon that was away.
    pub(crate) fn resuming(first: u64, recorded: &[(u64, u64)], drops: u64) -> Self {
        let mut tracker = Self::starting_at(first, drops);
        let mut ranges = recorded.to_vec();
        ranges.sort_unstable();
        for (low, high) in ranges {
            let low = low.max(first);
            if low > high {
                continue;
            }
            if low <= tracker.next {
                // An `events_lost` range can span millions of numbers, so a
                // range that reaches the next missing number moves it on at
                // once instead of one number at a time.
                tracker.next = tracker.next.max(high.saturating_add(1));
                tracker.ahead = tracker.ahead.split_off(&tracker.next);
                tracker.advance();
            } else {
                // NOTE: a range past a hole still goes into `ahead` one number
                // at a time, which costs memory for each number it spans.
                for seq in low..=high {
                    tracker.saw(seq);
                }
            }
        }
        tracker
    }

    /// Returns the lowest number that has neither arrived nor been declared
    /// lost.
    pub(crate) fn next(&self) -> u64 {
        self.next
    }

    /// Notes that every number below `bound` still missing [`SETTLE`] after
    /// `at` is lost. Used at a takeover: a killed daemon may have read
    /// events from the ring buffer that it never recorded, and the kernel
    /// did not count those as dropped.
    pub(crate) fn declare_missing_below(&mut self, at: Instant, bound: u64) {
        self.missing_below = Some((at, bound));
    }

    /// Returns gap records for the numbers [`Self::declare_missing_below`]
    /// named, once they had time to arrive.
    pub(crate) fn missing_gaps(&mut self, drop_counter: u64, now: Instant) -> Vec<RecordBody> {
        match self.missing_below {
            Some((at, bound)) if now.duration_since(at) >= SETTLE => {
                self.missing_below = None;
                let gaps = self.declare_lost_below(bound, drop_counter);
                self.drops_recorded = self.drops_recorded.max(drop_counter);
                gaps
            }
            _ => Vec::new(),
        }
    }

    pub(crate) fn saw(&mut self, seq: u64) {
        if seq >= self.next {
            self.ahead.insert(seq);
        }
        self.advance();
    }

    /// Moves `next` past the numbers at its front that have arrived.
    fn advance(&mut self) {
        while self.ahead.remove(&self.next) {
            self.next += 1;
        }
    }

    /// Notes the kernel's sequence counter, read just before a drain.
    pub(crate) fn reading(&mut self, at: Instant, next_sequence: u64) {
        self.readings.push_back((at, next_sequence));
    }

    /// Returns the newest counter reading that is at least `SETTLE` old at
    /// `now`. Older readings are dropped, and that one stays for later calls.
    fn settled(&mut self, now: Instant) -> Option<u64> {
        let is_settled = |reading: &(Instant, u64)| now.duration_since(reading.0) >= SETTLE;
        while self.readings.get(1).is_some_and(is_settled) {
            self.readings.pop_front();
        }
        self.readings.front().filter(|reading| is_settled(reading)).map(|&(_, value)| value)
    }

    /// Returns gap records when the kernel's drop counter went up: every
    /// missing number below the bound is then declared lost.
    pub(crate) fn gaps(&mut self, drop_counter: u64, now: Instant) -> Vec<RecordBody> {
        if drop_counter <= self.drops_recorded {
            return Vec::new();
        }
        let newest_arrived = self.ahead.last().copied().unwrap_or(0);
        let bound = newest_arrived.max(self.settled(now).unwrap_or(0));
        let gaps = self.declare_lost_below(bound, drop_counter);
        if !gaps.is_empty() {
            self.drops_recorded = drop_counter;
        }
        gaps
    }

    /// Declares every missing number below `bound` lost, whatever the drop
    /// counter shows. The daemon calls it when it stops, after its last
    /// drain, with the kernel's sequence counter as the bound.
    pub(crate) fn gaps_at_stop(&mut self, drop_counter: u64, bound: u64) -> Vec<RecordBody> {
        self.declare_lost_below(bound, drop_counter)
    }

    fn declare_lost_below(&mut self, bound: u64, drop_counter: u64) -> Vec<RecordBody> {
        let mut gaps = Vec::new();
        while self.next < bound {
            let first = self.next;
            while self.next < bound && !self.ahead.contains(&self.next) {
                self.next += 1;
            }
            if self.next > first {
                gaps.push(RecordBody::EventsLost(EventsLost {
                    first_kernel_seq: first,
                    last_kernel_seq: self.next - 1,
                    kernel_drop_counter: drop_counter,
                }));
            }
            // The bound itself is not declared: it is a number that
            // arrived, or a counter reading that no event has taken yet.
            if self.next < bound {
                let arrived = self.next;
                self.saw(arrived);
            }
        }
        while self.ahead.remove(&self.next) {
            self.next += 1;
        }
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
        assert!(tracker.gaps(0, Instant::now()).is_empty());
    }

    #[test]
    fn tracker_waits_without_drops() {
        let mut tracker = SequenceTracker::default();
        tracker.saw(0);
        tracker.saw(2);
        assert!(tracker.gaps(0, Instant::now()).is_empty());
    }

    #[test]
    fn tracker_reports_gap_after_drop() {
        let mut tracker = SequenceTracker::default();
        tracker.saw(0);
        tracker.saw(3);
        assert_eq!(lost(&tracker.gaps(2, Instant::now())), vec![(1, 2)]);
    }

    #[test]
    fn tracker_reports_two_gaps() {
        let mut tracker = SequenceTracker::default();
        for seq in [0, 2, 5] {
            tracker.saw(seq);
        }
        assert_eq!(lost(&tracker.gaps(3, Instant::now())), vec![(1, 1), (3, 4)]);
    }

    #[test]
    fn tracker_reports_drop_once() {
        let mut tracker = SequenceTracker::default();
        tracker.saw(0);
        tracker.saw(2);
        let _ = tracker.gaps(1, Instant::now());
        tracker.saw(3);
        assert!(tracker.gaps(1, Instant::now()).is_empty());
    }

    #[test]
    fn tracker_waits_for_settled_reading() {
        let start = Instant::now();
        let mut tracker = SequenceTracker::default();
        tracker.reading(start, 10);
        tracker.saw(0);
        assert!(tracker.gaps(9, start + Duration::from_millis(100)).is_empty());
    }

    #[test]
    fn tracker_bounds_tail_gap_by_reading() {
        let start = Instant::now();
        let mut tracker = SequenceTracker::default();
        tracker.reading(start, 10);
        tracker.saw(0);
        assert_eq!(lost(&tracker.gaps(9, start + SETTLE)), vec![(1, 9)]);
    }

    #[test]
    fn tracker_stop_declares_tail() {
        let mut tracker = SequenceTracker::default();
        tracker.saw(0);
        assert_eq!(lost(&tracker.gaps_at_stop(0, 4)), vec![(1, 3)]);
    }

    #[test]
    fn tracker_resumes_after_recorded_numbers() {
        let tracker = SequenceTracker::resuming(10, &[(12, 12), (10, 11), (3, 4)], 0);
        assert_eq!(tracker.next(), 13);
    }

    #[test]
    fn tracker_resumes_past_huge_range() {
        let tracker = SequenceTracker::resuming(0, &[(0, u64::MAX / 2), (5, 9)], 0);
        assert_eq!(tracker.next(), u64::MAX / 2 + 1);
    }

    #[test]
    fn tracker_resumes_at_first_hole() {
        let mut tracker = SequenceTracker::resuming(10, &[(10, 10), (12, 15)], 0);
        assert_eq!(tracker.next(), 11);
        tracker.saw(11);
        assert_eq!(tracker.next(), 16);
    }

    #[test]
    fn tracker_declares_missing_after_settle() {
        let start = Instant::now();
        let mut tracker = SequenceTracker::resuming(10, &[(10, 11)], 0);
        tracker.declare_missing_below(start, 20);
        tracker.saw(14);
        assert!(tracker.missing_gaps(0, start).is_empty(), "numbers may still arrive before SETTLE");
        assert_eq!(lost(&tracker.missing_gaps(0, start + SETTLE)), vec![(12, 13), (15, 19)]);
        assert!(tracker.missing_gaps(0, start + SETTLE).is_empty(), "declared once");
        assert_eq!(tracker.next(), 20);
    }

    #[test]
    fn short_item_is_rejected() {
        assert!(decode(&[0u8; 16]).is_none());
    }

    /// Returns an allowed UDP send to 203.0.113.7:53 with these flags.
    fn udp_send(event_flags: u32) -> Event {
        // Every field the test does not set is 0, as the kernel program
        // writes it for a field a hook does not use.
        let mut event = decode(&vec![0; size_of::<Event>()]).expect("an item of the event's size");
        event.seq = 7;
        event.boot_ns = 1_000;
        event.cgroup_id = 42;
        event.pid_tgid = (u64::from(31_337_u32) << 32) | u64::from(31_340_u32);
        event.uid_gid = (u64::from(1000_u32) << 32) | u64::from(1000_u32);
        event.hook = hook::SEND;
        event.verdict = verdict::ALLOW;
        event.reason = reason::DEFAULT;
        event.agent_id = 3;
        event.policy_id = 1;
        event.flags = event_flags;
        event.family = family::INET;
        event.port = 53;
        event.protocol = lupid_common::protocol::UDP;
        event.addr = std::net::Ipv4Addr::new(203, 0, 113, 7).to_ipv6_mapped().octets();
        event.comm[..13].copy_from_slice(b"iou-wrk-31337");
        event
    }

    #[test]
    fn record_of_io_uring_udp_send() {
        let RecordBody::Decision(decision) = to_record(&udp_send(flags::VIA_IO_URING), None, None) else {
            panic!("a kernel event becomes a decision");
        };
        assert_eq!(decision.hook, Hook::Send);
        assert_eq!(decision.via, Via::IoUring);
        assert_eq!(decision.protocol, 17);
        assert_eq!(decision.object, Object::Socket { family: family::INET, addr: udp_send(0).addr, port: 53 });
        assert_eq!(decision.comm, b"iou-wrk-31337");
        assert_eq!((decision.pid, decision.tgid), (31_340, 31_337));
    }

    /// Returns a protected denial on `event_hook` of a signal or ptrace
    /// aimed at pid 812, whose `comm` the kernel wrote into `path`.
    fn aimed_at_daemon(event_hook: u32) -> Event {
        let mut event = udp_send(0);
        event.hook = event_hook;
        event.verdict = verdict::DENY;
        event.reason = reason::PROTECTED;
        event.family = 0;
        event.port = 0;
        event.protocol = 0;
        event.addr = [0; 16];
        event.target_pid = 812;
        event.path[..11].copy_from_slice(b"lupid-agent");
        event.path_len = 11;
        event
    }

    #[test]
    fn record_of_kill_and_ptrace_target() {
        for (event_hook, expected_hook) in [(hook::KILL, Hook::Kill), (hook::PTRACE, Hook::Ptrace)] {
            let RecordBody::Decision(decision) = to_record(&aimed_at_daemon(event_hook), None, None) else {
                panic!("a kernel event becomes a decision");
            };
            assert_eq!(decision.hook, expected_hook);
            assert_eq!(decision.reason, Reason::Protected);
            assert_eq!(decision.object, Object::Task { pid: 812, comm: b"lupid-agent".to_vec() }, "{expected_hook:?}");
            assert_eq!(decision.comm, b"iou-wrk-31337", "{expected_hook:?}: the actor keeps its own comm");
        }
    }

    #[test]
    fn record_of_target_without_comm() {
        let mut event = aimed_at_daemon(hook::KILL);
        event.path_len = 0;
        let RecordBody::Decision(decision) = to_record(&event, None, None) else {
            panic!("a kernel event becomes a decision");
        };
        assert_eq!(decision.object, Object::Task { pid: 812, comm: Vec::new() });
    }

    /// Returns an allowed open of `/etc/passwd` that the agent requested as
    /// `request`, with these flags.
    fn open_requested_as(request: &[u8], event_flags: u32) -> Event {
        let mut event = udp_send(event_flags);
        event.hook = hook::OPEN;
        event.family = 0;
        event.port = 0;
        event.protocol = 0;
        event.addr = [0; 16];
        event.access = lupid_common::access::READ;
        event.path[..11].copy_from_slice(b"/etc/passwd");
        event.path_len = 11;
        event.request[..request.len()].copy_from_slice(request);
        event.request_len = u32::try_from(request.len()).unwrap();
        event
    }

    #[test]
    fn record_of_requested_name() {
        let requested = b"/proc/self/root/tmp/../etc/\xffpasswd-link";
        let RecordBody::Decision(decision) = to_record(&open_requested_as(requested, 0), None, None) else {
            panic!("a kernel event becomes a decision");
        };
        assert_eq!(decision.hook, Hook::Open);
        assert_eq!(decision.object, Object::Path { path: b"/etc/passwd".to_vec(), truncated: false });
        assert_eq!(decision.requested, requested, "the name as the agent passed it, byte for byte");
        assert!(!decision.requested_truncated);
    }

    #[test]
    fn record_of_truncated_requested_name() {
        let requested = [b'a'; lupid_common::REQUEST_MAX - 1];
        let event = open_requested_as(&requested, flags::REQUEST_TRUNCATED);
        let RecordBody::Decision(decision) = to_record(&event, None, None) else {
            panic!("a kernel event becomes a decision");
        };
        assert_eq!(decision.requested, requested);
        assert!(decision.requested_truncated);
        assert_eq!(decision.object, Object::Path { path: b"/etc/passwd".to_vec(), truncated: false });
    }

    #[test]
    fn record_without_requested_name() {
        let RecordBody::Decision(decision) = to_record(&udp_send(flags::VIA_IO_URING), None, None) else {
            panic!("a kernel event becomes a decision");
        };
        assert!(decision.requested.is_empty(), "request_len 0 is no name");
        assert!(!decision.requested_truncated);
    }

    #[test]
    fn record_clamps_request_len() {
        // A length past the buffer, which the kernel program never writes,
        // keeps the whole buffer instead of panicking.
        let mut event = open_requested_as(b"x", 0);
        event.request_len = u32::MAX;
        let RecordBody::Decision(decision) = to_record(&event, None, None) else {
            panic!("a kernel event becomes a decision");
        };
        assert_eq!(decision.requested.len(), lupid_common::REQUEST_MAX);
    }

    #[test]
    fn record_without_io_uring_flag() {
        let RecordBody::Decision(decision) = to_record(&udp_send(flags::PATH_TRUNCATED), None, None) else {
            panic!("a kernel event becomes a decision");
        };
        assert_eq!(decision.via, Via::Syscall, "only VIA_IO_URING marks io_uring");
        assert_eq!(decision.protocol, 17);
    }
}
