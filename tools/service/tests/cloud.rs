//! The service's side of cloud participation, driven over loopback: unknown SHA-256 answers
//! marked `"repute:wanted"` (and only those the service wants), and closed days'
//! aggregates relayed upstream (only aggregates: no token, no report). The upstream here is
//! a small intake over its own `StatsStore`, the oracle for what arrived.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{to_bytes, Body, Bytes};
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use repute::{Digest, FeedInfo, RecordSpec, SnapshotBuilder, Verdict};
use repute_service::statistics::{install, relay_once, StatisticsIntake};
use repute_service::{Backend, Config, Service};
use repute_stats::{Day, ExportOptions, Limits, SampleStore, StatsStore, Submission};
use serde_json::{json, Value};
use tower::ServiceExt;

const LISTED_SHA256: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";

fn today() -> Day {
    Day::from_unix(repute_service::unix_now())
}

fn hex(c: &str) -> String {
    c.repeat(32)
}

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

fn post(path: &str, body: String) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn report(token: &str, digests: &[&str]) -> String {
    let items: Vec<Value> = digests
        .iter()
        .map(|d| json!({"type": "sha256", "digest": d, "verdict": "unknown", "count": 3}))
        .collect();
    json!({"schema": "repute-report/1", "day": today().to_string(), "token": token,
        "snapshot_sequence": 1, "product_version": "0.1.0", "items": items})
    .to_string()
}

