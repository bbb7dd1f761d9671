//! Web keys: canonicalization, host/path expressions, and the URL/domain FST.
//!
//! Every URL, whether it comes from a feed or a query, goes through [`canonicalize`] (or a
//! reused [`Canonicalizer`]), so the builder and lookups agree on one form. A canonical URL
//! yields up to 30 [`Expressions`] (host suffixes × path prefixes, as in the Safe Browsing
//! "URLs and hashing" rules). Entries are stored as expressions too, and an entry whose host
//! is a whole public suffix (`com`, `co.uk`, `github.io`) is refused:
//!
//! | entry | expression | matches |
//! |---|---|---|
//! | domain `example.com` | `example.com/` | the host, every subdomain, every path |
//! | URL prefix `example.com/a/` | `example.com/a/` | every URL under `/a/` on the host or its subdomains |
//! | exact URL `http://example.com/a?x` | `example.com/a?x` | that URL (on the host or its subdomains) |
//!
//! In the FST an expression is keyed in reversed-host order (`com.example/a/`), so that
//! everything under one domain is one contiguous range. An entry covers its host's
//! subdomains at any depth. The most specific match wins: the longest path expression first
//! (full path with query, full path, longest prefix ... `/`), then within one path the
//! longest host; except that an entry from an override (allowlist) feed wins over every
//! non-override entry it covers (one whose host is the override's host or a subdomain of
//! it, and whose path is the override's path or more specific).
//!
//! Scheme, userinfo and port take no part in matching: `https://example.com:8443/a` and
//! `http://example.com/a` are the same expressions.
//!
//! For many URLs, reuse a [`Canonicalizer`], a [`CanonicalUrl`] and an [`Expressions`]:
//! after the first few URLs a check allocates nothing (unless the host is an IDN).
//!
//! ```
//! use repute::url::{CanonicalUrl, Canonicalizer, EntryKind, Expressions};
//! use repute::{FeedInfo, RecordSpec, Snapshot, SnapshotBuilder, Verdict};
//!
//! let mut builder = SnapshotBuilder::new();
//! let feed = builder.add_feed(FeedInfo::new("phish", "domains", Verdict::Malicious));
//! builder.add_url_entry(feed, "login.example", EntryKind::Domain, RecordSpec::default())?;
//! let snapshot = Snapshot::open(builder.to_bytes()?)?;
//!
//! let (mut canonicalizer, mut url, mut scratch) =
//!     (Canonicalizer::new(), CanonicalUrl::default(), Expressions::new());
//! for (input, listed) in [("HTTPS://a.LOGIN.example./x#y", true), ("http://example/", false)] {
//!     canonicalizer.canonicalize_into(input, &mut url)?;
//!     let hit = snapshot.lookup_url(&url, &mut scratch)?;
//!     assert_eq!(hit.is_some(), listed);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod canonical;
mod expressions;
mod structure;
mod table;

pub use canonical::{
    canonicalize, canonicalize_host, CanonicalUrl, Canonicalizer, UrlError, MAX_HOST_LEN,
    MAX_URL_LEN,
};
pub use expressions::{is_public_suffix, reverse_host, Expressions};
pub use table::{expression_hash, UrlTable};

/// What an URL/domain entry in a feed means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    /// A host and all its subdomains.
    Domain,
    /// Everything under a path on a host (the path ends with `/`).
    Prefix,
    /// One URL.
    Url,
}

/// Turns a feed entry into the expression it is stored under (forward host order).
///
/// Every entry covers its host's subdomains too, so an entry whose host is a whole public
/// suffix (`com`, `co.uk`, `github.io`) would cover unrelated sites: it is refused.
///
/// ```
/// use repute::url::{entry_expression, EntryKind};
///
/// assert_eq!(entry_expression("Evil.Example.COM.", EntryKind::Domain).unwrap(), "evil.example.com/");
/// assert_eq!(entry_expression("http://x.org/a/", EntryKind::Prefix).unwrap(), "x.org/a/");
/// assert!(entry_expression("co.uk", EntryKind::Domain).is_err());
/// ```
///
/// # Errors
///
/// When the input cannot be canonicalized, its host is not a valid host ([`check_host`]) or
/// is a single label (`localhost`, `k`: no domain a feed can list), its host is a public
/// suffix, or a prefix entry's path does not end with `/` (or it has a query).
pub fn entry_expression(input: &str, kind: EntryKind) -> Result<String, UrlError> {
    let expression = match kind {
        EntryKind::Domain => {
            let host = canonicalize_host(input)?;
            check_entry_host(&host)?;
            refuse_public_suffix(&host)?;
            let mut expression = host;
            expression.push('/');
            expression
        }
        EntryKind::Prefix | EntryKind::Url => {
            let url = canonicalize(input)?;
            check_entry_host(&url.host)?;
            refuse_public_suffix(&url.host)?;
            if kind == EntryKind::Prefix && (!url.path.ends_with('/') || url.query.is_some()) {
                return Err(UrlError::new(
                    "a URL prefix must end with '/' and have no query",
                ));
            }
            url.expression()
        }
    };
    Ok(expression)
}

/// [`check_host`], and no single-label name.
fn check_entry_host(host: &str) -> Result<(), UrlError> {
    check_host(host)?;
    if !host.contains('.') && !host.starts_with('[') {
        return Err(UrlError::new(format!(
            "{host} is a single label, not a domain a feed can list"
        )));
    }
    Ok(())
}

