//! The CLI contract, driving the real `repute` binary in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const EICAR_MD5: &str = "44d88612fea8a8f36de82e1278abb02f";
const EICAR_SHA1: &str = "3395856ce81f2b7382dee72602f798b642f14140";
const EICAR_SHA256: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";

fn repute() -> Command {
    Command::new(env!("CARGO_BIN_EXE_repute"))
}

fn run(dir: &Path, args: &[&str]) -> Output {
    repute()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run repute")
}

fn run_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = repute()
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
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes one small feed of every format and returns the directory.
fn feeds() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("bad.txt"),
        format!(
            "# malware\n{EICAR_MD5}\n{EICAR_SHA1} eicar\n\n{}\nnot-hex\n",
            EICAR_SHA256.to_uppercase()
        ),
    )
    .unwrap();
    std::fs::write(
        p.join("good.md5"),
        "d41d8cd98f00b204e9800998ecf8427e  empty.txt\n",
    )
    .unwrap();
    std::fs::write(
        p.join("good.sha1"),
        "da39a3ee5e6b4b0d3255bfef95601890afd80709 *empty.txt\n",
    )
    .unwrap();
    std::fs::write(
        p.join("good.sha256"),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  empty.txt\r\n",
    )
    .unwrap();
    std::fs::write(p.join("domains.txt"), "malware.example.com\n*.phish.test\n").unwrap();
    std::fs::write(p.join("urls.txt"), "http://evil.example.net/payload.exe\n").unwrap();
    std::fs::write(
        p.join("hosts"),
        "127.0.0.1 localhost\n0.0.0.0 ads.tracker.test # ads\n::1 ip6-localhost\n",
    )
    .unwrap();
    dir
}

const ALL_FEEDS: [&str; 7] = [
    "hashes::bad.txt",
    "md5sum::good.md5",
    "sha1sum::good.sha1",
    "sha256sum::good.sha256",
    "domains:suspicious:domains.txt",
    "urls::urls.txt",
    "hosts::hosts",
];

fn build_all(dir: &Path, out: &str) -> Output {
    let mut args = vec!["build", "-o", out, "--created", "1700000000"];
    for f in ALL_FEEDS {
        args.push("--feed");
        args.push(f);
    }
    run(dir, &args)
}

#[test]
fn build_from_every_format_and_look_up() {
    let dir = feeds();
    let p = dir.path();
    let o = build_all(p, "all.snap");
    assert!(o.status.success(), "{}", stderr(&o));
    let report = stderr(&o);
    assert!(
        report.contains("bad.txt:6: not-hex"),
        "malformed line reported with its number: {report}"
    );

    let cases = [
        (EICAR_MD5, "malicious", "md5"),
        (EICAR_SHA1, "malicious", "sha1"),
        (EICAR_SHA256, "malicious", "sha256"),
        ("D41D8CD98F00B204E9800998ECF8427E", "trusted", "md5"),
        (
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "trusted",
            "sha1",
        ),
        (
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "trusted",
            "sha256",
        ),
        ("http://a.b.malware.example.com/x?y", "suspicious", "url"),
        ("login.phish.test", "suspicious", "domain"),
        ("http://evil.example.net/payload.exe", "malicious", "url"),
        ("http://evil.example.net/other.exe", "unknown", "url"),
        ("ads.tracker.test", "malicious", "domain"),
        ("localhost", "unknown", "domain"),
        ("example.org", "unknown", "domain"),
    ];
    for (q, verdict, kind) in cases {
        let o = run(p, &["lookup", "all.snap", "--format", "jsonl", q]);
        let line: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(line["query"], q);
        assert_eq!(line["verdict"], verdict, "{q}");
        assert_eq!(line["type"], kind, "{q}");
        let expected_code = if verdict == "malicious" { 1 } else { 0 };
        assert_eq!(o.status.code(), Some(expected_code), "{q}");
        if verdict != "unknown" {
            assert!(line["matched"].is_string());
            assert!(line["source"].is_string());
        }
    }
}

