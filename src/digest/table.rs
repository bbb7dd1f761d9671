//! The fingerprint table, in two layouts.
//!
//! - **Home slots** (opt-in): rows of fingerprint and record id side by side, each
//!   at or just after a home slot computed from the fingerprint's top bits, in sorted order
//!   with small gaps (ordered linear probing). A hit reads the row's cache line, and often
//!   nothing else: there is no index to miss in first.
//! - **Bucket index** (the default, format v1's tables, and deltas): sorted fingerprints, a top-bits
//!   bucket index, and a column of record ids. A hit reads three lines: the index entry,
//!   the fingerprints, the record id.
//!
//! Both keep entries in fingerprint order, so exports, deltas and merges stream either.

use crate::filter::prefetch;
use crate::format::{align_up, read_u32, read_u64, SectionKind, FINGERPRINT_SIZE};
use crate::{Error, RecordId, Result};

const HEADER: usize = 64;

/// How a table finds an entry. The section kind says which (see [`crate::format`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TableLayout {
    /// Format v1: sorted fingerprints, a top-bits bucket index, a column of record ids. A
    /// hit reads three cache lines. What builds write unless asked otherwise, and what
    /// deltas always use (it is the more compact).
    #[default]
    BucketIndex,
    /// Rows of fingerprint and record id at computed home slots, sorted, with small gaps
    /// (load 0.8): a hit reads one cache line, sometimes two, at 22-25 bytes per entry.
    HomeSlots,
}

impl TableLayout {
    /// The section kind of `kind`'s table in this layout.
    pub fn section(self, kind: crate::DigestKind) -> SectionKind {
        use crate::DigestKind::{Md5, Sha1, Sha256};
        match (self, kind) {
            (TableLayout::BucketIndex, Md5) => SectionKind::Md5,
            (TableLayout::BucketIndex, Sha1) => SectionKind::Sha1,
            (TableLayout::BucketIndex, Sha256) => SectionKind::Sha256,
            (TableLayout::HomeSlots, Md5) => SectionKind::Md5Slots,
            (TableLayout::HomeSlots, Sha1) => SectionKind::Sha1Slots,
            (TableLayout::HomeSlots, Sha256) => SectionKind::Sha256Slots,
        }
    }

    /// The layout of a section kind's table: home slots for kinds 20-22, else the bucket
    /// index (the digest tables of format v1, and deltas' tombstones).
    pub fn of_section(kind: SectionKind) -> TableLayout {
        match kind {
            SectionKind::Md5Slots | SectionKind::Sha1Slots | SectionKind::Sha256Slots => {
                TableLayout::HomeSlots
            }
            _ => TableLayout::BucketIndex,
        }
    }
}

/// Header flag of a home-slot table: slot 0 holds the fingerprint zero (anywhere else,
/// a zero fingerprint marks an empty slot).
const ZERO_AT_FIRST_SLOT: u8 = 1;

/// The scalar shape of a table, kept by a snapshot so views are rebuilt by slicing alone.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TableParams {
    layout: TableLayout,
    count: usize,
    bucket_bits: u32,
    id_width: usize,
    default_id: u32,
    /// Home-slot tables: the number of home slots `m` ...
    homes: u64,
    /// ... and of slots, `m` and the overflow past the last home.
    slots: usize,
    zero_first: bool,
}
/// Buckets larger than this are binary searched instead of scanned.
const LINEAR_SCAN_MAX: usize = 16;
/// Slots a home-slot lookup scans one by one before it gallops (only crafted, clustered
/// fingerprints make runs this long).
const LINEAR_PROBE_MAX: usize = 16;
/// Slots from the home a home-slot lookup compares at once.
const PROBE_WINDOW: usize = 4;
/// Entries ahead of the one being read that a pass in order over a table asks for (2 KiB).
const READ_AHEAD: usize = 128;

/// A read-only view of one digest kind's table inside a snapshot.
#[derive(Debug, Clone, Copy)]
pub struct FingerprintTable<'a> {
    name: &'static str,
    layout: TableLayout,
    index: &'a [u8],
    /// Bucket index: the fingerprints. Home slots: the rows.
    fingerprints: &'a [u8],
    ids: &'a [u8],
    count: usize,
    bucket_bits: u32,
    id_width: usize,
    default_id: u32,
    homes: u64,
    slots: usize,
    /// Bytes per row of a home-slot table: fingerprint and record id.
    row: usize,
    zero_first: bool,
}

/// The home slot of `fp` among `homes`: its top 64 bits scaled to the slot count, so homes
/// follow fingerprint order.
#[inline(always)]
fn home_of(fp: u128, homes: u64) -> usize {
    ((u128::from((fp >> 64) as u64) * u128::from(homes)) >> 64) as usize
}

#[inline]
fn bucket_of(fp: u128, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        (fp >> (128 - bits)) as usize
    }
}

impl<'a> FingerprintTable<'a> {
    /// An empty table (for a kind the snapshot has no section for).
    pub fn empty(name: &'static str) -> Self {
        Self::from_parts(name, &[], &[], &[], TableParams::default())
    }

    /// Checks the header against the section length (O(1)), for a table of `layout`.
    pub fn parse_as(name: &'static str, section: &'a [u8], layout: TableLayout) -> Result<Self> {
        match layout {
            TableLayout::BucketIndex => Self::parse(name, section),
            TableLayout::HomeSlots => Self::parse_slots(name, section),
        }
    }

    /// Checks a home-slot table's header against the section length (O(1)).
    fn parse_slots(name: &'static str, section: &'a [u8]) -> Result<Self> {
        let header =
            |at| read_u64(section, at).ok_or_else(|| Error::malformed(name, "missing header"));
        let count = header(0)?;
        let homes = header(24)?;
        let slots = header(32)?;
        let id_width = section.get(8).copied().unwrap_or(0) as usize;
        let flags = section.get(9).copied().unwrap_or(0);
        let default_id = read_u32(section, 16).unwrap_or(0);
        if section.len() < HEADER || id_width > 4 || flags & !ZERO_AT_FIRST_SLOT != 0 {
            return Err(Error::malformed(
                name,
                format!("bad header (id width {id_width}, flags {flags:#x})"),
            ));
        }
        if count > slots || homes > slots {
            return Err(Error::malformed(
                name,
                format!("{count} entries and {homes} home slots do not fit {slots} slots"),
            ));
        }
        let expected = slots
            .checked_mul(FINGERPRINT_SIZE as u64 + id_width as u64)
            .and_then(|n| n.checked_add(HEADER as u64));
        if expected != Some(section.len() as u64) {
            return Err(Error::malformed(
                name,
                format!(
                    "{slots} slots do not match a section of {} bytes",
                    section.len()
                ),
            ));
        }
        let params = TableParams {
            layout: TableLayout::HomeSlots,
            count: count as usize,
            bucket_bits: 0,
            id_width,
            default_id,
            homes,
            slots: slots as usize,
            zero_first: flags & ZERO_AT_FIRST_SLOT != 0,
        };
        Ok(Self::from_params(name, section, params))
    }

