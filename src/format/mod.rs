//! The on-disk snapshot format, version 1: the specification, and all byte reading.
//!
//! A snapshot is one immutable file. All integers are little-endian. Offsets are from the
//! start of the file; every section starts on a 64-byte boundary (so a page-aligned mapping
//! makes every section cache-line aligned) and padding bytes are zero.
//!
//! # Layout
//!
//! ```text
//! header        32 bytes + 32 bytes per section + 8 bytes checksum
//! sections      each 64-byte aligned, in the order of the section table
//! trailer       32 bytes, the last bytes of the file
//! ```
//!
//! ## Header
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | magic `RPUTSNAP` |
//! | 8 | 4 | format version (`1`) |
//! | 12 | 4 | required-feature flags; a reader refuses any bit it does not know (bit 0: delta, below) |
//! | 16 | 4 | number of sections `n` (at most 64) |
//! | 20 | 4 | reserved, zero |
//! | 24 | 8 | total file length in bytes |
//! | 32 | 32·n | section table, one entry per section (below) |
//! | 32+32·n | 8 | xxh3-64 of header bytes `[0, 32+32·n)` |
//!
//! Section table entry: `kind: u32`, `flags: u32` (bit 0: required — a reader that does not
//! know `kind` must refuse the file), `offset: u64`, `length: u64`, `checksum: u64` (xxh3-64 of
//! the section's bytes). Each kind appears at most once. Sections may not overlap each other,
//! the header or the trailer.
//!
//! ## Trailer
//!
//! `magic RPUTEND\0` (8), `file length: u64` (8), xxh3-128 of every byte before the trailer (16,
//! little-endian `u128`).
//!
//! ## Sections
//!
//! | kind | name | contents |
//! |---:|---|---|
//! | 1 | `metadata` | JSON object: [`Metadata`] |
//! | 2 | `filter` | blocked bloom filter over every key ([`crate::filter`]) |
//! | 3 | `strings` | `count: u64`, `count + 1` offsets `u32`, then UTF-8 bytes; string `i` is `bytes[off[i]..off[i+1]]` |
//! | 4 | `records` | `count: u64`, 24 zero bytes, then `count` records of 32 bytes (below) |
//! | 16 | `md5` | fingerprint table of MD5 digests ([`crate::digest`]) |
//! | 17 | `sha1` | fingerprint table of SHA-1 digests |
//! | 18 | `sha256` | fingerprint table of SHA-256 digests |
//! | 20 | `md5 slots` | home-slot fingerprint table of MD5 digests (below); a file has this or kind 16, not both |
//! | 21 | `sha1 slots` | the same for SHA-1 (or kind 17) |
//! | 22 | `sha256 slots` | the same for SHA-256 (or kind 18) |
//! | 32 | `urls` | FST map (the `fst` crate's format 3) from URL expression keys ([`crate::url`]) to record ids |
//!
//! | 5 | `delta` | deltas only: JSON object [`crate::delta::DeltaInfo`] |
//! | 33 | `removed urls` | deltas only: FST map (values 0) of the URL expression keys the delta removes |
//! | 48 | `removed md5` | deltas only: fingerprint table (record id width 0) of the MD5 digests the delta removes |
//! | 49 | `removed sha1` | deltas only: the same for SHA-1 |
//! | 50 | `removed sha256` | deltas only: the same for SHA-256 |
//!
//! Record (32 bytes): `verdict: u8` (1 malicious, 2 suspicious, 3 trusted, 4 known),
//! `confidence: u8` (0..=100, 255 none), `flags: u16` (bit 0: the record comes from an
//! override feed, see [`crate::url`]; other bits zero, readers ignore them), `category: u32`, `name: u32`,
//! `source: u32` (string ids, `u32::MAX` none), `first_seen: i64`, `last_seen: i64` (Unix
//! seconds, `i64::MIN` none). Records are sorted by content, so ids are deterministic.
//!
//! ## Fingerprint table (`md5`, `sha1`, `sha256`)
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | entry count `n` |
//! | 8 | 1 | bucket bits `b` (0..=32) |
//! | 9 | 1 | record id width `w` in bytes (0..=4) |
//! | 10 | 6 | zero |
//! | 16 | 4 | default record id (used when `w` is 0) |
//! | 20 | 44 | zero |
//! | 64 | 4·(2^b+1) | bucket index: `u32` start of each bucket, then `n` |
//! | aligned 64 | 16·n | fingerprints: the first 16 bytes of each digest, sorted as big-endian numbers, no duplicates |
//! | after | w·n | record ids, `w`-byte little-endian, in fingerprint order |
//!
//! Bucket `i` holds the fingerprints whose top `b` bits equal `i`.
//!
//! ## Home-slot fingerprint table (`md5 slots`, `sha1 slots`, `sha256 slots`)
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | entry count `n` |
//! | 8 | 1 | record id width `w` in bytes (0..=4) |
//! | 9 | 1 | flags: bit 0, slot 0 holds the fingerprint zero; other bits zero |
//! | 10 | 6 | zero |
//! | 16 | 4 | default record id (used when `w` is 0) |
//! | 20 | 4 | zero |
//! | 24 | 8 | home slots `m` |
//! | 32 | 8 | slots `s` (`m`, or more when the last entries run past the last home) |
//! | 40 | 24 | zero |
//! | 64 | (16+w)·s | rows: fingerprint (16 bytes, big-endian) then record id (`w` bytes, little-endian) |
//!
//! The home of fingerprint `f` is `(top64(f) · m) >> 64`. Entries are placed in fingerprint
//! order, each at `max(home, previous place + 1)`; every other slot is all zero (a zero
//! fingerprint marks an empty slot, except in slot 0 when flag bit 0 is set). So every slot
//! from a fingerprint's home to its entry is occupied by a smaller one, and a lookup reads
//! from the home until it meets the fingerprint, a larger one or an empty slot.
//!
//! ## Deltas
//!
//! A delta (required-feature flag bit 0, `FLAG_DELTA`) is a file in this same format that
//! turns one snapshot (its base, named by identity: the SHA-256 of the whole file) into
//! another (its result). Its `md5`/`sha1`/`sha256`/`urls` sections hold the keys the result
//! adds or whose record changed, with record ids into the delta's own record table (the
//! records those keys use, plus every record the result has and the base has not); the
//! `removed ...` sections hold tombstones, the keys the result no longer has; its filter
//! covers both. Its `metadata` describes the delta itself (sequence, created, expires and
//! policy are the result's). The `delta` section names the base and result (identity and
//! sequence) and carries what a merge needs to rebuild the result byte for byte: the
//! result's metadata, its filter size, each table's bucket bits, and the base records the
//! result drops. Readers that do not know the flag refuse a delta, so a delta is never
//! mistaken for a whole snapshot.
//!
//! ## Guarantees
//!
//! [`crate::Snapshot::open`] does O(1) work: header checksum, version, flags, section bounds
//! (with checked arithmetic), and each section's fixed-size header against its length.
//! [`crate::Snapshot::verify`] reads every byte: section checksums, the trailer digest, and the
//! structural invariants (sorted fingerprints, monotonic bucket index and string offsets, record
//! ids in range, every home-slot entry at its place, valid UTF-8, a well-formed FST). Neither
//! panics on any input.

