//! [`Snapshot`]: the validated, read-only view of a snapshot file.

use std::sync::OnceLock;

use twox_hash::XxHash3_64;

use crate::digest::{FingerprintTable, TableLayout, TableParams};
use crate::filter::{BlockedBloom, MembershipCheck};
use crate::format::{Layout, RecordTable, SectionKind, SectionRef, StringTable};
use crate::url::{expression_hash, Expressions, UrlTable};
use crate::{Digest, DigestKind, Error, Metadata, Query, Record, RecordId, Result};

mod batch;
mod storage;
#[cfg(test)]
mod tests;
mod urls;

pub(crate) use batch::{BatchSlot, DigestProbe, NoOverlay, Overlay};
pub use storage::HugePageMemory;
pub use urls::{UrlScratch, UrlVerdict};

/// A lookup result: the record, and the key or expression that matched.
#[derive(Debug, Clone)]
pub struct Hit<'a> {
    /// The matching record.
    pub record: Record<'a>,
    /// The digest (lower-case hex) or URL expression (`host/path`) that matched.
    pub matched: String,
}

/// A byte range of the file, `start..end`, taken at open.
type Span = (usize, usize);

/// The range `part` occupies inside `file` (`part` is a subslice of `file`).
fn span_of(file: &[u8], part: &[u8]) -> Span {
    let start = (part.as_ptr() as usize).wrapping_sub(file.as_ptr() as usize);
    (start, start.wrapping_add(part.len()))
}

/// The bytes of a span, or nothing when the span does not fit (never for the bytes the
/// span was taken from).
#[inline]
fn slice(bytes: &[u8], span: Span) -> &[u8] {
    bytes.get(span.0..span.1).unwrap_or(&[])
}

/// Where one fingerprint table's parts lie, and its scalar shape.
#[derive(Debug, Clone, Copy)]
struct TableParts {
    kind: SectionKind,
    index: Span,
    fingerprints: Span,
    ids: Span,
    params: TableParams,
}

/// Where each section and each part of a section lies, and the scalar shape of each table,
/// taken once at open, so that lookups rebuild their views by slicing alone.
#[derive(Debug, Clone)]
struct Sections {
    filter_body: Span,
    filter_blocks: u64,
    string_offsets: Span,
    string_bytes: Span,
    string_count: u32,
    record_body: Span,
    record_count: u32,
    tables: [Option<TableParts>; 3],
    /// A delta's tombstone tables, per digest kind (`None` in a whole snapshot, and for a
    /// table whose header does not parse, which [`Snapshot::verify`] then refuses).
    removed: [Option<TableParts>; 3],
    urls: Option<SectionRef>,
    metadata: SectionRef,
}

/// Views of the sections, rebuilt from [`Sections`] by slicing only.
struct Views<'a> {
    tables: [FingerprintTable<'a>; 3],
    records: RecordTable<'a>,
    strings: StringTable<'a>,
}

/// A snapshot over any bytes: a `Vec<u8>` read from disk, a memory map, a static slice.
///
/// Opening validates the header, section table and section shapes in O(1); [`Snapshot::verify`]
/// reads every byte. All lookups take `&self`; a `Snapshot` is `Send + Sync` when its storage
/// is, so one instance serves any number of threads.
pub struct Snapshot<D = Vec<u8>> {
    data: D,
    layout: Layout,
    sections: Sections,
    /// Whether the URL FST's checksum has been checked (the `fst` crate must never see bytes
    /// that have not passed it).
    urls_checked: OnceLock<bool>,
}

impl<D> std::fmt::Debug for Snapshot<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("file_len", &self.layout.file_len)
            .field("sections", &self.layout.sections.len())
            .finish()
    }
}

fn required(layout: &Layout, kind: SectionKind) -> Result<SectionRef> {
    layout
        .section(kind)
        .ok_or_else(|| Error::malformed("section table", format!("no {} section", kind.name())))
}

const TABLE_KINDS: [SectionKind; 3] = [SectionKind::Md5, SectionKind::Sha1, SectionKind::Sha256];
const REMOVED_KINDS: [SectionKind; 3] = [
    SectionKind::Md5Removed,
    SectionKind::Sha1Removed,
    SectionKind::Sha256Removed,
];

