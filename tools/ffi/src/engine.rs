//! The C ABI of [`repute::Engine`]: a base snapshot and delta layers, or the set in force in
//! an update state directory, reloaded and swapped atomically while lookups run.
//!
//! An engine handle answers lookups from the engine's current view, loaded afresh by every
//! call. Record ids name a record in one view: with delta layers an id carries its layer in
//! the top [`REPUTE_ENGINE_LAYER_BITS`] bits. Between a batch lookup and reading its records
//! the engine may swap in a new view (`repute_engine_reload` on another thread); to read ids
//! back reliably, [`repute_engine_pin`] the view first and use the pinned handle for both.

use std::ffi::c_char;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use repute::{Engine, Found, Query, Record, RecordId, View};

use crate::registry::{Object, Registry};
use crate::{
    boundary, copy_out, in_str, kind_code, out_ref, prefix, repute_kind, repute_record,
    repute_result, Batch, Failure, CHUNK, REPUTE_FIELD_CATEGORY, REPUTE_FIELD_NAME,
    REPUTE_FIELD_SOURCE, REPUTE_NO_RECORD,
};

/// An engine handle (or a pinned view of one): an opaque non-zero integer from
/// [`repute_engine_open`], [`repute_engine_open_state_dir`] or [`repute_engine_pin`], closed
/// with [`repute_engine_close`]. It shares the snapshot handles' table, so a snapshot call
/// given an engine handle (or the other way round) is `REPUTE_ERROR_INVALID_HANDLE`.
pub type repute_engine = u64;

/// Bits at the top of an engine record id that hold its layer (0 is the base), when the view
/// has delta layers; the other 28 bits are the record's id in that layer. A view without
/// deltas uses the base's ids unchanged.
pub const REPUTE_ENGINE_LAYER_BITS: u32 = 4;

const ID_BITS: u32 = 32 - REPUTE_ENGINE_LAYER_BITS;
const ID_MASK: u32 = (1 << ID_BITS) - 1;

/// The view behind an engine handle: the engine's current one, or a pinned one.
enum Held {
    Current(arc_swap::Guard<Arc<View>>),
    Pinned(Arc<View>),
}

impl std::ops::Deref for Held {
    type Target = View;

    fn deref(&self) -> &View {
        match self {
            Held::Current(guard) => guard,
            Held::Pinned(view) => view,
        }
    }
}

fn not_engine(handle: repute_engine, object: &Object) -> Failure {
    Failure::new(
        repute_result::REPUTE_ERROR_INVALID_HANDLE,
        format!(
            "handle {handle:#x} is {}, not an engine: use the repute_snapshot_* calls",
            object.describe()
        ),
    )
}

fn with_view<R>(
    handle: repute_engine,
    body: impl FnOnce(&View) -> Result<R, Failure>,
) -> Result<R, Failure> {
    let loaded = Registry::global().load(handle)?;
    let held = match &*loaded {
        Object::Engine(engine) => Held::Current(engine.load()),
        Object::Pinned(view) => Held::Pinned(Arc::clone(view)),
        other => return Err(not_engine(handle, other)),
    };
    body(&held)
}

fn with_engine<R>(
    handle: repute_engine,
    body: impl FnOnce(&Engine) -> Result<R, Failure>,
) -> Result<R, Failure> {
    let loaded = Registry::global().load(handle)?;
    match &*loaded {
        Object::Engine(engine) => body(engine),
        Object::Pinned(_) => Err(Failure::invalid(format!(
            "handle {handle:#x} is a pinned view, which never changes: ask its engine"
        ))),
        other => Err(not_engine(handle, other)),
    }
}

/// The C record id of a record found in `layer` of `view`.
fn encode(view: &View, found: Found) -> Result<u32, Failure> {
    if view.layers().len() == 1 {
        return Ok(found.id.0);
    }
    if found.id.0 > ID_MASK {
        return Err(Failure::new(
            repute_result::REPUTE_ERROR_OTHER,
            format!(
                "record {} of layer {} does not fit the C API's {ID_BITS}-bit record ids",
                found.id.0, found.layer
            ),
        ));
    }
    Ok(found.layer << ID_BITS | found.id.0)
}

