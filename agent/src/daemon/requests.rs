//! Lease requests: actions a lease-required rule denied, waiting for a
//! person to grant them.
//!
//! The denial itself is the request's record in the ledger (a decision with
//! reason `lease_required`). The daemon keeps the open requests in memory,
//! one per agent and capability, so `lupid-agent pending` can list them and
//! `lease grant --request ID` can grant exactly what was requested.

use lupid_common::{Event, access, family, hook};
use serde::{Deserialize, Serialize};

use super::leases::Capability;
use crate::policy::{Access, Protocol};

/// Maximum number of open requests kept. When it is reached, the oldest
/// request is dropped.
const MAX_OPEN: usize = 1024;

/// One open request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) id: u64,
    pub(crate) agent: String,
    /// The capability that a grant would allow, in `lease grant --allow` form.
    pub(crate) capability: String,
    /// The lease-required rule that denied it.
    pub(crate) rule: String,
    /// Kernel sequence number of the first denial.
    pub(crate) first_kernel_seq: u64,
    /// Number of denied attempts so far.
    pub(crate) attempts: u64,
}

/// The open requests.
#[derive(Default)]
pub(crate) struct Requests {
    next_id: u64,
    pub(crate) open: Vec<Request>,
}

impl Requests {
    /// Adds a denial under a lease-required rule as an open request, or
    /// counts it as another attempt of the open request for the same agent
    /// and capability.
    pub(crate) fn note(&mut self, event: &Event, agent: &str, rule: String) {
        let Some(capability) = capability_of(event) else {
            tracing::warn!(
                seq = event.seq,
                agent,
                rule = %rule,
                hook = event.hook,
                "no lease request opened: a lease cannot express the denied object"
            );
            return;
        };
        if let Some(open) = self.open.iter_mut().find(|r| r.agent == agent && r.capability == capability) {
            open.attempts += 1;
            return;
        }
        if self.open.len() >= MAX_OPEN {
            let dropped = self.open.remove(0);
            tracing::warn!(
                request = dropped.id,
                agent = %dropped.agent,
                max = MAX_OPEN,
                "too many open lease requests, so the oldest is dropped"
            );
        }
        self.next_id += 1;
        let request = Request {
            id: self.next_id,
            agent: agent.to_owned(),
            capability,
            rule,
            first_kernel_seq: event.seq,
            attempts: 1,
        };
        self.open.push(request);
    }

    pub(crate) fn get(&self, id: u64) -> Option<&Request> {
        self.open.iter().find(|r| r.id == id)
    }

    /// Closes the request `id` and every other open request that a grant of
    /// `capability` to `agent` satisfies.
    pub(crate) fn answered(&mut self, id: u64, agent: &str, capability: &str) {
        self.open.retain(|r| r.id != id && !(r.agent == agent && r.capability == capability));
    }
}

/// Returns the capability a lease would need to allow the event's action,
/// or `None` when its object has no capability text (a path or socket name
/// that is not UTF-8 or not in the form a rule names it, or an unknown
/// hook).
///
/// An open's capability lists every access it requested, `create` included when it
/// created the file. An IP connect or send names the socket's protocol
/// when it is TCP or UDP, and for every protocol otherwise, because a rule
/// can name no other protocol.
fn capability_of(event: &Event) -> Option<String> {
    let text = || {
        let len = (event.path_len as usize).min(event.path.len());
        std::str::from_utf8(&event.path[..len]).ok()
    };
    let path = || crate::policy::parse_lease_path(text()?).ok();
    let capability = match event.hook {
        hook::EXEC => Capability::Exec(path()?),
        hook::OPEN => {
            let write = event.access & access::WRITE != 0;
            let read = event.access & access::READ != 0 || !write;
            let create = event.access & access::CREATE != 0;
            Capability::Open(path()?, Access { read, write, create })
        }
        hook::CONNECT | hook::SEND if event.family == family::UNIX => {
            Capability::ConnectUnix(crate::policy::parse_lease_unix(text()?).ok()?)
        }
        hook::CONNECT | hook::SEND => Capability::Connect {
            addr: event.addr.into(),
            port: event.port,
            protocol: Protocol::from_number(event.protocol),
        },
        _ => return None,
    };
    Some(capability.text())
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use lupid_common::{Event, access, family, hook, protocol};

    use super::capability_of;
    use crate::daemon::events::decode;

    /// Returns a lease-required event of `hook` on the object `path`.
    fn event(hook: u32, path: &str) -> Event {
        // Every field the test does not set is 0, as the kernel program
        // writes it for a field a hook does not use.
        let mut event = decode(&vec![0; size_of::<Event>()]).expect("an item of the event's size");
        event.seq = 1;
        event.hook = hook;
        event.verdict = lupid_common::verdict::DENY;
        event.reason = lupid_common::reason::LEASE_REQUIRED;
        event.rule_id = 1;
        event.agent_id = 1;
        event.policy_id = 1;
        event.path_len = u32::try_from(path.len()).expect("a short path");
        event.path[..path.len()].copy_from_slice(path.as_bytes());
        event
    }

    fn ip_connect(hook: u32, protocol: u16) -> Event {
        let mut event = event(hook, "");
        event.family = family::INET;
        event.addr = std::net::Ipv4Addr::new(203, 0, 113, 7).to_ipv6_mapped().octets();
        event.port = 53;
        event.protocol = protocol;
        event
    }

    #[test]
    fn open_capability_lists_requested_access() {
        let mut open = event(hook::OPEN, "/tmp/new");
        open.access = access::WRITE | access::CREATE;
        assert_eq!(capability_of(&open).as_deref(), Some("write,create /tmp/new"));
        open.access = access::CREATE;
        assert_eq!(
            capability_of(&open).as_deref(),
            Some("read,create /tmp/new"),
            "an open without read or write reads"
        );
        open.access = access::READ | access::WRITE;
        assert_eq!(capability_of(&open).as_deref(), Some("read,write /tmp/new"));
    }

    #[test]
    fn connect_capability_names_tcp_and_udp() {
        let tcp = ip_connect(hook::CONNECT, protocol::TCP);
        assert_eq!(capability_of(&tcp).as_deref(), Some("connect 203.0.113.7:53 tcp"));
        let udp = ip_connect(hook::SEND, protocol::UDP);
        assert_eq!(capability_of(&udp).as_deref(), Some("connect 203.0.113.7:53 udp"));
    }

    #[test]
    fn connect_capability_other_protocol_any() {
        let sctp = ip_connect(hook::CONNECT, 132);
        assert_eq!(capability_of(&sctp).as_deref(), Some("connect 203.0.113.7:53"));
    }

    #[test]
    fn unix_capability_names_socket() {
        let mut pathname = event(hook::CONNECT, "/run/app.sock");
        pathname.family = family::UNIX;
        assert_eq!(capability_of(&pathname).as_deref(), Some("connect unix:/run/app.sock"));
        let mut abstract_socket = event(hook::CONNECT, "@lupid-test");
        abstract_socket.family = family::UNIX;
        assert_eq!(capability_of(&abstract_socket).as_deref(), Some("connect unix:@lupid-test"));
    }

    #[test]
    fn unix_capability_needs_rule_form() {
        for name in ["run/app.sock", "@", "@bad name", ""] {
            let mut relative = event(hook::CONNECT, name);
            relative.family = family::UNIX;
            assert_eq!(capability_of(&relative), None, "{name:?}");
        }
    }
}
