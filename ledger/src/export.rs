//! JSON Lines export: one JSON object per record, in sequence order.
//!
//! Every object starts with `seq`, `kind`, `time_ns` (wall time, Unix
//! nanoseconds), `hash` and `prev_hash` (lowercase hex), followed by the body
//! fields. Hashes inside bodies (`policy_sha256`, `exe_sha256`,
//! `previous_sha256`) are hex too. The one exception is a `previous_sha256`
//! of all zero bytes, which means no previous policy and is `null`. A
//! decision's `lease_id` is 0 when no lease allowed it, and `recorded_late`
//! is a boolean. Every decision has `via`: `io_uring` for an action that
//! came through `io_uring`, `syscall` for any other.
//!
//! Byte strings (paths, `comm`, `target_comm`, `requested`, command
//! arguments) are exported under their key as a JSON string when they are
//! valid UTF-8. Otherwise the key contains the lossy UTF-8 conversion
//! (invalid bytes become U+FFFD), and a sibling key `<name>_hex` contains
//! the hex of the raw bytes, so no byte is lost. For `command`,
//! `command_hex` is an array with the hex of every argument.
//!
//! Socket addresses: for `inet` and `inet6` families, `addr` is the usual
//! text form, with IPv4-mapped addresses shown as plain IPv4. For any other
//! family `addr` is `null` and `addr_hex` contains the 16 stored bytes. A
//! connect to a Unix socket has `family` `unix` and the peer's bound name
//! in `path` (`@NAME` for an abstract socket), with no `addr` or `port`.
//! A decision on an `inet` or `inet6` socket has `protocol`, the socket's
//! IP protocol: `tcp`, `udp`, `icmp`, `icmpv6`, another protocol's number,
//! or `null` when none is stored, as in every record written before format
//! version 3. Any other decision has `protocol` only when one is stored.
//!
//! A kill or ptrace decision names the process it was aimed at:
//! `target_pid` is its thread group id in the initial pid namespace and
//! `target_comm` its `comm`. Such decisions recorded before format version
//! 4 name no target and have an empty `path` instead.
//!
//! A decision with two names (a rename or a hard link, format version 6)
//! has `old_path`, the existing file's resolved path, and `new_path`, the
//! name it gets. Its `path_truncated` is `true` when the kernel could not
//! build one of the names, which is then empty. It has no `path`. A link or
//! rename decision without two names, as is every one recorded before
//! version 6, names at most one file, in `path`.
//!
//! A decision that stores the name the agent passed to the system call
//! (exec and open decisions from format version 5 on) has `requested`, that
//! name before the kernel resolved it into `path`, and
//! `requested_truncated`, `true` when the name filled the kernel's 255-byte
//! buffer and may be longer. Every other decision has neither key.
//!
//! The output is pure ASCII: every character outside printable ASCII is a
//! `\uXXXX` escape, so control characters and escape sequences stored in a
//! path cannot act on the terminal that shows the export.

use std::{
    fmt::Write as _,
    io::{self, Write},
    net::Ipv6Addr,
};

use lupid_common::{access, family, protocol};
use serde_json::{Value, json};

use crate::{
    error::LedgerError,
    reader::{LedgerReader, StoredRecord},
    record::{Decision, Hook, Identity, LeaseGranted, Object, RecordBody, ZERO_HASH},
};

/// A failed export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("failed to write the export")]
    Write(#[source] io::Error),
}

/// Writes every record of the ledger as one JSON line to `out`. Returns the
/// number of records written.
pub fn export_jsonl(reader: &LedgerReader, out: &mut impl Write) -> Result<u64, ExportError> {
    let mut count = 0;
    for stored in reader.records()? {
        let mut line = record_json(&stored?);
        line.push('\n');
        out.write_all(line.as_bytes()).map_err(ExportError::Write)?;
        count += 1;
    }
    out.flush().map_err(ExportError::Write)?;
    Ok(count)
}

