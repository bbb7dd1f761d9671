//! A build on several threads writes the same snapshot bytes and the same reports (rejected
//! lines with their numbers, counts) as a build on one thread.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use repute::feeds::{read_feed, FeedFormat, FeedOptions};
use repute::SnapshotBuilder;

/// The snapshot bytes and every report as JSON, or the error of a failed build.
fn build(
    threads: usize,
    memory: u64,
    strict: bool,
    feeds: &[(FeedFormat, PathBuf)],
    dir: &Path,
) -> Result<(Vec<u8>, String), String> {
    let mut builder = SnapshotBuilder::with_memory(memory);
    builder
        .threads(threads)
        .temp_dir(dir)
        .created(1_700_000_000);
    let mut reports = Vec::new();
    for (format, path) in feeds {
        let mut options = FeedOptions::new(*format);
        options.strict = strict;
        let report =
            read_feed(&mut builder, path, &options, &mut |_| {}).map_err(|e| e.to_string())?;
        reports.push(report);
    }
    let (bytes, report) = builder.build().map_err(|e| e.to_string())?;
    let json = serde_json::to_string(&(reports, report)).map_err(|e| e.to_string())?;
    Ok((bytes, json))
}

fn assert_same_builds(feeds: &[(FeedFormat, PathBuf)], memory: u64, dir: &Path) {
    for strict in [false, true] {
        let one = build(1, memory, strict, feeds, dir);
        for threads in [2, 3] {
            let many = build(threads, memory, strict, feeds, dir);
            match (&one, &many) {
                (Ok((b1, r1)), Ok((b2, r2))) => {
                    assert_eq!(r1, r2, "reports differ with {threads} threads");
                    assert!(b1 == b2, "snapshot bytes differ with {threads} threads");
                }
                _ => assert_eq!(one, many, "outcome differs with {threads} threads"),
            }
        }
    }
}

fn hex(seed: u64, len: usize) -> String {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b"0123456789abcdef"[(x % 16) as usize])
        })
        .collect()
}

/// One line of any of the line formats, good or bad, as bytes (no terminator).
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Digests from a small pool, so keys repeat across lines and feeds.
        (0u64..40, prop::sample::select(vec![32usize, 40, 64]))
            .prop_map(|(seed, len)| hex(seed, len).into_bytes()),
        (0u64..40).prop_map(|seed| format!("{}  file {seed}.bin", hex(seed, 64)).into_bytes()),
        (0u64..40).prop_map(|seed| format!("{}  file", hex(seed, 32)).into_bytes()),
        Just(b"# comment".to_vec()),
        Just(Vec::new()),
        Just(b"not a digest".to_vec()),
        Just(b"abc\xff\xfe".to_vec()),
        (0u64..20).prop_map(|n| format!("http://host{n}.example.com/p/{n}?q").into_bytes()),
        (0u64..20).prop_map(|n| format!("sub{n}.example.org").into_bytes()),
        Just(b"com".to_vec()),
        Just(b"http://[bad".to_vec()),
        (0u64..20).prop_map(|n| format!("0.0.0.0 ads{n}.example.net localhost").into_bytes()),
        Just(b"127.0.0.1 localhost".to_vec()),
    ]
}

fn feed_format() -> impl Strategy<Value = FeedFormat> {
    prop::sample::select(vec![
        FeedFormat::Hashes,
        FeedFormat::Sha256sum,
        FeedFormat::Md5sum,
        FeedFormat::Urls,
        FeedFormat::Domains,
        FeedFormat::Hosts,
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn threads_change_no_byte(
        feeds in prop::collection::vec(
            (feed_format(), prop::collection::vec((line(), any::<bool>()), 0..200)),
            1..4,
        ),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for (i, (format, lines)) in feeds.iter().enumerate() {
            let mut text = Vec::new();
            for (line, crlf) in lines {
                text.extend_from_slice(line);
                text.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
            }
            let path = dir.path().join(format!("feed{i}.txt"));
            std::fs::write(&path, text).unwrap();
            paths.push((*format, path));
        }
        // The smallest budget spills runs of 1024 keys.
        assert_same_builds(&paths, 0, dir.path());
    }
}

/// Several batches of lines, malformed lines among them (an overlong one, bad UTF-8, a last
/// line without a terminator), and sorted runs spilled to disk.
#[test]
fn many_batches_and_spilled_runs_change_no_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..300_000u64 {
        match i {
            _ if i % 997 == 0 => text.push_str("zz not hex\n"),
            _ if i % 5003 == 0 => text.push_str("# a comment\r\n"),
            150_000 => {
                text.push_str(&"f".repeat(70_000));
                text.push('\n');
            }
            _ => {
                // Every 7th key repeats an earlier one.
                let seed = if i % 7 == 0 { i / 7 } else { i };
                text.push_str(&hex(seed, [32, 40, 64][(seed % 3) as usize]));
                text.push('\n');
            }
        }
    }
    text.push_str(&hex(1, 64));
    let mut bytes = text.into_bytes();
    bytes.splice(1000..1000, b"\xff\n".iter().copied());
    let path = dir.path().join("big.txt");
    std::fs::write(&path, bytes).unwrap();
    // A feed whose only bad lines come batches after the first: their numbers must hold.
    let mut late = String::new();
    for i in 1..=250_000u64 {
        match i {
            150_000 => late.push_str(&"e".repeat(70_000)),
            200_001 => late.push_str("late and bad"),
            _ => late.push_str(&hex(i + 1_000_000, 64)),
        }
        late.push('\n');
    }
    let late_path = dir.path().join("late.txt");
    std::fs::write(&late_path, late).unwrap();
    let feeds = [
        (FeedFormat::Hashes, path),
        (FeedFormat::Sha256sum, late_path.clone()),
    ];
    assert_same_builds(&feeds, 1 << 20, dir.path());
    let (_, reports) = build(2, 1 << 20, false, &feeds, dir.path()).unwrap();
    assert!(reports.contains("UTF-8"), "{reports}");
    let late_only = [(FeedFormat::Hashes, late_path)];
    let (_, reports) = build(2, 1 << 20, false, &late_only, dir.path()).unwrap();
    assert!(reports.contains("[150000,\"line longer than"), "{reports}");
    assert!(reports.contains("[200001,\"late: "), "{reports}");
    let strict = build(2, 1 << 20, true, &late_only, dir.path()).unwrap_err();
    assert!(strict.contains("150000"), "{strict}");
}
