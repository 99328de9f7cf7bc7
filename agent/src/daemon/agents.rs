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
//!
//! The live runs are saved in [`RUNS_FILE`] after every change. The kernel
//! maps are pinned and outlive the daemon, so the next daemon adopts each
//! run whose label it finds there ([`Registry::adopt`]) and keeps every
//! other labeled cgroup denied by default.

use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use lupid_common::{AgentInfo, ContentKey, NetKey, PathKey, agent_flags, verdict};
use serde::{Deserialize, Serialize};

use super::{cgroup, files, kernel::Kernel};
use crate::policy::{
    self, Rule,
    protected::{self, ProtectedFolder},
};

/// How long the entries of a replaced policy stay in the maps. A hook reads
/// the policy id before its lookups, and the exec hook reads it again after
/// hashing the binary, so this needs to cover one path scan, not a hash.
const SWAP_GRACE: Duration = Duration::from_secs(2);

/// Hash and rule names of one compiled policy id, for labeling its events.
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
#[expect(clippy::struct_field_names, reason = "each field lists the keys of one map")]
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
    /// The policy file as loaded, so the next daemon can parse it again.
    pub(crate) policy_text: Vec<u8>,
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
    /// Whether this daemon recorded the run's exit: reported by its
    /// `lupid-agent run`, or found by the sweeper.
    pub(crate) exit_recorded: bool,
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
    /// The daemon's folders, denied to every agent by rules compiled into
    /// every policy.
    protected: Vec<ProtectedFolder>,
    /// Path of [`RUNS_FILE`], or `None` to keep the live runs in memory only.
    runs_file: Option<PathBuf>,
}

/// File of the live agent runs in the state folder.
pub(crate) const RUNS_FILE: &str = "agents.json";

/// One live run as [`RUNS_FILE`] stores it. Byte strings are hex.
#[derive(Serialize, Deserialize)]
struct SavedRun {
    agent_id: u32,
    name: String,
    policy_text: String,
    policy_path: String,
    policy_sha256: String,
    cgroup_path: PathBuf,
    cgroup_id: u64,
    policy_id: u32,
    /// Every policy id of the run: (id, policy SHA-256, rule names).
    versions: Vec<(u32, String, Vec<String>)>,
}

/// The contents of [`RUNS_FILE`].
#[derive(Default, Serialize, Deserialize)]
struct SavedRegistry {
    next_id: u32,
    next_policy_id: u32,
    monitored: Vec<String>,
    runs: Vec<SavedRun>,
}

/// The policy of a labeled cgroup that no saved run describes: no rules,
/// so the deny default decides every action.
const DENY_ALL_POLICY: &str = "lupid-policy 1\ndefault deny\n";

/// Name and policy of a new agent run.
pub(crate) struct NewAgent<'a> {
    pub(crate) name: &'a str,
    pub(crate) policy: &'a policy::Policy,
    pub(crate) policy_sha256: [u8; 32],
    pub(crate) policy_path: &'a [u8],
    pub(crate) policy_text: &'a [u8],
}

/// A policy that replaces an agent's own in [`Registry::install`].
pub(crate) struct Replacement {
    pub(crate) policy: policy::Policy,
    pub(crate) sha256: [u8; 32],
    pub(crate) path: Vec<u8>,
    pub(crate) text: Vec<u8>,
}

impl Registry {
    /// Builds the registry at start from [`RUNS_FILE`] in `state_dir` and
    /// the labels in the kernel's `AGENTS` map, which an earlier daemon may
    /// have left pinned.
    ///
    /// A label that matches a saved run (same cgroup id, agent id and
    /// cgroup folder) is adopted with the rules that the kernel maps contain for it.
    /// Any other label whose cgroup still exists is switched to deny every
    /// action and kept for the sweeper to retire once the cgroup is empty.
    /// A label whose cgroup is gone is removed. Rules that no label points
    /// at are removed after [`SWAP_GRACE`]. Saved runs without a label are
    /// kept as retired runs, so their events still in the ring buffer get
    /// their names.
    pub(crate) fn adopt(kernel: &mut Kernel, state_dir: &Path, cgroup_root: &Path) -> anyhow::Result<Self> {
        let runs_file = state_dir.join(RUNS_FILE);
        let saved: SavedRegistry = match std::fs::read(&runs_file) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::error!(file = %runs_file.display(), error = %e, "the saved agent runs are damaged; labeled cgroups are denied by default");
                SavedRegistry::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SavedRegistry::default(),
            Err(e) => return Err(e).with_context(|| format!("failed to read {}", runs_file.display())),
        };
        let mut registry = Self {
            next_id: saved.next_id,
            next_policy_id: saved.next_policy_id,
            monitored: saved.monitored.into_iter().collect(),
            runs_file: Some(runs_file),
            ..Self::default()
        };
        let (path_keys, net_keys, content_keys) = (kernel.path_keys(), kernel.net_keys(), kernel.content_keys());
        let installed_for = |policy_id: u32| Installed {
            path_keys: path_keys.iter().filter(|key| key.policy_id == policy_id).copied().collect(),
            net_keys: net_keys.iter().filter(|(_, key)| key.policy_id_be == policy_id.to_be_bytes()).copied().collect(),
            content_keys: content_keys.iter().filter(|key| key.policy_id == policy_id).copied().collect(),
        };
        let mut runs: BTreeMap<u32, SavedRun> = saved.runs.into_iter().map(|run| (run.agent_id, run)).collect();

