//! The `repute scan` contract, driving the real binary over a generated tree. Every run has a
//! watchdog: a scan that hangs (on a FIFO, say) is killed after 60 s and fails its test.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
const EICAR_MD5: &str = "44d88612fea8a8f36de82e1278abb02f";
const EICAR_SHA256: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
const EMPTY_SHA1: &str = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
const SPARSE_LEN: u64 = 200 * 1024 * 1024;
const WATCHDOG: Duration = Duration::from_secs(60);

/// Waits for `child`, killing it and failing the test if it runs longer than 60 s.
fn wait_with_watchdog(child: &mut Child, args: &[&str]) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > WATCHDOG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("repute {args:?} still running after {WATCHDOG:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `repute` in `dir`, killing it and failing the test if it runs longer than 60 s.
fn run(dir: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_repute"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start repute");
    // Drain both pipes on their own threads so a chatty child never blocks on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = wait_with_watchdog(&mut child, args);
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn jsonl(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A snapshot (`bad.snap`) and a tree (`tree/`) in one temporary directory:
///
/// tree/eicar.com, tree/empty, tree/clean.txt, tree/sparse.bin (200 MB, sparse),
/// tree/deep/er/still/nested.bin, tree/deep/loop -> .., tree/fifo
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    fs::write(p.join("bad.txt"), format!("{EICAR_MD5}\n")).unwrap();
    fs::write(p.join("good.sha1"), format!("{EMPTY_SHA1}  empty\n")).unwrap();
    let o = run(
        p,
        &[
            "build",
            "-o",
            "bad.snap",
            "--feed",
            "hashes::bad.txt",
            "--feed",
            "sha1sum::good.sha1",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));

    let t = p.join("tree");
    fs::create_dir_all(t.join("deep/er/still")).unwrap();
    fs::write(t.join("eicar.com"), EICAR).unwrap();
    fs::write(t.join("empty"), b"").unwrap();
    fs::write(t.join("clean.txt"), b"nothing to see here\n").unwrap();
    let nested: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(t.join("deep/er/still/nested.bin"), nested).unwrap();
    fs::File::create(t.join("sparse.bin"))
        .unwrap()
        .set_len(SPARSE_LEN)
        .unwrap();
    std::os::unix::fs::symlink("..", t.join("deep/loop")).unwrap();
    let status = Command::new("mkfifo").arg(t.join("fifo")).status().unwrap();
    assert!(status.success());
    dir
}

fn oracle(tool: &str, path: &Path) -> String {
    let out = Command::new(tool).arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn text_output_lists_findings_and_exits_1_on_malicious() {
    let dir = setup();
    let p = dir.path();
    let o = run(
        p,
        &["scan", "bad.snap", "tree", "--show", "malicious,trusted"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let mut lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("tree/eicar.com\tmalicious\t"),
        "{lines:?}"
    );
    assert!(lines[0].contains("matched=md5"), "{lines:?}");
    assert!(lines[0].contains("source=bad"), "{lines:?}");
    assert!(lines[1].starts_with("tree/empty\ttrusted\t"), "{lines:?}");
    assert!(lines[1].contains("matched=sha1"), "{lines:?}");

    let summary = stderr(&o);
    assert!(summary.contains("files: 5,"), "{summary}");
    assert!(summary.contains("1 malicious"), "{summary}");
    assert!(summary.contains("1 trusted"), "{summary}");
    assert!(summary.contains("3 unknown"), "{summary}");
    assert!(summary.contains("1 special files"), "{summary}");
    assert!(summary.contains("errors: 0"), "{summary}");
    assert!(summary.contains("MB/s"), "{summary}");
}

#[test]
fn jsonl_digests_agree_with_coreutils() {
    let dir = setup();
    let p = dir.path();
    let o = run(
        p,
        &[
            "scan",
            "bad.snap",
            "tree",
            "--format",
            "jsonl",
            "--all",
            "--all-digests",
            "--threads",
            "2",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let lines = jsonl(&o);
    assert_eq!(lines.len(), 5, "{lines:?}");
    for line in &lines {
        let path = p.join(line["path"].as_str().unwrap());
        assert_eq!(line["md5"], oracle("md5sum", &path));
        assert_eq!(line["sha1"], oracle("sha1sum", &path));
        assert_eq!(line["sha256"], oracle("sha256sum", &path));
        assert_eq!(line["size"], fs::metadata(&path).unwrap().len());
        assert!(line.get("error").is_none());
    }
    let by_path = |name: &str| {
        lines
            .iter()
            .find(|l| l["path"] == format!("tree/{name}"))
            .unwrap_or_else(|| panic!("{name} listed"))
            .clone()
    };
    let eicar = by_path("eicar.com");
    assert_eq!(eicar["verdict"], "malicious");
    assert_eq!(eicar["type"], "md5");
    assert_eq!(eicar["matched"], EICAR_MD5);
    assert_eq!(eicar["schema"], "repute/1");
    assert_eq!(eicar["source"], "bad");
    assert_eq!(eicar["sha256"], EICAR_SHA256);
    assert_eq!(eicar["size"], 68);
    assert_eq!(by_path("empty")["verdict"], "trusted");
    assert_eq!(by_path("clean.txt")["verdict"], "unknown");
    assert!(by_path("clean.txt").get("matched").is_none());
    assert_eq!(by_path("sparse.bin")["size"], SPARSE_LEN);
    assert_eq!(by_path("deep/er/still/nested.bin")["size"], 300_000);
}

#[test]
fn clean_tree_exits_0_and_follow_symlinks_survives_the_loop() {
    let dir = setup();
    let p = dir.path();
    let o = run(p, &["scan", "bad.snap", "tree/deep", "--all"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "tree/deep/er/still/nested.bin\tunknown\n");
    assert!(stderr(&o).contains("1 symlinks"), "{}", stderr(&o));

    // deep/loop -> .. points at an ancestor of the scanned path: followed, it is detected as
    // a loop and not entered, and the scan ends cleanly.
    let o = run(
        p,
        &[
            "scan",
            "bad.snap",
            "tree/deep",
            "--follow-symlinks",
            "--all",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "tree/deep/er/still/nested.bin\tunknown\n");

    // A link to a file and a link to a directory outside the scanned path are read only
    // when following symlinks.
    std::os::unix::fs::symlink("../eicar.com", p.join("tree/deep/eicar-link")).unwrap();
    fs::create_dir(p.join("elsewhere")).unwrap();
    fs::write(p.join("elsewhere/eicar.com"), EICAR).unwrap();
    std::os::unix::fs::symlink("../../../elsewhere", p.join("tree/deep/er/away")).unwrap();
    let o = run(p, &["scan", "bad.snap", "tree/deep"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("3 symlinks"), "{}", stderr(&o));
    let o = run(
        p,
        &[
            "scan",
            "bad.snap",
            "tree/deep",
            "--follow-symlinks",
            "--format",
            "jsonl",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let mut paths: Vec<String> = jsonl(&o)
        .iter()
        .map(|l| l["path"].as_str().unwrap().to_string())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        vec!["tree/deep/eicar-link", "tree/deep/er/away/eicar.com"]
    );
    assert!(
        stderr(&o).contains("1 symlinks"),
        "the loop: {}",
        stderr(&o)
    );
}

#[test]
fn exclude_and_max_filesize() {
    let dir = setup();
    let p = dir.path();
    let o = run(
        p,
        &[
            "scan",
            "bad.snap",
            "tree",
            "--all",
            "--exclude",
            "*.com",
            "--exclude",
            "deep",
            "--max-filesize",
            "10M",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "tree/clean.txt\tunknown",
            "tree/empty\ttrusted\tsource=good matched=sha1"
        ]
    );
    let summary = stderr(&o);
    assert!(summary.contains("1 too large"), "{summary}");
    assert!(summary.contains("2 excluded"), "{summary}");

    let o = run(p, &["scan", "bad.snap", "tree", "--max-filesize", "ten"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(p, &["scan", "bad.snap", "tree", "--exclude", "a[b"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("a[b"), "{}", stderr(&o));
}

#[test]
fn errors_exit_2_and_the_scan_goes_on() {
    let dir = setup();
    let p = dir.path();
    let o = run(
        p,
        &[
            "scan",
            "bad.snap",
            "missing-dir",
            "tree",
            "--format",
            "jsonl",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "an error wins over a malicious find"
    );
    let lines = jsonl(&o);
    assert!(lines
        .iter()
        .any(|l| l["path"] == "missing-dir" && l["error"]["message"].is_string()));
    assert!(lines
        .iter()
        .any(|l| l["path"] == "tree/eicar.com" && l["verdict"] == "malicious"));
    assert!(stderr(&o).contains("errors: 1"), "{}", stderr(&o));

    let o = run(p, &["scan", "missing.snap", "tree"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing.snap"));
}

#[test]
fn unreadable_file_is_read_or_reported() {
    use std::os::unix::fs::PermissionsExt;
    let dir = setup();
    let p = dir.path();
    let secret: PathBuf = p.join("tree/secret");
    fs::write(&secret, EICAR).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    let o = run(
        p,
        &["scan", "bad.snap", "tree", "--format", "jsonl", "--all"],
    );
    let lines = jsonl(&o);
    let entry = lines
        .iter()
        .find(|l| l["path"] == "tree/secret")
        .expect("the unreadable file is accounted for");
    // Root reads files whatever their mode; anyone else cannot.
    if entry.get("error").is_some() {
        assert_eq!(o.status.code(), Some(2));
    } else {
        assert_eq!(entry["verdict"], "malicious");
        assert_eq!(o.status.code(), Some(1));
    }
    assert_eq!(lines.len(), 6, "the other files are still scanned");
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let dir = setup();
    let p = dir.path();
    let many = p.join("many");
    fs::create_dir(&many).unwrap();
    for i in 0..3000 {
        fs::write(many.join(format!("f{i}")), i.to_string()).unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_repute"))
        .current_dir(p)
        .args(["scan", "bad.snap", "many", "--all"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr_pipe = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    let status = wait_with_watchdog(&mut child, &["scan", "bad.snap", "many", "--all"]);
    let err = err.join().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!err.contains("repute:"), "{err}");
}

#[test]
fn scan_help_documents_the_options() {
    let o = run(Path::new("."), &["scan", "--help"]);
    assert!(o.status.success());
    let help = stdout(&o);
    for option in [
        "--format",
        "--all",
        "--exclude",
        "--max-filesize",
        "--follow-symlinks",
        "--one-file-system",
        "--threads",
    ] {
        assert!(help.contains(option), "{option} in help");
    }
}

#[test]
fn every_printed_path_can_be_found_again() {
    use std::os::unix::ffi::OsStrExt;
    let dir = setup();
    let p = dir.path();
    let names: [&[u8]; 5] = [
        b"evil\xff.exe",
        b"evil\xfe.exe",
        b"a\nb",
        b"a\\nb",
        b"x\tmalicious\tname=Injected",
    ];
    fs::create_dir(p.join("odd")).unwrap();
    for name in names {
        fs::write(p.join("odd").join(std::ffi::OsStr::from_bytes(name)), EICAR).unwrap();
    }
    let o = run(p, &["scan", "bad.snap", "odd"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stdout(&o);
    let mut paths: Vec<&str> = text
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "odd/a\\\\nb",
            "odd/a\\nb",
            "odd/evil\\xFE.exe",
            "odd/evil\\xFF.exe",
            "odd/x\\tmalicious\\tname=Injected",
        ],
        "{text}"
    );
    assert!(text.lines().all(|l| l.split('\t').count() == 3), "{text}");

    let o = run(p, &["scan", "bad.snap", "odd", "--format", "jsonl"]);
    let files = jsonl(&o);
    let mut found: Vec<Vec<u8>> = Vec::new();
    for f in &files {
        let path = f["path"].as_str().unwrap();
        let bytes = match f.get("path_bytes") {
            Some(b64) => {
                let out = Command::new("base64")
                    .arg("-d")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .and_then(|mut c| {
                        use std::io::Write;
                        c.stdin
                            .take()
                            .unwrap()
                            .write_all(b64.as_str().unwrap().as_bytes())?;
                        c.wait_with_output()
                    })
                    .unwrap();
                assert!(path.contains("\\xF"), "{path}");
                out.stdout
            }
            None => path.as_bytes().to_vec(),
        };
        found.push(bytes);
    }
    found.sort();
    let mut want: Vec<Vec<u8>> = names
        .iter()
        .map(|n| [b"odd/".as_slice(), n].concat())
        .collect();
    want.sort();
    assert_eq!(found, want);
}

#[test]
fn a_damaged_snapshot_is_refused_before_the_scan() {
    let dir = setup();
    let p = dir.path();
    fs::write(p.join("one"), EICAR).unwrap();
    // Damage the whole-file digest in the trailer: lookups still work, verify does not.
    let mut bytes = fs::read(p.join("bad.snap")).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0x01;
    fs::write(p.join("damaged.snap"), &bytes).unwrap();
    let o = run(p, &["scan", "damaged.snap", "one"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("damaged.snap is damaged"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    let o = run(p, &["scan", "damaged.snap", "one", "--no-verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

/// The snapshot lists MD5 and SHA-1 digests only: a scan computes those two, and the JSON
/// leaves out the SHA-256 it did not compute (rather than reporting it empty or unknown),
/// with the same verdicts as a scan of all three.
#[test]
fn jsonl_leaves_out_the_digests_not_computed() {
    let dir = setup();
    let p = dir.path();
    let args = ["scan", "bad.snap", "tree", "--format", "jsonl", "--all"];
    let o = run(p, &args);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let lines = jsonl(&o);
    let all = jsonl(&run(p, &[&args[..], &["--all-digests"]].concat()));
    assert_eq!(lines.len(), all.len());
    for line in &lines {
        let path = p.join(line["path"].as_str().unwrap());
        assert_eq!(line["md5"], oracle("md5sum", &path));
        assert_eq!(line["sha1"], oracle("sha1sum", &path));
        assert!(line.get("sha256").is_none(), "{line}");
        let same = all.iter().find(|l| l["path"] == line["path"]).unwrap();
        assert_eq!(line["verdict"], same["verdict"]);
        assert_eq!(line["matched"], same["matched"]);
    }
}

/// `--bench` names the digests it measured and sets the limit beside the scan's rate; the
/// scan's own output and exit code are unchanged.
#[test]
fn bench_prints_the_hashing_limit_beside_the_scan_rate() {
    let dir = setup();
    let p = dir.path();
    let o = run(
        p,
        &["scan", "bad.snap", "tree", "--bench", "--threads", "1"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("bench: digests md5,sha1: hashing limit"),
        "{err}"
    );
    assert!(err.contains("the limit on 1 cores"), "{err}");
    let plain = run(p, &["scan", "bad.snap", "tree", "--threads", "1"]);
    assert_eq!(o.stdout, plain.stdout);
}
