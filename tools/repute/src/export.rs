//! `repute export`: write a snapshot's entries in another tool's format.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use repute::feeds::export_clamav_md5;
use repute::Verdict;

use crate::{open_snapshot, Outcome};

/// Export a snapshot's MD5 entries as a ClamAV hash signature file (.hdb), so the same data
/// can be loaded by `clamscan -d` for side-by-side comparisons.
///
/// Lines are `md5:*:name:73` (73 is the functionality level from which ClamAV accepts `*`
/// as the size). A snapshot keeps a 128-bit fingerprint of each digest, which is the whole
/// MD5 but not a whole SHA-1 or SHA-256, so only MD5 entries can be exported from a
/// snapshot; export SHA signatures from the feeds themselves.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write a ClamAV hash signature file.
    #[arg(long, required = true)]
    clamav: bool,
    /// The snapshot file.
    snapshot: PathBuf,
    /// The output file (.hdb).
    output: PathBuf,
    /// Which entries to export.
    #[arg(long, default_value = "malicious")]
    verdict: String,
}

pub fn run(args: ExportArgs) -> Result<Outcome> {
    let verdict: Verdict = args.verdict.parse().map_err(anyhow::Error::msg)?;
    match args.output.extension().and_then(|e| e.to_str()) {
        Some("hdb") => {}
        Some("hsb") => bail!(
            "{}: a snapshot stores 128-bit fingerprints, not whole SHA-1/SHA-256 digests, so an .hsb \
             cannot be exported from it; export MD5 entries to an .hdb instead",
            args.output.display()
        ),
        _ => bail!("{}: the output must end in .hdb", args.output.display()),
    }
    let snapshot = open_snapshot(&args.snapshot)?;
    let mut bytes = Vec::new();
    let written = export_clamav_md5(&snapshot, verdict, &mut bytes)?;
    repute::build::write_atomically(&args.output, &bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    writeln!(
        std::io::stderr(),
        "exported {written} {verdict} MD5 signatures to {}",
        args.output.display()
    )?;
    Ok(Outcome::Clean)
}
