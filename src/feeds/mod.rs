//! Feed readers: one parser per format, each turning lines into keys and records.
//!
//! [`read_feed`] reads a file line by line with bounded memory (a line longer than
//! [`MAX_LINE`] is skipped and reported, never buffered whole), hands each line to the
//! format's parser, and adds what it yields to a [`SnapshotBuilder`]. Malformed lines are
//! counted and the first few kept with their line numbers in the [`FeedReport`]; with
//! `strict` the first one is an [`Error::Feed`].
//!
//! | format | line | default verdict |
//! |---|---|---|
//! | `hashes` | a hex digest (kind from its length); anything after whitespace ignored | malicious |
//! | `md5sum`, `sha1sum`, `sha256sum` | coreutils output: `digest  name` or `digest *name` | trusted |
//! | `domains` | one domain per line (a leading `*.` or `.` is dropped) | malicious |
//! | `urls` | one URL per line | malicious |
//! | `hosts` | hosts-file lines: `0.0.0.0 host [host...]` | malicious |
//!
//! Every format skips blank lines and lines starting with `#`.

mod lines;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

pub use lines::{LineReader, MAX_LINE};

use crate::build::{FeedId, FeedInfo, FeedReport, SnapshotBuilder};
use crate::url::EntryKind;
use crate::{Digest, DigestKind, Error, RecordSpec, Result, Verdict};

/// The feed formats this build reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedFormat {
    /// One hex digest per line.
    Hashes,
    /// `md5sum` output.
    Md5sum,
    /// `sha1sum` output.
    Sha1sum,
    /// `sha256sum` output.
    Sha256sum,
    /// One domain per line.
    Domains,
    /// One URL per line.
    Urls,
    /// A hosts file.
    Hosts,
}

impl FeedFormat {
    /// All formats.
    pub const ALL: [FeedFormat; 7] = [
        FeedFormat::Hashes,
        FeedFormat::Md5sum,
        FeedFormat::Sha1sum,
        FeedFormat::Sha256sum,
        FeedFormat::Domains,
        FeedFormat::Urls,
        FeedFormat::Hosts,
    ];

    /// The format's name on the command line and in manifests.
    pub fn name(self) -> &'static str {
        match self {
            FeedFormat::Hashes => "hashes",
            FeedFormat::Md5sum => "md5sum",
            FeedFormat::Sha1sum => "sha1sum",
            FeedFormat::Sha256sum => "sha256sum",
            FeedFormat::Domains => "domains",
            FeedFormat::Urls => "urls",
            FeedFormat::Hosts => "hosts",
        }
    }

    /// The verdict a feed of this format has unless told otherwise.
    pub fn default_verdict(self) -> Verdict {
        match self {
            FeedFormat::Md5sum | FeedFormat::Sha1sum | FeedFormat::Sha256sum => Verdict::Trusted,
            _ => Verdict::Malicious,
        }
    }
}

impl fmt::Display for FeedFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FeedFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FeedFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = FeedFormat::ALL.iter().map(|f| f.name()).collect();
                format!("unknown feed format {s:?} (known: {})", names.join(", "))
            })
    }
}

/// How to read one feed.
#[derive(Debug, Clone)]
pub struct FeedOptions {
    /// The format.
    pub format: FeedFormat,
    /// Verdict for its records (default: the format's).
    pub verdict: Option<Verdict>,
    /// Source name (default: the file's stem).
    pub source: Option<String>,
    /// Category for its records.
    pub category: Option<String>,
    /// Whether its verdicts override other feeds'.
    pub r#override: bool,
    /// Whether a malformed line fails the build.
    pub strict: bool,
}

impl FeedOptions {
    /// Options for a format, everything else default.
    pub fn new(format: FeedFormat) -> Self {
        FeedOptions {
            format,
            verdict: None,
            source: None,
            category: None,
            r#override: false,
            strict: false,
        }
    }
}

/// One usable thing a line yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A digest.
    Digest(Digest),
    /// A URL or domain entry.
    Web(String, EntryKind),
}

/// What a parser says of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Nothing to do (blank, comment).
    Skip,
    /// Skipped on purpose (e.g. `localhost` in a hosts file).
    Ignored,
    /// Keys, all with the same record (fields the record leaves empty come from the feed).
    Items(Vec<Item>, RecordSpec),
}

fn strip_comment(line: &str) -> &str {
    line.split('#').next().unwrap_or("").trim()
}

