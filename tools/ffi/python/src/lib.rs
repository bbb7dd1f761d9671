//! `repute` for Python: a thin pyo3 module over the Rust library.
//!
//! [`Snapshot`] maps a snapshot file and answers lookups; `lookup_many` parses its input
//! with the GIL held, then releases the GIL for the lookups themselves (batched and
//! pipelined, as `repute::Snapshot::lookup_digests`). `scan` walks files on worker threads
//! and yields one dict per file. Library errors become the exception classes below, one per
//! `repute::Error` variant, all subclasses of `ReputeError`.
#![allow(unsafe_code)]

mod engine;

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString};

use repute::scan::{ScanEvent, Scanner};
use repute::url::Expressions;
use repute::{Digest, DigestKind, Error, Query, Record, RecordId, UrlScratch, UrlVerdict};

create_exception!(
    repute,
    ReputeError,
    PyException,
    "Base class of every repute error."
);
create_exception!(
    repute,
    IoError,
    ReputeError,
    "A file could not be read or mapped."
);
create_exception!(
    repute,
    MagicError,
    ReputeError,
    "The file is not a repute snapshot."
);
create_exception!(
    repute,
    TruncatedError,
    ReputeError,
    "The snapshot file is truncated."
);
create_exception!(
    repute,
    VersionError,
    ReputeError,
    "The snapshot's format version is not supported by this build."
);
create_exception!(
    repute,
    RequiredFeaturesError,
    ReputeError,
    "The snapshot requires features this build does not know."
);
create_exception!(
    repute,
    ChecksumError,
    ReputeError,
    "A checksum did not match: the snapshot is damaged."
);
create_exception!(
    repute,
    MalformedError,
    ReputeError,
    "The snapshot's structure is inconsistent."
);
create_exception!(repute, FeedError, ReputeError, "A feed could not be used.");
create_exception!(
    repute,
    QueryError,
    ReputeError,
    "A query is not a digest, URL or domain."
);
create_exception!(
    repute,
    BuildError,
    ReputeError,
    "Building a snapshot failed."
);
create_exception!(
    repute,
    WrongBaseError,
    ReputeError,
    "A delta does not apply to the snapshot below it."
);
create_exception!(
    repute,
    DeltaError,
    ReputeError,
    "A set of layers is not a valid engine view (a delta as the base, too many deltas)."
);
create_exception!(
    repute,
    StateError,
    ReputeError,
    "An update state directory is unusable (no or a malformed current.json)."
);
create_exception!(
    repute,
    SignatureError,
    ReputeError,
    "A signature is missing or does not verify."
);
create_exception!(
    repute,
    ChannelError,
    ReputeError,
    "An update channel is unusable."
);

fn to_py(e: Error) -> PyErr {
    let message = e.to_string();
    match e {
        Error::Io { .. } => IoError::new_err(message),
        Error::Magic => MagicError::new_err(message),
        Error::Truncated { .. } => TruncatedError::new_err(message),
        Error::Version { .. } => VersionError::new_err(message),
        Error::RequiredFeatures { .. } => RequiredFeaturesError::new_err(message),
        Error::Checksum { .. } => ChecksumError::new_err(message),
        Error::Malformed { .. } => MalformedError::new_err(message),
        Error::Feed { .. } => FeedError::new_err(message),
        Error::Query { .. } => QueryError::new_err(message),
        Error::Build(_) => BuildError::new_err(message),
        Error::WrongBase { .. } => WrongBaseError::new_err(message),
        Error::Delta(_) => DeltaError::new_err(message),
        Error::State { .. } => StateError::new_err(message),
        Error::Signature { .. } => SignatureError::new_err(message),
        Error::Channel { .. } => ChannelError::new_err(message),
        _ => ReputeError::new_err(message),
    }
}