    /// Checks a bucket-index table's header against the section length (O(1)).
    pub fn parse(name: &'static str, section: &'a [u8]) -> Result<Self> {
        let count = read_u64(section, 0).ok_or_else(|| Error::malformed(name, "missing header"))?;
        let bucket_bits = section.get(8).copied().unwrap_or(0) as u32;
        let id_width = section.get(9).copied().unwrap_or(0) as usize;
        let default_id = read_u32(section, 16).unwrap_or(0);
        if section.len() < HEADER || bucket_bits > 32 || id_width > 4 {
            return Err(Error::malformed(
                name,
                format!("bad header (bucket bits {bucket_bits}, id width {id_width})"),
            ));
        }
        let index_len = ((1u64 << bucket_bits) + 1) * 4;
        let fp_at = align_up(HEADER + index_len as usize) as u64;
        let expected = count
            .checked_mul(FINGERPRINT_SIZE as u64 + id_width as u64)
            .and_then(|n| n.checked_add(fp_at));
        if expected != Some(section.len() as u64) {
            return Err(Error::malformed(
                name,
                format!(
                    "{count} entries do not match a section of {} bytes",
                    section.len()
                ),
            ));
        }
        let params = TableParams {
            layout: TableLayout::BucketIndex,
            count: count as usize,
            bucket_bits,
            id_width,
            default_id,
            ..TableParams::default()
        };
        Ok(Self::from_params(name, section, params))
    }

    /// Rebuilds a view from parameters taken by [`FingerprintTable::parse`] of the same
    /// section: slicing only, no validation.
    #[inline]
    pub(crate) fn from_params(name: &'static str, section: &'a [u8], p: TableParams) -> Self {
        if p.layout == TableLayout::HomeSlots {
            return Self::from_parts(name, &[], section.get(HEADER..).unwrap_or(&[]), &[], p);
        }
        let index_len = ((1usize << p.bucket_bits) + 1) * 4;
        let fp_at = align_up(HEADER + index_len);
        let fp_end = fp_at + p.count * FINGERPRINT_SIZE;
        Self::from_parts(
            name,
            section.get(HEADER..HEADER + index_len).unwrap_or(&[]),
            section.get(fp_at..fp_end).unwrap_or(&[]),
            section.get(fp_end..).unwrap_or(&[]),
            p,
        )
    }

    /// Rebuilds a view from the slices and parameters of one taken by
    /// [`FingerprintTable::parse`], without validation. Every read stays bounds-checked, so
    /// mismatched parts give wrong answers (`None`), never a panic.
    #[inline]
    pub(crate) fn from_parts(
        name: &'static str,
        index: &'a [u8],
        fingerprints: &'a [u8],
        ids: &'a [u8],
        p: TableParams,
    ) -> Self {
        FingerprintTable {
            name,
            layout: p.layout,
            index,
            fingerprints,
            ids,
            count: p.count,
            bucket_bits: p.bucket_bits,
            id_width: p.id_width,
            default_id: p.default_id,
            homes: p.homes,
            slots: p.slots,
            row: FINGERPRINT_SIZE + p.id_width,
            zero_first: p.zero_first,
        }
    }

    /// The bucket index, fingerprint and record id slices.
    pub(crate) fn parts(&self) -> (&'a [u8], &'a [u8], &'a [u8]) {
        (self.index, self.fingerprints, self.ids)
    }

    /// The parameters that [`FingerprintTable::from_params`] takes.
    pub(crate) fn params(&self) -> TableParams {
        TableParams {
            layout: self.layout,
            count: self.count,
            bucket_bits: self.bucket_bits,
            id_width: self.id_width,
            default_id: self.default_id,
            homes: self.homes,
            slots: self.slots,
            zero_first: self.zero_first,
        }
    }

    /// The table's layout.
    pub fn layout(&self) -> TableLayout {
        self.layout
    }

    /// Slots of a home-slot table (entries and gaps; zero for a bucket-index table).
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bucket index bits (zero for a home-slot table).
    pub fn bucket_bits(&self) -> u32 {
        self.bucket_bits
    }

    /// Bytes per record id.
    pub fn id_width(&self) -> usize {
        self.id_width
    }

    #[inline]
    fn fingerprint_at(&self, i: usize) -> u128 {
        match self
            .fingerprints
            .get(i * FINGERPRINT_SIZE..(i + 1) * FINGERPRINT_SIZE)
        {
            Some(b) => u128::from_be_bytes(b.try_into().unwrap_or([0; 16])),
            None => 0,
        }
    }

    #[inline]
    fn id_at(&self, i: usize) -> RecordId {
        self.id_from(self.ids, i * self.id_width)
    }

    /// The fingerprint in slot `s` of a home-slot table (`None` past the last slot).
    #[inline(always)]
    fn slot_fp(&self, s: usize) -> Option<u128> {
        let at = s.checked_mul(self.row)?;
        let b = self
            .fingerprints
            .get(at..at.checked_add(FINGERPRINT_SIZE)?)?;
        Some(u128::from_be_bytes(b.try_into().ok()?))
    }

    /// The record id in slot `s` of a home-slot table.
    #[inline(always)]
    fn slot_id(&self, s: usize) -> RecordId {
        self.id_from(self.fingerprints, s * self.row + FINGERPRINT_SIZE)
    }

