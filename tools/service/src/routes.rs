//! The HTTP surface: hashlookup, native, Safe Browsing and operations endpoints.
//!
//! Every response has a JSON body, errors included (the HTML page and the Prometheus text
//! are the two deliberate exceptions on success). Bodies are read through [`body_json`],
//! which maps an oversize body to 413 and malformed JSON to 400, each with a message.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use repute::{Digest, DigestKind, Query, Verdict};
use serde::Serialize;
use serde_json::{json, Value};

use crate::keys::KeyCheck;
use crate::{Resolution, Service};

/// A JSON error: `{"message": ..., "error": {"code", "message", "status"}}` (the first key
/// is what hashlookup clients read, the second what Google API clients read).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status_name = match self.status.as_u16() {
            400 => "INVALID_ARGUMENT",
            401 => "UNAUTHENTICATED",
            404 => "NOT_FOUND",
            413 => "INVALID_ARGUMENT",
            429 => "RESOURCE_EXHAUSTED",
            503 => "UNAVAILABLE",
            500 => "INTERNAL",
            _ => "UNKNOWN",
        };
        let body = json!({
            "message": self.message,
            "error": {"code": self.status.as_u16(), "message": self.message, "status": status_name},
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"repute\""),
            );
        }
        resp
    }
}

/// Serializes `value` as a JSON response.
fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Parses a request body as JSON: 413 when over the body limit, 400 when malformed.
pub fn body_json(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Value, ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than {limit} bytes (max_body_bytes)"),
            )
        } else {
            ApiError::bad_request(format!("cannot read the request body: {e}"))
        }
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

/// The router over a service.
pub fn router(service: Arc<Service>) -> Router {
    let limit = service.config.max_body_bytes;
    let timeout = Duration::from_millis(service.config.request_timeout_ms.max(1));
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/info", get(info))
        .route("/stats/top", get(stats_top))
        .route("/lookup/md5/{hex}", get(lookup_md5))
        .route("/lookup/sha1/{hex}", get(lookup_sha1))
        .route("/lookup/sha256/{hex}", get(lookup_sha256))
        .route("/bulk/md5", post(bulk_md5))
        .route("/bulk/sha1", post(bulk_sha1))
        .route("/bulk/sha256", post(bulk_sha256))
        .route("/v1/lookup", post(native_bulk).get(native_one))
        .route("/v1/range/{kind}/{prefix}", get(crate::safebrowsing::range))
        .route("/v4/threatMatches:find", post(crate::safebrowsing::find))
        .route("/v4/threatLists", get(crate::safebrowsing::threat_lists))
        .route("/v1/updates/", get(crate::updates::index))
        .route("/v1/updates/{name}", get(crate::updates::file))
        .merge(crate::statistics::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(service.clone(), gate))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }))
        .layer(middleware::from_fn(
            move |req: Request, next: Next| async move {
                match tokio::time::timeout(timeout, next.run(req)).await {
                    Ok(resp) => resp,
                    Err(_) => ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "no answer within {} ms (request_timeout_ms)",
                            timeout.as_millis()
                        ),
                    )
                    .into_response(),
                }
            },
        ))
        .with_state(service)
}

/// API keys (every path but `/healthz`) and response counting.
async fn gate(State(service): State<Arc<Service>>, req: Request, next: Next) -> Response {
    if let Some(keys) = &service.keys {
        if req.uri().path() != "/healthz" {
            let presented = presented_key(req.headers(), req.uri().query());
            match keys.check(presented.as_deref()) {
                KeyCheck::Allowed(_) => {}
                KeyCheck::Unauthorized => {
                    service.metrics.response(401);
                    return ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "a valid API key is required (Authorization: Bearer KEY or X-API-Key: KEY)",
                    )
                    .into_response();
                }
                KeyCheck::Limited(wait) => {
                    service.metrics.response(429);
                    let mut e = ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!("this key's rate is used up; retry in {wait} s"),
                    );
                    e.retry_after = Some(wait);
                    return e.into_response();
                }
            }
        }
    }
    let resp = next.run(req).await;
    service.metrics.response(resp.status().as_u16());
    resp
}

fn presented_key(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(k) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
        {
            return Some(k.trim().to_string());
        }
    }
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_string());
    }
    // Safe Browsing clients send `?key=`.
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("key="))
        .map(percent_decode)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let h = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match h.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
}