/// The bytes behind a snapshot: a memory map, or the file read into memory.
enum Storage {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl AsRef<[u8]> for Storage {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        match self {
            Storage::Mapped(map) => map,
            Storage::Owned(bytes) => bytes,
        }
    }
}

type Inner = repute::Snapshot<Storage>;

fn open(path: &std::path::Path, mmap: bool) -> Result<Inner, Error> {
    let io = |e: std::io::Error| Error::Io {
        path: path.to_path_buf(),
        error: e,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let storage = if !mmap || meta.len() == 0 {
        Storage::Owned(std::fs::read(path).map_err(io)?)
    } else {
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the documented contract of `Snapshot(path)`: snapshot files are published
        // by rename and never truncated or rewritten in place; `mmap=False` reads the file
        // instead for callers who cannot promise that.
        Storage::Mapped(unsafe { memmap2::Mmap::map(&file) }.map_err(io)?)
    };
    repute::Snapshot::open(storage)
}

fn kind_name(kind: DigestKind) -> &'static str {
    kind.as_str()
}

/// The result dict of one hit, keyed as `repute lookup --format jsonl` lines are.
fn hit_dict<'py>(
    py: Python<'py>,
    query: &Bound<'py, PyAny>,
    kind: &str,
    record: &Record<'_>,
    matched: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "query"), query)?;
    d.set_item(intern!(py, "type"), kind)?;
    d.set_item(intern!(py, "verdict"), record.verdict().as_str())?;
    d.set_item(intern!(py, "name"), record.name())?;
    d.set_item(intern!(py, "category"), record.category())?;
    d.set_item(intern!(py, "source"), record.source())?;
    d.set_item(intern!(py, "matched"), matched)?;
    d.set_item(intern!(py, "first_seen"), record.first_seen())?;
    d.set_item(intern!(py, "last_seen"), record.last_seen())?;
    d.set_item(intern!(py, "confidence"), record.confidence())?;
    Ok(d)
}

fn digest_kind(name: &str) -> PyResult<DigestKind> {
    match name.to_ascii_lowercase().as_str() {
        "md5" => Ok(DigestKind::Md5),
        "sha1" => Ok(DigestKind::Sha1),
        "sha256" => Ok(DigestKind::Sha256),
        other => Err(PyValueError::new_err(format!(
            "kind {other:?} is not md5, sha1 or sha256"
        ))),
    }
}

/// The digest a `str` of 32, 40 or 64 hex characters spells, read straight from its code
/// points into a stack buffer: no UTF-8 copy, no intermediate Python object (under the
/// stable ABI on Python 3.9 `to_cow` encodes every string into a new `bytes`). `None` for
/// anything else, which then takes the general path.
fn hex_digest_of_str(s: &Bound<'_, PyString>) -> Option<Digest> {
    // SAFETY: `s` is a live `str` (the `Bound` proves both) and the GIL is held.
    let len = unsafe { pyo3::ffi::PyUnicode_GetLength(s.as_ptr()) };
    if !matches!(len, 32 | 40 | 64) {
        return None;
    }
    let mut units = [0 as pyo3::ffi::Py_UCS4; 64];
    // SAFETY: `s` is a live `str` and the GIL is held; `units` has room for 64 code points
    // and `len <= 64` are copied (`copy_null` 0: no terminator is written).
    let copied = unsafe { pyo3::ffi::PyUnicode_AsUCS4(s.as_ptr(), units.as_mut_ptr(), 64, 0) };
    if copied.is_null() {
        // Cannot happen for a `str` of this length; clear the exception and fall back.
        let _ = PyErr::take(s.py());
        return None;
    }
    // Without a branch per character (random hex mixes digits and letters, which a branch
    // predictor cannot learn): code points past ASCII are collected in `wide`, and the hex
    // check is `Digest::from_hex`'s.
    let mut ascii = [0u8; 64];
    let mut wide = 0;
    for (byte, &unit) in ascii.iter_mut().zip(&units[..len as usize]) {
        wide |= unit >> 7;
        *byte = unit as u8;
    }
    if wide != 0 {
        return None;
    }
    Digest::from_hex(&ascii[..len as usize]).ok()
}