/// The parts of one fingerprint table section, when it parses.
fn table_parts(bytes: &[u8], kind: SectionKind, section: SectionRef) -> Result<TableParts> {
    let layout = TableLayout::of_section(kind);
    let t = FingerprintTable::parse_as(kind.name(), &bytes[section.range()], layout)?;
    let (index, fingerprints, ids) = t.parts();
    Ok(TableParts {
        kind,
        index: span_of(bytes, index),
        fingerprints: span_of(bytes, fingerprints),
        ids: span_of(bytes, ids),
        params: t.params(),
    })
}

impl<D: AsRef<[u8]>> Snapshot<D> {
    /// Opens a snapshot: checks the header, version, flags, section bounds and each
    /// section's shape. O(1) in the file size; never panics.
    ///
    /// # Errors
    ///
    /// An [`Error`] naming what is wrong: bad magic, unknown version or required flags,
    /// a truncated file, a damaged header, inconsistent sections.
    pub fn open(data: D) -> Result<Self> {
        let bytes = data.as_ref();
        let layout = Layout::parse(bytes)?;
        let filter_section = required(&layout, SectionKind::Filter)?;
        let filter = BlockedBloom::parse(&bytes[filter_section.range()])?;
        let strings_section = required(&layout, SectionKind::Strings)?;
        let strings = StringTable::parse(&bytes[strings_section.range()])?;
        let (string_offsets, string_bytes) = strings.parts();
        let records_section = required(&layout, SectionKind::Records)?;
        let records = RecordTable::parse(&bytes[records_section.range()])?;
        let metadata = required(&layout, SectionKind::Metadata)?;
        let mut tables = [None, None, None];
        for (i, slot) in tables.iter_mut().enumerate() {
            // A file has at most one table of each digest kind, in either layout.
            let (v1, slots) = (
                TABLE_KINDS[i],
                TableLayout::HomeSlots.section(DigestKind::ALL[i]),
            );
            match (layout.section(v1), layout.section(slots)) {
                (Some(_), Some(_)) => {
                    return Err(Error::malformed(
                        "section table",
                        format!("both a {} and a {}", v1.name(), slots.name()),
                    ))
                }
                (Some(s), None) => *slot = Some(table_parts(bytes, v1, s)?),
                (None, Some(s)) => *slot = Some(table_parts(bytes, slots, s)?),
                (None, None) => {}
            }
        }
        let mut removed = [None, None, None];
        if layout.flags & crate::format::FLAG_DELTA != 0 {
            for (slot, kind) in removed.iter_mut().zip(REMOVED_KINDS) {
                *slot = layout
                    .section(kind)
                    .and_then(|s| table_parts(bytes, kind, s).ok());
            }
        }
        let urls = layout.section(SectionKind::Urls);
        let sections = Sections {
            filter_body: span_of(bytes, filter.body()),
            filter_blocks: filter.blocks(),
            string_offsets: span_of(bytes, string_offsets),
            string_bytes: span_of(bytes, string_bytes),
            string_count: strings.len(),
            record_body: span_of(bytes, records.body()),
            record_count: records.len(),
            tables,
            removed,
            urls,
            metadata,
        };
        Ok(Snapshot {
            sections,
            layout,
            data,
            urls_checked: OnceLock::new(),
        })
    }

    /// The snapshot's identity: the lowercase hex SHA-256 of the whole file, computed on
    /// each call (O(n): callers that need it often keep it). Manifests, deltas and update
    /// state directories name snapshots by it.
    pub fn identity(&self) -> String {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(self.data.as_ref());
        let mut hex = String::with_capacity(64);
        for b in digest.iter() {
            hex.push_str(&format!("{b:02x}"));
        }
        hex
    }

    /// Whether the file is a delta ([`crate::delta`]) rather than a whole snapshot.
    pub fn is_delta(&self) -> bool {
        self.layout.flags & crate::format::FLAG_DELTA != 0
    }

    /// The bytes of one section, when the file has it.
    pub(crate) fn section_bytes(&self, kind: SectionKind) -> Option<&[u8]> {
        let s = self.layout.section(kind)?;
        self.data.as_ref().get(s.range())
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.data.as_ref()
    }

    /// Gives back the storage.
    pub fn into_storage(self) -> D {
        self.data
    }

