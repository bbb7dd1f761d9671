//! URL canonicalization, shared by the builder and lookups.
//!
//! The rules are those of the Safe Browsing "URLs and hashing" specification, applied to
//! bytes (an input may percent-escape bytes that are not UTF-8):
//!
//! 1. tab, CR and LF are removed; the fragment (from the first `#`) is dropped; leading and
//!    trailing control characters and spaces are trimmed;
//! 2. the URL is split as the WHATWG URL parser splits it, before anything is unescaped, so
//!    a percent-escape is never a delimiter: the scheme is lower-cased (`http` when the
//!    input has none); after a special scheme (`http`, `https`, `ws`, `wss`, `ftp`) any run
//!    of `/` and `\` (none included) leads to the authority, which ends at the first `/`,
//!    `\` or `?`; its userinfo runs to the last `@` and is dropped, and so is the port;
//! 3. the host, and then the path with its query, are percent-unescaped repeatedly until no
//!    escape is left (done in one linear pass, see [`Canonicalizer`]); the path and query
//!    are split at the first `?` after unescaping, as Safe Browsing does;
//! 4. the host: IDNs become punycode, ASCII is lower-cased, leading and trailing dots are
//!    removed and runs of dots collapsed; IPv4 addresses in any legal encoding (decimal,
//!    octal, hex, fewer than four parts) become dotted decimal; bracketed IPv6 addresses are
//!    kept in their canonical text form; bytes that would split the host when read again
//!    (`/`, `\`, `?`, `@`, `:`, as well as those of step 6) stay escaped;
//! 5. the path: `\` counts as `/`; `.` and `..` segments are resolved (never above the
//!    root) and runs of `/` collapsed; the query is kept as it is;
//! 6. bytes `<= 0x20`, `>= 0x7f`, `#` and `%` are escaped as `%XX` with upper-case hex, so
//!    every canonical component is ASCII.
//!
//! The canonical form is a fixed point: canonicalizing `scheme://host/path?query` again
//! gives the same URL.

use std::borrow::Cow;
use std::fmt;

/// Longest input accepted, in bytes (as much as a browser takes).
pub const MAX_URL_LEN: usize = 2 * 1024 * 1024;

/// Longest host accepted, in bytes after unescaping. DNS names are at most 253 bytes; the
/// bound keeps IDN conversion (quadratic in a label's length) cheap on hostile input.
pub const MAX_HOST_LEN: usize = 1024;

/// Why an input is not a usable URL or host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError {
    reason: Cow<'static, str>,
}

impl UrlError {
    pub(crate) fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        UrlError {
            reason: reason.into(),
        }
    }

    /// What is wrong with the input.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for UrlError {}

/// A URL in canonical form. Every field is ASCII.
///
/// `Default` gives an empty value, useful as a buffer for
/// [`Canonicalizer::canonicalize_into`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CanonicalUrl {
    /// Lower-case scheme (`http` when the input had none).
    pub scheme: String,
    /// Canonical host: lower case, no leading/trailing dots, no port, no userinfo.
    pub host: String,
    /// Canonical path, starting with `/`.
    pub path: String,
    /// The query without its `?`, when there was one (possibly empty).
    pub query: Option<String>,
}

impl CanonicalUrl {
    /// `host/path?query`, the form expressions take.
    pub fn expression(&self) -> String {
        let query_len = self.query.as_ref().map_or(0, |q| q.len() + 1);
        let mut s = String::with_capacity(self.host.len() + self.path.len() + query_len);
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
        write!(f, "{}://{}{}", self.scheme, self.host, self.path)?;
        if let Some(q) = &self.query {
            write!(f, "?{q}")?;
        }
        Ok(())
    }
}

/// Canonicalizes URLs with reusable buffers: after the first few calls,
/// [`Canonicalizer::canonicalize_into`] does not allocate (except to convert an IDN host).
///
/// ```
/// use repute::url::{CanonicalUrl, Canonicalizer};
///
/// let mut canonicalizer = Canonicalizer::new();
/// let mut url = CanonicalUrl::default();
/// canonicalizer.canonicalize_into("HTTP://Example.COM:80/a/../b#top", &mut url).unwrap();
/// assert_eq!(url.to_string(), "http://example.com/b");
/// ```
#[derive(Debug, Default, Clone)]
pub struct Canonicalizer {
    /// The input without fragment, tab, CR and LF, still escaped.
    clean: Vec<u8>,
    /// A component fully unescaped.
    raw: Vec<u8>,
    /// The host while it is being cleaned.
    host: Vec<u8>,
    /// The path with dot segments resolved.
    path: Vec<u8>,
}

impl Canonicalizer {
    /// A canonicalizer with empty buffers.
    pub fn new() -> Self {
        Canonicalizer::default()
    }

    /// Canonicalizes `input` into a new [`CanonicalUrl`].
    ///
    /// # Errors
    ///
    /// As [`canonicalize`].
    pub fn canonicalize(&mut self, input: &str) -> Result<CanonicalUrl, UrlError> {
        let mut url = CanonicalUrl::default();
        self.canonicalize_into(input, &mut url)?;
        Ok(url)
    }

    /// Canonicalizes `input` into `out`, reusing `out`'s strings. On error `out` holds
    /// unspecified (but valid ASCII) contents.
    ///
    /// # Errors
    ///
    /// As [`canonicalize`].
    pub fn canonicalize_into(
        &mut self,
        input: &str,
        out: &mut CanonicalUrl,
    ) -> Result<(), UrlError> {
        if input.len() > MAX_URL_LEN {
            return Err(UrlError::new(format!(
                "URL longer than {MAX_URL_LEN} bytes"
            )));
        }
        if canonical_fast_into(input, out) {
            return Ok(());
        }
        self.canonicalize_general_into(input, out)
    }

