//! The kernel programs' failure paths: an action lupid cannot decide or
//! cannot record is denied with EPERM and counted in the `failures` of
//! `lupid-agent status`, and never allowed.

mod daemon_gone;
pub(crate) mod ring;
mod unix;
