//! [`SnapshotBuilder`]: collect keys and records, resolve conflicts, write a snapshot.
//!
//! Feeds ([`crate::feeds`]) add keys with a [`RecordSpec`]. On [`SnapshotBuilder::finish`]
//! the builder interns records, sorts and deduplicates keys, resolves conflicts by the
//! precedence rules (an override feed wins; otherwise malicious > suspicious > trusted >
//! known; ties go to the record that sorts first by content), and lays out the sections.
//! The output depends only on the set of inputs, not on their order: records are numbered
//! in content order, feeds are listed by name, sections are written in kind order.
//!
//! [`SnapshotBuilder::write`] publishes atomically: a temporary file in the target directory,
//! fsync, rename, fsync of the directory. A failed build never leaves a partial snapshot at
//! the output path.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::digest::TableBuilder;
use crate::filter::{BloomBuilder, DEFAULT_BITS_PER_KEY};
use crate::format::{FeedSummary, Metadata, SectionKind, SectionWriter, SnapshotWriter};
use crate::url::{
    entry_expression, expression_hash, expression_key, expression_type, EntryKind, UrlError,
};
use crate::{Digest, DigestKind, Error, RecordSpec, Result, Verdict};

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
    /// The first few malformed lines: (line number, reason).
    pub errors: Vec<(u64, String)>,
}

impl FeedReport {
    /// How many malformed lines a report keeps in full.
    pub const MAX_ERRORS: usize = 10;

    /// Counts a malformed line, keeping the first few reasons.
    pub fn malformed(&mut self, line: u64, reason: impl Into<String>) {
        self.malformed += 1;
        if self.errors.len() < Self::MAX_ERRORS {
            self.errors.push((line, reason.into()));
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
}

/// The record as stored, plus whether it came from an override feed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct StoredRecord {
    verdict: u8,
    category: Option<String>,
    name: Option<String>,
    source: String,
    first_seen: Option<i64>,
    last_seen: Option<i64>,
    confidence: Option<u8>,
    r#override: bool,
}

/// Collects keys and records, then writes a snapshot.
#[derive(Debug)]
pub struct SnapshotBuilder {
    feeds: Vec<(FeedInfo, u64)>,
    records: HashMap<StoredRecord, u32>,
    record_list: Vec<StoredRecord>,
    digests: [Vec<(u128, u32)>; 3],
    urls: Vec<(Vec<u8>, u32)>,
    refused: u64,
    created: i64,
    expires: Option<i64>,
    sequence: u64,
    bits_per_key: u32,
}

impl Default for SnapshotBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl SnapshotBuilder {
    /// An empty builder; `created` is 0 until set, so builds are reproducible by default.
    pub fn new() -> Self {
        SnapshotBuilder {
            feeds: Vec::new(),
            records: HashMap::new(),
            record_list: Vec::new(),
            digests: [Vec::new(), Vec::new(), Vec::new()],
            urls: Vec::new(),
            refused: 0,
            created: 0,
            expires: None,
            sequence: 0,
            bits_per_key: DEFAULT_BITS_PER_KEY,
        }
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

    /// Sets the filter's bits per key (default 16).
    pub fn bits_per_key(&mut self, bits: u32) -> &mut Self {
        self.bits_per_key = bits.clamp(4, 64);
        self
    }

    /// Registers a feed.
    pub fn add_feed(&mut self, info: FeedInfo) -> FeedId {
        self.feeds.push((info, 0));
        FeedId(self.feeds.len() as u32 - 1)
    }

    fn intern(&mut self, feed: FeedId, spec: RecordSpec) -> u32 {
        let (info, keys) = &mut self.feeds[feed.0 as usize];
        *keys += 1;
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
        if let Some(id) = self.records.get(&stored) {
            return *id;
        }
        let id = self.record_list.len() as u32;
        self.record_list.push(stored.clone());
        self.records.insert(stored, id);
        id
    }

    /// Adds a digest key.
    pub fn add_digest(&mut self, feed: FeedId, digest: Digest, record: RecordSpec) {
        let id = self.intern(feed, record);
        self.digests[digest.kind().index()].push((digest.fingerprint(), id));
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
        let expression = match entry_expression(entry, kind) {
            Ok(e) => e,
            Err(e) => {
                self.refused += 1;
                return Err(e);
            }
        };
        let key = expression_key(&expression);
        let id = self.intern(feed, record);
        self.urls.push((key, id));
        Ok(())
    }

    /// Builds the snapshot bytes.
    ///
    /// # Errors
    ///
    /// When the input exceeds the format's limits.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.build().map(|(bytes, _)| bytes)
    }

