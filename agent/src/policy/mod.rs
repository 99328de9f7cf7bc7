//! Policy files: parsing, validation and compilation into the kernel's rule
//! maps.
//!
//! A policy is a line-oriented UTF-8 text file (extension `.lp`, format
//! version 1) that states what an agent may exec, open and connect to.
//! `policies/README.md` is the format reference. [`Policy::parse`] reads a
//! file and returns every error in it, each with its line and column;
//! [`compile`] turns a valid policy into the exact entries the daemon writes
//! into the `PATH_RULES` hash map and the `NET_RULES` LPM trie.
//!
//! A [`Policy`] can only be built by [`Policy::parse`], which guarantees:
//! - rule ids are unique, and every rule path is absolute, normalised and at
//!   most `RULE_PATH_MAX` bytes long;
//! - no two rules decide the same access at the same path, and no two Unix
//!   socket rules the same socket name;
//! - no two connect rules of the same protocol (or both of every protocol)
//!   have the same prefix and the same port range, and such rules'
//!   overlapping port ranges on one prefix differ in width, so the narrower
//!   one is the more specific.
//!
//! [`compile`] checks only what depends on the kernel's map layout: the
//! number of port rules a prefix carries, inherited ones included.

mod check;
mod compile;
mod parse;
pub(crate) mod protected;
pub(crate) mod reference;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::Ipv6Addr;

use lupid_common::{protocol, verdict};

#[cfg(test)]
pub(crate) use compile::compile;
pub(crate) use compile::{CompiledPolicy, compile_with};
pub(crate) use parse::{parse_lease_access, parse_lease_path, parse_lease_unix};

/// The verdict of a rule or of the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allow,
    Deny,
    /// Allow, and mark the record.
    Audit,
    /// Deny until a person grants a lease that covers the action.
    Lease,
    /// A granted lease, compiled in by the daemon; never parsed from a file.
    /// `slot` is its index in the kernel's `LEASES` array.
    Leased {
        slot: u32,
    },
    /// A built-in protection of the daemon's folders, compiled in by the
    /// daemon; never parsed from a file. Denies in monitor mode too.
    Protected,
}

impl Verdict {
    /// Returns the `lupid_common::verdict` value the kernel maps store.
    pub(crate) const fn to_abi(self) -> u32 {
        match self {
            Self::Allow => verdict::ALLOW,
            Self::Deny => verdict::DENY,
            Self::Audit => verdict::AUDIT,
            Self::Lease => verdict::LEASE_REQUIRED,
            Self::Leased { .. } => verdict::LEASED,
            Self::Protected => verdict::PROTECTED,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Audit => "audit",
            Self::Lease => "lease",
            Self::Leased { .. } => "leased",
            Self::Protected => "protected",
        })
    }
}

/// A 1-based line and column (in characters) in a policy file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

/// A parsed and validated policy file.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    /// File name used in error messages.
    name: String,
    default_verdict: Verdict,
    /// Rules in file order; a rule's numeric id is its index plus one.
    rules: Vec<Rule>,
}

impl Policy {
    /// Parses and validates a policy file.
    ///
    /// `name` only labels the errors. On failure the result contains every error
    /// found in the file, sorted by line and column.
    pub(crate) fn parse(name: &str, text: &[u8]) -> Result<Self, Vec<PolicyError>> {
        parse::parse(name, text)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn default_verdict(&self) -> Verdict {
        self.default_verdict
    }

    pub(crate) fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

/// One `ID: VERDICT HOOK OBJECT [ACCESS]` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) id: String,
    pub(crate) verdict: Verdict,
    pub(crate) target: Target,
    /// Position of the rule id.
    pub(crate) at: Position,
    /// Position of the object (path or destination).
    pub(crate) object_at: Position,
}

/// The hook and object a rule governs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Exec(PathPattern),
    /// An exec of any file whose content has this SHA-256 digest.
    ExecContent([u8; 32]),
    Open(PathPattern, Access),
    Connect(NetPattern),
    /// A connect or datagram send to a Unix socket, by the name it is
    /// bound to: a path or subtree for a pathname socket, `@NAME` (never a
    /// subtree) for an abstract one.
    ConnectUnix(PathPattern),
}

/// A rule path: one file, or a whole subtree when written as `/dir/**`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PathPattern {
    /// The path as `d_path` reports it, without the `/**`: `/` for the root,
    /// never a trailing slash otherwise.
    pub(crate) path: String,
    /// True for `/dir/**`, which covers `/dir` and everything below it.
    pub(crate) subtree: bool,
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.subtree, self.path.as_str()) {
            (true, "/") => f.write_str("/**"),
            (true, path) => write!(f, "{path}/**"),
            (false, path) => f.write_str(path),
        }
    }
}

/// The kinds of access an open rule decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Access {
    pub(crate) read: bool,
    pub(crate) write: bool,
    /// The open creates the file.
    pub(crate) create: bool,
}

