//! [`Engine`]: the live view agents and services hold, a base snapshot and a few delta
//! layers over it, swapped atomically while lookups run.
//!
//! A [`View`] is an immutable, verified stack of layers: a whole snapshot at the bottom and
//! zero or more deltas ([`crate::delta`]) over it, each applying to the one below (checked
//! by identity). Lookups ask the newest layer first: a layer that lists the key answers; a
//! layer with a tombstone for it answers "unknown"; otherwise the next layer down is asked.
//! Each layer has its own filter, so an unknown key costs one filter probe per layer.
//!
//! A key is hashed once per lookup, whatever the number of layers: its fingerprint, filter
//! hash and filter bit masks serve every layer's probe, and each layer's tables (tombstones
//! included) are rebuilt from the section parts its snapshot took at open, by slicing
//! alone. A view also keeps, built with it, one small in-memory filter over every digest
//! its deltas list or remove: a key it rejects is in no delta, so an unknown key costs that
//! one probe plus the base's, however many deltas there are. A batched lookup runs the
//! base's prefetching pipeline once over the whole batch with the deltas seeing each key
//! first inside it (the deltas' filter word prefetched with the base's filter block); only
//! the rare key the deltas' filter lets through is asked of each delta.
//!
//! The [`Engine`] holds the current view in an [`arc_swap::ArcSwap`]: [`Engine::load`] is a
//! cheap, lock-free read guard; [`Engine::swap`] replaces the view atomically. A lookup in
//! flight finishes on the view it loaded; a view (and its memory maps) is dropped when its
//! last reader lets go. Views are verified (checksums, and any [`EngineOptions`] check)
//! when they are built, so only verified views are ever swapped in.
//!
//! [`state`] is the update state directory an engine can follow ([`Engine::reload`]);
//! [`policy`] is the publisher's cloud policy.
//!
//! ```
//! use repute::{Digest, Engine, FeedInfo, RecordSpec, Snapshot, SnapshotBuilder, Verdict};
//!
//! let mut b = SnapshotBuilder::new();
//! let feed = b.add_feed(FeedInfo::new("t", "hashes", Verdict::Malicious));
//! let eicar: Digest = "44d88612fea8a8f36de82e1278abb02f".parse().unwrap();
//! b.add_digest(feed, eicar, RecordSpec::default());
//! let engine = Engine::from_snapshot(Snapshot::open(b.to_bytes().unwrap()).unwrap()).unwrap();
//! let view = engine.load();
//! assert_eq!(view.lookup_digest(&eicar).unwrap().verdict(), Verdict::Malicious);
//! ```

pub mod policy;
pub mod state;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::Serialize;

pub use policy::{CloudState, Policy};
use state::{Current, StateDir};

use crate::delta::{removed_urls, url_table, DeltaInfo};
use crate::digest::fingerprint_hash;
use crate::filter::{
    prefetch, BlockedBloom, FilterProbe, KeyHash, WordBloom, DEFAULT_BITS_PER_KEY,
};
use crate::snapshot::{BatchSlot, DigestProbe, NoOverlay, Overlay};
use crate::url::{expression_hash, key_expression, CanonicalUrl, Expressions};
use crate::{Digest, DigestKind, Error, Hit, Metadata, Query, Record, RecordId, Result, Snapshot};

/// Most delta layers a view holds; the update tool merges when there would be more.
pub const MAX_DELTAS: usize = 8;

/// The bytes of one layer: a memory map of an immutable file, or memory.
#[derive(Debug)]
pub enum Storage {
    /// A mapped file (see [`Engine::open`]'s safety contract).
    Mapped(memmap2::Mmap),
    /// Bytes in memory.
    Memory(Vec<u8>),
    /// A private copy of a file in memory backed by huge pages (see
    /// [`EngineOptions::with_huge_pages`]).
    HugePages(crate::HugePageMemory),
}

impl AsRef<[u8]> for Storage {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Memory(v) => v,
            Storage::HugePages(h) => h.as_ref(),
        }
    }
}

