//! The agent side of the reputation cloud, as a blocking library an agent embeds (the
//! `repute` CLI is one such agent). The core library never talks to the network; this
//! crate does, through `ureq` (rustls).
//!
//! - [`CloudClient`]: asks a `repute serve` service about what the local snapshot does not
//!   know, in bulk (`POST /v1/lookup`), or privately by range (`GET /v1/range/...`, so the
//!   service never learns which digests a machine holds; fetched ranges are cached for their
//!   TTL). Several service URLs are tried in order. Every request has a timeout, at most
//!   [`CloudOptions::concurrency`] run at once, and a [`Budget`] bounds the requests and the
//!   time one scan may spend, so a scan never stalls on the network.
//! - [`participation`]: the opt-in settings (a TOML file in the user's configuration
//!   directory), the bounded queue of daily reports, and sending it.

pub mod participation;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Errors of one request.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No service answered (each one's failure, in order).
    #[error("no service answered: {0}")]
    Unavailable(String),
    /// The service refused the request (a 4xx: it will not be accepted by retrying).
    #[error("service refused the request: HTTP {status}: {reason}")]
    Refused {
        /// The status.
        status: u16,
        /// The body, shortened.
        reason: String,
    },
    /// The budget of this scan is spent.
    #[error("cloud budget spent")]
    BudgetSpent,
    /// An answer was not of the contract's shape.
    #[error("service answer not understood: {0}")]
    BadAnswer(String),
}

/// How much one scan (one [`CloudClient`]) may spend on the network.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Requests in all.
    pub max_requests: u32,
    /// Time from the first request on.
    pub max_time: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_requests: 64,
            max_time: Duration::from_secs(10),
        }
    }
}

/// How to reach the cloud.
#[derive(Debug, Clone)]
pub struct CloudOptions {
    /// Service base URLs (`http://host:13111`), tried in order.
    pub services: Vec<String>,
    /// Timeout of one request, connection included.
    pub timeout: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// The per-scan budget.
    pub budget: Budget,
    /// Ask by range instead of by digest.
    pub private_lookups: bool,
    /// API key (`Authorization: Bearer KEY`).
    pub api_key: Option<String>,
    /// Queries per bulk request (the service takes at most 10,000).
    pub batch: usize,
}

impl CloudOptions {
    /// Defaults for these services: 3 s per request, 4 at once, the default budget.
    pub fn new(services: Vec<String>) -> CloudOptions {
        CloudOptions {
            services,
            timeout: Duration::from_secs(3),
            concurrency: 4,
            budget: Budget::default(),
            private_lookups: false,
            api_key: None,
            batch: 10_000,
        }
    }
}

/// One answer from the cloud: a `repute lookup --format jsonl` line plus the service keys.
/// Fields this version does not know are ignored (answers are not a closed schema).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudAnswer {
    /// The query as asked.
    #[serde(default)]
    pub query: String,
    /// `md5`, `sha1`, `sha256`, `url`, `domain`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The verdict (`unknown` when the cloud does not know it either).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// Threat name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Source feed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The key that matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched: Option<String>,
    /// First seen, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<i64>,
    /// Last seen, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<i64>,
    /// Confidence 0-100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<u8>,
    /// Where the service found it: `snapshot`, `cache`, `upstream`.
    #[serde(
        rename = "repute:source",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_source: Option<String>,
    /// The service wants a sample of this unknown digest.
    #[serde(
        rename = "repute:wanted",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub wanted: bool,
    /// The service's policy stopped forwarding this query.
    #[serde(
        rename = "repute:restricted",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub restricted: bool,
    /// The service's upstream failed for this query.
    #[serde(
        rename = "repute:upstream",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub upstream: Option<String>,
}

impl CloudAnswer {
    /// Whether the cloud knows something (a verdict other than `unknown`).
    pub fn is_known(&self) -> bool {
        self.verdict.as_deref().is_some_and(|v| v != "unknown")
    }
}

/// The cloud's state as this client last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudStatus {
    /// Not asked yet (nothing was unknown locally).
    NotAsked,
    /// Answered normally.
    Enabled,
    /// Answered, with the publisher's restrictions (the service's description).
    Restricted(String),
    /// Disabled by the publisher's policy.
    Disabled(String),
    /// No service answered, or the budget ran out; local answers only.
    Unavailable(String),
}

