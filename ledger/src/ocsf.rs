//! OCSF export: one Open Cybersecurity Schema Framework event per decision
//! record, one JSON object per line.
//!
//! The class and activity ids follow OCSF schema 1.7.0 (the class pages
//! under <https://docs.tenzir.com/reference/ocsf/1-7-0/classes/> list them):
//!
//! | hook | class | `class_uid` | activity | `activity_id` | object |
//! | --- | --- | --- | --- | --- | --- |
//! | exec | Process Activity | 1007 | Launch | 1 | `process.file.path` |
//! | open | File System Activity | 1001 | Open | 14 | `file.path` |
//! | connect | Network Activity | 4001 | Open | 1 | `dst_endpoint.ip`, `.port` |
//! | send | Network Activity | 4001 | Traffic | 6 | `dst_endpoint.ip`, `.port` |
//! | clone | Process Activity | 1007 | Launch | 1 | none |
//! | kill | Process Activity | 1007 | Terminate | 2 | `process.pid`, `.name` |
//! | ptrace | Process Activity | 1007 | Open | 3 | `process.pid`, `.name` |
//! | `userns_create`, bpf | Process Activity | 1007 | Other | 99 | none |
//! | mount, `move_mount` | File System Activity | 1001 | Mount | 12 | none |
//! | umount | File System Activity | 1001 | Unmount | 13 | none |
//! | link | File System Activity | 1001 | Other (`activity_name` `Link`) | 99 | `file.path` and `file_result.path`, or none |
//! | `create_name` | File System Activity | 1001 | Create | 1 | `file.path` |
//! | `remove_name` | File System Activity | 1001 | Delete | 4 | `file.path` |
//! | rename | File System Activity | 1001 | Rename | 5 | `file.path`, or `file.path` and `file_result.path` |
//! | `socket_create`, setsockopt | Network Activity | 4001 | Other | 99 | none |
//! | truncate | File System Activity | 1001 | Update | 3 | `file.path` |
//! | `set_attr` | File System Activity | 1001 | Set Attributes | 6 | `file.path` |
//! | `task_set` | Process Activity | 1007 | Other | 99 | `process` (the daemon) |
//!
//! The hooks from clone on record denials by lupid's built-in
//! protections. Most of their decisions name no object, so the event
//! carries no `file`, `process` or `dst_endpoint`. `create_name`,
//! `remove_name` and `rename` name the file in lupid's folder. A rename or
//! hard link that names both of its paths (format version 6) has the
//! existing file in `file` and the name it gets in `file_result`, which
//! 1.7.0 File System Activity defines as the file that results from the
//! activity. A name the kernel could not build has the path `<truncated>`.
//! OCSF 1.7.0 has no activity for a hard link, so a link is `activity_id`
//! 99 (Other) with `activity_name` `Link`, as the schema prescribes for a
//! source-specific activity. Its `type_name` is `File System Activity:
//! Other`, the caption of its `type_uid`. Kill and ptrace name the process
//! the agent aimed at in `process`, the target process of the 1.7.0
//! Process Activity class: `pid` is its thread group id and `name` its
//! `comm`. Kill and ptrace decisions recorded before
//! format version 4 carry no `process`. A signal is mapped to Terminate
//! and a ptrace access to Open (of a process), the nearest OCSF
//! activities.
//!
//! A socket decision has `connection_info` with `direction_id` 2
//! (Outbound). When the ledger stores the socket's IP protocol, it adds
//! `protocol_num` and, for TCP, UDP, ICMP and `ICMPv6`, `protocol_name` as
//! the lowercase IANA keyword (`tcp`, `udp`, `icmp`, `ipv6-icmp`), as the
//! 1.7.0 Network Connection Information object defines it.
//!
//! `type_uid` is `class_uid * 100 + activity_id`. An allowed decision is
//! `action_id` 1 (Allowed), `disposition_id` 1 (Allowed) and `severity_id` 1
//! (Informational). A denied one is `action_id` 2 (Denied), `disposition_id`
//! 2 (Blocked) and `severity_id` 3 (Medium). These follow the verdict alone,
//! so a decision allowed by an audit rule, a lease or monitor mode is
//! Allowed, and `unmapped.reason` names which of them applied. `time` is the
//! record's wall time in Unix milliseconds, and `metadata.original_time` the
//! same time as RFC 3339 with nanoseconds. `metadata.uid` is the record hash
//! (hex).
//!
//! `actor.process` is the process that made the request: `pid` is the
//! thread group id, `tid` the thread id, `name` the `comm`, and `user.uid`
//! and `group` come from the decision. Fields with no OCSF attribute (`seq`,
//! `kernel_seq`, `rule`, `rule_id`, `reason`, `lease_id`, `via`,
//! `policy_sha256`, the agent) are under `unmapped`. So are `requested` and
//! `requested_truncated`, the name the agent passed to the system call
//! before the kernel resolved it, on decisions that store one: the 1.7.0
//! File object has no attribute for a name other than the resolved path.
//! Byte strings that are not UTF-8 are exported lossily, as in the JSON
//! Lines export.
//!
//! Only decisions are exported. Records of every other kind are skipped,
//! the lease, policy and mode records included, because this module maps
//! none of them to an OCSF class. The JSON Lines export carries them all.

