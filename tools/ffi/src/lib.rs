//! The C ABI of repute: open a snapshot, look digests, URLs and domains up, read records.
//!
//! `include/repute.h` is generated from this file by cbindgen (the `header_is_current` test
//! fails when the committed header is stale). The rules every function follows:
//!
//! - **Handles are integers**, not pointers: a [`repute_snapshot`] packs a slot index and a
//!   generation. The slot table (`registry`) checks both on every call, so a closed,
//!   never-opened or garbage handle is [`repute_result::REPUTE_ERROR_INVALID_HANDLE`], never
//!   undefined behaviour. Lookups load the slot through `arc-swap` (no lock, no shared
//!   counter), so many threads share one handle without contending.
//! - **No panic crosses the boundary**: every entry point runs inside `catch_unwind` and a
//!   panic becomes [`repute_result::REPUTE_ERROR_PANIC`].
//! - **Errors are codes plus a thread-local message** ([`repute_last_error_message`]).
//! - **Nothing needs freeing** except handles ([`repute_snapshot_close`]): strings are copied
//!   into caller buffers, NUL-terminated, with the needed length reported.
//! - **Pointers**: null pointers are [`repute_result::REPUTE_ERROR_NULL_ARGUMENT`]; a non-null
//!   pointer must be valid for the length passed with it (that is the one thing a C API
//!   cannot check, hence `unsafe extern "C"`).
#![allow(non_camel_case_types)]
// The crate is a boundary to C: reading caller pointers needs `unsafe`. Every block says why
// it is sound (clippy's `undocumented_unsafe_blocks` is denied workspace-wide).
#![allow(unsafe_code)]

mod engine;
mod registry;

use std::cell::RefCell;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use repute::{Digest, Error, Query, QueryKind, Record, RecordId, Snapshot, Verdict};

pub use engine::*;
pub use registry::Storage;
use registry::{Object, Registry};

/// A snapshot handle: an opaque non-zero integer from [`repute_snapshot_open`]. Zero is never
/// a valid handle.
pub type repute_snapshot = u64;

/// Every function's outcome. `REPUTE_OK` is zero; the others set the thread's last error.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum repute_result {
    /// Success.
    REPUTE_OK = 0,
    /// A required pointer argument was NULL.
    REPUTE_ERROR_NULL_ARGUMENT = 1,
    /// An argument is out of range: a length that matches no digest, an output array
    /// shorter than the input, an unknown flag, field or record id, a string not UTF-8.
    REPUTE_ERROR_INVALID_ARGUMENT = 2,
    /// The handle is not open: closed already, never returned by an open call, or zero.
    REPUTE_ERROR_INVALID_HANDLE = 3,
    /// The caller's buffer is too small; the needed length was written to `*needed`.
    REPUTE_ERROR_BUFFER_TOO_SMALL = 4,
    /// The query is not a digest, URL or domain (or a URL call got a digest).
    REPUTE_ERROR_INVALID_QUERY = 5,
    /// A file could not be read or mapped.
    REPUTE_ERROR_IO = 6,
    /// The file is not a snapshot this build reads: bad magic, truncated, unsupported
    /// version or required feature, or malformed structure.
    REPUTE_ERROR_FORMAT = 7,
    /// A checksum did not match: the file is damaged.
    REPUTE_ERROR_CHECKSUM = 8,
    /// A bug in repute: a panic was caught at the boundary. The handle remains usable.
    REPUTE_ERROR_PANIC = 9,
    /// Too many handles are open at once.
    REPUTE_ERROR_TOO_MANY_HANDLES = 10,
    /// Any other library error (the message says what).
    REPUTE_ERROR_OTHER = 11,
    /// An engine's update set could not be used: a state directory without a usable
    /// `current.json`, a delta that does not apply to the layer below it, a layer whose
    /// signature does not verify, or a failed `repute_engine_reload` (the engine keeps
    /// serving the view it had).
    REPUTE_ERROR_UPDATE = 12,
}

/// What a snapshot says about a key.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum repute_verdict {
    /// Not in the snapshot.
    REPUTE_VERDICT_UNKNOWN = 0,
    /// Known bad.
    REPUTE_VERDICT_MALICIOUS = 1,
    /// Potentially unwanted.
    REPUTE_VERDICT_SUSPICIOUS = 2,
    /// Known good (allowlists).
    REPUTE_VERDICT_TRUSTED = 3,
    /// In a reference set, no judgement.
    REPUTE_VERDICT_KNOWN = 4,
}

