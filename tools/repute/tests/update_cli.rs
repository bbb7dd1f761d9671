//! `repute publish` + `repute update` end to end: a channel served over loopback HTTP by a
//! server that injects faults (500s, bodies that break off, a stalled response), forged and
//! replayed manifests, damaged files, and SIGKILL at random points. The oracle for every
//! installed state is `repute lookup` on the freshly built snapshot of that sequence.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod common;
use common::{ok, run as repute, stderr as err, stdout as out};

/// Deterministic 64-hex digests: `n` of them from `seed`.
fn digests(seed: u64, n: usize) -> Vec<String> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut next = move || {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (0..n)
        .map(|_| {
            format!(
                "{:016x}{:016x}{:016x}{:016x}",
                next(),
                next(),
                next(),
                next()
            )
        })
        .collect()
}

/// Builds `out` at `sequence` from malicious and trusted digest lists.
fn build(dir: &Path, out: &str, sequence: u64, bad: &[String], good: &[String]) {
    std::fs::write(dir.join("bad.txt"), bad.join("\n") + "\n").unwrap();
    std::fs::write(dir.join("good.txt"), good.join("\n") + "\n").unwrap();
    let o = repute(
        dir,
        &[
            "build",
            "-o",
            out,
            "--created",
            "1700000000",
            "--sequence",
            &sequence.to_string(),
            "--feed",
            "hashes:malicious:bad.txt",
            "--feed",
            "hashes:trusted:good.txt",
        ],
    );
    ok(&o);
}

fn publish(dir: &Path, snap: &str, channel: &str, extra: &[&str]) {
    let mut args = vec![
        "publish",
        snap,
        "--dir",
        channel,
        "-s",
        "k.key",
        "--min-wait",
        "600",
    ];
    args.extend_from_slice(extra);
    ok(&repute(dir, &args));
}

/// `repute update --format json`, parsed.
fn update(dir: &Path, from: &str, extra: &[&str]) -> (Output, serde_json::Value) {
    let mut args = vec![
        "update", "--from", from, "-p", "k.pub", "--state", "st", "--format", "json",
    ];
    args.extend_from_slice(extra);
    let o = repute(dir, &args);
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (o, v)
}

