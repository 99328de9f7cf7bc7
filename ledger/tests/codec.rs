//! Canonical encoding: round trips, layout, hash and strict decoding.

mod common;

use lupid_ledger::{
    Decision, DecodeError, Hook, Kind, Object, Reason, Record, RecordBody, Verdict, Via, codec, leaf_hash,
};
use sha2::{Digest, Sha256};

fn record(body: RecordBody) -> Record {
    Record { seq: 0x0102_0304_0506_0708, time_ns: 1_700_000_000_123_456_789, prev_hash: [0x5a; 32], body }
}

#[test]
fn roundtrip_every_kind() {
    for body in common::every_kind() {
        let original = record(body);
        let bytes = original.encode().unwrap();
        assert_eq!(Record::decode(&bytes).unwrap(), original);
    }
}

#[test]
fn roundtrip_daemon_gap() {
    let original = record(RecordBody::DaemonGap(lupid_ledger::DaemonGap {
        from_ns: 1_700_000_000_000_000_000,
        to_ns: 1_700_000_009_000_000_000,
        first_kernel_seq: 120,
        next_kernel_seq: 4_215,
        kernel_drop_counter: 3,
        programs: "kept".into(),
    }));
    let bytes = original.encode().unwrap();
    assert_eq!(bytes[17], 13, "daemon_gap has kind code 13");
    assert_eq!(Record::decode(&bytes).unwrap(), original);
}

#[test]
fn roundtrip_hostile_bytes() {
    let original = record(common::open_decision());
    let decoded = Record::decode(&original.encode().unwrap()).unwrap();
    let RecordBody::Decision(decision) = decoded.body else {
        panic!("decoded kind changed: {decoded:?}");
    };
    assert_eq!(decision.comm, b"cat\0\xff\n");
}

#[test]
fn header_layout() {
    let bytes = record(common::daemon_stop()).encode().unwrap();
    assert_eq!(bytes[0], codec::FORMAT_VERSION);
    assert_eq!(bytes[1..9], 0x0102_0304_0506_0708_u64.to_be_bytes());
    assert_eq!(bytes[9..17], 1_700_000_000_123_456_789_u64.to_be_bytes());
    assert_eq!(bytes[17], 2, "daemon_stop kind code");
    assert_eq!(bytes[18..50], [0x5a; 32]);
    assert_eq!(bytes[50..54], 7_u32.to_be_bytes(), "reason length");
    assert_eq!(&bytes[54..], b"SIGTERM");
}

#[test]
fn hash_is_rfc6962_leaf() {
    let original = record(common::identity());
    let bytes = original.encode().unwrap();
    let mut hasher = Sha256::new();
    hasher.update([0]);
    hasher.update(&bytes);
    let expected: [u8; 32] = hasher.finalize().into();
    assert_eq!(leaf_hash(&bytes), expected);
    assert_eq!(original.hash().unwrap(), expected);
}

#[test]
fn encoding_is_deterministic() {
    let first = record(common::identity()).encode().unwrap();
    let second = record(common::identity()).encode().unwrap();
    assert_eq!(first, second);
}

#[test]
fn decode_rejects_every_prefix() {
    for body in common::every_kind() {
        let bytes = record(body).encode().unwrap();
        for len in 0..bytes.len() {
            let result = Record::decode(&bytes[..len]);
            assert!(matches!(result, Err(DecodeError::Truncated { .. })), "prefix of {len} bytes: {result:?}");
        }
    }
}

#[test]
fn decode_rejects_trailing_bytes() {
    let mut bytes = record(common::agent_exit()).encode().unwrap();
    bytes.push(0);
    assert_eq!(Record::decode(&bytes), Err(DecodeError::TrailingBytes { count: 1 }));
}

#[test]
fn decode_rejects_version_7() {
    let mut bytes = record(common::agent_exit()).encode().unwrap();
    bytes[0] = 7;
    let error = Record::decode(&bytes).unwrap_err();
    assert_eq!(error, DecodeError::UnsupportedVersion(7));
    assert_eq!(error.to_string(), "unsupported format version 7 (this build reads versions 1 to 6)");
}

#[test]
fn decode_rejects_version_0() {
    let mut bytes = record(common::agent_exit()).encode().unwrap();
    bytes[0] = 0;
    assert_eq!(Record::decode(&bytes), Err(DecodeError::UnsupportedVersion(0)));
}

#[test]
fn version_2_other_kind_rejected() {
    for body in [common::every_kind(), common::lease_kinds()].concat() {
        let kind = body.kind();
        if kind == Kind::Decision {
            continue;
        }
        let mut bytes = record(body).encode().unwrap();
        assert_eq!(bytes[0], codec::FORMAT_VERSION);
        bytes[0] = codec::LEASE_FORMAT_VERSION;
        let expected = DecodeError::NonCanonicalVersion { kind: kind.name(), version: 2, canonical: 1 };
        assert_eq!(Record::decode(&bytes), Err(expected));
    }
}

#[test]
fn versions_3_to_6_other_kind_rejected() {
    let versions = [
        codec::PROTOCOL_VIA_FORMAT_VERSION,
        codec::TASK_FORMAT_VERSION,
        codec::REQUESTED_NAME_FORMAT_VERSION,
        codec::PATH_PAIR_FORMAT_VERSION,
    ];
    for version in versions {
        for body in [common::every_kind(), common::lease_kinds()].concat() {
            let kind = body.kind();
            if kind == Kind::Decision {
                continue;
            }
            let mut bytes = record(body).encode().unwrap();
            bytes[0] = version;
            let expected = DecodeError::NonCanonicalVersion { kind: kind.name(), version, canonical: 1 };
            assert_eq!(Record::decode(&bytes), Err(expected), "version {version}");
        }
    }
}

#[test]
fn version_2_decision_needs_lease_id() {
    let mut bytes = record(common::open_decision()).encode().unwrap();
    bytes[0] = codec::LEASE_FORMAT_VERSION;
    let result = Record::decode(&bytes);
    assert!(matches!(result, Err(DecodeError::Truncated { field: "lease_id", .. })), "{result:?}");
}

#[test]
fn decode_rejects_unknown_kind() {
    let mut bytes = record(common::agent_exit()).encode().unwrap();
    bytes[17] = 0xee;
    assert_eq!(Record::decode(&bytes), Err(DecodeError::UnknownKind(0xee)));
}

#[test]
fn decode_rejects_invalid_flag() {
    let mut bytes = record(common::open_decision()).encode().unwrap();
    *bytes.last_mut().unwrap() = 2;
    assert_eq!(Record::decode(&bytes), Err(DecodeError::InvalidFlag { field: "path_truncated", value: 2 }));
}