/// One `lookup_many` item, parsed with the GIL held.
enum Item {
    Digest(Digest),
    /// The text and its parsed query (a URL or a domain).
    Url(String, Query),
}

/// Parses item `i` of `lookup_many`: a `str` (hex digest, URL or domain) or a `bytes` raw
/// digest (16, 20 or 32 bytes).
fn parse_item(i: usize, item: &Bound<'_, PyAny>) -> PyResult<Item> {
    if let Ok(string) = item.cast::<PyString>() {
        if let Some(digest) = hex_digest_of_str(string) {
            return Ok(Item::Digest(digest));
        }
        let text = string.to_cow()?;
        return match Query::parse(&text) {
            Ok(Query::Digest(digest)) => Ok(Item::Digest(digest)),
            Ok(q) => Ok(Item::Url(text.into_owned(), q)),
            Err(e) => Err(QueryError::new_err(format!("query {i}: {e}"))),
        };
    }
    if let Ok(bytes) = item.cast::<PyBytes>() {
        let raw = bytes.as_bytes();
        return Digest::from_bytes(raw).map(Item::Digest).ok_or_else(|| {
            QueryError::new_err(format!(
                "query {i}: {} bytes is not a digest length (16 MD5, 20 SHA-1, 32 SHA-256)",
                raw.len()
            ))
        });
    }
    Err(PyTypeError::new_err(format!(
        "query {i} is not a str or bytes"
    )))
}

/// One query of `lookup_many`, parsed while the GIL is held.
enum Parsed {
    /// Index into the digest batch.
    Digest(usize),
    /// Index into the URL batch; the query kind.
    Url(usize, &'static str),
}

/// A memory-mapped snapshot file.
///
/// ``Snapshot(path, *, mmap=True, verify=False)`` opens the file in microseconds (it is
/// mapped, not read). A mapped file must never be truncated or rewritten in place while
/// open: publish new snapshots by writing a new file and renaming it over the old one, as
/// ``repute build`` does (the open snapshot keeps answering from the old contents). Pass
/// ``mmap=False`` to read the file into memory instead. ``verify=True`` checks every
/// checksum first.
///
/// Every method may be called from many threads at once; ``verify`` and ``lookup_many``
/// release the GIL.
///
/// >>> snap = repute.Snapshot("bad.snap")
/// >>> snap.lookup("44d88612fea8a8f36de82e1278abb02f")["verdict"]
/// 'malicious'
#[pyclass(frozen, module = "repute")]
struct Snapshot {
    inner: Arc<Inner>,
    path: PathBuf,
}

#[pymethods]
impl Snapshot {
    #[new]
    #[pyo3(signature = (path, *, mmap = true, verify = false))]
    fn new(py: Python<'_>, path: PathBuf, mmap: bool, verify: bool) -> PyResult<Self> {
        let inner = py.detach(|| {
            let inner = open(&path, mmap)?;
            if verify {
                inner.verify()?;
            }
            Ok::<_, Error>(inner)
        });
        let inner = inner.map_err(|e| {
            let err = to_py(e);
            let message = format!("{}: {}", path.display(), err.value(py));
            PyErr::from_type(err.get_type(py), message)
        })?;
        Ok(Snapshot {
            inner: Arc::new(inner),
            path,
        })
    }

    /// The path the snapshot was opened from.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// The snapshot's metadata as a dict: generator, created, expires, sequence, feeds,
    /// keys, verdicts, records, filter_bits_per_key.
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let metadata = self.inner.metadata().map_err(to_py)?;
        let json = serde_json::to_string(&metadata)
            .map_err(|e| ReputeError::new_err(format!("metadata: {e}")))?;
        py.import(intern!(py, "json"))?
            .call_method1(intern!(py, "loads"), (json,))
    }

