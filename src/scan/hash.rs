//! [`hash_reader`]: the MD5, SHA-1 and SHA-256 of one stream in a single pass, or only the
//! [`DigestKinds`] asked for ([`hash_reader_kinds`], [`hash_slice`]).

use std::fmt;
use std::io::{self, Read};

use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use crate::{Digest, DigestKind};

/// The hashers are fed this much at a time, so each pass over a slice of the read buffer
/// finds it in the first-level cache.
const HASH_CHUNK: usize = 32 * 1024;

/// A set of digest kinds: which digests of a file to compute.
///
/// A scan computes only the kinds that its snapshot lists (see
/// [`super::DigestSource::digest_kinds`]), plus any the caller asks for: MD5 alone costs
/// more than SHA-1 and SHA-256 together on a CPU with SHA extensions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DigestKinds(u8);

impl DigestKinds {
    /// No digest.
    pub const NONE: DigestKinds = DigestKinds(0);
    /// MD5, SHA-1 and SHA-256.
    pub const ALL: DigestKinds = DigestKinds(0b111);

    const fn bit(kind: DigestKind) -> u8 {
        match kind {
            DigestKind::Md5 => 1,
            DigestKind::Sha1 => 2,
            DigestKind::Sha256 => 4,
        }
    }

    /// The set of one kind.
    pub const fn of(kind: DigestKind) -> DigestKinds {
        DigestKinds(Self::bit(kind))
    }

    /// This set with `kind` added.
    #[must_use]
    pub const fn with(self, kind: DigestKind) -> DigestKinds {
        DigestKinds(self.0 | Self::bit(kind))
    }

    /// The kinds in either set.
    #[must_use]
    pub const fn union(self, other: DigestKinds) -> DigestKinds {
        DigestKinds(self.0 | other.0)
    }

    /// Whether `kind` is in the set.
    pub const fn contains(self, kind: DigestKind) -> bool {
        self.0 & Self::bit(kind) != 0
    }

    /// Whether the set has no kind.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds in the set: MD5, SHA-1, SHA-256, in that order.
    pub fn iter(self) -> impl Iterator<Item = DigestKind> {
        DigestKind::ALL
            .into_iter()
            .filter(move |k| self.contains(*k))
    }
}

impl FromIterator<DigestKind> for DigestKinds {
    fn from_iter<I: IntoIterator<Item = DigestKind>>(iter: I) -> Self {
        iter.into_iter().fold(DigestKinds::NONE, DigestKinds::with)
    }
}

/// `md5,sha1,sha256` (the kinds in the set, comma-separated), or `none`.
impl fmt::Display for DigestKinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (i, kind) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(kind.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for DigestKinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DigestKinds({self})")
    }
}

/// The digests of one file that were computed ([`FileDigests::kinds`]), and its length.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileDigests {
    /// MD5 of the contents (all zeros when not in `kinds`).
    pub md5: [u8; 16],
    /// SHA-1 of the contents (all zeros when not in `kinds`).
    pub sha1: [u8; 20],
    /// SHA-256 of the contents (all zeros when not in `kinds`).
    pub sha256: [u8; 32],
    /// Number of bytes hashed.
    pub size: u64,
    /// Which of the three digests were computed.
    pub kinds: DigestKinds,
}

impl FileDigests {
    /// The three digests as lookup keys: MD5, SHA-1, SHA-256, in that order. A digest that
    /// was not computed (see [`FileDigests::kinds`]) comes out as all zeros: use
    /// [`FileDigests::get`] or [`FileDigests::computed`] unless all three were asked for.
    pub fn digests(&self) -> [Digest; 3] {
        [
            digest_of(&self.md5),
            digest_of(&self.sha1),
            digest_of(&self.sha256),
        ]
    }

    /// The digest of one kind, when it was computed.
    pub fn get(&self, kind: DigestKind) -> Option<Digest> {
        self.kinds
            .contains(kind)
            .then(|| self.digests()[kind.index()])
    }

    /// The digests that were computed: MD5, SHA-1, SHA-256, in that order.
    pub fn computed(&self) -> impl Iterator<Item = Digest> + '_ {
        self.kinds.iter().filter_map(|k| self.get(k))
    }
}

fn digest_of(bytes: &[u8]) -> Digest {
    // The three arrays are exactly the MD5, SHA-1 and SHA-256 lengths, which `from_bytes`
    // accepts by construction: this cannot fail for any file.
    Digest::from_bytes(bytes).expect("16, 20 and 32 bytes are digest lengths")
}

impl fmt::Debug for FileDigests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("FileDigests");
        for digest in self.computed() {
            s.field(digest.kind().as_str(), &digest.to_hex());
        }
        s.field("size", &self.size).finish()
    }
}

/// MD5 over the assembly compression function on x86 and x86-64 (as fast as OpenSSL's; the
/// portable code is about a sixth slower), the `md-5` crate elsewhere.
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
mod md5_backend {
    /// MD5 state: the chaining value, a partial block, and the length so far.
    pub(super) struct Md5 {
        state: [u32; 4],
        block: [u8; 64],
        pending: usize,
        len: u64,
    }

