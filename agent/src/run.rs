//! `lupid-agent run`: start a command as a mediated agent.
//!
//! The client checks the policy itself first (so a broken file is reported
//! before anything starts), opens the executable and hands the open file to
//! the daemon, which hashes it, labels a new cgroup and records the agent's
//! identity. Only then does the client fork: the child joins the cgroup,
//! drops to the requested user and executes exactly the file the daemon
//! hashed (`execveat` on the descriptor). The parent waits and reports the
//! exit status, which the daemon records.

use std::{
    ffi::{CString, OsString},
    fs::File,
    io::Write,
    os::{
        fd::AsRawFd,
        unix::{ffi::OsStrExt, net::UnixStream},
    },
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use nix::{
    sys::wait::{WaitStatus, waitpid},
    unistd::{ForkResult, Gid, Uid, fork},
};

use crate::{
    policy::Policy,
    protocol::{Connection, Register, Reply, Request, send},
};

/// Options of `lupid-agent run`.
pub(crate) struct RunOptions {
    pub(crate) agent: String,
    pub(crate) policy: PathBuf,
    pub(crate) delegated_by: Option<String>,
    pub(crate) user: Option<(u32, u32)>,
    pub(crate) socket: PathBuf,
    pub(crate) command: Vec<OsString>,
}

/// Runs the agent and returns its exit status (128 + signal if killed).
pub(crate) fn run(options: &RunOptions) -> Result<i32> {
    let policy_text = read_policy_file(&options.policy)?;
    if let Err(errors) = Policy::parse(&options.policy.display().to_string(), &policy_text) {
        let listed: Vec<String> = errors.iter().map(ToString::to_string).collect();
        bail!("invalid policy; nothing was started:\n{}", listed.join("\n"));
    }
    let program = options.command.first().context("no command given after --")?;
    let exe_path = resolve_program(Path::new(program))?;
    let exe = File::open(&exe_path).with_context(|| format!("failed to open {}", exe_path.display()))?;
    let (uid, gid) = options.user.unwrap_or_else(|| (Uid::current().as_raw(), Gid::current().as_raw()));
    if uid == 0 {
        eprintln!(
            "lupid-agent: warning: agent {:?} runs as root, which can leave its cgroup, mount file systems and stop the daemon; pass --user UID to run it unprivileged",
            options.agent
        );
    }

    let stream = UnixStream::connect(&options.socket).with_context(|| {
        format!(
            "failed to reach the lupid daemon at {}; is `sudo lupid-agent start` running?",
            options.socket.display()
        )
    })?;
    let request = Request::Register(Register {
        agent: options.agent.clone(),
        delegated_by: options.delegated_by.clone().unwrap_or_else(default_delegator),
        policy_path: options.policy.as_os_str().as_bytes().to_vec(),
        policy_text,
        command: options.command.iter().map(|a| a.as_bytes().to_vec()).collect(),
        exe_path: exe_path.as_os_str().as_bytes().to_vec(),
        uid,
        gid,
        client_pid: std::process::id(),
    });
    send(&stream, &request, Some(exe.as_raw_fd())).context("failed to send the register request")?;
    let mut connection = Connection::new(stream);
    let (agent_id, cgroup) = match connection.receive::<Reply>().context("failed to read the daemon's reply")? {
        Some(Reply::Registered { agent_id, cgroup, .. }) => (agent_id, cgroup),
        Some(Reply::Error { message }) => bail!("the daemon rejected the agent: {message}"),
        other => bail!("unexpected reply from the daemon: {other:?}"),
    };

    let status = spawn_in_cgroup(&cgroup, &exe, &options.command, options.user)?;
    report_exit(&mut connection, &options.socket, agent_id, status);
    Ok(status)
}

/// How long a run keeps trying to report its agent's exit to a daemon that
/// took over from the one it registered with. A daemon records the end of
/// a run that no one reported as unknown after a minute.
const EXIT_REPORT_RETRY: Duration = Duration::from_secs(50);

/// Reports the agent's exit so that the daemon records it. When the daemon
/// that registered the run is gone, reconnects to the socket every second
/// and reports to the next daemon, which adopts the run at its start.
fn report_exit(connection: &mut Connection, socket: &Path, agent_id: u32, status: i32) {
    let request = Request::Exited { agent_id, status };
    let exchange = |connection: &mut Connection| {
        send(connection.stream(), &request, None).ok()?;
        connection.receive::<Reply>().ok().flatten()
    };
    let deadline = Instant::now() + EXIT_REPORT_RETRY;
    let mut reply = exchange(connection);
    while reply.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        if let Ok(stream) = UnixStream::connect(socket) {
            reply = exchange(&mut Connection::new(stream));
        }
    }
    match reply {
        Some(Reply::Done) => {}
        Some(Reply::Error { message }) => eprintln!("lupid-agent: the daemon did not record the exit: {message}"),
        Some(other) => eprintln!("lupid-agent: unexpected reply to the exit report: {other:?}"),
        None => eprintln!(
            "lupid-agent: no daemon at {} acknowledged the agent's exit (status {status}) within {} s; a daemon records the run's end as unknown",
            socket.display(),
            EXIT_REPORT_RETRY.as_secs()
        ),
    }
}

