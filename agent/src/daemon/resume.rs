//! Picking up the kernel events of an earlier daemon whose pinned programs
//! went on deciding while it was away.
//!
//! The ledger shows which kernel sequence numbers the earlier session
//! recorded: as decisions, or inside `events_lost` ranges. The new daemon
//! starts its [`SequenceTracker`] there, so the events that waited in the
//! pinned ring buffer become decisions and every number that neither the
//! ledger nor the ring buffer contains becomes an `events_lost` range.

use std::{path::Path, time::Instant};

use lupid_ledger::{DaemonGap, LedgerError, LedgerReader, Record, RecordBody};

use super::{
    events::SequenceTracker,
    kernel::{Kernel, Takeover},
    writer::wall_clock_ns,
};

/// Most records read back from the ledger's end to find the start of the
/// earlier session. At a few microseconds a record, this bounds the scan to
/// a few seconds.
const SCAN_LIMIT: u64 = 1 << 20;

/// The earlier session's kernel events, as the ledger records them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Previous {
    /// Wall time of the newest record, 0 for an empty ledger.
    pub(crate) last_time_ns: u64,
    /// The first kernel sequence number of the session: 0 after a start on
    /// new maps, the `daemon_gap` record's first number after a takeover.
    /// `None` when the ledger contains no session start.
    pub(crate) first_kernel_seq: Option<u64>,
    /// Inclusive ranges of kernel sequence numbers the session recorded.
    pub(crate) recorded: Vec<(u64, u64)>,
    /// The highest kernel drop counter the session's records account for.
    pub(crate) drops_recorded: u64,
}

/// Reads the ledger backwards from its end to the start of the newest
/// session (its `daemon_gap` record, else its `daemon_start` record), at
/// most [`SCAN_LIMIT`] records.
pub(crate) fn scan(ledger_dir: &Path) -> Result<Previous, LedgerError> {
    let reader = LedgerReader::open_read_only(ledger_dir)?;
    let mut previous = Previous::default();
    let Some((head, _)) = reader.head()? else { return Ok(previous) };
    let mut seq = head;
    for scanned in 0..SCAN_LIMIT {
        let Some(bytes) = reader.raw_record(seq)? else { break };
        let record = Record::decode(&bytes).map_err(|source| LedgerError::Decode {
            path: ledger_dir.to_owned(),
            seq,
            source,
        })?;
        if scanned == 0 {
            previous.last_time_ns = record.time_ns;
        }
        match record.body {
            RecordBody::Decision(decision) => previous.recorded.push((decision.kernel_seq, decision.kernel_seq)),
            RecordBody::EventsLost(lost) => {
                previous.recorded.push((lost.first_kernel_seq, lost.last_kernel_seq));
                previous.drops_recorded = previous.drops_recorded.max(lost.kernel_drop_counter);
            }
            RecordBody::DaemonGap(gap) => {
                previous.first_kernel_seq = Some(gap.first_kernel_seq);
                previous.drops_recorded = previous.drops_recorded.max(gap.kernel_drop_counter);
                break;
            }
            RecordBody::DaemonStart(_) => {
                previous.first_kernel_seq = Some(0);
                break;
            }
            _ => {}
        }
        if seq == 0 {
            break;
        }
        seq -= 1;
    }
    if previous.first_kernel_seq.is_none() && !previous.recorded.is_empty() {
        // NOTE: the scan stopped before the session's start, so numbers
        // below the oldest one read count as recorded.
        previous.first_kernel_seq = previous.recorded.iter().map(|&(first, _)| first).min();
    }
    Ok(previous)
}

/// Builds the tracker of a new session, and on a takeover of pinned maps
/// the `daemon_gap` record for the time the daemon was away.
pub(crate) fn resume(
    kernel: &Kernel,
    takeover: Takeover,
    previous: &Previous,
) -> (SequenceTracker, Option<RecordBody>) {
    let next_kernel_seq = kernel.next_sequence();
    let drops = kernel.dropped_events();
    if takeover == Takeover::Fresh {
        return (SequenceTracker::starting_at(next_kernel_seq, drops), None);
    }
    // NOTE: when this ledger contains no earlier session, the pins came from a
    // daemon with another state folder, and only numbers from the kernel's
    // counter on are tracked here; the events waiting in the ring buffer
    // are still recorded.
    let first = previous.first_kernel_seq.unwrap_or(next_kernel_seq);
    let mut tracker = SequenceTracker::resuming(first, &previous.recorded, previous.drops_recorded);
    tracker.declare_missing_below(Instant::now(), next_kernel_seq);
    let gap = RecordBody::DaemonGap(DaemonGap {
        from_ns: previous.last_time_ns,
        to_ns: wall_clock_ns(),
        first_kernel_seq: tracker.next(),
        next_kernel_seq,
        kernel_drop_counter: drops,
        programs: takeover.name().to_owned(),
    });
    (tracker, Some(gap))
}