/// An extra check of each layer before it is used: `(path, bytes)`, e.g. a signature check.
pub type LayerCheck = Arc<dyn Fn(Option<&Path>, &[u8]) -> Result<()> + Send + Sync>;

/// How an engine checks the layers it loads.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct EngineOptions {
    /// Called for every layer after its checksums pass; an error refuses the view.
    pub layer_check: Option<LayerCheck>,
    /// Load layers from files into memory backed by huge pages instead of mapping them.
    pub huge_pages: bool,
}

impl EngineOptions {
    /// Loads every layer read from a file into a private copy in memory that the kernel is
    /// asked to back with 2 MiB pages ([`Snapshot::load_huge_pages`]), instead of mapping
    /// the file. For a long-running service over a large snapshot: random lookups into
    /// hundreds of MB miss the TLB on most reads with 4 KiB pages. It costs reading each
    /// file whole when it is loaded (about a second per 2 GB from the page cache) and its
    /// size in memory per process, not shared through the page cache.
    pub fn with_huge_pages(mut self, on: bool) -> EngineOptions {
        self.huge_pages = on;
        self
    }

    /// Requires every layer to carry the publisher's signature: the file `<layer>.minisig`
    /// beside it (as `repute update` keeps them in a state directory), made by `key`, whose
    /// trusted comment names that very file (sequence, identity, kind). A layer without a
    /// file (in memory) or without a valid signature is refused.
    pub fn with_public_key(mut self, key: crate::sign::PublicKey) -> EngineOptions {
        self.layer_check = Some(Arc::new(move |path: Option<&Path>, bytes: &[u8]| {
            let Some(path) = path else {
                return Err(Error::Signature {
                    reason: "a layer in memory has no signature file".into(),
                });
            };
            let sig_path = crate::sign::signature_path(path);
            let text = std::fs::read_to_string(&sig_path).map_err(|e| Error::Signature {
                reason: format!(
                    "{} has no readable signature {}: {e}",
                    path.display(),
                    sig_path.display()
                ),
            })?;
            let snapshot = Snapshot::open(bytes)?;
            crate::sign::verify_snapshot(&key, &snapshot, &text).map_err(|e| {
                let reason = match e {
                    Error::Signature { reason } => reason,
                    other => other.to_string(),
                };
                Error::Signature {
                    reason: format!("{}: {reason}", path.display()),
                }
            })?;
            Ok(())
        }));
        self
    }
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("layer_check", &self.layer_check.is_some())
            .field("huge_pages", &self.huge_pages)
            .finish()
    }
}

/// One verified layer.
#[derive(Debug)]
pub struct Layer {
    snapshot: Snapshot<Storage>,
    identity: String,
    name: Option<String>,
    /// For a base its metadata; for a delta the metadata of the snapshot it leads to.
    metadata: Metadata,
    delta: Option<DeltaInfo>,
    /// For a delta, the filter hash of every digest key it lists or removes, taken once when
    /// the layer loads, so that each view over it builds its [`DeltaDigests`] from them
    /// without reading the tables again (empty for a base).
    digest_hashes: Vec<KeyHash>,
}