/// Formats one record as a single-line, ASCII-only JSON object.
pub fn record_json(stored: &StoredRecord) -> String {
    let record = &stored.record;
    let mut object = JsonObject::default();
    object.put("seq", json!(record.seq));
    object.put("kind", json!(record.body.kind().name()));
    object.put("time_ns", json!(record.time_ns));
    object.put("hash", json!(hex::encode(stored.hash)));
    object.put("prev_hash", json!(hex::encode(record.prev_hash)));

    match &record.body {
        RecordBody::DaemonStart(start) => {
            object.put("version", json!(start.version));
            object.put("kernel", json!(start.kernel));
            object.put("pid", json!(start.pid));
        }
        RecordBody::DaemonStop(stop) => object.put("reason", json!(stop.reason)),
        RecordBody::Identity(identity) => put_identity(&mut object, identity),
        RecordBody::Decision(decision) => put_decision(&mut object, decision),
        RecordBody::AgentExit(exit) => {
            object.put("agent", json!(exit.agent));
            object.put("agent_id", json!(exit.agent_id));
            object.put("status", json!(exit.status));
        }
        RecordBody::EventsLost(lost) => {
            object.put("first_kernel_seq", json!(lost.first_kernel_seq));
            object.put("last_kernel_seq", json!(lost.last_kernel_seq));
            object.put("kernel_drop_counter", json!(lost.kernel_drop_counter));
        }
        RecordBody::Checkpoint(checkpoint) => {
            object.put("tree_size", json!(checkpoint.tree_size));
            object.put("root_hash", json!(hex::encode(checkpoint.root_hash)));
        }
        RecordBody::LeaseGranted(granted) => put_lease_granted(&mut object, granted),
        RecordBody::LeaseRevoked(revoked) => {
            object.put("lease_id", json!(revoked.lease_id));
            object.put("agent", json!(revoked.agent));
            object.put("revoked_by", json!(revoked.revoked_by));
            object.put("reason", json!(revoked.reason));
            object.put("uses", json!(revoked.uses));
        }
        RecordBody::LeaseExpired(expired) => {
            object.put("lease_id", json!(expired.lease_id));
            object.put("agent", json!(expired.agent));
            object.put("cause", json!(expired.cause));
            object.put("expired_boot_ns", json!(expired.expired_boot_ns));
            object.put("uses", json!(expired.uses));
            object.put("recorded_late", json!(expired.recorded_late));
        }
        RecordBody::PolicyLoaded(loaded) => {
            object.put("agent", json!(loaded.agent));
            object.put("agent_id", json!(loaded.agent_id));
            object.put("policy_sha256", json!(hex::encode(loaded.policy_sha256)));
            object.put_bytes("policy_path", &loaded.policy_path);
            let previous = if loaded.previous_sha256 == ZERO_HASH {
                Value::Null
            } else {
                json!(hex::encode(loaded.previous_sha256))
            };
            object.put("previous_sha256", previous);
            object.put("loaded_by", json!(loaded.loaded_by));
        }
        RecordBody::ModeChanged(changed) => {
            object.put("agent", json!(changed.agent));
            object.put("agent_id", json!(changed.agent_id));
            object.put("mode", json!(changed.mode));
            object.put("changed_by", json!(changed.changed_by));
        }
        RecordBody::DaemonGap(gap) => {
            object.put("from_ns", json!(gap.from_ns));
            object.put("to_ns", json!(gap.to_ns));
            object.put("first_kernel_seq", json!(gap.first_kernel_seq));
            object.put("next_kernel_seq", json!(gap.next_kernel_seq));
            object.put("kernel_drop_counter", json!(gap.kernel_drop_counter));
            object.put("programs", json!(gap.programs));
        }
    }
    object.to_ascii_json()
}

fn put_lease_granted(object: &mut JsonObject, granted: &LeaseGranted) {
    object.put("lease_id", json!(granted.lease_id));
    object.put("agent", json!(granted.agent));
    object.put("capability", json!(granted.capability));
    object.put("rule", json!(granted.rule));
    object.put("request_id", json!(granted.request_id));
    object.put("ttl_ns", json!(granted.ttl_ns));
    object.put("expires_boot_ns", json!(granted.expires_boot_ns));
    object.put("boot_id", json!(granted.boot_id));
    object.put("max_uses", json!(granted.max_uses));
    object.put("granted_by", json!(granted.granted_by));
    object.put("reason", json!(granted.reason));
}

