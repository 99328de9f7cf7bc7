//! `lupid-ledger`: check, prove and export a lupid ledger.
//!
//! Exit codes: 0 success, 1 `verify` or `verify-proof` found a break, 2
//! error (the ledger, a key or a file cannot be read, an argument is
//! invalid, or the output cannot be written). For `verify`, success means
//! that the chain, tree and checkpoints of a ledger or a bundle are intact,
//! and that a ledger's query indexes match its records. For `verify-proof`,
//! it means that the proof is valid.

use std::{
    fmt::Write as _,
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use clap::{
    Parser, Subcommand, ValueEnum,
    builder::{PossibleValuesParser, TypedValueParser},
};
use lupid_ledger::{
    BreakKind, Checkpoint, ExportError, Hook, Ledger, LedgerError, LedgerReader, RecordBody, StoredRecord, Verdict, VerifierKey,
    Via, audit,
    bundle::{self, KEY_FILE},
    checkpoint::split_notes,
    export_jsonl,
    index::INDEX_CFS,
    keys, leaf_hash,
    ocsf::export_ocsf,
    proof,
    query::{self, Query, object_text},
    record_json, timestamp,
};

const DEFAULT_LEDGER: &str = "/var/lib/lupid/ledger";
/// The daemon's checkpoint signing key (`lupid-agent start` creates it).
const DEFAULT_KEY: &str = "/var/lib/lupid/checkpoint.key";

#[derive(Parser)]
#[command(version, about = "Check and export a lupid ledger")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the hash chain, the Merkle tree and the checkpoints of a
    /// ledger or of a bundle, and that a ledger's query indexes match its
    /// records. Exits 0 when all hold, 1 at the first break, 2 when
    /// something cannot be read.
    Verify {
        /// Ledger directory.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_LEDGER)]
        ledger: PathBuf,
        /// File or folder of checkpoint notes kept off the host; the ledger
        /// must extend every one. Requires --key.
        #[arg(long, value_name = "FILE", requires = "key")]
        pinned: Option<PathBuf>,
        /// Verifier key (`name+id+base64`), or a file that contains it. With
        /// --bundle, the default is the key inside the bundle.
        #[arg(long, value_name = "VERIFIER_KEY_OR_FILE")]
        key: Option<String>,
        /// Check a bundle folder written by `export --format bundle` instead
        /// of a ledger, without RocksDB.
        #[arg(long, value_name = "DIR", conflicts_with = "pinned")]
        bundle: Option<PathBuf>,
    },
    /// Print the decision records (and, with --agent, the identity records)
    /// that match every given filter. They are in sequence order, unless
    /// --since or --until is given without --agent, --hook, --verdict and
    /// --rule: then they are in time order.
    Query(QueryArgs),
    /// Rebuild the query indexes from the records, after `verify` reported
    /// that an index does not match them. Stop the daemon first, because it
    /// keeps the ledger open for writing.
    Reindex {
        /// Ledger directory.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_LEDGER)]
        ledger: PathBuf,
    },
    /// Print the latest stored checkpoint note. Its form is always checked.
    /// Its signature is checked only with --key, and without it a warning on
    /// standard error says so.
    Checkpoint {
        /// Ledger directory.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_LEDGER)]
        ledger: PathBuf,
        /// Verifier key (`name+id+base64`), or a file that contains it. The
        /// note is printed only when its signature verifies with this key.
        #[arg(long, value_name = "VERIFIER_KEY_OR_FILE")]
        key: Option<String>,
    },
    /// Print an inclusion proof of one record as JSON. The proof is checked
    /// against the checkpoint's root hash first: when the stored Merkle tree
    /// does not match the checkpoint, nothing is printed and the exit code
    /// is 2.
    Prove {
        /// Sequence number of the record.
        seq: u64,
        /// Ledger directory.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_LEDGER)]
        ledger: PathBuf,
        /// Checkpoint note to prove against; default: the latest stored one.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Check an inclusion proof offline. Exits 0 when it holds, 1 when not.
    VerifyProof {
        /// Proof file written by `prove`.
        proof: PathBuf,
        /// Verifier key (`name+id+base64`), or a file that contains it.
        #[arg(long, value_name = "VERIFIER_KEY_OR_FILE")]
        key: String,
    },
    /// Print the verifier key of the checkpoint signing key, creating the
    /// key (mode 0600) if it does not exist.
    Key {
        /// Signing key file.
        #[arg(long, value_name = "FILE", default_value = DEFAULT_KEY)]
        key_file: PathBuf,
    },
    /// Write every record to standard output, or a bundle to --out.
    Export {
        /// Ledger directory.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_LEDGER)]
        ledger: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
        /// Bundle folder to write; required by --format bundle.
        #[arg(long, value_name = "DIR", required_if_eq("format", "bundle"))]
        out: Option<PathBuf>,
        /// Verifier key to put in the bundle (`name+id+base64`, or a file that
        /// contains it). Default: `checkpoint.key.pub` in the folder that
        /// contains the ledger directory.
        #[arg(long, value_name = "VERIFIER_KEY_OR_FILE")]
        key: Option<String>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// JSON Lines: one object per record.
    Jsonl,
    /// OCSF 1.7.0 events, one JSON object per decision record and line.
    Ocsf,
    /// A folder with the records, checkpoints, verifier key and a manifest,
    /// checkable with `verify --bundle`.
    Bundle,
}

#[derive(clap::Args)]
struct QueryArgs {
    /// Ledger directory.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_LEDGER)]
    ledger: PathBuf,
    /// Agent name, exactly as given to `lupid-agent run --agent`.
    #[arg(long, value_name = "NAME")]
    agent: Option<String>,
    /// LSM hook of the decision.
    #[arg(long, value_parser = name_parser(Hook::ALL, Hook::name))]
    hook: Option<Hook>,
    /// Verdict of the decision.
    #[arg(long, value_parser = name_parser(Verdict::ALL, Verdict::name))]
    verdict: Option<Verdict>,
    /// Numeric id of the matching rule, where 0 is the default verdict. Ids
    /// are numbered per policy version, so use `--rule-name` across
    /// versions.
    #[arg(long, value_name = "ID")]
    rule: Option<u32>,
    /// Name of the rule that decided, as the policy file spells it (the
    /// ledger keeps it in every decision). Checked on each record that the
    /// other filters select, so alone it reads every record.
    #[arg(long, value_name = "NAME")]
    rule_name: Option<String>,
    /// Text that the object (file path, `address:port`, `pid N (comm)` for
    /// the target of a kill or ptrace, or either name of a rename or link)
    /// or the requested name (the path as the agent passed it to open or
    /// exec) contains. Checked on each record that the other filters
    /// select, so alone it reads every record.
    #[arg(long, value_name = "TEXT")]
    object: Option<String>,
    /// Earliest record time, inclusive: RFC 3339 or Unix nanoseconds.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<u64>,
    /// Latest record time, inclusive: RFC 3339 or Unix nanoseconds.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    until: Option<u64>,
    /// The way the action reached the hook. Checked on each record that the
    /// other filters select, like --object.
    #[arg(long, value_parser = name_parser(Via::ALL, Via::name))]
    via: Option<Via>,
    /// Maximum number of records printed.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    format: QueryFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum QueryFormat {
    /// Aligned columns: seq, time, agent, hook (followed by `via io_uring`
    /// when the action came through `io_uring`), verdict (with the lease id
    /// when a lease allowed the action), rule, object (`OLD -> NEW` for a
    /// rename or link).
    Table,
    /// JSON Lines, in the form of `export --format jsonl`.
    Json,
}

/// Returns a parser that accepts the export name of each value in `values`.
fn name_parser<T: Copy + Send + Sync + 'static, const N: usize>(
    values: [T; N],
    name: fn(T) -> &'static str,
) -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(values.map(name)).map(move |parsed| {
        values.into_iter().find(|value| name(*value) == parsed).expect("the parser accepts only these names")
    })
}

