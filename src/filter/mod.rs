//! The cache-line-blocked bloom filter that sits in front of every table.
//!
//! Every key (digest fingerprint or URL expression) is first reduced to a 64-bit
//! [`KeyHash`]. The filter is an array of 64-byte blocks; a key selects one block from its
//! hash's high bits and sets one bit in each of the block's eight 64-bit words (a "split
//! block" bloom filter). A membership test is therefore one cache line read and eight
//! independent AND/compare operations, with no branches. At 16 bits per key the false
//! positive rate is about 0.1% (measured in this module's tests).
//!
//! Section layout (`filter`): `block count: u64`, `bits per key ×1000: u32`, 52 zero bytes,
//! then the blocks.

use crate::format::{read_u32, read_u64};
use crate::{Error, Result};

mod wide;
pub(crate) use wide::{fingerprint_hashes, MembershipCheck};

/// Bytes per block: one cache line.
pub const BLOCK_BYTES: usize = 64;
/// Filter section header size.
pub const HEADER_BYTES: usize = 64;
/// Default bits per key.
pub const DEFAULT_BITS_PER_KEY: u32 = 16;

/// A key's 64-bit hash, the input to the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyHash(pub u64);

/// Final mixer of MurmurHash3: a bijection on `u64` with full avalanche.
#[inline]
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

#[inline]
fn block_of(hash: KeyHash, blocks: u64) -> usize {
    ((hash.0 as u128 * blocks as u128) >> 64) as usize
}

#[inline(always)]
fn masks(hash: KeyHash) -> [u64; 8] {
    // The block index uses the high bits (multiply-shift); the bit positions come from a
    // second mix so that they are independent of the block choice.
    let h = mix64(hash.0 ^ 0x9e37_79b9_7f4a_7c15);
    let mut m = [0u64; 8];
    for (i, word) in m.iter_mut().enumerate() {
        *word = 1u64 << ((h >> (i * 6)) & 63);
    }
    m
}

/// A key's hash with the bits it tests in a block: what every filter probe of the key
/// needs, computed once when one key is tested against several filters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FilterProbe {
    hash: KeyHash,
    masks: [u64; 8],
}

impl FilterProbe {
    #[inline(always)]
    pub(crate) fn new(hash: KeyHash) -> FilterProbe {
        FilterProbe {
            hash,
            masks: masks(hash),
        }
    }

    /// The key's hash.
    #[inline(always)]
    pub(crate) fn hash(&self) -> KeyHash {
        self.hash
    }
}

/// A key's three bits in its [`WordBloom`] word: from the hash's low 18 bits, independent of
/// the word its high bits choose (for any filter under 2^46 words).
#[inline(always)]
fn word_bits(hash: KeyHash) -> u64 {
    let h = hash.0;
    1 << (h & 63) | 1 << ((h >> 6) & 63) | 1 << ((h >> 12) & 63)
}

/// A register-blocked bloom filter in memory: each key sets three bits of one 64-bit word,
/// so a test is one load and one compare. At 16 bits per key its false positive rate is
/// about 1% (this module's tests measure it), against 0.1% for [`BlockedBloom`], for a
/// fraction of the work (no bit masks to compute): it suits a small filter in front of other
/// filters, like the one an engine view keeps over all its deltas' keys. It takes the same
/// [`KeyHash`], and it is never written to a file.
#[derive(Clone)]
pub(crate) struct WordBloom {
    words: Vec<u64>,
}

#[inline(always)]
fn word_of(hash: KeyHash, words: usize) -> usize {
    ((hash.0 as u128 * words as u128) >> 64) as usize
}

impl WordBloom {
    /// An empty filter sized for `keys` keys at `bits_per_key`.
    pub(crate) fn new(keys: usize, bits_per_key: u32) -> WordBloom {
        let bits = keys.max(1).saturating_mul(bits_per_key.max(1) as usize);
        WordBloom {
            words: vec![0; bits.div_ceil(64)],
        }
    }

    /// Size in bytes.
    pub(crate) fn size_bytes(&self) -> usize {
        self.words.len() * 8
    }

