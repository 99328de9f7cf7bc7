//! `lupid-ledger`: check, prove and export a lupid ledger.
//!
//! Exit codes: 0 success (for `verify`: the chain, tree and checkpoints
//! hold; for `verify-proof`: the proof holds), 1 `verify` or `verify-proof`
//! found a break, 2 error (the ledger, a key or a file cannot be read, or
//! the output cannot be written).

use std::{
    io::{self, BufWriter},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use lupid_ledger::{
    Checkpoint, ExportError, LedgerReader, StoredRecord, VerifierKey, audit, checkpoint::split_notes, export_jsonl,
    keys, leaf_hash, proof, record_json,
};

const DEFAULT_LEDGER: &str = "/var/lib/lupid/ledger";
const DEFAULT_KEY: &str = "/var/lib/lupid/ledger.key";

#[derive(Parser)]
#[command(version, about = "Check and export a lupid ledger")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the hash chain, the Merkle tree and the checkpoints. Exits 0
    /// when all hold, 1 at the first break, 2 when something cannot be read.
    Verify {
        /// Ledger directory.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_LEDGER)]
        ledger: PathBuf,
        /// File or folder of checkpoint notes kept off the host; the ledger
        /// must extend every one. Requires --key.
        #[arg(long, value_name = "FILE", requires = "key")]
        pinned: Option<PathBuf>,
        /// Verifier key (`name+id+base64`), or a file that contains it.
        #[arg(long, value_name = "VERIFIER_KEY_OR_FILE")]
        key: Option<String>,
    },
    /// Print the latest signed checkpoint note.
    Checkpoint {
        /// Ledger directory.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_LEDGER)]
        ledger: PathBuf,
    },
    /// Print an inclusion proof of one record as JSON.
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
    /// Write every record to standard output.
    Export {
        /// Ledger directory.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_LEDGER)]
        ledger: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// JSON Lines: one object per record.
    Jsonl,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Verify { ledger, pinned, key } => run_verify(&ledger, pinned.as_deref(), key.as_deref()),
        Command::Checkpoint { ledger } => run_checkpoint(&ledger),
        Command::Prove { seq, ledger, checkpoint } => run_prove(&ledger, seq, checkpoint.as_deref()),
        Command::VerifyProof { proof, key } => run_verify_proof(&proof, &key),
        Command::Key { key_file } => run_key(&key_file),
        Command::Export { ledger, format } => run_export(&ledger, format),
    };
    result.unwrap_or_else(|error| {
        eprintln!("lupid-ledger: error: {error:#}");
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
        println!("{} records verified before the break in {}", chain.records_checked, ledger.display());
        return Ok(ExitCode::from(1));
    }
    if let Some(first_break) = &report.first_checkpoint_break {
        println!("BROKEN: {first_break}");
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
    let signatures = if key.is_some() { "signatures checked" } else { "signatures not checked: no --key" };
    println!("checkpoints: {} stored ({signatures}), {} pinned", report.stored_checked, report.pinned_checked);
    Ok(ExitCode::SUCCESS)
}

fn run_checkpoint(ledger: &Path) -> anyhow::Result<ExitCode> {
    let reader = LedgerReader::open_read_only(ledger)?;
    let checkpoint =
        reader.latest_checkpoint()?.with_context(|| format!("ledger {} has no checkpoint yet", ledger.display()))?;
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
/// pinned folder in name order.
fn read_pinned(path: &Path) -> anyhow::Result<Vec<String>> {
    if !path.is_dir() {
        return Ok(split_notes(&read_text(path)?));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("failed to read folder {}", path.display()))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("failed to read folder {}", path.display()))?;
    files.sort();
    let mut notes = Vec::new();
    for file in files.iter().filter(|file| file.is_file()) {
        notes.extend(split_notes(&read_text(file)?));
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
    };
    match result {
        Ok(_) => Ok(ExitCode::SUCCESS),
        // A closed pipe (`| head`) means the reader has all it wants.
        Err(ExportError::Write(error)) if error.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(error) => Err(error.into()),
    }
}
