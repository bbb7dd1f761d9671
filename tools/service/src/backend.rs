//! What the service answers from: the library's [`Engine`] (a snapshot, or an update state
//! directory's base and deltas), swappable while serving.
//!
//! [`Backend`] holds an optional engine; a reload swaps its view atomically while requests
//! keep reading the one they started with. Lookups go through [`Loaded`] (one view), which
//! turns the library's borrowed records into owned [`Found`] answers (the shape that is
//! cached and serialized).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use repute::{
    Digest, DigestKind, Engine, EngineOptions, Metadata, Query, Record, Snapshot, Verdict, View,
};
use serde::{Deserialize, Serialize};

use crate::policy::Policy;

/// An owned answer: what one record says about one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    /// The verdict (never `unknown`: an unknown key has no `Found`).
    #[serde(with = "verdict_serde")]
    pub verdict: Verdict,
    /// Threat or signature name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Category, such as `trojan` or `phishing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The feed that listed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The key or URL expression that matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<i64>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<i64>,
    /// 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<u8>,
}

impl Found {
    /// The owned form of a snapshot record.
    pub fn from_record(record: &Record<'_>, matched: Option<String>) -> Found {
        Found {
            verdict: record.verdict(),
            name: record.name().map(str::to_owned),
            category: record.category().map(str::to_owned),
            source: record.source().map(str::to_owned),
            matched,
            first_seen: record.first_seen(),
            last_seen: record.last_seen(),
            confidence: record.confidence(),
        }
    }

    /// Approximate heap size, for the cache's memory bound.
    pub fn weight(&self) -> usize {
        let s = |o: &Option<String>| o.as_ref().map_or(0, String::len);
        64 + s(&self.name) + s(&self.category) + s(&self.source) + s(&self.matched)
    }
}

mod verdict_serde {
    use repute::Verdict;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Verdict, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Verdict, D::Error> {
        let text = String::deserialize(d)?;
        text.parse::<Verdict>()
            .map_err(|_| serde::de::Error::custom(format!("unknown verdict {text:?}")))
    }
}

/// One view of the engine: what a request reads from start to end.
#[derive(Debug, Clone)]
pub struct Loaded {
    view: Arc<View>,
}

impl Loaded {
    /// How the base layer is held: `mapped`, `memory`, `huge pages`, or `huge pages
    /// (ordinary pages: the kernel refused the advice)`.
    pub fn storage(&self) -> &'static str {
        match self.view.layers().first().map(|l| l.snapshot().storage()) {
            Some(repute::engine::Storage::Mapped(_)) => "mapped",
            Some(repute::engine::Storage::HugePages(h)) if h.huge_pages_advised() => "huge pages",
            Some(repute::engine::Storage::HugePages(_)) => {
                "huge pages (ordinary pages: the kernel refused the advice)"
            }
            Some(repute::engine::Storage::Memory(_)) | None => "memory",
        }
    }

    /// Every listed digest of one kind whose fingerprint lies in `lo..=hi`, in order, with
    /// its record, as the merged snapshot lists it (deltas included, their removals
    /// applied): what a range query answers.
    pub fn digest_range(&self, kind: DigestKind, lo: u128, hi: u128) -> Vec<(u128, Found)> {
        self.view
            .digest_range(kind, lo, hi)
            .into_iter()
            .filter_map(|(fp, f)| Some((fp, Found::from_record(&self.view.record(f)?, None))))
            .collect()
    }

    /// The view's metadata (the newest layer's).
    pub fn metadata(&self) -> &Metadata {
        self.view.metadata()
    }

    /// The policy the snapshot carries.
    pub fn policy(&self) -> Option<Policy> {
        self.view.metadata().policy.clone()
    }

    /// Looks up one digest.
    #[inline]
    pub fn digest(&self, digest: &Digest) -> Option<Found> {
        self.view
            .lookup_digest(digest)
            .map(|r| Found::from_record(&r, Some(digest.to_hex())))
    }

    /// Looks up many digests, `out[i]` for `digests[i]` (a batched, prefetching lookup).
    pub fn digests(&self, digests: &[Digest]) -> Vec<Option<Found>> {
        let mut found: Vec<Option<repute::Found>> = vec![None; digests.len()];
        self.view.lookup_digests(digests, &mut found);
        found
            .iter()
            .zip(digests)
            .map(|(f, d)| {
                f.and_then(|f| self.view.record(f))
                    .map(|r| Found::from_record(&r, Some(d.to_hex())))
            })
            .collect()
    }

    /// Looks up any query.
    ///
    /// # Errors
    ///
    /// When the snapshot's URL section is damaged.
    pub fn query(&self, query: &Query) -> repute::Result<Option<Found>> {
        match query {
            Query::Digest(d) => Ok(self.digest(d)),
            _ => Ok(self
                .view
                .lookup(query)?
                .map(|hit| Found::from_record(&hit.record, Some(hit.matched)))),
        }
    }
}