/// Longest DNS name, in bytes (without a trailing dot).
const MAX_DNS_NAME: usize = 253;
/// Longest DNS label, in bytes.
const MAX_DNS_LABEL: usize = 63;

/// Checks that a canonical host (from [`canonicalize`] or [`canonicalize_host`]) is a valid
/// host: an IPv4 or IPv6 address, or a name by the WHATWG URL Standard's host rules, with
/// its labels limited to what DNS names hold.
///
/// Canonicalization keeps whatever it is given, so that every input gets an answer; a query
/// or a feed entry is checked here as well, so that `hello world!!`, `deadbeef.`-like typos,
/// `0x1234567890abcdef` or random bytes are refused instead of being taken as domains:
///
/// - a name's labels are letters, digits, `-` and `_` (after IDNA, so an IDN is its
///   punycode): the URL Standard refuses spaces, `%`, `<`, `>`, `^`, `|`, `@`, `:` and
///   controls, and lets through `!`, `=`, `(` or `$`, which no resolvable name holds;
/// - at most 63 bytes per label and 253 in all;
/// - a name whose last label is a number (`1.2.3.256`, `0x1234567890`, `example.123`) is
///   refused, as the URL Standard does: it is an IPv4 address or nothing.
///
/// ```
/// use repute::url::{canonicalize_host, check_host};
///
/// assert!(check_host(&canonicalize_host("Login.Example.COM").unwrap()).is_ok());
/// assert!(check_host(&canonicalize_host("0x7f.1").unwrap()).is_ok()); // 127.0.0.1
/// assert!(check_host(&canonicalize_host("hello world!!").unwrap()).is_err());
/// assert!(check_host(&canonicalize_host("1.2.3.256").unwrap()).is_err());
/// ```
///
/// # Errors
///
/// A [`UrlError`] naming the first offending character or rule.
pub fn check_host(host: &str) -> Result<(), UrlError> {
    if host.starts_with('[') || expressions::is_ip_host(host.as_bytes()) {
        return Ok(());
    }
    let invalid = |why: String| Err(UrlError::new(format!("not a valid host: {why}")));
    if host.is_empty() {
        return invalid("empty".into());
    }
    let bytes = host.as_bytes();
    if let Some(at) = bytes
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
    {
        let what = match (bytes[at], bytes.get(at + 1..at + 3)) {
            (b'%', Some(hex)) => {
                let hex = std::str::from_utf8(hex).unwrap_or("??");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) if b.is_ascii_graphic() => format!("{:?}", char::from(b)),
                    Ok(b' ') => "a space".to_string(),
                    Ok(b) if b < 0x80 => format!("control byte 0x{b:02X}"),
                    _ => format!("byte 0x{hex} (not valid IDNA)"),
                }
            }
            (b, _) => format!("{:?}", char::from(b)),
        };
        return invalid(format!("{what} at byte {} of {host:.80}", at + 1));
    }
    if host.len() > MAX_DNS_NAME {
        return invalid(format!(
            "{} bytes, a name has at most {MAX_DNS_NAME}",
            host.len()
        ));
    }
    if let Some(label) = host.split('.').find(|l| l.len() > MAX_DNS_LABEL) {
        return invalid(format!(
            "label {label:.20}... has {} bytes, at most {MAX_DNS_LABEL}",
            label.len()
        ));
    }
    let last = host.rsplit('.').next().unwrap_or(host);
    if is_ipv4_number(last.as_bytes()) {
        return invalid(format!(
            "{host:.80} ends in a number but is not an IPv4 address"
        ));
    }
    Ok(())
}

/// Whether a label reads as a number to the URL Standard's IPv4 parser (of any size):
/// decimal digits, `0x` and hex digits (a bare `0x` too), or `0` and octal digits.
fn is_ipv4_number(label: &[u8]) -> bool {
    match label {
        [] => false,
        [b'0', b'x' | b'X', hex @ ..] => hex.iter().all(u8::is_ascii_hexdigit),
        digits => digits.iter().all(u8::is_ascii_digit),
    }
}

fn refuse_public_suffix(host: &str) -> Result<(), UrlError> {
    if is_public_suffix(host) {
        return Err(UrlError::new(format!(
            "{host} is a public suffix; listing it would cover unrelated sites"
        )));
    }
    Ok(())
}

/// The FST key of a forward expression `host/path?query`: labels of the host reversed.
pub fn expression_key(expression: &str) -> Vec<u8> {
    let (host, path) = expression.split_at(expression.find('/').unwrap_or(expression.len()));
    let mut key = reverse_host(host).into_bytes();
    key.extend_from_slice(path.as_bytes());
    key
}

/// The forward expression of an FST key (inverse of [`expression_key`]).
pub fn key_expression(key: &[u8]) -> String {
    let text = String::from_utf8_lossy(key);
    let (host, path) = text.split_at(text.find('/').unwrap_or(text.len()));
    format!("{}{}", reverse_host(host), path)
}

/// How an expression counts: `domain` when it is a whole host, `url` otherwise.
pub fn expression_type(expression: &str) -> &'static str {
    if expression.ends_with('/') && expression.find('/') == Some(expression.len() - 1) {
        "domain"
    } else {
        "url"
    }
}
