//! Queries: a digest, a URL or a host, told apart by their form.

use std::fmt;

use crate::url::{canonicalize, canonicalize_host, CanonicalUrl};
use crate::{Digest, DigestKind, Error, Result};

/// The kind of a query, as reported in JSON output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryKind {
    /// A digest of the given kind.
    Digest(DigestKind),
    /// A URL (the input had a scheme).
    Url,
    /// A host or domain.
    Domain,
}

impl QueryKind {
    /// `md5`, `sha1`, `sha256`, `url` or `domain`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryKind::Digest(k) => k.as_str(),
            QueryKind::Url => "url",
            QueryKind::Domain => "domain",
        }
    }
}

impl fmt::Display for QueryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// A digest.
    Digest(Digest),
    /// A canonical URL.
    Url(CanonicalUrl),
    /// A host, as a canonical URL with path `/`.
    Domain(CanonicalUrl),
}

impl Query {
    /// Parses a query: 32/40/64 hex characters are a digest, input with `://` a URL,
    /// anything else a host or domain.
    ///
    /// # Errors
    ///
    /// [`Error::Query`] when the input is none of those.
    pub fn parse(input: &str) -> Result<Query> {
        let text = input.trim();
        if text.is_empty() {
            return Err(Error::query(input, "empty query"));
        }
        if DigestKind::from_hex_len(text.len()).is_some()
            && text.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Digest::from_hex(text.as_bytes())
                .map(Query::Digest)
                .map_err(|e| Error::query(input, e.to_string()));
        }
        if text.contains("://") {
            return canonicalize(text)
                .map(Query::Url)
                .map_err(|e| Error::query(input, e.to_string()));
        }
        if text.contains(['/', '?']) {
            return canonicalize(text)
                .map(Query::Url)
                .map_err(|e| Error::query(input, e.to_string()));
        }
        let host = canonicalize_host(text).map_err(|e| Error::query(input, e.to_string()))?;
        Ok(Query::Domain(CanonicalUrl {
            scheme: "http".into(),
            host,
            path: "/".into(),
            query: None,
        }))
    }

    /// The query's kind.
    pub fn kind(&self) -> QueryKind {
        match self {
            Query::Digest(d) => QueryKind::Digest(d.kind()),
            Query::Url(_) => QueryKind::Url,
            Query::Domain(_) => QueryKind::Domain,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_kinds_apart() {
        assert_eq!(
            Query::parse("44d88612fea8a8f36de82e1278abb02f")
                .unwrap()
                .kind(),
            QueryKind::Digest(DigestKind::Md5)
        );
        assert_eq!(
            Query::parse("https://x.example/a").unwrap().kind(),
            QueryKind::Url
        );
        assert_eq!(
            Query::parse("Sub.Example.com.").unwrap().kind(),
            QueryKind::Domain
        );
        assert!(Query::parse("  ").is_err());
        assert!(Query::parse("http://").is_err());
    }
}
