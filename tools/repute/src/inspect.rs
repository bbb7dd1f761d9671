//! `repute inspect`: what a snapshot holds and how big it is.

use repute::text::escape_text;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use repute::{DigestKind, Metadata};
use serde::Serialize;

use crate::output::Format;
use crate::{iso8601, open_snapshot, unix_now, Outcome};

/// Show a snapshot's version, build information, sections, and counts of keys per kind,
/// verdict and feed, with the bytes each key costs.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The snapshot file.
    snapshot: PathBuf,
    /// Output format: text, or one JSON object (json and jsonl are the same).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

impl InspectArgs {
    /// Whether errors go to standard output as JSON too.
    pub fn json(&self) -> bool {
        self.format.is_json()
    }
}

#[derive(Debug, Serialize)]
struct Section {
    name: &'static str,
    offset: u64,
    bytes: u64,
}

#[derive(Debug, Serialize)]
struct Inspection {
    path: String,
    format_version: u32,
    file_bytes: u64,
    metadata: Metadata,
    /// The cloud policy in words, as of now.
    cloud: String,
    sections: Vec<Section>,
    /// Bytes per entry of each digest table (fingerprint, record id and bucket index).
    digest_table_bytes_per_key: BTreeMap<String, f64>,
    /// Bytes of the whole file per key.
    file_bytes_per_key: f64,
    filter_bits_per_key: f64,
}

pub fn run(args: InspectArgs) -> Result<Outcome> {
    let snapshot = open_snapshot(&args.snapshot)?;
    let metadata = snapshot.metadata()?;
    let sections: Vec<Section> = snapshot
        .sections()
        .into_iter()
        .map(|(name, offset, bytes)| Section {
            name,
            offset,
            bytes,
        })
        .collect();
    let mut per_key = BTreeMap::new();
    for kind in DigestKind::ALL {
        let table = snapshot.digest_table(kind);
        let names = [
            format!("{} table", kind.as_str()),
            format!("{} slot table", kind.as_str()),
        ];
        if let Some(s) = sections.iter().find(|s| names.iter().any(|n| n == s.name)) {
            if !table.is_empty() {
                per_key.insert(
                    kind.as_str().to_string(),
                    s.bytes as f64 / table.len() as f64,
                );
            }
        }
    }
    let total_keys: u64 = metadata.keys.values().sum();
    let file_bytes = snapshot.as_bytes().len() as u64;
    let inspection = Inspection {
        path: args.snapshot.display().to_string(),
        format_version: repute::format::VERSION,
        file_bytes,
        digest_table_bytes_per_key: per_key,
        file_bytes_per_key: if total_keys > 0 {
            file_bytes as f64 / total_keys as f64
        } else {
            0.0
        },
        filter_bits_per_key: if total_keys > 0 {
            snapshot.filter_bytes() as f64 * 8.0 / total_keys as f64
        } else {
            0.0
        },
        sections,
        cloud: metadata
            .policy
            .clone()
            .unwrap_or_default()
            .describe(unix_now()),
        metadata,
    };
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => crate::output::write_json(&mut out, &inspection)?,
        Format::Text => print_text(&mut out, &inspection)?,
    }
    Ok(Outcome::Clean)
}

fn print_text(out: &mut impl Write, i: &Inspection) -> Result<()> {
    let m = &i.metadata;
    writeln!(out, "snapshot     {}", i.path)?;
    writeln!(
        out,
        "format       version {}, {} bytes",
        i.format_version, i.file_bytes
    )?;
    writeln!(out, "generator    {}", escape_text(&m.generator))?;
    writeln!(out, "created      {} ({})", iso8601(m.created), m.created)?;
    if let Some(e) = m.expires {
        writeln!(out, "expires      {} ({e})", iso8601(e))?;
    }
    writeln!(out, "sequence     {}", m.sequence)?;
    let policy = m.policy.clone().unwrap_or_default();
    writeln!(out, "cloud        {}", policy.describe(unix_now()))?;
    writeln!(out, "records      {}", m.records)?;
    writeln!(out, "keys")?;
    for (kind, n) in &m.keys {
        let extra = i
            .digest_table_bytes_per_key
            .get(kind)
            .map(|b| format!("  ({b:.2} bytes/key in its table)"))
            .unwrap_or_default();
        writeln!(out, "  {kind:<10} {n:>12}{extra}")?;
    }
    writeln!(out, "verdicts")?;
    for (v, n) in &m.verdicts {
        writeln!(out, "  {v:<10} {n:>12}")?;
    }
    writeln!(out, "feeds")?;
    for f in &m.feeds {
        writeln!(
            out,
            "  {:<24} {:<10} {:<10} {:>12} keys{}",
            escape_text(&f.source),
            escape_text(&f.format),
            f.verdict,
            f.keys,
            if f.r#override { "  (override)" } else { "" }
        )?;
    }
    writeln!(out, "sections")?;
    for s in &i.sections {
        writeln!(
            out,
            "  {:<14} {:>14} bytes at {}",
            s.name, s.bytes, s.offset
        )?;
    }
    writeln!(
        out,
        "size         {:.2} bytes/key overall, filter {:.1} bits/key",
        i.file_bytes_per_key, i.filter_bits_per_key
    )?;
    Ok(())
}
