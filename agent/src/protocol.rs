//! Requests and replies on the daemon's Unix socket.
//!
//! One JSON object per line in each direction. A `register` request carries
//! the agent's executable as an open file descriptor (`SCM_RIGHTS`), so the
//! daemon hashes exactly the file the client will execute.

use std::{
    io::{self, BufRead, BufReader, IoSlice, IoSliceMut, Write},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::net::UnixStream,
    },
    path::PathBuf,
};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use serde::{Deserialize, Serialize};

/// Default path of the daemon's socket.
pub(crate) const DEFAULT_SOCKET: &str = "/run/lupid/lupid.sock";
/// Default folder of the daemon's state (the ledger lives in `ledger/`).
pub(crate) const DEFAULT_STATE_DIR: &str = "/var/lib/lupid";

/// Maximum length of a request line. A policy file must fit in one.
pub(crate) const MAX_REQUEST_BYTES: usize = 4 << 20;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub(crate) enum Request {
    /// Create a labeled cgroup for a new agent run and record its identity.
    Register(Register),
    /// The agent's process exited with `status` (exit code, or 128 + signal).
    Exited { agent_id: u32, status: i32 },
    /// Report what the kernel has loaded and which agents run.
    Status,
    /// Sign a checkpoint of the ledger now.
    Checkpoint,
    /// Grant a lease to the agent called `agent`, or to the agent and
    /// capability of an open request.
    LeaseGrant(LeaseGrant),
    /// End a lease now.
    LeaseRevoke { lease_id: u32, by: String, reason: String },
    /// List the live leases.
    LeaseList,
    /// List the open lease requests.
    Pending,
    /// Switch every live run of an agent to monitor mode or back.
    Mode { agent: String, monitor: bool, by: String },
    /// Swap the policy of every live run of an agent.
    Reload { agent: String, policy_path: Vec<u8>, policy_text: Vec<u8>, by: String },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct LeaseGrant {
    /// Empty when `request` names the agent.
    pub(crate) agent: String,
    /// `exec PATH`, `read PATH`, `write PATH`, `read,write PATH` or
    /// `connect ADDRESS:PORT`; empty when `request` names it.
    pub(crate) capability: String,
    /// An open request to grant, 0 for none.
    pub(crate) request_id: u64,
    pub(crate) ttl_ns: u64,
    /// 0 for no limit.
    pub(crate) max_uses: u64,
    pub(crate) by: String,
    pub(crate) reason: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Register {
    pub(crate) agent: String,
    pub(crate) delegated_by: String,
    pub(crate) policy_path: Vec<u8>,
    pub(crate) policy_text: Vec<u8>,
    pub(crate) command: Vec<Vec<u8>>,
    /// The executable as the client resolved it; the daemon also records
    /// the name the kernel gives the passed descriptor.
    pub(crate) exe_path: Vec<u8>,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) client_pid: u32,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub(crate) enum Reply {
    Registered { agent_id: u32, cgroup: PathBuf, policy_sha256: String },
    Done,
    Status(Box<StatusReport>),
    Checkpoint { note: String },
    Lease(Box<crate::daemon::Lease>),
    Leases { leases: Vec<crate::daemon::Lease> },
    Requests { requests: Vec<crate::daemon::Request> },
    /// The agent runs that a mode switch or reload changed.
    Changed { agent_ids: Vec<u32> },
    Error { message: String },
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct StatusReport {
    /// LSM programs of lupid's that the kernel lists as loaded right now.
    pub(crate) programs: Vec<ProgramStatus>,
    /// Labeled cgroups, read back from the kernel's `AGENTS` map.
    pub(crate) agents: Vec<AgentStatus>,
    /// lupid's LSM links that the kernel lists right now, each with the
    /// program it runs.
    #[serde(default)]
    pub(crate) links: Vec<LinkStatus>,
    /// Entries in the kernel's `PATH_RULES` map.
    pub(crate) path_rules: usize,
    /// Entries in the kernel's `NET_RULES` map.
    #[serde(default)]
    pub(crate) net_rules: usize,
    /// Entries in the kernel's `EXEC_CONTENT` map.
    #[serde(default)]
    pub(crate) content_rules: usize,
    /// Number of `LEASES` slots that contain a lease.
    #[serde(default)]
    pub(crate) leases: usize,
    /// Next kernel sequence number.
    pub(crate) kernel_sequence: u64,
    /// Denials caused by internal failures, by cause.
    pub(crate) failures: Vec<(String, u64)>,
    pub(crate) ledger_records: u64,
    pub(crate) ledger_head: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ProgramStatus {
    pub(crate) name: String,
    pub(crate) id: u32,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct LinkStatus {
    pub(crate) id: u32,
    pub(crate) program_id: u32,
    pub(crate) program: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AgentStatus {
    pub(crate) agent_id: u32,
    pub(crate) agent: String,
    pub(crate) cgroup_id: u64,
    pub(crate) cgroup: String,
    pub(crate) policy_sha256: String,
    pub(crate) default_verdict: String,
    /// `enforce` or `monitor`, from the kernel's `AGENTS` entry.
    #[serde(default)]
    pub(crate) mode: String,
}

/// Sends one message, with `fd` attached when given.
pub(crate) fn send<T: Serialize>(stream: &UnixStream, message: &T, fd: Option<RawFd>) -> io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(io::Error::other)?;
    line.push(b'\n');
    let Some(fd) = fd else {
        return (&*stream).write_all(&line);
    };
    // The descriptor rides on the first chunk; the rest follows as bytes.
    let fds = [fd];
    let control = [ControlMessage::ScmRights(&fds)];
    let sent = sendmsg::<()>(stream.as_raw_fd(), &[IoSlice::new(&line)], &control, MsgFlags::empty(), None)
        .map_err(io::Error::from)?;
    (&*stream).write_all(&line[sent..])
}

/// A connection that reads newline-delimited messages and collects any
/// descriptor passed with them.
pub(crate) struct Connection {
    reader: BufReader<UnixStream>,
    pending: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Connection {
    pub(crate) fn new(stream: UnixStream) -> Self {
        Self { reader: BufReader::new(stream), pending: Vec::new(), fds: Vec::new() }
    }

    pub(crate) fn stream(&self) -> &UnixStream {
        self.reader.get_ref()
    }

    /// Reads the next message; `Ok(None)` at end of stream.
    pub(crate) fn receive<T: for<'de> Deserialize<'de>>(&mut self) -> io::Result<Option<T>> {
        // The first bytes are read with recvmsg so an attached descriptor
        // is not lost; the rest of the line goes through the buffer.
        if self.pending.is_empty() && self.reader.buffer().is_empty() {
            self.read_with_fds()?;
        }
        let mut line;
        if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            line = self.pending.drain(..=end).collect::<Vec<u8>>();
        } else {
            line = std::mem::take(&mut self.pending);
            let limit = (MAX_REQUEST_BYTES + 1).saturating_sub(line.len()) as u64;
            io::Read::take(&mut self.reader, limit).read_until(b'\n', &mut line)?;
        }
        if line.is_empty() {
            return Ok(None);
        }
        if line.len() > MAX_REQUEST_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("message longer than {MAX_REQUEST_BYTES} bytes"),
            ));
        }
        serde_json::from_slice(&line)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("invalid message: {e}")))
    }

    /// Takes the descriptor that came with the last message, if any.
    pub(crate) fn take_fd(&mut self) -> Option<OwnedFd> {
        self.fds.pop()
    }

    fn read_with_fds(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut space = nix::cmsg_space!([RawFd; 4]);
        let (bytes, fds) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let message =
                recvmsg::<()>(self.stream().as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
                    .map_err(io::Error::from)?;
            let mut fds = Vec::new();
            for cmsg in message.cmsgs().map_err(io::Error::from)? {
                if let ControlMessageOwned::ScmRights(received) = cmsg {
                    fds.extend(received);
                }
            }
            (message.bytes, fds)
        };
        for fd in fds {
            // SAFETY: the kernel just installed this descriptor in our table
            // for us; nothing else owns it.
            self.fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        buf.truncate(bytes);
        self.pending = buf;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::{
        fs::File,
        io::{Read, Seek},
    };

    use super::*;

    #[test]
    fn status_request_round_trip() {
        let (client, server) = UnixStream::pair().expect("socket pair");
        send(&client, &Request::Status, None).expect("send");
        let received = Connection::new(server).receive::<Request>().expect("receive");
        assert!(matches!(received, Some(Request::Status)));
    }

    #[test]
    fn descriptor_travels_with_message() {
        let (client, server) = UnixStream::pair().expect("socket pair");
        let mut file = tempfile::tempfile().expect("temp file");
        std::io::Write::write_all(&mut file, b"payload").expect("write");
        send(&client, &Request::Exited { agent_id: 7, status: 0 }, Some(file.as_raw_fd())).expect("send");
        let mut connection = Connection::new(server);
        let received = connection.receive::<Request>().expect("receive");
        assert!(matches!(received, Some(Request::Exited { agent_id: 7, status: 0 })));
        let mut passed = File::from(connection.take_fd().expect("a descriptor arrived"));
        passed.rewind().expect("rewind");
        let mut text = String::new();
        passed.read_to_string(&mut text).expect("read");
        assert_eq!(text, "payload");
    }

    #[test]
    fn two_messages_in_one_write() {
        let (client, server) = UnixStream::pair().expect("socket pair");
        (&client).write_all(b"{\"request\":\"status\"}\n{\"request\":\"status\"}\n").expect("write");
        let mut connection = Connection::new(server);
        assert!(matches!(connection.receive::<Request>(), Ok(Some(Request::Status))));
        assert!(matches!(connection.receive::<Request>(), Ok(Some(Request::Status))));
    }

    #[test]
    fn invalid_message_is_an_error() {
        let (client, server) = UnixStream::pair().expect("socket pair");
        (&client).write_all(b"not json\n").expect("write");
        let error = Connection::new(server).receive::<Request>().unwrap_err();
        assert!(error.to_string().contains("invalid message"));
    }

    #[test]
    fn end_of_stream_is_none() {
        let (client, server) = UnixStream::pair().expect("socket pair");
        drop(client);
        assert!(matches!(Connection::new(server).receive::<Request>(), Ok(None)));
    }
}