/// Largest policy file lupid reads. The daemon's request limit is larger, so
/// every policy that passes this check can be sent to it.
pub(crate) const MAX_POLICY_BYTES: u64 = 1 << 20;

/// Reads a policy file, rejecting one larger than `MAX_POLICY_BYTES`
/// before reading it whole (a device such as /dev/zero never ends).
pub(crate) fn read_policy_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = File::open(path).with_context(|| format!("failed to read policy {}", path.display()))?;
    let mut text = Vec::new();
    file.take(MAX_POLICY_BYTES + 1)
        .read_to_end(&mut text)
        .with_context(|| format!("failed to read policy {}", path.display()))?;
    if text.len() as u64 > MAX_POLICY_BYTES {
        bail!("policy {} is larger than {MAX_POLICY_BYTES} bytes; shorten it", path.display());
    }
    Ok(text)
}

fn default_delegator() -> String {
    std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| format!("uid:{}", Uid::current()))
}

/// Finds a program the way a shell does: a name with a slash is used as
/// given, any other name is searched in `PATH`.
fn resolve_program(program: &Path) -> Result<PathBuf> {
    if program.as_os_str().as_bytes().contains(&b'/') {
        return Ok(program.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("{} not found in PATH", program.display()))
}

fn spawn_in_cgroup(cgroup: &Path, exe: &File, command: &[OsString], user: Option<(u32, u32)>) -> Result<i32> {
    let argv: Vec<CString> = command
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .context("an argument contains a NUL byte")?;
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut pair = k.as_bytes().to_vec();
            pair.push(b'=');
            pair.extend_from_slice(v.as_bytes());
            CString::new(pair).ok()
        })
        .collect();
    let procs = cgroup.join("cgroup.procs");
    // SAFETY: this client runs no other threads, so the child may use the
    // allocator and the standard library before it executes.
    match unsafe { fork() }.context("fork failed")? {
        ForkResult::Child => {
            let code = child(&procs, exe, &argv, &env, user);
            // SAFETY: `_exit` is always safe to call in a forked child.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            // Let the terminal's signals reach the agent, not this waiter.
            // SAFETY: ignoring SIGINT has no preconditions.
            unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
            loop {
                match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                    Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(128 + signal as i32),
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => bail!("waiting for the agent failed: {e}"),
                }
            }
        }
    }
}

/// Runs in the forked child: joins the cgroup, drops privileges, executes.
/// Returns an exit code only on failure.
fn child(procs: &Path, exe: &File, argv: &[CString], env: &[CString], user: Option<(u32, u32)>) -> i32 {
    let report = |what: &str, errno: nix::errno::Errno| {
        let _ = writeln!(std::io::stderr(), "lupid-agent: {what}: {} ({})", errno.desc(), errno as i32);
    };
    // "0" moves the writing process itself.
    if let Err(e) = std::fs::write(procs, b"0") {
        report(
            &format!("failed to join {}", procs.display()),
            nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        );
        return 125;
    }
    if let Some((uid, gid)) = user {
        if let Err(e) = nix::unistd::setgroups(&[Gid::from_raw(gid)]) {
            report("setgroups failed", e);
            return 125;
        }
        if let Err(e) = nix::unistd::setgid(Gid::from_raw(gid)) {
            report("setgid failed", e);
            return 125;
        }
        if let Err(e) = nix::unistd::setuid(Uid::from_raw(uid)) {
            report("setuid failed", e);
            return 125;
        }
    }
    // A `#!` script is run by its interpreter through /dev/fd/N, which must
    // survive the exec, so the descriptor loses close-on-exec here.
    if let Err(e) = nix::fcntl::fcntl(exe.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty())) {
        report("failed to clear close-on-exec on the executable", e);
        return 125;
    }
    let errno =
        nix::unistd::execveat(Some(exe.as_raw_fd()), c"", argv, env, nix::fcntl::AtFlags::AT_EMPTY_PATH).unwrap_err();
    report(&format!("failed to execute {}", argv[0].to_string_lossy()), errno);
    if errno == nix::errno::Errno::EPERM {
        // lupid's kernel programs deny with EPERM.
        let _ = writeln!(
            std::io::stderr(),
            "lupid-agent: the agent's policy may deny running it; `lupid-ledger query --hook exec --verdict deny` shows the decision and its rule"
        );
    }
    if errno == nix::errno::Errno::EPERM || errno == nix::errno::Errno::EACCES { 126 } else { 127 }
}
