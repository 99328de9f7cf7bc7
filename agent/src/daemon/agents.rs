//! The agents the daemon runs: registering one (make its cgroup, compile its
//! policy into the kernel maps, label the cgroup), swapping its policy, and
//! retiring it.
//!
//! Each compile gets a fresh policy id, the key prefix of its map entries.
//! A swap writes the new entries, then points the agent's `AGENTS` entry at
//! the new id in one map update, so every decision uses either the old
//! policy or the new one, never a mix and never none. The old entries are
//! removed only after [`SWAP_GRACE`], because a hook that read the old id
//! just before the swap may still be looking them up.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use lupid_common::{AgentInfo, ContentKey, NetKey, PathKey, agent_flags, verdict};

use super::{cgroup, kernel::Kernel};
use crate::policy::{self, Rule};

/// How long the entries of a replaced policy stay in the maps. A hook reads
/// the policy id before its lookups, and the exec hook reads it again after
/// hashing the binary, so this needs to cover one path scan, not a hash.
const SWAP_GRACE: Duration = Duration::from_secs(2);

/// One compiled policy as the kernel holds it.
#[derive(Clone, Debug)]
pub(crate) struct PolicyVersion {
    pub(crate) policy_sha256: [u8; 32],
    /// Rule names, at index `rule_id - 1`.
    pub(crate) rule_names: Vec<String>,
}

impl PolicyVersion {
    /// Returns the name of a numeric rule id, or "" for 0 (the default).
    pub(crate) fn rule_name(&self, rule_id: u32) -> String {
        let index = rule_id.checked_sub(1).map(|i| i as usize);
        index.and_then(|i| self.rule_names.get(i)).cloned().unwrap_or_default()
    }
}

/// Map keys written for one policy id, to remove when it is replaced.
#[derive(Clone, Debug, Default)]
struct Installed {
    path_keys: Vec<PathKey>,
    net_keys: Vec<(u32, NetKey)>,
    content_keys: Vec<ContentKey>,
}

/// One agent run, as the daemon keeps it to label the run's events.
#[derive(Clone, Debug)]
pub(crate) struct AgentEntry {
    pub(crate) agent_id: u32,
    pub(crate) name: String,
    pub(crate) policy: policy::Policy,
    pub(crate) policy_sha256: [u8; 32],
    pub(crate) policy_path: Vec<u8>,
    pub(crate) cgroup: cgroup::AgentCgroup,
    pub(crate) monitor: bool,
    /// The policy id in force.
    pub(crate) policy_id: u32,
    /// Every policy id this run has used, for labeling late events.
    pub(crate) versions: BTreeMap<u32, PolicyVersion>,
    installed: Installed,
    /// `AgentInfo` fields of the policy in force.
    default_verdict: u32,
    policy_flags: u32,
    pub(crate) registered_at: Instant,
    pub(crate) retired: bool,
}

impl AgentEntry {
    /// Returns the policy version that decided under `policy_id`.
    pub(crate) fn version(&self, policy_id: u32) -> Option<&PolicyVersion> {
        self.versions.get(&policy_id)
    }

    fn info(&self) -> AgentInfo {
        let mode = if self.monitor { agent_flags::MONITOR } else { 0 };
        AgentInfo {
            agent_id: self.agent_id,
            policy_id: self.policy_id,
            default_verdict: self.default_verdict,
            flags: self.policy_flags | mode,
        }
    }
}

/// Every agent run since the daemon started, by agent id. Retired runs stay,
/// because their last events may still be in the ring buffer.
#[derive(Default)]
pub(crate) struct Registry {
    next_id: u32,
    next_policy_id: u32,
    pub(crate) agents: BTreeMap<u32, AgentEntry>,
    /// Entries of replaced policies, with the time they may be removed.
    replaced: Vec<(Instant, Installed)>,
    /// Agents switched to monitor mode, by name; new runs start in it.
    monitored: std::collections::BTreeSet<String>,
}