    /// Builds the snapshot bytes and the report.
    ///
    /// # Errors
    ///
    /// When the input exceeds the format's limits.
    pub fn build(&self) -> Result<(Vec<u8>, BuildReport)> {
        if self.record_list.len() >= u32::MAX as usize {
            return Err(Error::Build("more than 4 billion distinct records".into()));
        }
        let mut report = BuildReport {
            refused: self.refused,
            ..BuildReport::default()
        };
        // Rank records by content so that ids do not depend on input order.
        let mut order: Vec<u32> = (0..self.record_list.len() as u32).collect();
        order.sort_by(|a, b| self.record_list[*a as usize].cmp(&self.record_list[*b as usize]));
        let mut rank = vec![0u32; order.len()];
        for (r, id) in order.iter().enumerate() {
            rank[*id as usize] = r as u32;
        }
        let priority = |id: u32| {
            let r = &self.record_list[id as usize];
            (
                !r.r#override,
                Verdict::from_byte(r.verdict).map_or(9, Verdict::precedence),
                rank[id as usize],
            )
        };

        // Resolve each key to one record (an index into `record_list`).
        let mut used = vec![false; self.record_list.len()];
        let mut tables: Vec<(DigestKind, Vec<(u128, u32)>)> = Vec::new();
        for kind in DigestKind::ALL {
            let mut entries = self.digests[kind.index()].clone();
            entries.sort_unstable_by_key(|&(fp, id)| (fp, priority(id)));
            let resolved = resolve(entries, &self.record_list, &mut report, |a, b| a == b);
            for (_, id) in &resolved {
                used[*id as usize] = true;
            }
            report
                .keys
                .insert(kind.as_str().into(), resolved.len() as u64);
            tables.push((kind, resolved));
        }
        let mut urls = self.urls.clone();
        urls.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(priority(a.1).cmp(&priority(b.1))));
        let urls = resolve(urls, &self.record_list, &mut report, |a, b| a == b);
        for (_, id) in &urls {
            used[*id as usize] = true;
        }

        // Number the records that are used, in content order.
        let mut final_id = vec![u32::MAX; self.record_list.len()];
        let mut kept: Vec<&StoredRecord> = Vec::new();
        for &id in &order {
            if used[id as usize] {
                final_id[id as usize] = kept.len() as u32;
                kept.push(&self.record_list[id as usize]);
            }
        }
        report.records = kept.len() as u64;

        // Strings, interned in sorted order.
        let mut strings: Vec<&str> = Vec::new();
        for r in &kept {
            strings.extend(r.category.as_deref());
            strings.extend(r.name.as_deref());
            strings.push(&r.source);
        }
        strings.sort_unstable();
        strings.dedup();
        let string_id = |s: Option<&str>| match s {
            Some(s) => strings.binary_search(&s).map_or(u32::MAX, |i| i as u32),
            None => u32::MAX,
        };
        let total_bytes: usize = strings.iter().map(|s| s.len()).sum();
        if total_bytes > u32::MAX as usize {
            return Err(Error::Build("string table over 4 GiB".into()));
        }
        let mut strings_section = SectionWriter::new();
        strings_section.u64(strings.len() as u64);
        let mut offset = 0u32;
        strings_section.u32(0);
        for s in &strings {
            offset += s.len() as u32;
            strings_section.u32(offset);
        }
        for s in &strings {
            strings_section.raw(s.as_bytes());
        }

        let mut records_section = SectionWriter::new();
        records_section.u64(kept.len() as u64);
        records_section.raw(&[0; 24]);
        for r in &kept {
            records_section.u8(r.verdict);
            records_section.u8(r.confidence.unwrap_or(255));
            records_section.u16(0);
            records_section.u32(string_id(r.category.as_deref()));
            records_section.u32(string_id(r.name.as_deref()));
            records_section.u32(string_id(Some(&r.source)));
            records_section.i64(r.first_seen.unwrap_or(i64::MIN));
            records_section.i64(r.last_seen.unwrap_or(i64::MIN));
        }