    /// The `id_width`-byte record id at `at` in `bytes` (the table's default id when the
    /// width is zero, zero when out of bounds).
    #[inline(always)]
    fn id_from(&self, bytes: &[u8], at: usize) -> RecordId {
        let w = self.id_width;
        if w == 0 {
            return RecordId(self.default_id);
        }
        // Four bytes and a mask, not a copy of `w` (which compiles to a call), unless the id
        // is the last bytes of the slice.
        if let Some(b) = bytes.get(at..at + 4) {
            let mask = u32::MAX >> (32 - 8 * w as u32);
            return RecordId(u32::from_le_bytes(b.try_into().unwrap_or([0; 4])) & mask);
        }
        let mut b = [0u8; 4];
        if let Some(src) = bytes.get(at..at + w) {
            b[..w].copy_from_slice(src);
        }
        RecordId(u32::from_le_bytes(b))
    }

    /// Whether slot `s`, holding fingerprint `f`, holds an entry.
    #[inline(always)]
    fn occupied(&self, s: usize, f: u128) -> bool {
        f != 0 || (s == 0 && self.zero_first)
    }

    /// The home slot of `fp`.
    #[inline(always)]
    fn home(&self, fp: u128) -> usize {
        home_of(fp, self.homes)
    }

    /// Address of slot `s`'s row, for prefetching.
    #[inline(always)]
    fn row_ptr(&self, s: usize) -> *const u8 {
        self.fingerprints
            .get(s.saturating_mul(self.row)..)
            .map_or(self.fingerprints.as_ptr(), <[u8]>::as_ptr)
    }

    /// Finds `fp` in a home-slot table, starting at its home slot `h`.
    ///
    /// Entries are placed in order, each at its home or right after the entry before it, so
    /// every slot from `fp`'s home up to its entry is occupied by a smaller fingerprint.
    /// Fingerprints are unique, so an equal one anywhere is the entry: the first
    /// [`PROBE_WINDOW`] slots are compared without branches on their contents (the CPU
    /// need not wait for a row to arrive, or recover from a mispredicted branch on it,
    /// before it starts on the next lookup), and only when every one of them holds a
    /// smaller fingerprint can the entry lie further on.
    #[inline]
    fn find_slots(&self, fp: u128, h: usize) -> Option<RecordId> {
        if fp == 0 {
            return self.zero_first.then(|| self.slot_id(0));
        }
        let at = h.saturating_mul(self.row);
        if let Some(window) = self.fingerprints.get(at..at + PROBE_WINDOW * self.row) {
            let mut hit = usize::MAX;
            let mut below = true;
            for j in 0..PROBE_WINDOW {
                let b = &window[j * self.row..j * self.row + FINGERPRINT_SIZE];
                let f = u128::from_be_bytes(b.try_into().unwrap_or([0; 16]));
                hit = if f == fp { j } else { hit };
                below &= f < fp && self.occupied(h + j, f);
            }
            if hit != usize::MAX {
                return Some(self.slot_id(h + hit));
            }
            if !below {
                return None;
            }
            return self.scan_from(fp, h, h + PROBE_WINDOW);
        }
        self.scan_from(fp, h, h)
    }

    /// [`FingerprintTable::find_slots`] from slot `s` on, one slot at a time (near the end
    /// of the table, or past a full window).
    #[cold]
    fn scan_from(&self, fp: u128, h: usize, mut s: usize) -> Option<RecordId> {
        loop {
            let f = self.slot_fp(s)?;
            if f >= fp {
                return (f == fp).then(|| self.slot_id(s));
            }
            if !self.occupied(s, f) {
                return None;
            }
            s += 1;
            if s - h >= LINEAR_PROBE_MAX {
                return self.gallop(fp, s);
            }
        }
    }

    /// [`FingerprintTable::find_slots`] past a long run: "occupied and below `fp`" holds for
    /// every slot from the home up to a point and for none after it, so find that point by
    /// doubling steps and then halving.
    #[cold]
    fn gallop(&self, fp: u128, from: usize) -> Option<RecordId> {
        let below = |s: usize| {
            self.slot_fp(s)
                .is_some_and(|f| f < fp && self.occupied(s, f))
        };
        // `below` holds just before `lo`; find `hi` where it does not.
        let (mut lo, mut hi) = (from, from);
        let mut step = 1usize;
        while hi < self.slots && below(hi) {
            lo = hi + 1;
            hi = lo.saturating_add(step);
            step = step.saturating_mul(2);
        }
        let mut hi = hi.min(self.slots);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if below(mid) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        (self.slot_fp(lo) == Some(fp)).then(|| self.slot_id(lo))
    }

    /// The range of entries in the bucket of `fp` (empty when the index is out of bounds).
    #[inline]
    fn bucket_range(&self, fp: u128) -> (usize, usize) {
        let at = bucket_of(fp, self.bucket_bits) * 4;
        match self.index.get(at..at + 8) {
            Some(pair) => {
                let (s, e) = pair.split_at(4);
                let start = u32::from_le_bytes(s.try_into().unwrap_or([0; 4])) as usize;
                let end = u32::from_le_bytes(e.try_into().unwrap_or([0; 4])) as usize;
                (start, end.min(self.count))
            }
            None => (0, 0),
        }
    }

    /// Address of the bucket index entry for `fp`, for prefetching.
    /// For a home-slot table, the address of the home row itself.
    #[inline]
    pub(crate) fn index_ptr(&self, fp: u128) -> *const u8 {
        if self.layout == TableLayout::HomeSlots {
            return self.row_ptr(self.home(fp));
        }
        let at = bucket_of(fp, self.bucket_bits) * 4;
        self.index
            .get(at..)
            .map_or(self.index.as_ptr(), <[u8]>::as_ptr)
    }

