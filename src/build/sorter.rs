//! External sorting of digest entries: sorted runs spilled to disk, then a k-way merge.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::Workers;

/// One digest key as the builder holds it: kind, 128-bit fingerprint, provisional record id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct DigestEntry {
    pub kind: u8,
    pub hi: u64,
    pub lo: u64,
    pub id: u32,
}

impl DigestEntry {
    const BYTES: usize = 21;

    pub fn fingerprint(&self) -> u128 {
        (self.hi as u128) << 64 | self.lo as u128
    }

    fn sort_key(&self) -> (u8, u64, u64) {
        (self.kind, self.hi, self.lo)
    }

    fn encode(&self, out: &mut [u8; Self::BYTES]) {
        out[0] = self.kind;
        out[1..9].copy_from_slice(&self.hi.to_be_bytes());
        out[9..17].copy_from_slice(&self.lo.to_be_bytes());
        out[17..21].copy_from_slice(&self.id.to_le_bytes());
    }

    fn decode(b: &[u8; Self::BYTES]) -> Self {
        DigestEntry {
            kind: b[0],
            hi: u64::from_be_bytes(b[1..9].try_into().unwrap_or_default()),
            lo: u64::from_be_bytes(b[9..17].try_into().unwrap_or_default()),
            id: u32::from_le_bytes(b[17..21].try_into().unwrap_or_default()),
        }
    }
}

/// Collects entries; when the buffer reaches its capacity it is sorted and spilled.
#[derive(Debug)]
pub(crate) struct RunSorter {
    buffer: Vec<DigestEntry>,
    capacity: usize,
    runs: Vec<File>,
    dir: PathBuf,
    total: u64,
    /// Whether the last compaction removed enough duplicates to try again before growing.
    compact_pays: bool,
    /// Exact duplicates dropped by compaction, per record id.
    compacted: std::collections::BTreeMap<u32, u64>,
    /// Threads that sort the buffer, when there are more than one.
    workers: Workers,
}

impl RunSorter {
    /// A sorter holding at most `memory` bytes of entries before spilling to `dir`.
    pub fn new(memory: usize, dir: &Path, workers: Workers) -> Self {
        let capacity = (memory / std::mem::size_of::<DigestEntry>()).max(1024);
        RunSorter {
            buffer: Vec::new(),
            capacity,
            runs: Vec::new(),
            dir: dir.to_path_buf(),
            total: 0,
            compact_pays: true,
            compacted: std::collections::BTreeMap::new(),
            workers,
        }
    }

    pub fn set_workers(&mut self, workers: Workers) {
        self.workers = workers;
    }

    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn spilled_runs(&self) -> usize {
        self.runs.len()
    }

    pub fn set_dir(&mut self, dir: &Path) {
        self.dir = dir.to_path_buf();
    }

    pub fn push(&mut self, entry: DigestEntry) -> io::Result<()> {
        if self.buffer.len() == self.buffer.capacity() && !self.buffer.is_empty() {
            // About to grow (or full): drop exact duplicates first, when the last time paid.
            let full = self.buffer.len() >= self.capacity;
            if full || self.compact_pays {
                let before = self.buffer.len();
                self.compact();
                // Worth doing again while it removes at least a tenth.
                self.compact_pays = self.buffer.len() * 10 <= before * 9;
            }
            if self.buffer.len() >= self.capacity {
                self.spill()?;
            }
        }
        if self.buffer.capacity() == 0 {
            self.buffer.reserve(self.capacity.min(1 << 20));
        } else if self.buffer.len() == self.buffer.capacity() {
            let room = self.capacity.saturating_sub(self.buffer.len()).max(1);
            self.buffer.reserve_exact(self.buffer.len().min(room));
        }
        self.buffer.push(entry);
        self.total += 1;
        Ok(())
    }

    /// Sorts the buffer and drops exact duplicates (same key and record id): a feed that
    /// repeats one digest a billion times holds one entry, never spills.
    fn compact(&mut self) {
        // Entries equal in every field are identical, so any sort gives the same order.
        match self.workers.pool() {
            Some(pool) => {
                let depth = pool
                    .current_num_threads()
                    .next_power_of_two()
                    .trailing_zeros();
                pool.install(|| parallel_sort(&mut self.buffer, depth));
            }
            None => self.buffer.sort_unstable(),
        }
        let before = self.buffer.len();
        let compacted = &mut self.compacted;
        self.buffer.dedup_by(|a, b| {
            let same = a == b;
            if same {
                *compacted.entry(a.id).or_default() += 1;
            }
            same
        });
        self.total -= (before - self.buffer.len()) as u64;
    }

    /// Exact duplicates merged so far (same key, same record id), per record id.
    pub fn compacted(&self) -> &std::collections::BTreeMap<u32, u64> {
        &self.compacted
    }

    fn spill(&mut self) -> io::Result<()> {
        self.compact();
        let file = tempfile::tempfile_in(&self.dir)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let mut b = [0u8; DigestEntry::BYTES];
        for e in &self.buffer {
            e.encode(&mut b);
            w.write_all(&b)?;
        }
        let mut file = w.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        self.runs.push(file);
        self.buffer.clear();
        Ok(())
    }

    /// Every entry, sorted by (kind, fingerprint); entries with equal keys are adjacent.
    /// Exact duplicates (same key and record id) within one run are merged. The sorter
    /// keeps its entries, so it can be merged again.
    pub fn sorted(&mut self) -> io::Result<Merged<'_>> {
        self.compact();
        let memory = self.buffer.iter().copied();
        let mut readers: Vec<BufReader<File>> = Vec::new();
        for run in &self.runs {
            let mut file = run.try_clone()?;
            file.rewind()?;
            readers.push(BufReader::with_capacity(1 << 18, file));
        }
        let mut merged = Merged {
            memory,
            memory_head: None,
            readers,
            heap: BinaryHeap::new(),
        };
        merged.prime()?;
        Ok(merged)
    }
}

