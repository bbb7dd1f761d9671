//! Signatures in [minisign](https://jedisct1.github.io/minisign/)'s format (Ed25519).
//!
//! A snapshot `FILE` is signed by `FILE.minisig`, a minisign signature whose signed
//! *trusted comment* names what was signed:
//!
//! ```text
//! repute snapshot sequence=N identity=<sha256 hex> kind=base|delta
//! ```
//!
//! so that a signature cannot be replayed onto another snapshot, and a signed old snapshot
//! cannot pass for a newer one. Files signed here verify with `minisign -Vm FILE -p KEY.pub`,
//! and signatures made by `minisign -S` verify here.
//!
//! Verification is done by the `minisign-verify` crate (pre-hashed signatures only: the
//! default of minisign since 0.8). Signing uses `ed25519-dalek`.
//!
//! Secret keys: repute reads unencrypted minisign secret keys (`minisign -G -W`, or
//! `repute keygen`). Debian's minisign 0.11 writes such keys with an all-zero checksum;
//! repute accepts that and checks instead that the key's embedded public half matches its
//! secret half. Password-protected keys are refused with a message saying how to make an
//! unencrypted one (`minisign -G -W`); keep unencrypted secret keys readable by their
//! owner only (keygen writes them 0600).
//!
//! ```
//! use repute::sign::{KeyPair, sign, verify};
//!
//! let pair = KeyPair::generate().unwrap();
//! let text = sign(&pair.secret, b"data", "hello").unwrap();
//! let comment = verify(&pair.public, b"data", &text).unwrap();
//! assert_eq!(comment.as_str(), "hello");
//! assert!(verify(&pair.public, b"datA", &text).is_err());
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use blake2::digest::consts::U32;
use blake2::{Blake2b, Blake2b512, Digest as _};
use ed25519_dalek::Signer as _;

use crate::{Error, Result, Snapshot};

/// Signature algorithm tag of keys (`Ed`).
const ALG_KEY: [u8; 2] = *b"Ed";
/// Signature algorithm tag of pre-hashed signatures (`ED`: Ed25519 over BLAKE2b-512).
const ALG_PREHASHED: [u8; 2] = *b"ED";
/// Key derivation tag of encrypted secret keys (scrypt).
const KDF_SCRYPT: [u8; 2] = *b"Sc";
/// Checksum algorithm tag (BLAKE2b-256).
const CHK_BLAKE2: [u8; 2] = *b"B2";
/// Length of a decoded secret key: algorithms (6), salt (32), limits (16), key id (8),
/// secret key (64), checksum (32).
const SECRET_KEY_LEN: usize = 158;

/// The suffix of a signature file: `FILE` is signed by `FILE.minisig`.
pub const SIGNATURE_SUFFIX: &str = ".minisig";

/// The path of the signature of `path`: `path` with `.minisig` appended.
pub fn signature_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(SIGNATURE_SUFFIX);
    PathBuf::from(s)
}

fn sig_error(reason: impl Into<String>) -> Error {
    Error::Signature {
        reason: reason.into(),
    }
}

fn read_text(path: &Path, what: &str) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|error| Error::Io {
        path: path.to_path_buf(),
        error,
    })?;
    String::from_utf8(bytes)
        .map_err(|_| sig_error(format!("{}: {what} is not text", path.display())))
}

/// A key id as minisign prints it: the 8 id bytes read as a little-endian number, in hex.
fn key_id_hex(id: &[u8; 8]) -> String {
    format!("{:016X}", u64::from_le_bytes(*id))
}

/// A minisign public key.
#[derive(Clone)]
pub struct PublicKey {
    key_id: [u8; 8],
    key: [u8; 32],
    inner: minisign_verify::PublicKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_id", &self.key_id())
            .finish()
    }
}

