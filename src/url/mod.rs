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
/// When the input cannot be canonicalized, its host is a public suffix, or a prefix entry's
/// path does not end with `/` (or it has a query).
pub fn entry_expression(input: &str, kind: EntryKind) -> Result<String, UrlError> {
    let expression = match kind {
        EntryKind::Domain => {
            let host = canonicalize_host(input)?;
            refuse_public_suffix(&host)?;
            let mut expression = host;
            expression.push('/');
            expression
        }
        EntryKind::Prefix | EntryKind::Url => {
            let url = canonicalize(input)?;
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
