//! Proxy mode: misses go to a cache, then to upstream services, tried in order.
//!
//! A miss is looked up in the bounded TTL cache ([`moka`]); concurrent misses for one key
//! share one pending lookup (moka's `try_get_with`), and the pending lookups go to a batcher
//! task that sends the misses arriving within a short window upstream as one bulk request.
//! Every upstream call has a timeout. A failing upstream backs off with Safe Browsing's
//! formula (`base * 2^(N-1) * (1 + rand)`, capped), and the next upstream is tried; a 429
//! holds an upstream for its `Retry-After`. Failures and restrictions are never cached, so a
//! bad upstream cannot poison the cache.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use moka::future::Cache;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::backend::Found;
use crate::config::Config;
use crate::metrics::{AnswerSource, Metrics};

/// The protocol an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Another repute service: `POST /v1/lookup`, digests, URLs and domains, in bulk.
    Repute,
    /// A CIRCL-hashlookup-compatible server: `GET /lookup/{kind}/{hex}`, digests only.
    Hashlookup,
}

/// An upstream's address and protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// Its protocol.
    pub protocol: Protocol,
    /// Base URL, without a trailing slash.
    pub base: String,
}

impl UpstreamUrl {
    /// Parses `http(s)://...` (repute) or `hashlookup+http(s)://...`.
    ///
    /// # Errors
    ///
    /// When the scheme is missing or unknown.
    pub fn parse(text: &str) -> Result<UpstreamUrl> {
        let (protocol, rest) = match text.strip_prefix("hashlookup+") {
            Some(rest) => (Protocol::Hashlookup, rest),
            None => (Protocol::Repute, text),
        };
        if !(rest.starts_with("http://") || rest.starts_with("https://")) {
            bail!(
                "upstream {text:?}: expected http://HOST:PORT, https://HOST or hashlookup+https://HOST"
            );
        }
        Ok(UpstreamUrl {
            protocol,
            base: rest.trim_end_matches('/').to_string(),
        })
    }
}

/// Why an upstream answer is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// Every upstream failed or is backing off.
    Unavailable,
    /// A restriction (policy rate, upstream 429) stopped forwarding.
    Restricted,
}

/// One query to resolve through the proxy.
#[derive(Debug, Clone)]
pub struct Miss {
    /// Cache key: kind and canonical form.
    pub key: String,
    /// What is sent upstream (hex digest, canonical URL or host).
    pub text: String,
    /// Query kind: `md5 sha1 sha256 url domain`.
    pub kind: &'static str,
    /// Whether the policy lets this kind go upstream now.
    pub allowed: bool,
}

/// How the proxy answered one miss.
#[derive(Debug, Clone)]
pub struct ProxyAnswer {
    /// The record, when listed.
    pub found: Option<Found>,
    /// Cache or upstream; `Snapshot` when degraded (unknown, not asked).
    pub source: AnswerSource,
    /// The upstream was asked (or would have been) and failed.
    pub unavailable: bool,
    /// A restriction stopped forwarding.
    pub restricted: bool,
}

#[derive(Debug)]
struct Cached {
    found: Option<Found>,
    ttl: Duration,
}

struct CacheExpiry;

impl moka::Expiry<String, Arc<Cached>> for CacheExpiry {
    fn expire_after_create(&self, _: &String, v: &Arc<Cached>, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// One upstream's health: back-off after failures, hold after a 429.
#[derive(Debug)]
pub struct Upstream {
    url: UpstreamUrl,
    failures: AtomicU32,
    /// Milliseconds since the proxy started before which this upstream is not asked.
    retry_at_ms: AtomicU64,
    /// Milliseconds since start before which the upstream asked us to wait (429).
    hold_until_ms: AtomicU64,
    ever_ok: std::sync::atomic::AtomicBool,
    last_error: Mutex<Option<String>>,
}

enum CallError {
    TooMany(Duration),
    Failed(String),
}

struct Pending {
    text: String,
    reply: oneshot::Sender<Result<Arc<Cached>, UpstreamError>>,
}

struct Inner {
    upstreams: Vec<Upstream>,
    client: reqwest::Client,
    key: Option<String>,
    metrics: Arc<Metrics>,
    timeout: Duration,
    positive_ttl: Duration,
    negative_ttl: Duration,
    backoff_base_ms: u64,
    backoff_max_ms: u64,
    window: Duration,
    batch: usize,
    epoch: Instant,
    /// Policy rate limit: (minute number, requests sent in it).
    rate: Mutex<(u64, u32)>,
    max_per_minute: AtomicU32,
    seed: AtomicU64,
}

/// The caching, coalescing, batching upstream client.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
    cache: Cache<String, Arc<Cached>>,
    tx: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("upstreams", &self.inner.upstreams)
            .finish_non_exhaustive()
    }
}

