//! Developer tasks for lupid, run as `cargo xtask <verb>`.
//!
//! The host kernel of a developer or CI machine often cannot run BPF LSM
//! programs, so enforcement is tested inside a Debian 6.1 cloud kernel booted
//! by qemu from an initramfs that this crate assembles. Every verb prints the
//! steps it takes, and every failed external command is reported with the
//! command line and what to do next.

mod bench;
mod build;
mod cmd;
mod demo;
mod initramfs;
mod setup;
mod test;
mod vagrant;
mod vm;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, test and demonstrate lupid")]
struct Cli {
    /// Folder for downloaded kernels, the initramfs and the bpf-linker LLVM
    /// links.
    #[arg(long, global = true, env = "LUPID_CACHE", default_value = "/var/cache/lupid")]
    cache_dir: PathBuf,

    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Install what a fresh Debian 12 machine lacks: apt packages, the
    /// nightly rust-src, bpf-linker 0.13 and the newest Debian 6.1 cloud kernel.
    Setup,
    /// Build the workspace binaries and the VM test executable (release).
    Build,
    /// Run the privileged tests inside a Debian 6.1 kernel under qemu.
    VmTest {
        /// Run only the VM tests whose name contains this string (one word).
        filter: Option<String>,
        #[command(flatten)]
        vm: VmArgs,
    },
    /// Show lupid allowing and denying exec, open and connect for a scripted
    /// agent, locally when this kernel runs BPF LSM programs, otherwise in the VM.
    Demo {
        /// Boot the VM even when this kernel could run the demo.
        #[arg(long)]
        vm: bool,
        #[command(flatten)]
        vm_args: VmArgs,
    },
    /// Run every test: setup, host tests, then the VM tests.
    Test {
        #[command(flatten)]
        vm: VmArgs,
    },
    /// Measure ledger append, hashing, verify and export rates on this
    /// machine and write the table to <target>/bench/ledger.md.
    Bench(bench::BenchArgs),
    /// Install vagrant if missing and run `vagrant validate` in vagrant/.
    VagrantCheck,
    /// Boot the VM with a busybox-only initramfs that runs one shell command
    /// as its test; the VM's exit code is that command's status. For checking
    /// the VM plumbing without lupid's binaries.
    #[command(hide = true)]
    VmRun {
        /// Shell command run by busybox sh inside the VM.
        command: String,
        /// Extra executable for /usr/local/bin, with its shared libraries.
        #[arg(long = "executable", value_name = "PATH")]
        executables: Vec<PathBuf>,
        #[command(flatten)]
        vm: VmArgs,
    },
}

#[derive(Args, Clone, Copy)]
struct VmArgs {
    /// Seconds the VM may run before xtask stops it and fails. Each VM test
    /// starts its own daemon, which loads and verifies every program under
    /// TCG, so the whole suite takes tens of minutes.
    #[arg(long = "timeout", value_name = "SECONDS", default_value_t = 3000)]
    timeout_secs: u64,
}

impl VmArgs {
    fn timeout(self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// Paths that every verb needs.
pub(crate) struct Context {
    /// Root of the Cargo workspace (the parent of xtask/).
    pub(crate) workspace: PathBuf,
    /// `$LUPID_CACHE`, created on first use.
    pub(crate) cache: PathBuf,
}

/// Prints one step of a verb, so a long CI log shows where time goes.
macro_rules! step {
    ($($arg:tt)*) => {
        println!("xtask: {}", format_args!($($arg)*))
    };
}
pub(crate) use step;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    // `cargo run` sets CARGO_MANIFEST_DIR for the process too. The value
    // compiled in names the clone that built this binary, which is another
    // clone when several share one target folder (cargo does not rebuild
    // xtask when only the clone's path changed).
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let workspace =
        PathBuf::from(manifest_dir).parent().context("xtask's manifest folder has no parent folder")?.to_path_buf();
    let ctx = Context { workspace, cache: cli.cache_dir };

    match cli.verb {
        Verb::Setup => setup::run(&ctx).map(|_| ()),
        Verb::Build => build::run(&ctx).map(|_| ()),
        Verb::VmTest { filter, vm } => vm::test(&ctx, filter.as_deref(), vm.timeout()),
        Verb::Demo { vm, vm_args } => demo::run(&ctx, vm, vm_args.timeout()),
        Verb::Test { vm } => test::run(&ctx, vm.timeout()),
        Verb::Bench(args) => bench::run(&ctx, &args),
        Verb::VagrantCheck => vagrant::check(&ctx),
        Verb::VmRun { command, executables, vm } => vm::run_command(&ctx, &command, &executables, vm.timeout()),
    }
}