#[test]
fn decode_rejects_non_utf8_string() {
    let mut bytes = record(common::daemon_stop()).encode().unwrap();
    bytes[54] = 0xff;
    assert_eq!(Record::decode(&bytes), Err(DecodeError::InvalidUtf8 { field: "reason" }));
}

#[test]
fn decode_rejects_huge_command_count() {
    let RecordBody::Identity(mut identity) = common::identity() else { unreachable!() };
    identity.command.clear();
    let mut bytes = record(RecordBody::Identity(identity)).encode().unwrap();
    // agent_id, agent, delegated_by, policy_sha256, policy_path precede the count.
    let count_offset = 50 + 4 + (4 + 5) + (4 + 17) + 32 + (4 + 30);
    assert_eq!(bytes[count_offset..count_offset + 4], [0; 4]);
    bytes[count_offset..count_offset + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    let result = Record::decode(&bytes);
    assert!(matches!(result, Err(DecodeError::Truncated { field: "command", .. })), "{result:?}");
}

#[test]
fn reason_other_known_code() {
    let RecordBody::Decision(mut decision) = common::open_decision() else { unreachable!() };
    decision.reason = Reason::Other(2);
    let bytes = record(RecordBody::Decision(decision)).encode().unwrap();
    let RecordBody::Decision(decoded) = Record::decode(&bytes).unwrap().body else { unreachable!() };
    assert_eq!(decoded.reason, Reason::Default);
}

#[test]
fn reason_other_unknown_code() {
    let RecordBody::Decision(mut decision) = common::open_decision() else { unreachable!() };
    decision.reason = Reason::Other(77);
    let original = record(RecordBody::Decision(decision));
    let decoded = Record::decode(&original.encode().unwrap()).unwrap();
    assert_eq!(decoded, original);
}

#[test]
fn roundtrip_lease_kinds() {
    for body in common::lease_kinds() {
        let original = record(body);
        let bytes = original.encode().unwrap();
        assert_eq!(Record::decode(&bytes).unwrap(), original);
    }
}

#[test]
fn lease_kinds_reject_every_prefix() {
    for body in common::lease_kinds() {
        let bytes = record(body).encode().unwrap();
        for len in 0..bytes.len() {
            let result = Record::decode(&bytes[..len]);
            assert!(matches!(result, Err(DecodeError::Truncated { .. })), "prefix of {len} bytes: {result:?}");
        }
    }
}

#[test]
fn kind_codes_and_names() {
    let expected = [
        (1, "daemon_start"),
        (2, "daemon_stop"),
        (3, "identity"),
        (4, "decision"),
        (5, "agent_exit"),
        (6, "events_lost"),
        (7, "checkpoint"),
        (8, "lease_granted"),
        (9, "lease_revoked"),
        (10, "lease_expired"),
        (11, "policy_loaded"),
        (12, "mode_changed"),
        (13, "daemon_gap"),
    ];
    for (code, name) in expected {
        let kind = Kind::from_code(code).unwrap();
        assert_eq!(kind as u8, code);
        assert_eq!(kind.name(), name);
    }
    assert_eq!(Kind::from_code(0), None);
    assert_eq!(Kind::from_code(14), None);
}

#[test]
fn hook_and_verdict_codes_listed() {
    for (position, hook) in (1..).zip(Hook::ALL) {
        assert_eq!(hook.code(), position, "Hook::ALL is in code order");
        assert_eq!(Hook::from_code(position), Some(hook));
    }
    assert_eq!(Hook::from_code(0), None);
    assert_eq!(Hook::from_code(23), None);
    for verdict in Verdict::ALL {
        assert_eq!(Verdict::from_code(verdict.code()), Some(verdict));
    }
}

#[test]
fn lease_kind_codes_in_header() {
    let expected = [8, 4, 9, 10, 11, 12];
    for (body, code) in common::lease_kinds().into_iter().zip(expected) {
        assert_eq!(record(body).encode().unwrap()[17], code);
    }
}

#[test]
fn reason_lease_codes() {
    let expected = [
        (7, Reason::Audit, "audit"),
        (8, Reason::Lease, "lease"),
        (9, Reason::LeaseRequired, "lease_required"),
        (10, Reason::Monitor, "monitor"),
        (11, Reason::HashFailed, "hash_failed"),
    ];
    for (code, reason, name) in expected {
        assert_eq!(Reason::from_code(code), reason);
        assert_eq!(reason.code(), code);
        assert_eq!(reason.name(), Some(name));
    }
}

/// Golden bytes of a lease expiry, written out by hand from the format
/// description in `codec`, so that a change of the layout fails here.
#[test]
fn lease_expired_golden_bytes() {
    let expected = [
        "01",                                                               // format version
        "0102030405060708",                                                 // seq
        "17979cfe3d85cd15",                                                 // time_ns
        "0a",                                                               // kind 10
        "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a", // prev_hash
        "00000012",                                                         // lease_id 18
        "00000005636f646572",                                               // agent "coder"
        "000000067265626f6f74",                                             // cause "reboot"
        "0000000000000000",                                                 // expired_boot_ns 0
        "0000000000000001",                                                 // uses 1
        "01",                                                               // recorded_late
    ]
    .concat();
    let original = record(common::lease_expired());
    let bytes = original.encode().unwrap();
    assert_eq!(hex::encode(&bytes), expected);
    assert_eq!(
        hex::encode(original.hash().unwrap()),
        "1b498892e0037c47fd949c96101dfd793c7553f0d31e02ddb3105534d3fe1c4d"
    );
    assert_eq!(Record::decode(&bytes).unwrap(), original);
}

#[test]
fn lease_expired_rejects_invalid_flag() {
    let mut bytes = record(common::lease_expired()).encode().unwrap();
    *bytes.last_mut().unwrap() = 2;
    assert_eq!(Record::decode(&bytes), Err(DecodeError::InvalidFlag { field: "recorded_late", value: 2 }));
}

#[test]
fn decision_without_lease_is_version_1() {
    let bytes = record(common::connect_decision()).encode().unwrap();
    assert_eq!(bytes[0], codec::FORMAT_VERSION);
    let decoded = Record::decode(&bytes).unwrap();
    let RecordBody::Decision(decision) = &decoded.body else { panic!("decoded kind changed: {decoded:?}") };
    assert_eq!(decision.lease_id, 0);
    assert_eq!(decoded.encode().unwrap(), bytes, "re-encoding changed the bytes");
}

#[test]
fn decision_with_lease_is_version_2() {
    let RecordBody::Decision(without_lease) = common::lease_decision() else { unreachable!() };
    let version_1 =
        record(RecordBody::Decision(lupid_ledger::Decision { lease_id: 0, ..without_lease })).encode().unwrap();
    let original = record(common::lease_decision());
    let bytes = original.encode().unwrap();

    assert_eq!(bytes[0], codec::LEASE_FORMAT_VERSION);
    assert_eq!(bytes[1..bytes.len() - 4], version_1[1..], "version 2 changed a version 1 field");
    assert_eq!(bytes[bytes.len() - 4..], 17_u32.to_be_bytes(), "lease_id after the last field");
    assert_eq!(Record::decode(&bytes).unwrap(), original);
}

#[test]
fn version_2_lease_id_0_rejected() {
    let mut bytes = record(common::lease_decision()).encode().unwrap();
    let len = bytes.len();
    bytes[len - 4..].copy_from_slice(&[0; 4]);
    let expected = DecodeError::NonCanonicalVersion { kind: "decision", version: 2, canonical: 1 };
    assert_eq!(Record::decode(&bytes), Err(expected));
}

#[test]
fn version_1_lease_id_is_trailing() {
    let mut bytes = record(common::lease_decision()).encode().unwrap();
    bytes[0] = codec::FORMAT_VERSION;
    assert_eq!(Record::decode(&bytes), Err(DecodeError::TrailingBytes { count: 4 }));
}

/// Canonical bytes of `common::connect_decision()` in `record()`'s header,
/// as format version 1 wrote them before version 3 existed.
const CONNECT_VERSION_1: &str = concat!(
    "01",                                                               // format version
    "0102030405060708",                                                 // seq
    "17979cfe3d85cd15",                                                 // time_ns
    "04",                                                               // kind 4, decision
    "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a", // prev_hash
    "0000000000000064",                                                 // kernel_seq 100
    "000000000d51ae15",                                                 // boot_ns
    "00000007",                                                         // agent_id 7
    "00000005636f646572",                                               // agent "coder"
    "abababababababababababababababababababababababababababababababab", // policy_sha256
    "00007a6a",                                                         // pid 31338
    "00007a69",                                                         // tgid 31337
    "000003e8",                                                         // uid 1000
    "000003e8",                                                         // gid 1000
    "0000123456789abc",                                                 // cgroup_id
    "000000046375726c",                                                 // comm "curl"
    "03",                                                               // hook connect
    "01",                                                               // verdict allow
    "00000002",                                                         // reason default
    "00000000",                                                         // rule_id 0
    "00000000",                                                         // rule ""
    "00000000",                                                         // access
    "02",                                                               // object tag socket
    "0002",                                                             // family AF_INET
    "00000000000000000000ffffcb007107",                                 // addr ::ffff:203.0.113.7
    "01bb",                                                             // port 443
);

/// Canonical bytes of `common::lease_decision()` in `record()`'s header, as
/// format version 2 wrote them before version 3 existed.
const LEASE_VERSION_2: &str = concat!(
    "02",                                                               // format version
    "0102030405060708",                                                 // seq
    "17979cfe3d85cd15",                                                 // time_ns
    "04",                                                               // kind 4, decision
    "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a", // prev_hash
    "0000000000000064",                                                 // kernel_seq 100
    "000000000d51ae15",                                                 // boot_ns
    "00000007",                                                         // agent_id 7
    "00000005636f646572",                                               // agent "coder"
    "abababababababababababababababababababababababababababababababab", // policy_sha256
    "00007a6a",                                                         // pid 31338
    "00007a69",                                                         // tgid 31337
    "000003e8",                                                         // uid 1000
    "000003e8",                                                         // gid 1000
    "0000123456789abc",                                                 // cgroup_id
    "000000046375726c",                                                 // comm "curl"
    "03",                                                               // hook connect
    "01",                                                               // verdict allow
    "00000008",                                                         // reason lease
    "00000005",                                                         // rule_id 5
    "0000000f6e65742d6e656564732d6c65617365",                           // rule "net-needs-lease"
    "00000000",                                                         // access
    "02",                                                               // object tag socket
    "0002",                                                             // family AF_INET
    "00000000000000000000ffffcb007107",                                 // addr ::ffff:203.0.113.7
    "01bb",                                                             // port 443
    "00000011",                                                         // lease_id 17
);

/// Decodes golden bytes and checks that they decode to `expected`,
/// re-encode unchanged and hash to `hash`.
fn assert_golden(hex_bytes: &str, expected: &Record, hash: &str) {
    let bytes = hex::decode(hex_bytes).unwrap();
    let decoded = Record::decode(&bytes).unwrap();
    assert_eq!(&decoded, expected);
    assert_eq!(hex::encode(expected.encode().unwrap()), hex_bytes, "encoding changed");
    assert_eq!(hex::encode(leaf_hash(&bytes)), hash);
}

#[test]
fn decision_version_1_golden_bytes() {
    let expected = record(common::connect_decision());
    assert_golden(CONNECT_VERSION_1, &expected, "f360cbb68d20cb1ca7acc9bd6db73052dbaba5c2db8116bce38eddef53cf4630");
    let RecordBody::Decision(decision) = expected.body else { unreachable!() };
    assert_eq!(decision.lease_id, 0);
    assert_eq!(decision.protocol, 0);
    assert_eq!(decision.via, Via::Syscall);
}

#[test]
fn decision_version_2_golden_bytes() {
    let expected = record(common::lease_decision());
    assert_golden(LEASE_VERSION_2, &expected, "cbc10b87f38834b2e86a9d2e70de46172fe6ef4d04b0d5b7b452190bacea95a4");
    let RecordBody::Decision(decision) = expected.body else { unreachable!() };
    assert_eq!(decision.lease_id, 17);
    assert_eq!(decision.protocol, 0);
    assert_eq!(decision.via, Via::Syscall);
}

/// Returns `common::connect_decision()` with these version 2 and 3 fields.
fn connect_with(lease_id: u32, protocol: u16, via: Via) -> Record {
    let RecordBody::Decision(template) = common::connect_decision() else { unreachable!() };
    record(RecordBody::Decision(Decision { lease_id, protocol, via, ..template }))
}

#[test]
fn decision_version_3_golden_bytes() {
    let expected_hex = [
        "03",                    // format version
        &CONNECT_VERSION_1[2..], // the version 1 header and body
        "00000011",              // lease_id 17
        "0006",                  // protocol 6, TCP
        "01",                    // via io_uring
    ]
    .concat();
    let original = connect_with(17, 6, Via::IoUring);
    assert_golden(&expected_hex, &original, "3e35c579a7cc6d3199b0d4d1b3bf4ee1cb790e9f9a7e2d1d0ded20f54722c660");
}

#[test]
fn version_3_roundtrip_cases() {
    let cases = [
        ("protocol only", 0, 17, Via::Syscall),
        ("via only", 0, 0, Via::IoUring),
        ("protocol and via", 0, 58, Via::IoUring),
        ("protocol with lease", 17, 6, Via::Syscall),
        ("via with lease", 17, 0, Via::IoUring),
        ("all three", 17, 1, Via::IoUring),
        ("largest protocol", 0, u16::MAX, Via::Syscall),
    ];
    for (name, lease_id, protocol, via) in cases {
        let original = connect_with(lease_id, protocol, via);
        let bytes = original.encode().unwrap();
        assert_eq!(bytes[0], codec::PROTOCOL_VIA_FORMAT_VERSION, "{name}");

        let len = bytes.len();
        assert_eq!(bytes[len - 7..len - 3], lease_id.to_be_bytes(), "{name}: lease_id, 0 included");
        assert_eq!(bytes[len - 3..len - 1], protocol.to_be_bytes(), "{name}: protocol");
        assert_eq!(bytes[len - 1], via.code(), "{name}: via");
        let version_1 = connect_with(0, 0, Via::Syscall).encode().unwrap();
        assert_eq!(bytes[1..len - 7], version_1[1..], "{name}: version 3 changed a version 1 field");

        assert_eq!(Record::decode(&bytes).unwrap(), original, "{name}");
    }
}

/// Checks that every proper prefix of the encoding of `body` is rejected as
/// truncated.
fn assert_every_prefix_truncated(body: RecordBody) {
    let bytes = record(body).encode().unwrap();
    for len in 0..bytes.len() {
        let result = Record::decode(&bytes[..len]);
        assert!(matches!(result, Err(DecodeError::Truncated { .. })), "prefix of {len} bytes: {result:?}");
    }
}

#[test]
fn version_3_rejects_every_prefix() {
    assert_every_prefix_truncated(common::io_uring_send_decision());
}

#[test]
fn version_3_fitting_version_1_rejected() {
    let mut bytes = connect_with(0, 17, Via::IoUring).encode().unwrap();
    let len = bytes.len();
    bytes[len - 3..].copy_from_slice(&[0, 0, 0]);
    let expected = DecodeError::NonCanonicalVersion { kind: "decision", version: 3, canonical: 1 };
    assert_eq!(Record::decode(&bytes), Err(expected));
}

#[test]
fn version_3_fitting_version_2_rejected() {
    let mut bytes = connect_with(17, 17, Via::Syscall).encode().unwrap();
    let len = bytes.len();
    bytes[len - 3..].copy_from_slice(&[0, 0, 0]);
    let expected = DecodeError::NonCanonicalVersion { kind: "decision", version: 3, canonical: 2 };
    assert_eq!(Record::decode(&bytes), Err(expected));
}

#[test]
fn version_2_with_protocol_rejected() {
    // Version 2 has no room for `protocol` and `via`, so they are 3 bytes
    // too many.
    let mut bytes = connect_with(17, 6, Via::Syscall).encode().unwrap();
    bytes[0] = codec::LEASE_FORMAT_VERSION;
    assert_eq!(Record::decode(&bytes), Err(DecodeError::TrailingBytes { count: 3 }));
}

#[test]
fn version_1_with_version_3_fields_rejected() {
    let mut bytes = connect_with(0, 6, Via::IoUring).encode().unwrap();
    bytes[0] = codec::FORMAT_VERSION;
    assert_eq!(Record::decode(&bytes), Err(DecodeError::TrailingBytes { count: 7 }));
}

#[test]
fn version_3_rejects_unknown_via() {
    for code in [2, 0xff] {
        let mut bytes = record(common::io_uring_send_decision()).encode().unwrap();
        *bytes.last_mut().unwrap() = code;
        let error = Record::decode(&bytes).unwrap_err();
        assert_eq!(error, DecodeError::UnknownVia(code));
        assert_eq!(error.to_string(), format!("unknown via code {code} (expected 0 syscall or 1 io_uring)"));
    }
}

#[test]
fn via_codes_and_names() {
    assert_eq!(Via::default(), Via::Syscall);
    let expected = [(0, Via::Syscall, "syscall"), (1, Via::IoUring, "io_uring")];
    for (code, via, name) in expected {
        assert_eq!(via.code(), code);
        assert_eq!(Via::from_code(code), Some(via));
        assert_eq!(via.name(), name);
    }
    assert_eq!(Via::ALL.map(Via::code), [0, 1], "Via::ALL is in code order");
    assert_eq!(Via::from_code(2), None);
}

/// Canonical bytes of `common::kill_decision()` in `record()`'s header,
/// written out by hand from the format description in `codec`.
const KILL_VERSION_4: &str = concat!(
    "04",                                                               // format version
    "0102030405060708",                                                 // seq
    "17979cfe3d85cd15",                                                 // time_ns
    "04",                                                               // kind 4, decision
    "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a", // prev_hash
    "0000000000000066",                                                 // kernel_seq 102
    "000000000d51ae15",                                                 // boot_ns
    "00000007",                                                         // agent_id 7
    "00000005636f646572",                                               // agent "coder"
    "abababababababababababababababababababababababababababababababab", // policy_sha256
    "00007a6a",                                                         // pid 31338
    "00007a69",                                                         // tgid 31337
    "000003e8",                                                         // uid 1000
    "000003e8",                                                         // gid 1000
    "0000123456789abc",                                                 // cgroup_id
    "000000027368",                                                     // comm "sh"
    "0a",                                                               // hook kill
    "02",                                                               // verdict deny
    "0000000c",                                                         // reason protected
    "00000000",                                                         // rule_id 0
    "00000000",                                                         // rule ""
    "00000000",                                                         // access
    "03",                                                               // object tag task
    "0000032c",                                                         // target pid 812
    "0000000b6c757069642d6167656e74",                                   // target comm "lupid-agent"
    "00000000",                                                         // lease_id 0
    "0000",                                                             // protocol 0
    "00",                                                               // via syscall
);

#[test]
fn decision_version_4_golden_bytes() {
    let expected = record(common::kill_decision());
    assert_golden(KILL_VERSION_4, &expected, "aac51ef4f24e2401dd9665c815234bcd69464e24c51de10183f77b9585da5f23");
}

/// Returns `common::kill_decision()` aimed at `pid` and `comm`, with these
/// version 2 and 3 fields.
fn kill_with(pid: u32, comm: &[u8], lease_id: u32, protocol: u16, via: Via) -> Record {
    let RecordBody::Decision(template) = common::kill_decision() else { unreachable!() };
    let object = Object::Task { pid, comm: comm.to_vec() };
    record(RecordBody::Decision(Decision { object, lease_id, protocol, via, ..template }))
}

/// Name, target pid, target comm, `lease_id`, `protocol` and `via` of one
/// task decision.
type TaskCase = (&'static str, u32, &'static [u8], u32, u16, Via);

#[test]
fn task_roundtrip_cases() {
    let cases: [TaskCase; 7] = [
        ("daemon", 812, b"lupid-agent", 0, 0, Via::Syscall),
        ("pid 0", 0, b"swapper/0", 0, 0, Via::Syscall),
        ("largest pid", u32::MAX, b"x", 0, 0, Via::Syscall),
        ("empty comm", 812, b"", 0, 0, Via::Syscall),
        ("hostile comm", 812, common::HOSTILE, 0, 0, Via::Syscall),
        ("15-byte comm", 812, b"abcdefghijklmno", 0, 0, Via::Syscall),
        ("with version 2 and 3 fields", 812, b"lupid-agent", 17, 6, Via::IoUring),
    ];
    for (name, pid, comm, lease_id, protocol, via) in cases {
        let original = kill_with(pid, comm, lease_id, protocol, via);
        let bytes = original.encode().unwrap();
        assert_eq!(bytes[0], codec::TASK_FORMAT_VERSION, "{name}");

        // The task object ends 7 bytes before the end, where the version 3
        // fields start.
        let len = bytes.len();
        let object_start = len - 7 - (1 + 4 + 4 + comm.len());
        assert_eq!(bytes[object_start], 3, "{name}: object tag");
        assert_eq!(bytes[object_start + 1..object_start + 5], pid.to_be_bytes(), "{name}: pid");
        let comm_len = u32::try_from(comm.len()).unwrap();
        assert_eq!(bytes[object_start + 5..object_start + 9], comm_len.to_be_bytes(), "{name}: comm length");
        assert_eq!(&bytes[object_start + 9..len - 7], comm, "{name}: comm");
        assert_eq!(bytes[len - 7..len - 3], lease_id.to_be_bytes(), "{name}: lease_id, 0 included");
        assert_eq!(bytes[len - 3..len - 1], protocol.to_be_bytes(), "{name}: protocol");
        assert_eq!(bytes[len - 1], via.code(), "{name}: via");

        assert_eq!(Record::decode(&bytes).unwrap(), original, "{name}");
    }
}

#[test]
fn ptrace_task_roundtrip() {
    let RecordBody::Decision(template) = common::kill_decision() else { unreachable!() };
    let original = record(RecordBody::Decision(Decision { hook: Hook::Ptrace, ..template }));
    let bytes = original.encode().unwrap();
    assert_eq!(bytes[0], codec::TASK_FORMAT_VERSION);
    assert_eq!(Record::decode(&bytes).unwrap(), original);
}

#[test]
fn version_4_rejects_every_prefix() {
    assert_every_prefix_truncated(common::kill_decision());
}

#[test]
fn task_below_version_4_rejected() {
    for version in [codec::FORMAT_VERSION, codec::LEASE_FORMAT_VERSION, codec::PROTOCOL_VIA_FORMAT_VERSION] {
        let mut bytes = record(common::kill_decision()).encode().unwrap();
        bytes[0] = version;
        let expected = DecodeError::NonCanonicalVersion { kind: "decision", version, canonical: 4 };
        assert_eq!(Record::decode(&bytes), Err(expected), "version {version}");
    }
}

#[test]
fn task_below_version_4_fitting_layout_rejected() {
    // A version 1 record with object tag 3 and no version 2 or 3 fields is
    // the task object in the version 1 layout, which still is not canonical.
    let version_4 = record(common::kill_decision()).encode().unwrap();
    let mut bytes = version_4[..version_4.len() - 7].to_vec();
    bytes[0] = codec::FORMAT_VERSION;
    let expected = DecodeError::NonCanonicalVersion { kind: "decision", version: 1, canonical: 4 };
    assert_eq!(Record::decode(&bytes), Err(expected));
}

/// Returns the encoding of a decision without a requested name after its
/// version byte, in the version 4 layout: padded with the zero version 2
/// and 3 fields that its own version leaves out.
fn version_4_layout(decision: &Record) -> Vec<u8> {
    let encoded = decision.encode().unwrap();
    let missing: &[u8] = match encoded[0] {
        1 => &[0; 7],
        2 => &[0; 3],
        _ => &[],
    };
    [&encoded[1..], missing].concat()
}

#[test]
fn version_4_without_task_rejected() {
    let cases = [
        ("socket with version 3 fields", connect_with(17, 6, Via::IoUring), 3),
        ("socket with lease only", connect_with(17, 0, Via::Syscall), 2),
        ("socket alone", connect_with(0, 0, Via::Syscall), 1),
    ];
    for (name, original, canonical) in cases {
        let bytes = [&[codec::TASK_FORMAT_VERSION][..], &version_4_layout(&original)].concat();
        let expected = DecodeError::NonCanonicalVersion { kind: "decision", version: 4, canonical };
        assert_eq!(Record::decode(&bytes), Err(expected), "{name}");
    }
}

#[test]
fn decode_rejects_unknown_object_tag() {
    // The object tag of the version 1 connect decision precedes the family
    // (2 bytes), the address (16) and the port (2).
    let original = record(common::connect_decision()).encode().unwrap();
    let tag_offset = original.len() - (2 + 16 + 2) - 1;
    assert_eq!(original[tag_offset], 2, "socket tag");
    for tag in [0, 5, 0xff] {
        let mut bytes = original.clone();
        bytes[tag_offset] = tag;
        let error = Record::decode(&bytes).unwrap_err();
        assert_eq!(error, DecodeError::UnknownObject(tag));
        assert_eq!(error.to_string(), format!("unknown object tag {tag}"));
    }
}

/// Canonical bytes of `common::requested_open_decision()` in `record()`'s
/// header, written out by hand from the format description in `codec`.
const REQUESTED_VERSION_5: &str = concat!(
    "05",                                                               // format version
    "0102030405060708",                                                 // seq
    "17979cfe3d85cd15",                                                 // time_ns
    "04",                                                               // kind 4, decision
    "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a", // prev_hash
    "0000000000000067",                                                 // kernel_seq 103
    "000000000d51ae15",                                                 // boot_ns
    "00000007",                                                         // agent_id 7
    "00000005636f646572",                                               // agent "coder"
    "abababababababababababababababababababababababababababababababab", // policy_sha256
    "00007a6a",                                                         // pid 31338
    "00007a69",                                                         // tgid 31337
    "000003e8",                                                         // uid 1000
    "000003e8",                                                         // gid 1000
    "0000123456789abc",                                                 // cgroup_id
    "00000003636174",                                                   // comm "cat"
    "02",                                                               // hook open
    "02",                                                               // verdict deny
    "00000001",                                                         // reason rule
    "00000003",                                                         // rule_id 3
    "0000000b64656e792d736861646f77",                                   // rule "deny-shadow"
    "00000001",                                                         // access read
    "01",                                                               // object tag path
    "0000000b2f6574632f736861646f77",                                   // path "/etc/shadow"
    "00",                                                               // path_truncated
    "00000000",                                                         // lease_id 0
    "0000",                                                             // protocol 0
    "00",                                                               // via syscall
    "000000062f746d702f78",                                             // requested "/tmp/x"
    "00",                                                               // requested_truncated
);

#[test]
fn decision_version_5_golden_bytes() {
    let expected = record(common::requested_open_decision());
    assert_golden(REQUESTED_VERSION_5, &expected, "548767dd2f173cd872e7d01c8f7d8a94af488308760dc003b50c7d3af453f2de");
}

/// Returns `decision` with this requested name.
fn with_requested(decision: RecordBody, requested: &[u8], requested_truncated: bool) -> Record {
    let RecordBody::Decision(template) = decision else { unreachable!() };
    record(RecordBody::Decision(Decision { requested: requested.to_vec(), requested_truncated, ..template }))
}

/// Name, decision, requested name and `requested_truncated` of one
/// version 5 case.
type RequestedCase = (&'static str, RecordBody, Vec<u8>, bool);

#[test]
fn version_5_roundtrip_cases() {
    let cases: [RequestedCase; 8] = [
        ("open through a link", common::open_decision(), b"/tmp/x".to_vec(), false),
        ("relative name", common::open_decision(), b"../../.ssh/id_ed25519".to_vec(), false),
        ("hostile name", common::open_decision(), common::HOSTILE.to_vec(), false),
        ("255-byte name, truncated", common::open_decision(), vec![b'a'; lupid_common::REQUEST_MAX - 1], true),
        ("truncated flag alone", common::open_decision(), Vec::new(), true),
        ("with lease, protocol and io_uring", common::io_uring_send_decision(), b"/tmp/x".to_vec(), false),
        ("with lease", common::lease_decision(), b"/tmp/x".to_vec(), false),
        ("task object", common::kill_decision(), b"/proc/812/mem".to_vec(), false),
    ];
    for (name, decision, requested, requested_truncated) in cases {
        let original = with_requested(decision.clone(), &requested, requested_truncated);
        let bytes = original.encode().unwrap();
        assert_eq!(bytes[0], codec::REQUESTED_NAME_FORMAT_VERSION, "{name}");

        // The requested name is the last field but one, after the version
        // 4 layout.
        let len = bytes.len();
        let suffix = 4 + requested.len() + 1;
        let requested_len = u32::try_from(requested.len()).unwrap();
        assert_eq!(bytes[len - suffix..len - suffix + 4], requested_len.to_be_bytes(), "{name}: length");
        assert_eq!(bytes[len - suffix + 4..len - 1], requested, "{name}: requested");
        assert_eq!(bytes[len - 1], u8::from(requested_truncated), "{name}: requested_truncated");

        // Without the requested name, the same bytes are the version 4
        // layout: the decision's own encoding with its missing version 2
        // and 3 fields as zeros.
        assert_eq!(bytes[1..len - suffix], version_4_layout(&record(decision)), "{name}: version 4 layout");

        assert_eq!(Record::decode(&bytes).unwrap(), original, "{name}");
    }
}

#[test]
fn version_5_rejects_every_prefix() {
    assert_every_prefix_truncated(common::requested_open_decision());
}

#[test]
fn version_5_without_requested_name_rejected() {
    let cases = [
        ("task object", common::kill_decision(), 4),
        ("io_uring send", common::io_uring_send_decision(), 3),
        ("lease", common::lease_decision(), 2),
        ("open", common::open_decision(), 1),
    ];
    for (name, decision, canonical) in cases {
        // The version 5 layout with an empty requested name and the flag
        // clear: the version 4 layout, then a zero length and a zero flag.
        let decision = record(decision);
        assert_eq!(decision.encode().unwrap()[0], canonical, "{name}");
        let bytes = [&[codec::REQUESTED_NAME_FORMAT_VERSION][..], &version_4_layout(&decision), &[0; 5]].concat();
        let expected = DecodeError::NonCanonicalVersion { kind: "decision", version: 5, canonical };
        assert_eq!(Record::decode(&bytes), Err(expected), "{name}");
    }
}

#[test]
fn requested_name_below_version_5_rejected() {
    // Each decision fits `version` apart from its requested name. Versions
    // 1 to 4 end before that name, so its length, bytes and flag are
    // trailing bytes there, after the version 2 and 3 fields the version
    // lacks.
    let cases = [
        (common::open_decision(), b"/tmp/x".as_slice(), codec::FORMAT_VERSION, 7),
        (common::lease_decision(), b"/tmp/x".as_slice(), codec::LEASE_FORMAT_VERSION, 3),
        (common::io_uring_send_decision(), b"/tmp/x".as_slice(), codec::PROTOCOL_VIA_FORMAT_VERSION, 0),
        (common::kill_decision(), b"/proc/812/mem".as_slice(), codec::TASK_FORMAT_VERSION, 0),
    ];
    for (decision, requested, version, missing) in cases {
        let mut bytes = with_requested(decision, requested, false).encode().unwrap();
        bytes[0] = version;
        let expected = DecodeError::TrailingBytes { count: missing + 4 + requested.len() + 1 };
        assert_eq!(Record::decode(&bytes), Err(expected), "version {version}");
    }
}

#[test]
fn version_5_rejects_invalid_flag() {
    let mut bytes = record(common::requested_open_decision()).encode().unwrap();
    *bytes.last_mut().unwrap() = 2;
    let expected = DecodeError::InvalidFlag { field: "requested_truncated", value: 2 };
    assert_eq!(Record::decode(&bytes), Err(expected));
}

#[test]
fn version_5_rejects_unknown_object_tag() {
    let bytes = record(common::requested_open_decision()).encode().unwrap();
    // The path object (tag, 4-byte length, 11 bytes, flag) precedes the
    // version 3 fields (7 bytes) and the requested name (4 + 6 + 1 bytes).
    let tag_offset = bytes.len() - (4 + 6 + 1) - 7 - (1 + 4 + 11) - 1;
    assert_eq!(bytes[tag_offset], 1, "path tag");
    let mut changed = bytes.clone();
    changed[tag_offset] = 5;
    assert_eq!(Record::decode(&changed), Err(DecodeError::UnknownObject(5)));
}

#[test]
fn decisions_without_requested_name_keep_version() {
    // Adding the requested name did not move any other decision to
    // version 5.
    let cases = [
        (common::open_decision(), codec::FORMAT_VERSION),
        (common::connect_decision(), codec::FORMAT_VERSION),
        (common::lease_decision(), codec::LEASE_FORMAT_VERSION),
        (common::io_uring_send_decision(), codec::PROTOCOL_VIA_FORMAT_VERSION),
        (common::kill_decision(), codec::TASK_FORMAT_VERSION),
    ];
    for (decision, version) in cases {
        let RecordBody::Decision(fields) = &decision else { unreachable!() };
        assert!(!fields.has_requested_name(), "{fields:?}");
        assert_eq!(record(decision).encode().unwrap()[0], version);
    }
}

/// Canonical bytes of `common::rename_decision()` in `record()`'s header,
/// written out by hand from the format description in `codec`.
const RENAME_VERSION_6: &str = concat!(
    "06",                                                               // format version
    "0102030405060708",                                                 // seq
    "17979cfe3d85cd15",                                                 // time_ns
    "04",                                                               // kind 4, decision
    "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a", // prev_hash
    "0000000000000068",                                                 // kernel_seq 104
    "000000000d51ae15",                                                 // boot_ns
    "00000007",                                                         // agent_id 7
    "00000005636f646572",                                               // agent "coder"
    "abababababababababababababababababababababababababababababababab", // policy_sha256
    "00007a6a",                                                         // pid 31338
    "00007a69",                                                         // tgid 31337
    "000003e8",                                                         // uid 1000
    "000003e8",                                                         // gid 1000
    "0000123456789abc",                                                 // cgroup_id
    "000000026d76",                                                     // comm "mv"
    "11",                                                               // hook rename (17)
    "02",                                                               // verdict deny
    "00000001",                                                         // reason rule
    "00000004",                                                         // rule_id 4
    "0000000d6b6565702d7373682d6b657973",                               // rule "keep-ssh-keys"
    "00000002",                                                         // access write
    "04",                                                               // object tag path pair
    "0000001b2f686f6d652f616c6963652f2e7373682f69645f65643235353139",   // old "/home/alice/.ssh/id_ed25519"
    "000000062f746d702f6b",                                             // new "/tmp/k"
    "00",                                                               // path pair truncated
    "00000000",                                                         // lease_id 0
    "0000",                                                             // protocol 0
    "00",                                                               // via syscall
    "00000000",                                                         // requested ""
    "00",                                                               // requested_truncated
);

#[test]
fn decision_version_6_golden_bytes() {
    let expected = record(common::rename_decision());
    assert_golden(RENAME_VERSION_6, &expected, "019dedfe11210144bbb9537fa8875ac430dba93fd3be603be0b25c7880296dd9");
}

/// Returns the encoding of a decision without a path pair after its
/// version byte, in the version 5 layout: padded with the zero version 2
/// and 3 fields and the empty requested name that its own version leaves
/// out.
fn version_5_layout(decision: &Record) -> Vec<u8> {
    let encoded = decision.encode().unwrap();
    let missing: &[u8] = match encoded[0] {
        1 => &[0; 7 + 5],
        2 => &[0; 3 + 5],
        3 | 4 => &[0; 5],
        _ => &[],
    };
    [&encoded[1..], missing].concat()
}

/// Returns `decision` with a path pair object of these names.
fn with_path_pair(decision: RecordBody, old: &[u8], new: &[u8], truncated: bool) -> Record {
    let RecordBody::Decision(template) = decision else { unreachable!() };
    let object = Object::PathPair { old: old.to_vec(), new: new.to_vec(), truncated };
    record(RecordBody::Decision(Decision { object, ..template }))
}

/// Name, decision, old name, new name and `truncated` of one version 6
/// case.
type PathPairCase = (&'static str, RecordBody, Vec<u8>, Vec<u8>, bool);

#[test]
fn version_6_roundtrip_cases() {
    let long_name = [b"/".as_slice(), &[b'd'; lupid_common::PATH_MAX - 2]].concat();
    let cases: [PathPairCase; 11] = [
        ("rename", common::rename_decision(), b"/a".to_vec(), b"/b".to_vec(), false),
        ("link", common::link_decision(), b"/usr/bin/git".to_vec(), b"/tmp/g".to_vec(), false),
        ("non-UTF-8 old", common::rename_decision(), b"/tmp/\xff\xfe".to_vec(), b"/tmp/b".to_vec(), false),
        ("non-UTF-8 new", common::rename_decision(), b"/tmp/a".to_vec(), b"/tmp/\xc3\x28".to_vec(), false),
        ("hostile names", common::rename_decision(), common::HOSTILE.to_vec(), common::HOSTILE.to_vec(), false),
        ("name with arrow", common::rename_decision(), b"/a -> /b".to_vec(), b"/c".to_vec(), false),
        ("old truncated", common::rename_decision(), Vec::new(), b"/tmp/b".to_vec(), true),
        ("new truncated", common::link_decision(), b"/tmp/a".to_vec(), Vec::new(), true),
        ("both empty", common::rename_decision(), Vec::new(), Vec::new(), false),
        ("longest names", common::rename_decision(), long_name.clone(), long_name, false),
        ("with requested name", common::requested_open_decision(), b"/etc/shadow".to_vec(), b"/x".to_vec(), false),
    ];
    for (name, decision, old, new, truncated) in cases {
        let original = with_path_pair(decision, &old, &new, truncated);
        let bytes = original.encode().unwrap();
        assert_eq!(bytes[0], codec::PATH_PAIR_FORMAT_VERSION, "{name}");

        // The path pair ends before the version 3 fields (7 bytes) and the
        // requested name (4 + its length + 1 bytes).
        let RecordBody::Decision(decision) = &original.body else { unreachable!() };
        let len = bytes.len();
        let object_end = len - 7 - (4 + decision.requested.len() + 1);
        let object_start = object_end - (1 + 4 + old.len() + 4 + new.len() + 1);
        let old_len = u32::try_from(old.len()).unwrap();
        let new_len = u32::try_from(new.len()).unwrap();
        let new_start = object_start + 5 + old.len();
        assert_eq!(bytes[object_start], 4, "{name}: object tag");
        assert_eq!(bytes[object_start + 1..object_start + 5], old_len.to_be_bytes(), "{name}: old length");
        assert_eq!(&bytes[object_start + 5..new_start], old.as_slice(), "{name}: old");
        assert_eq!(bytes[new_start..new_start + 4], new_len.to_be_bytes(), "{name}: new length");
        assert_eq!(&bytes[new_start + 4..object_end - 1], new.as_slice(), "{name}: new");
        assert_eq!(bytes[object_end - 1], u8::from(truncated), "{name}: truncated");

        assert_eq!(Record::decode(&bytes).unwrap(), original, "{name}");
    }
}

#[test]
fn version_6_keeps_version_5_fields() {
    let RecordBody::Decision(template) = common::io_uring_send_decision() else { unreachable!() };
    let decision = Decision { lease_id: 17, requested: b"../k".to_vec(), requested_truncated: true, ..template };
    let original = with_path_pair(RecordBody::Decision(decision), b"/a", b"/b", false);
    let bytes = original.encode().unwrap();
    assert_eq!(bytes[0], codec::PATH_PAIR_FORMAT_VERSION);

    let len = bytes.len();
    let suffix = [
        &17_u32.to_be_bytes()[..], // lease_id 17
        &17_u16.to_be_bytes(),     // protocol 17, UDP
        &[1],                      // via io_uring
        &4_u32.to_be_bytes(),      // requested length
        b"../k",                   // requested
        &[1],                      // requested_truncated
    ]
    .concat();
    assert_eq!(bytes[len - suffix.len()..], suffix);
    assert_eq!(Record::decode(&bytes).unwrap(), original);
}

#[test]
fn version_6_rejects_every_prefix() {
    assert_every_prefix_truncated(common::rename_decision());
    assert_every_prefix_truncated(common::link_decision());
}

#[test]
fn version_6_without_path_pair_rejected() {
    let cases = [
        ("requested name", common::requested_open_decision(), 5),
        ("task object", common::kill_decision(), 4),
        ("io_uring send", common::io_uring_send_decision(), 3),
        ("lease", common::lease_decision(), 2),
        ("open", common::open_decision(), 1),
    ];
    for (name, decision, canonical) in cases {
        let decision = record(decision);
        assert_eq!(decision.encode().unwrap()[0], canonical, "{name}");
        let bytes = [&[codec::PATH_PAIR_FORMAT_VERSION][..], &version_5_layout(&decision)].concat();
        let expected = DecodeError::NonCanonicalVersion { kind: "decision", version: 6, canonical };
        assert_eq!(Record::decode(&bytes), Err(expected), "{name}");
    }
}

#[test]
fn path_pair_below_version_6_rejected() {
    // Each version's layout ends this many bytes before version 6 does:
    // the version 2 and 3 fields it lacks, then the requested name (an empty
    // length and a clear flag). With those bytes cut, the rest of the
    // record fits the lower version, whose content check rejects the path
    // pair.
    let cases = [
        (codec::FORMAT_VERSION, 4 + 3 + 5),
        (codec::LEASE_FORMAT_VERSION, 3 + 5),
        (codec::PROTOCOL_VIA_FORMAT_VERSION, 5),
        (codec::TASK_FORMAT_VERSION, 5),
        (codec::REQUESTED_NAME_FORMAT_VERSION, 0),
    ];
    let version_6 = record(common::rename_decision()).encode().unwrap();
    assert_eq!(version_6[version_6.len() - 12..], [0; 12], "zero version 2, 3 and 5 fields");
    for (version, cut) in cases {
        let mut bytes = version_6[..version_6.len() - cut].to_vec();
        bytes[0] = version;
        let expected = DecodeError::NonCanonicalVersion { kind: "decision", version, canonical: 6 };
        assert_eq!(Record::decode(&bytes), Err(expected), "version {version}");
    }
}

#[test]
fn path_pair_in_version_5_bytes_rejected() {
    // The version 6 bytes with only the version byte changed: versions 5
    // and 6 share their layout, so only the version check can reject them.
    let mut bytes = with_path_pair(common::requested_open_decision(), b"/a", b"/b", false).encode().unwrap();
    bytes[0] = codec::REQUESTED_NAME_FORMAT_VERSION;
    let expected = DecodeError::NonCanonicalVersion { kind: "decision", version: 5, canonical: 6 };
    assert_eq!(Record::decode(&bytes), Err(expected));
}

#[test]
fn version_6_rejects_invalid_flag() {
    let mut bytes = record(common::rename_decision()).encode().unwrap();
    // The flag precedes the version 3 fields (7 bytes) and the empty
    // requested name (5 bytes).
    let flag_offset = bytes.len() - 7 - 5 - 1;
    assert_eq!(bytes[flag_offset], 0);
    bytes[flag_offset] = 2;
    let expected = DecodeError::InvalidFlag { field: "path_pair_truncated", value: 2 };
    assert_eq!(Record::decode(&bytes), Err(expected));
}

#[test]
fn version_6_rejects_unknown_object_tag() {
    let bytes = record(common::rename_decision()).encode().unwrap();
    // The path pair (tag, 4 + 27 bytes old, 4 + 6 bytes new, flag) precedes
    // the version 3 fields (7 bytes) and the empty requested name (5).
    let tag_offset = bytes.len() - 5 - 7 - (1 + 4 + 27 + 4 + 6) - 1;
    assert_eq!(bytes[tag_offset], 4, "path pair tag");
    let mut changed = bytes.clone();
    changed[tag_offset] = 5;
    assert_eq!(Record::decode(&changed), Err(DecodeError::UnknownObject(5)));
}

#[test]
fn path_pair_length_past_end_rejected() {
    // A length prefix that claims more bytes than the record contains.
    let mut bytes = record(common::rename_decision()).encode().unwrap();
    let old_length_offset = bytes.len() - 5 - 7 - (1 + 4 + 27 + 4 + 6);
    assert_eq!(bytes[old_length_offset..old_length_offset + 4], 27_u32.to_be_bytes());
    bytes[old_length_offset..old_length_offset + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    let result = Record::decode(&bytes);
    assert!(matches!(result, Err(DecodeError::Truncated { field: "old_path", .. })), "{result:?}");
}

#[test]
fn decisions_without_path_pair_keep_version() {
    // Adding the path pair did not move any other decision to version 6.
    let cases = [
        (common::open_decision(), codec::FORMAT_VERSION),
        (common::connect_decision(), codec::FORMAT_VERSION),
        (common::lease_decision(), codec::LEASE_FORMAT_VERSION),
        (common::io_uring_send_decision(), codec::PROTOCOL_VIA_FORMAT_VERSION),
        (common::kill_decision(), codec::TASK_FORMAT_VERSION),
        (common::requested_open_decision(), codec::REQUESTED_NAME_FORMAT_VERSION),
    ];
    for (decision, version) in cases {
        assert_eq!(record(decision).encode().unwrap()[0], version);
    }
}