const MAX_UPSTREAM_BODY: usize = 64 << 20;

impl Proxy {
    /// A proxy for `config.upstream`; spawns its batcher on the current Tokio runtime.
    ///
    /// # Errors
    ///
    /// When an upstream URL is invalid or the HTTP client cannot be built.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Result<Proxy> {
        let upstreams = config
            .upstream
            .iter()
            .map(|u| {
                Ok(Upstream {
                    url: UpstreamUrl::parse(u)?,
                    failures: AtomicU32::new(0),
                    retry_at_ms: AtomicU64::new(0),
                    hold_until_ms: AtomicU64::new(0),
                    ever_ok: Default::default(),
                    last_error: Mutex::new(None),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        crate::install_crypto_provider();
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(config.upstream_timeout())
            .timeout(config.upstream_timeout())
            .pool_max_idle_per_host(32)
            .user_agent(concat!("repute-service/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let min_weight = (config.cache_bytes / config.cache_entries.max(1)).max(1);
        let cache = Cache::builder()
            .max_capacity(config.cache_bytes)
            .weigher(move |k: &String, v: &Arc<Cached>| {
                let w = (k.len() + v.found.as_ref().map_or(48, Found::weight)) as u64;
                w.max(min_weight).min(u64::from(u32::MAX)) as u32
            })
            .expire_after(CacheExpiry)
            .build();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        let inner = Arc::new(Inner {
            upstreams,
            client,
            key: config.upstream_key.clone(),
            metrics,
            timeout: config.upstream_timeout(),
            positive_ttl: Duration::from_secs(config.positive_ttl_seconds),
            negative_ttl: Duration::from_secs(config.negative_ttl_seconds),
            backoff_base_ms: config.backoff_base_ms.max(1),
            backoff_max_ms: config.backoff_max_ms.max(1),
            window: Duration::from_micros(config.batch_window_us),
            batch: config.upstream_batch,
            epoch: Instant::now(),
            rate: Mutex::new((0, 0)),
            max_per_minute: AtomicU32::new(u32::MAX),
            seed: AtomicU64::new(seed),
        });
        let (tx, rx) = mpsc::channel(65_536);
        tokio::spawn(batcher(inner.clone(), rx));
        Ok(Proxy { inner, cache, tx })
    }

    /// Sets the policy's upstream rate (`None`: unlimited).
    pub fn set_rate_limit(&self, per_minute: Option<u32>) {
        self.inner
            .max_per_minute
            .store(per_minute.unwrap_or(u32::MAX), Relaxed);
    }

    /// Cache entries now (approximate).
    pub fn cache_entries(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Cache weight now (approximate bytes).
    pub fn cache_bytes(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// Each upstream's state, for `/status`.
    pub fn upstream_status(&self) -> Vec<Value> {
        let now = self.inner.now_ms();
        self.inner
            .upstreams
            .iter()
            .map(|u| {
                let failures = u.failures.load(Relaxed);
                let retry = u.retry_at_ms.load(Relaxed).saturating_sub(now);
                let hold = u.hold_until_ms.load(Relaxed).saturating_sub(now);
                serde_json::json!({
                    "url": u.url.base,
                    "protocol": match u.url.protocol { Protocol::Repute => "repute", Protocol::Hashlookup => "hashlookup" },
                    "reachable": failures == 0 && u.ever_ok.load(Relaxed),
                    "consecutive_failures": failures,
                    "backoff_remaining_ms": retry,
                    "retry_after_remaining_ms": hold,
                    "last_error": u.last_error.lock().ok().and_then(|e| e.clone()),
                })
            })
            .collect()
    }

    /// Whether any upstream was reachable at its last call.
    pub fn any_reachable(&self) -> bool {
        self.inner
            .upstreams
            .iter()
            .any(|u| u.failures.load(Relaxed) == 0 && u.ever_ok.load(Relaxed))
    }

    /// Resolves misses: cache, then upstream (one request per batch of misses).
    pub async fn resolve(&self, misses: Vec<Miss>) -> Vec<ProxyAnswer> {
        let futures = misses.into_iter().map(|m| self.resolve_one(m));
        futures_util::future::join_all(futures).await
    }

    /// Resolves one miss.
    pub async fn resolve_one(&self, miss: Miss) -> ProxyAnswer {
        let m = &self.inner.metrics;
        if let Some(hit) = self.cache.get(&miss.key).await {
            m.cache_hits.fetch_add(1, Relaxed);
            m.answered(AnswerSource::Cache);
            return ProxyAnswer {
                found: hit.found.clone(),
                source: AnswerSource::Cache,
                unavailable: false,
                restricted: false,
            };
        }
        m.cache_misses.fetch_add(1, Relaxed);
        let degraded = |e: UpstreamError| {
            match e {
                UpstreamError::Restricted => m.restricted.fetch_add(1, Relaxed),
                UpstreamError::Unavailable => m.failed.fetch_add(1, Relaxed),
            };
            ProxyAnswer {
                found: None,
                source: AnswerSource::Snapshot,
                unavailable: e == UpstreamError::Unavailable,
                restricted: e == UpstreamError::Restricted,
            }
        };
        if !miss.allowed {
            return degraded(UpstreamError::Restricted);
        }
        if let Err(e) = self.inner.can_forward(&miss) {
            return degraded(e);
        }
        let tx = self.tx.clone();
        let text = miss.text;
        let result = self
            .cache
            .try_get_with(miss.key, async move {
                let (reply, rx) = oneshot::channel();
                if tx.send(Pending { text, reply }).await.is_err() {
                    return Err(UpstreamError::Unavailable);
                }
                rx.await.unwrap_or(Err(UpstreamError::Unavailable))
            })
            .await;
        match result {
            Ok(answer) => {
                m.answered(AnswerSource::Upstream);
                ProxyAnswer {
                    found: answer.found.clone(),
                    source: AnswerSource::Upstream,
                    unavailable: false,
                    restricted: false,
                }
            }
            Err(e) => degraded((*e).clone()),
        }
    }
}

impl Inner {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether some upstream may be asked now (not every one backing off or held).
    fn can_forward(&self, _miss: &Miss) -> Result<(), UpstreamError> {
        let now = self.now_ms();
        let mut held = false;
        for u in &self.upstreams {
            if u.hold_until_ms.load(Relaxed) > now {
                held = true;
            } else if u.retry_at_ms.load(Relaxed) <= now {
                return Ok(());
            }
        }
        Err(if held {
            UpstreamError::Restricted
        } else {
            UpstreamError::Unavailable
        })
    }

    /// Takes one request from the policy's per-minute budget.
    fn take_rate(&self) -> bool {
        let max = self.max_per_minute.load(Relaxed);
        if max == u32::MAX {
            return true;
        }
        let minute = self.now_ms() / 60_000;
        let Ok(mut rate) = self.rate.lock() else {
            return false;
        };
        if rate.0 != minute {
            *rate = (minute, 0);
        }
        if rate.1 >= max {
            return false;
        }
        rate.1 += 1;
        true
    }

    fn random(&self) -> f64 {
        // xorshift64*: back-off jitter only.
        let mut x = self.seed.load(Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.seed.store(x, Relaxed);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn failed(&self, u: &Upstream, error: String) {
        self.metrics.upstream_errors.fetch_add(1, Relaxed);
        let n = u.failures.fetch_add(1, Relaxed) + 1;
        let factor = 2f64.powi(n.saturating_sub(1).min(40) as i32) * (1.0 + self.random());
        let delay = ((self.backoff_base_ms as f64) * factor).min(self.backoff_max_ms as f64);
        u.retry_at_ms.store(self.now_ms() + delay as u64, Relaxed);
        tracing::warn!(upstream = %u.url.base, failures = n, backoff_ms = delay as u64, %error, "upstream failed");
        if let Ok(mut e) = u.last_error.lock() {
            *e = Some(error);
        }
    }

    fn succeeded(&self, u: &Upstream) {
        if u.failures.swap(0, Relaxed) > 0 {
            tracing::info!(upstream = %u.url.base, "upstream recovered");
        }
        u.retry_at_ms.store(0, Relaxed);
        u.ever_ok.store(true, Relaxed);
    }

    /// Sends one batch through the upstream chain.
    async fn send(&self, texts: &[String]) -> Result<Vec<Arc<Cached>>, UpstreamError> {
        if !self.take_rate() {
            return Err(UpstreamError::Restricted);
        }
        let mut last = UpstreamError::Unavailable;
        for u in &self.upstreams {
            let now = self.now_ms();
            if u.hold_until_ms.load(Relaxed) > now {
                last = UpstreamError::Restricted;
                continue;
            }
            if u.retry_at_ms.load(Relaxed) > now {
                continue;
            }
            self.metrics.upstream_requests.fetch_add(1, Relaxed);
            let call = self.call(u, texts);
            match tokio::time::timeout(self.timeout, call).await {
                Ok(Ok(answers)) => {
                    self.succeeded(u);
                    return Ok(answers);
                }
                Ok(Err(CallError::TooMany(wait))) => {
                    u.hold_until_ms
                        .store(self.now_ms() + wait.as_millis() as u64, Relaxed);
                    tracing::warn!(upstream = %u.url.base, retry_after_s = wait.as_secs(), "upstream asked to wait");
                    last = UpstreamError::Restricted;
                }
                Ok(Err(CallError::Failed(e))) => {
                    self.failed(u, e);
                    last = UpstreamError::Unavailable;
                }
                Err(_) => {
                    self.failed(u, format!("no answer within {:?}", self.timeout));
                    last = UpstreamError::Unavailable;
                }
            }
        }
        Err(last)
    }

    async fn call(&self, u: &Upstream, texts: &[String]) -> Result<Vec<Arc<Cached>>, CallError> {
        match u.url.protocol {
            Protocol::Repute => self.call_repute(u, texts).await,
            Protocol::Hashlookup => {
                let calls = texts.iter().map(|t| self.call_hashlookup(u, t));
                futures_util::future::join_all(calls)
                    .await
                    .into_iter()
                    .collect()
            }
        }
    }

    fn request(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.key {
            Some(k) => builder.bearer_auth(k),
            None => builder,
        }
    }

    fn ttl(&self, found: bool, max_age: Option<Duration>) -> Duration {
        let configured = if found {
            self.positive_ttl
        } else {
            self.negative_ttl
        };
        max_age.map_or(configured, |m| m.min(configured))
    }

    async fn call_repute(
        &self,
        u: &Upstream,
        texts: &[String],
    ) -> Result<Vec<Arc<Cached>>, CallError> {
        let body = serde_json::json!({ "queries": texts });
        let resp = self
            .request(self.client.post(format!("{}/v1/lookup", u.url.base)))
            .json(&body)
            .send()
            .await
            .map_err(|e| CallError::Failed(error_chain(&e)))?;
        let (max_age, bytes) = read_response(resp).await?;
        #[derive(Deserialize)]
        struct Results {
            results: Vec<Value>,
        }
        let parsed: Results = serde_json::from_slice(&bytes)
            .map_err(|e| CallError::Failed(format!("invalid JSON from upstream: {e}")))?;
        if parsed.results.len() != texts.len() {
            return Err(CallError::Failed(format!(
                "upstream answered {} results for {} queries",
                parsed.results.len(),
                texts.len()
            )));
        }
        parsed
            .results
            .into_iter()
            .map(|r| {
                let degraded = r.get("repute:upstream").is_some()
                    || r.get("repute:restricted").is_some()
                    || r.get("error").is_some();
                let verdict = r
                    .get("verdict")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                if degraded && verdict == "unknown" {
                    // The upstream could not answer either: not an answer to cache.
                    return Err(CallError::Failed(
                        "upstream's own upstream is unavailable".into(),
                    ));
                }
                let found = if verdict == "unknown" {
                    None
                } else {
                    Some(serde_json::from_value::<Found>(r).map_err(|e| {
                        CallError::Failed(format!("invalid result from upstream: {e}"))
                    })?)
                };
                let ttl = self.ttl(found.is_some(), max_age);
                Ok(Arc::new(Cached { found, ttl }))
            })
            .collect()
    }

    async fn call_hashlookup(&self, u: &Upstream, text: &str) -> Result<Arc<Cached>, CallError> {
        let kind = match text.len() {
            32 => "md5",
            40 => "sha1",
            64 if text.bytes().all(|b| b.is_ascii_hexdigit()) => "sha256",
            _ => {
                // hashlookup knows digests only: URLs and domains are unknown there.
                return Ok(Arc::new(Cached {
                    found: None,
                    ttl: self.negative_ttl,
                }));
            }
        };
        let resp = self
            .request(
                self.client
                    .get(format!("{}/lookup/{kind}/{text}", u.url.base)),
            )
            .send()
            .await
            .map_err(|e| CallError::Failed(error_chain(&e)))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            let max_age = max_age(resp.headers());
            return Ok(Arc::new(Cached {
                found: None,
                ttl: self.ttl(false, max_age),
            }));
        }
        let (max_age, bytes) = read_response(resp).await?;
        let record: serde_json::Map<String, Value> = serde_json::from_slice(&bytes)
            .map_err(|e| CallError::Failed(format!("invalid JSON from upstream: {e}")))?;
        let string = |k: &str| record.get(k).and_then(Value::as_str).map(str::to_owned);
        let malicious = string("KnownMalicious");
        let found = Found {
            verdict: if malicious.is_some() {
                repute::Verdict::Malicious
            } else {
                repute::Verdict::Known
            },
            name: string("FileName"),
            category: None,
            source: malicious.or_else(|| Some("hashlookup".into())),
            matched: Some(text.to_ascii_lowercase()),
            first_seen: None,
            last_seen: None,
            confidence: None,
        };
        Ok(Arc::new(Cached {
            found: Some(found),
            ttl: self.ttl(true, max_age),
        }))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let cc = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    cc.split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(60), |s| {
            Duration::from_secs(s.min(86_400))
        })
}

/// Checks the status and reads a bounded body.
async fn read_response(
    mut resp: reqwest::Response,
) -> Result<(Option<Duration>, Vec<u8>), CallError> {
    let status = resp.status();
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(CallError::TooMany(retry_after(resp.headers())));
    }
    if !status.is_success() {
        return Err(CallError::Failed(format!(
            "upstream answered HTTP {status}"
        )));
    }
    let max_age = max_age(resp.headers());
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| CallError::Failed(format!("reading upstream body: {}", error_chain(&e))))?
    {
        if body.len() + chunk.len() > MAX_UPSTREAM_BODY {
            return Err(CallError::Failed("upstream body too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((max_age, body))
}

/// Collects pending misses into batches and sends each upstream on its own task.
async fn batcher(inner: Arc<Inner>, mut rx: mpsc::Receiver<Pending>) {
    let in_flight = Arc::new(Semaphore::new(16));
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + inner.window;
        while batch.len() < inner.batch {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(p)) => batch.push(p),
                        _ => break,
                    }
                }
            }
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            let texts: Vec<String> = batch.iter().map(|p| p.text.clone()).collect();
            match inner.send(&texts).await {
                Ok(answers) => {
                    for (p, a) in batch.into_iter().zip(answers) {
                        let _ = p.reply.send(Ok(a));
                    }
                }
                Err(e) => {
                    for p in batch {
                        let _ = p.reply.send(Err(e.clone()));
                    }
                }
            }
            drop(permit);
        });
    }
}
