//! `lupid-agent status`: what the kernel has loaded, read back from it by
//! the daemon, and which agents run.

use std::{os::unix::net::UnixStream, path::Path};

use anyhow::{Context, Result, bail};

use crate::protocol::{Connection, Reply, Request, StatusReport, send};

pub(crate) fn status(socket: &Path, json: bool) -> Result<()> {
    let stream = UnixStream::connect(socket).with_context(|| {
        format!("failed to reach the lupid daemon at {}; is `sudo lupid-agent start` running?", socket.display())
    })?;
    send(&stream, &Request::Status, None).context("failed to send the status request")?;
    let report = match Connection::new(stream).receive::<Reply>().context("failed to read the daemon's reply")? {
        Some(Reply::Status(report)) => report,
        Some(Reply::Error { message }) => bail!("the daemon reported an error: {message}"),
        other => bail!("unexpected reply from the daemon: {other:?}"),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if report.links.len() < crate::daemon::HOOK_COUNT {
        bail!(
            "only {} of {} lupid programs are attached in the kernel",
            report.links.len(),
            crate::daemon::HOOK_COUNT
        );
    }
    if report.programs.len() < crate::daemon::HOOK_COUNT {
        bail!(
            "only {} of {} lupid programs are loaded in the kernel",
            report.programs.len(),
            crate::daemon::HOOK_COUNT
        );
    }
    Ok(())
}

fn print_report(report: &StatusReport) {
    println!("programs loaded in the kernel: {}", report.programs.len());
    for program in &report.programs {
        println!("  {:<20} id {}", program.name, program.id);
    }
    println!("labeled cgroups in the kernel: {}", report.agents.len());
    for agent in &report.agents {
        println!(
            "  agent {:<4} {:<16} default {:<5} cgroup {} ({})  policy {}",
            agent.agent_id,
            agent.agent,
            agent.default_verdict,
            agent.cgroup,
            agent.cgroup_id,
            &agent.policy_sha256[..agent.policy_sha256.len().min(16)]
        );
    }
    println!("links attaching them: {}", report.links.len());
    for link in &report.links {
        println!("  link {:<6} program {:<6} {}", link.id, link.program_id, link.program);
    }
    println!(
        "rule entries in the kernel: {} path, {} network, {} content; leases in force: {}",
        report.path_rules, report.net_rules, report.content_rules, report.leases
    );
    println!("next kernel sequence number: {}", report.kernel_sequence);
    let failures: Vec<String> =
        report.failures.iter().filter(|(_, n)| *n > 0).map(|(name, n)| format!("{name}={n}")).collect();
    println!(
        "denials from internal failures: {}",
        if failures.is_empty() { "none".into() } else { failures.join(" ") }
    );
    println!("ledger records: {}  head {}", report.ledger_records, report.ledger_head.as_deref().unwrap_or("-"));
}

/// Asks the daemon to sign a checkpoint now and prints the signed note.
pub(crate) fn checkpoint(socket: &Path) -> Result<()> {
    let stream = UnixStream::connect(socket).with_context(|| {
        format!("failed to reach the lupid daemon at {}; is `sudo lupid-agent start` running?", socket.display())
    })?;
    send(&stream, &Request::Checkpoint, None).context("failed to send the checkpoint request")?;
    match Connection::new(stream).receive::<Reply>().context("failed to read the daemon's reply")? {
        Some(Reply::Checkpoint { note }) => {
            print!("{note}");
            Ok(())
        }
        Some(Reply::Error { message }) => bail!("the daemon could not sign a checkpoint: {message}"),
        other => bail!("unexpected reply from the daemon: {other:?}"),
    }
}
