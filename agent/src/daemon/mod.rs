//! `lupid-agent start`: the daemon.
//!
//! Start-up order matters: the ledger opens first (an action that cannot be
//! recorded is not allowed), then the kernel programs load and attach, then
//! the event reader starts, and only then does the socket accept agents.
//! On SIGINT or SIGTERM the daemon stops accepting, drains the ring buffer,
//! writes a stop record and exits.
//!
//! The programs' links and maps are pinned, so they stay in force after the
//! daemon exits, is killed or stops: labeled actions are still decided, and
//! their events wait in the ring buffer, or are denied once it is full. The
//! next daemon takes the pins over, adopts the agent runs it finds labeled
//! ([`agents::Registry::adopt`]), writes a `daemon_gap` record and drains
//! the waiting events first ([`resume`]). `lupid-agent unload` removes the
//! pins while no daemon runs.

mod agents;
mod bpffs;
mod btf;
mod cgroup;
mod control;
mod events;
mod files;
mod grants;
mod kernel;
mod leases;
mod pins;
mod protect;
mod requests;
mod resume;
mod server;
mod writer;

pub(crate) use self::{
    bpffs::PIN_DIR,
    leases::{Lease, boot_ns, parse_ttl},
    requests::Request,
};

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use lupid_ledger::{DaemonStart, DaemonStop, Ledger, RecordBody};
use tokio::io::unix::AsyncFd;

use self::{agents::Registry, events::SequenceTracker, kernel::Kernel, writer::LedgerWriter};

/// Number of LSM programs a healthy daemon has attached.
pub(crate) const HOOK_COUNT: usize = kernel::HOOKS.len();

/// How long an agent's cgroup may stay empty after registration before the
/// daemon retires it, for clients that died without reporting an exit.
const ABANDONED_AFTER: Duration = Duration::from_mins(1);

/// State shared by the daemon's threads.
pub(crate) struct State {
    kernel: Mutex<Kernel>,
    registry: Mutex<Registry>,
    book: Mutex<leases::Book>,
    requests: Mutex<requests::Requests>,
    writer: LedgerWriter,
    cgroup_root: PathBuf,
    ledger_dir: PathBuf,
}

/// How long a stopping daemon waits between reading the kernel's sequence
/// counter and its last drain, so events numbered before the reading are
/// in the ring buffer by then.
const STOP_SETTLE: Duration = Duration::from_millis(200);

/// Options of `lupid-agent start`.
pub(crate) struct StartOptions {
    pub(crate) state_dir: PathBuf,
    pub(crate) socket: PathBuf,
    /// Time between signed checkpoints (when records were added).
    pub(crate) checkpoint_interval: Duration,
    /// File or folder that receives a copy of every checkpoint.
    pub(crate) pin_checkpoints: Option<PathBuf>,
}

/// File name of the checkpoint signing key in the state folder.
const SIGNING_KEY_FILE: &str = "checkpoint.key";

