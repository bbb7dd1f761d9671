//! JSON lines: one JSON object per line.
//!
//! | field | meaning |
//! |---|---|
//! | `key` | a digest, URL or domain, told apart by shape (32/40/64 hex digits, contains `/`, else a domain) |
//! | `md5`, `sha1`, `sha256`, `url`, `domain` | a key of that kind; an object may give several, all sharing its record |
//! | `verdict` | `malicious`, `suspicious`, `trusted` or `known` (default: the feed's) |
//! | `category`, `name` | strings |
//! | `first_seen`, `last_seen` | Unix seconds (number or string) or `YYYY-MM-DD[ HH:MM:SS]` UTC |
//! | `confidence` | whole number 0 to 100 |
//! | `source` | ignored: the feed's source name is used |
//!
//! Other fields are ignored; `null` is the same as an absent field. Blank lines and lines
//! starting with `#` are skipped.

use serde::Deserialize;
use serde_json::Value;

use super::values::{self, KEY_FIELDS};
use super::{LineParser, ParseError, Parsed};
use crate::RecordSpec;

#[derive(Debug, Deserialize)]
struct JsonRecord {
    key: Option<String>,
    md5: Option<String>,
    sha1: Option<String>,
    sha256: Option<String>,
    url: Option<String>,
    domain: Option<String>,
    verdict: Option<String>,
    category: Option<String>,
    name: Option<String>,
    first_seen: Option<Value>,
    last_seen: Option<Value>,
    confidence: Option<Value>,
}

/// Reads JSON lines.
#[derive(Debug)]
pub(crate) struct JsonLinesParser;

fn scalar_text(field: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(format!("{field} must be a number or a string")),
    }
}

impl LineParser for JsonLinesParser {
    fn parse(&mut self, line: &str) -> Result<Parsed, ParseError> {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok(Parsed::Skip);
        }
        if !trimmed.starts_with('{') {
            return Err(ParseError::from(format!(
                "not a JSON object: {trimmed:.40}"
            )));
        }
        let record: JsonRecord = serde_json::from_str(trimmed).map_err(|e| {
            let mut reason = e.to_string();
            reason.truncate(200);
            format!("not a JSON object of the feed schema: {reason}")
        })?;
        let keys = [
            &record.key,
            &record.md5,
            &record.sha1,
            &record.sha256,
            &record.url,
            &record.domain,
        ];
        let mut items = Vec::new();
        for (value, (field, kind)) in keys.into_iter().zip(KEY_FIELDS) {
            if let Some(v) = value {
                items.push(values::key_item(v, kind).map_err(|e| format!("{field}: {e}"))?);
            }
        }
        if items.is_empty() {
            return Err(ParseError::from(
                "no key (key, md5, sha1, sha256, url or domain)".to_string(),
            ));
        }
        let time = |field: &str, v: &Option<Value>| -> Result<Option<i64>, String> {
            v.as_ref()
                .map(|v| {
                    scalar_text(field, v)
                        .and_then(|t| values::time(&t))
                        .map_err(|e| format!("{field}: {e}"))
                })
                .transpose()
        };
        let spec = RecordSpec {
            verdict: record.verdict.as_deref().map(values::verdict).transpose()?,
            category: record.category.filter(|c| !c.trim().is_empty()),
            name: record.name.filter(|n| !n.trim().is_empty()),
            first_seen: time("first_seen", &record.first_seen)?,
            last_seen: time("last_seen", &record.last_seen)?,
            confidence: record
                .confidence
                .as_ref()
                .map(|v| scalar_text("confidence", v).and_then(|t| values::confidence(&t)))
                .transpose()?,
        };
        Ok(Parsed::Items(items, spec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::Item;
    use crate::url::EntryKind;
    use crate::Verdict;

    fn parse(line: &str) -> Result<Parsed, ParseError> {
        JsonLinesParser.parse(line)
    }

    #[test]
    fn keys_by_field_and_by_shape() {
        let Ok(Parsed::Items(items, record)) = parse(
            r#"{"key": "Example.com", "url": "http://example.com/a", "verdict": "pua", "first_seen": "1700000000", "confidence": 5}"#,
        ) else {
            panic!()
        };
        assert_eq!(
            items,
            [
                Item::Web("Example.com".into(), EntryKind::Domain),
                Item::Web("http://example.com/a".into(), EntryKind::Url)
            ]
        );
        assert_eq!(record.verdict, Some(Verdict::Suspicious));
        assert_eq!(record.first_seen, Some(1_700_000_000));
        assert_eq!(record.confidence, Some(5));
    }

    #[test]
    fn refusals() {
        for bad in [
            r#"{"md5": 5}"#,
            r#"{"md5": ""}"#,
            r#"{"key": "x", "confidence": 7.5}"#,
            r#"{"key": "x", "first_seen": true}"#,
            r#"{"key": "x", "first_seen": 99999999999999999999}"#,
            r#"{"key": "x", "verdict": "evil"}"#,
            r#"{"key": "x""#,
            "42",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse("  "), Ok(Parsed::Skip));
    }
}
