//! `repute verify`: read every byte of a snapshot and check it.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use crate::{open_snapshot, Outcome};

/// Fully check a snapshot: every section checksum, the whole-file digest, and every
/// structural invariant (sorted tables, record and string references, the URL FST).
///
/// Exit 0 when the file is intact; 2 with a message naming the damaged section otherwise.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The snapshot file.
    snapshot: PathBuf,
}

pub fn run(args: VerifyArgs) -> Result<Outcome> {
    let started = Instant::now();
    let snapshot = open_snapshot(&args.snapshot)?;
    snapshot
        .verify()
        .with_context(|| format!("{} is damaged", args.snapshot.display()))?;
    let elapsed = started.elapsed().as_secs_f64();
    let bytes = snapshot.as_bytes().len();
    writeln!(
        std::io::stdout(),
        "{}: ok ({} bytes, {} sections, verified in {:.3}s)",
        args.snapshot.display(),
        bytes,
        snapshot.sections().len(),
        elapsed
    )?;
    Ok(Outcome::Clean)
}
