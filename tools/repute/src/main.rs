//! `repute`: build, query, inspect and verify reputation snapshots.
//!
//! The binary owns the terminal: the library never prints. Exit codes follow clamscan:
//! 0 nothing malicious found, 1 something malicious found, 2 an error.

mod apikey;
mod bench;
mod build;
mod cloud;
mod export;
mod inspect;
mod lookup;
mod scan;
mod serve;
mod stats;
mod verify;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Local reputation lookups for file hashes and URLs.
///
/// repute answers "is this file hash / this URL known bad, known good, or unknown?" from an
/// immutable snapshot file, in well under a microsecond per lookup. Build a snapshot from
/// your feeds once, then look things up as often as you like.
///
/// Exit codes: 0 nothing malicious found, 1 something malicious found, 2 error.
#[derive(Debug, Parser)]
#[command(name = "repute", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "\
Examples:
  repute build -o bad.snap --feed hashes::data/malware-hashes.txt --feed domains::data/bad-domains.txt
  repute lookup bad.snap 44d88612fea8a8f36de82e1278abb02f http://malware.example.com/x
  cat hashes.txt | repute lookup bad.snap --format jsonl
  repute inspect bad.snap
  repute verify bad.snap";

#[derive(Debug, Subcommand)]
enum Command {
    Build(build::BuildArgs),
    Export(export::ExportArgs),
    Bench(bench::BenchArgs),
    Lookup(lookup::LookupArgs),
    Scan(scan::ScanArgs),
    Inspect(inspect::InspectArgs),
    Verify(verify::VerifyArgs),
    Cloud(cloud::CloudArgs),
    Stats(stats::StatsArgs),
    Serve(serve::ServeArgs),
    Apikey(apikey::ApikeyArgs),
}

/// What a command found, mapped to the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Clean,
    Malicious,
    Error,
}

impl Outcome {
    fn code(self) -> ExitCode {
        match self {
            Outcome::Clean => ExitCode::SUCCESS,
            Outcome::Malicious => ExitCode::from(1),
            Outcome::Error => ExitCode::from(2),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(args) => build::run(args),
        Command::Export(args) => export::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Lookup(args) => lookup::run(args),
        Command::Scan(args) => scan::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Cloud(args) => cloud::run(args),
        Command::Stats(args) => stats::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Apikey(args) => apikey::run(args),
    };
    match result {
        Ok(outcome) => outcome.code(),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "repute: {e:#}");
            Outcome::Error.code()
        }
    }
}

/// A closed pipe downstream (`repute lookup ... | head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Opens a snapshot by memory-mapping it.
fn open_snapshot(path: &Path) -> anyhow::Result<repute::Snapshot<memmap2::Mmap>> {
    use anyhow::Context;
    #[allow(unsafe_code)]
    // SAFETY: snapshots are published by rename and never modified in place (the builder
    // writes a temporary file and renames it); the CLI holds the mapping only for the
    // duration of one command.
    let snapshot = unsafe { repute::Snapshot::map(path) };
    snapshot.with_context(|| format!("cannot open snapshot {}", path.display()))
}

/// Formats Unix seconds as an ISO-8601 UTC timestamp.
fn iso8601(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_known_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_798_675_200), "2026-12-31T00:00:00Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
