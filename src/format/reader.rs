//! O(1) validation of a snapshot's header, section table and trailer.

use twox_hash::{XxHash3_128, XxHash3_64};

use super::*;
use crate::{Error, Result};

/// Where one section lies in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SectionRef {
    pub kind: SectionKind,
    pub offset: usize,
    pub length: usize,
    pub checksum: u64,
}

impl SectionRef {
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.length
    }
}

/// The validated skeleton of a snapshot: which sections exist and where.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub sections: Vec<SectionRef>,
    pub file_len: usize,
    /// The required-feature flags (all known to this build).
    pub flags: u32,
}

fn truncated(what: &'static str, needed: usize, available: usize) -> Error {
    Error::Truncated {
        what,
        needed: needed as u64,
        available: available as u64,
    }
}

impl Layout {
    /// Validates everything that can be checked without reading the sections' bodies.
    pub fn parse(bytes: &[u8]) -> Result<Layout> {
        let len = bytes.len();
        if len < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            if len < MAGIC.len() && MAGIC.starts_with(bytes) {
                return Err(truncated("header", HEADER_FIXED, len));
            }
            return Err(Error::Magic);
        }
        if len < HEADER_FIXED {
            return Err(truncated("header", HEADER_FIXED, len));
        }
        let version = read_u32(bytes, 8).unwrap_or(0);
        let required = read_u32(bytes, 12).unwrap_or(0);
        let count = read_u32(bytes, 16).unwrap_or(0);
        let declared_len = read_u64(bytes, 24).unwrap_or(0);
        if count > MAX_SECTIONS {
            return Err(Error::malformed(
                "header",
                format!("{count} sections declared, at most {MAX_SECTIONS} allowed"),
            ));
        }
        let table_end = HEADER_FIXED + count as usize * SECTION_ENTRY;
        let header_len = table_end + 8;
        if len < header_len {
            return Err(truncated("section table", header_len, len));
        }
        let stored = read_u64(bytes, table_end).unwrap_or(0);
        let found = XxHash3_64::oneshot(&bytes[..table_end]);
        if stored != found {
            // A damaged header can make any field look wrong; report the version only when
            // the header is intact, so a bit flip is not mistaken for a newer format.
            return Err(Error::Checksum {
                section: "header",
                expected: stored,
                found,
            });
        }
        if version != VERSION {
            return Err(Error::Version {
                supported: VERSION,
                found: version,
            });
        }
        let unknown = required & !KNOWN_REQUIRED_FLAGS;
        if unknown != 0 {
            return Err(Error::RequiredFeatures { flags: unknown });
        }
        if declared_len != len as u64 {
            if declared_len > len as u64 {
                return Err(Error::Truncated {
                    what: "file",
                    needed: declared_len,
                    available: len as u64,
                });
            }
            return Err(Error::malformed(
                "header",
                format!("file is {len} bytes but the header declares {declared_len}"),
            ));
        }
        if len < header_len + TRAILER {
            return Err(truncated("trailer", header_len + TRAILER, len));
        }
        let trailer_at = len - TRAILER;
        if bytes[trailer_at..trailer_at + 8] != TRAILER_MAGIC
            || read_u64(bytes, trailer_at + 8) != Some(len as u64)
        {
            return Err(Error::malformed("trailer", "bad trailer magic or length"));
        }

        let mut sections: Vec<SectionRef> = Vec::with_capacity(count as usize);
        for i in 0..count as usize {
            let at = HEADER_FIXED + i * SECTION_ENTRY;
            let code = read_u32(bytes, at).unwrap_or(0);
            let flags = read_u32(bytes, at + 4).unwrap_or(0);
            let offset = read_u64(bytes, at + 8).unwrap_or(u64::MAX);
            let length = read_u64(bytes, at + 16).unwrap_or(u64::MAX);
            let checksum = read_u64(bytes, at + 24).unwrap_or(0);
            let Some(kind) = SectionKind::from_code(code) else {
                if flags & SECTION_REQUIRED != 0 {
                    return Err(Error::malformed(
                        "section table",
                        format!(
                            "required section kind {code} is unknown to this build; upgrade repute"
                        ),
                    ));
                }
                continue;
            };
            let end = offset.checked_add(length).ok_or_else(|| {
                Error::malformed("section table", format!("{} bounds overflow", kind.name()))
            })?;
            if offset < header_len as u64 || end > trailer_at as u64 {
                return Err(Error::malformed(
                    "section table",
                    format!(
                        "{} spans bytes {offset}..{end}, outside the body {header_len}..{trailer_at}",
                        kind.name()
                    ),
                ));
            }
            if !(offset as usize).is_multiple_of(ALIGN) {
                return Err(Error::malformed(
                    "section table",
                    format!("{} starts at unaligned offset {offset}", kind.name()),
                ));
            }
            if sections.iter().any(|s| s.kind == kind) {
                return Err(Error::malformed(
                    "section table",
                    format!("{} appears twice", kind.name()),
                ));
            }
            sections.push(SectionRef {
                kind,
                offset: offset as usize,
                length: length as usize,
                checksum,
            });
        }
        let mut sorted: Vec<&SectionRef> = sections.iter().collect();
        sorted.sort_by_key(|s| s.offset);
        for pair in sorted.windows(2) {
            if pair[0].offset + pair[0].length > pair[1].offset {
                return Err(Error::malformed(
                    "section table",
                    format!("{} overlaps {}", pair[0].kind.name(), pair[1].kind.name()),
                ));
            }
        }
        Ok(Layout {
            sections,
            file_len: len,
            flags: required,
        })
    }

    pub fn section(&self, kind: SectionKind) -> Option<SectionRef> {
        self.sections.iter().copied().find(|s| s.kind == kind)
    }

    /// Checks one section's checksum (xxh3_64 of its bytes). A whole check of the file is
    /// every section's, then [`Layout::verify_file_digest`]; [`crate::Snapshot::verify`]
    /// runs them in parallel and reports the first mismatch in that order.
    pub fn verify_section(&self, bytes: &[u8], s: &SectionRef) -> Result<()> {
        let body = bytes
            .get(s.range())
            .ok_or_else(|| truncated(s.kind.name(), s.offset + s.length, bytes.len()))?;
        let found = XxHash3_64::oneshot(body);
        if found != s.checksum {
            return Err(Error::Checksum {
                section: s.kind.name(),
                expected: s.checksum,
                found,
            });
        }
        Ok(())
    }

    /// Checks the trailer's digest (xxh3_128 of everything before the trailer). One pass
    /// over the whole file, in order: the hash does not split.
    pub fn verify_file_digest(&self, bytes: &[u8]) -> Result<()> {
        let trailer_at = self.file_len - TRAILER;
        let stored = u128::from_le_bytes(
            bytes
                .get(trailer_at + 16..trailer_at + 32)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| Error::malformed("trailer", "short digest"))?,
        );
        let found = XxHash3_128::oneshot(bytes.get(..trailer_at).unwrap_or_default());
        if stored != found {
            return Err(Error::Checksum {
                section: "file digest (trailer)",
                expected: stored as u64,
                found: found as u64,
            });
        }
        Ok(())
    }
}