/// The kind of a query.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum repute_kind {
    /// Not set (a record read by id has no query).
    REPUTE_KIND_NONE = 0,
    /// MD5 digest.
    REPUTE_KIND_MD5 = 1,
    /// SHA-1 digest.
    REPUTE_KIND_SHA1 = 2,
    /// SHA-256 digest.
    REPUTE_KIND_SHA256 = 3,
    /// URL.
    REPUTE_KIND_URL = 4,
    /// Host or domain.
    REPUTE_KIND_DOMAIN = 5,
}

/// `record_id` of a key that is not listed.
pub const REPUTE_NO_RECORD: u32 = u32::MAX;
/// `confidence` when the feed gave none.
pub const REPUTE_NO_CONFIDENCE: i32 = -1;
/// `first_seen` / `last_seen` when the feed gave none.
pub const REPUTE_NO_TIME: i64 = 0;

/// `repute_snapshot_open` flag: read the file into memory instead of mapping it (immune to
/// the file being truncated while open, costs its size in memory and the read time).
pub const REPUTE_OPEN_READ: u32 = 1;
/// `repute_snapshot_open` flag: verify every checksum before returning (O(file size)).
pub const REPUTE_OPEN_VERIFY: u32 = 2;

/// `repute_snapshot_record_string` field: threat or signature name.
pub const REPUTE_FIELD_NAME: u32 = 1;
/// `repute_snapshot_record_string` field: category such as `trojan` or `phishing`.
pub const REPUTE_FIELD_CATEGORY: u32 = 2;
/// `repute_snapshot_record_string` field: the source feed's name.
pub const REPUTE_FIELD_SOURCE: u32 = 3;
/// The answer to one lookup, or one record read by id. Plain data, caller-allocated.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct repute_record {
    /// `REPUTE_VERDICT_UNKNOWN` when the key is not listed (then every other field is unset).
    pub verdict: repute_verdict,
    /// The query's kind.
    pub kind: repute_kind,
    /// The record's id, for `repute_snapshot_record_string`; `REPUTE_NO_RECORD` when unlisted.
    /// Ids are stable for the life of the handle.
    pub record_id: u32,
    /// 0..=100, or `REPUTE_NO_CONFIDENCE`.
    pub confidence: i32,
    /// First seen, Unix seconds, or `REPUTE_NO_TIME` (0).
    pub first_seen: i64,
    /// Last seen, Unix seconds, or `REPUTE_NO_TIME` (0).
    pub last_seen: i64,
}

impl repute_record {
    const UNLISTED: repute_record = repute_record {
        verdict: repute_verdict::REPUTE_VERDICT_UNKNOWN,
        kind: repute_kind::REPUTE_KIND_NONE,
        record_id: REPUTE_NO_RECORD,
        confidence: REPUTE_NO_CONFIDENCE,
        first_seen: REPUTE_NO_TIME,
        last_seen: REPUTE_NO_TIME,
    };

    fn from_record(record: Option<&Record<'_>>, kind: repute_kind) -> repute_record {
        let Some(r) = record else {
            return repute_record {
                kind,
                ..repute_record::UNLISTED
            };
        };
        repute_record {
            verdict: verdict_code(r.verdict()),
            kind,
            record_id: r.id().0,
            confidence: r.confidence().map_or(REPUTE_NO_CONFIDENCE, i32::from),
            first_seen: r.first_seen().unwrap_or(REPUTE_NO_TIME),
            last_seen: r.last_seen().unwrap_or(REPUTE_NO_TIME),
        }
    }
}

fn verdict_code(v: Verdict) -> repute_verdict {
    match v {
        Verdict::Malicious => repute_verdict::REPUTE_VERDICT_MALICIOUS,
        Verdict::Suspicious => repute_verdict::REPUTE_VERDICT_SUSPICIOUS,
        Verdict::Trusted => repute_verdict::REPUTE_VERDICT_TRUSTED,
        Verdict::Known => repute_verdict::REPUTE_VERDICT_KNOWN,
        Verdict::Unknown => repute_verdict::REPUTE_VERDICT_UNKNOWN,
    }
}

fn kind_code(kind: QueryKind) -> repute_kind {
    match kind {
        QueryKind::Digest(repute::DigestKind::Md5) => repute_kind::REPUTE_KIND_MD5,
        QueryKind::Digest(repute::DigestKind::Sha1) => repute_kind::REPUTE_KIND_SHA1,
        QueryKind::Digest(repute::DigestKind::Sha256) => repute_kind::REPUTE_KIND_SHA256,
        QueryKind::Url => repute_kind::REPUTE_KIND_URL,
        QueryKind::Domain => repute_kind::REPUTE_KIND_DOMAIN,
    }
}

/// A failed call: the code returned and the message stored as the last error.
struct Failure {
    code: repute_result,
    message: String,
}

