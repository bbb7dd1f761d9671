//! `repute publish`: a signed update channel in a plain directory that any static web
//! server, object store or CDN can serve.
//!
//! The layout and the manifest are [`repute::channel`]'s. A publish copies the new base in
//! under its identity, writes a delta from each of the last `--keep` sequences to it (so an
//! agent that is a few sequences behind fetches one small file), signs each, and writes the
//! signed manifest last.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use repute::channel::{
    manifest_comment, signature_name, DeltaEntry, FileEntry, Manifest, MANIFEST,
};
use repute::sign::{self, SecretKey, SnapshotComment};
use repute::Snapshot;

use crate::{atomic, open_snapshot, unix_now, Outcome};

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
    /// How many earlier sequences the manifest remembers and offers deltas from.
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
        Ok(bytes) => Ok(Some(Manifest::parse(&bytes).with_context(|| {
            format!("{} is not a usable repute manifest", path.display())
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
    let sig_name = signature_name(&name);
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
    let deltas = write_deltas(&args.dir, &secret, &snapshot, &base, &history)?;

    let manifest = Manifest {
        format: 1,
        sequence: comment.sequence,
        created: now,
        expires,
        min_wait: args.min_wait,
        policy,
        base,
        deltas,
        history,
    };
    let json = manifest.to_json()?;
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
        "{}: sequence {} published (base {}, {} bytes; {} delta(s); expires {})",
        args.dir.display(),
        manifest.sequence,
        manifest.base.path,
        manifest.base.size,
        manifest.deltas.len(),
        crate::iso8601(expires)
    )?;
    for d in &manifest.deltas {
        writeln!(
            std::io::stdout(),
            "  delta from sequence {}: {} ({} bytes, {:.2}% of the base)",
            d.from_sequence,
            d.file.path,
            d.file.size,
            100.0 * d.file.size as f64 / manifest.base.size.max(1) as f64
        )?;
    }
    Ok(Outcome::Clean)
}

/// Writes (or finds, when an earlier run already wrote it) a signed delta from each earlier
/// base in `history` to the new one. A history entry whose file is gone from the channel is
/// skipped: clients at that sequence fetch the base.
fn write_deltas<D: AsRef<[u8]>>(
    dir: &Path,
    secret: &SecretKey,
    new: &Snapshot<D>,
    base: &FileEntry,
    history: &[FileEntry],
) -> Result<Vec<DeltaEntry>> {
    // Work files go in a private directory inside the channel (same file system, so the
    // finished delta is renamed, not copied); a killed publish's leftovers are removed here.
    remove_stale_work_dirs(dir);
    let work = tempfile::Builder::new()
        .prefix(WORK_PREFIX)
        .tempdir_in(dir)
        .with_context(|| format!("cannot create a work directory in {}", dir.display()))?;
    let mut deltas = Vec::new();
    for old in history {
        let old_path = dir.join(&old.path);
        let old_bytes = match std::fs::read(&old_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", old_path.display())),
        };
        let old_snap = Snapshot::open(old_bytes)
            .with_context(|| format!("{} is not a snapshot", old_path.display()))?;
        let tmp = work.path().join(format!("from-{}.delta", old.sequence));
        repute::delta::diff(&old_snap, new, &tmp)
            .with_context(|| format!("cannot write the delta from sequence {}", old.sequence))?;
        let bytes =
            std::fs::read(&tmp).with_context(|| format!("cannot read {}", tmp.display()))?;
        let delta = Snapshot::open(bytes)?;
        let comment = SnapshotComment::of(&delta)?;
        let name = format!("{}.delta", comment.identity);
        put_immutable(dir, &name, delta.as_bytes())?;
        let sig_name = signature_name(&name);
        if !dir.join(&sig_name).exists() {
            let text = sign::sign(secret, delta.as_bytes(), &comment.to_string())?;
            atomic::write_file(&dir.join(&sig_name), text.as_bytes(), 0o644, false)?;
        }
        deltas.push(DeltaEntry {
            from_sequence: old.sequence,
            from_identity: old.sha256.clone(),
            file: FileEntry {
                path: name,
                size: delta.as_bytes().len() as u64,
                sha256: comment.identity,
                sequence: base.sequence,
            },
        });
    }
    Ok(deltas)
}

/// Prefix of a publish's work directory inside the channel.
const WORK_PREFIX: &str = ".repute-publish-";

/// Removes work directories that killed publishes left. Publishing into one channel is one
/// publisher's job at a time (the manifest's sequence check catches a second one).
fn remove_stale_work_dirs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(WORK_PREFIX) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