use std::io::Write;

use serde_json::{Map, Value, json};

use crate::{
    export::{ExportError, IPPROTO_ICMP, IPPROTO_ICMPV6, escape_non_ascii},
    query::{name_text, object_text},
    reader::{LedgerReader, StoredRecord},
    record::{Decision, Hook, Object, RecordBody, Verdict},
    timestamp::format_rfc3339,
};

/// OCSF schema version of the exported events.
pub const OCSF_VERSION: &str = "1.7.0";

/// An OCSF event class and the category it belongs to.
struct OcsfClass {
    uid: u32,
    name: &'static str,
    category_uid: u32,
    category_name: &'static str,
}

const PROCESS_ACTIVITY: OcsfClass =
    OcsfClass { uid: 1007, name: "Process Activity", category_uid: 1, category_name: "System Activity" };
const FILE_SYSTEM_ACTIVITY: OcsfClass =
    OcsfClass { uid: 1001, name: "File System Activity", category_uid: 1, category_name: "System Activity" };
const NETWORK_ACTIVITY: OcsfClass =
    OcsfClass { uid: 4001, name: "Network Activity", category_uid: 4, category_name: "Network Activity" };

/// `activity_id` 99, Other, in every OCSF class: an activity that the class
/// does not define, named by `activity_name`.
const OTHER_ACTIVITY: u32 = 99;

/// Writes every decision record of the ledger as one OCSF event per line.
/// Returns the number of events written.
pub fn export_ocsf(reader: &LedgerReader, out: &mut impl Write) -> Result<u64, ExportError> {
    let mut count = 0;
    for stored in reader.records()? {
        let Some(event) = event(&stored?) else { continue };
        // As in the JSON Lines export, characters outside printable ASCII
        // are written as escapes, so that no C1 control or reordering
        // character reaches a terminal that shows the output.
        let mut line = escape_non_ascii(&event.to_string());
        line.push('\n');
        out.write_all(line.as_bytes()).map_err(ExportError::Write)?;
        count += 1;
    }
    out.flush().map_err(ExportError::Write)?;
    Ok(count)
}

