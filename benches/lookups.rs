//! Lookup benches: single and batched digest lookups (present and absent keys) and domain
//! lookups, on inputs generated deterministically from a seed.
//!
//! The digest snapshot has 1 M SHA-256 keys; set `REPUTE_BENCH_KEYS` (e.g. `10000000`) for
//! another size. `repute bench` measures the same things against the machine's memory
//! limit and against baselines; these benches track the library's own numbers over time.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use repute::url::{canonicalize, EntryKind, Expressions};
use repute::{Digest, FeedInfo, RecordId, RecordSpec, Snapshot, SnapshotBuilder, Verdict};

const SEED: u64 = 0x5eed_0001;
/// Queries per iteration.
const QUERIES: usize = 4096;

/// Inputs come from the project's seeded generator.
struct Rng(repute_gen::Generator);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn digest(&mut self) -> Digest {
        Digest::from_bytes(&self.0.sha256()).expect("32 bytes is a SHA-256 digest")
    }

    fn label(&mut self) -> String {
        (0..8)
            .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz"[(self.next() % 26) as usize]))
            .collect()
    }
}

fn key_count() -> usize {
    std::env::var("REPUTE_BENCH_KEYS")
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(1_000_000)
}

struct Inputs {
    snapshot: Snapshot<Vec<u8>>,
    present: Vec<Digest>,
    absent: Vec<Digest>,
    listed_hosts: Vec<String>,
    unlisted_hosts: Vec<String>,
}

fn inputs() -> Inputs {
    let n = key_count();
    let mut rng = Rng(repute_gen::Generator::new(SEED));
    let mut builder = SnapshotBuilder::new();
    let feed = builder.add_feed(FeedInfo::new("bench", "hashes", Verdict::Malicious));
    let specs: Vec<RecordSpec> = (0..256)
        .map(|i| RecordSpec::new(Verdict::Malicious).name(format!("Family.{i}")))
        .collect();
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let d = rng.digest();
        builder.add_digest(feed, d, specs[i % specs.len()].clone());
        keys.push(d);
    }
    let domains = builder.add_feed(FeedInfo::new(
        "bench-domains",
        "domains",
        Verdict::Malicious,
    ));
    let mut listed_hosts = Vec::new();
    for _ in 0..100_000 {
        let domain = format!("{}.com", rng.label());
        builder
            .add_url_entry(domains, &domain, EntryKind::Domain, RecordSpec::default())
            .expect("a valid domain");
        listed_hosts.push(format!("http://www.{domain}/"));
    }
    let snapshot = Snapshot::open(builder.to_bytes().expect("the snapshot builds"))
        .expect("the snapshot opens");
    let present = (0..QUERIES)
        .map(|_| keys[(rng.next() % n as u64) as usize])
        .collect();
    let absent = (0..QUERIES).map(|_| rng.digest()).collect();
    let listed_hosts = (0..QUERIES)
        .map(|_| listed_hosts[(rng.next() % listed_hosts.len() as u64) as usize].clone())
        .collect();
    let unlisted_hosts = (0..QUERIES)
        .map(|_| format!("http://www.{}.net/", rng.label()))
        .collect();
    Inputs {
        snapshot,
        present,
        absent,
        listed_hosts,
        unlisted_hosts,
    }
}

fn digests(c: &mut Criterion) {
    let inputs = inputs();
    let snap = &inputs.snapshot;
    let mut group = c.benchmark_group(format!("digests/{}", key_count()));
    group.throughput(Throughput::Elements(QUERIES as u64));
    for (name, set) in [("present", &inputs.present), ("absent", &inputs.absent)] {
        group.bench_function(format!("single/{name}"), |b| {
            b.iter(|| {
                set.iter()
                    .filter(|d| snap.lookup_digest(black_box(d)).is_some())
                    .count()
            })
        });
        group.bench_function(format!("batched/{name}"), |b| {
            b.iter_batched_ref(
                || vec![None::<RecordId>; QUERIES],
                |out| {
                    snap.lookup_digests(black_box(set), out);
                    out.iter().filter(|o| o.is_some()).count()
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();

    let mut group = c.benchmark_group("domains");
    group.throughput(Throughput::Elements(QUERIES as u64));
    for (name, hosts) in [
        ("listed", &inputs.listed_hosts),
        ("unlisted", &inputs.unlisted_hosts),
    ] {
        let urls: Vec<_> = hosts
            .iter()
            .map(|h| canonicalize(h).expect("a valid URL"))
            .collect();
        group.bench_function(name, |b| {
            let mut scratch = Expressions::new();
            b.iter(|| {
                urls.iter()
                    .filter(|u| matches!(snap.lookup_url(black_box(u), &mut scratch), Ok(Some(_))))
                    .count()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, digests);
criterion_main!(benches);
