//! `cargo xtask test`: every test tier, host unit tests then VM tests.

use std::time::Duration;

use anyhow::{Result, bail};

use crate::{Context, build, cmd, setup, step, vm};

pub(crate) fn run(ctx: &Context, timeout: Duration) -> Result<()> {
    let kernel = setup::run(ctx)?;

    step!("running host tests (VM tests are listed as ignored)");
    let host = cmd::run(build::cargo(ctx).args(["test", "--release", "--workspace"]), "see the failing tests above");
    if let Err(error) = &host {
        eprintln!("xtask: error: {error:#}");
    }

    // The VM tests run even when host tests failed, so one run shows both.
    let vm = vm::test_with_kernel(ctx, &kernel, None, timeout);
    if let Err(error) = &vm {
        eprintln!("xtask: error: {error:#}");
    }

    let verdict = |result: &Result<()>| if result.is_ok() { "passed" } else { "FAILED" };
    step!("summary: host tests {}, VM tests {}", verdict(&host), verdict(&vm));
    if host.is_err() || vm.is_err() {
        bail!("some tests failed; see the errors above");
    }
    Ok(())
}