    /// The general algorithm of [`Canonicalizer::canonicalize_into`], without the fast path
    /// for inputs that need (almost) nothing done; the two agree on every input.
    fn canonicalize_general_into(
        &mut self,
        input: &str,
        out: &mut CanonicalUrl,
    ) -> Result<(), UrlError> {
        clean_into(input.as_bytes(), &mut self.clean);
        let raw = &self.clean[..];

        // Scheme.
        let (scheme, rest) = split_scheme(raw);
        out.scheme.clear();
        let authority_start = match scheme {
            Some(scheme) => {
                push_lowercase(&mut out.scheme, scheme);
                let after = &raw[scheme.len() + 1..];
                let slashes = after.iter().take_while(|&&b| is_slash(b)).count();
                if is_special_scheme(&out.scheme) {
                    scheme.len() + 1 + slashes
                } else if slashes >= 2 {
                    scheme.len() + 3
                } else {
                    return Err(UrlError::new("expected `//` after the scheme"));
                }
            }
            None => {
                out.scheme.push_str("http");
                rest
            }
        };

        // Authority (split before unescaping), then path and query.
        let tail = &raw[authority_start..];
        let authority_len = memchr::memchr3(b'/', b'\\', b'?', tail).unwrap_or(tail.len());
        let (authority, path_and_query) = tail.split_at(authority_len);
        canonical_authority(authority, &mut self.raw, &mut self.host, &mut out.host)?;

        unescape_into(path_and_query, &mut self.raw);
        let path_and_query = &self.raw[..];
        let (path, query) = match memchr::memchr(b'?', path_and_query) {
            Some(i) => (&path_and_query[..i], Some(&path_and_query[i + 1..])),
            None => (path_and_query, None),
        };
        resolve_path(path, &mut self.path);
        out.path.clear();
        escape_into(&self.path, &mut out.path);
        match query {
            Some(q) => {
                let buf = out.query.get_or_insert_with(String::new);
                buf.clear();
                escape_into(q, buf);
            }
            None => out.query = None,
        }
        Ok(())
    }
}

/// How [`canonical_fast_into`] treats each byte of a host, path or query.
const HOST_LOWER: u8 = 1;
const HOST_UPPER: u8 = 2;
const HOST_OTHER: u8 = 4;
/// A byte the general algorithm keeps as it is in a path or query: printable ASCII but `%`
/// (an escape), `#` (the fragment) and `\\` (a slash in a path).
const PLAIN: u8 = 8;
/// A [`PLAIN`] byte that is not `/` or `?`: nothing to do for it in a path.
const PATH_PLAIN: u8 = 16;
/// A byte of a host name: a letter of either case, a digit, `-` or `_`.
const HOST_BYTE: u8 = HOST_LOWER | HOST_UPPER | HOST_OTHER;

const FAST_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0x21;
    while b < 0x7f {
        table[b] = PLAIN | PATH_PLAIN;
        b += 1;
    }
    table[b'%' as usize] = 0;
    table[b'#' as usize] = 0;
    table[b'\\' as usize] = 0;
    table[b'/' as usize] = PLAIN;
    table[b'?' as usize] = PLAIN;
    let mut b = b'a';
    while b <= b'z' {
        table[b as usize] |= HOST_LOWER;
        table[(b - 32) as usize] |= HOST_UPPER;
        b += 1;
    }
    let mut b = b'0';
    while b <= b'9' {
        table[b as usize] |= HOST_OTHER;
        b += 1;
    }
    table[b'-' as usize] |= HOST_OTHER;
    table[b'_' as usize] |= HOST_OTHER;
    table
};

/// The fast path of [`Canonicalizer::canonicalize_into`]: an `http://` or `https://` URL
/// (lower-case scheme, two slashes) whose host is a name of letters, digits, `-` and `_`
/// (any case, no IPv4 look-alike: its last label does not start with a digit; no empty
/// label), with no userinfo or port, and whose path and query hold only printable ASCII
/// without `\\` (a fragment is dropped) and escapes `%XY` of bytes other than `/`, `\\`,
/// `.`, `?` and `%`, with no empty, `.` or `..` path segment. Such a URL is canonical but
/// for the host's case and its escapes, so it is copied (host lower-cased, escapes decoded
/// and written again as the general algorithm writes them) into `out` and `true` returned; anything else returns `false` with `out` unspecified,
/// for the general algorithm, which gives the same result on the inputs taken here.
fn canonical_fast_into(input: &str, out: &mut CanonicalUrl) -> bool {
    let (scheme, rest) = if let Some(rest) = input.strip_prefix("http://") {
        ("http", rest)
    } else if let Some(rest) = input.strip_prefix("https://") {
        ("https", rest)
    } else {
        return false;
    };
    let bytes = rest.as_bytes();
    // Host: labels of host bytes separated by single dots.
    let mut classes = 0u8;
    let mut label_start = 0;
    let mut i = 0;
    let host_len = loop {
        // The label's bytes, then what ends it.
        i += bytes[i..]
            .iter()
            .position(|&b| {
                let class = FAST_CLASS[usize::from(b)];
                classes |= class;
                class & HOST_BYTE == 0
            })
            .unwrap_or(bytes.len() - i);
        match bytes.get(i) {
            None | Some(b'/' | b'?' | b'#') => break i,
            Some(b'.') if i > label_start => {
                i += 1;
                label_start = i;
            }
            Some(_) => return false,
        }
    };
    if host_len == 0
        || host_len == label_start
        || host_len > MAX_HOST_LEN
        || bytes[label_start].is_ascii_digit()
    {
        return false;
    }
    // Path then query: the path ends at the first `?` (or `#`, or the end); its segments
    // are neither empty (but the last), `.` nor `..`; the query ends at the first `#`.
    // Every byte of both is plain ASCII or a fast escape.
    let mut end = bytes.len();
    let mut query_start = None;
    let mut segment_start = host_len + 1;
    let mut escapes = false;
    let mut i = host_len;
    'path: loop {
        i += bytes[i..]
            .iter()
            .position(|&b| FAST_CLASS[usize::from(b)] & PATH_PLAIN == 0)
            .unwrap_or(bytes.len() - i);
        match bytes.get(i) {
            None => break 'path,
            Some(b'/') => {
                if i > host_len {
                    if is_dot_segment_or_empty(&bytes[segment_start..i]) {
                        return false;
                    }
                    segment_start = i + 1;
                }
                i += 1;
            }
            Some(b'?') => {
                query_start = Some(i);
                i += 1;
                // The query: plain bytes and escapes up to a `#` or the end.
                loop {
                    i += bytes[i..]
                        .iter()
                        .position(|&b| FAST_CLASS[usize::from(b)] & PLAIN == 0)
                        .unwrap_or(bytes.len() - i);
                    match bytes.get(i) {
                        None => break 'path,
                        Some(b'#') => {
                            end = i;
                            break 'path;
                        }
                        Some(b'%') if fast_escape(bytes.get(i + 1..i + 3)).is_some() => {
                            escapes = true;
                            i += 3;
                        }
                        Some(_) => return false,
                    }
                }
            }
            Some(b'#') => {
                end = i;
                break 'path;
            }
            Some(b'%') if fast_escape(bytes.get(i + 1..i + 3)).is_some() => {
                escapes = true;
                i += 3;
            }
            Some(_) => return false,
        }
    }
    let path_end = query_start.unwrap_or(end);
    if path_end > host_len + 1 && matches!(&bytes[segment_start..path_end], b"." | b"..") {
        return false;
    }
    // Every byte checked is ASCII, so each boundary is a character boundary.
    let (Some(host), Some(path)) = (rest.get(..host_len), rest.get(host_len..path_end)) else {
        return false;
    };
    out.scheme.clear();
    out.scheme.push_str(scheme);
    out.host.clear();
    out.host.push_str(host);
    if classes & HOST_UPPER != 0 {
        out.host.make_ascii_lowercase();
    }
    out.path.clear();
    push_fast(
        &mut out.path,
        if path.is_empty() { "/" } else { path },
        escapes,
    );
    match query_start.and_then(|q| rest.get(q + 1..end)) {
        Some(q) => {
            let buf = out.query.get_or_insert_with(String::new);
            buf.clear();
            push_fast(buf, q, escapes);
        }
        None => out.query = None,
    }
    true
}

