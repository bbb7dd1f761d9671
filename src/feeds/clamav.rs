//! ClamAV hash signature databases: reading `.hdb`/`.hsb` (and their allowlists
//! `.fp`/`.sfp`), and writing digests back as `.hdb`/`.hsb` lines.
//!
//! A line is `hash:size:name[:min_flevel[:max_flevel]]`; the hash kind comes from its
//! length (MD5 in `.hdb`/`.fp`, SHA-1 or SHA-256 in `.hsb`/`.sfp`) and the size may be `*`
//! (any size). The file's extension (after `.gz`/`.zst`/`.zip`) tells the lists apart:
//!
//! | extension | verdict | note |
//! |---|---|---|
//! | `.hdb`, `.hsb` | the feed's (malicious) | signature name as the record's name |
//! | `.hdu`, `.hsu` | suspicious | ClamAV's potentially-unwanted lists |
//! | `.fp`, `.sfp` | trusted | allowlists: the feed becomes an override |
//!
//! PE section hashes (`.mdb`, `.msb`, ...) describe a section, not a file, and are refused.
//!
//! # Export
//!
//! [`export_clamav`] writes `(digest, name)` pairs as `hex:*:name:73` lines (73 is the
//! functionality level from which ClamAV accepts `*` sizes). A snapshot keeps only a
//! 128-bit fingerprint of each digest: for MD5 that is the whole digest, so
//! [`export_clamav_md5`] can rebuild an `.hdb` from a snapshot; SHA-1 and SHA-256 values
//! cannot be recovered from a snapshot and must be exported from the feed side, from the
//! digests as they are read.

use std::io::{self, Write};
use std::path::Path;

use super::{parse_digest, Item, LineParser, ParseError, Parsed};
use crate::{Digest, DigestKind, RecordId, RecordSpec, Snapshot, Verdict};

/// What kind of ClamAV list a file is, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClamavList {
    /// `.hdb`, `.hsb` (and unknown extensions): detections.
    Signatures,
    /// `.hdu`, `.hsu`: potentially unwanted.
    Unwanted,
    /// `.fp`, `.sfp`: false-positive allowlists.
    Allowlist,
}

impl ClamavList {
    /// The list kind and the digest kinds it may hold, from the file name.
    ///
    /// # Errors
    ///
    /// For section-hash databases, which are not file hashes.
    pub(crate) fn from_path(
        path: &Path,
    ) -> Result<(ClamavList, Option<&'static [DigestKind]>), String> {
        const MD5: &[DigestKind] = &[DigestKind::Md5];
        const SHA: &[DigestKind] = &[DigestKind::Sha1, DigestKind::Sha256];
        let ext = super::input::inner_extension(path);
        Ok(match ext.as_str() {
            "hdb" => (ClamavList::Signatures, Some(MD5)),
            "hsb" => (ClamavList::Signatures, Some(SHA)),
            "hdu" => (ClamavList::Unwanted, Some(MD5)),
            "hsu" => (ClamavList::Unwanted, Some(SHA)),
            "fp" => (ClamavList::Allowlist, Some(MD5)),
            "sfp" => (ClamavList::Allowlist, Some(SHA)),
            "mdb" | "msb" | "mdu" | "msu" | "imp" => {
                return Err(format!(
                    ".{ext} holds PE section or import hashes, not file hashes; \
                     only .hdb, .hsb, .hdu, .hsu, .fp and .sfp are read"
                ))
            }
            _ => (ClamavList::Signatures, None),
        })
    }
}

/// Reads ClamAV hash signature lines.
#[derive(Debug)]
pub(crate) struct ClamavParser {
    list: ClamavList,
    kinds: Option<&'static [DigestKind]>,
}

impl ClamavParser {
    pub(crate) fn new(path: &Path) -> Result<Self, String> {
        let (list, kinds) = ClamavList::from_path(path)?;
        Ok(ClamavParser { list, kinds })
    }
}

impl LineParser for ClamavParser {
    fn is_override(&self) -> bool {
        self.list == ClamavList::Allowlist
    }

    fn default_verdict(&self) -> Option<Verdict> {
        (self.list == ClamavList::Allowlist).then_some(Verdict::Trusted)
    }