/// Maps one record to its OCSF event, or `None` for a record that is not a
/// decision.
pub fn event(stored: &StoredRecord) -> Option<Value> {
    let RecordBody::Decision(decision) = &stored.record.body else {
        return None;
    };
    let record = &stored.record;
    let (class, activity_id, activity_name) = match decision.hook {
        Hook::Exec | Hook::Clone => (PROCESS_ACTIVITY, 1, "Launch"),
        Hook::Kill => (PROCESS_ACTIVITY, 2, "Terminate"),
        Hook::Ptrace => (PROCESS_ACTIVITY, 3, "Open"),
        Hook::UsernsCreate | Hook::Bpf | Hook::TaskSet => (PROCESS_ACTIVITY, OTHER_ACTIVITY, "Other"),
        Hook::Open => (FILE_SYSTEM_ACTIVITY, 14, "Open"),
        Hook::Mount | Hook::MoveMount => (FILE_SYSTEM_ACTIVITY, 12, "Mount"),
        Hook::Chroot => (FILE_SYSTEM_ACTIVITY, OTHER_ACTIVITY, "Other"),
        Hook::Umount => (FILE_SYSTEM_ACTIVITY, 13, "Unmount"),
        Hook::CreateName => (FILE_SYSTEM_ACTIVITY, 1, "Create"),
        Hook::Link => (FILE_SYSTEM_ACTIVITY, OTHER_ACTIVITY, "Link"),
        Hook::RemoveName => (FILE_SYSTEM_ACTIVITY, 4, "Delete"),
        Hook::Rename => (FILE_SYSTEM_ACTIVITY, 5, "Rename"),
        Hook::Truncate => (FILE_SYSTEM_ACTIVITY, 3, "Update"),
        Hook::SetAttr => (FILE_SYSTEM_ACTIVITY, 6, "Set Attributes"),
        Hook::Connect => (NETWORK_ACTIVITY, 1, "Open"),
        Hook::Send => (NETWORK_ACTIVITY, 6, "Traffic"),
        Hook::SocketCreate | Hook::Setsockopt => (NETWORK_ACTIVITY, OTHER_ACTIVITY, "Other"),
    };
    let OcsfClass { uid: class_uid, name: class_name, category_uid, category_name } = class;
    let (id, action, disposition, severity_id, severity) = match decision.verdict {
        Verdict::Allow => (1, "Allowed", "Allowed", 1, "Informational"),
        Verdict::Deny => (2, "Denied", "Blocked", 3, "Medium"),
    };

    let mut event = Map::new();
    event.insert("class_uid".into(), json!(class_uid));
    event.insert("class_name".into(), json!(class_name));
    event.insert("category_uid".into(), json!(category_uid));
    event.insert("category_name".into(), json!(category_name));
    event.insert("activity_id".into(), json!(activity_id));
    event.insert("activity_name".into(), json!(activity_name));
    event.insert("type_uid".into(), json!(class_uid * 100 + activity_id));
    // `type_name` is the caption of `type_uid`, which for Other is "Other"
    // whatever `activity_name` contains.
    let type_activity = if activity_id == OTHER_ACTIVITY { "Other" } else { activity_name };
    event.insert("type_name".into(), json!(format!("{class_name}: {type_activity}")));
    event.insert("time".into(), json!(record.time_ns / 1_000_000));
    event.insert("severity_id".into(), json!(severity_id));
    event.insert("severity".into(), json!(severity));
    event.insert("action_id".into(), json!(id));
    event.insert("action".into(), json!(action));
    event.insert("disposition_id".into(), json!(id));
    event.insert("disposition".into(), json!(disposition));
    event.insert(
        "metadata".into(),
        json!({
            "version": OCSF_VERSION,
            "uid": hex::encode(stored.hash),
            "original_time": format_rfc3339(record.time_ns),
            "product": {
                "name": "lupid",
                "vendor_name": "lupid",
                "version": env!("CARGO_PKG_VERSION"),
            },
        }),
    );
    event.insert("actor".into(), actor(decision));
    match (&decision.object, decision.hook) {
        (Object::Socket { addr, port, .. }, _) => {
            let address = std::net::Ipv6Addr::from(*addr);
            let ip = address.to_ipv4_mapped().map_or_else(|| address.to_string(), |ipv4| ipv4.to_string());
            event.insert("dst_endpoint".into(), json!({ "ip": ip, "port": port }));
            event.insert("connection_info".into(), connection_info(decision.protocol));
        }
        (Object::Task { pid, comm }, _) => {
            event.insert("process".into(), json!({ "pid": pid, "name": String::from_utf8_lossy(comm) }));
        }
        (Object::PathPair { old, new, truncated }, _) => {
            event.insert("file".into(), file(name_text(old, *truncated)));
            event.insert("file_result".into(), file(name_text(new, *truncated)));
        }
        (Object::Path { path, .. }, _) if path.is_empty() && !matches!(decision.hook, Hook::Exec | Hook::Open) => {}
        (object, Hook::Exec) => {
            event.insert("process".into(), json!({ "file": file(object_text(object)) }));
        }
        (object, _) => {
            event.insert("file".into(), file(object_text(object)));
        }
    }
    let mut unmapped = json!({
        "seq": record.seq,
        "kernel_seq": decision.kernel_seq,
        "rule": decision.rule,
        "rule_id": decision.rule_id,
        "reason": decision.reason.name().map_or_else(|| json!(decision.reason.code()), |name| json!(name)),
        "lease_id": decision.lease_id,
        "via": decision.via.name(),
        "policy_sha256": hex::encode(decision.policy_sha256),
        "agent": decision.agent,
        "agent_id": decision.agent_id,
        "cgroup_id": decision.cgroup_id,
    });
    if decision.has_requested_name() {
        unmapped["requested"] = json!(String::from_utf8_lossy(&decision.requested));
        unmapped["requested_truncated"] = json!(decision.requested_truncated);
    }
    event.insert("unmapped".into(), unmapped);
    Some(Value::Object(event))
}

/// Formats an outbound connection with the IP protocol `protocol`, which
/// is 0 when the ledger stores none.
fn connection_info(protocol: u16) -> Value {
    let mut info = Map::new();
    info.insert("direction_id".into(), json!(2));
    info.insert("direction".into(), json!("Outbound"));
    if protocol != 0 {
        let iana_keyword = match protocol {
            lupid_common::protocol::TCP => Some("tcp"),
            lupid_common::protocol::UDP => Some("udp"),
            IPPROTO_ICMP => Some("icmp"),
            IPPROTO_ICMPV6 => Some("ipv6-icmp"),
            _ => None,
        };
        if let Some(name) = iana_keyword {
            info.insert("protocol_name".into(), json!(name));
        }
        info.insert("protocol_num".into(), json!(protocol));
    }
    Value::Object(info)
}

fn actor(decision: &Decision) -> Value {
    json!({
        "process": {
            "pid": decision.tgid,
            "tid": decision.pid,
            "name": String::from_utf8_lossy(&decision.comm),
            "user": { "uid": decision.uid.to_string() },
            "group": { "uid": decision.gid.to_string() },
        },
        "user": { "uid": decision.uid.to_string() },
    })
}

/// Formats a path as an OCSF file object: `path`, `name` (the part after
/// the last `/`) and `type_id` 0 (Unknown), since the kernel reports no
/// file type.
fn file(path: String) -> Value {
    let name = path.rsplit('/').next().unwrap_or_default().to_owned();
    json!({ "path": path, "name": name, "type_id": 0, "type": "Unknown" })
}