/// An upstream intake: decodes what arrives with the real decoder and folds it into its
/// own store. `fail` makes it answer 500 (nothing stored).
struct Upstream {
    addr: SocketAddr,
    store: Arc<Mutex<StatsStore>>,
    bodies: Arc<Mutex<Vec<String>>>,
    fail: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

async fn upstream(day: Day) -> Upstream {
    let store = Arc::new(Mutex::new(StatsStore::open_in_memory().unwrap()));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let fail = Arc::new(AtomicU32::new(0));
    let (s, b, f) = (store.clone(), bodies.clone(), fail.clone());
    let app = axum::Router::new().route(
        "/v1/statistics",
        axum::routing::post(move |body: Bytes| {
            let (s, b, f) = (s.clone(), b.clone(), f.clone());
            async move {
                if f.load(Ordering::Relaxed) > 0 {
                    f.fetch_sub(1, Ordering::Relaxed);
                    return (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
                }
                b.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                match repute_stats::decode_submission(&body, false, &Limits::default(), day) {
                    Ok(sub) => {
                        assert!(matches!(sub, Submission::Aggregate(..)), "only aggregates");
                        let r = s.lock().unwrap().ingest(&sub, day).unwrap();
                        axum::Json(json!({"accepted": r.items})).into_response()
                    }
                    Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Upstream {
        addr,
        store,
        bodies,
        fail,
        task,
    }
}

fn exported(store: &StatsStore, k: u32) -> Vec<Value> {
    let mut out = Vec::new();
    store
        .export(
            &ExportOptions {
                min_reporters: k,
                since: None,
            },
            &|_, _| None,
            &mut out,
        )
        .unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wanted_marks_and_the_relay_of_closed_days() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = SnapshotBuilder::new();
    let f = b.add_feed(FeedInfo::new("feed", "hashes", Verdict::Malicious));
    b.add_digest(
        f,
        LISTED_SHA256.parse::<Digest>().unwrap(),
        RecordSpec::new(Verdict::Malicious),
    );
    let service = Service::new(
        Config::default(),
        Backend::from_bytes(b.to_bytes().unwrap()).unwrap(),
    )
    .unwrap();
    // Before an intake with samples exists, nothing is wanted.
    let (st, v) = call(&service, get(&format!("/lookup/sha256/{}", hex("ab")))).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(v.get("repute:wanted").is_none(), "{v}");

    let mut store = StatsStore::open(&dir.path().join("stats.db")).unwrap();
    // The publisher wants "ab..." and, by its list, the listed digest (which is known, so
    // it is never asked for).
    store
        .set_wanted([hex("ab").as_str(), LISTED_SHA256])
        .unwrap();
    assert!(install(StatisticsIntake {
        store: Mutex::new(store),
        samples: Some(Mutex::new(
            SampleStore::open(&dir.path().join("samples"), 1 << 20, 1 << 24).unwrap()
        )),
        limits: Limits::default(),
        wanted_min_reporters: Some(3),
    }));
    // "cd..." reported by three distinct reporters, "ef..." by two (under K = 3).
    for (i, t) in ["1", "2", "3"].iter().enumerate() {
        let digests: Vec<String> = if i < 2 {
            vec![hex("cd"), hex("ef")]
        } else {
            vec![hex("cd")]
        };
        let refs: Vec<&str> = digests.iter().map(String::as_str).collect();
        let (st, v) = call(
            &service,
            post("/v1/statistics", report(&t.repeat(32), &refs)),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let oracle = |d: &str| d == hex("ab") || d == hex("cd");
    // hashlookup answers.
    for d in [hex("ab"), hex("cd"), hex("ef"), hex("01")] {
        let (st, v) = call(&service, get(&format!("/lookup/sha256/{d}"))).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert_eq!(v["message"], "Non existing SHA-256");
        assert_eq!(
            v.get("repute:wanted") == Some(&json!(true)),
            oracle(&d),
            "{d}: {v}"
        );
    }
    let (st, v) = call(&service, get(&format!("/lookup/sha256/{LISTED_SHA256}"))).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        v.get("repute:wanted").is_none(),
        "a listed digest is never wanted"
    );
    // MD5 answers are never marked (a sample is asked for by its SHA-256).
    let (_, v) = call(&service, get(&format!("/lookup/md5/{}", "ab".repeat(16)))).await;
    assert!(v.get("repute:wanted").is_none());
    // The native API, as the agents ask (mixed with a URL and an invalid query).
    let queries = vec![
        hex("ab"),
        hex("cd"),
        hex("ef"),
        LISTED_SHA256.to_string(),
        "http://a.test/".to_string(),
        "zz".to_string(),
    ];
    let (st, v) = call(
        &service,
        post("/v1/lookup", json!({ "queries": queries }).to_string()),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let marks: Vec<bool> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.get("repute:wanted") == Some(&json!(true)))
        .collect();
    assert_eq!(marks, [true, true, false, false, false, false], "{v}");
    let (_, v) = call(&service, get(&format!("/v1/lookup?q={}", hex("cd")))).await;
    assert_eq!(v["repute:wanted"], true, "{v}");

    // Relay: nothing while the day is open; once it is closed, the aggregates, once.
    let later = today().plus(2);
    let up = upstream(later).await;
    let url = format!("http://{}/v1/statistics", up.addr);
    repute_service::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let none = relay_once(&client, &url, None, today()).await.unwrap();
    assert_eq!(none.days, 0);
    assert!(up.bodies.lock().unwrap().is_empty());
    // A failing upstream: not marked relayed, so the next round sends it again.
    up.fail.store(1, Ordering::Relaxed);
    assert!(relay_once(&client, &url, None, later).await.is_err());
    let done = relay_once(&client, &url, None, later).await.unwrap();
    assert_eq!((done.days, done.items), (1, 2), "{done:?}");
    assert_eq!(
        relay_once(&client, &url, None, later).await.unwrap().days,
        0
    );
    // What arrived: aggregates with the reporter counts, never a token.
    for body in up.bodies.lock().unwrap().iter() {
        for t in ["1", "2", "3"] {
            assert!(!body.contains(&t.repeat(32)), "a token was relayed: {body}");
        }
        assert!(body.contains("repute-aggregate"), "{body}");
    }
    let upstream_store = up.store.lock().unwrap();
    let k3 = exported(&upstream_store, 3);
    assert_eq!(k3.len(), 1, "{k3:?}");
    assert_eq!(k3[0]["digest"], hex("cd"));
    let k2 = exported(&upstream_store, 2);
    assert_eq!(k2.len(), 2, "{k2:?}");
    drop(upstream_store);
    up.task.abort();
}