/// The engine served (or none: a pure caching proxy).
#[derive(Debug, Default)]
pub struct Backend {
    engine: Option<Engine>,
    path: Option<PathBuf>,
    /// What the snapshot file looked like when last loaded (the watch compares it).
    seen: Mutex<Option<FileStamp>>,
}

/// A file's identity as far as the watch cares: a rename puts a new inode in place.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            modified: m.modified().ok(),
        })
    }
}

impl Backend {
    /// No snapshot: every query is a miss.
    pub fn empty() -> Backend {
        Backend::default()
    }

    /// Serves snapshot bytes held in memory.
    ///
    /// # Errors
    ///
    /// When the bytes are not a valid snapshot.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Backend> {
        let snapshot = Snapshot::open(bytes).context("invalid snapshot")?;
        Ok(Backend {
            engine: Some(Engine::from_snapshot(snapshot).context("invalid snapshot")?),
            path: None,
            seen: Mutex::new(None),
        })
    }

    /// Serves a snapshot file, or an update state directory (base and deltas), mapped;
    /// [`Backend::reload`] re-reads it.
    ///
    /// # Errors
    ///
    /// When it cannot be opened or does not verify.
    pub fn open(path: &Path) -> Result<Backend> {
        Backend::open_with(path, EngineOptions::default())
    }

    /// [`Backend::open`] with engine options (huge pages, say); reloads keep them.
    ///
    /// # Errors
    ///
    /// As [`Backend::open`].
    pub fn open_with(path: &Path, options: EngineOptions) -> Result<Backend> {
        let stamp = FileStamp::of(path);
        #[allow(unsafe_code)]
        // SAFETY: snapshots and deltas are published by writing a temporary file and
        // renaming it, never modified in place (the builder and the state directory's
        // writers do so); a reload maps the new files while old views stay valid.
        let engine = unsafe {
            if path.is_dir() {
                Engine::open_state_dir_with(path, options)
            } else {
                Engine::open_with(path, &[], options)
            }
        }
        .with_context(|| format!("cannot serve {}", path.display()))?;
        Ok(Backend {
            engine: Some(engine),
            path: Some(path.to_path_buf()),
            seen: Mutex::new(stamp),
        })
    }

    /// The current view, if any: a cheap, lock-free read.
    #[inline]
    pub fn load(&self) -> Option<Loaded> {
        self.engine.as_ref().map(|e| Loaded {
            view: e.load_full(),
        })
    }

    /// Re-reads the state directory (or the snapshot file) and swaps in what changed.
    /// Requests in flight keep the old view.
    ///
    /// # Errors
    ///
    /// When the new files do not verify; the old view stays in service.
    pub fn reload(&self) -> Result<bool> {
        let (Some(engine), Some(path)) = (&self.engine, &self.path) else {
            return Ok(false);
        };
        if path.is_dir() {
            return engine.reload().with_context(|| {
                format!("cannot reload {}; keeping the old view", path.display())
            });
        }
        let stamp = FileStamp::of(path);
        #[allow(unsafe_code)]
        // SAFETY: as in `Backend::open`.
        unsafe { engine.swap_files(path, &[]) }
            .with_context(|| format!("cannot reload {}; keeping the old one", path.display()))?;
        if let Ok(mut seen) = self.seen.lock() {
            *seen = stamp;
        }
        Ok(true)
    }

    /// The watch's check: swaps in a new snapshot when the state directory installed one
    /// (`current.json` changed) or the snapshot file was replaced; otherwise does nothing.
    /// Returns whether it swapped.
    ///
    /// # Errors
    ///
    /// When the new files do not verify; the old view stays in service, and the same
    /// files are tried again at the next check.
    pub fn reload_if_changed(&self) -> Result<bool> {
        let (Some(_), Some(path)) = (&self.engine, &self.path) else {
            return Ok(false);
        };
        if !path.is_dir() {
            let now = FileStamp::of(path);
            let same = self.seen.lock().map_or(true, |seen| *seen == now);
            if same || now.is_none() {
                return Ok(false);
            }
        }
        self.reload()
    }

    /// The engine's status (sequence, layers, staleness, policy, last update).
    pub fn engine_status(&self) -> Option<repute::EngineStatus> {
        self.engine.as_ref().map(Engine::status)
    }

    /// The snapshot file or state directory served, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}
