//! `query`: each filter and their combinations, checked against a full
//! scan. Also the index entries written with their records, the rebuild of
//! missing indexes, and the CLI's output and argument errors.

mod common;

use std::{path::Path, process::Command};

use lupid_ledger::{
    Decision, Hook, Ledger, LedgerReader, Object, Record, RecordBody, Verdict, Via,
    index::{self, INDEX_CFS, INDEX_VERSION_KEY},
    query::{self, Query, object_text},
};
use tempfile::TempDir;

const AGENTS: [&str; 3] = ["coder", "reviewer", "co"];
const HOOKS: [Hook; 3] = [Hook::Exec, Hook::Open, Hook::Connect];
const BASE_NS: u64 = 1_700_000_000_000_000_000;

fn decision(agent: &str, hook: Hook, verdict: Verdict, rule_id: u32, path: &str) -> RecordBody {
    let RecordBody::Decision(template) = common::open_decision() else { unreachable!() };
    let object = match hook {
        Hook::Connect => {
            let mut addr = [0; 16];
            addr[10..].copy_from_slice(&[0xff, 0xff, 10, 0, 0, u8::try_from(rule_id % 256).unwrap()]);
            Object::Socket { family: 2, addr, port: 443 }
        }
        _ => Object::Path { path: path.as_bytes().to_vec(), truncated: false },
    };
    let rule = format!("rule-{rule_id}");
    RecordBody::Decision(Decision { agent: agent.into(), hook, verdict, rule_id, rule, object, ..template })
}

/// Appends 600 records: identities of each agent first, then decisions
/// cycling through agents, hooks, verdicts and four rules, with other
/// kinds in between. Every fifth decision came through `io_uring`. Record
/// `n` has time `BASE_NS + n * 1000`.
fn fill_mixed(dir: &Path) -> Ledger {
    let mut ledger = Ledger::open(dir).unwrap();
    let mut bodies = Vec::new();
    for agent in AGENTS {
        let RecordBody::Identity(template) = common::identity() else { unreachable!() };
        bodies.push(RecordBody::Identity(lupid_ledger::Identity {
            agent: agent.into(),
            exe_path: format!("/usr/bin/{agent}").into_bytes(),
            ..template
        }));
    }
    for n in 0_u32..597 {
        let body = if n % 50 == 49 {
            common::events_lost()
        } else {
            let index = usize::try_from(n).unwrap();
            let verdict = if n % 7 < 3 { Verdict::Deny } else { Verdict::Allow };
            let path = format!("/home/alice/file-{n}.txt");
            let body = decision(AGENTS[index % 3], HOOKS[(index / 3) % 3], verdict, n % 4, &path);
            let RecordBody::Decision(decision) = body else { unreachable!() };
            let via = if n % 5 == 0 { Via::IoUring } else { Via::Syscall };
            RecordBody::Decision(Decision { via, ..decision })
        };
        bodies.push(body);
    }
    let timed = (0..).zip(bodies).map(|(seq, body): (u64, _)| (BASE_NS + seq * 1000, body)).collect::<Vec<_>>();
    for chunk in timed.chunks(100) {
        ledger.append_batch(chunk.to_vec()).unwrap();
    }
    ledger
}

fn all_records(reader: &LedgerReader) -> Vec<Record> {
    reader.records().unwrap().map(|stored| stored.unwrap().record).collect()
}

/// Returns the sequence numbers of `query`'s results, and of the records a
/// full scan with [`Query::matches`] selects.
fn run_and_scan(reader: &LedgerReader, query: &Query) -> (Vec<u64>, Vec<u64>) {
    let found = query::run(reader, query).unwrap().into_iter().map(|stored| stored.record.seq).collect();
    let limit = query.limit.unwrap_or(usize::MAX);
    let expected =
        all_records(reader).into_iter().filter(|record| query.matches(record)).map(|record| record.seq).take(limit);
    (found, expected.collect())
}