/// The byte an escape `%XY` of the fast path stands for, given `XY`: `None` when `XY` is
/// not two hex digits, or when the byte would change what the general algorithm makes of
/// the URL once unescaped: a `/`, `\\`, `.` or `?` (path structure) or a `%` (a new escape).
#[inline]
fn fast_escape(hex: Option<&[u8]>) -> Option<u8> {
    let &[hi, lo] = hex? else {
        return None;
    };
    let b = hex_value(hi)? << 4 | hex_value(lo)?;
    (!matches!(b, b'/' | b'\\' | b'.' | b'?' | b'%')).then_some(b)
}

/// Appends a path or query the fast path has checked: as it is, or with every escape
/// decoded and escaped again the way the general algorithm writes it ([`escape_into_with`]
/// with [`ESCAPED`]).
fn push_fast(out: &mut String, text: &str, escapes: bool) {
    if !escapes {
        out.push_str(text);
        return;
    }
    let bytes = text.as_bytes();
    let mut plain = 0;
    let mut i = 0;
    while let Some(at) = memchr::memchr(b'%', &bytes[i..]) {
        let at = i + at;
        out.push_str(text.get(plain..at).unwrap_or_default());
        // The fast path checked every escape, so this always decodes.
        let b = fast_escape(bytes.get(at + 1..at + 3)).unwrap_or(b'%');
        escape_into_with(&[b], out, &ESCAPED);
        i = at + 3;
        plain = i;
    }
    out.push_str(text.get(plain..).unwrap_or_default());
}

/// Whether a path segment is empty, `.` or `..`.
#[inline]
fn is_dot_segment_or_empty(segment: &[u8]) -> bool {
    matches!(segment, b"" | b"." | b"..")
}

/// Canonicalizes a URL. Input without a scheme is taken as `http://`.
///
/// For many URLs, reuse a [`Canonicalizer`] instead: it keeps its buffers.
///
/// ```
/// let url = repute::url::canonicalize("http://3279880203/blah").unwrap();
/// assert_eq!(url.to_string(), "http://195.127.0.11/blah");
/// ```
///
/// # Errors
///
/// When the input is longer than [`MAX_URL_LEN`], has a scheme other than `http`, `https`,
/// `ws`, `wss` and `ftp` that is not followed by `//`, has no
/// host (or one longer than [`MAX_HOST_LEN`]), a port that is not a number, or a bracketed
/// host that is not an IPv6 address.
pub fn canonicalize(input: &str) -> Result<CanonicalUrl, UrlError> {
    Canonicalizer::new().canonicalize(input)
}

/// Canonicalizes a host or authority (userinfo and port are dropped), with the same rules
/// as the host of [`canonicalize`]. A scheme is allowed; a path or query is not.
///
/// ```
/// assert_eq!(repute::url::canonicalize_host("WWW.Example.COM.").unwrap(), "www.example.com");
/// ```
///
/// # Errors
///
/// As [`canonicalize`], and when the input has a path or a query.
pub fn canonicalize_host(input: &str) -> Result<String, UrlError> {
    let url = canonicalize(input)?;
    if url.path != "/" || url.query.is_some() {
        return Err(UrlError::new("expected a host, found a path or query"));
    }
    Ok(url.host)
}

/// Appends ASCII `bytes` lower-cased (the scheme is ASCII by construction).
fn push_lowercase(out: &mut String, bytes: &[u8]) {
    out.extend(bytes.iter().map(|b| char::from(b.to_ascii_lowercase())));
}

/// Bytes that end or split a host when a URL is parsed, or change meaning when unescaped.
fn is_host_delimiter(b: u8) -> bool {
    b <= 0x20 || b >= 0x7f || b"/\\?#@:%[]".contains(&b)
}