impl Failure {
    fn new(code: repute_result, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    fn null(what: &str) -> Failure {
        Failure::new(
            repute_result::REPUTE_ERROR_NULL_ARGUMENT,
            format!("{what} is NULL"),
        )
    }

    fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(repute_result::REPUTE_ERROR_INVALID_ARGUMENT, message)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        use repute_result::*;
        let code = match &e {
            Error::Io { .. } => REPUTE_ERROR_IO,
            Error::Magic
            | Error::Truncated { .. }
            | Error::Version { .. }
            | Error::RequiredFeatures { .. }
            | Error::Malformed { .. } => REPUTE_ERROR_FORMAT,
            Error::Checksum { .. } => REPUTE_ERROR_CHECKSUM,
            Error::Query { .. } => REPUTE_ERROR_INVALID_QUERY,
            Error::State { .. }
            | Error::Delta(_)
            | Error::WrongBase { .. }
            | Error::Signature { .. }
            | Error::Channel { .. } => REPUTE_ERROR_UPDATE,
            _ => REPUTE_ERROR_OTHER,
        };
        Failure::new(code, e.to_string())
    }
}

type Outcome = Result<(), Failure>;

thread_local! {
    static LAST_ERROR: RefCell<(repute_result, String)> =
        const { RefCell::new((repute_result::REPUTE_OK, String::new())) };
}

fn set_last_error(code: repute_result, message: String) {
    // `try_with`: during thread teardown the slot may be gone; the code is still returned.
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = (code, message);
        }
    });
}

/// Runs one entry point: catches panics, records failures as the thread's last error.
fn boundary(function: &str, body: impl FnOnce() -> Outcome) -> repute_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => repute_result::REPUTE_OK,
        Ok(Err(failure)) => {
            set_last_error(failure.code, format!("{function}: {}", failure.message));
            failure.code
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(
                repute_result::REPUTE_ERROR_PANIC,
                format!("{function}: internal error (panic: {what}); please report it"),
            );
            repute_result::REPUTE_ERROR_PANIC
        }
    }
}

/// Borrows a caller's output pointer.
///
/// # Safety
///
/// `ptr` is NULL or valid for writes of one `T`.
unsafe fn out_ref<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: the caller (every entry point's `# Safety` contract) guarantees a non-null
    // pointer is valid for writing one `T`; `as_mut` handles NULL.
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::null(what))
}

/// Borrows a caller's input bytes.
///
/// # Safety
///
/// `ptr` is NULL or valid for reads of `len` bytes.
unsafe fn in_bytes<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8], Failure> {
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    if len > isize::MAX as usize {
        return Err(Failure::invalid(format!(
            "{what}: length {len} is too large"
        )));
    }
    // SAFETY: non-null, and the caller guarantees `len` readable bytes at `ptr`.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}
/// The checked arguments of a batched digest lookup: packed digests of one length in, one
/// record id per digest out.
pub(crate) struct Batch<'a> {
    input: &'a [u8],
    digest_len: usize,
    out: &'a mut [u32],
}

impl<'a> Batch<'a> {
    /// Checks the lengths first (so a wrong call fails the same way with or without data),
    /// then the pointers; `None` for an empty batch.
    ///
    /// # Safety
    ///
    /// `digests` is NULL or valid for `count * digest_len` bytes of reads; `out` is NULL or
    /// valid for `out_count` writes; neither is used elsewhere while the batch lives.
    pub(crate) unsafe fn new(
        digests: *const u8,
        digest_len: usize,
        count: usize,
        out: *mut u32,
        out_count: usize,
    ) -> Result<Option<Self>, Failure> {
        if !matches!(digest_len, 16 | 20 | 32) {
            return Err(Failure::invalid(format!(
                "digest_len {digest_len} is not a digest length (16 MD5, 20 SHA-1, 32 SHA-256)"
            )));
        }
        if out_count < count {
            return Err(Failure::invalid(format!(
                "out has room for {out_count} ids but count is {count}"
            )));
        }
        let total = count
            .checked_mul(digest_len)
            .ok_or_else(|| Failure::invalid("count * digest_len overflows"))?;
        if count == 0 {
            return Ok(None);
        }
        // SAFETY: per this function's contract.
        let input = unsafe { in_bytes(digests, total, "digests") }?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        // SAFETY: non-null and valid for `out_count >= count` writes (the contract).
        let out = unsafe { std::slice::from_raw_parts_mut(out, count) };
        Ok(Some(Batch {
            input,
            digest_len,
            out,
        }))
    }

