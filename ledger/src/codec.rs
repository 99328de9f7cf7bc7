//! Canonical byte encoding of records, and the record hash.
//!
//! Every record has exactly one encoding, and the hash covers those bytes,
//! so two parties that hold the same record compute the same hash.
//!
//! # Format versions
//!
//! Each record is written in the lowest version that can contain it:
//!
//! | version | records | body |
//! | --- | --- | --- |
//! | 1 | every record that needs none of versions 2 to 6 | as below |
//! | 2 | a decision whose `lease_id` is not 0, with `protocol` 0, `via` syscall and no task object or path pair | the version 1 decision body, then `lease_id` (u32) |
//! | 3 | a decision with no task object or path pair whose `protocol` is not 0 or whose `via` is `io_uring` | the version 2 decision body, then `protocol` (u16) and `via` (u8: 0 `syscall`, 1 `io_uring`) |
//! | 4 | a decision whose object is a task (kill, ptrace), with no requested name | the version 3 decision body, with object tag 3 |
//! | 5 | a decision with a requested name (`requested` not empty or `requested_truncated` set) and no path pair | the version 4 decision body, then `requested` (byte string) and `requested_truncated` (flag) |
//! | 6 | a decision whose object is a path pair (rename, link) | the version 5 decision body, with object tag 4 |
//!
//! A version 3 decision always contains `lease_id`, which may be 0 there,
//! and a version 4, 5 or 6 decision always contains `lease_id`, `protocol`
//! and `via`. A version 6 decision also always contains `requested` and
//! `requested_truncated`, which may be empty and clear there. Object tag 3
//! exists only in versions 4 and 5, and object tag 4 only in version 6. A
//! build that reads only lower versions therefore rejects such an object as
//! an unsupported version rather than as a record of another shape. A
//! version 5 decision may have any object but a path pair.
//!
//! Decoding accepts all six versions. It rejects a record in a version
//! other than the one its content needs as
//! [`DecodeError::NonCanonicalVersion`], so each record has one encoding.
//! Such records are:
//!
//! - a version 6 decision without a path pair;
//! - a path pair in a version below 6;
//! - a version 5 decision with an empty `requested` and
//!   `requested_truncated` clear;
//! - a version 4 decision without a task object;
//! - a task object in a version below 4;
//! - a version 3 decision with `protocol` 0 and `via` syscall;
//! - a version 2 decision with `lease_id` 0;
//! - a version 2 to 6 record of any other kind.
//!
//! A record written before versions 2 to 6 existed keeps its bytes and its
//! hash, and decodes with `lease_id` 0, `protocol` 0, `via` syscall and no
//! requested name as far as its version lacks them.
//!
//! # Layout
//!
//! All integers are big-endian. The header is 50 bytes:
//!
//! | bytes | field |
//! | --- | --- |
//! | 1 | format version, `1` to `6` |
//! | 8 | `seq` (u64) |
//! | 8 | `time_ns`, wall time in Unix nanoseconds (u64) |
//! | 1 | kind ([`Kind`] code) |
//! | 32 | `prev_hash` |
//!
//! The body follows, with its fields in the declaration order of the body
//! struct:
//!
//! - integers (`u8`, `u16`, `u32`, `u64`, `i32`) at their fixed width;
//! - hashes and socket addresses as their raw bytes;
//! - strings and byte strings as a u32 length followed by the bytes;
//! - the command line as a u32 count followed by each argument as a byte
//!   string;
//! - [`Hook`] and [`Verdict`] as one byte each and [`Reason`] as a u32, with
//!   the `lupid_common` codes, and [`Via`] as one byte with its own code;
//! - [`Object`] as a one-byte tag (1 path, 2 socket, 3 task, 4 path pair)
//!   followed by its fields. A task is `pid` (u32), then `comm` as a byte
//!   string. A path pair is `old` and `new` as byte strings, then
//!   `truncated`;
//! - flags (`truncated`, `requested_truncated`, `recorded_late`) as one
//!   byte that must be 0 or 1.
//!
//! A checkpoint body (kind 7) is `tree_size` (u64) followed by the 32-byte
//! root hash. The lease and policy kinds (8 to 12) follow the same rules.
//!
//! Decoding is strict, so a decoded record re-encodes to the bytes it came
//! from. An unknown version, kind or code (object tag and `via` included),
//! a version other than the one the record needs, a string that is not
//! UTF-8, a bad flag byte and trailing bytes are all errors.
//!
//! # Hash
//!
//! The record hash is `SHA-256(0x00 || canonical bytes)`, the leaf hash of
//! RFC 6962 (Certificate Transparency), so a Merkle tree over the ledger can
//! use record hashes as its leaves unchanged.

