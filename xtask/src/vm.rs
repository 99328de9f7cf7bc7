//! `cargo xtask vm-test`: boots the Debian 6.1 kernel under qemu (TCG) with
//! an initramfs whose /init runs the VM tests, the demo or one command, and
//! turns the `LUPID-VM-EXIT=<status>` line it prints into xtask's result.

use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::initramfs::{self, Contents};
use crate::setup::{self, Kernel};
use crate::{Context, build, cmd, step};

/// Line that /init prints last; xtask reads the status after the `=`.
const EXIT_MARKER: &str = "LUPID-VM-EXIT=";

/// How long qemu may take to power off after the marker.
const POWEROFF_GRACE: Duration = Duration::from_secs(30);

/// Comma-separated name parts of the tests that the first of two VMs runs
/// when the whole suite runs. The second runs every other test, so a new
/// module is never left out, and the two halves take about as long.
const FIRST_HALF: &str = "bypass::,cage::";

/// Program that /init runs, chosen with `lupid.mode=` on the kernel command line.
#[derive(Clone, Copy)]
pub(crate) enum Mode<'a> {
    /// The `vm` integration tests whose names contain a part of `filter`
    /// (every test without one) and no part of `skip`. Both are
    /// comma-separated.
    Test { filter: Option<&'a str>, skip: Option<&'a str> },
    /// The demo script.
    Demo,
    /// The shell command stored in /etc/lupid/init-command.
    Command,
}

pub(crate) fn test(ctx: &Context, filter: Option<&str>, timeout: Duration) -> Result<()> {
    if let Some(filter) = filter {
        check_filter(filter)?;
    }
    let kernel = setup::run(ctx)?;
    test_with_kernel(ctx, &kernel, filter, timeout)
}

/// Builds lupid and runs the VM tests on an already set-up kernel.
pub(crate) fn test_with_kernel(ctx: &Context, kernel: &Kernel, filter: Option<&str>, timeout: Duration) -> Result<()> {
    if let Some(filter) = filter {
        check_filter(filter)?;
    }
    let artifacts = build::run(ctx)?;
    let mut executables = lupid_executables(&artifacts.release_dir);
    executables.push(("lupid-vm-tests".to_owned(), artifacts.vm_tests.clone()));
    let contents = Contents { executables, command: None, policies: Some(ctx.workspace.join("policies")) };
    let (archive, arguments) = initramfs::build(ctx, kernel, "vm-test", &contents)?;
    if filter.is_some() {
        return boot(kernel, &archive, Mode::Test { filter, skip: None }, &arguments, timeout, None);
    }
    // The whole suite runs in two VMs at once, one per host core, which
    // about halves its time under emulation.
    let halves = [
        ("vm-1", Mode::Test { filter: Some(FIRST_HALF), skip: None }),
        ("vm-2", Mode::Test { filter: None, skip: Some(FIRST_HALF) }),
    ];
    let results: Vec<Result<()>> = thread::scope(|scope| {
        let runs: Vec<_> = halves
            .iter()
            .map(|&(label, mode)| {
                let (archive, arguments) = (&archive, &arguments);
                scope.spawn(move || {
                    boot(kernel, archive, mode, arguments, timeout, Some(label)).with_context(|| format!("in {label}"))
                })
            })
            .collect();
        runs.into_iter().map(|run| run.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a VM thread panicked")))).collect()
    });
    // The caller prints the returned error, so only the other VM's error
    // is printed here.
    let mut errors = results.into_iter().filter_map(Result::err);
    let Some(first) = errors.next() else {
        return Ok(());
    };
    for error in errors {
        eprintln!("xtask: error: {error:#}");
    }
    Err(first)
}

/// Boots a VM with busybox and `executables` that runs `command` in place
/// of the tests.
pub(crate) fn run_command(ctx: &Context, command: &str, executables: &[PathBuf], timeout: Duration) -> Result<()> {
    let kernel = setup::run(ctx)?;
    let mut named = Vec::new();
    for path in executables {
        let name = path.file_name().with_context(|| format!("--executable {} names no file", path.display()))?;
        named.push((name.to_string_lossy().into_owned(), path.clone()));
    }
    let contents = Contents { executables: named, command: Some(command.to_owned()), policies: None };
    let (archive, arguments) = initramfs::build(ctx, &kernel, "command", &contents)?;
    boot(&kernel, &archive, Mode::Command, &arguments, timeout, None)
}

/// lupid's binaries in the release folder, named as /usr/local/bin has them.
pub(crate) fn lupid_executables(release_dir: &Path) -> Vec<(String, PathBuf)> {
    build::BINARIES.iter().map(|name| ((*name).to_owned(), release_dir.join(name))).collect()
}

/// Rejects filters that the kernel command line cannot carry: it splits on
/// spaces and has no quoting that reaches /proc/cmdline intact.
fn check_filter(filter: &str) -> Result<()> {
    if filter.is_empty() || filter.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
        bail!("invalid test filter {filter:?}: use one word without spaces or quotes");
    }
    Ok(())
}

