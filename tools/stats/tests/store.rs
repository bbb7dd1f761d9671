//! The aggregate store against a HashMap oracle: thresholds, counts, token retention.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use repute_stats::intake::{decode_submission, Limits};
use repute_stats::schema::REPORT_SCHEMA;
use repute_stats::{
    Day, DigestType, ExportOptions, Item, Report, ReportedVerdict, StatsStore, Submission,
};

const TODAY: Day = Day(20_600);

fn token(n: usize) -> String {
    format!("{n:032x}")
}

fn report(day: Day, reporter: usize, items: Vec<Item>) -> Submission {
    let r = Report {
        schema: REPORT_SCHEMA.into(),
        day: day.to_string(),
        token: token(reporter),
        snapshot_sequence: 3,
        product_version: "0.1.0".into(),
        items,
    };
    let body = serde_json::to_vec(&r).unwrap();
    decode_submission(&body, false, &Limits::default(), TODAY).unwrap()
}

fn item(digest: u8, verdict: ReportedVerdict, count: u32) -> Item {
    Item {
        kind: DigestType::Sha256,
        digest: format!("{digest:02x}").repeat(32),
        verdict,
        count,
    }
}

fn export(store: &StatsStore, k: u32) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    store
        .export(
            &ExportOptions {
                min_reporters: k,
                since: None,
            },
            &|_, _| None,
            &mut out,
        )
        .unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn k_minus_one_reporters_never_exported_k_are() {
    for k in [1u32, 2, 3, 10] {
        let mut store = StatsStore::open_in_memory().unwrap();
        // Digest 1: k-1 distinct tokens, each reporting many times (counts do not matter).
        for r in 0..(k as usize - 1) {
            for _ in 0..3 {
                store
                    .ingest(
                        &report(TODAY, r, vec![item(1, ReportedVerdict::Unknown, 50)]),
                        TODAY,
                    )
                    .unwrap();
            }
        }
        // Digest 2: exactly k tokens.
        for r in 0..k as usize {
            store
                .ingest(
                    &report(TODAY, 100 + r, vec![item(2, ReportedVerdict::Unknown, 1)]),
                    TODAY,
                )
                .unwrap();
        }
        let lines = export(&store, k);
        let digests: Vec<&str> = lines
            .iter()
            .map(|l| l["digest"].as_str().unwrap())
            .collect();
        assert_eq!(digests, vec!["02".repeat(32)], "k = {k}");
        assert!(!digests.contains(&"01".repeat(32).as_str()));
    }
}

#[test]
fn tokens_are_gone_once_the_day_closes_and_closed_days_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stats.db");
    let mut store = StatsStore::open(&path).unwrap();
    store
        .ingest(
            &report(TODAY, 1, vec![item(1, ReportedVerdict::Malicious, 2)]),
            TODAY,
        )
        .unwrap();
    assert_eq!(store.open_token_rows().unwrap(), 1);
    store.close_days(TODAY.plus(1)).unwrap();
    assert_eq!(
        store.open_token_rows().unwrap(),
        1,
        "yesterday is still open"
    );
    store.close_days(TODAY.plus(2)).unwrap();
    assert_eq!(store.open_token_rows().unwrap(), 0);
    drop(store);
    // Durability: what was acknowledged is there after reopening.
    let store = StatsStore::open(&path).unwrap();
    assert_eq!(export(&store, 1).len(), 1);
    let late = serde_json::to_vec(&Report {
        schema: REPORT_SCHEMA.into(),
        day: TODAY.to_string(),
        token: token(1),
        snapshot_sequence: 1,
        product_version: "0.1.0".into(),
        items: vec![],
    })
    .unwrap();
    assert!(decode_submission(&late, false, &Limits::default(), TODAY.plus(2)).is_err());
}

#[test]
fn relay_forwards_closed_days_once_and_upstream_dedupes_batches() {
    let mut proxy = StatsStore::open_in_memory().unwrap();
    for r in 0..3 {
        proxy
            .ingest(
                &report(TODAY, r, vec![item(7, ReportedVerdict::Unknown, 2)]),
                TODAY,
            )
            .unwrap();
    }
    assert!(
        proxy.pending_relay(TODAY.plus(1), 100).unwrap().is_empty(),
        "day not closed"
    );
    let later = TODAY.plus(2);
    let pending = proxy.pending_relay(later, 100).unwrap();
    assert_eq!(pending.len(), 1);
    let (day, batches) = &pending[0];
    let body = serde_json::to_string(&batches[0]).unwrap();
    assert!(!body.contains(&token(0)), "no token relayed");
    let mut upstream = StatsStore::open_in_memory().unwrap();
    for attempt in 0..2 {
        let sub = decode_submission(body.as_bytes(), false, &Limits::default(), later).unwrap();
        let receipt = upstream.ingest(&sub, later).unwrap();
        assert_eq!(receipt.duplicate, attempt == 1);
    }
    proxy.mark_relayed(*day).unwrap();
    assert!(proxy.pending_relay(later, 100).unwrap().is_empty());
    let lines = export(&upstream, 3);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["count"], 5, "6 sightings, bucketed to 5");
    assert_eq!(lines[0]["reporters"], 2, "3 reporters, bucketed to 2");
}

