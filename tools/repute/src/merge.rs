//! `repute merge`: apply deltas to their base.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::{open_snapshot, Outcome};

/// Apply deltas, oldest first, to BASE and write the result, byte-identical to the snapshot
/// the last delta was made from. A delta for another base is refused.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The whole snapshot the first delta applies to.
    base: PathBuf,
    /// Deltas, oldest first.
    #[arg(required = true)]
    deltas: Vec<PathBuf>,
    /// Where to write the merged snapshot.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
}

pub fn run(args: MergeArgs) -> Result<Outcome> {
    let base = open_snapshot(&args.base)?;
    base.verify()
        .with_context(|| format!("{} does not verify", args.base.display()))?;
    let mut deltas = Vec::with_capacity(args.deltas.len());
    for path in &args.deltas {
        let d = open_snapshot(path)?;
        d.verify()
            .with_context(|| format!("{} does not verify", path.display()))?;
        deltas.push(d);
    }
    let refs: Vec<_> = deltas.iter().collect();
    repute::delta::merge(&base, &refs, &args.output)
        .with_context(|| format!("cannot merge into {}", args.output.display()))?;
    writeln!(
        std::io::stderr().lock(),
        "merged {} delta(s) into {}",
        deltas.len(),
        args.output.display()
    )?;
    Ok(Outcome::Clean)
}
