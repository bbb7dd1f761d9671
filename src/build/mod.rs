//! [`SnapshotBuilder`]: collect keys and records, resolve conflicts, write a snapshot.
//!
//! Feeds ([`crate::feeds`]) add keys with a [`RecordSpec`]. The builder interns records
//! (one per distinct content) and collects digest keys in a run sorter: within
//! the memory budget they are kept in memory, beyond it sorted runs are spilled to temporary
//! files and merged at the end, so 100 M keys build in a few GiB. On
//! [`SnapshotBuilder::write`] the merged stream is deduplicated, conflicts are resolved by the
//! precedence rules (an override feed wins; otherwise malicious > suspicious > trusted >
//! known; ties go to the record that sorts first by content), and the sections are streamed
//! to the file. URL and domain entries, far fewer, are sorted in memory.
//!
//! The output depends only on the set of inputs, not on their order: records are numbered
//! in content order, feeds are listed by name, sections are written in a fixed order.
//!
//! [`SnapshotBuilder::write`] publishes atomically: a temporary file in the target directory,
//! fsync, rename, fsync of the directory. A failed build never leaves a partial snapshot at
//! the output path.

pub mod publish;
mod sorter;
mod workers;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::digest::{fingerprint_hash, TableLayout, TableWriter};
use crate::filter::{BloomBuilder, DEFAULT_BITS_PER_KEY};
use crate::format::{FeedSummary, Metadata, SectionKind, SectionWriter, SnapshotFile};
use crate::url::{
    entry_expression, expression_hash, expression_key, expression_type, key_expression, EntryKind,
    UrlError,
};
use crate::{Digest, DigestKind, Error, RecordSpec, Result, Verdict};
use sorter::{DigestEntry, RunSorter};
pub(crate) use workers::Workers;

/// A feed as the builder sees it: where records come from and how they rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedInfo {
    /// Source name, stored in every record from this feed.
    pub source: String,
    /// Format name, for the metadata.
    pub format: String,
    /// Verdict for records that do not carry one.
    pub verdict: Verdict,
    /// Category for records that do not carry one.
    pub category: Option<String>,
    /// Whether this feed's verdicts override every other feed's (false-positive control).
    pub r#override: bool,
}

impl FeedInfo {
    /// A feed with a source name, format and default verdict.
    pub fn new(source: impl Into<String>, format: impl Into<String>, verdict: Verdict) -> Self {
        FeedInfo {
            source: source.into(),
            format: format.into(),
            verdict,
            category: None,
            r#override: false,
        }
    }
}

/// Identifies a feed added to a builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FeedId(pub(crate) u32);

/// What reading one feed produced.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FeedReport {
    /// Source name.
    pub source: String,
    /// Format name.
    pub format: String,
    /// The file read.
    pub path: String,
    /// Lines read (including comments and blanks).
    pub lines: u64,
    /// Keys added.
    pub keys: u64,
    /// Lines that could not be used.
    pub malformed: u64,
    /// Lines skipped on purpose (allowed hosts such as `localhost`, filtered rows).
    pub skipped: u64,
    /// The first few malformed lines: (line number, reason). A reason is escaped (control
    /// characters as `\\xHH`, see [`escape_text`](crate::text::escape_text)) and at most
    /// [`FeedReport::MAX_REASON`] bytes, so a feed's bytes never reach a report raw.
    pub errors: Vec<(u64, String)>,
}

impl FeedReport {
    /// How many malformed lines a report keeps in full.
    pub const MAX_ERRORS: usize = 10;

    /// The longest reason kept, in bytes, after escaping; longer ones end in `...`.
    pub const MAX_REASON: usize = 200;

