//! Filter work on many keys at once: digest fingerprints hashed eight to a vector, and
//! membership tested one block to a vector, with AVX-512 where the CPU has it (checked at
//! run time) and the scalar definitions everywhere else. Both forms compute the same bits;
//! this module's tests hold the wide one to the scalar one.
//!
//! The scalar definitions stay the format's: [`crate::digest::fingerprint_hash`] and
//! [`BlockedBloom::may_contain`]. These are only faster ways to evaluate them.

use super::{BlockedBloom, KeyHash};
use crate::digest::fingerprint_hash;
use crate::DigestKind;

/// The filter hashes of `fps`, fingerprints of `kind`: `out[i]` is
/// `fingerprint_hash(kind, fps[i])`.
///
/// # Panics
///
/// When `out` is shorter than `fps`.
#[inline]
pub(crate) fn fingerprint_hashes(kind: DigestKind, fps: &[u128], out: &mut [KeyHash]) {
    let out = &mut out[..fps.len()];
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        // SAFETY: the CPU has the features the function is compiled for (checked just now).
        #[allow(unsafe_code)]
        unsafe {
            avx512::fingerprint_hashes(kind, fps, out);
        }
        return;
    }
    for (h, fp) in out.iter_mut().zip(fps) {
        *h = fingerprint_hash(kind, *fp);
    }
}

impl BlockedBloom<'_> {
    /// The index of the first of `hashes` the filter certainly does not hold (`None` when
    /// it may hold them all): [`BlockedBloom::may_contain`] over a slice, with each block
    /// compared in one vector operation where the CPU can.
    #[inline]
    pub(crate) fn first_missing(&self, hashes: &[KeyHash]) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            // SAFETY: the CPU has the features the function is compiled for (checked just
            // now).
            #[allow(unsafe_code)]
            return unsafe { avx512::first_missing(self.blocks, self.count, hashes) };
        }
        hashes.iter().position(|h| !self.may_contain(*h))
    }
}

/// Keys per group of a [`MembershipCheck`].
const GROUP: usize = 64;

/// Tests a stream of digest fingerprints against a filter, in groups: one group's blocks
/// are fetched while the group before it is tested. It remembers the position of the first
/// fingerprint the filter does not hold, and stops testing there.
pub(crate) struct MembershipCheck<'f> {
    filter: BlockedBloom<'f>,
    kind: DigestKind,
    fps: [[u128; GROUP]; 2],
    hashes: [[KeyHash; GROUP]; 2],
    positions: [[usize; GROUP]; 2],
    lens: [usize; 2],
    /// The group being filled.
    now: usize,
    missing: Option<usize>,
}

impl<'f> MembershipCheck<'f> {
    pub(crate) fn new(filter: BlockedBloom<'f>, kind: DigestKind) -> Self {
        MembershipCheck {
            filter,
            kind,
            fps: [[0; GROUP]; 2],
            hashes: [[KeyHash(0); GROUP]; 2],
            positions: [[0; GROUP]; 2],
            lens: [0; 2],
            now: 0,
            missing: None,
        }
    }

    /// Adds the fingerprint at `position` (positions in increasing order).
    #[inline]
    pub(crate) fn push(&mut self, position: usize, fp: u128) {
        if self.missing.is_some() {
            return;
        }
        let (g, n) = (self.now, self.lens[self.now]);
        self.fps[g][n] = fp;
        self.positions[g][n] = position;
        self.lens[g] = n + 1;
        if n + 1 == GROUP {
            self.turn();
        }
    }

    /// Hashes the group being filled and fetches its blocks, tests the group before it,
    /// and starts the next.
    fn turn(&mut self) {
        let g = self.now;
        let n = self.lens[g];
        fingerprint_hashes(self.kind, &self.fps[g][..n], &mut self.hashes[g]);
        for h in &self.hashes[g][..n] {
            super::prefetch(self.filter.block_ptr(*h));
        }
        self.test(1 - g);
        self.now = 1 - g;
    }

    /// Tests group `g` (whose blocks were asked for a group ago) and empties it.
    fn test(&mut self, g: usize) {
        let n = std::mem::take(&mut self.lens[g]);
        if self.missing.is_none() {
            if let Some(j) = self.filter.first_missing(&self.hashes[g][..n]) {
                self.missing = Some(self.positions[g][j]);
            }
        }
    }

    /// The position of the first fingerprint the filter does not hold, after testing what
    /// is left.
    pub(crate) fn finish(mut self) -> Option<usize> {
        let last = self.now;
        self.turn();
        self.test(last);
        self.missing
    }
}

