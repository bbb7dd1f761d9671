//! `repute publish`: a signed update channel in a plain directory that any static web
//! server, object store or CDN can serve.
//!
//! ```text
//! CHANNEL/
//!   <identity>.snap            full snapshots, named by their SHA-256 (never rewritten)
//!   <identity>.snap.minisig    their signatures (trusted comment names sequence + identity)
//!   manifest.json              what is current (written last: temp, fsync, rename)
//!   manifest.json.minisig      its signature (trusted comment: repute manifest sequence=N)
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use repute::sign::{self, SecretKey, SnapshotComment};
use serde::{Deserialize, Serialize};

use crate::{atomic, open_snapshot, unix_now, Outcome};

/// The manifest's file name in a channel directory.
pub const MANIFEST: &str = "manifest.json";

/// One file of the channel, as the manifest names it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// The file name, relative to the channel (content-addressed: `<sha256>.snap`).
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its lowercase hex SHA-256 (the snapshot identity).
    pub sha256: String,
    /// The snapshot's sequence.
    pub sequence: u64,
}

/// A delta from an older sequence to the manifest's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeltaEntry {
    /// The sequence it applies to.
    pub from_sequence: u64,
    /// The identity of the base it applies to.
    pub from_identity: String,
    /// The delta file.
    #[serde(flatten)]
    pub file: FileEntry,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Manifest format version (1).
    pub format: u32,
    /// The current sequence.
    pub sequence: u64,
    /// When this manifest was published, Unix seconds.
    pub created: i64,
    /// After this, clients refuse the manifest (a frozen channel), Unix seconds.
    pub expires: i64,
    /// Seconds a client waits before checking again.
    pub min_wait: u64,
    /// The publisher's cloud policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<repute::Policy>,
    /// The full snapshot for this sequence.
    pub base: FileEntry,
    /// Deltas from older sequences to this one.
    #[serde(default)]
    pub deltas: Vec<DeltaEntry>,
    /// The last published sequences (newest first), so that a later publish can make
    /// deltas from them.
    #[serde(default)]
    pub history: Vec<FileEntry>,
}

/// The signed trusted comment of a manifest signature.
pub fn manifest_comment(sequence: u64) -> String {
    format!("repute manifest sequence={sequence}")
}

/// Publish NEW.snap into a channel directory: copies it in under its identity, signs it,
/// and writes a signed manifest.json last, so a reader never sees a manifest naming a
/// missing file. Existing files are never rewritten; the new sequence must be higher than
/// the channel's.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The new full snapshot.
    snapshot: PathBuf,
    /// The channel directory (created when missing).
    #[arg(long)]
    dir: PathBuf,
    /// The secret key (from `repute keygen`, or `minisign -G -W`).
    #[arg(short = 's', long)]
    secret_key: PathBuf,
    /// How many earlier sequences the manifest remembers (and, with delta support, offers
    /// deltas from).
    #[arg(long, default_value_t = 3)]
    keep: usize,
    /// The publisher's cloud policy, a TOML or JSON file; default: the snapshot's own.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Seconds clients wait before checking again.
    #[arg(long, default_value_t = 3600)]
    min_wait: u64,
    /// Seconds until the manifest expires, when the snapshot sets no expiry.
    #[arg(long, default_value_t = 7 * 86_400)]
    expires_in: i64,
}

/// Reads the channel's manifest, if there is one (unverified: the publisher's own files).
fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
            format!("{} is not a repute manifest", path.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes `bytes` as `dir/name` unless it is already there with the same bytes; an
/// existing different file is an error (files are never rewritten).
fn put_immutable(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(existing) if existing == bytes => Ok(()),
        Ok(_) => bail!(
            "{} exists with other contents; channel files are never rewritten",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            atomic::write_file(&path, bytes, 0o644, false)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

pub fn run(args: PublishArgs) -> Result<Outcome> {
    let secret = SecretKey::from_file(&args.secret_key)?;
    let snapshot = open_snapshot(&args.snapshot)?;
    snapshot
        .verify()
        .with_context(|| format!("{} is damaged; not publishing it", args.snapshot.display()))?;
    let meta = snapshot.metadata()?;
    let comment = SnapshotComment::of(&snapshot)?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;

    let previous = read_manifest(&args.dir)?;
    if let Some(prev) = &previous {
        if prev.sequence >= comment.sequence {
            bail!(
                "{} has sequence {}, but the channel is already at sequence {}: \
                 build the new snapshot with a higher --sequence",
                args.snapshot.display(),
                comment.sequence,
                prev.sequence
            );
        }
    }

    let policy = match &args.policy {
        Some(p) => Some(crate::policy::read_policy(p)?),
        None => meta.policy.clone(),
    };
    let now = unix_now();
    let expires = meta.expires.unwrap_or(now + args.expires_in);
    if expires <= now {
        bail!(
            "{} expired at {}; a channel must not publish an expired snapshot",
            args.snapshot.display(),
            crate::iso8601(expires)
        );
    }

    // The base and its signature first.
    let bytes = snapshot.as_bytes();
    let name = format!("{}.snap", comment.identity);
    put_immutable(&args.dir, &name, bytes)?;
    let sig_name = format!("{name}{}", sign::SIGNATURE_SUFFIX);
    if !args.dir.join(&sig_name).exists() {
        let text = sign::sign(&secret, bytes, &comment.to_string())?;
        atomic::write_file(&args.dir.join(&sig_name), text.as_bytes(), 0o644, false)?;
    }
    let base = FileEntry {
        path: name,
        size: bytes.len() as u64,
        sha256: comment.identity.clone(),
        sequence: comment.sequence,
    };
    let mut history = Vec::new();
    if let Some(prev) = &previous {
        history.push(prev.base.clone());
        history.extend(prev.history.iter().cloned());
    }
    history.truncate(args.keep);

    let manifest = Manifest {
        format: 1,
        sequence: comment.sequence,
        created: now,
        expires,
        min_wait: args.min_wait,
        policy,
        base,
        deltas: Vec::new(),
        history,
    };
    let mut json = serde_json::to_vec_pretty(&manifest)?;
    json.push(b'\n');
    let sig = sign::sign(&secret, &json, &manifest_comment(manifest.sequence))?;
    // The manifest last, then its signature: a reader that catches the pair mid-switch
    // sees a signature mismatch and retries later; it never sees a missing file.
    atomic::write_file(&args.dir.join(MANIFEST), &json, 0o644, true)?;
    atomic::write_file(
        &args
            .dir
            .join(format!("{MANIFEST}{}", sign::SIGNATURE_SUFFIX)),
        sig.as_bytes(),
        0o644,
        true,
    )?;
    writeln!(
        std::io::stdout(),
        "{}: sequence {} published (base {}, {} bytes, expires {})",
        args.dir.display(),
        manifest.sequence,
        manifest.base.path,
        manifest.base.size,
        crate::iso8601(expires)
    )?;
    Ok(Outcome::Clean)
}
