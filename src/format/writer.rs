//! Writing a snapshot file: sections streamed to disk, then the header and trailer.
//!
//! Sections are appended in any order (each 64-byte aligned) through a buffered writer; a
//! section may patch bytes it wrote earlier (the bucket index is known only after the
//! fingerprints). [`SnapshotFile::finish`] then reads the body back once to checksum each
//! section, writes the header, and reads the whole file once more for the trailer digest.
//! Memory stays at the buffers' size whatever the file's.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use xxhash_rust::xxh3::Xxh3Default;

use super::*;

/// A section's bytes, appended to in little-endian (for small sections built in memory).
#[derive(Debug, Default)]
pub(crate) struct SectionWriter {
    pub bytes: Vec<u8>,
}

impl SectionWriter {
    pub fn new() -> Self {
        SectionWriter::default()
    }

    pub fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    pub fn i64(&mut self, v: i64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    pub fn raw(&mut self, b: &[u8]) {
        self.bytes.extend_from_slice(b);
    }
}

#[derive(Debug, Clone, Copy)]
struct Placed {
    kind: SectionKind,
    offset: u64,
    length: u64,
}

/// A snapshot being written to a file.
#[derive(Debug)]
pub(crate) struct SnapshotFile {
    out: BufWriter<File>,
    pos: u64,
    placed: Vec<Placed>,
    open: Option<(SectionKind, u64)>,
    count: usize,
    flags: u32,
}

fn header_len(sections: usize) -> usize {
    HEADER_FIXED + sections * SECTION_ENTRY + 8
}

impl SnapshotFile {
    /// Starts a file that will hold exactly `sections` sections.
    pub fn new(file: File, sections: usize) -> io::Result<Self> {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let start = align_up(header_len(sections));
        out.write_all(&vec![0u8; start])?;
        Ok(SnapshotFile {
            out,
            pos: start as u64,
            placed: Vec::with_capacity(sections),
            open: None,
            count: sections,
            flags: 0,
        })
    }

    /// Sets the required-feature flags written in the header (e.g. [`FLAG_DELTA`]).
    pub fn set_required_flags(&mut self, flags: u32) {
        self.flags = flags;
    }

    /// Starts a section; returns its file offset.
    pub fn begin(&mut self, kind: SectionKind) -> u64 {
        debug_assert!(self.open.is_none());
        self.open = Some((kind, self.pos));
        self.pos
    }

    /// Appends to the open section.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// Appends `n` zero bytes.
    pub fn zeros(&mut self, n: u64) -> io::Result<()> {
        const ZEROS: [u8; 4096] = [0; 4096];
        let mut left = n;
        while left > 0 {
            let k = left.min(ZEROS.len() as u64) as usize;
            self.write(&ZEROS[..k])?;
            left -= k as u64;
        }
        Ok(())
    }

    /// Overwrites bytes already written at `offset`.
    pub fn patch(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().write_all_at(bytes, offset)
    }

    /// Ends the open section and pads to the next boundary.
    pub fn end(&mut self) -> io::Result<()> {
        if let Some((kind, offset)) = self.open.take() {
            self.placed.push(Placed {
                kind,
                offset,
                length: self.pos - offset,
            });
            let pad = align_up(self.pos as usize) as u64 - self.pos;
            self.zeros(pad)?;
        }
        Ok(())
    }

    /// A whole section at once.
    pub fn section(&mut self, kind: SectionKind, bytes: &[u8]) -> io::Result<()> {
        self.begin(kind);
        self.write(bytes)?;
        self.end()
    }

    /// Checksums, header and trailer; returns the file, synced, and its length.
    pub fn finish(mut self) -> io::Result<(File, u64)> {
        if self.placed.len() != self.count {
            return Err(io::Error::other(format!(
                "{} sections written, {} declared",
                self.placed.len(),
                self.count
            )));
        }
        self.out.flush()?;
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        let body_end = self.pos;
        let file_len = body_end + TRAILER as u64;

        // Pass 1: each section's checksum.
        let mut placed = self.placed;
        placed.sort_by_key(|p| p.kind);
        let mut sums = Vec::with_capacity(placed.len());
        let mut buf = vec![0u8; 1 << 20];
        for p in &placed {
            let mut h = Xxh3Default::new();
            file.seek(SeekFrom::Start(p.offset))?;
            let mut left = p.length;
            while left > 0 {
                let k = left.min(buf.len() as u64) as usize;
                file.read_exact(&mut buf[..k])?;
                h.update(&buf[..k]);
                left -= k as u64;
            }
            sums.push(h.digest());
        }

        // The header.
        let mut header = Vec::with_capacity(header_len(placed.len()));
        header.extend_from_slice(&MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&self.flags.to_le_bytes());
        header.extend_from_slice(&(placed.len() as u32).to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&file_len.to_le_bytes());
        for (p, sum) in placed.iter().zip(&sums) {
            header.extend_from_slice(&(p.kind as u32).to_le_bytes());
            header.extend_from_slice(&SECTION_REQUIRED.to_le_bytes());
            header.extend_from_slice(&p.offset.to_le_bytes());
            header.extend_from_slice(&p.length.to_le_bytes());
            header.extend_from_slice(&sum.to_le_bytes());
        }
        let header_sum = xxhash_rust::xxh3::xxh3_64(&header);
        header.extend_from_slice(&header_sum.to_le_bytes());
        file.write_all_at(&header, 0)?;

        // Pass 2: the digest of everything before the trailer.
        let mut h = Xxh3Default::new();
        file.seek(SeekFrom::Start(0))?;
        let mut left = body_end;
        while left > 0 {
            let k = left.min(buf.len() as u64) as usize;
            file.read_exact(&mut buf[..k])?;
            h.update(&buf[..k]);
            left -= k as u64;
        }
        let mut trailer = Vec::with_capacity(TRAILER);
        trailer.extend_from_slice(&TRAILER_MAGIC);
        trailer.extend_from_slice(&file_len.to_le_bytes());
        trailer.extend_from_slice(&h.digest128().to_le_bytes());
        file.seek(SeekFrom::Start(body_end))?;
        file.write_all(&trailer)?;
        file.set_len(file_len)?;
        file.sync_all()?;
        Ok((file, file_len))
    }
}
