//! Reading the ledger through the `lupid-ledger` command, as an incident
//! responder would, never through the ledger library.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::LEDGER_BIN;
use super::process::{self, Outcome};

/// How long a test waits for the daemon to append the records it expects.
const APPEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one `lupid-ledger` command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_mins(1);

/// A ledger directory, read and checked with `lupid-ledger`.
pub(crate) struct Ledger {
    path: PathBuf,
}

impl Ledger {
    pub(crate) fn at(path: PathBuf) -> Self {
        Self { path }
    }

    /// Returns the ledger directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `lupid-ledger SUBCOMMAND --ledger PATH EXTRA...`.
    pub(crate) fn command(&self, subcommand: &str, extra: &[&str]) -> Outcome {
        let mut command = Command::new(LEDGER_BIN);
        command.arg(subcommand).arg("--ledger").arg(&self.path).args(extra);
        process::run(&mut command, COMMAND_TIMEOUT)
    }

    /// Returns every record of `lupid-ledger export`, one JSON object per
    /// line. Panics when the command fails or prints a line that is not a
    /// JSON object.
    pub(crate) fn export(&self) -> Vec<Value> {
        self.try_export().unwrap_or_else(|message| panic!("{message}"))
    }

    fn try_export(&self) -> Result<Vec<Value>, String> {
        let outcome = self.command("export", &[]);
        if outcome.code != 0 {
            return Err(format!("lupid-ledger export --ledger {} failed; {outcome}", self.path.display()));
        }
        outcome
            .stdout
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| match serde_json::from_str::<Value>(line) {
                Ok(record) if record.is_object() => Ok(record),
                Ok(_) => Err(format!("lupid-ledger export printed a line that is not a JSON object: {line}")),
                Err(error) => Err(format!("lupid-ledger export printed invalid JSON ({error}): {line}")),
            })
            .collect()
    }

    /// Exports the ledger until `ready` accepts the records, and returns
    /// them. The daemon appends asynchronously, so a record can lag the
    /// action that caused it. Panics after 30 s, naming `expected`.
    pub(crate) fn wait_for(&self, expected: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        self.wait_for_within(APPEND_TIMEOUT, expected, ready)
    }

    /// As [`Ledger::wait_for`], but panics after `timeout`, for a test that
    /// waits for thousands of records.
    pub(crate) fn wait_for_within(
        &self,
        timeout: Duration,
        expected: &str,
        ready: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.try_export() {
                Ok(records) if ready(&records) => return records,
                Ok(records) => format!("the export held {} records", records.len()),
                Err(message) => message,
            };
            assert!(Instant::now() < deadline, "the ledger did not show {expected} within {timeout:?}; {last}");
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// Runs `lupid-ledger verify`.
    pub(crate) fn verify(&self) -> Outcome {
        self.command("verify", &[])
    }
}

/// Returns the records of `kind` for agent name `agent`.
pub(crate) fn records_of<'a>(records: &'a [Value], kind: &str, agent: &str) -> Vec<&'a Value> {
    records.iter().filter(|record| record["kind"] == kind && record["agent"] == agent).collect()
}

/// Returns the decision records of agent `agent` on `hook`.
pub(crate) fn decisions<'a>(records: &'a [Value], agent: &str, hook: &str) -> Vec<&'a Value> {
    records_of(records, "decision", agent).into_iter().filter(|record| record["hook"] == hook).collect()
}

/// Returns the first decision of `agent` on `hook` with this verdict.
pub(crate) fn find_decision<'a>(records: &'a [Value], agent: &str, hook: &str, verdict: &str) -> Option<&'a Value> {
    decisions(records, agent, hook).into_iter().find(|record| record["verdict"] == verdict)
}

/// Returns an unsigned integer field, panicking with the record when it is
/// missing or of another type.
pub(crate) fn u64_field(record: &Value, key: &str) -> u64 {
    record[key].as_u64().unwrap_or_else(|| panic!("record has no unsigned integer {key:?}: {record}"))
}

/// Returns the inclusive `kernel_seq` ranges of the decision records and
/// the `events_lost` records, sorted by their first number.
pub(crate) fn kernel_seq_ranges(records: &[Value]) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = records
        .iter()
        .filter_map(|record| match record["kind"].as_str() {
            Some("decision") => {
                let seq = u64_field(record, "kernel_seq");
                Some((seq, seq))
            }
            Some("events_lost") => Some((u64_field(record, "first_kernel_seq"), u64_field(record, "last_kernel_seq"))),
            _ => None,
        })
        .collect();
    ranges.sort_unstable();
    ranges
}

/// Waits for the first decision of `agent` on `hook` with `verdict` and
/// returns it with every record exported at that time.
pub(crate) fn wait_decision(ledger: &Ledger, agent: &str, hook: &str, verdict: &str) -> (Value, Vec<Value>) {
    wait_decision_where(ledger, agent, hook, verdict, |_| true)
}

/// As [`wait_decision`], for the first decision that `matches` accepts.
pub(crate) fn wait_decision_where(
    ledger: &Ledger,
    agent: &str,
    hook: &str,
    verdict: &str,
    matches: impl Fn(&Value) -> bool,
) -> (Value, Vec<Value>) {
    let find = |records: &[Value]| {
        decisions(records, agent, hook)
            .into_iter()
            .find(|record| record["verdict"] == verdict && matches(record))
            .cloned()
    };
    let records =
        ledger.wait_for(&format!("a {verdict} decision of {agent} on {hook}"), |records| find(records).is_some());
    (find(&records).expect("wait_for found it"), records)
}