impl BlockedBloom<'_> {
    /// Bit `i` set when the filter may hold `hashes[i]`, for up to 32 hashes:
    /// [`BlockedBloom::may_contain`] on each.
    ///
    /// # Panics
    ///
    /// When given more than 32 hashes.
    #[inline]
    pub(crate) fn contains_mask(&self, hashes: &[KeyHash]) -> u32 {
        assert!(hashes.len() <= 32, "more than 32 hashes");
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            // SAFETY: the CPU has the features the function is compiled for (checked just
            // now).
            #[allow(unsafe_code)]
            return unsafe { avx512::contains_mask(self.blocks, self.count, hashes) };
        }
        let mut mask = 0;
        for (i, h) in hashes.iter().enumerate() {
            mask |= u32::from(self.may_contain(*h)) << i;
        }
        mask
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512 {
    use super::super::{block_of, KeyHash, BLOCK_BYTES};
    use crate::digest::fingerprint_hash;
    use crate::DigestKind;
    use std::arch::x86_64::*;

    /// Whether this CPU runs the functions below (`std` caches the answer).
    #[inline]
    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
    }

    /// `mix64` on eight lanes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn mix64x8(mut x: __m512i) -> __m512i {
        x = _mm512_xor_si512(x, _mm512_srli_epi64::<33>(x));
        x = _mm512_mullo_epi64(x, _mm512_set1_epi64(0xff51_afd7_ed55_8ccd_u64 as i64));
        x = _mm512_xor_si512(x, _mm512_srli_epi64::<33>(x));
        x = _mm512_mullo_epi64(x, _mm512_set1_epi64(0xc4ce_b9fe_1a85_ec53_u64 as i64));
        _mm512_xor_si512(x, _mm512_srli_epi64::<33>(x))
    }

    /// `fingerprint_hash` on `fps`, eight at a time.
    ///
    /// # Safety
    ///
    /// The CPU has AVX-512 F and DQ, and `out` is as long as `fps`.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn fingerprint_hashes(kind: DigestKind, fps: &[u128], out: &mut [KeyHash]) {
        let seed = _mm512_set1_epi64(kind.seed() as i64);
        // A `u128` is stored low half first: even words are low halves, odd ones high.
        let lo_of = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
        let hi_of = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
        let mut chunks = fps.chunks_exact(8);
        let mut at = 0;
        for chunk in &mut chunks {
            let p = chunk.as_ptr().cast::<__m512i>();
            // SAFETY: the chunk is eight `u128`s, 128 bytes, read unaligned as two vectors.
            let (a, b) = unsafe { (_mm512_loadu_si512(p), _mm512_loadu_si512(p.add(1))) };
            let lo = _mm512_permutex2var_epi64(a, lo_of, b);
            let hi = _mm512_permutex2var_epi64(a, hi_of, b);
            let h = _mm512_xor_si512(
                _mm512_add_epi64(
                    mix64x8(_mm512_xor_si512(lo, seed)),
                    _mm512_rol_epi64::<29>(hi),
                ),
                mix64x8(hi),
            );
            let dst = &mut out[at..at + 8];
            // SAFETY: `KeyHash` is a `u64` newtype, so `dst` is 64 writable bytes.
            unsafe { _mm512_storeu_si512(dst.as_mut_ptr().cast::<__m512i>(), h) };
            at += 8;
        }
        for (h, fp) in out[at..].iter_mut().zip(chunks.remainder()) {
            *h = fingerprint_hash(kind, *fp);
        }
    }

    /// Calls `each(i, may_contain)` for every one of `hashes` in order, until it returns
    /// `false`: `BlockedBloom::may_contain` over `count` blocks in `blocks`, with the bit
    /// hashes mixed eight at a time and each block compared in one operation.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn test_each(
        blocks: &[u8],
        count: u64,
        hashes: &[KeyHash],
        mut each: impl FnMut(usize, bool) -> bool,
    ) {
        // Word `i` of a block tests the six bits of the bit hash at `6 * i`.
        let shifts = _mm512_setr_epi64(0, 6, 12, 18, 24, 30, 36, 42);
        let low6 = _mm512_set1_epi64(63);
        let one = _mm512_set1_epi64(1);
        let golden = _mm512_set1_epi64(0x9e37_79b9_7f4a_7c15_u64 as i64);
        for (c, chunk) in hashes.chunks(8).enumerate() {
            let mut lanes = [0u64; 8];
            for (l, h) in lanes.iter_mut().zip(chunk) {
                *l = h.0;
            }
            // SAFETY: `lanes` and `bits` are 64 readable and writable bytes each.
            let bit_hashes = unsafe {
                let v = _mm512_loadu_si512(lanes.as_ptr().cast::<__m512i>());
                let mut bits = [0u64; 8];
                _mm512_storeu_si512(
                    bits.as_mut_ptr().cast::<__m512i>(),
                    mix64x8(_mm512_xor_si512(v, golden)),
                );
                bits
            };
            for (j, h) in chunk.iter().enumerate() {
                let at = block_of(*h, count) * BLOCK_BYTES;
                // A block out of bounds may hold anything, as `may_contain` says.
                let held = match blocks.get(at..at + BLOCK_BYTES) {
                    None => true,
                    Some(block) => {
                        // SAFETY: `block` is 64 readable bytes.
                        let words = unsafe { _mm512_loadu_si512(block.as_ptr().cast::<__m512i>()) };
                        let positions = _mm512_and_si512(
                            _mm512_srlv_epi64(_mm512_set1_epi64(bit_hashes[j] as i64), shifts),
                            low6,
                        );
                        let missing = _mm512_andnot_si512(words, _mm512_sllv_epi64(one, positions));
                        _mm512_test_epi64_mask(missing, missing) == 0
                    }
                };
                if !each(c * 8 + j, held) {
                    return;
                }
            }
        }
    }

    /// `BlockedBloom::first_missing` over `count` blocks in `blocks`.
    ///
    /// # Safety
    ///
    /// The CPU has AVX-512 F and DQ.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn first_missing(
        blocks: &[u8],
        count: u64,
        hashes: &[KeyHash],
    ) -> Option<usize> {
        let mut first = None;
        test_each(blocks, count, hashes, |i, held| {
            if !held {
                first = Some(i);
            }
            held
        });
        first
    }

    /// `BlockedBloom::contains_mask` over `count` blocks in `blocks`.
    ///
    /// # Safety
    ///
    /// The CPU has AVX-512 F and DQ, and `hashes` holds at most 32.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn contains_mask(blocks: &[u8], count: u64, hashes: &[KeyHash]) -> u32 {
        let mut mask = 0u32;
        test_each(blocks, count, hashes, |i, held| {
            mask |= u32::from(held) << i;
            true
        });
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{mix64, BloomBuilder};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn wide_hashes_agree_with_the_scalar_definition(
            fps in proptest::collection::vec(any::<u128>(), 0..40),
            kind in 0usize..3,
        ) {
            let kind = DigestKind::ALL[kind];
            let mut out = vec![KeyHash(0); fps.len()];
            fingerprint_hashes(kind, &fps, &mut out);
            for (h, fp) in out.iter().zip(&fps) {
                prop_assert_eq!(*h, fingerprint_hash(kind, *fp));
            }
        }

        #[test]
        fn first_missing_and_contains_mask_agree_with_may_contain(
            inserted in proptest::collection::vec(any::<u64>(), 1..200),
            probes in proptest::collection::vec(any::<u64>(), 0..60),
            blocks in 1u64..8,
        ) {
            let mut b = BloomBuilder::with_blocks(blocks, 16);
            for k in &inserted {
                b.insert(KeyHash(*k));
            }
            let section = b.into_section();
            let f = BlockedBloom::parse(&section).unwrap();
            // Inserted keys mixed with probes: each prefix's answer is the oracle's.
            let hashes: Vec<KeyHash> = probes
                .iter()
                .zip(inserted.iter().cycle())
                .flat_map(|(p, k)| [KeyHash(*k), KeyHash(*p)])
                .collect();
            for end in 0..=hashes.len() {
                let slice = &hashes[..end];
                prop_assert_eq!(
                    f.first_missing(slice),
                    slice.iter().position(|h| !f.may_contain(*h))
                );
            }
            for chunk in hashes.chunks(32) {
                let mut oracle = 0u32;
                for (i, h) in chunk.iter().enumerate() {
                    oracle |= u32::from(f.may_contain(*h)) << i;
                }
                prop_assert_eq!(f.contains_mask(chunk), oracle);
            }
            let members: Vec<KeyHash> = inserted.iter().map(|k| KeyHash(*k)).collect();
            prop_assert_eq!(f.first_missing(&members), None);
        }
    }

    #[test]
    fn a_short_body_holds_everything_as_may_contain_says() {
        let section = BloomBuilder::with_blocks(4, 16).into_section();
        let f = BlockedBloom::parse(&section).unwrap();
        // Four blocks claimed over two blocks' bytes: keys of the missing blocks pass.
        let short = BlockedBloom::from_parts(&f.body()[..2 * 64], 4);
        let hashes: Vec<KeyHash> = (0..64).map(|i| KeyHash(mix64(i))).collect();
        assert_eq!(
            short.first_missing(&hashes),
            hashes.iter().position(|h| !short.may_contain(*h))
        );
        assert!(hashes.iter().any(|h| !short.may_contain(*h)));
        for chunk in hashes.chunks(32) {
            let oracle = chunk
                .iter()
                .enumerate()
                .map(|(i, h)| u32::from(short.may_contain(*h)) << i)
                .sum::<u32>();
            assert_eq!(short.contains_mask(chunk), oracle);
        }
    }
}