    impl Md5 {
        pub(super) fn new() -> Md5 {
            Md5 {
                state: [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476],
                block: [0; 64],
                pending: 0,
                len: 0,
            }
        }

        pub(super) fn update(&mut self, mut data: &[u8]) {
            self.len = self.len.wrapping_add(data.len() as u64);
            if self.pending > 0 {
                let take = (64 - self.pending).min(data.len());
                let (head, rest) = data.split_at(take);
                self.block[self.pending..self.pending + take].copy_from_slice(head);
                self.pending += take;
                data = rest;
                if self.pending < 64 {
                    return;
                }
                md5_asm::compress(&mut self.state, std::slice::from_ref(&self.block));
                self.pending = 0;
            }
            let (blocks, rest) = data.as_chunks::<64>();
            md5_asm::compress(&mut self.state, blocks);
            self.block[..rest.len()].copy_from_slice(rest);
            self.pending = rest.len();
        }

        pub(super) fn finalize(mut self) -> [u8; 16] {
            let bits = self.len.wrapping_mul(8);
            // 0x80, zeros up to 56 bytes into a block, then the length in bits.
            let pad = if self.pending < 56 {
                56 - self.pending
            } else {
                120 - self.pending
            };
            let mut tail = [0u8; 72];
            tail[0] = 0x80;
            tail[pad..pad + 8].copy_from_slice(&bits.to_le_bytes());
            let len = self.len;
            self.update(&tail[..pad + 8]);
            self.len = len;
            debug_assert_eq!(self.pending, 0);
            let mut out = [0u8; 16];
            for (o, s) in out.chunks_exact_mut(4).zip(self.state) {
                o.copy_from_slice(&s.to_le_bytes());
            }
            out
        }
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
mod md5_backend {
    use sha2::Digest as _;

    pub(super) struct Md5(md5::Md5);

    impl Md5 {
        pub(super) fn new() -> Md5 {
            Md5(md5::Md5::new())
        }

        pub(super) fn update(&mut self, data: &[u8]) {
            self.0.update(data);
        }

        pub(super) fn finalize(self) -> [u8; 16] {
            self.0.finalize().into()
        }
    }
}

/// The hashers of the kinds asked for, fed together.
struct Hashers {
    md5: Option<md5_backend::Md5>,
    sha1: Option<Sha1>,
    sha256: Option<Sha256>,
    size: u64,
    kinds: DigestKinds,
}

impl Hashers {
    fn new(kinds: DigestKinds) -> Hashers {
        Hashers {
            md5: kinds.contains(DigestKind::Md5).then(md5_backend::Md5::new),
            sha1: kinds.contains(DigestKind::Sha1).then(Sha1::new),
            sha256: kinds.contains(DigestKind::Sha256).then(Sha256::new),
            size: 0,
            kinds,
        }
    }

    fn update(&mut self, data: &[u8]) {
        for chunk in data.chunks(HASH_CHUNK) {
            if let Some(h) = &mut self.md5 {
                h.update(chunk);
            }
            if let Some(h) = &mut self.sha1 {
                h.update(chunk);
            }
            if let Some(h) = &mut self.sha256 {
                h.update(chunk);
            }
        }
        self.size = self.size.saturating_add(data.len() as u64);
    }

