//! Granting, revoking and expiring leases, and the extra rules an agent's
//! policy is compiled with.
//!
//! Order of a grant: check that the agent's policy decides the capability
//! with a lease-required rule, record the grant durably, add it to the book,
//! write its `LEASES` slot, then recompile every live run of the agent with
//! it. A lease is therefore never in force before its grant is on record.
//!
//! Order of an end (revoke, deadline, last use, reboot): mark the lease as
//! ending in the book, zero its `LEASES` slot (the kernel denies from then
//! on), record the end durably, drop it from the book, recompile. A crash in
//! between leaves the mark, and the next sweep or start records the end.
//!
//! Lock order, as everywhere in the daemon: kernel, registry, book, requests.

use std::path::Path;

use lupid_common::{LeaseState, access, decide::Decision, protocol, reason, verdict};
use lupid_ledger::{LeaseExpired, LeaseGranted, LeaseRevoked, RecordBody};

use super::{
    State,
    agents::Registry,
    files,
    kernel::Kernel,
    leases::{self, Book, Capability, Ending, Lease},
};
use crate::policy::{
    self, Access, PathPattern, Policy, Protocol, Rule, Target,
    reference::{
        PathHook, create_slot, decide_connect_reference, decide_path_with, decide_slot, open_slots, unleased,
    },
};

/// A `lease grant` as the daemon receives it.
pub(crate) struct Grant<'a> {
    pub(crate) agent: &'a str,
    pub(crate) capability: &'a str,
    pub(crate) ttl_ns: u64,
    pub(crate) max_uses: u64,
    pub(crate) by: &'a str,
    pub(crate) reason: &'a str,
    pub(crate) request_id: u64,
}

/// Returns the rules an agent's policy is compiled with besides its own:
/// its name's live leases that satisfy a lease-required rule of `policy`. A
/// lease that does not is left out and logged.
pub(crate) fn extra_rules(policy: &Policy, name: &str, book: &Book) -> Vec<Rule> {
    if book.live_for(name).all(|lease| lease.slot.is_none()) {
        return Vec::new();
    }
    // One compile serves every lease's check.
    match compile_unleased(policy) {
        Ok(compiled) => extra_rules_with(policy, &compiled, name, book),
        Err(message) => {
            tracing::warn!(agent = name, %message, "the agent's leases are left out of a policy that does not compile");
            Vec::new()
        }
    }
}

/// Returns what [`extra_rules`] returns, checking each lease with
/// `compiled`, which is `policy` compiled alone.
fn extra_rules_with(policy: &Policy, compiled: &policy::CompiledPolicy, name: &str, book: &Book) -> Vec<Rule> {
    let leases = book.live_for(name).filter_map(|lease| Some((lease, lease.slot?)));
    let mut rules = Vec::new();
    for (lease, slot) in leases {
        let (capability, content) = match lease.parsed() {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::error!(lease = lease.id, error = %e, "lease left out of the policy");
                continue;
            }
        };
        match lease_rule(policy, compiled, &capability, content.as_ref()) {
            Ok(_) => rules.extend(leases::lease_rules(lease.id, &capability, content, slot)),
            Err(message) => tracing::warn!(lease = lease.id, %message, "lease left out of the policy"),
        }
    }
    rules
}

/// Compiles `policy` alone, for the host model of its decisions.
fn compile_unleased(policy: &Policy) -> Result<policy::CompiledPolicy, String> {
    policy::compile_with(policy, 0, &[]).map_err(|errors| policy::join_errors(&errors))
}

/// Returns the digest of the binary an exec lease names when `policy` has a
/// content rule for it, so the lease satisfies that rule (a content rule
/// decides before any path rule). `None` otherwise: a lease on a path never
/// reaches other copies of the binary.
fn leased_content(policy: &Policy, capability: &Capability) -> Option<[u8; 32]> {
    let Capability::Exec(pattern) = capability else { return None };
    if pattern.subtree {
        return None;
    }
    let digest = files::sha256_regular_file(Path::new(&pattern.path))?;
    policy.rules().iter().any(|rule| rule.target == Target::ExecContent(digest)).then_some(digest)
}

