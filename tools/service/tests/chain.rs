//! A two-level chain on loopback: a private service with data, a proxy with no snapshot in
//! front of it, and a client. Also faulty upstreams (hanging, garbage, 500, cut bodies) and
//! restrictions (policy, 429).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use repute::{Digest, FeedInfo, RecordSpec, SnapshotBuilder, Verdict};
use repute_service::{Backend, Config, Service};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const BAD_MD5: &str = "44d88612fea8a8f36de82e1278abb02f";

fn data() -> Vec<u8> {
    let mut b = SnapshotBuilder::new();
    let f = b.add_feed(FeedInfo::new("private", "hashes", Verdict::Malicious));
    b.add_digest(
        f,
        BAD_MD5.parse::<Digest>().unwrap(),
        RecordSpec::new(Verdict::Malicious).name("EICAR"),
    );
    for i in 0..30u32 {
        let hex = format!("{:032x}", 0xabc0_0000u128 + u128::from(i));
        b.add_digest(
            f,
            hex.parse::<Digest>().unwrap(),
            RecordSpec::new(Verdict::Malicious),
        );
    }
    let u = b.add_feed(FeedInfo::new("private-urls", "urls", Verdict::Malicious));
    b.add_url_entry(
        u,
        "evil.test",
        repute::url::EntryKind::Domain,
        RecordSpec::new(Verdict::Malicious),
    )
    .unwrap();
    b.to_bytes().unwrap()
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    service: Arc<Service>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = self.task.await;
    }
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn start(service: Arc<Service>, addr: SocketAddr) -> Running {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let s = service.clone();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = rx.await;
        };
        repute_service::server::serve(listener, s, None, shutdown, Duration::from_secs(5))
            .await
            .unwrap();
    });
    Running {
        addr,
        stop: Some(tx),
        task,
        service,
    }
}

fn proxy_config(upstream: &str) -> Config {
    Config {
        upstream: vec![upstream.to_string()],
        upstream_timeout_ms: 1_000,
        backoff_base_ms: 10,
        backoff_max_ms: 100,
        ..Config::default()
    }
}

