//! ThreatFox IOC CSV exports (abuse.ch).
//!
//! Columns as published: `first_seen_utc, ioc_id, ioc_value, ioc_type, threat_type,
//! fk_malware, malware_alias, malware_printable, last_seen_utc, confidence_level,
//! is_compromised, reference, tags, anonymous, reporter`, read by the names in the `#`
//! header line. IOCs of type `md5_hash`, `sha1_hash`, `sha256_hash`, `url` and `domain`
//! become keys; other types (`ip:port`, ...) are skipped and counted as skipped. The
//! record: `malware_printable` as the name, `threat_type` (`botnet_cc`, `payload_delivery`,
//! ...) as the category, `confidence_level` as the confidence, first and last seen.

use super::abusech::ColumnTable;
use super::{parse_digest, Item, LineParser, ParseError, Parsed};
use crate::url::EntryKind;
use crate::{DigestKind, RecordSpec};

/// Reads ThreatFox rows.
#[derive(Debug)]
pub(crate) struct ThreatFoxParser {
    table: ColumnTable,
}

impl ThreatFoxParser {
    pub(crate) fn new() -> Self {
        ThreatFoxParser {
            table: ColumnTable::new(&["ioc_value", "ioc_type"]),
        }
    }
}

impl LineParser for ThreatFoxParser {
    fn csv_delimiter(&self) -> Option<u8> {
        Some(b',')
    }

    fn parse(&mut self, line: &str) -> Result<Parsed, ParseError> {
        let Some(row) = self.table.row(line)? else {
            return Ok(Parsed::Skip);
        };
        let Some(value) = row.get("ioc_value") else {
            return Err(ParseError::from("row has no ioc_value".to_string()));
        };
        let item = match row.raw("ioc_type").unwrap_or("") {
            "md5_hash" => Item::Digest(parse_digest(value, Some(DigestKind::Md5))?),
            "sha1_hash" => Item::Digest(parse_digest(value, Some(DigestKind::Sha1))?),
            "sha256_hash" => Item::Digest(parse_digest(value, Some(DigestKind::Sha256))?),
            "url" => Item::Web(value.to_string(), EntryKind::Url),
            "domain" => Item::Web(value.to_string(), EntryKind::Domain),
            "" => return Err(ParseError::from("row has no ioc_type".to_string())),
            _ => return Ok(Parsed::Ignored),
        };
        let confidence = match row.get("confidence_level") {
            None => None,
            Some(c) => Some(
                c.parse::<u8>()
                    .ok()
                    .filter(|c| *c <= 100)
                    .ok_or_else(|| format!("confidence_level {c:.20} is not 0 to 100"))?,
            ),
        };
        let record = RecordSpec {
            name: row.string("malware_printable"),
            category: row.string("threat_type"),
            confidence,
            first_seen: row.time("first_seen_utc")?,
            last_seen: row.time("last_seen_utc")?,
            ..RecordSpec::default()
        };
        Ok(Parsed::Items(vec![item], record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser() -> ThreatFoxParser {
        let mut p = ThreatFoxParser::new();
        p.parse(r#"# "first_seen_utc","ioc_id","ioc_value","ioc_type","threat_type","fk_malware","malware_alias","malware_printable","last_seen_utc","confidence_level","is_compromised","reference","tags","anonymous","reporter""#).unwrap();
        p
    }

    fn row(value: &str, kind: &str, confidence: &str) -> String {
        format!(
            r#""2026-11-29 07:08:44", "1", "{value}", "{kind}", "botnet_cc", "win.x", "None", "X", "", "{confidence}", "False", "None", "None", "0", "r""#
        )
    }

    #[test]
    fn ioc_types() {
        let mut p = parser();
        let md5 = "44d88612fea8a8f36de82e1278abb02f";
        let Ok(Parsed::Items(items, record)) = p.parse(&row(md5, "md5_hash", "75")) else {
            panic!()
        };
        assert!(matches!(items[0], Item::Digest(d) if d.to_hex() == md5));
        assert_eq!(
            (
                record.name.as_deref(),
                record.category.as_deref(),
                record.confidence
            ),
            (Some("X"), Some("botnet_cc"), Some(75))
        );
        assert_eq!(record.last_seen, None);
        assert!(matches!(
            p.parse(&row("c2.example.com", "domain", "100")),
            Ok(Parsed::Items(items, _)) if items == [Item::Web("c2.example.com".into(), EntryKind::Domain)]
        ));
        assert_eq!(
            p.parse(&row("203.0.113.1:443", "ip:port", "50")),
            Ok(Parsed::Ignored)
        );
        assert!(p.parse(&row(md5, "sha1_hash", "50")).is_err());
        assert!(p.parse(&row(md5, "md5_hash", "-1")).is_err());
        assert!(p.parse(&row(md5, "", "50")).is_err());
    }
}