    /// Calls `f` with up to `CHUNK` parsed digests at a time and their slots in `out`.
    pub(crate) fn run(self, mut f: impl FnMut(&[Digest], &mut [u32]) -> Outcome) -> Outcome {
        let mut keys = [Digest::from_bytes(&[0; 16]).unwrap_or_else(|| unreachable!()); CHUNK];
        let len = self.digest_len;
        for (raw, out) in self
            .input
            .chunks(CHUNK * len)
            .zip(self.out.chunks_mut(CHUNK))
        {
            let n = out.len();
            for (key, bytes) in keys.iter_mut().zip(raw.chunks_exact(len)) {
                *key = Digest::from_bytes(bytes).unwrap_or_else(|| unreachable!());
            }
            f(&keys[..n], out)?;
        }
        Ok(())
    }
}

/// Borrows a caller's NUL-terminated UTF-8 string.
///
/// # Safety
///
/// `ptr` is NULL or points at a NUL-terminated string.
unsafe fn in_str<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-null, and the caller guarantees NUL termination.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str()
        .map_err(|e| Failure::invalid(format!("{what} is not UTF-8 ({e})")))
}

/// Copies `text` into a caller buffer, NUL-terminated, reporting its length in `needed`.
///
/// # Safety
///
/// `buf` is NULL or valid for `cap` bytes of writes; `needed` is NULL or valid for a write.
unsafe fn copy_out(text: &[u8], buf: *mut c_char, cap: usize, needed: *mut usize) -> Outcome {
    // SAFETY: per this function's contract.
    if let Some(needed) = unsafe { needed.as_mut() } {
        *needed = text.len();
    }
    if cap == 0 || buf.is_null() {
        if cap != 0 {
            return Err(Failure::null("buf (with a non-zero capacity)"));
        }
        return Err(Failure::new(
            repute_result::REPUTE_ERROR_BUFFER_TOO_SMALL,
            format!("{} bytes and a NUL needed, buffer has 0", text.len()),
        ));
    }
    if text.len() >= cap {
        // SAFETY: `cap > 0`, so `buf[0]` is writable.
        unsafe { *buf = 0 };
        return Err(Failure::new(
            repute_result::REPUTE_ERROR_BUFFER_TOO_SMALL,
            format!("{} bytes and a NUL needed, buffer has {cap}", text.len()),
        ));
    }
    // SAFETY: `text.len() + 1 <= cap` bytes are writable at `buf`, and `text` (our own
    // memory) cannot overlap the caller's buffer in a way that matters for a byte copy
    // (`copy` allows overlap).
    unsafe {
        std::ptr::copy(text.as_ptr(), buf.cast::<u8>(), text.len());
        *buf.add(text.len()) = 0;
    }
    Ok(())
}