fn queries() -> Vec<Query> {
    let mut queries = vec![Query::default()];

    for agent in AGENTS.into_iter().chain(["nobody"]) {
        queries.push(Query { agent: Some(agent.into()), ..Query::default() });
    }
    for hook in HOOKS {
        queries.push(Query { hook: Some(hook), ..Query::default() });
    }
    for verdict in [Verdict::Allow, Verdict::Deny] {
        queries.push(Query { verdict: Some(verdict), ..Query::default() });
    }
    for rule_id in 0..5 {
        queries.push(Query { rule_id: Some(rule_id), ..Query::default() });
    }
    for rule_name in ["rule-2", "rule-9"] {
        queries.push(Query { rule_name: Some(rule_name.into()), ..Query::default() });
    }
    queries.push(Query { rule_name: Some("rule-1".into()), verdict: Some(Verdict::Deny), ..Query::default() });

    queries.push(Query { object: Some("file-12".into()), ..Query::default() });
    queries.push(Query { object: Some("10.0.0.3:443".into()), ..Query::default() });
    queries.push(Query { since_ns: Some(BASE_NS + 100_000), until_ns: Some(BASE_NS + 200_000), ..Query::default() });
    queries.push(Query { since_ns: Some(BASE_NS + 590_000), ..Query::default() });
    queries.push(Query { until_ns: Some(BASE_NS + 10_000), ..Query::default() });

    queries.push(Query {
        agent: Some("coder".into()),
        hook: Some(Hook::Open),
        verdict: Some(Verdict::Deny),
        ..Query::default()
    });
    queries.push(Query {
        agent: Some("co".into()),
        rule_id: Some(2),
        verdict: Some(Verdict::Allow),
        ..Query::default()
    });
    queries.push(Query { hook: Some(Hook::Exec), rule_id: Some(1), object: Some("file-1".into()), ..Query::default() });
    queries.push(Query {
        agent: Some("reviewer".into()),
        since_ns: Some(BASE_NS + 300_000),
        until_ns: Some(BASE_NS + 400_000),
        ..Query::default()
    });

    for via in Via::ALL {
        queries.push(Query { via: Some(via), ..Query::default() });
    }
    queries.push(Query { agent: Some("coder".into()), via: Some(Via::IoUring), ..Query::default() });
    queries.push(Query { hook: Some(Hook::Connect), via: Some(Via::Syscall), limit: Some(7), ..Query::default() });
    queries.push(Query {
        since_ns: Some(BASE_NS + 100_000),
        until_ns: Some(BASE_NS + 200_000),
        via: Some(Via::IoUring),
        ..Query::default()
    });

    queries.push(Query { verdict: Some(Verdict::Deny), limit: Some(5), ..Query::default() });
    queries.push(Query { agent: Some("coder".into()), limit: Some(0), ..Query::default() });
    queries
}

#[test]
fn query_matches_full_scan() {
    let dir = TempDir::new().unwrap();
    drop(fill_mixed(dir.path()));
    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    for query in queries() {
        let (found, expected) = run_and_scan(&reader, &query);
        assert_eq!(found, expected, "{query:?}");
    }
}

