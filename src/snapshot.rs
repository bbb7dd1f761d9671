//! [`Snapshot`]: the validated, read-only view of a snapshot file.

use std::fs::File;
use std::path::Path;
use std::sync::OnceLock;

use xxhash_rust::xxh3::xxh3_64;

use crate::digest::{FingerprintTable, TableParams};
use crate::filter::{prefetch, BlockedBloom};
use crate::format::{Layout, RecordTable, SectionKind, SectionRef, StringTable};
use crate::url::{
    expression_hash, key_expression, CanonicalUrl, Expressions, UrlTable, MAX_EXPRESSIONS,
};
use crate::{Digest, DigestKind, Error, Metadata, Query, Record, RecordId, Result};

/// Lookups interleaved per batch step.
const BATCH: usize = 16;

/// A lookup result: the record, and the key or expression that matched.
#[derive(Debug, Clone)]
pub struct Hit<'a> {
    /// The matching record.
    pub record: Record<'a>,
    /// The digest (lower-case hex) or URL expression (`host/path`) that matched.
    pub matched: String,
}

/// Where each section lies, and the scalar shape of each table, taken once at open.
#[derive(Debug, Clone)]
struct Sections {
    filter: SectionRef,
    filter_blocks: u64,
    strings: SectionRef,
    records: SectionRef,
    tables: [Option<(SectionRef, TableParams)>; 3],
    urls: Option<SectionRef>,
    metadata: SectionRef,
}

