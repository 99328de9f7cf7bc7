//! `cargo xtask build`: release binaries and the VM test executable.
//!
//! Everything builds with `--release` because the workspace uses one profile
//! for tests and binaries, so `RocksDB`'s C++ compiles once per target folder.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{Context, cmd, step};

/// Binaries that the VM needs, as named by their `[[bin]]` targets.
pub(crate) const BINARIES: &[&str] = &["lupid-agent", "lupid-ledger", "lupid-probe", "lupid-ledger-tamper"];

/// Crate and integration test target that hold the privileged tests.
const VM_TEST_PACKAGE: &str = "lupid-tests";
const VM_TEST_TARGET: &str = "vm";

/// Paths of what `build` produced.
pub(crate) struct Artifacts {
    /// `<target>/release`, where the binaries in [`BINARIES`] are.
    pub(crate) release_dir: PathBuf,
    /// Test executable of `tests/tests/vm.rs`.
    pub(crate) vm_tests: PathBuf,
}

pub(crate) fn run(ctx: &Context) -> Result<Artifacts> {
    let (release_dir, messages) = build_all(ctx)?;
    let vm_tests = find_test_executable(&messages, VM_TEST_TARGET)?.with_context(|| {
        format!(
            "cargo built no test target named `{VM_TEST_TARGET}` in {VM_TEST_PACKAGE}; \
             it is expected at tests/tests/{VM_TEST_TARGET}.rs"
        )
    })?;
    step!("VM test executable: {}", vm_tests.display());
    Ok(Artifacts { release_dir, vm_tests })
}

/// Builds the workspace binaries and returns the folder that contains them.
pub(crate) fn build_binaries(ctx: &Context) -> Result<PathBuf> {
    build_all(ctx).map(|(release_dir, _)| release_dir)
}

/// Builds every target of every workspace member in one cargo invocation
/// and returns the release folder with cargo's JSON messages.
///
/// Every build goes through this one command line on purpose. Cargo
/// resolves features per invocation: `cargo build --bins` leaves out
/// dev-dependencies and `-p PACKAGE` leaves out the other members, and
/// either can change the features of a crate below librocksdb-sys (libc,
/// for one). That changes librocksdb-sys's fingerprint and compiles RocksDB
/// a second time, another 25 minutes. `--workspace --all-targets` resolves
/// exactly as `cargo test --release --workspace` does, so the host tests
/// reuse everything built here.
fn build_all(ctx: &Context) -> Result<(PathBuf, String)> {
    step!("building every workspace target (release; a cold RocksDB build takes about 25 min)");
    let mut command = cargo(ctx);
    command
        .args(["build", "--release", "--workspace", "--all-targets", "--message-format=json-render-diagnostics"])
        .stdout(Stdio::piped());
    let messages =
        cmd::output(&mut command, "fix the compile error above, or run `cargo xtask setup` if a tool is missing")?;
    let release_dir = target_dir(ctx)?.join("release");
    for name in BINARIES {
        let path = release_dir.join(name);
        if !path.is_file() {
            bail!(
                "`cargo build --release --workspace --all-targets` produced no {}; \
                 the workspace must define a [[bin]] named {name}",
                path.display()
            );
        }
    }
    Ok((release_dir, messages))
}

fn find_test_executable(messages: &str, target: &str) -> Result<Option<PathBuf>> {
    for line in messages.lines().filter(|line| line.starts_with('{')) {
        let message: Value = serde_json::from_str(line).with_context(|| format!("invalid JSON from cargo: {line}"))?;
        if message["reason"] != "compiler-artifact" || message["target"]["name"] != target {
            continue;
        }
        let is_test = message["target"]["kind"].as_array().is_some_and(|kinds| kinds.iter().any(|kind| kind == "test"));
        if let (true, Some(executable)) = (is_test, message["executable"].as_str()) {
            return Ok(Some(PathBuf::from(executable)));
        }
    }
    Ok(None)
}

/// Returns cargo's target folder, which honours `CARGO_TARGET_DIR` and
/// `build.target-dir`.
fn target_dir(ctx: &Context) -> Result<PathBuf> {
    let metadata =
        cmd::output(cargo(ctx).args(["metadata", "--format-version", "1", "--no-deps"]), "check Cargo.toml")?;
    let metadata: Value = serde_json::from_str(&metadata).context("`cargo metadata` printed invalid JSON")?;
    metadata["target_directory"].as_str().map(PathBuf::from).context("`cargo metadata` printed no target_directory")
}

/// A cargo command run in the workspace root, with the same cargo binary
/// that runs xtask.
pub(crate) fn cargo(ctx: &Context) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(&ctx.workspace);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_executable_found_in_messages() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"lupid-probe","kind":["bin"]},"executable":"/t/release/lupid-probe"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"vm","kind":["test"]},"executable":"/t/release/deps/vm-0123"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
            "\n",
        );
        let found = find_test_executable(messages, "vm").expect("valid JSON");
        assert_eq!(found, Some(PathBuf::from("/t/release/deps/vm-0123")));
    }

    #[test]
    fn test_executable_missing_target() {
        let messages = r#"{"reason":"compiler-artifact","target":{"name":"vm","kind":["bin"]},"executable":"/t/vm"}"#;
        assert_eq!(find_test_executable(messages, "vm").expect("valid JSON"), None);
    }
}
