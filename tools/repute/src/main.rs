//! `repute`: build, query, inspect and verify reputation snapshots.
//!
//! The binary owns the terminal: the library never prints. Exit codes follow clamscan:
//! 0 nothing malicious found, 1 something malicious found, 2 an error.

mod apikey;
mod atomic;
mod bench;
mod build;
mod cloud;
mod completions;
mod diff;
mod export;
mod inspect;
mod keys;
mod lookup;
mod merge;
mod output;
mod policy;
mod publish;
mod scan;
mod serve;
mod stats;
mod status;
mod update;
mod verified;
mod verify;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use repute::time::iso8601;

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
    Keygen(keys::KeygenArgs),
    Sign(keys::SignArgs),
    Publish(publish::PublishArgs),
    Update(update::UpdateArgs),
    Diff(diff::DiffArgs),
    Merge(merge::MergeArgs),
    Serve(serve::ServeArgs),
    Apikey(apikey::ApikeyArgs),
    Status(status::StatusArgs),
    Cloud(cloud::CloudArgs),
    Stats(stats::StatsArgs),
    Completions(completions::CompletionsArgs),
    Man(completions::ManArgs),
}

impl Command {
    /// Whether the command was asked for JSON output: its errors then also go to standard
    /// output as a JSON error object.
    fn json_output(&self) -> bool {
        match self {
            Command::Build(a) => a.json(),
            Command::Lookup(a) => a.json(),
            Command::Scan(a) => a.json(),
            Command::Inspect(a) => a.json(),
            Command::Verify(a) => a.json(),
            Command::Status(a) => a.json(),
            _ => false,
        }
    }
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
    let json_output = cli.command.json_output();
    let result = match cli.command {
        Command::Build(args) => build::run(args),
        Command::Export(args) => export::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Lookup(args) => lookup::run(args),
        Command::Scan(args) => scan::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Keygen(args) => keys::run_keygen(args),
        Command::Sign(args) => keys::run_sign(args),
        Command::Publish(args) => publish::run(args),
        Command::Update(args) => update::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Apikey(args) => apikey::run(args),
        Command::Status(args) => status::run(args),
        Command::Cloud(args) => cloud::run(args),
        Command::Stats(args) => stats::run(args),
        Command::Completions(args) => completions::run_completions::<Cli>(args),
        Command::Man(args) => completions::run_man::<Cli>(args),
    };
    match result {
        Ok(outcome) => outcome.code(),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            if json_output {
                let _ = output::write_command_error(&mut std::io::stdout().lock(), &e);
            }
            // Messages quote queries, feed lines and file names: escape them.
            let message = output::message(&e);
            let _ = writeln!(
                std::io::stderr(),
                "repute: {}",
                repute::text::escape_text(&message)
            );
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

/// What `lookup` and `scan` answer from: a snapshot file, or the set in force in an update
/// state directory (through the engine: base and deltas).
#[allow(clippy::large_enum_variant)] // one per command
enum Source {
    Snapshot(repute::Snapshot<memmap2::Mmap>),
    View(std::sync::Arc<repute::View>),
}

impl Source {
    fn digests(&self) -> &(dyn repute::scan::DigestSource + Sync) {
        match self {
            Source::Snapshot(s) => s,
            Source::View(v) => &**v,
        }
    }

    /// The sequence number of the snapshot (or of the engine's current view).
    fn sequence(&self) -> u64 {
        match self {
            Source::Snapshot(s) => s.metadata().map_or(0, |m| m.sequence),
            Source::View(v) => v.sequence(),
        }
    }
}

/// `--public-key`: answer only from data the publisher signed.
#[derive(Debug, Clone, clap::Args)]
struct TrustArgs {
    /// Require the publisher's signature (minisign format) on what is opened: for a
    /// snapshot file its `SNAPSHOT.minisig`, for a state directory every layer's signature
    /// kept beside it by `repute update`. A missing or wrong signature is an error.
    #[arg(long, value_name = "PUB")]
    public_key: Option<PathBuf>,
}

impl TrustArgs {
    fn key(&self) -> anyhow::Result<Option<repute::sign::PublicKey>> {
        use anyhow::Context;
        self.public_key
            .as_deref()
            .map(|p| {
                repute::sign::PublicKey::from_file(p)
                    .with_context(|| format!("cannot read public key {}", p.display()))
            })
            .transpose()
    }

    /// Engine options that enforce the key, if one is given.
    fn engine_options(&self) -> anyhow::Result<repute::EngineOptions> {
        let options = repute::EngineOptions::default();
        Ok(match self.key()? {
            Some(key) => options.with_public_key(key),
            None => options,
        })
    }
}

/// Opens a state directory through the engine, enforcing `trust`.
fn open_engine(path: &Path, trust: &TrustArgs) -> anyhow::Result<repute::Engine> {
    use anyhow::Context;
    let options = trust.engine_options()?;
    #[allow(unsafe_code)]
    // SAFETY: a state directory's files are only ever written by rename (repute update and
    // the library's StateDir write that way); the CLI holds the mapping only for one command.
    let engine = unsafe { repute::Engine::open_state_dir_with(path, options) }
        .with_context(|| format!("cannot open state directory {}", path.display()))?;
    Ok(engine)
}

/// Opens a snapshot file, or a state directory (a directory holding `current.json`).
fn open_source(path: &Path, trust: &TrustArgs) -> anyhow::Result<Source> {
    use anyhow::Context;
    if path.is_dir() {
        return Ok(Source::View(open_engine(path, trust)?.load_full()));
    }
    let snapshot = open_snapshot(path)?;
    if let Some(key) = trust.key()? {
        let sig_path = repute::sign::signature_path(path);
        let sig = std::fs::read_to_string(&sig_path).with_context(|| {
            format!(
                "{} has no readable signature {}",
                path.display(),
                sig_path.display()
            )
        })?;
        repute::sign::verify_snapshot(&key, &snapshot, &sig)
            .with_context(|| format!("signature {} refused", sig_path.display()))?;
    }
    if snapshot.is_delta() {
        anyhow::bail!(
            "{} is a delta, not a whole snapshot: merge it into its base (repute merge) or use a state directory",
            path.display()
        );
    }
    Ok(Source::Snapshot(snapshot))
}

/// The current time, Unix seconds.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