/// The verdict lines `repute lookup` gives for `queries` from `source`.
fn answers(dir: &Path, source: &str, queries: &[String]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_repute"))
        .current_dir(dir)
        .args(["lookup", source, "--format", "jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = queries.join("\n") + "\n";
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        o.status.code() == Some(0) || o.status.code() == Some(1),
        "{}",
        err(&o)
    );
    out(&o)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn no_leftovers(state: &Path) {
    for n in names(state) {
        assert!(
            !n.starts_with(".tmp-") && !n.starts_with(".partial-") && !n.starts_with(".repute-"),
            "left behind: {n}"
        );
    }
}

/// What the fault-injecting server does with the next requests.
#[derive(Debug, Clone, PartialEq)]
enum Fault {
    None,
    /// Answer every request with this status.
    Status(u16),
    /// Break off the next body of a file larger than 64 KiB after this many bytes, once.
    TruncateOnce(usize),
    /// Wait this long before answering.
    Stall(Duration),
}

struct Served {
    fault: Fault,
    /// Request lines and Range headers seen.
    log: Vec<String>,
}

/// A static file server for a channel directory on loopback, with Range support and
/// injected faults. Stops when dropped; serves for two minutes at most.
struct Server {
    url: String,
    stop: Arc<AtomicBool>,
    shared: Arc<Mutex<Served>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(root: PathBuf) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/channel/", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Mutex::new(Served {
            fault: Fault::None,
            log: Vec::new(),
        }));
        let (stop2, shared2) = (stop.clone(), shared.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (root, shared, stop) = (root.clone(), shared2.clone(), stop2.clone());
                        // One thread per connection, so a stalled answer does not block the
                        // next request.
                        std::thread::spawn(move || serve_file(stream, &root, &shared, &stop));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Server {
            url,
            stop,
            shared,
            thread: Some(thread),
        }
    }

    fn set(&self, fault: Fault) {
        self.shared.lock().unwrap().fault = fault;
    }

    fn log(&self) -> Vec<String> {
        std::mem::take(&mut self.shared.lock().unwrap().log)
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

fn serve_file(stream: TcpStream, root: &Path, shared: &Mutex<Served>, stop: &AtomicBool) {
    stream.set_nonblocking(false).unwrap();
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut range_from = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((n, v)) = h.trim_end().split_once(':') {
            if n.eq_ignore_ascii_case("range") {
                range_from = v
                    .trim()
                    .strip_prefix("bytes=")
                    .and_then(|r| r.strip_suffix('-'))
                    .and_then(|r| r.parse::<usize>().ok());
            }
        }
    }
    let fault = {
        let mut s = shared.lock().unwrap();
        s.log.push(match range_from {
            Some(r) => format!("GET {path} range={r}"),
            None => format!("GET {path}"),
        });
        s.fault.clone()
    };
    let mut stream = stream;
    let reply = |stream: &mut TcpStream, status: &str, headers: &str, body: &[u8]| {
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
            body.len()
        );
        let _ = stream.write_all(body);
    };
    match fault {
        Fault::Status(code) => return reply(&mut stream, &format!("{code} Fault"), "", b"{}"),
        Fault::Stall(d) => {
            let until = Instant::now() + d;
            while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        _ => {}
    }
    let Some(name) = path.strip_prefix("/channel/") else {
        return reply(&mut stream, "404 Not Found", "", b"no");
    };
    let Ok(bytes) = std::fs::read(root.join(name)) else {
        return reply(&mut stream, "404 Not Found", "", b"no");
    };
    let (status, body, headers) = match range_from {
        Some(from) if from < bytes.len() => (
            "206 Partial Content",
            &bytes[from..],
            format!(
                "Content-Range: bytes {from}-{}/{}\r\n",
                bytes.len() - 1,
                bytes.len()
            ),
        ),
        _ => ("200 OK", &bytes[..], String::new()),
    };
    if let Fault::TruncateOnce(n) = fault {
        if body.len() > 64 << 10 {
            shared.lock().unwrap().fault = Fault::None;
            // Promise the whole body, send a part, hang up.
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
                body.len()
            );
            let _ = stream.write_all(&body[..n.min(body.len())]);
            return;
        }
    }
    reply(&mut stream, status, &headers, body);
}

/// Signs `manifest` (JSON text) as the channel's manifest with the test key.
fn sign_manifest(dir: &Path, channel: &Path, json: &str, sequence: u64) {
    let secret = repute::sign::SecretKey::from_file(&dir.join("k.key")).unwrap();
    let sig = repute::sign::sign(
        &secret,
        json.as_bytes(),
        &repute::channel::manifest_comment(sequence),
    )
    .unwrap();
    std::fs::write(channel.join("manifest.json"), json).unwrap();
    std::fs::write(channel.join("manifest.json.minisig"), sig).unwrap();
}

