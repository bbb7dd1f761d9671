//! The router in-process (no sockets): every protocol, every error as JSON, the limits.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use repute::{Digest, FeedInfo, RecordSpec, SnapshotBuilder, Verdict};
use repute_service::{Backend, Config, Service};
use serde_json::{json, Value};
use tower::ServiceExt;

const BAD_MD5: &str = "44d88612fea8a8f36de82e1278abb02f";
const BAD_SHA256: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
const GOOD_SHA1: &str = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
const UNKNOWN_MD5: &str = "00000000000000000000000000000001";

fn snapshot_bytes() -> Vec<u8> {
    let mut b = SnapshotBuilder::new();
    b.created(1_700_000_000).sequence(7);
    let bad = b.add_feed(FeedInfo::new("testfeed", "hashes", Verdict::Malicious));
    for h in [BAD_MD5, BAD_SHA256] {
        b.add_digest(
            bad,
            h.parse::<Digest>().unwrap(),
            RecordSpec::new(Verdict::Malicious)
                .name("EICAR-Test")
                .category("trojan"),
        );
    }
    let good = b.add_feed(FeedInfo::new("nsrl", "sha1sum", Verdict::Known));
    b.add_digest(
        good,
        GOOD_SHA1.parse::<Digest>().unwrap(),
        RecordSpec::new(Verdict::Known).name("empty.txt"),
    );
    let urls = b.add_feed(FeedInfo::new("phish", "urls", Verdict::Malicious));
    b.add_url_entry(
        urls,
        "phish.example.com",
        repute::url::EntryKind::Domain,
        RecordSpec::new(Verdict::Malicious).category("phishing"),
    )
    .unwrap();
    b.add_url_entry(
        urls,
        "http://evil.example.net/payload.exe",
        repute::url::EntryKind::Url,
        RecordSpec::new(Verdict::Malicious).category("malware_download"),
    )
    .unwrap();
    b.to_bytes().unwrap()
}

fn service(config: Config) -> Arc<Service> {
    Service::new(config, Backend::from_bytes(snapshot_bytes()).unwrap()).unwrap()
}

async fn call(s: &Arc<Service>, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let resp = repute_service::routes::router(s.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, headers, value)
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap()
}

#[tokio::test]
async fn hashlookup_lookups_answer_as_circl_does() {
    let s = service(Config::default());
    let (st, _, v) = call(&s, get(&format!("/lookup/md5/{}", BAD_MD5.to_uppercase()))).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["MD5"], BAD_MD5.to_uppercase());
    assert_eq!(v["KnownMalicious"], "testfeed");
    assert_eq!(v["hashlookup:trust"], 30);
    assert_eq!(v["repute:verdict"], "malicious");
    assert_eq!(v["repute:name"], "EICAR-Test");
    assert_eq!(v["repute:source"], "snapshot");

    let (st, _, v) = call(&s, get(&format!("/lookup/sha1/{GOOD_SHA1}"))).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["SHA-1"], GOOD_SHA1.to_uppercase());
    assert_eq!(v["FileName"], "empty.txt");
    assert!(v.get("KnownMalicious").is_none());
    assert_eq!(v["hashlookup:trust"], 55);

    let (st, _, v) = call(&s, get(&format!("/lookup/md5/{UNKNOWN_MD5}"))).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(
        v,
        json!({"message": "Non existing MD5", "query": UNKNOWN_MD5})
    );
    let (st, _, v) = call(&s, get(&format!("/lookup/sha256/{}", "ab".repeat(32)))).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(v["message"], "Non existing SHA-256");
    let (st, _, v) = call(&s, get(&format!("/lookup/sha1/{}", "ab".repeat(20)))).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(v["message"], "Non existing SHA-1");

    for (path, message) in [
        (
            "/lookup/md5/xyz",
            "MD5 value incorrect, expecting a MD5 value in hex format",
        ),
        (
            &format!("/lookup/md5/{GOOD_SHA1}") as &str,
            "MD5 value incorrect, expecting a MD5 value in hex format",
        ),
        (
            "/lookup/sha1/zz",
            "SHA1 value incorrect, expecting a SHA1 value in hex format",
        ),
        (
            "/lookup/sha256/12",
            "SHA-256 value incorrect, expecting a SHA-256 value in hex format",
        ),
    ] {
        let (st, _, v) = call(&s, get(path)).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(v, json!({ "message": message }), "{path}");
    }
}

