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

/// Two snapshot builds over one set of keys: `changed` drops some keys, changes the records
/// of others and adds new ones (what a delta carries). Returns the bytes and the queries
/// (every key of either build, and some never listed).
fn engine_set(changed: bool) -> (Vec<u8>, Vec<String>) {
    let mut gen = Generator::new(31);
    let mut builder = SnapshotBuilder::new();
    builder
        .created(1_700_000_000 + i64::from(changed))
        .sequence(1 + u64::from(changed));
    let malware = builder.add_feed(FeedInfo::new("gen-malware", "hashes", Verdict::Malicious));
    let urls = builder.add_feed(FeedInfo::new("gen-urls", "urls", Verdict::Malicious));
    let mut queries = Vec::new();
    for i in 0..240u32 {
        let bytes: Vec<u8> = match i % 3 {
            0 => gen.md5().to_vec(),
            1 => gen.sha1().to_vec(),
            _ => gen.sha256().to_vec(),
        };
        let name = gen.threat_name();
        queries.push(to_hex(&bytes));
        if changed && i % 5 == 0 {
            continue; // removed by the delta
        }
        let spec = if changed && i % 6 == 0 {
            RecordSpec::new(Verdict::Suspicious).name(format!("changed-{i}"))
        } else {
            RecordSpec::new(Verdict::Malicious).name(name)
        };
        let digest = Digest::from_bytes(&bytes).expect("digest length");
        builder.add_digest(malware, digest, spec);
    }
    for i in 0..60u32 {
        let bytes = gen.sha256();
        queries.push(to_hex(&bytes));
        if changed && i % 2 == 0 {
            let spec = RecordSpec::new(Verdict::Malicious).name(format!("added-{i}"));
            builder.add_digest(malware, Digest::from_bytes(&bytes).expect("sha256"), spec);
        }
    }
    for i in 0..30u32 {
        let domain = gen.domain();
        queries.push(format!("https://www.{domain}/p"));
        if changed && i % 3 == 0 {
            continue;
        }
        let spec = RecordSpec::new(Verdict::Malicious).category("phishing");
        let _ = builder.add_url_entry(urls, &domain, EntryKind::Domain, spec);
    }
    (builder.to_bytes().expect("build"), queries)
}

/// The Rust engine's answers for `queries`, in engine_test.c's format.
fn engine_expectations(engine: &repute::Engine, queries: &[String]) -> String {
    let view = engine.load();
    let mut out = String::new();
    for q in queries {
        let hit = view
            .lookup(&Query::parse(q).expect("query"))
            .expect("lookup");
        let field = |s: Option<&str>| s.unwrap_or("-").to_string();
        match hit {
            None => writeln!(out, "{q}\t0\t-\t-"),
            Some(h) => writeln!(
                out,
                "{q}\t{}\t{}\t{}",
                verdict_code(h.record.verdict()),
                field(h.record.name()),
                field(h.record.source())
            ),
        }
        .expect("write to a string");
    }
    out
}

fn compile(program: &str, exe: &Path) {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let libs = library_dir();
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args([
            "-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread", "-g", "-O1", "-I",
        ])
        .arg(crate_dir.join("include"))
        .arg(crate_dir.join("tests/c").join(program))
        .arg("-L")
        .arg(&libs)
        .arg(format!("-Wl,-rpath,{}", libs.display()))
        .arg("-lrepute_ffi")
        .arg("-o")
        .arg(exe)
        .status()
        .expect("run cc (install a C compiler)");
    assert!(status.success(), "cc failed to compile tests/c/{program}");
}

