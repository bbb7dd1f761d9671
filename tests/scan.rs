//! The scanner against a generated tree with known contents, `md5sum`/`sha1sum`/`sha256sum`
//! as an independent oracle, and special files that must be skipped, never hung on.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use repute::scan::{
    hash_reader, lookup_file, DigestKinds, ScanEvent, ScanSummary, Scanner, SkipReason,
};
use repute::{Digest, DigestKind, FeedInfo, RecordSpec, Snapshot, SnapshotBuilder, Verdict};

const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
const EICAR_MD5: &str = "44d88612fea8a8f36de82e1278abb02f";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";
const SPARSE_LEN: u64 = 200 * 1024 * 1024;

/// Deterministic pseudo-random bytes.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

struct Tree {
    dir: tempfile::TempDir,
    /// Regular files expected to be read, relative to the root.
    files: Vec<PathBuf>,
}

impl Tree {
    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
}

/// root/
///   eicar.com, empty, sparse.bin (200 MB, no data blocks), top.bin
///   nested/a/b/c/deep.bin (larger than one read buffer), nested/a/mid.txt
///   nested/loop -> ..          (a symlink loop)
///   nested/eicar-link -> ../eicar.com
///   nested/dangling -> missing
///   fifo                       (a named pipe: opening it would block)
fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("nested/a/b/c")).unwrap();
    fs::write(root.join("eicar.com"), EICAR).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("top.bin"), bytes(1, 5000)).unwrap();
    fs::write(root.join("nested/a/b/c/deep.bin"), bytes(2, 700_001)).unwrap();
    fs::write(root.join("nested/a/mid.txt"), b"hello scanner\n").unwrap();
    let sparse = fs::File::create(root.join("sparse.bin")).unwrap();
    sparse.set_len(SPARSE_LEN).unwrap();
    drop(sparse);
    std::os::unix::fs::symlink("..", root.join("nested/loop")).unwrap();
    std::os::unix::fs::symlink("../eicar.com", root.join("nested/eicar-link")).unwrap();
    std::os::unix::fs::symlink("missing", root.join("nested/dangling")).unwrap();
    let status = Command::new("mkfifo")
        .arg(root.join("fifo"))
        .status()
        .unwrap();
    assert!(status.success());
    let files = [
        "eicar.com",
        "empty",
        "sparse.bin",
        "top.bin",
        "nested/a/b/c/deep.bin",
        "nested/a/mid.txt",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    Tree { dir, files }
}

fn snapshot() -> Snapshot {
    let mut b = SnapshotBuilder::new();
    let bad = b.add_feed(FeedInfo::new("bad", "hashes", Verdict::Malicious));
    let good = b.add_feed(FeedInfo::new("good", "sha256sum", Verdict::Trusted));
    let known = b.add_feed(FeedInfo::new("nsrl", "md5sum", Verdict::Known));
    b.add_digest(
        bad,
        EICAR_MD5.parse().unwrap(),
        RecordSpec::new(Verdict::Malicious)
            .name("EICAR-Test-File")
            .category("test"),
    );
    // The empty file: known by MD5, trusted by SHA-256; the stronger verdict must win.
    b.add_digest(
        known,
        EMPTY_MD5.parse().unwrap(),
        RecordSpec::new(Verdict::Known),
    );
    b.add_digest(
        good,
        EMPTY_SHA256.parse().unwrap(),
        RecordSpec::new(Verdict::Trusted),
    );
    Snapshot::open(b.to_bytes().unwrap()).unwrap()
}

/// What one scan reported, owned.
#[derive(Debug, Default)]
struct Report {
    files: HashMap<PathBuf, (repute::scan::FileDigests, Verdict, Option<DigestKind>)>,
    skipped: Vec<(PathBuf, SkipReason)>,
    errors: Vec<(PathBuf, String)>,
    summary: ScanSummary,
}

/// Runs a scan on another thread and fails the test if it takes more than 60 s (a scan that
/// opened the FIFO would block forever).
fn scan(scanner: Scanner, snapshot: &'static Snapshot, paths: Vec<PathBuf>) -> Report {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let report = Mutex::new(Report::default());
        let summary = scanner.scan(snapshot, &paths, |event| {
            let mut r = report.lock().unwrap();
            match event {
                ScanEvent::File(f) => {
                    let matched = f.hit.map(|h| h.matched);
                    let previous = r
                        .files
                        .insert(f.path.clone(), (f.digests, f.verdict(), matched));
                    assert!(previous.is_none(), "{} reported twice", f.path.display());
                }
                ScanEvent::Skipped { path, reason } => r.skipped.push((path, reason)),
                ScanEvent::Error { path, error } => r.errors.push((path, error.to_string())),
                other => panic!("unexpected event {other:?}"),
            }
        });
        let mut report = report.into_inner().unwrap();
        report.summary = summary;
        let _ = done.send(report);
    });
    finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the scan finished within 60 s (did it open a FIFO?)")
}