impl CloudStatus {
    /// The one-line status for standard error, or `None` when all went normally.
    pub fn line(&self) -> Option<String> {
        match self {
            CloudStatus::NotAsked | CloudStatus::Enabled => None,
            CloudStatus::Restricted(d) if d.is_empty() => {
                Some("cloud: enabled with restrictions".into())
            }
            CloudStatus::Restricted(d) if d.starts_with("enabled with restrictions") => {
                Some(format!("cloud: {d}"))
            }
            CloudStatus::Restricted(d) => Some(format!("cloud: enabled with restrictions ({d})")),
            CloudStatus::Disabled(d) => Some(format!("cloud: {d}")),
            CloudStatus::Unavailable(why) => Some(format!("cloud: unavailable ({why})")),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            CloudStatus::NotAsked => 0,
            CloudStatus::Enabled => 1,
            CloudStatus::Restricted(_) => 2,
            CloudStatus::Disabled(_) => 3,
            CloudStatus::Unavailable(_) => 4,
        }
    }
}

/// One entry of a range answer.
#[derive(Debug, Clone, Deserialize)]
struct RangeEntry {
    fingerprint: String,
    #[serde(flatten)]
    answer: CloudAnswer,
}

#[derive(Debug, Deserialize)]
struct RangeAnswer {
    #[serde(default)]
    ttl: Option<u64>,
    #[serde(default)]
    entries: Vec<RangeEntry>,
}

#[derive(Debug, Deserialize)]
struct BulkAnswer {
    results: Vec<CloudAnswer>,
    #[serde(default)]
    cloud: Option<String>,
}

#[derive(Debug)]
struct State {
    started: Option<Instant>,
    requests: u32,
    preferred: usize,
    status: CloudStatus,
    ranges: HashMap<(String, String), (Instant, Vec<RangeEntry>)>,
}

/// The most a range may be cached, whatever its TTL says.
pub const MAX_RANGE_TTL: Duration = Duration::from_secs(86_400);
/// Largest answer body read.
const MAX_ANSWER: u64 = 64 << 20;

/// A client of one or more `repute serve` services. Cheap to share between threads.
#[derive(Debug)]
pub struct CloudClient {
    agent: ureq::Agent,
    options: CloudOptions,
    state: Mutex<State>,
}

/// The response of one request: status, `X-Repute-Cloud`, body.
struct Reply {
    status: u16,
    cloud: Option<String>,
    body: Vec<u8>,
}