impl PublicKey {
    /// Parses the base64 line of a public key (what `minisign -P` takes).
    pub fn from_base64(text: &str) -> Result<PublicKey> {
        let text = text.trim();
        let bin = BASE64
            .decode(text)
            .map_err(|e| sig_error(format!("public key is not base64: {e}")))?;
        if bin.len() != 42 {
            return Err(sig_error(format!(
                "public key is {} bytes, a minisign public key is 42",
                bin.len()
            )));
        }
        if bin[0..2] != ALG_KEY {
            return Err(sig_error("public key is not an Ed25519 minisign key"));
        }
        let inner = minisign_verify::PublicKey::from_base64(text)
            .map_err(|e| sig_error(format!("public key: {e}")))?;
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&bin[2..10]);
        let mut key = [0u8; 32];
        key.copy_from_slice(&bin[10..42]);
        Ok(PublicKey { key_id, key, inner })
    }

    /// Parses a public key file (`untrusted comment: ...` then the base64 line), or a
    /// bare base64 line.
    pub fn decode(text: &str) -> Result<PublicKey> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .ok_or_else(|| sig_error("public key file holds no key line"))?;
        PublicKey::from_base64(line)
    }

    /// Reads a public key file, as written by `minisign -G` or `repute keygen`.
    pub fn from_file(path: &Path) -> Result<PublicKey> {
        let text = read_text(path, "public key")?;
        PublicKey::decode(&text).map_err(|e| sig_error(format!("{}: {e}", path.display())))
    }

    /// The key id, as minisign prints it (16 upper-case hex digits).
    pub fn key_id(&self) -> String {
        key_id_hex(&self.key_id)
    }

    /// The base64 line of the key.
    pub fn to_base64(&self) -> String {
        let mut bin = Vec::with_capacity(42);
        bin.extend_from_slice(&ALG_KEY);
        bin.extend_from_slice(&self.key_id);
        bin.extend_from_slice(&self.key);
        BASE64.encode(bin)
    }

    /// The contents of a public key file.
    pub fn to_file_text(&self) -> String {
        format!(
            "untrusted comment: minisign public key {}\n{}\n",
            self.key_id(),
            self.to_base64()
        )
    }
}

/// A minisign secret key (unencrypted in memory).
#[derive(Clone)]
pub struct SecretKey {
    key_id: [u8; 8],
    signing: ed25519_dalek::SigningKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("key_id", &key_id_hex(&self.key_id))
            .finish_non_exhaustive()
    }
}

fn key_checksum(key_id: &[u8; 8], keypair: &[u8; 64]) -> [u8; 32] {
    let mut h = Blake2b::<U32>::new();
    h.update(ALG_KEY);
    h.update(key_id);
    h.update(keypair);
    h.finalize().into()
}

