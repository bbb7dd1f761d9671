//! Regression tests for hostile inputs to the CLI: damaged snapshots, over-long lines,
//! killed builds.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const EICAR_MD5: &str = "44d88612fea8a8f36de82e1278abb02f";

fn repute(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_repute"));
    c.current_dir(dir)
        .env("REPUTE_CACHE_DIR", dir.join("cache"));
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    repute(dir).args(args).output().expect("run repute")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn sample(dir: &Path) -> std::path::PathBuf {
    std::fs::write(
        dir.join("bad.txt"),
        format!("{EICAR_MD5}\n{}\n", "ab".repeat(32)),
    )
    .unwrap();
    std::fs::write(dir.join("domains.txt"), "malware.example.com\n").unwrap();
    let o = run(
        dir,
        &[
            "build",
            "-o",
            "s.snap",
            "--created",
            "1700000000",
            "--feed",
            "hashes::bad.txt",
            "--feed",
            "domains::domains.txt",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    dir.join("s.snap")
}

#[test]
fn lookup_verifies_a_snapshot_once_and_again_when_it_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let snap = sample(p);
    let good = std::fs::read(&snap).unwrap();

    // The first lookup verifies and remembers; the cache names the file once.
    let o = run(p, &["lookup", "s.snap", EICAR_MD5]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = run(p, &["lookup", "s.snap", EICAR_MD5]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let cache = std::fs::read_to_string(p.join("cache/verified")).unwrap();
    assert_eq!(cache.lines().count(), 1, "{cache}");

    // A damaged copy published over it by rename (a new inode): verified again, refused.
    // The damage is in the metadata, which a lookup never reads.
    let at = good
        .windows(7)
        .position(|w| w == b"created")
        .expect("metadata");
    let mut damaged = good.clone();
    damaged[at] ^= 0x20;
    std::fs::write(p.join("damaged.tmp"), &damaged).unwrap();
    std::fs::rename(p.join("damaged.tmp"), &snap).unwrap();
    let o = run(p, &["lookup", "s.snap", EICAR_MD5]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stderr(&o).contains("failed verification"), "{}", stderr(&o));
    assert!(stderr(&o).contains("checksum"), "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "no answer from a damaged snapshot");

    // --no-verify answers anyway; --verify re-checks even a remembered file.
    let o = run(p, &["lookup", "--no-verify", "s.snap", EICAR_MD5]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    std::fs::write(p.join("good.tmp"), &good).unwrap();
    std::fs::rename(p.join("good.tmp"), &snap).unwrap();
    let o = run(p, &["lookup", "--verify", "s.snap", EICAR_MD5]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

#[cfg(unix)]
#[test]
fn lookup_reports_an_over_long_stdin_line_without_holding_it() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    sample(p);
    // At most 256 MiB of address space, and a 320 MiB line: holding the line whole cannot
    // work; a bounded reader does not notice.
    let mut child = Command::new("bash")
        .current_dir(p)
        .env("REPUTE_CACHE_DIR", p.join("cache"))
        .arg("-c")
        .arg(r#"ulimit -v 262144 && exec "$0" lookup s.snap --format jsonl"#)
        .arg(env!("CARGO_BIN_EXE_repute"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        stdin.write_all(format!("{EICAR_MD5}\n").as_bytes())?;
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..320 {
            stdin.write_all(&chunk)?;
        }
        stdin.write_all(format!("\n{EICAR_MD5}\n").as_bytes())
    });
    let o = child.wait_with_output().unwrap();
    writer
        .join()
        .unwrap()
        .expect("the reader took the whole input");
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{}{}", stdout(&o), stderr(&o));
    assert_eq!(lines[0]["verdict"], "malicious");
    assert_eq!(lines[1]["query"], "<line 2>");
    assert!(lines[1]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("longer than"));
    assert_eq!(lines[2]["verdict"], "malicious");
    assert_eq!(o.status.code(), Some(2));
}

/// Every `.repute-*` name in `dir`.
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".repute-"))
        .collect()
}

#[cfg(unix)]
fn build_command(p: &Path) -> Command {
    let mut c = repute(p);
    c.args([
        "build",
        "-o",
        "out/k.snap",
        "--feed",
        "sha256sum:malicious:big.txt",
        "--memory",
        "1MiB",
        "--temp-dir",
        "spill",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    c
}

#[cfg(unix)]
fn big_feed(p: &Path) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(p.join("big.txt")).unwrap());
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..200_000 {
        let mut line = String::new();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            line.push_str(&format!("{x:016x}"));
        }
        writeln!(f, "{line}  file").unwrap();
    }
    f.flush().unwrap();
    std::fs::create_dir_all(p.join("out")).unwrap();
    std::fs::create_dir_all(p.join("spill")).unwrap();
}

/// SIGKILL at increasing points of a build (a fixed set of delays, so the run is bounded):
/// no temporary file is left in the output or spill directory once the next build has run.
#[cfg(unix)]
#[test]
fn killed_builds_leave_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    big_feed(p);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..12 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = build_command(p).spawn().unwrap();
        // Poll the child's progress, not the clock: kill after a random number of polls.
        let polls = 1 + seed % (20 + round * 10);
        for _ in 0..polls {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    // The next build cleans up and publishes.
    let o = build_command(p).output().unwrap();
    assert!(o.status.success());
    assert_eq!(temp_files(&p.join("out")), Vec::<String>::new());
    assert_eq!(temp_files(&p.join("spill")), Vec::<String>::new());
    assert_eq!(std::fs::read_dir(p.join("spill")).unwrap().count(), 0);
    assert!(p.join("out/k.snap").exists());
}

/// SIGTERM and SIGINT while a build writes: nothing is left, even before the next build.
#[cfg(unix)]
#[test]
fn terminated_builds_remove_their_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    big_feed(p);
    for sig in ["-TERM", "-INT"] {
        for polls in [20u64, 60, 120, 200] {
            let mut child = build_command(p).spawn().unwrap();
            // Until the build writes its output (a temporary name exists, in the fallback),
            // or a number of polls.
            for _ in 0..polls {
                if child.try_wait().unwrap().is_some() || !temp_files(&p.join("out")).is_empty() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let _ = Command::new("kill")
                .args([sig, &child.id().to_string()])
                .status();
            let _ = child.wait();
            assert_eq!(temp_files(&p.join("out")), Vec::<String>::new(), "{sig}");
        }
    }
}

/// Runs `repute build` on a manifest with a timeout: a build that hangs is a failure.
fn build_with_timeout(dir: &Path, args: &[&str]) -> Output {
    let mut child = repute(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("repute {args:?} did not finish");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn manifest_paths_stay_under_the_manifest_directory() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let feeds = p.join("feeds");
    std::fs::create_dir(&feeds).unwrap();
    std::fs::write(feeds.join("bad.txt"), format!("{EICAR_MD5}\n")).unwrap();
    std::fs::write(p.join("outside.txt"), "secret-line-from-outside\n").unwrap();
    std::os::unix::fs::symlink(p.join("outside.txt"), feeds.join("link.txt")).unwrap();
    let manifest = |path: &str| {
        std::fs::write(
            feeds.join("m.toml"),
            format!(
                "[[feed]]\nformat = \"hashes\"\npath = \"bad.txt\"\n\n\
                 [[feed]]\nformat = \"hashes\"\npath = {path:?}\nmin_records = 0\n"
            ),
        )
        .unwrap();
    };
    let outside = p.join("outside.txt").display().to_string();
    for path in [
        "../outside.txt",
        outside.as_str(),
        "link.txt",
        "/etc/passwd",
    ] {
        manifest(path);
        let args = ["build", "-o", "s.snap", "--manifest", "feeds/m.toml"];
        let o = build_with_timeout(p, &args);
        assert_eq!(o.status.code(), Some(2), "{path}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("outside the manifest's directory"),
            "{path}: {}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains("secret-line"), "{}", stderr(&o));
        assert!(!p.join("s.snap").exists());
    }
    // Allowed on request; the outside file's line is only an excerpt, escaped and capped.
    std::fs::write(
        p.join("outside.txt"),
        format!("\x1b[31m{}\n", "x".repeat(10_000)),
    )
    .unwrap();
    manifest("../outside.txt");
    let o = build_with_timeout(
        p,
        &[
            "build",
            "-o",
            "s.snap",
            "--manifest",
            "feeds/m.toml",
            "--allow-outside-paths",
            "--report",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let reason = report["feeds"][1]["errors"][0][1].as_str().unwrap();
    assert!(reason.len() <= 200, "{reason}");
    assert!(
        !reason.contains('\x1b') && reason.contains("\\x1B"),
        "{reason}"
    );
}

#[test]
fn feeds_must_be_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("bad.txt"), format!("{EICAR_MD5}\n")).unwrap();
    let fifo = p.join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    for feed in ["hashes::fifo", "hashes::/dev/zero"] {
        let o = build_with_timeout(
            p,
            &[
                "build",
                "-o",
                "s.snap",
                "--feed",
                "hashes::bad.txt",
                "--feed",
                feed,
            ],
        );
        assert_eq!(o.status.code(), Some(2), "{feed}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("not a feed file"),
            "{feed}: {}",
            stderr(&o)
        );
    }
    std::fs::write(
        p.join("m.toml"),
        "[[feed]]\nformat = \"hashes\"\npath = \"fifo\"\n",
    )
    .unwrap();
    let o = build_with_timeout(p, &["build", "-o", "s.snap", "--manifest", "m.toml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("FIFO"), "{}", stderr(&o));
}

/// Runs `repute` with `input` on its standard input (a pipe).
fn run_with_stdin(dir: &Path, args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = repute(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    o
}

#[test]
fn header_less_exports_fail_naming_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("nohdr.csv"),
        format!("\"2026-11-29 06:58:41\", \"{}\"\n", "ab".repeat(32)),
    )
    .unwrap();
    let o = run(
        p,
        &[
            "build",
            "-o",
            "s.snap",
            "--feed",
            "malwarebazaar::nohdr.csv",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("feed nohdr.csv"), "{err}");
    assert!(err.contains("no header line"), "{err}");
    assert!(err.contains("abuse.ch export?"), "{err}");
    assert!(!p.join("s.snap").exists());
}

#[test]
fn feeds_read_from_standard_input_plain_or_compressed() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let text = format!("{EICAR_MD5}\n{}\n", "ab".repeat(32));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(text.as_bytes(), 3).unwrap();
    for (feed, input) in [
        ("hashes::-", text.as_bytes()),
        ("hashes::/dev/stdin", text.as_bytes()),
        ("hashes::-", &gz[..]),
        ("hashes::/dev/stdin", &zst[..]),
    ] {
        let o = run_with_stdin(
            p,
            &["build", "-o", "s.snap", "--feed", feed, "--report", "json"],
            input,
        );
        assert_eq!(o.status.code(), Some(0), "{feed}: {}", stderr(&o));
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(report["feeds"][0]["keys"], 2, "{feed}: {report}");
        assert_eq!(report["feeds"][0]["path"], "-", "{feed}: {report}");
        let o = run(p, &["lookup", "s.snap", EICAR_MD5]);
        assert_eq!(o.status.code(), Some(1), "{feed}: {}", stdout(&o));
    }
    // A ZIP archive needs a file.
    let o = run_with_stdin(
        p,
        &["build", "-o", "z.snap", "--feed", "malwarebazaar::-"],
        b"PK\x03\x04rest",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("save it to a file"), "{}", stderr(&o));
}
