//! `repute update`: brings an update state directory to a channel's current snapshot (the
//! freshclam / Safe Browsing update role).
//!
//! One run, under an exclusive lock on `STATE/lock`:
//! 1. removes what a killed run left (`.tmp-*`, merge work, partial downloads of files the
//!    channel no longer names), and obeys `backoff.json` unless `--force`;
//! 2. fetches `manifest.json` and its signature, checks both with the publisher's key, and
//!    refuses a rollback or a frozen (expired) channel ([`repute::channel::plan`]);
//! 3. fetches the delta for the installed snapshot, else the base, resuming a partial
//!    download with a `Range` request; checks its size, SHA-256 and signature, and that it
//!    verifies and leads exactly to the manifest's snapshot;
//! 4. adds it as a layer, or merges when there would be more than `--max-deltas` layers
//!    (the merge must give the manifest's base byte for byte), loads the new set through the
//!    engine to check it, and switches `current.json` by one rename;
//! 5. keeps the last good snapshot (`--keep`) and removes older files.
//!
//! Exit codes: 0 updated, already current, or not yet due (each said in words); 2 failed,
//! with the installed snapshot untouched. A failure backs off (`backoff.json`).

mod fetch;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use repute::channel::{
    self, signature_name, Backoff, FileEntry, Installed, Manifest, Plan, MANIFEST,
};
use repute::engine::state::{Current, StateDir};
use repute::sign::{self, PublicKey};
use repute::Snapshot;
use serde::Serialize;

use crate::{unix_now, Outcome};
use fetch::{sha256_file, Channel};

/// Bring a state directory up to date from a signed update channel.
///
/// Reads the channel's manifest.json and its signature, refuses a lower sequence than the
/// installed one (rollback) and an expired manifest (freeze), fetches the delta that applies
/// to what is installed (else the full snapshot), checks size, SHA-256, signature and
/// checksums, and switches the state directory to the new set atomically. `repute lookup`,
/// `scan` and `serve` read the state directory; a running `serve` picks the change up.
///
/// Exit codes: 0 updated, already current or not yet due; 2 failed (the installed snapshot
/// is untouched, and the next attempt backs off: 15 min doubling to 24 h, randomized).
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  repute update --from https://updates.example.net/repute/ -p publisher.pub --state /var/lib/repute
  repute update --from /mnt/channel -p publisher.pub --state ./state --force
  # cron: every 10 minutes; repute itself obeys the channel's minimum wait and its back-off
  */10 * * * * repute update --from https://updates.example.net/repute/ -p /etc/repute/publisher.pub --state /var/lib/repute")]
