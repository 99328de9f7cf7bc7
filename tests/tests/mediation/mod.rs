//! What agents may do: each test runs `lupid-probe` under `lupid-agent run`
//! with policy P0 and checks the kernel's result, and where it matters the
//! ledger record of the decision.

mod connect;
mod exec;
mod open;
mod policy;
mod scope;
mod unix;
