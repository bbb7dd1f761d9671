//! [`Snapshot`]: the validated, read-only view of a snapshot file.

use std::fs::File;
use std::path::Path;
use std::sync::OnceLock;

use xxhash_rust::xxh3::xxh3_64;

use crate::digest::{FingerprintTable, TableParams};
use crate::filter::{prefetch, BlockedBloom, FilterProbe, KeyHash};
use crate::format::{Layout, RecordTable, SectionKind, SectionRef, StringTable};
use crate::url::{
    expression_hash, key_expression, CanonicalUrl, Canonicalizer, Expressions, UrlTable,
};
use crate::{Digest, DigestKind, Error, Metadata, Query, Record, RecordId, Result};

/// Lookups interleaved per batch step.
const BATCH: usize = 16;
/// Groups between one stage of the batch lookup pipeline (hash, filter, bucket index,
/// scan) and the next: how far ahead of its use each prefetch is issued.
const LAG: usize = 3;
/// Groups in flight in the batch lookup pipeline.
const STAGES: usize = 3 * LAG + 1;

/// One group of batched lookups in flight.
#[derive(Clone, Copy)]
struct Group {
    len: usize,
    fps: [u128; BATCH],
    hashes: [KeyHash; BATCH],
    kinds: [u8; BATCH],
    /// Whether this group's keys go through the filter (otherwise straight to the tables).
    filtered: bool,
    /// Bit `i`: key `i` passed the filter.
    live: u32,
    /// Bit `i`: the layers above decided key `i` (its answer is written already).
    decided: u32,
    ranges: [(usize, usize); BATCH],
}

impl Group {
    const EMPTY: Group = Group {
        len: 0,
        fps: [0; BATCH],
        hashes: [KeyHash(0); BATCH],
        kinds: [0; BATCH],
        filtered: true,
        live: 0,
        decided: 0,
        ranges: [(0, 0); BATCH],
    };
}

/// A lookup result: the record, and the key or expression that matched.
#[derive(Debug, Clone)]
pub struct Hit<'a> {
    /// The matching record.
    pub record: Record<'a>,
    /// The digest (lower-case hex) or URL expression (`host/path`) that matched.
    pub matched: String,
}

/// The answer for one URL of a batch ([`Snapshot::lookup_urls`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UrlVerdict {
    /// No expression of the URL is listed.
    #[default]
    Unlisted,
    /// The most specific listed expression's record.
    Listed(RecordId),
    /// The input is not a usable URL or host.
    Invalid,
}

/// Buffers reused across batch URL lookups.
#[derive(Debug, Default)]
pub struct UrlScratch {
    canonicalizer: Canonicalizer,
    url: CanonicalUrl,
    expressions: Expressions,
}

impl UrlScratch {
    /// Empty buffers.
    pub fn new() -> Self {
        UrlScratch::default()
    }
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
    let t = FingerprintTable::parse(kind.name(), &bytes[section.range()])?;
    let (index, fingerprints, ids) = t.parts();
    Ok(TableParts {
        index: span_of(bytes, index),
        fingerprints: span_of(bytes, fingerprints),
        ids: span_of(bytes, ids),
        params: t.params(),
    })
}

/// One digest of a batch or layered lookup, reduced once to what every probe needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DigestProbe {
    pub(crate) kind: DigestKind,
    pub(crate) fingerprint: u128,
    pub(crate) filter: FilterProbe,
}

impl DigestProbe {
    #[inline(always)]
    pub(crate) fn new(digest: &Digest) -> DigestProbe {
        let fingerprint = digest.fingerprint();
        let kind = digest.kind();
        DigestProbe {
            kind,
            fingerprint,
            filter: FilterProbe::new(crate::digest::fingerprint_hash(kind, fingerprint)),
        }
    }
}

/// One output slot of a batched lookup ([`Snapshot::lookup_digests_over`]).
pub(crate) trait BatchSlot: Copy {
    /// The slot for the snapshot's own answer.
    fn from_snapshot(id: Option<RecordId>) -> Self;
    /// Whether the slot holds a record (for the filter bypass heuristic).
    fn is_found(&self) -> bool;
}

impl BatchSlot for Option<RecordId> {
    #[inline(always)]
    fn from_snapshot(id: Option<RecordId>) -> Self {
        id
    }
    #[inline(always)]
    fn is_found(&self) -> bool {
        self.is_some()
    }
}

