//! `repute-stats`: the prevalence feed `repute stats export` writes, one JSON object per line.
//!
//! | field | meaning |
//! |---|---|
//! | `type` | `md5`, `sha1` or `sha256` |
//! | `digest` | the digest in hex |
//! | `verdict` | what most reporters' snapshots said: `malicious`, `suspicious` or `unknown` (stored as `known`: prevalent, no judgement) |
//! | `count`, `reporters` | sightings and daily distinct reporters, bucketed (not stored) |
//! | `first_day`, `last_day` | `YYYY-MM-DD`: become first and last seen |
//! | `name` | detection name, optional |
//!
//! Records get the category `prevalent`. The schema is closed: an unknown field is a
//! malformed line, as a truncated or foreign file should be.

use serde::Deserialize;

use super::{parse_digest, values, Item, LineParser, ParseError, Parsed};
use crate::{DigestKind, RecordSpec, Verdict};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrevalenceLine {
    #[serde(rename = "type")]
    kind: String,
    digest: String,
    verdict: String,
    #[allow(dead_code)]
    count: u64,
    #[allow(dead_code)]
    reporters: u64,
    first_day: String,
    last_day: String,
    #[serde(default)]
    name: Option<String>,
}

/// Reads the prevalence export.
#[derive(Debug)]
pub(crate) struct ReputeStatsParser;

impl LineParser for ReputeStatsParser {
    fn parse(&mut self, line: &str) -> Result<Parsed, ParseError> {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok(Parsed::Skip);
        }
        let p: PrevalenceLine = serde_json::from_str(trimmed).map_err(|e| {
            let mut reason = e.to_string();
            reason.truncate(200);
            format!("not a repute-stats line: {reason}")
        })?;
        let kind = match p.kind.as_str() {
            "md5" => DigestKind::Md5,
            "sha1" => DigestKind::Sha1,
            "sha256" => DigestKind::Sha256,
            other => return Err(format!("type {other:.20?} is not md5, sha1 or sha256").into()),
        };
        let digest = parse_digest(&p.digest, Some(kind))?;
        let verdict = match p.verdict.as_str() {
            "malicious" => Verdict::Malicious,
            "suspicious" => Verdict::Suspicious,
            "unknown" => Verdict::Known,
            other => return Err(format!("verdict {other:.20?} is not reported").into()),
        };
        let first = values::time(&p.first_day).map_err(|e| format!("first_day: {e}"))?;
        let last = values::time(&p.last_day).map_err(|e| format!("last_day: {e}"))?;
        let spec = RecordSpec {
            verdict: Some(verdict),
            category: Some("prevalent".into()),
            name: p.name.filter(|n| !n.trim().is_empty()),
            first_seen: Some(first),
            last_seen: Some(last),
            confidence: None,
        };
        Ok(Parsed::Items(vec![Item::Digest(digest)], spec))
    }

    fn default_verdict(&self) -> Option<Verdict> {
        Some(Verdict::Known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_export_and_refuses_foreign_lines() {
        let line = format!(
            r#"{{"type":"sha256","digest":"{}","verdict":"unknown","count":50,"reporters":10,"first_day":"2026-12-01","last_day":"2026-12-02"}}"#,
            "ab".repeat(32)
        );
        let Ok(Parsed::Items(items, spec)) = ReputeStatsParser.parse(&line) else {
            panic!()
        };
        assert_eq!(items.len(), 1);
        assert_eq!(spec.verdict, Some(Verdict::Known));
        assert_eq!(spec.first_seen, Some(1_796_083_200));
        assert!(ReputeStatsParser
            .parse(&line.replace("\"count\"", "\"path\":\"/x\",\"count\""))
            .is_err());
        assert!(ReputeStatsParser
            .parse(&line.replace("\"sha256\"", "\"md5\""))
            .is_err());
        assert!(ReputeStatsParser
            .parse(&line.replace("\"unknown\"", "\"trusted\""))
            .is_err());
    }
}