fn parse_digest(token: &str, expected: Option<DigestKind>) -> Result<Digest, String> {
    let d = Digest::from_hex(token.as_bytes()).map_err(|e| format!("{token:.80}: {e}"))?;
    match expected {
        Some(k) if k != d.kind() => Err(format!("{} digest where {} was expected", d.kind(), k)),
        _ => Ok(d),
    }
}

/// Hosts that hosts files list for the machine itself, never as blocked entries.
const HOSTS_ALLOWED: [&str; 9] = [
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-allnodes",
    "ip6-allrouters",
];

/// Parses one line of a feed. `line` has no line terminator.
///
/// # Errors
///
/// A reason when the line is malformed.
pub fn parse_line(format: FeedFormat, line: &str) -> Result<Parsed, String> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(Parsed::Skip);
    }
    match format {
        FeedFormat::Hashes => {
            let token = trimmed.split_whitespace().next().unwrap_or("");
            Ok(Parsed::Items(
                vec![Item::Digest(parse_digest(token, None)?)],
                RecordSpec::default(),
            ))
        }
        FeedFormat::Md5sum | FeedFormat::Sha1sum | FeedFormat::Sha256sum => {
            let kind = match format {
                FeedFormat::Md5sum => DigestKind::Md5,
                FeedFormat::Sha1sum => DigestKind::Sha1,
                _ => DigestKind::Sha256,
            };
            // A leading backslash marks an escaped file name; the digest follows it.
            let body = trimmed.strip_prefix('\\').unwrap_or(trimmed);
            let (digest, rest) = body.split_at(body.find([' ', '\t']).unwrap_or(body.len()));
            let name = rest
                .strip_prefix(' ')
                .map(|r| r.strip_prefix([' ', '*']).unwrap_or(r));
            if name.is_none_or(str::is_empty) {
                return Err(format!("expected `digest  file name`, found {trimmed:.80}"));
            }
            Ok(Parsed::Items(
                vec![Item::Digest(parse_digest(digest, Some(kind))?)],
                RecordSpec::default(),
            ))
        }
        FeedFormat::Domains => {
            let token = strip_comment(trimmed);
            let token = token.split_whitespace().next().unwrap_or("");
            let token = token.strip_prefix("*.").unwrap_or(token);
            let token = token.strip_prefix('.').unwrap_or(token);
            if token.is_empty() || token.contains(['/', '?', '@']) {
                return Err(format!("not a domain: {token:.80}"));
            }
            Ok(Parsed::Items(
                vec![Item::Web(token.to_string(), EntryKind::Domain)],
                RecordSpec::default(),
            ))
        }
        FeedFormat::Urls => {
            let token = trimmed.split_whitespace().next().unwrap_or("");
            Ok(Parsed::Items(
                vec![Item::Web(token.to_string(), EntryKind::Url)],
                RecordSpec::default(),
            ))
        }
        FeedFormat::Hosts => {
            let body = strip_comment(trimmed);
            let mut fields = body.split_whitespace();
            let address = fields.next().unwrap_or("");
            if address.parse::<std::net::IpAddr>().is_err() {
                return Err(format!("expected `address host...`, found {body:.80}"));
            }
            let hosts: Vec<Item> = fields
                .filter(|h| {
                    !HOSTS_ALLOWED.contains(&h.to_ascii_lowercase().as_str())
                        && h.parse::<std::net::IpAddr>().is_err()
                })
                .map(|h| Item::Web(h.to_string(), EntryKind::Domain))
                .collect();
            if hosts.is_empty() {
                return Ok(Parsed::Ignored);
            }
            Ok(Parsed::Items(hosts, RecordSpec::default()))
        }
    }
}

/// The feed's source name: the option, or the file's stem.
pub fn source_name(path: &Path, options: &FeedOptions) -> String {
    options.source.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| options.format.name().to_string())
    })
}