fn put_identity(object: &mut JsonObject, identity: &Identity) {
    object.put("agent", json!(identity.agent));
    object.put("agent_id", json!(identity.agent_id));
    object.put("delegated_by", json!(identity.delegated_by));
    object.put("policy_sha256", json!(hex::encode(identity.policy_sha256)));
    object.put_bytes("policy_path", &identity.policy_path);

    let lossy: Vec<Value> = identity.command.iter().map(|argument| json!(String::from_utf8_lossy(argument))).collect();
    object.put("command", Value::Array(lossy));
    if identity.command.iter().any(|argument| std::str::from_utf8(argument).is_err()) {
        let hex = identity.command.iter().map(|argument| json!(hex::encode(argument)));
        object.put("command_hex", Value::Array(hex.collect()));
    }

    object.put("uid", json!(identity.uid));
    object.put("gid", json!(identity.gid));
    object.put("pid", json!(identity.pid));
    object.put_bytes("exe", &identity.exe_path);
    object.put("exe_sha256", json!(hex::encode(identity.exe_sha256)));
    object.put("cgroup_id", json!(identity.cgroup_id));
    object.put_bytes("cgroup", &identity.cgroup_path);
}

fn put_decision(object: &mut JsonObject, decision: &Decision) {
    object.put("kernel_seq", json!(decision.kernel_seq));
    object.put("boot_ns", json!(decision.boot_ns));
    object.put("agent", json!(decision.agent));
    object.put("agent_id", json!(decision.agent_id));
    object.put("policy_sha256", json!(hex::encode(decision.policy_sha256)));
    object.put("pid", json!(decision.pid));
    object.put("tgid", json!(decision.tgid));
    object.put("uid", json!(decision.uid));
    object.put("gid", json!(decision.gid));
    object.put("cgroup_id", json!(decision.cgroup_id));
    object.put_bytes("comm", &decision.comm);
    object.put("hook", json!(decision.hook.name()));
    object.put("via", json!(decision.via.name()));
    object.put("verdict", json!(decision.verdict.name()));
    let reason = match decision.reason.name() {
        Some(name) => json!(name),
        None => json!(decision.reason.code()),
    };
    object.put("reason", reason);
    object.put("rule_id", json!(decision.rule_id));
    let rule = if decision.rule.is_empty() { Value::Null } else { json!(decision.rule) };
    object.put("rule", rule);
    object.put("lease_id", json!(decision.lease_id));
    object.put("access", access_json(decision.access));

    match &decision.object {
        Object::Path { path, truncated } => {
            object.put_bytes("path", path);
            object.put("path_truncated", json!(truncated));
            // A Unix socket is named by its peer's bound name.
            if matches!(decision.hook, Hook::Connect | Hook::Send) {
                object.put("family", json!("unix"));
            }
        }
        Object::Socket { family: socket_family, addr, port } => {
            let family_name = match *socket_family {
                family::INET => json!("inet"),
                family::INET6 => json!("inet6"),
                family::UNIX => json!("unix"),
                other => json!(other),
            };
            object.put("family", family_name);
            if matches!(*socket_family, family::INET | family::INET6) {
                object.put("addr", json!(address_text(*addr)));
            } else {
                object.put("addr", Value::Null);
                object.put("addr_hex", json!(hex::encode(addr)));
            }
            object.put("port", json!(port));
        }
        Object::Task { pid, comm } => {
            object.put("target_pid", json!(pid));
            object.put_bytes("target_comm", comm);
        }
        Object::PathPair { old, new, truncated } => {
            object.put_bytes("old_path", old);
            object.put_bytes("new_path", new);
            object.put("path_truncated", json!(truncated));
        }
    }
    if decision.has_requested_name() {
        object.put_bytes("requested", &decision.requested);
        object.put("requested_truncated", json!(decision.requested_truncated));
    }
    let ip_socket = matches!(decision.object, Object::Socket { family: family::INET | family::INET6, .. });
    if ip_socket || decision.protocol != 0 {
        object.put("protocol", protocol_json(decision.protocol));
    }
}

/// `IPPROTO_ICMP` from the Linux UAPI (`linux/in.h`).
pub(crate) const IPPROTO_ICMP: u16 = 1;
/// `IPPROTO_ICMPV6` from the Linux UAPI (`linux/in6.h`).
pub(crate) const IPPROTO_ICMPV6: u16 = 58;

/// Returns an IP protocol number as its name, as a number when it has no
/// name here, or `null` for 0 (no protocol recorded).
fn protocol_json(number: u16) -> Value {
    match number {
        0 => Value::Null,
        protocol::TCP => json!("tcp"),
        protocol::UDP => json!("udp"),
        IPPROTO_ICMP => json!("icmp"),
        IPPROTO_ICMPV6 => json!("icmpv6"),
        other => json!(other),
    }
}

