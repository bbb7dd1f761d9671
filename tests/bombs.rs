//! Decompression bombs: a small compressed feed that expands beyond the allowed ratio is
//! refused with a clear error; within the ratio, repeated keys cost one entry.

use std::io::Write;

use repute::feeds::{read_feed, FeedFormat, FeedOptions};
use repute::SnapshotBuilder;

/// Lines in the bomb.
const LINES: u64 = ((64 << 20) / (33 * 32768)) * 32768;

/// About 64 MiB of one repeated MD5 line, as Zstandard (a few kB).
fn bomb(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("bomb.txt.zst");
    let file = std::fs::File::create(&path).unwrap();
    let mut enc = zstd::stream::write::Encoder::new(file, 19).unwrap();
    let line = b"44d88612fea8a8f36de82e1278abb02f\n";
    let block: Vec<u8> = line
        .iter()
        .copied()
        .cycle()
        .take(line.len() * 32768)
        .collect();
    for _ in 0..(64 << 20) / block.len() {
        enc.write_all(&block).unwrap();
    }
    enc.finish().unwrap();
    path
}

#[test]
fn a_zstd_bomb_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = bomb(dir.path());
    let compressed = std::fs::metadata(&path).unwrap().len();
    assert!(compressed < 64 << 10, "{compressed}");

    let mut builder = SnapshotBuilder::new();
    let err = read_feed(
        &mut builder,
        &path,
        &FeedOptions::new(FeedFormat::Hashes),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("expands more than 1000:1"), "{err}");

    let mut options = FeedOptions::new(FeedFormat::Hashes);
    options.max_expansion = u64::MAX;
    let mut builder = SnapshotBuilder::with_memory(1 << 20);
    let report = read_feed(&mut builder, &path, &options, &mut |_| {}).unwrap();
    assert_eq!(report.keys, LINES);
    let out = dir.path().join("b.snap");
    let built = builder.write(&out).unwrap();
    assert_eq!(built.spilled_runs, 0, "one repeated key never spills");
    assert_eq!(built.duplicates + 1, LINES);
}
