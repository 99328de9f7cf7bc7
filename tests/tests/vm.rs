//! Tests of lupid against a real kernel.
//!
//! They need root and a kernel running the BPF LSM, so each is ignored on a
//! host; `cargo xtask vm-test` runs them in a VM with `--ignored
//! --test-threads=1`. There a missing requirement fails the test: these
//! tests never pass without running.
//!
//! The VM provides `/usr/local/bin/{lupid-agent,lupid-ledger,lupid-probe}`,
//! busybox at `/bin/busybox` with its applets in `/bin`, and the address
//! 203.0.113.7/32 on `lo`. `common` describes the fixture.

mod bypass;
mod cage;
mod common;
mod failure;
mod leases;
mod ledger;
mod mediation;