pub(crate) fn start(options: &StartOptions) -> Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        anyhow::bail!(
            "lupid-agent start must run as root (it loads BPF LSM programs and creates cgroups); run it with sudo"
        );
    }
    // Check the kernel before touching any state, so a host that cannot
    // enforce leaves nothing behind.
    kernel::check_bpf_lsm()?;
    // A second daemon must not take over the pins of a running one.
    if std::os::unix::net::UnixStream::connect(&options.socket).is_ok() {
        anyhow::bail!("another daemon is listening on {}; stop it first", options.socket.display());
    }
    let cgroup_root = cgroup::cgroup2_root()?;

    std::fs::create_dir_all(&options.state_dir)
        .with_context(|| format!("failed to create {}", options.state_dir.display()))?;
    std::fs::set_permissions(&options.state_dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("failed to restrict {} to root", options.state_dir.display()))?;
    let key_path = options.state_dir.join(SIGNING_KEY_FILE);
    let key = lupid_ledger::keys::load_or_create(&key_path)
        .with_context(|| format!("failed to load or create the checkpoint signing key {}", key_path.display()))?;
    tracing::info!(verifier_key = %key.verifier(), "checkpoint signing key loaded; pinned checkpoints are verified with this verifier key");
    if let Some(sink) = &options.pin_checkpoints {
        pins::check_sink(sink)?;
    }
    let last_note = options.state_dir.join(pins::LAST_CHECKPOINT_FILE);
    let mut pin_sources = vec![last_note.as_path()];
    pin_sources.extend(options.pin_checkpoints.as_deref());
    let pinned = pins::newest(&pin_sources, &key.verifier())?;

    let ledger_dir = options.state_dir.join("ledger");
    let mut ledger =
        Ledger::open(&ledger_dir).with_context(|| format!("failed to open the ledger at {}", ledger_dir.display()))?;
    if let Some(pinned) = &pinned {
        pins::check_extends(&ledger, pinned)?;
        tracing::info!(tree_size = pinned.checkpoint.tree_size, source = %pinned.source.display(), "the ledger extends the newest signed checkpoint");
    }
    ledger.set_checkpoint_sink(options.pin_checkpoints.clone());
    let previous = resume::scan(&ledger_dir)
        .with_context(|| format!("failed to read the end of the ledger at {}", ledger_dir.display()))?;
    let (writer, writer_thread) =
        LedgerWriter::spawn(ledger, writer::Checkpoints { key, interval: options.checkpoint_interval, last_note });

    let (mut kernel, ring, takeover) = Kernel::load()?;
    protect::register_daemon()?;
    let (tracker, gap) = resume::resume(&kernel, takeover, &previous);
    let registry = Registry::adopt(&mut kernel, &options.state_dir, &cgroup_root)?;
    let book = leases::Book::load(&options.state_dir)?;
    let state = Arc::new(State {
        kernel: Mutex::new(kernel),
        registry: Mutex::new(registry),
        book: Mutex::new(book),
        requests: Mutex::default(),
        writer,
        cgroup_root,
        ledger_dir,
    });

    let protected =
        crate::policy::protected::folders(&options.state_dir, &options.socket).map_err(anyhow::Error::msg)?;
    if let Some(socket_folder) = options.socket.parent() {
        std::fs::create_dir_all(socket_folder)
            .with_context(|| format!("failed to create the socket folder {}", socket_folder.display()))?;
    }
    let folders: Vec<&Path> = protected.iter().map(|folder| Path::new(folder.path.as_str())).collect();
    let count = protect::register_folders(&folders)?;
    tracing::info!(folders = count, "lupid's folders are protected from changes by agents");
    state.registry.lock().expect("registry lock").protect(protected);

    let start_record = RecordBody::DaemonStart(DaemonStart {
        version: env!("CARGO_PKG_VERSION").into(),
        kernel: kernel_release(),
        pid: std::process::id(),
    });
    if let Some(RecordBody::DaemonGap(gap)) = &gap {
        tracing::warn!(
            from_ns = gap.from_ns,
            first_kernel_seq = gap.first_kernel_seq,
            next_kernel_seq = gap.next_kernel_seq,
            programs = %gap.programs,
            "took over pinned programs that went on deciding while no daemon ran; recording the gap"
        );
    }
    state.writer.append_durable([start_record].into_iter().chain(gap).collect()).map_err(anyhow::Error::msg)?;
    grants::restore(&state).map_err(|message| anyhow::anyhow!("failed to restore the leases: {message}"))?;
    tracing::info!(ledger = %state.ledger_dir.display(), cgroups = %state.cgroup_root.display(), "kernel programs attached");

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let result = runtime.block_on(run(state.clone(), ring, tracker, &options.socket));

    let stop = RecordBody::DaemonStop(DaemonStop {
        reason: match &result {
            Ok(()) => "signal".into(),
            Err(e) => format!("{e:#}"),
        },
    });
    if let Err(e) = state.writer.append_durable(vec![stop]) {
        tracing::error!(error = %e, "failed to record the daemon stop");
    }
    let _ = std::fs::remove_file(&options.socket);
    drop(runtime);
    drop(Arc::try_unwrap(state).map(|state| drop(state.writer)));
    let _ = writer_thread.join();
    result
}

async fn run(state: Arc<State>, ring: RingBuf<MapData>, tracker: SequenceTracker, socket: &Path) -> Result<()> {
    let listener = bind(socket)?;
    let (stop_reader, stopping) = tokio::sync::watch::channel(false);
    let reader = tokio::spawn(read_events(state.clone(), ring, tracker, stopping));
    let sweeper = tokio::spawn(sweep(state.clone()));
    tracing::info!(socket = %socket.display(), "accepting agents");

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted.context("failed to accept a client")?;
                let stream = stream.into_std()?;
                stream.set_nonblocking(false)?;
                let state = state.clone();
                tokio::task::spawn_blocking(move || server::serve(&state, stream));
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    tracing::info!("stopping: draining kernel events");
    sweeper.abort();
    let _ = stop_reader.send(true);
    let _ = reader.await;
    Ok(())
}

