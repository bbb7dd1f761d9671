//! `repute export`: write a snapshot's entries in another tool's format.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use repute::feeds::{clamav_md5_extension, export_clamav_md5};
use repute::Verdict;

use crate::{open_snapshot, Outcome};

/// Export a snapshot's MD5 entries as a ClamAV hash database, so the same data can be
/// loaded by `clamscan -d` for side-by-side comparisons: malicious entries to an .hdb
/// (signatures), suspicious ones to an .hdu (potentially unwanted), trusted ones to an .fp
/// (ClamAV's allowlist). The output's extension must match --verdict.
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
    /// The output file: .hdb (malicious), .hdu (suspicious) or .fp (trusted).
    output: PathBuf,
    /// Which entries to export.
    #[arg(long, default_value = "malicious")]
    verdict: String,
}

pub fn run(args: ExportArgs) -> Result<Outcome> {
    let verdict: Verdict = args.verdict.parse().map_err(anyhow::Error::msg)?;
    let Some(wanted) = clamav_md5_extension(verdict) else {
        bail!("ClamAV has no database for {verdict} entries; export malicious, suspicious or trusted ones");
    };
    match args.output.extension().and_then(|e| e.to_str()) {
        Some(ext) if ext == wanted => {}
        Some(ext @ ("hsb" | "hsu" | "sfp")) => bail!(
            "{}: a snapshot stores 128-bit fingerprints, not whole SHA-1/SHA-256 digests, so an \
             .{ext} cannot be exported from it; export MD5 entries to an .{wanted} instead",
            args.output.display()
        ),
        Some(ext @ ("hdb" | "hdu" | "fp")) => bail!(
            "{}: ClamAV reads .{ext} as {}, not {verdict} entries: name the output .{wanted} for \
             --verdict {verdict}",
            args.output.display(),
            match ext {
                "hdb" => "malware signatures",
                "hdu" => "potentially unwanted signatures",
                _ => "its allowlist",
            }
        ),
        _ => bail!(
            "{}: the output must end in .{wanted} for --verdict {verdict}",
            args.output.display()
        ),
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