    /// The bucket of `fp` as an entry range, after prefetching the cache lines its
    /// fingerprints and record ids lie in (each line once: a batch of lookups is limited by
    /// how many cache misses the core can have in flight).
    ///
    /// For a home-slot table: the home slot (as `(home, home)`), after prefetching the
    /// lines of its row and the next.
    #[inline]
    pub(crate) fn prefetch_bucket(&self, fp: u128) -> (usize, usize) {
        if self.layout == TableLayout::HomeSlots {
            let h = self.home(fp);
            let first = self.row_ptr(h);
            prefetch(first);
            let last = first.wrapping_add(PROBE_WINDOW * self.row - 1);
            if (first as usize) / 64 != (last as usize) / 64 {
                prefetch(last);
            }
            return (h, h);
        }
        let (start, end) = self.bucket_range(fp);
        if start < end {
            let base = self.fingerprints.as_ptr() as usize;
            let first = start * FINGERPRINT_SIZE;
            let last = end * FINGERPRINT_SIZE - 1;
            if let Some(s) = self.fingerprints.get(first..) {
                prefetch(s.as_ptr());
            }
            if (base + first) / 64 != (base + last) / 64 {
                if let Some(s) = self.fingerprints.get(last..) {
                    prefetch(s.as_ptr());
                }
            }
            if self.id_width > 0 {
                if let Some(s) = self.ids.get(start * self.id_width..) {
                    prefetch(s.as_ptr());
                }
            }
        }
        (start, end)
    }

