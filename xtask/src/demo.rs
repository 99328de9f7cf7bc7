//! `cargo xtask demo`: runs the demo script on this host when its kernel runs
//! BPF LSM programs, and otherwise in the Debian 6.1 VM.

use std::fs;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::initramfs::{self, Contents, DEMO_SCRIPT};
use crate::vm::{self, Mode};
use crate::{Context, build, cmd, setup, step};

pub(crate) fn run(ctx: &Context, force_vm: bool, timeout: Duration) -> Result<()> {
    match host_bpf_lsm() {
        Ok(()) if !force_vm => run_on_host(ctx),
        Ok(()) => {
            step!("--vm given; running the demo in a Debian 6.1 VM under qemu");
            run_in_vm(ctx, timeout)
        }
        Err(reason) => {
            step!(
                "this kernel does not run BPF LSM programs ({reason}); \
                 running the demo in a Debian 6.1 VM under qemu"
            );
            run_in_vm(ctx, timeout)
        }
    }
}

/// Checks, without loading a program, whether this host can run the demo:
/// bpf must be an active LSM and loading LSM programs needs root. A kernel
/// may still reject the programs (as some sandboxes do); the demo then fails
/// with the agent's error.
fn host_bpf_lsm() -> Result<(), String> {
    let path = "/sys/kernel/security/lsm";
    let active = fs::read_to_string(path).map_err(|error| format!("cannot read {path}: {error}"))?;
    if !active.trim().split(',').any(|name| name == "bpf") {
        return Err(format!("{path} lists {} without bpf", active.trim()));
    }
    if !setup::is_root() {
        return Err("bpf is active, but loading LSM programs needs root".to_owned());
    }
    Ok(())
}

fn run_on_host(ctx: &Context) -> Result<()> {
    step!("this kernel runs BPF LSM programs; running the demo here");
    setup::install_apt_packages(&["busybox-static"])?;
    let release_dir = build::build_binaries(ctx)?;

    let script = ctx.cache.join("lupid-demo.sh");
    fs::create_dir_all(&ctx.cache).with_context(|| format!("cannot create {}", ctx.cache.display()))?;
    fs::write(&script, DEMO_SCRIPT).with_context(|| format!("cannot write {}", script.display()))?;

    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut search = vec![release_dir];
    search.extend(std::env::split_paths(&path));
    let path = std::env::join_paths(search).context("a PATH entry contains ':'")?;
    let policy = ctx.workspace.join("policies/p0.lp");
    if !policy.is_file() {
        bail!("{} not found; the demo policy is missing from the repository", policy.display());
    }
    cmd::run(
        Command::new("/bin/busybox").arg("sh").arg(&script).env("PATH", path).env("LUPID_POLICY", policy),
        "see the demo output above",
    )
}

fn run_in_vm(ctx: &Context, timeout: Duration) -> Result<()> {
    let kernel = setup::run(ctx)?;
    let release_dir = build::build_binaries(ctx)?;
    let contents = Contents {
        executables: vm::lupid_executables(&release_dir),
        command: None,
        policies: Some(ctx.workspace.join("policies")),
    };
    let (archive, arguments) = initramfs::build(ctx, &kernel, "demo", &contents)?;
    vm::boot(&kernel, &archive, Mode::Demo, &arguments, timeout, None)
}
