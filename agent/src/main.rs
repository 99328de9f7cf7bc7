//! `lupid-agent`: runs AI agents under BPF LSM mediation and records every
//! decision in the ledger.
//!
//! Exit codes: `run` exits with the agent's status (128 + signal when it
//! was killed); other verbs exit 0 on success and 2 on error.

mod daemon;
mod lease;
mod policy;
mod protocol;
mod run;
mod status;

use std::{ffi::OsString, io::Write as _, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "lupid-agent",
    version,
    about = "Run AI agents under kernel mediation, with every decision on the record"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground (needs root and a kernel with BPF LSM).
    Start {
        /// Folder of the daemon's state; the ledger is its `ledger/` subfolder.
        #[arg(long, default_value = protocol::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// Path of the daemon's Unix socket (root-only).
        #[arg(long, default_value = protocol::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Seconds between signed checkpoints of the ledger.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
        checkpoint_interval: u64,
        /// Append every checkpoint to this file, or write each into this
        /// folder: point it at storage off the host to pin the ledger.
        #[arg(long)]
        pin_checkpoints: Option<PathBuf>,
    },
    /// Remove the pinned kernel programs and maps while no daemon runs. They
    /// stay in force after the daemon stops; labeled agents still running
    /// are no longer mediated once they are removed.
    Unload {
        /// The daemon's socket, to check that no daemon is listening.
        #[arg(long, default_value = protocol::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Ask the daemon to sign a checkpoint now and print it.
    Checkpoint {
        #[arg(long, default_value = protocol::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Run a command as an agent in a new labeled cgroup under a policy.
    Run {
        /// Name of the agent, recorded in the ledger.
        #[arg(long)]
        agent: String,
        /// Policy file (see policies/README.md).
        #[arg(long)]
        policy: PathBuf,
        /// The person who delegated the work to the agent (default: `$SUDO_USER`, else `$USER`).
        #[arg(long)]
        delegated_by: Option<String>,
        /// Run the command as this user: UID or UID:GID.
        #[arg(long, value_parser = parse_user)]
        user: Option<(u32, u32)>,
        #[arg(long, default_value = protocol::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<OsString>,
    },
    /// Show the programs and labeled cgroups the kernel contains now.
    Status {
        #[arg(long, default_value = protocol::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Work with policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Grant, revoke and list capability leases.
    Lease {
        #[command(subcommand)]
        command: LeaseCommand,
    },
    /// List the lease requests: actions a lease rule denied.
    Pending {
        #[arg(long, default_value = protocol::DEFAULT_SOCKET)]
        socket: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Switch a running agent to monitor mode (allow all, record what would
    /// have been denied) or back to enforce mode.
    Mode {
        #[arg(long)]
        agent: String,
        #[arg(value_parser = ["enforce", "monitor"])]
        mode: String,
        /// Person named in the ledger (default: `$SUDO_USER`, else `$USER`).
        #[arg(long)]
        by: Option<String>,
        #[arg(long, default_value = protocol::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Check a policy file and list every error with its line and column.
    Check {
        file: PathBuf,
        /// The daemon's state folder, whose paths no rule may name.
        #[arg(long, default_value = protocol::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// The daemon's socket, whose folder no rule may name.
        #[arg(long, default_value = protocol::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Swap the policy of a running agent; a bad file changes nothing.
    Reload {
        #[arg(long)]
        agent: String,
        file: PathBuf,
        /// Person named in the ledger (default: `$SUDO_USER`, else `$USER`).
        #[arg(long)]
        by: Option<String>,
        #[arg(long, default_value = protocol::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
}

#[derive(Subcommand)]
enum LeaseCommand {
    /// Grant an agent one capability for a bounded time and number of uses.
    Grant {
        /// The agent, by name. Not with --request.
        #[arg(long, required_unless_present = "request", conflicts_with = "request")]
        agent: Option<String>,
        /// Capability to allow: `exec PATH`, an access list and a path
        /// (`read PATH`, `write,create PATH`), `connect ADDRESS:PORT`
        /// optionally followed by `tcp` or `udp`, or `connect unix:NAME`.
        #[arg(long, required_unless_present = "request", conflicts_with = "request")]
        allow: Option<String>,
        /// Grant exactly what an open request asked for (`lupid-agent pending`).
        #[arg(long)]
        request: Option<u64>,
        /// Lifetime of the lease: 90s, 10m, 2h, 1d.
        #[arg(long)]
        ttl: String,
        /// Maximum number of uses; unlimited when left out.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        uses: Option<u64>,
        /// Person named in the ledger as the granter (default: `$SUDO_USER`,
        /// else `$USER`).
        #[arg(long)]
        by: Option<String>,
        /// Why, for the ledger.
        #[arg(long)]
        reason: String,
        #[arg(long, default_value = protocol::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// End a lease now.
    Revoke {
        lease_id: u32,
        #[arg(long)]
        by: Option<String>,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long, default_value = protocol::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// List the live leases.
    List {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = protocol::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
}

fn lease_command(command: LeaseCommand) -> anyhow::Result<()> {
    match command {
        LeaseCommand::Grant { agent, allow, request, ttl, uses, by, reason, socket } => {
            let grant = protocol::LeaseGrant {
                agent: agent.unwrap_or_default(),
                capability: allow.unwrap_or_default(),
                request_id: request.unwrap_or(0),
                ttl_ns: daemon::parse_ttl(&ttl)?,
                max_uses: uses.unwrap_or(0),
                by: lease::person(by),
                reason,
            };
            lease::grant(&socket, grant)
        }
        LeaseCommand::Revoke { lease_id, by, reason, socket } => {
            lease::revoke(&socket, lease_id, lease::person(by), reason)
        }
        LeaseCommand::List { json, socket } => lease::list(&socket, json),
    }
}

fn parse_user(text: &str) -> Result<(u32, u32), String> {
    let (uid, gid) = text.split_once(':').unwrap_or((text, text));
    let parse =
        |v: &str| v.parse::<u32>().map_err(|_| format!("invalid user {text:?}: expected UID or UID:GID as numbers"));
    Ok((parse(uid)?, parse(gid)?))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Start { .. }) {
        // A command whose output is piped into `head` ends quietly when the
        // pipe closes, as other command line tools do. The daemon keeps
        // SIGPIPE ignored, so a client that hangs up cannot stop it.
        // SAFETY: no other thread runs yet, and SIG_DFL is a valid handler.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("LUPID_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Start { state_dir, socket, checkpoint_interval, pin_checkpoints } => {
            daemon::start(&daemon::StartOptions {
                state_dir,
                socket,
                checkpoint_interval: std::time::Duration::from_secs(checkpoint_interval),
                pin_checkpoints,
            })
            .map(|()| 0)
        }
        Command::Checkpoint { socket } => status::checkpoint(&socket).map(|()| 0),
        Command::Unload { socket } => daemon::unload(&socket).map(|removed| {
            println!("removed {removed} pins from {}", daemon::PIN_DIR);
            0
        }),
        Command::Run { agent, policy, delegated_by, user, socket, command } => {
            run::run(&run::RunOptions { agent, policy, delegated_by, user, socket, command })
        }
        Command::Status { socket, json } => status::status(&socket, json).map(|()| 0),
        Command::Policy { command: PolicyCommand::Check { file, state_dir, socket } } => {
            policy_check(&file, &state_dir, &socket).map(|()| 0)
        }
        Command::Policy { command: PolicyCommand::Reload { agent, file, by, socket } } => {
            lease::reload(&socket, &agent, &file, lease::person(by)).map(|()| 0)
        }
        Command::Lease { command } => lease_command(command).map(|()| 0),
        Command::Pending { socket, json } => lease::pending(&socket, json).map(|()| 0),
        Command::Mode { agent, mode, by, socket } => {
            lease::mode(&socket, &agent, mode == "monitor", lease::person(by)).map(|()| 0)
        }
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(e) => {
            // A closed or full stderr must not turn the error into a panic.
            let _ = writeln!(std::io::stderr(), "lupid-agent: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Checks `file` as the daemon with this state folder and socket would
/// load it: the format, the kernel's limits, and no rule in lupid's own
/// folders.
fn policy_check(file: &std::path::Path, state_dir: &std::path::Path, socket: &std::path::Path) -> anyhow::Result<()> {
    let text = run::read_policy_file(file)?;
    let name = file.display().to_string();
    let policy = policy::Policy::parse(&name, &text).map_err(|errors| join_errors(&errors))?;
    let folders = policy::protected::folders(state_dir, socket).map_err(anyhow::Error::msg)?;
    policy::protected::check(&policy, &[], &folders).map_err(|errors| join_errors(&errors))?;
    let compiled = policy::compile_with(&policy, 1, &[]).map_err(|errors| join_errors(&errors))?;
    println!(
        "{name}: valid; {} rule(s), {} path entries, {} network prefixes and {} content entries for the kernel",
        compiled.rule_names.len(),
        compiled.path_rules.len(),
        compiled.net_rules.len(),
        compiled.content_rules.len()
    );
    Ok(())
}

fn join_errors(errors: &[policy::PolicyError]) -> anyhow::Error {
    anyhow::anyhow!("{}", policy::join_errors(errors))
}