    /// Counts a malformed line, keeping the first few reasons (escaped and capped).
    pub fn malformed(&mut self, line: u64, reason: impl Into<String>) {
        self.malformed += 1;
        if self.errors.len() < Self::MAX_ERRORS {
            let reason = reason.into();
            let mut reason = crate::text::escape_text(&reason).into_owned();
            if reason.len() > Self::MAX_REASON {
                let mut cut = Self::MAX_REASON - 3;
                while !reason.is_char_boundary(cut) {
                    cut -= 1;
                }
                reason.truncate(cut);
                reason.push_str("...");
            }
            self.errors.push((line, reason));
        }
    }
}

/// What a build produced.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BuildReport {
    /// Keys per kind after deduplication: `md5`, `sha1`, `sha256`, `url`, `domain`.
    pub keys: BTreeMap<String, u64>,
    /// Keys per verdict.
    pub verdicts: BTreeMap<String, u64>,
    /// Distinct records.
    pub records: u64,
    /// Keys added more than once with the same verdict (merged, first record by content kept).
    pub duplicates: u64,
    /// Keys added with different verdicts (resolved by precedence).
    pub conflicts: u64,
    /// Conflicts decided by an override feed.
    pub overrides: u64,
    /// Entries refused (e.g. a whole public suffix).
    pub refused: u64,
    /// Snapshot size in bytes.
    pub bytes: u64,
    /// Sorted runs spilled to disk because the keys exceeded the memory budget.
    pub spilled_runs: u64,
    /// Per source name: keys kept, duplicates, and conflicts won and lost.
    pub sources: BTreeMap<String, SourceReport>,
}

/// What a build is doing, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildPhase {
    /// Merging sorted digest keys, resolving conflicts, writing the tables.
    Digests,
    /// Sorting and writing URL and domain entries.
    Web,
    /// Checksumming the written file.
    Checksums,
}

/// How one source's keys fared in conflict resolution.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SourceReport {
    /// Keys this source holds in the snapshot.
    pub kept: u64,
    /// Keys this source listed more than once, or that another source listed with the same
    /// verdict first (by content order).
    pub duplicates: u64,
    /// Keys listed with different verdicts where this source's verdict won.
    pub conflicts_won: u64,
    /// Keys listed with different verdicts where another source's verdict won.
    pub conflicts_lost: u64,
}

/// The record as stored, plus whether it came from an override feed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct StoredRecord {
    pub verdict: u8,
    pub category: Option<String>,
    pub name: Option<String>,
    pub source: String,
    pub first_seen: Option<i64>,
    pub last_seen: Option<i64>,
    pub confidence: Option<u8>,
    pub r#override: bool,
}

impl StoredRecord {
    /// A record as a snapshot stores it (the override flag is not stored: `false`).
    pub fn from_record(r: &crate::Record<'_>) -> Self {
        StoredRecord {
            verdict: r.verdict().to_byte(),
            category: r.category().map(str::to_string),
            name: r.name().map(str::to_string),
            source: r.source().unwrap_or_default().to_string(),
            first_seen: r.first_seen(),
            last_seen: r.last_seen(),
            confidence: r.confidence(),
            r#override: false,
        }
    }
}

/// The default memory budget: a quarter of physical memory, between 256 MiB and 8 GiB.
pub fn default_memory_budget() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(4 << 30, |kb| kb * 1024);
    (total / 4).clamp(256 << 20, 8 << 30)
}

/// Collects keys and records, then writes a snapshot.
#[derive(Debug)]
pub struct SnapshotBuilder {
    /// Each feed, its key count, and the id of its record for keys with no details.
    feeds: Vec<(FeedInfo, u64, Option<u32>)>,
    records: HashMap<StoredRecord, u32>,
    record_list: Vec<StoredRecord>,
    digests: RunSorter,
    digest_counts: [u64; 3],
    urls: Vec<(Box<[u8]>, u32)>,
    refused: u64,
    deferred: Option<Error>,
    created: i64,
    expires: Option<i64>,
    sequence: u64,
    policy: Option<crate::Policy>,
    bits_per_key: u32,
    temp_dir: Option<PathBuf>,
    workers: Workers,
    table_layout: crate::digest::TableLayout,
}

