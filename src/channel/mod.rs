//! The update channel: what `repute publish` writes and `repute update` reads, without the
//! transport (the library has no network code; the CLI fetches the bytes).
//!
//! ```text
//! CHANNEL/
//!   <identity>.snap             full snapshots, named by their SHA-256 (never rewritten)
//!   <identity>.delta            deltas from an earlier sequence to the current one
//!   <name>.minisig              their signatures (trusted comment names sequence, identity, kind)
//!   manifest.json               what is current (written last: temporary file, fsync, rename)
//!   manifest.json.minisig       its signature (trusted comment: `repute manifest sequence=N`)
//! ```
//!
//! A client checks the manifest's signature and its trusted comment ([`Manifest::from_signed`]),
//! refuses a lower sequence than it has (rollback) and a manifest past its expiry (freeze), and
//! picks the delta that applies to what it has, else the base ([`plan`]). Every name in a
//! manifest is a plain content address (`<sha256>.snap` / `<sha256>.delta`), so a forged or
//! careless manifest cannot point a client outside the channel.
//!
//! [`Backoff`] is the client's schedule: the manifest's minimum wait after a check, and Safe
//! Browsing's back-off after failures, `min(2^(n-1) x 15 min x (1 + r), 24 h)` for the n-th
//! failure in a row, `r` uniform in [0, 1).

use serde::{Deserialize, Serialize};

use crate::sign::{self, PublicKey};
use crate::{Error, Policy, Result};

/// The manifest's file name in a channel.
pub const MANIFEST: &str = "manifest.json";

/// The manifest format this library reads and writes.
pub const FORMAT: u32 = 1;

/// Largest manifest a client reads (bytes).
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// Largest signature file a client reads (bytes).
pub const MAX_SIGNATURE_BYTES: u64 = 16 << 10;

/// One file of the channel, as the manifest names it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// The file name, relative to the channel (content-addressed: `<sha256>.snap`).
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its lowercase hex SHA-256 (the snapshot identity).
    pub sha256: String,
    /// The snapshot's sequence.
    pub sequence: u64,
}

/// A delta from an older sequence to the manifest's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeltaEntry {
    /// The sequence it applies to.
    pub from_sequence: u64,
    /// The identity of the snapshot it applies to.
    pub from_identity: String,
    /// The delta file.
    #[serde(flatten)]
    pub file: FileEntry,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Manifest format version ([`FORMAT`]).
    pub format: u32,
    /// The current sequence.
    pub sequence: u64,
    /// When this manifest was published, Unix seconds.
    pub created: i64,
    /// After this, clients refuse the manifest (a frozen channel), Unix seconds.
    pub expires: i64,
    /// Seconds a client waits before checking again.
    pub min_wait: u64,
    /// The publisher's cloud policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// The full snapshot for this sequence.
    pub base: FileEntry,
    /// Deltas from older sequences to this one.
    #[serde(default)]
    pub deltas: Vec<DeltaEntry>,
    /// The last published sequences (newest first), so that a later publish can make
    /// deltas from them.
    #[serde(default)]
    pub history: Vec<FileEntry>,
}

/// The signed trusted comment of a manifest signature.
pub fn manifest_comment(sequence: u64) -> String {
    format!("repute manifest sequence={sequence}")
}

/// The name of a file's signature in a channel or state directory.
pub fn signature_name(name: &str) -> String {
    format!("{name}{}", sign::SIGNATURE_SUFFIX)
}

fn channel_error(reason: impl Into<String>) -> Error {
    Error::Channel {
        reason: reason.into(),
    }
}

