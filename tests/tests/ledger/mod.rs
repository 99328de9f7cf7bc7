//! What the daemon writes to the ledger, read back with `lupid-ledger
//! export` and checked with `lupid-ledger verify`.

mod records;
mod tamper;