mod metadata;
mod reader;
mod tables;
mod writer;

pub use metadata::{FeedSummary, Metadata};
pub(crate) use reader::{Layout, SectionRef};
pub(crate) use tables::{RecordTable, StringTable};
pub(crate) use writer::{SectionWriter, SnapshotFile};

/// The magic bytes every snapshot starts with.
pub const MAGIC: [u8; 8] = *b"RPUTSNAP";
/// The magic bytes of the trailer.
pub const TRAILER_MAGIC: [u8; 8] = *b"RPUTEND\0";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Required-feature flag: the file is a delta ([`crate::delta`]), not a whole snapshot.
pub const FLAG_DELTA: u32 = 1;
/// Required-feature flags this build knows.
pub const KNOWN_REQUIRED_FLAGS: u32 = FLAG_DELTA;
/// Size of the fixed part of the header.
pub const HEADER_FIXED: usize = 32;
/// Size of one section table entry.
pub const SECTION_ENTRY: usize = 32;
/// Size of the trailer.
pub const TRAILER: usize = 32;
/// Most sections a file may declare.
pub const MAX_SECTIONS: u32 = 64;
/// Alignment of every section.
pub const ALIGN: usize = 64;
/// Section flag: readers that do not know this kind must refuse the file.
pub const SECTION_REQUIRED: u32 = 1;
/// Size of one record.
pub const RECORD_SIZE: usize = 32;
/// Record flag: the record comes from an override (allowlist) feed.
pub const RECORD_FLAG_OVERRIDE: u16 = 1;
/// Size of a fingerprint.
pub const FINGERPRINT_SIZE: usize = 16;