fn is_identity(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl FileEntry {
    fn check(&self, what: &str, suffix: &str) -> Result<()> {
        let expected = format!("{}.{suffix}", self.sha256);
        if !is_identity(&self.sha256) {
            return Err(channel_error(format!(
                "{what}: sha256 {:?} is not 64 lowercase hex digits",
                self.sha256
            )));
        }
        if self.path != expected {
            return Err(channel_error(format!(
                "{what}: path {:?} is not the content address {expected:?}",
                self.path
            )));
        }
        if self.size == 0 {
            return Err(channel_error(format!("{what}: size 0")));
        }
        Ok(())
    }
}

impl Manifest {
    /// Parses a manifest after checking its signature with `public` and that the signed
    /// trusted comment names the manifest's own sequence, then checks every entry (content
    /// addresses only, format, sequences).
    ///
    /// # Errors
    ///
    /// [`Error::Signature`] for a bad or moved signature; [`Error::Channel`] for a malformed
    /// manifest.
    pub fn from_signed(public: &PublicKey, bytes: &[u8], signature: &str) -> Result<Manifest> {
        let trusted = sign::verify(public, bytes, signature)?;
        let manifest = Manifest::parse(bytes)?;
        if trusted.as_str() != manifest_comment(manifest.sequence) {
            return Err(Error::Signature {
                reason: format!(
                    "the manifest's signature says {:?}, but the manifest is for sequence {}: \
                     a signature of another manifest",
                    trusted.as_str(),
                    manifest.sequence
                ),
            });
        }
        Ok(manifest)
    }

    /// Parses and checks a manifest without a signature (the publisher's own files).
    ///
    /// # Errors
    ///
    /// [`Error::Channel`] for malformed JSON or entries.
    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| channel_error(format!("manifest.json is malformed: {e}")))?;
        manifest.check()?;
        Ok(manifest)
    }

    fn check(&self) -> Result<()> {
        if self.format != FORMAT {
            return Err(channel_error(format!(
                "manifest format {} (this repute reads format {FORMAT}); upgrade repute",
                self.format
            )));
        }
        self.base.check("base", "snap")?;
        if self.base.sequence != self.sequence {
            return Err(channel_error(format!(
                "base has sequence {} but the manifest {}",
                self.base.sequence, self.sequence
            )));
        }
        for d in &self.deltas {
            d.file.check("delta", "delta")?;
            if !is_identity(&d.from_identity) || d.from_sequence >= self.sequence {
                return Err(channel_error(format!(
                    "delta {} is from sequence {} ({:?}), not an earlier snapshot",
                    d.file.path, d.from_sequence, d.from_identity
                )));
            }
            if d.file.sequence != self.sequence {
                return Err(channel_error(format!(
                    "delta {} leads to sequence {}, not the manifest's {}",
                    d.file.path, d.file.sequence, self.sequence
                )));
            }
        }
        for h in &self.history {
            h.check("history", "snap")?;
        }
        if let Some(policy) = &self.policy {
            policy
                .validate()
                .map_err(|e| channel_error(format!("policy: {e}")))?;
        }
        Ok(())
    }

    /// The manifest as the JSON a publisher writes (pretty, newline-terminated).
    ///
    /// # Errors
    ///
    /// Never in practice (serialization of plain data).
    pub fn to_json(&self) -> Result<Vec<u8>> {
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| channel_error(e.to_string()))?;
        json.push(b'\n');
        Ok(json)
    }
}

/// What a client has installed: the sequence and identity of the snapshot its layers give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Sequence of the newest layer.
    pub sequence: u64,
    /// Identity of the snapshot base + deltas amount to.
    pub identity: String,
}

/// What a client should do about a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// It already has the manifest's snapshot.
    Current,
    /// Fetch this delta (it applies to what the client has).
    Delta(DeltaEntry),
    /// Fetch the full snapshot.
    Base(FileEntry),
}

