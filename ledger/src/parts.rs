//! Large appends written in parts, two stages at a time.
//!
//! An append encodes, hashes and indexes its records (the preparation),
//! then writes them to RocksDB and syncs the write-ahead log. Neither stage
//! needs the other's CPU, so [`crate::Ledger`] splits a large append into
//! parts of [`PART_RECORDS`] records: the caller's thread prepares each
//! part while a second thread writes the part before it.
//!
//! Every part is a complete `WriteBatch` (records, tree nodes, index
//! entries and the head after its last record), so the ledger on disk is
//! consistent after each one. Only the last part is synced. Its sync also
//! makes the earlier parts durable, because RocksDB syncs the write-ahead
//! log up to and including that write, and the earlier parts come before
//! it in the log. A crash before that sync can keep any prefix of the
//! parts, none of which was acknowledged to the caller.

use std::{
    path::Path,
    sync::mpsc::{Receiver, sync_channel},
    thread,
};

use rocksdb::{DB, WriteBatch, WriteOptions};

use crate::error::LedgerError;

/// Records per part of a large append. An append of at most this many
/// records is written as one synced batch.
pub const PART_RECORDS: usize = 1024;

/// One prepared part of an append.
pub(crate) struct Part {
    pub(crate) batch: WriteBatch,
    /// Sequence numbers of the first and last record in `batch`.
    pub(crate) first: u64,
    pub(crate) last: u64,
    /// Whether the write waits for the write-ahead log to reach the disk.
    pub(crate) sync: bool,
}

/// Writes the parts that `prepare` returns in order, calling it for the next
/// part while the one before is written, until it returns `None` or an
/// error. Returns the number of parts written, and the first error.
pub(crate) fn write_parts(
    db: &DB,
    path: &Path,
    mut prepare: impl FnMut() -> Option<Result<Part, LedgerError>>,
) -> (usize, Result<(), LedgerError>) {
    thread::scope(|scope| {
        // The channel keeps one part while the writer writes another, so at
        // most three parts are in memory: queued, written and prepared.
        let (sender, receiver) = sync_channel(1);
        let writer = scope.spawn(move || write_received(db, path, &receiver));
        let mut prepared = Ok(());
        while let Some(part) = prepare() {
            match part {
                Ok(part) => {
                    if sender.send(part).is_err() {
                        // The writer stopped at an error, which it returns.
                        break;
                    }
                }
                Err(error) => {
                    prepared = Err(error);
                    break;
                }
            }
        }
        drop(sender);
        let (written, result) = writer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (written, result.and(prepared))
    })
}

/// Writes each received part until the sender is gone or a write fails.
fn write_received(db: &DB, path: &Path, receiver: &Receiver<Part>) -> (usize, Result<(), LedgerError>) {
    let mut written = 0;
    for part in receiver {
        if let Err(error) = write_part(db, path, part) {
            return (written, Err(error));
        }
        written += 1;
    }
    (written, Ok(()))
}

/// Writes one part as one `WriteBatch`.
pub(crate) fn write_part(db: &DB, path: &Path, part: Part) -> Result<(), LedgerError> {
    let mut options = WriteOptions::default();
    options.set_sync(part.sync);
    let Part { batch, first, last, .. } = part;
    db.write_opt(batch, &options).map_err(|source| LedgerError::Write { path: path.to_owned(), first, last, source })
}
