//! Live changes to running agents: mode switches and policy reloads. The
//! daemon records each change, with the person who requested it, before the
//! change takes effect.

use lupid_ledger::{ModeChanged, PolicyLoaded, RecordBody};
use sha2::{Digest as _, Sha256};

use super::{
    State,
    agents::{Registry, Replacement},
    grants,
    kernel::Kernel,
};
use crate::{policy::Policy, protocol::Reply};

/// Switches every live run of `agent` to monitor mode (`monitor`) or back
/// to enforce mode.
pub(crate) fn set_mode(state: &State, agent: &str, monitor: bool, by: &str) -> Reply {
    let mut kernel = state.kernel.lock().expect("kernel lock");
    let mut registry = state.registry.lock().expect("registry lock");
    let runs = registry.live_named(agent);
    if runs.is_empty() {
        return Reply::Error { message: not_running(agent) };
    }
    let mode = if monitor { "monitor" } else { "enforce" };

    let records = runs
        .iter()
        .map(|agent_id| {
            RecordBody::ModeChanged(ModeChanged {
                agent_id: *agent_id,
                agent: agent.to_owned(),
                mode: mode.to_owned(),
                changed_by: by.to_owned(),
            })
        })
        .collect();
    if let Err(message) = state.writer.append_durable(records) {
        return Reply::Error { message };
    }

    registry.set_default_mode(agent, monitor);
    let mut failures = Vec::new();
    for agent_id in &runs {
        if let Err(message) = registry.set_mode(&mut kernel, *agent_id, monitor) {
            tracing::error!(agent_id, %message, mode, "failed to switch the mode of an agent run");
            // The run keeps its previous mode, which the ledger does not
            // name any more, so it is denied everything instead.
            let failure = format!("failed to switch to {mode} mode: {message}");
            deny_after_failure(state, &registry, &mut kernel, (*agent_id, agent), &failure);
            failures.push(format!("agent run {agent_id}: {failure}; the run is now denied everything"));
        }
    }
    if !failures.is_empty() {
        return Reply::Error { message: failures.join("\n") };
    }
    tracing::info!(agent, mode, by, "mode switched");
    Reply::Changed { agent_ids: runs }
}

/// Swaps the policy of every live run of `agent`. A policy that does not
/// parse or compile changes nothing.
pub(crate) fn reload(state: &State, agent: &str, policy_path: &[u8], policy_text: &[u8], by: &str) -> Reply {
    let error = |message: String| Reply::Error { message };
    let name = String::from_utf8_lossy(policy_path).into_owned();
    let policy = match Policy::parse(&name, policy_text) {
        Ok(policy) => policy,
        Err(errors) => return error(crate::policy::join_errors(&errors)),
    };
    let sha256: [u8; 32] = Sha256::digest(policy_text).into();

    let mut kernel = state.kernel.lock().expect("kernel lock");
    let mut registry = state.registry.lock().expect("registry lock");
    let book = state.book.lock().expect("book lock");
    let runs = registry.live_named(agent);
    if runs.is_empty() {
        return error(not_running(agent));
    }

    // Compile once up front with the checks the install runs, so a policy
    // that names a protected folder or does not fit the kernel maps is
    // rejected before anything is recorded.
    let extra = grants::extra_rules(&policy, agent, &book);
    if let Err(message) = registry.compile(&policy, 0, &extra) {
        return error(message);
    }

    let records = runs
        .iter()
        .map(|agent_id| {
            RecordBody::PolicyLoaded(PolicyLoaded {
                agent_id: *agent_id,
                agent: agent.to_owned(),
                policy_sha256: sha256,
                policy_path: policy_path.to_vec(),
                previous_sha256: registry.agents[agent_id].policy_sha256,
                loaded_by: by.to_owned(),
            })
        })
        .collect();
    if let Err(message) = state.writer.append_durable(records) {
        return error(message);
    }

    let mut failures = Vec::new();
    for agent_id in &runs {
        let new = Some(Replacement {
            policy: policy.clone(),
            sha256,
            path: policy_path.to_vec(),
            text: policy_text.to_vec(),
        });
        if let Err(message) = registry.install(&mut kernel, *agent_id, new, &extra) {
            // The pre-check above leaves only kernel map failures here. The
            // run keeps its previous policy, although the ledger records the
            // new one as loaded, so it is denied everything instead.
            tracing::error!(agent_id, %message, "failed to install the new policy");
            let failure = format!("failed to install the new policy: {message}");
            deny_after_failure(state, &registry, &mut kernel, (*agent_id, agent), &failure);
            failures.push(format!("agent run {agent_id}: {failure}; the run is now denied everything"));
        }
    }
    if !failures.is_empty() {
        return error(failures.join("\n"));
    }
    tracing::info!(agent, by, sha256 = %hex::encode(sha256), "policy reloaded");
    Reply::Changed { agent_ids: runs }
}

/// Denies one agent run `(agent_id, agent name)` everything after a change
/// to it failed, and records a switch to mode `deny` with the failure, so
/// that the ledger names what the kernel enforces. When that record cannot
/// be written, the writer marks the ledger failed and the daemon denies
/// every labeled action anyway.
fn deny_after_failure(state: &State, registry: &Registry, kernel: &mut Kernel, run: (u32, &str), failure: &str) {
    let (agent_id, agent) = run;
    registry.deny(kernel, agent_id);
    let record = RecordBody::ModeChanged(ModeChanged {
        agent_id,
        agent: agent.to_owned(),
        mode: "deny".to_owned(),
        changed_by: format!("lupid daemon: {failure}"),
    });
    if let Err(message) = state.writer.append_durable(vec![record]) {
        tracing::error!(agent_id, %message, "failed to record that an agent run is denied everything");
    }
}

/// Formats the error for an agent name with no live run.
fn not_running(agent: &str) -> String {
    format!("no running agent is named {agent:?}; `lupid-agent status` lists the running agents")
}