fn with_snapshot<R>(
    handle: repute_snapshot,
    body: impl FnOnce(&Snapshot<Storage>) -> Result<R, Failure>,
) -> Result<R, Failure> {
    let guard = Registry::global().load(handle)?;
    match &*guard {
        Object::Snapshot(snapshot) => body(snapshot),
        other => Err(Failure::new(
            repute_result::REPUTE_ERROR_INVALID_HANDLE,
            format!(
                "handle {handle:#x} is {}, not a snapshot: use the repute_engine_* calls",
                other.describe()
            ),
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Version and errors
// ---------------------------------------------------------------------------------------

/// The library version, e.g. `"0.1.0"`: a static NUL-terminated string (never free it).
#[no_mangle]
pub extern "C" fn repute_version() -> *const c_char {
    static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
}

/// The code of this thread's last failed call (`REPUTE_OK` when none failed yet).
#[no_mangle]
pub extern "C" fn repute_last_error_code() -> repute_result {
    LAST_ERROR
        .try_with(|slot| slot.try_borrow().map_or(repute_result::REPUTE_OK, |s| s.0))
        .unwrap_or(repute_result::REPUTE_OK)
}

/// Copies this thread's last error message into `buf` (NUL-terminated, truncated to fit when
/// `cap` is too small) and returns its full length in bytes, without the NUL. Pass `cap` 0
/// to learn the length. The message names the function that failed and what to do.
///
/// # Safety
///
/// `buf` is NULL or valid for `cap` bytes of writes.
#[no_mangle]
pub unsafe extern "C" fn repute_last_error_message(buf: *mut c_char, cap: usize) -> usize {
    let copy = |message: &str| -> usize {
        if !buf.is_null() && cap > 0 {
            let n = message.len().min(cap - 1);
            // SAFETY: `n + 1 <= cap` bytes are writable at `buf` (this function's contract).
            unsafe {
                std::ptr::copy(message.as_ptr(), buf.cast::<u8>(), n);
                *buf.add(n) = 0;
            }
        }
        message.len()
    };
    catch_unwind(AssertUnwindSafe(|| {
        LAST_ERROR
            .try_with(|slot| slot.try_borrow().map_or(0, |s| copy(&s.1)))
            .unwrap_or(0)
    }))
    .unwrap_or(0)
}

/// A static NUL-terminated name for a result code, such as `"REPUTE_ERROR_INVALID_HANDLE"`
/// (`"unknown result code"` for a value that is not one).
#[no_mangle]
pub extern "C" fn repute_result_name(code: i32) -> *const c_char {
    let name: &'static str = match code {
        0 => "REPUTE_OK\0",
        1 => "REPUTE_ERROR_NULL_ARGUMENT\0",
        2 => "REPUTE_ERROR_INVALID_ARGUMENT\0",
        3 => "REPUTE_ERROR_INVALID_HANDLE\0",
        4 => "REPUTE_ERROR_BUFFER_TOO_SMALL\0",
        5 => "REPUTE_ERROR_INVALID_QUERY\0",
        6 => "REPUTE_ERROR_IO\0",
        7 => "REPUTE_ERROR_FORMAT\0",
        8 => "REPUTE_ERROR_CHECKSUM\0",
        9 => "REPUTE_ERROR_PANIC\0",
        10 => "REPUTE_ERROR_TOO_MANY_HANDLES\0",
        11 => "REPUTE_ERROR_OTHER\0",
        12 => "REPUTE_ERROR_UPDATE\0",
        _ => "unknown result code\0",
    };
    name.as_ptr().cast()
}

// ---------------------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------------------

/// Opens a snapshot file and writes its handle to `*out`. Costs microseconds (the file is
/// memory-mapped) unless `flags` has `REPUTE_OPEN_READ` or `REPUTE_OPEN_VERIFY`.
///
/// A mapped snapshot file must never be truncated or rewritten in place while open (a
/// truncated mapping kills the process with `SIGBUS`): publish new snapshots by writing a
/// new file and renaming it over the old one, as `repute build` does. Deleting or renaming
/// over an open file is safe; the handle keeps answering from the old contents. When you do
/// not control the file, pass `REPUTE_OPEN_READ`.
///
/// # Safety
///
/// `path` is NULL or a NUL-terminated string; `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn repute_snapshot_open(
    path: *const c_char,
    flags: u32,
    out: *mut repute_snapshot,
) -> repute_result {
    boundary("repute_snapshot_open", || {
        // SAFETY: per this function's contract.
        let out = unsafe { out_ref(out, "out") }?;
        *out = 0;
        // SAFETY: per this function's contract.
        let path = unsafe { in_str(path, "path") }?;
        if flags & !(REPUTE_OPEN_READ | REPUTE_OPEN_VERIFY) != 0 {
            return Err(Failure::invalid(format!("unknown flags {flags:#x}")));
        }
        let snapshot = open_snapshot(Path::new(path), flags & REPUTE_OPEN_READ != 0)
            .map_err(|e| prefix(e, path))?;
        if flags & REPUTE_OPEN_VERIFY != 0 {
            snapshot.verify().map_err(|e| prefix(e.into(), path))?;
        }
        *out = Registry::global().insert(Object::Snapshot(snapshot))?;
        Ok(())
    })
}

fn prefix(mut failure: Failure, path: &str) -> Failure {
    if !failure.message.starts_with(path) {
        failure.message = format!("{path}: {}", failure.message);
    }
    failure
}

fn open_snapshot(path: &Path, read: bool) -> Result<Snapshot<Storage>, Failure> {
    let io = |e: std::io::Error| Failure::new(repute_result::REPUTE_ERROR_IO, e.to_string());
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(Failure::new(
            repute_result::REPUTE_ERROR_IO,
            "not a regular file",
        ));
    }
    let storage = if read || meta.len() == 0 {
        Storage::Owned(std::fs::read(path).map_err(io)?)
    } else {
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the documented contract of `repute_snapshot_open` (and of the Python
        // `Snapshot`): published snapshot files are replaced by rename, never truncated or
        // rewritten in place; callers who cannot promise that pass REPUTE_OPEN_READ.
        Storage::Mapped(unsafe { memmap2::Mmap::map(&file) }.map_err(io)?)
    };
    Ok(Snapshot::open(storage)?)
}

/// Closes a snapshot handle. Calls already running on it on other threads finish first (the
/// snapshot is unmapped when the last one returns); any later use of the handle, including a
/// second close, is `REPUTE_ERROR_INVALID_HANDLE`. An engine handle is refused
/// (`REPUTE_ERROR_INVALID_HANDLE`) and stays open: close it with `repute_engine_close`.
#[no_mangle]
pub extern "C" fn repute_snapshot_close(snapshot: repute_snapshot) -> repute_result {
    boundary("repute_snapshot_close", || {
        Registry::global().remove(
            snapshot,
            |o| matches!(o, Object::Snapshot(_)),
            "repute_snapshot_close",
        )
    })
}

/// Reads every byte of the snapshot and checks every checksum (O(file size)).
/// `REPUTE_ERROR_CHECKSUM` or `REPUTE_ERROR_FORMAT` when the file is damaged.
#[no_mangle]
pub extern "C" fn repute_snapshot_verify(snapshot: repute_snapshot) -> repute_result {
    boundary("repute_snapshot_verify", || {
        with_snapshot(snapshot, |s| Ok(s.verify()?))
    })
}

/// Copies the snapshot's metadata, a JSON object (generator, created, expires, sequence,
/// feeds, keys, verdicts, records), into `buf`; `*needed` gets its length.
///
/// # Safety
///
/// `buf` is NULL or valid for `cap` bytes of writes; `needed` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn repute_snapshot_metadata_json(
    snapshot: repute_snapshot,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> repute_result {
    boundary("repute_snapshot_metadata_json", || {
        let json = with_snapshot(snapshot, |s| {
            let metadata = s.metadata()?;
            serde_json::to_string(&metadata)
                .map_err(|e| Failure::new(repute_result::REPUTE_ERROR_OTHER, e.to_string()))
        })?;
        // SAFETY: per this function's contract.
        unsafe { copy_out(json.as_bytes(), buf, cap, needed) }
    })
}

/// Looks up any query, as `repute lookup` does: 32, 40 or 64 hex characters are a digest,
/// a string with a scheme or a path is a URL, anything else a host or domain. An unlisted
/// query is success with `out->verdict == REPUTE_VERDICT_UNKNOWN`.
///
/// # Safety
///
/// `query` is NULL or a NUL-terminated string; `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn repute_snapshot_lookup(
    snapshot: repute_snapshot,
    query: *const c_char,
    out: *mut repute_record,
) -> repute_result {
    boundary("repute_snapshot_lookup", || {
        // SAFETY: per this function's contract.
        let out = unsafe { out_ref(out, "out") }?;
        *out = repute_record::UNLISTED;
        // SAFETY: per this function's contract.
        let text = unsafe { in_str(query, "query") }?;
        let query = Query::parse(text)?;
        let kind = kind_code(query.kind());
        with_snapshot(snapshot, |s| {
            let hit = s.lookup(&query)?;
            *out = repute_record::from_record(hit.as_ref().map(|h| &h.record), kind);
            Ok(())
        })
    })
}

/// Like `repute_snapshot_lookup`, and also copies the digest or URL expression that matched
/// (`host/path` for URLs, the domain for domain entries) into `matched` (NUL-terminated;
/// empty when unlisted); `*needed` gets its length.
///
/// # Safety
///
/// As `repute_snapshot_lookup`; `matched` is NULL or valid for `cap` bytes of writes and
/// `needed` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn repute_snapshot_lookup_matched(
    snapshot: repute_snapshot,
    query: *const c_char,
    out: *mut repute_record,
    matched: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> repute_result {
    boundary("repute_snapshot_lookup_matched", || {
        // SAFETY: per this function's contract.
        let out = unsafe { out_ref(out, "out") }?;
        *out = repute_record::UNLISTED;
        // SAFETY: per this function's contract.
        let text = unsafe { in_str(query, "query") }?;
        let query = Query::parse(text)?;
        let kind = kind_code(query.kind());
        let expression = with_snapshot(snapshot, |s| {
            let hit = s.lookup(&query)?;
            *out = repute_record::from_record(hit.as_ref().map(|h| &h.record), kind);
            Ok(hit.map(|h| h.matched).unwrap_or_default())
        })?;
        // SAFETY: per this function's contract.
        unsafe { copy_out(expression.as_bytes(), matched, cap, needed) }
    })
}

/// Looks up one digest given as `len` hex characters (32, 40 or 64, either case; not
/// necessarily NUL-terminated).
///
/// # Safety
///
/// `hex` is NULL or valid for `len` bytes of reads; `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn repute_snapshot_lookup_hex(
    snapshot: repute_snapshot,
    hex: *const c_char,
    len: usize,
    out: *mut repute_record,
) -> repute_result {
    boundary("repute_snapshot_lookup_hex", || {
        // SAFETY: per this function's contract.
        let out = unsafe { out_ref(out, "out") }?;
        *out = repute_record::UNLISTED;
        // SAFETY: per this function's contract.
        let bytes = unsafe { in_bytes(hex.cast(), len, "hex") }?;
        let digest = Digest::from_hex(bytes).map_err(|e| {
            Failure::new(
                repute_result::REPUTE_ERROR_INVALID_QUERY,
                format!("not a hex digest: {e}"),
            )
        })?;
        lookup_one(snapshot, &digest, out)
    })
}

