use super::storage::HUGE_PAGE;
use super::*;
use crate::{FeedInfo, RecordSpec, SnapshotBuilder, Verdict};

fn sample(n: u64) -> (Vec<u8>, Vec<Digest>) {
    let mut builder = SnapshotBuilder::new();
    let feed = builder.add_feed(FeedInfo::new("t", "hashes", Verdict::Malicious));
    let digests: Vec<Digest> = (0..n)
        .map(|i| {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&crate::filter::mix64(i).to_le_bytes());
            b[8..16].copy_from_slice(&crate::filter::mix64(!i).to_le_bytes());
            Digest::from_bytes(&b).unwrap()
        })
        .collect();
    for (i, d) in digests.iter().enumerate() {
        let spec = RecordSpec::new(Verdict::Malicious).name(format!("n{}", i % 300));
        builder.add_digest(feed, *d, spec);
    }
    (builder.to_bytes().unwrap(), digests)
}

#[test]
fn huge_page_copy_answers_like_the_file() {
    let (bytes, digests) = sample(5000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.snap");
    std::fs::write(&path, &bytes).unwrap();
    let huge = Snapshot::load_huge_pages(&path).unwrap();
    assert_eq!(huge.as_bytes(), &bytes[..]);
    assert_eq!(huge.as_bytes().as_ptr() as usize % HUGE_PAGE, 0);
    huge.verify().unwrap();
    let plain = Snapshot::open(bytes).unwrap();
    for d in &digests {
        let a = huge.lookup_digest(d).map(|r| r.id());
        assert!(a.is_some());
        assert_eq!(a, plain.lookup_digest(d).map(|r| r.id()));
        assert!(huge.filter_may_contain(d));
    }
}

#[test]
fn batches_of_every_length_agree_with_single_lookups() {
    let (bytes, digests) = sample(3000);
    let snap = Snapshot::open(bytes).unwrap();
    let mut queries = Vec::new();
    for (i, d) in digests.iter().enumerate().take(200) {
        queries.push(*d);
        let mut absent = d.as_bytes().to_vec();
        absent[3] ^= (i as u8) | 1;
        queries.push(Digest::from_bytes(&absent).unwrap());
    }
    for len in [0, 1, 15, 16, 17, 63, 64, 65, 400] {
        let q = &queries[..len.min(queries.len())];
        let mut out = vec![None; q.len()];
        snap.lookup_digests(q, &mut out);
        for (d, got) in q.iter().zip(&out) {
            assert_eq!(
                *got,
                snap.lookup_digest(d).map(|r| r.id()),
                "batch of {len}"
            );
        }
    }
}

#[test]
fn runs_of_known_and_unknown_digests_agree_with_single_lookups() {
    // Long runs of found keys switch batches to bypassing the filter, and runs of
    // unknown keys switch them back; neither may change an answer.
    let (bytes, digests) = sample(3000);
    let snap = Snapshot::open(bytes).unwrap();
    let absent: Vec<Digest> = digests
        .iter()
        .map(|d| {
            let mut b = d.as_bytes().to_vec();
            b[5] ^= 0x5a;
            Digest::from_bytes(&b).unwrap()
        })
        .collect();
    let mut queries = Vec::new();
    for run in 0..6 {
        let source = if run % 2 == 0 { &digests } else { &absent };
        queries.extend_from_slice(&source[run * 300..run * 300 + 300]);
    }
    queries.extend_from_slice(&digests[..7]);
    let mut out = vec![None; queries.len()];
    snap.lookup_digests(&queries, &mut out);
    for (d, got) in queries.iter().zip(&out) {
        assert_eq!(*got, snap.lookup_digest(d).map(|r| r.id()));
    }
    assert_eq!(out.iter().filter(|o| o.is_some()).count(), 900 + 7);
}
