//! Lease requests: actions a lease-required rule denied, waiting for a
//! person to grant them.
//!
//! The denial itself is the request's record in the ledger (a decision with
//! reason `lease_required`). The daemon keeps the open requests in memory,
//! one per agent and capability, so `lupid-agent pending` can list them and
//! `lease grant --request ID` can grant exactly what was requested.

use lupid_common::{Event, access, hook};
use serde::{Deserialize, Serialize};

use super::leases::Capability;

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
/// or `None` when its object has no capability text (a path that is not
/// UTF-8 or not in the form a rule names it, or an unknown hook).
fn capability_of(event: &Event) -> Option<String> {
    let path = || {
        let len = (event.path_len as usize).min(event.path.len());
        let text = std::str::from_utf8(&event.path[..len]).ok()?;
        crate::policy::parse_lease_path(text).ok()
    };
    let capability = match event.hook {
        hook::EXEC => Capability::Exec(path()?),
        hook::OPEN => {
            let write = event.access & access::WRITE != 0;
            let read = event.access & access::READ != 0 || !write;
            Capability::Open(path()?, crate::policy::Access { read, write })
        }
        hook::CONNECT | hook::SEND => Capability::Connect { addr: event.addr.into(), port: event.port },
        _ => return None,
    };
    Some(capability.text())
}