fn shared_snapshot() -> &'static Snapshot {
    static SNAPSHOT: std::sync::OnceLock<Snapshot> = std::sync::OnceLock::new();
    SNAPSHOT.get_or_init(snapshot)
}

/// The hex digest printed by a coreutils `*sum` tool.
fn oracle(tool: &str, path: &Path) -> String {
    let out = Command::new(tool).arg(path).output().unwrap();
    assert!(out.status.success(), "{tool} failed");
    String::from_utf8(out.stdout).unwrap()[..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn reasons(report: &Report, reason: SkipReason) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = report
        .skipped
        .iter()
        .filter(|(_, r)| *r == reason)
        .map(|(p, _)| p.clone())
        .collect();
    v.sort();
    v
}

#[test]
fn scans_a_tree_with_digests_matching_coreutils() {
    let t = tree();
    let root = t.root();
    // The snapshot lists no SHA-1: ask for all three, to compare them all.
    let r = scan(
        Scanner::new().threads(3).also_compute(DigestKinds::ALL),
        shared_snapshot(),
        vec![root.clone()],
    );

    let mut seen: Vec<PathBuf> = r.files.keys().cloned().collect();
    seen.sort();
    let mut expected: Vec<PathBuf> = t.files.iter().map(|f| root.join(f)).collect();
    expected.sort();
    assert_eq!(seen, expected, "each regular file exactly once");
    assert!(r.errors.is_empty(), "{:?}", r.errors);

    for path in &expected {
        let (d, _, _) = r.files[path];
        let [md5, sha1, sha256] = d.digests();
        assert_eq!(md5.to_hex(), oracle("md5sum", path), "{}", path.display());
        assert_eq!(sha1.to_hex(), oracle("sha1sum", path), "{}", path.display());
        assert_eq!(
            sha256.to_hex(),
            oracle("sha256sum", path),
            "{}",
            path.display()
        );
        assert_eq!(d.size, fs::metadata(path).unwrap().len());
    }

    let eicar = &r.files[&root.join("eicar.com")];
    assert_eq!(eicar.0.size, 68);
    assert_eq!(eicar.1, Verdict::Malicious);
    assert_eq!(eicar.2, Some(DigestKind::Md5));
    let empty = &r.files[&root.join("empty")];
    assert_eq!(
        (empty.1, empty.2),
        (Verdict::Trusted, Some(DigestKind::Sha256)),
        "trusted by SHA-256 beats known by MD5"
    );
    assert_eq!(r.files[&root.join("top.bin")].1, Verdict::Unknown);
    assert_eq!(r.files[&root.join("sparse.bin")].0.size, SPARSE_LEN);

    assert_eq!(reasons(&r, SkipReason::Fifo), vec![root.join("fifo")]);
    let mut links = vec![
        root.join("nested/dangling"),
        root.join("nested/eicar-link"),
        root.join("nested/loop"),
    ];
    links.sort();
    assert_eq!(reasons(&r, SkipReason::Symlink), links);

    let s = &r.summary;
    assert_eq!(s.files, 6);
    assert_eq!(s.bytes, 68 + 5000 + 700_001 + 14 + SPARSE_LEN);
    assert_eq!(
        (s.malicious, s.suspicious, s.trusted, s.known, s.unknown),
        (1, 0, 1, 0, 4)
    );
    assert_eq!((s.special, s.symlinks, s.errors), (1, 3, 0));
    assert!(s.is_complete());
    assert_eq!(s.verdict_count(Verdict::Unknown), 4);
}

#[test]
fn following_symlinks_ends_at_loops_and_reads_link_targets() {
    let t = tree();
    let root = t.root();
    std::os::unix::fs::symlink("../fifo", root.join("nested/fifo-link")).unwrap();
    let r = scan(
        Scanner::new().follow_symlinks(true).threads(2),
        shared_snapshot(),
        vec![root.clone()],
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(
        reasons(&r, SkipReason::SymlinkLoop),
        vec![root.join("nested/loop")]
    );
    assert_eq!(
        reasons(&r, SkipReason::BrokenSymlink),
        vec![root.join("nested/dangling")]
    );
    let link = &r.files[&root.join("nested/eicar-link")];
    assert_eq!(link.1, Verdict::Malicious);
    assert_eq!(r.files.len(), 7, "six files and the link to one of them");
    assert_eq!(
        reasons(&r, SkipReason::Fifo),
        vec![root.join("fifo"), root.join("nested/fifo-link")],
        "a link to a FIFO is not opened either"
    );
    assert_eq!(r.summary.malicious, 2);
}

#[test]
fn thread_counts_agree() {
    let t = tree();
    let one = scan(Scanner::new().threads(1), shared_snapshot(), vec![t.root()]);
    let four = scan(Scanner::new().threads(4), shared_snapshot(), vec![t.root()]);
    assert_eq!(one.files, four.files);
    let (mut a, mut b) = (one.summary, four.summary);
    a.elapsed = Duration::ZERO;
    b.elapsed = Duration::ZERO;
    assert_eq!(a, b);
}

#[test]
fn exclusions_and_size_limit() {
    let t = tree();
    let root = t.root();
    let scanner = Scanner::new()
        .exclude(["*.com", "b", "fifo"])
        .unwrap()
        .max_file_size(Some(1 << 20));
    let r = scan(scanner, shared_snapshot(), vec![root.clone()]);
    let mut seen: Vec<PathBuf> = r.files.keys().cloned().collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            root.join("empty"),
            root.join("nested/a/mid.txt"),
            root.join("top.bin")
        ]
    );
    assert_eq!(
        reasons(&r, SkipReason::Excluded),
        vec![
            root.join("eicar.com"),
            root.join("fifo"),
            root.join("nested/a/b")
        ]
    );
    assert!(r
        .skipped
        .iter()
        .any(|(p, reason)| *p == root.join("sparse.bin")
            && *reason == SkipReason::TooLarge { size: SPARSE_LEN }));
    assert_eq!(
        (r.summary.excluded, r.summary.too_large, r.summary.special),
        (3, 1, 0)
    );

    assert!(Scanner::new().exclude(["a[b"]).is_err());
}