async fn healthz() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        "{\"status\":\"ok\"}",
    )
        .into_response()
}

async fn status(State(service): State<Arc<Service>>) -> Response {
    json_response(StatusCode::OK, &service.status())
}

async fn page(State(service): State<Arc<Service>>) -> Html<String> {
    Html(crate::html::render(&service.status()))
}

async fn metrics(State(service): State<Arc<Service>>) -> Response {
    let status = service.status();
    let num = |p: &str| status.pointer(p).and_then(Value::as_f64).unwrap_or(0.0);
    let extra = [
        (
            "repute_snapshot_sequence",
            "Sequence number of the snapshot served.",
            num("/snapshot/sequence"),
        ),
        (
            "repute_snapshot_age_seconds",
            "Age of the snapshot served.",
            num("/snapshot/age_seconds"),
        ),
        (
            "repute_snapshot_stale",
            "1 when the snapshot is past its expiry.",
            f64::from(u8::from(
                status.pointer("/snapshot/stale") == Some(&Value::Bool(true)),
            )),
        ),
        (
            "repute_cache_entries",
            "Entries in the upstream answer cache.",
            num("/cache/entries"),
        ),
        (
            "repute_cache_bytes",
            "Approximate bytes in the upstream answer cache.",
            num("/cache/bytes"),
        ),
        (
            "repute_upstream_reachable",
            "1 when an upstream answered its last call.",
            f64::from(u8::from(
                service.proxy.as_ref().is_some_and(|p| p.any_reachable()),
            )),
        ),
    ];
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        service.metrics.prometheus(&extra),
    )
        .into_response()
}

async fn info(State(service): State<Arc<Service>>) -> Response {
    let status = service.status();
    let keys = status
        .pointer("/snapshot/keys")
        .cloned()
        .unwrap_or(json!(0));
    let sequence = status.pointer("/snapshot/sequence").cloned();
    let body = json!({
        "nsrl-version": sequence.as_ref().map(|s| format!("repute snapshot {s}")),
        "hashlookup-version": concat!("repute-service ", env!("CARGO_PKG_VERSION")),
        "stat:hashlookup_total_keys": keys,
        "repute:sequence": sequence,
        "repute:created": status.pointer("/snapshot/created"),
        "repute:expires": status.pointer("/snapshot/expires"),
        "repute:records": status.pointer("/snapshot/records"),
        "repute:keys": status.pointer("/snapshot/keys_by_kind"),
        "repute:stale": status.pointer("/snapshot/stale"),
        "repute:mode": status.pointer("/mode"),
        "repute:cloud": status.pointer("/cloud/description"),
        "repute:upstreams": service.config.upstream.len(),
    });
    json_response(StatusCode::OK, &body)
}

async fn stats_top() -> Response {
    json_response(StatusCode::OK, &json!({"nx": [], "exist": []}))
}

/// A hashlookup record: CIRCL's field names, repute's own under `repute:`.
#[derive(Serialize)]
struct HashlookupRecord<'a> {
    #[serde(rename = "MD5", skip_serializing_if = "Option::is_none")]
    md5: Option<String>,
    #[serde(rename = "SHA-1", skip_serializing_if = "Option::is_none")]
    sha1: Option<String>,
    #[serde(rename = "SHA-256", skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(rename = "FileName", skip_serializing_if = "Option::is_none")]
    file_name: Option<&'a str>,
    #[serde(rename = "KnownMalicious", skip_serializing_if = "Option::is_none")]
    known_malicious: Option<&'a str>,
    #[serde(rename = "hashlookup:trust")]
    trust: u8,
    #[serde(rename = "repute:verdict")]
    verdict: Verdict,
    #[serde(rename = "repute:category", skip_serializing_if = "Option::is_none")]
    category: Option<&'a str>,
    #[serde(rename = "repute:name", skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(rename = "repute:feed", skip_serializing_if = "Option::is_none")]
    feed: Option<&'a str>,
    #[serde(rename = "repute:first_seen", skip_serializing_if = "Option::is_none")]
    first_seen: Option<i64>,
    #[serde(rename = "repute:last_seen", skip_serializing_if = "Option::is_none")]
    last_seen: Option<i64>,
    #[serde(rename = "repute:confidence", skip_serializing_if = "Option::is_none")]
    confidence: Option<u8>,
    #[serde(rename = "repute:source")]
    source: &'static str,
}