    fn finish(self) -> FileDigests {
        FileDigests {
            md5: self.md5.map_or([0; 16], md5_backend::Md5::finalize),
            sha1: self.sha1.map_or([0; 20], |h| h.finalize().into()),
            sha256: self.sha256.map_or([0; 32], |h| h.finalize().into()),
            size: self.size,
            kinds: self.kinds,
        }
    }
}

/// The digests of `kinds` of one buffer in memory (the same code as [`hash_reader_kinds`],
/// without the reads).
///
/// ```
/// use repute::scan::{hash_slice, DigestKinds};
/// use repute::DigestKind;
///
/// let d = hash_slice(b"abc", DigestKinds::of(DigestKind::Md5));
/// assert_eq!(d.get(DigestKind::Md5).unwrap().to_hex(), "900150983cd24fb0d6963f7d28e17f72");
/// assert!(d.get(DigestKind::Sha256).is_none());
/// ```
pub fn hash_slice(data: &[u8], kinds: DigestKinds) -> FileDigests {
    let mut hashers = Hashers::new(kinds);
    hashers.update(data);
    hashers.finish()
}

/// Reads `reader` to its end once, computing MD5, SHA-1 and SHA-256 together: the same as
/// [`hash_reader_kinds`] with [`DigestKinds::ALL`].
///
/// # Errors
///
/// As [`hash_reader_kinds`].
///
/// # Example
///
/// ```
/// let digests = repute::scan::hash_reader(&b"abc"[..], &mut [0u8; 4096]).unwrap();
/// assert_eq!(digests.size, 3);
/// assert_eq!(digests.digests()[0].to_hex(), "900150983cd24fb0d6963f7d28e17f72");
/// ```
pub fn hash_reader(reader: impl Read, buf: &mut [u8]) -> io::Result<FileDigests> {
    hash_reader_kinds(reader, buf, DigestKinds::ALL)
}

/// Reads `reader` to its end once, computing the digests of `kinds` together (none at all
/// for [`DigestKinds::NONE`]: the stream is still read, and its length counted).
///
/// `buf` is the read buffer (256 KiB is a good size); it is the only memory used, so a
/// caller hashing many files reuses one buffer per thread. Reads interrupted by a signal are
/// retried. SHA-1 and SHA-256 use the CPU's SHA extensions when it has them (detected at run
/// time); MD5 uses an assembly compression function on x86 and x86-64, and is the slowest of
/// the three.
///
/// # Errors
///
/// The reader's first error other than [`io::ErrorKind::Interrupted`], or
/// [`io::ErrorKind::InvalidInput`] when `buf` is empty or the reader claims to have read more
/// than `buf` holds.
pub fn hash_reader_kinds(
    mut reader: impl Read,
    buf: &mut [u8],
    kinds: DigestKinds,
) -> io::Result<FileDigests> {
    if buf.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "hash_reader needs a non-empty buffer",
        ));
    }
    let mut hashers = Hashers::new(kinds);
    loop {
        let n = match reader.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let data = buf.get(..n).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "reader returned more bytes than the buffer holds",
            )
        })?;
        hashers.update(data);
    }
    Ok(hashers.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The digests of `data` by the RustCrypto crates, as the oracle.
    fn oracle(data: &[u8]) -> ([u8; 16], [u8; 20], [u8; 32]) {
        (
            md5::Md5::digest(data).into(),
            Sha1::digest(data).into(),
            Sha256::digest(data).into(),
        )
    }

    /// A reader giving out at most `step` bytes a read.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    proptest! {
        #[test]
        fn every_kind_set_agrees_with_the_oracle(
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            bits in 0u8..8,
            step in 1usize..300,
            buf in 1usize..200,
        ) {
            let kinds = DigestKinds(bits);
            let (md5, sha1, sha256) = oracle(&data);
            let read = hash_reader_kinds(Trickle { data: &data, step }, &mut vec![0u8; buf], kinds)
                .unwrap();
            prop_assert_eq!(read, hash_slice(&data, kinds));
            prop_assert_eq!(read.size, data.len() as u64);
            prop_assert_eq!(read.kinds, kinds);
            let want = |kind, bytes: &[u8]| {
                kinds.contains(kind).then(|| Digest::from_bytes(bytes).unwrap())
            };
            prop_assert_eq!(read.get(DigestKind::Md5), want(DigestKind::Md5, &md5));
            prop_assert_eq!(read.get(DigestKind::Sha1), want(DigestKind::Sha1, &sha1));
            prop_assert_eq!(read.get(DigestKind::Sha256), want(DigestKind::Sha256, &sha256));
            prop_assert_eq!(read.computed().count(), kinds.iter().count());
        }
    }

    #[test]
    fn md5_at_every_length_around_block_edges() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 31 + 7) as u8).collect();
        for len in 0..data.len() {
            let d = hash_slice(&data[..len], DigestKinds::of(DigestKind::Md5));
            assert_eq!(d.md5, oracle(&data[..len]).0, "length {len}");
        }
    }

    #[test]
    fn kinds_display_and_collect() {
        assert_eq!(DigestKinds::ALL.to_string(), "md5,sha1,sha256");
        assert_eq!(DigestKinds::NONE.to_string(), "none");
        let s: DigestKinds = [DigestKind::Sha256, DigestKind::Md5].into_iter().collect();
        assert_eq!(s.to_string(), "md5,sha256");
        assert!(s.contains(DigestKind::Md5) && !s.contains(DigestKind::Sha1));
        assert_eq!(s.union(DigestKinds::of(DigestKind::Sha1)), DigestKinds::ALL);
    }

    #[test]
    fn nothing_asked_reads_and_counts_only() {
        let d = hash_reader_kinds(&b"12345"[..], &mut [0u8; 2], DigestKinds::NONE).unwrap();
        assert_eq!((d.size, d.computed().count()), (5, 0));
        assert_eq!(format!("{d:?}"), "FileDigests { size: 5 }");
    }

    #[test]
    fn known_vectors() {
        let d = hash_reader(&b""[..], &mut [0u8; 7]).unwrap();
        let [md5, sha1, sha256] = d.digests();
        assert_eq!(md5.to_hex(), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(sha1.to_hex(), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            sha256.to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.size, 0);
    }

    #[test]
    fn buffer_size_does_not_change_the_result() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let reference = hash_reader(&data[..], &mut vec![0u8; 1 << 18]).unwrap();
        for len in [1, 3, 64, 1000, 65_536] {
            assert_eq!(
                hash_reader(&data[..], &mut vec![0u8; len]).unwrap(),
                reference
            );
        }
        assert_eq!(reference.size, 200_000);
    }

    #[test]
    fn empty_buffer_is_an_error() {
        let e = hash_reader(&b"x"[..], &mut []).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    struct Lying;
    impl Read for Lying {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            Ok(buf.len() + 1)
        }
    }

    #[test]
    fn a_reader_overstating_its_read_is_an_error_not_a_panic() {
        let e = hash_reader(Lying, &mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