/// `--public-key` on lookup and status: a base and two deltas, each signed, are accepted
/// with the publisher's key and refused with another; a snapshot file needs its .minisig.
fn trusted_lookups(p: &Path, listed: &str) {
    // Exit 1: a listed digest was found (malicious).
    let o = repute(p, &["lookup", "st", "--public-key", "k.pub", listed]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    ok(&repute(p, &["status", "st", "--public-key", "k.pub"]));
    ok(&repute(
        p,
        &["keygen", "-p", "other.pub", "-s", "other.key"],
    ));
    for args in [
        &["lookup", "st", "--public-key", "other.pub", listed][..],
        &["status", "st", "--public-key", "other.pub"],
        &["scan", "st", "--public-key", "other.pub", "k.pub"],
    ] {
        let o = repute(p, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(err(&o).contains("signature"), "{args:?}: {}", err(&o));
    }
    // A snapshot file: refused without its signature, accepted once signed.
    let o = repute(p, &["lookup", "s3.snap", "--public-key", "k.pub", listed]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("s3.snap.minisig"), "{}", err(&o));
    ok(&repute(p, &["sign", "s3.snap", "-s", "k.key"]));
    let o = repute(p, &["lookup", "s3.snap", "--public-key", "k.pub", listed]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(out(&o).contains("malicious"), "{}", out(&o));
}

#[test]
fn updates_by_delta_and_merge_and_refuses_what_it_must() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    ok(&repute(p, &["keygen", "-p", "k.pub", "-s", "k.key"]));
    // Sequence 1: 6,000 bad and 6,000 good digests (a base over 64 KiB, so that bodies can
    // break off); each later sequence changes about 1%.
    let mut bad = digests(1, 6000);
    let mut good = digests(2, 6000);
    let mut all: Vec<String> = bad.iter().chain(&good).cloned().collect();
    all.extend(digests(99, 200)); // never listed
    let server = Server::start(p.join("ch"));
    let url = server.url.clone();
    let mut changed_all = all.clone();
    for seq in 1..=4u64 {
        if seq > 1 {
            // Remove 40 bad, move 20 good to bad, add 60 new bad.
            bad.drain(..40);
            let moved: Vec<String> = good.drain(..20).collect();
            bad.extend(moved);
            let new = digests(100 + seq, 60);
            changed_all.extend(new.iter().cloned());
            bad.extend(new);
        }
        build(p, &format!("s{seq}.snap"), seq, &bad, &good);
        publish(p, &format!("s{seq}.snap"), "ch", &["--keep", "2"]);
        let (o, v) = update(p, &url, &["--force", "--max-deltas", "2"]);
        ok(&o);
        assert_eq!(v["result"], "updated", "{v}");
        assert_eq!(v["sequence"], seq);
        let method = v["method"].as_str().unwrap().to_string();
        let expected = match seq {
            1 => "base",
            2 | 3 => "delta",
            _ => "merge",
        };
        assert_eq!(method, expected, "sequence {seq}: {v}");
        if seq > 1 {
            // A delta is about the size of the change, not of the base.
            let base = std::fs::metadata(p.join(format!("s{seq}.snap")))
                .unwrap()
                .len();
            assert!(
                v["downloaded"].as_u64().unwrap() < base / 5,
                "{v}, base {base}"
            );
        }
        // The oracle: the fresh build of this sequence answers the same for every key.
        assert_eq!(
            answers(p, "st", &changed_all),
            answers(p, &format!("s{seq}.snap"), &changed_all),
            "sequence {seq}"
        );
        no_leftovers(&p.join("st"));
        if seq == 3 {
            trusted_lookups(p, &bad[0]);
        }
    }
    // After the merge the installed base is the publisher's sequence-4 base, byte for byte.
    let current: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.join("st/current.json")).unwrap()).unwrap();
    assert_eq!(current["deltas"].as_array().unwrap().len(), 0);
    let base = current["base"].as_str().unwrap();
    assert_eq!(
        std::fs::read(p.join("st").join(base)).unwrap(),
        std::fs::read(p.join("s4.snap")).unwrap()
    );
    // The publisher's signatures are kept beside the files, and Debian's minisign agrees.
    let o = Command::new("minisign")
        .current_dir(p.join("st"))
        .args(["-Vm", base, "-p", "../k.pub"])
        .output()
        .expect("minisign is not installed: apt-get install minisign (.ci/run does)");
    assert!(o.status.success(), "{}", err(&o));

    // Without --force the channel's minimum wait (600 s) holds.
    let (o, v) = update(p, &url, &[]);
    ok(&o);
    assert_eq!(v["result"], "waiting", "{v}");
    server.log();
    let (o, v) = update(p, &url, &["--force"]);
    ok(&o);
    assert_eq!(v["result"], "current", "{v}");
    assert_eq!(server.log().len(), 2, "only the manifest and its signature");

    let installed = std::fs::read(p.join("st/current.json")).unwrap();
    let untouched = |why: &str| {
        assert_eq!(
            std::fs::read(p.join("st/current.json")).unwrap(),
            installed,
            "{why}"
        );
        no_leftovers(&p.join("st"));
    };
    let manifest = std::fs::read_to_string(p.join("ch/manifest.json")).unwrap();
    let signature = std::fs::read_to_string(p.join("ch/manifest.json.minisig")).unwrap();

    // One changed byte of the manifest: refused.
    std::fs::write(
        p.join("ch/manifest.json"),
        manifest.replacen("600", "601", 1),
    )
    .unwrap();
    let (o, _) = update(p, &url, &["--force"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(err(&o).contains("signature"), "{}", err(&o));
    untouched("forged manifest");
    std::fs::write(p.join("ch/manifest.json"), &manifest).unwrap();

    // A replayed older manifest (validly signed, lower sequence): a rollback.
    let mut old: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let s3 = std::fs::read(p.join("s3.snap")).unwrap();
    let s3_id = repute::Snapshot::open(&s3[..]).unwrap().identity();
    old["sequence"] = 3.into();
    old["base"] = serde_json::json!({"path": format!("{s3_id}.snap"), "size": s3.len(), "sha256": s3_id, "sequence": 3});
    old["deltas"] = serde_json::json!([]);
    sign_manifest(p, &p.join("ch"), &old.to_string(), 3);
    let (o, _) = update(p, &url, &["--force"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("rollback"), "{}", err(&o));
    untouched("rollback");

    // A frozen channel: a valid manifest past its expiry.
    let mut frozen: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    frozen["sequence"] = 5.into();
    frozen["base"]["sequence"] = 5.into();
    frozen["expires"] = 1_700_000_000.into();
    frozen["deltas"] = serde_json::json!([]);
    sign_manifest(p, &p.join("ch"), &frozen.to_string(), 5);
    let (o, _) = update(p, &url, &["--force"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("expired"), "{}", err(&o));
    untouched("frozen");
    std::fs::write(p.join("ch/manifest.json"), &manifest).unwrap();
    std::fs::write(p.join("ch/manifest.json.minisig"), &signature).unwrap();

    // A server that answers 500: a clear error, a back-off the next run obeys.
    server.set(Fault::Status(500));
    let (o, v) = update(p, &url, &["--force"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("HTTP 500"), "{}", err(&o));
    assert_eq!(v["result"], "failed");
    untouched("500");
    let backoff: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.join("st/backoff.json")).unwrap()).unwrap();
    // Forged, rollback and frozen were failures too: this is the fourth in a row, so the
    // back-off is 2^3 x 15 min x (1 + rand), 2 to 4 hours.
    assert_eq!(backoff["failures"], 4);
    let wait = backoff["not_before"].as_i64().unwrap() - backoff["last_attempt"].as_i64().unwrap();
    assert!(
        (7200..14400).contains(&wait),
        "fourth back-off is 2-4 h: {wait}"
    );
    let (o, v) = update(p, &url, &[]);
    ok(&o);
    assert_eq!(v["result"], "waiting");

    // A stalled server: the timeout ends the run with an error, not a hang.
    server.set(Fault::Stall(Duration::from_secs(20)));
    let started = Instant::now();
    let (o, _) = update(p, &url, &["--force", "--timeout", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the timeout held"
    );
    untouched("stall");
    server.set(Fault::None);
}

#[test]
fn fresh_state_resumes_a_broken_download_and_falls_back_from_a_bad_delta() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    ok(&repute(p, &["keygen", "-p", "k.pub", "-s", "k.key"]));
    let bad = digests(7, 8000);
    let good = digests(8, 100);
    build(p, "s1.snap", 1, &bad, &good);
    publish(p, "s1.snap", "ch", &[]);
    let server = Server::start(p.join("ch"));

    // The body breaks off after 50,000 bytes: the next request asks for the rest.
    server.set(Fault::TruncateOnce(50_000));
    let (o, v) = update(p, &server.url, &[]);
    ok(&o);
    assert_eq!(v["result"], "updated");
    let log = server.log();
    assert!(log.iter().any(|l| l.ends_with("range=50000")), "{log:?}");
    let all: Vec<String> = bad.iter().chain(&good).cloned().collect();
    assert_eq!(answers(p, "st", &all), answers(p, "s1.snap", &all));
    no_leftovers(&p.join("st"));

    // Sequence 2 with a damaged delta: the update falls back to the full snapshot.
    let mut bad2 = bad.clone();
    bad2.extend(digests(9, 50));
    build(p, "s2.snap", 2, &bad2, &good);
    publish(p, "s2.snap", "ch", &[]);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.join("ch/manifest.json")).unwrap()).unwrap();
    let delta = p.join("ch").join(m["deltas"][0]["path"].as_str().unwrap());
    let mut bytes = std::fs::read(&delta).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&delta, bytes).unwrap();
    let (o, v) = update(p, &server.url, &["--force"]);
    ok(&o);
    assert_eq!(v["method"], "base", "{v}");
    let all2: Vec<String> = bad2.iter().chain(&good).cloned().collect();
    assert_eq!(answers(p, "st", &all2), answers(p, "s2.snap", &all2));
    no_leftovers(&p.join("st"));

    // A directory works as a channel too.
    build(p, "s3.snap", 3, &bad, &good);
    publish(p, "s3.snap", "ch", &[]);
    let (o, v) = update(p, "ch", &["--force"]);
    ok(&o);
    assert_eq!(
        (v["result"].as_str(), v["sequence"].as_u64()),
        (Some("updated"), Some(3))
    );
    assert_eq!(v["method"], "delta", "{v}");
}

