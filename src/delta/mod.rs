//! Deltas: the change from one snapshot to the next, and merging it back.
//!
//! A delta is a file in the snapshot format with the required-feature flag
//! [`crate::format::FLAG_DELTA`] (the layout is in [`crate::format`]'s docs). It
//! holds the keys the new snapshot adds or whose record changed, tombstones for the keys it
//! removes (digest fingerprints per kind, URL expressions), its own filter over all of them,
//! and a [`DeltaInfo`] naming the base and the result by identity (SHA-256 of the file) and
//! sequence. Its size follows the change, not the base.
//!
//! [`diff`] writes a delta from two snapshots; [`merge`] applies deltas to their base and
//! writes a file byte-identical to the snapshot the last delta leads to (records are
//! numbered by content, so the merge recomputes the same numbering, and writes the sections
//! with the builder's own writers). The merge checks the result's identity against the
//! delta's and refuses a delta for another base ([`Error::WrongBase`]).
//!
//! A delta also answers lookups as one layer of an [`Engine`](crate::Engine): the newest
//! layer that lists a key, or a tombstone for it, decides.
//!
//! ```
//! use repute::{delta, Digest, FeedInfo, RecordSpec, Snapshot, SnapshotBuilder, Verdict};
//!
//! let build = |hexes: &[&str], sequence: u64| {
//!     let mut b = SnapshotBuilder::new();
//!     let feed = b.add_feed(FeedInfo::new("t", "hashes", Verdict::Malicious));
//!     for h in hexes {
//!         b.add_digest(feed, h.parse::<Digest>().unwrap(), RecordSpec::default());
//!     }
//!     Snapshot::open(b.sequence(sequence).to_bytes().unwrap()).unwrap()
//! };
//! let old = build(&["44d88612fea8a8f36de82e1278abb02f", "00112233445566778899aabbccddeeff"], 1);
//! let new = build(&["44d88612fea8a8f36de82e1278abb02f", "ffeeddccbbaa99887766554433221100"], 2);
//! let dir = tempfile::tempdir().unwrap();
//! let summary = delta::diff(&old, &new, &dir.path().join("2.delta")).unwrap();
//! assert_eq!((summary.added, summary.removed), (1, 1));
//! let d = Snapshot::read(dir.path().join("2.delta")).unwrap();
//! delta::merge(&old, &[&d], &dir.path().join("2.snap")).unwrap();
//! assert_eq!(std::fs::read(dir.path().join("2.snap")).unwrap(), new.as_bytes());
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::build::{record_sections, StoredRecord};
use crate::digest::{fingerprint_hash, FingerprintTable, TableLayout, TableWriter};
use crate::filter::BloomBuilder;
use crate::format::{SectionKind, SnapshotFile, FLAG_DELTA};
use crate::url::{expression_hash, UrlTable};
use crate::{DigestKind, Error, Metadata, RecordId, Result, Snapshot};

/// What a delta says about itself: the `delta` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeltaInfo {
    /// Identity (SHA-256 hex) of the snapshot the delta applies to.
    pub base_identity: String,
    /// Sequence of that snapshot.
    pub base_sequence: u64,
    /// Identity of the snapshot the merge gives.
    pub result_identity: String,
    /// Sequence of that snapshot.
    pub result_sequence: u64,
    /// The result's metadata, as its file holds it.
    pub result_metadata: Metadata,
    /// The result's filter size in 64-byte blocks.
    pub result_filter_blocks: u64,
    /// The result's bucket bits per digest table (`md5`, `sha1`, `sha256`).
    pub result_bucket_bits: BTreeMap<String, u32>,
    /// The digest tables (`md5`, `sha1`, `sha256`) the result holds in home slots; the
    /// others have a bucket index (format v1's tables, and every table of a delta written
    /// before home slots).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub result_slot_tables: Vec<String>,
    /// Record ids of the base whose records the result no longer has.
    pub removed_records: Vec<u32>,
}