impl Layer {
    fn new(
        snapshot: Snapshot<Storage>,
        path: Option<&Path>,
        options: &EngineOptions,
    ) -> Result<Layer> {
        snapshot.verify()?;
        if let Some(check) = &options.layer_check {
            check(path, snapshot.as_bytes())?;
        }
        let delta = snapshot.delta_info()?;
        let identity = snapshot.identity();
        let metadata = match &delta {
            Some(info) => info.result_metadata.clone(),
            None => snapshot.metadata()?,
        };
        let digest_hashes = if delta.is_some() {
            delta_digest_hashes(&snapshot)
        } else {
            Vec::new()
        };
        Ok(Layer {
            digest_hashes,
            identity,
            name: path
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned()),
            metadata,
            delta,
            snapshot,
        })
    }

    /// # Safety
    ///
    /// As [`Engine::open`].
    #[allow(unsafe_code)]
    unsafe fn map(path: &Path, options: &EngineOptions) -> Result<Layer> {
        let snapshot = if options.huge_pages {
            let loaded = Snapshot::load_huge_pages(path)?;
            Snapshot::open(Storage::HugePages(loaded.into_storage()))?
        } else {
            // SAFETY: the caller upholds `Engine::open`'s contract (the file is never
            // truncated or modified in place while mapped).
            let mapped = unsafe { Snapshot::map(path) }?;
            Snapshot::open(Storage::Mapped(mapped.into_storage()))?
        };
        Layer::new(snapshot, Some(path), options)
    }

    /// The layer's snapshot (a whole snapshot or a delta).
    pub fn snapshot(&self) -> &Snapshot<Storage> {
        &self.snapshot
    }

    /// The identity (SHA-256 hex) of the layer's file.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The delta description, for a delta layer.
    pub fn delta_info(&self) -> Option<&DeltaInfo> {
        self.delta.as_ref()
    }
}

/// Where a batched lookup found a digest: the layer (0 is the base) and the record id in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Found {
    /// Layer index, 0 for the base, counting up to the newest delta.
    pub layer: u32,
    /// Record id in that layer.
    pub id: RecordId,
}

impl BatchSlot for Option<Found> {
    #[inline(always)]
    fn from_snapshot(id: Option<RecordId>) -> Self {
        id.map(|id| Found { layer: 0, id })
    }
    #[inline(always)]
    fn is_found(&self) -> bool {
        self.is_some()
    }
}

/// What one layer says about a key.
enum Answer {
    Listed(RecordId),
    Removed,
    Silent,
}

/// What a delta layer whose filter let the key through says about it: listed, removed, or
/// nothing (the filter's false positive).
#[inline]
fn delta_answer(delta: &Snapshot<Storage>, probe: &DigestProbe) -> Answer {
    if let Some(id) = delta.digest_table(probe.kind).find(probe.fingerprint) {
        return Answer::Listed(id);
    }
    if delta
        .removed_table(probe.kind)
        .find(probe.fingerprint)
        .is_some()
    {
        return Answer::Removed;
    }
    Answer::Silent
}

/// The delta layers of a view as a batched lookup sees them: the filter of all their keys,
/// then their own filters, oldest first (`filters[i]` is layer `i + 1`'s), asked newest
/// first.
struct DeltaOverlay<'a> {
    any: &'a WordBloom,
    filters: [BlockedBloom<'a>; MAX_DELTAS],
    count: usize,
    layers: &'a [Arc<Layer>],
}

impl Overlay<Option<Found>> for DeltaOverlay<'_> {
    const ACTIVE: bool = true;

    #[inline(always)]
    fn prefetch(&self, hash: KeyHash) {
        prefetch(self.any.word_ptr(hash));
    }

    #[inline(always)]
    fn decide(&self, kind: DigestKind, fingerprint: u128, hash: KeyHash) -> Option<Option<Found>> {
        if !self.any.may_contain(hash) {
            return None;
        }
        let probe = &DigestProbe {
            kind,
            fingerprint,
            filter: FilterProbe::new(hash),
        };
        for (i, filter) in self.filters[..self.count].iter().enumerate().rev() {
            if !filter.may_contain_probe(&probe.filter) {
                continue;
            }
            let layer = i + 1;
            match delta_answer(&self.layers.get(layer)?.snapshot, probe) {
                Answer::Listed(id) => {
                    return Some(Some(Found {
                        layer: layer as u32,
                        id,
                    }))
                }
                Answer::Removed => return Some(None),
                Answer::Silent => {}
            }
        }
        None
    }
}

/// A verified stack of layers: the base, then deltas oldest first.
#[derive(Debug)]
pub struct View {
    layers: Vec<Arc<Layer>>,
    current: Option<Current>,
    /// Every digest the deltas list or remove, `None` without deltas.
    delta_digests: Option<DeltaDigests>,
}

