//! What the service answers from: the current snapshot, swappable while serving.
//!
//! [`Backend`] holds an optional snapshot behind an `ArcSwap`, so a reload replaces it
//! atomically while requests keep reading the one they started with. Lookups go through
//! [`Loaded`], which turns the library's borrowed records into owned [`Found`] answers (the
//! shape that is cached and serialized).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use arc_swap::ArcSwapOption;
use repute::{Digest, Metadata, Query, Record, RecordId, Snapshot, Verdict};
use serde::{Deserialize, Serialize};

use crate::policy::Policy;

/// Snapshot bytes: a read-only file mapping, or a buffer (tests, in-memory use).
#[derive(Debug)]
pub enum SnapshotBytes {
    /// A memory-mapped snapshot file.
    Mapped(memmap2::Mmap),
    /// Bytes held in memory.
    Owned(Vec<u8>),
}

impl AsRef<[u8]> for SnapshotBytes {
    fn as_ref(&self) -> &[u8] {
        match self {
            SnapshotBytes::Mapped(m) => m,
            SnapshotBytes::Owned(v) => v,
        }
    }
}

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

/// A loaded snapshot with its parsed metadata.
#[derive(Debug)]
pub struct Loaded {
    snapshot: Snapshot<SnapshotBytes>,
    metadata: Metadata,
}

impl Loaded {
    /// Wraps an opened snapshot.
    ///
    /// # Errors
    ///
    /// When its metadata cannot be read.
    pub fn new(snapshot: Snapshot<SnapshotBytes>) -> Result<Loaded> {
        let metadata = snapshot
            .metadata()
            .context("cannot read the snapshot's metadata")?;
        Ok(Loaded { snapshot, metadata })
    }

    /// The snapshot.
    pub fn snapshot(&self) -> &Snapshot<SnapshotBytes> {
        &self.snapshot
    }

    /// Its metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The policy the snapshot carries. The snapshot format has no policy field yet, so
    /// this is `None` until the engine's metadata lands.
    pub fn policy(&self) -> Option<Policy> {
        None
    }

    /// Looks up one digest.
    #[inline]
    pub fn digest(&self, digest: &Digest) -> Option<Found> {
        self.snapshot
            .lookup_digest(digest)
            .map(|r| Found::from_record(&r, Some(digest.to_hex())))
    }

    /// Looks up many digests, `out[i]` for `digests[i]` (a batched, prefetching lookup).
    pub fn digests(&self, digests: &[Digest]) -> Vec<Option<Found>> {
        let mut ids: Vec<Option<RecordId>> = vec![None; digests.len()];
        self.snapshot.lookup_digests(digests, &mut ids);
        ids.iter()
            .zip(digests)
            .map(|(id, d)| {
                id.and_then(|id| self.snapshot.record(id))
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
                .snapshot
                .lookup(query)?
                .map(|hit| Found::from_record(&hit.record, Some(hit.matched)))),
        }
    }
}

/// The swappable current snapshot (or none: a pure caching proxy).
#[derive(Debug, Default)]
pub struct Backend {
    current: ArcSwapOption<Loaded>,
    path: Option<PathBuf>,
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
        let snapshot = Snapshot::open(SnapshotBytes::Owned(bytes)).context("invalid snapshot")?;
        let backend = Backend::default();
        backend
            .current
            .store(Some(Arc::new(Loaded::new(snapshot)?)));
        Ok(backend)
    }

    /// Serves a snapshot file, memory-mapped; [`Backend::reload`] maps it again.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or is not a valid snapshot.
    pub fn open(path: &Path) -> Result<Backend> {
        let backend = Backend {
            current: ArcSwapOption::empty(),
            path: Some(path.to_path_buf()),
        };
        backend.current.store(Some(Arc::new(map(path)?)));
        Ok(backend)
    }

    /// The current snapshot, if any: a cheap, lock-free read.
    #[inline]
    pub fn load(&self) -> Option<Arc<Loaded>> {
        self.current.load_full()
    }

    /// Re-opens the snapshot file and swaps it in. Requests in flight keep the old one.
    ///
    /// # Errors
    ///
    /// When the new file is not a valid snapshot; the old one stays in service.
    pub fn reload(&self) -> Result<bool> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let loaded = map(path)?;
        loaded.snapshot.verify().with_context(|| {
            format!(
                "snapshot {} failed verification; keeping the old one",
                path.display()
            )
        })?;
        self.current.store(Some(Arc::new(loaded)));
        Ok(true)
    }

    /// The snapshot file served, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

fn map(path: &Path) -> Result<Loaded> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open snapshot {}", path.display()))?;
    #[allow(unsafe_code)]
    // SAFETY: snapshots are published by writing a temporary file and renaming it, never
    // modified in place; a reload maps the new file while the old mapping stays valid for
    // the requests still using it.
    let mmap = unsafe { memmap2::Mmap::map(&file) }
        .with_context(|| format!("cannot map snapshot {}", path.display()))?;
    let snapshot = Snapshot::open(SnapshotBytes::Mapped(mmap))
        .with_context(|| format!("invalid snapshot {}", path.display()))?;
    Loaded::new(snapshot)
}