#[test]
fn wanted_by_list_or_by_prevalence() {
    let mut store = StatsStore::open_in_memory().unwrap();
    let listed = "ab".repeat(32);
    store.set_wanted([listed.as_str(), "not a digest"]).unwrap();
    assert!(store.is_wanted(&listed, None).unwrap());
    for r in 0..2 {
        store
            .ingest(
                &report(TODAY, r, vec![item(9, ReportedVerdict::Unknown, 1)]),
                TODAY,
            )
            .unwrap();
    }
    let d = "09".repeat(32);
    assert!(!store.is_wanted(&d, None).unwrap());
    assert!(!store.is_wanted(&d, Some(3)).unwrap());
    assert!(store.is_wanted(&d, Some(2)).unwrap());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random reports over two days: every exported line agrees with a HashMap oracle of
    /// sightings and daily distinct reporters, and exactly the digests the oracle puts at
    /// or above the threshold are exported.
    #[test]
    fn export_agrees_with_an_oracle(
        reports in prop::collection::vec(
            (0usize..2, 0usize..6, prop::collection::vec((0u8..8, 0usize..3, 1u32..20), 0..6)),
            0..30),
        k in 1u32..4,
        group in 1usize..6,
    ) {
        let mut store = StatsStore::open_in_memory().unwrap();
        // The same reports, group-committed `group` at a time.
        let mut grouped = StatsStore::open_in_memory().unwrap();
        let mut pending = Vec::new();
        let verdicts = [ReportedVerdict::Malicious, ReportedVerdict::Suspicious, ReportedVerdict::Unknown];
        let mut counts: HashMap<String, [u64; 3]> = HashMap::new();
        let mut reporters: HashMap<(String, usize), HashSet<usize>> = HashMap::new();
        for (day_back, reporter, items) in &reports {
            let day = TODAY.plus(-(*day_back as i64));
            let items: Vec<Item> = items.iter().map(|&(d, v, c)| item(d, verdicts[v], c)).collect();
            for it in &items {
                let v = verdicts.iter().position(|x| *x == it.verdict).unwrap();
                counts.entry(it.digest.clone()).or_default()[v] += u64::from(it.count);
                reporters.entry((it.digest.clone(), *day_back)).or_default().insert(*reporter);
            }
            let submission = report(day, *reporter, items);
            let receipt = store.ingest(&submission, TODAY).unwrap();
            pending.push((submission, receipt));
            if pending.len() == group {
                let (subs, receipts): (Vec<_>, Vec<_>) = pending.drain(..).unzip();
                let got: Vec<_> = grouped.ingest_many(&subs, TODAY).unwrap().into_iter().map(Result::unwrap).collect();
                prop_assert_eq!(got, receipts);
            }
        }
        let (subs, _): (Vec<_>, Vec<_>) = pending.drain(..).unzip();
        grouped.ingest_many(&subs, TODAY).unwrap();
        let lines = export(&store, k);
        prop_assert_eq!(&export(&grouped, 1), &export(&store, 1), "group commit answers as one by one");
        let mut expected: Vec<String> = counts.keys().filter(|d| {
            (0..2).any(|day| reporters.get(&((*d).clone(), day)).is_some_and(|s| s.len() as u32 >= k))
        }).cloned().collect();
        expected.sort();
        let got: Vec<String> = lines.iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect();
        prop_assert_eq!(&got, &expected);
        for line in &lines {
            let d = line["digest"].as_str().unwrap().to_string();
            let c = counts[&d];
            let total: u64 = c.iter().sum();
            prop_assert_eq!(line["count"].as_u64().unwrap(), repute_stats::bucket(total));
            let max_rep = (0..2).filter_map(|day| reporters.get(&(d.clone(), day))).map(|s| s.len() as u64).max().unwrap();
            prop_assert_eq!(line["reporters"].as_u64().unwrap(), repute_stats::bucket(max_rep));
            let best = (0..3).fold(0, |b, i| if c[i] > c[b] { i } else { b });
            prop_assert_eq!(line["verdict"].as_str().unwrap(), verdicts[best].as_str());
        }
    }
}

/// Ingest throughput, for the notes (not a pass/fail check): `cargo test -p repute-stats
/// --release --test store -- --ignored --nocapture ingest_rate`.
#[test]
#[ignore]
fn ingest_rate() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StatsStore::open(&dir.path().join("stats.db")).unwrap();
    let reports: Vec<Submission> = (0..50)
        .map(|r| {
            let items = (0..10_000u32)
                .map(|i| Item {
                    kind: DigestType::Sha256,
                    digest: format!("{:064x}", u64::from(i) * 7919 + r as u64 % 3),
                    verdict: ReportedVerdict::Unknown,
                    count: 1,
                })
                .collect();
            report(TODAY, r, items)
        })
        .collect();
    let start = std::time::Instant::now();
    for r in &reports {
        store.ingest(r, TODAY).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "ingested 500000 items in {secs:.2} s: {:.0} items/s",
        500_000.0 / secs
    );
}
