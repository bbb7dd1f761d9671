//! A snapshot written by format v1's builder (bucket-index tables, before home slots), kept
//! in `data/golden-v1.snap`: it still opens, verifies and answers what its feeds say.
//!
//! It was built from `data/feeds.toml`; the oracle here is the feed files themselves.

use repute::digest::TableLayout;
use repute::{Digest, DigestKind, Query, Snapshot, Verdict};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data");

/// The digests listed in a feed file: the first field of each line that parses as one.
fn listed(file: &str) -> Vec<Digest> {
    std::fs::read_to_string(format!("{DATA}/{file}"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|field| field.parse().ok())
        .collect()
}

#[test]
fn golden_v1_snapshot_still_answers() {
    let snap = Snapshot::read(format!("{DATA}/golden-v1.snap")).unwrap();
    snap.verify().unwrap();
    for kind in DigestKind::ALL {
        assert_eq!(
            snap.digest_table(kind).layout(),
            TableLayout::BucketIndex,
            "{kind:?}"
        );
    }
    let trusted: Vec<Digest> = ["md5sums.txt", "sha1sums.txt", "sha256sums.txt"]
        .iter()
        .flat_map(|f| listed(f))
        .collect();
    let malicious = listed("malware-hashes.txt");
    assert!(trusted.len() > 900 && malicious.len() > 300);
    let mut batch = vec![None; trusted.len() + malicious.len()];
    let all: Vec<Digest> = trusted.iter().chain(&malicious).copied().collect();
    snap.lookup_digests(&all, &mut batch);
    for (i, d) in all.iter().enumerate() {
        let want = if i < trusted.len() {
            Verdict::Trusted
        } else {
            Verdict::Malicious
        };
        let hit = snap
            .lookup_digest(d)
            .unwrap_or_else(|| panic!("{d} not found"));
        assert_eq!(hit.verdict(), want, "{d}");
        assert!(batch[i].is_some(), "{d} not found by the batch");
    }
    // Every key its tables list is found, one by one and in a batch.
    let metadata = snap.metadata().unwrap();
    for kind in DigestKind::ALL {
        let table = snap.digest_table(kind);
        assert_eq!(
            Some(&(table.len() as u64)),
            metadata.keys.get(kind.as_str())
        );
        for (fp, id) in table.iter() {
            assert_eq!(table.find(fp), Some(id));
        }
    }
    // Unknown digests and the web sections answer too.
    let unknown: Digest = "0123456789abcdef0123456789abcdef".parse().unwrap();
    assert!(snap.lookup_digest(&unknown).is_none());
    let first_domain = std::fs::read_to_string(format!("{DATA}/bad-domains.txt"))
        .unwrap()
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .unwrap()
        .trim()
        .to_string();
    let hit = snap
        .lookup(&Query::parse(&first_domain).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(hit.record.verdict(), Verdict::Malicious);
}