/// hashlookup's trust score: 50 is no opinion; CIRCL subtracts 20 for a known-malicious
/// file and adds for files seen in reference sets.
pub fn trust(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Malicious => 30,
        Verdict::Suspicious => 40,
        Verdict::Unknown => 50,
        Verdict::Known => 55,
        Verdict::Trusted => 80,
    }
}

fn record<'a>(digest: &Digest, r: &'a Resolution) -> Option<HashlookupRecord<'a>> {
    let f = r.found.as_ref()?;
    let hex = Some(digest.to_hex().to_ascii_uppercase());
    let (mut md5, mut sha1, mut sha256) = (None, None, None);
    match digest.kind() {
        DigestKind::Md5 => md5 = hex,
        DigestKind::Sha1 => sha1 = hex,
        DigestKind::Sha256 => sha256 = hex,
    }
    let malicious = f.verdict == Verdict::Malicious;
    Some(HashlookupRecord {
        md5,
        sha1,
        sha256,
        file_name: if malicious { None } else { f.name.as_deref() },
        known_malicious: malicious.then(|| f.source.as_deref().unwrap_or("repute")),
        trust: trust(f.verdict),
        verdict: f.verdict,
        category: f.category.as_deref(),
        name: f.name.as_deref(),
        feed: f.source.as_deref(),
        first_seen: f.first_seen,
        last_seen: f.last_seen,
        confidence: f.confidence,
        source: r.source.as_str(),
    })
}

fn kind_names(kind: DigestKind) -> (&'static str, &'static str) {
    // (400 message, 404 name), as CIRCL's server words them.
    match kind {
        DigestKind::Md5 => (
            "MD5 value incorrect, expecting a MD5 value in hex format",
            "MD5",
        ),
        DigestKind::Sha1 => (
            "SHA1 value incorrect, expecting a SHA1 value in hex format",
            "SHA-1",
        ),
        DigestKind::Sha256 => (
            "SHA-256 value incorrect, expecting a SHA-256 value in hex format",
            "SHA-256",
        ),
    }
}

fn parse_digest(kind: DigestKind, hex: &str) -> Option<Digest> {
    if hex.len() != kind.byte_len() * 2 {
        return None;
    }
    Digest::from_hex(hex.as_bytes()).ok()
}

async fn lookup_hash(service: Arc<Service>, kind: DigestKind, hex: String) -> Response {
    let (bad, name) = kind_names(kind);
    let Some(digest) = parse_digest(kind, &hex) else {
        return json_response(StatusCode::BAD_REQUEST, &json!({ "message": bad }));
    };
    let r = service.resolve_digest(&digest).await;
    match record(&digest, &r) {
        Some(rec) => json_response(StatusCode::OK, &rec),
        None => {
            let mut body = serde_json::Map::new();
            body.insert("message".into(), json!(format!("Non existing {name}")));
            body.insert("query".into(), json!(hex));
            if r.unavailable {
                body.insert("repute:upstream".into(), json!("unavailable"));
            }
            if r.restricted {
                body.insert("repute:restricted".into(), json!(true));
            }
            if kind == DigestKind::Sha256 && r.error.is_none() {
                let hex = digest.to_hex();
                if crate::statistics::wanted_flags_blocking(vec![hex])
                    .await
                    .first()
                    .copied()
                    .unwrap_or(false)
                {
                    body.insert("repute:wanted".into(), json!(true));
                }
            }
            json_response(StatusCode::NOT_FOUND, &body)
        }
    }
}

async fn lookup_md5(State(s): State<Arc<Service>>, Path(hex): Path<String>) -> Response {
    lookup_hash(s, DigestKind::Md5, hex).await
}

async fn lookup_sha1(State(s): State<Arc<Service>>, Path(hex): Path<String>) -> Response {
    lookup_hash(s, DigestKind::Sha1, hex).await
}

async fn lookup_sha256(State(s): State<Arc<Service>>, Path(hex): Path<String>) -> Response {
    lookup_hash(s, DigestKind::Sha256, hex).await
}

