//! The ledger writer: one thread that owns the ledger, commits records in
//! groups and signs checkpoints.
//!
//! Checkpoints are signed at a fixed interval when records were added since
//! the last one, on request, and when the writer stops. Each is appended to
//! the pin file or folder when the daemon was given one.
//!
//! Records arrive on a bounded channel. The writer takes everything that is
//! waiting (up to `MAX_BATCH`) and appends it as one `RocksDB` write batch
//! without waiting for the disk. A second thread, `ledger-sync`, then syncs
//! the write-ahead log and only after that acknowledges the senders that
//! asked to wait, so the writer appends the next batch while the disk
//! syncs the one before: group commit. The bounds make a slow disk push
//! back on the event reader instead of growing memory, so the kernel denies
//! actions once its ring buffer is full.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError, SyncSender},
    },
    thread,
    time::{Duration, Instant},
};

use lupid_ledger::{Ledger, RecordBody, SigningKey, WalSync};

const MAX_BATCH: usize = 4096;
const CHANNEL_DEPTH: usize = 64;
/// Written batches that may wait for a sync.
const UNSYNCED_DEPTH: usize = 4;

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

/// Senders waiting for a batch to become durable, with its last sequence
/// number.
type Unsynced = (Vec<mpsc::Sender<Ack>>, u64);

fn run(ledger: Ledger, inbox: &Receiver<Job>, failed: &AtomicBool, checkpoints: &Checkpoints) -> Ledger {
    let syncer = ledger.wal_sync();
    let (unsynced, to_sync) = mpsc::sync_channel::<Unsynced>(UNSYNCED_DEPTH);
    thread::scope(|scope| {
        thread::Builder::new()
            .name("ledger-sync".into())
            .spawn_scoped(scope, move || sync_loop(&syncer, &to_sync, failed))
            .expect("spawning the ledger sync thread");
        let ledger = write_loop(ledger, inbox, &unsynced, failed, checkpoints);
        // Dropping the sender ends the sync loop after its last sync, and
        // the scope waits for that.
        drop(unsynced);
        ledger
    })
}

/// Syncs the write-ahead log for every written batch, then acknowledges
/// its senders. One sync covers every batch written before it started.
fn sync_loop(syncer: &WalSync, to_sync: &Receiver<Unsynced>, failed: &AtomicBool) {
    while let Ok(first) = to_sync.recv() {
        let mut waiting = vec![first];
        waiting.extend(to_sync.try_iter());
        let outcome = syncer.sync().map_err(|e| {
            failed.store(true, Ordering::SeqCst);
            tracing::error!(error = %e, "syncing the ledger failed; labeled actions are now denied");
            format!("ledger sync failed: {e}")
        });
        for (senders, last_seq) in waiting {
            let ack: Ack = outcome.clone().map(|()| last_seq);
            for sender in senders {
                let _ = sender.send(ack.clone());
            }
        }
    }
}

fn write_loop(
    mut ledger: Ledger,
    inbox: &Receiver<Job>,
    unsynced: &SyncSender<Unsynced>,
    failed: &AtomicBool,
    checkpoints: &Checkpoints,
) -> Ledger {
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
                    commit(&mut ledger, &mut appends, unsynced, failed);
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
        commit(&mut ledger, &mut appends, unsynced, failed);
    }
    // The last checkpoint covers the daemon's stop record.
    sign_if_new(&mut ledger, checkpoints, &mut signed_size, failed);
    ledger
}

/// Appends every queued record as one batch and hands the senders that
/// wait to the sync thread, which acknowledges them once the batch is
/// durable. A failed append is acknowledged at once with its error.
fn commit(
    ledger: &mut Ledger,
    appends: &mut Vec<(Vec<RecordBody>, Option<mpsc::Sender<Ack>>)>,
    unsynced: &SyncSender<Unsynced>,
    failed: &AtomicBool,
) {
    if appends.is_empty() {
        return;
    }
    let now = wall_clock_ns();
    let records: Vec<(u64, RecordBody)> =
        appends.iter_mut().flat_map(|(records, _)| records.drain(..)).map(|body| (now, body)).collect();
    let count = records.len();
    let senders: Vec<mpsc::Sender<Ack>> = appends.drain(..).filter_map(|(_, sender)| sender).collect();
    match ledger.append_batch_unsynced(records) {
        Ok(appended) => {
            let last_seq = appended.last().map_or(0, |a| a.seq);
            // The send fails only when the sync thread is gone. `run` joins
            // that thread only after this loop has returned.
            let _ = unsynced.send((senders, last_seq));
        }
        Err(e) => {
            failed.store(true, Ordering::SeqCst);
            tracing::error!(error = %e, records = count, "ledger append failed; labeled actions are now denied");
            let ack: Ack = Err(format!("ledger append failed: {e}"));
            for sender in senders {
                let _ = sender.send(ack.clone());
            }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use lupid_ledger::{DaemonStop, Ledger, RecordBody, SigningKey, verify};

    use super::{Checkpoints, LedgerWriter};

    fn stop() -> RecordBody {
        RecordBody::DaemonStop(DaemonStop { reason: "test".into() })
    }

    #[test]
    fn writer_acknowledges_in_order_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger")).unwrap();
        let key = SigningKey::from_seed("lupid.test/writer", &[9; 32]).unwrap();
        let checkpoints =
            Checkpoints { key, interval: Duration::from_secs(3600), last_note: dir.path().join("checkpoint.last") };
        let (writer, thread) = LedgerWriter::spawn(ledger, checkpoints);

        for round in 0..50_u64 {
            writer.append((0..100).map(|_| stop()).collect()).unwrap();
            let last = writer.append_durable(vec![stop(), stop()]).unwrap();
            assert_eq!(last, round * 102 + 101, "the ack names the last record of its batch");
        }
        let note = writer.checkpoint().unwrap();
        assert!(note.contains("\n5100\n"), "the checkpoint covers every record before it: {note}");
        drop(writer);
        let ledger = thread.join().unwrap();
        assert_eq!(ledger.len(), 5101, "no checkpoint follows the last one, since nothing was added");
        drop(ledger);
        assert!(verify(&dir.path().join("ledger")).unwrap().is_intact());
    }
}