impl CloudClient {
    /// A client with these options. Nothing is sent until asked.
    pub fn new(options: CloudOptions) -> CloudClient {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(options.timeout))
            .timeout_connect(Some(options.timeout))
            .max_idle_connections_per_host(options.concurrency.max(1))
            .user_agent(concat!("repute/", env!("CARGO_PKG_VERSION")))
            .proxy(None)
            .build();
        CloudClient {
            agent: config.into(),
            state: Mutex::new(State {
                started: None,
                requests: 0,
                preferred: 0,
                status: CloudStatus::NotAsked,
                ranges: HashMap::new(),
            }),
            options,
        }
    }

    /// The options.
    pub fn options(&self) -> &CloudOptions {
        &self.options
    }

    /// The status as of the last request (the worst one seen).
    pub fn status(&self) -> CloudStatus {
        self.lock().status.clone()
    }

    /// Requests made so far.
    pub fn requests(&self) -> u32 {
        self.lock().requests
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn note(&self, status: CloudStatus) {
        let mut s = self.lock();
        if status.rank() > s.status.rank() {
            s.status = status;
        }
    }

    /// Takes one request from the budget; returns the time left for it.
    fn spend(&self) -> Result<Duration, ClientError> {
        let mut s = self.lock();
        let started = *s.started.get_or_insert_with(Instant::now);
        let left = self
            .options
            .budget
            .max_time
            .saturating_sub(started.elapsed());
        if s.requests >= self.options.budget.max_requests || left.is_zero() {
            drop(s);
            self.note(CloudStatus::Unavailable("budget of this scan spent".into()));
            return Err(ClientError::BudgetSpent);
        }
        s.requests += 1;
        Ok(left.min(self.options.timeout))
    }

    /// Sends one request to the services in order (the last one that worked first) until
    /// one answers with something other than a 5xx or a transport failure.
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&[u8], &str, bool)>,
    ) -> Result<Reply, ClientError> {
        let n = self.options.services.len();
        if n == 0 {
            return Err(ClientError::Unavailable("no service configured".into()));
        }
        let preferred = self.lock().preferred % n;
        let mut failures = Vec::new();
        for i in 0..n {
            let index = (preferred + i) % n;
            let base = self.options.services[index].trim_end_matches('/');
            let timeout = self.spend()?;
            let url = format!("{base}{path}");
            match self.send_once(method, &url, body, timeout) {
                Ok(reply) if reply.status >= 500 => {
                    failures.push(format!("{base}: HTTP {}", reply.status));
                }
                Ok(reply) => {
                    self.lock().preferred = index;
                    return Ok(reply);
                }
                Err(e) => failures.push(format!("{base}: {e}")),
            }
        }
        Err(ClientError::Unavailable(failures.join("; ")))
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        body: Option<(&[u8], &str, bool)>,
        timeout: Duration,
    ) -> Result<Reply, ureq::Error> {
        let auth = self.options.api_key.as_ref().map(|k| format!("Bearer {k}"));
        let mut response = match body {
            None => {
                let mut req = self.agent.get(url);
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                let _ = method;
                req.config().timeout_global(Some(timeout)).build().call()?
            }
            Some((data, content_type, gzip)) => {
                let mut req = self.agent.post(url).header("Content-Type", content_type);
                if gzip {
                    req = req.header("Content-Encoding", "gzip");
                }
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.config()
                    .timeout_global(Some(timeout))
                    .build()
                    .send(data)?
            }
        };
        let status = response.status().as_u16();
        let cloud = response
            .headers()
            .get("x-repute-cloud")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()?;
        Ok(Reply {
            status,
            cloud,
            body,
        })
    }

    fn refused(reply: &Reply) -> ClientError {
        let mut reason = String::from_utf8_lossy(&reply.body).into_owned();
        reason.truncate(200);
        ClientError::Refused {
            status: reply.status,
            reason,
        }
    }

    /// Asks about `queries` (digests, URLs, domains). The answer has one entry per query,
    /// `None` where the cloud could not be asked (unavailable, budget spent, disabled, or a
    /// URL with private lookups, which only cover digests). Never fails: the reason is in
    /// [`CloudClient::status`].
    pub fn lookup(&self, queries: &[String]) -> Vec<Option<CloudAnswer>> {
        if queries.is_empty() {
            return Vec::new();
        }
        if self.options.private_lookups {
            return queries.iter().map(|q| self.lookup_private(q)).collect();
        }
        let batch = self.options.batch.clamp(1, 10_000);
        let chunks: Vec<&[String]> = queries.chunks(batch).collect();
        let mut results: Vec<Vec<Option<CloudAnswer>>> = vec![Vec::new(); chunks.len()];
        let width = self.options.concurrency.max(1);
        for (group, slots) in chunks.chunks(width).zip(results.chunks_mut(width)) {
            std::thread::scope(|scope| {
                for (chunk, slot) in group.iter().zip(slots.iter_mut()) {
                    scope.spawn(move || *slot = self.lookup_chunk(chunk));
                }
            });
        }
        results.into_iter().flatten().collect()
    }

    fn lookup_chunk(&self, chunk: &[String]) -> Vec<Option<CloudAnswer>> {
        let none = || vec![None; chunk.len()];
        let body = match serde_json::to_vec(&serde_json::json!({ "queries": chunk })) {
            Ok(b) => b,
            Err(_) => return none(),
        };
        let reply = match self.request(
            "POST",
            "/v1/lookup",
            Some((&body, "application/json", false)),
        ) {
            Ok(r) => r,
            Err(e) => {
                if !matches!(e, ClientError::BudgetSpent) {
                    self.note(CloudStatus::Unavailable(e.to_string()));
                }
                return none();
            }
        };
        if reply.status != 200 {
            self.note(CloudStatus::Unavailable(Self::refused(&reply).to_string()));
            return none();
        }
        let answer: BulkAnswer = match serde_json::from_slice::<BulkAnswer>(&reply.body) {
            Ok(a) if a.results.len() == chunk.len() => a,
            Ok(a) => {
                self.note(CloudStatus::Unavailable(format!(
                    "{} results for {} queries",
                    a.results.len(),
                    chunk.len()
                )));
                return none();
            }
            Err(e) => {
                self.note(CloudStatus::Unavailable(format!(
                    "answer not understood: {e}"
                )));
                return none();
            }
        };
        let description = answer.cloud.clone().unwrap_or_default();
        let restricted = answer.results.iter().any(|r| r.restricted);
        match reply.cloud.as_deref() {
            Some("disabled") => {
                self.note(CloudStatus::Disabled(if description.is_empty() {
                    "disabled".into()
                } else {
                    description
                }));
                return none();
            }
            Some("restricted") => self.note(CloudStatus::Restricted(description)),
            _ if restricted => self.note(CloudStatus::Restricted(description)),
            _ => self.note(CloudStatus::Enabled),
        }
        answer.results.into_iter().map(Some).collect()
    }

    fn lookup_private(&self, query: &str) -> Option<CloudAnswer> {
        let q = query.trim().to_ascii_lowercase();
        let kind = match q.len() {
            32 => "md5",
            40 => "sha1",
            64 => "sha256",
            _ => return None,
        };
        if !q.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let prefix = q[..5].to_string();
        let fingerprint = &q[..32];
        let entries = self.range(kind, &prefix)?;
        let found = entries.iter().find(|e| e.fingerprint == fingerprint);
        Some(match found {
            Some(e) => {
                let mut a = e.answer.clone();
                a.query = query.to_string();
                a.kind = Some(kind.to_string());
                a
            }
            None => CloudAnswer {
                query: query.to_string(),
                kind: Some(kind.to_string()),
                verdict: Some("unknown".into()),
                ..CloudAnswer::default()
            },
        })
    }

    /// The entries of one range, from the cache while their TTL lasts.
    fn range(&self, kind: &str, prefix: &str) -> Option<Vec<RangeEntry>> {
        let key = (kind.to_string(), prefix.to_string());
        {
            let s = self.lock();
            if let Some((expires, entries)) = s.ranges.get(&key) {
                if Instant::now() < *expires {
                    return Some(entries.clone());
                }
            }
        }
        let reply = match self.request("GET", &format!("/v1/range/{kind}/{prefix}"), None) {
            Ok(r) if r.status == 200 => r,
            Ok(r) => {
                self.note(CloudStatus::Unavailable(Self::refused(&r).to_string()));
                return None;
            }
            Err(e) => {
                if !matches!(e, ClientError::BudgetSpent) {
                    self.note(CloudStatus::Unavailable(e.to_string()));
                }
                return None;
            }
        };
        if reply.cloud.as_deref() == Some("disabled") {
            self.note(CloudStatus::Disabled("disabled".into()));
            return None;
        }
        let answer: RangeAnswer = match serde_json::from_slice(&reply.body) {
            Ok(a) => a,
            Err(e) => {
                self.note(CloudStatus::Unavailable(format!(
                    "range answer not understood: {e}"
                )));
                return None;
            }
        };
        self.note(if reply.cloud.as_deref() == Some("restricted") {
            CloudStatus::Restricted(String::new())
        } else {
            CloudStatus::Enabled
        });
        let ttl = Duration::from_secs(answer.ttl.unwrap_or(0)).min(MAX_RANGE_TTL);
        let entries: Vec<RangeEntry> = answer
            .entries
            .into_iter()
            .map(|mut e| {
                e.fingerprint.make_ascii_lowercase();
                e
            })
            .collect();
        if !ttl.is_zero() {
            self.lock()
                .ranges
                .insert(key, (Instant::now() + ttl, entries.clone()));
        }
        Some(entries)
    }

    /// Ranges in the cache (for tests and status).
    pub fn cached_ranges(&self) -> usize {
        self.lock().ranges.len()
    }

    /// Posts a gzip-compressed statistics body to `/v1/statistics`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Refused`] for a 4xx (the body will never be accepted: drop it),
    /// [`ClientError::Unavailable`] or [`ClientError::BudgetSpent`] otherwise (keep it).
    pub fn post_statistics(&self, gzipped_json: &[u8]) -> Result<(), ClientError> {
        let reply = self.request(
            "POST",
            "/v1/statistics",
            Some((gzipped_json, "application/json", true)),
        )?;
        match reply.status {
            200..=299 => Ok(()),
            _ => Err(Self::refused(&reply)),
        }
    }

    /// Uploads a sample the service asked for to `/v1/samples/{sha256}`.
    ///
    /// # Errors
    ///
    /// As [`CloudClient::post_statistics`].
    pub fn post_sample(&self, sha256: &str, data: &[u8]) -> Result<(), ClientError> {
        let reply = self.request(
            "POST",
            &format!("/v1/samples/{sha256}"),
            Some((data, "application/octet-stream", false)),
        )?;
        match reply.status {
            200..=299 => Ok(()),
            _ => Err(Self::refused(&reply)),
        }
    }
}