/// Returns the lease-required rule of `policy` that decides `capability`,
/// or why a lease cannot grant it.
///
/// A path lease is compiled into the slot of its own path, so it must not
/// change what that slot means for other paths. A subtree lease must satisfy
/// a subtree lease rule, because it would otherwise reach below an exact rule
/// into paths another rule decides. An exact lease must not sit on the path
/// of a subtree lease rule, because that rule would stop covering the
/// subtree. Read, write and create are checked one by one. Where no create
/// rule covers the path, the write slot decides a create. A subtree lease
/// on create would then take the place of the write rules below it, so it
/// is granted only where a create rule decides.
///
/// A connect lease must not widen another rule either. A lease for one
/// protocol is compiled for that protocol only. A lease for every protocol
/// is granted only when `lease` rules decide the address and port for TCP,
/// UDP and the other protocols alike, ICMP standing in for the others.
///
/// `compiled` is `policy` compiled alone, so several checks share one
/// compile.
fn lease_rule(
    policy: &Policy,
    compiled: &policy::CompiledPolicy,
    capability: &Capability,
    content: Option<&[u8; 32]>,
) -> Result<String, String> {
    let refuse = |why: String| format!("policy {}: a lease cannot grant `{}`: {why}", policy.name(), capability.text());
    let (pattern, decisions) = decisions(compiled, capability, content).map_err(refuse)?;
    let lease_rule_of = |decision: &Decision| {
        let rule = decision.rule_id.checked_sub(1).and_then(|i| policy.rules().get(i as usize));
        (rule, decision.reason == reason::LEASE_REQUIRED)
    };
    let mut answered = None;
    for (protocol_name, decision) in &decisions {
        let (rule, lease_required) = lease_rule_of(decision);
        let Some(rule) = rule.filter(|_| lease_required) else {
            let by = rule.map_or_else(|| "its default verdict".to_owned(), |rule| format!("rule \"{}\"", rule.id));
            let Some(protocol_name) = protocol_name else {
                return Err(refuse(format!(
                    "it is decided by {by}, and a lease only grants what a `lease` rule covers"
                )));
            };
            // A capability for every protocol: name the protocols a lease
            // could be granted for instead.
            let grantable: Vec<String> = decisions
                .iter()
                .filter(|(_, decision)| lease_rule_of(decision).1)
                .filter_map(|(name, _)| match name {
                    Some(name @ ("tcp" | "udp")) => Some(format!("`{} {name}`", capability.text())),
                    _ => None,
                })
                .collect();
            let hint = if grantable.is_empty() {
                String::new()
            } else {
                format!(
                    "; a capability without a protocol covers every IP protocol, so add tcp or udp: {}",
                    grantable.join(" or ")
                )
            };
            return Err(refuse(format!(
                "for {protocol_name} it is decided by {by}, and a lease only grants what a `lease` rule covers{hint}"
            )));
        };
        if let (Some(lease), Target::Exec(rule_path) | Target::Open(rule_path, _) | Target::ConnectUnix(rule_path)) =
            (pattern, &rule.target)
        {
            if lease.subtree && !rule_path.subtree {
                return Err(refuse(format!(
                    "rule \"{}\" names one file, so a lease on a subtree would reach paths other rules decide; \
                     grant the file itself",
                    rule.id
                )));
            }
            if !lease.subtree && rule_path.subtree && rule_path.path == lease.path {
                return Err(refuse(format!(
                    "rule \"{}\" covers {rule_path}, and a lease on {} alone would take its place there; \
                     grant {rule_path} instead",
                    rule.id, lease.path
                )));
            }
        }
        answered = Some(rule.id.clone());
    }
    answered.ok_or_else(|| refuse("it names no access".into()))
}