fn decode(view: &View, id: u32) -> Found {
    if view.layers().len() == 1 {
        return Found {
            layer: 0,
            id: RecordId(id),
        };
    }
    Found {
        layer: id >> ID_BITS,
        id: RecordId(id & ID_MASK),
    }
}

/// Which layer a record from `view` came from. `View::lookup` does not say, so this finds
/// the newest layer whose record of the same id has the same fields: were two layers to hold
/// equal records under one id, reading either back gives the caller the same answer.
fn layer_of(view: &View, record: &Record<'_>) -> u32 {
    let same = |other: &Record<'_>| {
        other.verdict() == record.verdict()
            && other.confidence() == record.confidence()
            && other.first_seen() == record.first_seen()
            && other.last_seen() == record.last_seen()
            && other.name() == record.name()
            && other.category() == record.category()
            && other.source() == record.source()
            && other.is_override() == record.is_override()
    };
    view.layers()
        .iter()
        .enumerate()
        .rev()
        .find(|(_, layer)| {
            layer
                .snapshot()
                .record(record.id())
                .is_some_and(|r| same(&r))
        })
        .map_or(0, |(i, _)| i as u32)
}

fn fill(
    view: &View,
    record: Option<&Record<'_>>,
    kind: repute_kind,
) -> Result<repute_record, Failure> {
    let mut out = repute_record::from_record(record, kind);
    if let Some(r) = record {
        let found = Found {
            layer: layer_of(view, r),
            id: r.id(),
        };
        out.record_id = encode(view, found)?;
    }
    Ok(out)
}

fn record_by_id(view: &View, id: u32) -> Result<Record<'_>, Failure> {
    view.record(decode(view, id))
        .ok_or_else(|| Failure::invalid(format!("no record {id:#x} in this engine view")))
}

/// Opens an engine over a base snapshot file and `delta_count` delta files over it (oldest
/// first; `deltas` may be NULL when `delta_count` is 0), mapping and verifying each, and
/// writes its handle to `*out`. `REPUTE_ERROR_UPDATE` when a delta does not apply to the layer
/// below it. The files follow the snapshot rename rule (see `repute_snapshot_open`).
///
/// # Safety
///
/// `base` is NULL or a NUL-terminated string; `deltas` is NULL or valid for `delta_count`
/// reads of pointers, each NULL or NUL-terminated; `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn repute_engine_open(
    base: *const c_char,
    deltas: *const *const c_char,
    delta_count: usize,
    out: *mut repute_engine,
) -> repute_result {
    boundary("repute_engine_open", || {
        // SAFETY: per this function's contract.
        let out = unsafe { out_ref(out, "out") }?;
        *out = 0;
        // SAFETY: per this function's contract.
        let base = unsafe { in_str(base, "base") }?;
        let mut paths = Vec::with_capacity(delta_count);
        if delta_count > 0 {
            if deltas.is_null() {
                return Err(Failure::null("deltas (with a non-zero delta_count)"));
            }
            // SAFETY: non-null and valid for `delta_count` pointer reads (the contract).
            let items = unsafe { std::slice::from_raw_parts(deltas, delta_count) };
            for (i, &p) in items.iter().enumerate() {
                // SAFETY: each pointer is NULL or NUL-terminated (the contract).
                let path = unsafe { in_str(p, &format!("deltas[{i}]")) }?;
                paths.push(PathBuf::from(path));
            }
        }
        // SAFETY: the documented contract of this call and `repute_snapshot_open`: snapshot
        // and delta files are published by rename, never truncated or rewritten in place.
        let engine =
            unsafe { Engine::open(Path::new(base), &paths) }.map_err(|e| prefix(e.into(), base))?;
        *out = Registry::global().insert(Object::Engine(engine))?;
        Ok(())
    })
}

/// Opens the set in force in an update state directory (what `repute update --state DIR`
/// maintains) and writes the engine's handle to `*out`; `repute_engine_reload` follows the
/// directory afterwards. `REPUTE_ERROR_UPDATE` when the directory has no usable
/// `current.json`.
///
/// # Safety
///
/// `dir` is NULL or a NUL-terminated string; `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn repute_engine_open_state_dir(
    dir: *const c_char,
    out: *mut repute_engine,
) -> repute_result {
    boundary("repute_engine_open_state_dir", || {
        // SAFETY: per this function's contract.
        let out = unsafe { out_ref(out, "out") }?;
        *out = 0;
        // SAFETY: per this function's contract.
        let dir = unsafe { in_str(dir, "dir") }?;
        // SAFETY: a state directory's files are written only by rename (its writers,
        // `repute update` and `StateDir`, do nothing else), as the call's contract says.
        let engine =
            unsafe { Engine::open_state_dir(Path::new(dir)) }.map_err(|e| prefix(e.into(), dir))?;
        *out = Registry::global().insert(Object::Engine(engine))?;
        Ok(())
    })
}

