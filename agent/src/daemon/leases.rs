//! Capability leases: narrow grants with a deadline and a use limit, kept
//! in the daemon's state folder and enforced by the kernel.
//!
//! A lease names one capability in the words of a policy rule (`exec PATH`,
//! `read PATH`, `write,create PATH` and other access lists,
//! `connect ADDRESS:PORT [tcp|udp]`, `connect unix:NAME`) and is keyed on
//! the agent's name, never on a process. The daemon compiles
//! each live lease into the agent's policy as a rule whose slot points at a
//! `LEASES` array slot. The kernel checks the slot's deadline on the
//! boot-time clock (`CLOCK_BOOTTIME`, which counts suspend and ignores
//! changes of the wall clock) and counts uses atomically at every use.
//!
//! The book (`leases.json` in the state folder) contains the live leases
//! and the ending ones. It is rewritten atomically after every change. An
//! ending lease is marked there before its end is recorded, so a lease that
//! ended never comes back: a restart records a marked end again rather than
//! reviving the lease.

use std::{
    fs,
    net::{IpAddr, Ipv6Addr},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use crate::policy::{
    Access, NetPattern, PathPattern, Position, Protocol, Rule, Target, Verdict, parse_lease_access, parse_lease_path,
    parse_lease_unix,
};

/// File of the lease book in the state folder.
pub(crate) const BOOK_FILE: &str = "leases.json";
/// File with the kernel's boot id, which changes at every boot. A lease does
/// not outlive the boot it was granted in.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// The forms of a capability, for error messages.
const FORMS: &str = "write `exec PATH`, an access list and a path (`read PATH`, `write,create PATH`), \
                     `connect ADDRESS:PORT`, `connect ADDRESS:PORT tcp` (or udp) or `connect unix:NAME`";

/// Text that starts a Unix socket name in a connect capability.
const UNIX_PREFIX: &str = "unix:";

/// The action that a lease allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Capability {
    Exec(PathPattern),
    /// An open with this access list: each access the lease allows on
    /// PATH (`read`, `write`, `create`).
    Open(PathPattern, Access),
    /// One address (IPv4 stored mapped), one port, and the socket's IP
    /// protocol or `Protocol::Any` for every protocol.
    Connect {
        addr: Ipv6Addr,
        port: u16,
        protocol: Protocol,
    },
    /// A connect or datagram send to the Unix socket bound to a name: a
    /// path, a subtree or `@NAME` for an abstract socket.
    ConnectUnix(PathPattern),
}

impl Capability {
    /// Parses the capability text of `lease grant --allow`.
    pub(crate) fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let (verb, object) = text.split_once(' ').with_context(|| format!("invalid capability {text:?}: {FORMS}"))?;
        let object = object.trim();
        let path = || parse_lease_path(object).map_err(|message| anyhow::anyhow!("invalid path {object:?}: {message}"));
        Ok(match verb {
            "exec" => Self::Exec(path()?),
            "connect" => match object.strip_prefix(UNIX_PREFIX) {
                Some(name) => parse_unix(name)?,
                None => parse_connect(object)?,
            },
            access => match parse_lease_access(access) {
                Ok(access) => Self::Open(path()?, access),
                Err(message) if access.contains(',') => bail!("invalid access list {access:?}: {message}"),
                Err(_) => bail!(
                    "invalid capability verb {access:?}: expected exec, connect, or an access list of read, \
                     write and create such as read or write,create"
                ),
            },
        })
    }

    /// Returns the canonical text, which [`Capability::parse`] reads back.
    /// An access list is written in the order read, write, create.
    pub(crate) fn text(&self) -> String {
        match self {
            Self::Exec(pattern) => format!("exec {pattern}"),
            Self::Open(pattern, access) => format!("{} {pattern}", access.text()),
            Self::Connect { addr, port, protocol } => {
                let destination = match addr.to_ipv4_mapped() {
                    Some(v4) => format!("connect {v4}:{port}"),
                    None => format!("connect [{addr}]:{port}"),
                };
                match protocol.name() {
                    Some(name) => format!("{destination} {name}"),
                    None => destination,
                }
            }
            Self::ConnectUnix(pattern) => format!("connect {UNIX_PREFIX}{pattern}"),
        }
    }

    /// Returns the policy target the lease compiles to.
    pub(crate) fn target(&self) -> Target {
        match self {
            Self::Exec(pattern) => Target::Exec(pattern.clone()),
            Self::Open(pattern, access) => Target::Open(pattern.clone(), *access),
            Self::Connect { addr, port, protocol } => Target::Connect(NetPattern {
                network: *addr,
                prefix_len: 128,
                port_lo: *port,
                port_hi: *port,
                protocol: *protocol,
            }),
            Self::ConnectUnix(pattern) => Target::ConnectUnix(pattern.clone()),
        }
    }
}