/// A decision of the policy on one part of a capability, labeled with the
/// protocol it is for when the capability covers every protocol.
type Labeled = (Option<&'static str>, Decision);

/// Returns the path a capability names, if any, and the decisions of the
/// policy without leases on what the capability allows, one per access or
/// protocol. A connect capability for every protocol gets one decision per
/// protocol, each labeled with the protocol's name. Fails on a subtree
/// create lease where no create rule decides.
fn decisions<'a>(
    compiled: &policy::CompiledPolicy,
    capability: &'a Capability,
    content: Option<&[u8; 32]>,
) -> Result<(Option<&'a PathPattern>, Vec<Labeled>), String> {
    Ok(match capability {
        Capability::Exec(pattern) => {
            let decision = decide_path_with(compiled, PathHook::Exec, pattern.path.as_bytes(), 0, content, unleased);
            (Some(pattern), vec![(None, decision)])
        }
        Capability::Open(pattern, requested) => {
            let slots = open_slots(compiled, pattern.path.as_bytes());
            let mut decisions = Vec::new();
            for bit in access_bits(*requested) {
                let slot = match bit {
                    access::READ => slots.read,
                    access::WRITE => slots.write,
                    _ if pattern.subtree && u32::from(slots.create.verdict) == verdict::NONE => {
                        return Err(format!(
                            "no create rule covers {pattern}, so the write rules decide creating files there, \
                             and a subtree lease on create would take their place below it; grant one file, \
                             or add a `lease` rule on create"
                        ));
                    }
                    _ => create_slot(&slots),
                };
                decisions.push((None, decide_slot(compiled, slot)));
            }
            (Some(pattern), decisions)
        }
        Capability::Connect { addr, port, protocol: Protocol::Any } => {
            let decide = |number| decide_connect_reference(compiled, (*addr).into(), *port, number);
            let decisions = vec![
                (Some("tcp"), decide(protocol::TCP)),
                (Some("udp"), decide(protocol::UDP)),
                (Some("protocols other than tcp and udp"), decide(IPPROTO_ICMP)),
            ];
            (None, decisions)
        }
        Capability::Connect { addr, port, protocol } => {
            (None, vec![(None, decide_connect_reference(compiled, (*addr).into(), *port, protocol.to_abi()))])
        }
        Capability::ConnectUnix(pattern) => {
            let decision =
                decide_path_with(compiled, PathHook::UnixConnect, pattern.path.as_bytes(), 0, None, unleased);
            (Some(pattern), vec![(None, decision)])
        }
    })
}

/// `IPPROTO_ICMP`, the protocol checked for every protocol but TCP and UDP
/// when a lease for every protocol is checked. No connect rule can name
/// another protocol, so they are all decided alike.
const IPPROTO_ICMP: u16 = 1;

/// Returns the `access::*` bit of each access in `requested`, in the order
/// read, write, create.
fn access_bits(requested: Access) -> Vec<u32> {
    [(requested.read, access::READ), (requested.write, access::WRITE), (requested.create, access::CREATE)]
        .into_iter()
        .filter(|(is_requested, _)| *is_requested)
        .map(|(_, bit)| bit)
        .collect()
}

/// Returns the capability of a lease request without the open accesses
/// that the policy `compiled` already allows, so a request to write and
/// create a file under a rule that allows writes grants only the create.
/// The request names every access the open requested, the allowed ones
/// included.
/// Returns the capability unchanged when it is not an open or when the
/// policy allows every access it names, so the grant fails with the
/// reason of [`lease_rule`].
fn without_allowed(compiled: &policy::CompiledPolicy, capability: Capability) -> Capability {
    let Capability::Open(pattern, requested) = &capability else { return capability };
    let slots = open_slots(compiled, pattern.path.as_bytes());
    let allowed = |slot| decide_slot(compiled, slot).allows();
    let needed = Access {
        read: requested.read && !allowed(slots.read),
        write: requested.write && !allowed(slots.write),
        create: requested.create && !allowed(create_slot(&slots)),
    };
    if needed == Access::default() {
        return capability;
    }
    Capability::Open(pattern.clone(), needed)
}