/// Views of the sections, rebuilt from [`Sections`] by slicing only.
struct Views<'a> {
    filter: BlockedBloom<'a>,
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
        let filter = required(&layout, SectionKind::Filter)?;
        let filter_blocks = BlockedBloom::parse(&bytes[filter.range()])?.blocks();
        let strings = required(&layout, SectionKind::Strings)?;
        StringTable::parse(&bytes[strings.range()])?;
        let records = required(&layout, SectionKind::Records)?;
        RecordTable::parse(&bytes[records.range()])?;
        let metadata = required(&layout, SectionKind::Metadata)?;
        let mut tables = [None, None, None];
        for (slot, kind) in tables.iter_mut().zip(TABLE_KINDS) {
            if let Some(s) = layout.section(kind) {
                let t = FingerprintTable::parse(kind.name(), &bytes[s.range()])?;
                *slot = Some((s, t.params()));
            }
        }
        let urls = layout.section(SectionKind::Urls);
        Ok(Snapshot {
            sections: Sections {
                filter,
                filter_blocks,
                strings,
                records,
                tables,
                urls,
                metadata,
            },
            layout,
            data,
            urls_checked: OnceLock::new(),
        })
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.data.as_ref()
    }

    #[inline]
    fn views(&self) -> Views<'_> {
        let bytes = self.data.as_ref();
        let s = &self.sections;
        let slice = |r: &SectionRef| bytes.get(r.range()).unwrap_or(&[]);
        let table = |i: usize| match &s.tables[i] {
            Some((r, p)) => FingerprintTable::from_params(TABLE_KINDS[i].name(), slice(r), *p),
            None => FingerprintTable::empty(TABLE_KINDS[i].name()),
        };
        Views {
            filter: BlockedBloom::parse(slice(&s.filter)).unwrap_or_default(),
            tables: [table(0), table(1), table(2)],
            records: RecordTable::parse(slice(&s.records)).unwrap_or_default(),
            strings: StringTable::parse(slice(&s.strings)).unwrap_or_default(),
        }
    }

    /// Reads every byte: section checksums, the whole-file digest, and every structural
    /// invariant. A snapshot that passes gives correct answers for every lookup.
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
        if let Some(s) = &self.sections.urls {
            let fst_bytes = &bytes[s.range()];
            UrlTable::check(fst_bytes)?;
            let records = v.records.len();
            for (key, id) in UrlTable::new(fst_bytes).entries()? {
                if id.0 >= records {
                    return Err(Error::malformed(
                        "url fst",
                        format!("{} names missing record {}", key_expression(&key), id.0),
                    ));
                }
            }
            let _ = self.urls_checked.set(true);
        }
        self.metadata()?;
        Ok(())
    }

    /// The metadata section.
    ///
    /// # Errors
    ///
    /// When the section is not valid JSON metadata.
    pub fn metadata(&self) -> Result<Metadata> {
        let bytes = &self.data.as_ref()[self.sections.metadata.range()];
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
        let [a, b, c] = self.views().tables;
        [a, b, c][kind.index()]
    }

    /// Number of records.
    pub fn record_count(&self) -> u32 {
        self.views().records.len()
    }

    /// The record with this id.
    pub fn record(&self, id: RecordId) -> Option<Record<'_>> {
        let v = self.views();
        Record::new(id, &v.records, v.strings)
    }

    /// Size of the filter in bytes.
    pub fn filter_bytes(&self) -> usize {
        self.sections.filter_blocks as usize * crate::filter::BLOCK_BYTES
    }

    /// Looks up one digest. Never allocates.
    #[inline]
    pub fn lookup_digest(&self, digest: &Digest) -> Option<Record<'_>> {
        let v = self.views();
        if !v.filter.may_contain(digest.key_hash()) {
            return None;
        }
        let id = v.tables[digest.kind().index()].find(digest.fingerprint())?;
        Record::new(id, &v.records, v.strings)
    }

    /// Looks up many digests, writing `out[i]` for `digests[i]`. Interleaves the memory
    /// accesses of 16 lookups at a time with prefetching, which is several times faster
    /// than one lookup after another. Never allocates.
    ///
    /// # Panics
    ///
    /// When `out` is shorter than `digests`.
    pub fn lookup_digests(&self, digests: &[Digest], out: &mut [Option<RecordId>]) {
        assert!(
            out.len() >= digests.len(),
            "output slice shorter than input"
        );
        let v = self.views();
        for (keys, out) in digests.chunks(BATCH).zip(out.chunks_mut(BATCH)) {
            let mut fps = [0u128; BATCH];
            let mut hashes = [crate::filter::KeyHash(0); BATCH];
            for (i, d) in keys.iter().enumerate() {
                fps[i] = d.fingerprint();
                hashes[i] = crate::digest::fingerprint_hash(d.kind(), fps[i]);
                prefetch(v.filter.block_ptr(hashes[i]));
            }
            let mut live = [false; BATCH];
            for (i, d) in keys.iter().enumerate() {
                live[i] = v.filter.may_contain(hashes[i]);
                if live[i] {
                    prefetch(v.tables[d.kind().index()].index_ptr(fps[i]));
                }
            }
            let mut ranges = [(0usize, 0usize); BATCH];
            for (i, d) in keys.iter().enumerate() {
                if live[i] {
                    let (start, end, ptr) = v.tables[d.kind().index()].bucket_start(fps[i]);
                    ranges[i] = (start, end);
                    prefetch(ptr);
                }
            }
            for (i, d) in keys.iter().enumerate() {
                out[i] = if live[i] {
                    v.tables[d.kind().index()].find_in(fps[i], ranges[i].0, ranges[i].1)
                } else {
                    None
                };
            }
        }
    }

    /// The URL table, once its bytes have passed their checksum.
    fn url_table(&self) -> Result<Option<UrlTable<'_>>> {
        let Some(s) = &self.sections.urls else {
            return Ok(None);
        };
        let bytes = &self.data.as_ref()[s.range()];
        let ok = *self
            .urls_checked
            .get_or_init(|| xxh3_64(bytes) == s.checksum && UrlTable::check(bytes).is_ok());
        if !ok {
            let found = xxh3_64(bytes);
            if found != s.checksum {
                return Err(Error::Checksum {
                    section: SectionKind::Urls.name(),
                    expected: s.checksum,
                    found,
                });
            }
            return Err(UrlTable::check(bytes)
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
        let Some(table) = self.url_table()? else {
            return Ok(None);
        };
        let v = self.views();
        scratch.fill(url);
        // Hash every expression and prefetch its filter block first, so that the up to 30
        // probes overlap their memory accesses.
        let mut hashes = [crate::filter::KeyHash(0); MAX_EXPRESSIONS];
        for (hash, key) in hashes.iter_mut().zip(scratch.keys()) {
            *hash = expression_hash(key);
            prefetch(v.filter.block_ptr(*hash));
        }
        for (hash, key) in hashes.iter().zip(scratch.keys()) {
            if !v.filter.may_contain(*hash) {
                continue;
            }
            if let Some(id) = table.get(key) {
                if let Some(record) = Record::new(id, &v.records, v.strings) {
                    return Ok(Some(Hit {
                        record,
                        matched: key_expression(key),
                    }));
                }
            }
        }
        Ok(None)
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