/// Parses the name of a Unix connect capability, the text after `unix:`.
fn parse_unix(name: &str) -> Result<Capability> {
    if let Some((_, extra)) = name.split_once(char::is_whitespace) {
        bail!(
            "unexpected {:?} after the Unix socket name {name:?}: a Unix connect capability takes no protocol, \
             write `connect unix:NAME`",
            extra.trim()
        );
    }
    let pattern =
        parse_lease_unix(name).map_err(|message| anyhow::anyhow!("invalid Unix socket name {name:?}: {message}"))?;
    Ok(Capability::ConnectUnix(pattern))
}

/// Parses the object of an IP connect capability: `ADDRESS:PORT`, then
/// optionally `tcp` or `udp`.
fn parse_connect(object: &str) -> Result<Capability> {
    let mut words = object.split_whitespace();
    let (addr, port) = parse_address(words.next().unwrap_or_default())?;
    let protocol = match words.next() {
        None => Protocol::Any,
        Some("tcp") => Protocol::Tcp,
        Some("udp") => Protocol::Udp,
        Some(other) => bail!(
            "invalid protocol {other:?} in capability `connect {object}`: expected tcp or udp after the \
             destination, or nothing for every IP protocol"
        ),
    };
    if let Some(extra) = words.next() {
        bail!(
            "unexpected {extra:?} at the end of capability `connect {object}`: write `connect ADDRESS:PORT [tcp|udp]`"
        );
    }
    Ok(Capability::Connect { addr, port, protocol })
}

/// Parses `A.B.C.D:PORT` or `[V6]:PORT`.
fn parse_address(text: &str) -> Result<(Ipv6Addr, u16)> {
    let invalid =
        || format!("invalid destination {text:?}: write ADDRESS:PORT, e.g. 203.0.113.7:443 or [2001:db8::7]:443");
    let (host, port) = text.rsplit_once(':').with_context(invalid)?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let addr: IpAddr = host.parse().ok().with_context(invalid)?;
    let port: u16 = port.parse().ok().filter(|port| *port != 0).with_context(invalid)?;
    let addr = match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    Ok((addr, port))
}

/// One granted lease, as the book stores it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Lease {
    pub(crate) id: u32,
    pub(crate) agent: String,
    /// Canonical capability text.
    pub(crate) capability: String,
    /// The lease-required rule that the lease satisfies, by name (`rule`)
    /// and by numeric id (`rule_id`) in the policy it was granted under.
    pub(crate) rule: String,
    #[serde(default)]
    pub(crate) rule_id: u32,
    /// The request it was granted from, 0 for none.
    pub(crate) request_id: u64,
    pub(crate) ttl_ns: u64,
    /// `CLOCK_BOOTTIME` deadline, in the boot named by `boot_id`.
    pub(crate) expires_boot_ns: u64,
    pub(crate) boot_id: String,
    /// Maximum number of uses, 0 for no limit.
    pub(crate) max_uses: u64,
    /// Number of uses that the kernel counted, as last read from `LEASES`.
    pub(crate) uses: u64,
    pub(crate) granted_by: String,
    pub(crate) reason: String,
    /// SHA-256 of the binary an exec lease names, so a copy of it is
    /// covered too.
    #[serde(default)]
    pub(crate) content_sha256: Option<String>,
    /// End of the lease, set once it is ending: the cause (`revoked`,
    /// `ttl`, `uses`, `reboot`) and who revoked it.
    #[serde(default)]
    pub(crate) ending: Option<Ending>,
    /// `LEASES` slot while installed. It is saved because the `LEASES` map
    /// is pinned: a restarted daemon finds the lease in this slot and
    /// keeps it there, where the rules of running agents point.
    #[serde(default)]
    pub(crate) slot: Option<u32>,
}