impl Default for SnapshotBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// Digest fingerprints handed to the filter at a time.
const FILTER_BATCH: usize = 1 << 14;

/// The precedence of a record: lower wins.
type Priority = (bool, u8, u32);

impl SnapshotBuilder {
    /// An empty builder with the default memory budget; `created` is 0 until set, so builds
    /// are reproducible by default.
    pub fn new() -> Self {
        Self::with_memory(default_memory_budget())
    }

    /// An empty builder that keeps at most about `bytes` of keys in memory before spilling
    /// sorted runs to temporary files.
    pub fn with_memory(bytes: u64) -> Self {
        let workers = Workers::new(0);
        SnapshotBuilder {
            feeds: Vec::new(),
            records: HashMap::new(),
            record_list: Vec::new(),
            // Sorted keys get most of the budget; the filter and records the rest.
            digests: RunSorter::new(
                (bytes / 10 * 7) as usize,
                &std::env::temp_dir(),
                workers.clone(),
            ),
            digest_counts: [0; 3],
            urls: Vec::new(),
            refused: 0,
            deferred: None,
            created: 0,
            expires: None,
            sequence: 0,
            policy: None,
            bits_per_key: DEFAULT_BITS_PER_KEY,
            temp_dir: None,
            workers,
            table_layout: crate::digest::TableLayout::default(),
        }
    }

    /// How many threads parse feeds and sort keys: 0 (the default) for the available
    /// cores, 1 for no threads beyond the caller's. The snapshot and the reports are the
    /// same bytes whatever the number.
    pub fn threads(&mut self, threads: usize) -> &mut Self {
        self.workers = Workers::new(threads);
        self.digests.set_workers(self.workers.clone());
        self
    }

    /// The layout of the digest tables: home slots (the default), or format v1's bucket
    /// index, which this version still reads (for comparing the two, or for readers older
    /// than home slots).
    pub fn table_layout(&mut self, layout: crate::digest::TableLayout) -> &mut Self {
        self.table_layout = layout;
        self
    }

    /// The threads that parse feeds and sort keys, when there are more than one.
    pub(crate) fn workers(&self) -> &Workers {
        &self.workers
    }