/// Layers above a snapshot in a batched lookup: they see each key first, and a layer that
/// lists it or holds a tombstone for it decides.
pub(crate) trait Overlay<T> {
    /// Whether there are layers above at all (`false` compiles their steps away).
    const ACTIVE: bool;
    /// Asks for the cache lines [`Overlay::decide`] will read for a key of this hash.
    fn prefetch(&self, hash: KeyHash);
    /// The answer of the layers above, or `None` when none of them knows the key.
    fn decide(&self, kind: DigestKind, fingerprint: u128, hash: KeyHash) -> Option<T>;
}

/// No layers above: the snapshot alone answers.
pub(crate) struct NoOverlay;

impl<T> Overlay<T> for NoOverlay {
    const ACTIVE: bool = false;
    #[inline(always)]
    fn prefetch(&self, _: KeyHash) {}
    #[inline(always)]
    fn decide(&self, _: DigestKind, _: u128, _: KeyHash) -> Option<T> {
        None
    }
}

impl Snapshot<Vec<u8>> {
    /// Reads a snapshot file into memory and opens it.
    ///
    /// # Errors
    ///
    /// When the path is not a regular file, cannot be read, or does not open.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = open_regular(path)?;
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut &file, &mut data).map_err(|e| Error::io(path, e))?;
        Snapshot::open(data)
    }
}

fn open_regular(path: &Path) -> Result<File> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    File::open(path).map_err(|e| Error::io(path, e))
}

impl Snapshot<memmap2::Mmap> {
    /// Memory-maps a snapshot file and opens it. Costs microseconds at any size.
    ///
    /// # Errors
    ///
    /// When the path is not a regular file, cannot be mapped, or does not open.
    ///
    /// # Safety
    ///
    /// The file must not be truncated or modified while the snapshot (or anything borrowed
    /// from it) is alive: a truncated mapping raises `SIGBUS` and kills the process, and a
    /// rewritten one changes answers under the reader. Publish snapshots by writing a new
    /// file and renaming it over the old one (as [`crate::SnapshotBuilder::write`] does);
    /// never rewrite a published file in place.
    #[allow(unsafe_code)]
    pub unsafe fn map(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = open_regular(path)?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len == 0 {
            return Err(Error::Truncated {
                what: "header",
                needed: crate::format::HEADER_FIXED as u64,
                available: 0,
            });
        }
        // SAFETY: the caller promises the file is not truncated or modified while mapped
        // (this function's `# Safety` contract).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Snapshot::open(map)
    }
}

/// Size of a transparent huge page on x86-64 and most aarch64 kernels.
const HUGE_PAGE: usize = 2 << 20;

/// A private, 2 MiB-aligned anonymous copy of a snapshot file, which the kernel is asked to
/// back with transparent huge pages. See [`Snapshot::load_huge_pages`].
pub struct HugePageMemory {
    map: memmap2::MmapMut,
    start: usize,
    len: usize,
    advised: bool,
}

impl HugePageMemory {
    /// Whether the kernel accepted the huge page advice (`madvise(MADV_HUGEPAGE)`). Whether
    /// it actually found huge pages shows in `AnonHugePages` of `/proc/meminfo`.
    pub fn huge_pages_advised(&self) -> bool {
        self.advised
    }
}

impl std::fmt::Debug for HugePageMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugePageMemory")
            .field("len", &self.len)
            .field("advised", &self.advised)
            .finish()
    }
}

impl AsRef<[u8]> for HugePageMemory {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self.map
            .get(self.start..self.start + self.len)
            .unwrap_or(&[])
    }
}

