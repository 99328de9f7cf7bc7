//! The ledger writer: one thread that owns the ledger and commits records
//! in groups.
//!
//! Records arrive on a bounded channel. The writer takes everything that is
//! waiting (up to `MAX_BATCH`), appends it as one synced `RocksDB` write
//! batch, and only then acknowledges the senders that asked to wait. The
//! bound makes a slow disk push back on the event reader instead of growing
//! memory; the kernel then denies actions once its ring buffer is full.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, Receiver, SyncSender},
    },
    thread,
};

use lupid_ledger::{Ledger, RecordBody};

const MAX_BATCH: usize = 4096;
const CHANNEL_DEPTH: usize = 64;

/// Outcome of a commit that a sender waits for: the last sequence number, or
/// the error.
pub(crate) type Ack = Result<u64, String>;

struct Job {
    records: Vec<RecordBody>,
    ack: Option<mpsc::Sender<Ack>>,
}

/// A handle for sending records to the writer thread.
#[derive(Clone)]
pub(crate) struct LedgerWriter {
    jobs: SyncSender<Job>,
    /// Set once an append failed; the daemon then denies every labeled
    /// action, because an action that cannot be recorded is not allowed.
    pub(crate) failed: Arc<AtomicBool>,
}

impl LedgerWriter {
    /// Starts the writer thread. It ends when every handle is dropped.
    pub(crate) fn spawn(ledger: Ledger) -> (Self, thread::JoinHandle<Ledger>) {
        let (jobs, inbox) = mpsc::sync_channel(CHANNEL_DEPTH);
        let failed = Arc::new(AtomicBool::new(false));
        let thread_failed = failed.clone();
        let handle = thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || run(ledger, &inbox, &thread_failed))
            .expect("spawning the ledger writer thread");
        (Self { jobs, failed }, handle)
    }

    /// Appends records and waits until they are durable. Returns the
    /// sequence number of the last one.
    pub(crate) fn append_durable(&self, records: Vec<RecordBody>) -> Ack {
        let (ack, done) = mpsc::channel();
        self.jobs.send(Job { records, ack: Some(ack) }).map_err(|_| "the ledger writer has stopped".to_owned())?;
        done.recv().map_err(|_| "the ledger writer stopped before committing".to_owned())?
    }

    /// Queues records without waiting for the commit.
    pub(crate) fn append(&self, records: Vec<RecordBody>) -> Result<(), String> {
        self.jobs.send(Job { records, ack: None }).map_err(|_| "the ledger writer has stopped".to_owned())
    }
}

fn run(mut ledger: Ledger, inbox: &Receiver<Job>, failed: &AtomicBool) -> Ledger {
    while let Ok(first) = inbox.recv() {
        let mut jobs = vec![first];
        let mut count = jobs[0].records.len();
        while count < MAX_BATCH {
            match inbox.try_recv() {
                Ok(job) => {
                    count += job.records.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let now = wall_clock_ns();
        let records: Vec<(u64, RecordBody)> =
            jobs.iter_mut().flat_map(|job| job.records.drain(..)).map(|body| (now, body)).collect();
        let result = ledger.append_batch(records);
        let ack: Ack = match &result {
            Ok(appended) => Ok(appended.last().map_or(0, |a| a.seq)),
            Err(e) => {
                failed.store(true, Ordering::SeqCst);
                tracing::error!(error = %e, records = count, "ledger append failed; labeled actions are now denied");
                Err(format!("ledger append failed: {e}"))
            }
        };
        for job in jobs {
            if let Some(sender) = job.ack {
                let _ = sender.send(ack.clone());
            }
        }
    }
    ledger
}

/// Nanoseconds since the Unix epoch, for record timestamps.
pub(crate) fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