        for (cgroup_id, info) in kernel.agents_in_kernel() {
            registry.next_id = registry.next_id.max(info.agent_id);
            registry.next_policy_id = registry.next_policy_id.max(info.policy_id);
            let run = runs.remove(&info.agent_id).filter(|run| run.cgroup_id == cgroup_id);
            let adopted = run.and_then(|run| {
                let entry = adopted_entry(&run, info, installed_for(info.policy_id));
                if entry.is_none() {
                    tracing::error!(agent_id = info.agent_id, "failed to adopt a saved agent run; it is denied by default");
                }
                entry.filter(|entry| cgroup_inode(&entry.cgroup.path) == Some(cgroup_id))
            });
            let entry = if let Some(entry) = adopted {
                tracing::info!(agent_id = entry.agent_id, agent = %entry.name, cgroup = %entry.cgroup.path.display(), "adopted a running agent");
                entry
            } else {
                let Some(path) = find_cgroup(cgroup_root, cgroup_id) else {
                    kernel.remove_agent(cgroup_id).context("failed to remove the label of a removed cgroup")?;
                    tracing::info!(agent_id = info.agent_id, cgroup_id, "removed the label of a cgroup that no longer exists");
                    continue;
                };
                let entry = denied_entry(info.agent_id, cgroup::AgentCgroup { path, id: cgroup_id });
                kernel.insert_agent(cgroup_id, &entry.info()).context("failed to deny an unknown labeled cgroup")?;
                tracing::warn!(agent_id = info.agent_id, cgroup = %entry.cgroup.path.display(), "a labeled cgroup has no saved run; every action of it is denied until it is empty");
                entry
            };
            registry.agents.insert(entry.agent_id, entry);
        }
        for run in runs.into_values() {
            let Some(mut entry) = adopted_entry(&run, AgentInfo::default(), Installed::default()) else { continue };
            entry.retired = true;
            registry.next_id = registry.next_id.max(entry.agent_id);
            registry.agents.insert(entry.agent_id, entry);
        }