use sha2::{Digest, Sha256};

use crate::record::{
    AgentExit, CheckpointRecord, DaemonGap, DaemonStart, DaemonStop, Decision, EventsLost, HASH_LEN, Hash, Hook,
    Identity, Kind, LeaseExpired, LeaseGranted, LeaseRevoked, ModeChanged, Object, PolicyLoaded, Reason, Record,
    RecordBody, Verdict, Via,
};

/// Format version of every record that has no content of versions 2 to 6.
pub const FORMAT_VERSION: u8 = 1;

/// Format version of a decision with a lease id and no version 3 to 6 content:
/// the version 1 layout with `lease_id` (u32) after the last decision field.
pub const LEASE_FORMAT_VERSION: u8 = 2;

/// Format version of a decision with a protocol or an `io_uring` origin and
/// no task object or path pair: the version 2 layout with `protocol` (u16)
/// and `via` (u8) after `lease_id`.
pub const PROTOCOL_VIA_FORMAT_VERSION: u8 = 3;

/// Format version of a decision whose object is an [`Object::Task`] and
/// that has no requested name: the version 3 layout, in which object tag 3
/// is valid.
pub const TASK_FORMAT_VERSION: u8 = 4;

/// Format version of a decision with a requested name
/// ([`Decision::requested`] not empty or [`Decision::requested_truncated`]
/// set) and no path pair: the version 4 layout with `requested` (byte
/// string) and `requested_truncated` (flag) after `via`.
pub const REQUESTED_NAME_FORMAT_VERSION: u8 = 5;

/// Format version of a decision whose object is an [`Object::PathPair`],
/// with or without a requested name: the version 5 layout, in which object
/// tag 4 is valid.
pub const PATH_PAIR_FORMAT_VERSION: u8 = 6;

/// Size of the fixed record header in bytes.
pub const HEADER_LEN: usize = 1 + 8 + 8 + 1 + HASH_LEN;

const OBJECT_PATH: u8 = 1;
const OBJECT_SOCKET: u8 = 2;
const OBJECT_TASK: u8 = 3;
const OBJECT_PATH_PAIR: u8 = 4;

/// Domain-separation prefix of RFC 6962 leaf hashes.
const LEAF_PREFIX: u8 = 0x00;

/// A record that cannot be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("field `{field}` is {len} bytes long, more than the u32 length prefix allows")]
    FieldTooLong { field: &'static str, len: usize },
}

