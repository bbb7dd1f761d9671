//! The service's live parts on loopback: serving an update state directory and following
//! it (the watch), mirroring an update channel at `/v1/updates/` (a directory, and an
//! http channel through a second service), and TLS.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use repute::engine::state::{Current, StateDir};
use repute::{Digest, FeedInfo, RecordSpec, SnapshotBuilder, Verdict};
use repute_service::{Backend, Config, Service};
use serde_json::Value;
use sha2::Digest as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const BAD_MD5: &str = "44d88612fea8a8f36de82e1278abb02f";
const NEW_MD5: &str = "fedcba9876543210fedcba9876543210";

fn snapshot(sequence: u64, with_new: bool) -> Vec<u8> {
    let mut b = SnapshotBuilder::new();
    b.sequence(sequence);
    let f = b.add_feed(FeedInfo::new("feed", "hashes", Verdict::Malicious));
    b.add_digest(
        f,
        BAD_MD5.parse::<Digest>().unwrap(),
        RecordSpec::new(Verdict::Malicious),
    );
    if with_new {
        b.add_digest(
            f,
            NEW_MD5.parse::<Digest>().unwrap(),
            RecordSpec::new(Verdict::Malicious).name("New"),
        );
    }
    b.to_bytes().unwrap()
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
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

async fn start(service: Arc<Service>, tls: Option<tokio_rustls::TlsAcceptor>) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let s = service;
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = rx.await;
        };
        repute_service::server::serve(listener, s, tls, shutdown, Duration::from_secs(5))
            .await
            .unwrap();
    });
    Running {
        addr,
        stop: Some(tx),
        task,
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

fn install(state: &StateDir, bytes: &[u8], sequence: u64) {
    let base = state.add(bytes).unwrap();
    state
        .install(&Current {
            sequence,
            base,
            deltas: Vec::new(),
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_directory_is_followed_with_no_failed_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::create(dir.path().join("state")).unwrap();
    install(&state, &snapshot(1, false), 1);
    let service = Service::new(
        Config {
            watch_interval_ms: 10,
            ..Config::default()
        },
        Backend::open(state.path()).unwrap(),
    )
    .unwrap();
    let watch = service.spawn_watch().expect("a state directory is watched");
    let server = start(service, None).await;
    let c = client();
    let sequence = |c: reqwest::Client, url: String| async move {
        let s: Value = c
            .get(format!("{url}/status"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        s["snapshot"]["sequence"].as_u64().unwrap()
    };
    assert_eq!(sequence(c.clone(), server.url()).await, 1);
    // Clients keep asking for a listed key while new snapshots are installed.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (c, url, stop) = (c.clone(), server.url(), stop.clone());
        load.push(tokio::spawn(async move {
            let (mut asked, mut failed) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || asked < 50 {
                let r = c
                    .get(format!("{url}/lookup/md5/{BAD_MD5}"))
                    .send()
                    .await
                    .unwrap();
                asked += 1;
                failed += u32::from(r.status() != 200);
            }
            (asked, failed)
        }));
    }
    for seq in 2..=6u64 {
        // What `repute update` does: add the file under its identity, switch current.json.
        install(&state, &snapshot(seq, seq % 2 == 0), seq);
        let mut seen = 0;
        for _ in 0..2_000 {
            seen = sequence(c.clone(), server.url()).await;
            if seen == seq {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(seen, seq, "the watch did not pick up sequence {seq}");
        let st = c
            .get(format!("{}/lookup/md5/{NEW_MD5}", server.url()))
            .send()
            .await
            .unwrap()
            .status();
        let expected = if seq % 2 == 0 { 200 } else { 404 };
        assert_eq!(st, expected, "sequence {seq} answers from its own snapshot");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in load {
        let (asked, failed) = t.await.unwrap();
        assert!(asked >= 50);
        assert_eq!(failed, 0, "lookups failed across the swaps");
    }
    let status: Value = c
        .get(format!("{}/status", server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["engine"]["sequence"], 6);
    watch.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_snapshot_file_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("current.snap");
    std::fs::write(&path, snapshot(1, false)).unwrap();
    let service = Service::new(
        Config {
            watch_interval_ms: 10,
            ..Config::default()
        },
        Backend::open(&path).unwrap(),
    )
    .unwrap();
    assert!(!service.reload_if_changed().unwrap(), "nothing changed yet");
    let tmp = dir.path().join(".tmp-next");
    std::fs::write(&tmp, snapshot(2, true)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert!(service.reload_if_changed().unwrap());
    assert!(!service.reload_if_changed().unwrap(), "swapped once");
    assert_eq!(service.status()["snapshot"]["sequence"], 2);
    // A damaged file is refused and the old snapshot stays.
    std::fs::write(&tmp, b"not a snapshot").unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert!(service.reload_if_changed().is_err());
    assert_eq!(service.status()["snapshot"]["sequence"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_loaded_into_huge_pages_is_served_and_reloaded_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("current.snap");
    std::fs::write(&path, snapshot(1, false)).unwrap();
    let mapped = Service::new(Config::default(), Backend::open(&path).unwrap()).unwrap();
    assert_eq!(mapped.status()["snapshot"]["storage"], "mapped");
    let options = repute::EngineOptions::default().with_huge_pages(true);
    let service = Service::new(
        Config {
            huge_pages: true,
            ..Config::default()
        },
        Backend::open_with(&path, options).unwrap(),
    )
    .unwrap();
    let storage = |s: &Service| {
        s.status()["snapshot"]["storage"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        storage(&service).starts_with("huge pages"),
        "{}",
        storage(&service)
    );
    let server = start(service.clone(), None).await;
    let c = client();
    let status = |md5: &'static str| {
        let c = c.clone();
        let url = format!("{}/lookup/md5/{md5}", server.url());
        async move { c.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(BAD_MD5).await, 200);
    assert_eq!(status(NEW_MD5).await, 404);
    let tmp = dir.path().join(".tmp-next");
    std::fs::write(&tmp, snapshot(2, true)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert!(service.reload_if_changed().unwrap());
    assert_eq!(status(NEW_MD5).await, 200, "the reloaded snapshot answers");
    assert_eq!(service.status()["snapshot"]["sequence"], 2);
    assert!(
        storage(&service).starts_with("huge pages"),
        "a reload keeps the engine's options: {}",
        storage(&service)
    );
    server.stop().await;
}

/// A channel directory as `repute publish` lays it out (the mirror does not read the
/// manifest, so its contents only need to be bytes to compare).
fn channel(dir: &Path) -> (String, Vec<u8>) {
    std::fs::create_dir_all(dir).unwrap();
    let snap = snapshot(3, true);
    let id: String = sha2::Sha256::digest(&snap)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let name = format!("{id}.snap");
    std::fs::write(dir.join(&name), &snap).unwrap();
    std::fs::write(
        dir.join(format!("{name}.minisig")),
        b"untrusted comment: x\n",
    )
    .unwrap();
    std::fs::write(dir.join("manifest.json"), b"{\"sequence\": 3}").unwrap();
    std::fs::write(dir.join("manifest.json.minisig"), b"untrusted comment: m\n").unwrap();
    std::fs::write(dir.join("secret.txt"), b"not for clients").unwrap();
    (name, snap)
}

async fn get(c: &reqwest::Client, url: &str, range: Option<&str>) -> (u16, Vec<u8>) {
    let mut r = c.get(url);
    if let Some(v) = range {
        r = r.header("range", v);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_update_channel_is_mirrored_from_a_directory_and_through_a_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let chan = dir.path().join("channel");
    let (name, snap) = channel(&chan);
    let origin = start(
        Service::new(
            Config {
                updates: Some(chan.display().to_string()),
                ..Config::default()
            },
            Backend::empty(),
        )
        .unwrap(),
        None,
    )
    .await;
    let c = client();
    let base = format!("{}/v1/updates", origin.url());
    assert_eq!(
        get(&c, &format!("{base}/manifest.json"), None).await,
        (200, b"{\"sequence\": 3}".to_vec())
    );
    assert_eq!(
        get(&c, &format!("{base}/{name}"), None).await,
        (200, snap.clone())
    );
    // `repute update` resumes with an open-ended range.
    assert_eq!(
        get(&c, &format!("{base}/{name}"), Some("bytes=100-")).await,
        (206, snap[100..].to_vec())
    );
    assert_eq!(
        get(&c, &format!("{base}/{name}"), Some("bytes=10-19")).await,
        (206, snap[10..20].to_vec())
    );
    let (st, _) = get(
        &c,
        &format!("{base}/{name}"),
        Some(&format!("bytes={}-", snap.len())),
    )
    .await;
    assert_eq!(st, 416);
    // Only channel names: no other file of the directory, no way out of it.
    for bad in ["secret.txt", "..%2Fchannel%2Fsecret.txt", "current.json"] {
        let (st, body) = get(&c, &format!("{base}/{bad}"), None).await;
        assert_eq!(st, 404, "{bad}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(v["message"]
            .as_str()
            .unwrap()
            .contains("not in the update channel"));
    }
    let (st, _) = get(&c, &format!("{base}/{}.snap", "0".repeat(64)), None).await;
    assert_eq!(st, 404);

    // A proxy mirrors the origin's channel over http, keeping what it fetched.
    let cache = dir.path().join("mirror");
    let proxy = start(
        Service::new(
            Config {
                updates: Some(format!("{base}/")),
                updates_cache: Some(cache.clone()),
                ..Config::default()
            },
            Backend::empty(),
        )
        .unwrap(),
        None,
    )
    .await;
    let pbase = format!("{}/v1/updates", proxy.url());
    assert_eq!(
        get(&c, &format!("{pbase}/manifest.json.minisig"), None).await,
        (200, b"untrusted comment: m\n".to_vec())
    );
    assert_eq!(
        get(&c, &format!("{pbase}/{name}"), Some("bytes=5-")).await,
        (206, snap[5..].to_vec())
    );
    assert_eq!(std::fs::read(cache.join(&name)).unwrap(), snap);
    assert_eq!(
        get(&c, &format!("{pbase}/{name}.minisig"), None).await,
        (200, b"untrusted comment: x\n".to_vec())
    );
    // With the origin gone, what was fetched is still served (manifest included).
    origin.stop().await;
    assert_eq!(
        get(&c, &format!("{pbase}/{name}"), None).await,
        (200, snap.clone())
    );
    let (st, _) = get(&c, &format!("{pbase}/manifest.json"), None).await;
    assert_eq!(st, 200);
    // A file whose content is not what its name says is never kept.
    let liar_dir = dir.path().join("liar");
    std::fs::create_dir_all(&liar_dir).unwrap();
    let fake = format!("{}.snap", "ab".repeat(32));
    std::fs::write(liar_dir.join(&fake), b"something else").unwrap();
    let liar = start(
        Service::new(
            Config {
                updates: Some(liar_dir.display().to_string()),
                ..Config::default()
            },
            Backend::empty(),
        )
        .unwrap(),
        None,
    )
    .await;
    let cache2 = dir.path().join("mirror2");
    let proxy2 = start(
        Service::new(
            Config {
                updates: Some(format!("{}/v1/updates/", liar.url())),
                updates_cache: Some(cache2.clone()),
                ..Config::default()
            },
            Backend::empty(),
        )
        .unwrap(),
        None,
    )
    .await;
    let (st, body) = get(&c, &format!("{}/v1/updates/{fake}", proxy2.url()), None).await;
    assert_eq!(st, 502, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("SHA-256"));
    assert_eq!(
        std::fs::read_dir(&cache2).unwrap().count(),
        0,
        "nothing kept"
    );
    // Without the option the route says so.
    let (st, _) = get(
        &c,
        &format!("{}/v1/updates/manifest.json", liar.url()),
        None,
    )
    .await;
    assert_eq!(st, 404);
    proxy2.stop().await;
    liar.stop().await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let acceptor = repute_service::server::tls_acceptor(&cert_path, &key_path).unwrap();
    let server = start(
        Service::new(
            Config::default(),
            Backend::from_bytes(snapshot(1, false)).unwrap(),
        )
        .unwrap(),
        Some(acceptor),
    )
    .await;
    repute_service::install_crypto_provider();
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", server.addr)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}", server.addr.port());
    let r = c
        .get(format!("{url}/lookup/md5/{BAD_MD5}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["MD5"], BAD_MD5.to_uppercase());
    assert_eq!(v["KnownMalicious"], "feed");
    let r = c
        .get(format!("{url}/lookup/md5/{NEW_MD5}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Plain HTTP on the TLS port gets no answer, and the service keeps serving TLS.
    let plain = client()
        .get(format!("http://{}/healthz", server.addr))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    // A client that does not trust the certificate is refused.
    let untrusting = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .resolve("localhost", server.addr)
        .build()
        .unwrap();
    assert!(untrusting
        .get(format!("{url}/healthz"))
        .send()
        .await
        .is_err());
    let r = c.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await;
}