/// Reads one feed file into `builder`. `progress` is called with the bytes read so far.
///
/// # Errors
///
/// When the file cannot be read, or (with `strict`) at the first malformed line.
pub fn read_feed(
    builder: &mut SnapshotBuilder,
    path: &Path,
    options: &FeedOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<FeedReport> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "is a directory, not a feed file",
            ),
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let source = source_name(path, options);
    let verdict = options.verdict.unwrap_or(options.format.default_verdict());
    let feed = builder.add_feed(FeedInfo {
        source: source.clone(),
        format: options.format.name().into(),
        verdict,
        category: options.category.clone(),
        r#override: options.r#override,
    });
    let mut report = FeedReport {
        source,
        format: options.format.name().into(),
        path: path.display().to_string(),
        ..FeedReport::default()
    };
    let mut reader = LineReader::new(file);
    let fail = |line: u64, reason: &str| Error::Feed {
        path: path.display().to_string(),
        line,
        reason: reason.to_string(),
    };
    loop {
        let bytes = reader.bytes_read();
        let line = match reader.next_line() {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => return Err(Error::io(path, e)),
        };
        report.lines = line.number;
        if line.number % 65536 == 0 {
            progress(bytes);
        }
        let outcome = match line.text {
            Err(reason) => Err(reason),
            Ok(text) => parse_line(options.format, text),
        };
        match outcome {
            Ok(Parsed::Skip) => {}
            Ok(Parsed::Ignored) => report.skipped += 1,
            Ok(Parsed::Items(items, record)) => {
                for item in items {
                    add_item(
                        builder,
                        feed,
                        item,
                        &record,
                        &mut report,
                        line.number,
                        options.strict,
                    )
                    .map_err(|reason| fail(line.number, &reason))?;
                }
            }
            Err(reason) => {
                if options.strict {
                    return Err(fail(line.number, &reason));
                }
                report.malformed(line.number, reason);
            }
        }
    }
    progress(reader.bytes_read());
    Ok(report)
}

fn add_item(
    builder: &mut SnapshotBuilder,
    feed: FeedId,
    item: Item,
    record: &RecordSpec,
    report: &mut FeedReport,
    line: u64,
    strict: bool,
) -> Result<(), String> {
    match item {
        Item::Digest(d) => {
            builder.add_digest(feed, d, record.clone());
            report.keys += 1;
        }
        Item::Web(text, kind) => match builder.add_url_entry(feed, &text, kind, record.clone()) {
            Ok(()) => report.keys += 1,
            Err(e) if strict => return Err(format!("{text:.80}: {e}")),
            Err(e) => report.malformed(line, format!("{text:.80}: {e}")),
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(p: Result<Parsed, String>) -> Digest {
        match p {
            Ok(Parsed::Items(items, _)) => match &items[0] {
                Item::Digest(d) => *d,
                other => panic!("not a digest: {other:?}"),
            },
            other => panic!("not items: {other:?}"),
        }
    }

    #[test]
    fn coreutils_text_and_binary_markers() {
        let hex = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
        for line in [
            format!("{hex}  eicar.com"),
            format!("{hex} *eicar.com"),
            format!("\\{hex}  a\\nb"),
        ] {
            assert_eq!(
                digest_of(parse_line(FeedFormat::Sha256sum, &line)).to_hex(),
                hex
            );
        }
        assert!(parse_line(FeedFormat::Sha256sum, hex).is_err());
        assert!(parse_line(FeedFormat::Md5sum, &format!("{hex}  x")).is_err());
    }

    #[test]
    fn hashes_ignore_trailing_fields_and_comments() {
        let d = digest_of(parse_line(
            FeedFormat::Hashes,
            "44D88612FEA8A8F36DE82E1278ABB02F eicar",
        ));
        assert_eq!(d.kind(), DigestKind::Md5);
        assert_eq!(
            parse_line(FeedFormat::Hashes, "# comment"),
            Ok(Parsed::Skip)
        );
        assert_eq!(parse_line(FeedFormat::Hashes, "   "), Ok(Parsed::Skip));
        assert!(parse_line(FeedFormat::Hashes, "xyz").is_err());
    }

    #[test]
    fn hosts_lines() {
        assert_eq!(
            parse_line(
                FeedFormat::Hosts,
                "0.0.0.0 ads.example.com tracker.example.net # x"
            ),
            Ok(Parsed::Items(
                vec![
                    Item::Web("ads.example.com".into(), EntryKind::Domain),
                    Item::Web("tracker.example.net".into(), EntryKind::Domain)
                ],
                RecordSpec::default()
            ))
        );
        assert_eq!(
            parse_line(FeedFormat::Hosts, "127.0.0.1 localhost"),
            Ok(Parsed::Ignored)
        );
        assert!(parse_line(FeedFormat::Hosts, "ads.example.com").is_err());
    }
}