    /// Number of records in the snapshot.
    #[getter]
    fn record_count(&self) -> u32 {
        self.inner.record_count()
    }

    /// Reads every byte and checks every checksum (releases the GIL).
    ///
    /// Raises ``ChecksumError`` (or another ``ReputeError``) when the file is damaged.
    fn verify(&self, py: Python<'_>) -> PyResult<()> {
        let inner = &self.inner;
        py.detach(|| inner.verify()).map_err(to_py)
    }

    /// Looks up one query: a digest as hex (32, 40 or 64 characters) or raw ``bytes``
    /// (16, 20 or 32), a URL, or a host/domain.
    ///
    /// Returns ``None`` when nothing is listed, else a dict with ``query``, ``type``,
    /// ``verdict``, ``name``, ``category``, ``source``, ``matched``, ``first_seen``,
    /// ``last_seen`` and ``confidence`` (absent fields are ``None``). Raises ``QueryError``
    /// for a string that is no query.
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        if let Ok(bytes) = query.cast::<PyBytes>() {
            let raw = bytes.as_bytes();
            let digest = Digest::from_bytes(raw).ok_or_else(|| {
                QueryError::new_err(format!(
                    "{} bytes is not a digest length (16 MD5, 20 SHA-1, 32 SHA-256)",
                    raw.len()
                ))
            })?;
            return match self.inner.lookup_digest(&digest) {
                None => Ok(None),
                Some(r) => Some(hit_dict(
                    py,
                    query,
                    kind_name(digest.kind()),
                    &r,
                    &digest.to_hex(),
                ))
                .transpose(),
            };
        }
        let string = query
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err("a query is a str or bytes"))?;
        if let Some(digest) = hex_digest_of_str(string) {
            return match self.inner.lookup_digest(&digest) {
                None => Ok(None),
                Some(r) => Some(hit_dict(
                    py,
                    query,
                    digest.kind().as_str(),
                    &r,
                    &digest.to_hex(),
                ))
                .transpose(),
            };
        }
        let text = string.to_cow()?;
        let parsed = Query::parse(&text).map_err(to_py)?;
        let kind = parsed.kind().as_str();
        match self.inner.lookup(&parsed).map_err(to_py)? {
            None => Ok(None),
            Some(hit) => Some(hit_dict(py, query, kind, &hit.record, &hit.matched)).transpose(),
        }
    }

    /// Looks up many queries at once and returns a list, one entry per query in order:
    /// ``None`` or a dict as ``lookup`` returns.
    ///
    /// ``queries`` is an iterable of strings (digests, URLs, domains: any mix), or one
    /// ``bytes``/``bytearray`` of raw digests of one ``kind`` (``"md5"``, ``"sha1"`` or
    /// ``"sha256"``) packed back to back. The lookups run with the GIL released. Raises
    /// ``QueryError`` naming the first query that is not one.
    #[pyo3(signature = (queries, *, kind = "sha256"))]
    fn lookup_many<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        kind: &str,
    ) -> PyResult<Bound<'py, PyList>> {
        let packed = if let Ok(b) = queries.cast::<PyBytes>() {
            Some(b.as_bytes().to_vec())
        } else if let Ok(b) = queries.cast::<PyByteArray>() {
            Some(b.to_vec())
        } else {
            None
        };
        if let Some(packed) = packed {
            return self.lookup_packed(py, &packed, digest_kind(kind)?);
        }
        if queries.is_instance_of::<PyString>() {
            return Err(PyTypeError::new_err(
                "lookup_many takes an iterable of queries, not one string (use lookup)",
            ));
        }
        let items: Vec<Bound<'py, PyAny>> = queries.try_iter()?.collect::<PyResult<_>>()?;
        let mut digests = Vec::with_capacity(items.len());
        let mut urls: Vec<String> = Vec::new();
        let mut plan = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match parse_item(i, item)? {
                Item::Digest(digest) => {
                    plan.push(Parsed::Digest(digests.len()));
                    digests.push(digest);
                }
                Item::Url(text, query) => {
                    plan.push(Parsed::Url(urls.len(), query.kind().as_str()));
                    urls.push(text);
                }
            }
        }
        let inner = &self.inner;
        let (ids, url_verdicts) = py
            .detach(|| {
                let mut ids = vec![None::<RecordId>; digests.len()];
                inner.lookup_digests(&digests, &mut ids);
                let mut verdicts = vec![UrlVerdict::Unlisted; urls.len()];
                inner
                    .lookup_urls(&urls, &mut UrlScratch::new(), &mut verdicts)
                    .map(|()| (ids, verdicts))
            })
            .map_err(to_py)?;
        let out = PyList::empty(py);
        let mut expressions = Expressions::new();
        for (item, step) in items.iter().zip(&plan) {
            match *step {
                Parsed::Digest(at) => match ids[at].and_then(|id| inner.record(id)) {
                    None => out.append(py.None())?,
                    Some(r) => {
                        let d = &digests[at];
                        out.append(hit_dict(py, item, kind_name(d.kind()), &r, &d.to_hex())?)?
                    }
                },
                Parsed::Url(at, kind) => match url_verdicts[at] {
                    UrlVerdict::Listed(_) => {
                        // Listed: ask again for the matched expression (rare: hits only).
                        let query = Query::parse(&urls[at]).map_err(to_py)?;
                        let (Query::Url(u) | Query::Domain(u)) = &query else {
                            out.append(py.None())?;
                            continue;
                        };
                        match inner.lookup_url(u, &mut expressions).map_err(to_py)? {
                            Some(hit) => {
                                out.append(hit_dict(py, item, kind, &hit.record, &hit.matched)?)?
                            }
                            None => out.append(py.None())?,
                        }
                    }
                    UrlVerdict::Unlisted => out.append(py.None())?,
                    UrlVerdict::Invalid => {
                        return Err(QueryError::new_err(format!(
                            "query {:?} is not a usable URL or host",
                            urls[at]
                        )))
                    }
                },
            }
        }
        Ok(out)
    }

    /// Scans files and directories (recursively) on worker threads, yielding one dict per
    /// file; see ``repute.scan``.
    #[pyo3(signature = (paths, *, threads = 0, exclude = None, max_file_size = None,
                        follow_symlinks = false, one_file_system = false, events = false))]
    #[allow(clippy::too_many_arguments)]
    fn scan(
        &self,
        paths: &Bound<'_, PyAny>,
        threads: usize,
        exclude: Option<Vec<String>>,
        max_file_size: Option<u64>,
        follow_symlinks: bool,
        one_file_system: bool,
        events: bool,
    ) -> PyResult<ScanIterator> {
        let paths: Vec<PathBuf> = if let Ok(p) = paths.extract::<PathBuf>() {
            vec![p]
        } else {
            paths.extract()?
        };
        let scanner = Scanner::new()
            .threads(threads)
            .max_file_size(max_file_size)
            .follow_symlinks(follow_symlinks)
            .one_file_system(one_file_system)
            .exclude(exclude.unwrap_or_default())
            .map_err(to_py)?;
        let (tx, rx) = sync_channel::<ScanItem>(1024);
        let inner = Arc::clone(&self.inner);
        std::thread::Builder::new()
            .name("repute-scan".into())
            .spawn(move || {
                scanner.scan(&*inner, &paths, |event| {
                    let item = match event {
                        ScanEvent::File(f) => ScanItem::File {
                            path: f.path.to_string_lossy().into_owned(),
                            size: f.digests.size,
                            md5: hex(&f.digests.md5),
                            sha1: hex(&f.digests.sha1),
                            sha256: hex(&f.digests.sha256),
                            hit: f.hit.map(|h| ScanHit {
                                verdict: h.record.verdict().as_str(),
                                name: h.record.name().map(str::to_owned),
                                category: h.record.category().map(str::to_owned),
                                source: h.record.source().map(str::to_owned),
                                matched: h.matched.as_str(),
                            }),
                        },
                        ScanEvent::Error { path, error } if events => ScanItem::Error {
                            path: path.to_string_lossy().into_owned(),
                            error: error.to_string(),
                        },
                        ScanEvent::Skipped { path, reason } if events => ScanItem::Skipped {
                            path: path.to_string_lossy().into_owned(),
                            reason: reason.as_str(),
                        },
                        _ => return,
                    };
                    // A closed iterator drops the receiver: the rest is discarded.
                    let _ = tx.send(item);
                });
            })
            .map_err(|e| ReputeError::new_err(format!("cannot start the scan thread: {e}")))?;
        Ok(ScanIterator { rx: Mutex::new(rx) })
    }

    fn __repr__(&self) -> String {
        format!(
            "repute.Snapshot({:?}, records={})",
            self.path.display().to_string(),
            self.inner.record_count()
        )
    }
}

