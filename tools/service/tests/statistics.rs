//! The statistics and samples routes in the service's router, driven in-process.

use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use repute::SnapshotBuilder;
use repute_service::statistics::{install, StatisticsIntake};
use repute_service::{Backend, Config, Service};
use repute_stats::{Day, ExportOptions, Limits, SampleStore, StatsStore};
use serde_json::{json, Value};
use sha2::Digest as _;
use tower::ServiceExt;

async fn call(s: &Arc<Service>, req: Request<Body>) -> (StatusCode, Value) {
    let resp = repute_service::routes::router(s.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap()
}

fn today() -> Day {
    Day::from_unix(repute_service::unix_now())
}

fn report(token: &str, extra: Option<(&str, &str)>) -> String {
    let mut r = json!({"schema": "repute-report/1", "day": today().to_string(), "token": token,
        "snapshot_sequence": 1, "product_version": "0.1.0",
        "items": [{"type": "sha256", "digest": "ab".repeat(32), "verdict": "unknown", "count": 2}]});
    if let Some((k, v)) = extra {
        r["items"][0][k] = json!(v);
    }
    r.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_and_samples_intake() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::new(
        Config::default(),
        Backend::from_bytes(SnapshotBuilder::new().to_bytes().unwrap()).unwrap(),
    )
    .unwrap();
    let db = dir.path().join("stats.db");
    let (st, _) = call(
        &service,
        post("/v1/statistics", report(&"1".repeat(32), None)),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "not collected before install");
    let mut store = StatsStore::open(&db).unwrap();
    let sample = b"a wanted sample".to_vec();
    let sample_sha: String = sha2::Sha256::digest(&sample)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    store.set_wanted([sample_sha.as_str()]).unwrap();
    assert!(install(StatisticsIntake {
        store: Mutex::new(store),
        samples: Some(Mutex::new(
            SampleStore::open(&dir.path().join("samples"), 64, 1024).unwrap()
        )),
        limits: Limits {
            max_body: 4096,
            ..Limits::default()
        },
        wanted_min_reporters: Some(2),
    }));
    for t in ["1", "2"] {
        let (st, v) = call(
            &service,
            post("/v1/statistics", report(&t.repeat(32), None)),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["accepted"], 1);
    }
    let (st, _) = call(
        &service,
        post(
            "/v1/statistics",
            report(&"3".repeat(32), Some(("path", "/home/alice/x.doc"))),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = call(&service, post("/v1/statistics", " ".repeat(5000))).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    let (st, _) = call(
        &service,
        post("/v1/statistics", "{\"schema\":\"repute-report/1\""),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // Samples: wanted by list, or by two distinct reporters of an unknown digest.
    assert!(repute_service::statistics::is_wanted(&"ab".repeat(32)));
    let (st, _) = call(
        &service,
        post(&format!("/v1/samples/{}", "cd".repeat(32)), "x"),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "not wanted");
    let (st, _) = call(
        &service,
        post(&format!("/v1/samples/{sample_sha}"), "other content"),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "digest mismatch");
    let (st, v) = call(
        &service,
        post(&format!("/v1/samples/{sample_sha}"), sample.clone()),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        std::fs::read(
            dir.path()
                .join("samples")
                .join(&sample_sha[..2])
                .join(&sample_sha)
        )
        .unwrap(),
        sample
    );

    // Acknowledged means committed: another connection sees it at once.
    let reader = StatsStore::open(&db).unwrap();
    let mut out = Vec::new();
    reader
        .export(
            &ExportOptions {
                min_reporters: 2,
                since: None,
            },
            &|_, _| None,
            &mut out,
        )
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(!text.contains("alice"));

    // Reports sent at once share commits: every one is acknowledged, and each counts.
    let mut sent = tokio::task::JoinSet::new();
    for n in 0..40 {
        let service = service.clone();
        let body = report(&format!("{n:032x}"), None).replace(&"ab".repeat(32), &"ef".repeat(32));
        sent.spawn(async move { call(&service, post("/v1/statistics", body)).await });
    }
    while let Some(done) = sent.join_next().await {
        let (st, v) = done.unwrap();
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["accepted"], 1);
    }
    let exported = |k: u32| {
        let mut out = Vec::new();
        let options = ExportOptions {
            min_reporters: k,
            since: None,
        };
        reader.export(&options, &|_, _| None, &mut out).unwrap();
        String::from_utf8(out).unwrap().contains(&"ef".repeat(32))
    };
    assert!(exported(40), "40 distinct reporters");
    assert!(!exported(41), "and not one more");
}