impl Snapshot<HugePageMemory> {
    /// Reads a snapshot file into anonymous memory aligned to 2 MiB and advised to use
    /// transparent huge pages, then opens it.
    ///
    /// For large snapshots (hundreds of MB and up) random lookups spend much of their time on
    /// TLB misses with 4 KiB pages; 2 MiB pages remove most of them, at the cost of reading
    /// the whole file at load time and keeping a private copy (not shared with other
    /// processes through the page cache). Unlike [`Snapshot::map`], the copy cannot be
    /// changed under the reader, so this is safe. Where the kernel has no transparent huge
    /// pages, or refuses them, this still works, with ordinary pages.
    ///
    /// # Errors
    ///
    /// When the path is not a regular file, cannot be read, memory cannot be mapped, or the
    /// snapshot does not open.
    pub fn load_huge_pages(path: impl AsRef<Path>) -> Result<Self> {
        use std::io::Read;
        let path = path.as_ref();
        let file = open_regular(path)?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let too_big = || {
            Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::OutOfMemory, "file too large to load"),
            )
        };
        let len = usize::try_from(len).map_err(|_| too_big())?;
        let total = len
            .checked_next_multiple_of(HUGE_PAGE)
            .and_then(|n| n.checked_add(HUGE_PAGE))
            .ok_or_else(too_big)?;
        let mut map = memmap2::MmapMut::map_anon(total).map_err(|e| Error::io(path, e))?;
        let address = map.as_ptr() as usize;
        let start = address.next_multiple_of(HUGE_PAGE) - address;
        // Advise before the first touch, so that the page faults of the copy below allocate
        // huge pages directly.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let advised = map.advise(memmap2::Advice::HugePage).is_ok();
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let advised = false;
        let target = map.get_mut(start..start + len).ok_or_else(too_big)?;
        (&file).read_exact(target).map_err(|e| Error::io(path, e))?;
        Snapshot::open(HugePageMemory {
            map,
            start,
            len,
            advised,
        })
    }
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
        for (slot, kind) in tables.iter_mut().zip(TABLE_KINDS) {
            if let Some(s) = layout.section(kind) {
                *slot = Some(table_parts(bytes, kind, s)?);
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
                kinds[i % 3].name(),
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
        let bytes = self.data.as_ref();
        self.layout.verify_checksums(bytes)?;
        let v = self.views();
        v.strings.verify()?;
        v.records.verify(&v.strings)?;
        for t in &v.tables {
            t.verify(v.records.len())?;
        }
        let filter = self.filter();
        for (i, t) in v.tables.iter().enumerate() {
            let kind = DigestKind::ALL[i % 3];
            if let Some(at) = t
                .iter()
                .position(|(fp, _)| !filter.may_contain(crate::digest::fingerprint_hash(kind, fp)))
            {
                return Err(Error::malformed(
                    "filter",
                    format!("{} entry {at} is not in the filter", kind.as_str()),
                ));
            }
        }
        if let Some(s) = &self.sections.urls {
            let fst_bytes = &bytes[s.range()];
            UrlTable::check(fst_bytes, v.records.len())?;
            let _ = self.urls_checked.set(true);
            let mut at = 0usize;
            UrlTable::new(fst_bytes).for_each(|key, _| {
                if !filter.may_contain(expression_hash(key)) {
                    return Err(Error::malformed(
                        "filter",
                        format!("url entry {at} is not in the filter"),
                    ));
                }
                at += 1;
                Ok(())
            })?;
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
        let found = xxh3_64(bytes);
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

    /// Looks up many digests, writing `out[i]` for `digests[i]`. Never allocates.
    ///
    /// The lookups run as a software pipeline over groups of 16: while one group hashes its
    /// keys and prefetches their filter blocks, the group before it tests the filter and
    /// prefetches bucket index entries, the one before that reads the index and prefetches
    /// fingerprints, and the oldest scans its buckets. Every memory access is thus requested
    /// well before it is needed, and a miss costs throughput only, not latency; this is
    /// several times faster than one lookup after another. Longer slices pipeline better;
    /// a few hundred digests per call is plenty.
    ///
    /// The filter pays off when most digests are unknown, its usual case. When most digests
    /// of a recent group were found (over three quarters), the filter's cache miss is wasted
    /// on nearly every key, so the following groups go straight to the tables, until a group
    /// finds fewer than a quarter. The answers are the same either way: the tables decide.
    ///
    /// # Panics
    ///
    /// When `out` is shorter than `digests`.
    pub fn lookup_digests(&self, digests: &[Digest], out: &mut [Option<RecordId>]) {
        self.lookup_digests_over(digests, &NoOverlay, out);
    }

    /// [`Snapshot::lookup_digests`] below layers that see each key first: in the pipeline's
    /// second stage `overlay` decides a key or leaves it to this snapshot (its filter blocks
    /// are prefetched in the first stage, with this snapshot's).
    ///
    /// # Panics
    ///
    /// When `out` is shorter than `digests`.
    #[inline(always)]
    pub(crate) fn lookup_digests_over<T: BatchSlot, O: Overlay<T>>(
        &self,
        digests: &[Digest],
        overlay: &O,
        out: &mut [T],
    ) {
        assert!(
            out.len() >= digests.len(),
            "output slice shorter than input"
        );
        let filter = self.filter();
        let tables = [self.table(0), self.table(1), self.table(2)];
        let groups = digests.len().div_ceil(BATCH);
        let mut ring = [Group::EMPTY; STAGES];
        let mut bypass = false;
        for step in 0..groups + 3 * LAG {
            // Stage 4, the oldest group: scan the buckets, whose lines were prefetched.
            if let Some(g) = step.checked_sub(3 * LAG).filter(|g| *g < groups) {
                let group = &ring[g % STAGES];
                let at = g * BATCH;
                let mut found = 0usize;
                for (i, slot) in out[at..at + group.len].iter_mut().enumerate() {
                    if group.decided & (1 << i) == 0 {
                        *slot = T::from_snapshot(if group.live & (1 << i) != 0 {
                            let (start, end) = group.ranges[i];
                            tables[group.kinds[i] as usize % 3].find_in(group.fps[i], start, end)
                        } else {
                            None
                        });
                    }
                    found += usize::from(slot.is_found());
                }
                bypass = if bypass {
                    found * 4 >= group.len
                } else {
                    found * 4 > group.len * 3
                };
            }
            // Stage 3: read the bucket index entries, prefetch the buckets.
            if let Some(g) = step.checked_sub(2 * LAG).filter(|g| *g < groups) {
                let group = &mut ring[g % STAGES];
                for i in 0..group.len {
                    if group.live & (1 << i) != 0 {
                        let table = &tables[group.kinds[i] as usize % 3];
                        group.ranges[i] = table.prefetch_bucket(group.fps[i]);
                    }
                }
            }
            // Stage 2: let the overlay decide what it can (writing those answers), test the
            // filter, prefetch the index entries of the keys it passes.
            if let Some(g) = step.checked_sub(LAG).filter(|g| *g < groups) {
                let group = &mut ring[g % STAGES];
                let at = g * BATCH;
                let mut live = 0u32;
                let mut decided = 0u32;
                for i in 0..group.len {
                    let kind = group.kinds[i] as usize % 3;
                    if O::ACTIVE {
                        let answer =
                            overlay.decide(DigestKind::ALL[kind], group.fps[i], group.hashes[i]);
                        if let Some(answer) = answer {
                            out[at + i] = answer;
                            decided |= 1 << i;
                            continue;
                        }
                    }
                    if !group.filtered {
                        // Bypassing the filter: the index entry was prefetched in stage 1.
                        live |= 1 << i;
                    } else if filter.may_contain(group.hashes[i]) {
                        live |= 1 << i;
                        prefetch(tables[kind].index_ptr(group.fps[i]));
                    }
                }
                group.live = live;
                group.decided = decided;
            }
            // Stage 1, the newest group: hash the keys and prefetch their filter blocks (or,
            // bypassing the filter, their bucket index entries).
            if step < groups {
                let group = &mut ring[step % STAGES];
                let at = step * BATCH;
                let keys = &digests[at..digests.len().min(at + BATCH)];
                group.len = keys.len();
                group.filtered = !bypass;
                for (i, d) in keys.iter().enumerate() {
                    let fp = d.fingerprint();
                    group.fps[i] = fp;
                    group.kinds[i] = d.kind().index() as u8;
                    if O::ACTIVE || !bypass {
                        let hash = crate::digest::fingerprint_hash(d.kind(), fp);
                        group.hashes[i] = hash;
                        overlay.prefetch(hash);
                        if !bypass {
                            prefetch(filter.block_ptr(hash));
                        }
                    }
                    if bypass {
                        prefetch(tables[d.kind().index()].index_ptr(fp));
                    }
                }
            }
        }
    }

    /// The URL table, once its bytes have passed their checksum.
    fn url_table(&self) -> Result<Option<UrlTable<'_>>> {
        let Some(s) = &self.sections.urls else {
            return Ok(None);
        };
        let bytes = &self.data.as_ref()[s.range()];
        let ok = *self.urls_checked.get_or_init(|| {
            xxh3_64(bytes) == s.checksum && UrlTable::check(bytes, self.record_count()).is_ok()
        });
        if !ok {
            let found = xxh3_64(bytes);
            if found != s.checksum {
                return Err(Error::Checksum {
                    section: SectionKind::Urls.name(),
                    expected: s.checksum,
                    found,
                });
            }
            return Err(UrlTable::check(bytes, self.record_count())
                .err()
                .unwrap_or_else(|| Error::malformed("url fst", "failed its check")));
        }
        Ok(Some(UrlTable::new(bytes)))
    }

    /// Looks up a canonical URL: every expression, most specific first; returns the first
    /// hit. `scratch` is reused between calls to avoid allocating.
    ///
    /// # Errors
    ///
    /// When the URL section is damaged (its checksum is checked on first use).
    pub fn lookup_url(
        &self,
        url: &CanonicalUrl,
        scratch: &mut Expressions,
    ) -> Result<Option<Hit<'_>>> {
        let Some((id, index)) = self.find_url(url, scratch)? else {
            return Ok(None);
        };
        let key = scratch.keys().nth(index).unwrap_or_default();
        Ok(self.record(id).map(|record| Hit {
            record,
            matched: key_expression(key),
        }))
    }

    /// The record id of the most specific expression of `url` that is listed, and the
    /// expression's index in `scratch`; but when that entry is not from an override feed
    /// and a less specific override entry covers it (its host is the same or a parent, its
    /// path the same or a prefix), the most specific such override entry. Never allocates
    /// once `scratch` has grown.
    fn find_url(
        &self,
        url: &CanonicalUrl,
        scratch: &mut Expressions,
    ) -> Result<Option<(RecordId, usize)>> {
        let Some(table) = self.url_table()? else {
            return Ok(None);
        };
        let filter = self.filter();
        let records = self.record_count();
        scratch.fill(url);
        // Hash every expression and prefetch its filter block first, so that the probes
        // overlap their memory accesses.
        let mut hashes = std::mem::take(&mut scratch.hashes);
        hashes.clear();
        for key in scratch.keys() {
            let hash = expression_hash(key);
            prefetch(filter.block_ptr(hash));
            hashes.push(hash);
        }
        let hosts = scratch.host_count();
        let mut best: Option<(RecordId, usize)> = None;
        for (index, (hash, key)) in hashes.iter().zip(scratch.keys()).enumerate() {
            if let Some((_, first)) = best {
                // Only an override entry that covers the first match can still win: a path
                // no more specific and a host no longer.
                if index / hosts < first / hosts || index % hosts < first % hosts {
                    continue;
                }
            }
            if !filter.may_contain(*hash) {
                continue;
            }
            let Some(id) = table.get(key).filter(|id| id.0 < records) else {
                continue;
            };
            let is_override = self.record(id).is_some_and(|r| r.is_override());
            if is_override {
                best = Some((id, index));
                break;
            }
            // The first match; the rest of the loop looks for an override covering it.
            best.get_or_insert((id, index));
        }
        scratch.hashes = hashes;
        Ok(best)
    }

    /// Checks many URLs (or hosts), writing `out[i]` for `urls[i]`: canonicalization and
    /// every expression included, reusing the caller's buffers, so the loop allocates
    /// nothing once they have grown. [`Snapshot::record`] gives the record of a listed URL.
    ///
    /// # Errors
    ///
    /// When the URL section is damaged.
    ///
    /// # Panics
    ///
    /// When `out` is shorter than `urls`.
    pub fn lookup_urls<S: AsRef<str>>(
        &self,
        urls: &[S],
        scratch: &mut UrlScratch,
        out: &mut [UrlVerdict],
    ) -> Result<()> {
        assert!(out.len() >= urls.len(), "output slice shorter than input");
        for (url, slot) in urls.iter().zip(out.iter_mut()) {
            *slot = match scratch
                .canonicalizer
                .canonicalize_into(url.as_ref(), &mut scratch.url)
            {
                Err(_) => UrlVerdict::Invalid,
                Ok(()) => match self.find_url(&scratch.url, &mut scratch.expressions)? {
                    Some((id, _)) => UrlVerdict::Listed(id),
                    None => UrlVerdict::Unlisted,
                },
            };
        }
        Ok(())
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

    /// Every URL/domain entry as (forward expression, record id), in key order.
    ///
    /// # Errors
    ///
    /// When the URL section is damaged.
    pub fn url_entries(&self) -> Result<Vec<(String, RecordId)>> {
        let Some(table) = self.url_table()? else {
            return Ok(Vec::new());
        };
        Ok(table
            .entries()?
            .into_iter()
            .map(|(k, id)| (key_expression(&k), id))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FeedInfo, RecordSpec, SnapshotBuilder, Verdict};

    fn sample(n: u64) -> (Vec<u8>, Vec<Digest>) {
        let mut builder = SnapshotBuilder::new();
        let feed = builder.add_feed(FeedInfo::new("t", "hashes", Verdict::Malicious));
        let digests: Vec<Digest> = (0..n)
            .map(|i| {
                let mut b = [0u8; 32];
                b[..8].copy_from_slice(&crate::filter::mix64(i).to_le_bytes());
                b[8..16].copy_from_slice(&crate::filter::mix64(!i).to_le_bytes());
                Digest::from_bytes(&b).unwrap()
            })
            .collect();
        for (i, d) in digests.iter().enumerate() {
            let spec = RecordSpec::new(Verdict::Malicious).name(format!("n{}", i % 300));
            builder.add_digest(feed, *d, spec);
        }
        (builder.to_bytes().unwrap(), digests)
    }

    #[test]
    fn huge_page_copy_answers_like_the_file() {
        let (bytes, digests) = sample(5000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        std::fs::write(&path, &bytes).unwrap();
        let huge = Snapshot::load_huge_pages(&path).unwrap();
        assert_eq!(huge.as_bytes(), &bytes[..]);
        assert_eq!(huge.as_bytes().as_ptr() as usize % HUGE_PAGE, 0);
        huge.verify().unwrap();
        let plain = Snapshot::open(bytes).unwrap();
        for d in &digests {
            let a = huge.lookup_digest(d).map(|r| r.id());
            assert!(a.is_some());
            assert_eq!(a, plain.lookup_digest(d).map(|r| r.id()));
            assert!(huge.filter_may_contain(d));
        }
    }

    #[test]
    fn batches_of_every_length_agree_with_single_lookups() {
        let (bytes, digests) = sample(3000);
        let snap = Snapshot::open(bytes).unwrap();
        let mut queries = Vec::new();
        for (i, d) in digests.iter().enumerate().take(200) {
            queries.push(*d);
            let mut absent = d.as_bytes().to_vec();
            absent[3] ^= (i as u8) | 1;
            queries.push(Digest::from_bytes(&absent).unwrap());
        }
        for len in [0, 1, 15, 16, 17, 63, 64, 65, 400] {
            let q = &queries[..len.min(queries.len())];
            let mut out = vec![None; q.len()];
            snap.lookup_digests(q, &mut out);
            for (d, got) in q.iter().zip(&out) {
                assert_eq!(
                    *got,
                    snap.lookup_digest(d).map(|r| r.id()),
                    "batch of {len}"
                );
            }
        }
    }

    #[test]
    fn runs_of_known_and_unknown_digests_agree_with_single_lookups() {
        // Long runs of found keys switch batches to bypassing the filter, and runs of
        // unknown keys switch them back; neither may change an answer.
        let (bytes, digests) = sample(3000);
        let snap = Snapshot::open(bytes).unwrap();
        let absent: Vec<Digest> = digests
            .iter()
            .map(|d| {
                let mut b = d.as_bytes().to_vec();
                b[5] ^= 0x5a;
                Digest::from_bytes(&b).unwrap()
            })
            .collect();
        let mut queries = Vec::new();
        for run in 0..6 {
            let source = if run % 2 == 0 { &digests } else { &absent };
            queries.extend_from_slice(&source[run * 300..run * 300 + 300]);
        }
        queries.extend_from_slice(&digests[..7]);
        let mut out = vec![None; queries.len()];
        snap.lookup_digests(&queries, &mut out);
        for (d, got) in queries.iter().zip(&out) {
            assert_eq!(*got, snap.lookup_digest(d).map(|r| r.id()));
        }
        assert_eq!(out.iter().filter(|o| o.is_some()).count(), 900 + 7);
    }
}
