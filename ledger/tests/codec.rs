//! Canonical encoding: round trips, layout, hash and strict decoding.

mod common;

use lupid_ledger::{DecodeError, Hook, Kind, Reason, Record, RecordBody, Verdict, codec, leaf_hash};
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
fn decode_rejects_version_3() {
    let mut bytes = record(common::agent_exit()).encode().unwrap();
    bytes[0] = 3;
    assert_eq!(Record::decode(&bytes), Err(DecodeError::UnsupportedVersion(3)));
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
    assert_eq!(Hook::from_code(15), None);
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
