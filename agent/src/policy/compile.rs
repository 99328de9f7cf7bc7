//! Compiles a validated policy into the entries of the kernel's rule maps.
//!
//! `PATH_RULES` gets one entry per distinct rule path or Unix socket name,
//! holding the exec, read, write, create and connect slots for that key.
//! `NET_RULES` gets one entry per distinct prefix. The kernel does a single
//! longest-prefix lookup and takes the first entry whose port range
//! contains the port and whose protocol matches. So each prefix's entry
//! lists its own rules and then the rules of every enclosing prefix, longer
//! prefix first. Within a prefix the narrower port range comes first, and at equal
//! width a rule with a protocol comes before one for every protocol.
//! `EXEC_CONTENT` gets one entry per content digest.
//!
//! Granted leases are compiled as extra rules with the verdict
//! [`Verdict::Leased`], after the policy's own rules. On the same path and
//! access a lease takes the slot, and on the same prefix a lease's port
//! range comes before an equally wide rule. The daemon grants a lease only
//! for an action that the policy decides with a lease-required rule, so a
//! lease never takes the place of an allow or deny rule.

use std::collections::BTreeMap;

use lupid_common::{
    ContentKey, EXEC_CONTENT_CAPACITY, NET_RULES_CAPACITY, NET_RULES_PER_PREFIX, NetKey, NetRule, PATH_RULES_CAPACITY,
    PathKey, PathRule, PortRule, RuleSlot, agent_flags, path_flags, protocol,
};

use super::{NetPattern, Policy, PolicyError, Position, Rule, Target, Verdict};

/// Everything the daemon writes into the kernel maps for one policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CompiledPolicy {
    /// Key prefix of every map entry below.
    pub(crate) policy_id: u32,
    /// `verdict::ALLOW` or `verdict::DENY`, for `AgentInfo::default_verdict`.
    pub(crate) default_verdict: u32,
    /// `agent_flags` bits the policy needs (`EXEC_CONTENT`).
    pub(crate) flags: u32,
    /// Rule names by numeric rule id: `rule_names[rule_id - 1]`.
    pub(crate) rule_names: Vec<String>,
    /// `PATH_RULES` entries, sorted by path.
    pub(crate) path_rules: Vec<(PathKey, PathRule)>,
    /// `NET_RULES` entries as (trie prefix length in bits, key, value),
    /// sorted by address and prefix length. The trie prefix length counts
    /// the 32 bits of the policy id, so it is 32 plus the IPv6 prefix length.
    pub(crate) net_rules: Vec<(u32, NetKey, NetRule)>,
    /// `EXEC_CONTENT` entries, sorted by digest.
    pub(crate) content_rules: Vec<(ContentKey, RuleSlot)>,
}

/// Compiles `policy` for the map key prefix `policy_id`, without leases.
#[cfg(test)]
pub(crate) fn compile(policy: &Policy, policy_id: u32) -> Result<CompiledPolicy, Vec<PolicyError>> {
    compile_with(policy, policy_id, &[])
}

/// Compiles `policy` and `extra` rules (granted leases) for the map key
/// prefix `policy_id`. Extra rules are numbered after the policy's own
/// rules.
///
/// Fails when a prefix would need more than `NET_RULES_PER_PREFIX` port
/// rules, or when the policy has more rules than a `u32` id can number.
pub(crate) fn compile_with(
    policy: &Policy,
    policy_id: u32,
    extra: &[Rule],
) -> Result<CompiledPolicy, Vec<PolicyError>> {
    let rules: Vec<&Rule> = policy.rules().iter().chain(extra).collect();
    let Ok(rule_count) = u32::try_from(rules.len()) else {
        let message = format!("too many rules ({}): rule ids must fit in 32 bits", rules.len());
        return Err(vec![PolicyError::new(policy.name(), Position { line: 1, column: 1 }, message)]);
    };
    // Rule ids are 1-based so that 0 can mean "no rule" in events. A lease
    // slot carries the lease's index in `LEASES` instead.
    let numbered = rules.iter().copied().zip(1..=rule_count).map(|(rule, rule_id)| match rule.verdict {
        Verdict::Leased { slot } => (rule, slot),
        _ => (rule, rule_id),
    });

    let path_rules = compile_paths(numbered.clone(), policy_id);
    let content_rules = compile_contents(numbered.clone(), policy_id);
    let net_rules = compile_destinations(policy.name(), numbered, policy_id)?;
    let capacity_errors: Vec<PolicyError> = [
        ("path", path_rules.len(), PATH_RULES_CAPACITY),
        ("network prefix", net_rules.len(), NET_RULES_CAPACITY),
        ("content", content_rules.len(), EXEC_CONTENT_CAPACITY),
    ]
    .into_iter()
    .filter(|(_, needed, capacity)| *needed > *capacity as usize)
    .map(|(kind, needed, capacity)| {
        let message = format!(
            "the policy needs {needed} {kind} entries, but the kernel map has room for {capacity} for all agents together: \
             merge rules into subtree rules or wider prefixes"
        );
        PolicyError::new(policy.name(), Position { line: 1, column: 1 }, message)
    })
    .collect();
    if !capacity_errors.is_empty() {
        return Err(capacity_errors);
    }
    Ok(CompiledPolicy {
        policy_id,
        default_verdict: policy.default_verdict().to_abi(),
        flags: if content_rules.is_empty() { 0 } else { agent_flags::EXEC_CONTENT },
        rule_names: rules.iter().map(|rule| rule.id.clone()).collect(),
        path_rules,
        net_rules,
        content_rules,
    })
}

