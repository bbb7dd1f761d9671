//! A build from generated feeds of a few million keys, with the memory budget forcing spilled
//! runs, checked against an oracle and against the same build done in memory.

use std::collections::HashSet;

use repute::feeds::{read_feed, FeedFormat, FeedOptions};
use repute::{Digest, Snapshot, SnapshotBuilder, Verdict};
use repute_gen::{keys, write_feed, Format};

const KEYS: u64 = 2_000_000;

fn build(
    memory: u64,
    feed: &std::path::Path,
    dir: &std::path::Path,
) -> (Vec<u8>, repute::BuildReport) {
    let mut builder = SnapshotBuilder::with_memory(memory);
    builder.temp_dir(dir).created(1_700_000_000);
    let report = read_feed(
        &mut builder,
        feed,
        &FeedOptions::new(FeedFormat::Hashes),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(report.malformed, 0);
    assert_eq!(report.keys, KEYS);
    builder.build().unwrap()
}

#[test]
fn millions_of_keys_spilled_and_merged_match_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("hashes.txt");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&feed).unwrap());
    write_feed(&mut w, Format::Hashes, KEYS, 7).unwrap();
    drop(w);

    // 16 MiB of sort buffer: several spilled runs.
    let (spilled, report) = build(16 << 20, &feed, dir.path());
    assert!(
        report.spilled_runs >= 3,
        "expected spilled runs, got {}",
        report.spilled_runs
    );
    let (in_memory, report_mem) = build(4 << 30, &feed, dir.path());
    assert_eq!(report_mem.spilled_runs, 0);
    assert!(spilled == in_memory, "spilling changed the snapshot bytes");

    let snap = Snapshot::open(spilled).unwrap();
    snap.verify().unwrap();
    let oracle: HashSet<Digest> = keys(Format::Hashes, KEYS, 7)
        .map(|k| k.parse().unwrap())
        .collect();
    let total: u64 = ["md5", "sha1", "sha256"]
        .iter()
        .map(|k| report.keys[*k])
        .sum();
    assert_eq!(total, oracle.len() as u64);
    assert_eq!(report.duplicates, KEYS - oracle.len() as u64);

    let present: Vec<Digest> = oracle.iter().copied().collect();
    let mut out = vec![None; present.len()];
    snap.lookup_digests(&present, &mut out);
    assert!(
        out.iter().all(Option::is_some),
        "a listed digest was not found"
    );
    for d in present.iter().step_by(997) {
        assert_eq!(snap.lookup_digest(d).unwrap().verdict(), Verdict::Malicious);
    }
    // Absent keys: a different seed's digests (a collision would need a 128-bit match).
    let absent: Vec<Digest> = keys(Format::Hashes, 200_000, 8)
        .map(|k| k.parse().unwrap())
        .filter(|d| !oracle.contains(d))
        .collect();
    let mut out = vec![None; absent.len()];
    snap.lookup_digests(&absent, &mut out);
    assert!(
        out.iter().all(Option::is_none),
        "an absent digest was found"
    );
}
