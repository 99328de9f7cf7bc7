//! The daemon's Unix socket: one blocking thread per connection, since a
//! request is short and may carry a file descriptor.

use std::{
    fs::File,
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::net::UnixStream,
    },
    path::Path,
};

use lupid_ledger::{Identity, RecordBody};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use sha2::{Digest, Sha256};

use super::{State, agents::NewAgent, control, files, grants, kernel::HOOKS};
use crate::{
    policy::Policy,
    protocol::{AgentStatus, Connection, LeaseGrant, LinkStatus, ProgramStatus, Register, Reply, Request, StatusReport, send},
};

/// Serves one client until it hangs up.
pub(crate) fn serve(state: &State, stream: UnixStream) {
    match getsockopt(&stream, PeerCredentials) {
        Ok(credentials) if credentials.uid() == 0 => {}
        Ok(credentials) => {
            let _ = send(
                &stream,
                &Reply::Error {
                    message: format!("uid {} may not use the lupid socket; run as root", credentials.uid()),
                },
                None,
            );
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "failed to read the peer credentials of a client; closing it");
            return;
        }
    }
    let mut connection = Connection::new(stream);
    loop {
        let request = match connection.receive::<Request>() {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(e) => {
                let _ = send(connection.stream(), &Reply::Error { message: e.to_string() }, None);
                return;
            }
        };
        let reply = match request {
            Request::Register(register) => {
                let exe = connection.take_fd();
                register_agent(state, &register, exe)
            }
            Request::Exited { agent_id, status } => agent_exited(state, agent_id, status),
            Request::Status => Reply::Status(Box::new(status(state))),
            Request::Checkpoint => match state.writer.checkpoint() {
                Ok(note) => Reply::Checkpoint { note },
                Err(message) => Reply::Error { message },
            },
            Request::LeaseGrant(grant) => grant_lease(state, &grant),
            Request::LeaseRevoke { lease_id, by, reason } => match grants::revoke(state, lease_id, &by, &reason) {
                Ok(()) => Reply::Done,
                Err(message) => Reply::Error { message },
            },
            Request::LeaseList => Reply::Leases { leases: state.book.lock().expect("book lock").leases.clone() },
            Request::Pending => Reply::Requests { requests: state.requests.lock().expect("requests lock").open.clone() },
            Request::Mode { agent, monitor, by } => control::set_mode(state, &agent, monitor, &by),
            Request::Reload { agent, policy_path, policy_text, by } => {
                control::reload(state, &agent, &policy_path, &policy_text, &by)
            }
        };
        if let Err(e) = send(connection.stream(), &reply, None) {
            tracing::warn!(error = %e, "failed to reply to a client");
            return;
        }
    }
}

fn register_agent(state: &State, request: &Register, exe: Option<OwnedFd>) -> Reply {
    let error = |message: String| Reply::Error { message };
    let Some(exe) = exe else {
        return error("the register request carried no executable descriptor".into());
    };
    if state.writer.failed.load(std::sync::atomic::Ordering::SeqCst) {
        return error("the ledger cannot record, so no agent may start; see the daemon's log".into());
    }
    let policy_name = String::from_utf8_lossy(&request.policy_path).into_owned();
    let policy = match Policy::parse(&policy_name, &request.policy_text) {
        Ok(policy) => policy,
        Err(errors) => return error(crate::policy::join_errors(&errors)),
    };
    let policy_sha256: [u8; 32] = Sha256::digest(&request.policy_text).into();
    let (exe_sha256, exe_name) = match hash_descriptor(exe) {
        Ok(found) => found,
        Err(e) => return error(format!("failed to hash the agent's executable: {e}")),
    };

    let entry = {
        let mut kernel = state.kernel.lock().expect("kernel lock");
        let mut registry = state.registry.lock().expect("registry lock");
        let book = state.book.lock().expect("book lock");
        let extra = grants::extra_rules(&policy, &request.agent, &book);
        let agent =
            NewAgent {
                name: &request.agent,
                policy: &policy,
                policy_sha256,
                policy_path: &request.policy_path,
                policy_text: &request.policy_text,
            };
        match registry.register(&mut kernel, &state.cgroup_root, &agent, &extra) {
            Ok(entry) => entry,
            Err(message) => return error(message),
        }
    };
    let identity = RecordBody::Identity(Identity {
        agent_id: entry.agent_id,
        agent: request.agent.clone(),
        delegated_by: request.delegated_by.clone(),
        policy_sha256,
        policy_path: request.policy_path.clone(),
        command: request.command.clone(),
        uid: request.uid,
        gid: request.gid,
        pid: request.client_pid,
        exe_path: if exe_name.is_empty() { request.exe_path.clone() } else { exe_name },
        exe_sha256,
        cgroup_id: entry.cgroup.id,
        cgroup_path: entry.cgroup.path.as_os_str().as_encoded_bytes().to_vec(),
    });
    // The agent may start only once its identity is durable.
    if let Err(message) = state.writer.append_durable(vec![identity]) {
        let mut kernel = state.kernel.lock().expect("kernel lock");
        if let Err(retire_error) = state.registry.lock().expect("registry lock").retire(&mut kernel, entry.agent_id) {
            tracing::error!(agent_id = entry.agent_id, error = %retire_error, "failed to retire an agent whose identity was not recorded; the sweeper retries");
        }
        return error(message);
    }
    tracing::info!(agent_id = entry.agent_id, agent = ?request.agent, cgroup = %entry.cgroup.path.display(), "agent registered");
    Reply::Registered { agent_id: entry.agent_id, cgroup: entry.cgroup.path, policy_sha256: hex::encode(policy_sha256) }
}