/// What [`diff`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeltaSummary {
    /// Keys the new snapshot has and the old one has not.
    pub added: u64,
    /// Keys in both whose record differs.
    pub changed: u64,
    /// Keys the old snapshot has and the new one has not.
    pub removed: u64,
    /// Records in the delta's record table.
    pub records: u64,
    /// Size of the delta file.
    pub bytes: u64,
    /// Identity of the old snapshot.
    pub base_identity: String,
    /// Identity of the new snapshot.
    pub result_identity: String,
}

const TABLES: [SectionKind; 3] = [SectionKind::Md5, SectionKind::Sha1, SectionKind::Sha256];
const REMOVED: [SectionKind; 3] = [
    SectionKind::Md5Removed,
    SectionKind::Sha1Removed,
    SectionKind::Sha256Removed,
];

impl<D: AsRef<[u8]>> Snapshot<D> {
    /// The delta description, for a delta; `None` for a whole snapshot.
    ///
    /// # Errors
    ///
    /// When the file is flagged as a delta but its `delta` section is missing or unreadable.
    pub fn delta_info(&self) -> Result<Option<DeltaInfo>> {
        if !self.is_delta() {
            return Ok(None);
        }
        let bytes = self
            .section_bytes(SectionKind::Delta)
            .ok_or_else(|| Error::malformed("delta", "delta file without a delta section"))?;
        serde_json::from_slice(bytes)
            .map(Some)
            .map_err(|e| Error::malformed("delta", e.to_string()))
    }
}

/// The tombstone table of one digest kind in a delta (empty when it has none), from the
/// parts [`Snapshot::open`] took.
pub(crate) fn removed_table<D: AsRef<[u8]>>(
    snapshot: &Snapshot<D>,
    kind: DigestKind,
) -> FingerprintTable<'_> {
    snapshot.removed_table(kind)
}

/// The URL tombstone FST of a delta. Only call on a verified snapshot.
pub(crate) fn removed_urls<D: AsRef<[u8]>>(snapshot: &Snapshot<D>) -> Option<UrlTable<'_>> {
    snapshot
        .section_bytes(SectionKind::UrlsRemoved)
        .map(UrlTable::new)
}

/// The URL FST of a verified snapshot.
pub(crate) fn url_table<D: AsRef<[u8]>>(snapshot: &Snapshot<D>) -> Option<UrlTable<'_>> {
    snapshot.section_bytes(SectionKind::Urls).map(UrlTable::new)
}

/// Structural checks of a delta's own sections (called by [`Snapshot::verify`], after the
/// checksums).
pub(crate) fn verify_delta_sections<D: AsRef<[u8]>>(snapshot: &Snapshot<D>) -> Result<()> {
    snapshot.delta_info()?;
    for kind in REMOVED {
        if let Some(bytes) = snapshot.section_bytes(kind) {
            FingerprintTable::parse(kind.name(), bytes)?.verify(u32::MAX)?;
        }
    }
    if let Some(bytes) = snapshot.section_bytes(SectionKind::UrlsRemoved) {
        // Tombstones carry no record: any output is in range.
        UrlTable::check(bytes, u32::MAX)?;
    }
    Ok(())
}

fn records_of<D: AsRef<[u8]>>(snapshot: &Snapshot<D>) -> Result<Vec<StoredRecord>> {
    (0..snapshot.record_count())
        .map(|i| {
            snapshot
                .record(RecordId(i))
                .map(|r| StoredRecord::from_record(&r))
                .ok_or_else(|| Error::malformed("records", format!("record {i} unreadable")))
        })
        .collect()
}

fn url_entries<D: AsRef<[u8]>>(
    snapshot: &Snapshot<D>,
    kind: SectionKind,
) -> Result<Vec<(Vec<u8>, RecordId)>> {
    match snapshot.section_bytes(kind) {
        Some(bytes) => {
            let records = if kind == SectionKind::UrlsRemoved {
                u32::MAX
            } else {
                snapshot.record_count()
            };
            UrlTable::check(bytes, records)?;
            UrlTable::new(bytes).entries()
        }
        None => Ok(Vec::new()),
    }
}

