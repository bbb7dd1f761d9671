//! Engine benches: lookups through a base and 3 delta layers against the base alone, on
//! inputs generated deterministically from a seed.
//!
//! The base has 1 M SHA-256 keys (`REPUTE_BENCH_KEYS` for another size); each delta adds
//! 0.5% new keys and removes 0.5%. "present" (known) queries are keys of the final set
//! (nearly all in the base), "absent" (unknown) are keys of neither.
//!
//! Before criterion's own measurements, the bench prints the ratio of each layered case to
//! the base alone, measured in the same run by alternating short rounds of the two (so that
//! other load on the machine hits both alike) and taking medians. It ends with the cost of
//! a swap: a view over layers already loaded, and a reload of a state directory that gained
//! a delta (mapping and verifying the new delta included).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use repute::engine::state::{Current, StateDir};
use repute::{
    delta, Digest, Engine, FeedInfo, Found, RecordId, RecordSpec, Snapshot, SnapshotBuilder,
    Verdict, View,
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
    for d in keys {
        // The record follows from the key alone, so that a key the next set keeps keeps
        // its record (a delta then holds the change only).
        b.add_digest(
            feed,
            *d,
            RecordSpec::new(Verdict::Malicious).name(format!("Family.{}", d.as_bytes()[0])),
        );
    }
    Snapshot::open(b.sequence(sequence).to_bytes().expect("build")).expect("open")
}

struct Inputs {
    dir: tempfile::TempDir,
    base: Snapshot<Vec<u8>>,
    base_path: PathBuf,
    deltas: Vec<PathBuf>,
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
        dir,
        base,
        base_path,
        deltas,
        engine,
        present,
        absent,
    }
}

/// Rounds of each side in a paired measurement, and the length of one round.
const ROUNDS: usize = 9;
const ROUND: Duration = Duration::from_millis(40);

/// Lookups per second of `f` (which does `QUERIES` lookups per call) over one round.
fn round_rate(f: &mut dyn FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < ROUND {
        f();
        calls += 1;
    }
    calls as f64 * QUERIES as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Measures `base` and `layered` in alternating rounds and prints both rates and their
/// ratio (median of the rounds' ratios).
fn paired(name: &str, base: &mut dyn FnMut(), layered: &mut dyn FnMut()) {
    base();
    layered();
    let (mut a, mut b, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let x = round_rate(base);
        let y = round_rate(layered);
        a.push(x);
        b.push(y);
        ratio.push(y / x);
    }
    let (lo, hi) = (
        ratio.iter().copied().fold(f64::INFINITY, f64::min),
        ratio.iter().copied().fold(0.0, f64::max),
    );
    eprintln!(
        "engine ratio, {name}: base alone {:.2} M/s, base + {DELTAS} deltas {:.2} M/s: {:.2}x (rounds {lo:.2}-{hi:.2})",
        median(a) / 1e6,
        median(b) / 1e6,
        median(ratio),
    );
}

fn ratios(inputs: &Inputs) {
    let size = |p: &PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
    eprintln!(
        "engine: {} keys in the base ({} bytes), {DELTAS} deltas of {} changes each ({:?} bytes), {QUERIES} queries per call",
        key_count(),
        size(&inputs.base_path),
        key_count() / 200 * 2,
        inputs.deltas.iter().map(size).collect::<Vec<_>>(),
    );
    let mut ids = vec![None::<RecordId>; QUERIES];
    let mut found = vec![None::<Found>; QUERIES];
    for (name, queries) in [("known", &inputs.present), ("unknown", &inputs.absent)] {
        let base = &inputs.base;
        let engine = &inputs.engine;
        paired(
            &format!("{name}, batched"),
            &mut || base.lookup_digests(black_box(queries), &mut ids),
            &mut || engine.load().lookup_digests(black_box(queries), &mut found),
        );
        black_box((&ids, &found));
        paired(
            &format!("{name}, single"),
            &mut || {
                let n = queries
                    .iter()
                    .filter(|d| base.lookup_digest(black_box(d)).is_some())
                    .count();
                black_box(n);
            },
            &mut || {
                let view = engine.load();
                let n = queries
                    .iter()
                    .filter(|d| view.lookup_digest(black_box(d)).is_some())
                    .count();
                black_box(n);
            },
        );
    }
}

/// Swapping: a view over layers already verified, and a reload of a state directory that
/// alternately gains and loses the newest delta (the reload maps and verifies it when it
/// comes back; the layers below are reused).
fn swaps(c: &mut Criterion, inputs: &Inputs) {
    let mut group = c.benchmark_group("engine swap");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(2));
    let layers = inputs.engine.load().layers().to_vec();
    group.bench_function(format!("view of base + {DELTAS} deltas"), |b| {
        b.iter(|| {
            let view = View::new(layers.clone()).expect("view");
            black_box(inputs.engine.swap(view));
        })
    });
    let state = StateDir::create(inputs.dir.path().join("state")).expect("state dir");
    let base = state
        .add(&std::fs::read(&inputs.base_path).expect("read"))
        .expect("add");
    let deltas: Vec<String> = inputs
        .deltas
        .iter()
        .map(|p| state.add(&std::fs::read(p).expect("read")).expect("add"))
        .collect();
    let set = |n: usize| Current {
        sequence: n as u64 + 1,
        base: base.clone(),
        deltas: deltas[..n].to_vec(),
    };
    state.install(&set(DELTAS)).expect("install");
    #[allow(unsafe_code)]
    // SAFETY: the state directory's files are only written by rename.
    let engine = unsafe { Engine::open_state_dir(state.path()) }.expect("engine");
    let delta_bytes = std::fs::metadata(&inputs.deltas[DELTAS - 1])
        .expect("metadata")
        .len();
    group.bench_function(
        format!("reload gaining a delta of {delta_bytes} bytes"),
        |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    state.install(&set(DELTAS - 1)).expect("install");
                    assert!(engine.reload().expect("reload"));
                    state.install(&set(DELTAS)).expect("install");
                    let start = Instant::now();
                    assert!(engine.reload().expect("reload"));
                    spent += start.elapsed();
                }
                spent
            })
        },
    );
    group.finish();
}

fn benches(c: &mut Criterion) {
    let inputs = inputs();
    ratios(&inputs);
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
    swaps(c, &inputs);
}

criterion_group!(engine, benches);
criterion_main!(engine);
