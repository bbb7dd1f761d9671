//! Decoding and validating a submitted body: what `POST /v1/statistics` accepts.
//!
//! A body is JSON, optionally gzip-compressed (`Content-Encoding: gzip`). It is refused,
//! before anything is stored, when it is larger than [`Limits::max_body`], when it inflates
//! beyond [`Limits::max_decoded`], when it is not JSON of one of the two closed schemas
//! (any unknown field, at any depth, is refused), or when a value has the wrong shape: a
//! digest that is not lowercase hex of its type's length, a token that is not 32 lowercase
//! hex digits, a day outside the window a report may still be counted in, a zero count,
//! more than [`Limits::max_items`] items.

use std::io::Read;

use serde::Deserialize;

use crate::schema::{Aggregate, Report, AGGREGATE_SCHEMA, REPORT_SCHEMA};
use crate::Day;

/// Caps on a submission.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of the body as received.
    pub max_body: usize,
    /// Bytes of the body after decompression.
    pub max_decoded: usize,
    /// Items in one report or aggregate.
    pub max_items: usize,
    /// The largest count one item may carry.
    pub max_count: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 2 << 20,
            max_decoded: 4 << 20,
            max_items: 10_000,
            max_count: 1_000_000,
        }
    }
}

/// A validated submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submission {
    /// An agent's report for one day.
    Report(Report, Day),
    /// A proxy's aggregates for one closed day.
    Aggregate(Aggregate, Day),
}

/// Why a submission was refused. Every variant maps to a 4xx status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// The body (as received or decompressed) is over a cap.
    #[error("body too large: {what} over {limit} bytes")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The cap.
        limit: usize,
    },
    /// Not gzip, not JSON, or not of either schema (an unknown field, a missing one).
    #[error("malformed submission: {0}")]
    Malformed(String),
    /// JSON of the schema whose values are out of shape or range.
    #[error("invalid submission: {0}")]
    Invalid(String),
}

impl IntakeError {
    /// The HTTP status for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            IntakeError::TooLarge { .. } => 413,
            IntakeError::Malformed(_) => 400,
            IntakeError::Invalid(_) => 422,
        }
    }
}

#[derive(Deserialize)]
struct SchemaProbe {
    schema: String,
}

fn truncated(e: impl std::fmt::Display) -> String {
    let mut s = e.to_string();
    s.truncate(200);
    s
}

/// Decodes and validates a body received on `today`.
///
/// # Errors
///
/// [`IntakeError`] naming the first problem found.
pub fn decode_submission(
    body: &[u8],
    gzip: bool,
    limits: &Limits,
    today: Day,
) -> Result<Submission, IntakeError> {
    if body.len() > limits.max_body {
        return Err(IntakeError::TooLarge {
            what: "body",
            limit: limits.max_body,
        });
    }
    let inflated;
    let json: &[u8] = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .take(limits.max_decoded as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| IntakeError::Malformed(format!("gzip: {}", truncated(e))))?;
        inflated = out;
        &inflated
    } else {
        body
    };
    if json.len() > limits.max_decoded {
        return Err(IntakeError::TooLarge {
            what: "decompressed body",
            limit: limits.max_decoded,
        });
    }
    let probe: SchemaProbe = serde_json::from_slice(json)
        .map_err(|e| IntakeError::Malformed(format!("no schema field: {}", truncated(e))))?;
    match probe.schema.as_str() {
        REPORT_SCHEMA => {
            let report: Report =
                serde_json::from_slice(json).map_err(|e| IntakeError::Malformed(truncated(e)))?;
            let day = validate_report(&report, limits, today)?;
            Ok(Submission::Report(report, day))
        }
        AGGREGATE_SCHEMA => {
            let aggregate: Aggregate =
                serde_json::from_slice(json).map_err(|e| IntakeError::Malformed(truncated(e)))?;
            let day = validate_aggregate(&aggregate, limits, today)?;
            Ok(Submission::Aggregate(aggregate, day))
        }
        other => Err(IntakeError::Malformed(format!(
            "unknown schema {other:.40?} (expected {REPORT_SCHEMA} or {AGGREGATE_SCHEMA})"
        ))),
    }
}

/// Whether `s` is exactly `len` lowercase hex digits.
pub fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fn invalid(reason: String) -> IntakeError {
    IntakeError::Invalid(reason)
}

/// Checks a report's values. A report may be for today or yesterday (UTC): older days are
/// closed (their reporter tokens are gone, so they could no longer be counted).
///
/// # Errors
///
/// [`IntakeError::Invalid`] naming the field.
pub fn validate_report(report: &Report, limits: &Limits, today: Day) -> Result<Day, IntakeError> {
    let day: Day = report.day.parse().map_err(invalid)?;
    if day < today.plus(-1) || day > today {
        return Err(invalid(format!(
            "day {day} is not today or yesterday ({today}): closed or in the future"
        )));
    }
    if !is_lower_hex(&report.token, 32) {
        return Err(invalid("token must be 32 lowercase hex digits".into()));
    }
    let version_ok = !report.product_version.is_empty()
        && report.product_version.len() <= 32
        && report
            .product_version
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+'));
    if !version_ok {
        return Err(invalid(
            "product_version must be 1 to 32 letters, digits, '.', '-' or '+'".into(),
        ));
    }
    if report.items.len() > limits.max_items {
        return Err(invalid(format!(
            "{} items, at most {} allowed",
            report.items.len(),
            limits.max_items
        )));
    }
    for (i, item) in report.items.iter().enumerate() {
        if !is_lower_hex(&item.digest, item.kind.hex_len()) {
            return Err(invalid(format!(
                "items[{i}].digest is not {} lowercase hex digits of a {}",
                item.kind.hex_len(),
                item.kind.as_str()
            )));
        }
        if item.count == 0 || item.count > limits.max_count {
            return Err(invalid(format!(
                "items[{i}].count must be 1 to {}",
                limits.max_count
            )));
        }
    }
    Ok(day)
}