/// Boots the VM, streams its serial console to stdout, each line after
/// `label` when given, and fails unless /init reported status 0 before
/// `timeout`.
pub(crate) fn boot(
    kernel: &Kernel,
    initramfs: &Path,
    mode: Mode<'_>,
    extra_arguments: &[String],
    timeout: Duration,
    label: Option<&str>,
) -> Result<()> {
    let mut append = vec![
        "console=ttyS0".to_owned(),
        // Reboot at once on a panic; -no-reboot turns that into a qemu exit.
        "panic=-1".to_owned(),
        // Warnings and panics, not the boot chatter.
        "loglevel=4".to_owned(),
    ];
    append.extend(extra_arguments.iter().cloned());
    match mode {
        Mode::Test { filter, skip } => {
            append.push("lupid.mode=test".to_owned());
            append.extend(filter.map(|filter| format!("lupid.filter={filter}")));
            append.extend(skip.map(|skip| format!("lupid.skip={skip}")));
        }
        Mode::Demo => append.push("lupid.mode=demo".to_owned()),
        Mode::Command => append.push("lupid.mode=command".to_owned()),
    }

    let mut qemu = Command::new("qemu-system-x86_64");
    // KVM is not assumed: CI machines are often VMs without nested
    // virtualization, so the guest runs under TCG emulation.
    qemu.args(["-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "2048"])
        .args(["-nographic", "-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(kernel.vmlinuz())
        .arg("-initrd")
        .arg(initramfs)
        .arg("-append")
        .arg(append.join(" "))
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let command_line = cmd::display(&qemu);
    step!("booting {} (timeout {} s): {command_line}", kernel.release, timeout.as_secs());

    let mut child = qemu.spawn().with_context(|| {
        format!("could not start `{command_line}`; run `cargo xtask setup` to install qemu-system-x86")
    })?;
    let stdout = child.stdout.take().context("qemu has no stdout pipe")?;
    let (events, received) = mpsc::channel();
    let prefix = label.map_or_else(String::new, |label| format!("[{label}] "));
    let reader = thread::spawn(move || scan_console(stdout, &events, &prefix));

    let started = Instant::now();
    let mut marker = None;
    let mut stopped_by_xtask = None;
    let status = loop {
        if let Some(status) = child.try_wait().context("cannot wait for qemu")? {
            break status;
        }
        if let Ok(status) = received.recv_timeout(Duration::from_millis(200)) {
            marker = Some(status);
        }
        let waited_too_long = match marker {
            Some(_) => started.elapsed() > timeout + POWEROFF_GRACE,
            None => started.elapsed() > timeout,
        };
        if waited_too_long && stopped_by_xtask.is_none() {
            stopped_by_xtask = Some(started.elapsed());
            // Ignore the error: qemu may have exited since try_wait.
            let _ = child.kill();
        }
    };
    let console = reader.join().map_err(|_| anyhow::anyhow!("the thread reading the VM console panicked"))?;
    let marker = marker.or(console.marker);

    match (marker, stopped_by_xtask) {
        (Some(0), _) => {
            step!("VM finished: {EXIT_MARKER}0 after {} s", started.elapsed().as_secs());
            Ok(())
        }
        (Some(code), _) => {
            bail!("the VM's {} exited with status {code} ({EXIT_MARKER}{code}); see its output above", mode.describe())
        }
        (None, Some(elapsed)) => bail!(
            "timed out: the VM ran {} s without printing {EXIT_MARKER} and was stopped; \
             look for a hang in the output above or raise --timeout",
            elapsed.as_secs()
        ),
        (None, None) => match console.panic {
            Some(line) => bail!("the VM kernel panicked before printing {EXIT_MARKER}: {line}"),
            None if !status.success() => bail!("`{command_line}` failed ({status})"),
            None => {
                bail!("the VM powered off without printing {EXIT_MARKER}; /init did not finish, see the output above")
            }
        },
    }
}

impl Mode<'_> {
    fn describe(self) -> &'static str {
        match self {
            Mode::Test { .. } => "tests",
            Mode::Demo => "demo",
            Mode::Command => "command",
        }
    }
}

/// Facts found in the console output besides the lines themselves.
#[derive(Default)]
struct Console {
    marker: Option<i32>,
    panic: Option<String>,
}

/// Copies the serial console to stdout line by line, each after `prefix`,
/// and reports the exit marker on `events` as soon as it appears.
fn scan_console(stdout: impl Read, events: &mpsc::Sender<i32>, prefix: &str) -> Console {
    let mut console = Console::default();
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        println!("{prefix}{text}");
        if let Some(code) = parse_marker(text) {
            console.marker = Some(code);
            // The receiver is gone only when boot() has returned.
            let _ = events.send(code);
        }
        if text.contains("Kernel panic") && console.panic.is_none() {
            console.panic = Some(text.trim().to_owned());
        }
    }
    console
}

/// Returns the status in a `LUPID-VM-EXIT=<status>` line. The search is not
/// anchored because kernel messages may share the line on the serial console.
fn parse_marker(line: &str) -> Option<i32> {
    let (_, rest) = line.split_once(EXIT_MARKER)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_parses_status() {
        assert_eq!(parse_marker("LUPID-VM-EXIT=0"), Some(0));
        assert_eq!(parse_marker("[  12.3] x LUPID-VM-EXIT=101\r"), Some(101));
    }

    #[test]
    fn marker_absent_or_empty() {
        assert_eq!(parse_marker("init: lupid.mode=test"), None);
        assert_eq!(parse_marker("LUPID-VM-EXIT="), None);
    }

    #[test]
    fn console_scan_finds_marker_and_panic() {
        let output = b"boot\r\nKernel panic - not syncing: oops\r\nLUPID-VM-EXIT=3\r\n";
        let (events, received) = mpsc::channel();
        let console = scan_console(&output[..], &events, "[vm-1] ");
        assert_eq!(console.marker, Some(3));
        assert_eq!(console.panic.as_deref(), Some("Kernel panic - not syncing: oops"));
        assert_eq!(received.try_recv().ok(), Some(3));
    }

    #[test]
    fn filter_rejects_spaces() {
        assert!(check_filter("exec_denied").is_ok());
        assert!(check_filter("two words").is_err());
        assert!(check_filter("").is_err());
    }
}
