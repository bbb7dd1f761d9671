//! `POST /v1/statistics` and `POST /v1/samples/{sha256}`: the cloud's intake, over the
//! `repute-stats` library (closed schema, caps, per-day aggregates in SQLite).
//!
//! The routes sit behind the router's API-key gate and body limit like every other route.
//! They answer 404 until [`install`] gives them a store: a service that does not collect
//! statistics does not accept them. SQLite work runs on the blocking pool; a submission is
//! acknowledged (200) only after its transaction committed.

use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use repute_stats::{decode_submission, Day, Limits, SampleStore, StatsStore};
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

/// Whether the service wants a sample of this SHA-256 (for `"repute:wanted"`).
pub fn is_wanted(sha256: &str) -> bool {
    INTAKE.get().is_some_and(|i| {
        i.samples.is_some()
            && i.store
                .lock()
                .ok()
                .and_then(|s| s.is_wanted(sha256, i.wanted_min_reporters).ok())
                .unwrap_or(false)
    })
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
        let mut store = intake
            .store
            .lock()
            .map_err(|_| fail(500, "statistics store unavailable".into()))?;
        store
            .ingest(&submission, day)
            .map_err(|e| fail(500, format!("statistics not stored: {e}")))
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