fn parse_time(value: &str) -> Result<u64, String> {
    timestamp::parse(value).map_err(|error| error.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Output piped into `head` ends the command quietly when the pipe
    // closes, as other command line tools do, instead of a panic.
    // SAFETY: no other thread runs yet, and the default action is a valid
    // disposition.
    let _ = unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl) };
    let result = match cli.command {
        Command::Verify { bundle: Some(bundle), key, .. } => run_verify_bundle(&bundle, key.as_deref()),
        Command::Verify { ledger, pinned, key, bundle: None } => run_verify(&ledger, pinned.as_deref(), key.as_deref()),
        Command::Query(args) => run_query(&args),
        Command::Reindex { ledger } => run_reindex(&ledger),
        Command::Checkpoint { ledger, key } => run_checkpoint(&ledger, key.as_deref()),
        Command::Prove { seq, ledger, checkpoint } => run_prove(&ledger, seq, checkpoint.as_deref()),
        Command::VerifyProof { proof, key } => run_verify_proof(&proof, &key),
        Command::Key { key_file } => run_key(&key_file),
        Command::Export { ledger, format: Format::Bundle, out, key } => {
            run_export_bundle(&ledger, out.as_deref(), key.as_deref())
        }
        Command::Export { out: Some(_), .. } => Err(anyhow::anyhow!("--out is only valid with --format bundle")),
        Command::Export { key: Some(_), .. } => Err(anyhow::anyhow!("--key is only valid with --format bundle")),
        Command::Export { ledger, format, .. } => run_export(&ledger, format),
    };
    result.unwrap_or_else(|error| {
        // A closed or full stderr must not turn the error into a panic.
        let _ = writeln!(io::stderr(), "lupid-ledger: error: {error:#}");
        ExitCode::from(2)
    })
}

