//! The update channel through `repute serve`: the publisher's channel mirrored by one
//! service at `/v1/updates/`, `repute update` run against that mirror (a base, then a
//! delta), and a second service answering from the state directory it updates, picking up
//! each new snapshot by itself. The oracle is `repute lookup` on the built snapshots.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;
use common::{ok, run as repute};

const BAD_MD5: &str = "44d88612fea8a8f36de82e1278abb02f";
const NEW_MD5: &str = "fedcba9876543210fedcba9876543210";

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_repute"))
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .current_dir(dir)
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
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds `out` from `md5s` and 2,000 filler keys (so a one-key delta is smaller than the
/// base, and the channel offers it).
fn build(dir: &Path, out: &str, sequence: u64, md5s: &[&str]) {
    let mut lines: Vec<String> = md5s.iter().map(|s| (*s).to_string()).collect();
    lines.extend((1..=2_000u128).map(|i| format!("{:032x}", i * 0x9E37_79B9_7F4A_7C15)));
    std::fs::write(dir.join("bad.txt"), lines.join("\n") + "\n").unwrap();
    ok(&repute(
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
        ],
    ));
}

/// GET over a plain socket (no client library in this crate's tests): status and body.
fn get(url: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = url.strip_prefix("http://").unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

fn update(dir: &Path, from: &str) -> serde_json::Value {
    let o = repute(
        dir,
        &[
            "update", "--from", from, "-p", "k.pub", "--state", "st", "--format", "json", "--force",
        ],
    );
    ok(&o);
    serde_json::from_slice(&o.stdout).unwrap()
}

fn sequence_of(url: &str) -> u64 {
    let (_, body) = get(url, "/status");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["snapshot"]["sequence"].as_u64().unwrap_or(0)
}

#[test]
fn agents_update_from_the_mirror_and_a_service_follows_its_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    ok(&repute(p, &["keygen", "-p", "k.pub", "-s", "k.key"]));
    build(p, "v1.snap", 1, &[BAD_MD5]);
    ok(&repute(
        p,
        &["publish", "v1.snap", "--dir", "channel", "-s", "k.key"],
    ));
    // The proxy mirrors the publisher's channel directory.
    let mirror = Server::start(p, &["--updates", "channel"]);
    let from = format!("{}/v1/updates/", mirror.url);
    let first = update(p, &from);
    assert_eq!(first["sequence"], 1, "{first}");
    // A service answers from the state directory the agent updated.
    let local = Server::start(p, &["st", "--watch-interval-ms", "20"]);
    assert_eq!(get(&local.url, &format!("/lookup/md5/{BAD_MD5}")).0, 200);
    assert_eq!(get(&local.url, &format!("/lookup/md5/{NEW_MD5}")).0, 404);
    // The publisher publishes sequence 2 (with a delta); the agent updates through the
    // mirror again, and the running service picks it up without a signal.
    build(p, "v2.snap", 2, &[BAD_MD5, NEW_MD5]);
    ok(&repute(
        p,
        &["publish", "v2.snap", "--dir", "channel", "-s", "k.key"],
    ));
    let second = update(p, &from);
    assert_eq!(second["sequence"], 2, "{second}");
    assert_eq!(second["method"], "delta", "{second}");
    let mut seen = 0;
    for _ in 0..1_000 {
        seen = sequence_of(&local.url);
        if seen == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(seen, 2, "the service did not follow the state directory");
    let (st, body) = get(&local.url, &format!("/lookup/md5/{NEW_MD5}"));
    assert_eq!(st, 200, "{body}");
    // The same answer as `repute lookup` on the built snapshot.
    let o = repute(p, &["lookup", "v2.snap", NEW_MD5, "--format", "jsonl"]);
    let oracle: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let served: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(oracle["verdict"], served["repute:verdict"]);
    assert_eq!(oracle["source"], served["repute:feed"]);
    // The mirror refuses names outside the channel.
    assert_eq!(get(&mirror.url, "/v1/updates/k.key").0, 404);
}
