//! `lupid-agent lease`, `pending`, `mode` and `policy reload`: the verbs
//! that change what a running agent may do, each naming the person who
//! requested the change.

use std::{os::unix::net::UnixStream, path::Path};

use anyhow::{Context, Result, bail};

use crate::{
    daemon::{Lease, Request as LeaseRequest},
    protocol::{Connection, LeaseGrant, Reply, Request, send},
};

/// Sends one request to the daemon and returns its reply. An error reply
/// becomes an error.
fn call_daemon(socket: &Path, request: &Request) -> Result<Reply> {
    let stream = UnixStream::connect(socket).with_context(|| {
        format!("failed to connect to the lupid daemon at {}; start it with `sudo lupid-agent start`", socket.display())
    })?;
    send(&stream, request, None).context("failed to send the request")?;
    match Connection::new(stream).receive::<Reply>().context("failed to read the daemon's reply")? {
        Some(Reply::Error { message }) => bail!("{message}"),
        Some(reply) => Ok(reply),
        None => bail!("the daemon closed the connection without a reply"),
    }
}

/// Formats the error for a reply of the wrong kind, which means that
/// `lupid-agent` and the running daemon differ in version.
fn unexpected(reply: &Reply) -> String {
    format!("unexpected reply from the daemon: {reply:?}; run a `lupid-agent` of the daemon's version")
}

/// Returns the person to name in the ledger: `--by`, else `$SUDO_USER`,
/// else `$USER`, else the numeric uid.
pub(crate) fn person(by: Option<String>) -> String {
    by.or_else(|| std::env::var("SUDO_USER").ok())
        .or_else(|| std::env::var("USER").ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("uid {}", nix::unistd::Uid::current()))
}

pub(crate) fn grant(socket: &Path, grant: LeaseGrant) -> Result<()> {
    match call_daemon(socket, &Request::LeaseGrant(grant))? {
        Reply::Lease(lease) => {
            println!("lease {} granted to {}: {}", lease.id, lease.agent, lease.capability);
            Ok(())
        }
        other => bail!(unexpected(&other)),
    }
}

pub(crate) fn revoke(socket: &Path, lease_id: u32, by: String, reason: String) -> Result<()> {
    match call_daemon(socket, &Request::LeaseRevoke { lease_id, by, reason })? {
        Reply::Done => {
            println!("lease {lease_id} revoked");
            Ok(())
        }
        other => bail!(unexpected(&other)),
    }
}

pub(crate) fn list(socket: &Path, json: bool) -> Result<()> {
    let leases = match call_daemon(socket, &Request::LeaseList)? {
        Reply::Leases { leases } => leases,
        other => bail!(unexpected(&other)),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&leases)?);
        return Ok(());
    }
    if leases.is_empty() {
        println!("no live leases");
    }
    let now = crate::daemon::boot_ns();
    for lease in &leases {
        print_lease(lease, now);
    }
    Ok(())
}

fn print_lease(lease: &Lease, now: u64) {
    let left = lease.expires_boot_ns.saturating_sub(now) / 1_000_000_000;
    let uses = if lease.max_uses == 0 {
        format!("{} uses", lease.uses)
    } else {
        format!("{}/{} uses", lease.uses, lease.max_uses)
    };
    println!(
        "{:<5} {:<16} {:<40} {left}s left, {uses}, granted by {} ({})",
        lease.id, lease.agent, lease.capability, lease.granted_by, lease.reason
    );
}

pub(crate) fn pending(socket: &Path, json: bool) -> Result<()> {
    let requests = match call_daemon(socket, &Request::Pending)? {
        Reply::Requests { requests } => requests,
        other => bail!(unexpected(&other)),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&requests)?);
        return Ok(());
    }
    if requests.is_empty() {
        println!("no open lease requests");
    }
    for request in &requests {
        print_request(request);
    }
    Ok(())
}

fn print_request(request: &LeaseRequest) {
    println!(
        "{:<5} {:<16} {:<40} rule {}, {} attempts\n      grant: lupid-agent lease grant --request {} --ttl 10m --reason '...'",
        request.id, request.agent, request.capability, request.rule, request.attempts, request.id
    );
}

pub(crate) fn mode(socket: &Path, agent: &str, monitor: bool, by: String) -> Result<()> {
    let mode = if monitor { "monitor" } else { "enforce" };
    match call_daemon(socket, &Request::Mode { agent: agent.to_owned(), monitor, by })? {
        Reply::Changed { agent_ids } => {
            println!("{agent}: {mode} mode for runs {agent_ids:?}");
            Ok(())
        }
        other => bail!(unexpected(&other)),
    }
}

pub(crate) fn reload(socket: &Path, agent: &str, file: &Path, by: String) -> Result<()> {
    let policy_text = crate::run::read_policy_file(file)?;
    let policy_path =
        std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned()).into_os_string().into_encoded_bytes();
    match call_daemon(socket, &Request::Reload { agent: agent.to_owned(), policy_path, policy_text, by })? {
        Reply::Changed { agent_ids } => {
            println!("{agent}: policy {} in force for runs {agent_ids:?}", file.display());
            Ok(())
        }
        other => bail!(unexpected(&other)),
    }
}
