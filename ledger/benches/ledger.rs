//! Ledger throughput on this machine: durable appends, the hashing and
//! RocksDB costs inside them, verify, filtered queries and export, and the
//! process's memory while the ledger grows. `cargo xtask bench` builds and
//! runs it, and docs/benchmarks.md explains the results.
//!
//! Usage: `ledger [--records N] [--batch N] [--dir DIR] [--keep]`. Progress
//! goes to stderr and the Markdown tables to stdout. `--keep` leaves the
//! benchmark folder in place, so that `lupid-ledger verify` or `query` can
//! be profiled on its ledger.
//!
//! Every measurement uses the same record bodies: decisions of about 220
//! encoded bytes, spread deterministically over 8 agents, 64 rule ids, the
//! exec, open and connect hooks and both verdicts, 100 µs of wall time
//! apart. Only the measured call is timed, so building the record bodies
//! is not part of the append figure.

use std::{
    fmt::Write as _,
    io::{self, BufWriter},
    path::{Path, PathBuf},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use lupid_ledger::{
    Decision, Hook, Ledger, LedgerReader, Object, Reason, Record, RecordBody, Verdict, Via, ZERO_HASH, export_jsonl,
    leaf_hash,
    merkle::Frontier,
    query::{self, Query},
    verify,
};
use rocksdb::{DB, DBCompressionType, Options, WriteBatch, WriteOptions};
use tempfile::TempDir;

const USAGE: &str = "usage: ledger [--records N] [--batch N] [--dir DIR] [--keep]";

const DEFAULT_RECORDS: u64 = 1_000_000;
const DEFAULT_BATCH: u64 = 4096;

/// Wall time of the first record, in Unix nanoseconds.
const START_NS: u64 = 1_700_000_000_000_000_000;
/// Wall time between consecutive records.
const RECORD_INTERVAL_NS: u64 = 100_000;

const AGENTS: [&str; 8] = ["agent-0", "agent-1", "agent-2", "agent-3", "agent-4", "agent-5", "agent-6", "agent-7"];
const RULES: u64 = 64;
const HOOKS: [Hook; 3] = [Hook::Exec, Hook::Open, Hook::Connect];

struct Config {
    records: u64,
    batch: u64,
    dir: Option<PathBuf>,
    keep: bool,
}

/// One row of the result table.
struct Row {
    name: &'static str,
    records: u64,
    bytes: u64,
    elapsed: Duration,
    note: String,
}

impl Row {
    fn rate(&self) -> f64 {
        per_second(self.records, self.elapsed)
    }
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "a rate needs no more than 52 bits")]
    let count = count as f64;
    count / elapsed.as_secs_f64()
}

fn parse_args() -> Result<Config> {
    let mut config = Config { records: DEFAULT_RECORDS, batch: DEFAULT_BATCH, dir: None, keep: false };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} requires a value"));
        match arg.as_str() {
            "--records" => config.records = value()?.parse().context("--records takes a number of records")?,
            "--batch" => config.batch = value()?.parse().context("--batch takes a number of records")?,
            "--dir" => config.dir = Some(PathBuf::from(value()?)),
            "--keep" => config.keep = true,
            // `cargo bench` passes `--bench`; it selects nothing here.
            "--bench" => {}
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}; {USAGE}"),
        }
    }
    if config.records == 0 || config.batch == 0 {
        bail!("--records and --batch must be at least 1");
    }
    Ok(config)
}