#[test]
fn unreadable_and_missing_paths_are_reported_and_the_scan_goes_on() {
    use std::os::unix::fs::PermissionsExt;
    let t = tree();
    let root = t.root();
    let secret = root.join("secret");
    fs::write(&secret, b"top secret").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    let closed = root.join("closed");
    fs::create_dir(&closed).unwrap();
    fs::write(closed.join("inside"), b"inside").unwrap();
    fs::set_permissions(&closed, fs::Permissions::from_mode(0o000)).unwrap();
    let missing = t.dir.path().join("does-not-exist");

    let r = scan(
        Scanner::new(),
        shared_snapshot(),
        vec![missing.clone(), root.clone()],
    );
    // Restore permissions so the temporary directory can be removed.
    fs::set_permissions(&closed, fs::Permissions::from_mode(0o755)).unwrap();

    assert!(
        r.errors.iter().any(|(p, _)| *p == missing),
        "{:?}",
        r.errors
    );
    // Root reads anything whatever the mode; anyone else gets an error. Either way the file
    // is accounted for and the others are still read.
    let secret_read = r.files.contains_key(&secret);
    let secret_failed = r.errors.iter().any(|(p, _)| *p == secret);
    assert!(secret_read ^ secret_failed, "{:?}", r.errors);
    let inside_read = r.files.contains_key(&closed.join("inside"));
    let closed_failed = r.errors.iter().any(|(p, _)| p.starts_with(&closed));
    assert!(inside_read ^ closed_failed, "{:?}", r.errors);
    assert_eq!(
        r.summary.errors,
        1 + u64::from(secret_failed) + u64::from(closed_failed)
    );
    assert!(!r.summary.is_complete());
    for f in &t.files {
        assert!(r.files.contains_key(&root.join(f)), "{f:?} still scanned");
    }
}

#[test]
fn a_file_whose_contents_outgrow_its_size_is_an_error() {
    // Files under /proc report a length of 0 and yet have contents: exactly what a file
    // growing during the read looks like.
    let proc_file = PathBuf::from("/proc/self/stat");
    if !proc_file.exists() {
        return;
    }
    let r = scan(Scanner::new(), shared_snapshot(), vec![proc_file.clone()]);
    assert_eq!(r.errors.len(), 1, "{:?}", r.files);
    assert!(
        r.errors[0].1.contains("changed while being read"),
        "{:?}",
        r.errors
    );
}