#[test]
fn query_each_dimension() {
    let dir = TempDir::new().unwrap();
    drop(fill_mixed(dir.path()));
    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let run = |query: Query| query::run(&reader, &query).unwrap();

    let coder = run(Query { agent: Some("coder".into()), ..Query::default() });
    assert_eq!(coder[0].record.body.kind(), lupid_ledger::Kind::Identity, "identity comes first");
    assert!(coder.len() > 100);
    for stored in &coder[1..] {
        let RecordBody::Decision(decision) = &stored.record.body else { panic!("not a decision: {stored:?}") };
        assert_eq!(decision.agent, "coder");
    }

    let co = run(Query { agent: Some("co".into()), ..Query::default() });
    assert!(co.iter().all(|stored| !matches!(&stored.record.body, RecordBody::Decision(d) if d.agent != "co")));

    let exec = run(Query { hook: Some(Hook::Exec), ..Query::default() });
    assert!(!exec.is_empty());
    assert!(exec.iter().all(|stored| matches!(&stored.record.body, RecordBody::Decision(d) if d.hook == Hook::Exec)));

    let deny = run(Query { verdict: Some(Verdict::Deny), ..Query::default() });
    assert!(!deny.is_empty());
    assert!(deny.iter().all(|s| matches!(&s.record.body, RecordBody::Decision(d) if d.verdict == Verdict::Deny)));

    let rule = run(Query { rule_id: Some(3), ..Query::default() });
    assert!(!rule.is_empty());
    assert!(rule.iter().all(|s| matches!(&s.record.body, RecordBody::Decision(d) if d.rule_id == 3)));

    let named = run(Query { rule_name: Some("rule-3".into()), ..Query::default() });
    assert_eq!(named.len(), rule.len(), "each rule id carries one name here");
    assert!(named.iter().all(|s| matches!(&s.record.body, RecordBody::Decision(d) if d.rule == "rule-3")));

    let object = run(Query { object: Some("file-120.txt".into()), ..Query::default() });
    assert_eq!(object.len(), 1);

    let io_uring = run(Query { via: Some(Via::IoUring), ..Query::default() });
    assert!(!io_uring.is_empty());
    assert!(io_uring.iter().all(|s| matches!(&s.record.body, RecordBody::Decision(d) if d.via == Via::IoUring)));

    let window = run(Query { since_ns: Some(BASE_NS + 10_000), until_ns: Some(BASE_NS + 12_000), ..Query::default() });
    let seqs: Vec<u64> = window.iter().map(|stored| stored.record.seq).collect();
    assert_eq!(seqs, [10, 11, 12]);
}

#[test]
fn query_stops_at_limit() {
    let dir = TempDir::new().unwrap();
    drop(fill_mixed(dir.path()));
    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let found = query::run(&reader, &Query { verdict: Some(Verdict::Allow), limit: Some(3), ..Query::default() });
    assert_eq!(found.unwrap().len(), 3);
}

#[test]
fn identity_excluded_by_decision_filters() {
    let dir = TempDir::new().unwrap();
    drop(fill_mixed(dir.path()));
    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let query = Query { agent: Some("coder".into()), verdict: Some(Verdict::Deny), ..Query::default() };
    let found = query::run(&reader, &query).unwrap();
    assert!(found.iter().all(|stored| matches!(stored.record.body, RecordBody::Decision(_))));

    let query = Query { agent: Some("coder".into()), via: Some(Via::Syscall), ..Query::default() };
    let found = query::run(&reader, &query).unwrap();
    assert!(!found.is_empty());
    assert!(
        found.iter().all(|stored| matches!(stored.record.body, RecordBody::Decision(_))),
        "via excludes identities"
    );
}

/// Every decision and identity record is in its four (or two) index entries
/// as soon as its append returns, and no other record is in any.
#[test]
fn index_written_with_record() {
    let dir = TempDir::new().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    for (seq, body) in (0..).zip(common::every_kind()) {
        let appended = ledger.append(BASE_NS + seq, body.clone()).unwrap();
        let record = Record { seq: appended.seq, time_ns: BASE_NS + seq, prev_hash: [0; 32], body };
        let db = raw_read_only(dir.path());
        for (name, prefix) in index::prefixes(&record) {
            let listed = index_seqs(&db, name)
                .into_iter()
                .any(|(entry_prefix, seq)| entry_prefix == prefix && seq == record.seq);
            assert!(listed, "record {seq}: not in {name}");
        }
        let total: usize = INDEX_CFS.iter().map(|name| index_seqs(&db, name).len()).sum();
        let all_expected: usize = (0..=seq)
            .map(|earlier| {
                let body = common::every_kind()[usize::try_from(earlier).unwrap()].clone();
                let record = Record { seq: earlier, time_ns: BASE_NS + earlier, prev_hash: [0; 32], body };
                index::prefixes(&record).len()
            })
            .sum();
        assert_eq!(total, all_expected, "after record {seq}");
    }
}