/// Grants a lease and puts it in force. Returns it as the book keeps it.
pub(crate) fn grant(state: &State, grant: &Grant<'_>) -> Result<Lease, String> {
    let requested = Capability::parse(grant.capability).map_err(|e| e.to_string())?;
    let mut kernel = state.kernel.lock().expect("kernel lock");
    let mut registry = state.registry.lock().expect("registry lock");
    let mut book = state.book.lock().expect("book lock");
    let runs = registry.live_named(grant.agent);
    let Some(first) = runs.first() else {
        return Err(format!(
            "no running agent is called {:?}; a lease is checked against the policy of a running agent",
            grant.agent
        ));
    };
    let policy = registry.agents[first].policy.clone();
    // One compile serves the narrowing, the lease's check and the checks of
    // the agent's other leases.
    let compiled = compile_unleased(&policy)?;
    let capability = if grant.request_id == 0 { requested } else { without_allowed(&compiled, requested) };
    // Revoking one of two leases on the same capability would leave it open,
    // against what the person revoking expects. A lease past its deadline
    // that the sweeper has not ended yet no longer counts.
    let now = leases::boot_ns();
    let same = |lease: &&Lease| lease.capability == capability.text() && lease.expires_boot_ns > now;
    if let Some(held) = book.live_for(grant.agent).find(same) {
        return Err(format!(
            "agent {:?} already holds lease {} on {}; revoke it first (`lupid-agent lease revoke {}`) or let it end",
            grant.agent,
            held.id,
            held.capability,
            held.id
        ));
    }
    let content = leased_content(&policy, &capability);
    let rule = lease_rule(&policy, &compiled, &capability, content.as_ref())?;
    let rule_id = policy.rules().iter().position(|r| r.id == rule).map_or(0, |i| u32::try_from(i + 1).unwrap_or(0));
    let slot = leases::free_slot(&book).ok_or("every lease slot is in use; revoke a lease first")?;
    // Compile with the new lease and the install's checks before anything is
    // recorded, so a lease the kernel maps cannot hold (a prefix past its
    // port rules) or one inside a protected folder is rejected.
    let mut trial = extra_rules_with(&policy, &compiled, grant.agent, &book);
    trial.extend(leases::lease_rules(0, &capability, content, slot));
    registry.compile(&policy, 0, &trial)?;
    let boot_id =
        leases::boot_id().map_err(|e| format!("{e:#}; no lease is granted without the boot it belongs to"))?;

    let lease = Lease {
        id: book.take_id(),
        agent: grant.agent.to_owned(),
        capability: capability.text(),
        rule,
        rule_id,
        request_id: grant.request_id,
        ttl_ns: grant.ttl_ns,
        expires_boot_ns: leases::boot_ns().saturating_add(grant.ttl_ns),
        boot_id,
        max_uses: grant.max_uses,
        uses: 0,
        granted_by: grant.by.to_owned(),
        reason: grant.reason.to_owned(),
        content_sha256: content.map(hex::encode),
        ending: None,
        slot: Some(slot),
    };
    state.writer.append_durable(vec![granted_record(&lease)])?;
    book.leases.push(lease.clone());
    if let Err(e) = book.save() {
        tracing::error!(error = %e, "failed to save the lease book; the lease is in force until the daemon stops");
    }
    let kernel_state = LeaseState {
        expires_boot_ns: lease.expires_boot_ns,
        uses: 0,
        max_uses: lease.max_uses,
        lease_id: lease.id,
        rule_id,
    };
    if let Err(e) = kernel.set_lease(slot, &kernel_state) {
        // The grant is on record, so its end must be too: revoke it at once.
        let message = format!("failed to write lease {} into the kernel's LEASES map, so it is revoked: {e}", lease.id);
        tracing::error!(lease = lease.id, %message, "lease revoked");
        let ending = Ending::by_daemon("revoked", leases::boot_ns());
        book.get_mut(lease.id).expect("pushed above").ending = Some(Ending { reason: message.clone(), ..ending });
        if let Err(end_error) = end(state, &mut kernel, &mut registry, &mut book, lease.id, false) {
            tracing::error!(lease = lease.id, message = %end_error, "failed to end the lease; the next sweep retries");
        }
        return Err(message);
    }
    recompile(&mut kernel, &mut registry, &book, grant.agent);
    state.requests.lock().expect("requests lock").answered(grant.request_id, &lease.agent, &lease.capability);
    Ok(lease)
}

fn granted_record(lease: &Lease) -> RecordBody {
    RecordBody::LeaseGranted(LeaseGranted {
        lease_id: lease.id,
        agent: lease.agent.clone(),
        capability: lease.capability.clone(),
        rule: lease.rule.clone(),
        request_id: lease.request_id,
        ttl_ns: lease.ttl_ns,
        expires_boot_ns: lease.expires_boot_ns,
        boot_id: lease.boot_id.clone(),
        max_uses: lease.max_uses,
        granted_by: lease.granted_by.clone(),
        reason: lease.reason.clone(),
    })
}

