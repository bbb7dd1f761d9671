//! Whole feeds: [`Format`], the line iterator [`FeedLines`], [`write_feed`] and [`keys`].
//!
//! A feed of `records` records is a short header (where the format has one) and `records`
//! key-bearing lines, with the occasional comment or blank line between them as real feeds
//! have. Each format draws from its own stream: the same seed gives unrelated values in
//! different formats.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, BufWriter, Write};
use std::str::FromStr;

use crate::Generator;

/// The feed formats repute reads, named as repute names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// One hex digest per line (MD5, SHA-1 or SHA-256 mixed), with comments and blank lines;
    /// some lines carry a threat name after the digest.
    Hashes,
    /// `md5sum` output: `<hex>  path` or `<hex> *path`.
    Md5sum,
    /// `sha1sum` output.
    Sha1sum,
    /// `sha256sum` output.
    Sha256sum,
    /// One domain per line; a few written as `*.domain` or followed by a `# comment`.
    Domains,
    /// One URL per line.
    Urls,
    /// A hosts file: `0.0.0.0 host` (some `127.0.0.1 host`) after a `localhost` header.
    Hosts,
}

impl Format {
    /// All formats.
    pub const ALL: [Format; 7] = [
        Format::Hashes,
        Format::Md5sum,
        Format::Sha1sum,
        Format::Sha256sum,
        Format::Domains,
        Format::Urls,
        Format::Hosts,
    ];