/// Returns `(prefix, seq)` of every record listed in the index `name`.
fn index_seqs(db: &rocksdb::DB, name: &str) -> Vec<(Vec<u8>, u64)> {
    let mut listed = Vec::new();
    for entry in db.iterator_cf(db.cf_handle(name).unwrap(), rocksdb::IteratorMode::Start) {
        let (key, value) = entry.unwrap();
        let (prefix, _) = index::split_key(&key).unwrap();
        let seqs = index::entry_seqs(name, &key, &value).unwrap();
        listed.extend(seqs.into_iter().map(|seq| (prefix.to_vec(), seq)));
    }
    listed
}

fn raw_read_only(dir: &Path) -> rocksdb::DB {
    let options = rocksdb::Options::default();
    let names = rocksdb::DB::list_cf(&options, dir).unwrap();
    rocksdb::DB::open_cf_for_read_only(&options, dir, names, false).unwrap()
}

/// Removes every index entry and the index version, as in a ledger written
/// before the indexes existed.
fn drop_indexes(dir: &Path) {
    let mut db = common::open_raw(dir);
    for name in INDEX_CFS {
        db.drop_cf(name).unwrap();
    }
    db.delete_cf(db.cf_handle("meta").unwrap(), INDEX_VERSION_KEY).unwrap();
}

#[test]
fn missing_index_scanned_then_rebuilt() {
    let dir = TempDir::new().unwrap();
    drop(fill_mixed(dir.path()));
    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let before: Vec<_> = queries().iter().map(|query| query::run(&reader, query).unwrap()).collect();
    drop(reader);

    drop_indexes(dir.path());
    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    for (query, expected) in queries().iter().zip(&before) {
        let mut found = query::run(&reader, query).unwrap();
        let mut expected = expected.clone();
        // Without indexes every plan reads in `seq` order.
        found.sort_by_key(|stored| stored.record.seq);
        expected.sort_by_key(|stored| stored.record.seq);
        if query.limit.is_none() {
            assert_eq!(found, expected, "without indexes: {query:?}");
        }
    }
    drop(reader);

    let ledger = Ledger::open(dir.path()).unwrap();
    drop(ledger);
    let db = raw_read_only(dir.path());
    let time_entries = index_seqs(&db, "idx_time").len();
    assert_eq!(time_entries, 600 - 11, "every identity and decision is in idx_time after the rebuild");
    drop(db);

    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    for (query, expected) in queries().iter().zip(&before) {
        assert_eq!(&query::run(&reader, query).unwrap(), expected, "after the rebuild: {query:?}");
    }
}

/// Appends `count` decisions in batches of 1, 3, 7, 50 and 200 records in
/// turn, so each index value has entries of many sizes. Agent `coder` is
/// on every other record, rule 9 on every 37th, and record `n` has time
/// `BASE_NS + n * 1000`.
fn fill_uneven_batches(dir: &Path, count: u32) {
    let mut ledger = Ledger::open(dir).unwrap();
    let bodies: Vec<(u64, RecordBody)> = (0..count)
        .map(|n| {
            let index = usize::try_from(n).unwrap();
            let agent = if n % 2 == 0 { "coder" } else { AGENTS[1 + (index / 2) % 2] };
            let rule_id = if n % 37 == 0 { 9 } else { n % 4 };
            let verdict = if n % 5 == 0 { Verdict::Deny } else { Verdict::Allow };
            let body = decision(agent, HOOKS[index % 3], verdict, rule_id, &format!("/srv/file-{n}"));
            (BASE_NS + u64::from(n) * 1000, body)
        })
        .collect();
    let mut rest = bodies.as_slice();
    for size in [1, 3, 7, 50, 200].into_iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (batch, tail) = rest.split_at(size.min(rest.len()));
        ledger.append_batch(batch.to_vec()).unwrap();
        rest = tail;
    }
}