fn run_verify(ledger: &Path, pinned: Option<&Path>, key: Option<&str>) -> anyhow::Result<ExitCode> {
    let key = key.map(read_verifier_key).transpose()?;
    let pinned = pinned.map(read_pinned).transpose()?.unwrap_or_default();
    let report = audit(ledger, key.as_ref(), &pinned)?;

    if let Some(chain) = &report.chain
        && let Some(first_break) = &chain.first_break
    {
        println!("BROKEN: {first_break}");
        if first_break.kind == BreakKind::PrevHashMismatch
            && let Some(changed) = first_break.seq.checked_sub(1)
        {
            // A change to a record's bytes shows only at the next link.
            println!(
                "record {changed} was changed, or the link to it in record {}: the chain alone cannot tell which",
                first_break.seq
            );
        }
        println!("{} records verified before the break in {}", chain.records_checked, ledger.display());
        return Ok(ExitCode::from(1));
    }
    let mut broken = false;
    if let Some(first_break) = &report.first_checkpoint_break {
        println!("BROKEN: {first_break}");
        broken = true;
    }
    if let Some(index_break) = report.chain.as_ref().and_then(|chain| chain.index_break.as_ref()) {
        println!("BROKEN: {index_break}");
        println!(
            "the hash chain is intact, so only the query indexes are damaged: stop the daemon and run \
             `lupid-ledger reindex --ledger {}` to rebuild them from the records",
            ledger.display()
        );
        broken = true;
    }
    if broken {
        return Ok(ExitCode::from(1));
    }
    let Some(chain) = &report.chain else {
        anyhow::bail!("ledger {} was not read", ledger.display());
    };

    println!("OK: {} records verified in {}", chain.records_checked, ledger.display());
    match chain.head {
        Some((seq, hash)) => println!("head: record {seq}, hash {}", hex::encode(hash)),
        None => println!("head: none (the ledger is empty)"),
    }
    println!("tree: size {}, root hash {}", chain.records_checked, hex::encode(chain.root_hash));
    if chain.gaps.is_empty() {
        println!("complete=true: no record reports lost events or a time without a daemon");
    }
    for gap in &chain.gaps {
        println!("{gap}");
    }
    let signatures = if key.is_some() { "signatures checked" } else { "signatures not checked: no --key" };
    println!(
        "checkpoints: {} stored ({signatures}), {} pinned, {} distinct tree sizes",
        report.stored_checked, report.pinned_checked, report.distinct_checkpoints
    );
    // Without a pinned copy, nothing can detect a rewrite of the records
    // after the newest signed checkpoint, so the output names those records.
    match (key.is_some(), report.signed_tree_size) {
        (false, _) => println!("signed: not checked, because no --key was given"),
        (true, Some(size)) if size > 0 => {
            print!("signed: records 0..={} are covered by the checkpoint of tree size {size}", size - 1);
            match chain.records_checked.checked_sub(1) {
                Some(last) if last > size => {
                    println!("; records {size}..={last} are not yet covered by a signed checkpoint");
                }
                Some(last) if last == size => println!("; record {last} is not yet covered by a signed checkpoint"),
                _ => println!(),
            }
        }
        (true, _) => println!("signed: no record is covered by a signed checkpoint"),
    }
    if chain.indexes_checked {
        println!("indexes: all {} match the records", INDEX_CFS.len());
    } else {
        println!(
            "indexes: not checked, because the ledger has none in the current layout, so `query` reads every record \
             (the next writable open builds them)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn run_reindex(ledger: &Path) -> anyhow::Result<ExitCode> {
    // `Ledger::open` would create a new ledger where none exists.
    if !ledger.join("CURRENT").is_file() {
        return Err(LedgerError::NotFound { path: ledger.to_owned() }.into());
    }
    let mut opened = Ledger::open(ledger).with_context(|| {
        format!("failed to open {} for writing (a running daemon keeps it open: stop it first)", ledger.display())
    })?;
    opened.rebuild_indexes()?;
    println!("OK: rebuilt the query indexes of {} records in {}", opened.len(), ledger.display());
    // The indexes come from the records as stored, edited ones included.
    println!("the hash chain was not checked: run `lupid-ledger verify --ledger {}`", ledger.display());
    Ok(ExitCode::SUCCESS)
}

fn run_checkpoint(ledger: &Path, key: Option<&str>) -> anyhow::Result<ExitCode> {
    let key = key.map(read_verifier_key).transpose()?;
    let reader = LedgerReader::open_read_only(ledger)?;
    let checkpoint = audit::latest_stored_checkpoint(&reader, key.as_ref())?
        .with_context(|| format!("ledger {} has no checkpoint yet", ledger.display()))?;
    if key.is_none() {
        // A closed or full stderr must not stop the note from being printed.
        let _ = writeln!(
            io::stderr(),
            "lupid-ledger: warning: the signature of checkpoint {} was not checked: pass --key to check it",
            checkpoint.tree_size
        );
    }
    print!("{}", checkpoint.note);
    Ok(ExitCode::SUCCESS)
}

fn run_prove(ledger: &Path, seq: u64, checkpoint: Option<&Path>) -> anyhow::Result<ExitCode> {
    let reader = LedgerReader::open_read_only(ledger)?;
    let checkpoint = match checkpoint {
        None => None,
        Some(path) => {
            let text = read_text(path)?;
            let note =
                split_notes(&text).pop().with_context(|| format!("{} contains no checkpoint note", path.display()))?;
            Some(
                Checkpoint::parse_unverified(&note)
                    .with_context(|| format!("invalid checkpoint in {}", path.display()))?,
            )
        }
    };
    let proof = proof::prove(&reader, seq, checkpoint)?;
    println!("{}", serde_json::to_string_pretty(&proof)?);
    Ok(ExitCode::SUCCESS)
}

fn run_verify_proof(path: &Path, key: &str) -> anyhow::Result<ExitCode> {
    let key = read_verifier_key(key)?;
    let json = read_text(path)?;
    match proof::check(&json, &key) {
        Ok((record, checkpoint)) => {
            println!(
                "OK: record {} is leaf {} of the tree of size {} signed by {}",
                record.seq, record.seq, checkpoint.tree_size, key
            );
            let hash = record.hash().map(hex::encode).unwrap_or_default();
            println!("root hash: {}", hex::encode(checkpoint.root_hash));
            println!("record hash: {hash}");
            let bytes = record.encode().context("re-encode the proven record")?;
            println!("{}", record_json(&StoredRecord { hash: leaf_hash(&bytes), record }));
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            println!("BROKEN: {error}");
            Ok(ExitCode::from(1))
        }
    }
}

fn run_key(key_file: &Path) -> anyhow::Result<ExitCode> {
    let key = keys::load_or_create(key_file)?;
    println!("{}", key.verifier());
    Ok(ExitCode::SUCCESS)
}

/// Parses a verifier key given inline, or read from the file it names.
fn read_verifier_key(value: &str) -> anyhow::Result<VerifierKey> {
    if let Ok(key) = VerifierKey::parse(value) {
        return Ok(key);
    }
    let path = Path::new(value);
    if !path.exists() {
        // Neither a key nor a file: show why it is not a key.
        return Err(VerifierKey::parse(value).expect_err("parse failed above").into());
    }
    let text = read_text(path)?;
    VerifierKey::parse(&text).with_context(|| format!("invalid verifier key in {}", path.display()))
}

/// Reads the checkpoint notes of a pinned file, or of every file in a
/// pinned folder in name order. Finding no note is an error, because a
/// wiped pin file or folder, or a wrong path, must not pass as a check.
fn read_pinned(path: &Path) -> anyhow::Result<Vec<String>> {
    let mut notes = Vec::new();
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("failed to read folder {}", path.display()))?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("failed to read folder {}", path.display()))?;
        files.sort();
        for file in files.iter().filter(|file| file.is_file()) {
            notes.extend(split_notes(&read_text(file)?));
        }
    } else {
        notes = split_notes(&read_text(path)?);
    }
    if notes.is_empty() {
        anyhow::bail!(
            "no checkpoint notes were found in --pinned {}: pass the file or folder that the checkpoint sink writes",
            path.display()
        );
    }
    Ok(notes)
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))
}

