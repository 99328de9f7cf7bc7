//! `cargo xtask bench`: build and run the ledger benchmark
//! (`ledger/benches/ledger.rs`), print its table and write it to
//! `<target>/bench/ledger.md`.
//!
//! Benchmarks are not part of `cargo xtask test` or CI: they write
//! gigabytes to disk and their numbers depend on the machine.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{Context, build, cmd, step};

/// Name of the benchmark target in the ledger crate.
const BENCH_TARGET: &str = "ledger";

#[derive(clap::Args)]
pub(crate) struct BenchArgs {
    /// Number of records each measurement writes or reads.
    #[arg(long, value_name = "COUNT", default_value_t = 1_000_000)]
    records: u64,
    /// Records per synced append batch.
    #[arg(long, value_name = "COUNT", default_value_t = 4096)]
    batch: u64,
    /// Folder in which the benchmark creates its temporary databases
    /// (default: the system's temporary folder). They take about 0.5 GB
    /// per million records.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub(crate) fn run(ctx: &Context, args: &BenchArgs) -> Result<()> {
    step!("building every workspace target (release), including the ledger benchmark");
    let mut build = build::cargo(ctx);
    build
        .args(["build", "--release", "--workspace", "--all-targets", "--message-format=json-render-diagnostics"])
        .stdout(Stdio::piped());
    let messages = cmd::output(&mut build, "fix the compile error above")?;
    let executable = find_bench_executable(&messages)?;

    step!("running {} --records {} --batch {}", executable.display(), args.records, args.batch);
    let mut bench = Command::new(&executable);
    bench.args(["--records", &args.records.to_string(), "--batch", &args.batch.to_string()]);
    if let Some(dir) = &args.dir {
        bench.arg("--dir").arg(dir);
    }
    let table = cmd::output(&mut bench, "see the benchmark's error above")?;
    print!("{table}");

    let report_dir = target_dir(ctx)?.join("bench");
    std::fs::create_dir_all(&report_dir).with_context(|| format!("failed to create {}", report_dir.display()))?;
    let report = report_dir.join("ledger.md");
    std::fs::write(&report, &table).with_context(|| format!("failed to write {}", report.display()))?;
    step!("table written to {}", report.display());
    Ok(())
}

/// Returns the benchmark executable that cargo's JSON messages name.
fn find_bench_executable(messages: &str) -> Result<PathBuf> {
    for line in messages.lines().filter(|line| line.starts_with('{')) {
        let message: Value = serde_json::from_str(line).with_context(|| format!("invalid JSON from cargo: {line}"))?;
        if message["reason"] != "compiler-artifact" || message["target"]["name"] != BENCH_TARGET {
            continue;
        }
        let is_bench =
            message["target"]["kind"].as_array().is_some_and(|kinds| kinds.iter().any(|kind| kind == "bench"));
        if let (true, Some(executable)) = (is_bench, message["executable"].as_str()) {
            return Ok(PathBuf::from(executable));
        }
    }
    bail!("cargo built no benchmark named `{BENCH_TARGET}`; it is expected at ledger/benches/{BENCH_TARGET}.rs")
}

/// Returns cargo's target folder, which honours `CARGO_TARGET_DIR`.
fn target_dir(ctx: &Context) -> Result<PathBuf> {
    let metadata =
        cmd::output(build::cargo(ctx).args(["metadata", "--format-version", "1", "--no-deps"]), "check Cargo.toml")?;
    let metadata: Value = serde_json::from_str(&metadata).context("`cargo metadata` printed invalid JSON")?;
    metadata["target_directory"].as_str().map(PathBuf::from).context("`cargo metadata` printed no target_directory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_executable_found() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"ledger","kind":["lib"]},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"ledger","kind":["bench"]},"executable":"/t/release/deps/ledger-01"}"#,
            "\n",
        );
        let found = find_bench_executable(messages).expect("benchmark listed");
        assert_eq!(found, PathBuf::from("/t/release/deps/ledger-01"));
    }

    #[test]
    fn bench_executable_missing() {
        let messages = r#"{"reason":"build-finished","success":true}"#;
        assert!(find_bench_executable(messages).is_err());
    }
}
