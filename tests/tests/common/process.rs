//! Running a command with a deadline and capturing what it printed.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Exit code and output of a finished command.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// The exit code, or 128 plus the signal number when a signal killed it.
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Outcome {
    /// Returns whether stdout contains exactly this line.
    pub(crate) fn has_line(&self, line: &str) -> bool {
        self.stdout.lines().any(|printed| printed == line)
    }

    /// Returns whether any line of stdout starts with `prefix`.
    pub(crate) fn has_line_starting(&self, prefix: &str) -> bool {
        self.stdout.lines().any(|printed| printed.starts_with(prefix))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit code {}\n--- stdout\n{}--- stderr\n{}---", self.code, self.stdout, self.stderr)
    }
}

/// Returns the exit code of `status`, or 128 plus the signal number.
pub(crate) fn exit_code(status: ExitStatus) -> i32 {
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Runs `command` with stdin closed and returns its outcome. Kills it and
/// its process group, and panics, when it has not exited after `timeout`.
///
/// The command runs in a process group of its own, so a timeout also kills
/// the programs it started, such as the agent under `lupid-agent run`.
/// Otherwise they would keep the output pipes open and the readers would
/// never finish.
pub(crate) fn run(command: &mut Command, timeout: Duration) -> Outcome {
    let description = format!("{command:?}");
    let mut child = command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("failed to start {description}: {error}"));

    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let status = wait_until(&mut child, timeout);
    if status.is_none() {
        kill_process_group(&child);
        let _ = child.wait();
    }
    let outcome = Outcome {
        code: status.map_or(-1, exit_code),
        stdout: stdout.join().expect("stdout reader thread panicked"),
        stderr: stderr.join().expect("stderr reader thread panicked"),
    };
    assert!(status.is_some(), "{description} timed out after {timeout:?} and was killed; {outcome}");
    outcome
}

/// Waits for `child` to exit, polling, for at most `timeout`. Returns
/// `None` when it is still running.
pub(crate) fn wait_until(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Err(error) => panic!("failed to wait for process {}: {error}", child.id()),
        }
    }
}

/// Waits until `path` exists, for at most `timeout`. Panics early when
/// `child`, the `lupid-agent run` that should create it, exits first.
pub(crate) fn wait_for_file(path: &Path, child: &mut Child, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !path.exists() {
        if let Some(status) = child.try_wait().expect("failed to poll lupid-agent run") {
            panic!("lupid-agent run exited with {status} before the agent wrote {}", path.display());
        }
        assert!(Instant::now() < deadline, "the agent did not write {} within {timeout:?}", path.display());
        thread::sleep(Duration::from_millis(20));
    }
}

/// Reads `stdout` on a thread of its own and sends each line on the
/// returned channel, so a test can wait for a line with a timeout.
pub(crate) fn lines_in_background(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (lines, received) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    received
}

/// Returns the `N` unsigned numbers in `text`, in order, or `None` when it
/// contains another count of numbers.
pub(crate) fn numbers_in<const N: usize>(text: &str) -> Option<[u64; N]> {
    let numbers: Vec<u64> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|word| !word.is_empty())
        .map(|word| word.parse().ok())
        .collect::<Option<_>>()?;
    numbers.try_into().ok()
}

/// Sends SIGKILL to the process group that `child` leads.
fn kill_process_group(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).expect("a process id fits in pid_t");
    // SAFETY: kill has no memory-safety preconditions. `child` leads its
    // own process group and has not been reaped, so the group id is ours.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

fn read_in_background<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