#[inline]
fn is_slash(b: u8) -> bool {
    b == b'/' || b == b'\\'
}

#[inline]
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Step 1: drops the fragment, trims control characters and spaces at both ends and
/// removes tab, CR and LF, writing the result into `out`. Nothing is unescaped.
fn clean_into(input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let end = memchr::memchr(b'#', input).unwrap_or(input.len());
    let body = &input[..end];
    let is_trimmed = |b: &u8| *b <= b' ';
    let start = body
        .iter()
        .position(|b| !is_trimmed(b))
        .unwrap_or(body.len());
    let stop = body
        .iter()
        .rposition(|b| !is_trimmed(b))
        .map_or(start, |i| i + 1);
    let mut rest = &body[start..stop];
    while let Some(i) = memchr::memchr3(b'\t', b'\r', b'\n', rest) {
        out.extend_from_slice(&rest[..i]);
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

/// Step 3: unescapes `input` (already cleaned) repeatedly, writing the result into `out`.
///
/// Repeated unescaping has a unique result (escapes never overlap, and each decoding
/// shortens the text, so the rewriting is confluent and terminating). It is computed in one
/// pass: whenever the output ends with `%XX`, those three bytes become one and the new end
/// is checked again. Every byte is written once and every decoding removes two, so the
/// work is linear even for `%252525...`, which a pass-until-stable loop takes quadratically.
fn unescape_into(input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut rest = input;
    while let Some((&first, tail)) = rest.split_first() {
        // Byte by byte while an escape may be pending at the end of `out` (a `%` in its
        // last two bytes) or the next byte is `%`; otherwise no escape can form until the
        // next `%`, and the run up to it is copied at once.
        let pending = out.len() >= 2 && out[out.len() - 2] == b'%' || out.last() == Some(&b'%');
        if pending || first == b'%' {
            push_unescaping(out, first);
            rest = tail;
        } else {
            let run = memchr::memchr(b'%', rest).unwrap_or(rest.len());
            out.extend_from_slice(&rest[..run]);
            rest = &rest[run..];
        }
    }
}

/// Appends one byte, then decodes any `%XX` it completes.
#[inline]
fn push_unescaping(out: &mut Vec<u8>, b: u8) {
    out.push(b);
    while let [.., b'%', hi, lo] = out[..] {
        let (Some(hi), Some(lo)) = (hex_value(hi), hex_value(lo)) else {
            break;
        };
        let len = out.len();
        out.truncate(len - 3);
        out.push(hi << 4 | lo);
    }
}

/// Finds a scheme (`letter (letter | digit | + | - | .)* :`), unless what follows the
/// colon is a port (`host:80/...`). Returns the scheme, or where the authority starts.
fn split_scheme(raw: &[u8]) -> (Option<&[u8]>, usize) {
    if !raw.first().is_some_and(u8::is_ascii_alphabetic) {
        return (None, 0);
    }
    let len = raw
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
        .unwrap_or(raw.len());
    if raw.get(len) != Some(&b':') {
        return (None, 0);
    }
    let after = &raw[len + 1..];
    let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
    let port_follows = digits > 0 && after.get(digits).is_none_or(|&b| is_slash(b) || b == b'?');
    if port_follows {
        (None, 0)
    } else {
        (Some(&raw[..len]), len + 1)
    }
}

/// Whether a scheme is one the URL Standard calls special and that has a host of the usual
/// kind (`file` is special too, but its host is another matter).
fn is_special_scheme(scheme: &str) -> bool {
    matches!(scheme, "http" | "https" | "ws" | "wss" | "ftp")
}

/// Canonicalizes an authority (`userinfo@host:port`, still escaped) into `out`, using
/// `unescaped` and `work` as scratch. The userinfo runs to the last `@` and is dropped
/// before anything is unescaped: an escaped `/`, `?`, `\` or `@` in it never ends it.
fn canonical_authority(
    authority: &[u8],
    unescaped: &mut Vec<u8>,
    work: &mut Vec<u8>,
    out: &mut String,
) -> Result<(), UrlError> {
    let host_port = match memchr::memrchr(b'@', authority) {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    let (host, port) = if host_port.first() == Some(&b'[') {
        let Some(close) = memchr::memchr(b']', host_port) else {
            return Err(UrlError::new("unterminated IPv6 literal"));
        };
        host_port.split_at(close + 1)
    } else {
        let colon = memchr::memchr(b':', host_port).unwrap_or(host_port.len());
        host_port.split_at(colon)
    };
    if let Some((b':', digits)) = port.split_first() {
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(UrlError::new("the port is not a number"));
        }
    } else if !port.is_empty() {
        return Err(UrlError::new("unexpected characters after an IPv6 literal"));
    }
    unescape_into(host, unescaped);
    canonical_host_bytes(unescaped, work, out)
}

/// Canonicalizes the bytes of a bare host (already unescaped) into `out`.
fn canonical_host_bytes(host: &[u8], work: &mut Vec<u8>, out: &mut String) -> Result<(), UrlError> {
    out.clear();
    if host.len() > MAX_HOST_LEN {
        return Err(UrlError::new(format!(
            "host longer than {MAX_HOST_LEN} bytes"
        )));
    }
    if let Some(inner) = host.strip_prefix(b"[") {
        let inner = inner.strip_suffix(b"]").unwrap_or(inner);
        let address = std::str::from_utf8(inner)
            .ok()
            .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
            .ok_or_else(|| UrlError::new("invalid IPv6 address"))?;
        use std::fmt::Write;
        // Writing to a String cannot fail.
        let _ = write!(out, "[{address}]");
        return Ok(());
    }
    // IDNs become punycode; a host that is not valid IDNA (or not UTF-8) keeps its bytes,
    // which are escaped below.
    let idna;
    let ascii: &[u8] = if host.is_ascii() {
        host
    } else {
        // A conversion that yields a delimiter (say U+FE68 mapped to `\\`) would read
        // differently the next time: keep the raw bytes instead.
        idna = idna::domain_to_ascii_cow(host, idna::AsciiDenyList::URL)
            .ok()
            .filter(|ascii| !ascii.bytes().any(is_host_delimiter));
        match &idna {
            Some(converted) => converted.as_bytes(),
            None => host,
        }
    };
    // Lower case; no leading, trailing or repeated dots.
    work.clear();
    for &b in ascii {
        if b == b'.' && work.last().is_none_or(|&last| last == b'.') {
            continue;
        }
        work.push(b.to_ascii_lowercase());
    }
    if work.last() == Some(&b'.') {
        work.pop();
    }
    if work.is_empty() {
        return Err(UrlError::new("no host"));
    }
    if memchr::memchr2(b'[', b']', work).is_some() {
        return Err(UrlError::new("'[' or ']' outside an IPv6 literal"));
    }
    if let Some(ip) = parse_ipv4(work) {
        use std::fmt::Write;
        let [a, b, c, d] = ip.to_be_bytes();
        // Writing to a String cannot fail.
        let _ = write!(out, "{a}.{b}.{c}.{d}");
        return Ok(());
    }
    escape_into_with(work, out, &HOST_ESCAPED);
    Ok(())
}

/// Parses an IPv4 address in any form `inet_aton` takes: one to four parts, each decimal,
/// octal (leading `0`) or hex (leading `0x`), the last part filling the remaining bytes.
/// Returns `None` for anything else (the host is then a name).
pub(crate) fn parse_ipv4(host: &[u8]) -> Option<u32> {
    let mut parts = [0u64; 4];
    let mut count = 0;
    for part in host.split(|&b| b == b'.') {
        if count == 4 {
            return None;
        }
        parts[count] = parse_ipv4_number(part)?;
        count += 1;
    }
    if count == 0 {
        return None;
    }
    let (last, leading) = (parts[count - 1], &parts[..count - 1]);
    if leading.iter().any(|&p| p > 255) || last >= 1u64 << (8 * (5 - count)) {
        return None;
    }
    let mut value = last;
    for (i, &p) in leading.iter().enumerate() {
        value |= p << (8 * (3 - i));
    }
    u32::try_from(value).ok()
}

fn parse_ipv4_number(part: &[u8]) -> Option<u64> {
    let (radix, digits) = match part {
        // A bare `0x` is zero, as in the URL Standard's IPv4 parser.
        [b'0', b'x' | b'X'] => return Some(0),
        [b'0', b'x' | b'X', rest @ ..] => (16, rest),
        [b'0', rest @ ..] if !rest.is_empty() => (8, rest),
        _ => (10, part),
    };
    if digits.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for &b in digits {
        let d = u64::from(hex_value(b)?);
        if d >= radix {
            return None;
        }
        value = value * radix + d;
        if value > u64::from(u32::MAX) {
            return None;
        }
    }
    Some(value)
}

/// Resolves `.` and `..` segments (never above the root) and collapses runs of `/` (`\`
/// counts as `/`). The result starts with `/`; it ends with `/` when the input did, or when
/// its last segment was `.` or `..`.
fn resolve_path(path: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.push(b'/');
    let mut keep_trailing_slash = true;
    for segment in path.split(|&b| is_slash(b)) {
        keep_trailing_slash = true;
        match segment {
            b"" | b"." => {}
            b".." => {
                if out.len() > 1 {
                    let parent = out[..out.len() - 1]
                        .iter()
                        .rposition(|&b| b == b'/')
                        .unwrap_or(0);
                    out.truncate(parent + 1);
                }
            }
            _ => {
                out.extend_from_slice(segment);
                out.push(b'/');
                keep_trailing_slash = false;
            }
        }
    }
    if !keep_trailing_slash && out.len() > 1 {
        out.pop();
    }
}

/// Which bytes [`escape_into`] escapes.
const ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = b <= 0x20 || b >= 0x7f || b == b'#' as usize || b == b'%' as usize;
        b += 1;
    }
    table
};