/// Sorts `v` in place on the current pool: the median splits it in two halves (a linear
/// selection), which sort side by side, `depth` times over. Each part is sorted by the
/// standard library's sort, faster per core than a parallel merge sort, and no extra memory
/// is needed.
fn parallel_sort<T: Ord + Send>(v: &mut [T], depth: u32) {
    if depth == 0 || v.len() < 1 << 15 {
        v.sort_unstable();
        return;
    }
    let mid = v.len() / 2;
    v.select_nth_unstable(mid);
    let (low, high) = v.split_at_mut(mid);
    rayon::join(
        || parallel_sort(low, depth - 1),
        || parallel_sort(high, depth - 1),
    );
}

/// A k-way merge of the spilled runs and the in-memory remainder.
#[derive(Debug)]
pub(crate) struct Merged<'a> {
    memory: std::iter::Copied<std::slice::Iter<'a, DigestEntry>>,
    memory_head: Option<DigestEntry>,
    readers: Vec<BufReader<File>>,
    heap: BinaryHeap<Reverse<HeapItem>>,
}

/// An entry's sort key, its record id, and the run it came from.
type HeapItem = ((u8, u64, u64), u32, usize);

/// Source index of the in-memory run in the heap.
const MEMORY: usize = usize::MAX;

impl Merged<'_> {
    fn read(reader: &mut BufReader<File>) -> io::Result<Option<DigestEntry>> {
        let mut b = [0u8; DigestEntry::BYTES];
        match reader.read_exact(&mut b) {
            Ok(()) => Ok(Some(DigestEntry::decode(&b))),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn prime(&mut self) -> io::Result<()> {
        if self.readers.is_empty() {
            return Ok(());
        }
        for i in 0..self.readers.len() {
            if let Some(e) = Self::read(&mut self.readers[i])? {
                self.heap.push(Reverse((e.sort_key(), e.id, i)));
            }
        }
        if let Some(e) = self.memory.next() {
            self.heap.push(Reverse((e.sort_key(), e.id, MEMORY)));
        }
        Ok(())
    }

    /// The next entry in order.
    pub fn next_entry(&mut self) -> io::Result<Option<DigestEntry>> {
        if self.readers.is_empty() {
            return Ok(self.memory_head.take().or_else(|| self.memory.next()));
        }
        let Some(Reverse(((kind, hi, lo), id, source))) = self.heap.pop() else {
            return Ok(None);
        };
        let next = if source == MEMORY {
            self.memory.next()
        } else {
            Self::read(&mut self.readers[source])?
        };
        if let Some(e) = next {
            self.heap.push(Reverse((e.sort_key(), e.id, source)));
        }
        Ok(Some(DigestEntry { kind, hi, lo, id }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_entries_never_spill() {
        let dir = tempfile::tempdir().unwrap();
        let mut sorter = RunSorter::new(0, dir.path(), Workers::new(1)); // 1024 entries per run
        let e = |id| DigestEntry {
            kind: 0,
            hi: 7,
            lo: 9,
            id,
        };
        for i in 0..1_000_000u32 {
            sorter.push(e(i % 2)).unwrap();
        }
        assert_eq!(sorter.spilled_runs(), 0);
        assert!(sorter.buffer.capacity() <= 1024);
        let mut merged = sorter.sorted().unwrap();
        assert_eq!(merged.next_entry().unwrap(), Some(e(0)));
        assert_eq!(merged.next_entry().unwrap(), Some(e(1)));
        assert_eq!(merged.next_entry().unwrap(), None);
        assert_eq!(sorter.len(), 2);
        assert_eq!(sorter.compacted().values().sum::<u64>(), 1_000_000 - 2);
    }

    #[test]
    fn parallel_sort_sorts() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in [0usize, 1, 5, 40_000, 100_003] {
            let v: Vec<u64> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x % 1000
                })
                .collect();
            for depth in 0..4 {
                let mut got = v.clone();
                pool.install(|| parallel_sort(&mut got, depth));
                let mut expected = v.clone();
                expected.sort_unstable();
                assert_eq!(got, expected);
            }
        }
    }

    #[test]
    fn spilled_merge_equals_in_memory_sort() {
        let dir = tempfile::tempdir().unwrap();
        let mut sorter = RunSorter::new(0, dir.path(), Workers::new(1)); // capacity floor: 1024 entries per run
        let mut expected = Vec::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..10_000u32 {
            x ^= x << 7;
            x ^= x >> 9;
            let e = DigestEntry {
                kind: (x % 3) as u8,
                hi: x % 5000, // plenty of equal keys
                lo: 0,
                id: i,
            };
            expected.push(e);
            sorter.push(e).unwrap();
        }
        assert!(sorter.spilled_runs() >= 9);
        sorter.compact_pays = false;
        let mut merged = sorter.sorted().unwrap();
        let mut got = Vec::new();
        while let Some(e) = merged.next_entry().unwrap() {
            got.push(e);
        }
        expected.sort_unstable_by_key(DigestEntry::sort_key);
        let keys = |v: &[DigestEntry]| v.iter().map(DigestEntry::sort_key).collect::<Vec<_>>();
        assert_eq!(keys(&got), keys(&expected));
        let mut ids: Vec<u32> = got.iter().map(|e| e.id).collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..10_000).collect::<Vec<_>>());
    }
}