/// Decides what to fetch.
///
/// # Errors
///
/// [`Error::Channel`] when the manifest is past its expiry at `now` (a frozen channel, which
/// a replay of an old manifest also looks like), or offers a lower sequence than installed
/// (a rollback), or the installed sequence with another identity.
pub fn plan(manifest: &Manifest, installed: Option<&Installed>, now: i64) -> Result<Plan> {
    if manifest.expires <= now {
        return Err(channel_error(format!(
            "the manifest (sequence {}) expired at {}: the channel is frozen or replayed; \
             keeping the installed snapshot",
            manifest.sequence,
            crate::time::iso8601(manifest.expires)
        )));
    }
    let Some(installed) = installed else {
        return Ok(Plan::Base(manifest.base.clone()));
    };
    if manifest.sequence < installed.sequence {
        return Err(channel_error(format!(
            "the manifest offers sequence {}, lower than the installed {}: refusing a rollback",
            manifest.sequence, installed.sequence
        )));
    }
    if manifest.sequence == installed.sequence {
        if manifest.base.sha256 == installed.identity {
            return Ok(Plan::Current);
        }
        return Err(channel_error(format!(
            "the manifest's sequence {} is the installed one but names snapshot {}, not the \
             installed {}: the publisher reused a sequence",
            manifest.sequence, manifest.base.sha256, installed.identity
        )));
    }
    match manifest
        .deltas
        .iter()
        .find(|d| d.from_identity == installed.identity && d.from_sequence == installed.sequence)
    {
        // A delta is only worth it when it is smaller than the base.
        Some(d) if d.file.size < manifest.base.size => Ok(Plan::Delta(d.clone())),
        _ => Ok(Plan::Base(manifest.base.clone())),
    }
}

/// A client's schedule, kept in its state directory (`backoff.json`) so that a cron job
/// obeys it too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backoff {
    /// Failures in a row (0 after a success).
    pub failures: u32,
    /// Do not check before this, Unix seconds (0: any time).
    pub not_before: i64,
    /// When the last attempt was made.
    #[serde(default)]
    pub last_attempt: i64,
    /// The last attempt's error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the last attempt succeeded.
    #[serde(default)]
    pub last_success: i64,
}

/// The back-off after the `failures`-th failure in a row, in seconds:
/// `min(2^(failures-1) x 15 min x (1 + r), 24 h)` with `r` in [0, 1).
pub fn backoff_seconds(failures: u32, r: f64) -> u64 {
    const DAY: f64 = 86_400.0;
    if failures == 0 {
        return 0;
    }
    let r = r.clamp(0.0, 1.0);
    let exp = f64::from(failures.saturating_sub(1).min(16));
    let wait = 2f64.powf(exp) * 900.0 * (1.0 + r);
    wait.min(DAY) as u64
}

impl Backoff {
    /// After a successful check at `now`: the next check waits `min_wait` seconds.
    pub fn succeeded(&mut self, now: i64, min_wait: u64) {
        self.failures = 0;
        self.last_attempt = now;
        self.last_success = now;
        self.last_error = None;
        self.not_before = now.saturating_add(i64::try_from(min_wait).unwrap_or(i64::MAX));
    }