/// Closes an engine handle or a pinned view. Calls running on it finish first; later use is
/// `REPUTE_ERROR_INVALID_HANDLE`. A snapshot handle is refused and stays open.
#[no_mangle]
pub extern "C" fn repute_engine_close(engine: repute_engine) -> repute_result {
    boundary("repute_engine_close", || {
        Registry::global().remove(
            engine,
            |o| matches!(o, Object::Engine(_) | Object::Pinned(_)),
            "repute_engine_close",
        )
    })
}

/// Re-reads the engine's state directory and swaps in the set in force when it changed
/// (layers that stay are reused). `*swapped` (when not NULL) gets 1 when a new view was
/// swapped in, 0 when nothing changed. Lookups running meanwhile finish on the old view.
/// On failure (`REPUTE_ERROR_UPDATE`) the engine keeps its view and the failure shows in
/// `repute_engine_status_json`'s `last_update`. `REPUTE_ERROR_INVALID_ARGUMENT` for an
/// engine not opened from a state directory, or a pinned view.
///
/// # Safety
///
/// `swapped` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn repute_engine_reload(
    engine: repute_engine,
    swapped: *mut i32,
) -> repute_result {
    boundary("repute_engine_reload", || {
        // SAFETY: per this function's contract.
        let mut swapped = unsafe { swapped.as_mut() };
        if let Some(s) = swapped.as_deref_mut() {
            *s = 0;
        }
        with_engine(engine, |e| {
            if e.state_dir().is_none() {
                return Err(Failure::invalid(
                    "the engine was not opened from a state directory \
                     (repute_engine_open_state_dir); nothing to reload",
                ));
            }
            let changed = e
                .reload()
                .map_err(|err| Failure::new(repute_result::REPUTE_ERROR_UPDATE, err.to_string()))?;
            if let Some(s) = swapped {
                *s = i32::from(changed);
            }
            Ok(())
        })
    })
}

/// Copies the engine's status, a JSON object, into `buf` (NUL-terminated); `*needed` gets
/// its length. Keys: `sequence`, `identity`, `base`, `deltas`, `layers`, `created`,
/// `expires`, `age_seconds`, `stale`, `policy`, `policy_description`, `last_update` (as
/// `repute status` prints them). For a pinned view: `pinned` (true), `sequence`,
/// `identity`, `base`, `deltas`, `layers`, `created`, `expires`.
///
/// # Safety
///
/// `buf` is NULL or valid for `cap` bytes of writes; `needed` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn repute_engine_status_json(
    engine: repute_engine,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> repute_result {
    boundary("repute_engine_status_json", || {
        let loaded = Registry::global().load(engine)?;
        let json = match &*loaded {
            Object::Engine(e) => serde_json::to_string(&e.status()),
            Object::Pinned(view) => serde_json::to_string(&serde_json::json!({
                "pinned": true,
                "sequence": view.sequence(),
                "identity": view.identity(),
                "base": view.layers()[0].identity(),
                "deltas": view.layers()[1..].iter().map(|l| l.identity()).collect::<Vec<_>>(),
                "layers": view.layers().len(),
                "created": view.metadata().created,
                "expires": view.metadata().expires,
            })),
            other => return Err(not_engine(engine, other)),
        }
        .map_err(|e| Failure::new(repute_result::REPUTE_ERROR_OTHER, e.to_string()))?;
        // SAFETY: per this function's contract.
        unsafe { copy_out(json.as_bytes(), buf, cap, needed) }
    })
}