#[test]
fn sigkill_at_random_points_leaves_a_complete_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    ok(&repute(p, &["keygen", "-p", "k.pub", "-s", "k.key"]));
    let mut bad = digests(11, 40_000);
    let good = digests(12, 1000);
    let mut sequences = Vec::new();
    for seq in 1..=6u64 {
        if seq > 1 {
            bad.drain(..200);
            bad.extend(digests(200 + seq, 300));
        }
        build(p, &format!("s{seq}.snap"), seq, &bad, &good);
        sequences.push(std::fs::read(p.join(format!("s{seq}.snap"))).unwrap());
    }
    let probe: Vec<String> = bad
        .iter()
        .take(50)
        .chain(good.iter().take(50))
        .cloned()
        .collect();
    // Time one undisturbed run to spread the kills over it.
    publish(p, "s1.snap", "ch", &[]);
    let started = Instant::now();
    let (o, _) = update(p, "ch", &[]);
    ok(&o);
    let span = started.elapsed().as_micros().max(2000) as u64;
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut kills = 0;
    for seq in 2..=6u64 {
        publish(p, &format!("s{seq}.snap"), "ch", &["--keep", "1"]);
        for _ in 0..4 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let mut child = Command::new(env!("CARGO_BIN_EXE_repute"))
                .current_dir(p)
                .args([
                    "update",
                    "--from",
                    "ch",
                    "-p",
                    "k.pub",
                    "--state",
                    "st",
                    "--force",
                    "--max-deltas",
                    "1",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_micros(rng % (span * 2)));
            let _ = child.kill();
            let _ = child.wait();
            kills += 1;
            // Whatever the moment, the state directory holds a complete snapshot of one of
            // the published sequences.
            let current: serde_json::Value =
                serde_json::from_slice(&std::fs::read(p.join("st/current.json")).unwrap()).unwrap();
            let installed = current["sequence"].as_u64().unwrap();
            assert!((1..=seq).contains(&installed));
            assert_eq!(
                answers(p, "st", &probe),
                answers(p, &format!("s{installed}.snap"), &probe)
            );
        }
        // The next run finishes the job and cleans up what the killed ones left.
        let (o, v) = update(p, "ch", &["--force", "--max-deltas", "1"]);
        ok(&o);
        assert_eq!(v["sequence"], seq, "{v}");
        no_leftovers(&p.join("st"));
        let current: serde_json::Value =
            serde_json::from_slice(&std::fs::read(p.join("st/current.json")).unwrap()).unwrap();
        if current["deltas"].as_array().unwrap().is_empty() {
            let base = current["base"].as_str().unwrap();
            assert_eq!(
                std::fs::read(p.join("st").join(base)).unwrap(),
                sequences[seq as usize - 1]
            );
        }
    }
    assert_eq!(kills, 20);
}