/// Mixes the bits of `seq` (the `SplitMix64` finalizer), so that the fields
/// derived from it vary without following each other.
fn mix(seq: u64) -> u64 {
    let mut z = seq.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Returns the body of record `seq`: a decision of one of 8 agents under
/// one of 64 rules, denied one time in ten, on a path that names the record
/// or, for connect, on an address derived from it.
fn body(seq: u64) -> RecordBody {
    let bits = mix(seq);
    let agent = AGENTS[usize::try_from(bits % 8).expect("below 8")];
    let rule_id = u32::try_from((bits >> 3) % RULES).expect("below 64");
    let hook = HOOKS[usize::try_from((bits >> 9) % 3).expect("below 3")];
    let verdict = if (bits >> 12).is_multiple_of(10) { Verdict::Deny } else { Verdict::Allow };
    let object = match hook {
        Hook::Connect => {
            let mut addr = [0; 16];
            addr[10..12].copy_from_slice(&[0xff, 0xff]);
            addr[12..14].copy_from_slice(&[10, 0]);
            addr[14..].copy_from_slice(&u16::try_from(seq % 65_536).expect("below 2^16").to_be_bytes());
            Object::Socket { family: 2, addr, port: 443 }
        }
        _ => Object::Path {
            path: format!("/home/alice/project/target/release/deps/unit-{seq:08}.rlib").into_bytes(),
            truncated: false,
        },
    };
    RecordBody::Decision(Decision {
        kernel_seq: seq,
        boot_ns: 5_000_000_000 + seq * RECORD_INTERVAL_NS,
        agent_id: u32::try_from(bits % 8).expect("below 8"),
        agent: agent.into(),
        policy_sha256: [0xab; 32],
        pid: 31_338,
        tgid: 31_337,
        uid: 1000,
        gid: 1000,
        cgroup_id: 0x1234_5678_9abc,
        comm: b"cargo".to_vec(),
        hook,
        verdict,
        reason: Reason::Rule,
        rule_id,
        rule: format!("rule-{rule_id:02}"),
        access: 1,
        object,
        lease_id: 0,
        protocol: 0,
        via: Via::Syscall,
        requested: Vec::new(),
        requested_truncated: false,
    })
}

/// Returns the wall time of record `seq`.
fn time_ns(seq: u64) -> u64 {
    START_NS + seq * RECORD_INTERVAL_NS
}

/// Returns the bodies of records `first..first + len`.
fn batch_bodies(first: u64, len: u64) -> Vec<(u64, RecordBody)> {
    (first..first + len).map(|seq| (time_ns(seq), body(seq))).collect()
}

/// Returns the canonical bytes of the first `len` records, chained with
/// placeholder `prev_hash` values: the input of the hashing and RocksDB rows.
fn encoded_batch(len: u64) -> Result<Vec<Vec<u8>>> {
    (0..len)
        .map(|seq| {
            let record = Record { seq, time_ns: time_ns(seq), prev_hash: ZERO_HASH, body: body(seq) };
            record.encode().context("encode benchmark record")
        })
        .collect()
}

fn batch_len(config: &Config, first: u64) -> u64 {
    config.batch.min(config.records - first)
}

/// Measures `Ledger::append_batch` with a synced write per batch, and
/// samples the process's resident memory after 10%, 50% and 100% of the
/// records. `bytes` is the encoded size of all records.
fn durable_append(config: &Config, dir: &Path, bytes: u64) -> Result<(Row, Vec<(u64, u64)>)> {
    let mut ledger = Ledger::open(dir)?;
    let mut elapsed = Duration::ZERO;
    let mut memory = Vec::new();
    let mut marks = [config.records / 10, config.records / 2, config.records].into_iter().peekable();
    let mut first = 0;
    while first < config.records {
        let len = batch_len(config, first);
        let bodies = batch_bodies(first, len);
        let start = Instant::now();
        ledger.append_batch(bodies)?;
        elapsed += start.elapsed();
        first += len;
        while marks.next_if(|mark| *mark <= first).is_some() {
            memory.push((first, resident_kilobytes()?));
        }
    }
    drop(ledger);
    #[expect(clippy::cast_precision_loss, reason = "byte counts stay far below 2^52")]
    let disk_megabytes = directory_size(dir)? as f64 / 1e6;
    let batches = config.records.div_ceil(config.batch);
    let note = format!("{batches} synced batches of {}, {disk_megabytes:.0} MB on disk", config.batch);
    let row = Row { name: "durable append (ledger)", records: config.records, bytes, elapsed, note };
    Ok((row, memory))
}

/// Measures `Ledger::append_batch_unsynced` with a second thread that syncs
/// the write-ahead log in a loop, so that one batch is written while the
/// one before waits for the disk. A batch counts as durable when a sync
/// that started after its append returned has returned. The time is that
/// of the appends plus the wait for the last sync. Like the building of
/// the bodies in the daemon's event reader, the untimed building of the
/// next batch's bodies overlaps the syncs.
fn pipelined_append(config: &Config, dir: &Path, bytes: u64) -> Result<Row> {
    let mut ledger = Ledger::open(dir)?;
    let syncer = ledger.wal_sync();
    // One message per batch written. A sync covers every batch whose
    // message arrived before it started.
    let (written, received) = mpsc::channel::<()>();
    let sync_thread = thread::spawn(move || -> Result<u64> {
        let mut syncs = 0;
        while received.recv().is_ok() {
            received.try_iter().for_each(drop);
            syncer.sync()?;
            syncs += 1;
        }
        Ok(syncs)
    });
    let mut elapsed = Duration::ZERO;
    let mut first = 0;
    while first < config.records {
        let len = batch_len(config, first);
        let bodies = batch_bodies(first, len);
        let start = Instant::now();
        ledger.append_batch_unsynced(bodies)?;
        elapsed += start.elapsed();
        first += len;
        written.send(()).context("the sync thread stopped")?;
    }
    drop(written);
    let start = Instant::now();
    let syncs = sync_thread.join().map_err(|_| anyhow::anyhow!("the sync thread panicked"))??;
    elapsed += start.elapsed();
    drop(ledger);
    let batches = config.records.div_ceil(config.batch);
    let note = format!("{batches} batches of {} written unsynced, {syncs} syncs on a second thread", config.batch);
    Ok(Row { name: "durable append, pipelined sync", records: config.records, bytes, elapsed, note })
}

/// Returns the process's resident set size (`VmRSS`) in kilobytes.
fn resident_kilobytes() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("read /proc/self/status")?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).context("no VmRSS in /proc/self/status")?;
    let kilobytes = line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim();
    kilobytes.parse().with_context(|| format!("invalid VmRSS line {line:?}"))
}

