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
    assert!(lines[1]["error"].as_str().unwrap().contains("longer than"));
    assert_eq!(lines[2]["verdict"], "malicious");
    assert_eq!(o.status.code(), Some(2));
}
