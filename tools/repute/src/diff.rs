//! `repute diff`: write the delta from one snapshot to the next.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::{open_snapshot, Outcome};

/// Write a delta: the keys NEW adds, changes and removes relative to OLD, with OLD's and
/// NEW's identities, so that `repute merge OLD DELTA` rebuilds NEW byte for byte.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The snapshot the delta applies to.
    old: PathBuf,
    /// The snapshot the delta leads to.
    new: PathBuf,
    /// Where to write the delta.
    #[arg(short, long, value_name = "DELTA")]
    output: PathBuf,
}

pub fn run(args: DiffArgs) -> Result<Outcome> {
    let old = open_snapshot(&args.old)?;
    let new = open_snapshot(&args.new)?;
    old.verify()
        .with_context(|| format!("{} does not verify", args.old.display()))?;
    new.verify()
        .with_context(|| format!("{} does not verify", args.new.display()))?;
    let summary = repute::delta::diff(&old, &new, &args.output)
        .with_context(|| format!("cannot write delta {}", args.output.display()))?;
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "delta {}: {} added, {} changed, {} removed, {} records, {} bytes ({:.2}% of the new snapshot)",
        args.output.display(),
        summary.added,
        summary.changed,
        summary.removed,
        summary.records,
        summary.bytes,
        summary.bytes as f64 * 100.0 / new.as_bytes().len().max(1) as f64
    )?;
    Ok(Outcome::Clean)
}