    /// The storage the snapshot reads from.
    pub fn storage(&self) -> &D {
        &self.data
    }

    #[inline]
    pub(crate) fn filter(&self) -> BlockedBloom<'_> {
        let s = &self.sections;
        BlockedBloom::from_parts(slice(self.data.as_ref(), s.filter_body), s.filter_blocks)
    }

    #[inline]
    fn table(&self, i: usize) -> FingerprintTable<'_> {
        self.table_from(&self.sections.tables, TABLE_KINDS, i)
    }

    #[inline]
    fn table_from(
        &self,
        parts: &[Option<TableParts>; 3],
        kinds: [SectionKind; 3],
        i: usize,
    ) -> FingerprintTable<'_> {
        let bytes = self.data.as_ref();
        match parts.get(i).copied().flatten() {
            Some(t) => FingerprintTable::from_parts(
                t.kind.name(),
                slice(bytes, t.index),
                slice(bytes, t.fingerprints),
                slice(bytes, t.ids),
                t.params,
            ),
            None => FingerprintTable::empty(kinds[i % 3].name()),
        }
    }

    /// A delta's tombstone table of one digest kind (empty in a whole snapshot, or when the
    /// delta removes no digest of that kind), rebuilt from the parts taken at open.
    #[inline]
    pub(crate) fn removed_table(&self, kind: DigestKind) -> FingerprintTable<'_> {
        self.table_from(&self.sections.removed, REMOVED_KINDS, kind.index())
    }

    #[inline]
    fn records(&self) -> RecordTable<'_> {
        let s = &self.sections;
        RecordTable::from_parts(slice(self.data.as_ref(), s.record_body), s.record_count)
    }

    #[inline]
    fn strings(&self) -> StringTable<'_> {
        let bytes = self.data.as_ref();
        let s = &self.sections;
        StringTable::from_parts(
            slice(bytes, s.string_offsets),
            slice(bytes, s.string_bytes),
            s.string_count,
        )
    }

    fn views(&self) -> Views<'_> {
        Views {
            tables: [self.table(0), self.table(1), self.table(2)],
            records: self.records(),
            strings: self.strings(),
        }
    }

    /// Reads every byte: section checksums, the whole-file digest, and every structural
    /// invariant: string offsets, records' string references, each fingerprint table's order
    /// and bucket index, that every digest and URL key passes the filter (so the filter hides
    /// no key), and the URL FST's whole structure (every node in bounds, no cycle, every
    /// record id in range). A snapshot that passes answers every lookup from what the file
    /// holds, without panicking; whether what it holds is what its publisher built is for a
    /// signature to say.
    ///
    /// # Errors
    ///
    /// [`Error::Checksum`] or [`Error::Malformed`] naming the damaged section.
    pub fn verify(&self) -> Result<()> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Mutex;

        /// One independent pass: its cost (about the bytes it reads, for scheduling the
        /// largest first), and the check, which returns the first error it finds with that
        /// error's rank in the order a one-after-the-other verify would meet it.
        type Check<'s> = Box<dyn Fn() -> std::result::Result<(), (Rank, Error)> + Sync + 's>;
        /// A pass's place in that order, then a place within the pass (the membership
        /// passes' shares: the first share's error comes first).
        type Rank = (usize, usize);

        // The passes share the bytes and views, never `self` (whose storage need not be
        // `Sync`).
        let bytes = self.data.as_ref();
        let v = &self.views();
        // The membership passes read the filter at random, one TLB miss per key with 4 KiB
        // pages once it outgrows the TLB's reach: test against a copy in huge pages.
        let filter_copy = (self.filter().size_bytes() >= 4 << 20)
            .then(|| HugePageMemory::copy_of(self.filter().body()).ok())
            .flatten();
        let filter = match &filter_copy {
            Some(copy) => BlockedBloom::from_parts(copy.as_ref(), self.filter().blocks()),
            None => self.filter(),
        };
        let layout = &self.layout;
        let sections = &layout.sections;
        let urls = self.sections.urls;

        // Ranks: every section checksum (in table order), the file digest, strings,
        // records, each table, each table's filter membership, the URL FST. The first
        // error by rank is the one reported, whichever pass finishes first.
        let file_rank = sections.len();
        let strings_rank = file_rank + 1;
        let records_rank = file_rank + 2;
        let table_rank = file_rank + 3;
        let member_rank = table_rank + v.tables.len();
        let url_rank = member_rank + v.tables.len();
        let at = |rank: usize| move |e: Error| ((rank, 0), e);

        let mut passes: Vec<(usize, Check<'_>)> = Vec::new();
        for (rank, s) in sections.iter().enumerate() {
            if Some(*s) == urls {
                // Checked by the URL pass, before the FST is walked.
                continue;
            }
            passes.push((
                s.length,
                Box::new(move || layout.verify_section(bytes, s).map_err(at(rank))),
            ));
        }
        passes.push((
            layout.file_len,
            Box::new(move || layout.verify_file_digest(bytes).map_err(at(file_rank))),
        ));
        passes.push((
            v.records.len() as usize * 16,
            Box::new(move || {
                v.strings.verify().map_err(at(strings_rank))?;
                v.records.verify(&v.strings).map_err(at(records_rank))
            }),
        ));
        for (i, t) in v.tables.iter().enumerate() {
            let kind = DigestKind::ALL[i % 3];
            let records = v.records.len();
            let not_in_filter = move |from: usize, position: usize| {
                (
                    (member_rank + i, from),
                    Error::malformed(
                        "filter",
                        format!(
                            "the {} entry at position {position} is not in the filter",
                            kind.as_str()
                        ),
                    ),
                )
            };
            // Every entry passes the filter. Blocks are read at random, so each group's
            // are fetched ahead of testing them; in shares, so that both cores take part.
            const SHARE: usize = 1 << 20;
            let positions = t.positions();
            if t.layout() == TableLayout::HomeSlots {
                passes.push((
                    t.len() * 20,
                    Box::new(move || t.verify(records).map_err(at(table_rank + i))),
                ));
                for from in (0..positions).step_by(SHARE) {
                    let to = (from + SHARE).min(positions);
                    passes.push((
                        (to - from) * 64,
                        Box::new(move || {
                            let mut check = MembershipCheck::new(filter, kind);
                            let mut entries = t.iter_positions(from..to);
                            while let Some((fp, _)) = entries.next() {
                                check.push(entries.last_position(), fp);
                            }
                            check
                                .finish()
                                .map_or(Ok(()), |p| Err(not_in_filter(from, p)))
                        }),
                    ));
                }
                continue;
            }
            // A bucket-index table: its structure checked share by share, each share's
            // entries tested against the filter as they are read. A structure error in the
            // table comes before any filter error, as in a whole check: the index first
            // (in the first share), then the entries by position, then the default id (in
            // the last share).
            let structure = move |place: usize| move |e: Error| ((table_rank + i, place), e);
            let shares = positions.max(1).div_ceil(SHARE);
            for share in 0..shares {
                let (from, to) = (share * SHARE, ((share + 1) * SHARE).min(positions));
                passes.push((
                    (to - from) * 84,
                    Box::new(move || {
                        if share == 0 && !t.is_placeholder() {
                            t.verify_index().map_err(structure(0))?;
                        }
                        let mut check = MembershipCheck::new(filter, kind);
                        t.verify_entries(records, from..to, |p, fp| check.push(p, fp))
                            .map_err(structure(from + 1))?;
                        if share + 1 == shares {
                            t.verify_default_id(records)
                                .map_err(structure(usize::MAX))?;
                        }
                        check
                            .finish()
                            .map_or(Ok(()), |p| Err(not_in_filter(from, p)))
                    }),
                ));
            }
        }
        if let Some(s) = urls {
            let checksum_rank = sections.iter().position(|x| *x == s).unwrap_or(0);
            passes.push((
                s.length * 3,
                Box::new(move || {
                    // The fst crate must never see bytes that fail their checksum.
                    layout
                        .verify_section(bytes, &s)
                        .map_err(at(checksum_rank))?;
                    let fst_bytes = &bytes[s.range()];
                    UrlTable::check(fst_bytes, v.records.len()).map_err(at(url_rank))?;
                    let mut entry = 0usize;
                    UrlTable::new(fst_bytes)
                        .for_each(|key, _| {
                            if !filter.may_contain(expression_hash(key)) {
                                return Err(Error::malformed(
                                    "filter",
                                    format!("url entry {entry} is not in the filter"),
                                ));
                            }
                            entry += 1;
                            Ok(())
                        })
                        .map_err(at(url_rank))
                }),
            ));
        }

        // Largest first, on as many threads as there are cores (and passes).
        passes.sort_by_key(|p| std::cmp::Reverse(p.0));
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(passes.len());
        let next = AtomicUsize::new(0);
        let first: Mutex<Option<(Rank, Error)>> = Mutex::new(None);
        let work = || loop {
            let Some((_, check)) = passes.get(next.fetch_add(1, Ordering::Relaxed)) else {
                return;
            };
            if let Err((rank, e)) = check() {
                let mut first = first.lock().unwrap_or_else(|p| p.into_inner());
                if first.as_ref().is_none_or(|(r, _)| rank < *r) {
                    *first = Some((rank, e));
                }
            }
        };
        if workers <= 1 {
            work();
        } else {
            std::thread::scope(|scope| {
                for _ in 1..workers {
                    scope.spawn(work);
                }
                work();
            });
        }
        if let Some((_, e)) = first.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        if urls.is_some() {
            let _ = self.urls_checked.set(true);
        }
        self.metadata()?;
        if self.is_delta() {
            crate::delta::verify_delta_sections(self)?;
        }
        Ok(())
    }

    /// The metadata section, once its checksum has been checked (it is small).
    ///
    /// # Errors
    ///
    /// [`Error::Checksum`] when the section is damaged, or an error when it is not valid
    /// JSON metadata.
    pub fn metadata(&self) -> Result<Metadata> {
        let section = &self.sections.metadata;
        let bytes = &self.data.as_ref()[section.range()];
        let found = XxHash3_64::oneshot(bytes);
        if found != section.checksum {
            return Err(Error::Checksum {
                section: SectionKind::Metadata.name(),
                expected: section.checksum,
                found,
            });
        }
        serde_json::from_slice(bytes).map_err(|e| Error::malformed("metadata", e.to_string()))
    }

    /// Name, offset and length of each section, in file order.
    pub fn sections(&self) -> Vec<(&'static str, u64, u64)> {
        let mut v: Vec<_> = self
            .layout
            .sections
            .iter()
            .map(|s| (s.kind.name(), s.offset as u64, s.length as u64))
            .collect();
        v.sort_by_key(|s| s.1);
        v
    }

    /// The fingerprint table of one digest kind (empty when the snapshot has none).
    pub fn digest_table(&self, kind: DigestKind) -> FingerprintTable<'_> {
        self.table(kind.index())
    }

    /// Number of records.
    pub fn record_count(&self) -> u32 {
        self.sections.record_count
    }

    /// The record with this id.
    pub fn record(&self, id: RecordId) -> Option<Record<'_>> {
        Record::new(id, &self.records(), self.strings())
    }

    /// Size of the filter in bytes.
    pub fn filter_bytes(&self) -> usize {
        self.sections.filter_blocks as usize * crate::filter::BLOCK_BYTES
    }

    /// Whether the filter lets this digest through to its table: always `true` for a
    /// present digest, and for an absent one with the filter's false-positive rate (which
    /// this measures).
    #[inline]
    pub fn filter_may_contain(&self, digest: &Digest) -> bool {
        self.filter().may_contain(digest.key_hash())
    }

    /// Looks up one digest. Never allocates.
    #[inline(always)]
    pub fn lookup_digest(&self, digest: &Digest) -> Option<Record<'_>> {
        if !self.filter().may_contain(digest.key_hash()) {
            return None;
        }
        let id = self
            .table(digest.kind().index())
            .find(digest.fingerprint())?;
        Record::new(id, &self.records(), self.strings())
    }

    /// The record id of a digest already reduced to a probe: filter, then table.
    #[inline(always)]
    pub(crate) fn find_probe(&self, probe: &DigestProbe) -> Option<RecordId> {
        if !self.filter().may_contain_probe(&probe.filter) {
            return None;
        }
        self.table(probe.kind.index()).find(probe.fingerprint)
    }

    /// Looks up any query: a digest, a URL or a domain.
    ///
    /// # Errors
    ///
    /// When the URL section is damaged.
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
