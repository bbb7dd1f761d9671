//! Where a snapshot's bytes live: read into memory, memory-mapped, or copied into huge pages.

use std::fs::File;
use std::path::Path;

use super::Snapshot;
use crate::{Error, Result};

impl Snapshot<Vec<u8>> {
    /// Reads a snapshot file into memory and opens it.
    ///
    /// # Errors
    ///
    /// When the path is not a regular file, cannot be read, or does not open.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = open_regular(path)?;
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut &file, &mut data).map_err(|e| Error::io(path, e))?;
        Snapshot::open(data)
    }
}

fn open_regular(path: &Path) -> Result<File> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    File::open(path).map_err(|e| Error::io(path, e))
}

impl Snapshot<memmap2::Mmap> {
    /// Memory-maps a snapshot file and opens it. Costs microseconds at any size.
    ///
    /// # Errors
    ///
    /// When the path is not a regular file, cannot be mapped, or does not open.
    ///
    /// # Safety
    ///
    /// The file must not be truncated or modified while the snapshot (or anything borrowed
    /// from it) is alive: a truncated mapping raises `SIGBUS` and kills the process, and a
    /// rewritten one changes answers under the reader. Publish snapshots by writing a new
    /// file and renaming it over the old one (as [`crate::SnapshotBuilder::write`] does);
    /// never rewrite a published file in place.
    #[allow(unsafe_code)]
    pub unsafe fn map(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = open_regular(path)?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len == 0 {
            return Err(Error::Truncated {
                what: "header",
                needed: crate::format::HEADER_FIXED as u64,
                available: 0,
            });
        }
        // SAFETY: the caller promises the file is not truncated or modified while mapped
        // (this function's `# Safety` contract).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Snapshot::open(map)
    }
}

/// Size of a transparent huge page on x86-64 and most aarch64 kernels.
pub(super) const HUGE_PAGE: usize = 2 << 20;

/// A private, 2 MiB-aligned anonymous copy of a snapshot file, which the kernel is asked to
/// back with transparent huge pages. See [`Snapshot::load_huge_pages`].
pub struct HugePageMemory {
    map: memmap2::MmapMut,
    start: usize,
    len: usize,
    advised: bool,
}

impl HugePageMemory {
    /// `len` zero bytes in anonymous memory aligned to 2 MiB and advised (before the first
    /// touch, so that the first writes fault in huge pages) to use transparent huge pages.
    ///
    /// # Errors
    ///
    /// When that much memory cannot be mapped.
    pub(crate) fn zeroed(len: usize) -> std::io::Result<HugePageMemory> {
        let total = len
            .checked_next_multiple_of(HUGE_PAGE)
            .and_then(|n| n.checked_add(HUGE_PAGE))
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::OutOfMemory, "too large to allocate")
            })?;
        let map = memmap2::MmapMut::map_anon(total)?;
        let address = map.as_ptr() as usize;
        let start = address.next_multiple_of(HUGE_PAGE) - address;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let advised = map.advise(memmap2::Advice::HugePage).is_ok();
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let advised = false;
        Ok(HugePageMemory {
            map,
            start,
            len,
            advised,
        })
    }

    /// A copy of `bytes` in huge-page memory ([`HugePageMemory::zeroed`]).
    ///
    /// # Errors
    ///
    /// As [`HugePageMemory::zeroed`].
    pub(crate) fn copy_of(bytes: &[u8]) -> std::io::Result<HugePageMemory> {
        let mut memory = HugePageMemory::zeroed(bytes.len())?;
        memory.as_mut().copy_from_slice(bytes);
        Ok(memory)
    }

    fn as_mut(&mut self) -> &mut [u8] {
        self.map
            .get_mut(self.start..self.start + self.len)
            .unwrap_or(&mut [])
    }

    /// Whether the kernel accepted the huge page advice (`madvise(MADV_HUGEPAGE)`). Whether
    /// it actually found huge pages shows in `AnonHugePages` of `/proc/meminfo`.
    pub fn huge_pages_advised(&self) -> bool {
        self.advised
    }
}

impl std::fmt::Debug for HugePageMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugePageMemory")
            .field("len", &self.len)
            .field("advised", &self.advised)
            .finish()
    }
}

impl AsRef<[u8]> for HugePageMemory {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self.map
            .get(self.start..self.start + self.len)
            .unwrap_or(&[])
    }
}

impl Snapshot<HugePageMemory> {
    /// Reads a snapshot file into anonymous memory aligned to 2 MiB and advised to use
    /// transparent huge pages, then opens it.
    ///
    /// For large snapshots (hundreds of MB and up) random lookups spend much of their time on
    /// TLB misses with 4 KiB pages; 2 MiB pages remove most of them, at the cost of reading
    /// the whole file at load time and keeping a private copy (not shared with other
    /// processes through the page cache). Unlike [`Snapshot::map`], the copy cannot be
    /// changed under the reader, so this is safe. Where the kernel has no transparent huge
    /// pages, or refuses them, this still works, with ordinary pages.
    ///
    /// # Errors
    ///
    /// When the path is not a regular file, cannot be read, memory cannot be mapped, or the
    /// snapshot does not open.
    pub fn load_huge_pages(path: impl AsRef<Path>) -> Result<Self> {
        use std::io::Read;
        let path = path.as_ref();
        let file = open_regular(path)?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let too_big = || {
            Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::OutOfMemory, "file too large to load"),
            )
        };
        let len = usize::try_from(len).map_err(|_| too_big())?;
        let mut memory = HugePageMemory::zeroed(len).map_err(|e| Error::io(path, e))?;
        (&file)
            .read_exact(memory.as_mut())
            .map_err(|e| Error::io(path, e))?;
        Snapshot::open(memory)
    }
}