/// Looks up one digest given as raw bytes: 16 (MD5), 20 (SHA-1) or 32 (SHA-256).
///
/// # Safety
///
/// `bytes` is NULL or valid for `len` bytes of reads; `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn repute_snapshot_lookup_digest(
    snapshot: repute_snapshot,
    bytes: *const u8,
    len: usize,
    out: *mut repute_record,
) -> repute_result {
    boundary("repute_snapshot_lookup_digest", || {
        // SAFETY: per this function's contract.
        let out = unsafe { out_ref(out, "out") }?;
        *out = repute_record::UNLISTED;
        // SAFETY: per this function's contract.
        let bytes = unsafe { in_bytes(bytes, len, "bytes") }?;
        let digest = Digest::from_bytes(bytes).ok_or_else(|| {
            Failure::invalid(format!(
                "{len} bytes is not a digest length (16 MD5, 20 SHA-1, 32 SHA-256)"
            ))
        })?;
        lookup_one(snapshot, &digest, out)
    })
}

fn lookup_one(snapshot: repute_snapshot, digest: &Digest, out: &mut repute_record) -> Outcome {
    with_snapshot(snapshot, |s| {
        let kind = kind_code(QueryKind::Digest(digest.kind()));
        *out = repute_record::from_record(s.lookup_digest(digest).as_ref(), kind);
        Ok(())
    })
}

