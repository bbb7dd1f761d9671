//! The URL/domain FST: expression keys (reversed host order) to record ids.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::filter::KeyHash;
use crate::RecordId;

const URL_SEED: u64 = 0x7572_6c5f_6578_7072;

/// The filter hash of an expression key.
#[inline]
pub fn expression_hash(key: &[u8]) -> KeyHash {
    KeyHash(xxh3_64_with_seed(key, URL_SEED))
}

/// A view of the FST section. Only ever built over bytes that passed their checksum.
#[derive(Debug, Clone, Copy)]
pub struct UrlTable<'a> {
    bytes: &'a [u8],
}

impl<'a> UrlTable<'a> {
    /// Wraps FST bytes whose checksum has been verified.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        UrlTable { bytes }
    }

    fn map(&self) -> Option<fst::Map<&'a [u8]>> {
        fst::Map::new(self.bytes).ok()
    }

    /// The record id stored under `key`, catching any panic inside the `fst` crate (which
    /// does not validate its input) so a forged section cannot take the caller down.
    pub fn get(&self, key: &[u8]) -> Option<RecordId> {
        let map = self.map()?;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| map.get(key)))
            .ok()
            .flatten()
            .and_then(|v| u32::try_from(v).ok())
            .map(RecordId)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map().map_or(0, |m| m.len())
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every (key, record id), in key order.
    pub fn entries(&self) -> Vec<(Vec<u8>, RecordId)> {
        use fst::Streamer;
        let Some(map) = self.map() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut stream = map.stream();
        while let Some((k, v)) = stream.next() {
            out.push((k.to_vec(), RecordId(v as u32)));
        }
        out
    }
}
