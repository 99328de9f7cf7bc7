//! Support code for lupid's privileged tests.
//!
//! The library contains the parts of `lupid-probe` that need no privileges, so
//! the host's `cargo test` checks them: the command line grammar, the report
//! line format and the exit codes. The VM tests live in `tests/vm.rs` and
//! drive the real `lupid-agent` and `lupid-ledger` binaries.

pub mod cage;
pub mod errno;
pub mod probe;
pub mod uring;