/// What an agent run starts with.
pub(crate) struct NewAgent<'a> {
    pub(crate) name: &'a str,
    pub(crate) policy: &'a policy::Policy,
    pub(crate) policy_sha256: [u8; 32],
    pub(crate) policy_path: &'a [u8],
}

impl Registry {
    /// Creates the agent's cgroup, compiles its policy with `extra` rules
    /// (granted leases) under a new policy id, writes it into
    /// the kernel and labels the cgroup. On any failure everything written
    /// so far is removed again.
    pub(crate) fn register(
        &mut self,
        kernel: &mut Kernel,
        cgroup_root: &std::path::Path,
        agent: &NewAgent<'_>,
        extra: &[Rule],
    ) -> Result<AgentEntry, String> {
        self.next_id += 1;
        let agent_id = self.next_id;
        let cgroup = cgroup::create(cgroup_root, &format!("{}-{agent_id}", cgroup_name(agent.name)))
            .map_err(|e| e.to_string())?;
        let entry = AgentEntry {
            agent_id,
            name: agent.name.to_owned(),
            policy: agent.policy.clone(),
            policy_sha256: agent.policy_sha256,
            policy_path: agent.policy_path.to_vec(),
            cgroup,
            monitor: self.monitored.contains(agent.name),
            policy_id: 0,
            versions: BTreeMap::new(),
            installed: Installed::default(),
            default_verdict: verdict::DENY,
            policy_flags: 0,
            registered_at: Instant::now(),
            retired: false,
        };
        self.agents.insert(agent_id, entry);
        if let Err(e) = self.install(kernel, agent_id, None, extra) {
            let entry = self.agents.remove(&agent_id).expect("inserted above");
            let _ = cgroup::remove(&entry.cgroup.path);
            return Err(e);
        }
        Ok(self.agents[&agent_id].clone())
    }