    /// Adds a key.
    #[inline]
    pub(crate) fn insert(&mut self, hash: KeyHash) {
        let at = word_of(hash, self.words.len());
        if let Some(w) = self.words.get_mut(at) {
            *w |= word_bits(hash);
        }
    }

    /// The address of the word a hash selects, for prefetching.
    #[inline(always)]
    pub(crate) fn word_ptr(&self, hash: KeyHash) -> *const u8 {
        let at = word_of(hash, self.words.len());
        self.words
            .get(at..)
            .map_or(self.words.as_ptr(), <[u64]>::as_ptr)
            .cast()
    }

    /// Whether the key may be present (`false` means certainly absent).
    #[inline(always)]
    pub(crate) fn may_contain(&self, hash: KeyHash) -> bool {
        let bits = word_bits(hash);
        let word = self
            .words
            .get(word_of(hash, self.words.len()))
            .copied()
            .unwrap_or(u64::MAX);
        word & bits == bits
    }
}

/// A read-only view of a filter inside a snapshot.
#[derive(Debug, Clone, Copy, Default)]
pub struct BlockedBloom<'a> {
    blocks: &'a [u8],
    count: u64,
}

impl<'a> BlockedBloom<'a> {
    /// Validates the section header against its length (O(1)).
    pub fn parse(section: &'a [u8]) -> Result<Self> {
        let count =
            read_u64(section, 0).ok_or_else(|| Error::malformed("filter", "missing header"))?;
        let _bits = read_u32(section, 8);
        let body = section.len().saturating_sub(HEADER_BYTES) as u64;
        if count == 0 || count.checked_mul(BLOCK_BYTES as u64) != Some(body) {
            return Err(Error::malformed(
                "filter",
                format!("{count} blocks do not match a body of {body} bytes"),
            ));
        }
        Ok(BlockedBloom {
            blocks: &section[HEADER_BYTES..],
            count,
        })
    }

    /// The blocks' bytes, for rebuilding the view with [`BlockedBloom::from_parts`].
    pub(crate) fn body(&self) -> &'a [u8] {
        self.blocks
    }

    /// Rebuilds a view from the body and block count of one taken by [`BlockedBloom::parse`],
    /// without validation. Reads stay bounds-checked: a body shorter than `count` blocks
    /// (which `parse` rules out) makes [`BlockedBloom::may_contain`] answer `true`, never
    /// panic.
    #[inline]
    pub(crate) fn from_parts(blocks: &'a [u8], count: u64) -> Self {
        BlockedBloom { blocks, count }
    }

    /// Number of 64-byte blocks.
    pub fn blocks(&self) -> u64 {
        self.count
    }

    /// Size of the filter body in bytes.
    pub fn size_bytes(&self) -> usize {
        self.blocks.len()
    }

    /// The address of the block a hash selects, for prefetching.
    #[inline]
    pub fn block_ptr(&self, hash: KeyHash) -> *const u8 {
        let at = block_of(hash, self.count) * BLOCK_BYTES;
        self.blocks
            .get(at..)
            .map_or(self.blocks.as_ptr(), <[u8]>::as_ptr)
    }

    /// Whether the key may be present (`false` means certainly absent).
    #[inline(always)]
    pub fn may_contain(&self, hash: KeyHash) -> bool {
        self.may_contain_probe(&FilterProbe::new(hash))
    }

    /// [`BlockedBloom::may_contain`] with the bit masks computed beforehand, for testing one
    /// key against several filters (the layers of an engine view).
    #[inline(always)]
    pub(crate) fn may_contain_probe(&self, probe: &FilterProbe) -> bool {
        let at = block_of(probe.hash, self.count) * BLOCK_BYTES;
        let Some(block) = self.blocks.get(at..at + BLOCK_BYTES) else {
            return true;
        };
        let mut missing = 0u64;
        for (want, word) in probe.masks.iter().zip(block.chunks_exact(8)) {
            let word = u64::from_le_bytes(word.try_into().unwrap_or([0xff; 8]));
            missing |= want & !word;
        }
        missing == 0
    }
}

/// Builds a filter for a known number of keys.
#[derive(Debug)]
pub struct BloomBuilder {
    words: Vec<u64>,
    count: u64,
    bits_per_key: u32,
}