/// The kinds of section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum SectionKind {
    /// JSON metadata.
    Metadata = 1,
    /// Blocked bloom filter.
    Filter = 2,
    /// String table.
    Strings = 3,
    /// Record table.
    Records = 4,
    /// Delta description (JSON), in deltas only.
    Delta = 5,
    /// MD5 fingerprint table.
    Md5 = 16,
    /// SHA-1 fingerprint table.
    Sha1 = 17,
    /// SHA-256 fingerprint table.
    Sha256 = 18,
    /// MD5 fingerprint table in home slots.
    Md5Slots = 20,
    /// SHA-1 fingerprint table in home slots.
    Sha1Slots = 21,
    /// SHA-256 fingerprint table in home slots.
    Sha256Slots = 22,
    /// URL/domain FST.
    Urls = 32,
    /// URL/domain expressions a delta removes (FST), in deltas only.
    UrlsRemoved = 33,
    /// MD5 fingerprints a delta removes, in deltas only.
    Md5Removed = 48,
    /// SHA-1 fingerprints a delta removes, in deltas only.
    Sha1Removed = 49,
    /// SHA-256 fingerprints a delta removes, in deltas only.
    Sha256Removed = 50,
}

impl SectionKind {
    /// All kinds this build knows.
    pub const ALL: [SectionKind; 16] = [
        SectionKind::Metadata,
        SectionKind::Filter,
        SectionKind::Strings,
        SectionKind::Records,
        SectionKind::Delta,
        SectionKind::Md5,
        SectionKind::Sha1,
        SectionKind::Sha256,
        SectionKind::Md5Slots,
        SectionKind::Sha1Slots,
        SectionKind::Sha256Slots,
        SectionKind::Urls,
        SectionKind::UrlsRemoved,
        SectionKind::Md5Removed,
        SectionKind::Sha1Removed,
        SectionKind::Sha256Removed,
    ];

    /// The kind for a numeric code.
    pub fn from_code(code: u32) -> Option<SectionKind> {
        SectionKind::ALL.into_iter().find(|k| *k as u32 == code)
    }

    /// The section's name in errors and `inspect`.
    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Metadata => "metadata",
            SectionKind::Filter => "filter",
            SectionKind::Strings => "strings",
            SectionKind::Records => "records",
            SectionKind::Md5 => "md5 table",
            SectionKind::Sha1 => "sha1 table",
            SectionKind::Sha256 => "sha256 table",
            SectionKind::Md5Slots => "md5 slot table",
            SectionKind::Sha1Slots => "sha1 slot table",
            SectionKind::Sha256Slots => "sha256 slot table",
            SectionKind::Urls => "url fst",
            SectionKind::Delta => "delta",
            SectionKind::UrlsRemoved => "removed urls",
            SectionKind::Md5Removed => "removed md5",
            SectionKind::Sha1Removed => "removed sha1",
            SectionKind::Sha256Removed => "removed sha256",
        }
    }
}

/// Reads a little-endian `u32` at `at`, or `None` when out of bounds.
#[inline]
pub(crate) fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

/// Reads a little-endian `u64` at `at`, or `None` when out of bounds.
#[inline]
pub(crate) fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

/// Rounds `n` up to the section alignment.
pub(crate) fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}