    /// Finds `fp` within entries `start..end`.
    ///
    /// A bucket of up to [`LINEAR_SCAN_MAX`] entries is scanned without data-dependent
    /// branches: the loop's trip count comes from the bucket index, and the fingerprints
    /// only feed a count and a flag. So the CPU need not wait for the fingerprints to
    /// arrive (or recover from a mispredicted branch on them) before it starts on the next
    /// lookup; the one branch left, found or not, is predictable in a stream of mostly
    /// unknown (or mostly known) keys.
    ///
    /// For a home-slot table, `start` is the home slot [`FingerprintTable::prefetch_bucket`]
    /// gave.
    #[inline]
    pub(crate) fn find_in(&self, fp: u128, start: usize, end: usize) -> Option<RecordId> {
        if self.layout == TableLayout::HomeSlots {
            return self.find_slots(fp, start);
        }
        if end <= start {
            return None;
        }
        if end - start <= LINEAR_SCAN_MAX {
            let bucket = self
                .fingerprints
                .get(start * FINGERPRINT_SIZE..end * FINGERPRINT_SIZE)?;
            let mut below = 0usize;
            let mut found = false;
            for entry in bucket.chunks_exact(FINGERPRINT_SIZE) {
                let f = u128::from_be_bytes(entry.try_into().unwrap_or([0; 16]));
                below += usize::from(f < fp);
                found |= f == fp;
            }
            // Sorted entries: the match, if any, comes right after those below it.
            found.then(|| self.id_at(start + below))
        } else {
            let (mut lo, mut hi) = (start, end);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                match self.fingerprint_at(mid).cmp(&fp) {
                    std::cmp::Ordering::Less => lo = mid + 1,
                    std::cmp::Ordering::Greater => hi = mid,
                    std::cmp::Ordering::Equal => return Some(self.id_at(mid)),
                }
            }
            None
        }
    }

    /// Looks up a fingerprint.
    #[inline]
    pub fn find(&self, fp: u128) -> Option<RecordId> {
        if self.layout == TableLayout::HomeSlots {
            return self.find_slots(fp, self.home(fp));
        }
        let (start, end) = self.bucket_range(fp);
        if self.id_width > 0 {
            // The record id's line is needed right after the fingerprints': ask for both.
            prefetch(
                self.ids
                    .get(start * self.id_width..)
                    .map_or(self.ids.as_ptr(), <[u8]>::as_ptr),
            );
        }
        self.find_in(fp, start, end)
    }

    /// Iterates over the pairs whose fingerprint lies in `lo..=hi`, in order: a binary
    /// search for the first, then a scan. Range queries (a client that reveals only a
    /// digest prefix) use it.
    pub fn range(&self, lo: u128, hi: u128) -> Box<dyn Iterator<Item = (u128, RecordId)> + '_> {
        if self.layout == TableLayout::HomeSlots {
            // Entries not below `lo` lie at or after its home slot.
            let from = if lo == 0 { 0 } else { self.home(lo) };
            return Box::new(
                self.slot_entries(from)
                    .skip_while(move |(f, _)| *f < lo)
                    .take_while(move |(f, _)| *f <= hi),
            );
        }
        let (mut a, mut b) = (0, self.count);
        while a < b {
            let mid = a + (b - a) / 2;
            if self.fingerprint_at(mid) < lo {
                a = mid + 1;
            } else {
                b = mid;
            }
        }
        Box::new(
            (a..self.count)
                .map(|i| (self.fingerprint_at(i), self.id_at(i)))
                .take_while(move |(f, _)| *f <= hi),
        )
    }

    /// The entries of a home-slot table from slot `from` on, in order.
    fn slot_entries(&self, from: usize) -> impl Iterator<Item = (u128, RecordId)> + '_ {
        (from..self.slots).filter_map(|s| {
            let f = self.slot_fp(s)?;
            self.occupied(s, f).then(|| (f, self.slot_id(s)))
        })
    }

    /// Iterates over all (fingerprint, record id) pairs in order.
    pub fn iter(&self) -> TableIter<'a> {
        self.iter_positions(0..self.positions())
    }

    /// How many positions the table has: entries for a bucket-index table, slots for a
    /// home-slot one.
    pub(crate) fn positions(&self) -> usize {
        match self.layout {
            TableLayout::BucketIndex => self.count,
            TableLayout::HomeSlots => self.slots,
        }
    }

    /// The entries at positions `range` (see [`FingerprintTable::positions`]), in order: a
    /// share of the table for one thread.
    pub(crate) fn iter_positions(&self, range: std::ops::Range<usize>) -> TableIter<'a> {
        TableIter {
            table: *self,
            at: range.start,
            end: range.end.min(self.positions()),
        }
    }

    /// O(n): entries strictly increasing and each where a lookup finds it (for a
    /// bucket-index table, an index monotonic and consistent with the fingerprints; for a
    /// home-slot table, each entry at its home or right after the entry before it, and empty
    /// slots all zero), record ids below `records`.
    pub fn verify(&self, records: u32) -> Result<()> {
        if self.layout == TableLayout::HomeSlots {
            return self.verify_slots(records);
        }
        if self.is_placeholder() {
            return Ok(());
        }
        self.verify_index()?;
        self.verify_entries(records, 0..self.count, |_, _| {})?;
        self.verify_default_id(records)
    }

    /// Whether this is the placeholder for a kind the snapshot has no section for.
    pub(crate) fn is_placeholder(&self) -> bool {
        self.layout == TableLayout::BucketIndex && self.index.is_empty() && self.count == 0
    }

    /// The bucket index of a bucket-index table: monotonic, within the entries, and ending
    /// at the entry count.
    pub(crate) fn verify_index(&self) -> Result<()> {
        let buckets = 1usize << self.bucket_bits;
        let mut prev_start = 0usize;
        for b in 0..=buckets {
            let start = read_u32(self.index, b * 4).unwrap_or(u32::MAX) as usize;
            if start < prev_start || start > self.count {
                return Err(Error::malformed(
                    self.name,
                    format!("bucket index entry {b} out of order"),
                ));
            }
            prev_start = start;
        }
        if read_u32(self.index, buckets * 4) != Some(self.count as u32) {
            return Err(Error::malformed(
                self.name,
                "bucket index does not end at the entry count",
            ));
        }
        Ok(())
    }

    /// The entries at positions `range` of a bucket-index table: each greater than the one
    /// before it (the one before the range included), in the bucket the index puts it in,
    /// and naming a record below `records`. `each` sees every entry that passes, with its
    /// position, so that other checks can ride on this one read of the entries.
    ///
    /// A share of [`FingerprintTable::verify`]: over consecutive ranges covering the table,
    /// after [`FingerprintTable::verify_index`], the first error is the one a whole check
    /// meets. Over a damaged index it still ends, with an error or without.
    pub(crate) fn verify_entries(
        &self,
        records: u32,
        range: std::ops::Range<usize>,
        mut each: impl FnMut(usize, u128),
    ) -> Result<()> {
        let range = range.start.min(self.count)..range.end.min(self.count);
        let buckets = 1usize << self.bucket_bits;
        let bucket_end = |b: usize| read_u32(self.index, (b + 1) * 4).unwrap_or(0) as usize;
        // The bucket an entry-by-entry walk from the first entry would be in here (for a
        // monotonic index).
        let mut bucket = {
            let (mut lo, mut hi) = (0usize, buckets);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if bucket_end(mid) <= range.start {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        let mut prev = range.start.checked_sub(1).map(|i| self.fingerprint_at(i));
        for i in range {
            if i % 4 == 0 {
                // The entries are read in order, but over pages the hardware prefetcher
                // does not follow from one to the next: ask for the lines ahead.
                if let Some(ahead) = self.fingerprints.get((i + READ_AHEAD) * FINGERPRINT_SIZE..) {
                    prefetch(ahead.as_ptr());
                }
            }
            let fp = self.fingerprint_at(i);
            if prev.is_some_and(|p| p >= fp) {
                return Err(Error::malformed(
                    self.name,
                    format!("fingerprint {i} out of order"),
                ));
            }
            prev = Some(fp);
            let b = bucket_of(fp, self.bucket_bits);
            while bucket < buckets && bucket_end(bucket) <= i {
                bucket += 1;
            }
            if b != bucket {
                return Err(Error::malformed(
                    self.name,
                    format!("fingerprint {i} in the wrong bucket"),
                ));
            }
            if self.id_at(i).0 >= records {
                return Err(Error::malformed(
                    self.name,
                    format!("entry {i} names a missing record"),
                ));
            }
            each(i, fp);
        }
        Ok(())
    }

    /// A table without record ids names its one record by default: that record exists.
    pub(crate) fn verify_default_id(&self, records: u32) -> Result<()> {
        if self.id_width == 0 && self.count > 0 && self.default_id >= records {
            return Err(Error::malformed(
                self.name,
                "default record id out of range",
            ));
        }
        Ok(())
    }
}

impl FingerprintTable<'_> {
    fn verify_slots(&self, records: u32) -> Result<()> {
        let bad = |what: String| Err(Error::malformed(self.name, what));
        if self.slots > 0 && self.homes == 0 {
            return bad(format!("{} slots but no home slots", self.slots));
        }
        if self.zero_first && self.slot_fp(0) != Some(0) {
            return bad("slot 0 is flagged as holding fingerprint zero but does not".into());
        }
        let mut entries = 0usize;
        let mut prev: Option<(usize, u128)> = None;
        for s in 0..self.slots {
            let Some(row) = self.fingerprints.get(s * self.row..(s + 1) * self.row) else {
                return bad(format!("slot {s} lies beyond the section"));
            };
            let f = self.slot_fp(s).unwrap_or(0);
            if !self.occupied(s, f) {
                if row.iter().any(|b| *b != 0) {
                    return bad(format!("empty slot {s} is not zero"));
                }
                continue;
            }
            let home = self.home(f);
            let place = prev.map_or(home, |(p, _)| home.max(p + 1));
            if prev.is_some_and(|(_, p)| p >= f) {
                return bad(format!("fingerprint in slot {s} out of order"));
            }
            if s != place {
                return bad(format!(
                    "fingerprint in slot {s} belongs in slot {place} (its home is {home})"
                ));
            }
            if self.slot_id(s).0 >= records {
                return bad(format!("slot {s} names a missing record"));
            }
            entries += 1;
            prev = Some((s, f));
        }
        if entries != self.count {
            return bad(format!("{} entries declared, {entries} found", self.count));
        }
        let last = prev.map_or(0, |(p, _)| p + 1);
        if self.slots != last.max(self.homes as usize) {
            return bad(format!(
                "{} slots where {} home slots and the last entry need {}",
                self.slots,
                self.homes,
                last.max(self.homes as usize)
            ));
        }
        if self.id_width == 0 && self.count > 0 && self.default_id >= records {
            return bad("default record id out of range".into());
        }
        Ok(())
    }
}

/// The entries of a table in fingerprint order ([`FingerprintTable::iter`]).
#[derive(Debug, Clone)]
pub struct TableIter<'a> {
    table: FingerprintTable<'a>,
    at: usize,
    end: usize,
}

impl TableIter<'_> {
    /// The position (entry or slot) of the entry the last `next` returned.
    pub(crate) fn last_position(&self) -> usize {
        self.at.saturating_sub(1)
    }
}

