//! Engine benches: lookups through a base and 3 delta layers against the base alone, on
//! inputs generated deterministically from a seed.
//!
//! The base has 1 M SHA-256 keys (`REPUTE_BENCH_KEYS` for another size); each delta adds
//! 0.5% new keys and removes 0.5%. "present" queries are keys of the final set (nearly all
//! in the base), "absent" are keys of neither.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use repute::{
    delta, Digest, Engine, FeedInfo, Found, RecordId, RecordSpec, Snapshot, SnapshotBuilder,
    Verdict,
};

const SEED: u64 = 0x5eed_0002;
const QUERIES: usize = 4096;
const DELTAS: usize = 3;

fn key_count() -> usize {
    std::env::var("REPUTE_BENCH_KEYS")
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(1_000_000)
}

fn build(keys: &[Digest], sequence: u64) -> Snapshot<Vec<u8>> {
    let mut b = SnapshotBuilder::new();
    let feed = b.add_feed(FeedInfo::new("bench", "hashes", Verdict::Malicious));
    for (i, d) in keys.iter().enumerate() {
        b.add_digest(
            feed,
            *d,
            RecordSpec::new(Verdict::Malicious).name(format!("Family.{}", i % 256)),
        );
    }
    Snapshot::open(b.sequence(sequence).to_bytes().expect("build")).expect("open")
}

struct Inputs {
    _dir: tempfile::TempDir,
    base: Snapshot<Vec<u8>>,
    engine: Engine,
    present: Vec<Digest>,
    absent: Vec<Digest>,
}

fn inputs() -> Inputs {
    let n = key_count();
    let mut rng = repute_gen::Generator::new(SEED);
    let mut digest = || Digest::from_bytes(&rng.sha256()).expect("32 bytes");
    let mut keys: Vec<Digest> = (0..n).map(|_| digest()).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let base = build(&keys, 1);
    let base_path = dir.path().join("base.snap");
    std::fs::write(&base_path, base.as_bytes()).expect("write");
    let mut previous = Snapshot::open(base.as_bytes().to_vec()).expect("open");
    let mut deltas: Vec<PathBuf> = Vec::new();
    for i in 0..DELTAS {
        let change = n / 200;
        keys.drain(..change);
        keys.extend((0..change).map(|_| digest()));
        let next = build(&keys, i as u64 + 2);
        let path = dir.path().join(format!("{i}.delta"));
        delta::diff(&previous, &next, &path).expect("diff");
        deltas.push(path);
        previous = next;
    }
    #[allow(unsafe_code)]
    // SAFETY: the bench's files are not modified while mapped.
    let engine = unsafe { Engine::open(&base_path, &deltas) }.expect("engine");
    let present: Vec<Digest> = (0..QUERIES)
        .map(|i| keys[(i * 7919) % keys.len()])
        .collect();
    let absent: Vec<Digest> = (0..QUERIES).map(|_| digest()).collect();
    Inputs {
        _dir: dir,
        base,
        engine,
        present,
        absent,
    }
}

fn benches(c: &mut Criterion) {
    let inputs = inputs();
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(QUERIES as u64));
    group.sample_size(20);
    group.measurement_time(std::time::Duration::from_secs(2));
    for (name, queries) in [("present", &inputs.present), ("absent", &inputs.absent)] {
        group.bench_function(format!("base alone, batched, {name}"), |b| {
            let mut out = vec![None::<RecordId>; QUERIES];
            b.iter(|| {
                inputs.base.lookup_digests(black_box(queries), &mut out);
                black_box(&out);
            })
        });
        group.bench_function(format!("base + {DELTAS} deltas, batched, {name}"), |b| {
            let mut out = vec![None::<Found>; QUERIES];
            b.iter(|| {
                let view = inputs.engine.load();
                view.lookup_digests(black_box(queries), &mut out);
                black_box(&out);
            })
        });
        group.bench_function(format!("base alone, single, {name}"), |b| {
            b.iter(|| {
                let mut found = 0usize;
                for d in queries.iter() {
                    found += usize::from(inputs.base.lookup_digest(black_box(d)).is_some());
                }
                black_box(found)
            })
        });
        group.bench_function(format!("base + {DELTAS} deltas, single, {name}"), |b| {
            b.iter(|| {
                let view = inputs.engine.load();
                let mut found = 0usize;
                for d in queries.iter() {
                    found += usize::from(view.lookup_digest(black_box(d)).is_some());
                }
                black_box(found)
            })
        });
    }
    group.finish();
}

criterion_group!(engine, benches);
criterion_main!(engine);