    /// The format's name, as repute's feed formats are named: `hashes`, `md5sum`, `sha1sum`,
    /// `sha256sum`, `domains`, `urls`, `hosts`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Hashes => "hashes",
            Format::Md5sum => "md5sum",
            Format::Sha1sum => "sha1sum",
            Format::Sha256sum => "sha256sum",
            Format::Domains => "domains",
            Format::Urls => "urls",
            Format::Hosts => "hosts",
        }
    }

    /// Mixed into the seed so that each format has its own stream of values.
    fn stream(self) -> u64 {
        match self {
            Format::Hashes => 0x6861_7368_6573_0001,
            Format::Md5sum => 0x6d64_3573_756d_0002,
            Format::Sha1sum => 0x7368_6131_7375_0003,
            Format::Sha256sum => 0x7368_6132_3536_0004,
            Format::Domains => 0x646f_6d61_696e_0005,
            Format::Urls => 0x7572_6c73_0000_0006,
            Format::Hosts => 0x686f_7374_7300_0007,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing an unknown [`Format`] name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFormat(pub String);

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
        write!(
            f,
            "unknown feed format {:?} (known: {})",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for Format {
    type Err = UnknownFormat;

    /// Parses a format name as [`Format::name`] spells it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// One line of a generated feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedLine {
    /// The line's text, without its `\n` terminator.
    pub text: String,
    /// The key the line carries as repute's parser reads it (a lowercase hex digest, a domain
    /// without any `*.` prefix, a URL as written), or `None` for headers, comments and blank
    /// lines.
    pub key: Option<String>,
}

impl FeedLine {
    fn record(text: String, key: String) -> Self {
        FeedLine {
            text,
            key: Some(key),
        }
    }

    fn other(text: impl Into<String>) -> Self {
        FeedLine {
            text: text.into(),
            key: None,
        }
    }
}

/// The lines of a generated feed, in order: see [`lines`].
#[derive(Debug, Clone)]
pub struct FeedLines {
    format: Format,
    generator: Generator,
    remaining: u64,
    written: u64,
    batches: u64,
    pending: VecDeque<FeedLine>,
}

/// The lines of a feed of `format` with exactly `records` key-bearing lines, generated from
/// `seed`. [`write_feed`] writes these lines; [`keys`] yields their keys.
///
/// ```
/// use repute_gen::{lines, Format};
///
/// let hosts: Vec<_> = lines(Format::Hosts, 3, 1).collect();
/// assert!(hosts.iter().any(|l| l.text == "127.0.0.1 localhost"));
/// assert_eq!(hosts.iter().filter(|l| l.key.is_some()).count(), 3);
/// ```
pub fn lines(format: Format, records: u64, seed: u64) -> FeedLines {
    let mut pending = VecDeque::new();
    let header: &[&str] = match format {
        Format::Hashes => &[
            "# Malware sample hashes (MD5, SHA-1, SHA-256), one per line",
            "# Generated by repute-gen: synthetic values, not real samples",
            "#",
        ],
        Format::Domains => &[
            "# Malicious domains, one per line",
            "# Generated by repute-gen: synthetic values",
        ],
        Format::Urls => &[
            "# Malware distribution and phishing URLs, one per line",
            "# Generated by repute-gen: synthetic values",
        ],
        Format::Hosts => &[
            "# Hosts file blocking malware, phishing and tracking domains",
            "# Generated by repute-gen: synthetic values",
            "",
            "127.0.0.1 localhost",
            "127.0.0.1 localhost.localdomain",
            "255.255.255.255 broadcasthost",
            "::1 localhost",
            "0.0.0.0 0.0.0.0",
            "",
            "# Start of blocked hosts",
        ],
        Format::Md5sum | Format::Sha1sum | Format::Sha256sum => &[],
    };
    pending.extend(header.iter().map(|&l| FeedLine::other(l)));
    FeedLines {
        format,
        generator: Generator::new(seed ^ format.stream()),
        remaining: records,
        written: 0,
        batches: 1,
        pending,
    }
}

impl FeedLines {
    /// Queues the next record, preceded now and then by a comment or blank line.
    fn generate(&mut self) {
        let g = &mut self.generator;
        let n = self.written;
        match self.format {
            Format::Hashes => {
                if n > 0 && g.below(60) == 0 {
                    self.batches += 1;
                    let category = g.category();
                    self.pending.push_back(FeedLine::other(format!(
                        "# batch {}: {category} samples",
                        self.batches
                    )));
                } else if n > 0 && g.below(80) == 0 {
                    self.pending.push_back(FeedLine::other(""));
                }
                let hex = match g.below(10) {
                    0..=2 => g.md5_hex(),
                    3..=4 => g.sha1_hex(),
                    _ => g.sha256_hex(),
                };
                let text = if g.percent(20) {
                    format!("{hex} {}", g.threat_name())
                } else {
                    hex.clone()
                };
                self.pending.push_back(FeedLine::record(text, hex));
            }
            Format::Md5sum | Format::Sha1sum | Format::Sha256sum => {
                let hex = match self.format {
                    Format::Md5sum => g.md5_hex(),
                    Format::Sha1sum => g.sha1_hex(),
                    _ => g.sha256_hex(),
                };
                let path = g.distribution_path();
                let marker = if g.percent(10) { " *" } else { "  " };
                self.pending
                    .push_back(FeedLine::record(format!("{hex}{marker}{path}"), hex));
            }
            Format::Domains => {
                if n > 0 && g.below(100) == 0 {
                    self.pending.push_back(FeedLine::other(""));
                } else if n > 0 && g.below(100) == 0 {
                    let category = g.category();
                    self.pending
                        .push_back(FeedLine::other(format!("# {category}")));
                }
                let domain = g.domain();
                let text = match g.below(50) {
                    0 => format!("*.{domain}"),
                    1 => format!("{domain} # {}", g.threat_name()),
                    _ => domain.clone(),
                };
                self.pending.push_back(FeedLine::record(text, domain));
            }
            Format::Urls => {
                if n > 0 && g.below(100) == 0 {
                    let category = g.category();
                    self.pending
                        .push_back(FeedLine::other(format!("# {category}")));
                }
                let url = g.url();
                self.pending.push_back(FeedLine::record(url.clone(), url));
            }
            Format::Hosts => {
                if n > 0 && g.below(100) == 0 {
                    self.pending.push_back(FeedLine::other(""));
                } else if n > 0 && g.below(100) == 0 {
                    let category = g.category();
                    self.pending
                        .push_back(FeedLine::other(format!("# {category} hosts")));
                }
                let address = if g.percent(10) {
                    "127.0.0.1"
                } else {
                    "0.0.0.0"
                };
                let host = g.domain();
                let text = if g.below(50) == 0 {
                    format!("{address} {host} # {}", g.threat_name())
                } else {
                    format!("{address} {host}")
                };
                self.pending.push_back(FeedLine::record(text, host));
            }
        }
        self.written += 1;
        self.remaining -= 1;
    }
}

impl Iterator for FeedLines {
    type Item = FeedLine;

    fn next(&mut self) -> Option<FeedLine> {
        if self.pending.is_empty() && self.remaining > 0 {
            self.generate();
        }
        self.pending.pop_front()
    }
}

/// Writes a feed of `format` with exactly `records` key-bearing lines generated from `seed`,
/// each line ending in `\n`. The same arguments always write the same bytes.
///
/// Output is buffered here; `w` need not be.
///
/// # Errors
///
/// The first error writing to `w`.
///
/// ```
/// use repute_gen::{write_feed, Format};
///
/// let mut a = Vec::new();
/// let mut b = Vec::new();
/// write_feed(&mut a, Format::Urls, 50, 7).unwrap();
/// write_feed(&mut b, Format::Urls, 50, 7).unwrap();
/// assert_eq!(a, b);
/// ```
pub fn write_feed(w: &mut impl Write, format: Format, records: u64, seed: u64) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(64 * 1024, w);
    for line in lines(format, records, seed) {
        out.write_all(line.text.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// The keys that [`write_feed`] with the same arguments writes, in order: exactly `records`
/// of them (lowercase hex digests, domains, or URLs as written). Values are random, not
/// unique: compare against a set when duplicates matter.
///
/// ```
/// use repute_gen::{keys, Format};
///
/// let k: Vec<String> = keys(Format::Sha256sum, 10, 3).collect();
/// assert_eq!(k.len(), 10);
/// assert!(k.iter().all(|h| h.len() == 64));
/// ```
pub fn keys(format: Format, records: u64, seed: u64) -> Keys {
    Keys {
        lines: lines(format, records, seed),
    }
}

/// The keys of a generated feed: see [`keys`].
#[derive(Debug, Clone)]
pub struct Keys {
    lines: FeedLines,
}

impl Iterator for Keys {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        self.lines.by_ref().find_map(|line| line.key)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.lines.remaining
            + self
                .lines
                .pending
                .iter()
                .filter(|l| l.key.is_some())
                .count() as u64;
        match usize::try_from(left) {
            Ok(n) => (n, Some(n)),
            Err(_) => (usize::MAX, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn feed(format: Format, records: u64, seed: u64) -> String {
        let mut out = Vec::new();
        write_feed(&mut out, format, records, seed).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn is_hex_digest(token: &str) -> bool {
        matches!(token.len(), 32 | 40 | 64)
            && token
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    fn is_domain(token: &str) -> bool {
        token.contains('.')
            && token.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
    }

    /// Reads a line back the way repute's feed parsers do: `Ok(None)` for lines without a
    /// key, `Ok(Some(key))` for records, `Err` for anything malformed.
    fn parse_back(format: Format, line: &str) -> Result<Option<String>, String> {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok(None);
        }
        let bad = || Err(format!("{format}: malformed line {line:?}"));
        match format {
            Format::Hashes => {
                let token = trimmed.split_whitespace().next().unwrap();
                if is_hex_digest(token) {
                    Ok(Some(token.to_string()))
                } else {
                    bad()
                }
            }
            Format::Md5sum | Format::Sha1sum | Format::Sha256sum => {
                let len = match format {
                    Format::Md5sum => 32,
                    Format::Sha1sum => 40,
                    _ => 64,
                };
                let (hex, rest) = line.split_at(line.find(' ').ok_or("no space")?);
                let name = rest
                    .strip_prefix("  ")
                    .or_else(|| rest.strip_prefix(" *"))
                    .ok_or("no separator")?;
                if hex.len() != len || !is_hex_digest(hex) || name.is_empty() || name != name.trim()
                {
                    return bad();
                }
                Ok(Some(hex.to_string()))
            }
            Format::Domains => {
                let body = trimmed.split('#').next().unwrap().trim();
                let domain = body.strip_prefix("*.").unwrap_or(body);
                if is_domain(domain) {
                    Ok(Some(domain.to_string()))
                } else {
                    bad()
                }
            }
            Format::Urls => {
                let ok = (trimmed.starts_with("http://") || trimmed.starts_with("https://"))
                    && !trimmed.contains(char::is_whitespace);
                if ok {
                    Ok(Some(trimmed.to_string()))
                } else {
                    bad()
                }
            }
            Format::Hosts => {
                let body = trimmed.split('#').next().unwrap().trim();
                let fields: Vec<&str> = body.split_whitespace().collect();
                if fields.len() != 2 || fields[0].parse::<IpAddr>().is_err() {
                    return bad();
                }
                let host = fields[1];
                if host.parse::<IpAddr>().is_ok() || host.starts_with("localhost") {
                    return Ok(None);
                }
                if host == "broadcasthost" {
                    return Ok(None);
                }
                if !is_domain(host) {
                    return bad();
                }
                Ok(Some(host.to_string()))
            }
        }
    }

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>(), Ok(f));
            assert_eq!(f.to_string(), f.name());
        }
        let err = "csv".parse::<Format>().unwrap_err();
        assert!(err.to_string().contains("\"csv\""));
        assert!(err.to_string().contains("sha256sum"));
        let streams: std::collections::HashSet<u64> =
            Format::ALL.iter().map(|f| f.stream()).collect();
        assert_eq!(streams.len(), Format::ALL.len());
    }

    #[test]
    fn same_seed_same_bytes_different_seed_different_bytes() {
        for f in Format::ALL {
            let a = feed(f, 300, 11);
            assert_eq!(a, feed(f, 300, 11), "{f}");
            assert_ne!(a, feed(f, 300, 12), "{f}");
        }
    }

    #[test]
    fn a_longer_feed_starts_with_the_shorter_one() {
        for f in Format::ALL {
            let short: Vec<String> = keys(f, 100, 4).collect();
            let long: Vec<String> = keys(f, 1000, 4).collect();
            assert_eq!(short[..], long[..100], "{f}");
        }
    }

    #[test]
    fn every_line_parses_back_and_keys_agree() {
        for f in Format::ALL {
            for seed in [0, 1, u64::MAX] {
                let text = feed(f, 2000, seed);
                assert!(text.ends_with('\n'));
                let mut parsed = Vec::new();
                for line in text.lines() {
                    match parse_back(f, line) {
                        Ok(Some(key)) => parsed.push(key),
                        Ok(None) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                let expected: Vec<String> = keys(f, 2000, seed).collect();
                assert_eq!(expected.len(), 2000, "{f}");
                assert_eq!(parsed, expected, "{f} seed {seed}");
            }
        }
    }

    #[test]
    fn feeds_have_their_imperfections() {
        let hashes = feed(Format::Hashes, 2000, 1);
        assert!(hashes.lines().any(|l| l.starts_with("# batch")));
        assert!(hashes.lines().any(str::is_empty));
        assert!(hashes.lines().any(|l| l.len() == 32));
        assert!(hashes.lines().any(|l| l.len() == 40));
        assert!(hashes.lines().any(|l| l.len() == 64));
        assert!(hashes.lines().any(|l| l.len() > 64 && l.contains(' ')));
        let sums = feed(Format::Sha1sum, 2000, 1);
        assert!(sums.contains(" *"));
        assert!(sums.contains("  "));
        let domains = feed(Format::Domains, 2000, 1);
        assert!(domains.lines().any(|l| l.starts_with("*.")));
        let hosts = feed(Format::Hosts, 2000, 1);
        assert!(hosts.contains("\n127.0.0.1 localhost\n"));
        assert!(
            hosts
                .lines()
                .filter(|l| l.starts_with("127.0.0.1 "))
                .count()
                > 50
        );
    }

    #[test]
    fn keys_size_hint_is_exact() {
        let mut k = keys(Format::Hosts, 5, 2);
        assert_eq!(k.size_hint(), (5, Some(5)));
        k.next();
        assert_eq!(k.size_hint(), (4, Some(4)));
        assert_eq!(k.count(), 4);
        assert_eq!(keys(Format::Urls, 0, 2).count(), 0);
        assert_eq!(feed(Format::Md5sum, 0, 2), "");
    }

    #[test]
    fn output_is_stable() {
        // Committed sample data and other crates' tests depend on these exact values:
        // change them only on purpose.
        let first: Vec<String> = Format::ALL
            .iter()
            .map(|&f| keys(f, 1, 42).next().unwrap())
            .collect();
        assert_eq!(
            first,
            [
                "0408a64ff5b37f206e2f07eac6836ed15075d849",
                "f434cf7f721a78eae33be355b920a42a",
                "6ec03d4f6ab616e9af4227ddbf0cc4510060c67d",
                "8c2e844b8a92499735b6437b3d25d8531172cf489fd4872f03fbdfa913ea48a9",
                "vbdvrobgeb884ihjju.com",
                "http://c2.ciorocoda.io/login/42jp8w9cit5k",
                "vestai494.biz",
            ]
        );
    }

    #[test]
    fn write_errors_are_returned() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let err = write_feed(&mut Broken, Format::Hashes, 100_000, 1).unwrap_err();
        assert_eq!(err.to_string(), "disk full");
    }
}
