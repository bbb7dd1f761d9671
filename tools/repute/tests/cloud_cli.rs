//! Cloud lookups, participation and the statistics flow, driving the real binary against
//! loopback servers. Every test sets XDG_CONFIG_HOME to its own temporary directory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use repute_stats::{Day, StatsStore, Submission};
use serde_json::{json, Value};

const EICAR_MD5: &str = "44d88612fea8a8f36de82e1278abb02f";

fn repute(config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_repute"));
    c.env("XDG_CONFIG_HOME", config).env_remove("HOME");
    c
}

fn run(config: &Path, dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = repute(config)
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// method, path, content encoding, body -> status, JSON body.
type HandlerFn = dyn Fn(&str, &str, Option<&str>, &[u8]) -> (u16, String) + Send + Sync;
type Handler = Arc<HandlerFn>;

/// A bounded loopback HTTP server: at most `max` connections, stopped when dropped.
struct Server {
    url: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(max: usize, handler: Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut served = 0;
            while served < max && !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        served += 1;
                        serve(stream, &*handler);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            url,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, handler: &HandlerFn) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let (mut len, mut encoding) = (0usize, None);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((n, v)) = h.trim_end().split_once(':') {
            if n.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
            if n.eq_ignore_ascii_case("content-encoding") {
                encoding = Some(v.trim().to_string());
            }
        }
    }
    let mut body = vec![0; len.min(32 << 20)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let (status, reply) = handler(&method, &path, encoding.as_deref(), &body);
    let mut out = stream;
    let _ = write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nX-Repute-Cloud: enabled\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

fn build_snapshot(config: &Path, dir: &Path, feeds: &[&str]) -> PathBuf {
    let mut args = vec!["build", "-o", "s.snap"];
    for f in feeds {
        args.push("--feed");
        args.push(f);
    }
    let out = run(config, dir, &args, "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    dir.join("s.snap")
}

#[test]
fn join_needs_consent_and_leave_deletes_unsent_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, dir) = (tmp.path().join("config"), tmp.path());
    let status = run(&config, dir, &["cloud", "status"], "");
    assert!(text(&status.stdout).contains("participation: off"));
    let refused = run(
        &config,
        dir,
        &["cloud", "join", "--service", "http://127.0.0.1:9"],
        "",
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("--yes"),
        "{}",
        text(&refused.stderr)
    );
    assert!(text(&refused.stderr).contains("Never sent: paths, file names"));
    assert!(
        !config.join("repute/config.toml").exists(),
        "nothing stored without consent"
    );
    let joined = run(
        &config,
        dir,
        &["cloud", "join", "--service", "http://127.0.0.1:9", "--yes"],
        "",
    );
    assert!(joined.status.success(), "{}", text(&joined.stderr));
    assert!(text(&run(&config, dir, &["cloud", "status"], "").stdout).contains("participation: on"));
    std::fs::write(config.join("repute/reports.json"), "{}").unwrap();
    let left = run(&config, dir, &["cloud", "leave"], "");
    assert!(left.status.success());
    assert!(!config.join("repute/reports.json").exists());
    assert!(
        text(&run(&config, dir, &["cloud", "status"], "").stdout).contains("participation: off")
    );
}

#[test]
fn lookup_offline_answers_locally_with_one_status_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, dir) = (tmp.path().join("config"), tmp.path());
    std::fs::write(dir.join("bad.txt"), format!("{EICAR_MD5}\n")).unwrap();
    build_snapshot(&config, dir, &["hashes::bad.txt"]);
    let url = dead_url();
    let out = run(
        &config,
        dir,
        &[
            "lookup",
            "s.snap",
            "--cloud",
            &url,
            EICAR_MD5,
            &"ab".repeat(32),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("{EICAR_MD5}\tmalicious")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{}\tunknown", "ab".repeat(32))),
        "{stdout}"
    );
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("cloud: unavailable"));
}

#[test]
fn lookup_asks_only_what_the_snapshot_does_not_know() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, dir) = (tmp.path().join("config"), tmp.path());
    std::fs::write(dir.join("bad.txt"), format!("{EICAR_MD5}\n")).unwrap();
    build_snapshot(&config, dir, &["hashes::bad.txt"]);
    let asked = Arc::new(Mutex::new(Vec::<Value>::new()));
    let asked2 = asked.clone();
    let server = Server::start(
        4,
        Arc::new(move |_, path, _, body| {
            assert_eq!(path, "/v1/lookup");
            let req: Value = serde_json::from_slice(body).unwrap();
            asked2.lock().unwrap().push(req.clone());
            let results: Vec<Value> = req["queries"].as_array().unwrap().iter().map(|q| {
            json!({"query": q, "type": "sha256", "verdict": "malicious", "name": "Cloud.Test", "repute:source": "upstream"})
        }).collect();
            (
                200,
                json!({"results": results, "cloud": "enabled"}).to_string(),
            )
        }),
    );
    // From the configuration file this time.
    std::fs::create_dir_all(config.join("repute")).unwrap();
    std::fs::write(
        config.join("repute/config.toml"),
        format!("[cloud]\nservices = [\"{}\"]\n", server.url),
    )
    .unwrap();
    let unknown = "cd".repeat(32);
    let out = run(
        &config,
        dir,
        &["lookup", "s.snap", "--format", "jsonl"],
        &format!("{EICAR_MD5}\n{unknown}\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "");
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["verdict"], "malicious");
    assert_eq!(lines[1]["name"], "Cloud.Test");
    assert_eq!(lines[1]["repute:source"], "upstream");
    assert_eq!(*asked.lock().unwrap(), vec![json!({"queries": [unknown]})]);
}

