//! `POST /v1/statistics` and `POST /v1/samples/{sha256}`: the cloud's intake, over the
//! `repute-stats` library (closed schema, caps, per-day aggregates in SQLite). Reports that
//! arrive together share one transaction (group commit).
//!
//! The routes sit behind the router's API-key gate and body limit like every other route.
//! They answer 404 until [`install`] gives them a store: a service that does not collect
//! statistics does not accept them. SQLite work runs on the blocking pool; a submission is
//! acknowledged (200) only after its transaction committed.

use std::sync::{mpsc, Arc, Mutex, OnceLock};

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use repute_stats::{
    decode_submission, Day, IngestReceipt, Limits, SampleStore, StatsStore, Submission,
};
use serde_json::json;

use crate::routes::ApiError;
use crate::Service;

/// What the intake writes to.
#[derive(Debug)]
pub struct StatisticsIntake {
    /// The aggregate store.
    pub store: Mutex<StatsStore>,
    /// Where wanted samples go (none: samples are refused).
    pub samples: Option<Mutex<SampleStore>>,
    /// Caps on a submission.
    pub limits: Limits,
    /// Unknown SHA-256 digests reported by at least this many distinct reporters on one
    /// day are wanted, besides the publisher's list.
    pub wanted_min_reporters: Option<u32>,
}

static INTAKE: OnceLock<Arc<StatisticsIntake>> = OnceLock::new();

/// Enables the routes for this process. Returns false if they were already enabled.
pub fn install(intake: StatisticsIntake) -> bool {
    INTAKE.set(Arc::new(intake)).is_ok()
}

/// Whether this process accepts statistics.
pub fn installed() -> bool {
    INTAKE.get().is_some()
}

/// Whether this process takes samples (only then is any answer marked wanted).
pub fn collects_samples() -> bool {
    INTAKE.get().is_some_and(|i| i.samples.is_some())
}

/// Whether the service wants a sample of this SHA-256 (lowercase hex), for
/// `"repute:wanted"`.
pub fn is_wanted(sha256: &str) -> bool {
    wanted_flags(&[sha256]).first().copied().unwrap_or(false)
}

/// For each SHA-256 (lowercase hex), whether the service wants a sample: one lock of the
/// store for all of them. Always false when samples are not collected.
pub fn wanted_flags(sha256: &[&str]) -> Vec<bool> {
    let Some(intake) = INTAKE.get().filter(|i| i.samples.is_some()) else {
        return vec![false; sha256.len()];
    };
    let Ok(store) = intake.store.lock() else {
        return vec![false; sha256.len()];
    };
    sha256
        .iter()
        .map(|d| {
            store
                .is_wanted(d, intake.wanted_min_reporters)
                .unwrap_or(false)
        })
        .collect()
}

/// [`wanted_flags`] off the reactor (SQLite reads), for the unknown SHA-256 answers of a
/// bulk request.
pub async fn wanted_flags_blocking(sha256: Vec<String>) -> Vec<bool> {
    if sha256.is_empty() || !collects_samples() {
        return vec![false; sha256.len()];
    }
    let n = sha256.len();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = sha256.iter().map(String::as_str).collect();
        wanted_flags(&refs)
    })
    .await
    .unwrap_or_else(|_| vec![false; n])
}

/// The two routes, to merge into the service's router.
pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/v1/statistics", post(statistics))
        .route("/v1/samples/{sha256}", post(sample))
}

fn today() -> Day {
    Day::from_unix(crate::unix_now())
}

fn error(status: u16, message: String) -> Response {
    ApiError::new(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        message,
    )
    .into_response()
}

fn fail(status: u16, message: String) -> (u16, String) {
    (status, message)
}

fn not_collected() -> Response {
    error(404, "this service does not collect statistics".into())
}

async fn statistics(headers: HeaderMap, body: Bytes) -> Response {
    let Some(intake) = INTAKE.get().cloned() else {
        return not_collected();
    };
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    let result = tokio::task::spawn_blocking(move || {
        let day = today();
        let submission = decode_submission(&body, gzip, &intake.limits, day)
            .map_err(|e| fail(e.status(), e.to_string()))?;
        group_commit(&intake, submission, day)
    })
    .await;
    match result {
        Ok(Ok(receipt)) => Json(json!({
            "accepted": receipt.items,
            "duplicate": receipt.duplicate,
        }))
        .into_response(),
        Ok(Err((status, message))) => error(status, message),
        Err(_) => error(500, "statistics intake failed".into()),
    }
}

/// The answer to one submission: its receipt, or a status and message.
type Stored = Result<IngestReceipt, (u16, String)>;

/// Decoded submissions waiting for the next group commit, each with where its answer goes.
static PENDING: Mutex<Vec<(Submission, mpsc::SyncSender<Stored>)>> = Mutex::new(Vec::new());