pub struct UpdateArgs {
    /// The channel: an http(s) base URL or a directory (what `repute publish --dir` wrote).
    #[arg(long)]
    from: String,
    /// The publisher's public key (minisign format, from `repute keygen` or `minisign -G`).
    #[arg(short = 'p', long)]
    public_key: PathBuf,
    /// The state directory (created when missing).
    #[arg(long)]
    state: PathBuf,
    /// Check now, ignoring the channel's minimum wait and the back-off after failures.
    #[arg(long)]
    force: bool,
    /// Delta layers kept before they are merged into a new base.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=8))]
    max_deltas: u64,
    /// Earlier whole snapshots kept to fall back on.
    #[arg(long, default_value_t = 1)]
    keep: usize,
    /// Seconds to wait for a connection and for each response to start.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// What one run did (the JSON output).
#[derive(Debug, Serialize)]
struct Report {
    /// `updated`, `current`, `waiting` or `failed`.
    result: &'static str,
    /// The installed sequence after the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence: Option<u64>,
    /// The sequence before.
    #[serde(skip_serializing_if = "Option::is_none")]
    from_sequence: Option<u64>,
    /// `delta`, `base` or `merge` when it updated.
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'static str>,
    /// Bytes transferred in this run.
    downloaded: u64,
    /// Not checking again before this (ISO 8601).
    next_check: String,
    /// What went wrong, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The file holding the schedule.
const BACKOFF: &str = "backoff.json";
/// The lock file.
const LOCK: &str = "lock";
/// Prefix of partial downloads (`.partial-<final name>`).
const PARTIAL: &str = ".partial-";

pub fn run(args: UpdateArgs) -> Result<Outcome> {
    let public = PublicKey::from_file(&args.public_key)?;
    let state = StateDir::create(&args.state)
        .with_context(|| format!("cannot use state directory {}", args.state.display()))?;
    let _lock = lock(state.path())?;
    remove_leftovers(state.path());
    let now = unix_now();
    let mut backoff = read_backoff(state.path());
    if !args.force && now < backoff.not_before {
        let why = if backoff.failures > 0 {
            format!("backing off after {} failure(s) in a row", backoff.failures)
        } else {
            "the channel's minimum wait".into()
        };
        let report = Report {
            result: "waiting",
            sequence: installed(&state).ok().flatten().map(|i| i.sequence),
            from_sequence: None,
            method: None,
            downloaded: 0,
            next_check: crate::iso8601(backoff.not_before),
            error: None,
        };
        emit(
            &args,
            &report,
            &format!(
                "{}: not checking before {} ({why}; --force checks now)",
                state.path().display(),
                report.next_check
            ),
        )?;
        return Ok(Outcome::Clean);
    }

    let channel = Channel::parse(&args.from, Duration::from_secs(args.timeout.max(1)))?;
    let before = installed(&state).ok().flatten();
    let mut downloaded = 0;
    let result = attempt(
        &args,
        &channel,
        &public,
        &state,
        before.as_ref(),
        now,
        &mut downloaded,
    );
    match result {
        Ok((done, min_wait)) => {
            backoff.succeeded(now, min_wait);
            write_backoff(state.path(), &backoff)?;
            let next_check = crate::iso8601(backoff.not_before);
            let (report, line) = match done {
                Done::Current(seq) => (
                    Report {
                        result: "current",
                        sequence: Some(seq),
                        from_sequence: Some(seq),
                        method: None,
                        downloaded,
                        next_check: next_check.clone(),
                        error: None,
                    },
                    format!(
                        "{}: already current at sequence {seq} (next check after {next_check})",
                        state.path().display()
                    ),
                ),
                Done::Updated { sequence, method } => (
                    Report {
                        result: "updated",
                        sequence: Some(sequence),
                        from_sequence: before.as_ref().map(|b| b.sequence),
                        method: Some(method),
                        downloaded,
                        next_check: next_check.clone(),
                        error: None,
                    },
                    format!(
                        "{}: updated {} to sequence {sequence} ({method}, {downloaded} bytes downloaded)",
                        state.path().display(),
                        before
                            .as_ref()
                            .map_or("an empty state".to_string(), |b| format!("from sequence {}", b.sequence)),
                    ),
                ),
            };
            emit(&args, &report, &line)?;
            Ok(Outcome::Clean)
        }
        Err(e) => {
            let message = format!("{e:#}");
            backoff.failed(now, message.clone(), random_unit());
            // The back-off is best effort: a full disk must not hide the real error.
            let _ = write_backoff(state.path(), &backoff);
            let report = Report {
                result: "failed",
                sequence: before.as_ref().map(|b| b.sequence),
                from_sequence: before.as_ref().map(|b| b.sequence),
                method: None,
                downloaded,
                next_check: crate::iso8601(backoff.not_before),
                error: Some(message.clone()),
            };
            let kept = match &before {
                Some(b) => format!("sequence {} stays installed", b.sequence),
                None => "nothing is installed".into(),
            };
            if args.format == Format::Json {
                emit(&args, &report, "")?;
            }
            bail!(
                "update from {} failed: {message}\n{kept}; next attempt after {} ({} failure(s) in a row; --force retries now)",
                args.from,
                report.next_check,
                backoff.failures
            )
        }
    }
}

fn emit(args: &UpdateArgs, report: &Report, line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string(report)?)?,
        Format::Text => writeln!(out, "{line}")?,
    }
    Ok(())
}

