//! Opening feed files: compression detected by magic bytes, read as a stream.
//!
//! | container | magic | read as |
//! |---|---|---|
//! | gzip (`.gz`) | `1f 8b` | every member, decompressed on the fly |
//! | Zstandard (`.zst`) | `28 b5 2f fd` | every frame, decompressed on the fly |
//! | ZIP (`.zip`) | `PK 03 04` (`PK 05 06` when empty) | the first `.csv` member (else the first file), streamed |
//! | SQLite | `SQLite format 3\0` | only by the `nsrl` format, which queries it |
//! | anything else | | plain text |
//!
//! Magic bytes decide, so a `.gz` that a download tool already decompressed still reads.
//! The file's extension, without `.gz`/`.zst`/`.zip`, names the inner format where that
//! matters (ClamAV's `.hdb` versus `.fp`). Memory stays bounded: the decoders stream, and
//! a ZIP's central directory is the only part read whole.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::rc::Rc;

/// How a feed file is packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Container {
    Plain,
    Gzip,
    Zstd,
    Zip,
    Sqlite,
}

impl Container {
    /// Reads the first bytes of `file` and rewinds it.
    ///
    /// # Errors
    ///
    /// When reading or seeking fails.
    pub(crate) fn sniff(file: &mut File) -> io::Result<Container> {
        let (container, _) = Container::peek(&mut *file)?;
        file.seek(SeekFrom::Start(0))?;
        Ok(container)
    }

    /// Reads the first bytes of a stream that cannot seek (a pipe, standard input) and
    /// returns them with what they say: the caller reads them again before the rest.
    ///
    /// # Errors
    ///
    /// When reading fails.
    pub(crate) fn peek(reader: &mut dyn Read) -> io::Result<(Container, Vec<u8>)> {
        let mut magic = [0u8; 16];
        let mut len = 0;
        while len < magic.len() {
            match reader.read(&mut magic[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok((Container::of(&magic[..len]), magic[..len].to_vec()))
    }

    /// What the first bytes of a file say it is.
    fn of(magic: &[u8]) -> Container {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Container::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Container::Zstd
        } else if magic.starts_with(b"PK\x03\x04") || magic.starts_with(b"PK\x05\x06") {
            Container::Zip
        } else if magic.starts_with(b"SQLite format 3\0") {
            Container::Sqlite
        } else {
            Container::Plain
        }
    }
}

/// The file name without a compression extension: `daily.hdb.gz` -> `daily.hdb`.
pub(crate) fn inner_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for packed in [".gz", ".zst", ".zip"] {
        let cut = name.len().saturating_sub(packed.len());
        if cut > 0 && name.is_char_boundary(cut) && name[cut..].eq_ignore_ascii_case(packed) {
            return name[..cut].to_string();
        }
    }
    name
}

/// The lower-case extension of the file inside its compression: `daily.hdb.gz` -> `hdb`.
pub(crate) fn inner_extension(path: &Path) -> String {
    match inner_name(path).rsplit_once('.') {
        Some((_, ext)) => ext.to_ascii_lowercase(),
        None => String::new(),
    }
}

/// Counts the bytes read from the file itself (before decompression), for progress.
#[derive(Debug)]
pub(crate) struct CountingReader<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R> CountingReader<R> {
    pub(crate) fn new(inner: R) -> (Self, Rc<Cell<u64>>) {
        let count = Rc::new(Cell::new(0));
        (
            CountingReader {
                inner,
                count: Rc::clone(&count),
            },
            count,
        )
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

impl<R: Seek> Seek for CountingReader<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let at = self.inner.seek(pos)?;
        self.count.set(at);
        Ok(at)
    }
}

/// Bytes a compressed feed may always expand to, whatever the ratio (small files with long
/// runs compress far better than 1000:1).
const EXPANSION_FLOOR: u64 = 16 << 20;

/// Fails the read once the decompressed bytes exceed `ratio` times the compressed bytes read
/// so far (and a 16 MiB floor): a decompression bomb ends with a clear error, not a full disk.
#[derive(Debug)]
pub(crate) struct ExpansionLimit<R> {
    inner: R,
    compressed: Rc<Cell<u64>>,
    ratio: u64,
    out: u64,
}

impl<R> ExpansionLimit<R> {
    pub(crate) fn new(inner: R, compressed: Rc<Cell<u64>>, ratio: u64) -> Self {
        ExpansionLimit {
            inner,
            compressed,
            ratio,
            out: 0,
        }
    }
}

impl<R: Read> Read for ExpansionLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        let compressed = self.compressed.get();
        let allowed = compressed.saturating_mul(self.ratio).max(EXPANSION_FLOOR);
        if self.out > allowed {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "compressed input expands more than {}:1 ({} bytes from {compressed}); \
                     a decompression bomb? (--max-expansion allows more)",
                    self.ratio, self.out
                ),
            ));
        }
        Ok(n)
    }
}

/// Picks the ZIP member to read: the first whose name ends in `.csv`, else the first file.
pub(crate) fn zip_member<R: Read + Seek>(archive: &zip::ZipArchive<R>) -> Option<usize> {
    let names: Vec<(usize, &str)> = (0..archive.len())
        .filter_map(|i| archive.name_for_index(i).map(|n| (i, n)))
        .filter(|(_, n)| !n.ends_with('/'))
        .collect();
    names
        .iter()
        .find(|(_, n)| n.to_ascii_lowercase().ends_with(".csv"))
        .or_else(|| names.first())
        .map(|(i, _)| *i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_extensions() {
        assert_eq!(inner_extension(Path::new("dir/daily.hdb")), "hdb");
        assert_eq!(inner_extension(Path::new("daily.FP.gz")), "fp");
        assert_eq!(inner_extension(Path::new("main.hsb.zst")), "hsb");
        assert_eq!(inner_extension(Path::new("full.csv.zip")), "csv");
        assert_eq!(inner_extension(Path::new("noext")), "");
        assert_eq!(inner_extension(Path::new("x.gz")), "");
        assert_eq!(inner_name(Path::new("dir/full.csv.ZIP")), "full.csv");
        assert_eq!(inner_name(Path::new(".gz")), ".gz");
        assert_eq!(inner_name(Path::new("hosts")), "hosts");
    }
}
