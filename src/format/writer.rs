//! Assembling sections into a snapshot file's bytes.

use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

use super::*;

/// A section's bytes, appended to in little-endian.
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

/// Collects sections and lays out the file.
#[derive(Debug, Default)]
pub(crate) struct SnapshotWriter {
    sections: Vec<(SectionKind, Vec<u8>)>,
}

impl SnapshotWriter {
    pub fn new() -> Self {
        SnapshotWriter::default()
    }

    pub fn section(&mut self, kind: SectionKind, bytes: Vec<u8>) {
        self.sections.push((kind, bytes));
    }

    /// The complete file. Sections are written in kind order, so the output does not depend
    /// on the order they were added in.
    pub fn finish(mut self) -> Vec<u8> {
        self.sections.sort_by_key(|(k, _)| *k);
        let n = self.sections.len();
        let table_end = HEADER_FIXED + n * SECTION_ENTRY;
        let header_len = table_end + 8;
        let mut offset = align_up(header_len);
        let mut entries = Vec::with_capacity(n);
        for (kind, body) in &self.sections {
            entries.push((*kind, offset, body.len(), xxh3_64(body)));
            offset = align_up(offset + body.len());
        }
        let file_len = offset + TRAILER;
        let mut out = Vec::with_capacity(file_len);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(n as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(file_len as u64).to_le_bytes());
        for (kind, off, len, sum) in &entries {
            out.extend_from_slice(&(*kind as u32).to_le_bytes());
            out.extend_from_slice(&SECTION_REQUIRED.to_le_bytes());
            out.extend_from_slice(&(*off as u64).to_le_bytes());
            out.extend_from_slice(&(*len as u64).to_le_bytes());
            out.extend_from_slice(&sum.to_le_bytes());
        }
        let header_sum = xxh3_64(&out);
        out.extend_from_slice(&header_sum.to_le_bytes());
        for ((_, body), (_, off, _, _)) in self.sections.iter().zip(&entries) {
            out.resize(*off, 0);
            out.extend_from_slice(body);
        }
        out.resize(file_len - TRAILER, 0);
        let digest = xxh3_128(&out);
        out.extend_from_slice(&TRAILER_MAGIC);
        out.extend_from_slice(&(file_len as u64).to_le_bytes());
        out.extend_from_slice(&digest.to_le_bytes());
        debug_assert_eq!(out.len(), file_len);
        out
    }
}
