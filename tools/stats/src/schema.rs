//! The closed schemas: what an agent sends ([`Report`]) and what a proxy relays ([`Aggregate`]).
//!
//! A report covers one UTC day of one agent:
//!
//! ```json
//! {"schema":"repute-report/1","day":"2026-12-02","token":"<32 hex>","snapshot_sequence":7,
//!  "product_version":"0.1.0",
//!  "items":[{"type":"sha256","digest":"<64 hex>","verdict":"unknown","count":3}]}
//! ```
//!
//! Nothing else can be expressed: every struct refuses unknown fields, strings are checked
//! for their exact shape ([`crate::intake`]), and there is no free-text field. The token is
//! random, renewed every day, and only counts distinct reporters within that day.
//!
//! An aggregate is what a proxy forwards upstream once a day has closed: per digest, the
//! counts by verdict and the number of distinct reporters, with no token and no address.

use serde::{Deserialize, Serialize};

/// The `schema` value of a [`Report`].
pub const REPORT_SCHEMA: &str = "repute-report/1";
/// The `schema` value of an [`Aggregate`].
pub const AGGREGATE_SCHEMA: &str = "repute-aggregate/1";

/// A digest's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestType {
    /// MD5 (32 hex digits).
    Md5,
    /// SHA-1 (40 hex digits).
    Sha1,
    /// SHA-256 (64 hex digits).
    Sha256,
}

impl DigestType {
    /// All types.
    pub const ALL: [DigestType; 3] = [DigestType::Md5, DigestType::Sha1, DigestType::Sha256];

    /// The name: `md5`, `sha1`, `sha256`.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestType::Md5 => "md5",
            DigestType::Sha1 => "sha1",
            DigestType::Sha256 => "sha256",
        }
    }

    /// The length of the digest in hex digits.
    pub fn hex_len(self) -> usize {
        match self {
            DigestType::Md5 => 32,
            DigestType::Sha1 => 40,
            DigestType::Sha256 => 64,
        }
    }

    /// The type named `name`.
    pub fn from_name(name: &str) -> Option<DigestType> {
        DigestType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// The verdict the agent's snapshot gave. Only detections and unknown digests are reported:
/// files the snapshot trusts or knows are never mentioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportedVerdict {
    /// Detected as malicious.
    Malicious,
    /// Detected as suspicious (PUA, grayware).
    Suspicious,
    /// Not in the snapshot.
    Unknown,
}

impl ReportedVerdict {
    /// The name: `malicious`, `suspicious`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportedVerdict::Malicious => "malicious",
            ReportedVerdict::Suspicious => "suspicious",
            ReportedVerdict::Unknown => "unknown",
        }
    }
}

/// One digest in a report: seen `count` times that day with this verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// The digest's type.
    #[serde(rename = "type")]
    pub kind: DigestType,
    /// The digest, lowercase hex.
    pub digest: String,
    /// The verdict of the agent's snapshot.
    pub verdict: ReportedVerdict,
    /// How many times the agent saw it that day (at least 1).
    pub count: u32,
}

/// One agent's report for one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Always [`REPORT_SCHEMA`].
    pub schema: String,
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// A random token renewed every day: 32 lowercase hex digits.
    pub token: String,
    /// The sequence number of the agent's snapshot.
    pub snapshot_sequence: u64,
    /// The agent's product version (digits, letters, `.`, `-`, `+`; at most 32).
    pub product_version: String,
    /// The digests.
    pub items: Vec<Item>,
}

/// One digest of a closed day, as a proxy relays it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateItem {
    /// The digest's type.
    #[serde(rename = "type")]
    pub kind: DigestType,
    /// The digest, lowercase hex.
    pub digest: String,
    /// Sightings reported as malicious.
    pub malicious: u64,
    /// Sightings reported as suspicious.
    pub suspicious: u64,
    /// Sightings reported as unknown.
    pub unknown: u64,
    /// Distinct reporters that day.
    pub reporters: u32,
}

/// A closed day's aggregates, relayed upstream by a proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aggregate {
    /// Always [`AGGREGATE_SCHEMA`].
    pub schema: String,
    /// The closed UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// A random identifier of this batch (32 lowercase hex), so a batch re-sent after a lost
    /// acknowledgement is counted once.
    pub batch: String,
    /// The digests.
    pub items: Vec<AggregateItem>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_json() -> serde_json::Value {
        serde_json::json!({
            "schema": REPORT_SCHEMA, "day": "2026-12-02", "token": "0".repeat(32),
            "snapshot_sequence": 7, "product_version": "0.1.0",
            "items": [{"type": "md5", "digest": "44d88612fea8a8f36de82e1278abb02f",
                       "verdict": "malicious", "count": 2}]
        })
    }

    #[test]
    fn round_trips() {
        let r: Report = serde_json::from_value(report_json()).unwrap();
        assert_eq!(r.items[0].kind, DigestType::Md5);
        assert_eq!(serde_json::to_value(&r).unwrap(), report_json());
    }

    #[test]
    fn refuses_every_extra_field() {
        for field in ["path", "file_name", "host", "user", "address", "time", "x"] {
            let mut top = report_json();
            top[field] = serde_json::json!("/home/alice/secret.doc");
            assert!(
                serde_json::from_value::<Report>(top).is_err(),
                "top-level {field}"
            );
            let mut item = report_json();
            item["items"][0][field] = serde_json::json!("secret.doc");
            assert!(
                serde_json::from_value::<Report>(item).is_err(),
                "item {field}"
            );
        }
        let agg = serde_json::json!({"schema": AGGREGATE_SCHEMA, "day": "2026-12-01",
            "batch": "0".repeat(32), "items": [{"type": "sha1", "digest": "a".repeat(40),
            "malicious": 0, "suspicious": 0, "unknown": 1, "reporters": 1, "path": "/x"}]});
        assert!(serde_json::from_value::<Aggregate>(agg).is_err());
    }

    #[test]
    fn refuses_verdicts_not_reported() {
        let mut r = report_json();
        r["items"][0]["verdict"] = serde_json::json!("trusted");
        assert!(serde_json::from_value::<Report>(r).is_err());
    }
}
