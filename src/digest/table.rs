//! The fingerprint table: sorted 128-bit fingerprints, a top-bits bucket index, record ids.

use crate::filter::prefetch;
use crate::format::{align_up, read_u32, read_u64, FINGERPRINT_SIZE};
use crate::{Error, RecordId, Result};

const HEADER: usize = 64;

/// The scalar shape of a table, kept by a snapshot so views are rebuilt by slicing alone.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TableParams {
    count: usize,
    bucket_bits: u32,
    id_width: usize,
    default_id: u32,
}
/// Buckets larger than this are binary searched instead of scanned.
const LINEAR_SCAN_MAX: usize = 16;

/// A read-only view of one digest kind's table inside a snapshot.
#[derive(Debug, Clone, Copy)]
pub struct FingerprintTable<'a> {
    name: &'static str,
    index: &'a [u8],
    fingerprints: &'a [u8],
    ids: &'a [u8],
    count: usize,
    bucket_bits: u32,
    id_width: usize,
    default_id: u32,
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
        FingerprintTable {
            name,
            index: &[],
            fingerprints: &[],
            ids: &[],
            count: 0,
            bucket_bits: 0,
            id_width: 0,
            default_id: 0,
        }
    }

    /// Checks the header against the section length (O(1)).
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
            count: count as usize,
            bucket_bits,
            id_width,
            default_id,
        };
        Ok(Self::from_params(name, section, params))
    }

    /// Rebuilds a view from parameters taken by [`FingerprintTable::parse`] of the same
    /// section: slicing only, no validation.
    #[inline]
    pub(crate) fn from_params(name: &'static str, section: &'a [u8], p: TableParams) -> Self {
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
            index,
            fingerprints,
            ids,
            count: p.count,
            bucket_bits: p.bucket_bits,
            id_width: p.id_width,
            default_id: p.default_id,
        }
    }

    /// The bucket index, fingerprint and record id slices.
    pub(crate) fn parts(&self) -> (&'a [u8], &'a [u8], &'a [u8]) {
        (self.index, self.fingerprints, self.ids)
    }

    /// The parameters that [`FingerprintTable::from_params`] takes.
    pub(crate) fn params(&self) -> TableParams {
        TableParams {
            count: self.count,
            bucket_bits: self.bucket_bits,
            id_width: self.id_width,
            default_id: self.default_id,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bucket index bits.
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
        let w = self.id_width;
        if w == 0 {
            return RecordId(self.default_id);
        }
        let mut b = [0u8; 4];
        if let Some(src) = self.ids.get(i * w..i * w + w) {
            b[..w].copy_from_slice(src);
        }
        RecordId(u32::from_le_bytes(b))
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
    #[inline]
    pub(crate) fn index_ptr(&self, fp: u128) -> *const u8 {
        let at = bucket_of(fp, self.bucket_bits) * 4;
        self.index
            .get(at..)
            .map_or(self.index.as_ptr(), <[u8]>::as_ptr)
    }

    /// The bucket of `fp` as an entry range, after prefetching the cache lines its
    /// fingerprints and record ids lie in (each line once: a batch of lookups is limited by
    /// how many cache misses the core can have in flight).
    #[inline]
    pub(crate) fn prefetch_bucket(&self, fp: u128) -> (usize, usize) {
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
    #[inline]
    pub(crate) fn find_in(&self, fp: u128, start: usize, end: usize) -> Option<RecordId> {
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
    pub fn range(&self, lo: u128, hi: u128) -> impl Iterator<Item = (u128, RecordId)> + '_ {
        let (mut a, mut b) = (0, self.count);
        while a < b {
            let mid = a + (b - a) / 2;
            if self.fingerprint_at(mid) < lo {
                a = mid + 1;
            } else {
                b = mid;
            }
        }
        (a..self.count)
            .map(|i| (self.fingerprint_at(i), self.id_at(i)))
            .take_while(move |(f, _)| *f <= hi)
    }

    /// Iterates over all (fingerprint, record id) pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (u128, RecordId)> + '_ {
        (0..self.count).map(|i| (self.fingerprint_at(i), self.id_at(i)))
    }

    /// O(n): index monotonic and consistent with the fingerprints, fingerprints strictly
    /// increasing, record ids below `records`.
    pub fn verify(&self, records: u32) -> Result<()> {
        if self.index.is_empty() && self.count == 0 {
            // The placeholder for a kind the snapshot has no section for.
            return Ok(());
        }
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
        let mut prev: Option<u128> = None;
        let mut bucket = 0usize;
        for i in 0..self.count {
            let fp = self.fingerprint_at(i);
            if prev.is_some_and(|p| p >= fp) {
                return Err(Error::malformed(
                    self.name,
                    format!("fingerprint {i} out of order"),
                ));
            }
            prev = Some(fp);
            let b = bucket_of(fp, self.bucket_bits);
            while read_u32(self.index, (bucket + 1) * 4).unwrap_or(0) as usize <= i {
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
        }
        if self.id_width == 0 && self.count > 0 && self.default_id >= records {
            return Err(Error::malformed(
                self.name,
                "default record id out of range",
            ));
        }
        Ok(())
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
    use crate::format::{SectionKind, SnapshotFile};
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::io::Read;

    /// The section bytes the production writer produces for sorted, deduplicated entries.
    fn section(entries: &[(u128, u32)], records: u32) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let mut out = SnapshotFile::new(tempfile::tempfile().unwrap(), 1).unwrap();
        let mut table = TableWriter::begin(
            &mut out,
            SectionKind::Sha256,
            entries.len() as u64,
            dir.path(),
        )
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
        bytes[layout.section(SectionKind::Sha256).unwrap().range()].to_vec()
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
        let bits = TableBuilder::bucket_bits(max_entries as usize);
        let section_at = out.begin(kind);
        let index_len = ((1usize << bits) + 1) * 4;
        out.zeros(align_up(HEADER + index_len) as u64)?;
        let ids = tempfile::tempfile_in(temp_dir)?;
        Ok(TableWriter {
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
        out.write(&fp.to_be_bytes())?;
        self.counts[bucket_of(fp, self.bits)] += 1;
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
}