fn today() -> Day {
    Day::from_unix(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    )
}

fn all_bytes_under(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            out.extend(std::fs::read(&p).unwrap());
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Three agents scan their trees and send statistics to a proxy (a loopback server folding
/// them into a proxy store with the stats library, as `repute serve` does); the proxy relays
/// the closed day upstream; the upstream's export feeds the next build, which then knows
/// the digests at least K = 3 agents saw, and not those fewer saw. No path or file name
/// appears in either database, the export or its summary.
#[test]
fn statistics_flow_from_agents_to_the_next_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    std::fs::write(work.join("bad.txt"), format!("{EICAR_MD5}\n")).unwrap();
    let snapshot = build_snapshot(&work.join("c0"), work, &["hashes::bad.txt"]);
    let state = work.join("proxy");
    std::fs::create_dir_all(&state).unwrap();
    let proxy_store = Arc::new(Mutex::new(
        StatsStore::open(&state.join("stats.db")).unwrap(),
    ));
    let store2 = proxy_store.clone();
    let server = Server::start(
        16,
        Arc::new(move |method, path, encoding, body| {
            if method != "POST" || path != "/v1/statistics" {
                return (404, "{}".into());
            }
            match repute_stats::decode_submission(
                body,
                encoding == Some("gzip"),
                &Default::default(),
                today(),
            ) {
                Ok(sub) => {
                    store2.lock().unwrap().ingest(&sub, today()).unwrap();
                    (200, json!({"accepted": true}).to_string())
                }
                Err(e) => (e.status(), json!({"error": e.to_string()}).to_string()),
            }
        }),
    );
    let shared = ["prevalent file one", "prevalent file two"];
    for agent in 0..3 {
        let config = work.join(format!("c{agent}"));
        let tree = work.join(format!("home-{agent}/Documents"));
        std::fs::create_dir_all(&tree).unwrap();
        for (i, content) in shared.iter().enumerate() {
            std::fs::write(tree.join(format!("secret-name-{agent}-{i}.txt")), content).unwrap();
        }
        std::fs::write(
            tree.join(format!("secret-name-{agent}-own.txt")),
            format!("private {agent}"),
        )
        .unwrap();
        if agent < 2 {
            std::fs::write(
                tree.join(format!("secret-name-{agent}-pair.txt")),
                "seen by two",
            )
            .unwrap();
        }
        let join = run(
            &config,
            work,
            &["cloud", "join", "--service", &server.url, "--yes"],
            "",
        );
        assert!(join.status.success(), "{}", text(&join.stderr));
        let dry = run(&config, work, &["cloud", "status", "--dry-run"], "");
        assert_eq!(text(&dry.stdout), "", "nothing queued before a scan");
        let scan = run(
            &config,
            work,
            &["scan", snapshot.to_str().unwrap(), tree.to_str().unwrap()],
            "",
        );
        assert_eq!(scan.status.code(), Some(0), "{}", text(&scan.stderr));
        assert!(
            !text(&scan.stderr).contains("not sent"),
            "{}",
            text(&scan.stderr)
        );
        let pending = run(&config, work, &["cloud", "status", "--dry-run"], "");
        assert_eq!(text(&pending.stdout), "", "sent, nothing left queued");
    }
    drop(server);
    let mut proxy_store = Arc::try_unwrap(proxy_store)
        .ok()
        .unwrap()
        .into_inner()
        .unwrap();
    assert!(proxy_store.open_token_rows().unwrap() > 0);
    // Two days later the day is closed at the proxy and relayed; tokens are gone.
    let later = today().plus(2);
    let upstream_dir = work.join("upstream");
    std::fs::create_dir_all(&upstream_dir).unwrap();
    let mut upstream = StatsStore::open(&upstream_dir.join("stats.db")).unwrap();
    for (day, batches) in proxy_store.pending_relay(later, 10_000).unwrap() {
        for batch in batches {
            let body = serde_json::to_vec(&batch).unwrap();
            let sub =
                repute_stats::decode_submission(&body, false, &Default::default(), later).unwrap();
            assert!(matches!(sub, Submission::Aggregate(..)));
            upstream.ingest(&sub, later).unwrap();
        }
        proxy_store.mark_relayed(day).unwrap();
    }
    assert_eq!(proxy_store.open_token_rows().unwrap(), 0);
    drop(upstream);
    drop(proxy_store);
    let export = run(
        &work.join("c0"),
        work,
        &[
            "stats",
            "export",
            "--db",
            upstream_dir.join("stats.db").to_str().unwrap(),
            "--min-reporters",
            "3",
            "-o",
            "prevalence.jsonl",
        ],
        "",
    );
    assert!(export.status.success(), "{}", text(&export.stderr));
    let feed = std::fs::read_to_string(work.join("prevalence.jsonl")).unwrap();
    assert_eq!(feed.lines().count(), 2, "{feed}");
    let next = run(
        &work.join("c0"),
        work,
        &[
            "build",
            "-o",
            "next.snap",
            "--feed",
            "hashes::bad.txt",
            "--feed",
            "repute-stats::prevalence.jsonl",
        ],
        "",
    );
    assert!(next.status.success(), "{}", text(&next.stderr));
    let sha = |s: &str| {
        use sha2::Digest as _;
        sha2::Sha256::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let out = run(
        &work.join("c0"),
        work,
        &[
            "lookup",
            "next.snap",
            &sha(shared[0]),
            &sha(shared[1]),
            &sha("seen by two"),
            &sha("private 0"),
        ],
        "",
    );
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert!(
        lines[0].contains("\tknown\t") && lines[0].contains("category=prevalent"),
        "{lines:?}"
    );
    assert!(lines[1].contains("\tknown\t"), "{lines:?}");
    assert!(
        lines[2].contains("\tunknown\t"),
        "two reporters are under K: {lines:?}"
    );
    assert!(lines[3].contains("\tunknown\t"), "{lines:?}");
    let mut everything = all_bytes_under(&state);
    everything.extend(all_bytes_under(&upstream_dir));
    everything.extend(std::fs::read(work.join("prevalence.jsonl")).unwrap());
    everything.extend(std::fs::read(work.join("prevalence.jsonl.summary.json")).unwrap());
    for needle in [
        "secret-name",
        "Documents",
        "home-",
        ".txt",
        work.to_str().unwrap(),
    ] {
        assert!(!contains(&everything, needle), "{needle} leaked");
    }
}

/// `repute serve --stats-db` takes the agents' reports itself: three agents report one
/// shared file, and the service's database then knows it under three reporters (and no
/// file name).
#[test]
fn repute_serve_takes_statistics_into_its_database() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    std::fs::write(work.join("bad.txt"), format!("{EICAR_MD5}\n")).unwrap();
    let snapshot = build_snapshot(&work.join("c0"), work, &["hashes::bad.txt"]);
    std::fs::create_dir_all(work.join("service")).unwrap();
    let db = work.join("service/stats.db");
    let mut child = repute(&work.join("c0"))
        .args([
            "serve",
            snapshot.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--stats-db")
        .arg(&db)
        .env("REPUTE_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("repute serve: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    std::thread::spawn(move || for _ in lines {});
    for agent in 0..3 {
        let config = work.join(format!("c{agent}"));
        let tree = work.join(format!("tree-{agent}"));
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join(format!("secret-name-{agent}.txt")), "shared file").unwrap();
        let join = run(
            &config,
            work,
            &["cloud", "join", "--service", &url, "--yes"],
            "",
        );
        assert!(join.status.success(), "{}", text(&join.stderr));
        let scan = run(
            &config,
            work,
            &["scan", snapshot.to_str().unwrap(), tree.to_str().unwrap()],
            "",
        );
        assert_eq!(scan.status.code(), Some(0), "{}", text(&scan.stderr));
        let pending = run(&config, work, &["cloud", "status", "--dry-run"], "");
        assert_eq!(
            text(&pending.stdout),
            "",
            "the report was accepted and dropped"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    let export = run(
        &work.join("c0"),
        work,
        &[
            "stats",
            "export",
            "--db",
            db.to_str().unwrap(),
            "--min-reporters",
            "3",
            "-o",
            "served.jsonl",
        ],
        "",
    );
    assert!(export.status.success(), "{}", text(&export.stderr));
    let feed = std::fs::read_to_string(work.join("served.jsonl")).unwrap();
    let sha = {
        use sha2::Digest as _;
        sha2::Sha256::digest(b"shared file")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert!(feed.contains(&sha), "{feed}");
    assert!(!contains(
        &all_bytes_under(&work.join("service")),
        "secret-name"
    ));
}