impl Iterator for TableIter<'_> {
    type Item = (u128, RecordId);

    #[inline]
    fn next(&mut self) -> Option<(u128, RecordId)> {
        let t = &self.table;
        if t.layout == TableLayout::BucketIndex {
            if self.at >= self.end {
                return None;
            }
            let i = self.at;
            self.at += 1;
            return Some((t.fingerprint_at(i), t.id_at(i)));
        }
        while self.at < self.end {
            let s = self.at;
            self.at += 1;
            let f = t.slot_fp(s)?;
            if t.occupied(s, f) {
                return Some((f, t.slot_id(s)));
            }
        }
        None
    }
}

/// Sizing rules for fingerprint tables, shared by the writer and its tests.
#[derive(Debug)]
pub struct TableBuilder;

impl TableBuilder {
    /// Bucket bits for `n` entries: about four entries per bucket.
    pub fn bucket_bits(n: usize) -> u32 {
        if n < 8 {
            0
        } else {
            ((n / 4).ilog2()).min(32)
        }
    }

    /// Home slots for `n` entries: a load of 0.8. At 0.9 (20 bytes per entry with 2-byte
    /// record ids) a hit's scan reaches into a second and third line often enough to lose
    /// the layout's gain; 0.7 and 0.6 bought little more (measured with `repute bench`).
    pub fn home_slots(n: u64) -> u64 {
        (n * 5).div_ceil(4)
    }