    /// Compiles a policy for a live agent under a new policy id and swaps
    /// it in. `policy` replaces the agent's policy when given; otherwise the
    /// current one is compiled again with new `extra` rules. On failure the
    /// policy in force stays, untouched.
    pub(crate) fn install(
        &mut self,
        kernel: &mut Kernel,
        agent_id: u32,
        policy: Option<(policy::Policy, [u8; 32], Vec<u8>)>,
        extra: &[Rule],
    ) -> Result<(), String> {
        self.next_policy_id = self.next_policy_id.checked_add(1).ok_or("policy ids are exhausted; restart the daemon")?;
        let policy_id = self.next_policy_id;
        let entry = self.agents.get_mut(&agent_id).ok_or_else(|| format!("no agent with id {agent_id}"))?;
        let source = policy.as_ref().map_or(&entry.policy, |(policy, _, _)| policy);
        let compiled = policy::compile_with(source, policy_id, extra)
            .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))?;

        let mut installed = Installed::default();
        if let Err(e) = write_rules(kernel, &compiled, &mut installed) {
            remove_rules(kernel, agent_id, &installed);
            return Err(e);
        }
        let previous = (entry.policy_id, entry.default_verdict, entry.policy_flags);
        entry.policy_id = policy_id;
        entry.default_verdict = compiled.default_verdict;
        entry.policy_flags = compiled.flags;
        if let Err(e) = kernel.insert_agent(entry.cgroup.id, &entry.info()) {
            (entry.policy_id, entry.default_verdict, entry.policy_flags) = previous;
            remove_rules(kernel, agent_id, &installed);
            return Err(e.to_string());
        }
        if let Some((policy, sha256, path)) = policy {
            entry.policy = policy;
            entry.policy_sha256 = sha256;
            entry.policy_path = path;
        }
        let version = PolicyVersion { policy_sha256: entry.policy_sha256, rule_names: compiled.rule_names };
        entry.versions.insert(policy_id, version);
        let old = std::mem::replace(&mut entry.installed, installed);
        self.replaced.push((Instant::now() + SWAP_GRACE, old));
        Ok(())
    }

    /// Sets the mode new runs of the agent called `name` start in.
    pub(crate) fn set_default_mode(&mut self, name: &str, monitor: bool) {
        if monitor {
            self.monitored.insert(name.to_owned());
        } else {
            self.monitored.remove(name);
        }
    }

    /// Switches a live agent between enforce and monitor mode.
    pub(crate) fn set_mode(&mut self, kernel: &mut Kernel, agent_id: u32, monitor: bool) -> Result<(), String> {
        let entry = self.agents.get_mut(&agent_id).ok_or_else(|| format!("no agent with id {agent_id}"))?;
        let before = entry.monitor;
        entry.monitor = monitor;
        if let Err(e) = kernel.insert_agent(entry.cgroup.id, &entry.info()) {
            entry.monitor = before;
            return Err(e.to_string());
        }
        Ok(())
    }

    /// Removes the entries of replaced policies whose grace time is over.
    pub(crate) fn remove_replaced(&mut self, kernel: &mut Kernel) {
        let now = Instant::now();
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.replaced).into_iter().partition(|(at, _)| *at <= now);
        self.replaced = keep;
        for (_, installed) in due {
            remove_rules(kernel, 0, &installed);
        }
    }

    /// Returns the live runs of the agent called `name`.
    pub(crate) fn live_named(&self, name: &str) -> Vec<u32> {
        self.agents.values().filter(|e| !e.retired && e.name == name).map(|e| e.agent_id).collect()
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
        remove_rules(kernel, agent_id, &std::mem::take(&mut entry.installed));
        cgroup::remove(&entry.cgroup.path).map_err(|e| e.to_string())?;
        entry.retired = true;
        Ok(())
    }

    /// Switches every live agent to "deny everything": used when the ledger
    /// can no longer record, since an unrecorded action must not happen.
    /// Monitor mode ends too.
    pub(crate) fn deny_all(&self, kernel: &mut Kernel) {
        for entry in self.agents.values().filter(|e| !e.retired) {
            // Policy id 0 has no rules, so the deny default decides.
            let info = AgentInfo { agent_id: entry.agent_id, policy_id: 0, default_verdict: verdict::DENY, flags: 0 };
            if let Err(e) = kernel.insert_agent(entry.cgroup.id, &info) {
                tracing::error!(agent_id = entry.agent_id, error = %e, "failed to switch agent to deny-all");
            }
        }
    }
}

fn write_rules(kernel: &mut Kernel, compiled: &policy::CompiledPolicy, installed: &mut Installed) -> Result<(), String> {
    for (key, rule) in &compiled.path_rules {
        kernel.insert_path_rule(key, rule).map_err(|e| e.to_string())?;
        installed.path_keys.push(*key);
    }
    for (prefix_len, key, rule) in &compiled.net_rules {
        kernel.insert_net_rule(*prefix_len, *key, rule).map_err(|e| e.to_string())?;
        installed.net_keys.push((*prefix_len, *key));
    }
    for (key, rule) in &compiled.content_rules {
        kernel.insert_content_rule(key, rule).map_err(|e| e.to_string())?;
        installed.content_keys.push(*key);
    }
    Ok(())
}

fn remove_rules(kernel: &mut Kernel, agent_id: u32, installed: &Installed) {
    for key in &installed.path_keys {
        if let Err(e) = kernel.remove_path_rule(key) {
            tracing::warn!(agent_id, error = %e, "failed to remove a path rule");
        }
    }
    for (prefix_len, key) in &installed.net_keys {
        if let Err(e) = kernel.remove_net_rule(*prefix_len, *key) {
            tracing::warn!(agent_id, error = %e, "failed to remove a network rule");
        }
    }
    for key in &installed.content_keys {
        if let Err(e) = kernel.remove_content_rule(key) {
            tracing::warn!(agent_id, error = %e, "failed to remove a content rule");
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