/// Bytes that are not a valid canonical record.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record ends inside field `{field}` (needs {needed} bytes at offset {offset}, {len} total)")]
    Truncated { field: &'static str, offset: usize, needed: usize, len: usize },
    #[error(
        "unsupported format version {0} (this build reads versions {FORMAT_VERSION} to {PATH_PAIR_FORMAT_VERSION})"
    )]
    UnsupportedVersion(u8),
    /// A record in another version than its content needs: a higher one,
    /// which would give it a second encoding and a second hash, or a lower
    /// one with an object that the lower version lacks (a task object below
    /// version 4, a path pair below version 6).
    #[error("{kind} record is in format version {version}, but its canonical encoding is version {canonical}")]
    NonCanonicalVersion { kind: &'static str, version: u8, canonical: u8 },
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    #[error("field `{field}` is not valid UTF-8")]
    InvalidUtf8 { field: &'static str },
    #[error("field `{field}` holds {value}, expected 0 or 1")]
    InvalidFlag { field: &'static str, value: u8 },
    #[error("unknown hook code {0}")]
    UnknownHook(u8),
    #[error("unknown verdict code {0}")]
    UnknownVerdict(u8),
    #[error("unknown object tag {0}")]
    UnknownObject(u8),
    #[error("unknown via code {0} (expected 0 syscall or 1 io_uring)")]
    UnknownVia(u8),
    #[error("{count} trailing bytes after the last field")]
    TrailingBytes { count: usize },
}

/// Computes the RFC 6962 leaf hash of a record's canonical bytes.
pub fn leaf_hash(canonical: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(canonical);
    hasher.finalize().into()
}

impl Record {
    /// Encodes the record into its canonical bytes.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(HEADER_LEN + 128);
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Replaces the contents of `out` with the record's canonical bytes, so
    /// that a caller encoding many records can reuse one buffer. On error,
    /// `out` contains a partial encoding.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut writer = Writer(std::mem::take(out));
        writer.0.clear();
        let result = self.write_to(&mut writer);
        *out = writer.0;
        result
    }

    fn write_to(&self, out: &mut Writer) -> Result<(), EncodeError> {
        let version = format_version(&self.body);
        out.u8(version);
        out.u64(self.seq);
        out.u64(self.time_ns);
        out.u8(self.body.kind() as u8);
        out.raw(&self.prev_hash);
        encode_body(out, &self.body, version)
    }

    /// Decodes canonical bytes produced by [`Record::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut input = Reader { bytes, offset: 0 };
        let version = input.u8("version")?;
        if !(FORMAT_VERSION..=PATH_PAIR_FORMAT_VERSION).contains(&version) {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let seq = input.u64("seq")?;
        let time_ns = input.u64("time_ns")?;
        let kind_code = input.u8("kind")?;
        let kind = Kind::from_code(kind_code).ok_or(DecodeError::UnknownKind(kind_code))?;
        let prev_hash = input.hash("prev_hash")?;
        let body = decode_body(&mut input, kind, version)?;

        let canonical = format_version(&body);
        if version != canonical {
            return Err(DecodeError::NonCanonicalVersion { kind: kind.name(), version, canonical });
        }

        let count = bytes.len() - input.offset;
        if count != 0 {
            return Err(DecodeError::TrailingBytes { count });
        }
        Ok(Self { seq, time_ns, prev_hash, body })
    }

    /// Encodes the record and returns its leaf hash.
    pub fn hash(&self) -> Result<Hash, EncodeError> {
        Ok(leaf_hash(&self.encode()?))
    }
}

/// Returns the lowest format version that can contain `body`, the only one
/// it may be written in.
fn format_version(body: &RecordBody) -> u8 {
    match body {
        RecordBody::Decision(decision) => decision_format_version(decision),
        _ => FORMAT_VERSION,
    }
}

fn decision_format_version(decision: &Decision) -> u8 {
    if matches!(decision.object, Object::PathPair { .. }) {
        PATH_PAIR_FORMAT_VERSION
    } else if decision.has_requested_name() {
        REQUESTED_NAME_FORMAT_VERSION
    } else if matches!(decision.object, Object::Task { .. }) {
        TASK_FORMAT_VERSION
    } else if decision.protocol != 0 || decision.via != Via::Syscall {
        PROTOCOL_VIA_FORMAT_VERSION
    } else if decision.lease_id != 0 {
        LEASE_FORMAT_VERSION
    } else {
        FORMAT_VERSION
    }
}

fn encode_body(out: &mut Writer, body: &RecordBody, version: u8) -> Result<(), EncodeError> {
    match body {
        RecordBody::DaemonStart(start) => {
            out.bytes("version", start.version.as_bytes())?;
            out.bytes("kernel", start.kernel.as_bytes())?;
            out.u32(start.pid);
        }
        RecordBody::DaemonStop(stop) => {
            out.bytes("reason", stop.reason.as_bytes())?;
        }
        RecordBody::Identity(identity) => encode_identity(out, identity)?,
        RecordBody::Decision(decision) => encode_decision(out, decision, version)?,
        RecordBody::AgentExit(exit) => {
            out.u32(exit.agent_id);
            out.bytes("agent", exit.agent.as_bytes())?;
            out.raw(&exit.status.to_be_bytes());
        }
        RecordBody::EventsLost(lost) => {
            out.u64(lost.first_kernel_seq);
            out.u64(lost.last_kernel_seq);
            out.u64(lost.kernel_drop_counter);
        }
        RecordBody::Checkpoint(checkpoint) => {
            out.u64(checkpoint.tree_size);
            out.raw(&checkpoint.root_hash);
        }
        RecordBody::LeaseGranted(granted) => encode_lease_granted(out, granted)?,
        RecordBody::LeaseRevoked(revoked) => {
            out.u32(revoked.lease_id);
            out.bytes("agent", revoked.agent.as_bytes())?;
            out.bytes("revoked_by", revoked.revoked_by.as_bytes())?;
            out.bytes("reason", revoked.reason.as_bytes())?;
            out.u64(revoked.uses);
        }
        RecordBody::LeaseExpired(expired) => {
            out.u32(expired.lease_id);
            out.bytes("agent", expired.agent.as_bytes())?;
            out.bytes("cause", expired.cause.as_bytes())?;
            out.u64(expired.expired_boot_ns);
            out.u64(expired.uses);
            out.u8(u8::from(expired.recorded_late));
        }
        RecordBody::PolicyLoaded(loaded) => {
            out.u32(loaded.agent_id);
            out.bytes("agent", loaded.agent.as_bytes())?;
            out.raw(&loaded.policy_sha256);
            out.bytes("policy_path", &loaded.policy_path)?;
            out.raw(&loaded.previous_sha256);
            out.bytes("loaded_by", loaded.loaded_by.as_bytes())?;
        }
        RecordBody::ModeChanged(changed) => {
            out.u32(changed.agent_id);
            out.bytes("agent", changed.agent.as_bytes())?;
            out.bytes("mode", changed.mode.as_bytes())?;
            out.bytes("changed_by", changed.changed_by.as_bytes())?;
        }
        RecordBody::DaemonGap(gap) => {
            out.u64(gap.from_ns);
            out.u64(gap.to_ns);
            out.u64(gap.first_kernel_seq);
            out.u64(gap.next_kernel_seq);
            out.u64(gap.kernel_drop_counter);
            out.bytes("programs", gap.programs.as_bytes())?;
        }
    }
    Ok(())
}

fn encode_lease_granted(out: &mut Writer, granted: &LeaseGranted) -> Result<(), EncodeError> {
    out.u32(granted.lease_id);
    out.bytes("agent", granted.agent.as_bytes())?;
    out.bytes("capability", granted.capability.as_bytes())?;
    out.bytes("rule", granted.rule.as_bytes())?;
    out.u64(granted.request_id);
    out.u64(granted.ttl_ns);
    out.u64(granted.expires_boot_ns);
    out.bytes("boot_id", granted.boot_id.as_bytes())?;
    out.u64(granted.max_uses);
    out.bytes("granted_by", granted.granted_by.as_bytes())?;
    out.bytes("reason", granted.reason.as_bytes())?;
    Ok(())
}

fn encode_identity(out: &mut Writer, identity: &Identity) -> Result<(), EncodeError> {
    out.u32(identity.agent_id);
    out.bytes("agent", identity.agent.as_bytes())?;
    out.bytes("delegated_by", identity.delegated_by.as_bytes())?;
    out.raw(&identity.policy_sha256);
    out.bytes("policy_path", &identity.policy_path)?;
    out.length("command", identity.command.len())?;
    for argument in &identity.command {
        out.bytes("command", argument)?;
    }
    out.u32(identity.uid);
    out.u32(identity.gid);
    out.u32(identity.pid);
    out.bytes("exe_path", &identity.exe_path)?;
    out.raw(&identity.exe_sha256);
    out.u64(identity.cgroup_id);
    out.bytes("cgroup_path", &identity.cgroup_path)?;
    Ok(())
}

/// Encodes a decision body in format `version`, the one [`format_version`]
/// returns for it.
fn encode_decision(out: &mut Writer, decision: &Decision, version: u8) -> Result<(), EncodeError> {
    out.u64(decision.kernel_seq);
    out.u64(decision.boot_ns);
    out.u32(decision.agent_id);
    out.bytes("agent", decision.agent.as_bytes())?;
    out.raw(&decision.policy_sha256);
    out.u32(decision.pid);
    out.u32(decision.tgid);
    out.u32(decision.uid);
    out.u32(decision.gid);
    out.u64(decision.cgroup_id);
    out.bytes("comm", &decision.comm)?;

    out.u8(code_byte(decision.hook.code()));
    out.u8(code_byte(decision.verdict.code()));
    out.u32(decision.reason.code());
    out.u32(decision.rule_id);
    out.bytes("rule", decision.rule.as_bytes())?;
    out.u32(decision.access);

    match &decision.object {
        Object::Path { path, truncated } => {
            out.u8(OBJECT_PATH);
            out.bytes("path", path)?;
            out.u8(u8::from(*truncated));
        }
        Object::Socket { family, addr, port } => {
            out.u8(OBJECT_SOCKET);
            out.raw(&family.to_be_bytes());
            out.raw(addr);
            out.raw(&port.to_be_bytes());
        }
        Object::Task { pid, comm } => {
            out.u8(OBJECT_TASK);
            out.u32(*pid);
            out.bytes("task_comm", comm)?;
        }
        Object::PathPair { old, new, truncated } => {
            out.u8(OBJECT_PATH_PAIR);
            out.bytes("old_path", old)?;
            out.bytes("new_path", new)?;
            out.u8(u8::from(*truncated));
        }
    }
    // Each version appends fields to the one before (see `format_version`).
    if version >= LEASE_FORMAT_VERSION {
        out.u32(decision.lease_id);
    }
    if version >= PROTOCOL_VIA_FORMAT_VERSION {
        out.raw(&decision.protocol.to_be_bytes());
        out.u8(decision.via.code());
    }
    if version >= REQUESTED_NAME_FORMAT_VERSION {
        out.bytes("requested", &decision.requested)?;
        out.u8(u8::from(decision.requested_truncated));
    }
    Ok(())
}

fn decode_body(input: &mut Reader<'_>, kind: Kind, version: u8) -> Result<RecordBody, DecodeError> {
    let body = match kind {
        Kind::DaemonStart => RecordBody::DaemonStart(DaemonStart {
            version: input.string("version")?,
            kernel: input.string("kernel")?,
            pid: input.u32("pid")?,
        }),
        Kind::DaemonStop => RecordBody::DaemonStop(DaemonStop { reason: input.string("reason")? }),
        Kind::Identity => RecordBody::Identity(decode_identity(input)?),
        Kind::Decision => RecordBody::Decision(decode_decision(input, version)?),
        Kind::AgentExit => RecordBody::AgentExit(AgentExit {
            agent_id: input.u32("agent_id")?,
            agent: input.string("agent")?,
            status: i32::from_be_bytes(input.array("status")?),
        }),
        Kind::EventsLost => RecordBody::EventsLost(EventsLost {
            first_kernel_seq: input.u64("first_kernel_seq")?,
            last_kernel_seq: input.u64("last_kernel_seq")?,
            kernel_drop_counter: input.u64("kernel_drop_counter")?,
        }),
        Kind::Checkpoint => RecordBody::Checkpoint(CheckpointRecord {
            tree_size: input.u64("tree_size")?,
            root_hash: input.hash("root_hash")?,
        }),
        Kind::LeaseGranted => RecordBody::LeaseGranted(decode_lease_granted(input)?),
        Kind::LeaseRevoked => RecordBody::LeaseRevoked(LeaseRevoked {
            lease_id: input.u32("lease_id")?,
            agent: input.string("agent")?,
            revoked_by: input.string("revoked_by")?,
            reason: input.string("reason")?,
            uses: input.u64("uses")?,
        }),
        Kind::LeaseExpired => RecordBody::LeaseExpired(LeaseExpired {
            lease_id: input.u32("lease_id")?,
            agent: input.string("agent")?,
            cause: input.string("cause")?,
            expired_boot_ns: input.u64("expired_boot_ns")?,
            uses: input.u64("uses")?,
            recorded_late: input.flag("recorded_late")?,
        }),
        Kind::PolicyLoaded => RecordBody::PolicyLoaded(PolicyLoaded {
            agent_id: input.u32("agent_id")?,
            agent: input.string("agent")?,
            policy_sha256: input.hash("policy_sha256")?,
            policy_path: input.bytes("policy_path")?,
            previous_sha256: input.hash("previous_sha256")?,
            loaded_by: input.string("loaded_by")?,
        }),
        Kind::ModeChanged => RecordBody::ModeChanged(ModeChanged {
            agent_id: input.u32("agent_id")?,
            agent: input.string("agent")?,
            mode: input.string("mode")?,
            changed_by: input.string("changed_by")?,
        }),
        Kind::DaemonGap => RecordBody::DaemonGap(DaemonGap {
            from_ns: input.u64("from_ns")?,
            to_ns: input.u64("to_ns")?,
            first_kernel_seq: input.u64("first_kernel_seq")?,
            next_kernel_seq: input.u64("next_kernel_seq")?,
            kernel_drop_counter: input.u64("kernel_drop_counter")?,
            programs: input.string("programs")?,
        }),
    };
    Ok(body)
}

fn decode_lease_granted(input: &mut Reader<'_>) -> Result<LeaseGranted, DecodeError> {
    Ok(LeaseGranted {
        lease_id: input.u32("lease_id")?,
        agent: input.string("agent")?,
        capability: input.string("capability")?,
        rule: input.string("rule")?,
        request_id: input.u64("request_id")?,
        ttl_ns: input.u64("ttl_ns")?,
        expires_boot_ns: input.u64("expires_boot_ns")?,
        boot_id: input.string("boot_id")?,
        max_uses: input.u64("max_uses")?,
        granted_by: input.string("granted_by")?,
        reason: input.string("reason")?,
    })
}

fn decode_identity(input: &mut Reader<'_>) -> Result<Identity, DecodeError> {
    let agent_id = input.u32("agent_id")?;
    let agent = input.string("agent")?;
    let delegated_by = input.string("delegated_by")?;
    let policy_sha256 = input.hash("policy_sha256")?;
    let policy_path = input.bytes("policy_path")?;

    // Each argument takes at least its 4-byte length prefix, so the count can
    // be checked against the remaining input before anything is allocated.
    let count = input.u32("command")? as usize;
    input.ensure("command", count.saturating_mul(4))?;
    let mut command = Vec::with_capacity(count);
    for _ in 0..count {
        command.push(input.bytes("command")?);
    }

    Ok(Identity {
        agent_id,
        agent,
        delegated_by,
        policy_sha256,
        policy_path,
        command,
        uid: input.u32("uid")?,
        gid: input.u32("gid")?,
        pid: input.u32("pid")?,
        exe_path: input.bytes("exe_path")?,
        exe_sha256: input.hash("exe_sha256")?,
        cgroup_id: input.u64("cgroup_id")?,
        cgroup_path: input.bytes("cgroup_path")?,
    })
}

fn decode_decision(input: &mut Reader<'_>, version: u8) -> Result<Decision, DecodeError> {
    let kernel_seq = input.u64("kernel_seq")?;
    let boot_ns = input.u64("boot_ns")?;
    let agent_id = input.u32("agent_id")?;
    let agent = input.string("agent")?;
    let policy_sha256 = input.hash("policy_sha256")?;
    let pid = input.u32("pid")?;
    let tgid = input.u32("tgid")?;
    let uid = input.u32("uid")?;
    let gid = input.u32("gid")?;
    let cgroup_id = input.u64("cgroup_id")?;
    let comm = input.bytes("comm")?;

    let hook_code = input.u8("hook")?;
    let hook = Hook::from_code(u32::from(hook_code)).ok_or(DecodeError::UnknownHook(hook_code))?;
    let verdict_code = input.u8("verdict")?;
    let verdict = Verdict::from_code(u32::from(verdict_code)).ok_or(DecodeError::UnknownVerdict(verdict_code))?;
    let reason = Reason::from_code(input.u32("reason")?);
    let rule_id = input.u32("rule_id")?;
    let rule = input.string("rule")?;
    let access = input.u32("access")?;

    let object = match input.u8("object")? {
        OBJECT_PATH => Object::Path { path: input.bytes("path")?, truncated: input.flag("path_truncated")? },
        OBJECT_SOCKET => Object::Socket {
            family: u16::from_be_bytes(input.array("family")?),
            addr: input.array("addr")?,
            port: u16::from_be_bytes(input.array("port")?),
        },
        // A task object in a version below 4, or a path pair below 6,
        // decodes here and is rejected as a non-canonical version once the
        // whole record is read.
        OBJECT_TASK => Object::Task { pid: input.u32("task_pid")?, comm: input.bytes("task_comm")? },
        OBJECT_PATH_PAIR => Object::PathPair {
            old: input.bytes("old_path")?,
            new: input.bytes("new_path")?,
            truncated: input.flag("path_pair_truncated")?,
        },
        tag => return Err(DecodeError::UnknownObject(tag)),
    };
    let lease_id = if version >= LEASE_FORMAT_VERSION { input.u32("lease_id")? } else { 0 };
    let (protocol, via) = if version >= PROTOCOL_VIA_FORMAT_VERSION {
        let protocol = u16::from_be_bytes(input.array("protocol")?);
        let via_code = input.u8("via")?;
        (protocol, Via::from_code(via_code).ok_or(DecodeError::UnknownVia(via_code))?)
    } else {
        (0, Via::Syscall)
    };
    let (requested, requested_truncated) = if version >= REQUESTED_NAME_FORMAT_VERSION {
        (input.bytes("requested")?, input.flag("requested_truncated")?)
    } else {
        (Vec::new(), false)
    };

    Ok(Decision {
        kernel_seq,
        boot_ns,
        agent_id,
        agent,
        policy_sha256,
        pid,
        tgid,
        uid,
        gid,
        cgroup_id,
        comm,
        hook,
        verdict,
        reason,
        rule_id,
        rule,
        access,
        object,
        lease_id,
        protocol,
        via,
        requested,
        requested_truncated,
    })
}

/// Returns a `lupid_common` code as the one byte the format stores.
fn code_byte(code: u32) -> u8 {
    u8::try_from(code).expect("hook and verdict codes are below 256")
}

struct Writer(Vec<u8>);

impl Writer {
    fn raw(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    fn u8(&mut self, value: u8) {
        self.0.push(value);
    }

    fn u32(&mut self, value: u32) {
        self.raw(&value.to_be_bytes());
    }

    fn u64(&mut self, value: u64) {
        self.raw(&value.to_be_bytes());
    }

    fn length(&mut self, field: &'static str, len: usize) -> Result<(), EncodeError> {
        let len = u32::try_from(len).map_err(|_| EncodeError::FieldTooLong { field, len })?;
        self.u32(len);
        Ok(())
    }

    fn bytes(&mut self, field: &'static str, bytes: &[u8]) -> Result<(), EncodeError> {
        self.length(field, bytes.len())?;
        self.raw(bytes);
        Ok(())
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn ensure(&self, field: &'static str, needed: usize) -> Result<(), DecodeError> {
        if self.bytes.len() - self.offset < needed {
            return Err(DecodeError::Truncated { field, offset: self.offset, needed, len: self.bytes.len() });
        }
        Ok(())
    }

    fn take(&mut self, field: &'static str, needed: usize) -> Result<&'a [u8], DecodeError> {
        self.ensure(field, needed)?;
        let slice = &self.bytes[self.offset..self.offset + needed];
        self.offset += needed;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(field, N)?);
        Ok(array)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(field, 1)?[0])
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    fn hash(&mut self, field: &'static str) -> Result<Hash, DecodeError> {
        self.array(field)
    }

    fn flag(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::InvalidFlag { field, value }),
        }
    }

    fn bytes(&mut self, field: &'static str) -> Result<Vec<u8>, DecodeError> {
        let len = self.u32(field)? as usize;
        Ok(self.take(field, len)?.to_vec())
    }

    fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes(field)?).map_err(|_| DecodeError::InvalidUtf8 { field })
    }
}