/// Returns the access bits as names. Unknown bits are kept as one number at
/// the end of the array.
fn access_json(bits: u32) -> Value {
    let mut names = Vec::new();
    if bits & access::READ != 0 {
        names.push(json!("read"));
    }
    if bits & access::WRITE != 0 {
        names.push(json!("write"));
    }
    if bits & access::CREATE != 0 {
        names.push(json!("create"));
    }
    let unknown = bits & !(access::READ | access::WRITE | access::CREATE);
    if unknown != 0 {
        names.push(json!(unknown));
    }
    Value::Array(names)
}

/// Formats a stored 16-byte address, showing IPv4-mapped ones as IPv4.
fn address_text(addr: [u8; 16]) -> String {
    let address = Ipv6Addr::from(addr);
    match address.to_ipv4_mapped() {
        Some(ipv4) => ipv4.to_string(),
        None => address.to_string(),
    }
}

/// A JSON object that keeps its keys in insertion order.
#[derive(Default)]
struct JsonObject(Vec<(String, Value)>);

impl JsonObject {
    fn put(&mut self, key: &str, value: Value) {
        self.0.push((key.to_owned(), value));
    }

    /// Adds a byte string: as text when it is UTF-8, otherwise as lossy text
    /// plus `<key>_hex`.
    fn put_bytes(&mut self, key: &str, bytes: &[u8]) {
        if let Ok(text) = std::str::from_utf8(bytes) {
            self.put(key, json!(text));
        } else {
            self.put(key, json!(String::from_utf8_lossy(bytes)));
            self.put(&format!("{key}_hex"), json!(hex::encode(bytes)));
        }
    }

    fn to_ascii_json(&self) -> String {
        let mut json = String::from("{");
        for (index, (key, value)) in self.0.iter().enumerate() {
            if index > 0 {
                json.push(',');
            }
            json.push_str(&Value::from(key.as_str()).to_string());
            json.push(':');
            json.push_str(&value.to_string());
        }
        json.push('}');
        escape_non_ascii(&json)
    }
}

/// Replaces every character outside printable ASCII with a `\uXXXX` escape.
///
/// `serde_json` already escapes the C0 controls; this also covers DEL, the
/// C1 controls and everything else outside ASCII. Such characters occur only
/// inside JSON strings, where the escape means the same character.
pub(crate) fn escape_non_ascii(json: &str) -> String {
    let mut escaped = String::with_capacity(json.len());
    for character in json.chars() {
        if character.is_ascii() && !character.is_ascii_control() {
            escaped.push(character);
            continue;
        }
        let mut units = [0_u16; 2];
        for unit in character.encode_utf16(&mut units) {
            write!(escaped, "\\u{unit:04x}").expect("writing to a String cannot fail");
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::{access_json, address_text, escape_non_ascii, protocol_json};

    #[test]
    fn address_ipv4_mapped() {
        let mut addr = [0; 16];
        addr[10..].copy_from_slice(&[0xff, 0xff, 192, 0, 2, 1]);
        assert_eq!(address_text(addr), "192.0.2.1");
    }

    #[test]
    fn address_ipv6() {
        let mut addr = [0; 16];
        addr[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        addr[15] = 1;
        assert_eq!(address_text(addr), "2001:db8::1");
    }

    #[test]
    fn access_unknown_bits() {
        assert_eq!(access_json(1 | 8).to_string(), r#"["read",8]"#);
        assert_eq!(access_json(2 | 4).to_string(), r#"["write","create"]"#);
    }

    #[test]
    fn protocol_names_and_numbers() {
        assert_eq!(protocol_json(0).to_string(), "null");
        assert_eq!(protocol_json(6).to_string(), r#""tcp""#);
        assert_eq!(protocol_json(17).to_string(), r#""udp""#);
        assert_eq!(protocol_json(1).to_string(), r#""icmp""#);
        assert_eq!(protocol_json(58).to_string(), r#""icmpv6""#);
        assert_eq!(protocol_json(132).to_string(), "132");
    }

    #[test]
    fn escape_controls() {
        assert_eq!(escape_non_ascii("a\u{7f}b"), "a\\u007fb");
        assert_eq!(escape_non_ascii("\u{9b}"), "\\u009b");
    }

    #[test]
    fn escape_astral() {
        assert_eq!(escape_non_ascii("\u{1f600}"), "\\ud83d\\ude00");
    }
}
