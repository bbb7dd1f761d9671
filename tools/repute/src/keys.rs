//! `repute keygen` and `repute sign`: minisign-format keys and snapshot signatures.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use repute::sign::{self, KeyPair, SecretKey, SnapshotComment};

use crate::{atomic, open_snapshot, Outcome};

/// Make a signing key pair in minisign's format (Ed25519).
///
/// The secret key is written unencrypted, readable by its owner only (0600); keep it off
/// the machines that only verify. The public key is what `repute verify --public-key`,
/// `repute update --public-key` and `minisign -Vm FILE -p PUB` take. Existing files are not
/// overwritten unless --force is given.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the public key.
    #[arg(short = 'p', long)]
    public_key: PathBuf,
    /// Where to write the secret key.
    #[arg(short = 's', long)]
    secret_key: PathBuf,
    /// Replace existing key files.
    #[arg(long)]
    force: bool,
}

pub fn run_keygen(args: KeygenArgs) -> Result<Outcome> {
    let pair = KeyPair::generate()?;
    atomic::write_file(
        &args.secret_key,
        pair.secret.to_file_text().as_bytes(),
        0o600,
        args.force,
    )?;
    atomic::write_file(
        &args.public_key,
        pair.public.to_file_text().as_bytes(),
        0o644,
        args.force,
    )?;
    writeln!(
        std::io::stdout(),
        "key {}: public key {}, secret key {}",
        pair.public.key_id(),
        args.public_key.display(),
        args.secret_key.display()
    )?;
    Ok(Outcome::Clean)
}

/// Sign a snapshot: writes SNAPSHOT.minisig, a minisign signature whose trusted comment
/// names the snapshot's sequence and identity:
/// `repute snapshot sequence=N identity=SHA256 kind=base`.
///
/// The snapshot is fully verified first; a damaged file is not signed.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The snapshot file.
    snapshot: PathBuf,
    /// The secret key (from `repute keygen`, or `minisign -G -W`).
    #[arg(short = 's', long)]
    secret_key: PathBuf,
}

pub fn run_sign(args: SignArgs) -> Result<Outcome> {
    let secret = SecretKey::from_file(&args.secret_key)?;
    let snapshot = open_snapshot(&args.snapshot)?;
    snapshot
        .verify()
        .with_context(|| format!("{} is damaged; not signing it", args.snapshot.display()))?;
    let comment = SnapshotComment::of(&snapshot)?;
    let text = sign::sign(&secret, snapshot.as_bytes(), &comment.to_string())?;
    let out = sign::signature_path(&args.snapshot);
    atomic::write_file(&out, text.as_bytes(), 0o644, true)?;
    writeln!(
        std::io::stdout(),
        "{}: signed with key {} ({comment})",
        out.display(),
        secret.key_id()
    )?;
    Ok(Outcome::Clean)
}