/// Measures `Record::encode` alone for every record.
fn encode_only(config: &Config) -> Result<Row> {
    let mut elapsed = Duration::ZERO;
    let mut bytes = 0;
    let mut first = 0;
    while first < config.records {
        let len = batch_len(config, first);
        let records: Vec<Record> = (first..first + len)
            .map(|seq| Record { seq, time_ns: time_ns(seq), prev_hash: ZERO_HASH, body: body(seq) })
            .collect();
        let start = Instant::now();
        for record in &records {
            bytes += record.encode()?.len() as u64;
        }
        elapsed += start.elapsed();
        first += len;
    }
    let note = "Record::encode only".to_owned();
    Ok(Row { name: "encode", records: config.records, bytes, elapsed, note })
}

/// Measures the SHA-256 work of an append without I/O: the leaf hash of each
/// record and the inner tree nodes it completes.
fn hashing_only(config: &Config, encoded: &[Vec<u8>]) -> Row {
    let mut frontier = Frontier::default();
    let mut bytes = 0;
    let start = Instant::now();
    for (seq, value) in (0..config.records).zip(encoded.iter().cycle()) {
        let hash = leaf_hash(value);
        std::hint::black_box(frontier.push(hash));
        bytes += value.len() as u64;
        std::hint::black_box(seq);
    }
    std::hint::black_box(frontier.root());
    let note = "leaf hash + Frontier::push, no I/O".to_owned();
    Row { name: "SHA-256 chain + tree", records: config.records, bytes, elapsed: start.elapsed(), note }
}