    fn parse(&mut self, line: &str) -> Result<Parsed, ParseError> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(Parsed::Skip);
        }
        let fields: Vec<&str> = line.split(':').collect();
        if !(3..=5).contains(&fields.len()) {
            return Err(format!("expected `hash:size:name[:flevel]`, found {line:.80}").into());
        }
        let digest = parse_digest(fields[0], None)?;
        if let Some(kinds) = self.kinds {
            if !kinds.contains(&digest.kind()) {
                return Err(format!("{} digest in a list of {}", digest.kind(), kinds[0]).into());
            }
        }
        let size = fields[1];
        if size != "*" && (size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit())) {
            return Err(format!("size {size:.20} is neither a number nor `*`").into());
        }
        let name = fields[2].trim();
        if name.is_empty() {
            return Err(ParseError::from("empty signature name".to_string()));
        }
        for level in &fields[3..] {
            if !level.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("functionality level {level:.20} is not a number").into());
            }
        }
        let verdict = match self.list {
            ClamavList::Signatures => None,
            ClamavList::Unwanted => Some(Verdict::Suspicious),
            ClamavList::Allowlist => Some(Verdict::Trusted),
        };
        Ok(Parsed::Items(
            vec![Item::Digest(digest)],
            RecordSpec {
                verdict,
                name: Some(name.to_string()),
                ..RecordSpec::default()
            },
        ))
    }
}

/// Makes a name safe for a ClamAV line: no `:` (the field separator), no control
/// characters, never empty.
fn clamav_name(name: &str) -> String {
    let cleaned: String = name
        .trim()
        .chars()
        .map(|c| if c == ':' || c.is_control() { '_' } else { c })
        .collect();
    if cleaned.is_empty() {
        "Repute.Listed".to_string()
    } else {
        cleaned
    }
}

/// Writes digests as ClamAV hash signatures, `hex:*:name:73`, one per line: MD5 lines
/// belong in an `.hdb` file, SHA-1 and SHA-256 lines in an `.hsb` file. Only digests whose
/// kind is in `kinds` are written. Returns the number of lines written.
///
/// Use this from the feed side, with the digests as read: a snapshot stores only a 128-bit
/// fingerprint of each digest, from which a SHA-1 or SHA-256 cannot be rebuilt (see
/// [`export_clamav_md5`] for the one kind that can).
///
/// # Errors
///
/// When writing fails.
///
/// ```
/// use repute::feeds::export_clamav;
/// use repute::DigestKind;
///
/// let eicar = "44d88612fea8a8f36de82e1278abb02f".parse().unwrap();
/// let mut out = Vec::new();
/// export_clamav([(eicar, "Eicar-Test-Signature")], &[DigestKind::Md5], &mut out).unwrap();
/// assert_eq!(out, b"44d88612fea8a8f36de82e1278abb02f:*:Eicar-Test-Signature:73\n");
/// ```
pub fn export_clamav<I, S>(
    entries: I,
    kinds: &[DigestKind],
    writer: &mut dyn Write,
) -> io::Result<u64>
where
    I: IntoIterator<Item = (Digest, S)>,
    S: AsRef<str>,
{
    let mut written = 0;
    for (digest, name) in entries {
        if kinds.contains(&digest.kind()) {
            writeln!(
                writer,
                "{}:*:{}:73",
                digest.to_hex(),
                clamav_name(name.as_ref())
            )?;
            written += 1;
        }
    }
    Ok(written)
}

/// The ClamAV MD5 database extension that gives `verdict` its meaning when ClamAV loads
/// it: `hdb` (malware signatures) for malicious, `hdu` (potentially unwanted) for
/// suspicious, `fp` (the allowlist) for trusted. `None` for known and unknown, which ClamAV
/// has no list for. The lines are the same in each; only the extension tells ClamAV what
/// they mean, so an `.hdb` of trusted hashes would report every trusted file as malware.
///
/// ```
/// use repute::{feeds::clamav_md5_extension, Verdict};
///
/// assert_eq!(clamav_md5_extension(Verdict::Trusted), Some("fp"));
/// assert_eq!(clamav_md5_extension(Verdict::Known), None);
/// ```
pub fn clamav_md5_extension(verdict: Verdict) -> Option<&'static str> {
    match verdict {
        Verdict::Malicious => Some("hdb"),
        Verdict::Suspicious => Some("hdu"),
        Verdict::Trusted => Some("fp"),
        Verdict::Known | Verdict::Unknown => None,
    }
}