/// Recompiles every live run of `name` with its current leases.
pub(crate) fn recompile(kernel: &mut Kernel, registry: &mut Registry, book: &Book, name: &str) {
    for agent_id in registry.live_named(name) {
        let extra = extra_rules(&registry.agents[&agent_id].policy, name, book);
        if let Err(message) = registry.install(kernel, agent_id, None, &extra) {
            tracing::error!(agent_id, %message, "failed to recompile the agent's policy; the previous one stays in force");
        }
    }
}

/// Revokes a lease: the kernel denies its capability from now on.
pub(crate) fn revoke(state: &State, lease_id: u32, by: &str, why: &str) -> Result<(), String> {
    let mut kernel = state.kernel.lock().expect("kernel lock");
    let mut registry = state.registry.lock().expect("registry lock");
    let mut book = state.book.lock().expect("book lock");
    let Some(lease) = book.get_mut(lease_id) else {
        return Err(format!("no live lease has id {lease_id}; `lupid-agent lease list` shows them"));
    };
    let ending =
        Ending { cause: "revoked".into(), by: by.to_owned(), reason: why.to_owned(), at_boot_ns: leases::boot_ns() };
    lease.ending = Some(ending);
    end(state, &mut kernel, &mut registry, &mut book, lease_id, false)
}

/// Finishes ending a lease marked with `ending`: zeroes its slot, records
/// the end, drops it from the book and recompiles its agent.
fn end(
    state: &State,
    kernel: &mut Kernel,
    registry: &mut Registry,
    book: &mut Book,
    lease_id: u32,
    late: bool,
) -> Result<(), String> {
    if let Err(e) = book.save() {
        tracing::error!(error = %e, "failed to save the lease book");
    }
    let Some(lease) = book.get_mut(lease_id) else { return Ok(()) };
    if let Some(slot) = lease.slot.take() {
        if let Some(kernel_state) = kernel.lease(slot) {
            lease.uses = kernel_state.uses;
        }
        kernel.set_lease(slot, &LeaseState::default()).map_err(|e| e.to_string())?;
    }
    let lease = lease.clone();
    let ending = lease.ending.clone().unwrap_or_else(|| Ending::by_daemon("revoked", 0));
    let record = if ending.cause == "revoked" {
        RecordBody::LeaseRevoked(LeaseRevoked {
            lease_id,
            agent: lease.agent.clone(),
            revoked_by: ending.by,
            reason: ending.reason,
            uses: lease.uses,
        })
    } else {
        RecordBody::LeaseExpired(LeaseExpired {
            lease_id,
            agent: lease.agent.clone(),
            cause: ending.cause,
            expired_boot_ns: ending.at_boot_ns,
            uses: lease.uses,
            recorded_late: late,
        })
    };
    state.writer.append_durable(vec![record])?;
    book.leases.retain(|kept| kept.id != lease_id);
    if let Err(e) = book.save() {
        tracing::error!(error = %e, "failed to save the lease book");
    }
    recompile(kernel, registry, book, &lease.agent);
    Ok(())
}

/// Ends every lease whose deadline passed or whose uses ran out, and
/// finishes ends that a failure interrupted. Runs every second.
pub(crate) fn sweep(state: &State) {
    let mut kernel = state.kernel.lock().expect("kernel lock");
    let mut registry = state.registry.lock().expect("registry lock");
    let mut book = state.book.lock().expect("book lock");
    registry.remove_replaced(&mut kernel);
    let now = leases::boot_ns();
    let mut due = Vec::new();
    for lease in &mut book.leases {
        if let Some(kernel_state) = lease.slot.and_then(|slot| kernel.lease(slot)) {
            lease.uses = kernel_state.uses;
        }
        if lease.ending.is_none() {
            let cause = if now >= lease.expires_boot_ns {
                Some(("ttl", lease.expires_boot_ns))
            } else if lease.max_uses != 0 && lease.uses >= lease.max_uses {
                Some(("uses", now))
            } else {
                None
            };
            if let Some((cause, at_boot_ns)) = cause {
                lease.ending = Some(Ending::by_daemon(cause, at_boot_ns));
            }
        }
        if lease.ending.is_some() {
            due.push(lease.id);
        }
    }
    for lease_id in due {
        if let Err(message) = end(state, &mut kernel, &mut registry, &mut book, lease_id, false) {
            tracing::error!(lease = lease_id, %message, "failed to end a lease; retrying in a second");
        }
    }
}

