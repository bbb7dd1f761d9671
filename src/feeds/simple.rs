//! The one-key-per-line formats: hash lists, coreutils checksum output, domain and URL
//! lists, hosts files (including the URLhaus hostfile).

use super::{parse_digest, Item, LineParser, ParseError, Parsed};
use crate::url::EntryKind;
use crate::{DigestKind, RecordSpec};

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

fn parse_simple(format: SimpleFormat, line: &str) -> Result<Parsed, String> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(Parsed::Skip);
    }
    match format {
        SimpleFormat::Hashes => {
            let token = trimmed.split_ascii_whitespace().next().unwrap_or("");
            Ok(Parsed::Items(
                vec![Item::Digest(parse_digest(token, None)?)],
                RecordSpec::default(),
            ))
        }
        SimpleFormat::Checksums(kind) => {
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
