//! Reading keys and record fields from text, shared by the JSON lines and generic CSV
//! formats: a key's kind from its shape, verdicts, confidences and times.

use super::fields::parse_utc;
use super::{parse_digest, Item};
use crate::url::EntryKind;
use crate::{DigestKind, Verdict};

/// The key columns and fields, with the kind each one holds (`None`: from the value's shape).
pub(crate) const KEY_FIELDS: [(&str, Option<KeyKind>); 6] = [
    ("key", None),
    ("md5", Some(KeyKind::Digest(DigestKind::Md5))),
    ("sha1", Some(KeyKind::Digest(DigestKind::Sha1))),
    ("sha256", Some(KeyKind::Digest(DigestKind::Sha256))),
    ("url", Some(KeyKind::Web(EntryKind::Url))),
    ("domain", Some(KeyKind::Web(EntryKind::Domain))),
];

/// What a key field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Digest(DigestKind),
    Web(EntryKind),
}

/// A key from its text: a digest of the given kind, a URL or domain entry, or (with no
/// kind) whatever its shape says: 32, 40 or 64 hex digits are a digest, text with `://` or
/// `/` a URL, anything else a domain.
///
/// # Errors
///
/// When the text is empty or not a digest of the expected kind.
pub(crate) fn key_item(text: &str, kind: Option<KeyKind>) -> Result<Item, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty key".into());
    }
    let kind = kind.unwrap_or_else(|| {
        if let Some(k) = DigestKind::from_hex_len(text.len())
            .filter(|_| text.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            KeyKind::Digest(k)
        } else if text.contains('/') {
            KeyKind::Web(EntryKind::Url)
        } else {
            KeyKind::Web(EntryKind::Domain)
        }
    });
    Ok(match kind {
        KeyKind::Digest(k) => Item::Digest(parse_digest(text, Some(k))?),
        KeyKind::Web(k) => Item::Web(text.to_string(), k),
    })
}

/// A verdict; `unknown` is refused (a feed lists what it knows).
///
/// # Errors
///
/// When the text names no recorded verdict.
pub(crate) fn verdict(text: &str) -> Result<Verdict, String> {
    match text.parse::<Verdict>()? {
        Verdict::Unknown => Err("verdict `unknown` cannot be listed".into()),
        v => Ok(v),
    }
}

/// A confidence, 0 to 100.
///
/// # Errors
///
/// When the text is not a whole number from 0 to 100.
pub(crate) fn confidence(text: &str) -> Result<u8, String> {
    text.trim()
        .parse::<u8>()
        .ok()
        .filter(|c| *c <= 100)
        .ok_or_else(|| format!("confidence {text:.20} is not a whole number from 0 to 100"))
}

/// A time: Unix seconds, or a UTC date `YYYY-MM-DD[ HH:MM:SS]`.
///
/// # Errors
///
/// When the text is neither.
pub(crate) fn time(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<i64>()
            .map_err(|_| format!("time {t:.24} is out of range"));
    }
    parse_utc(t)
}
