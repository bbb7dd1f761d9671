//! The record and string tables.

use super::*;
use crate::{Error, Result};

/// The string table: `count`, `count + 1` offsets, bytes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StringTable<'a> {
    offsets: &'a [u8],
    bytes: &'a [u8],
    count: u32,
}

impl<'a> StringTable<'a> {
    /// O(1) structural check: the section is large enough for its declared count.
    pub fn parse(section: &'a [u8]) -> Result<Self> {
        let count =
            read_u64(section, 0).ok_or_else(|| Error::malformed("strings", "missing count"))?;
        let offsets_len = count
            .checked_add(1)
            .and_then(|c| c.checked_mul(4))
            .filter(|n| n + 8 <= section.len() as u64)
            .ok_or_else(|| Error::malformed("strings", format!("{count} strings do not fit")))?;
        if count >= u32::MAX as u64 {
            return Err(Error::malformed("strings", "too many strings"));
        }
        let offsets = &section[8..8 + offsets_len as usize];
        Ok(StringTable {
            offsets,
            bytes: &section[8 + offsets_len as usize..],
            count: count as u32,
        })
    }

    pub fn len(&self) -> u32 {
        self.count
    }

    /// The offsets and bytes slices, for rebuilding the view with [`StringTable::from_parts`].
    pub fn parts(&self) -> (&'a [u8], &'a [u8]) {
        (self.offsets, self.bytes)
    }

    /// Rebuilds a view from the parts of one taken by [`StringTable::parse`]: no validation,
    /// and every later read stays bounds-checked.
    #[inline]
    pub fn from_parts(offsets: &'a [u8], bytes: &'a [u8], count: u32) -> Self {
        StringTable {
            offsets,
            bytes,
            count,
        }
    }

    /// String `id`, or `None` for `u32::MAX`, out of range ids or (unverified files) bad bytes.
    pub fn get(&self, id: u32) -> Option<&'a str> {
        if id >= self.count {
            return None;
        }
        let start = read_u32(self.offsets, id as usize * 4)? as usize;
        let end = read_u32(self.offsets, id as usize * 4 + 4)? as usize;
        std::str::from_utf8(self.bytes.get(start..end)?).ok()
    }

    /// O(n): offsets monotonic and in bounds, every string valid UTF-8.
    pub fn verify(&self) -> Result<()> {
        let mut prev = 0u32;
        for i in 0..=self.count as usize {
            let off = read_u32(self.offsets, i * 4).unwrap_or(u32::MAX);
            if off < prev || off as usize > self.bytes.len() {
                return Err(Error::malformed(
                    "strings",
                    format!("offset {i} out of order or bounds"),
                ));
            }
            if i > 0 && std::str::from_utf8(&self.bytes[prev as usize..off as usize]).is_err() {
                return Err(Error::malformed(
                    "strings",
                    format!("string {} is not UTF-8", i - 1),
                ));
            }
            prev = off;
        }
        Ok(())
    }
}

/// The record table: `count`, padding, fixed 32-byte records.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RecordTable<'a> {
    records: &'a [u8],
    count: u32,
}

impl<'a> RecordTable<'a> {
    pub fn parse(section: &'a [u8]) -> Result<Self> {
        let count =
            read_u64(section, 0).ok_or_else(|| Error::malformed("records", "missing count"))?;
        let needed = count
            .checked_mul(RECORD_SIZE as u64)
            .and_then(|n| n.checked_add(32))
            .filter(|n| *n == section.len() as u64)
            .ok_or_else(|| {
                Error::malformed(
                    "records",
                    format!(
                        "{count} records do not match a section of {} bytes",
                        section.len()
                    ),
                )
            })?;
        if count > u32::MAX as u64 {
            return Err(Error::malformed("records", "too many records"));
        }
        Ok(RecordTable {
            records: &section[32..needed as usize],
            count: count as u32,
        })
    }

    pub fn len(&self) -> u32 {
        self.count
    }

    /// The records' bytes, for rebuilding the view with [`RecordTable::from_parts`].
    pub fn body(&self) -> &'a [u8] {
        self.records
    }

    /// Rebuilds a view from the body of one taken by [`RecordTable::parse`]: no validation,
    /// and every later read stays bounds-checked.
    #[inline]
    pub fn from_parts(records: &'a [u8], count: u32) -> Self {
        RecordTable { records, count }
    }

    #[inline]
    pub fn raw(&self, id: u32) -> Option<&'a [u8]> {
        let at = id as usize * RECORD_SIZE;
        self.records.get(at..at + RECORD_SIZE)
    }

    /// O(n): verdicts known, string ids in range.
    pub fn verify(&self, strings: &StringTable<'_>) -> Result<()> {
        for id in 0..self.count {
            let raw = self.raw(id).unwrap_or(&[]);
            if raw.len() != RECORD_SIZE || crate::Verdict::from_byte(raw[0]).is_none() {
                return Err(Error::malformed(
                    "records",
                    format!("record {id} has no valid verdict"),
                ));
            }
            if raw[1] > 100 && raw[1] != 255 {
                return Err(Error::malformed(
                    "records",
                    format!("record {id} has confidence {}", raw[1]),
                ));
            }
            for at in [4, 8, 12] {
                let s = read_u32(raw, at).unwrap_or(0);
                if s != u32::MAX && s >= strings.len() {
                    return Err(Error::malformed(
                        "records",
                        format!("record {id} names string {s} of {}", strings.len()),
                    ));
                }
            }
        }
        Ok(())
    }
}