impl SecretKey {
    /// Parses a secret key file (`untrusted comment: ...` then the base64 line).
    pub fn decode(text: &str) -> Result<SecretKey> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .ok_or_else(|| sig_error("secret key file holds no key line"))?;
        let bin = BASE64
            .decode(line)
            .map_err(|e| sig_error(format!("secret key is not base64: {e}")))?;
        if bin.len() != SECRET_KEY_LEN {
            return Err(sig_error(format!(
                "secret key is {} bytes, a minisign secret key is {SECRET_KEY_LEN}",
                bin.len()
            )));
        }
        if bin[0..2] != ALG_KEY {
            return Err(sig_error("secret key is not an Ed25519 minisign key"));
        }
        match [bin[2], bin[3]] {
            [0, 0] => {}
            KDF_SCRYPT => {
                return Err(sig_error(
                    "secret key is protected by a password, which repute does not read; \
                     make an unencrypted key with `repute keygen` or `minisign -G -W`, \
                     or remove the password with `minisign -C -W -s KEY`",
                ))
            }
            other => {
                return Err(sig_error(format!(
                    "secret key uses unknown key derivation {other:?}"
                )))
            }
        }
        if bin[4..6] != CHK_BLAKE2 {
            return Err(sig_error("secret key uses an unknown checksum algorithm"));
        }
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&bin[54..62]);
        let mut keypair = [0u8; 64];
        keypair.copy_from_slice(&bin[62..126]);
        let stored = &bin[126..158];
        // Debian's minisign 0.11 writes unencrypted keys with an all-zero checksum: accept
        // it, relying on the public-half check below instead.
        if stored.iter().any(|&b| b != 0) && stored != key_checksum(&key_id, &keypair) {
            return Err(sig_error(
                "secret key checksum does not match: the key file is damaged",
            ));
        }
        let signing = ed25519_dalek::SigningKey::from_keypair_bytes(&keypair).map_err(|_| {
            sig_error("secret key is damaged: its public half does not match its secret half")
        })?;
        Ok(SecretKey { key_id, signing })
    }

    /// Reads a secret key file.
    pub fn from_file(path: &Path) -> Result<SecretKey> {
        let text = read_text(path, "secret key")?;
        SecretKey::decode(&text).map_err(|e| sig_error(format!("{}: {e}", path.display())))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        let key = self.signing.verifying_key().to_bytes();
        let mut bin = Vec::with_capacity(42);
        bin.extend_from_slice(&ALG_KEY);
        bin.extend_from_slice(&self.key_id);
        bin.extend_from_slice(&key);
        // Cannot fail: the bytes are a well-formed key by construction.
        let inner = minisign_verify::PublicKey::from_base64(&BASE64.encode(&bin))
            .unwrap_or_else(|_| unreachable!("a constructed public key parses"));
        PublicKey {
            key_id: self.key_id,
            key,
            inner,
        }
    }

    /// The key id (16 upper-case hex digits).
    pub fn key_id(&self) -> String {
        key_id_hex(&self.key_id)
    }

    /// The contents of an unencrypted secret key file (minisign's format, with a real
    /// BLAKE2b checksum).
    pub fn to_file_text(&self) -> String {
        let keypair = self.signing.to_keypair_bytes();
        let mut bin = Vec::with_capacity(SECRET_KEY_LEN);
        bin.extend_from_slice(&ALG_KEY);
        bin.extend_from_slice(&[0, 0]);
        bin.extend_from_slice(&CHK_BLAKE2);
        bin.extend_from_slice(&[0u8; 32 + 8 + 8]);
        bin.extend_from_slice(&self.key_id);
        bin.extend_from_slice(&keypair);
        bin.extend_from_slice(&key_checksum(&self.key_id, &keypair));
        format!(
            "untrusted comment: minisign secret key {} (unencrypted)\n{}\n",
            self.key_id(),
            BASE64.encode(bin)
        )
    }
}

/// A freshly generated key pair.
#[derive(Debug, Clone)]
pub struct KeyPair {
    /// The public half, for verifiers.
    pub public: PublicKey,
    /// The secret half, for the publisher.
    pub secret: SecretKey,
}

impl KeyPair {
    /// Generates a key pair from the operating system's random source.
    pub fn generate() -> Result<KeyPair> {
        let mut seed = [0u8; 32];
        let mut key_id = [0u8; 8];
        getrandom::fill(&mut seed)
            .and_then(|()| getrandom::fill(&mut key_id))
            .map_err(|e| sig_error(format!("no randomness from the operating system: {e}")))?;
        let secret = SecretKey {
            key_id,
            signing: ed25519_dalek::SigningKey::from_bytes(&seed),
        };
        Ok(KeyPair {
            public: secret.public_key(),
            secret,
        })
    }
}

