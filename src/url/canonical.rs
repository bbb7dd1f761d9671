//! URL canonicalization, shared by the builder and lookups.

use std::fmt;

/// Longest input accepted, in bytes.
pub const MAX_URL_LEN: usize = 64 * 1024;

/// Why an input is not a usable URL or host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError {
    reason: String,
}

impl UrlError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        UrlError {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for UrlError {}

/// A URL in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CanonicalUrl {
    /// Lower-case scheme (`http` when the input had none).
    pub scheme: String,
    /// Canonical host: lower case, no leading/trailing dots, no port, no userinfo.
    pub host: String,
    /// Canonical path, starting with `/`.
    pub path: String,
    /// The query without its `?`, when there was one.
    pub query: Option<String>,
}

impl CanonicalUrl {
    /// `host/path?query`, the form expressions take.
    pub fn expression(&self) -> String {
        let mut s = String::with_capacity(self.host.len() + self.path.len() + 1);
        s.push_str(&self.host);
        s.push_str(&self.path);
        if let Some(q) = &self.query {
            s.push('?');
            s.push_str(q);
        }
        s
    }
}

impl fmt::Display for CanonicalUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.expression())
    }
}

/// Canonicalizes a URL. Input without a scheme is taken as `http://`.
///
/// # Errors
///
/// When the input is too long, or has no usable host.
pub fn canonicalize(input: &str) -> Result<CanonicalUrl, UrlError> {
    if input.len() > MAX_URL_LEN {
        return Err(UrlError::new(format!(
            "URL longer than {MAX_URL_LEN} bytes"
        )));
    }
    let cleaned: String = input
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .collect();
    let without_fragment = cleaned.split('#').next().unwrap_or("");
    let (scheme, rest) = match without_fragment.find("://") {
        Some(i)
            if i > 0
                && without_fragment[..i]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            (
                without_fragment[..i].to_ascii_lowercase(),
                &without_fragment[i + 3..],
            )
        }
        _ => ("http".to_string(), without_fragment),
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(authority_end);
    let host = canonicalize_host(authority)?;
    let (path, query) = match path_and_query.find('?') {
        Some(i) => (
            &path_and_query[..i],
            Some(path_and_query[i + 1..].to_string()),
        ),
        None => (path_and_query, None),
    };
    Ok(CanonicalUrl {
        scheme,
        host,
        path: canonicalize_path(path),
        query,
    })
}

/// Canonicalizes a host or authority (userinfo and port are dropped).
///
/// # Errors
///
/// When nothing usable is left.
pub fn canonicalize_host(input: &str) -> Result<String, UrlError> {
    let authority = input.trim();
    let authority = authority.rsplit('@').next().unwrap_or("");
    let host = if authority.starts_with('[') {
        match authority.find(']') {
            Some(i) => &authority[..=i],
            None => return Err(UrlError::new("unterminated IPv6 literal")),
        }
    } else {
        authority.split(':').next().unwrap_or("")
    };
    let mut out = String::with_capacity(host.len());
    for label in host.split('.').filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(&label.to_ascii_lowercase());
    }
    if out.is_empty() {
        return Err(UrlError::new("no host"));
    }
    if out
        .bytes()
        .any(|b| b <= b' ' || b == b'/' || b == b'\\' || b >= 0x7f)
    {
        return Err(UrlError::new(
            "host contains characters that are not allowed",
        ));
    }
    Ok(out)
}

fn canonicalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let trailing = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    out.push('/');
    out.push_str(&segments.join("/"));
    if trailing && !segments.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_forms() {
        let u = canonicalize("HTTP://user:pw@WWW.Example.COM.:80/a/./b/../c?x=1#frag").unwrap();
        assert_eq!(u.expression(), "www.example.com/a/c?x=1");
        assert_eq!(
            canonicalize("example.com").unwrap().expression(),
            "example.com/"
        );
        assert_eq!(
            canonicalize("http://a..b.com//x//y/").unwrap().expression(),
            "a.b.com/x/y/"
        );
        assert!(canonicalize("http:///path").is_err());
    }
}