impl Snapshot {
    fn lookup_packed<'py>(
        &self,
        py: Python<'py>,
        packed: &[u8],
        kind: DigestKind,
    ) -> PyResult<Bound<'py, PyList>> {
        let width = kind.byte_len();
        if !packed.len().is_multiple_of(width) {
            return Err(PyValueError::new_err(format!(
                "{} bytes is not a whole number of {}-byte {} digests",
                packed.len(),
                width,
                kind.as_str()
            )));
        }
        let inner = &self.inner;
        let (digests, ids) = py.detach(|| {
            let digests: Vec<Digest> = packed
                .chunks_exact(width)
                .filter_map(Digest::from_bytes)
                .collect();
            let mut ids = vec![None::<RecordId>; digests.len()];
            inner.lookup_digests(&digests, &mut ids);
            (digests, ids)
        });
        let out = PyList::empty(py);
        for (d, id) in digests.iter().zip(ids) {
            match id.and_then(|id| inner.record(id)) {
                None => out.append(py.None())?,
                Some(r) => {
                    let hex = d.to_hex();
                    let query = PyString::new(py, &hex);
                    out.append(hit_dict(py, query.as_any(), kind.as_str(), &r, &hex)?)?
                }
            }
        }
        Ok(out)
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

struct ScanHit {
    verdict: &'static str,
    name: Option<String>,
    category: Option<String>,
    source: Option<String>,
    matched: &'static str,
}

