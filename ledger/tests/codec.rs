//! Canonical encoding: round trips, layout, hash and strict decoding.

mod common;

use lupid_ledger::{DecodeError, Reason, Record, RecordBody, codec, leaf_hash};
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
fn decode_rejects_version_2() {
    let mut bytes = record(common::agent_exit()).encode().unwrap();
    bytes[0] = 2;
    assert_eq!(Record::decode(&bytes), Err(DecodeError::UnsupportedVersion(2)));
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