/// Hashes the file behind a descriptor and returns the kernel's name for it.
/// The name comes from the daemon's own descriptor table, so no path the
/// agent chose is resolved by the daemon.
fn hash_descriptor(fd: OwnedFd) -> std::io::Result<([u8; 32], Vec<u8>)> {
    let name = std::fs::read_link(Path::new("/proc/self/fd").join(fd.as_raw_fd().to_string()))
        .map(|p| p.into_os_string().into_encoded_bytes())
        .unwrap_or_default();
    Ok((files::sha256(File::from(fd))?, name))
}

fn grant_lease(state: &State, request: &LeaseGrant) -> Reply {
    let (agent, capability) = if request.request_id == 0 {
        (request.agent.clone(), request.capability.clone())
    } else {
        let requests = state.requests.lock().expect("requests lock");
        let Some(open) = requests.get(request.request_id) else {
            let message = format!("no open request has id {}; `lupid-agent pending` lists them", request.request_id);
            return Reply::Error { message };
        };
        (open.agent.clone(), open.capability.clone())
    };
    let grant = grants::Grant {
        agent: &agent,
        capability: &capability,
        ttl_ns: request.ttl_ns,
        max_uses: request.max_uses,
        by: &request.by,
        reason: &request.reason,
        request_id: request.request_id,
    };
    match grants::grant(state, &grant) {
        Ok(lease) => Reply::Lease(Box::new(lease)),
        Err(message) => Reply::Error { message },
    }
}

fn agent_exited(state: &State, agent_id: u32, status: i32) -> Reply {
    let name = {
        let registry = state.registry.lock().expect("registry lock");
        match registry.agents.get(&agent_id) {
            // A run that retried its report after a lost reply is recorded
            // once.
            Some(entry) if entry.exit_recorded => return Reply::Done,
            Some(entry) => entry.name.clone(),
            None => return Reply::Error { message: format!("no agent with id {agent_id}") },
        }
    };
    let record = RecordBody::AgentExit(lupid_ledger::AgentExit { agent_id, agent: name, status });
    if let Err(message) = state.writer.append_durable(vec![record]) {
        return Reply::Error { message };
    }
    if let Some(entry) = state.registry.lock().expect("registry lock").agents.get_mut(&agent_id) {
        entry.exit_recorded = true;
    }
    super::retire_when_empty(state, agent_id);
    Reply::Done
}

/// Returns the name of lupid's program that the kernel lists as `listed`,
/// or `None` when none matches. The kernel keeps 15 bytes of a program's
/// name, so a longer name is found by its start. A start that several
/// names share stays as the kernel lists it.
fn hook_program_name(listed: &str) -> Option<String> {
    if listed.is_empty() {
        return None;
    }
    let mut matching = HOOKS.iter().map(|(program, _)| *program).filter(|program| program.starts_with(listed));
    let first = matching.next()?;
    Some(if matching.next().is_none() { first } else { listed }.to_owned())
}

fn status(state: &State) -> StatusReport {
    let mut report = StatusReport::default();
    // Programs as the kernel lists them, not as the daemon meant to load them.
    for program in aya::programs::loaded_programs().filter_map(Result::ok) {
        if let Some(name) = hook_program_name(program.name_as_str().unwrap_or_default()) {
            report.programs.push(ProgramStatus { name, id: program.id() });
        }
    }

    // Links as the kernel lists them: a loaded program counts only while a
    // link attaches it.
    for link in aya::programs::loaded_links().filter_map(Result::ok) {
        if let Some(program) = report.programs.iter().find(|program| program.id == link.program_id()) {
            report.links.push(LinkStatus { id: link.id(), program_id: program.id, program: program.name.clone() });
        }
    }

    let kernel = state.kernel.lock().expect("kernel lock");
    let registry = state.registry.lock().expect("registry lock");
    for (cgroup_id, info) in kernel.agents_in_kernel() {
        let entry = registry.agents.get(&info.agent_id);
        report.agents.push(AgentStatus {
            agent_id: info.agent_id,
            agent: entry.map(|e| e.name.clone()).unwrap_or_default(),
            cgroup_id,
            cgroup: entry.map(|e| e.cgroup.path.display().to_string()).unwrap_or_default(),
            policy_sha256: entry.map(|e| hex::encode(e.policy_sha256)).unwrap_or_default(),
            default_verdict: if info.default_verdict == lupid_common::verdict::ALLOW { "allow" } else { "deny" }.into(),
            mode: if info.flags & lupid_common::agent_flags::MONITOR == 0 { "enforce" } else { "monitor" }.into(),
        });
    }

    report.path_rules = kernel.path_rules_in_kernel();
    report.net_rules = kernel.net_keys().len();
    report.content_rules = kernel.content_keys().len();
    report.leases = kernel.leases_in_kernel();
    report.kernel_sequence = kernel.next_sequence();
    for (name, slot) in [
        ("ring_buffer_full", lupid_common::error::RINGBUF_FULL),
        ("path_unresolved", lupid_common::error::PATH_UNRESOLVED),
        ("read_failed", lupid_common::error::READ_FAILED),
        ("unknown_family", lupid_common::error::UNKNOWN_FAMILY),
    ] {
        report.failures.push((name.into(), kernel.error_count(slot)));
    }

    if let Ok(Some((seq, hash))) = lupid_ledger::LedgerReader::open_read_only(&state.ledger_dir).and_then(|r| r.head())
    {
        report.ledger_records = seq + 1;
        report.ledger_head = Some(hex::encode(hash));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::hook_program_name;

    #[test]
    fn program_names_completed() {
        assert_eq!(hook_program_name("bprm_check_secu").as_deref(), Some("bprm_check_security"));
        assert_eq!(hook_program_name("file_open").as_deref(), Some("file_open"));
        assert_eq!(hook_program_name(""), None);
        assert_eq!(hook_program_name("not_lupid"), None);
    }
}