#[test]
fn a_fifo_given_directly_is_skipped() {
    let t = tree();
    let r = scan(
        Scanner::new(),
        shared_snapshot(),
        vec![t.root().join("fifo")],
    );
    assert_eq!(reasons(&r, SkipReason::Fifo), vec![t.root().join("fifo")]);
    assert_eq!(r.summary.special, 1);
    assert_eq!(r.summary.files, 0);
}

#[test]
fn hash_reader_and_lookup_file() {
    let d = hash_reader(EICAR, &mut [0u8; 16]).unwrap();
    let [md5, sha1, sha256] = d.digests();
    assert_eq!(md5.to_hex(), EICAR_MD5);
    assert_eq!(sha1.to_hex(), "3395856ce81f2b7382dee72602f798b642f14140");
    assert_eq!(
        sha256.to_hex(),
        "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
    );
    assert_eq!(md5.kind(), DigestKind::Md5);
    let hit = lookup_file(shared_snapshot(), &d).unwrap();
    assert_eq!(hit.record.verdict(), Verdict::Malicious);
    assert_eq!(hit.record.name(), Some("EICAR-Test-File"));
    assert_eq!(hit.matched, DigestKind::Md5);

    let unknown = hash_reader(&b"nothing to see"[..], &mut [0u8; 4096]).unwrap();
    assert!(lookup_file(shared_snapshot(), &unknown).is_none());
    let _: [Digest; 3] = unknown.digests();
}

mod oracle {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Any contents, any buffer size: the digests agree with the coreutils tools.
        #[test]
        fn digests_agree_with_coreutils(data in prop::collection::vec(any::<u8>(), 0..20_000),
                                        buf in 1usize..5000) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            fs::write(&path, &data).unwrap();
            let d = hash_reader(fs::File::open(&path).unwrap(), &mut vec![0u8; buf]).unwrap();
            let [md5, sha1, sha256] = d.digests();
            prop_assert_eq!(md5.to_hex(), oracle("md5sum", &path));
            prop_assert_eq!(sha1.to_hex(), oracle("sha1sum", &path));
            prop_assert_eq!(sha256.to_hex(), oracle("sha256sum", &path));
            prop_assert_eq!(d.size, data.len() as u64);
        }
    }
}

/// An override (allowlist) entry on a file's SHA-256 wins over a malicious entry on its MD5:
/// the override covers the file, whichever digest the blocklist used.
#[test]
fn an_override_on_one_digest_beats_a_malicious_entry_on_another() {
    let data = b"a vendor tool some blocklist flags by MD5";
    let d = hash_reader(&data[..], &mut [0u8; 64]).unwrap();
    let [md5, _, sha256] = d.digests();
    let mut b = SnapshotBuilder::new();
    let bad = b.add_feed(FeedInfo::new("bad", "md5sum", Verdict::Malicious));
    let mut allow = FeedInfo::new("allow", "sha256sum", Verdict::Trusted);
    allow.r#override = true;
    let allow = b.add_feed(allow);
    b.add_digest(
        bad,
        md5,
        RecordSpec::new(Verdict::Malicious).name("FalsePositive"),
    );
    b.add_digest(allow, sha256, RecordSpec::new(Verdict::Trusted));
    let snapshot = Snapshot::open(b.to_bytes().unwrap()).unwrap();
    let hit = lookup_file(&snapshot, &d).unwrap();
    assert_eq!(hit.record.verdict(), Verdict::Trusted);
    assert!(hit.record.is_override());
    assert_eq!(hit.matched, DigestKind::Sha256);
}

/// A snapshot listing only these digests, all malicious.
fn listing(digests: &[Digest]) -> &'static Snapshot {
    let mut b = SnapshotBuilder::new();
    let bad = b.add_feed(FeedInfo::new("bad", "hashes", Verdict::Malicious));
    for d in digests {
        b.add_digest(bad, *d, RecordSpec::new(Verdict::Malicious));
    }
    Box::leak(Box::new(Snapshot::open(b.to_bytes().unwrap()).unwrap()))
}