/// Looks up a URL or a host/domain (never a digest: 32 hex characters are a host here).
/// A string with a scheme or a path is a URL, anything else a host.
///
/// # Safety
///
/// `url` is NULL or a NUL-terminated string; `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn repute_snapshot_lookup_url(
    snapshot: repute_snapshot,
    url: *const c_char,
    out: *mut repute_record,
) -> repute_result {
    boundary("repute_snapshot_lookup_url", || {
        // SAFETY: per this function's contract.
        let out = unsafe { out_ref(out, "out") }?;
        *out = repute_record::UNLISTED;
        // SAFETY: per this function's contract.
        let text = unsafe { in_str(url, "url") }?;
        let query = match Query::parse(text)? {
            Query::Digest(_) => Query::parse(&format!("{}/", text.trim()))?,
            other => other,
        };
        let kind = kind_code(query.kind());
        with_snapshot(snapshot, |s| {
            let hit = s.lookup(&query)?;
            *out = repute_record::from_record(hit.as_ref().map(|h| &h.record), kind);
            Ok(())
        })
    })
}

/// Digests per step of a batch (on the stack).
const CHUNK: usize = 512;

/// Looks up `count` raw digests of one length, packed back to back in `digests`
/// (`count * digest_len` bytes; `digest_len` is 16, 20 or 32), writing each one's record id
/// (or `REPUTE_NO_RECORD`) to `out[i]`. `out_count` is the capacity of `out` and must be at
/// least `count`. Several times faster per digest than single lookups (the lookups are
/// pipelined); read fields with `repute_snapshot_record` and `repute_snapshot_record_string`.
///
/// # Safety
///
/// `digests` is NULL or valid for `count * digest_len` bytes of reads; `out` is NULL or
/// valid for `out_count` writes.
#[no_mangle]
pub unsafe extern "C" fn repute_snapshot_lookup_batch(
    snapshot: repute_snapshot,
    digests: *const u8,
    digest_len: usize,
    count: usize,
    out: *mut u32,
    out_count: usize,
) -> repute_result {
    boundary("repute_snapshot_lookup_batch", || {
        // SAFETY: per this function's contract.
        let Some(batch) = (unsafe { Batch::new(digests, digest_len, count, out, out_count) })?
        else {
            return with_snapshot(snapshot, |_| Ok(()));
        };
        with_snapshot(snapshot, |s| {
            let mut ids = [None::<RecordId>; CHUNK];
            batch.run(|keys, out| {
                let ids = &mut ids[..keys.len()];
                s.lookup_digests(keys, ids);
                for (slot, id) in out.iter_mut().zip(ids.iter()) {
                    *slot = id.map_or(REPUTE_NO_RECORD, |id| id.0);
                }
                Ok(())
            })
        })
    })
}