/// Pins the engine's current view: writes to `*out` a new handle that answers every
/// `repute_engine_*` lookup and record call from that view, whatever the engine swaps in
/// later, so record ids from a batch stay valid for `repute_engine_record`. Holding it keeps
/// the view's files mapped; close it with `repute_engine_close`. Pinning a pinned view
/// gives another handle to the same view.
///
/// # Safety
///
/// `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn repute_engine_pin(
    engine: repute_engine,
    out: *mut repute_engine,
) -> repute_result {
    boundary("repute_engine_pin", || {
        // SAFETY: per this function's contract.
        let out = unsafe { out_ref(out, "out") }?;
        *out = 0;
        let view = {
            let loaded = Registry::global().load(engine)?;
            match &*loaded {
                Object::Engine(e) => e.load_full(),
                Object::Pinned(view) => Arc::clone(view),
                other => return Err(not_engine(engine, other)),
            }
        };
        *out = Registry::global().insert(Object::Pinned(view))?;
        Ok(())
    })
}

/// Looks up any query through the engine's layers (newest first), as
/// `repute_snapshot_lookup` does on a snapshot. `out->record_id` is an engine record id.
///
/// # Safety
///
/// `query` is NULL or a NUL-terminated string; `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn repute_engine_lookup(
    engine: repute_engine,
    query: *const c_char,
    out: *mut repute_record,
) -> repute_result {
    boundary("repute_engine_lookup", || {
        // SAFETY: per this function's contract.
        let out = unsafe { out_ref(out, "out") }?;
        *out = repute_record::UNLISTED;
        // SAFETY: per this function's contract.
        let text = unsafe { in_str(query, "query") }?;
        let query = Query::parse(text)?;
        let kind = kind_code(query.kind());
        with_view(engine, |view| {
            let hit = view.lookup(&query)?;
            *out = fill(view, hit.as_ref().map(|h| &h.record), kind)?;
            Ok(())
        })
    })
}

/// Looks up `count` raw digests packed back to back, as `repute_snapshot_lookup_batch`
/// does, through the engine's layers; `out[i]` gets an engine record id or
/// `REPUTE_NO_RECORD`. The whole batch is answered from one view.
///
/// # Safety
///
/// `digests` is NULL or valid for `count * digest_len` bytes of reads; `out` is NULL or
/// valid for `out_count` writes.
#[no_mangle]
pub unsafe extern "C" fn repute_engine_lookup_batch(
    engine: repute_engine,
    digests: *const u8,
    digest_len: usize,
    count: usize,
    out: *mut u32,
    out_count: usize,
) -> repute_result {
    boundary("repute_engine_lookup_batch", || {
        // SAFETY: per this function's contract.
        let Some(batch) = (unsafe { Batch::new(digests, digest_len, count, out, out_count) })?
        else {
            return with_view(engine, |_| Ok(()));
        };
        with_view(engine, |view| {
            let mut found = [None::<Found>; CHUNK];
            batch.run(|keys, out| {
                let found = &mut found[..keys.len()];
                view.lookup_digests(keys, found);
                for (slot, f) in out.iter_mut().zip(found.iter()) {
                    *slot = match f {
                        Some(f) => encode(view, *f)?,
                        None => REPUTE_NO_RECORD,
                    };
                }
                Ok(())
            })
        })
    })
}

/// Reads a record by engine record id into `*out` (`out->kind` is `REPUTE_KIND_NONE`).
/// Ids belong to the view that returned them: use a pinned handle when the engine may
/// reload in between. `REPUTE_ERROR_INVALID_ARGUMENT` for an id the view lacks.
///
/// # Safety
///
/// `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn repute_engine_record(
    engine: repute_engine,
    record_id: u32,
    out: *mut repute_record,
) -> repute_result {
    boundary("repute_engine_record", || {
        // SAFETY: per this function's contract.
        let out = unsafe { out_ref(out, "out") }?;
        *out = repute_record::UNLISTED;
        with_view(engine, |view| {
            let record = record_by_id(view, record_id)?;
            *out = repute_record::from_record(Some(&record), repute_kind::REPUTE_KIND_NONE);
            out.record_id = record_id;
            Ok(())
        })
    })
}

/// Copies a string field of the record with this engine record id into `buf`, as
/// `repute_snapshot_record_string` does.
///
/// # Safety
///
/// `buf` is NULL or valid for `cap` bytes of writes; `needed` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn repute_engine_record_string(
    engine: repute_engine,
    record_id: u32,
    field: u32,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> repute_result {
    boundary("repute_engine_record_string", || {
        with_view(engine, |view| {
            let record = record_by_id(view, record_id)?;
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