/// A filter over every digest key (listed or tombstone) of a view's deltas, built with the
/// view from their tables: a key it rejects is in no delta, so an unknown key costs one
/// word of it (small, and in cache) whatever the number of deltas, and only the keys it
/// passes are asked of each delta's own filter. It takes the [`KeyHash`] the layers' filters
/// take.
struct DeltaDigests {
    filter: WordBloom,
}

impl std::fmt::Debug for DeltaDigests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaDigests")
            .field("bytes", &self.filter.size_bytes())
            .finish()
    }
}

/// The filter hash of every digest key a delta lists or removes.
fn delta_digest_hashes(delta: &Snapshot<Storage>) -> Vec<KeyHash> {
    let tables = || {
        DigestKind::ALL.into_iter().flat_map(|kind| {
            [
                (kind, delta.digest_table(kind)),
                (kind, delta.removed_table(kind)),
            ]
        })
    };
    let mut hashes = Vec::with_capacity(tables().map(|(_, t)| t.len()).sum());
    for (kind, table) in tables() {
        hashes.extend(table.iter().map(|(fp, _)| fingerprint_hash(kind, fp)));
    }
    hashes
}

impl DeltaDigests {
    /// From the hashes each delta layer took when it loaded: a view over layers already
    /// loaded (a reload that gains a delta reuses the others) costs one insert per key.
    fn build(deltas: &[Arc<Layer>]) -> DeltaDigests {
        let keys: usize = deltas.iter().map(|l| l.digest_hashes.len()).sum();
        let mut filter = WordBloom::new(keys, DEFAULT_BITS_PER_KEY);
        for layer in deltas {
            for hash in &layer.digest_hashes {
                filter.insert(*hash);
            }
        }
        DeltaDigests { filter }
    }
}

impl View {
    /// Builds a view from verified layers, checking that each delta applies to the layer
    /// below it.
    ///
    /// # Errors
    ///
    /// When the bottom layer is a delta, a layer above it is not, or a delta names another
    /// base ([`Error::WrongBase`]); when there are more than [`MAX_DELTAS`] deltas.
    pub fn new(layers: Vec<Arc<Layer>>) -> Result<View> {
        View::with_current(layers, None)
    }

    fn with_current(layers: Vec<Arc<Layer>>, current: Option<Current>) -> Result<View> {
        let Some(base) = layers.first() else {
            return Err(Error::Delta("a view needs a base snapshot".into()));
        };
        if base.delta.is_some() {
            return Err(Error::Delta("the base layer is a delta".into()));
        }
        if layers.len() > MAX_DELTAS + 1 {
            return Err(Error::Delta(format!(
                "{} deltas, at most {MAX_DELTAS}: merge them",
                layers.len() - 1
            )));
        }
        let mut below = base.identity.clone();
        for layer in &layers[1..] {
            let Some(info) = &layer.delta else {
                return Err(Error::Delta(
                    "a whole snapshot above the base; only deltas go there".into(),
                ));
            };
            if info.base_identity != below {
                return Err(Error::WrongBase {
                    expected: info.base_identity.clone(),
                    found: below,
                });
            }
            below = info.result_identity.clone();
        }
        let delta_digests = (layers.len() > 1).then(|| DeltaDigests::build(&layers[1..]));
        Ok(View {
            layers,
            current,
            delta_digests,
        })
    }

    /// The layers, base first.
    pub fn layers(&self) -> &[Arc<Layer>] {
        &self.layers
    }

    /// The base snapshot.
    pub fn base(&self) -> &Snapshot<Storage> {
        &self.layers[0].snapshot
    }

    fn newest(&self) -> &Layer {
        self.layers.last().map_or(&self.layers[0], |l| l)
    }

    /// The metadata of the snapshot this view stands for (the newest layer's result).
    pub fn metadata(&self) -> &Metadata {
        &self.newest().metadata
    }

    /// The sequence of the snapshot this view stands for.
    pub fn sequence(&self) -> u64 {
        self.metadata().sequence
    }