impl BloomBuilder {
    /// A filter sized for `keys` keys at `bits_per_key`.
    pub fn new(keys: u64, bits_per_key: u32) -> Self {
        let bits = keys.max(1).saturating_mul(bits_per_key.max(1) as u64);
        let count = bits.div_ceil(BLOCK_BYTES as u64 * 8).max(1);
        BloomBuilder {
            words: vec![0; count as usize * 8],
            count,
            bits_per_key,
        }
    }

    /// A filter of exactly `blocks` blocks (a merge reproducing a filter written earlier
    /// uses its size).
    pub fn with_blocks(blocks: u64, bits_per_key: u32) -> Self {
        let count = blocks.max(1);
        BloomBuilder {
            words: vec![0; count as usize * 8],
            count,
            bits_per_key,
        }
    }

    /// Adds a key.
    #[inline]
    pub fn insert(&mut self, hash: KeyHash) {
        let b = block_of(hash, self.count) * 8;
        for (i, m) in masks(hash).iter().enumerate() {
            self.words[b + i] |= m;
        }
    }

    /// Adds many keys, prefetching their blocks first: inserts land in random cache lines,
    /// so overlapping the misses is several times faster than one insert after another.
    pub fn insert_batch(&mut self, hashes: &[KeyHash]) {
        for chunk in hashes.chunks(32) {
            for h in chunk {
                let b = block_of(*h, self.count) * 8;
                prefetch(self.words[b..].as_ptr().cast());
            }
            for h in chunk {
                self.insert(*h);
            }
        }
    }

    /// The section's bytes.
    pub fn into_section(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES + self.words.len() * 8);
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&(self.bits_per_key * 1000).to_le_bytes());
        out.resize(HEADER_BYTES, 0);
        for w in &self.words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// Hints the CPU to load the cache line at `ptr`. Never faults, whatever the address.
#[inline(always)]
pub fn prefetch(ptr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: `_mm_prefetch` is a hint; it never dereferences in a way that can fault, and SSE
    // is part of the x86_64 baseline, so the target feature is always present.
    unsafe {
        std::arch::x86_64::_mm_prefetch(ptr.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_low_false_positive_rate() {
        let n = 200_000u64;
        let mut b = BloomBuilder::new(n, DEFAULT_BITS_PER_KEY);
        for i in 0..n {
            b.insert(KeyHash(mix64(i)));
        }
        let section = b.into_section();
        let f = BlockedBloom::parse(&section).unwrap();
        for i in 0..n {
            assert!(f.may_contain(KeyHash(mix64(i))), "false negative for {i}");
        }
        let probes = 1_000_000u64;
        let fp = (n..n + probes)
            .filter(|i| f.may_contain(KeyHash(mix64(*i))))
            .count();
        let rate = fp as f64 / probes as f64;
        // Split-block bloom at 16 bits/key: about 0.1%; allow statistical slack.
        assert!(rate < 0.0015, "false positive rate {rate}");
    }

    #[test]
    fn word_bloom_has_no_false_negatives_and_about_one_percent_false_positives() {
        let n = 100_000u64;
        let mut f = WordBloom::new(n as usize, DEFAULT_BITS_PER_KEY);
        for i in 0..n {
            f.insert(KeyHash(mix64(i)));
        }
        for i in 0..n {
            assert!(f.may_contain(KeyHash(mix64(i))));
        }
        let probes = 1_000_000u64;
        let fp = (n..n + probes)
            .filter(|i| f.may_contain(KeyHash(mix64(*i))))
            .count();
        let rate = fp as f64 / probes as f64;
        assert!(rate < 0.015, "false positive rate {rate}");
    }

    #[test]
    fn parse_rejects_bad_sizes() {
        assert!(BlockedBloom::parse(&[]).is_err());
        let mut s = BloomBuilder::new(10, 16).into_section();
        s.pop();
        assert!(BlockedBloom::parse(&s).is_err());
        let mut s = BloomBuilder::new(10, 16).into_section();
        s[0..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(BlockedBloom::parse(&s).is_err());
    }
}