    /// Where spilled runs go (default: the output's directory for [`SnapshotBuilder::write`],
    /// the system temporary directory otherwise). Set it before adding keys.
    pub fn temp_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        let dir = dir.into();
        self.digests.set_dir(&dir);
        self.temp_dir = Some(dir);
        self
    }

    /// Sets the build time recorded in the metadata (Unix seconds).
    pub fn created(&mut self, unix_seconds: i64) -> &mut Self {
        self.created = unix_seconds;
        self
    }

    /// Sets the expiry time recorded in the metadata (Unix seconds).
    pub fn expires(&mut self, unix_seconds: Option<i64>) -> &mut Self {
        self.expires = unix_seconds;
        self
    }

    /// Sets the publisher's sequence number.
    pub fn sequence(&mut self, sequence: u64) -> &mut Self {
        self.sequence = sequence;
        self
    }

    /// Sets the publisher's cloud policy recorded in the metadata.
    pub fn policy(&mut self, policy: Option<crate::Policy>) -> &mut Self {
        self.policy = policy;
        self
    }

    /// Sets the filter's bits per key (default 16).
    pub fn bits_per_key(&mut self, bits: u32) -> &mut Self {
        self.bits_per_key = bits.clamp(4, 64);
        self
    }

    /// Registers a feed.
    pub fn add_feed(&mut self, info: FeedInfo) -> FeedId {
        self.feeds.push((info, 0, None));
        FeedId(self.feeds.len() as u32 - 1)
    }

    /// Keys added so far (digests and web entries, before deduplication).
    pub fn len(&self) -> u64 {
        self.digests.len() + self.urls.len() as u64
    }

    /// Whether no key has been added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn intern(&mut self, feed: FeedId, spec: RecordSpec) -> u32 {
        let (info, keys, plain) = &mut self.feeds[feed.0 as usize];
        *keys += 1;
        // Most keys of a plain list carry nothing of their own: one cached record per feed.
        let is_plain = spec == RecordSpec::default();
        if is_plain {
            if let Some(id) = plain {
                return *id;
            }
        }
        let stored = StoredRecord {
            verdict: spec
                .verdict
                .filter(|v| *v != Verdict::Unknown)
                .unwrap_or(info.verdict)
                .to_byte(),
            category: spec.category.or_else(|| info.category.clone()),
            name: spec.name,
            source: info.source.clone(),
            first_seen: spec.first_seen,
            last_seen: spec.last_seen,
            confidence: spec.confidence.map(|c| c.min(100)),
            r#override: info.r#override,
        };
        let id = match self.records.get(&stored) {
            Some(id) => *id,
            None => {
                let id = self.record_list.len() as u32;
                self.record_list.push(stored.clone());
                self.records.insert(stored, id);
                id
            }
        };
        if is_plain {
            self.feeds[feed.0 as usize].2 = Some(id);
        }
        id
    }

    /// Adds a digest key. A failure to spill keys to disk is reported by the build.
    pub fn add_digest(&mut self, feed: FeedId, digest: Digest, record: RecordSpec) {
        let id = self.intern(feed, record);
        let fp = digest.fingerprint();
        let kind = digest.kind().index();
        self.digest_counts[kind] += 1;
        let entry = DigestEntry {
            kind: kind as u8,
            hi: (fp >> 64) as u64,
            lo: fp as u64,
            id,
        };
        if let Err(e) = self.digests.push(entry) {
            self.deferred
                .get_or_insert(Error::Build(format!("spilling sorted keys: {e}")));
        }
    }

    /// Adds a URL, URL prefix or domain entry.
    ///
    /// # Errors
    ///
    /// When the entry cannot be canonicalized or would list a whole public suffix.
    pub fn add_url_entry(
        &mut self,
        feed: FeedId,
        entry: &str,
        kind: EntryKind,
        record: RecordSpec,
    ) -> Result<(), UrlError> {
        match url_key(entry, kind) {
            Ok(key) => {
                self.add_url_key(feed, key, record);
                Ok(())
            }
            Err(e) => {
                self.refused += 1;
                Err(e)
            }
        }
    }

    /// Adds a URL, URL prefix or domain entry already made into its key by [`url_key`].
    pub(crate) fn add_url_key(&mut self, feed: FeedId, key: Vec<u8>, record: RecordSpec) {
        let id = self.intern(feed, record);
        self.urls.push((key.into_boxed_slice(), id));
    }

    /// Builds the snapshot bytes in memory (through a temporary file).
    ///
    /// # Errors
    ///
    /// As [`SnapshotBuilder::build`].
    pub fn to_bytes(&mut self) -> Result<Vec<u8>> {
        self.build().map(|(bytes, _)| bytes)
    }

    /// Builds the snapshot bytes and the report, through a temporary file.
    ///
    /// # Errors
    ///
    /// On I/O failure, or when the input exceeds the format's limits.
    pub fn build(&mut self) -> Result<(Vec<u8>, BuildReport)> {
        let dir = self.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let file = tempfile::tempfile_in(&dir).map_err(|e| Error::io(&dir, e))?;
        let (mut file, report) = self.write_to(file, &mut |_, _, _| {})?;
        let mut bytes = Vec::with_capacity(report.bytes as usize);
        file.rewind().map_err(|e| Error::io(&dir, e))?;
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io(&dir, e))?;
        Ok((bytes, report))
    }

    /// Builds and publishes the snapshot atomically at `path`: a temporary file in the same
    /// directory, fsync, rename, fsync of the directory.
    ///
    /// # Errors
    ///
    /// On I/O failure (nothing is left at `path`, and an existing file there is untouched)
    /// or when the input exceeds the format's limits.
    pub fn write(&mut self, path: impl AsRef<Path>) -> Result<BuildReport> {
        self.write_with_progress(path, &mut |_, _, _| {})
    }

    /// [`SnapshotBuilder::write`], calling `progress(phase, done, total)` now and then while
    /// keys are merged and written (`total` may be an upper bound).
    ///
    /// # Errors
    ///
    /// As [`SnapshotBuilder::write`].
    pub fn write_with_progress(
        &mut self,
        path: impl AsRef<Path>,
        progress: &mut dyn FnMut(BuildPhase, u64, u64),
    ) -> Result<BuildReport> {
        let path = path.as_ref();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = publish::TempOutput::create(&dir).map_err(|e| Error::io(&dir, e))?;
        let file = tmp.file().try_clone().map_err(|e| Error::io(&dir, e))?;
        // Temporary files are created private; a published snapshot is read by every agent.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(|e| Error::io(&dir, e))?;
        }
        if let Some(spill) = &self.temp_dir {
            let _ = publish::remove_stale(spill);
        }
        let (_, report) = self.write_to(file, progress)?;
        tmp.persist(path).map_err(|e| Error::io(path, e))?;
        Ok(report)
    }

    fn write_to(
        &mut self,
        file: std::fs::File,
        progress: &mut dyn FnMut(BuildPhase, u64, u64),
    ) -> Result<(std::fs::File, BuildReport)> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        if self.record_list.len() >= u32::MAX as usize {
            return Err(Error::Build("more than 4 billion distinct records".into()));
        }
        let io = |e: std::io::Error| Error::Build(format!("writing the snapshot: {e}"));
        let temp_dir = self.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let mut report = BuildReport {
            refused: self.refused,
            spilled_runs: self.digests.spilled_runs() as u64,
            ..BuildReport::default()
        };

        // Records are numbered in content order: that number is their final id.
        let mut order: Vec<u32> = (0..self.record_list.len() as u32).collect();
        order.sort_by(|a, b| self.record_list[*a as usize].cmp(&self.record_list[*b as usize]));
        let mut rank = vec![0u32; order.len()];
        for (r, id) in order.iter().enumerate() {
            rank[*id as usize] = r as u32;
        }
        let records = &self.record_list;
        let priority = |id: u32| -> Priority {
            let r = &records[id as usize];
            (
                !r.r#override,
                Verdict::from_byte(r.verdict).map_or(9, Verdict::precedence),
                rank[id as usize],
            )
        };

        let digest_kinds: Vec<DigestKind> = DigestKind::ALL
            .into_iter()
            .filter(|k| self.digest_counts[k.index()] > 0)
            .collect();
        let sections = digest_kinds.len() + usize::from(!self.urls.is_empty()) + 4;
        let mut out = SnapshotFile::new(file, sections).map_err(io)?;
        let upper_bound = self.digests.len() + self.urls.len() as u64;
        let mut bloom = BloomBuilder::new(upper_bound, self.bits_per_key);
        let mut verdicts: BTreeMap<String, u64> = BTreeMap::new();
        let mut tally = Tally::default();

        // Keys per verdict byte, named at the end (no map lookup per key).
        let mut verdict_counts = [0u64; 256];

        // Digest tables, streamed from the merged runs.
        let digest_total = self.digests.len();
        let digest_counts = self.digest_counts;
        let table_layout = self.table_layout;
        let workers = self.workers.clone();
        let mut merged = self.digests.sorted().map_err(io)?;
        let mut digest_pass = |filter: &mut dyn FnMut(DigestKind, &[u128])| -> Result<()> {
            let mut fingerprints = Vec::with_capacity(FILTER_BATCH);
            let mut pending = merged.next_entry().map_err(io)?;
            let mut digest_done = 0u64;
            progress(BuildPhase::Digests, 0, digest_total);
            for kind in &digest_kinds {
                let section = table_layout.section(*kind);
                let mut table = match table_layout {
                    TableLayout::HomeSlots => {
                        TableWriter::begin_slots(&mut out, section, &temp_dir)
                    }
                    TableLayout::BucketIndex => {
                        let n = digest_counts[kind.index()];
                        TableWriter::begin(&mut out, section, n, &temp_dir)
                    }
                }
                .map_err(io)?;
                let mut group: Vec<u32> = Vec::new();
                while let Some(first) = pending.filter(|e| e.kind as usize == kind.index()) {
                    group.clear();
                    group.push(first.id);
                    pending = merged.next_entry().map_err(io)?;
                    digest_done += 1;
                    if digest_done.is_multiple_of(1 << 16) {
                        progress(BuildPhase::Digests, digest_done, digest_total);
                    }
                    while let Some(e) = pending
                        .filter(|e| e.kind == first.kind && e.hi == first.hi && e.lo == first.lo)
                    {
                        group.push(e.id);
                        pending = merged.next_entry().map_err(io)?;
                        digest_done += 1;
                    }
                    let winner = tally.resolve(&group, records, &priority);
                    let fp = first.fingerprint();
                    fingerprints.push(fp);
                    if fingerprints.len() == FILTER_BATCH {
                        filter(*kind, &fingerprints);
                        fingerprints.clear();
                    }
                    verdict_counts[records[winner as usize].verdict as usize] += 1;
                    table
                        .push(&mut out, fp, rank[winner as usize])
                        .map_err(io)?;
                }
                filter(*kind, &fingerprints);
                fingerprints.clear();
                let n = table.finish(&mut out, order.len() as u32).map_err(io)?;
                report.keys.insert(kind.as_str().into(), n);
            }
            Ok(())
        };
        match workers.pool() {
            // The filter fills on a pool thread while this one merges and writes the tables
            // (a filter's bits are the same in any order of insertion).
            Some(pool) => {
                let (send, receive) = std::sync::mpsc::sync_channel::<(DigestKind, Vec<u128>)>(4);
                let filling = &mut bloom;
                pool.in_place_scope(|scope| {
                    scope.spawn(move |_| {
                        let mut hashes = Vec::with_capacity(FILTER_BATCH);
                        for (kind, fingerprints) in receive {
                            hashes.clear();
                            hashes
                                .extend(fingerprints.iter().map(|fp| fingerprint_hash(kind, *fp)));
                            filling.insert_batch(&hashes);
                        }
                    });
                    let written = digest_pass(&mut |kind, fingerprints| {
                        // The receiver ends only when this sender is dropped.
                        let _ = send.send((kind, fingerprints.to_vec()));
                    });
                    drop(send);
                    written
                })?;
            }
            None => {
                let mut hashes = Vec::with_capacity(FILTER_BATCH);
                digest_pass(&mut |kind, fingerprints| {
                    hashes.clear();
                    hashes.extend(fingerprints.iter().map(|fp| fingerprint_hash(kind, *fp)));
                    bloom.insert_batch(&hashes);
                })?;
            }
        }
        drop(merged);
        for kind in DigestKind::ALL {
            report.keys.entry(kind.as_str().into()).or_insert(0);
        }

        // URL and domain entries, in memory.
        let (mut url_count, mut domain_count) = (0u64, 0u64);
        if !self.urls.is_empty() {
            self.urls.sort_unstable();
            let mut fst = fst::MapBuilder::memory();
            let mut group: Vec<u32> = Vec::new();
            progress(BuildPhase::Digests, digest_total, digest_total);
            progress(BuildPhase::Web, 0, self.urls.len() as u64);
            let mut i = 0;
            while i < self.urls.len() {
                let key = &self.urls[i].0;
                group.clear();
                while i < self.urls.len() && self.urls[i].0 == *key {
                    group.push(self.urls[i].1);
                    i += 1;
                }
                let winner = tally.resolve(&group, records, &priority);
                bloom.insert(expression_hash(key));
                verdict_counts[records[winner as usize].verdict as usize] += 1;
                if expression_type(&key_expression(key)) == "domain" {
                    domain_count += 1;
                } else {
                    url_count += 1;
                }
                fst.insert(key, u64::from(rank[winner as usize]))
                    .map_err(|e| Error::Build(format!("url fst: {e}")))?;
            }
            let bytes = fst
                .into_inner()
                .map_err(|e| Error::Build(format!("url fst: {e}")))?;
            out.section(SectionKind::Urls, &bytes).map_err(io)?;
        }
        report.keys.insert("url".into(), url_count);
        report.keys.insert("domain".into(), domain_count);
        for (byte, n) in verdict_counts.iter().enumerate() {
            if *n > 0 {
                let v = Verdict::from_byte(byte as u8).unwrap_or(Verdict::Unknown);
                *verdicts.entry(v.as_str().into()).or_default() += n;
            }
        }
        report.verdicts = verdicts;
        // Exact repeats the sorter merged before the merge saw them.
        for (id, n) in self.digests.compacted() {
            tally.duplicates += n;
            if let Some(r) = records.get(*id as usize) {
                tally
                    .sources
                    .entry(r.source.clone())
                    .or_default()
                    .duplicates += n;
            }
        }
        tally.finish(records);
        report.duplicates = tally.duplicates;
        report.conflicts = tally.conflicts;
        report.overrides = tally.overrides;
        report.sources = tally.sources;
        report.records = order.len() as u64;

        let (strings, records_section) = record_sections(records, &order)?;
        out.section(SectionKind::Strings, &strings).map_err(io)?;
        out.section(SectionKind::Records, &records_section)
            .map_err(io)?;
        out.section(SectionKind::Filter, &bloom.into_section())
            .map_err(io)?;

        let mut feeds: Vec<FeedSummary> = self
            .feeds
            .iter()
            .map(|(f, keys, _)| FeedSummary {
                source: f.source.clone(),
                format: f.format.clone(),
                verdict: f.verdict.as_str().into(),
                r#override: f.r#override,
                keys: *keys,
            })
            .collect();
        feeds.sort_by(|a, b| {
            (&a.source, &a.format, &a.verdict, a.r#override, a.keys).cmp(&(
                &b.source,
                &b.format,
                &b.verdict,
                b.r#override,
                b.keys,
            ))
        });
        let metadata = Metadata {
            generator: format!("repute {}", env!("CARGO_PKG_VERSION")),
            created: self.created,
            expires: self.expires,
            sequence: self.sequence,
            feeds,
            keys: report.keys.clone(),
            verdicts: report.verdicts.clone(),
            records: report.records,
            filter_bits_per_key: self.bits_per_key as f64,
            policy: self.policy.clone(),
        };
        let json = serde_json::to_vec(&metadata).map_err(|e| Error::Build(e.to_string()))?;
        out.section(SectionKind::Metadata, &json).map_err(io)?;
        progress(BuildPhase::Checksums, 0, 0);
        let (file, len) = out.finish().map_err(io)?;
        report.bytes = len;
        Ok((file, report))
    }
}

