//! The agents the daemon runs: registering one (compile its policy into
//! the kernel maps, make its cgroup, record its identity) and retiring it.

use std::{collections::BTreeMap, path::PathBuf, time::Instant};

use lupid_common::{AgentInfo, NetKey, PathKey, verdict};

use super::{cgroup, kernel::Kernel};
use crate::policy;

/// One agent run, as the daemon keeps it to label the run's events.
#[derive(Clone, Debug)]
pub(crate) struct AgentEntry {
    pub(crate) agent_id: u32,
    pub(crate) name: String,
    pub(crate) policy_sha256: [u8; 32],
    /// Rule names, at index `rule_id - 1`.
    pub(crate) rule_names: Vec<String>,
    pub(crate) cgroup: cgroup::AgentCgroup,
    /// Kernel map keys written for this agent, to remove on retirement.
    path_keys: Vec<PathKey>,
    net_keys: Vec<(u32, NetKey)>,
    pub(crate) registered_at: Instant,
    pub(crate) retired: bool,
}

impl AgentEntry {
    /// Returns the name of a numeric rule id, or "" for 0 (the default).
    pub(crate) fn rule_name(&self, rule_id: u32) -> String {
        let index = rule_id.checked_sub(1).map(|i| i as usize);
        index.and_then(|i| self.rule_names.get(i)).cloned().unwrap_or_default()
    }
}

/// Every agent run since the daemon started, by agent id. Retired runs stay,
/// because their last events may still be in the ring buffer.
#[derive(Default)]
pub(crate) struct Registry {
    next_id: u32,
    pub(crate) agents: BTreeMap<u32, AgentEntry>,
}

impl Registry {
    /// Compiles `policy` under a new agent id, writes its rules into the
    /// kernel, creates the agent's cgroup and labels it. On any failure
    /// everything written so far is removed again.
    pub(crate) fn register(
        &mut self,
        kernel: &mut Kernel,
        cgroup_root: &std::path::Path,
        name: &str,
        policy: &policy::Policy,
        policy_sha256: [u8; 32],
    ) -> Result<AgentEntry, String> {
        self.next_id += 1;
        let agent_id = self.next_id;
        let compiled = policy::compile(policy, agent_id)
            .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))?;

        let mut entry = AgentEntry {
            agent_id,
            name: name.to_owned(),
            policy_sha256,
            rule_names: compiled.rule_names.clone(),
            cgroup: cgroup::AgentCgroup { path: PathBuf::new(), id: 0 },
            path_keys: Vec::new(),
            net_keys: Vec::new(),
            registered_at: Instant::now(),
            retired: false,
        };
        if let Err(e) = write_rules(kernel, &compiled, &mut entry) {
            remove_rules(kernel, &entry);
            return Err(e);
        }
        let cgroup = match cgroup::create(cgroup_root, &format!("{}-{agent_id}", cgroup_name(name))) {
            Ok(cgroup) => cgroup,
            Err(e) => {
                remove_rules(kernel, &entry);
                return Err(e.to_string());
            }
        };
        entry.cgroup = cgroup;
        let info = AgentInfo { agent_id, policy_id: agent_id, default_verdict: compiled.default_verdict, _reserved: 0 };
        if let Err(e) = kernel.insert_agent(entry.cgroup.id, &info) {
            remove_rules(kernel, &entry);
            let _ = cgroup::remove(&entry.cgroup.path);
            return Err(e.to_string());
        }
        self.agents.insert(agent_id, entry.clone());
        Ok(entry)
    }

    /// Removes an agent's label, rules and cgroup. The label goes first, so
    /// no process of the agent is ever labeled without its rules.
    pub(crate) fn retire(&mut self, kernel: &mut Kernel, agent_id: u32) -> Result<(), String> {
        let Some(entry) = self.agents.get_mut(&agent_id) else {
            return Err(format!("no agent with id {agent_id}"));
        };
        if entry.retired {
            return Ok(());
        }
        if cgroup::is_populated(&entry.cgroup.path).unwrap_or(true) {
            return Err(format!("agent {agent_id} still has processes in {}", entry.cgroup.path.display()));
        }
        kernel.remove_agent(entry.cgroup.id).map_err(|e| e.to_string())?;
        remove_rules(kernel, entry);
        cgroup::remove(&entry.cgroup.path).map_err(|e| e.to_string())?;
        entry.retired = true;
        Ok(())
    }

    /// Switches every live agent to "deny everything": used when the ledger
    /// can no longer record, since an unrecorded action must not happen.
    pub(crate) fn deny_all(&self, kernel: &mut Kernel) {
        for entry in self.agents.values().filter(|e| !e.retired) {
            // Policy id 0 has no rules, so the deny default decides.
            let info =
                AgentInfo { agent_id: entry.agent_id, policy_id: 0, default_verdict: verdict::DENY, _reserved: 0 };
            if let Err(e) = kernel.insert_agent(entry.cgroup.id, &info) {
                tracing::error!(agent_id = entry.agent_id, error = %e, "failed to switch agent to deny-all");
            }
        }
    }
}

fn write_rules(kernel: &mut Kernel, compiled: &policy::CompiledPolicy, entry: &mut AgentEntry) -> Result<(), String> {
    for (key, rule) in &compiled.path_rules {
        kernel.insert_path_rule(key, rule).map_err(|e| e.to_string())?;
        entry.path_keys.push(*key);
    }
    for (prefix_len, key, rule) in &compiled.net_rules {
        kernel.insert_net_rule(*prefix_len, *key, rule).map_err(|e| e.to_string())?;
        entry.net_keys.push((*prefix_len, *key));
    }
    Ok(())
}

fn remove_rules(kernel: &mut Kernel, entry: &AgentEntry) {
    for key in &entry.path_keys {
        if let Err(e) = kernel.remove_path_rule(key) {
            tracing::warn!(agent_id = entry.agent_id, error = %e, "failed to remove a path rule");
        }
    }
    for (prefix_len, key) in &entry.net_keys {
        if let Err(e) = kernel.remove_net_rule(*prefix_len, *key) {
            tracing::warn!(agent_id = entry.agent_id, error = %e, "failed to remove a network rule");
        }
    }
}

/// Makes an agent name safe as a directory name: anything but ASCII
/// letters, digits, `-`, `_` and `.` becomes `_`.
fn cgroup_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect();
    if cleaned.is_empty() || cleaned.starts_with('.') { format!("agent{cleaned}") } else { cleaned }
}

#[cfg(test)]
mod tests {
    use super::cgroup_name;

    #[test]
    fn cgroup_name_keeps_plain_names() {
        assert_eq!(cgroup_name("coder-1"), "coder-1");
    }

    #[test]
    fn cgroup_name_replaces_slashes() {
        assert_eq!(cgroup_name("../etc"), "agent.._etc");
    }

    #[test]
    fn cgroup_name_of_empty() {
        assert_eq!(cgroup_name(""), "agent");
    }
}
