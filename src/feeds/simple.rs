//! The one-key-per-line formats: hash lists, coreutils checksum output, domain and URL
//! lists, hosts files (including the URLhaus hostfile).

use super::{parse_digest, FeedFormat, Item, LineParser, ParseError, Parsed};
use crate::url::EntryKind;
use crate::{Digest, DigestKind, RecordSpec};

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

/// Which of the line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SimpleFormat {
    Hashes,
    Checksums(DigestKind),
    Domains,
    Urls,
    Hosts,
}

/// The line format of a feed format that is one of these.
pub(crate) fn simple_format(format: FeedFormat) -> Option<SimpleFormat> {
    Some(match format {
        FeedFormat::Hashes => SimpleFormat::Hashes,
        FeedFormat::Md5sum => SimpleFormat::Checksums(DigestKind::Md5),
        FeedFormat::Sha1sum => SimpleFormat::Checksums(DigestKind::Sha1),
        FeedFormat::Sha256sum => SimpleFormat::Checksums(DigestKind::Sha256),
        FeedFormat::Domains => SimpleFormat::Domains,
        FeedFormat::Urls => SimpleFormat::Urls,
        FeedFormat::Hosts | FeedFormat::UrlhausHosts => SimpleFormat::Hosts,
        _ => return None,
    })
}

/// A parser for the one-key-per-line formats; it keeps no state between lines.
#[derive(Debug)]
pub(crate) struct SimpleParser(pub(crate) SimpleFormat);

impl LineParser for SimpleParser {
    fn parse(&mut self, line: &str) -> Result<Parsed, ParseError> {
        Ok(parse_simple(self.0, line)?)
    }
}

fn strip_comment(line: &str) -> &str {
    line.split('#').next().unwrap_or("").trim()
}

/// For the digest formats, the digest a line holds (`Ok(None)` for a blank or comment line),
/// found without allocating; `None` for the other formats.
pub(crate) fn line_digest(
    format: SimpleFormat,
    line: &str,
) -> Option<Result<Option<Digest>, String>> {
    let trimmed = line.trim();
    let skip = trimmed.is_empty() || trimmed.starts_with('#');
    Some(match format {
        _ if skip && is_digest_format(format) => Ok(None),
        SimpleFormat::Hashes => hash_token(trimmed).map(Some),
        SimpleFormat::Checksums(kind) => checksum_digest(trimmed, kind).map(Some),
        _ => return None,
    })
}

fn is_digest_format(format: SimpleFormat) -> bool {
    matches!(format, SimpleFormat::Hashes | SimpleFormat::Checksums(_))
}

/// A `hashes` line (trimmed, not blank): its first token.
fn hash_token(trimmed: &str) -> Result<Digest, String> {
    let token = trimmed.split_ascii_whitespace().next().unwrap_or("");
    parse_digest(token, None)
}

/// A coreutils checksum line (trimmed, not blank): `digest  name` or `digest *name`.
fn checksum_digest(trimmed: &str, kind: DigestKind) -> Result<Digest, String> {
    // A leading backslash marks an escaped file name; the digest follows it.
    let body = trimmed.strip_prefix('\\').unwrap_or(trimmed);
    let (digest, rest) = body.split_at(body.find([' ', '\t']).unwrap_or(body.len()));
    let name = rest
        .strip_prefix(' ')
        .map(|r| r.strip_prefix([' ', '*']).unwrap_or(r));
    if name.is_none_or(str::is_empty) {
        return Err(format!("expected `digest  file name`, found {trimmed:.80}"));
    }
    parse_digest(digest, Some(kind))
}

pub(crate) fn parse_simple(format: SimpleFormat, line: &str) -> Result<Parsed, String> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(Parsed::Skip);
    }
    match format {
        SimpleFormat::Hashes => Ok(Parsed::Items(
            vec![Item::Digest(hash_token(trimmed)?)],
            RecordSpec::default(),
        )),
        SimpleFormat::Checksums(kind) => Ok(Parsed::Items(
            vec![Item::Digest(checksum_digest(trimmed, kind)?)],
            RecordSpec::default(),
        )),
        SimpleFormat::Domains => {
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
        SimpleFormat::Urls => {
            let token = trimmed.split_whitespace().next().unwrap_or("");
            Ok(Parsed::Items(
                vec![Item::Web(token.to_string(), EntryKind::Url)],
                RecordSpec::default(),
            ))
        }
        SimpleFormat::Hosts => {
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