/// The end of a lease: its cause, who ended it, why and when.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Ending {
    /// `revoked`, `ttl`, `uses` or `reboot`.
    pub(crate) cause: String,
    /// The person who revoked the lease, or `lupid-agent` when the daemon
    /// ended it.
    pub(crate) by: String,
    pub(crate) reason: String,
    /// Boot-time clock at the end, 0 when unknown.
    pub(crate) at_boot_ns: u64,
}

impl Ending {
    /// Returns an end that the daemon caused, with no reason.
    pub(crate) fn by_daemon(cause: &str, at_boot_ns: u64) -> Self {
        Self { cause: cause.to_owned(), by: "lupid-agent".to_owned(), reason: String::new(), at_boot_ns }
    }
}

impl Lease {
    /// Parses the stored capability text and content digest.
    pub(crate) fn parsed(&self) -> Result<(Capability, Option<[u8; 32]>)> {
        let capability = Capability::parse(&self.capability)?;
        let Some(digest) = &self.content_sha256 else { return Ok((capability, None)) };
        let mut sha256 = [0; 32];
        hex::decode_to_slice(digest, &mut sha256).with_context(|| {
            format!("lease {} has an invalid content digest {digest:?}; revoke it and grant it again", self.id)
        })?;
        Ok((capability, Some(sha256)))
    }
}

/// Builds the rules that compile lease `lease_id` into a policy: the
/// capability itself, and with `content` an exec of that binary's content.
pub(crate) fn lease_rules(lease_id: u32, capability: &Capability, content: Option<[u8; 32]>, slot: u32) -> Vec<Rule> {
    let at = Position { line: 0, column: 0 };
    let verdict = Verdict::Leased { slot };
    let id = format!("lease-{lease_id}");
    let mut rules = vec![Rule { id: id.clone(), verdict, target: capability.target(), at, object_at: at }];
    if let Some(sha256) = content {
        rules.push(Rule { id, verdict, target: Target::ExecContent(sha256), at, object_at: at });
    }
    rules
}

/// The live and ending leases and the last lease id, persisted in
/// [`BOOK_FILE`].
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Book {
    /// The last lease id handed out, 0 for none: [`Book::take_id`]
    /// increments it before returning it.
    pub(crate) next_id: u32,
    pub(crate) leases: Vec<Lease>,
    #[serde(skip)]
    path: PathBuf,
}

impl Book {
    /// Loads the book from the state folder. A missing file is an empty book.
    pub(crate) fn load(state_dir: &Path) -> Result<Self> {
        let path = state_dir.join(BOOK_FILE);
        let mut book = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Self>(&bytes).with_context(|| {
                format!("the lease book {} is damaged; move it away to start without leases", path.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::default(),
            Err(e) => return Err(e).with_context(|| format!("failed to read the lease book {}", path.display())),
        };
        book.path = path;
        Ok(book)
    }

    /// Writes the book to a new file, syncs it and renames it into place.
    pub(crate) fn save(&self) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).context("failed to encode the lease book")?;
        super::files::write_atomic(&self.path, &bytes)
            .with_context(|| format!("failed to save the lease book {}", self.path.display()))
    }

    /// Allocates a new lease id, starting at 1.
    pub(crate) fn take_id(&mut self) -> u32 {
        self.next_id = self.next_id.saturating_add(1).max(1);
        self.next_id
    }

    pub(crate) fn get_mut(&mut self, id: u32) -> Option<&mut Lease> {
        self.leases.iter_mut().find(|lease| lease.id == id)
    }

    /// Returns the leases of the agent named `name` that are not ending.
    pub(crate) fn live_for<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Lease> {
        self.leases.iter().filter(move |lease| lease.agent == name && lease.ending.is_none())
    }
}

/// Returns the lowest `LEASES` slot that no lease in the book occupies, or
/// `None` when every slot is taken.
///
/// NOTE: a slot is free once its lease leaves the book, although rules of a
/// replaced policy still point at it for up to `SWAP_GRACE`, and rules of a
/// run whose recompile failed keep pointing at it. A new lease in that slot
/// then applies to those rules too.
pub(crate) fn free_slot(book: &Book) -> Option<u32> {
    (0..lupid_common::MAX_LEASES).find(|slot| book.leases.iter().all(|lease| lease.slot != Some(*slot)))
}