#[test]
fn intersection_seeks_across_entries() {
    let dir = TempDir::new().unwrap();
    fill_uneven_batches(dir.path(), 3000);
    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let filters = [
        Query { agent: Some("coder".into()), rule_id: Some(9), ..Query::default() },
        Query {
            agent: Some("reviewer".into()),
            verdict: Some(Verdict::Deny),
            hook: Some(Hook::Exec),
            ..Query::default()
        },
        Query { rule_id: Some(9), hook: Some(Hook::Open), ..Query::default() },
        Query { agent: Some("co".into()), rule_id: Some(9), verdict: Some(Verdict::Deny), ..Query::default() },
        Query { rule_id: Some(2), ..Query::default() },
    ];
    for filter in filters {
        for limit in [None, Some(1), Some(5), Some(40)] {
            let query = Query { limit, ..filter.clone() };
            let (found, expected) = run_and_scan(&reader, &query);
            assert!(!expected.is_empty(), "{query:?}");
            assert_eq!(found, expected, "{query:?}");
        }
    }
}

#[test]
fn time_buckets_sorted_by_time() {
    let dir = TempDir::new().unwrap();
    let bucket_ns = 1_u64 << index::TIME_BUCKET_BITS;
    let bucket_start = (BASE_NS >> index::TIME_BUCKET_BITS) * bucket_ns;
    // Records about 0.15 s apart over 6 buckets, with times that go back by
    // 50 ms twice in every three records, so `seq` order is not time order.
    let times: Vec<u64> =
        (0..40_u64).map(|n| bucket_start + 300_000_000 + n * 150_000_000 - (n % 3) * 200_000_000).collect();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    for chunk in times.chunks(6) {
        let bodies =
            chunk.iter().map(|&time| (time, decision("coder", Hook::Open, Verdict::Allow, 1, "/srv/file"))).collect();
        ledger.append_batch(bodies).unwrap();
    }
    drop(ledger);

    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let ranges = [
        (Some(bucket_start), Some(bucket_start + bucket_ns - 1)),
        (Some(bucket_start + bucket_ns), Some(bucket_start + 3 * bucket_ns)),
        (Some(bucket_start + 400_000_000), Some(bucket_start + 2_500_000_000)),
        (Some(times[13]), Some(times[13])),
        (Some(times[13] + 1), Some(times[13] + 60_000_000)),
        (Some(bucket_start + 2 * bucket_ns - 200_000_000), None),
        (None, Some(bucket_start + bucket_ns + 5)),
    ];
    for (since_ns, until_ns) in ranges {
        for limit in [None, Some(3)] {
            let query = Query { since_ns, until_ns, limit, ..Query::default() };
            let found: Vec<u64> = query::run(&reader, &query).unwrap().iter().map(|stored| stored.record.seq).collect();
            let mut expected: Vec<(u64, u64)> = (0..)
                .zip(&times)
                .filter(|&(_, &time)| {
                    since_ns.is_none_or(|since| time >= since) && until_ns.is_none_or(|until| time <= until)
                })
                .map(|(seq, &time)| (time, seq))
                .collect();
            expected.sort_unstable();
            let expected: Vec<u64> =
                expected.into_iter().map(|(_, seq)| seq).take(limit.unwrap_or(usize::MAX)).collect();
            assert_eq!(found, expected, "{query:?}");
        }
    }
}