        // Rules that no label points at: left by a swap or retire the
        // earlier daemon did not finish, or by runs whose labels are gone.
        let referenced: std::collections::BTreeSet<u32> =
            registry.agents.values().filter(|entry| !entry.retired).map(|entry| entry.policy_id).collect();
        let mut orphans = Installed::default();
        for key in &path_keys {
            registry.next_policy_id = registry.next_policy_id.max(key.policy_id);
            if !referenced.contains(&key.policy_id) {
                orphans.path_keys.push(*key);
            }
        }
        for (prefix_len, key) in &net_keys {
            let policy_id = u32::from_be_bytes(key.policy_id_be);
            registry.next_policy_id = registry.next_policy_id.max(policy_id);
            if !referenced.contains(&policy_id) {
                orphans.net_keys.push((*prefix_len, *key));
            }
        }
        for key in &content_keys {
            registry.next_policy_id = registry.next_policy_id.max(key.policy_id);
            if !referenced.contains(&key.policy_id) {
                orphans.content_keys.push(*key);
            }
        }
        registry.replaced.push((Instant::now() + SWAP_GRACE, orphans));
        registry.save();
        Ok(registry)
    }

    /// Writes the live runs to [`RUNS_FILE`]: a new file, synced, renamed
    /// into place. A failure is logged, and the next daemon then denies the
    /// runs it cannot adopt.
    fn save(&self) {
        let Some(path) = &self.runs_file else { return };
        let saved = SavedRegistry {
            next_id: self.next_id,
            next_policy_id: self.next_policy_id,
            monitored: self.monitored.iter().cloned().collect(),
            runs: self.agents.values().filter(|entry| !entry.retired).map(saved_run).collect(),
        };
        let result =
            serde_json::to_vec(&saved).map_err(std::io::Error::other).and_then(|bytes| files::write_atomic(path, &bytes));
        if let Err(e) = result {
            tracing::error!(file = %path.display(), error = %e, "failed to save the agent runs; a restarted daemon will deny the runs it cannot adopt");
        }
    }

    /// Sets the daemon's folders, which every policy compiled from now on
    /// denies to its agent.
    pub(crate) fn protect(&mut self, folders: Vec<ProtectedFolder>) {
        self.protected = folders;
    }

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
            policy_text: agent.policy_text.to_vec(),
            cgroup,
            monitor: self.monitored.contains(agent.name),
            policy_id: 0,
            versions: BTreeMap::new(),
            installed: Installed::default(),
            default_verdict: verdict::DENY,
            policy_flags: 0,
            registered_at: Instant::now(),
            exit_recorded: false,
            retired: false,
        };
        self.agents.insert(agent_id, entry);
        if let Err(e) = self.install(kernel, agent_id, None, extra) {
            let entry = self.agents.remove(&agent_id).expect("inserted above");
            if let Err(remove_error) = cgroup::remove(&entry.cgroup.path) {
                tracing::error!(agent_id, cgroup = %entry.cgroup.path.display(), error = %remove_error, "failed to remove the cgroup of an agent that did not start");
            }
            return Err(e);
        }
        self.save();
        Ok(self.agents[&agent_id].clone())
    }

    /// Compiles `policy` with `extra` rules and the protection rules of the
    /// daemon's folders, after rejecting any rule on a path inside those
    /// folders. [`Registry::install`] compiles with it, and a caller that
    /// records a change before installing it runs it first with policy id 0,
    /// so nothing is recorded that the install would reject.
    pub(crate) fn compile(
        &self,
        policy: &policy::Policy,
        policy_id: u32,
        extra: &[Rule],
    ) -> Result<policy::CompiledPolicy, String> {
        let join = |errors: Vec<policy::PolicyError>| policy::join_errors(&errors);
        protected::check(policy, extra, &self.protected).map_err(join)?;
        // The protection rules come last, so they take the rule ids after
        // the policy's own rules and the leases.
        let mut rules = extra.to_vec();
        rules.extend(protected::rules(&self.protected));
        policy::compile_with(policy, policy_id, &rules).map_err(join)
    }

    /// Compiles a policy for a live agent under a new policy id and swaps
    /// it in. `policy` replaces the agent's policy when given; otherwise the
    /// current one is compiled again with new `extra` rules. On failure the
    /// policy in force stays, untouched.
    pub(crate) fn install(
        &mut self,
        kernel: &mut Kernel,
        agent_id: u32,
        policy: Option<Replacement>,
        extra: &[Rule],
    ) -> Result<(), String> {
        self.next_policy_id = self.next_policy_id.checked_add(1).ok_or("policy ids are exhausted; restart the daemon")?;
        let policy_id = self.next_policy_id;
        let entry = self.agents.get(&agent_id).ok_or_else(|| format!("no agent with id {agent_id}"))?;
        let source = policy.as_ref().map_or(&entry.policy, |replacement| &replacement.policy);
        let compiled = self.compile(source, policy_id, extra)?;

        let entry = self.agents.get_mut(&agent_id).expect("looked up above");
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
        if let Some(replacement) = policy {
            entry.policy = replacement.policy;
            entry.policy_sha256 = replacement.sha256;
            entry.policy_path = replacement.path;
            entry.policy_text = replacement.text;
        }
        let version = PolicyVersion { policy_sha256: entry.policy_sha256, rule_names: compiled.rule_names };
        entry.versions.insert(policy_id, version);
        let old = std::mem::replace(&mut entry.installed, installed);
        self.replaced.push((Instant::now() + SWAP_GRACE, old));
        self.save();
        Ok(())
    }

    /// Sets the mode new runs of the agent called `name` start in.
    pub(crate) fn set_default_mode(&mut self, name: &str, monitor: bool) {
        if monitor {
            self.monitored.insert(name.to_owned());
        } else {
            self.monitored.remove(name);
        }
        self.save();
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
        self.save();
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
        self.save();
        Ok(())
    }

    /// Switches every live agent to "deny everything": used when the ledger
    /// can no longer record, since an unrecorded action must not happen.
    /// Monitor mode ends too.
    pub(crate) fn deny_all(&self, kernel: &mut Kernel) {
        for agent_id in self.agents.values().filter(|e| !e.retired).map(|e| e.agent_id) {
            self.deny(kernel, agent_id);
        }
    }

    /// Switches one agent run to "deny everything", monitor mode included.
    pub(crate) fn deny(&self, kernel: &mut Kernel, agent_id: u32) {
        let Some(entry) = self.agents.get(&agent_id) else { return };
        // Policy id 0 has no rules, so the deny default decides.
        let info = AgentInfo { agent_id, policy_id: 0, default_verdict: verdict::DENY, flags: 0 };
        if let Err(e) = kernel.insert_agent(entry.cgroup.id, &info) {
            tracing::error!(agent_id, error = %e, "failed to switch agent to deny-all");
        }
    }
}