    /// Bytes per record id for a snapshot of `records` records (when entries differ).
    pub fn id_width(records: u32) -> usize {
        match records.saturating_sub(1) {
            0..=0xff => 1,
            0x100..=0xffff => 2,
            0x1_0000..=0xff_ffff => 3,
            _ => 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::SnapshotFile;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::io::Read;

    /// The section bytes the production writer produces for sorted, deduplicated entries.
    fn section(entries: &[(u128, u32)], records: u32) -> Vec<u8> {
        section_as(entries, records, TableLayout::BucketIndex)
    }

    fn section_as(entries: &[(u128, u32)], records: u32, layout: TableLayout) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let mut out = SnapshotFile::new(tempfile::tempfile().unwrap(), 1).unwrap();
        let kind = layout.section(crate::DigestKind::Sha256);
        let mut table = match layout {
            TableLayout::BucketIndex => {
                TableWriter::begin(&mut out, kind, entries.len() as u64, dir.path())
            }
            TableLayout::HomeSlots => TableWriter::begin_slots(&mut out, kind, dir.path()),
        }
        .unwrap();
        for (fp, id) in entries {
            table.push(&mut out, *fp, *id).unwrap();
        }
        table.finish(&mut out, records).unwrap();
        let (mut file, _) = out.finish().unwrap();
        let mut bytes = Vec::new();
        std::io::Seek::rewind(&mut file).unwrap();
        file.read_to_end(&mut bytes).unwrap();
        let layout = crate::format::Layout::parse(&bytes).unwrap();
        bytes[layout.section(kind).unwrap().range()].to_vec()
    }

    /// Fingerprints spread over the whole range, clustered in a few runs (crafted keys that
    /// share their top bits make long runs of occupied slots), and zero.
    fn fingerprint() -> impl Strategy<Value = u128> {
        prop_oneof![
            4 => any::<u128>(),
            2 => (0u128..3000).prop_map(|i| i * 7),
            1 => (0u128..64).prop_map(|i| (u128::MAX / 3) + i),
            1 => Just(0u128),
            1 => Just(u128::MAX),
        ]
    }

    proptest! {
        #[test]
        fn home_slots_agree_with_a_btreemap(
            keys in prop::collection::btree_map(fingerprint(), 0u32..300, 0..1500),
            absent in prop::collection::vec(fingerprint(), 0..300),
            ranges in prop::collection::vec((fingerprint(), fingerprint()), 0..8),
            uniform in any::<bool>(),
        ) {
            let oracle: std::collections::BTreeMap<u128, u32> = if uniform {
                keys.keys().map(|k| (*k, 7)).collect()
            } else {
                keys
            };
            let entries: Vec<(u128, u32)> = oracle.iter().map(|(k, v)| (*k, *v)).collect();
            let section = section_as(&entries, 300, TableLayout::HomeSlots);
            let table = FingerprintTable::parse_as("test", &section, TableLayout::HomeSlots).unwrap();
            table.verify(300).unwrap();
            prop_assert_eq!(table.len(), oracle.len());
            prop_assert!(table.slots() >= oracle.len());
            for (k, v) in &oracle {
                prop_assert_eq!(table.find(*k), Some(RecordId(*v)));
                let (start, end) = table.prefetch_bucket(*k);
                prop_assert_eq!(table.find_in(*k, start, end), Some(RecordId(*v)));
            }
            for k in absent {
                let want = oracle.get(&k).map(|v| RecordId(*v));
                prop_assert_eq!(table.find(k), want);
                let (start, end) = table.prefetch_bucket(k);
                prop_assert_eq!(table.find_in(k, start, end), want);
            }
            let all: Vec<(u128, u32)> = table.iter().map(|(f, id)| (f, id.0)).collect();
            prop_assert_eq!(&all, &entries);
            for (a, b) in ranges {
                let (lo, hi) = (a.min(b), a.max(b));
                let got: Vec<(u128, u32)> = table.range(lo, hi).map(|(f, id)| (f, id.0)).collect();
                let want: Vec<(u128, u32)> = oracle.range(lo..=hi).map(|(k, v)| (*k, *v)).collect();
                prop_assert_eq!(got, want);
            }
            // The bucket-index layout of the same entries answers the same.
            let v1 = section_as(&entries, 300, TableLayout::BucketIndex);
            let v1 = FingerprintTable::parse("test", &v1).unwrap();
            prop_assert!(v1.iter().eq(table.iter()));
            // Shares of positions (as verify splits a table between threads) together
            // hold every entry once, in order, each at a position inside its share.
            for t in [&table, &v1] {
                let share = 1 + (entries.len() / 5).max(1) % 97;
                let mut joined = Vec::new();
                let mut last = None;
                for from in (0..t.positions()).step_by(share) {
                    let to = from + share;
                    let mut it = t.iter_positions(from..to);
                    while let Some((f, id)) = it.next() {
                        let p = it.last_position();
                        prop_assert!((from..to.min(t.positions())).contains(&p));
                        prop_assert!(last.is_none_or(|l| l < p));
                        last = Some(p);
                        joined.push((f, id.0));
                    }
                }
                prop_assert_eq!(&joined, &entries);
            }
        }

        #[test]
        fn damaged_home_slot_tables_never_panic(
            keys in prop::collection::btree_map(fingerprint(), 0u32..300, 1..200),
            at in any::<prop::sample::Index>(),
            xor in 1u8..,
            cut in any::<prop::sample::Index>(),
        ) {
            let entries: Vec<(u128, u32)> = keys.iter().map(|(k, v)| (*k, *v)).collect();
            let mut section = section_as(&entries, 300, TableLayout::HomeSlots);
            // Every truncation is refused at parse.
            let n = cut.index(section.len());
            prop_assert!(FingerprintTable::parse_as("test", &section[..n], TableLayout::HomeSlots).is_err());
            let i = at.index(section.len());
            section[i] ^= xor;
            if let Ok(t) = FingerprintTable::parse_as("test", &section, TableLayout::HomeSlots) {
                // Whatever verify says, lookups answer without panicking; when it passes,
                // every entry the table lists is found where lookups look.
                let verified = t.verify(300).is_ok();
                for k in keys.keys() {
                    let _ = t.find(*k);
                }
                if verified {
                    for (f, id) in t.iter() {
                        prop_assert_eq!(t.find(f), Some(id));
                    }
                }
                let _ = t.range(0, u128::MAX).count();
                let _ = t.iter().count();
            }
        }
    }

    #[test]
    fn out_of_range_home_slot_headers_are_refused() {
        let entries: Vec<(u128, u32)> = (1..50u128).map(|i| (i << 100, 1)).collect();
        let section = section_as(&entries, 3, TableLayout::HomeSlots);
        FingerprintTable::parse_as("test", &section, TableLayout::HomeSlots)
            .unwrap()
            .verify(3)
            .unwrap();
        for (at, value) in [(24usize, u64::MAX), (32, u64::MAX), (0, 1 << 40), (32, 1)] {
            let mut bad = section.clone();
            bad[at..at + 8].copy_from_slice(&value.to_le_bytes());
            let r = FingerprintTable::parse_as("test", &bad, TableLayout::HomeSlots);
            assert!(r.is_err(), "header field at {at} = {value} accepted");
        }
        // An entry moved off its place, with the header still consistent, fails verify.
        let mut moved = section.clone();
        let row = 16;
        let (a, b) = (HEADER + 2 * row, HEADER + 3 * row);
        let first: Vec<u8> = moved[a..a + row].to_vec();
        moved.copy_within(b..b + row, a);
        moved[b..b + row].copy_from_slice(&first);
        let t = FingerprintTable::parse_as("test", &moved, TableLayout::HomeSlots).unwrap();
        assert!(t.verify(3).is_err());
    }

    proptest! {
        #[test]
        fn agrees_with_a_hashmap(
            keys in prop::collection::hash_map(any::<u128>(), 0u32..300, 0..2000),
            absent in prop::collection::vec(any::<u128>(), 0..200),
        ) {
            let mut entries: Vec<(u128, u32)> = keys.iter().map(|(k, v)| (*k, *v)).collect();
            entries.sort_unstable();
            let section = section(&entries, 300);
            let table = FingerprintTable::parse("test", &section).unwrap();
            table.verify(300).unwrap();
            let oracle: HashMap<u128, u32> = keys;
            for (k, v) in &oracle {
                prop_assert_eq!(table.find(*k), Some(RecordId(*v)));
            }
            for k in absent {
                prop_assert_eq!(table.find(k), oracle.get(&k).map(|v| RecordId(*v)));
            }
        }
    }

    #[test]
    fn clustered_keys_fall_back_to_binary_search() {
        // Many fingerprints sharing their top bits land in one bucket.
        let entries: Vec<(u128, u32)> = (0..5000u128).map(|i| (i, 1)).collect();
        let section = section(&entries, 2);
        let table = FingerprintTable::parse("test", &section).unwrap();
        table.verify(2).unwrap();
        assert_eq!(table.id_width(), 0);
        for i in (0..5000u128).step_by(7) {
            assert_eq!(table.find(i), Some(RecordId(1)));
        }
        assert_eq!(table.find(5000), None);
    }
}

/// Streams a fingerprint table section into a snapshot file, for builds larger than memory.
///
/// Fingerprints arrive sorted and deduplicated; the bucket index and the record id width are
/// known only at the end, so the header and index are patched in, and record ids are kept in
/// a temporary file until the width is known.
#[derive(Debug)]
pub(crate) struct TableWriter {
    layout: TableLayout,
    section_at: u64,
    bits: u32,
    counts: Vec<u32>,
    count: u64,
    ids: std::io::BufWriter<std::fs::File>,
    first_id: Option<u32>,
    uniform: bool,
    last: Option<u128>,
}

impl TableWriter {
    /// Begins the section; `max_entries` (an upper bound on the entries to come) sizes the
    /// bucket index.
    pub fn begin(
        out: &mut crate::format::SnapshotFile,
        kind: crate::format::SectionKind,
        max_entries: u64,
        temp_dir: &std::path::Path,
    ) -> std::io::Result<Self> {
        Self::begin_with_bits(
            out,
            kind,
            TableBuilder::bucket_bits(max_entries as usize),
            temp_dir,
        )
    }

    /// Begins the section with a given number of bucket bits (a merge reproducing a table
    /// written earlier uses that table's).
    pub fn begin_with_bits(
        out: &mut crate::format::SnapshotFile,
        kind: crate::format::SectionKind,
        bits: u32,
        temp_dir: &std::path::Path,
    ) -> std::io::Result<Self> {
        let bits = bits.min(32);
        let section_at = out.begin(kind);
        let index_len = ((1usize << bits) + 1) * 4;
        out.zeros(align_up(HEADER + index_len) as u64)?;
        let ids = tempfile::tempfile_in(temp_dir)?;
        Ok(TableWriter {
            layout: TableLayout::BucketIndex,
            section_at,
            bits,
            counts: vec![0; 1usize << bits],
            count: 0,
            ids: std::io::BufWriter::with_capacity(1 << 20, ids),
            first_id: None,
            uniform: true,
            last: None,
        })
    }