/// Returns one `EXEC_CONTENT` entry per digest: the policy's own rule, or a
/// lease on the same content, which comes later and replaces a
/// lease-required rule.
fn compile_contents<'a>(rules: impl Iterator<Item = (&'a Rule, u32)>, policy_id: u32) -> Vec<(ContentKey, RuleSlot)> {
    let mut by_digest: BTreeMap<[u8; 32], RuleSlot> = BTreeMap::new();
    for (rule, rule_id) in rules {
        let Target::ExecContent(digest) = &rule.target else {
            continue;
        };
        let slot = RuleSlot { rule_id, verdict: slot_verdict(rule.verdict), exact: 1 };
        match by_digest.get(digest) {
            Some(existing) if !(matches!(rule.verdict, Verdict::Leased { .. }) && is_lease_required(*existing)) => {}
            _ => {
                by_digest.insert(*digest, slot);
            }
        }
    }
    by_digest.into_iter().map(|(sha256, slot)| (ContentKey { policy_id, sha256 }, slot)).collect()
}

fn is_lease_required(slot: RuleSlot) -> bool {
    u32::from(slot.verdict) == lupid_common::verdict::LEASE_REQUIRED
}

fn compile_paths<'a>(rules: impl Iterator<Item = (&'a Rule, u32)>, policy_id: u32) -> Vec<(PathKey, PathRule)> {
    let mut by_path: BTreeMap<&str, PathRule> = BTreeMap::new();
    let mut file_rule_paths = Vec::new();
    for (rule, rule_id) in rules {
        let pattern = match &rule.target {
            Target::Exec(pattern) | Target::Open(pattern, _) | Target::ConnectUnix(pattern) => pattern,
            Target::Connect(_) | Target::ExecContent(_) => continue,
        };
        let slot = RuleSlot { rule_id, verdict: slot_verdict(rule.verdict), exact: u16::from(!pattern.subtree) };
        let entry = by_path.entry(pattern.path.as_str()).or_default();
        match &rule.target {
            Target::Open(_, access) => {
                if access.read {
                    entry.read = slot;
                }
                if access.write {
                    entry.write = slot;
                }
                if access.create {
                    entry.create = slot;
                }
            }
            Target::ConnectUnix(_) => entry.connect = slot,
            _ => entry.exec = slot,
        }
        if !matches!(rule.target, Target::ConnectUnix(_)) {
            file_rule_paths.push(pattern.path.as_str());
        }
    }
    // A rename of a folder is judged by the rules at its two names alone,
    // so the kernel must know where rules lie below a name. A Unix socket
    // keeps the name it was bound to, so its rules mark nothing.
    for path in file_rule_paths {
        for ancestor in ancestors(path) {
            by_path.entry(ancestor).or_default().flags |= path_flags::RULES_BELOW;
        }
    }

    by_path
        .into_iter()
        .map(|(path, rule)| {
            let mut key = PathKey { policy_id, ..PathKey::default() };
            // Cannot overflow: parsing rejects rule paths over RULE_PATH_MAX
            // bytes and socket names over 108.
            key.path[..path.len()].copy_from_slice(path.as_bytes());
            (key, rule)
        })
        .collect()
}