/// Looks up `count` digests given as NUL-terminated hex strings (any mix of MD5, SHA-1 and
/// SHA-256), writing record ids to `out` as `repute_snapshot_lookup_batch` does. A string
/// that is not a hex digest fails the whole call with `REPUTE_ERROR_INVALID_QUERY` (the
/// message names its index) and leaves `out` unspecified.
///
/// # Safety
///
/// `hex` is NULL or valid for `count` reads of pointers, each NULL or NUL-terminated; `out`
/// is NULL or valid for `out_count` writes.
#[no_mangle]
pub unsafe extern "C" fn repute_snapshot_lookup_hex_batch(
    snapshot: repute_snapshot,
    hex: *const *const c_char,
    count: usize,
    out: *mut u32,
    out_count: usize,
) -> repute_result {
    boundary("repute_snapshot_lookup_hex_batch", || {
        if out_count < count {
            return Err(Failure::invalid(format!(
                "out has room for {out_count} ids but count is {count}"
            )));
        }
        if count == 0 {
            return with_snapshot(snapshot, |_| Ok(()));
        }
        if hex.is_null() {
            return Err(Failure::null("hex"));
        }
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        // SAFETY: non-null and valid for `count` reads of pointers (the contract).
        let strings = unsafe { std::slice::from_raw_parts(hex, count) };
        // SAFETY: non-null and valid for `out_count >= count` writes (the contract).
        let out = unsafe { std::slice::from_raw_parts_mut(out, count) };
        let mut keys = Vec::with_capacity(count);
        for (i, &p) in strings.iter().enumerate() {
            if p.is_null() {
                return Err(Failure::null(&format!("hex[{i}]")));
            }
            // SAFETY: non-null and NUL-terminated (the contract).
            let text = unsafe { CStr::from_ptr(p) }.to_bytes();
            let digest = Digest::from_hex(text).map_err(|e| {
                Failure::new(
                    repute_result::REPUTE_ERROR_INVALID_QUERY,
                    format!("hex[{i}] is not a hex digest: {e}"),
                )
            })?;
            keys.push(digest);
        }
        with_snapshot(snapshot, |s| {
            let mut ids = [None::<RecordId>; CHUNK];
            for (keys, out) in keys.chunks(CHUNK).zip(out.chunks_mut(CHUNK)) {
                let n = keys.len();
                s.lookup_digests(keys, &mut ids[..n]);
                for (slot, id) in out.iter_mut().zip(&ids[..n]) {
                    *slot = id.map_or(REPUTE_NO_RECORD, |id| id.0);
                }
            }
            Ok(())
        })
    })
}

/// Reads a record by id (from a batch lookup or `out->record_id`) into `*out`; `out->kind`
/// is `REPUTE_KIND_NONE`. `REPUTE_ERROR_INVALID_ARGUMENT` for an id the snapshot lacks.
///
/// # Safety
///
/// `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn repute_snapshot_record(
    snapshot: repute_snapshot,
    record_id: u32,
    out: *mut repute_record,
) -> repute_result {
    boundary("repute_snapshot_record", || {
        // SAFETY: per this function's contract.
        let out = unsafe { out_ref(out, "out") }?;
        *out = repute_record::UNLISTED;
        with_snapshot(snapshot, |s| {
            let record = record_by_id(s, record_id)?;
            *out = repute_record::from_record(Some(&record), repute_kind::REPUTE_KIND_NONE);
            Ok(())
        })
    })
}

fn record_by_id(s: &Snapshot<Storage>, id: u32) -> Result<Record<'_>, Failure> {
    s.record(RecordId(id)).ok_or_else(|| {
        Failure::invalid(format!(
            "no record {id} (this snapshot has {} records)",
            s.record_count()
        ))
    })
}

/// Copies a record's string field (`REPUTE_FIELD_NAME`, `REPUTE_FIELD_CATEGORY` or
/// `REPUTE_FIELD_SOURCE`) into `buf`, NUL-terminated; `*needed` gets its length in bytes
/// (0, and an empty string, when the record has no such field). With `buf` NULL and `cap` 0
/// only `*needed` is written (and `REPUTE_ERROR_BUFFER_TOO_SMALL` returned).
///
/// # Safety
///
/// `buf` is NULL or valid for `cap` bytes of writes; `needed` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn repute_snapshot_record_string(
    snapshot: repute_snapshot,
    record_id: u32,
    field: u32,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> repute_result {
    boundary("repute_snapshot_record_string", || {
        with_snapshot(snapshot, |s| {
            let record = record_by_id(s, record_id)?;
            let text = match field {
                REPUTE_FIELD_NAME => record.name(),
                REPUTE_FIELD_CATEGORY => record.category(),
                REPUTE_FIELD_SOURCE => record.source(),
                other => {
                    return Err(Failure::invalid(format!(
                        "field {other} is not a record string field (1 name, 2 category, 3 source)"
                    )))
                }
            };
            // SAFETY: per this function's contract.
            unsafe { copy_out(text.unwrap_or("").as_bytes(), buf, cap, needed) }
        })
    })
}

/// The number of records in the snapshot, written to `*out`.
///
/// # Safety
///
/// `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn repute_snapshot_record_count(
    snapshot: repute_snapshot,
    out: *mut u32,
) -> repute_result {
    boundary("repute_snapshot_record_count", || {
        // SAFETY: per this function's contract.
        let out = unsafe { out_ref(out, "out") }?;
        *out = 0;
        with_snapshot(snapshot, |s| {
            *out = s.record_count();
            Ok(())
        })
    })
}
