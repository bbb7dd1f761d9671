//! The URL/domain FST: expression keys (reversed host order) to record ids.
//!
//! The `fst` crate trusts its input: a damaged FST can panic inside it, and a cyclic forged
//! one could make a full traversal run forever or match every key. So the snapshot hands
//! these bytes to `fst` only after their section checksum, the FST's own CRC and a walk of
//! its whole structure ([`super::structure`]: bounds, acyclicity, outputs in range) have
//! passed. On bytes that pass, `fst` has no panic path; every call into it is still wrapped
//! in `catch_unwind` as a last line of defence, and traversals are bounded by an automaton
//! that stops at the longest possible key and at a step budget.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use fst::{Automaton, IntoStreamer, Streamer};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::filter::KeyHash;
use crate::url::canonical::MAX_URL_LEN;
use crate::{Error, RecordId, Result};

const URL_SEED: u64 = 0x7572_6c5f_6578_7072;
/// No stored key is longer than this (a canonical URL plus escaping headroom).
const MAX_KEY_LEN: usize = MAX_URL_LEN * 3 + 64;

/// The filter hash of an expression key.
#[inline]
pub fn expression_hash(key: &[u8]) -> KeyHash {
    KeyHash(xxh3_64_with_seed(key, URL_SEED))
}

/// Runs `f`, turning a panic inside the `fst` crate into `None`.
fn guard<T>(f: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(f)).ok()
}

/// Accepts every key, but prunes paths longer than any stored key could be and stops
/// exploring once a step budget is spent.
struct Bounded {
    steps: Cell<u64>,
    budget: u64,
}

impl Automaton for Bounded {
    type State = usize;

    fn start(&self) -> usize {
        0
    }

    fn is_match(&self, _: &usize) -> bool {
        true
    }

    fn can_match(&self, depth: &usize) -> bool {
        *depth <= MAX_KEY_LEN && self.steps.get() < self.budget
    }

    fn accept(&self, depth: &usize, _: u8) -> usize {
        self.steps.set(self.steps.get() + 1);
        depth + 1
    }
}

/// A view of the FST section. Only ever built over bytes that passed their checksum.
#[derive(Debug, Clone, Copy)]
pub struct UrlTable<'a> {
    bytes: &'a [u8],
}

impl<'a> UrlTable<'a> {
    /// Wraps FST bytes whose section checksum has been verified.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        UrlTable { bytes }
    }

    /// Checks the FST's own header and CRC, then walks its structure: every node in bounds,
    /// no cycle, every record id below `records`, no key longer than any stored key can be.
    /// O(size of the FST) in time and memory.
    pub(crate) fn check(bytes: &[u8], records: u32) -> Result<()> {
        let malformed = |e: String| Error::malformed("url fst", e);
        guard(|| {
            let map = fst::Map::new(bytes).map_err(|e| malformed(e.to_string()))?;
            map.as_fst().verify().map_err(|e| malformed(e.to_string()))
        })
        .unwrap_or_else(|| Err(malformed("unreadable FST".into())))?;
        super::structure::check_structure(bytes, records, MAX_KEY_LEN).map(|_| ())
    }

    fn map(&self) -> Option<fst::Map<&'a [u8]>> {
        guard(|| fst::Map::new(self.bytes).ok()).flatten()
    }

    /// The record id stored under `key`.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<RecordId> {
        self.reader()?.get(key)
    }

    /// A reader for several lookups, which reads the FST's header once.
    pub(crate) fn reader(&self) -> Option<UrlReader<'a>> {
        self.map().map(|map| UrlReader { map })
    }

    /// Number of entries, as the FST declares it.
    pub fn len(&self) -> usize {
        self.map().map_or(0, |m| m.len())
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every (key, record id), in key order.
    ///
    /// # Errors
    ///
    /// When the FST is inconsistent: a panic inside `fst`, more entries than it declares,
    /// or a traversal that exceeds its budget.
    pub fn entries(&self) -> Result<Vec<(Vec<u8>, RecordId)>> {
        let mut out = Vec::with_capacity(self.len().min(1 << 24));
        self.for_each(|key, id| {
            out.push((key.to_vec(), id));
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `visit` with every (key, record id), in key order, without allocating per key.
    ///
    /// # Errors
    ///
    /// As [`UrlTable::entries`], or the first error `visit` returns.
    pub fn for_each(&self, mut visit: impl FnMut(&[u8], RecordId) -> Result<()>) -> Result<()> {
        let malformed = |e: &str| Error::malformed("url fst", e);
        let Some(map) = self.map() else {
            return Err(malformed("unreadable FST"));
        };
        let declared = map.len();
        // A valid FST's traversal visits each key's bytes once: budget generously above that.
        let budget = (declared as u64 + 1)
            .saturating_mul(MAX_KEY_LEN as u64)
            .min(1 << 40);
        let automaton = Bounded {
            steps: Cell::new(0),
            budget,
        };
        let result = guard(|| {
            let mut seen = 0usize;
            let mut stream = map.search(&automaton).into_stream();
            while let Some((k, v)) = stream.next() {
                if seen >= declared {
                    return Err(malformed("more entries than the FST declares"));
                }
                seen += 1;
                let id = u32::try_from(v).map_err(|_| malformed("record id out of range"))?;
                visit(k, RecordId(id))?;
            }
            Ok(seen)
        });
        let seen = result.unwrap_or_else(|| Err(malformed("unreadable FST")))?;
        if automaton.steps.get() >= budget {
            return Err(malformed("traversal exceeded its budget (cyclic FST?)"));
        }
        if seen != declared {
            return Err(malformed("fewer entries than the FST declares"));
        }
        Ok(())
    }
}

/// Lookups in one [`UrlTable`], its FST header read once ([`UrlTable::reader`]).
pub(crate) struct UrlReader<'a> {
    map: fst::Map<&'a [u8]>,
}

impl UrlReader<'_> {
    /// The record id stored under `key`.
    #[inline]
    pub(crate) fn get(&self, key: &[u8]) -> Option<RecordId> {
        guard(|| self.map.get(key))
            .flatten()
            .and_then(|v| u32::try_from(v).ok())
            .map(RecordId)
    }
}
