//! The C API, driven by a C program (`tests/c/ffi_test.c`) compiled with `cc` against the
//! committed header and the shared library: its lookups must agree with the Rust API (the
//! oracle, written to a file here), four threads share one handle, bad arguments and closed
//! handles are error codes. When Valgrind is installed the program runs under it as well,
//! and any memory error fails the test (`REPUTE_FFI_VALGRIND=required` makes a missing
//! Valgrind a failure, as CI sets it).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use repute::url::EntryKind;
use repute::{Digest, FeedInfo, Query, RecordSpec, Snapshot, SnapshotBuilder, Verdict};
use repute_gen::{to_hex, Generator};

/// Where cargo put this crate's `librepute_ffi.so`: beside the test binary in `deps/` (where
/// a test build leaves it), or one directory up (after `cargo build`).
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps dir");
    let found = [Some(deps), deps.parent()]
        .into_iter()
        .flatten()
        .find(|dir| dir.join("librepute_ffi.so").exists())
        .unwrap_or_else(|| panic!("librepute_ffi.so not found near {}", deps.display()))
        .to_path_buf();
    found
}

/// A snapshot with digests of every kind, URLs, prefixes and domains, and the queries to ask.
fn build(dir: &Path) -> (PathBuf, Vec<String>) {
    let mut gen = Generator::new(13);
    let mut builder = SnapshotBuilder::new();
    builder.created(1_700_000_000);
    let malware = builder.add_feed(FeedInfo::new("gen-malware", "hashes", Verdict::Malicious));
    let distro = builder.add_feed(FeedInfo::new("gen-distro", "sha256sum", Verdict::Trusted));
    let urls = builder.add_feed(FeedInfo::new("gen-urls", "urls", Verdict::Malicious));
    let mut queries = Vec::new();
    for i in 0..300u32 {
        let bytes: Vec<u8> = match i % 3 {
            0 => gen.md5().to_vec(),
            1 => gen.sha1().to_vec(),
            _ => gen.sha256().to_vec(),
        };
        let digest = Digest::from_bytes(&bytes).expect("digest length");
        let mut spec = RecordSpec::new(if i % 4 == 0 {
            Verdict::Trusted
        } else {
            Verdict::Malicious
        });
        if i % 2 == 0 {
            spec = spec.name(gen.threat_name()).category(gen.category());
        }
        spec.first_seen = Some(1_600_000_000 + i64::from(i));
        spec.confidence = (i % 5 == 0).then_some(90);
        let feed = if i % 4 == 0 { distro } else { malware };
        builder.add_digest(feed, digest, spec);
        // Upper case for some: both cases are the same digest.
        let hex = to_hex(&bytes);
        queries.push(if i % 7 == 0 { hex.to_uppercase() } else { hex });
    }
    for _ in 0..100 {
        queries.push(gen.sha256_hex());
        queries.push(gen.md5_hex());
    }
    for i in 0..60 {
        let domain = gen.domain();
        let url = gen.url();
        let spec = RecordSpec::new(Verdict::Malicious).category("phishing");
        if builder
            .add_url_entry(urls, &domain, EntryKind::Domain, spec.clone())
            .is_ok()
        {
            queries.push(format!("www.{domain}"));
            queries.push(format!("https://a.{domain}/x?y={i}"));
        }
        if builder
            .add_url_entry(urls, &url, EntryKind::Url, spec)
            .is_ok()
        {
            queries.push(url);
        }
        queries.push(format!("unlisted-{i}.example"));
    }
    let path = dir.join("gen.snap");
    builder.write(&path).expect("build snapshot");
    (path, queries)
}

/// The Rust API's answers, in the C program's format.
fn expectations(snapshot: &Snapshot, queries: &[String]) -> String {
    let mut out = String::new();
    for q in queries {
        let query = Query::parse(q).expect("generated queries parse");
        let hit = snapshot.lookup(&query).expect("lookup");
        let field = |s: Option<&str>| s.unwrap_or("-").to_string();
        match hit {
            None => writeln!(out, "{q}\t0\t-1\t-\t-\t-"),
            Some(h) => writeln!(
                out,
                "{q}\t{}\t{}\t{}\t{}\t{}",
                verdict_code(h.record.verdict()),
                h.record.id().0,
                field(h.record.name()),
                field(h.record.source()),
                h.matched
            ),
        }
        .expect("write to a string");
    }
    out
}

fn verdict_code(v: Verdict) -> u32 {
    match v {
        Verdict::Unknown => 0,
        Verdict::Malicious => 1,
        Verdict::Suspicious => 2,
        Verdict::Trusted => 3,
        Verdict::Known => 4,
    }
}

#[test]
fn c_program_agrees_with_the_rust_api() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (snap_path, queries) = build(dir.path());
    let snapshot = Snapshot::read(&snap_path).expect("open");
    let listed = queries
        .iter()
        .filter(|q| {
            snapshot
                .lookup(&Query::parse(q).unwrap())
                .unwrap()
                .is_some()
        })
        .count();
    assert!(listed > 300, "the oracle finds the listed keys ({listed})");
    let expected = dir.path().join("expected.tsv");
    std::fs::write(&expected, expectations(&snapshot, &queries)).expect("write expectations");
    let mut corrupt = std::fs::read(&snap_path).expect("read snapshot");
    let at = corrupt.len() / 2;
    corrupt[at] ^= 0x40;
    let corrupt_path = dir.path().join("corrupt.snap");
    std::fs::write(&corrupt_path, corrupt).expect("write corrupt copy");

    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let libs = library_dir();
    let exe = dir.path().join("ffi_test");
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args([
            "-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread", "-g", "-O1", "-I",
        ])
        .arg(crate_dir.join("include"))
        .arg(crate_dir.join("tests/c/ffi_test.c"))
        .arg("-L")
        .arg(&libs)
        .arg(format!("-Wl,-rpath,{}", libs.display()))
        .arg("-lrepute_ffi")
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("run cc (install a C compiler)");
    assert!(status.success(), "cc failed to compile tests/c/ffi_test.c");

    let args = |rounds: &str| {
        vec![
            snap_path.clone().into_os_string(),
            expected.clone().into_os_string(),
            corrupt_path.clone().into_os_string(),
            rounds.into(),
        ]
    };
    let output = Command::new(&exe)
        .args(args("20"))
        .output()
        .expect("run ffi_test");
    assert!(
        output.status.success(),
        "ffi_test failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let valgrind_available = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !valgrind_available {
        assert!(
            std::env::var("REPUTE_FFI_VALGRIND").as_deref() != Ok("required"),
            "REPUTE_FFI_VALGRIND=required but valgrind is not installed"
        );
        eprintln!("valgrind not installed: skipping the memory check");
        return;
    }
    let output = Command::new("valgrind")
        .args([
            "--quiet",
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
        ])
        .arg(&exe)
        .args(args("1"))
        .output()
        .expect("run valgrind");
    assert!(
        output.status.success(),
        "ffi_test under valgrind failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