/// The key a URL, URL prefix or domain entry is stored under: canonical, and checked
/// against the public suffixes. Pure, so feed readers compute it on their threads.
pub(crate) fn url_key(entry: &str, kind: EntryKind) -> Result<Vec<u8>, UrlError> {
    let expression = entry_expression(entry, kind)?;
    Ok(expression_key(&expression))
}

/// Conflict resolution and its counts.
#[derive(Debug, Default)]
struct Tally {
    duplicates: u64,
    conflicts: u64,
    overrides: u64,
    sources: BTreeMap<String, SourceReport>,
    /// Keys kept per record id, folded into `sources` by [`Tally::finish`]: most keys are
    /// counted here without touching the per-source map.
    kept: Vec<u64>,
}

impl Tally {
    /// Picks the winning record among the records listed for one key, and counts.
    fn resolve(
        &mut self,
        group: &[u32],
        records: &[StoredRecord],
        priority: &dyn Fn(u32) -> Priority,
    ) -> u32 {
        let winner = match group {
            [only] => *only,
            _ => group
                .iter()
                .copied()
                .min_by_key(|id| priority(*id))
                .unwrap_or(0),
        };
        if self.kept.len() <= winner as usize {
            self.kept.resize(records.len().max(winner as usize + 1), 0);
        }
        self.kept[winner as usize] += 1;
        if group.len() == 1 {
            return winner;
        }
        let w = &records[winner as usize];
        let conflicted = group
            .iter()
            .any(|id| records[*id as usize].verdict != w.verdict);
        if conflicted {
            self.conflicts += 1;
            if w.r#override && group.iter().any(|id| !records[*id as usize].r#override) {
                self.overrides += 1;
            }
            self.sources
                .entry(w.source.clone())
                .or_default()
                .conflicts_won += 1;
        }
        let mut winner_seen = false;
        for id in group {
            if *id == winner && !winner_seen {
                winner_seen = true;
                continue;
            }
            let r = &records[*id as usize];
            let stats = self.sources.entry(r.source.clone()).or_default();
            if r.verdict == w.verdict {
                self.duplicates += 1;
                stats.duplicates += 1;
            } else {
                stats.conflicts_lost += 1;
            }
        }
        winner
    }

    /// Folds the keys kept per record into the per-source counts.
    fn finish(&mut self, records: &[StoredRecord]) {
        for (id, n) in self.kept.iter().enumerate() {
            if *n > 0 {
                if let Some(r) = records.get(id) {
                    self.sources.entry(r.source.clone()).or_default().kept += n;
                }
            }
        }
        self.kept.clear();
    }
}