/// Stores one submission together with whatever others arrived meanwhile. It joins the
/// queue and waits for the store; whoever gets the store takes the whole queue into one
/// transaction (one `fsync` for all of it), answers each submission, and lets go. Under
/// load, reports thus share commits; alone, a report commits at once, as before. Either
/// way a submission is answered only after the transaction holding it committed.
fn group_commit(intake: &StatisticsIntake, submission: Submission, today: Day) -> Stored {
    let unavailable = || fail(500, "statistics store unavailable".into());
    let (reply, answer) = mpsc::sync_channel(1);
    PENDING
        .lock()
        .map_err(|_| unavailable())?
        .push((submission, reply));
    {
        let mut store = intake.store.lock().map_err(|_| unavailable())?;
        let batch = std::mem::take(&mut *PENDING.lock().map_err(|_| unavailable())?);
        // Empty when the holder before us took our submission with its own.
        if !batch.is_empty() {
            let (submissions, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let not_stored =
                |e: &dyn std::fmt::Display| fail(500, format!("statistics not stored: {e}"));
            match store.ingest_many(&submissions, today) {
                Ok(results) => {
                    for (result, reply) in results.into_iter().zip(replies) {
                        let _ = reply.send(result.map_err(|e| not_stored(&e)));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(not_stored(&e)));
                    }
                }
            }
        }
    }
    answer
        .recv()
        .unwrap_or_else(|_| Err(fail(500, "statistics intake failed".into())))
}

async fn sample(Path(sha256): Path<String>, body: Bytes) -> Response {
    let Some(intake) = INTAKE.get().cloned() else {
        return not_collected();
    };
    let result = tokio::task::spawn_blocking(move || {
        let Some(samples) = &intake.samples else {
            return Err(fail(404, "this service does not accept samples".into()));
        };
        let wanted = repute_stats::intake::is_lower_hex(&sha256, 64)
            && intake
                .store
                .lock()
                .map_err(|_| fail(500, "statistics store unavailable".into()))?
                .is_wanted(&sha256, intake.wanted_min_reporters)
                .map_err(|e| fail(500, e.to_string()))?;
        let mut samples = samples
            .lock()
            .map_err(|_| fail(500, "sample store unavailable".into()))?;
        samples
            .accept(&sha256, &body, wanted)
            .map_err(|e| fail(e.status(), e.to_string()))
    })
    .await;
    match result {
        Ok(Ok(outcome)) => Json(json!({
            "stored": matches!(outcome, repute_stats::samples::SampleOutcome::Stored),
        }))
        .into_response(),
        Ok(Err((status, message))) => error(status, message),
        Err(_) => error(500, "sample intake failed".into()),
    }
}

/// Items per relayed batch (well under the intake's item and body caps).
pub const RELAY_BATCH_ITEMS: usize = 5_000;

/// What one relay round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Relayed {
    /// Closed days forwarded completely (and marked relayed).
    pub days: usize,
    /// Batches the upstream acknowledged.
    pub batches: usize,
    /// Aggregate items in them.
    pub items: usize,
}

/// Forwards every closed day's aggregates (days before yesterday, as of `today`) to
/// `url`, another service's `POST /v1/statistics`, and marks a day relayed once the
/// upstream acknowledged all its batches. Only aggregates travel: no address, token or
/// report of an agent. A batch the upstream already counted is recognised there by its
/// identifier, so a round cut short is simply repeated.
///
/// # Errors
///
/// When the store fails or the upstream does not acknowledge a batch; days already
/// acknowledged stay marked.
pub async fn relay_once(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    today: Day,
) -> anyhow::Result<Relayed> {
    let Some(intake) = INTAKE.get().cloned() else {
        return Ok(Relayed::default());
    };
    let store = intake.clone();
    let pending = tokio::task::spawn_blocking(move || {
        store
            .store
            .lock()
            .map_err(|_| anyhow::anyhow!("statistics store unavailable"))?
            .pending_relay(today, RELAY_BATCH_ITEMS)
            .map_err(anyhow::Error::from)
    })
    .await??;
    let mut done = Relayed::default();
    for (day, batches) in pending {
        for batch in &batches {
            let body = serde_json::to_vec(batch)?;
            let mut request = client
                .post(url)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body);
            if let Some(k) = key {
                request = request.bearer_auth(k);
            }
            let response = request
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("cannot relay statistics to {url}: {e}"))?;
            let status = response.status();
            if !status.is_success() {
                let text = response.text().await.unwrap_or_default();
                anyhow::bail!(
                    "{url} refused the aggregates of {day}: HTTP {} {:.200}",
                    status.as_u16(),
                    text
                );
            }
            done.batches += 1;
            done.items += batch.items.len();
        }
        let store = intake.clone();
        tokio::task::spawn_blocking(move || {
            store
                .store
                .lock()
                .map_err(|_| anyhow::anyhow!("statistics store unavailable"))?
                .mark_relayed(day)
                .map_err(anyhow::Error::from)
        })
        .await??;
        done.days += 1;
    }
    Ok(done)
}

/// Starts relaying closed days to `config.statistics_upstream` every
/// `statistics_relay_interval_seconds` (also right away). `None` when there is no relay
/// upstream or no intake. Must run inside a Tokio runtime.
pub fn spawn_relay(service: &Arc<Service>) -> Option<tokio::task::JoinHandle<()>> {
    let url = service.config.statistics_upstream.clone()?;
    INTAKE.get()?;
    crate::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .user_agent(concat!("repute-service/", env!("CARGO_PKG_VERSION")))
        .build()
        .ok()?;
    let key = service.config.upstream_key.clone();
    let every =
        std::time::Duration::from_secs(service.config.statistics_relay_interval_seconds.max(1));
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match relay_once(&client, &url, key.as_deref(), today()).await {
                Ok(r) if r.days > 0 => {
                    tracing::info!(
                        days = r.days,
                        items = r.items,
                        "statistics relayed upstream"
                    )
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "statistics relay failed; retrying later")
                }
            }
        }
    }))
}