/// A write that fails part-way: the update runs under a file-size limit smaller than the
/// merged snapshot it must write, the way a disk that fills up mid-write fails. (A real full
/// file system needs a mount the tests may not make; `EFBIG` takes the same error paths as
/// `ENOSPC`: a short or failed write, then the fsync and rename never happen.)
#[cfg(target_os = "linux")]
#[test]
fn a_write_that_fails_part_way_leaves_the_installed_snapshot() {
    use std::os::unix::process::CommandExt;

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    ok(&repute(p, &["keygen", "-p", "k.pub", "-s", "k.key"]));
    let bad = digests(21, 20_000);
    let good = digests(22, 500);
    build(p, "s1.snap", 1, &bad, &good);
    publish(p, "s1.snap", "ch", &[]);
    let (o, _) = update(p, "ch", &[]);
    ok(&o);
    let mut bad2 = bad.clone();
    bad2.truncate(19_000);
    bad2.extend(digests(23, 1000));
    build(p, "s2.snap", 2, &bad2, &good);
    publish(p, "s2.snap", "ch", &[]);
    let before = std::fs::read(p.join("st/current.json")).unwrap();
    let size = std::fs::metadata(p.join("s2.snap")).unwrap().len();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.join("ch/manifest.json")).unwrap()).unwrap();
    let delta_size = m["deltas"][0]["size"].as_u64().unwrap();
    // Room for the delta's download, not for the merged snapshot.
    let limit = delta_size + (size - delta_size) / 2;
    assert!(
        delta_size < limit && limit < size,
        "delta {delta_size}, base {size}"
    );

    // --max-deltas 0: the delta is merged into a new base of about `size` bytes.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_repute"));
    cmd.current_dir(p).args([
        "update",
        "--from",
        "ch",
        "-p",
        "k.pub",
        "--state",
        "st",
        "--force",
        "--max-deltas",
        "0",
    ]);
    #[allow(unsafe_code)]
    // SAFETY: between fork and exec the child only calls async-signal-safe functions
    // (signal, setrlimit) on values it owns; nothing allocates or locks.
    unsafe {
        cmd.pre_exec(move || {
            // A write past the limit then fails with EFBIG instead of killing the process.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: limit as libc::rlim_t,
                rlim_max: limit as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "stdout {}\nstderr {}",
        out(&o),
        err(&o)
    );
    assert!(
        err(&o).to_lowercase().contains("too large") || err(&o).contains("EFBIG"),
        "the error names the failed write: {}",
        err(&o)
    );
    // Nothing changed: the same current.json, the same answers, nothing half-written.
    assert_eq!(std::fs::read(p.join("st/current.json")).unwrap(), before);
    let all: Vec<String> = bad.iter().chain(&good).cloned().collect();
    assert_eq!(answers(p, "st", &all), answers(p, "s1.snap", &all));
    // The failed merge fell back to downloading the base, which failed too; its partial
    // download is kept (at most the limit's worth) so the next run resumes it with a Range
    // request. Nothing else is left.
    let partial = format!(".partial-{}", m["base"]["path"].as_str().unwrap());
    for n in names(&p.join("st")) {
        if n == partial {
            assert!(std::fs::metadata(p.join("st").join(&n)).unwrap().len() <= limit);
        } else {
            assert!(
                !n.starts_with(".tmp-")
                    && !n.starts_with(".partial-")
                    && !n.starts_with(".repute-"),
                "left behind: {n}"
            );
        }
    }

    // With room again, the next run completes.
    let (o, v) = update(p, "ch", &["--force", "--max-deltas", "0"]);
    ok(&o);
    assert_eq!(v["sequence"], 2, "{v}");
    let all2: Vec<String> = bad2.iter().chain(&good).cloned().collect();
    assert_eq!(answers(p, "st", &all2), answers(p, "s2.snap", &all2));
    no_leftovers(&p.join("st"));
}
