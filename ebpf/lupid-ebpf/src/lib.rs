//! Empty host-side library, so the workspace can name this crate. The
//! kernel programs are the `lupid` binary, built for `bpfel-unknown-none`.
#![no_std]