/// Signs `data`, returning the text of a minisign signature file (pre-hashed, `ED`) whose
/// trusted comment is `trusted_comment` (one line).
pub fn sign(secret: &SecretKey, data: &[u8], trusted_comment: &str) -> Result<String> {
    if trusted_comment.contains(['\n', '\r']) {
        return Err(sig_error("a trusted comment must be one line"));
    }
    let hash = Blake2b512::digest(data);
    let signature = secret.signing.sign(&hash).to_bytes();
    let mut global = Vec::with_capacity(64 + trusted_comment.len());
    global.extend_from_slice(&signature);
    global.extend_from_slice(trusted_comment.as_bytes());
    let global_signature = secret.signing.sign(&global).to_bytes();
    let mut bin = Vec::with_capacity(74);
    bin.extend_from_slice(&ALG_PREHASHED);
    bin.extend_from_slice(&secret.key_id);
    bin.extend_from_slice(&signature);
    Ok(format!(
        "untrusted comment: signature from repute secret key {}\n{}\ntrusted comment: {}\n{}\n",
        secret.key_id(),
        BASE64.encode(bin),
        trusted_comment,
        BASE64.encode(global_signature)
    ))
}

/// The verified trusted comment of a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedComment(String);

impl TrustedComment {
    /// The comment's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value of a `key=value` word of the comment.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.0
            .split_ascii_whitespace()
            .filter_map(|w| w.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

impl fmt::Display for TrustedComment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Verifies a minisign signature (`sig_text`, the contents of a `.minisig` file) of
/// `data` and returns its trusted comment, which the signature covers.
pub fn verify(public: &PublicKey, data: &[u8], sig_text: &str) -> Result<TrustedComment> {
    let signature = minisign_verify::Signature::decode(sig_text).map_err(|e| match e {
        minisign_verify::Error::UnsupportedAlgorithm => {
            sig_error("signature uses an unknown algorithm")
        }
        _ => sig_error("signature file is malformed (not minisign's four-line format)"),
    })?;
    public
        .inner
        .verify(data, &signature, false)
        .map_err(|e| match e {
            minisign_verify::Error::UnexpectedKeyId => sig_error(format!(
                "signature was made by another key than {} (the public key given)",
                public.key_id()
            )),
            minisign_verify::Error::UnexpectedAlgorithm
            | minisign_verify::Error::UnsupportedLegacyMode => sig_error(
                "signature is a legacy (not pre-hashed) minisign signature; re-sign with minisign 0.8 or later",
            ),
            _ => sig_error(
                "signature does not match: the file, the signature or its trusted comment was changed",
            ),
        })?;
    Ok(TrustedComment(signature.trusted_comment().to_owned()))
}

/// Whether a snapshot file is a full snapshot or a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind {
    /// A full snapshot.
    Base,
    /// A delta on top of a base.
    Delta,
}

impl SnapshotKind {
    /// `base` or `delta`.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Base => "base",
            SnapshotKind::Delta => "delta",
        }
    }
}

/// What the trusted comment of a snapshot signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotComment {
    /// The snapshot's sequence number.
    pub sequence: u64,
    /// The snapshot's identity (hex SHA-256 of the whole file).
    pub identity: String,
    /// Base or delta.
    pub kind: SnapshotKind,
}

impl SnapshotComment {
    /// Describes a snapshot (computes its identity: O(file size)).
    pub fn of<D: AsRef<[u8]>>(snapshot: &Snapshot<D>) -> Result<SnapshotComment> {
        let kind = if snapshot.delta_info()?.is_some() {
            SnapshotKind::Delta
        } else {
            SnapshotKind::Base
        };
        Ok(SnapshotComment {
            sequence: snapshot.metadata()?.sequence,
            identity: snapshot.identity(),
            kind,
        })
    }

