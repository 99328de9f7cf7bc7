//! One pass over the stored records in key order, read and hashed on a
//! second thread.
//!
//! [`crate::verify()`] decodes, re-encodes and checks each record, and
//! builds the Merkle tree, on its own thread. Reading the table files and
//! the SHA-256 leaf hash of each value depend on nothing that the checks
//! compute, so a scan thread does them ahead of the checks. In a profile of
//! verify on 1 million records, the scan thread used about as much CPU time
//! as the checks.
//!
//! The scan thread copies the keys and values of [`BATCH_RECORDS`] records
//! at a time, or fewer once they reach [`BATCH_BYTES`], into one buffer and
//! sends it, with their leaf hashes, over a bounded channel. When the
//! checks stop early, the scan thread stops at its next send.

use std::{
    sync::mpsc::{Receiver, SyncSender, sync_channel},
    thread,
};

use crate::{codec::leaf_hash, error::LedgerError, reader::LedgerReader, record::Hash};

/// Records per batch that the scan thread sends.
const BATCH_RECORDS: usize = 1024;

/// Bytes of keys and values from which the scan thread sends a batch
/// before it has [`BATCH_RECORDS`] records, so that a store of huge
/// (tampered) values cannot make it copy gigabytes ahead of the checks.
const BATCH_BYTES: usize = 1 << 20;

/// Batches that the scan thread may read ahead of the checks.
const QUEUED_BATCHES: usize = 4;

/// The keys and values of consecutive records, copied out of the
/// iterator, with their leaf hashes.
struct Batch {
    bytes: Vec<u8>,
    /// For each record: the end of its key and of its value in `bytes`, and
    /// the leaf hash of its value. Each key starts where the value before it
    /// ends.
    entries: Vec<(usize, usize, Hash)>,
}

impl Batch {
    fn new() -> Self {
        Self { bytes: Vec::with_capacity(BATCH_RECORDS * 256), entries: Vec::with_capacity(BATCH_RECORDS) }
    }

    fn push(&mut self, key: &[u8], value: &[u8]) {
        self.bytes.extend_from_slice(key);
        let key_end = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.entries.push((key_end, self.bytes.len(), leaf_hash(value)));
    }
}

/// Calls `check` with the key, value and leaf hash of every record in key
/// order, until it returns `false` or an error. A read error of the scan is
/// returned after `check` has seen every record read before it.
pub(crate) fn for_each_record(
    reader: &LedgerReader,
    mut check: impl FnMut(&[u8], &[u8], Hash) -> Result<bool, LedgerError>,
) -> Result<(), LedgerError> {
    thread::scope(|scope| {
        let (sender, receiver) = sync_channel(QUEUED_BATCHES);
        let scan = scope.spawn(move || read_batches(reader, &sender));
        let checked = check_batches(&receiver, &mut check);
        // Dropping the receiver ends the scan at its next send when the
        // checks stopped early.
        drop(receiver);
        let scanned = scan.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        match checked {
            Ok(true) => scanned,
            Ok(false) => Ok(()),
            Err(error) => Err(error),
        }
    })
}

/// Passes each record of each batch to `check`. Returns `true` when every
/// batch was checked, `false` when `check` stopped.
fn check_batches(
    receiver: &Receiver<Batch>,
    check: &mut impl FnMut(&[u8], &[u8], Hash) -> Result<bool, LedgerError>,
) -> Result<bool, LedgerError> {
    for batch in receiver {
        let mut start = 0;
        for &(key_end, value_end, hash) in &batch.entries {
            if !check(&batch.bytes[start..key_end], &batch.bytes[key_end..value_end], hash)? {
                return Ok(false);
            }
            start = value_end;
        }
    }
    Ok(true)
}

/// Reads every record in key order and sends them in batches, until the
/// records end or the receiver is gone.
fn read_batches(reader: &LedgerReader, sender: &SyncSender<Batch>) -> Result<(), LedgerError> {
    let mut records = reader.record_scan()?;
    let mut batch = Batch::new();
    while let (Some(key), Some(value)) = (records.key(), records.value()) {
        batch.push(key, value);
        let full = batch.entries.len() == BATCH_RECORDS || batch.bytes.len() >= BATCH_BYTES;
        if full && sender.send(std::mem::replace(&mut batch, Batch::new())).is_err() {
            return Ok(());
        }
        records.next();
    }
    // The records read before an error are checked first, as in a pass
    // that stops there.
    let status = records.status();
    if !batch.entries.is_empty() && sender.send(batch).is_err() {
        return Ok(());
    }
    status.map_err(|source| LedgerError::ReadRecords { path: reader.path().to_owned(), source })
}