fn not_delta<D: AsRef<[u8]>>(snapshot: &Snapshot<D>, role: &str) -> Result<()> {
    if snapshot.is_delta() {
        return Err(Error::Delta(format!(
            "the {role} is itself a delta; give a whole snapshot"
        )));
    }
    Ok(())
}

/// Writes a file through a temporary name in the target's directory: `fill` writes the
/// sections, then fsync, rename, fsync of the directory; on failure nothing is left.
fn publish(out: &Path, fill: impl FnOnce(std::fs::File) -> Result<()>) -> Result<u64> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".repute-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    let file = tmp
        .as_file()
        .try_clone()
        .map_err(|e| Error::io(tmp.path(), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(tmp.path(), e))?;
    }
    fill(file)?;
    let len = tmp
        .as_file()
        .metadata()
        .map_err(|e| Error::io(tmp.path(), e))?
        .len();
    tmp.persist(out).map_err(|e| Error::io(out, e.error))?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(len)
}

fn io_error(e: std::io::Error) -> Error {
    Error::Build(format!("writing: {e}"))
}

fn temp_dir_of(out: &Path) -> PathBuf {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes the delta from `old` to `new` at `out` (atomically).
///
/// # Errors
///
/// When either input is a delta or damaged (call [`Snapshot::verify`] on untrusted inputs
/// first), or on I/O failure.
pub fn diff<A: AsRef<[u8]>, B: AsRef<[u8]>>(
    old: &Snapshot<A>,
    new: &Snapshot<B>,
    out: &Path,
) -> Result<DeltaSummary> {
    not_delta(old, "old snapshot")?;
    not_delta(new, "new snapshot")?;
    let new_meta = new.metadata()?;
    let old_records = records_of(old)?;
    let new_records = records_of(new)?;
    let new_ids: HashMap<&StoredRecord, u32> = new_records
        .iter()
        .enumerate()
        .map(|(i, r)| (r, i as u32))
        .collect();
    let old_set: HashSet<&StoredRecord> = old_records.iter().collect();
    let old_to_new: Vec<Option<u32>> = old_records
        .iter()
        .map(|r| new_ids.get(r).copied())
        .collect();
    let removed_records: Vec<u32> = (0..old_records.len() as u32)
        .filter(|i| old_to_new[*i as usize].is_none())
        .collect();
    // The delta's records: every new record the old snapshot lacks, plus those the delta's
    // keys use (added below), in the new snapshot's (content) order.
    let mut used: Vec<bool> = new_records.iter().map(|r| !old_set.contains(r)).collect();

    let mut summary = DeltaSummary {
        base_identity: old.identity(),
        result_identity: new.identity(),
        ..DeltaSummary::default()
    };
    // Per kind: (fingerprint, new record id) added or changed, and fingerprints removed.
    let mut upserts: [Vec<(u128, u32)>; 3] = Default::default();
    let mut removals: [Vec<u128>; 3] = Default::default();
    let mut bucket_bits = BTreeMap::new();
    let mut slot_tables = Vec::new();
    for kind in DigestKind::ALL {
        let i = kind.index();
        let (a, b) = (old.digest_table(kind), new.digest_table(kind));
        if b.layout() == TableLayout::HomeSlots && b.slots() > 0 {
            slot_tables.push(kind.as_str().to_string());
        } else if !b.is_empty() {
            bucket_bits.insert(kind.as_str().to_string(), b.bucket_bits());
        }
        let mut a_it = a.iter().peekable();
        let mut b_it = b.iter().peekable();
        loop {
            match (a_it.peek().copied(), b_it.peek().copied()) {
                (None, None) => break,
                (Some((fa, _)), Some((fb, idb))) if fa == fb => {
                    let (_, ida) = a_it.next().unwrap_or((fa, RecordId(0)));
                    b_it.next();
                    if old_to_new.get(ida.0 as usize).copied().flatten() != Some(idb.0) {
                        upserts[i].push((fb, idb.0));
                        summary.changed += 1;
                    }
                }
                (Some((fa, _)), Some((fb, _))) if fa < fb => {
                    a_it.next();
                    removals[i].push(fa);
                }
                (Some((fa, _)), None) => {
                    a_it.next();
                    removals[i].push(fa);
                }
                (_, Some((fb, idb))) => {
                    b_it.next();
                    upserts[i].push((fb, idb.0));
                    summary.added += 1;
                }
            }
        }
        summary.removed += removals[i].len() as u64;
    }
    let old_urls = url_entries(old, SectionKind::Urls)?;
    let new_urls = url_entries(new, SectionKind::Urls)?;
    let mut url_upserts: Vec<(&[u8], u32)> = Vec::new();
    let mut url_removals: Vec<&[u8]> = Vec::new();
    let (mut x, mut y) = (0, 0);
    while x < old_urls.len() || y < new_urls.len() {
        match (old_urls.get(x), new_urls.get(y)) {
            (Some((ka, ida)), Some((kb, idb))) if ka == kb => {
                if old_to_new.get(ida.0 as usize).copied().flatten() != Some(idb.0) {
                    url_upserts.push((kb, idb.0));
                    summary.changed += 1;
                }
                x += 1;
                y += 1;
            }
            (Some((ka, _)), Some((kb, _))) if ka < kb => {
                url_removals.push(ka);
                x += 1;
            }
            (Some((ka, _)), None) => {
                url_removals.push(ka);
                x += 1;
            }
            (_, Some((kb, idb))) => {
                url_upserts.push((kb, idb.0));
                summary.added += 1;
                y += 1;
            }
            (None, None) => break,
        }
    }
    summary.removed += url_removals.len() as u64;

    let upsert_ids = upserts.iter().flatten().map(|(_, id)| id);
    for id in upsert_ids.chain(url_upserts.iter().map(|(_, id)| id)) {
        if let Some(u) = used.get_mut(*id as usize) {
            *u = true;
        }
    }
    // New record id -> delta record id.
    let mut delta_id = vec![u32::MAX; new_records.len()];
    let mut delta_records: Vec<StoredRecord> = Vec::new();
    for (i, r) in new_records.iter().enumerate() {
        if used[i] {
            delta_id[i] = delta_records.len() as u32;
            delta_records.push(r.clone());
        }
    }
    summary.records = delta_records.len() as u64;
    let record_count = delta_records.len() as u32;

    let info = DeltaInfo {
        base_identity: summary.base_identity.clone(),
        base_sequence: old.metadata()?.sequence,
        result_identity: summary.result_identity.clone(),
        result_sequence: new_meta.sequence,
        result_filter_blocks: (new.filter_bytes() / crate::filter::BLOCK_BYTES) as u64,
        result_bucket_bits: bucket_bits,
        result_slot_tables: slot_tables,
        removed_records,
        result_metadata: new_meta.clone(),
    };
    let mut keys = BTreeMap::new();
    for kind in DigestKind::ALL {
        keys.insert(
            kind.as_str().to_string(),
            upserts[kind.index()].len() as u64,
        );
    }
    keys.insert("url".into(), url_upserts.len() as u64);
    let metadata = Metadata {
        keys,
        verdicts: BTreeMap::new(),
        records: delta_records.len() as u64,
        ..new_meta.clone()
    };

    let bits_per_key = new_meta.filter_bits_per_key as u32;
    let total_keys = summary.added + summary.changed + summary.removed;
    let temp_dir = temp_dir_of(out);
    let sections = upserts.iter().filter(|u| !u.is_empty()).count()
        + removals.iter().filter(|r| !r.is_empty()).count()
        + usize::from(!url_upserts.is_empty())
        + usize::from(!url_removals.is_empty())
        + 5;
    summary.bytes = publish(out, |file| {
        let mut f = SnapshotFile::new(file, sections).map_err(io_error)?;
        f.set_required_flags(FLAG_DELTA);
        let mut bloom = BloomBuilder::new(total_keys, bits_per_key.max(1));
        for kind in DigestKind::ALL {
            let i = kind.index();
            if !upserts[i].is_empty() {
                let mut t =
                    TableWriter::begin(&mut f, TABLES[i], upserts[i].len() as u64, &temp_dir)
                        .map_err(io_error)?;
                for (fp, id) in &upserts[i] {
                    bloom.insert(fingerprint_hash(kind, *fp));
                    t.push(&mut f, *fp, delta_id[*id as usize])
                        .map_err(io_error)?;
                }
                t.finish(&mut f, record_count).map_err(io_error)?;
            }
            if !removals[i].is_empty() {
                let mut t =
                    TableWriter::begin(&mut f, REMOVED[i], removals[i].len() as u64, &temp_dir)
                        .map_err(io_error)?;
                for fp in &removals[i] {
                    bloom.insert(fingerprint_hash(kind, *fp));
                    t.push(&mut f, *fp, 0).map_err(io_error)?;
                }
                t.finish(&mut f, 1).map_err(io_error)?;
            }
        }
        if !url_upserts.is_empty() {
            let mut fst = fst::MapBuilder::memory();
            for (key, id) in &url_upserts {
                bloom.insert(expression_hash(key));
                fst.insert(key, u64::from(delta_id[*id as usize]))
                    .map_err(|e| Error::Build(format!("url fst: {e}")))?;
            }
            let bytes = fst
                .into_inner()
                .map_err(|e| Error::Build(format!("url fst: {e}")))?;
            f.section(SectionKind::Urls, &bytes).map_err(io_error)?;
        }
        if !url_removals.is_empty() {
            let mut fst = fst::MapBuilder::memory();
            for key in &url_removals {
                bloom.insert(expression_hash(key));
                fst.insert(key, 0)
                    .map_err(|e| Error::Build(format!("url fst: {e}")))?;
            }
            let bytes = fst
                .into_inner()
                .map_err(|e| Error::Build(format!("url fst: {e}")))?;
            f.section(SectionKind::UrlsRemoved, &bytes)
                .map_err(io_error)?;
        }
        let order: Vec<u32> = (0..record_count).collect();
        let (strings, records) = record_sections(&delta_records, &order)?;
        f.section(SectionKind::Strings, &strings)
            .map_err(io_error)?;
        f.section(SectionKind::Records, &records)
            .map_err(io_error)?;
        f.section(SectionKind::Filter, &bloom.into_section())
            .map_err(io_error)?;
        let json = serde_json::to_vec(&metadata).map_err(|e| Error::Build(e.to_string()))?;
        f.section(SectionKind::Metadata, &json).map_err(io_error)?;
        let json = serde_json::to_vec(&info).map_err(|e| Error::Build(e.to_string()))?;
        f.section(SectionKind::Delta, &json).map_err(io_error)?;
        f.finish().map_err(io_error)?;
        Ok(())
    })?;
    Ok(summary)
}

/// Applies `deltas`, oldest first, to `base` and writes the result at `out` (atomically),
/// byte-identical to the snapshot the last delta was made for. Intermediate results go to
/// temporary files beside `out`.
///
/// # Errors
///
/// [`Error::WrongBase`] when a delta is for another snapshot than the one it is applied to;
/// [`Error::Delta`] when a file is not a delta, or the result's identity is not the one the
/// delta names; I/O errors. Nothing is left at `out` on failure.
pub fn merge<A: AsRef<[u8]>, B: AsRef<[u8]>>(
    base: &Snapshot<A>,
    deltas: &[&Snapshot<B>],
    out: &Path,
) -> Result<()> {
    not_delta(base, "base")?;
    let Some((last, init)) = deltas.split_last() else {
        return Err(Error::Delta("no delta to merge".into()));
    };
    if init.is_empty() {
        return apply(base, last, out);
    }
    let dir = temp_dir_of(out);
    let scratch = tempfile::Builder::new()
        .prefix(".repute-merge-")
        .tempdir_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    let mut current = Snapshot::open(base.as_bytes().to_vec())?;
    for (i, delta) in init.iter().enumerate() {
        let path = scratch.path().join(format!("{i}.snap"));
        apply(&current, delta, &path)?;
        current = Snapshot::read(&path)?;
    }
    apply(&current, last, out)
}

/// Applies one delta.
fn apply<A: AsRef<[u8]>, B: AsRef<[u8]>>(
    base: &Snapshot<A>,
    delta: &Snapshot<B>,
    out: &Path,
) -> Result<()> {
    let info = delta
        .delta_info()?
        .ok_or_else(|| Error::Delta("the file to merge is a whole snapshot, not a delta".into()))?;
    let identity = base.identity();
    if identity != info.base_identity {
        return Err(Error::WrongBase {
            expected: info.base_identity,
            found: identity,
        });
    }
    let meta = &info.result_metadata;
    // The result's records: the base's, less those it drops, plus the delta's.
    let base_records = records_of(base)?;
    let delta_records = records_of(delta)?;
    let removed: HashSet<u32> = info.removed_records.iter().copied().collect();
    let mut records: Vec<StoredRecord> = base_records
        .iter()
        .enumerate()
        .filter(|(i, _)| !removed.contains(&(*i as u32)))
        .map(|(_, r)| r.clone())
        .chain(delta_records.iter().cloned())
        .collect();
    records.sort_unstable();
    records.dedup();
    if records.len() as u64 != meta.records {
        return Err(Error::Delta(format!(
            "merge gives {} records where the result has {}; the delta does not fit this base",
            records.len(),
            meta.records
        )));
    }
    let ids: HashMap<&StoredRecord, u32> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r, i as u32))
        .collect();
    let remap = |list: &[StoredRecord]| -> Vec<u32> {
        list.iter()
            .map(|r| ids.get(r).copied().unwrap_or(u32::MAX))
            .collect()
    };
    let base_map = remap(&base_records);
    let delta_map = remap(&delta_records);
    let record_count = records.len() as u32;
    let lost = || Error::Delta("a key's record is missing from the merged records".into());

    let kinds: Vec<DigestKind> = DigestKind::ALL
        .into_iter()
        .filter(|k| meta.keys.get(k.as_str()).copied().unwrap_or(0) > 0)
        .collect();
    let url_keys =
        meta.keys.get("url").copied().unwrap_or(0) + meta.keys.get("domain").copied().unwrap_or(0);
    let sections = kinds.len() + usize::from(url_keys > 0) + 4;
    let temp_dir = temp_dir_of(out);
    let result_identity = info.result_identity.clone();
    publish(out, |file| {
        let mut bloom =
            BloomBuilder::with_blocks(info.result_filter_blocks, meta.filter_bits_per_key as u32);
        let mut f = SnapshotFile::new(file, sections).map_err(io_error)?;
        for kind in &kinds {
            let i = kind.index();
            let bits = info
                .result_bucket_bits
                .get(kind.as_str())
                .copied()
                .unwrap_or(0);
            let mut t = if info.result_slot_tables.iter().any(|k| k == kind.as_str()) {
                TableWriter::begin_slots(&mut f, TableLayout::HomeSlots.section(*kind), &temp_dir)
            } else {
                TableWriter::begin_with_bits(&mut f, TABLES[i], bits, &temp_dir)
            }
            .map_err(io_error)?;
            let dt = delta.digest_table(*kind);
            let base_table = base.digest_table(*kind);
            let mut old = base_table.iter().peekable();
            let mut up = dt.iter().peekable();
            let removed = removed_table(delta, *kind);
            let mut gone = removed.iter().map(|(fp, _)| fp).peekable();
            let mut hashes = Vec::with_capacity(4096);
            loop {
                let next = match (old.peek().copied(), up.peek().copied()) {
                    (None, None) => break,
                    (Some((fa, _)), Some((fb, idb))) if fb <= fa => {
                        up.next();
                        if fa == fb {
                            old.next();
                        }
                        (fb, *delta_map.get(idb.0 as usize).ok_or_else(lost)?)
                    }
                    (Some((fa, ida)), _) => {
                        old.next();
                        while gone.peek().is_some_and(|g| *g < fa) {
                            gone.next();
                        }
                        if gone.peek() == Some(&fa) {
                            continue;
                        }
                        (fa, *base_map.get(ida.0 as usize).ok_or_else(lost)?)
                    }
                    (None, Some((fb, idb))) => {
                        up.next();
                        (fb, *delta_map.get(idb.0 as usize).ok_or_else(lost)?)
                    }
                };
                if next.1 == u32::MAX {
                    return Err(lost());
                }
                hashes.push(fingerprint_hash(*kind, next.0));
                if hashes.len() == hashes.capacity() {
                    bloom.insert_batch(&hashes);
                    hashes.clear();
                }
                t.push(&mut f, next.0, next.1).map_err(io_error)?;
            }
            bloom.insert_batch(&hashes);
            t.finish(&mut f, record_count).map_err(io_error)?;
        }
        if url_keys > 0 {
            let old = url_entries(base, SectionKind::Urls)?;
            let up = url_entries(delta, SectionKind::Urls)?;
            let gone: HashSet<Vec<u8>> = url_entries(delta, SectionKind::UrlsRemoved)?
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            let mut fst = fst::MapBuilder::memory();
            let (mut x, mut y) = (0, 0);
            while x < old.len() || y < up.len() {
                let (key, id) = match (old.get(x), up.get(y)) {
                    (Some((ka, _)), Some((kb, idb))) if kb <= ka => {
                        if ka == kb {
                            x += 1;
                        }
                        y += 1;
                        (kb, delta_map.get(idb.0 as usize))
                    }
                    (Some((ka, ida)), _) => {
                        x += 1;
                        if gone.contains(ka) {
                            continue;
                        }
                        (ka, base_map.get(ida.0 as usize))
                    }
                    (None, Some((kb, idb))) => {
                        y += 1;
                        (kb, delta_map.get(idb.0 as usize))
                    }
                    (None, None) => break,
                };
                let id = id.copied().filter(|id| *id != u32::MAX).ok_or_else(lost)?;
                bloom.insert(expression_hash(key));
                fst.insert(key, u64::from(id))
                    .map_err(|e| Error::Build(format!("url fst: {e}")))?;
            }
            let bytes = fst
                .into_inner()
                .map_err(|e| Error::Build(format!("url fst: {e}")))?;
            f.section(SectionKind::Urls, &bytes).map_err(io_error)?;
        }
        let order: Vec<u32> = (0..record_count).collect();
        let (strings, record_bytes) = record_sections(&records, &order)?;
        f.section(SectionKind::Strings, &strings)
            .map_err(io_error)?;
        f.section(SectionKind::Records, &record_bytes)
            .map_err(io_error)?;
        f.section(SectionKind::Filter, &bloom.into_section())
            .map_err(io_error)?;
        let json = serde_json::to_vec(meta).map_err(|e| Error::Build(e.to_string()))?;
        f.section(SectionKind::Metadata, &json).map_err(io_error)?;
        let (mut file, _) = f.finish().map_err(io_error)?;
        let found = file_identity(&mut file).map_err(io_error)?;
        if found != result_identity {
            return Err(Error::Delta(format!(
                "merged snapshot has identity {found}, the delta promised {result_identity}; \
                 nothing was written (fetch the full snapshot)"
            )));
        }
        Ok(())
    })?;
    Ok(())
}

/// The SHA-256 hex of a file's contents.
fn file_identity(file: &mut std::fs::File) -> std::io::Result<String> {
    use sha2::Digest as _;
    use std::io::{Read, Seek};
    file.rewind()?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let mut hex = String::with_capacity(64);
    for b in hasher.finalize().iter() {
        let _ = write!(hex, "{b:02x}");
    }
    Ok(hex)
}