        let total_keys: usize = tables.iter().map(|(_, t)| t.len()).sum::<usize>() + urls.len();
        let mut bloom = BloomBuilder::new(total_keys as u64, self.bits_per_key);
        let mut writer = SnapshotWriter::new();
        let mut verdicts: BTreeMap<String, u64> = BTreeMap::new();
        let mut count_verdict = |id: u32| {
            let v = Verdict::from_byte(self.record_list[id as usize].verdict)
                .unwrap_or(Verdict::Unknown);
            *verdicts.entry(v.as_str().into()).or_default() += 1;
        };
        for (kind, entries) in &tables {
            if entries.is_empty() {
                continue;
            }
            let mut remapped = Vec::with_capacity(entries.len());
            for &(fp, id) in entries {
                bloom.insert(crate::digest::fingerprint_hash(*kind, fp));
                count_verdict(id);
                remapped.push((fp, final_id[id as usize]));
            }
            let section_kind = match kind {
                DigestKind::Md5 => SectionKind::Md5,
                DigestKind::Sha1 => SectionKind::Sha1,
                DigestKind::Sha256 => SectionKind::Sha256,
            };
            writer.section(
                section_kind,
                TableBuilder::section(&remapped, kept.len() as u32),
            );
        }
        let (mut url_count, mut domain_count) = (0u64, 0u64);
        if !urls.is_empty() {
            let mut fst = fst::MapBuilder::memory();
            for (key, id) in &urls {
                bloom.insert(expression_hash(key));
                count_verdict(*id);
                if expression_type(&crate::url::key_expression(key)) == "domain" {
                    domain_count += 1;
                } else {
                    url_count += 1;
                }
                fst.insert(key, final_id[*id as usize] as u64)
                    .map_err(|e| Error::Build(format!("url fst: {e}")))?;
            }
            let bytes = fst
                .into_inner()
                .map_err(|e| Error::Build(format!("url fst: {e}")))?;
            writer.section(SectionKind::Urls, bytes);
        }
        report.keys.insert("url".into(), url_count);
        report.keys.insert("domain".into(), domain_count);
        report.verdicts = verdicts;

        let mut feeds: Vec<FeedSummary> = self
            .feeds
            .iter()
            .map(|(f, keys)| FeedSummary {
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
            records: kept.len() as u64,
            filter_bits_per_key: self.bits_per_key as f64,
        };
        let json = serde_json::to_vec(&metadata).map_err(|e| Error::Build(e.to_string()))?;
        writer.section(SectionKind::Metadata, json);
        writer.section(SectionKind::Filter, bloom.into_section());
        writer.section(SectionKind::Strings, strings_section.bytes);
        writer.section(SectionKind::Records, records_section.bytes);
        let bytes = writer.finish();
        report.bytes = bytes.len() as u64;
        Ok((bytes, report))
    }

    /// Builds and publishes the snapshot atomically at `path`.
    ///
    /// # Errors
    ///
    /// On I/O failure (nothing is left at `path`) or when [`SnapshotBuilder::build`] fails.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<BuildReport> {
        let (bytes, report) = self.build()?;
        write_atomically(path.as_ref(), &bytes)?;
        Ok(report)
    }
}

/// Keeps the first entry of each run of equal keys (entries are sorted by key, then
/// priority), counting duplicates, conflicts and overrides.
fn resolve<K: Clone>(
    entries: Vec<(K, u32)>,
    records: &[StoredRecord],
    report: &mut BuildReport,
    same: impl Fn(&K, &K) -> bool,
) -> Vec<(K, u32)> {
    let mut out: Vec<(K, u32)> = Vec::with_capacity(entries.len());
    let mut conflicted = false;
    for (key, id) in entries {
        if let Some((last_key, last_id)) = out.last() {
            if same(last_key, &key) {
                let winner = &records[*last_id as usize];
                let other = &records[id as usize];
                if winner.verdict == other.verdict {
                    report.duplicates += 1;
                } else if !conflicted {
                    conflicted = true;
                    report.conflicts += 1;
                    if winner.r#override && !other.r#override {
                        report.overrides += 1;
                    }
                }
                continue;
            }
        }
        conflicted = false;
        out.push((key, id));
    }
    out
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
    let mut tmp = tempfile::Builder::new()
        .prefix(".repute-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