#[test]
// Opening the oracle engines maps files, which is `unsafe` (see the SAFETY notes).
#[allow(unsafe_code)]
fn c_engine_program_agrees_with_the_rust_engine() {
    use repute::engine::state::{Current, StateDir};

    let dir = tempfile::tempdir().expect("temp dir");
    let (old_bytes, queries) = engine_set(false);
    let (new_bytes, new_queries) = engine_set(true);
    assert_eq!(queries, new_queries, "both builds ask the same queries");
    let old_path = dir.path().join("old.snap");
    let new_path = dir.path().join("new.snap");
    std::fs::write(&old_path, &old_bytes).expect("write");
    std::fs::write(&new_path, &new_bytes).expect("write");
    let delta_path = dir.path().join("new.delta");
    repute::delta::diff(
        &Snapshot::open(&old_bytes[..]).expect("open"),
        &Snapshot::open(&new_bytes[..]).expect("open"),
        &delta_path,
    )
    .expect("diff");

    let state_path = dir.path().join("state");
    let state = StateDir::create(&state_path).expect("state dir");
    let base_name = state.add(&old_bytes).expect("add base");
    let delta_name = state
        .add(&std::fs::read(&delta_path).expect("read delta"))
        .expect("add delta");
    // The next set, written beside current.json for the C program to rename into place.
    let next = Current {
        sequence: 2,
        base: base_name.clone(),
        deltas: vec![delta_name],
    };
    state.install(&next).expect("install");
    let next_path = dir.path().join("next-current.json");
    std::fs::rename(state_path.join("current.json"), &next_path).expect("move aside");
    state
        .install(&Current {
            sequence: 1,
            base: base_name,
            deltas: Vec::new(),
        })
        .expect("install the base");

    // The oracles: the Rust engine over each set, and the whole new snapshot (a delta
    // applied must answer as the snapshot it stands for).
    // SAFETY: the test's files are written once and never modified.
    let old_engine = unsafe { repute::Engine::open(&old_path, &[]) }.expect("open old");
    // SAFETY: as above.
    let new_engine = unsafe { repute::Engine::open(&old_path, std::slice::from_ref(&delta_path)) }
        .expect("open old + delta");
    // SAFETY: as above.
    let whole = unsafe { repute::Engine::open(&new_path, &[]) }.expect("open new");
    let old_expected = engine_expectations(&old_engine, &queries);
    let new_expected = engine_expectations(&new_engine, &queries);
    assert_eq!(new_expected, engine_expectations(&whole, &queries));
    assert_ne!(old_expected, new_expected, "the delta changes answers");
    let listed = new_expected
        .lines()
        .filter(|l| !l.contains("\t0\t"))
        .count();
    assert!(listed > 150, "the oracle finds listed keys ({listed})");
    let old_tsv = dir.path().join("old.tsv");
    let new_tsv = dir.path().join("new.tsv");
    std::fs::write(&old_tsv, old_expected).expect("write");
    std::fs::write(&new_tsv, new_expected).expect("write");

    let exe = dir.path().join("engine_test");
    compile("engine_test.c", &exe);
    // Each run consumes the state directory's current.json: reset it in between.
    let current_path = state_path.join("current.json");
    let base_current = std::fs::read(&current_path).expect("read current");
    let next_current = std::fs::read(&next_path).expect("read next");
    let args = |rounds: &str| -> Vec<std::ffi::OsString> {
        std::fs::write(&current_path, &base_current).expect("reset current.json");
        std::fs::write(&next_path, &next_current).expect("reset next");
        vec![
            state_path.clone().into_os_string(),
            next_path.clone().into_os_string(),
            old_path.clone().into_os_string(),
            delta_path.clone().into_os_string(),
            old_tsv.clone().into_os_string(),
            new_tsv.clone().into_os_string(),
            rounds.into(),
        ]
    };
    let first = args("10");
    // `run_checked` runs the plain program first; the Valgrind run needs fresh files,
    // which `args` writes when called: call it after the first run.
    let output = Command::new(&exe)
        .args(&first)
        .output()
        .expect("run engine_test");
    assert!(
        output.status.success(),
        "engine_test failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let again = args("1");
    run_checked_valgrind_only(&exe, &again);
}

/// Runs `exe` under Valgrind when it is installed (required when REPUTE_FFI_VALGRIND says).
fn run_checked_valgrind_only(exe: &Path, args: &[std::ffi::OsString]) {
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
        .arg(exe)
        .args(args)
        .output()
        .expect("run valgrind");
    assert!(
        output.status.success(),
        "{} under valgrind failed ({}):\n{}{}",
        exe.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
