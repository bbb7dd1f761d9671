//! `repute serve` driven by real clients over loopback: pyhashlookup (CIRCL's hashlookup
//! client) and pysafebrowsing, compared with `repute lookup` on the same snapshot; and
//! `repute apikey`. The Python packages come from PyPI (`.ci/run` installs them); without
//! them the test is skipped outside CI.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const BAD_MD5: &str = "44d88612fea8a8f36de82e1278abb02f";
const BAD_SHA1: &str = "3395856ce81f2b7382dee72602f798b642f14140";
const BAD_SHA256: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
const UNKNOWN_MD5: &str = "0123456789abcdef0123456789abcdef";
const UNKNOWN_SHA1: &str = "0123456789abcdef0123456789abcdef01234567";
const UNKNOWN_SHA256: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn repute() -> Command {
    Command::new(env!("CARGO_BIN_EXE_repute"))
}

fn python_clients() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import pyhashlookup, pysafebrowsing"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "pyhashlookup and pysafebrowsing must be installed in CI (see .ci/run)"
        );
        eprintln!("skipping: python3 with pyhashlookup and pysafebrowsing not found");
    }
    ok
}

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &Path, args: &[&str]) -> Server {
        let mut child = repute()
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
        // Keep draining stderr so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Server { child, url }
    }

    /// SIGTERM, then the exit status must be success (graceful shutdown).
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "serve exited with {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CLIENT: &str = r#"
import json, sys
from pyhashlookup import Hashlookup
from pysafebrowsing import SafeBrowsing
url, q = sys.argv[1], json.loads(sys.argv[2])
h = Hashlookup(url)
out = {
    "md5": [h.md5_lookup(x) for x in q["md5"]],
    "sha1": [h.sha1_lookup(x) for x in q["sha1"]],
    "sha256": [h.sha256_lookup(x) for x in q["sha256"]],
    "lookup": [h.lookup(x) for x in q["md5"]],
    "bulk_md5": h.md5_bulk_lookup(q["md5"]),
    "bulk_sha1": h.lookup(q["sha1"]),
    "info": h.info(),
    "top": h.top(),
    "sb": SafeBrowsing("unused", api_url=url + "/v4/threatMatches:find").lookup_urls(q["urls"]),
}
print(json.dumps(out))
"#;