/// Which bytes a canonical host keeps escaped: those of [`ESCAPED`], and the delimiters
/// that would split the host when the canonical URL is read again.
const HOST_ESCAPED: [bool; 256] = {
    let mut table = ESCAPED;
    let delimiters = b"/\\?@:";
    let mut i = 0;
    while i < delimiters.len() {
        table[delimiters[i] as usize] = true;
        i += 1;
    }
    table
};

/// Appends `bytes` to `out`, escaping bytes `<= 0x20`, `>= 0x7f`, `#` and `%` as `%XX`.
fn escape_into(bytes: &[u8], out: &mut String) {
    escape_into_with(bytes, out, &ESCAPED);
}

/// Appends `bytes` to `out`, escaping the bytes `table` marks as `%XX`.
fn escape_into_with(bytes: &[u8], out: &mut String, table: &[bool; 256]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if table[usize::from(b)] {
            // Everything in `bytes[plain..i]` is printable ASCII.
            out.push_str(std::str::from_utf8(&bytes[plain..i]).unwrap_or_default());
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
            plain = i + 1;
        }
    }
    out.push_str(std::str::from_utf8(&bytes[plain..]).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the general algorithm gives, and what the fast path gives when it takes the
    /// input.
    fn both_paths(input: &str) -> (Result<CanonicalUrl, UrlError>, Option<CanonicalUrl>) {
        let mut general = CanonicalUrl::default();
        let slow = Canonicalizer::new()
            .canonicalize_general_into(input, &mut general)
            .map(|()| general);
        let mut fast = CanonicalUrl::default();
        let taken = canonical_fast_into(input, &mut fast);
        (slow, taken.then_some(fast))
    }

    /// URL-ish pieces, many of them hostile: escapes, odd IPv4 forms, IDNA, dots, case,
    /// ports, userinfo, slashes, fragments, controls.
    const PIECES: &[&str] = &[
        "http://",
        "https://",
        "HTTP://",
        "Https://",
        "http:/",
        "http:///",
        "https:\\\\",
        "ftp://",
        "ws://",
        "mailto:",
        "a",
        "b",
        "z",
        "Q",
        "X",
        "www",
        "example",
        "com",
        "xn--",
        "xn--mlat-zra",
        "0",
        "1",
        "9",
        "0x",
        "0x7f",
        "017",
        "255",
        "256",
        "4294967295",
        "-",
        "_",
        ".",
        "..",
        "/",
        "//",
        "\\",
        "/.",
        "/..",
        "/./",
        "/../",
        "?",
        "??",
        "#",
        "#x",
        "=",
        "&",
        ";",
        "~",
        "!",
        "$",
        "'",
        "(",
        "*",
        "+",
        ",",
        "%",
        "%2",
        "%25",
        "%2e",
        "%2E",
        "%2F",
        "%41",
        "%7e",
        "%7E",
        "%20",
        "%3F",
        "%3f",
        "%23",
        "%00",
        "%ff",
        "%5C",
        "%2f",
        "%%",
        "%a",
        "%00",
        "%80",
        "%C3%BC",
        "%3A",
        "%40",
        "%23",
        "@",
        ":",
        ":80",
        ":x",
        "[",
        "]",
        "[::1]",
        "[FEDC::1]",
        " ",
        "\t",
        "\n",
        "\r",
        "\u{1}",
        "\u{7f}",
        "\u{fc}",
        "\u{fe68}",
        "\u{ff0f}",
        "\u{4e2d}",
        "\u{200b}",
        "\u{2e}",
        "\u{3002}",
    ];

    fn urlish() -> impl Strategy<Value = String> {
        let piece = proptest::sample::select(PIECES);
        let pieces = proptest::collection::vec(piece, 0..16).prop_map(|p| p.concat());
        // Mostly a plausible start, so that the fast path is tried often.
        let start = proptest::sample::select(&["http://", "https://", ""][..]);
        (start, pieces).prop_map(|(start, rest)| format!("{start}{rest}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn fast_path_agrees_with_the_general_algorithm(input in urlish()) {
            let (slow, fast) = both_paths(&input);
            if let Some(fast) = fast {
                prop_assert_eq!(Ok(fast), slow.clone(), "fast path on {:?}", input);
            }
            let public = canonicalize(&input);
            prop_assert_eq!(public, slow, "canonicalize on {:?}", input);
        }

        #[test]
        fn fast_path_agrees_on_any_ascii(input in "(https?://)?[ -~]{0,40}") {
            let (slow, fast) = both_paths(&input);
            if let Some(fast) = fast {
                prop_assert_eq!(Ok(fast), slow, "fast path on {:?}", input);
            }
        }
    }

    #[test]
    fn fast_path_takes_plain_urls_only() {
        for input in [
            "http://example.com",
            "https://www.Example.COM/a/b.html?x=1&y=2#frag",
            "http://a.b/?",
            "http://a_b-c.d/x/",
            "http://xn--mlat-zra.com/a?b?c/../d",
            "http://host.com?q",
            "http://a.b#/x/../y",
            "http://a.com/%41",
            "http://a.com/%7Euser/a%20b%7e?q=%41%2c%ff",
            "http://a.com/%23%00x%C3%BC",
        ] {
            let (slow, fast) = both_paths(input);
            assert!(fast.is_some(), "{input:?} should take the fast path");
            assert_eq!(Ok(fast.unwrap()), slow, "{input:?}");
        }
        for input in [
            "HTTP://example.com/",
            "http://example.com./",
            "http://.example.com/",
            "http://a..b/",
            "http://1.2.3.4/",
            "http://a.0x7f/",
            "http://user@a.com/",
            "http://a.com:80/",
            "http://a.com//x",
            "http://a.com/./x",
            "http://a.com/x/..",
            "http://a.com/%2E/x",
            "http://a.com/a%2Fb",
            "http://a.com/a%3Fb",
            "http://a.com/%2541",
            "http://a.com/%4",
            "http://a.com/%%41",
            "http://a.com/a\\b",
            "http://a.com/ x",
            "http://a.com/?%25",
            "http://\u{fc}.com/",
            "http://a.com/\u{fc}",
            "ftp://a.com/",
        ] {
            assert!(
                both_paths(input).1.is_none(),
                "{input:?} needs the general path"
            );
        }
    }

    /// Canonicalizes every input and reports all mismatches at once.
    fn assert_table(table: &[(&str, &str)]) {
        let failures: Vec<String> = table
            .iter()
            .filter_map(|&(input, want)| {
                let got = canon(input);
                (got != want).then(|| format!("{input:?}: got {got:?}, want {want:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    fn canon(input: &str) -> String {
        match canonicalize(input) {
            Ok(url) => url.to_string(),
            Err(e) => format!("error: {e}"),
        }
    }

    /// The canonicalization examples of the Safe Browsing "URLs and hashing" specification.
    /// The specification writes `\x80` as a raw byte; a `&str` cannot hold one, so that
    /// example is given percent-escaped (which canonicalizes the same).
    #[test]
    fn safe_browsing_examples() {
        let table: &[(&str, &str)] = &[
            ("http://host/%25%32%35", "http://host/%25"),
            ("http://host/%25%32%35%25%32%35", "http://host/%25%25"),
            ("http://host/%2525252525252525", "http://host/%25"),
            ("http://host/asdf%25%32%35asd", "http://host/asdf%25asd"),
            (
                "http://host/%%%25%32%35asd%%",
                "http://host/%25%25%25asd%25%25",
            ),
            ("http://www.google.com/", "http://www.google.com/"),
            (
                "http://%31%36%38%2e%31%38%38%2e%39%39%2e%32%36/%2E%73%65%63%75%72%65/%77%77%77%2E%65%62%61%79%2E%63%6F%6D/",
                "http://168.188.99.26/.secure/www.ebay.com/",
            ),
            (
                "http://195.127.0.11/uploads/%20%20%20%20/.verify/.eBaysecure=updateuserdataxplimnbqmn-xplmvalidateinfoswqpcmlx=hgplmcx/",
                "http://195.127.0.11/uploads/%20%20%20%20/.verify/.eBaysecure=updateuserdataxplimnbqmn-xplmvalidateinfoswqpcmlx=hgplmcx/",
            ),
            (
                "http://host%23.com/%257Ea%2521b%2540c%2523d%2524e%25f%255E00%252611%252A22%252833%252944_55%252B",
                "http://host%23.com/~a!b@c%23d$e%25f^00&11*22(33)44_55+",
            ),
            ("http://3279880203/blah", "http://195.127.0.11/blah"),
            ("http://www.google.com/blah/..", "http://www.google.com/"),
            ("www.google.com/", "http://www.google.com/"),
            ("www.google.com", "http://www.google.com/"),
            ("http://www.evil.com/blah#frag", "http://www.evil.com/blah"),
            ("http://www.GOOgle.com/", "http://www.google.com/"),
            ("http://www.google.com.../", "http://www.google.com/"),
            (
                "http://www.google.com/foo\tbar\rbaz\n2",
                "http://www.google.com/foobarbaz2",
            ),
            ("http://www.google.com/q?", "http://www.google.com/q?"),
            ("http://www.google.com/q?r?", "http://www.google.com/q?r?"),
            ("http://www.google.com/q?r?s", "http://www.google.com/q?r?s"),
            ("http://evil.com/foo#bar#baz", "http://evil.com/foo"),
            ("http://evil.com/foo;", "http://evil.com/foo;"),
            ("http://evil.com/foo?bar;", "http://evil.com/foo?bar;"),
            ("http://\x01%80.com/", "http://%01%80.com/"),
            ("http://notrailingslash.com", "http://notrailingslash.com/"),
            ("http://www.gotaport.com:1234/", "http://www.gotaport.com/"),
            ("  http://www.google.com/  ", "http://www.google.com/"),
            ("http:// leadingspace.com/", "http://%20leadingspace.com/"),
            ("http://%20leadingspace.com/", "http://%20leadingspace.com/"),
            ("%20leadingspace.com/", "http://%20leadingspace.com/"),
            ("https://www.securesite.com/", "https://www.securesite.com/"),
            ("http://host.com/ab%23cd", "http://host.com/ab%23cd"),
            (
                "http://host.com//twoslashes?more//slashes",
                "http://host.com/twoslashes?more//slashes",
            ),
        ];
        assert_table(table);
    }

    #[test]
    fn more_forms() {
        let table: &[(&str, &str)] = &[
            // Userinfo, default and other ports, trailing dot, dot segments.
            (
                "HTTP://user:pw@WWW.Example.COM.:80/a/./b/../c?x=1#frag",
                "http://www.example.com/a/c?x=1",
            ),
            ("https://example.com:443/", "https://example.com/"),
            ("example.com:8080/x", "http://example.com/x"),
            ("http://a..b.com//x//y/", "http://a.b.com/x/y/"),
            ("http://a.com/../../../x", "http://a.com/x"),
            ("http://a.com/a/b/..", "http://a.com/a/"),
            ("http://a.com/a/.", "http://a.com/a/"),
            (
                "http://a.com/foo/.././bar/./../foo.html",
                "http://a.com/foo.html",
            ),
            // `\` separates like `/`: the host is `evil.com`, not `good.com`.
            ("http://evil.com\\@good.com/", "http://evil.com/@good.com/"),
            ("http://user%40evil.com@good.com/", "http://good.com/"),
            // Escaped delimiters never split the URL; in the path they are unescaped.
            (
                "http%3A%2F%2Fwackyurl.com:80/",
                "http://http%3A%2F%2Fwackyurl.com/",
            ),
            ("http://evil.test%2F@good.com/", "http://good.com/"),
            ("http://evil.test%252F@good.com/", "http://good.com/"),
            ("http://a:b%3F%5C@good.com/", "http://good.com/"),
            (
                "http://good.com%2F.evil.test/",
                "http://good.com%2F.evil.test/",
            ),
            ("http://a.com/%2e%2E/x", "http://a.com/x"),
            // Special schemes take any run of `/` and `\`, none included.
            ("https:/example.com/", "https://example.com/"),
            (
                "http:\\\\www.example.com\\foo",
                "http://www.example.com/foo",
            ),
            ("http:a:b@www.example.com", "http://www.example.com/"),
            ("http:///blah;param?query#ref", "http://blah;param/?query"),
            ("ws:example.com/x", "ws://example.com/x"),
            ("http://a.com/p?q=%2520x", "http://a.com/p?q=%20x"),
            ("http://W!eird<>Ho$^.com/", "http://w!eird<>ho$^.com/"),
            // IPv4 forms.
            ("http://0x7f.1/", "http://127.0.0.1/"),
            ("http://0x12.0x43.0x44.0x01/", "http://18.67.68.1/"),
            ("http://012.034.01.055/", "http://10.28.1.45/"),
            ("http://12.0x12.01234/", "http://12.18.2.156/"),
            ("http://167838211/", "http://10.1.2.3/"),
            ("http://4294967295/", "http://255.255.255.255/"),
            ("http://4294967296/", "http://4294967296/"),
            ("http://256.256.256.256/", "http://256.256.256.256/"),
            ("http://1.2.3.00x0/", "http://1.2.3.00x0/"),
            ("https://0x.0x.0", "https://0.0.0.0/"),
            ("http://1.0x.0X.1/", "http://1.0.0.1/"),
            ("http://123.123.0.0.1/", "http://123.123.0.0.1/"),
            (
                "http://192.168.0.1.:80/index.html",
                "http://192.168.0.1/index.html",
            ),
            // IPv6.
            (
                "http://[FEDC:BA98:7654:3210:FEDC:BA98:7654:3210]:80/index.html",
                "http://[fedc:ba98:7654:3210:fedc:ba98:7654:3210]/index.html",
            ),
            (
                "http://[2001:470:1:18::114]/",
                "http://[2001:470:1:18::114]/",
            ),
            (
                "http://[2001:0470:0001:0018:0:0:0:0114]/",
                "http://[2001:470:1:18::114]/",
            ),
            // IDN.
            ("http://www.%C3%BCmlat.com/", "http://www.xn--mlat-zra.com/"),
            ("http://www.\u{fc}mlat.com/", "http://www.xn--mlat-zra.com/"),
            (
                "https://B\u{fc}cher.de/\u{dc}ber",
                "https://xn--bcher-kva.de/%C3%9Cber",
            ),
            ("ftp://ftp.myfiles.com/", "ftp://ftp.myfiles.com/"),
            ("http://some%1bhost.com/%1b", "http://some%1Bhost.com/%1B"),
            // IDNA mappings to delimiters keep the raw bytes.
            ("http://\u{fe68}0/", "http://%EF%B9%A80/"),
            ("http://a\u{ff0f}b.com/", "http://a%EF%BC%8Fb.com/"),
        ];
        assert_table(table);
    }

    #[test]
    fn unusable_inputs_are_errors() {
        for input in [
            "",
            ":",
            "/blah",
            "#ref",
            "/blah#ref",
            "?query#ref",
            "http://#ref",
            "http://?query#ref",
            "mailto:someone@example.com",
            "gopher:example.com/x",
            "www.google.com:xxyy/foo.html:80",
            "http://[::1/",
            "http://[not-an-address]/",
            "http://[::1]x/",
            ".[http://",
            "http://a[b]/",
            "http://...../",
            "http://",
        ] {
            assert!(canonicalize(input).is_err(), "{input:?} should be refused");
        }
        assert!(canonicalize(&"a".repeat(MAX_URL_LEN + 1)).is_err());
        assert!(canonicalize(&format!("http://{}.com/", "a".repeat(MAX_HOST_LEN))).is_err());
    }

    #[test]
    fn hosts() {
        assert_eq!(
            canonicalize_host("Sub.Example.COM.").unwrap(),
            "sub.example.com"
        );
        assert_eq!(
            canonicalize_host("user@example.com:8080").unwrap(),
            "example.com"
        );
        assert_eq!(
            canonicalize_host("http://example.com").unwrap(),
            "example.com"
        );
        assert_eq!(
            canonicalize_host("0xc3.0x7f.0x0.0xb").unwrap(),
            "195.127.0.11"
        );
        assert_eq!(canonicalize_host("195.127.11").unwrap(), "195.127.0.11");
        assert_eq!(canonicalize_host("1234x.com").unwrap(), "1234x.com");
        assert!(canonicalize_host("example.com/path").is_err());
        assert!(canonicalize_host("example.com?q").is_err());
        assert!(canonicalize_host("..").is_err());
    }

    #[test]
    fn canonicalizer_reuse_matches_fresh_calls() {
        let mut c = Canonicalizer::new();
        let mut url = CanonicalUrl::default();
        for input in [
            "http://a.com/x?q",
            "b.org",
            "https://[::1]:8443/p/",
            "http://c.net/y",
        ] {
            c.canonicalize_into(input, &mut url).unwrap();
            assert_eq!(url, canonicalize(input).unwrap());
        }
        assert!(c.canonicalize_into("http:///?x", &mut url).is_err());
        c.canonicalize_into("d.com/z?q", &mut url).unwrap();
        assert_eq!(url.to_string(), "http://d.com/z?q");
        // Shorter URLs reuse the buffers.
        let query_ptr = url.query.as_ref().map(|q| q.as_ptr());
        let ptrs = (
            url.scheme.as_ptr(),
            url.host.as_ptr(),
            url.path.as_ptr(),
            query_ptr,
        );
        c.canonicalize_into("HTTP://E.com/y?r", &mut url).unwrap();
        let query_ptr = url.query.as_ref().map(|q| q.as_ptr());
        assert_eq!(
            (
                url.scheme.as_ptr(),
                url.host.as_ptr(),
                url.path.as_ptr(),
                query_ptr
            ),
            ptrs
        );
    }

    #[test]
    fn hostile_inputs_finish() {
        // Each unescaping pass of a loop-until-stable would remove only two bytes here.
        let nested = format!("http://h/%{}", "25".repeat(300_000));
        assert!(canonicalize(&nested).unwrap().path == "/%25");
        let chain = format!("http://h/%{}41", "25".repeat(300_000));
        assert!(canonicalize(&chain).unwrap().path == "/A");
        let many = format!("http://h/{}", "%25".repeat(100_000));
        assert!(canonicalize(&many).unwrap().path.len() == 300_001);
        let long = format!("http://example.com/{}", "a/".repeat(50_000));
        assert!(canonicalize(&long).unwrap().path.len() == 100_001);
        let dots = format!("http://example.com/{}x", "../".repeat(40_000));
        assert!(canonicalize(&dots).unwrap().path == "/x");
        let invalid = "http://ex%ffam%c3ple.com/%ff%fe%00?%80";
        let url = canonicalize(invalid).unwrap();
        assert_eq!(url.host, "ex%FFam%C3ple.com");
        assert_eq!(url.path, "/%FF%FE%00");
        assert_eq!(url.query.as_deref(), Some("%80"));
        let controls: String = (0u8..0x20).map(char::from).collect();
        let url = canonicalize(&format!("http://a.com/{controls}")).unwrap();
        assert!(url.path.bytes().all(|b| b.is_ascii_graphic()));
        let huge_ip = format!("http://{}/", "9".repeat(900));
        assert_eq!(canonicalize(&huge_ip).unwrap().host, "9".repeat(900));
    }
}
