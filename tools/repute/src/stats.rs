//! `repute stats`: the service side's statistics database, offline.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use repute_stats::{Day, DigestType, ExportOptions, StatsStore};

use crate::{open_snapshot, Outcome};

/// Work with a statistics database (the one `repute serve` keeps).
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  repute stats export --db stats.db --min-reporters 10 -o prevalence.jsonl
  repute build -o next.snap --feed hashes::bad.txt --feed repute-stats::prevalence.jsonl")]
pub struct StatsArgs {
    #[command(subcommand)]
    action: StatsAction,
}

#[derive(Debug, Subcommand)]
enum StatsAction {
    /// Write the prevalence feed (JSON lines, the `repute-stats` feed format) and a summary.
    ///
    /// A digest is exported only if at least K distinct reporters sent it on one day.
    /// Counts are rounded down to buckets (1, 2, 5, 10, 20, 50, ...). The summary of
    /// detections by name goes to OUT.summary.json (or --summary).
    Export(ExportArgs),
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// The statistics database.
    #[arg(long, value_name = "FILE")]
    db: PathBuf,
    /// Distinct reporters a digest needs on one day.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    min_reporters: u32,
    /// Only days from this one on (YYYY-MM-DD).
    #[arg(long, value_name = "DAY", value_parser = parse_day)]
    since: Option<Day>,
    /// The feed to write.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// Where the summary goes (default: OUT.summary.json).
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,
    /// Name detections from this snapshot (its threat names).
    #[arg(long, value_name = "SNAPSHOT")]
    snapshot: Option<PathBuf>,
}

fn parse_day(s: &str) -> Result<Day, String> {
    s.parse()
}

fn write_atomically(path: &std::path::Path, data: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub fn run(args: StatsArgs) -> Result<Outcome> {
    let StatsAction::Export(a) = args.action;
    if !a.db.exists() {
        anyhow::bail!("no statistics database at {}", a.db.display());
    }
    let store = StatsStore::open(&a.db)?;
    let snapshot = a.snapshot.as_deref().map(open_snapshot).transpose()?;
    let names = |_: DigestType, hex: &str| -> Option<String> {
        let s = snapshot.as_ref()?;
        let d = repute::Digest::from_hex(hex.as_bytes()).ok()?;
        s.lookup_digest(&d)
            .and_then(|r| r.name().map(str::to_string))
    };
    let mut feed = Vec::new();
    let summary = store.export(
        &ExportOptions {
            min_reporters: a.min_reporters,
            since: a.since,
        },
        &names,
        &mut feed,
    )?;
    write_atomically(&a.output, &feed)?;
    let summary_path = a.summary.unwrap_or_else(|| {
        let mut p = a.output.clone().into_os_string();
        p.push(".summary.json");
        PathBuf::from(p)
    });
    let mut text = serde_json::to_vec_pretty(&summary)?;
    text.push(b'\n');
    write_atomically(&summary_path, &text)?;
    eprintln!(
        "exported {} digests seen by at least {} reporters to {} (summary: {})",
        summary.digests,
        summary.min_reporters,
        a.output.display(),
        summary_path.display()
    );
    Ok(Outcome::Clean)
}
