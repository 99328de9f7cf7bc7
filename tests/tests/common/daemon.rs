//! A `lupid-agent` daemon owned by one test.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

use super::ledger::Ledger;
use super::process::{self, Outcome, exit_code};
use super::{AGENT_BIN, PROBE_BIN, fixture};

/// How long the daemon may take before `status` exits 0 after it starts. Loading
/// and verifying the BPF programs under TCG emulation takes tens of seconds,
/// and more than a minute for 14 programs.
const START_TIMEOUT: Duration = Duration::from_mins(4);
/// How long the daemon may take to drain its events and exit on SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one `lupid-agent run` may take, the probe's 3 s connect
/// timeout included.
const RUN_TIMEOUT: Duration = Duration::from_mins(1);

/// A running daemon in a fresh directory `/var/lib/lupid-test-*` laid out
/// as:
///
/// - `state/`: the daemon's `--state-dir`, with the ledger in `state/ledger`
/// - `agent.sock`: the daemon's `--socket`
/// - `daemon.log`: the daemon's stdout and stderr
/// - `*.policy`: policies written by [`Daemon::write_policy`]
///
/// Dropping it stops the daemon. The directory is removed, unless the test
/// is panicking, in which case it is kept for inspection.
pub(crate) struct Daemon {
    root: Option<TempDir>,
    child: Option<Child>,
    socket: PathBuf,
    state_dir: PathBuf,
}

impl Daemon {
    /// Installs the fixture files, starts `lupid-agent start` and waits until
    /// `lupid-agent status` exits 0.
    pub(crate) fn start() -> Self {
        super::require_bpf_lsm();
        fixture::install();

        let root = tempfile::Builder::new()
            .prefix("lupid-test-")
            .tempdir_in("/var/lib")
            .expect("failed to create a state directory under /var/lib");
        let state_dir = root.path().join("state");
        let socket = root.path().join("agent.sock");
        let mut daemon = Self { root: Some(root), child: None, socket, state_dir };
        // The programs of an earlier test's daemon stay pinned only when
        // that test did not end cleanly, and this test starts without them.
        daemon.unload();
        daemon.spawn();
        daemon
    }

    /// Starts the daemon again on the same state after [`Daemon::kill`].
    /// It takes over the programs and maps the killed daemon left pinned.
    pub(crate) fn start_again(&mut self) {
        assert!(self.child.is_none(), "the daemon is still running; kill or stop it first");
        self.spawn();
    }

    /// Sends SIGKILL and reaps the daemon. It writes nothing more, and its
    /// pinned programs go on deciding.
    pub(crate) fn kill(&mut self) {
        let mut child = self.child.take().expect("the daemon was already stopped");
        child.kill().unwrap_or_else(|error| panic!("failed to send SIGKILL to the daemon: {error}"));
        let status = child.wait().unwrap_or_else(|error| panic!("failed to reap the killed daemon: {error}"));
        assert_eq!(exit_code(status), 128 + libc::SIGKILL, "the daemon must die of SIGKILL");
    }

    /// Runs `lupid-agent unload`, which removes the pinned programs and
    /// maps. Panics when it fails. Call it only while no daemon runs.
    pub(crate) fn unload(&self) {
        let outcome = self.ctl(&["unload"]);
        assert_eq!(outcome.code, 0, "lupid-agent unload must exit 0 with no daemon running; {outcome}");
    }