/// `count` files of pseudo-random contents under a new directory, and their paths.
fn random_files(seed: u64, count: usize) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let paths = (0..count)
        .map(|i| {
            let path = dir.path().join(format!("f{i}"));
            fs::write(&path, bytes(seed + i as u64, 1 + (i * 7919) % 300_000)).unwrap();
            path
        })
        .collect();
    (dir, paths)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(8))]

    /// Against a SHA-256-only snapshot only SHA-256 is computed, and exactly the listed files
    /// are found; coreutils is the oracle for the digest.
    #[test]
    fn a_sha256_only_snapshot_computes_sha256_alone_and_finds_its_files(
        seed in 0u64..1_000_000,
        listed in proptest::collection::vec(proptest::bool::ANY, 6),
    ) {
        // A snapshot listing no file has no SHA-256 table either: nothing to compute.
        proptest::prop_assume!(listed.iter().any(|l| *l));
        let (_dir, paths) = random_files(seed, listed.len());
        let sums: Vec<String> = paths.iter().map(|p| oracle("sha256sum", p)).collect();
        let digests: Vec<Digest> = sums
            .iter()
            .zip(&listed)
            .filter(|(_, l)| **l)
            .map(|(s, _)| s.parse().unwrap())
            .collect();
        let snapshot = listing(&digests);
        let sha256 = DigestKinds::of(DigestKind::Sha256);
        proptest::prop_assert_eq!(Scanner::new().kinds_for(snapshot), sha256);
        let r = scan(Scanner::new().threads(2), snapshot, paths.clone());
        for ((path, sum), listed) in paths.iter().zip(&sums).zip(&listed) {
            let (d, verdict, matched) = r.files[path];
            proptest::prop_assert_eq!(d.kinds, sha256);
            proptest::prop_assert_eq!(d.get(DigestKind::Sha256).unwrap().to_hex(), sum.clone());
            proptest::prop_assert!(d.get(DigestKind::Md5).is_none());
            proptest::prop_assert!(d.get(DigestKind::Sha1).is_none());
            let want = if *listed { Verdict::Malicious } else { Verdict::Unknown };
            proptest::prop_assert_eq!(verdict, want);
            proptest::prop_assert_eq!(matched, listed.then_some(DigestKind::Sha256));
        }
    }

    /// A snapshot of all three kinds still finds files listed by MD5 alone (or SHA-1
    /// alone), with all three digests computed.
    #[test]
    fn a_three_kind_snapshot_finds_files_listed_by_one_kind(
        seed in 0u64..1_000_000,
        kinds in proptest::collection::vec(0usize..4, 6),
    ) {
        let (_dir, paths) = random_files(seed, kinds.len());
        let tools = ["md5sum", "sha1sum", "sha256sum"];
        let mut digests: Vec<Digest> = kinds
            .iter()
            .zip(&paths)
            .filter(|(k, _)| **k < 3)
            .map(|(k, p)| oracle(tools[*k], p).parse().unwrap())
            .collect();
        // One unrelated digest of each kind, so all three tables are there.
        digests.push(Digest::from_bytes(&[1; 16]).unwrap());
        digests.push(Digest::from_bytes(&[2; 20]).unwrap());
        digests.push(Digest::from_bytes(&[3; 32]).unwrap());
        let snapshot = listing(&digests);
        proptest::prop_assert_eq!(Scanner::new().kinds_for(snapshot), DigestKinds::ALL);
        let r = scan(Scanner::new().threads(2), snapshot, paths.clone());
        for (path, k) in paths.iter().zip(&kinds) {
            let (d, verdict, matched) = r.files[path];
            proptest::prop_assert_eq!(d.kinds, DigestKinds::ALL);
            if *k < 3 {
                proptest::prop_assert_eq!(verdict, Verdict::Malicious);
                proptest::prop_assert_eq!(matched, Some(DigestKind::ALL[*k]));
            } else {
                proptest::prop_assert_eq!(verdict, Verdict::Unknown);
            }
        }
    }
}

/// Asking for more digests adds them; an MD5-only snapshot computes MD5 alone.
#[test]
fn also_compute_adds_kinds_to_what_the_snapshot_lists() {
    let snapshot = listing(&[EICAR_MD5.parse().unwrap()]);
    let md5 = DigestKinds::of(DigestKind::Md5);
    assert_eq!(Scanner::new().kinds_for(snapshot), md5);
    let with_sha256 = Scanner::new().also_compute(DigestKinds::of(DigestKind::Sha256));
    assert_eq!(
        with_sha256.kinds_for(snapshot),
        md5.with(DigestKind::Sha256)
    );
    let t = tree();
    let eicar = t.root().join("eicar.com");
    let r = scan(with_sha256, snapshot, vec![eicar.clone()]);
    let (d, verdict, matched) = r.files[&eicar];
    assert_eq!(
        (verdict, matched),
        (Verdict::Malicious, Some(DigestKind::Md5))
    );
    assert_eq!(
        d.get(DigestKind::Sha256).unwrap().to_hex(),
        oracle("sha256sum", &eicar)
    );
    assert!(d.get(DigestKind::Sha1).is_none());
}