    /// Begins a home-slot table section. Its slots depend on the entry count and record id
    /// width, known only at the end, so entries wait in a temporary file until then.
    pub fn begin_slots(
        out: &mut crate::format::SnapshotFile,
        kind: crate::format::SectionKind,
        temp_dir: &std::path::Path,
    ) -> std::io::Result<Self> {
        let section_at = out.begin(kind);
        out.zeros(HEADER as u64)?;
        let entries = tempfile::tempfile_in(temp_dir)?;
        Ok(TableWriter {
            layout: TableLayout::HomeSlots,
            section_at,
            bits: 0,
            counts: Vec::new(),
            count: 0,
            ids: std::io::BufWriter::with_capacity(1 << 20, entries),
            first_id: None,
            uniform: true,
            last: None,
        })
    }

    /// Appends one entry; fingerprints must be strictly increasing.
    pub fn push(
        &mut self,
        out: &mut crate::format::SnapshotFile,
        fp: u128,
        id: u32,
    ) -> std::io::Result<()> {
        use std::io::Write;
        if self.last.is_some_and(|l| l >= fp) {
            return Err(std::io::Error::other("fingerprints out of order"));
        }
        self.last = Some(fp);
        if self.layout == TableLayout::HomeSlots {
            self.ids.write_all(&fp.to_be_bytes())?;
        } else {
            out.write(&fp.to_be_bytes())?;
            self.counts[bucket_of(fp, self.bits)] += 1;
        }
        self.count += 1;
        match self.first_id {
            None => self.first_id = Some(id),
            Some(f) if f != id => self.uniform = false,
            Some(_) => {}
        }
        self.ids.write_all(&id.to_le_bytes())
    }

    /// Writes the record ids, patches the header and index, and ends the section.
    pub fn finish(
        self,
        out: &mut crate::format::SnapshotFile,
        records: u32,
    ) -> std::io::Result<u64> {
        use std::io::{Read, Seek};
        if self.count > u32::MAX as u64 {
            return Err(std::io::Error::other(
                "more than 4 billion entries in one table",
            ));
        }
        let width = if self.uniform {
            0
        } else {
            TableBuilder::id_width(records)
        };
        if self.layout == TableLayout::HomeSlots {
            return self.finish_slots(out, width);
        }
        if width > 0 {
            let mut ids = self.ids.into_inner().map_err(|e| e.into_error())?;
            ids.rewind()?;
            let mut reader = std::io::BufReader::with_capacity(1 << 20, ids);
            let mut chunk = vec![0u8; 4 << 16];
            let mut packed = Vec::with_capacity((chunk.len() / 4) * width);
            loop {
                let mut filled = 0;
                while filled < chunk.len() {
                    let n = reader.read(&mut chunk[filled..])?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    break;
                }
                packed.clear();
                for id in chunk[..filled].chunks_exact(4) {
                    packed.extend_from_slice(&id[..width]);
                }
                out.write(&packed)?;
                if filled < chunk.len() {
                    break;
                }
            }
        }
        let mut header = [0u8; HEADER];
        header[..8].copy_from_slice(&self.count.to_le_bytes());
        header[8] = self.bits as u8;
        header[9] = width as u8;
        let default = if self.uniform {
            self.first_id.unwrap_or(0)
        } else {
            0
        };
        header[16..20].copy_from_slice(&default.to_le_bytes());
        out.patch(self.section_at, &header)?;
        let mut index = Vec::with_capacity((self.counts.len() + 1) * 4);
        let mut start = 0u32;
        for c in &self.counts {
            index.extend_from_slice(&start.to_le_bytes());
            start += c;
        }
        index.extend_from_slice(&start.to_le_bytes());
        out.patch(self.section_at + HEADER as u64, &index)?;
        out.end()?;
        Ok(self.count)
    }

    /// Places the entries waiting in the temporary file: each at its home slot or right
    /// after the entry before it, gaps zero.
    fn finish_slots(
        self,
        out: &mut crate::format::SnapshotFile,
        width: usize,
    ) -> std::io::Result<u64> {
        use std::io::{Read, Seek};
        let row = FINGERPRINT_SIZE + width;
        let homes = TableBuilder::home_slots(self.count);
        let mut entries = self.ids.into_inner().map_err(|e| e.into_error())?;
        entries.rewind()?;
        let mut reader = std::io::BufReader::with_capacity(1 << 20, entries);
        let mut rows: Vec<u8> = Vec::with_capacity(1 << 20);
        let mut next = 0u64;
        let mut zero_first = false;
        let mut entry = [0u8; FINGERPRINT_SIZE + 4];
        for _ in 0..self.count {
            reader.read_exact(&mut entry)?;
            let fp = u128::from_be_bytes(entry[..FINGERPRINT_SIZE].try_into().unwrap_or([0; 16]));
            zero_first |= fp == 0;
            let place = (home_of(fp, homes) as u64).max(next);
            gap(out, &mut rows, (place - next) * row as u64)?;
            rows.extend_from_slice(&entry[..row]);
            next = place + 1;
            if rows.len() >= 1 << 20 {
                out.write(&rows)?;
                rows.clear();
            }
        }
        let slots = next.max(homes);
        gap(out, &mut rows, (slots - next) * row as u64)?;
        out.write(&rows)?;
        let mut header = [0u8; HEADER];
        header[..8].copy_from_slice(&self.count.to_le_bytes());
        header[8] = width as u8;
        header[9] = if zero_first { ZERO_AT_FIRST_SLOT } else { 0 };
        let default = if self.uniform {
            self.first_id.unwrap_or(0)
        } else {
            0
        };
        header[16..20].copy_from_slice(&default.to_le_bytes());
        header[24..32].copy_from_slice(&homes.to_le_bytes());
        header[32..40].copy_from_slice(&slots.to_le_bytes());
        out.patch(self.section_at, &header)?;
        out.end()?;
        Ok(self.count)
    }
}

/// Appends `bytes` zero bytes after `rows`: into the buffer when the gap is small, else
/// straight to the file (a table of clustered fingerprints can leave one long gap).
fn gap(
    out: &mut crate::format::SnapshotFile,
    rows: &mut Vec<u8>,
    bytes: u64,
) -> std::io::Result<()> {
    if bytes <= 4096 {
        rows.resize(rows.len() + bytes as usize, 0);
        return Ok(());
    }
    out.write(rows)?;
    rows.clear();
    out.zeros(bytes)
}