/// Returns `CLOCK_BOOTTIME` in nanoseconds, the clock of
/// `bpf_ktime_get_boot_ns`, or 0 when the clock cannot be read.
pub(crate) fn boot_ns() -> u64 {
    let mut time = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `time` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &raw mut time) } != 0 {
        return 0;
    }
    let seconds = u64::try_from(time.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(time.tv_nsec).unwrap_or(0);
    seconds.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// Reads this boot's id. A lease names the boot it was granted in, so a
/// missing or empty id is an error rather than an id that every boot shares.
pub(crate) fn boot_id() -> Result<String> {
    let id = fs::read_to_string(BOOT_ID).with_context(|| format!("failed to read the boot id from {BOOT_ID}"))?;
    let id = id.trim();
    if id.is_empty() {
        bail!("the boot id in {BOOT_ID} is empty");
    }
    Ok(id.to_owned())
}

/// Parses a duration such as `90s`, `10m`, `2h` or `1d` into nanoseconds.
pub(crate) fn parse_ttl(text: &str) -> Result<u64> {
    let invalid = || format!("invalid duration {text:?}: write a number and a unit, s, m, h or d, e.g. 10m");
    let split = text.find(|c: char| !c.is_ascii_digit()).with_context(invalid)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok().filter(|n| *n > 0).with_context(invalid)?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!(invalid()),
    };
    number.checked_mul(seconds).and_then(|s| s.checked_mul(1_000_000_000)).with_context(invalid)
}

#[cfg(test)]
mod tests {
    use super::{Capability, parse_ttl};
    use crate::policy::Protocol;

    #[test]
    fn capability_text_round_trips() {
        for text in [
            "exec /usr/bin/curl",
            "read /srv/data/**",
            "write /home/a/repo/x",
            "read,write /tmp/t",
            "create /tmp/new",
            "write,create /tmp/new",
            "read,write,create /tmp/**",
            "connect 203.0.113.7:443",
            "connect 203.0.113.7:443 tcp",
            "connect [2001:db8::7]:53 udp",
            "connect [2001:db8::7]:53",
            "connect unix:/run/app.sock",
            "connect unix:/run/app/**",
            "connect unix:@lupid-test",
        ] {
            assert_eq!(Capability::parse(text).unwrap().text(), text);
        }
    }

    #[test]
    fn access_list_written_in_canonical_order() {
        assert_eq!(Capability::parse("create,write /tmp/x").unwrap().text(), "write,create /tmp/x");
        assert_eq!(Capability::parse("create,read,write /tmp/x").unwrap().text(), "read,write,create /tmp/x");
    }

    #[test]
    fn connect_capability_parts() {
        let Capability::Connect { port, protocol, .. } = Capability::parse("connect 10.0.0.53:53 udp").unwrap() else {
            panic!("an IP connect capability");
        };
        assert_eq!((port, protocol), (53, Protocol::Udp));
        let Capability::ConnectUnix(pattern) = Capability::parse("connect unix:@bus").unwrap() else {
            panic!("a Unix connect capability");
        };
        assert_eq!((pattern.path.as_str(), pattern.subtree), ("@bus", false));
    }

    #[test]
    fn ipv4_mapped_address_prints_as_ipv4() {
        let mapped = Capability::parse("connect [::ffff:203.0.113.7]:443").unwrap();
        assert_eq!(mapped.text(), "connect 203.0.113.7:443");
    }

    #[test]
    fn invalid_capabilities_are_rejected() {
        for (text, needle) in [
            ("open /etc", "invalid capability verb"),
            ("exec", "invalid capability"),
            ("exec usr/bin", "invalid path"),
            ("connect 10.0.0.0/8:443", "invalid destination"),
            ("connect 10.0.0.1:0", "invalid destination"),
            ("connect 10.0.0.1:53 icmp", "invalid protocol \"icmp\""),
            ("connect 10.0.0.1:53 udp x", "unexpected \"x\""),
            ("connect unix:run/app.sock", "invalid Unix socket name"),
            ("connect unix:@bus/**", "abstract socket names have no subtree"),
            ("connect unix:/run/app.sock tcp", "takes no protocol"),
            ("read,read /x", "duplicate access \"read\""),
            ("write,exec /x", "invalid access list"),
        ] {
            let error = Capability::parse(text).unwrap_err().to_string();
            assert!(error.contains(needle), "{text}: {error}");
        }
    }

    #[test]
    fn parse_ttl_accepts_and_rejects() {
        assert_eq!(parse_ttl("90s").unwrap(), 90_000_000_000);
        assert_eq!(parse_ttl("10m").unwrap(), 600_000_000_000);
        for bad in ["", "10", "m", "0s", "5w", "-1s"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