/// An index of another layout version is not used by readers, and a
/// writable open replaces it.
#[test]
fn stale_index_version_rebuilt() {
    let dir = TempDir::new().unwrap();
    drop(fill_mixed(dir.path()));
    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let before: Vec<_> = queries().iter().map(|query| query::run(&reader, query).unwrap()).collect();
    drop(reader);

    // Version 1 had one key per record and an empty value, which the
    // current layout would read as an empty list.
    let db = common::open_raw(dir.path());
    db.put_cf(db.cf_handle("meta").unwrap(), INDEX_VERSION_KEY, [1]).unwrap();
    let stale_key = [&[0, 0, 0, 5][..], b"coder", &7_u64.to_be_bytes()].concat();
    db.put_cf(db.cf_handle("idx_agent").unwrap(), &stale_key, []).unwrap();
    drop(db);

    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    for (query, expected) in queries().iter().zip(&before) {
        if query.limit.is_none() {
            let mut found = query::run(&reader, query).unwrap();
            let mut expected = expected.clone();
            found.sort_by_key(|stored| stored.record.seq);
            expected.sort_by_key(|stored| stored.record.seq);
            assert_eq!(found, expected, "with a stale index: {query:?}");
        }
    }
    drop(reader);

    drop(Ledger::open(dir.path()).unwrap());
    let db = raw_read_only(dir.path());
    assert_eq!(db.get_cf(db.cf_handle("meta").unwrap(), INDEX_VERSION_KEY).unwrap(), Some(vec![index::INDEX_VERSION]));
    assert_eq!(db.get_cf(db.cf_handle("idx_agent").unwrap(), &stale_key).unwrap(), None);
    drop(db);
    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    for (query, expected) in queries().iter().zip(&before) {
        assert_eq!(&query::run(&reader, query).unwrap(), expected, "after the rebuild: {query:?}");
    }
}

#[test]
fn object_text_of_task() {
    let cases: [(u32, &[u8], &str); 3] = [
        (812, b"lupid-agent", "pid 812 (lupid-agent)"),
        (1, b"", "pid 1 ()"),
        (u32::MAX, b"a\xffb", "pid 4294967295 (a\u{fffd}b)"),
    ];
    for (pid, comm, expected) in cases {
        assert_eq!(object_text(&Object::Task { pid, comm: comm.to_vec() }), expected);
    }
}

#[test]
fn object_filter_matches_task() {
    let record = Record { seq: 0, time_ns: BASE_NS, prev_hash: [0; 32], body: common::kill_decision() };
    for (needle, expected) in [("pid 812", true), ("(lupid-agent)", true), ("pid 81 ", false), ("31337", false)] {
        let query = Query { object: Some(needle.into()), ..Query::default() };
        assert_eq!(query.matches(&record), expected, "{needle}");
    }
}

#[test]
fn object_filter_matches_requested_name() {
    let record = Record { seq: 0, time_ns: BASE_NS, prev_hash: [0; 32], body: common::requested_open_decision() };
    let cases = [("/tmp/x", true), ("/etc/shadow", true), ("shadow", true), ("/tmp/y", false), ("x/etc", false)];
    for (needle, expected) in cases {
        let query = Query { object: Some(needle.into()), ..Query::default() };
        assert_eq!(query.matches(&record), expected, "{needle}");
    }
}

#[test]
fn object_filter_requested_name_lossy() {
    let RecordBody::Decision(template) = common::requested_open_decision() else { unreachable!() };
    let body = RecordBody::Decision(Decision { requested: b"/tmp/\xffx".to_vec(), ..template });
    let record = Record { seq: 0, time_ns: BASE_NS, prev_hash: [0; 32], body };
    let query = Query { object: Some("/tmp/\u{fffd}x".into()), ..Query::default() };
    assert!(query.matches(&record), "a byte that is not UTF-8 matches U+FFFD");
}