    /// Starts `lupid-agent start` on this daemon's state and waits until it
    /// is ready. The log is appended to.
    fn spawn(&mut self) {
        let log_path = self.root_path().join("daemon.log");
        let log =
            fs::OpenOptions::new().create(true).append(true).open(&log_path).expect("failed to open the daemon log");
        let (state_dir, socket) = (&self.state_dir, &self.socket);
        let child = Command::new(AGENT_BIN)
            .arg("start")
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--socket")
            .arg(socket)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("failed to duplicate the daemon log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("failed to start {AGENT_BIN} start: {error}"));
        self.child = Some(child);
        self.wait_ready();
    }

    /// Stops the daemon with SIGTERM and starts it again on the same state.
    pub(crate) fn restart(&mut self) {
        self.stop_cleanly();
        self.spawn();
    }

    /// Runs `lupid-agent ARGS --socket SOCKET` and returns its outcome.
    pub(crate) fn ctl(&self, args: &[&str]) -> Outcome {
        let mut command = Command::new(AGENT_BIN);
        command.args(args).arg("--socket").arg(&self.socket);
        process::run(&mut command, RUN_TIMEOUT)
    }

    /// Starts `command` as agent `agent` in the background, for a test that
    /// needs the agent running while it acts on it. Kill and wait for the
    /// child when done.
    pub(crate) fn spawn_agent(&self, agent: &str, policy: &Path, command: &[&str]) -> Child {
        self.run_command(agent, policy, None, command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("failed to start agent {agent}: {error}"))
    }

    /// Waits until `lupid-agent status` lists agent `agent`, for at most
    /// `timeout`.
    pub(crate) fn wait_for_agent(&self, agent: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !lists_agent(&self.status(), agent) {
            assert!(Instant::now() < deadline, "agent {agent} did not register within {timeout:?}");
            thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("the daemon is running");
            if let Some(status) = child.try_wait().expect("failed to poll the daemon") {
                panic!("lupid-agent start exited during startup with {status}; its log:\n{}", self.log());
            }

            let status = Command::new(AGENT_BIN)
                .arg("status")
                .arg("--socket")
                .arg(&self.socket)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap_or_else(|error| panic!("failed to run {AGENT_BIN} status: {error}"));
            if status.success() {
                return;
            }

            assert!(
                Instant::now() < deadline,
                "lupid-agent status did not exit 0 within {START_TIMEOUT:?} of the daemon starting; its log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// Returns the daemon's stdout and stderr so far.
    pub(crate) fn log(&self) -> String {
        let path = self.root_path().join("daemon.log");
        fs::read_to_string(&path).unwrap_or_else(|error| format!("(cannot read {}: {error})", path.display()))
    }

    fn root_path(&self) -> &Path {
        self.root.as_ref().expect("the state directory exists until drop").path()
    }

    /// Returns the ledger the daemon writes.
    pub(crate) fn ledger(&self) -> Ledger {
        Ledger::at(self.state_dir.join("ledger"))
    }

    /// Writes a policy file next to the daemon's state and returns its path.
    pub(crate) fn write_policy(&self, name: &str, text: &str) -> PathBuf {
        let path = self.root_path().join(format!("{name}.policy"));
        fs::write(&path, text).unwrap_or_else(|error| panic!("failed to write {}: {error}", path.display()));
        path
    }

    /// Returns the daemon's `--socket`.
    pub(crate) fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// Returns the daemon's `--state-dir`, the folder of the ledger and the
    /// signing key.
    pub(crate) fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Writes policy P0 and returns its path.
    pub(crate) fn policy_p0(&self) -> PathBuf {
        self.write_policy("p0", fixture::POLICY_P0)
    }

    /// Runs `lupid-probe ARGS` as root under `lupid-agent run`.
    pub(crate) fn run_probe(&self, agent: &str, policy: &Path, args: &[&str]) -> Outcome {
        let mut command = vec![PROBE_BIN];
        command.extend_from_slice(args);
        self.run_agent(agent, policy, None, &command)
    }

    /// Runs `command` as agent `agent` under `policy`, delegated by
    /// `tester`, as `user` when given. `lupid-agent run` exits with the
    /// command's exit code.
    pub(crate) fn run_agent(&self, agent: &str, policy: &Path, user: Option<u32>, command: &[&str]) -> Outcome {
        process::run(&mut self.run_command(agent, policy, user, command), RUN_TIMEOUT)
    }

    /// Returns the `lupid-agent run` command of [`Daemon::run_agent`]
    /// without starting it, for a test that must act while it runs.
    pub(crate) fn run_command(&self, agent: &str, policy: &Path, user: Option<u32>, command: &[&str]) -> Command {
        let mut run = Command::new(AGENT_BIN);
        run.arg("run")
            .arg("--socket")
            .arg(&self.socket)
            .arg("--agent")
            .arg(agent)
            .arg("--policy")
            .arg(policy)
            .arg("--delegated-by")
            .arg("tester");
        if let Some(uid) = user {
            run.arg("--user").arg(uid.to_string());
        }
        run.arg("--").args(command);
        run
    }

    /// Sends `signal` to the daemon, such as SIGSTOP to keep it from
    /// draining the ring buffer and SIGCONT to let it go on.
    pub(crate) fn signal(&self, signal: Signal) {
        let child = self.child.as_ref().expect("the daemon is running");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("a process id fits in pid_t"));
        // The daemon is our unreaped child, so its pid cannot have been reused.
        signal::kill(pid, signal)
            .unwrap_or_else(|error| panic!("failed to send {signal} to the daemon ({pid}): {error}"));
    }

    /// Runs `lupid-agent status --json` and returns the report it printed.
    pub(crate) fn status(&self) -> Value {
        let outcome = self.ctl(&["status", "--json"]);
        assert_eq!(outcome.code, 0, "lupid-agent status --json must exit 0; {outcome}");
        serde_json::from_str(&outcome.stdout)
            .unwrap_or_else(|error| panic!("lupid-agent status --json printed invalid JSON ({error}); {outcome}"))
    }

    /// Sends SIGTERM, waits for the daemon to exit and returns its status.
    /// The daemon must have written every pending decision by then.
    pub(crate) fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the daemon was already stopped");
        terminate(&child);
        if let Some(status) = process::wait_until(&mut child, STOP_TIMEOUT) {
            return status;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the daemon did not exit within {STOP_TIMEOUT:?} of SIGTERM; its log:\n{}", self.log());
    }

    /// Stops the daemon as [`Daemon::stop`] does and panics, with its log,
    /// unless it exits 0.
    pub(crate) fn stop_cleanly(&mut self) {
        let stop = self.stop();
        assert!(stop.success(), "the daemon must exit 0 on SIGTERM, but exited with {stop}; its log:\n{}", self.log());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&child);
            if process::wait_until(&mut child, STOP_TIMEOUT).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // Each test starts without pins, and its programs go with it.
        let unloaded = self.ctl(&["unload"]);
        if unloaded.code != 0 {
            eprintln!("lupid-agent unload failed after the test; {unloaded}");
        }
        if thread::panicking()
            && let Some(root) = self.root.take()
        {
            eprintln!("keeping the daemon's directory for inspection: {}", root.keep().display());
        }
    }
}

/// Returns the count of internal failures named `name` (such as
/// `ring_buffer_full`) in a `status --json` report, whose `failures` are
/// `[name, count]` pairs.
pub(crate) fn failure_count(status: &Value, name: &str) -> u64 {
    let failures = status["failures"].as_array().unwrap_or_else(|| panic!("status has no failures array: {status}"));
    failures
        .iter()
        .find(|pair| pair[0] == name)
        .and_then(|pair| pair[1].as_u64())
        .unwrap_or_else(|| panic!("status has no failures entry {name:?} with a count: {status}"))
}

/// Returns whether a `status --json` report lists agent `agent`.
pub(crate) fn lists_agent(status: &Value, agent: &str) -> bool {
    status["agents"].as_array().is_some_and(|agents| agents.iter().any(|entry| entry["agent"] == agent))
}

/// Sends SIGTERM to `child`.
fn terminate(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).expect("a process id fits in pid_t");
    // SAFETY: kill has no memory-safety preconditions. `pid` is our own
    // child, which has not been reaped, so the id cannot have been reused.
    let result = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(result == 0, "failed to send SIGTERM to the daemon ({pid}): {}", std::io::Error::last_os_error());
    // A test that failed while the daemon was stopped left it stopped, and a
    // stopped process acts on SIGTERM only once it continues.
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
}
