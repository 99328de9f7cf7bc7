//! The ledger writer: one thread that owns the ledger, commits records in
//! groups and signs checkpoints.
//!
//! Checkpoints are signed at a fixed interval when records were added since
//! the last one, on request, and when the writer stops. Each is appended to
//! the pin file or folder when the daemon was given one.
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
        mpsc::{self, Receiver, RecvTimeoutError, SyncSender},
    },
    thread,
    time::{Duration, Instant},
};

use lupid_ledger::{Ledger, RecordBody, SigningKey};

const MAX_BATCH: usize = 4096;
const CHANNEL_DEPTH: usize = 64;

/// Outcome of a commit that a sender waits for: the last sequence number, or
/// the error.
pub(crate) type Ack = Result<u64, String>;

enum Job {
    Append {
        records: Vec<RecordBody>,
        ack: Option<mpsc::Sender<Ack>>,
    },
    /// Sign a checkpoint now and return its note.
    Checkpoint {
        done: mpsc::Sender<Result<String, String>>,
    },
}

/// Checkpoint settings of the writer: the signing key and the interval.
pub(crate) struct Checkpoints {
    pub(crate) key: SigningKey,
    pub(crate) interval: Duration,
    /// File that receives the newest note, for the next start's check.
    pub(crate) last_note: std::path::PathBuf,
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
    pub(crate) fn spawn(ledger: Ledger, checkpoints: Checkpoints) -> (Self, thread::JoinHandle<Ledger>) {
        let (jobs, inbox) = mpsc::sync_channel(CHANNEL_DEPTH);
        let failed = Arc::new(AtomicBool::new(false));
        let thread_failed = failed.clone();
        let handle = thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || run(ledger, &inbox, &thread_failed, &checkpoints))
            .expect("spawning the ledger writer thread");
        (Self { jobs, failed }, handle)
    }

    /// Appends records and waits until they are durable. Returns the
    /// sequence number of the last one.
    pub(crate) fn append_durable(&self, records: Vec<RecordBody>) -> Ack {
        let (ack, done) = mpsc::channel();
        self.jobs
            .send(Job::Append { records, ack: Some(ack) })
            .map_err(|_| "the ledger writer has stopped".to_owned())?;
        done.recv().map_err(|_| "the ledger writer stopped before committing".to_owned())?
    }

    /// Queues records without waiting for the commit.
    pub(crate) fn append(&self, records: Vec<RecordBody>) -> Result<(), String> {
        self.jobs.send(Job::Append { records, ack: None }).map_err(|_| "the ledger writer has stopped".to_owned())
    }

    /// Signs a checkpoint now and returns its note.
    pub(crate) fn checkpoint(&self) -> Result<String, String> {
        let (done, result) = mpsc::channel();
        self.jobs.send(Job::Checkpoint { done }).map_err(|_| "the ledger writer has stopped".to_owned())?;
        result.recv().map_err(|_| "the ledger writer stopped before signing".to_owned())?
    }
}

fn run(mut ledger: Ledger, inbox: &Receiver<Job>, failed: &AtomicBool, checkpoints: &Checkpoints) -> Ledger {
    let mut last_checkpoint = Instant::now();
    let mut signed_size = None;
    loop {
        let wait = checkpoints.interval.saturating_sub(last_checkpoint.elapsed());
        let first = match inbox.recv_timeout(wait) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                sign_if_new(&mut ledger, checkpoints, &mut signed_size, failed);
                last_checkpoint = Instant::now();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut appends = Vec::new();
        let mut count = 0;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Append { records, ack } => {
                    count += records.len();
                    appends.push((records, ack));
                }
                Job::Checkpoint { done } => {
                    commit(&mut ledger, &mut appends, failed);
                    let signed = sign(&mut ledger, checkpoints, failed);
                    if let Ok(note) = &signed {
                        signed_size = Some(ledger.len());
                        tracing::debug!(bytes = note.len(), "checkpoint signed on request");
                    }
                    let _ = done.send(signed);
                }
            }
            if count < MAX_BATCH {
                next = inbox.try_recv().ok();
            }
        }
        commit(&mut ledger, &mut appends, failed);
    }
    // The last checkpoint covers the daemon's stop record.
    sign_if_new(&mut ledger, checkpoints, &mut signed_size, failed);
    ledger
}

/// Appends every queued record as one synced batch, then acknowledges.
fn commit(ledger: &mut Ledger, appends: &mut Vec<(Vec<RecordBody>, Option<mpsc::Sender<Ack>>)>, failed: &AtomicBool) {
    if appends.is_empty() {
        return;
    }
    let now = wall_clock_ns();
    let records: Vec<(u64, RecordBody)> =
        appends.iter_mut().flat_map(|(records, _)| records.drain(..)).map(|body| (now, body)).collect();
    let count = records.len();
    let ack: Ack = match ledger.append_batch(records) {
        Ok(appended) => Ok(appended.last().map_or(0, |a| a.seq)),
        Err(e) => {
            failed.store(true, Ordering::SeqCst);
            tracing::error!(error = %e, records = count, "ledger append failed; labeled actions are now denied");
            Err(format!("ledger append failed: {e}"))
        }
    };
    for (_, sender) in appends.drain(..) {
        if let Some(sender) = sender {
            let _ = sender.send(ack.clone());
        }
    }
}

fn sign(ledger: &mut Ledger, checkpoints: &Checkpoints, failed: &AtomicBool) -> Result<String, String> {
    match ledger.checkpoint(&checkpoints.key) {
        Ok(checkpoint) => {
            tracing::info!(tree_size = checkpoint.tree_size, "checkpoint signed");
            if let Err(e) = super::pins::save_last(&checkpoints.last_note, &checkpoint.note) {
                // The checkpoint is stored in the ledger; only the next
                // start's quick check loses this copy.
                tracing::error!(file = %checkpoints.last_note.display(), error = %e, "failed to save the newest checkpoint");
            }
            Ok(checkpoint.note)
        }
        Err(lupid_ledger::LedgerError::CheckpointSink { sink, source, .. }) => {
            // The checkpoint is stored; only the copy off the host failed.
            tracing::error!(sink = %sink.display(), error = %source, "failed to pin a checkpoint");
            Err(format!("the checkpoint is signed and stored, but could not be pinned to {}: {source}", sink.display()))
        }
        Err(e) => {
            failed.store(true, Ordering::SeqCst);
            tracing::error!(error = %e, "signing a checkpoint failed; labeled actions are now denied");
            Err(format!("signing a checkpoint failed: {e}"))
        }
    }
}

/// Signs a checkpoint unless the last one already covers every record.
fn sign_if_new(ledger: &mut Ledger, checkpoints: &Checkpoints, signed_size: &mut Option<u64>, failed: &AtomicBool) {
    if *signed_size == Some(ledger.len()) || ledger.is_empty() {
        return;
    }
    if sign(ledger, checkpoints, failed).is_ok() {
        // The checkpoint is itself a record, so the ledger grew by one.
        *signed_size = Some(ledger.len());
    }
}

/// Nanoseconds since the Unix epoch, for record timestamps.
pub(crate) fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