/// Reads `{"key": [strings]}`, enforcing the bulk cap.
pub(crate) fn string_list(
    service: &Service,
    body: &Value,
    key: &str,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(list) = body.get(key) else {
        return Ok(None);
    };
    let Some(list) = list.as_array() else {
        return Err(ApiError::bad_request(format!("\"{key}\" must be an array")));
    };
    let cap = service.config.max_bulk;
    if list.len() > cap {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} entries in \"{key}\": the limit is {cap} per request (max_bulk)",
                list.len()
            ),
        ));
    }
    list.iter()
        .map(|v| {
            v.as_str().map(str::to_owned).ok_or_else(|| {
                ApiError::bad_request(format!("every entry of \"{key}\" must be a string"))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

async fn bulk(
    service: Arc<Service>,
    kind: DigestKind,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_json(body, service.config.max_body_bytes)?;
    let Some(hashes) = string_list(&service, &body, "hashes")? else {
        // CIRCL's answer, status included.
        return Ok(json_response(
            StatusCode::NOT_FOUND,
            &json!({"message": "JSON format incorrect. An array of hashes in the key 'hashes' is expected."}),
        ));
    };
    // Like CIRCL's server, hashes that are not valid for the kind are skipped.
    let digests: Vec<Digest> = hashes
        .iter()
        .filter_map(|h| parse_digest(kind, h.trim()))
        .collect();
    let queries: Vec<Query> = digests.iter().map(|d| Query::Digest(*d)).collect();
    let (_, answers) = service.resolve(queries).await;
    let records: Vec<HashlookupRecord<'_>> = digests
        .iter()
        .zip(&answers)
        .filter_map(|(d, r)| record(d, r))
        .collect();
    Ok(json_response(StatusCode::OK, &records))
}

async fn bulk_md5(
    State(s): State<Arc<Service>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    bulk(s, DigestKind::Md5, body).await
}

async fn bulk_sha1(
    State(s): State<Arc<Service>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    bulk(s, DigestKind::Sha1, body).await
}

async fn bulk_sha256(
    State(s): State<Arc<Service>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    bulk(s, DigestKind::Sha256, body).await
}

/// One native answer: the shape of a `repute lookup --format jsonl` line, plus the
/// service's `repute:` keys.
#[derive(Serialize)]
struct NativeResult<'a> {
    query: &'a str,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict: Option<Verdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    matched: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_seen: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seen: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    confidence: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(rename = "repute:source", skip_serializing_if = "Option::is_none")]
    repute_source: Option<&'static str>,
    #[serde(rename = "repute:upstream", skip_serializing_if = "Option::is_none")]
    upstream: Option<&'static str>,
    #[serde(rename = "repute:restricted", skip_serializing_if = "Option::is_none")]
    restricted: Option<bool>,
    #[serde(rename = "repute:wanted", skip_serializing_if = "Option::is_none")]
    wanted: Option<bool>,
}

fn native<'a>(text: &'a str, kind: &'static str, r: &'a Resolution) -> NativeResult<'a> {
    let f = r.found.as_ref();
    NativeResult {
        query: text,
        kind: Some(kind),
        verdict: if r.error.is_some() {
            None
        } else {
            Some(f.map_or(Verdict::Unknown, |f| f.verdict))
        },
        category: f.and_then(|f| f.category.as_deref()),
        name: f.and_then(|f| f.name.as_deref()),
        source: f.and_then(|f| f.source.as_deref()),
        matched: f.and_then(|f| f.matched.as_deref()),
        first_seen: f.and_then(|f| f.first_seen),
        last_seen: f.and_then(|f| f.last_seen),
        confidence: f.and_then(|f| f.confidence),
        error: r.error.clone(),
        repute_source: r.error.is_none().then_some(r.source.as_str()),
        upstream: r.unavailable.then_some("unavailable"),
        restricted: r.restricted.then_some(true),
        wanted: None,
    }
}

fn invalid<'a>(text: &'a str, reason: String) -> NativeResult<'a> {
    NativeResult {
        query: text,
        kind: None,
        verdict: None,
        category: None,
        name: None,
        source: None,
        matched: None,
        first_seen: None,
        last_seen: None,
        confidence: None,
        error: Some(reason),
        repute_source: None,
        upstream: None,
        restricted: None,
        wanted: None,
    }
}