fn client() -> reqwest::Client {
    repute_service::install_crypto_provider();
    // A guard against hangs, not a performance threshold.
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn lookup(c: &reqwest::Client, base: &str, md5: &str) -> (u16, Value) {
    let r = c
        .get(format!("{base}/lookup/md5/{md5}"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn counter(s: &Service, path: &str) -> u64 {
    s.status().pointer(path).and_then(Value::as_u64).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_caches_coalesces_degrades_and_recovers() {
    let private = start(
        Service::new(Config::default(), Backend::from_bytes(data()).unwrap()).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let proxy = start(
        Service::new(proxy_config(&private.url()), Backend::empty()).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let c = client();
    let p = proxy.url();

    // Upstream answer, then the cache.
    let (st, v) = lookup(&c, &p, BAD_MD5).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["repute:source"], "upstream");
    assert_eq!(v["KnownMalicious"], "private");
    let (st, v) = lookup(&c, &p, BAD_MD5).await;
    assert_eq!(st, 200);
    assert_eq!(v["repute:source"], "cache");
    assert_eq!(counter(&proxy.service, "/queries/cache"), 1);
    assert_eq!(counter(&proxy.service, "/cache/hits"), 1);
    assert_eq!(counter(&proxy.service, "/upstream_requests"), 1);
    // Unknown answers are cached too (negative TTL).
    let unknown = "0123456789abcdef0123456789abcdef";
    assert_eq!(lookup(&c, &p, unknown).await.0, 404);
    let (st, v) = lookup(&c, &p, unknown).await;
    assert_eq!(st, 404);
    assert!(v.get("repute:upstream").is_none());
    assert_eq!(counter(&proxy.service, "/upstream_requests"), 2);

    // Concurrent misses for one key: one upstream request.
    let key = format!("{:032x}", 0xabc0_0005u128);
    let before = counter(&proxy.service, "/upstream_requests");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (c, p, key) = (c.clone(), p.clone(), key.clone());
        tasks.push(tokio::spawn(async move { lookup(&c, &p, &key).await.0 }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(counter(&proxy.service, "/upstream_requests") - before, 1);

    // A bulk request's misses go upstream together, not one request each.
    let hashes: Vec<String> = (0..20u32)
        .map(|i| format!("{:032x}", 0xabc0_0000u128 + u128::from(i)))
        .collect();
    let before = counter(&proxy.service, "/upstream_requests");
    let r: Value = c
        .post(format!("{p}/bulk/md5"))
        .json(&json!({ "hashes": hashes }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r.as_array().unwrap().len(), 20);
    let sent = counter(&proxy.service, "/upstream_requests") - before;
    assert!(
        (1..19).contains(&sent),
        "19 misses took {sent} upstream requests"
    );

    // URLs and domains go upstream through the native API.
    let r: Value = c
        .post(format!("{p}/v1/lookup"))
        .json(&json!({"queries": ["http://www.evil.test/x", BAD_MD5]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["results"][0]["verdict"], "malicious");
    assert_eq!(r["results"][0]["repute:source"], "upstream");
    assert_eq!(r["results"][1]["repute:source"], "cache");

    // Kill the upstream: degraded answers, no hang; cached answers still served.
    let addr = private.addr;
    let data_service = private.service.clone();
    private.stop().await;
    let fresh = "fedcba9876543210fedcba9876543210";
    let (st, v) = lookup(&c, &p, fresh).await;
    assert_eq!(st, 404);
    assert_eq!(v["repute:upstream"], "unavailable");
    assert_eq!(lookup(&c, &p, BAD_MD5).await.1["repute:source"], "cache");
    let status = proxy.service.status();
    assert_eq!(status["upstreams"][0]["reachable"], false, "{status}");
    assert!(counter(&proxy.service, "/queries/failed") >= 1);

    // Bring it back on the same port: answers recover once the back-off has passed.
    let private = start(data_service, addr).await;
    let mut recovered = false;
    for _ in 0..200 {
        let (st, v) = lookup(&c, &p, &format!("{:032x}", 0xabc0_0019u128)).await;
        if st == 200 {
            assert_eq!(v["repute:source"], "upstream");
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(recovered, "the proxy never recovered");
    assert_eq!(proxy.service.status()["upstreams"][0]["reachable"], true);
    // The failures were never cached: the fresh key now gets a real (unknown) answer.
    let (st, v) = lookup(&c, &p, fresh).await;
    assert_eq!(st, 404);
    assert!(v.get("repute:upstream").is_none(), "{v}");
    proxy.stop().await;
    private.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restrictions_stop_upstream_traffic() {
    let private = start(
        Service::new(Config::default(), Backend::from_bytes(data()).unwrap()).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "cloud = \"restricted\"\nkinds = [\"domain\"]\nmax_per_minute = 1000\n",
    )
    .unwrap();
    let proxy = start(
        Service::new(
            Config {
                policy: Some(policy.clone()),
                ..proxy_config(&private.url())
            },
            Backend::empty(),
        )
        .unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let c = client();
    let p = proxy.url();
    for _ in 0..3 {
        let (st, v) = lookup(&c, &p, BAD_MD5).await;
        assert_eq!(st, 404);
        assert_eq!(v["repute:restricted"], true);
    }
    let r = c
        .post(format!("{p}/v1/lookup"))
        .json(&json!({"queries": [BAD_MD5, "evil.test"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-repute-cloud"], "restricted");
    let r: Value = r.json().await.unwrap();
    assert!(
        r["cloud"]
            .as_str()
            .unwrap()
            .starts_with("enabled with restrictions"),
        "{r}"
    );
    assert_eq!(r["results"][0]["repute:restricted"], true);
    assert_eq!(r["results"][0]["verdict"], "unknown");
    assert_eq!(r["results"][1]["verdict"], "malicious");
    assert_eq!(
        counter(&proxy.service, "/upstream_requests"),
        1,
        "only the domain went upstream"
    );
    assert_eq!(counter(&proxy.service, "/queries/restricted"), 4);
    assert_eq!(counter(&private.service, "/queries/total"), 1);

    // Disabled: nothing at all goes upstream.
    proxy.service.set_policy(Some(repute_service::Policy {
        cloud: repute_service::CloudState::Disabled,
        reason: Some("maintenance".into()),
        ..Default::default()
    }));
    let r: Value = c
        .post(format!("{p}/v1/lookup"))
        .json(&json!({"queries": ["sub.evil.test", "http://evil.test/a"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["cloud"], "disabled (maintenance)");
    assert_eq!(r["results"][0]["repute:restricted"], true);
    assert_eq!(counter(&proxy.service, "/upstream_requests"), 1);
    proxy.stop().await;
    private.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_429_holds_forwarding() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let key = repute_service::keys::generate_key().unwrap();
    std::fs::write(
        &keys,
        repute_service::keys::key_line("proxy", &key, Some("1/h")),
    )
    .unwrap();
    let private = start(
        Service::new(
            Config {
                keys: Some(keys),
                ..Config::default()
            },
            Backend::from_bytes(data()).unwrap(),
        )
        .unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let proxy = start(
        Service::new(
            Config {
                upstream_key: Some(key),
                ..proxy_config(&private.url())
            },
            Backend::empty(),
        )
        .unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let c = client();
    let p = proxy.url();
    assert_eq!(lookup(&c, &p, BAD_MD5).await.0, 200);
    let other = format!("{:032x}", 0xabc0_0001u128);
    let (st, v) = lookup(&c, &p, &other).await;
    assert_eq!(st, 404);
    assert_eq!(v["repute:restricted"], true, "{v}");
    let sent = counter(&proxy.service, "/upstream_requests");
    // Held for the upstream's Retry-After: further misses are not sent.
    let (_, v) = lookup(&c, &p, &format!("{:032x}", 0xabc0_0002u128)).await;
    assert_eq!(v["repute:restricted"], true);
    assert_eq!(counter(&proxy.service, "/upstream_requests"), sent);
    assert!(
        proxy.service.status()["upstreams"][0]["retry_after_remaining_ms"]
            .as_u64()
            .unwrap()
            > 0
    );
    proxy.stop().await;
    private.stop().await;
}

/// A misbehaving upstream: each connection gets `mode`'s treatment.
async fn faulty(mode: &'static str) -> (SocketAddr, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 65536];
                let _ = s.read(&mut buf).await;
                let reply: &[u8] = match mode {
                    "hang" => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    "garbage" => b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nnot json!",
                    "wrong-shape" => {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 14\r\n\r\n{\"results\":[]}"
                    }
                    "500" => b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n",
                    _ => b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n{\"results\":[",
                };
                let _ = s.write_all(reply).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_upstreams_give_degraded_answers_and_poison_nothing() {
    for mode in ["hang", "garbage", "wrong-shape", "500", "cut"] {
        let (addr, task) = faulty(mode).await;
        let service = Service::new(
            Config {
                upstream_timeout_ms: 300,
                ..proxy_config(&format!("http://{addr}"))
            },
            Backend::empty(),
        )
        .unwrap();
        let proxy = start(service, "127.0.0.1:0".parse().unwrap()).await;
        let c = client();
        let (st, v) = lookup(&c, &proxy.url(), BAD_MD5).await;
        assert_eq!(st, 404, "{mode}: {v}");
        assert_eq!(v["repute:upstream"], "unavailable", "{mode}: {v}");
        let status = proxy.service.status();
        assert_eq!(status["cache"]["entries"], 0, "{mode}: nothing cached");
        assert!(status["upstream_errors"].as_u64().unwrap() >= 1, "{mode}");
        assert_eq!(
            c.get(format!("{}/healthz", proxy.url()))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        proxy.stop().await;
        task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_to_the_second_upstream() {
    let private = start(
        Service::new(Config::default(), Backend::from_bytes(data()).unwrap()).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let (dead, task) = faulty("500").await;
    let mut config = proxy_config(&format!("http://{dead}"));
    config.upstream.push(private.url());
    let proxy = start(
        Service::new(config, Backend::empty()).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let (st, v) = lookup(&client(), &proxy.url(), BAD_MD5).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["repute:source"], "upstream");
    let status = proxy.service.status();
    assert_eq!(status["upstreams"][0]["reachable"], false);
    assert_eq!(status["upstreams"][1]["reachable"], true);
    proxy.stop().await;
    private.stop().await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_connections_are_bounded() {
    let service = Service::new(
        Config {
            header_read_timeout_ms: 200,
            ..Config::default()
        },
        Backend::from_bytes(data()).unwrap(),
    )
    .unwrap();
    let server = start(service, "127.0.0.1:0".parse().unwrap()).await;
    // A slowloris client sends half a request line and stops: the server closes it.
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTT").await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the slow connection was not closed");
    // A silent connection is closed after the header timeout too.
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(20), silent.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the silent connection was not closed");
    server.stop().await;
}

/// Reads one whole HTTP response from a fresh connection (the server closes it).
async fn raw_get(addr: SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf))
        .await
        .expect("the server answered")
        .unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_get_503_and_the_service_recovers() {
    let service = Service::new(
        Config {
            // Long enough that the idle connections below hold their permits.
            header_read_timeout_ms: 60_000,
            max_connections: 4,
            ..Config::default()
        },
        Backend::from_bytes(data()).unwrap(),
    )
    .unwrap();
    assert_eq!(Config::default().max_connections, 10_000);
    let server = start(service, "127.0.0.1:0".parse().unwrap()).await;
    // Four idle clients take every permit (each sends a byte, so it is past accept).
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"G").await.unwrap();
        idle.push(s);
    }
    while server
        .service
        .metrics
        .open_connections
        .load(std::sync::atomic::Ordering::Relaxed)
        < 4
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // More clients are told 503 with a JSON body, and the service does not hang.
    for _ in 0..8 {
        let answer = raw_get(server.addr, "/healthz").await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["error"]["code"], 503);
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains("max_connections"));
    }
    assert_eq!(
        server
            .service
            .metrics
            .rejected_connections
            .load(std::sync::atomic::Ordering::Relaxed),
        8
    );
    // The idle clients leave; their permits come back and clients are served again.
    drop(idle);
    let mut answer = String::new();
    for _ in 0..400 {
        answer = raw_get(server.addr, "/healthz").await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("{\"status\":\"ok\"}"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_under_load_fails_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("current.snap");
    let build = |extra: bool| {
        let mut b = SnapshotBuilder::new();
        let f = b.add_feed(FeedInfo::new("feed", "hashes", Verdict::Malicious));
        b.add_digest(
            f,
            BAD_MD5.parse::<Digest>().unwrap(),
            RecordSpec::new(Verdict::Malicious),
        );
        if extra {
            b.add_digest(
                f,
                "fedcba9876543210fedcba9876543210"
                    .parse::<Digest>()
                    .unwrap(),
                RecordSpec::new(Verdict::Malicious),
            );
        }
        b.to_bytes().unwrap()
    };
    std::fs::write(&path, build(false)).unwrap();
    let server = start(
        Service::new(Config::default(), Backend::open(&path).unwrap()).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let c = client();
    let mut load = Vec::new();
    for _ in 0..4 {
        let (c, url) = (c.clone(), server.url());
        load.push(tokio::spawn(async move {
            let mut failed = 0;
            for _ in 0..150 {
                let (st, _) = lookup(&c, &url, BAD_MD5).await;
                failed += usize::from(st != 200);
            }
            failed
        }));
    }
    for i in 0..10 {
        // Publish by temp file and rename, as the builder does, then reload (SIGHUP's path).
        let tmp = dir.path().join(".tmp-next");
        std::fs::write(&tmp, build(i % 2 == 0)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        server.service.reload().unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for t in load {
        assert_eq!(t.await.unwrap(), 0, "requests failed during reloads");
    }
    // The last reload (i = 9) published the snapshot without the extra key; publish it once more.
    std::fs::write(dir.path().join(".tmp-next"), build(true)).unwrap();
    std::fs::rename(dir.path().join(".tmp-next"), &path).unwrap();
    server.service.reload().unwrap();
    assert_eq!(
        lookup(&c, &server.url(), "fedcba9876543210fedcba9876543210")
            .await
            .0,
        200
    );
    server.stop().await;
}