/// Returns the folders above `path` (an absolute path without a trailing
/// slash), the root `/` included: `/a/b/c` gives `/a/b`, `/a` and `/`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.char_indices().filter(|&(_, c)| c == '/').map(move |(at, _)| if at == 0 { "/" } else { &path[..at] }).filter(move |&ancestor| ancestor != path)
}

fn slot_verdict(verdict: Verdict) -> u16 {
    // The verdict constants fit in 16 bits. Were one not to, u16::MAX is not
    // ALLOW, so the kernel would read it as a denial.
    u16::try_from(verdict.to_abi()).unwrap_or(u16::MAX)
}

/// One prefix of the policy with its own port rules, most specific first.
struct Prefix<'a> {
    pattern: NetPattern,
    /// The first rule on this prefix, where a limit error points.
    first_rule: &'a Rule,
    own: Vec<PortRule>,
}

fn compile_destinations<'a>(
    file: &str,
    rules: impl Iterator<Item = (&'a Rule, u32)>,
    policy_id: u32,
) -> Result<Vec<(u32, NetKey, NetRule)>, Vec<PolicyError>> {
    let mut by_prefix: BTreeMap<(u128, u8), Prefix<'a>> = BTreeMap::new();
    for (rule, rule_id) in rules {
        let Target::Connect(pattern) = &rule.target else {
            continue;
        };
        let prefix = by_prefix.entry((u128::from(pattern.network), pattern.prefix_len)).or_insert_with(|| Prefix {
            pattern: *pattern,
            first_rule: rule,
            own: Vec::new(),
        });
        prefix.own.push(PortRule {
            port_lo: pattern.port_lo,
            port_hi: pattern.port_hi,
            rule_id,
            verdict: slot_verdict(rule.verdict),
            protocol: pattern.protocol.to_abi(),
        });
    }
    for prefix in by_prefix.values_mut() {
        // The kernel takes the first entry that contains the port and the
        // protocol, so the order is the precedence: narrowest range, then a
        // rule with a protocol before one for every protocol. A lease sorts
        // before an equally specific rule. The sort is stable.
        prefix.own.sort_by_key(|port_rule| {
            let any_protocol = port_rule.protocol == protocol::ANY;
            let not_lease = u32::from(port_rule.verdict) != lupid_common::verdict::LEASED;
            (port_rule.port_hi - port_rule.port_lo, any_protocol, port_rule.port_lo, not_lease)
        });
    }

    let mut entries = Vec::with_capacity(by_prefix.len());
    let mut errors = Vec::new();
    for prefix in by_prefix.values() {
        let mut enclosing: Vec<&Prefix<'_>> = by_prefix
            .values()
            .filter(|outer| {
                outer.pattern.prefix_len < prefix.pattern.prefix_len && outer.pattern.encloses(&prefix.pattern)
            })
            .collect();
        enclosing.sort_by_key(|outer| std::cmp::Reverse(outer.pattern.prefix_len));

        let port_rules: Vec<PortRule> =
            prefix.own.iter().chain(enclosing.iter().flat_map(|outer| &outer.own)).copied().collect();
        if port_rules.len() > NET_RULES_PER_PREFIX {
            errors.push(limit_error(file, prefix, port_rules.len()));
            continue;
        }

        let mut value = NetRule::default();
        value.entries[..port_rules.len()].copy_from_slice(&port_rules);
        let key = NetKey { policy_id_be: policy_id.to_be_bytes(), addr: prefix.pattern.network.octets() };
        entries.push((32 + u32::from(prefix.pattern.prefix_len), key, value));
    }

    if errors.is_empty() {
        Ok(entries)
    } else {
        errors.sort_by_key(|error: &PolicyError| error.at);
        Err(errors)
    }
}

fn limit_error(file: &str, prefix: &Prefix<'_>, needed: usize) -> PolicyError {
    let own = prefix.own.len();
    let message = format!(
        "prefix {} needs {needed} port rules ({own} of its own and {} inherited from enclosing prefixes), \
         but the kernel cannot enforce more than {NET_RULES_PER_PREFIX} per prefix: \
         merge port ranges or remove rules",
        prefix.pattern.prefix_text(),
        needed - own
    );
    PolicyError::new(file, prefix.first_rule.object_at, message)
}