fn saved_run(entry: &AgentEntry) -> SavedRun {
    SavedRun {
        agent_id: entry.agent_id,
        name: entry.name.clone(),
        policy_text: hex::encode(&entry.policy_text),
        policy_path: hex::encode(&entry.policy_path),
        policy_sha256: hex::encode(entry.policy_sha256),
        cgroup_path: entry.cgroup.path.clone(),
        cgroup_id: entry.cgroup.id,
        policy_id: entry.policy_id,
        versions: entry
            .versions
            .iter()
            .map(|(id, version)| (*id, hex::encode(version.policy_sha256), version.rule_names.clone()))
            .collect(),
    }
}

/// Rebuilds a saved run with its label `info` from the kernel.
/// Returns `None` when the saved policy no longer parses.
fn adopted_entry(run: &SavedRun, info: AgentInfo, installed: Installed) -> Option<AgentEntry> {
    let policy_text = hex::decode(&run.policy_text).ok()?;
    let policy_path = hex::decode(&run.policy_path).ok()?;
    let mut policy_sha256 = [0; 32];
    hex::decode_to_slice(&run.policy_sha256, &mut policy_sha256).ok()?;
    let policy = policy::Policy::parse(&String::from_utf8_lossy(&policy_path), &policy_text).ok()?;
    let mut versions = BTreeMap::new();
    for (id, sha256, rule_names) in &run.versions {
        let mut policy_sha256 = [0; 32];
        hex::decode_to_slice(sha256, &mut policy_sha256).ok()?;
        versions.insert(*id, PolicyVersion { policy_sha256, rule_names: rule_names.clone() });
    }
    Some(AgentEntry {
        agent_id: run.agent_id,
        name: run.name.clone(),
        policy,
        policy_sha256,
        policy_path,
        policy_text,
        cgroup: cgroup::AgentCgroup { path: run.cgroup_path.clone(), id: run.cgroup_id },
        monitor: info.flags & agent_flags::MONITOR != 0,
        policy_id: info.policy_id,
        versions,
        installed,
        default_verdict: info.default_verdict,
        policy_flags: info.flags & !agent_flags::MONITOR,
        registered_at: Instant::now(),
        exit_recorded: false,
        retired: false,
    })
}

/// Returns the entry of a labeled cgroup that no saved run describes: no
/// name, no rules, every action denied.
fn denied_entry(agent_id: u32, cgroup: cgroup::AgentCgroup) -> AgentEntry {
    let policy = policy::Policy::parse("deny-all", DENY_ALL_POLICY.as_bytes()).expect("the deny-all policy parses");
    AgentEntry {
        agent_id,
        name: String::new(),
        policy,
        policy_sha256: [0; 32],
        policy_path: Vec::new(),
        policy_text: DENY_ALL_POLICY.as_bytes().to_vec(),
        cgroup,
        monitor: false,
        policy_id: 0,
        versions: BTreeMap::new(),
        installed: Installed::default(),
        default_verdict: verdict::DENY,
        policy_flags: 0,
        registered_at: Instant::now(),
        exit_recorded: false,
        retired: false,
    }
}

/// Returns the inode number of a folder, which is a cgroup's id.
fn cgroup_inode(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|metadata| metadata.ino())
}

/// Returns the agent cgroup below `lupid.slice` whose id is `cgroup_id`.
fn find_cgroup(cgroup_root: &Path, cgroup_id: u64) -> Option<PathBuf> {
    let slice = cgroup_root.join(cgroup::SLICE);
    std::fs::read_dir(slice)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| cgroup_inode(path) == Some(cgroup_id))
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
        kernel.insert_content_rule(key, *rule).map_err(|e| e.to_string())?;
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

    #[test]
    fn registry_compile_rejects_protected_paths() {
        let mut registry = super::Registry::default();
        let folder = super::ProtectedFolder { rule: "lupid-protected-state", path: "/var/lib/lupid".into() };
        registry.protect(vec![folder]);
        let text = "lupid-policy 1\ndefault deny\nall: allow open /** read\nledger: allow open /var/lib/lupid/** read\n";
        let policy = crate::policy::Policy::parse("t.lp", text.as_bytes()).expect("a valid policy");
        let error = registry.compile(&policy, 0, &[]).expect_err("a rule inside a protected folder");
        assert!(error.contains("ledger"), "{error}");

        let text = "lupid-policy 1\ndefault deny\nall: allow open /** read\n";
        let policy = crate::policy::Policy::parse("t.lp", text.as_bytes()).expect("a valid policy");
        let compiled = registry.compile(&policy, 0, &[]).expect("no rule inside a protected folder");
        // One protection rule on opens and one on Unix connects.
        assert_eq!(compiled.rule_names, ["all", "lupid-protected-state", "lupid-protected-state"]);
    }
}
