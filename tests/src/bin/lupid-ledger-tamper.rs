//! `lupid-ledger-tamper --ledger DIR --seq N`: changes one stored record of
//! a lupid ledger the way an attacker with root could, through `RocksDB`
//! itself, so the VM tests can check that `lupid-ledger verify` notices.
//!
//! It flips the lowest bit of the last byte of record N's stored value.
//! That byte is always in the record body, and for every record kind the
//! result still decodes (a flag byte goes from 0 to 1, an ASCII character
//! stays ASCII), so only the hash chain can reveal the change. The head
//! metadata is left as it was. The daemon must not hold the ledger open.
//!
//! Exit codes: 0 the byte was flipped, 2 any error.

use std::path::PathBuf;
use std::process::ExitCode;

use rocksdb::{ColumnFamilyDescriptor, DB, DBCompressionType, Options};

/// Column family of the records, keyed by the big-endian `seq`, as the
/// ledger's store names and lays it out.
const RECORDS_CF: &str = "records";

const USAGE: &str = "usage: lupid-ledger-tamper --ledger DIR --seq N";

fn main() -> ExitCode {
    let (ledger, seq) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("lupid-ledger-tamper: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match tamper(&ledger, seq) {
        Ok((offset, before, after)) => {
            println!("record {seq}: flipped byte {offset} from {before:#04x} to {after:#04x} in {}", ledger.display());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("lupid-ledger-tamper: {message}");
            ExitCode::from(2)
        }
    }
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<(PathBuf, u64), String> {
    let mut ledger = None;
    let mut seq = None;
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--ledger" => ledger = Some(PathBuf::from(value)),
            "--seq" => {
                seq = Some(
                    value.parse::<u64>().map_err(|_| format!("invalid --seq {value:?}: expected a record number"))?,
                )
            }
            _ => return Err(format!("unknown option {flag:?}")),
        }
    }
    Ok((ledger.ok_or("missing --ledger")?, seq.ok_or("missing --seq")?))
}

/// Flips the lowest bit of the last byte of record `seq` and writes the
/// value back. Returns the byte's offset and its old and new values.
fn tamper(ledger: &std::path::Path, seq: u64) -> Result<(usize, u8, u8), String> {
    // LZ4 as the ledger uses, because the workspace builds RocksDB with no
    // other compression.
    let mut options = Options::default();
    options.set_compression_type(DBCompressionType::Lz4);
    // Every column family must be opened, or RocksDB refuses the database.
    let names = DB::list_cf(&options, ledger)
        .map_err(|error| format!("failed to list the column families of {}: {error}", ledger.display()))?;
    let families = names.iter().map(|name| {
        let mut family_options = Options::default();
        family_options.set_compression_type(DBCompressionType::Lz4);
        ColumnFamilyDescriptor::new(name, family_options)
    });
    let db = DB::open_cf_descriptors(&options, ledger, families)
        .map_err(|error| format!("failed to open {}: {error}", ledger.display()))?;
    let records =
        db.cf_handle(RECORDS_CF).ok_or_else(|| format!("{} has no column family {RECORDS_CF:?}", ledger.display()))?;

    let key = seq.to_be_bytes();
    let mut value = db
        .get_cf(records, key)
        .map_err(|error| format!("failed to read record {seq}: {error}"))?
        .ok_or_else(|| format!("record {seq} not found in {}", ledger.display()))?;
    let offset = value.len().checked_sub(1).ok_or_else(|| format!("record {seq} is stored as an empty value"))?;
    let before = value[offset];
    value[offset] ^= 1;
    db.put_cf(records, key, &value).map_err(|error| format!("failed to write record {seq}: {error}"))?;
    db.flush_cf(records).map_err(|error| format!("failed to flush record {seq}: {error}"))?;
    Ok((offset, before, value[offset]))
}