/// At start: records the ends that happened while the daemon was away and
/// puts the other leases back in force, with their deadlines and uses.
///
/// The `LEASES` map is pinned, so a lease may still be in force in the slot
/// the book names, counted by the kernel while the daemon was away. Such a
/// lease keeps its slot, because adopted agents' rules point at it, and
/// takes the kernel's use count. A lease the kernel does not hold gets a
/// free slot. Slots that hold no live lease of the book are cleared, and the
/// agents with leases are compiled again so their rules name these slots.
pub(crate) fn restore(state: &State) -> Result<(), String> {
    let mut kernel = state.kernel.lock().expect("kernel lock");
    let mut registry = state.registry.lock().expect("registry lock");
    let mut book = state.book.lock().expect("book lock");
    // Without this boot's id no lease can be shown to belong to it, so the
    // start fails rather than revive leases of an earlier boot.
    let this_boot = leases::boot_id().map_err(|e| format!("{e:#}"))?;
    let now = leases::boot_ns();
    let ids: Vec<u32> = book.leases.iter().map(|lease| lease.id).collect();

    // Keep only the slots that contain the same lease in the kernel; the others
    // are free for the leases that need one.
    for lease_id in &ids {
        let lease = book.get_mut(*lease_id).expect("listed above");
        let in_kernel = lease.slot.and_then(|slot| kernel.lease(slot)).filter(|state| state.lease_id == *lease_id);
        match in_kernel {
            Some(state) => lease.uses = lease.uses.max(state.uses),
            None => lease.slot = None,
        }
    }
    for slot in 0..lupid_common::MAX_LEASES {
        let in_book = book.leases.iter().any(|lease| lease.slot == Some(slot));
        if !in_book && kernel.lease(slot).is_some_and(|state| state != LeaseState::default()) {
            tracing::warn!(slot, "clearing a lease slot that no lease of the book uses");
            kernel.set_lease(slot, &LeaseState::default()).map_err(|e| e.to_string())?;
        }
    }

    for lease_id in ids {
        let lease = book.get_mut(lease_id).expect("listed above");
        let ending = if lease.ending.is_some() {
            None
        } else if lease.boot_id != this_boot {
            Some(Ending::by_daemon("reboot", 0))
        } else if now >= lease.expires_boot_ns {
            Some(Ending::by_daemon("ttl", lease.expires_boot_ns))
        } else if lease.max_uses != 0 && lease.uses >= lease.max_uses {
            Some(Ending::by_daemon("uses", 0))
        } else {
            None
        };
        if ending.is_some() {
            lease.ending = ending;
        }
        if lease.ending.is_some() {
            end(state, &mut kernel, &mut registry, &mut book, lease_id, true)?;
            continue;
        }
        let kept_slot = book.get_mut(lease_id).expect("listed above").slot;
        let slot = match kept_slot {
            Some(slot) => slot,
            None => leases::free_slot(&book).ok_or("the lease book contains more leases than the kernel has slots")?,
        };
        let lease = book.get_mut(lease_id).expect("listed above");
        lease.slot = Some(slot);
        let kernel_state = LeaseState {
            expires_boot_ns: lease.expires_boot_ns,
            uses: lease.uses,
            max_uses: lease.max_uses,
            lease_id,
            rule_id: lease.rule_id,
        };
        if kept_slot.is_none() {
            kernel.set_lease(slot, &kernel_state).map_err(|e| e.to_string())?;
        }
        tracing::info!(lease = lease_id, slot, kept_slot = kept_slot.is_some(), agent = %lease.agent, capability = %lease.capability, "lease restored");
    }
    if let Err(e) = book.save() {
        tracing::error!(error = %e, "failed to save the lease book");
    }
    let names: std::collections::BTreeSet<String> = book.leases.iter().map(|lease| lease.agent.clone()).collect();
    for name in names {
        recompile(&mut kernel, &mut registry, &book, &name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{lease_rule, without_allowed};
    use crate::{daemon::leases::Capability, policy::Policy};

    fn policy(rules: &str) -> Policy {
        let text = format!("lupid-policy 1\ndefault deny\n{rules}");
        Policy::parse("t.lp", text.as_bytes()).expect("a valid policy")
    }

    fn check(rules: &str, capability: &str) -> Result<String, String> {
        let policy = policy(rules);
        let compiled = super::compile_unleased(&policy)?;
        lease_rule(&policy, &compiled, &Capability::parse(capability).expect("a capability"), None)
    }

    #[test]
    fn lease_rule_requires_lease_verdict() {
        assert_eq!(check("ask: lease connect 203.0.113.0/24:*\n", "connect 203.0.113.7:443"), Ok("ask".into()));
        let error = check("ok: allow connect 203.0.113.0/24:*\n", "connect 203.0.113.7:443").unwrap_err();
        assert!(error.contains("decided by rule \"ok\""), "{error}");
        let error = check("", "connect 203.0.113.7:443").unwrap_err();
        assert!(error.contains("its default verdict"), "{error}");
    }

    #[test]
    fn lease_rule_rejects_exact_under_subtree() {
        let rules = "all: allow open /** read\ndocs: lease open /home/a/docs/** read\n";
        let error = check(rules, "read /home/a/docs").unwrap_err();
        assert!(error.contains("grant /home/a/docs/** instead"), "{error}");
        assert_eq!(check(rules, "read /home/a/docs/x"), Ok("docs".into()), "a file below the rule's path is fine");
    }

    #[test]
    fn lease_rule_rejects_subtree_over_exact() {
        let rules = "srv: deny open /srv/** read\nreport: lease open /srv/report read\n";
        let error = check(rules, "read /srv/report/**").unwrap_err();
        assert!(error.contains("names one file"), "{error}");
        assert_eq!(check(rules, "read /srv/report"), Ok("report".into()));
    }

    #[test]
    fn lease_rule_checks_read_and_write() {
        let rules = "r: lease open /data/** read\nw: deny open /data/** write\n";
        let error = check(rules, "read,write /data/x").unwrap_err();
        assert!(error.contains("rule \"w\""), "{error}");
        assert_eq!(check(rules, "read /data/x"), Ok("r".into()));
    }

    #[test]
    fn lease_rule_checks_create() {
        let rules = "w: allow open /srv/** write\nc: lease open /srv/** create\n";
        assert_eq!(check(rules, "create /srv/x"), Ok("c".into()));
        let error = check(rules, "write,create /srv/x").unwrap_err();
        assert!(error.contains("decided by rule \"w\""), "{error}");
        let error = check("", "create /srv/x").unwrap_err();
        assert!(error.contains("its default verdict"), "{error}");
    }

    #[test]
    fn create_lease_under_write_lease_rule() {
        let rules = "w: lease open /srv/** write\n";
        assert_eq!(
            check(rules, "create /srv/x"),
            Ok("w".into()),
            "the write rule decides a create no create rule covers"
        );
        assert_eq!(check(rules, "write,create /srv/x"), Ok("w".into()));
        assert_eq!(check(rules, "write /srv/**"), Ok("w".into()));
        let error = check(rules, "write,create /srv/**").unwrap_err();
        assert!(error.contains("no create rule covers /srv/**"), "{error}");
    }

    #[test]
    fn create_lease_subtree_under_create_rule() {
        let rules = "w: allow open /srv/** write\nc: lease open /srv/** create\n";
        assert_eq!(check(rules, "create /srv/**"), Ok("c".into()));
    }

    #[test]
    fn connect_lease_without_protocol() {
        let rules = "ask: lease connect 203.0.113.0/24:*\n";
        assert_eq!(check(rules, "connect 203.0.113.7:443"), Ok("ask".into()));
        assert_eq!(check(rules, "connect 203.0.113.7:443 tcp"), Ok("ask".into()));
        assert_eq!(check(rules, "connect 203.0.113.7:443 udp"), Ok("ask".into()));
    }

    #[test]
    fn connect_lease_rejects_protocol_widening() {
        let rules = "ask: lease connect 203.0.113.0/24:* tcp\n";
        assert_eq!(check(rules, "connect 203.0.113.7:443 tcp"), Ok("ask".into()));
        let error = check(rules, "connect 203.0.113.7:443").unwrap_err();
        assert!(error.contains("for udp it is decided by its default verdict"), "{error}");
        assert!(error.contains("so add tcp or udp: `connect 203.0.113.7:443 tcp`"), "{error}");
        let error = check(rules, "connect 203.0.113.7:443 udp").unwrap_err();
        assert!(error.contains("it is decided by its default verdict"), "{error}");
    }

    #[test]
    fn connect_lease_rejects_over_allow_rule() {
        let rules = "ask: lease connect 203.0.113.0/24:*\ndns: allow connect 203.0.113.7:53 udp\n";
        let error = check(rules, "connect 203.0.113.7:53").unwrap_err();
        assert!(error.contains("for udp it is decided by rule \"dns\""), "{error}");
        assert!(error.contains("`connect 203.0.113.7:53 tcp`"), "{error}");
        assert!(!error.contains("53 udp`"), "{error}");
        assert_eq!(check(rules, "connect 203.0.113.7:53 tcp"), Ok("ask".into()));
    }

    #[test]
    fn connect_lease_needs_other_protocols() {
        let rules = "t: lease connect 203.0.113.0/24:* tcp\nu: lease connect 203.0.113.0/24:* udp\n";
        let error = check(rules, "connect 203.0.113.7:443").unwrap_err();
        assert!(error.contains("for protocols other than tcp and udp it is decided by its default verdict"), "{error}");
        assert!(error.contains("`connect 203.0.113.7:443 tcp` or `connect 203.0.113.7:443 udp`"), "{error}");
    }

    #[test]
    fn connect_lease_no_hint_without_lease_rule() {
        let error = check("d: deny connect 203.0.113.0/24:*\n", "connect 203.0.113.7:443").unwrap_err();
        assert!(error.contains("for tcp it is decided by rule \"d\""), "{error}");
        assert!(!error.contains("add tcp or udp"), "{error}");
    }

    #[test]
    fn unix_lease_checks_rule() {
        let rules = "ask: lease connect unix:/run/**\nbus: lease connect unix:@bus\nok: allow connect unix:/srv/**\n";
        assert_eq!(check(rules, "connect unix:/run/app.sock"), Ok("ask".into()));
        assert_eq!(check(rules, "connect unix:/run/**"), Ok("ask".into()));
        let error = check(rules, "connect unix:/run").unwrap_err();
        assert!(error.contains("grant /run/** instead"), "{error}");
        assert_eq!(check(rules, "connect unix:@bus"), Ok("bus".into()));
        let error = check(rules, "connect unix:@other").unwrap_err();
        assert!(error.contains("its default verdict"), "{error}");
        let error = check(rules, "connect unix:/srv/app.sock").unwrap_err();
        assert!(error.contains("decided by rule \"ok\""), "{error}");
    }

    #[test]
    fn unix_subtree_lease_over_exact_rule() {
        let error = check("one: lease connect unix:/run/app.sock\n", "connect unix:/run/app.sock/**").unwrap_err();
        assert!(error.contains("names one file"), "{error}");
    }

    fn narrowed(rules: &str, capability: &str) -> String {
        let capability = Capability::parse(capability).expect("a capability");
        let compiled = super::compile_unleased(&policy(rules)).expect("the policy compiles");
        without_allowed(&compiled, capability).text()
    }

    #[test]
    fn request_grant_leaves_out_allowed_access() {
        let rules = "w: allow open /srv/** write\nc: lease open /srv/** create\n";
        assert_eq!(narrowed(rules, "write,create /srv/x"), "create /srv/x");
        assert_eq!(narrowed(rules, "read,write /srv/x"), "read /srv/x");
        assert_eq!(narrowed(rules, "write /srv/x"), "write /srv/x", "nothing left to lease: unchanged");
        assert_eq!(narrowed(rules, "connect 203.0.113.7:443 tcp"), "connect 203.0.113.7:443 tcp");
    }

    #[test]
    fn request_grant_create_follows_write() {
        let rules = "w: allow open /srv/** write\nr: lease open /srv/** read\n";
        assert_eq!(narrowed(rules, "read,write,create /srv/x"), "read /srv/x");
    }
}
