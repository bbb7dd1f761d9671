//! Safe Browsing v4 subset (`threatMatches:find`, `threatLists`) and range queries.
//!
//! Safe Browsing clients send URLs; each listed URL comes back as a match with the URL
//! echoed exactly as sent and a `cacheDuration`. Verdicts map to threat types: phishing
//! to `SOCIAL_ENGINEERING`, other malicious entries to `MALWARE`, suspicious ones to
//! `UNWANTED_SOFTWARE`. A match is reported only for threat types the client asked for.
//!
//! Range queries (`/v1/range/{kind}/{5 hex}`) follow the Pwned Passwords model: the client
//! reveals 20 bits of its digest and gets every listed fingerprint sharing them, padded
//! so that the answer's size says little about how many there are.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use repute::{DigestKind, Verdict};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::backend::Found;
use crate::routes::{body_json, resolve_texts, ApiError};
use crate::Service;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FindRequest {
    threat_info: ThreatInfo,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ThreatInfo {
    threat_types: Vec<String>,
    platform_types: Vec<String>,
    threat_entries: Vec<ThreatEntry>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct ThreatEntry {
    url: Option<String>,
}

/// The Safe Browsing threat type of a listed record, if it is a threat.
pub fn threat_type(found: &Found) -> Option<&'static str> {
    match found.verdict {
        Verdict::Malicious => {
            let phishing = found
                .category
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case("phishing"));
            Some(if phishing {
                "SOCIAL_ENGINEERING"
            } else {
                "MALWARE"
            })
        }
        Verdict::Suspicious => Some("UNWANTED_SOFTWARE"),
        _ => None,
    }
}

/// `POST /v4/threatMatches:find`.
pub async fn find(
    State(service): State<Arc<Service>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_json(body, service.config.max_body_bytes)?;
    let request: FindRequest = serde_json::from_value(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("expected a threatMatches:find request: {e}"),
        )
    })?;
    let info = request.threat_info;
    let cap = service.config.max_bulk;
    if info.threat_entries.len() > cap {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} threatEntries: the limit is {cap} per request (max_bulk)",
                info.threat_entries.len()
            ),
        ));
    }
    let urls: Vec<String> = info
        .threat_entries
        .into_iter()
        .filter_map(|e| e.url)
        .collect();
    let answers = resolve_texts(&service, &urls).await;
    let platform = info
        .platform_types
        .first()
        .cloned()
        .unwrap_or_else(|| "ANY_PLATFORM".into());
    let cache = format!("{}s", service.config.negative_ttl_seconds.max(1));
    let wanted = |t: &str| {
        info.threat_types.is_empty()
            || info
                .threat_types
                .iter()
                .any(|w| w == t || w == "THREAT_TYPE_UNSPECIFIED")
    };
    let matches: Vec<Value> = urls
        .iter()
        .zip(&answers)
        .filter_map(|(url, a)| {
            let (_, r) = a.as_ref().ok()?;
            let t = threat_type(r.found.as_ref()?)?;
            wanted(t).then(|| {
                json!({
                    "threatType": t,
                    "platformType": platform,
                    "threatEntryType": "URL",
                    "threat": {"url": url},
                    "cacheDuration": cache,
                })
            })
        })
        .collect();
    let body = if matches.is_empty() {
        json!({})
    } else {
        json!({ "matches": matches })
    };
    Ok(axum::Json(body).into_response())
}

/// `GET /v4/threatLists`.
pub async fn threat_lists() -> Response {
    let lists: Vec<Value> = ["MALWARE", "SOCIAL_ENGINEERING", "UNWANTED_SOFTWARE"]
        .iter()
        .map(|t| json!({"threatType": t, "platformType": "ANY_PLATFORM", "threatEntryType": "URL"}))
        .collect();
    axum::Json(json!({ "threatLists": lists })).into_response()
}

/// Answers are padded to a multiple of this many bytes.
const RANGE_PAD: usize = 4096;

/// `GET /v1/range/{kind}/{prefix}`.
pub async fn range(
    State(service): State<Arc<Service>>,
    Path((kind, prefix)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let kind = match kind.as_str() {
        "md5" => DigestKind::Md5,
        "sha1" => DigestKind::Sha1,
        "sha256" => DigestKind::Sha256,
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("unknown digest kind {kind:?}: expected md5, sha1 or sha256"),
            ))
        }
    };
    if prefix.len() != 5 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the prefix must be exactly 5 hex digits",
        ));
    }
    let bits = u128::from_str_radix(&prefix, 16).unwrap_or(0);
    let lo = bits << 108;
    let hi = lo | ((1u128 << 108) - 1);
    let mut entries = Vec::new();
    if let Some(loaded) = service.backend.load() {
        for (fp, f) in loaded.digest_range(kind, lo, hi) {
            let mut entry = serde_json::to_value(&f).unwrap_or_else(|_| json!({}));
            if let Some(obj) = entry.as_object_mut() {
                obj.insert("fingerprint".into(), json!(format!("{fp:032x}")));
            }
            entries.push(entry);
        }
    }
    service
        .metrics
        .answered(crate::metrics::AnswerSource::Snapshot);
    let mut body = json!({
        "kind": kind.as_str(),
        "prefix": prefix.to_ascii_lowercase(),
        "ttl": service.config.range_ttl_seconds,
        "entries": entries,
        "padding": "",
    });
    let len = serde_json::to_vec(&body).map_or(0, |v| v.len());
    let pad = RANGE_PAD - len % RANGE_PAD;
    if let Some(p) = body.get_mut("padding") {
        *p = json!("0".repeat(pad));
    }
    Ok(axum::Json(body).into_response())
}