    /// After a failed attempt at `now` (`r` in [0, 1) from a random source).
    pub fn failed(&mut self, now: i64, error: String, r: f64) {
        self.failures = self.failures.saturating_add(1);
        self.last_attempt = now;
        self.last_error = Some(error);
        let wait = backoff_seconds(self.failures, r);
        self.not_before = now.saturating_add(i64::try_from(wait).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::{sign, KeyPair};

    fn entry(seq: u64, c: char, suffix: &str) -> FileEntry {
        let sha: String = std::iter::repeat_n(c, 64).collect();
        FileEntry {
            path: format!("{sha}.{suffix}"),
            size: 1000,
            sha256: sha,
            sequence: seq,
        }
    }

    fn manifest(seq: u64) -> Manifest {
        Manifest {
            format: FORMAT,
            sequence: seq,
            created: 100,
            expires: 10_000,
            min_wait: 60,
            policy: None,
            base: entry(seq, 'b', "snap"),
            deltas: vec![DeltaEntry {
                from_sequence: seq - 1,
                from_identity: "a".repeat(64),
                file: FileEntry {
                    size: 10,
                    ..entry(seq, 'd', "delta")
                },
            }],
            history: vec![],
        }
    }

    #[test]
    fn plans() {
        let m = manifest(5);
        let at = |seq, c: char| Installed {
            sequence: seq,
            identity: c.to_string().repeat(64),
        };
        assert_eq!(plan(&m, None, 200).unwrap(), Plan::Base(m.base.clone()));
        assert_eq!(
            plan(&m, Some(&at(4, 'a')), 200).unwrap(),
            Plan::Delta(m.deltas[0].clone())
        );
        // A delta for another base: the full snapshot.
        assert_eq!(
            plan(&m, Some(&at(4, 'c')), 200).unwrap(),
            Plan::Base(m.base.clone())
        );
        assert_eq!(plan(&m, Some(&at(5, 'b')), 200).unwrap(), Plan::Current);
        let e = plan(&m, Some(&at(5, 'c')), 200).unwrap_err().to_string();
        assert!(e.contains("reused a sequence"), "{e}");
        let e = plan(&m, Some(&at(6, 'c')), 200).unwrap_err().to_string();
        assert!(e.contains("rollback"), "{e}");
        let e = plan(&m, Some(&at(4, 'a')), 10_000).unwrap_err().to_string();
        assert!(e.contains("expired"), "{e}");
        // A delta larger than the base is not worth fetching.
        let mut big = m.clone();
        big.deltas[0].file.size = 5000;
        assert_eq!(
            plan(&big, Some(&at(4, 'a')), 200).unwrap(),
            Plan::Base(m.base.clone())
        );
    }

    #[test]
    fn signed_manifest_checks() {
        let keys = KeyPair::generate().unwrap();
        let m = manifest(5);
        let json = m.to_json().unwrap();
        let sig = sign(&keys.secret, &json, &manifest_comment(5)).unwrap();
        assert_eq!(Manifest::from_signed(&keys.public, &json, &sig).unwrap(), m);
        // One changed byte.
        let mut changed = json.clone();
        let at = changed.iter().position(|&b| b == b'5').unwrap();
        changed[at] = b'6';
        assert!(Manifest::from_signed(&keys.public, &changed, &sig).is_err());
        // The signature of another sequence's manifest.
        let moved = sign(&keys.secret, &json, &manifest_comment(4)).unwrap();
        let e = Manifest::from_signed(&keys.public, &json, &moved).unwrap_err();
        assert!(e.to_string().contains("another manifest"), "{e}");
        // Another key.
        let other = KeyPair::generate().unwrap();
        assert!(Manifest::from_signed(&other.public, &json, &sig).is_err());
    }

    #[test]
    fn names_are_confined_to_content_addresses() {
        for bad in ["../etc/passwd", "/etc/shadow", "x/../../y.snap"] {
            let mut m = manifest(5);
            m.base.path = bad.into();
            let e = Manifest::parse(&m.to_json().unwrap()).unwrap_err();
            assert!(e.to_string().contains("content address"), "{e}");
        }
        let mut m = manifest(5);
        m.deltas[0].file.path = format!("../{}.delta", "d".repeat(64));
        assert!(Manifest::parse(&m.to_json().unwrap()).is_err());
        let mut m = manifest(5);
        m.deltas[0].from_sequence = 5;
        assert!(Manifest::parse(&m.to_json().unwrap()).is_err());
        let mut m = manifest(5);
        m.format = 2;
        assert!(Manifest::parse(&m.to_json().unwrap())
            .unwrap_err()
            .to_string()
            .contains("upgrade"));
    }

    #[test]
    fn backoff_follows_safe_browsing() {
        assert_eq!(backoff_seconds(0, 0.5), 0);
        assert_eq!(backoff_seconds(1, 0.0), 900);
        assert_eq!(backoff_seconds(1, 0.999), 1799);
        assert_eq!(backoff_seconds(2, 0.0), 1800);
        assert_eq!(backoff_seconds(3, 0.5), 5400);
        assert_eq!(backoff_seconds(8, 0.0), 86_400);
        assert_eq!(backoff_seconds(u32::MAX, 0.9), 86_400);
        let mut b = Backoff::default();
        b.failed(1000, "x".into(), 0.0);
        b.failed(2000, "y".into(), 0.0);
        assert_eq!((b.failures, b.not_before), (2, 3800));
        b.succeeded(5000, 60);
        assert_eq!((b.failures, b.not_before, b.last_error), (0, 5060, None));
    }
}