    /// The identity of the snapshot this view stands for (for a delta, its result's).
    pub fn identity(&self) -> &str {
        let newest = self.newest();
        newest
            .delta
            .as_ref()
            .map_or(newest.identity.as_str(), |d| d.result_identity.as_str())
    }

    /// Looks up one digest, newest layer first. Never allocates.
    #[inline]
    pub fn lookup_digest(&self, digest: &Digest) -> Option<Record<'_>> {
        let probe = DigestProbe::new(digest);
        let deltas = match &self.delta_digests {
            Some(any) if any.filter.may_contain(probe.filter.hash()) => &self.layers[1..],
            _ => &[],
        };
        for layer in deltas.iter().rev() {
            let s = &layer.snapshot;
            if !s.filter().may_contain_probe(&probe.filter) {
                continue;
            }
            match delta_answer(s, &probe) {
                Answer::Listed(id) => return s.record(id),
                Answer::Removed => return None,
                Answer::Silent => {}
            }
        }
        let base = self.base();
        base.find_probe(&probe).and_then(|id| base.record(id))
    }

    /// The record a batched lookup found.
    pub fn record(&self, found: Found) -> Option<Record<'_>> {
        self.layers
            .get(found.layer as usize)?
            .snapshot
            .record(found.id)
    }

    /// Looks up many digests, writing `out[i]` for `digests[i]`. Never allocates: one pass
    /// of the base's pipeline ([`Snapshot::lookup_digests`]) over the whole slice, in which
    /// the delta layers see each key first (their filter blocks prefetched with the base's).
    ///
    /// # Panics
    ///
    /// When `out` is shorter than `digests`.
    pub fn lookup_digests(&self, digests: &[Digest], out: &mut [Option<Found>]) {
        let base = self.base();
        let deltas = &self.layers[1..];
        let Some(any) = &self.delta_digests else {
            base.lookup_digests_over(digests, &NoOverlay, out);
            return;
        };
        let mut overlay = DeltaOverlay {
            any: &any.filter,
            filters: [BlockedBloom::default(); MAX_DELTAS],
            count: deltas.len().min(MAX_DELTAS),
            layers: &self.layers,
        };
        for (slot, layer) in overlay.filters.iter_mut().zip(deltas) {
            *slot = layer.snapshot.filter();
        }
        base.lookup_digests_over(digests, &overlay, out);
    }

    /// Every listed digest of one kind whose fingerprint lies in `lo..=hi`, in fingerprint
    /// order, as the merged snapshot would list it: the newest layer that lists a key
    /// answers, and a delta's tombstone hides it in the layers below. Range queries (a
    /// client that reveals only a prefix of the digest) use it; a prefix range is a tiny
    /// share of each table, read by one binary search and a short scan per layer.
    pub fn digest_range(&self, kind: DigestKind, lo: u128, hi: u128) -> Vec<(u128, Found)> {
        let base = self.base().digest_table(kind);
        if self.layers.len() == 1 {
            return base
                .range(lo, hi)
                .map(|(fp, id)| (fp, Found { layer: 0, id }))
                .collect();
        }
        let mut merged: BTreeMap<u128, Option<Found>> = base
            .range(lo, hi)
            .map(|(fp, id)| (fp, Some(Found { layer: 0, id })))
            .collect();
        for (layer, l) in self.layers.iter().enumerate().skip(1) {
            let s = &l.snapshot;
            for (fp, _) in s.removed_table(kind).range(lo, hi) {
                merged.insert(fp, None);
            }
            for (fp, id) in s.digest_table(kind).range(lo, hi) {
                let layer = layer as u32;
                merged.insert(fp, Some(Found { layer, id }));
            }
        }
        merged
            .into_iter()
            .filter_map(|(fp, found)| Some((fp, found?)))
            .collect()
    }

    /// Looks up a canonical URL: each expression, most specific first, through the layers
    /// newest first (a tombstone hides the expression in older layers); the first listed
    /// expression answers. `scratch` is reused between calls.
    ///
    /// # Errors
    ///
    /// Never for a verified view (kept for the same signature as [`Snapshot::lookup_url`]).
    pub fn lookup_url(
        &self,
        url: &CanonicalUrl,
        scratch: &mut Expressions,
    ) -> Result<Option<Hit<'_>>> {
        scratch.fill(url);
        for key in scratch.keys() {
            let probe = FilterProbe::new(expression_hash(key));
            for layer in self.layers.iter().rev() {
                let s = &layer.snapshot;
                if !s.filter().may_contain_probe(&probe) {
                    continue;
                }
                if let Some(id) = url_table(s)
                    .and_then(|t| t.get(key))
                    .filter(|id| id.0 < s.record_count())
                {
                    return Ok(s.record(id).map(|record| Hit {
                        record,
                        matched: key_expression(key),
                    }));
                }
                if layer.delta.is_some() && removed_urls(s).and_then(|t| t.get(key)).is_some() {
                    break;
                }
            }
        }
        Ok(None)
    }

    /// Looks up any query: a digest, a URL or a domain.
    ///
    /// # Errors
    ///
    /// As [`View::lookup_url`].
    pub fn lookup(&self, query: &Query) -> Result<Option<Hit<'_>>> {
        match query {
            Query::Digest(d) => Ok(self.lookup_digest(d).map(|record| Hit {
                record,
                matched: d.to_hex(),
            })),
            Query::Url(u) | Query::Domain(u) => self.lookup_url(u, &mut Expressions::new()),
        }
    }
}