#[tokio::test]
async fn bulk_info_and_top() {
    let s = service(Config::default());
    let body =
        json!({"hashes": [BAD_MD5, UNKNOWN_MD5, "not-hex", BAD_MD5.to_uppercase()]}).to_string();
    let (st, _, v) = call(&s, post("/bulk/md5", body)).await;
    assert_eq!(st, StatusCode::OK);
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2, "{v}");
    assert!(list.iter().all(|r| r["MD5"] == BAD_MD5.to_uppercase()));
    let (st, _, v) = call(
        &s,
        post("/bulk/sha256", json!({"hashes": [BAD_SHA256]}).to_string()),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v[0]["SHA-256"], BAD_SHA256.to_uppercase());
    let (st, _, v) = call(&s, post("/bulk/sha1", "{\"nohashes\": 1}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(v["message"].as_str().unwrap().contains("'hashes'"));

    let (st, _, v) = call(&s, get("/info")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["stat:hashlookup_total_keys"], 5);
    assert_eq!(v["repute:sequence"], 7);
    assert!(v["hashlookup-version"].is_string());
    assert!(v["nsrl-version"].is_string());
    let (_, _, v) = call(&s, get("/stats/top")).await;
    assert_eq!(v, json!({"nx": [], "exist": []}));
}

#[tokio::test]
async fn native_lookups_mix_kinds_in_order() {
    let s = service(Config::default());
    let queries = json!({"queries": [
        BAD_MD5, "http://www.phish.example.com/login", "example.org", "not a query ::", UNKNOWN_MD5,
        "http://evil.example.net/payload.exe"
    ]});
    let (st, h, v) = call(&s, post("/v1/lookup", queries.to_string())).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(h["x-repute-cloud"], "enabled");
    assert_eq!(v["cloud"], "enabled");
    let r = v["results"].as_array().unwrap();
    assert_eq!(r.len(), 6);
    assert_eq!(r[0]["verdict"], "malicious");
    assert_eq!(r[0]["type"], "md5");
    assert_eq!(r[0]["source"], "testfeed");
    assert_eq!(r[0]["repute:source"], "snapshot");
    assert_eq!(r[1]["verdict"], "malicious");
    assert_eq!(r[1]["type"], "url");
    assert_eq!(r[1]["category"], "phishing");
    assert_eq!(r[2]["verdict"], "unknown");
    assert_eq!(r[2]["type"], "domain");
    assert!(r[3]["error"].is_string());
    assert!(r[3].get("verdict").is_none());
    assert_eq!(r[4]["verdict"], "unknown");
    assert_eq!(r[5]["category"], "malware_download");

    let (st, _, v) = call(&s, get("/v1/lookup?q=http%3A%2F%2Fphish.example.com%2F")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["verdict"], "malicious");
    assert_eq!(v["query"], "http://phish.example.com/");
    let (st, _, v) = call(&s, get("/v1/lookup")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(v["message"].is_string());
}

#[tokio::test]
async fn every_error_is_json_and_limits_hold() {
    let config = Config {
        max_bulk: 3,
        max_body_bytes: 1024,
        ..Config::default()
    };
    let s = service(config);
    let (st, _, v) = call(&s, post("/v1/lookup", "{not json")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        v["message"].as_str().unwrap().contains("not valid JSON"),
        "{v}"
    );
    let (st, _, v) = call(&s, post("/bulk/md5", "[1,2")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, _, v) = call(&s, post("/bulk/md5", json!({"hashes": [1]}).to_string())).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let four = json!({"hashes": [BAD_MD5, BAD_MD5, BAD_MD5, BAD_MD5]}).to_string();
    let (st, _, v) = call(&s, post("/bulk/md5", four)).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(v["message"].as_str().unwrap().contains("limit is 3"), "{v}");
    assert!(v["message"].as_str().unwrap().contains("max_bulk"), "{v}");
    let big = format!("{{\"queries\": [\"{}\"]}}", "a".repeat(4096));
    let (st, _, v) = call(&s, post("/v1/lookup", big)).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(v["message"].as_str().unwrap().contains("1024"), "{v}");
    let (st, _, v) = call(&s, get("/no/such/thing")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(v["message"].is_string());
    let (st, _, v) = call(&s, post("/lookup/md5/00", "")).await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    assert!(v["message"].is_string());
    // Still serving after all that.
    let (st, _, _) = call(&s, get(&format!("/lookup/md5/{BAD_MD5}"))).await;
    assert_eq!(st, StatusCode::OK);
}

#[tokio::test]
async fn operations_endpoints_show_the_figures() {
    let s = service(Config::default());
    for _ in 0..3 {
        call(&s, get(&format!("/lookup/md5/{BAD_MD5}"))).await;
    }
    let (st, _, v) = call(&s, get("/healthz")).await;
    assert_eq!((st, v), (StatusCode::OK, json!({"status": "ok"})));
    let (_, _, v) = call(&s, get("/status")).await;
    assert_eq!(v["snapshot"]["sequence"], 7);
    assert_eq!(v["snapshot"]["keys"], 5);
    assert_eq!(v["queries"]["snapshot"], 3);
    assert_eq!(v["cloud"]["state"], "enabled");
    assert_eq!(v["mode"], "authoritative");
    let (_, h, text) = call(&s, get("/metrics")).await;
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = text.as_str().unwrap().to_string();
    assert!(
        text.contains("repute_queries_total{source=\"snapshot\"} 3"),
        "{text}"
    );
    assert!(text.contains("repute_snapshot_sequence 7"), "{text}");
    let (st, h, html) = call(&s, get("/")).await;
    assert_eq!(st, StatusCode::OK);
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = html.as_str().unwrap().to_string();
    assert!(
        html.contains("<td class=\"num\" id=\"sequence\">7</td>"),
        "{html}"
    );
    assert!(
        html.contains("<td class=\"num\" id=\"keys\">5</td>"),
        "{html}"
    );
    assert!(
        html.contains("<td class=\"num\" id=\"q-snapshot\">3</td>"),
        "{html}"
    );
    assert!(html.contains("id=\"cloud\">enabled<"), "{html}");
    assert!(!html.contains("<script"));
}

#[tokio::test]
async fn safe_browsing_and_range() {
    let s = service(Config::default());
    let req = json!({
        "client": {"clientId": "t", "clientVersion": "1"},
        "threatInfo": {
            "threatTypes": ["MALWARE", "SOCIAL_ENGINEERING"],
            "platformTypes": ["ANY_PLATFORM"],
            "threatEntryTypes": ["URL"],
            "threatEntries": [{"url": "HTTP://Phish.Example.com/a/../b"}, {"url": "http://example.org/"}]
        }
    });
    let (st, _, v) = call(&s, post("/v4/threatMatches:find?key=x", req.to_string())).await;
    assert_eq!(st, StatusCode::OK);
    let m = v["matches"].as_array().unwrap();
    assert_eq!(m.len(), 1, "{v}");
    assert_eq!(m[0]["threat"]["url"], "HTTP://Phish.Example.com/a/../b");
    assert_eq!(m[0]["threatType"], "SOCIAL_ENGINEERING");
    assert!(m[0]["cacheDuration"].as_str().unwrap().ends_with('s'));
    let none = json!({"threatInfo": {"threatEntries": [{"url": "http://example.org/"}]}});
    let (_, _, v) = call(&s, post("/v4/threatMatches:find", none.to_string())).await;
    assert_eq!(v, json!({}));
    let (_, _, v) = call(&s, get("/v4/threatLists")).await;
    assert_eq!(v["threatLists"].as_array().unwrap().len(), 3);

    let (st, _, v) = call(&s, get(&format!("/v1/range/md5/{}", &BAD_MD5[..5]))).await;
    assert_eq!(st, StatusCode::OK);
    let e = v["entries"].as_array().unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0]["fingerprint"], BAD_MD5);
    assert_eq!(e[0]["verdict"], "malicious");
    let len_hit = serde_json::to_vec(&v).unwrap().len();
    let (_, _, v) = call(&s, get("/v1/range/sha256/fffff")).await;
    assert!(v["entries"].as_array().unwrap().is_empty());
    assert_eq!(
        len_hit,
        serde_json::to_vec(&v).unwrap().len(),
        "padded to the same size"
    );
    let (_, _, v) = call(&s, get(&format!("/v1/range/sha256/{}", &BAD_SHA256[..5]))).await;
    assert_eq!(v["entries"][0]["fingerprint"], &BAD_SHA256[..32]);
    let (st, _, _) = call(&s, get("/v1/range/md5/123")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn api_keys_gate_everything_but_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys");
    let key = repute_service::keys::generate_key().unwrap();
    std::fs::write(
        &path,
        repute_service::keys::key_line("ci", &key, Some("2/h")) + "\n",
    )
    .unwrap();
    let s = service(Config {
        keys: Some(path.clone()),
        ..Config::default()
    });
    let (st, h, v) = call(&s, get("/info")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(h.contains_key("www-authenticate"));
    assert!(v["message"].is_string());
    let (st, _, _) = call(&s, get("/healthz")).await;
    assert_eq!(st, StatusCode::OK);
    let with = |k: &str| {
        Request::get("/info")
            .header("authorization", format!("Bearer {k}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(call(&s, with(&key)).await.0, StatusCode::OK);
    let x = Request::get("/info")
        .header("x-api-key", &key)
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&s, x).await.0, StatusCode::OK);
    let (st, h, v) = call(&s, with(&key)).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert!(v["message"].is_string());
    assert_eq!(call(&s, with("rk_wrong")).await.0, StatusCode::UNAUTHORIZED);
    // A new key file is picked up without a restart.
    let other = repute_service::keys::generate_key().unwrap();
    std::fs::write(
        &path,
        repute_service::keys::key_line("new", &other, None) + "\n",
    )
    .unwrap();
    s.keys.as_ref().unwrap().reload().unwrap();
    assert_eq!(call(&s, with(&other)).await.0, StatusCode::OK);
    assert_eq!(call(&s, with(&key)).await.0, StatusCode::UNAUTHORIZED);
}

/// A range query answers from the base and its deltas: a key a delta adds is listed, one it
/// removes is not, one it changes carries its new record.
#[tokio::test]
async fn range_answers_include_the_deltas() {
    use repute::engine::state::{Current, StateDir};
    let md5 = |tail: &str| format!("{}{tail}", &BAD_MD5[..5]);
    let (kept, gone, added) = (
        md5("000000000000000000000000001"),
        md5("000000000000000000000000002"),
        md5("000000000000000000000000003"),
    );
    let build = |sequence: u64, keys: &[(&str, &str)]| {
        let mut b = SnapshotBuilder::new();
        b.created(1_700_000_000 + sequence as i64)
            .sequence(sequence);
        let feed = b.add_feed(FeedInfo::new("testfeed", "hashes", Verdict::Malicious));
        for (hex, name) in keys {
            let spec = RecordSpec::new(Verdict::Malicious).name(*name);
            b.add_digest(feed, hex.parse::<Digest>().unwrap(), spec);
        }
        repute::Snapshot::open(b.to_bytes().unwrap()).unwrap()
    };
    let old = build(1, &[(&kept, "old-name"), (&gone, "removed")]);
    let new = build(2, &[(&kept, "new-name"), (&added, "added")]);
    let dir = tempfile::tempdir().unwrap();
    let delta_path = dir.path().join("d.delta");
    repute::delta::diff(&old, &new, &delta_path).unwrap();
    let state = StateDir::create(dir.path().join("state")).unwrap();
    let base = state.add(old.as_bytes()).unwrap();
    let delta = state.add(&std::fs::read(&delta_path).unwrap()).unwrap();
    state
        .install(&Current {
            sequence: 2,
            base,
            deltas: vec![delta],
        })
        .unwrap();
    let s = Service::new(Config::default(), Backend::open(state.path()).unwrap()).unwrap();
    let (st, _, v) = call(&s, get(&format!("/v1/range/md5/{}", &BAD_MD5[..5]))).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let listed: Vec<(String, String)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["fingerprint"].as_str().unwrap().to_string(),
                e["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![(kept, "new-name".to_string()), (added, "added".to_string())]
    );
}