/// Measures the same bytes put into a bare RocksDB, one synced `WriteBatch` per
/// batch, without hashing or tree nodes.
fn plain_rocksdb(config: &Config, dir: &Path, encoded: &[Vec<u8>]) -> Result<Row> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.set_compression_type(DBCompressionType::Lz4);
    let db = DB::open(&options, dir).context("open plain RocksDB")?;
    let mut write_options = WriteOptions::default();
    write_options.set_sync(true);

    let mut elapsed = Duration::ZERO;
    let mut bytes = 0;
    let mut first = 0;
    while first < config.records {
        let len = batch_len(config, first);
        let start = Instant::now();
        let mut batch = WriteBatch::default();
        for (seq, value) in (first..first + len).zip(encoded.iter().cycle()) {
            batch.put(seq.to_be_bytes(), value);
            bytes += value.len() as u64;
        }
        db.write_opt(batch, &write_options).context("write plain RocksDB batch")?;
        elapsed += start.elapsed();
        first += len;
    }
    let note = "same bytes and sync policy, no hashing, no tree nodes".to_owned();
    Ok(Row { name: "plain RocksDB puts", records: config.records, bytes, elapsed, note })
}

/// Measures `verify` of the ledger written by [`durable_append`]. The
/// time includes the read-only open, which replays the write-ahead log.
fn verify_rate(config: &Config, dir: &Path, bytes: u64) -> Result<Row> {
    let start = Instant::now();
    let report = verify(dir)?;
    let elapsed = start.elapsed();
    if report.records_checked != config.records || !report.is_intact() || !report.indexes_checked {
        bail!(
            "verify checked {} records, indexes checked: {}, break: {:?}, index break: {:?}",
            report.records_checked,
            report.indexes_checked,
            report.first_break,
            report.index_break
        );
    }
    let note = "chain, canonical re-encoding, stored tree nodes and query indexes".to_owned();
    Ok(Row { name: "verify", records: config.records, bytes, elapsed, note })
}

/// One timed query.
struct QueryRow {
    name: &'static str,
    limit: Option<usize>,
    matches: usize,
    elapsed: Duration,
}

/// Times filtered queries on the ledger written by [`durable_append`], each
/// with a limit of 100 and without a limit. The time range is the 10
/// seconds in the middle of the ledger. The reader is opened once, before
/// the first query. The queries with a limit run first, because a query
/// without one can return over a million records, and the allocator's
/// cleanup after freeing them slowed the next query about a hundredfold in
/// trial runs.
fn query_latencies(config: &Config, dir: &Path) -> Result<Vec<QueryRow>> {
    let reader = LedgerReader::open_read_only(dir)?;
    let middle = time_ns(config.records / 2);
    let cases = [
        ("agent", Query { agent: Some(AGENTS[3].into()), ..Query::default() }),
        ("agent + verdict", Query { agent: Some(AGENTS[5].into()), verdict: Some(Verdict::Deny), ..Query::default() }),
        ("rule + hook", Query { rule_id: Some(42), hook: Some(Hook::Connect), ..Query::default() }),
        (
            "10 s time range",
            Query { since_ns: Some(middle), until_ns: Some(middle + 10_000_000_000), ..Query::default() },
        ),
    ];
    let mut rows = Vec::new();
    for limit in [Some(100), None] {
        for (name, query) in &cases {
            let name = *name;
            let query = Query { limit, ..query.clone() };
            let start = Instant::now();
            let found = query::run(&reader, &query)?;
            let elapsed = start.elapsed();
            let matches = found.len();
            drop(found);
            if matches == 0 {
                bail!("query {name} found no records");
            }
            rows.push(QueryRow { name, limit, matches, elapsed });
        }
    }
    Ok(rows)
}

/// Measures JSON Lines export of that ledger into a counting sink.
fn export_rate(config: &Config, dir: &Path) -> Result<Row> {
    let reader = LedgerReader::open_read_only(dir)?;
    let mut out = BufWriter::with_capacity(1 << 20, CountingSink(0));
    let start = Instant::now();
    let count = export_jsonl(&reader, &mut out)?;
    let elapsed = start.elapsed();
    let bytes = out.into_inner().map_err(io::IntoInnerError::into_error)?.0;
    if count != config.records {
        bail!("export wrote {count} records, expected {}", config.records);
    }
    let note = "export_jsonl into a discarding writer".to_owned();
    Ok(Row { name: "export (JSON Lines)", records: config.records, bytes, elapsed, note })
}

