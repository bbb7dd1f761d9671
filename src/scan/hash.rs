//! [`hash_reader`]: MD5, SHA-1 and SHA-256 of one stream in a single pass.

use std::fmt;
use std::io::{self, Read};

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use crate::Digest;

/// The three hashers are fed this much at a time, so each pass over a slice of the read
/// buffer finds it in the first-level cache.
const HASH_CHUNK: usize = 32 * 1024;

/// The MD5, SHA-1 and SHA-256 digests of one file, and its length in bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileDigests {
    /// MD5 of the contents.
    pub md5: [u8; 16],
    /// SHA-1 of the contents.
    pub sha1: [u8; 20],
    /// SHA-256 of the contents.
    pub sha256: [u8; 32],
    /// Number of bytes hashed.
    pub size: u64,
}

impl FileDigests {
    /// The three digests as lookup keys: MD5, SHA-1, SHA-256, in that order.
    pub fn digests(&self) -> [Digest; 3] {
        [
            digest_of(&self.md5),
            digest_of(&self.sha1),
            digest_of(&self.sha256),
        ]
    }
}

fn digest_of(bytes: &[u8]) -> Digest {
    // The three arrays are exactly the MD5, SHA-1 and SHA-256 lengths, which `from_bytes`
    // accepts by construction: this cannot fail for any file.
    Digest::from_bytes(bytes).expect("16, 20 and 32 bytes are digest lengths")
}

impl fmt::Debug for FileDigests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [md5, sha1, sha256] = self.digests();
        f.debug_struct("FileDigests")
            .field("md5", &md5.to_hex())
            .field("sha1", &sha1.to_hex())
            .field("sha256", &sha256.to_hex())
            .field("size", &self.size)
            .finish()
    }
}

/// Reads `reader` to its end once, computing MD5, SHA-1 and SHA-256 together.
///
/// `buf` is the read buffer (256 KiB is a good size); it is the only memory used, so a
/// caller hashing many files reuses one buffer per thread. Reads interrupted by a signal are
/// retried. SHA-1 and SHA-256 use the CPU's SHA extensions when it has them (detected at run
/// time); MD5 is portable code, and the slowest of the three.
///
/// # Errors
///
/// The reader's first error other than [`io::ErrorKind::Interrupted`], or
/// [`io::ErrorKind::InvalidInput`] when `buf` is empty or the reader claims to have read more
/// than `buf` holds.
///
/// # Example
///
/// ```
/// let digests = repute::scan::hash_reader(&b"abc"[..], &mut [0u8; 4096]).unwrap();
/// assert_eq!(digests.size, 3);
/// assert_eq!(digests.digests()[0].to_hex(), "900150983cd24fb0d6963f7d28e17f72");
/// ```
pub fn hash_reader(mut reader: impl Read, buf: &mut [u8]) -> io::Result<FileDigests> {
    if buf.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "hash_reader needs a non-empty buffer",
        ));
    }
    let mut md5 = Md5::new();
    let mut sha1 = Sha1::new();
    let mut sha256 = Sha256::new();
    let mut size = 0u64;
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
        for chunk in data.chunks(HASH_CHUNK) {
            md5.update(chunk);
            sha1.update(chunk);
            sha256.update(chunk);
        }
        size = size.saturating_add(n as u64);
    }
    Ok(FileDigests {
        md5: md5.finalize().into(),
        sha1: sha1.finalize().into(),
        sha256: sha256.finalize().into(),
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