/// Writes a snapshot's MD5 entries whose verdict is `verdict` as `.hdb` lines
/// (`hex:*:name:73`, the record's name or `Repute.Listed`), in fingerprint order. Export
/// the malicious entries to an `.hdb`, the trusted ones to an `.fp`. Returns the number of
/// lines written.
///
/// # Errors
///
/// When writing fails.
pub fn export_clamav_md5<D: AsRef<[u8]>>(
    snapshot: &Snapshot<D>,
    verdict: Verdict,
    writer: &mut dyn Write,
) -> io::Result<u64> {
    let mut written = 0;
    for (fingerprint, id) in snapshot.digest_table(DigestKind::Md5).iter() {
        let Some(record) = snapshot.record(RecordId(id.0)) else {
            continue;
        };
        if record.verdict() != verdict {
            continue;
        }
        let Some(digest) = Digest::from_bytes(&fingerprint.to_be_bytes()) else {
            continue;
        };
        writeln!(
            writer,
            "{}:*:{}:73",
            digest.to_hex(),
            clamav_name(record.name().unwrap_or(""))
        )?;
        written += 1;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(file: &str, line: &str) -> Result<Parsed, ParseError> {
        ClamavParser::new(Path::new(file)).unwrap().parse(line)
    }

    #[test]
    fn lists_by_extension() {
        let md5 = "44d88612fea8a8f36de82e1278abb02f";
        let sha1 = "3395856ce81f2b7382dee72602f798b642f14140";
        let verdict = |file: &str, line: &str| match parse(file, line) {
            Ok(Parsed::Items(_, r)) => r.verdict,
            other => panic!("{file}: {other:?}"),
        };
        assert_eq!(verdict("daily.hdb", &format!("{md5}:68:Eicar")), None);
        assert_eq!(
            verdict("daily.hdu.gz", &format!("{md5}:*:PUA.Win.Tool:73")),
            Some(Verdict::Suspicious)
        );
        assert_eq!(
            verdict("daily.FP", &format!("{md5}:68:eicar.com")),
            Some(Verdict::Trusted)
        );
        assert_eq!(
            verdict("local.sfp", &format!("{sha1}:*:tool.exe:73")),
            Some(Verdict::Trusted)
        );
        assert_eq!(verdict("custom.txt", &format!("{sha1}:1:Any.Kind")), None);
        assert!(parse("daily.hdb", &format!("{sha1}:1:Sha1.In.Hdb")).is_err());
        assert!(parse("main.hsb", &format!("{md5}:1:Md5.In.Hsb")).is_err());
        assert!(ClamavParser::new(Path::new("main.mdb")).is_err());
        assert!(ClamavParser::new(Path::new("daily.fp"))
            .unwrap()
            .is_override());
        assert!(!ClamavParser::new(Path::new("daily.hdb"))
            .unwrap()
            .is_override());
    }

    #[test]
    fn malformed_signatures() {
        let md5 = "44d88612fea8a8f36de82e1278abb02f";
        for bad in [
            md5.to_string(),
            format!("{md5}:68"),
            format!("{md5}::Name"),
            format!("{md5}:-1:Name"),
            format!("{md5}:68: "),
            format!("{md5}:68:Name:x"),
            format!("{md5}:68:Name:1:2:3"),
            format!("{}:68:Name", &md5[1..]),
        ] {
            assert!(parse("x.hdb", &bad).is_err(), "{bad}");
        }
        assert_eq!(parse("x.hdb", "# note"), Ok(Parsed::Skip));
    }

    #[test]
    fn export_names_are_clamav_safe() {
        assert_eq!(clamav_name(" Win:Trojan\tX "), "Win_Trojan_X");
        assert_eq!(clamav_name(""), "Repute.Listed");
    }
}