/// The last update attempt, as reported by the update tool ([`Engine::note_update`]) or
/// [`Engine::reload`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateAttempt {
    /// When, Unix seconds.
    pub at: i64,
    /// Whether it succeeded.
    pub ok: bool,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What an engine is serving.
#[derive(Debug, Clone, Serialize)]
pub struct EngineStatus {
    /// Sequence of the snapshot in force.
    pub sequence: u64,
    /// Identity of the snapshot in force (the newest delta's result).
    pub identity: String,
    /// Identity of the base layer.
    pub base: String,
    /// Identities of the delta layers, oldest first.
    pub deltas: Vec<String>,
    /// Number of layers (base included).
    pub layers: usize,
    /// Build time of the snapshot in force, Unix seconds.
    pub created: i64,
    /// Expiry, Unix seconds.
    pub expires: Option<i64>,
    /// Seconds since `created`.
    pub age_seconds: i64,
    /// Whether `expires` has passed.
    pub stale: bool,
    /// The cloud policy (the default, enabled, when the snapshot sets none).
    pub policy: Policy,
    /// The policy in words.
    pub policy_description: String,
    /// The last update attempt, when there was one.
    pub last_update: Option<UpdateAttempt>,
}

/// The live view: lookups through [`Engine::load`], atomic [`Engine::swap`].
pub struct Engine {
    current: ArcSwap<View>,
    state: Option<StateDir>,
    options: EngineOptions,
    last_update: Mutex<Option<UpdateAttempt>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("sequence", &self.current.load().sequence())
            .field("state", &self.state)
            .finish()
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Engine {
    /// An engine over a snapshot in memory (tests, services that load over the network).
    ///
    /// # Errors
    ///
    /// When the snapshot does not verify or is a delta.
    pub fn from_snapshot(snapshot: Snapshot<Vec<u8>>) -> Result<Engine> {
        let layer = Layer::new(
            Snapshot::open(Storage::Memory(snapshot.into_storage()))?,
            None,
            &EngineOptions::default(),
        )?;
        let view = View::new(vec![Arc::new(layer)])?;
        Ok(Engine::with_view(view, None, EngineOptions::default()))
    }

    fn with_view(view: View, state: Option<StateDir>, options: EngineOptions) -> Engine {
        Engine {
            current: ArcSwap::from_pointee(view),
            state,
            options,
            last_update: Mutex::new(None),
        }
    }

    /// Opens a base snapshot file and deltas over it (oldest first) by memory-mapping them,
    /// verifying each.
    ///
    /// # Errors
    ///
    /// When a file cannot be mapped or does not verify, or a delta does not apply to the
    /// layer below it.
    ///
    /// # Safety
    ///
    /// The files must not be truncated or modified in place while the engine (or a view
    /// loaded from it) is alive: a truncated mapping raises `SIGBUS`. Publish new files by
    /// writing a temporary file and renaming it into place, as [`state::StateDir`] and
    /// [`crate::SnapshotBuilder::write`] do; removing or renaming over a mapped file is fine.
    #[allow(unsafe_code)]
    pub unsafe fn open(base: &Path, deltas: &[PathBuf]) -> Result<Engine> {
        // SAFETY: forwarded to our caller (this function's contract).
        unsafe { Engine::open_with(base, deltas, EngineOptions::default()) }
    }

    /// [`Engine::open`] with options.
    ///
    /// # Errors
    ///
    /// As [`Engine::open`], and when `options`' check refuses a layer.
    ///
    /// # Safety
    ///
    /// As [`Engine::open`].
    #[allow(unsafe_code)]
    pub unsafe fn open_with(
        base: &Path,
        deltas: &[PathBuf],
        options: EngineOptions,
    ) -> Result<Engine> {
        // SAFETY: forwarded to our caller (this function's contract).
        let view = unsafe { Engine::map_view(base, deltas, &options, None, None) }?;
        Ok(Engine::with_view(view, None, options))
    }

    /// Opens the set in force in an update state directory ([`state`]).
    ///
    /// # Errors
    ///
    /// When `current.json` is missing or malformed, or as [`Engine::open`].
    ///
    /// # Safety
    ///
    /// As [`Engine::open`]. The state directory's own writers (`repute update`,
    /// [`StateDir`]) only ever write by rename; nothing else may write its files.
    #[allow(unsafe_code)]
    pub unsafe fn open_state_dir(dir: &Path) -> Result<Engine> {
        // SAFETY: forwarded to our caller (this function's contract).
        unsafe { Engine::open_state_dir_with(dir, EngineOptions::default()) }
    }

    /// [`Engine::open_state_dir`] with options.
    ///
    /// # Errors
    ///
    /// As [`Engine::open_state_dir`].
    ///
    /// # Safety
    ///
    /// As [`Engine::open_state_dir`].
    #[allow(unsafe_code)]
    pub unsafe fn open_state_dir_with(dir: &Path, options: EngineOptions) -> Result<Engine> {
        let state = StateDir::open(dir)?;
        let current = state.current()?;
        // SAFETY: forwarded to our caller (this function's contract).
        let view = unsafe { Engine::state_view(&state, current, &options, None) }?;
        Ok(Engine::with_view(view, Some(state), options))
    }

    /// # Safety
    ///
    /// As [`Engine::open`].
    #[allow(unsafe_code)]
    unsafe fn state_view(
        state: &StateDir,
        current: Current,
        options: &EngineOptions,
        reuse: Option<&View>,
    ) -> Result<View> {
        let base = state.file(&current.base)?;
        let deltas = current
            .deltas
            .iter()
            .map(|d| state.file(d))
            .collect::<Result<Vec<_>>>()?;
        // SAFETY: forwarded to our caller.
        unsafe { Engine::map_view(&base, &deltas, options, reuse, Some(current)) }
    }

    /// Maps and verifies the layers, reusing those of `reuse` that have the same file name
    /// (names in a state directory are identities).
    ///
    /// # Safety
    ///
    /// As [`Engine::open`].
    #[allow(unsafe_code)]
    unsafe fn map_view(
        base: &Path,
        deltas: &[PathBuf],
        options: &EngineOptions,
        reuse: Option<&View>,
        current: Option<Current>,
    ) -> Result<View> {
        let mut layers = Vec::with_capacity(deltas.len() + 1);
        for path in std::iter::once(base).chain(deltas.iter().map(PathBuf::as_path)) {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let existing = reuse.and_then(|v| {
                v.layers
                    .iter()
                    .find(|l| current.is_some() && l.name.is_some() && l.name == name)
            });
            match existing {
                Some(layer) => layers.push(Arc::clone(layer)),
                // SAFETY: forwarded to our caller.
                None => layers.push(Arc::new(unsafe { Layer::map(path, options) }?)),
            }
        }
        View::with_current(layers, current)
    }

    /// The current view: a cheap, lock-free guard. Hold it for a lookup or a batch, not for
    /// long (a held guard keeps its view's memory alive after a swap).
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<View>> {
        self.current.load()
    }

    /// The current view as an `Arc`, for holding longer.
    pub fn load_full(&self) -> Arc<View> {
        self.current.load_full()
    }

    /// Swaps in a new (verified) view; returns the old one. Readers that loaded the old view
    /// finish on it; it is dropped when the last of them lets go.
    pub fn swap(&self, view: View) -> Arc<View> {
        self.current.swap(Arc::new(view))
    }

    /// Maps and verifies new files and swaps them in.
    ///
    /// # Errors
    ///
    /// As [`Engine::open`]; the current view stays when anything fails.
    ///
    /// # Safety
    ///
    /// As [`Engine::open`].
    #[allow(unsafe_code)]
    pub unsafe fn swap_files(&self, base: &Path, deltas: &[PathBuf]) -> Result<()> {
        // SAFETY: forwarded to our caller.
        let view = unsafe { Engine::map_view(base, deltas, &self.options, None, None) }?;
        self.swap(view);
        Ok(())
    }

    /// Re-reads the state directory and swaps in its set when it changed (reusing layers
    /// that stay). Returns whether it swapped. Records the attempt for [`Engine::status`].
    ///
    /// # Errors
    ///
    /// When the engine was not opened from a state directory, or the new set does not load;
    /// the current view stays.
    pub fn reload(&self) -> Result<bool> {
        let result = self.reload_inner();
        match &result {
            Ok(true) => self.note_update(true, None),
            Ok(false) => {}
            Err(e) => self.note_update(false, Some(e.to_string())),
        }
        result
    }

    fn reload_inner(&self) -> Result<bool> {
        let Some(state) = &self.state else {
            return Err(Error::State {
                path: PathBuf::new(),
                reason: "the engine was not opened from a state directory".into(),
            });
        };
        let current = state.current()?;
        let old = self.load_full();
        if old.current.as_ref() == Some(&current) {
            return Ok(false);
        }
        #[allow(unsafe_code)]
        // SAFETY: the engine was opened with `open_state_dir`, whose caller promised that the
        // directory's files are only ever written by rename.
        let view = unsafe { Engine::state_view(state, current, &self.options, Some(&old)) }?;
        self.swap(view);
        Ok(true)
    }

    /// Records an update attempt (the update tool calls this; [`Engine::reload`] does too).
    pub fn note_update(&self, ok: bool, error: Option<String>) {
        if let Ok(mut last) = self.last_update.lock() {
            *last = Some(UpdateAttempt {
                at: unix_now(),
                ok,
                error,
            });
        }
    }

    /// What the engine is serving, as of now.
    pub fn status(&self) -> EngineStatus {
        self.status_at(unix_now())
    }

    /// What the engine is serving, as of `now` (Unix seconds).
    pub fn status_at(&self, now: i64) -> EngineStatus {
        let view = self.load_full();
        let m = view.metadata();
        let policy = m.policy.clone().unwrap_or_default();
        EngineStatus {
            sequence: m.sequence,
            identity: view.identity().to_string(),
            base: view.layers[0].identity.clone(),
            deltas: view.layers[1..]
                .iter()
                .map(|l| l.identity.clone())
                .collect(),
            layers: view.layers.len(),
            created: m.created,
            expires: m.expires,
            age_seconds: now.saturating_sub(m.created),
            stale: m.expires.is_some_and(|e| now >= e),
            policy_description: policy.describe(now),
            policy,
            last_update: self.last_update.lock().ok().and_then(|l| l.clone()),
        }
    }

    /// The state directory the engine follows, when it was opened from one.
    pub fn state_dir(&self) -> Option<&StateDir> {
        self.state.as_ref()
    }
}
