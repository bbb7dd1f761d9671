//! The prevalence export: the JSON lines `repute build` reads as the `repute-stats` format.
//!
//! One line per digest that at least `min_reporters` distinct reporters sent on one day
//! (tokens are renewed daily, so distinct reporters cannot be counted across days; the
//! largest daily figure is the one compared with the threshold):
//!
//! ```json
//! {"type":"sha256","digest":"<hex>","verdict":"unknown","count":50,"reporters":10,
//!  "first_day":"2026-11-30","last_day":"2026-12-02","name":"Win.Trojan.Agent"}
//! ```
//!
//! - `verdict`: the verdict most sightings carried (ties go to the stronger one);
//! - `count`: all sightings since `since`, and `reporters`: the largest daily number of
//!   distinct reporters, both rounded down to a bucket of the 1-2-5 series (1, 2, 5, 10,
//!   20, 50, ...), so an export does not reveal exact figures;
//! - `first_day`, `last_day`: the first and last day it was reported;
//! - `name`: the detection name, when the caller knows one.
//!
//! The summary ([`ExportSummary`]) counts the exported digests and sightings by verdict
//! and by detection name: the types and sources of threats.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::schema::DigestType;
use crate::Day;

/// What to export.
#[derive(Debug, Clone, Copy)]
pub struct ExportOptions {
    /// Distinct reporters a digest needs on one day to be exported (at least 1).
    pub min_reporters: u32,
    /// Only days from this one on.
    pub since: Option<Day>,
}

/// Rounds down to the 1-2-5 series: 0, 1, 2, 5, 10, 20, 50, 100, ...
pub fn bucket(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let mut scale = 1u64;
    loop {
        for step in [1, 2, 5] {
            let next = match step {
                1 => scale.checked_mul(2),
                2 => scale.checked_mul(5),
                _ => scale.checked_mul(10),
            };
            if next.is_none_or(|next| n < next) {
                return scale * step;
            }
        }
        match scale.checked_mul(10) {
            Some(s) => scale = s,
            None => return scale,
        }
    }
}

/// One exported line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportedDigest {
    /// The digest's type.
    #[serde(rename = "type")]
    pub kind: DigestType,
    /// The digest, lowercase hex.
    pub digest: String,
    /// `malicious`, `suspicious` or `unknown`.
    pub verdict: &'static str,
    /// Sightings, bucketed.
    pub count: u64,
    /// The largest daily number of distinct reporters, bucketed.
    pub reporters: u64,
    /// First day reported.
    pub first_day: String,
    /// Last day reported.
    pub last_day: String,
    /// Detection name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip)]
    raw_count: u64,
}

impl ExportedDigest {
    pub(crate) fn new(
        kind: DigestType,
        digest: String,
        by_verdict: [u64; 3],
        reporters: u64,
        first: Day,
        last: Day,
        names: &dyn Fn(DigestType, &str) -> Option<String>,
    ) -> ExportedDigest {
        let labels = ["malicious", "suspicious", "unknown"];
        // Most sightings; on a tie the earlier (stronger) verdict.
        let mut best = 0;
        for i in 1..3 {
            if by_verdict[i] > by_verdict[best] {
                best = i;
            }
        }
        let raw_count = by_verdict.iter().fold(0u64, |a, &b| a.saturating_add(b));
        let name = names(kind, &digest);
        ExportedDigest {
            kind,
            digest,
            verdict: labels[best],
            count: bucket(raw_count),
            reporters: bucket(reporters),
            first_day: first.to_string(),
            last_day: last.to_string(),
            name,
            raw_count,
        }
    }
}

/// Detections by name in an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NameSummary {
    /// The detection name.
    pub name: String,
    /// Digests exported under it.
    pub digests: u64,
    /// Their sightings, bucketed.
    pub count: u64,
}

/// The summary of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    /// The threshold used.
    pub min_reporters: u32,
    /// The first day included, if limited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Digests exported.
    pub digests: u64,
    /// Digests exported by verdict.
    pub by_verdict: BTreeMap<String, u64>,
    /// Detections by name, most sightings first.
    pub by_name: Vec<NameSummary>,
}

pub(crate) struct SummaryBuilder {
    min_reporters: u32,
    since: Option<Day>,
    digests: u64,
    by_verdict: BTreeMap<String, u64>,
    by_name: BTreeMap<String, (u64, u64)>,
}

impl SummaryBuilder {
    pub(crate) fn new(options: &ExportOptions) -> SummaryBuilder {
        SummaryBuilder {
            min_reporters: options.min_reporters.max(1),
            since: options.since,
            digests: 0,
            by_verdict: BTreeMap::new(),
            by_name: BTreeMap::new(),
        }
    }

    pub(crate) fn add(&mut self, e: &ExportedDigest) {
        self.digests += 1;
        *self.by_verdict.entry(e.verdict.to_string()).or_default() += 1;
        if let Some(name) = &e.name {
            let slot = self.by_name.entry(name.clone()).or_default();
            slot.0 += 1;
            slot.1 = slot.1.saturating_add(e.raw_count);
        }
    }

    pub(crate) fn finish(self) -> ExportSummary {
        let mut by_name: Vec<NameSummary> = self
            .by_name
            .into_iter()
            .map(|(name, (digests, count))| NameSummary {
                name,
                digests,
                count: bucket(count),
            })
            .collect();
        by_name.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        ExportSummary {
            min_reporters: self.min_reporters,
            since: self.since.map(|d| d.to_string()),
            digests: self.digests,
            by_verdict: self.by_verdict,
            by_name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_the_1_2_5_series() {
        let cases = [
            (0, 0),
            (1, 1),
            (2, 2),
            (4, 2),
            (5, 5),
            (9, 5),
            (10, 10),
            (19, 10),
            (20, 20),
            (49, 20),
            (50, 50),
            (99, 50),
            (100, 100),
            (1234, 1000),
            (2_000_000, 2_000_000),
        ];
        for (n, b) in cases {
            assert_eq!(bucket(n), b, "{n}");
        }
        for n in [u64::MAX, u64::MAX / 3, 1 << 40] {
            let b = bucket(n);
            assert!(b <= n && b > n / 5, "{n} -> {b}");
        }
    }
}