#[test]
fn object_text_of_path_pair() {
    let cases: [(&[u8], &[u8], bool, &str); 6] = [
        (b"/a", b"/b", false, "/a -> /b"),
        (b"/tmp/\xff", b"/tmp/b", false, "/tmp/\u{fffd} -> /tmp/b"),
        (b"", b"/tmp/b", true, "<truncated> -> /tmp/b"),
        (b"/tmp/a", b"", true, "/tmp/a -> <truncated>"),
        (b"", b"", false, " -> "),
        (b"/a -> /b", b"/c", false, "/a -> /b -> /c"),
    ];
    for (old, new, truncated, expected) in cases {
        let object = Object::PathPair { old: old.to_vec(), new: new.to_vec(), truncated };
        assert_eq!(object_text(&object), expected);
    }
}

/// Returns a record of `common::rename_decision()` with this path pair.
fn rename_record(old: &[u8], new: &[u8], truncated: bool) -> Record {
    let RecordBody::Decision(template) = common::rename_decision() else { unreachable!() };
    let object = Object::PathPair { old: old.to_vec(), new: new.to_vec(), truncated };
    let body = RecordBody::Decision(Decision { object, ..template });
    Record { seq: 0, time_ns: BASE_NS, prev_hash: [0; 32], body }
}

#[test]
fn object_filter_matches_either_name() {
    let record = rename_record(b"/home/alice/.ssh/id_ed25519", b"/tmp/k", false);
    let cases = [
        ("/home/alice/.ssh/id_ed25519", true),
        ("id_ed", true),
        ("/tmp/k", true),
        ("k", true),
        ("id_ed25519 -> /tmp/k", false),
        (" -> ", false),
        ("/tmp/x", false),
    ];
    for (needle, expected) in cases {
        let query = Query { object: Some(needle.into()), ..Query::default() };
        assert_eq!(query.matches(&record), expected, "{needle}");
    }
}

#[test]
fn object_filter_path_pair_lossy() {
    let record = rename_record(b"/tmp/a", b"/tmp/\xffb", false);
    let query = Query { object: Some("/tmp/\u{fffd}b".into()), ..Query::default() };
    assert!(query.matches(&record), "a byte that is not UTF-8 matches U+FFFD");
}

#[test]
fn object_filter_path_pair_truncated() {
    let record = rename_record(b"", b"/tmp/b", true);
    for (needle, expected) in [("<truncated>", true), ("/tmp/b", true), ("/home", false)] {
        let query = Query { object: Some(needle.into()), ..Query::default() };
        assert_eq!(query.matches(&record), expected, "{needle}");
    }
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lupid-ledger")).args(args).output().expect("run lupid-ledger")
}