fn bind(socket: &Path) -> Result<tokio::net::UnixListener> {
    let dir = socket.parent().context("the socket path has no parent folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            anyhow::bail!("another daemon is listening on {}; stop it first", socket.display());
        }
        std::fs::remove_file(socket)
            .with_context(|| format!("failed to remove the stale socket {}", socket.display()))?;
    }
    let listener =
        tokio::net::UnixListener::bind(socket).with_context(|| format!("failed to listen on {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Drains the ring buffer whenever it becomes readable and queues one
/// decision record per event.
async fn read_events(
    state: Arc<State>,
    ring: RingBuf<MapData>,
    mut tracker: SequenceTracker,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    // SAFETY: the ring buffer owns its map descriptor and keeps it open,
    // unchanged, for as long as the `AsyncFd` owns it.
    let mut ring = match unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) } {
        Ok(ring) => ring,
        Err(e) => {
            tracing::error!(error = %e.into_parts().1, "failed to watch the ring buffer; labeled actions will be denied once it fills");
            return;
        }
    };
    loop {
        let mut guard = tokio::select! {
            ready = ring.readable_mut() => match ready {
                Ok(guard) => guard,
                Err(e) => {
                    tracing::error!(error = %e, "failed to wait on the ring buffer");
                    return;
                }
            },
            () = tokio::time::sleep(Duration::from_millis(500)) => {
                record_gaps(&state, &mut tracker);
                continue;
            }
            _ = stopping.changed() => {
                // Every number below the counter read now belongs to an event
                // that is in the buffer, or was dropped, once the programs
                // that took the numbers have submitted: they do so
                // microseconds later. Events numbered after the reading wait
                // in the pinned buffer for the next daemon.
                let bound = state.kernel.lock().expect("kernel lock").next_sequence();
                tokio::time::sleep(STOP_SETTLE).await;
                let mut records = drain(&state, ring.get_mut(), &mut tracker);
                let drops = state.kernel.lock().expect("kernel lock").dropped_events();
                let lost = tracker.gaps_at_stop(drops, bound);
                if !lost.is_empty() {
                    tracing::warn!(gaps = lost.len(), "recording kernel events the daemon will not read");
                }
                records.extend(lost);
                if let Err(e) = state.writer.append_durable(records) {
                    tracing::error!(error = %e, "failed to record the last kernel events");
                }
                return;
            }
        };
        let records = drain(&state, guard.get_inner_mut(), &mut tracker);
        guard.clear_ready();
        if !records.is_empty()
            && let Err(e) = state.writer.append(records)
        {
            tracing::error!(error = %e, "failed to queue decision records");
            return;
        }
        record_gaps(&state, &mut tracker);
    }
}

fn drain(state: &State, ring: &mut RingBuf<MapData>, tracker: &mut SequenceTracker) -> Vec<RecordBody> {
    let next_sequence = state.kernel.lock().expect("kernel lock").next_sequence();
    tracker.reading(std::time::Instant::now(), next_sequence);
    let registry = state.registry.lock().expect("registry lock");
    // Most batches contain no lease event, so the book and the requests are
    // locked only at the first event that needs them, book first as the
    // daemon's lock order requires.
    let mut book = None;
    let mut requests = None;
    let mut records = Vec::new();
    while let Some(item) = ring.next() {
        let Some(event) = events::decode(&item) else {
            tracing::error!(
                bytes = item.len(),
                "ring buffer item of the wrong size; the daemon and kernel programs disagree"
            );
            continue;
        };
        tracker.saw(event.seq);
        let agent = registry.agents.get(&event.agent_id);
        let lease_rule = if event.reason == lupid_common::reason::LEASE {
            let book = book.get_or_insert_with(|| state.book.lock().expect("book lock"));
            book.leases.iter().find(|lease| lease.id == event.lease_id).map(|lease| lease.rule.as_str())
        } else {
            None
        };
        let record = events::to_record(&event, agent, lease_rule);
        if event.reason == lupid_common::reason::LEASE_REQUIRED
            && let (Some(agent), RecordBody::Decision(decision)) = (agent, &record)
        {
            book.get_or_insert_with(|| state.book.lock().expect("book lock"));
            let requests = requests.get_or_insert_with(|| state.requests.lock().expect("requests lock"));
            requests.note(&event, &agent.name, decision.rule.clone());
        }
        records.push(record);
    }
    records
}

