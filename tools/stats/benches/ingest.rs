//! Statistics intake: what the service does with each `POST /v1/statistics`, in items per
//! second. `decode` (gzip-free JSON parse and validation) is the baseline of the same run;
//! `decode+ingest` adds the committed SQLite transaction (WAL, `synchronous=FULL`) that
//! folds one report into the day's aggregates, on a file in a temporary directory;
//! `decode+ingest, 16 per commit` folds 16 reports per transaction (group commit).
//!
//! Reports carry `REPUTE_BENCH_ITEMS` items each (default 1,000) drawn from a pool of
//! 20,000 SHA-256 digests, so most items hit rows that exist, as prevalence counting does;
//! every report has its own token.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use repute_stats::intake::{decode_submission, Limits};
use repute_stats::schema::REPORT_SCHEMA;
use repute_stats::{Day, DigestType, Item, Report, ReportedVerdict, StatsStore};

const TODAY: Day = Day(20_600);
const POOL: u64 = 20_000;

fn items_per_report() -> usize {
    std::env::var("REPUTE_BENCH_ITEMS")
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(1000)
}

/// A deterministic stream of numbers (splitmix64).
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The JSON body of report number `n`.
fn body(n: u64, items: usize, mix: &mut Mix) -> Vec<u8> {
    let mut chosen = std::collections::BTreeSet::new();
    while chosen.len() < items {
        chosen.insert(mix.next() % POOL);
    }
    let report = Report {
        schema: REPORT_SCHEMA.into(),
        day: TODAY.to_string(),
        token: format!("{n:032x}"),
        snapshot_sequence: 7,
        product_version: "0.1.0".into(),
        items: chosen
            .into_iter()
            .map(|d| Item {
                kind: DigestType::Sha256,
                digest: format!("{d:064x}"),
                verdict: if d % 10 == 0 {
                    ReportedVerdict::Malicious
                } else {
                    ReportedVerdict::Unknown
                },
                count: 1 + (d % 5) as u32,
            })
            .collect(),
    };
    serde_json::to_vec(&report).expect("serialize")
}

fn ingest(c: &mut Criterion) {
    let items = items_per_report();
    let mut mix = Mix(0x5eed_0003);
    let bodies: Vec<Vec<u8>> = (0..64).map(|n| body(n, items, &mut mix)).collect();
    let limits = Limits::default();
    let mut group = c.benchmark_group("statistics");
    group.sample_size(20);
    group.measurement_time(std::time::Duration::from_secs(3));
    group.throughput(Throughput::Elements(items as u64));

    let mut i = 0;
    group.bench_function("decode", |b| {
        b.iter(|| {
            i += 1;
            let body = &bodies[i % bodies.len()];
            black_box(decode_submission(body, false, &limits, TODAY).expect("valid"))
        })
    });

    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = StatsStore::open(&dir.path().join("stats.db")).expect("open store");
    let mut n = 0u64;
    // A new token per report: every one counts as another reporter.
    let next = |n: &mut u64| {
        *n += 1;
        let mut body = bodies[*n as usize % bodies.len()].clone();
        let token = format!("{:032x}", *n + 1_000_000);
        let at = body
            .windows(7)
            .position(|w| w == b"\"token\"")
            .expect("token field")
            + 9;
        body[at..at + 32].copy_from_slice(token.as_bytes());
        decode_submission(&body, false, &limits, TODAY).expect("valid")
    };
    group.bench_function("decode+ingest", |b| {
        b.iter(|| {
            let submission = next(&mut n);
            black_box(store.ingest(&submission, TODAY).expect("ingest"))
        })
    });
    // Group commit, as the service does when reports arrive together: GROUP reports per
    // transaction (one fsync). Throughput is per report, as above.
    group.bench_function(format!("decode+ingest, {GROUP} per commit"), |b| {
        b.iter_custom(|iters| {
            let mut spent = std::time::Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let take = left.min(GROUP as u64);
                left -= take;
                let start = std::time::Instant::now();
                let subs: Vec<_> = (0..take).map(|_| next(&mut n)).collect();
                black_box(store.ingest_many(&subs, TODAY).expect("ingest"));
                spent += start.elapsed();
            }
            spent
        })
    });
    group.finish();
}

/// Reports per transaction in the group-commit case.
const GROUP: usize = 16;

criterion_group!(benches, ingest);
criterion_main!(benches);
