//! Batched digest lookups: a software pipeline of prefetches over groups of keys, below
//! optional layers that see each key first.

use super::Snapshot;
use crate::filter::{fingerprint_hashes, prefetch, FilterProbe, KeyHash};
use crate::{Digest, DigestKind, RecordId};

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

impl<D: AsRef<[u8]>> Snapshot<D> {
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
                if !O::ACTIVE && group.filtered {
                    // The filter alone: all the group's blocks tested at once.
                    live = filter.contains_mask(&group.hashes[..group.len]);
                    for i in 0..group.len {
                        if live & (1 << i) != 0 {
                            let kind = group.kinds[i] as usize % 3;
                            prefetch(tables[kind].index_ptr(group.fps[i]));
                        }
                    }
                } else {
                    for i in 0..group.len {
                        let kind = group.kinds[i] as usize % 3;
                        if O::ACTIVE {
                            let answer = overlay.decide(
                                DigestKind::ALL[kind],
                                group.fps[i],
                                group.hashes[i],
                            );
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
                let n = keys.len();
                group.len = n;
                group.filtered = !bypass;
                for (i, d) in keys.iter().enumerate() {
                    group.fps[i] = d.fingerprint();
                    group.kinds[i] = d.kind().index() as u8;
                }
                if O::ACTIVE || !bypass {
                    let first = group.kinds[0];
                    if group.kinds[..n].iter().all(|k| *k == first) {
                        // One kind (the usual batch): hashed several at a time.
                        let kind = DigestKind::ALL[first as usize % 3];
                        fingerprint_hashes(kind, &group.fps[..n], &mut group.hashes);
                    } else {
                        for i in 0..n {
                            let kind = DigestKind::ALL[group.kinds[i] as usize % 3];
                            group.hashes[i] = crate::digest::fingerprint_hash(kind, group.fps[i]);
                        }
                    }
                    for hash in &group.hashes[..n] {
                        overlay.prefetch(*hash);
                        if !bypass {
                            prefetch(filter.block_ptr(*hash));
                        }
                    }
                }
                if bypass {
                    for i in 0..n {
                        let kind = group.kinds[i] as usize % 3;
                        prefetch(tables[kind].index_ptr(group.fps[i]));
                    }
                }
            }
        }
    }
}