/// The string and record sections, records in content order.
pub(crate) fn record_sections(
    records: &[StoredRecord],
    order: &[u32],
) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut strings: Vec<&str> = Vec::new();
    for r in records {
        strings.extend(r.category.as_deref());
        strings.extend(r.name.as_deref());
        strings.push(&r.source);
    }
    strings.sort_unstable();
    strings.dedup();
    let total: usize = strings.iter().map(|s| s.len()).sum();
    if total > u32::MAX as usize {
        return Err(Error::Build("string table over 4 GiB".into()));
    }
    let string_id = |s: Option<&str>| match s {
        Some(s) => strings.binary_search(&s).map_or(u32::MAX, |i| i as u32),
        None => u32::MAX,
    };
    let mut st = SectionWriter::new();
    st.u64(strings.len() as u64);
    let mut offset = 0u32;
    st.u32(0);
    for s in &strings {
        offset += s.len() as u32;
        st.u32(offset);
    }
    for s in &strings {
        st.raw(s.as_bytes());
    }
    let mut rs = SectionWriter::new();
    rs.u64(order.len() as u64);
    rs.raw(&[0; 24]);
    for id in order {
        let r = &records[*id as usize];
        rs.u8(r.verdict);
        rs.u8(r.confidence.unwrap_or(255));
        rs.u16(if r.r#override {
            crate::format::RECORD_FLAG_OVERRIDE
        } else {
            0
        });
        rs.u32(string_id(r.category.as_deref()));
        rs.u32(string_id(r.name.as_deref()));
        rs.u32(string_id(Some(&r.source)));
        rs.i64(r.first_seen.unwrap_or(i64::MIN));
        rs.i64(r.last_seen.unwrap_or(i64::MIN));
    }
    Ok((st.bytes, rs.bytes))
}

/// Writes `bytes` to a temporary file beside `path`, fsyncs it, renames it over `path` and
/// fsyncs the directory.
///
/// # Errors
///
/// On any I/O failure; the temporary file is removed and `path` is untouched.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = publish::TempOutput::create(dir).map_err(|e| Error::io(dir, e))?;
    tmp.file().write_all(bytes).map_err(|e| Error::io(dir, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e))
}
