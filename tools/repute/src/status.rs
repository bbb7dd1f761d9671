//! `repute status`: what an update state directory serves.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::output::Format;
use crate::{iso8601, open_engine, unix_now, Outcome, TrustArgs};

/// Show the snapshot in force in an update state directory: sequence, age, whether it is
/// stale (past its expiry), its layers (base and deltas) and the cloud policy. Exits 2 when
/// the directory cannot be loaded.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The state directory (as `repute update --state` keeps it).
    state: PathBuf,
    /// Output format: text, or one JSON object (json and jsonl are the same).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    trust: TrustArgs,
}

impl StatusArgs {
    /// Whether errors go to standard output as JSON too.
    pub fn json(&self) -> bool {
        self.format.is_json()
    }
}

pub fn run(args: StatusArgs) -> Result<Outcome> {
    let engine = open_engine(&args.state, &args.trust)?;
    let status = engine.status_at(unix_now());
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => crate::output::write_json(&mut out, &status)?,
        Format::Text => {
            writeln!(out, "state        {}", args.state.display())?;
            writeln!(out, "sequence     {}", status.sequence)?;
            writeln!(out, "identity     {}", status.identity)?;
            writeln!(
                out,
                "created      {} (age {})",
                iso8601(status.created),
                age(status.age_seconds)
            )?;
            match status.expires {
                Some(e) => writeln!(
                    out,
                    "expires      {}{}",
                    iso8601(e),
                    if status.stale { " (stale)" } else { "" }
                )?,
                None => writeln!(out, "expires      never")?,
            }
            writeln!(
                out,
                "stale        {}",
                if status.stale { "yes" } else { "no" }
            )?;
            writeln!(out, "layers       {}", status.layers)?;
            writeln!(out, "  base       {}", status.base)?;
            for d in &status.deltas {
                writeln!(out, "  delta      {d}")?;
            }
            writeln!(out, "cloud: {}", status.policy_description)?;
        }
    }
    Ok(Outcome::Clean)
}

fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}