fn run_export(ledger: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let reader = LedgerReader::open_read_only(ledger)?;
    let mut out = BufWriter::new(io::stdout().lock());
    let result = match format {
        Format::Jsonl => export_jsonl(&reader, &mut out),
        Format::Ocsf => export_ocsf(&reader, &mut out),
        Format::Bundle => unreachable!("bundles are written by run_export_bundle"),
    };
    match result {
        Ok(_) => Ok(ExitCode::SUCCESS),
        // A closed pipe (`| head`) means the reader has all it wants.
        Err(ExportError::Write(error)) if error.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(error) => Err(error.into()),
    }
}

fn run_export_bundle(ledger: &Path, out: Option<&Path>, key: Option<&str>) -> anyhow::Result<ExitCode> {
    let out = out.context("--format bundle requires --out DIR")?;
    let key = if let Some(key) = key {
        read_verifier_key(key)?
    } else {
        let beside = ledger.parent().unwrap_or(Path::new(".")).join(KEY_FILE);
        if !beside.is_file() {
            anyhow::bail!(
                "--format bundle requires --key FILE: no {} next to the ledger directory {}",
                KEY_FILE,
                ledger.display()
            );
        }
        read_verifier_key(&beside.to_string_lossy())?
    };
    let reader = LedgerReader::open_read_only(ledger)?;
    let summary = bundle::export_bundle(&reader, &key, out)?;
    println!(
        "wrote bundle {}: {} records, {} checkpoints, root hash {}",
        out.display(),
        summary.records,
        summary.checkpoints,
        hex::encode(summary.root_hash)
    );
    Ok(ExitCode::SUCCESS)
}