#[test]
fn pyhashlookup_and_pysafebrowsing_agree_with_repute_lookup() {
    if !python_clients() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("bad.txt"),
        format!("{BAD_MD5}\n{BAD_SHA1} eicar\n{BAD_SHA256}\n"),
    )
    .unwrap();
    std::fs::write(p.join("domains.txt"), "malware.example.com\n").unwrap();
    std::fs::write(p.join("urls.txt"), "http://evil.example.net/payload.exe\n").unwrap();
    let out = repute()
        .args([
            "build",
            "-o",
            "s.snap",
            "--feed",
            "hashes::bad.txt",
            "--feed",
            "domains::domains.txt",
        ])
        .args(["--feed", "urls::urls.txt"])
        .current_dir(p)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let server = Server::start(p, &["s.snap"]);
    let urls = [
        "http://evil.example.net/payload.exe",
        "HTTP://WWW.Malware.Example.COM/a/../index.html",
        "http://example.org/",
    ];
    let queries = serde_json::json!({
        "md5": [BAD_MD5.to_uppercase(), UNKNOWN_MD5],
        "sha1": [BAD_SHA1, UNKNOWN_SHA1],
        "sha256": [BAD_SHA256, UNKNOWN_SHA256],
        "urls": urls,
    });
    let client = Command::new("python3")
        .args(["-c", CLIENT, &server.url, &queries.to_string()])
        .output()
        .unwrap();
    assert!(
        client.status.success(),
        "{}",
        String::from_utf8_lossy(&client.stderr)
    );
    let got: Value = serde_json::from_slice(&client.stdout).unwrap();

    // The oracle: `repute lookup` on the same snapshot.
    let all = [
        BAD_MD5,
        UNKNOWN_MD5,
        BAD_SHA1,
        UNKNOWN_SHA1,
        BAD_SHA256,
        UNKNOWN_SHA256,
    ];
    let out = repute()
        .args(["lookup", "s.snap", "--format", "jsonl"])
        .args(all)
        .args(urls)
        .current_dir(p)
        .output()
        .unwrap();
    let oracle: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(oracle.len(), 9);
    let answers = [
        (&got["md5"][0], "MD5", BAD_MD5),
        (&got["md5"][1], "MD5", UNKNOWN_MD5),
        (&got["sha1"][0], "SHA-1", BAD_SHA1),
        (&got["sha1"][1], "SHA-1", UNKNOWN_SHA1),
        (&got["sha256"][0], "SHA-256", BAD_SHA256),
        (&got["sha256"][1], "SHA-256", UNKNOWN_SHA256),
    ];
    for ((answer, field, hex), want) in answers.iter().zip(&oracle) {
        match want["verdict"].as_str().unwrap() {
            "unknown" => {
                assert_eq!(
                    answer["message"],
                    format!("Non existing {field}"),
                    "{answer}"
                );
                assert_eq!(answer["query"], *hex);
            }
            verdict => {
                assert_eq!(answer[*field], hex.to_uppercase(), "{answer}");
                assert_eq!(answer["repute:verdict"], verdict);
                assert_eq!(answer["KnownMalicious"], want["source"]);
                assert_eq!(answer["hashlookup:trust"], 30);
            }
        }
    }
    assert_eq!(got["lookup"][0], got["md5"][0]);
    assert_eq!(got["bulk_md5"].as_array().unwrap().len(), 1);
    assert_eq!(got["bulk_md5"][0]["MD5"], BAD_MD5.to_uppercase());
    assert_eq!(got["bulk_sha1"].as_array().unwrap().len(), 1);
    assert_eq!(got["info"]["stat:hashlookup_total_keys"], 5);
    assert!(got["info"]["hashlookup-version"].is_string());
    assert_eq!(got["top"], serde_json::json!({"nx": [], "exist": []}));
    for (url, want) in urls.iter().zip(&oracle[6..]) {
        let malicious = want["verdict"] == "malicious";
        assert_eq!(
            got["sb"][url]["malicious"], malicious,
            "{url}: {}",
            got["sb"]
        );
    }
    assert_eq!(got["sb"][urls[0]]["threats"][0], "MALWARE");
    server.stop();
}

#[test]
fn apikey_prints_a_key_and_its_line_and_serve_enforces_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let out = repute()
        .args(["apikey", "branch-1", "--rate", "100/s"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let key = lines[0];
    assert!(key.starts_with("rk_"));
    let fields: Vec<&str> = lines[1].split(' ').collect();
    assert_eq!(fields[0], "branch-1");
    assert_eq!(fields[2], "100/s");
    // The file holds the key's SHA-256, checked with coreutils.
    let mut sha = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(sha.stdin.as_mut().unwrap(), key.as_bytes()).unwrap();
    let digest = String::from_utf8(sha.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(fields[1], digest.split(' ').next().unwrap());
    assert!(!lines[1].contains(key));
    assert!(!repute()
        .args(["apikey", "bad name"])
        .status()
        .unwrap()
        .success());
    assert!(!repute()
        .args(["apikey", "x", "--rate", "3/week"])
        .status()
        .unwrap()
        .success());

    std::fs::write(p.join("bad.txt"), format!("{BAD_MD5}\n")).unwrap();
    assert!(repute()
        .args(["build", "-o", "s.snap", "--feed", "hashes::bad.txt"])
        .current_dir(p)
        .status()
        .unwrap()
        .success());
    std::fs::write(p.join("keys"), format!("{}\n", lines[1])).unwrap();
    let server = Server::start(p, &["s.snap", "--keys", "keys"]);
    if python_clients() {
        let check = format!(
            "import requests,sys\nu=sys.argv[1]+'/lookup/md5/{BAD_MD5}'\nprint(requests.get(u).status_code, requests.get(u, headers={{'Authorization': 'Bearer {key}'}}).status_code)"
        );
        let out = Command::new("python3")
            .args(["-c", &check, &server.url])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "401 200");
    }
    server.stop();
}
