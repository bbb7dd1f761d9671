//! Queries: a digest, a URL or a host, told apart by their form.

use std::fmt;

use crate::url::{canonicalize, canonicalize_host, check_host, CanonicalUrl};
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
    /// Parses a query: 32/40/64 hex characters are a digest (also written `md5:HEX`,
    /// `sha1:HEX`, `sha256:HEX`), input with `://`, `/` or `?` a URL, anything else a host,
    /// which must be valid ([`check_host`]).
    ///
    /// ```
    /// use repute::Query;
    ///
    /// assert!(Query::parse("sha256:275A021BBFB6489E54D471899F7DB9D1663FC695EC2FE2A2C4538AABF651FD0F").is_ok());
    /// let typo = Query::parse("44d88612fea8a8f36de82e1278abb02").unwrap_err();
    /// assert!(typo.to_string().contains("31 hex digits"), "{typo}");
    /// assert!(Query::parse("hello world!!").is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Query`] when the input is none of those: a hex-only string of a length no
    /// digest has (the error names the lengths), a prefixed digest of the wrong length, or a
    /// host that is not valid.
    pub fn parse(input: &str) -> Result<Query> {
        let text = input.trim();
        if text.is_empty() {
            return Err(Error::query(input, "empty query"));
        }
        if let Some((prefix, hex)) = text.split_once(':') {
            let kind = match prefix.to_ascii_lowercase().as_str() {
                "md5" => Some(DigestKind::Md5),
                "sha1" => Some(DigestKind::Sha1),
                "sha256" => Some(DigestKind::Sha256),
                _ => None,
            };
            if let Some(kind) = kind {
                return parse_digest_of(input, hex.trim(), Some(kind));
            }
        }
        // Hex only is a digest, or a typo of one; except decimal digits of a length no
        // digest has, which are an IPv4 address in one number (`3232235521`).
        let decimal = text.bytes().all(|b| b.is_ascii_digit());
        if text.bytes().all(|b| b.is_ascii_hexdigit())
            && !(decimal && DigestKind::from_hex_len(text.len()).is_none())
        {
            return parse_digest_of(input, text, None);
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
        let host = canonicalize_host(text)
            .and_then(|host| check_host(&host).map(|()| host))
            .map_err(|e| Error::query(input, e.to_string()))?;
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

/// A digest written as hex, of the given kind (or any kind when `None`).
fn parse_digest_of(input: &str, hex: &str, kind: Option<DigestKind>) -> Result<Query> {
    let lengths = "32 (MD5), 40 (SHA-1) or 64 (SHA-256)";
    let digits = hex.len();
    match kind {
        Some(kind) if kind.byte_len() * 2 != digits => {
            let name = match kind {
                DigestKind::Md5 => "an MD5",
                DigestKind::Sha1 => "a SHA-1",
                DigestKind::Sha256 => "a SHA-256",
            };
            return Err(Error::query(
                input,
                format!(
                    "{name} digest has {} hex digits, found {digits}",
                    kind.byte_len() * 2
                ),
            ));
        }
        None if DigestKind::from_hex_len(digits).is_none() => {
            return Err(Error::query(
                input,
                format!("{digits} hex digits: a digest has {lengths}, and a host is not all hex"),
            ));
        }
        _ => {}
    }
    Digest::from_hex(hex.as_bytes())
        .map(Query::Digest)
        .map_err(|e| Error::query(input, e.to_string()))
}

/// The query a line of standard input holds, or `None` for a blank line or a `#` comment.
/// A line in the form the checksum tools write (`sha256sum`, `md5sum`, `sha1sum`:
/// `DIGEST  NAME` or `DIGEST *NAME`) gives its digest.
///
/// ```
/// use repute::line_query;
///
/// assert_eq!(line_query("  # a comment"), None);
/// assert_eq!(line_query("44d88612fea8a8f36de82e1278abb02f  eicar.com"), Some("44d88612fea8a8f36de82e1278abb02f"));
/// assert_eq!(line_query("http://example.com/a b"), Some("http://example.com/a b"));
/// ```
pub fn line_query(line: &str) -> Option<&str> {
    let text = line.trim();
    if text.is_empty() || text.starts_with('#') {
        return None;
    }
    // Checksum tools escape names with a leading `\`.
    let body = text.strip_prefix('\\').unwrap_or(text);
    if let Some(space) = body.find([' ', '\t']) {
        let (digest, rest) = body.split_at(space);
        let is_digest = DigestKind::from_hex_len(digest.len()).is_some()
            && digest.bytes().all(|b| b.is_ascii_hexdigit());
        if is_digest && rest.len() > 1 {
            return Some(digest);
        }
    }
    Some(text)
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

    /// Hosts valid and invalid by the WHATWG URL Standard's host parsing (forbidden code
    /// points, IPv4 parsing and the ends-in-a-number rule), plus the DNS limits.
    #[test]
    fn hosts_by_the_whatwg_rules() {
        for valid in [
            "example.com",
            "Sub.Example.COM.",
            "xn--bcher-kva.example",
            "b\u{fc}cher.example",
            "_dmarc.example.com",
            "a-b.example",
            "localhost",
            "0x7f.1",
            "192.168.0.1",
            "0300.0250.0.1",
            "3232235521",
            "1.2.3",
            "[::1]",
            "[2001:db8::1]:8080",
            "user@example.com:8080",
            "example.com:443",
            "1.2.3.4.example",
            "09a.example",
        ] {
            assert!(
                Query::parse(valid).is_ok(),
                "{valid} should be a valid host"
            );
        }
        for (invalid, because) in [
            ("hello world!!", "a space"),
            ("exa mple.com", "a space"),
            ("a<b.example", "'<'"),
            ("a^b.example", "'^'"),
            ("a|b.example", "'|'"),
            ("a%b.example", "'%'"),
            ("a\u{7f}b.example", "0x7F"),
            ("a\u{1}b.example", "0x01"),
            ("shop=1.example", "'='"),
            (")8", "')'"),
            ("=", "'='"),
            ("1.2.3.256", "ends in a number"),
            ("1.2.3.4.5", "ends in a number"),
            ("example.123", "ends in a number"),
            ("0x1234567890abcdef", "ends in a number"),
            ("example.0x", "ends in a number"),
            ("4294967296", "ends in a number"),
            ("09", "ends in a number"),
            ("..", "no host"),
            ("[::1", "IPv6"),
            ("[example.com]", "IPv6"),
        ] {
            let err = Query::parse(invalid).unwrap_err().to_string();
            assert!(err.contains(because), "{invalid:?}: {err}");
        }
        let long_label = format!("{}.example", "a".repeat(64));
        assert!(Query::parse(&long_label).is_err());
        let long_name = format!("{}example", "abcdefgh.".repeat(28));
        assert!(Query::parse(&long_name).is_err());
    }

    #[test]
    fn hex_of_the_wrong_length_is_an_error_naming_the_lengths() {
        for (input, digits) in [
            ("deadbeef", 8),
            ("44d88612fea8a8f36de82e1278abb02", 31),
            ("44d88612fea8a8f36de82e1278abb02ff", 33),
        ] {
            let err = Query::parse(input).unwrap_err().to_string();
            assert!(err.contains(&format!("{digits} hex digits")), "{err}");
            assert!(
                err.contains("32 (MD5), 40 (SHA-1) or 64 (SHA-256)"),
                "{err}"
            );
        }
        let md5 = "44d88612fea8a8f36de82e1278abb02f";
        for prefixed in [
            format!("md5:{md5}"),
            format!("MD5:{md5}"),
            format!("md5: {md5}"),
        ] {
            assert_eq!(Query::parse(&prefixed).unwrap(), Query::parse(md5).unwrap());
        }
        let err = Query::parse(&format!("sha256:{md5}"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SHA-256 digest has 64 hex digits, found 32"),
            "{err}"
        );
        assert!(Query::parse("sha1:zz").is_err());
    }

    #[test]
    fn stdin_lines() {
        let sha = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
        assert_eq!(line_query(&format!("{sha}  eicar.com")), Some(sha));
        assert_eq!(line_query(&format!("{sha} *eicar.com")), Some(sha));
        assert_eq!(line_query(&format!("\\{sha}  a\\nb")), Some(sha));
        assert_eq!(line_query(&format!("  {sha}  ")), Some(sha));
        assert_eq!(line_query(""), None);
        assert_eq!(line_query("   "), None);
        assert_eq!(line_query("# comment"), None);
        assert_eq!(line_query("example.com"), Some("example.com"));
    }
}