fn run_verify_bundle(dir: &Path, key: Option<&str>) -> anyhow::Result<ExitCode> {
    let key = key.map(read_verifier_key).transpose()?;
    let report = bundle::verify_bundle(dir, key.as_ref())?;
    if let Some(first_break) = &report.first_break {
        println!("BROKEN: {first_break}");
        if report.records_read {
            println!("{} records verified before the break in bundle {}", report.records_checked, dir.display());
        } else {
            println!("no records of bundle {} were checked", dir.display());
        }
        return Ok(ExitCode::from(1));
    }
    println!("OK: {} records verified in bundle {}", report.records_checked, dir.display());
    for gap in &report.gaps {
        println!("{gap}");
    }
    if report.gaps.is_empty() {
        println!("complete=true: no record reports lost events or a time without a daemon");
    }
    println!("tree: size {}, root hash {}", report.records_checked, hex::encode(report.root_hash));
    let source = if report.key_from_bundle {
        "the key inside the bundle: pass --key to check against the owner's key"
    } else {
        "the given key"
    };
    println!("checkpoints: {} verified with {source}", report.checkpoints_checked);
    let (signed, records) = (report.signed_tree_size, report.records_checked);
    if signed == 0 && records > 0 {
        // Anyone can write a chain; only a signed checkpoint ties records to
        // the key's owner.
        println!("NOT SIGNED: no signed checkpoint covers any record of bundle {}", dir.display());
        return Ok(ExitCode::from(1));
    }
    if signed > 0 {
        print!("signed: records 0..={} are covered by the checkpoint of tree size {signed}", signed - 1);
        if signed < records {
            print!("; records {signed}..={} are not covered by a signed checkpoint", records - 1);
        }
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

fn run_query(args: &QueryArgs) -> anyhow::Result<ExitCode> {
    if let (Some(since), Some(until)) = (args.since, args.until)
        && since > until
    {
        anyhow::bail!("invalid time range: --since is later than --until");
    }
    let query = Query {
        agent: args.agent.clone(),
        hook: args.hook,
        verdict: args.verdict,
        rule_id: args.rule,
        rule_name: args.rule_name.clone(),
        object: args.object.clone(),
        since_ns: args.since,
        until_ns: args.until,
        via: args.via,
        limit: args.limit,
    };
    let reader = LedgerReader::open_read_only(&args.ledger)?;
    let found = query::run(&reader, &query)?;

    let mut out = BufWriter::new(io::stdout().lock());
    let result = match args.format {
        QueryFormat::Json => found.iter().try_for_each(|stored| writeln!(out, "{}", record_json(stored))),
        QueryFormat::Table => write_table(&mut out, &found),
    };
    match result.and_then(|()| out.flush()) {
        Err(error) if error.kind() != io::ErrorKind::BrokenPipe => {
            Err(error).context("failed to write the query output")
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Writes query results as aligned columns. Control characters and
/// invisible or reordering characters in names and paths are escaped, so
/// that they cannot act on the terminal or change what a cell shows.
fn write_table(out: &mut impl Write, found: &[StoredRecord]) -> io::Result<()> {
    let rows: Vec<[String; 7]> = found
        .iter()
        .map(|stored| {
            let record = &stored.record;
            let (agent, hook, verdict, rule, object) = match &record.body {
                RecordBody::Decision(decision) => {
                    let rule = if decision.rule.is_empty() {
                        decision.rule_id.to_string()
                    } else {
                        format!("{}:{}", decision.rule_id, decision.rule)
                    };
                    let verdict = match decision.lease_id {
                        0 => decision.verdict.name().to_owned(),
                        lease_id => format!("{} (lease {lease_id})", decision.verdict.name()),
                    };
                    // The hook column, unlike the object, contains no text the
                    // agent chose, so the marker cannot be forged there.
                    let hook = match decision.via {
                        Via::Syscall => decision.hook.name().to_owned(),
                        Via::IoUring => format!("{} via io_uring", decision.hook.name()),
                    };
                    let object = object_text(&decision.object);
                    (decision.agent.clone(), hook, verdict, rule, object)
                }
                RecordBody::Identity(identity) => {
                    let exe = String::from_utf8_lossy(&identity.exe_path).into_owned();
                    (identity.agent.clone(), "-".to_owned(), "-".to_owned(), "-".to_owned(), exe)
                }
                _ => (String::new(), "-".to_owned(), "-".to_owned(), "-".to_owned(), String::new()),
            };
            [
                record.seq.to_string(),
                timestamp::format_rfc3339(record.time_ns),
                escape_controls(&agent),
                hook,
                verdict,
                escape_controls(&rule),
                escape_controls(&object),
            ]
        })
        .collect();

    let header = ["SEQ", "TIME", "AGENT", "HOOK", "VERDICT", "RULE", "OBJECT"].map(str::to_owned);
    let mut widths = header.clone().map(|title| title.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            if column + 1 == row.len() {
                line.push_str(cell);
            } else {
                write!(line, "{cell:<width$}  ", width = widths[column]).expect("writing to a String cannot fail");
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn escape_controls(text: &str) -> String {
    text.chars()
        .map(|character| {
            if character.is_control() || is_invisible(character) {
                character.escape_default().to_string()
            } else {
                character.to_string()
            }
        })
        .collect()
}

/// Returns whether a character that is not a control character can still
/// hide or reorder text on a terminal. These are the bidirectional controls
/// (a path ending in `U+202E gpj.tac` shows as `cat.jpg`), zero-width and
/// other format characters, the line and paragraph separators, and the tag
/// characters that can carry hidden ASCII.
fn is_invisible(character: char) -> bool {
    matches!(
        character,
        '\u{ad}'
            | '\u{61c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{e0000}'..='\u{e007f}'
    )
}