fn record_gaps(state: &State, tracker: &mut SequenceTracker) {
    let drops = state.kernel.lock().expect("kernel lock").dropped_events();
    let now = std::time::Instant::now();
    let mut gaps = tracker.missing_gaps(drops, now);
    gaps.extend(tracker.gaps(drops, now));
    if !gaps.is_empty() {
        tracing::warn!(gaps = gaps.len(), dropped = drops, "the kernel dropped events; recording the gap");
        if let Err(e) = state.writer.append(gaps) {
            tracing::error!(error = %e, "failed to queue gap records");
        }
    }
    if state.writer.failed.load(std::sync::atomic::Ordering::SeqCst) {
        let mut kernel = state.kernel.lock().expect("kernel lock");
        state.registry.lock().expect("registry lock").deny_all(&mut kernel);
    }
}

/// Every second: ends leases that ran out and removes replaced policies.
/// Every five seconds: records the end of agent runs whose client did not
/// report an exit, and retires them.
async fn sweep(state: Arc<State>) {
    for tick in 1_u64.. {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let lease_state = state.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || grants::sweep(&lease_state)).await {
            tracing::error!(error = %e, "the lease sweep failed; the kernel still enforces lease deadlines and use limits");
        }
        if !tick.is_multiple_of(5) {
            continue;
        }
        let abandoned: Vec<u32> = {
            let registry = state.registry.lock().expect("registry lock");
            registry
                .agents
                .values()
                .filter(|e| !e.retired && e.registered_at.elapsed() > ABANDONED_AFTER)
                .filter(|e| !cgroup::is_populated(&e.cgroup.path).unwrap_or(true))
                .map(|e| e.agent_id)
                .collect()
        };
        for agent_id in abandoned {
            record_abandoned_exit(&state, agent_id);
            retire_when_empty(&state, agent_id);
        }
    }
}

/// Records an `agent_exit` with status [`lupid_ledger::EXIT_UNKNOWN`] for a
/// run whose cgroup is empty and whose exit no client reported: its
/// `lupid-agent run` died, or lost the daemon that it registered with.
fn record_abandoned_exit(state: &State, agent_id: u32) {
    let name = {
        let registry = state.registry.lock().expect("registry lock");
        match registry.agents.get(&agent_id) {
            Some(entry) if !entry.exit_recorded && !entry.retired => entry.name.clone(),
            _ => return,
        }
    };
    let record =
        RecordBody::AgentExit(lupid_ledger::AgentExit { agent_id, agent: name, status: lupid_ledger::EXIT_UNKNOWN });
    match state.writer.append_durable(vec![record]) {
        Ok(_) => {
            tracing::warn!(agent_id, "agent run ended without an exit report; recorded its exit as unknown");
        }
        Err(message) => tracing::error!(agent_id, %message, "failed to record the end of an abandoned agent run"),
    }
}

/// Retires an agent if its cgroup is empty; otherwise leaves it labeled
/// (its remaining processes stay mediated) for the sweeper to retry.
pub(crate) fn retire_when_empty(state: &State, agent_id: u32) {
    let mut kernel = state.kernel.lock().expect("kernel lock");
    let mut registry = state.registry.lock().expect("registry lock");
    if let Err(message) = registry.retire(&mut kernel, agent_id) {
        tracing::debug!(agent_id, %message, "agent not retired yet");
    }
}

/// `lupid-agent unload`: removes the pinned programs and maps while no
/// daemon runs. Returns the number of pins removed.
pub(crate) fn unload(socket: &Path) -> Result<usize> {
    if !nix::unistd::Uid::effective().is_root() {
        anyhow::bail!("lupid-agent unload must run as root (it removes pins from the BPF file system); run it with sudo");
    }
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        anyhow::bail!("a daemon is listening on {}; stop it first", socket.display());
    }
    Ok(kernel::unload()?)
}

fn kernel_release() -> String {
    nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default()
}