/// Checks a relayed aggregate's values: a day closed at the proxy (two or more days ago)
/// and at most a year old.
///
/// # Errors
///
/// [`IntakeError::Invalid`] naming the field.
pub fn validate_aggregate(
    aggregate: &Aggregate,
    limits: &Limits,
    today: Day,
) -> Result<Day, IntakeError> {
    let day: Day = aggregate.day.parse().map_err(invalid)?;
    if day > today.plus(-2) || day < today.plus(-366) {
        return Err(invalid(format!(
            "aggregate day {day} is not a closed day of the last year ({today})"
        )));
    }
    if !is_lower_hex(&aggregate.batch, 32) {
        return Err(invalid("batch must be 32 lowercase hex digits".into()));
    }
    if aggregate.items.len() > limits.max_items {
        return Err(invalid(format!(
            "{} items, at most {} allowed",
            aggregate.items.len(),
            limits.max_items
        )));
    }
    let max = u64::from(limits.max_count) * 1_000_000;
    for (i, item) in aggregate.items.iter().enumerate() {
        if !is_lower_hex(&item.digest, item.kind.hex_len()) {
            return Err(invalid(format!("items[{i}].digest is malformed")));
        }
        let total = item
            .malicious
            .checked_add(item.suspicious)
            .and_then(|t| t.checked_add(item.unknown));
        if item.reporters == 0 || total.is_none_or(|t| t == 0 || t > max) {
            return Err(invalid(format!(
                "items[{i}]: counts and reporters must be positive and bounded"
            )));
        }
    }
    Ok(day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const TODAY: Day = Day(20_000);

    fn report(day: Day, items: usize) -> String {
        let items: Vec<String> = (0..items)
            .map(|i| {
                format!(r#"{{"type":"md5","digest":"{i:032x}","verdict":"unknown","count":1}}"#)
            })
            .collect();
        format!(
            r#"{{"schema":"repute-report/1","day":"{day}","token":"{}","snapshot_sequence":1,"product_version":"0.1.0","items":[{}]}}"#,
            "ab".repeat(16),
            items.join(",")
        )
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn accepts_plain_and_gzip() {
        let body = report(TODAY, 3);
        let lim = Limits::default();
        let Ok(Submission::Report(r, d)) = decode_submission(body.as_bytes(), false, &lim, TODAY)
        else {
            panic!()
        };
        assert_eq!((r.items.len(), d), (3, TODAY));
        assert!(decode_submission(&gzip(body.as_bytes()), true, &lim, TODAY).is_ok());
    }

    #[test]
    fn refuses_with_4xx() {
        let lim = Limits {
            max_items: 5,
            max_decoded: 4096,
            ..Limits::default()
        };
        let cases: Vec<(Vec<u8>, bool, u16)> = vec![
            (report(TODAY, 6).into_bytes(), false, 422),
            (report(TODAY.plus(-2), 1).into_bytes(), false, 422),
            (report(TODAY.plus(1), 1).into_bytes(), false, 422),
            (
                report(TODAY, 1).replace("\"md5\"", "\"sha1\"").into_bytes(),
                false,
                422,
            ),
            (
                report(TODAY, 1).replace("abab", "ABAB").into_bytes(),
                false,
                422,
            ),
            (
                report(TODAY, 1)
                    .replace("\"count\":1", "\"count\":0")
                    .into_bytes(),
                false,
                422,
            ),
            (
                report(TODAY, 1)
                    .replace("0.1.0", "0.1 (Alice's laptop)")
                    .into_bytes(),
                false,
                422,
            ),
            (
                report(TODAY, 1)
                    .replace("\"count\":1", "\"count\":1,\"path\":\"/x\"")
                    .into_bytes(),
                false,
                400,
            ),
            (
                report(TODAY, 1)
                    .replace("\"items\"", "\"host\":\"pc\",\"items\"")
                    .into_bytes(),
                false,
                400,
            ),
            (b"{\"schema\":\"other\"}".to_vec(), false, 400),
            (b"not json".to_vec(), false, 400),
            (b"not gzip".to_vec(), true, 400),
            (gzip(&vec![b' '; 10_000]), true, 413),
            (vec![b' '; 3 << 20], false, 413),
        ];
        for (i, (body, gz, status)) in cases.into_iter().enumerate() {
            let err = decode_submission(&body, gz, &lim, TODAY).unwrap_err();
            assert_eq!(err.status(), status, "case {i}: {err}");
        }
    }
}