enum Done {
    Current(u64),
    Updated { sequence: u64, method: &'static str },
}

/// One check. Returns what it did and the manifest's minimum wait.
fn attempt(
    args: &UpdateArgs,
    channel: &Channel,
    public: &PublicKey,
    state: &StateDir,
    before: Option<&Installed>,
    now: i64,
    downloaded: &mut u64,
) -> Result<(Done, u64)> {
    let bytes = channel.get_small(MANIFEST, channel::MAX_MANIFEST_BYTES)?;
    let sig = channel.get_small(&signature_name(MANIFEST), channel::MAX_SIGNATURE_BYTES)?;
    *downloaded += (bytes.len() + sig.len()) as u64;
    let sig = String::from_utf8(sig).context("the manifest's signature is not text")?;
    let manifest = Manifest::from_signed(public, &bytes, &sig)
        .with_context(|| format!("refusing {}", channel.describe(MANIFEST)))?;
    let plan = channel::plan(&manifest, before, now)?;
    remove_stale_partials(state.path(), &manifest);
    let current = match state.current() {
        Ok(c) => Some(c),
        Err(_) if before.is_none() => None,
        Err(e) => return Err(e.into()),
    };
    let done = match plan {
        Plan::Current => Done::Current(manifest.sequence),
        Plan::Delta(delta) => {
            let current = current.context("a delta needs an installed snapshot")?;
            match apply_delta(
                args,
                channel,
                public,
                state,
                &manifest,
                &delta.file,
                current,
                downloaded,
            ) {
                Ok(done) => done,
                Err(delta_error) => {
                    // A bad or missing delta: the full snapshot still works.
                    install_base(channel, public, state, &manifest, downloaded).with_context(
                        || {
                            format!(
                                "the delta failed ({delta_error:#}), and so did the full snapshot"
                            )
                        },
                    )?
                }
            }
        }
        Plan::Base(_) => install_base(channel, public, state, &manifest, downloaded)?,
    };
    remove_stale_partials(state.path(), &manifest);
    if let Err(e) = state.gc(args.keep) {
        // Old files left behind are not a failed update.
        let _ = writeln!(std::io::stderr(), "repute: warning: cleaning up: {e}");
    }
    Ok((done, manifest.min_wait))
}

/// The sequence and identity of what the state directory has in force.
fn installed(state: &StateDir) -> Result<Option<Installed>> {
    if !state.path().join("current.json").exists() {
        return Ok(None);
    }
    let current = state.current()?;
    let identity = match current.deltas.last() {
        Some(last) => {
            let path = state.file(last)?;
            let snap = crate::open_snapshot(&path)?;
            snap.delta_info()?
                .context("current.json names a delta that is not one")?
                .result_identity
        }
        None => current
            .base
            .strip_suffix(".snap")
            .unwrap_or(&current.base)
            .to_string(),
    };
    Ok(Some(Installed {
        sequence: current.sequence,
        identity,
    }))
}

/// Downloads a channel file into the state directory under `final_name`, checked against
/// the manifest's size and SHA-256 and the publisher's signature, and returns it opened
/// (and verified). The download goes to `.partial-<final_name>` and is renamed into place
/// only when everything checks.
fn fetch_checked(
    channel: &Channel,
    public: &PublicKey,
    state: &StateDir,
    entry: &FileEntry,
    downloaded: &mut u64,
) -> Result<Snapshot<memmap2::Mmap>> {
    let final_path = state.file(&entry.path)?;
    let sig_text = channel.get_small(&signature_name(&entry.path), channel::MAX_SIGNATURE_BYTES)?;
    *downloaded += sig_text.len() as u64;
    let sig_text = String::from_utf8(sig_text).context("a signature is not text")?;
    let have_final = final_path.is_file();
    if !have_final {
        let partial = state.path().join(format!("{PARTIAL}{}", entry.path));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        *downloaded += channel.download(&entry.path, &mut file, entry.size)?;
        drop(file);
        let sha = sha256_file(&partial)?;
        if sha != entry.sha256 {
            let _ = std::fs::remove_file(&partial);
            bail!(
                "{}: SHA-256 is {sha}, the signed manifest says {}; discarded",
                channel.describe(&entry.path),
                entry.sha256
            );
        }
        std::fs::rename(&partial, &final_path)
            .with_context(|| format!("cannot rename into {}", final_path.display()))?;
        sync_dir(state.path());
    }
    let snapshot = crate::open_snapshot(&final_path)?;
    let checked = (|| -> Result<()> {
        if have_final && snapshot.as_bytes().len() as u64 != entry.size {
            bail!(
                "{} is not the file the manifest names",
                final_path.display()
            );
        }
        sign::verify_snapshot(public, &snapshot, &sig_text)
            .with_context(|| format!("refusing {}", channel.describe(&entry.path)))?;
        snapshot
            .verify()
            .with_context(|| format!("{} does not verify", channel.describe(&entry.path)))?;
        Ok(())
    })();
    if let Err(e) = checked {
        drop(snapshot);
        let _ = std::fs::remove_file(&final_path);
        return Err(e);
    }
    write_small(state, &signature_name(&entry.path), sig_text.as_bytes())?;
    Ok(snapshot)
}

fn install_base(
    channel: &Channel,
    public: &PublicKey,
    state: &StateDir,
    manifest: &Manifest,
    downloaded: &mut u64,
) -> Result<Done> {
    let snapshot = fetch_checked(channel, public, state, &manifest.base, downloaded)?;
    if snapshot.is_delta() {
        bail!("the manifest's base {} is a delta", manifest.base.path);
    }
    let sequence = snapshot.metadata()?.sequence;
    if sequence != manifest.sequence {
        bail!(
            "{} has sequence {sequence}, the manifest says {}",
            manifest.base.path,
            manifest.sequence
        );
    }
    install(
        state,
        Current {
            sequence,
            base: manifest.base.path.clone(),
            deltas: Vec::new(),
        },
    )?;
    Ok(Done::Updated {
        sequence,
        method: "base",
    })
}

#[allow(clippy::too_many_arguments)]
fn apply_delta(
    args: &UpdateArgs,
    channel: &Channel,
    public: &PublicKey,
    state: &StateDir,
    manifest: &Manifest,
    entry: &FileEntry,
    current: Current,
    downloaded: &mut u64,
) -> Result<Done> {
    let delta = fetch_checked(channel, public, state, entry, downloaded)?;
    let info = delta
        .delta_info()?
        .with_context(|| format!("{} is not a delta", entry.path))?;
    if info.result_identity != manifest.base.sha256 || info.result_sequence != manifest.sequence {
        bail!(
            "{} leads to {} (sequence {}), not the manifest's {} (sequence {})",
            entry.path,
            info.result_identity,
            info.result_sequence,
            manifest.base.sha256,
            manifest.sequence
        );
    }
    let mut deltas = current.deltas.clone();
    deltas.push(entry.path.clone());
    if deltas.len() as u64 <= args.max_deltas {
        install(
            state,
            Current {
                sequence: manifest.sequence,
                base: current.base,
                deltas,
            },
        )?;
        return Ok(Done::Updated {
            sequence: manifest.sequence,
            method: "delta",
        });
    }
    // Too many layers: merge them into the manifest's base, which the merge must give byte
    // for byte (so the publisher's signature of that base covers the result too).
    let base = crate::open_snapshot(&state.file(&current.base)?)?;
    let layers = deltas
        .iter()
        .map(|d| crate::open_snapshot(&state.file(d)?))
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&Snapshot<memmap2::Mmap>> = layers.iter().collect();
    let target = state.file(&manifest.base.path)?;
    repute::delta::merge(&base, &refs, &target).context("merging the deltas")?;
    let merged = crate::open_snapshot(&target)?;
    let sig = channel.get_small(
        &signature_name(&manifest.base.path),
        channel::MAX_SIGNATURE_BYTES,
    )?;
    *downloaded += sig.len() as u64;
    let sig = String::from_utf8(sig).context("a signature is not text")?;
    if let Err(e) = sign::verify_snapshot(public, &merged, &sig) {
        drop(merged);
        let _ = std::fs::remove_file(&target);
        return Err(
            anyhow::Error::from(e).context("the merged snapshot is not the publisher's base")
        );
    }
    write_small(state, &signature_name(&manifest.base.path), sig.as_bytes())?;
    install(
        state,
        Current {
            sequence: manifest.sequence,
            base: manifest.base.path.clone(),
            deltas: Vec::new(),
        },
    )?;
    Ok(Done::Updated {
        sequence: manifest.sequence,
        method: "merge",
    })
}

/// Loads the new set through the engine (every layer verified, each delta applying to the
/// layer below), then switches `current.json`.
fn install(state: &StateDir, current: Current) -> Result<()> {
    let base = state.file(&current.base)?;
    let deltas = current
        .deltas
        .iter()
        .map(|d| state.file(d))
        .collect::<repute::Result<Vec<_>>>()?;
    #[allow(unsafe_code)]
    // SAFETY: the state directory's files are written by rename only (this tool and the
    // library's StateDir), never modified in place; the mapping lives only for this check.
    let engine = unsafe { repute::Engine::open(&base, &deltas) }
        .context("the new set does not load; keeping the installed one")?;
    let view = engine.load_full();
    if view.sequence() != current.sequence {
        bail!(
            "the new set is at sequence {}, expected {}",
            view.sequence(),
            current.sequence
        );
    }
    drop(view);
    drop(engine);
    state.install(&current)?;
    Ok(())
}

/// Writes a small file into the state directory by rename.
fn write_small(state: &StateDir, name: &str, bytes: &[u8]) -> Result<()> {
    crate::atomic::write_file(&state.path().join(name), bytes, 0o644, true)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Takes the state directory's lock (held until the returned file is dropped).
fn lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    if file.try_lock().is_err() {
        bail!(
            "another repute update is working on {} (it holds {})",
            dir.display(),
            path.display()
        );
    }
    Ok(file)
}

/// Removes what a killed run left: temporary files and merge work (only ever made under the
/// lock, which this run now holds).
fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp-") || name.starts_with(".repute-") {
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

/// Removes partial downloads of files the manifest no longer names, and of files that are
/// now complete (a merge can produce the base whose download broke off); the others are
/// kept and resumed.
fn remove_stale_partials(dir: &Path, manifest: &Manifest) {
    let wanted: Vec<String> = std::iter::once(&manifest.base)
        .chain(manifest.deltas.iter().map(|d| &d.file))
        .map(|f| format!("{PARTIAL}{}", f.path))
        .collect();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let complete = name
            .strip_prefix(PARTIAL)
            .is_some_and(|final_name| dir.join(final_name).is_file());
        if name.starts_with(PARTIAL) && (complete || !wanted.contains(&name)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn read_backoff(dir: &Path) -> Backoff {
    std::fs::read(dir.join(BACKOFF))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn write_backoff(dir: &Path, backoff: &Backoff) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(backoff)?;
    json.push(b'\n');
    crate::atomic::write_file(&dir.join(BACKOFF), &json, 0o644, true)
}

/// A number in [0, 1) for the back-off's jitter (not for anything secret).
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}