enum ScanItem {
    File {
        path: String,
        size: u64,
        md5: String,
        sha1: String,
        sha256: String,
        hit: Option<ScanHit>,
    },
    Error {
        path: String,
        error: String,
    },
    Skipped {
        path: String,
        reason: &'static str,
    },
}

/// Iterator over a running scan's results (from ``repute.scan``).
#[pyclass(module = "repute")]
struct ScanIterator {
    rx: Mutex<Receiver<ScanItem>>,
}

#[pymethods]
impl ScanIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let rx = &self.rx;
        let item = py.detach(|| rx.lock().unwrap_or_else(|e| e.into_inner()).recv());
        let Ok(item) = item else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        match item {
            ScanItem::File {
                path,
                size,
                md5,
                sha1,
                sha256,
                hit,
            } => {
                d.set_item("event", "file")?;
                d.set_item("path", path)?;
                d.set_item("size", size)?;
                d.set_item("md5", md5)?;
                d.set_item("sha1", sha1)?;
                d.set_item("sha256", sha256)?;
                d.set_item("verdict", hit.as_ref().map_or("unknown", |h| h.verdict))?;
                d.set_item("name", hit.as_ref().and_then(|h| h.name.clone()))?;
                d.set_item("category", hit.as_ref().and_then(|h| h.category.clone()))?;
                d.set_item("source", hit.as_ref().and_then(|h| h.source.clone()))?;
                d.set_item("matched", hit.as_ref().map(|h| h.matched))?;
            }
            ScanItem::Error { path, error } => {
                d.set_item("event", "error")?;
                d.set_item("path", path)?;
                d.set_item("error", error)?;
            }
            ScanItem::Skipped { path, reason } => {
                d.set_item("event", "skipped")?;
                d.set_item("path", path)?;
                d.set_item("reason", reason)?;
            }
        }
        Ok(Some(d))
    }
}

