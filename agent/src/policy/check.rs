//! Checks across rules: duplicate ids and rules that compete for the same
//! kernel map slot.
//!
//! The kernel keeps one rule per path and access (exec, read, write, create,
//! and connect for Unix socket names). A flag tells whether the rule names
//! the exact file or the subtree, so two rules for the same path and access
//! cannot both be stored. For connect rules, the kernel takes the
//! first port rule that contains the port and the protocol, so two rules on
//! one prefix must not be equally specific for any port and protocol.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::{NetPattern, PathPattern, PolicyError, Rule, Target};

/// Appends an error for every rule that repeats an id or competes with an
/// earlier rule.
pub(super) fn check_rules(file: &str, rules: &[Rule], errors: &mut Vec<PolicyError>) {
    check_ids(file, rules, errors);
    check_paths(file, rules, errors);
    check_destinations(file, rules, errors);
    check_contents(file, rules, errors);
}

fn check_contents(file: &str, rules: &[Rule], errors: &mut Vec<PolicyError>) {
    let mut lines: HashMap<&[u8; 32], (&str, usize)> = HashMap::new();
    for rule in rules {
        let Target::ExecContent(digest) = &rule.target else {
            continue;
        };
        if let Some((earlier, line)) = lines.get(digest) {
            let message = format!(
                "duplicate rule: \"{}\" and \"{earlier}\" on line {line} both decide exec of the content \
                 sha256:{}; remove one of them",
                rule.id,
                hex::encode(digest)
            );
            errors.push(PolicyError::new(file, rule.object_at, message));
            continue;
        }
        lines.insert(digest, (rule.id.as_str(), rule.at.line));
    }
}

fn check_ids(file: &str, rules: &[Rule], errors: &mut Vec<PolicyError>) {
    let mut lines = HashMap::new();
    for rule in rules {
        if let Some(first_line) = lines.insert(rule.id.as_str(), rule.at.line) {
            let message = format!(
                "duplicate rule id \"{}\": it is already used on line {first_line}; give each rule its own id",
                rule.id
            );
            errors.push(PolicyError::new(file, rule.at, message));
            // Keep pointing later duplicates at the first use.
            lines.insert(rule.id.as_str(), first_line);
        }
    }
}

/// The access a path rule slot decides.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Slot {
    Exec,
    Read,
    Write,
    Create,
    /// A connect to the Unix socket of this name.
    Connect,
}

impl Slot {
    const fn name(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::Read => "read",
            Self::Write => "write",
            Self::Create => "create",
            Self::Connect => "connect",
        }
    }
}

/// Returns the path of a rule that fills path slots, and those slots.
fn path_slots(target: &Target) -> Option<(&PathPattern, Vec<Slot>)> {
    match target {
        Target::Exec(pattern) => Some((pattern, vec![Slot::Exec])),
        Target::Open(pattern, access) => {
            let slots = [(access.read, Slot::Read), (access.write, Slot::Write), (access.create, Slot::Create)];
            Some((pattern, slots.into_iter().filter(|(wanted, _)| *wanted).map(|(_, slot)| slot).collect()))
        }
        Target::ConnectUnix(pattern) => Some((pattern, vec![Slot::Connect])),
        Target::Connect(_) | Target::ExecContent(_) => None,
    }
}

fn check_paths(file: &str, rules: &[Rule], errors: &mut Vec<PolicyError>) {
    // (path, slot) -> index of the rule stored in that slot.
    let mut holders: HashMap<(&str, Slot), usize> = HashMap::new();
    for (index, rule) in rules.iter().enumerate() {
        let Some((pattern, slots)) = path_slots(&rule.target) else {
            continue;
        };
        // One error per earlier rule, even when it takes several slots.
        let mut reported = Vec::new();
        for slot in slots {
            match holders.entry((pattern.path.as_str(), slot)) {
                Entry::Vacant(vacant) => {
                    vacant.insert(index);
                }
                Entry::Occupied(occupied) => {
                    let earlier = &rules[*occupied.get()];
                    if !reported.contains(occupied.get()) {
                        reported.push(*occupied.get());
                        errors.push(path_conflict(file, rule, pattern, earlier, slot));
                    }
                }
            }
        }
    }
}

fn path_conflict(file: &str, rule: &Rule, pattern: &PathPattern, earlier: &Rule, slot: Slot) -> PolicyError {
    let earlier_subtree =
        path_slots(&earlier.target).map_or(pattern.subtree, |(earlier_pattern, _)| earlier_pattern.subtree);
    // Unix socket names are written with `unix:` in front.
    let (object, prefix, file_kind) = match slot {
        Slot::Connect => ("connect to".to_owned(), "unix:", "socket"),
        _ => (format!("{} access to", slot.name()), "", "file"),
    };
    let message = if earlier_subtree == pattern.subtree {
        format!(
            "duplicate rule: \"{}\" and \"{}\" on line {} both decide {object} {prefix}{pattern}; remove one of them",
            rule.id, earlier.id, earlier.at.line
        )
    } else {
        format!(
            "conflicting rules: \"{}\" and \"{}\" on line {} both decide {object} {prefix}{}, one for the {file_kind} \
             and one for its subtree, and the kernel stores one rule per path and access; \
             the subtree rule already covers {prefix}{} itself, so keep only one",
            rule.id, earlier.id, earlier.at.line, pattern.path, pattern.path
        )
    };
    PolicyError::new(file, rule.object_at, message)
}

fn check_destinations(file: &str, rules: &[Rule], errors: &mut Vec<PolicyError>) {
    let mut earlier_rules: Vec<(&Rule, &NetPattern)> = Vec::new();
    for rule in rules {
        let Target::Connect(destination) = &rule.target else {
            continue;
        };
        let clash = earlier_rules.iter().find(|(_, other)| {
            other.network == destination.network
                && other.prefix_len == destination.prefix_len
                && other.protocol == destination.protocol
                && ports_clash(other, destination)
        });
        if let Some((earlier, other)) = clash {
            errors.push(destination_conflict(file, rule, destination, earlier, other));
        }
        earlier_rules.push((rule, destination));
    }
}

/// Returns whether two port ranges of one prefix and one protocol are
/// equally specific for some port: equal, or overlapping with the same
/// width. A rule with a protocol beats one without, and rules of different
/// protocols never decide the same connect, so neither clashes.
fn ports_clash(a: &NetPattern, b: &NetPattern) -> bool {
    let overlap = a.port_lo <= b.port_hi && b.port_lo <= a.port_hi;
    overlap && a.port_hi - a.port_lo == b.port_hi - b.port_lo
}

fn destination_conflict(
    file: &str,
    rule: &Rule,
    destination: &NetPattern,
    earlier: &Rule,
    other: &NetPattern,
) -> PolicyError {
    let message = if other == destination {
        format!(
            "duplicate rule: \"{}\" and \"{}\" on line {} both decide connect to {destination}; remove one of them",
            rule.id, earlier.id, earlier.at.line
        )
    } else {
        format!(
            "ambiguous rules: \"{}\" ({destination}) and \"{}\" on line {} ({other}) have overlapping port ranges \
             of the same width and the same protocol on {}, so neither is more specific; \
             make the ranges disjoint or one narrower",
            rule.id,
            earlier.id,
            earlier.at.line,
            destination.prefix_text()
        )
    };
    PolicyError::new(file, rule.object_at, message)
}
