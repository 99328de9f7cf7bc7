//! `lupid-ledger`: check and export a lupid ledger.
//!
//! Exit codes: 0 success (for `verify`: the chain is intact), 1 `verify`
//! found a break, 2 error (the ledger cannot be opened or read, or the
//! output cannot be written).

use std::{
    io::{self, BufWriter},
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand, ValueEnum};
use lupid_ledger::{ExportError, LedgerReader, export_jsonl, verify};

const DEFAULT_LEDGER: &str = "/var/lib/lupid/ledger";

#[derive(Parser)]
#[command(version, about = "Check and export a lupid ledger")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the hash chain. Exits 0 when intact, 1 at the first break,
    /// 2 when the ledger cannot be read.
    Verify {
        /// Ledger directory.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_LEDGER)]
        ledger: PathBuf,
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
        Command::Verify { ledger } => run_verify(&ledger),
        Command::Export { ledger, format } => run_export(&ledger, format),
    };
    result.unwrap_or_else(|error| {
        eprintln!("lupid-ledger: error: {error:#}");
        ExitCode::from(2)
    })
}

fn run_verify(ledger: &Path) -> anyhow::Result<ExitCode> {
    let report = verify(ledger)?;
    if let Some(first_break) = &report.first_break {
        println!("BROKEN: {first_break}");
        println!("{} records verified before the break in {}", report.records_checked, ledger.display());
        return Ok(ExitCode::from(1));
    }

    println!("OK: {} records verified in {}", report.records_checked, ledger.display());
    match report.head {
        Some((seq, hash)) => println!("head: record {seq}, hash {}", hex::encode(hash)),
        None => println!("head: none (the ledger is empty)"),
    }
    Ok(ExitCode::SUCCESS)
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