impl Access {
    /// Returns the access list as a rule writes it, in the order read,
    /// write, create: `read`, `write,create`, `read,write,create`.
    pub(crate) fn text(self) -> String {
        let names = [(self.read, "read"), (self.write, "write"), (self.create, "create")];
        names.iter().filter(|(wanted, _)| *wanted).map(|(_, name)| *name).collect::<Vec<_>>().join(",")
    }
}

/// The IP protocol a connect rule applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Protocol {
    /// Every IP protocol: the rule names no protocol.
    Any,
    Tcp,
    Udp,
}

impl Protocol {
    /// Returns the `lupid_common::protocol` value a port rule stores.
    pub(crate) const fn to_abi(self) -> u16 {
        match self {
            Self::Any => protocol::ANY,
            Self::Tcp => protocol::TCP,
            Self::Udp => protocol::UDP,
        }
    }

    /// Returns the protocol a rule would name for the socket protocol
    /// `number` (`IPPROTO_*`): `Any` for every protocol but TCP and UDP.
    pub(crate) const fn from_number(number: u16) -> Self {
        match number {
            protocol::TCP => Self::Tcp,
            protocol::UDP => Self::Udp,
            _ => Self::Any,
        }
    }

    /// Returns the word a rule writes, `None` for `Any`, which has none.
    pub(crate) const fn name(self) -> Option<&'static str> {
        match self {
            Self::Any => None,
            Self::Tcp => Some("tcp"),
            Self::Udp => Some("udp"),
        }
    }
}

/// A connect destination: an IPv6 prefix, an inclusive port range and a
/// protocol.
///
/// IPv4 prefixes are stored IPv4-mapped (`::ffff:a.b.c.d`, length + 96), as
/// the kernel trie stores them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NetPattern {
    /// The prefix's network address; all bits past `prefix_len` are zero.
    pub(crate) network: Ipv6Addr,
    /// 0 to 128.
    pub(crate) prefix_len: u8,
    pub(crate) port_lo: u16,
    pub(crate) port_hi: u16,
    pub(crate) protocol: Protocol,
}

impl NetPattern {
    /// Formats the prefix the way a user would write it: IPv4-mapped
    /// prefixes of length 96 or more as IPv4 (`10.0.0.0/8`), others as IPv6.
    pub(crate) fn prefix_text(&self) -> String {
        format_prefix(self.network, self.prefix_len)
    }

    pub(crate) fn ports_text(&self) -> String {
        match (self.port_lo, self.port_hi) {
            (0, u16::MAX) => "*".to_owned(),
            (lo, hi) if lo == hi => lo.to_string(),
            (lo, hi) => format!("{lo}-{hi}"),
        }
    }

    /// Returns whether this prefix contains every address of `inner`.
    pub(crate) fn encloses(&self, inner: &Self) -> bool {
        self.prefix_len <= inner.prefix_len
            && u128::from(inner.network) & prefix_mask(self.prefix_len) == u128::from(self.network)
    }
}

/// Formats as a rule writes the destination: `10.0.0.0/8:443`,
/// `[2001:db8::/32]:*`, followed by ` tcp` or ` udp` when the rule names a
/// protocol.
impl fmt::Display for NetPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = self.prefix_text();
        if prefix.contains(':') {
            write!(f, "[{prefix}]:{}", self.ports_text())?;
        } else {
            write!(f, "{prefix}:{}", self.ports_text())?;
        }
        match self.protocol.name() {
            Some(name) => write!(f, " {name}"),
            None => Ok(()),
        }
    }
}

/// Formats an IPv6 prefix, showing IPv4-mapped ones as IPv4.
pub(crate) fn format_prefix(network: Ipv6Addr, prefix_len: u8) -> String {
    match network.to_ipv4_mapped() {
        Some(v4) if prefix_len >= 96 => format!("{v4}/{}", prefix_len - 96),
        _ => format!("{network}/{prefix_len}"),
    }
}

/// Returns the mask that keeps the first `prefix_len` bits of an address.
pub(crate) const fn prefix_mask(prefix_len: u8) -> u128 {
    if prefix_len == 0 { 0 } else { u128::MAX << (128 - prefix_len as u32) }
}

/// Formats policy errors one per line, for a message or a reply.
pub(crate) fn join_errors(errors: &[PolicyError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// An error in a policy file, with the place it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PolicyError {
    pub(crate) file: String,
    pub(crate) at: Position,
    /// Description of the problem and of the fix, lowercase, without a
    /// trailing period.
    pub(crate) message: String,
}

impl PolicyError {
    pub(crate) fn new(file: &str, at: Position, message: impl Into<String>) -> Self {
        Self { file: file.to_owned(), at, message: message.into() }
    }
}

/// Formats as `FILE:LINE:COLUMN: MESSAGE`, the form compilers and editors use.
impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.at.line, self.at.column, self.message)
    }
}

impl std::error::Error for PolicyError {}
