//! Digest keys: hex parsing, the fingerprint table, batched lookups.
//!
//! A [`Digest`] is an MD5, SHA-1 or SHA-256 value. Its fingerprint is its first 16 bytes
//! (128 bits: a shorter prefix would let an attacker craft a file matching one of N listed
//! entries with about 2^64/N work). Each digest kind has its own [`FingerprintTable`]: the
//! fingerprints in order as big-endian numbers, each with a record id whose width is chosen
//! per table (zero bytes when every entry shares one record, as in a plain hash list). Tables
//! have a bucket index (format v1's layout, the default) or, when a build asks, home slots
//! (a row of fingerprint and record id at a slot computed from the fingerprint).

mod table;

use std::fmt;
use std::str::FromStr;

pub use table::{FingerprintTable, TableBuilder, TableIter, TableLayout};
pub(crate) use table::{TableParams, TableWriter};

use crate::filter::{mix64, KeyHash};

/// The kinds of digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestKind {
    /// MD5, 16 bytes.
    Md5,
    /// SHA-1, 20 bytes.
    Sha1,
    /// SHA-256, 32 bytes.
    Sha256,
}

impl DigestKind {
    /// All kinds.
    pub const ALL: [DigestKind; 3] = [DigestKind::Md5, DigestKind::Sha1, DigestKind::Sha256];

    /// Length in bytes.
    pub const fn byte_len(self) -> usize {
        match self {
            DigestKind::Md5 => 16,
            DigestKind::Sha1 => 20,
            DigestKind::Sha256 => 32,
        }
    }

    /// The kind whose hex form has `hex_len` characters.
    pub fn from_hex_len(hex_len: usize) -> Option<DigestKind> {
        match hex_len {
            32 => Some(DigestKind::Md5),
            40 => Some(DigestKind::Sha1),
            64 => Some(DigestKind::Sha256),
            _ => None,
        }
    }

    /// `md5`, `sha1` or `sha256`.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestKind::Md5 => "md5",
            DigestKind::Sha1 => "sha1",
            DigestKind::Sha256 => "sha256",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn seed(self) -> u64 {
        match self {
            DigestKind::Md5 => 0x6d64_3500_0000_0001,
            DigestKind::Sha1 => 0x7368_6131_0000_0002,
            DigestKind::Sha256 => 0x7368_6132_3536_0003,
        }
    }
}

impl fmt::Display for DigestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A digest value of one of the supported kinds.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    kind: DigestKind,
    bytes: [u8; 32],
}

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestError {
    /// The length matches no digest kind.
    Length(usize),
    /// A character is not a hex digit.
    NotHex(usize),
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigestError::Length(n) => write!(
                f,
                "{n} characters is not a digest length (32 for MD5, 40 for SHA-1, 64 for SHA-256)"
            ),
            DigestError::NotHex(at) => write!(f, "character {} is not a hex digit", at + 1),
        }
    }
}

impl std::error::Error for DigestError {}

/// Hex digit values, 0xff for anything that is not a hex digit.
const HEX_VALUES: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut c = 0;
    while c < 10 {
        table[b'0' as usize + c] = c as u8;
        c += 1;
    }
    let mut c = 0;
    while c < 6 {
        table[b'a' as usize + c] = 10 + c as u8;
        table[b'A' as usize + c] = 10 + c as u8;
        c += 1;
    }
    table
};

impl Digest {
    /// A digest from raw bytes; `None` when the length matches no kind.
    pub fn from_bytes(bytes: &[u8]) -> Option<Digest> {
        let kind = match bytes.len() {
            16 => DigestKind::Md5,
            20 => DigestKind::Sha1,
            32 => DigestKind::Sha256,
            _ => return None,
        };
        let mut b = [0u8; 32];
        b[..bytes.len()].copy_from_slice(bytes);
        Some(Digest { kind, bytes: b })
    }

    /// Parses hex in either case; the kind comes from the length.
    pub fn from_hex(hex: &[u8]) -> Result<Digest, DigestError> {
        let kind = DigestKind::from_hex_len(hex.len()).ok_or(DigestError::Length(hex.len()))?;
        let mut bytes = [0u8; 32];
        let mut bad = 0u8;
        for (out, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
            let hi = HEX_VALUES[pair[0] as usize];
            let lo = HEX_VALUES[pair[1] as usize];
            bad |= hi | lo;
            *out = hi << 4 | (lo & 0x0f);
        }
        if bad & 0xf0 != 0 {
            let at = hex
                .iter()
                .position(|c| HEX_VALUES[*c as usize] == 0xff)
                .unwrap_or(0);
            return Err(DigestError::NotHex(at));
        }
        Ok(Digest { kind, bytes })
    }

    /// The digest's kind.
    pub fn kind(&self) -> DigestKind {
        self.kind
    }

    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.kind.byte_len()]
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(self.kind.byte_len() * 2);
        for b in self.as_bytes() {
            s.push(char::from(b"0123456789abcdef"[(b >> 4) as usize]));
            s.push(char::from(b"0123456789abcdef"[(b & 15) as usize]));
        }
        s
    }

    /// The 128-bit fingerprint stored in the table: the first 16 bytes, big-endian.
    #[inline]
    pub fn fingerprint(&self) -> u128 {
        let mut b = [0u8; 16];
        b.copy_from_slice(&self.bytes[..16]);
        u128::from_be_bytes(b)
    }

    /// The filter hash of this digest.
    #[inline]
    pub fn key_hash(&self) -> KeyHash {
        fingerprint_hash(self.kind, self.fingerprint())
    }
}

/// The filter hash of a fingerprint of the given kind.
#[inline]
pub fn fingerprint_hash(kind: DigestKind, fp: u128) -> KeyHash {
    let hi = (fp >> 64) as u64;
    let lo = fp as u64;
    KeyHash(mix64(lo ^ kind.seed()).wrapping_add(hi.rotate_left(29)) ^ mix64(hi))
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::from_hex(s.as_bytes())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.to_hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_each_kind_in_either_case() {
        let d: Digest = "44D88612FEA8A8F36DE82E1278ABB02F".parse().unwrap();
        assert_eq!(d.kind(), DigestKind::Md5);
        assert_eq!(d.to_hex(), "44d88612fea8a8f36de82e1278abb02f");
        let d: Digest = "3395856ce81f2b7382dee72602f798b642f14140".parse().unwrap();
        assert_eq!(d.kind(), DigestKind::Sha1);
        let d: Digest = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
            .parse()
            .unwrap();
        assert_eq!(d.kind(), DigestKind::Sha256);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!("abc".parse::<Digest>(), Err(DigestError::Length(3)));
        assert_eq!(
            "g4d88612fea8a8f36de82e1278abb02f".parse::<Digest>(),
            Err(DigestError::NotHex(0))
        );
        assert!("44d88612fea8a8f36de82e1278abb0é".parse::<Digest>().is_err());
    }

    proptest! {
        #[test]
        fn hex_round_trips(bytes in prop::collection::vec(any::<u8>(), 32), len in prop::sample::select(vec![16usize, 20, 32])) {
            let d = Digest::from_bytes(&bytes[..len]).unwrap();
            let back: Digest = d.to_hex().to_uppercase().parse().unwrap();
            prop_assert_eq!(d, back);
        }
    }
}