/// A writer that counts and drops what it is given.
struct CountingSink(u64);

impl io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn directory_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}

fn markdown(config: &Config, rows: &[Row], hashing_rate: f64, queries: &[QueryRow], memory: &[(u64, u64)]) -> String {
    let mut table = String::new();
    writeln!(table, "Ledger benchmark: {} records, batches of {}, `cargo xtask bench`.", config.records, config.batch)
        .expect("writing to a String cannot fail");
    table.push_str("MB/s counts encoded record bytes, except for export, which counts JSON output.\n\n");
    table.push_str("| measurement | records | seconds | records/s | MB/s | share of hashing rate | note |\n");
    table.push_str("| --- | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for row in rows {
        #[expect(clippy::cast_precision_loss, reason = "byte counts stay far below 2^52")]
        let megabytes = row.bytes as f64 / 1e6;
        let throughput =
            if row.bytes == 0 { "-".to_owned() } else { format!("{:.1}", megabytes / row.elapsed.as_secs_f64()) };
        writeln!(
            table,
            "| {} | {} | {:.2} | {:.0} | {throughput} | {:.1}% | {} |",
            row.name,
            row.records,
            row.elapsed.as_secs_f64(),
            row.rate(),
            100.0 * row.rate() / hashing_rate,
            row.note,
        )
        .expect("writing to a String cannot fail");
    }

    table.push_str("\nFiltered queries (`query::run`, one read-only open before the first):\n\n");
    table.push_str("| query | limit | matches | ms |\n| --- | ---: | ---: | ---: |\n");
    for row in queries {
        let limit = row.limit.map_or_else(|| "none".to_owned(), |limit| limit.to_string());
        let milliseconds = row.elapsed.as_secs_f64() * 1e3;
        writeln!(table, "| {} | {limit} | {} | {milliseconds:.1} |", row.name, row.matches)
            .expect("writing to a String cannot fail");
    }

    table.push_str("\nResident memory of the benchmark process during the durable append:\n\n");
    table.push_str("| records appended | VmRSS (MB) |\n| ---: | ---: |\n");
    for (records, kilobytes) in memory {
        #[expect(clippy::cast_precision_loss, reason = "memory sizes stay far below 2^52")]
        let megabytes = *kilobytes as f64 / 1e3;
        writeln!(table, "| {records} | {megabytes:.0} |").expect("writing to a String cannot fail");
    }
    table
}

fn main() -> Result<()> {
    let config = parse_args()?;
    let parent = match &config.dir {
        Some(dir) => TempDir::new_in(dir),
        None => TempDir::new(),
    }
    .context("create benchmark folder")?;
    eprintln!("ledger bench: {} records in {}", config.records, parent.path().display());

    let encoded = encoded_batch(config.batch)?;
    let ledger_dir = parent.path().join("ledger");

    eprintln!("ledger bench: encode");
    let encode = encode_only(&config)?;
    eprintln!("ledger bench: durable append");
    let (append, memory) = durable_append(&config, &ledger_dir, encode.bytes)?;
    eprintln!("ledger bench: durable append, pipelined sync");
    let pipelined = pipelined_append(&config, &parent.path().join("pipelined"), encode.bytes)?;
    eprintln!("ledger bench: hashing");
    let hashing = hashing_only(&config, &encoded);
    eprintln!("ledger bench: plain RocksDB");
    let plain = plain_rocksdb(&config, &parent.path().join("plain"), &encoded)?;
    eprintln!("ledger bench: verify");
    let verified = verify_rate(&config, &ledger_dir, encode.bytes)?;
    eprintln!("ledger bench: queries");
    let queries = query_latencies(&config, &ledger_dir)?;
    eprintln!("ledger bench: export");
    let exported = export_rate(&config, &ledger_dir)?;

    let hashing_rate = hashing.rate();
    let rows = [append, pipelined, hashing, encode, plain, verified, exported];
    print!("{}", markdown(&config, &rows, hashing_rate, &queries, &memory));
    if config.keep {
        eprintln!("ledger bench: kept {}", parent.keep().display());
    }
    Ok(())
}