#[test]
fn cli_table_and_json() {
    let dir = TempDir::new().unwrap();
    drop(fill_mixed(dir.path()));
    let ledger = dir.path().to_str().unwrap();

    let output = cli(&["query", "--ledger", ledger, "--agent", "coder", "--hook", "open", "--limit", "2"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let table = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for column in ["SEQ", "TIME", "AGENT", "HOOK", "VERDICT", "RULE", "OBJECT"] {
        assert!(lines[0].contains(column), "header lacks {column}: {table}");
    }
    assert!(lines[1].contains("coder"), "{table}");
    assert!(lines[1].contains("open"), "{table}");
    assert!(lines[1].contains("/home/alice/"), "{table}");
    assert!(lines[1].contains("2023-11-14T22:13:20"), "{table}");

    let output = cli(&["query", "--ledger", ledger, "--verdict", "deny", "--rule", "1", "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(!text.is_empty());
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(value["verdict"], "deny");
        assert_eq!(value["rule_id"], 1);
    }

    let output =
        cli(&["query", "--ledger", ledger, "--since", "2023-11-14T22:13:20.000010Z", "--until", "1700000000000012000"]);
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(text.lines().count(), 4, "header and records 10..=12: {text}");
}

#[test]
fn cli_invalid_arguments() {
    let dir = TempDir::new().unwrap();
    drop(fill_mixed(dir.path()));
    let ledger = dir.path().to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["--since", "yesterday"], "--since"),
        (&["--until", "2024-13-01T00:00:00Z"], "--until"),
        (&["--hook", "write"], "--hook"),
        (&["--rule", "deny-ssh"], "--rule"),
        (&["--limit", "ten"], "--limit"),
    ];
    for (args, flag) in cases {
        let output = cli(&[&["query", "--ledger", ledger], args].concat());
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }

    let output =
        cli(&["query", "--ledger", ledger, "--since", "1700000000000012000", "--until", "1700000000000010000"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8(output.stderr).unwrap().contains("--since is later than --until"));
}

/// Measures index-driven queries on a large ledger and prints the times.
/// Run it by hand with `cargo test --release --workspace --test query --
/// --ignored --nocapture`. `LUPID_QUERY_RECORDS` sets the number of
/// records (default 1,000,000).
#[test]
#[ignore = "writes a large ledger: run by hand to measure"]
fn query_large_ledger_timing() {
    let count: u32 = std::env::var("LUPID_QUERY_RECORDS").map_or(1_000_000, |value| value.parse().unwrap());
    let dir = TempDir::new().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let started = std::time::Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    for n in 0..count {
        let index = usize::try_from(n).unwrap();
        let verdict = if n % 7 == 0 { Verdict::Deny } else { Verdict::Allow };
        let agent = format!("agent-{}", n % 100);
        let body = decision(&agent, HOOKS[index % 3], verdict, n % 1000, &format!("/srv/data/file-{n}"));
        batch.push((BASE_NS + u64::from(n) * 1000, body));
        if batch.len() == batch.capacity() {
            ledger.append_batch(std::mem::take(&mut batch)).unwrap();
        }
    }
    ledger.append_batch(batch).unwrap();
    drop(ledger);
    println!("appended {count} records in {:?}", started.elapsed());

    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let middle = BASE_NS + u64::from(count / 2) * 1000;
    let cases = [
        ("rule 7, limit 100", Query { rule_id: Some(7), limit: Some(100), ..Query::default() }),
        ("rule 7", Query { rule_id: Some(7), ..Query::default() }),
        (
            "agent-42, deny, limit 100",
            Query {
                agent: Some("agent-42".into()),
                verdict: Some(Verdict::Deny),
                limit: Some(100),
                ..Query::default()
            },
        ),
        (
            "agent-42, open, deny, rule 42",
            Query {
                agent: Some("agent-42".into()),
                hook: Some(Hook::Open),
                verdict: Some(Verdict::Deny),
                rule_id: Some(42),
                ..Query::default()
            },
        ),
        (
            "1000 records by time",
            Query { since_ns: Some(middle), until_ns: Some(middle + 999_000), ..Query::default() },
        ),
        ("object, limit 1", Query { object: Some("/srv/data/file-1".into()), limit: Some(1), ..Query::default() }),
    ];
    for (name, query) in cases {
        let started = std::time::Instant::now();
        let found = query::run(&reader, &query).unwrap();
        println!("{name}: {} records in {:?}", found.len(), started.elapsed());
        assert!(!found.is_empty(), "{name}");
    }
}

#[test]
fn query_deleted_record_is_error() {
    let dir = TempDir::new().unwrap();
    drop(fill_mixed(dir.path()));
    let query = Query { agent: Some("coder".into()), hook: Some(Hook::Open), ..Query::default() };
    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let deleted = query::run(&reader, &query).unwrap()[0].record.seq;
    drop(reader);

    let db = common::open_raw(dir.path());
    db.delete_cf(db.cf_handle("records").unwrap(), deleted.to_be_bytes()).unwrap();
    drop(db);

    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let error = query::run(&reader, &query).unwrap_err();
    assert!(
        matches!(error, lupid_ledger::LedgerError::MissingRecord { seq, .. } if seq == deleted),
        "the index lists record {deleted}, so its absence is an error: {error}"
    );
}