    /// Reads a trusted comment in the form this type displays as.
    pub fn parse(comment: &TrustedComment) -> Result<SnapshotComment> {
        let bad = || {
            sig_error(format!(
                "trusted comment {:?} is not a repute snapshot signature \
                 (expected `repute snapshot sequence=N identity=HEX kind=base|delta`)",
                comment.as_str()
            ))
        };
        if !comment.as_str().starts_with("repute snapshot ") {
            return Err(bad());
        }
        let sequence = comment
            .field("sequence")
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        let identity = comment.field("identity").ok_or_else(bad)?;
        if identity.len() != 64 || !identity.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let kind = match comment.field("kind") {
            Some("base") => SnapshotKind::Base,
            Some("delta") => SnapshotKind::Delta,
            _ => return Err(bad()),
        };
        Ok(SnapshotComment {
            sequence,
            identity: identity.to_ascii_lowercase(),
            kind,
        })
    }
}

impl fmt::Display for SnapshotComment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "repute snapshot sequence={} identity={} kind={}",
            self.sequence,
            self.identity,
            self.kind.as_str()
        )
    }
}

/// Signs a snapshot: the text of its `.minisig` file, with the snapshot trusted comment.
pub fn sign_snapshot<D: AsRef<[u8]>>(secret: &SecretKey, snapshot: &Snapshot<D>) -> Result<String> {
    let comment = SnapshotComment::of(snapshot)?;
    sign(secret, snapshot.as_bytes(), &comment.to_string())
}

/// Verifies a snapshot's signature, and that its trusted comment names this very snapshot
/// (identity, sequence and kind), so a signature cannot be moved to another file.
pub fn verify_snapshot<D: AsRef<[u8]>>(
    public: &PublicKey,
    snapshot: &Snapshot<D>,
    sig_text: &str,
) -> Result<SnapshotComment> {
    let trusted = verify(public, snapshot.as_bytes(), sig_text)?;
    let signed = SnapshotComment::parse(&trusted)?;
    let actual = SnapshotComment::of(snapshot)?;
    if signed != actual {
        return Err(sig_error(format!(
            "signature is for another snapshot: it says `{signed}`, the file is `{actual}`"
        )));
    }
    Ok(signed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let pair = KeyPair::generate().unwrap();
        let text = sign(&pair.secret, b"hello", "repute test").unwrap();
        assert_eq!(
            verify(&pair.public, b"hello", &text).unwrap().as_str(),
            "repute test"
        );
        assert!(verify(&pair.public, b"hellp", &text).is_err());
        let changed = text.replace("repute test", "repute tesT");
        assert!(verify(&pair.public, b"hello", &changed).is_err());
        let other = KeyPair::generate().unwrap();
        let err = verify(&other.public, b"hello", &text).unwrap_err();
        assert!(err.to_string().contains("another key"), "{err}");
    }

    #[test]
    fn key_files_round_trip() {
        let pair = KeyPair::generate().unwrap();
        let secret = SecretKey::decode(&pair.secret.to_file_text()).unwrap();
        let public = PublicKey::decode(&pair.public.to_file_text()).unwrap();
        assert_eq!(public.to_base64(), pair.public.to_base64());
        assert_eq!(secret.public_key().to_base64(), pair.public.to_base64());
    }

    #[test]
    fn zero_checksum_accepted_but_damage_refused() {
        let pair = KeyPair::generate().unwrap();
        let text = pair.secret.to_file_text();
        let line = text.lines().nth(1).unwrap();
        let mut bin = BASE64.decode(line).unwrap();
        bin[126..158].fill(0);
        let zeroed = format!("untrusted comment: x\n{}\n", BASE64.encode(&bin));
        assert!(SecretKey::decode(&zeroed).is_ok());
        // Damage the public half: refused even without a checksum.
        bin[100] ^= 1;
        let damaged = format!("untrusted comment: x\n{}\n", BASE64.encode(&bin));
        assert!(SecretKey::decode(&damaged).is_err());
    }

    #[test]
    fn comment_fields() {
        let c = TrustedComment("repute snapshot sequence=7 identity=ab kind=delta".into());
        assert_eq!(c.field("sequence"), Some("7"));
        assert!(SnapshotComment::parse(&c).is_err()); // identity too short
    }
}