/// Scans ``path`` (a file or directory, or a list of them) against ``snapshot``, yielding
/// one dict per regular file as it is hashed: ``event`` ("file"), ``path``, ``size``,
/// ``md5``, ``sha1``, ``sha256``, ``verdict`` (the strongest of the three digests'),
/// ``name``, ``category``, ``source``, ``matched`` (which digest matched). With
/// ``events=True``, unreadable files (``event`` "error") and skipped entries ("skipped")
/// are yielded too. Files are read, never mapped; hashing runs on ``threads`` worker
/// threads (0: one per CPU) without the GIL. Results come in no particular order.
///
/// >>> for f in repute.scan("/srv/uploads", snap, exclude=["*.iso"]):
/// ...     if f["verdict"] == "malicious": print(f["path"])
#[pyfunction]
#[pyo3(signature = (path, snapshot, *, threads = 0, exclude = None, max_file_size = None,
                    follow_symlinks = false, one_file_system = false, events = false))]
#[allow(clippy::too_many_arguments)]
fn scan(
    path: &Bound<'_, PyAny>,
    snapshot: &Bound<'_, Snapshot>,
    threads: usize,
    exclude: Option<Vec<String>>,
    max_file_size: Option<u64>,
    follow_symlinks: bool,
    one_file_system: bool,
    events: bool,
) -> PyResult<ScanIterator> {
    snapshot.get().scan(
        path,
        threads,
        exclude,
        max_file_size,
        follow_symlinks,
        one_file_system,
        events,
    )
}

/// repute: a local reputation engine for file hashes and URLs, over memory-mapped
/// immutable snapshots built by the ``repute`` command-line tool.
///
/// >>> import repute
/// >>> snap = repute.Snapshot("bad.snap")
/// >>> snap.lookup("http://malware.example.com/x")
/// >>> snap.lookup_many(["44d88612fea8a8f36de82e1278abb02f", "example.org"])
#[pymodule(name = "repute")]
fn repute_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Snapshot>()?;
    m.add_class::<ScanIterator>()?;
    m.add_function(wrap_pyfunction!(scan, m)?)?;
    m.add("ReputeError", py.get_type::<ReputeError>())?;
    m.add("IoError", py.get_type::<IoError>())?;
    m.add("MagicError", py.get_type::<MagicError>())?;
    m.add("TruncatedError", py.get_type::<TruncatedError>())?;
    m.add("VersionError", py.get_type::<VersionError>())?;
    m.add(
        "RequiredFeaturesError",
        py.get_type::<RequiredFeaturesError>(),
    )?;
    m.add("ChecksumError", py.get_type::<ChecksumError>())?;
    m.add("MalformedError", py.get_type::<MalformedError>())?;
    m.add("FeedError", py.get_type::<FeedError>())?;
    m.add("QueryError", py.get_type::<QueryError>())?;
    m.add("BuildError", py.get_type::<BuildError>())?;
    m.add("WrongBaseError", py.get_type::<WrongBaseError>())?;
    m.add("DeltaError", py.get_type::<DeltaError>())?;
    m.add("StateError", py.get_type::<StateError>())?;
    m.add("SignatureError", py.get_type::<SignatureError>())?;
    m.add("ChannelError", py.get_type::<ChannelError>())?;
    m.add_class::<engine::Engine>()?;
    Ok(())
}
