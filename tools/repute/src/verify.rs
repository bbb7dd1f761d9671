//! `repute verify`: read every byte of a snapshot and check it.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use serde::Serialize;

use crate::output::Format;
use crate::{open_snapshot, Outcome};

/// Fully check a snapshot: every section checksum, the whole-file digest, and every
/// structural invariant (sorted tables, record and string references, the URL FST).
///
/// With --public-key, also check SNAPSHOT.minisig: a minisign signature by that key whose
/// trusted comment names this snapshot's sequence and identity.
///
/// Exit 0 when the file is intact (and signed); 2 with a message naming the damaged section,
/// or why the signature is missing or refused, otherwise.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The snapshot file.
    snapshot: PathBuf,
    /// A minisign public key file: require a valid signature SNAPSHOT.minisig by it.
    #[arg(short = 'p', long)]
    public_key: Option<PathBuf>,
    /// Output format: a text line, or one JSON object (json and jsonl are the same).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

impl VerifyArgs {
    /// Whether errors go to standard output as JSON too.
    pub fn json(&self) -> bool {
        self.format.is_json()
    }
}

#[derive(Debug, Serialize)]
struct JsonVerified {
    path: String,
    ok: bool,
    bytes: usize,
    sections: usize,
    seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    signed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence: Option<u64>,
}

pub fn run(args: VerifyArgs) -> Result<Outcome> {
    let started = Instant::now();
    let snapshot = open_snapshot(&args.snapshot)?;
    snapshot
        .verify()
        .with_context(|| format!("{} is damaged", args.snapshot.display()))?;
    let mut signer = None;
    let signed = match &args.public_key {
        None => String::new(),
        Some(key) => {
            let public = repute::sign::PublicKey::from_file(key)?;
            let sig_path = repute::sign::signature_path(&args.snapshot);
            let text = match std::fs::read_to_string(&sig_path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    anyhow::bail!(
                        "{}: signature missing: {} does not exist",
                        args.snapshot.display(),
                        sig_path.display()
                    )
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot read {}", sig_path.display()))
                }
            };
            let comment = repute::sign::verify_snapshot(&public, &snapshot, &text)
                .with_context(|| format!("{}: signature refused", sig_path.display()))?;
            signer = Some((public.key_id().to_string(), comment.sequence));
            format!(
                ", signed by key {}: sequence {}",
                public.key_id(),
                comment.sequence
            )
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    let bytes = snapshot.as_bytes().len();
    if args.format.is_json() {
        let report = JsonVerified {
            path: args.snapshot.display().to_string(),
            ok: true,
            bytes,
            sections: snapshot.sections().len(),
            seconds: elapsed,
            sequence: signer.as_ref().map(|s| s.1),
            signed_by: signer.map(|s| s.0),
        };
        crate::output::write_json(&mut std::io::stdout().lock(), &report)?;
        return Ok(Outcome::Clean);
    }
    writeln!(
        std::io::stdout(),
        "{}: ok ({} bytes, {} sections, verified in {:.3}s{})",
        args.snapshot.display(),
        bytes,
        snapshot.sections().len(),
        elapsed,
        signed
    )?;
    Ok(Outcome::Clean)
}