/// The lowercase hex of an unknown SHA-256 answer: a candidate for `"repute:wanted"`.
fn unknown_sha256(query: &Query, r: &Resolution) -> Option<String> {
    match query {
        Query::Digest(d)
            if d.kind() == DigestKind::Sha256 && r.found.is_none() && r.error.is_none() =>
        {
            Some(d.to_hex())
        }
        _ => None,
    }
}

/// Marks the native results whose unknown SHA-256 the service wants a sample of.
async fn mark_wanted(
    results: &mut [NativeResult<'_>],
    answers: &[Result<(Query, Resolution), String>],
) {
    if !crate::statistics::collects_samples() {
        return;
    }
    let (at, digests): (Vec<usize>, Vec<String>) = answers
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            let (q, r) = a.as_ref().ok()?;
            unknown_sha256(q, r).map(|h| (i, h))
        })
        .unzip();
    for (i, wanted) in at
        .into_iter()
        .zip(crate::statistics::wanted_flags_blocking(digests).await)
    {
        if wanted {
            results[i].wanted = Some(true);
        }
    }
}

fn with_cloud(service: &Service, mut resp: Response) -> Response {
    let (state, _) = service.cloud();
    resp.headers_mut()
        .insert("x-repute-cloud", HeaderValue::from_static(state.as_str()));
    resp
}

/// Parses query texts and resolves the valid ones; `Err(reason)` for the invalid.
pub(crate) async fn resolve_texts(
    service: &Arc<Service>,
    texts: &[String],
) -> Vec<Result<(Query, Resolution), String>> {
    let parsed: Vec<Result<Query, String>> = texts
        .iter()
        .map(|t| Query::parse(t).map_err(|e| e.to_string()))
        .collect();
    let valid: Vec<Query> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let (valid, answers) = service.resolve(valid).await;
    let mut answers = valid.into_iter().zip(answers);
    parsed
        .into_iter()
        .map(|p| match p {
            Ok(_) => answers.next().ok_or_else(|| "lookup failed".to_string()),
            Err(e) => Err(e),
        })
        .collect()
}

async fn native_bulk(
    State(service): State<Arc<Service>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_json(body, service.config.max_body_bytes)?;
    let Some(texts) = string_list(&service, &body, "queries")? else {
        return Err(ApiError::bad_request(
            "expected {\"queries\": [...]}: an array of digests, URLs and domains",
        ));
    };
    let answers = resolve_texts(&service, &texts).await;
    let mut results: Vec<NativeResult<'_>> = texts
        .iter()
        .zip(&answers)
        .map(|(t, a)| match a {
            Ok((q, r)) => native(t, q.kind().as_str(), r),
            Err(e) => invalid(t, e.clone()),
        })
        .collect();
    mark_wanted(&mut results, &answers).await;
    let (_, description) = service.cloud();
    Ok(with_cloud(
        &service,
        json_response(
            StatusCode::OK,
            &json!({"cloud": description, "results": results}),
        ),
    ))
}

async fn native_one(
    State(service): State<Arc<Service>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = raw
        .as_deref()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("q="))
        .map(percent_decode)
        .ok_or_else(|| ApiError::bad_request("expected ?q=QUERY (a digest, URL or domain)"))?;
    let texts = [q];
    let answers = resolve_texts(&service, &texts).await;
    let mut results: Vec<NativeResult<'_>> = match answers.first() {
        Some(Ok((query, r))) => vec![native(&texts[0], query.kind().as_str(), r)],
        Some(Err(e)) => vec![invalid(&texts[0], e.clone())],
        None => Vec::new(),
    };
    mark_wanted(&mut results, &answers).await;
    let result = match results.first() {
        Some(one) => serde_json::to_value(one),
        None => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "lookup failed",
            ))
        }
    };
    let mut result =
        result.map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let (_, description) = service.cloud();
    if let Some(obj) = result.as_object_mut() {
        obj.insert("cloud".into(), json!(description));
    }
    Ok(with_cloud(&service, json_response(StatusCode::OK, &result)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("http%3A%2F%2Fa.test%2Fx+y"),
            "http://a.test/x y"
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%4"), "%4");
    }
}