#[test]
fn lookup_exit_codes_stdin_and_errors() {
    let dir = feeds();
    let p = dir.path();
    assert!(build_all(p, "all.snap").status.success());

    let o = run(p, &["lookup", "all.snap", "example.org"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("example.org\tunknown\tdomain"));

    // Queries from standard input; an invalid one gets its own line and does not stop the rest.
    let input = format!("{EICAR_MD5}\nhttp://\n\nexample.org\n");
    let o = run_stdin(p, &["lookup", "all.snap", "--format", "jsonl"], &input);
    assert_eq!(
        o.status.code(),
        Some(2),
        "an error wins over a malicious find"
    );
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["verdict"], "malicious");
    assert!(lines[1]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no host"));
    assert_eq!(lines[2]["verdict"], "unknown");

    let o = run(p, &["lookup", "missing.snap", EICAR_MD5]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing.snap"), "{}", stderr(&o));
}

#[test]
fn inspect_and_verify() {
    let dir = feeds();
    let p = dir.path();
    assert!(build_all(p, "all.snap").status.success());
    let o = run(p, &["inspect", "all.snap", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["metadata"]["created"], 1_700_000_000);
    assert_eq!(v["metadata"]["keys"]["md5"], 2);
    assert_eq!(v["metadata"]["keys"]["sha256"], 2);
    assert_eq!(v["metadata"]["keys"]["domain"], 3);
    assert_eq!(v["metadata"]["keys"]["url"], 1);
    assert_eq!(v["metadata"]["feeds"].as_array().unwrap().len(), 7);
    let o = run(p, &["inspect", "all.snap"]);
    assert!(stdout(&o).contains("sha256 table"));

    let o = run(p, &["verify", "all.snap"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // Damage one byte in the middle of the file: verify names what is damaged.
    let mut bytes = std::fs::read(p.join("all.snap")).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(p.join("damaged.snap"), &bytes).unwrap();
    let o = run(p, &["verify", "damaged.snap"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("checksum mismatch in"),
        "{}",
        stderr(&o)
    );

    // Truncated.
    let bytes = std::fs::read(p.join("all.snap")).unwrap();
    std::fs::write(p.join("short.snap"), &bytes[..bytes.len() - 100]).unwrap();
    let o = run(p, &["verify", "short.snap"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));
    let o = run(p, &["lookup", "short.snap", EICAR_MD5]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn builds_are_deterministic_and_order_independent() {
    let dir = feeds();
    let p = dir.path();
    assert!(build_all(p, "a.snap").status.success());
    let mut args = vec!["build", "-o", "b.snap", "--created", "1700000000"];
    for f in ALL_FEEDS.iter().rev() {
        args.push("--feed");
        args.push(f);
    }
    assert!(run(p, &args).status.success());
    assert_eq!(
        std::fs::read(p.join("a.snap")).unwrap(),
        std::fs::read(p.join("b.snap")).unwrap()
    );
}

#[test]
fn strict_and_failed_builds_leave_nothing_behind() {
    let dir = feeds();
    let p = dir.path();
    let o = run(
        p,
        &[
            "build",
            "-o",
            "out.snap",
            "--strict",
            "--feed",
            "hashes::bad.txt",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad.txt:6"), "{}", stderr(&o));
    assert!(!p.join("out.snap").exists());

    let o = run(
        p,
        &["build", "-o", "out.snap", "--feed", "hashes::missing.txt"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing.txt"), "{}", stderr(&o));
    assert!(!p.join("out.snap").exists());
    let leftovers: Vec<PathBuf> = std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    for bad in ["hashes:bad.txt", "nope::bad.txt", "hashes:evil:bad.txt"] {
        let o = run(p, &["build", "-o", "out.snap", "--feed", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
    }
    let o = run(p, &["build", "-o", "out.snap"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no feeds"));
}

#[test]
fn manifest_with_override_and_json_report() {
    let dir = feeds();
    let p = dir.path();
    std::fs::write(p.join("fp.txt"), format!("{EICAR_MD5}\n")).unwrap();
    std::fs::write(
        p.join("feeds.toml"),
        r#"
[[feed]]
format = "hashes"
path = "bad.txt"
category = "test-file"

[[feed]]
format = "hashes"
path = "fp.txt"
verdict = "trusted"
source = "false-positives"
override = true
"#,
    )
    .unwrap();
    let o = run(
        p,
        &[
            "build",
            "-o",
            "m.snap",
            "--manifest",
            "feeds.toml",
            "--report",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["build"]["conflicts"], 1);
    assert_eq!(report["build"]["overrides"], 1);
    assert_eq!(report["feeds"][0]["malformed"], 1);

    let o = run(
        p,
        &[
            "lookup", "m.snap", "--format", "jsonl", EICAR_MD5, EICAR_SHA1,
        ],
    );
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["verdict"], "trusted");
    assert_eq!(lines[0]["source"], "false-positives");
    assert_eq!(lines[1]["verdict"], "malicious");
    assert_eq!(lines[1]["category"], "test-file");

    std::fs::write(p.join("bad.toml"), "[[feed]]\nformat = \"hashes\"\n").unwrap();
    let o = run(p, &["build", "-o", "x.snap", "--manifest", "bad.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad.toml"), "{}", stderr(&o));
}

/// Digests computed by coreutils over real files agree with the snapshot.
#[test]
fn coreutils_digests_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let mut names = Vec::new();
    for i in 0..20 {
        let name = format!("file {i}.bin");
        std::fs::write(p.join(&name), vec![i as u8; i * 37]).unwrap();
        names.push(name);
    }
    for tool in ["md5sum", "sha1sum", "sha256sum"] {
        let out = Command::new(tool)
            .current_dir(p)
            .args(&names)
            .output()
            .unwrap();
        assert!(out.status.success());
        std::fs::write(p.join(format!("list.{tool}")), &out.stdout).unwrap();
    }
    let o = run(
        p,
        &[
            "build",
            "-o",
            "t.snap",
            "--feed",
            "md5sum::list.md5sum",
            "--feed",
            "sha1sum::list.sha1sum",
            "--feed",
            "sha256sum::list.sha256sum",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let all: String = ["md5sum", "sha1sum", "sha256sum"]
        .iter()
        .map(|t| std::fs::read_to_string(p.join(format!("list.{t}"))).unwrap())
        .collect();
    let queries: String = all
        .lines()
        .map(|l| format!("{}\n", &l[..l.find(' ').unwrap()]))
        .collect();
    let o = run_stdin(p, &["lookup", "t.snap"], &queries);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 60);
    assert!(
        out.lines().all(|l| l.split('\t').nth(1) == Some("trusted")),
        "{out}"
    );
}

#[test]
fn min_records_refuses_to_publish_a_short_feed() {
    let dir = feeds();
    let p = dir.path();
    let o = run(
        p,
        &[
            "build",
            "-o",
            "m.snap",
            "--min-records",
            "4",
            "--feed",
            "hashes::bad.txt",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("fewer than the minimum of 4"),
        "{}",
        stderr(&o)
    );
    assert!(!p.join("m.snap").exists());
    let o = run(
        p,
        &[
            "build",
            "-o",
            "m.snap",
            "--min-records",
            "3",
            "--feed",
            "hashes::bad.txt",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));

    std::fs::write(p.join("empty.txt"), "").unwrap();
    std::fs::write(
        p.join("min.toml"),
        "[[feed]]\nformat = \"hashes\"\npath = \"empty.txt\"\nmin_records = 1\n",
    )
    .unwrap();
    let o = run(p, &["build", "-o", "m2.snap", "--manifest", "min.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!p.join("m2.snap").exists());

    // By default an empty feed, or one whose every line is malformed, fails the build
    // naming the feed; min_records = 0 allows it.
    std::fs::write(
        p.join("junk.txt"),
        "not a digest
nor this
",
    )
    .unwrap();
    for feed in ["hashes::empty.txt", "hashes::junk.txt"] {
        let o = run(p, &["build", "-o", "m3.snap", "--feed", feed]);
        assert_eq!(o.status.code(), Some(2), "{feed}");
        let name = feed.trim_start_matches("hashes::");
        assert!(
            stderr(&o).contains(&format!("feed {name} yielded 0 good records")),
            "{}",
            stderr(&o)
        );
        assert!(!p.join("m3.snap").exists());
    }
    let o = run(
        p,
        &[
            "build",
            "-o",
            "m3.snap",
            "--min-records",
            "0",
            "--feed",
            "hashes::empty.txt",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(
        p.join("zero.toml"),
        "[[feed]]\nformat = \"hashes\"\npath = \"empty.txt\"\nmin_records = 0\n",
    )
    .unwrap();
    let o = run(p, &["build", "-o", "m4.snap", "--manifest", "zero.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // A refused entry (a whole public suffix) counts once, as malformed.
    std::fs::write(p.join("ps.txt"), "co.uk\nok.example\n").unwrap();
    let o = run(
        p,
        &[
            "build",
            "-o",
            "m5.snap",
            "--report",
            "json",
            "--feed",
            "domains::ps.txt",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["build"]["refused"], 0, "{report}");
    assert_eq!(report["feeds"][0]["malformed"], 1, "{report}");
}

#[test]
fn a_small_memory_budget_spills_and_gives_the_same_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let mut feed = std::fs::File::create(p.join("big.txt")).unwrap();
    repute_gen::write_feed(&mut feed, repute_gen::Format::Hashes, 200_000, 3).unwrap();
    drop(feed);
    let args = |out: &'static str, memory: &'static str| {
        vec![
            "build",
            "-o",
            out,
            "--created",
            "1",
            "--memory",
            memory,
            "--report",
            "json",
            "--feed",
            "hashes::big.txt",
        ]
    };
    let o = run(p, &args("small.snap", "1M"));
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(
        report["build"]["spilled_runs"].as_u64().unwrap() >= 2,
        "{report}"
    );
    let o = run(p, &args("large.snap", "1GiB"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(p.join("small.snap")).unwrap(),
        std::fs::read(p.join("large.snap")).unwrap()
    );
    let o = run(
        p,
        &[
            "build",
            "-o",
            "x.snap",
            "--memory",
            "lots",
            "--feed",
            "hashes::big.txt",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
}

fn sample(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/feeds")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn real_feed_formats_from_the_command_line_and_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let mut args: Vec<String> = ["build", "-o", "real.snap", "--report", "json"]
        .map(String::from)
        .to_vec();
    for (format, file) in [
        ("malwarebazaar", "malwarebazaar.zip"),
        ("urlhaus", "urlhaus.csv"),
        ("urlhaus-hosts", "urlhaus-hosts.txt"),
        ("threatfox", "threatfox.csv"),
        ("clamav", "clamav.hdb"),
        ("clamav", "clamav.fp"),
        ("jsonl", "feed.jsonl"),
    ] {
        args.push("--feed".into());
        args.push(format!("{format}::{}", sample(file)));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(p, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let feeds = report["feeds"].as_array().unwrap();
    assert_eq!(feeds.len(), 7);
    assert!(
        feeds.iter().all(|f| f["keys"].as_u64().unwrap() > 0),
        "{report}"
    );

    // A generic CSV needs its columns named, which only a manifest can do. (The samples are
    // outside the manifest's directory.)
    std::fs::write(
        p.join("csv.toml"),
        format!(
            "[[feed]]\nformat = \"csv\"\npath = {:?}\n[feed.columns]\nkey = \"sha256\"\nverdict = \"verdict\"\nname = \"name\"\n\n\
             [[feed]]\nformat = \"urlhaus\"\npath = {:?}\nonline_only = true\nsource = \"urlhaus-online\"\n",
            sample("generic.csv"),
            sample("urlhaus.csv")
        ),
    )
    .unwrap();
    let o = run(
        p,
        &[
            "build",
            "-o",
            "csv.snap",
            "--manifest",
            "csv.toml",
            "--allow-outside-paths",
            "--report",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(report["feeds"][0]["keys"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["feeds"][1]["skipped"].as_u64().unwrap() > 0,
        "offline rows are skipped: {report}"
    );
    let o = run(
        p,
        &[
            "lookup",
            "csv.snap",
            "--format",
            "jsonl",
            "87d44283ae4bda78af4ca6a5f4da3714f2fbb64b9a88cede33426acb4e9e89ae",
        ],
    );
    let line: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(line["verdict"], "malicious");
    assert_eq!(line["name"], "Case-1041 dropper");

    std::fs::write(
        p.join("bad.toml"),
        "[[feed]]\nformat = \"csv\"\npath = \"x\"\n[feed.columns]\nkey = 0\ndelimiter = \"ab\"\n",
    )
    .unwrap();
    let o = run(p, &["build", "-o", "x.snap", "--manifest", "bad.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("delimiter"), "{}", stderr(&o));
}

#[test]
fn clamav_export_round_trips() {
    let dir = feeds();
    let p = dir.path();
    assert!(build_all(p, "all.snap").status.success());
    let o = run(p, &["export", "--clamav", "all.snap", "out.hdb"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let hdb = std::fs::read_to_string(p.join("out.hdb")).unwrap();
    assert_eq!(hdb.lines().count(), 1, "only the malicious MD5: {hdb}");
    assert!(hdb.starts_with(&format!("{EICAR_MD5}:*:")), "{hdb}");
    // The export loads back as a ClamAV feed with the same verdict.
    let o = run(
        p,
        &["build", "-o", "back.snap", "--feed", "clamav::out.hdb"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(p, &["lookup", "back.snap", EICAR_MD5]);
    assert_eq!(o.status.code(), Some(1));
    let o = run(p, &["export", "--clamav", "all.snap", "out.hsb"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("fingerprints"), "{}", stderr(&o));

    // Trusted entries go to ClamAV's allowlist, never to a signature file: the .fp loads
    // back as trusted (an override), and an .hdb of trusted entries is refused.
    let o = run(
        p,
        &[
            "export",
            "--clamav",
            "--verdict",
            "trusted",
            "all.snap",
            "out.hdb",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("name the output .fp"), "{}", stderr(&o));
    let o = run(
        p,
        &[
            "export",
            "--clamav",
            "--verdict",
            "trusted",
            "all.snap",
            "good.fp",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let fp = std::fs::read_to_string(p.join("good.fp")).unwrap();
    assert!(
        fp.starts_with("d41d8cd98f00b204e9800998ecf8427e:*:"),
        "{fp}"
    );
    let o = run(p, &["build", "-o", "fp.snap", "--feed", "clamav::good.fp"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(
        p,
        &["lookup", "fp.snap", "d41d8cd98f00b204e9800998ecf8427e"],
    );
    assert!(stdout(&o).contains("\ttrusted\t"), "{}", stdout(&o));
    let o = run(
        p,
        &[
            "export",
            "--clamav",
            "--verdict",
            "suspicious",
            "all.snap",
            "pua.hdb",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains(".hdu"), "{}", stderr(&o));
    let o = run(
        p,
        &[
            "export",
            "--clamav",
            "--verdict",
            "known",
            "all.snap",
            "k.fp",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn checksum_tool_lines_prefixes_and_bad_queries() {
    let dir = feeds();
    let p = dir.path();
    assert!(build_all(p, "all.snap").status.success());
    // `sha256sum FILE | repute lookup SNAP`: the real tool's output, comments and blanks.
    std::fs::write(
        p.join("eicar.com"),
        r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*",
    )
    .unwrap();
    let sums = Command::new("sha256sum")
        .current_dir(p)
        .arg("eicar.com")
        .output()
        .unwrap();
    assert!(sums.status.success());
    let input = format!("# checksums\n\n{}", String::from_utf8(sums.stdout).unwrap());
    let o = run_stdin(p, &["lookup", "all.snap", "--format", "jsonl"], &input);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let line: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(line["query"], EICAR_SHA256);
    assert_eq!(line["type"], "sha256");
    assert_eq!(line["verdict"], "malicious");

    let prefixed = format!("md5:{EICAR_MD5}");
    let o = run(p, &["lookup", "all.snap", &prefixed]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));

    for (query, says) in [
        ("hello world!!", "not a valid host"),
        ("deadbeef", "8 hex digits"),
        (&EICAR_MD5[..31], "32 (MD5), 40 (SHA-1) or 64 (SHA-256)"),
        ("0x275a021bbfb6489e54d471899f7db9d1", "ends in a number"),
    ] {
        let o = run(p, &["lookup", "all.snap", query]);
        assert_eq!(o.status.code(), Some(2), "{query}: {}", stdout(&o));
        assert!(stdout(&o).contains(says), "{query}: {}", stdout(&o));
    }
}

#[test]
fn feed_and_query_text_is_escaped_when_printed() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("forged.jsonl"),
        format!(
            "{{\"md5\": \"{EICAR_MD5}\", \"name\": \"x\\tmalicious\\tname=Injected\\nforged\\u001b[2J\", \"category\": \"rlo\\u202eexe\\u2028\"}}\n\
             {{\"md5\": \"zz\\u0007\\u0000\\u001b\"}}\n"
        ),
    )
    .unwrap();
    let o = run(
        p,
        &[
            "build",
            "-o",
            "f.snap",
            "--feed",
            "jsonl:malicious:forged.jsonl",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report = stderr(&o);
    assert!(
        !report.contains(['\u{7}', '\0', '\u{1b}']),
        "raw control bytes in the build report: {report:?}"
    );

    let o = run(
        p,
        &[
            "lookup",
            "f.snap",
            EICAR_MD5,
            "evil\u{1b}]0;x\u{7}\r.example",
        ],
    );
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert_eq!(lines[0].split('\t').count(), 4, "{out:?}");
    assert!(
        lines[0].contains("name=x\\tmalicious\\tname=Injected\\nforged\\x1B[2J"),
        "{out:?}"
    );
    assert!(
        lines[0].contains("category=rlo\\u{202E}exe\\u{2028}"),
        "{out:?}"
    );
    assert!(
        lines[1].starts_with("evil\\x1B]0;x\\x07\\r.example\terror\t"),
        "{out:?}"
    );
    assert!(
        !out.contains(['\u{1b}', '\u{7}', '\r', '\u{202e}']),
        "{out:?}"
    );
}

#[test]
fn swapped_lookup_arguments_get_a_hint() {
    let dir = feeds();
    let p = dir.path();
    assert!(build_all(p, "all.snap").status.success());
    let o = run(p, &["lookup", EICAR_MD5, "all.snap"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("the snapshot comes first"),
        "{}",
        stderr(&o)
    );
}
