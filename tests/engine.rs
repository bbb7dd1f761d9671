//! The Engine: layered lookups (base + deltas) agree with a HashMap oracle of the merged
//! set, views swap atomically under load, and a state directory is followed by `reload`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use proptest::prelude::*;
use repute::engine::state::{Current, StateDir};
use repute::url::EntryKind;
use repute::{
    delta, Digest, DigestKind, Engine, FeedInfo, Query, RecordSpec, Snapshot, SnapshotBuilder,
    Verdict,
};

enum Key {
    Digest(Digest),
    Web(String, EntryKind),
}

fn key(u: u32) -> Key {
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (u.wrapping_mul(2_654_435_761).rotate_left(i as u32 % 32) >> 8) as u8 ^ i as u8;
    }
    bytes[0] = (u >> 8) as u8;
    bytes[1] = u as u8;
    match u % 5 {
        0 => Key::Digest(Digest::from_bytes(&bytes[..16]).unwrap()),
        1 => Key::Digest(Digest::from_bytes(&bytes[..20]).unwrap()),
        2 => Key::Digest(Digest::from_bytes(&bytes[..32]).unwrap()),
        3 => Key::Web(
            format!("http://h{}.example.com/p/{u}", u % 7),
            EntryKind::Url,
        ),
        _ => Key::Web(format!("d{u}.example.org"), EntryKind::Domain),
    }
}

/// key -> record variant.
type Set = BTreeMap<u32, u8>;

/// What the model says a key's record is: verdict and name.
fn expected(variant: u8) -> (Verdict, Option<String>) {
    match variant % 3 {
        0 => (Verdict::Malicious, None),
        1 => (Verdict::Suspicious, Some("pua".into())),
        _ => (Verdict::Trusted, Some(format!("v{variant}"))),
    }
}

fn build(set: &Set, sequence: u64) -> Vec<u8> {
    let mut b = SnapshotBuilder::new();
    let feed = b.add_feed(FeedInfo::new("a", "hashes", Verdict::Malicious));
    b.sequence(sequence).created(100 * sequence as i64);
    for (u, variant) in set {
        let (verdict, name) = expected(*variant);
        let mut spec = RecordSpec::new(verdict);
        spec.name = name;
        match key(*u) {
            Key::Digest(d) => b.add_digest(feed, d, spec),
            Key::Web(text, kind) => b.add_url_entry(feed, &text, kind, spec).unwrap(),
        }
    }
    b.to_bytes().unwrap()
}

fn query(u: u32) -> Query {
    match key(u) {
        Key::Digest(d) => Query::Digest(d),
        Key::Web(text, _) => Query::parse(&text).unwrap(),
    }
}

/// Writes snapshots for each set and the deltas between consecutive ones; returns the base
/// path and the delta paths.
fn chain(sets: &[Set], dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let snaps: Vec<Snapshot> = sets
        .iter()
        .enumerate()
        .map(|(i, s)| Snapshot::open(build(s, i as u64 + 1)).unwrap())
        .collect();
    let base = dir.join("0.snap");
    std::fs::write(&base, snaps[0].as_bytes()).unwrap();
    let mut deltas = Vec::new();
    for i in 1..snaps.len() {
        let p = dir.join(format!("{i}.delta"));
        delta::diff(&snaps[i - 1], &snaps[i], &p).unwrap();
        deltas.push(p);
    }
    (base, deltas)
}

fn answer(view: &repute::View, u: u32) -> Option<(Verdict, Option<String>)> {
    view.lookup(&query(u))
        .unwrap()
        .map(|h| (h.record.verdict(), h.record.name().map(str::to_string)))
}

fn edit(set: &Set, edits: &[(u32, Option<u8>)]) -> Set {
    let mut next = set.clone();
    for (u, e) in edits {
        match e {
            Some(v) => {
                next.insert(*u, *v);
            }
            None => {
                next.remove(u);
            }
        }
    }
    next
}

fn edits() -> impl Strategy<Value = Vec<(u32, Option<u8>)>> {
    prop::collection::vec((0..300u32, prop::option::weighted(0.6, 0..6u8)), 0..60)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn layered_lookups_agree_with_a_hashmap_of_the_merged_set(
        base in prop::collection::btree_map(0..300u32, 0..6u8, 0..120),
        e1 in edits(), e2 in edits(), e3 in edits(),
    ) {
        let s1 = edit(&base, &e1);
        let s2 = edit(&s1, &e2);
        let s3 = edit(&s2, &e3);
        let oracle: HashMap<u32, (Verdict, Option<String>)> =
            s3.iter().map(|(u, v)| (*u, expected(*v))).collect();
        let dir = tempfile::tempdir().unwrap();
        let (base_path, deltas) = chain(&[base, s1, s2, s3.clone()], dir.path());
        #[allow(unsafe_code)]
        // SAFETY: the test's files are not modified while mapped.
        let engine = unsafe { Engine::open(&base_path, &deltas) }.unwrap();
        let view = engine.load();
        prop_assert_eq!(view.layers().len(), 4);
        prop_assert_eq!(view.sequence(), 4);
        let mut digests = Vec::new();
        let mut digest_keys = Vec::new();
        for u in 0..300u32 {
            prop_assert_eq!(answer(&view, u), oracle.get(&u).cloned(), "key {}", u);
            if let Key::Digest(d) = key(u) {
                digests.push(d);
                digest_keys.push(u);
            }
        }
        let mut out = vec![None; digests.len()];
        view.lookup_digests(&digests, &mut out);
        for (u, found) in digest_keys.iter().zip(&out) {
            let got = found
                .and_then(|f| view.record(f))
                .map(|r| (r.verdict(), r.name().map(str::to_string)));
            prop_assert_eq!(got, oracle.get(u).cloned(), "batched key {}", u);
        }
        // Range queries list what the merged set lists, with its records.
        for kind in DigestKind::ALL {
            let mut want: BTreeMap<u128, (Verdict, Option<String>)> = BTreeMap::new();
            for (u, v) in &s3 {
                if let Key::Digest(d) = key(*u) {
                    if d.kind() == kind {
                        want.insert(d.fingerprint(), expected(*v));
                    }
                }
            }
            // The whole space, and ranges cut by a fingerprint's top byte (the keys spread
            // over top bytes 0 and 1).
            let ranges = [(0, u128::MAX), (0, (1u128 << 120) - 1), (1u128 << 120, (2u128 << 120) - 1)];
            for (lo, hi) in ranges {
                let got: Vec<(u128, (Verdict, Option<String>))> = view
                    .digest_range(kind, lo, hi)
                    .into_iter()
                    .map(|(fp, f)| {
                        let r = view.record(f).unwrap();
                        (fp, (r.verdict(), r.name().map(str::to_string)))
                    })
                    .collect();
                let want: Vec<_> = want.range(lo..=hi).map(|(fp, a)| (*fp, a.clone())).collect();
                prop_assert_eq!(got, want, "{} range {:x}..={:x}", kind.as_str(), lo, hi);
            }
        }
        // The merged file answers the same.
        let merged = dir.path().join("m.snap");
        let refs: Vec<Snapshot> = deltas.iter().map(|p| Snapshot::read(p).unwrap()).collect();
        let refs: Vec<&Snapshot> = refs.iter().collect();
        delta::merge(&Snapshot::read(&base_path).unwrap(), &refs, &merged).unwrap();
        prop_assert_eq!(std::fs::read(&merged).unwrap(), build(&s3, 4));
    }
}

#[test]
fn layered_batches_agree_with_the_oracle_at_every_length_and_run() {
    // Long runs of known keys switch the base's batch pipeline to bypassing its filter, runs
    // of unknown keys switch it back; keys the deltas add, change and remove sit among them.
    let base: Set = (0..4000).map(|u| (u, (u % 3) as u8)).collect();
    let s1 = edit(
        &base,
        &(0..200)
            .map(|i| (i * 7, if i % 2 == 0 { None } else { Some(4) }))
            .chain((0..100).map(|i| (4000 + i, Some(1))))
            .collect::<Vec<_>>(),
    );
    let s2 = edit(
        &s1,
        &(0..100)
            .map(|i| (4000 + i * 2, None))
            .chain((0..100).map(|i| (i * 7, Some(5))))
            .collect::<Vec<_>>(),
    );
    let s3 = edit(
        &s2,
        &(0..300)
            .map(|i| (i * 13, if i % 3 == 0 { None } else { Some(2) }))
            .collect::<Vec<_>>(),
    );
    let dir = tempfile::tempdir().unwrap();
    let (base_path, deltas) = chain(&[base, s1, s2, s3.clone()], dir.path());
    #[allow(unsafe_code)]
    // SAFETY: the test's files are not modified while mapped.
    let engine = unsafe { Engine::open(&base_path, &deltas) }.unwrap();
    let view = engine.load();
    let digest = |u: u32| match key(u) {
        Key::Digest(d) => Some((u, d)),
        Key::Web(..) => None,
    };
    let mut queries: Vec<(u32, Digest)> = Vec::new();
    for run in 0..8u32 {
        let keys = if run % 2 == 0 {
            run * 500..run * 500 + 500
        } else {
            10_000 + run * 500..10_000 + run * 500 + 500
        };
        queries.extend(keys.filter_map(digest));
    }
    queries.extend((0..1500).filter_map(|i| digest(i * 7 % 4100)));
    let expect = |u: u32| s3.get(&u).map(|v| expected(*v));
    for len in [0, 1, 15, 16, 17, 63, 64, 65, 300, queries.len()] {
        let q: Vec<Digest> = queries[..len].iter().map(|(_, d)| *d).collect();
        let mut out = vec![None; len];
        view.lookup_digests(&q, &mut out);
        for ((u, d), found) in queries[..len].iter().zip(&out) {
            let got = found
                .and_then(|f| view.record(f))
                .map(|r| (r.verdict(), r.name().map(str::to_string)));
            assert_eq!(got, expect(*u), "batch of {len}, key {u}");
            let single = view
                .lookup_digest(d)
                .map(|r| (r.verdict(), r.name().map(str::to_string)));
            assert_eq!(single, got, "key {u}");
        }
    }
}

/// Open file descriptors of this process.
#[cfg(target_os = "linux")]
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Memory mappings of this process that name a file under `dir`.
#[cfg(target_os = "linux")]
fn mappings_under(dir: &Path) -> usize {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|line| line.contains(dir.as_str()))
        .count()
}

#[test]
fn lookups_never_fail_while_views_swap() {
    let a: Set = (0..200).map(|u| (u, (u % 3) as u8)).collect();
    let mut b = a.clone();
    for u in 0..40 {
        b.remove(&(u * 5));
        b.insert(300 + u, 1);
        b.insert(u * 5 + 1, 5);
    }
    let dir = tempfile::tempdir().unwrap();
    let (base, deltas) = chain(&[a.clone(), b.clone()], dir.path());
    let answers = |s: &Set| -> Vec<Option<(Verdict, Option<String>)>> {
        (0..400).map(|u| s.get(&u).map(|v| expected(*v))).collect()
    };
    let (old, new) = (answers(&a), answers(&b));
    let digest_keys: Vec<(usize, Digest)> = (0..400u32)
        .filter_map(|u| match key(u) {
            Key::Digest(d) => Some((u as usize, d)),
            Key::Web(..) => None,
        })
        .collect();
    #[allow(unsafe_code)]
    // SAFETY: the test's files are not modified while mapped.
    let engine = unsafe { Engine::open(&base, &[]) }.unwrap();
    // Warm up once so that lazily opened descriptors (if any) exist before counting.
    #[allow(unsafe_code)]
    // SAFETY: as above.
    unsafe { engine.swap_files(&base, &deltas) }.unwrap();
    #[cfg(target_os = "linux")]
    let (fds_before, maps_before) = (open_fds(), mappings_under(dir.path()));
    #[cfg(target_os = "linux")]
    assert!(maps_before >= 2, "the base and the delta are mapped");
    let stop = AtomicBool::new(false);
    let lookups = AtomicU64::new(0);
    let failures = AtomicU64::new(0);
    let first_failure = std::sync::Mutex::new(None::<String>);
    let fail = |what: String| {
        failures.fetch_add(1, Ordering::Relaxed);
        first_failure.lock().unwrap().get_or_insert(what);
    };
    const UPDATES: usize = 1000;
    std::thread::scope(|scope| {
        // Two threads looking up one key at a time, one looking up batches.
        for t in 0..2u32 {
            let (engine, stop, lookups, old, new, fail) =
                (&engine, &stop, &lookups, &old, &new, &fail);
            scope.spawn(move || {
                let mut u = t;
                while !stop.load(Ordering::Relaxed) {
                    let view = engine.load();
                    let i = (u % 400) as usize;
                    match view.lookup(&query(i as u32)) {
                        Ok(hit) => {
                            let got = hit
                                .map(|h| (h.record.verdict(), h.record.name().map(str::to_string)));
                            if got != old[i] && got != new[i] {
                                fail(format!("key {i}: {got:?}"));
                            }
                        }
                        Err(e) => fail(format!("key {i}: {e}")),
                    }
                    lookups.fetch_add(1, Ordering::Relaxed);
                    u = u.wrapping_add(7);
                }
            });
        }
        let (engine, stop, lookups, old, new, fail, digest_keys) =
            (&engine, &stop, &lookups, &old, &new, &fail, &digest_keys);
        scope.spawn(move || {
            let digests: Vec<Digest> = digest_keys.iter().map(|(_, d)| *d).collect();
            let mut out = vec![None; digests.len()];
            while !stop.load(Ordering::Relaxed) {
                let view = engine.load();
                view.lookup_digests(&digests, &mut out);
                // One view answers the whole batch: all old or all new.
                let got: Vec<_> = out
                    .iter()
                    .map(|f| {
                        f.and_then(|f| view.record(f))
                            .map(|r| (r.verdict(), r.name().map(str::to_string)))
                    })
                    .collect();
                let all = |set: &[Option<(Verdict, Option<String>)>]| {
                    digest_keys
                        .iter()
                        .zip(&got)
                        .all(|((i, _), g)| *g == set[*i])
                };
                if !all(old) && !all(new) {
                    fail(format!(
                        "a batch of sequence {} mixes sets",
                        view.sequence()
                    ));
                }
                lookups.fetch_add(digests.len() as u64, Ordering::Relaxed);
            }
        });
        for i in 0..UPDATES {
            let d: &[PathBuf] = if i % 2 == 0 { &[] } else { &deltas };
            #[allow(unsafe_code)]
            // SAFETY: the test's files are not modified while mapped.
            unsafe { engine.swap_files(&base, d) }.unwrap();
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "failed lookups, the first: {:?}",
        first_failure.lock().unwrap()
    );
    assert!(lookups.load(Ordering::Relaxed) > 0);
    assert_eq!(engine.load().sequence(), 2);
    #[cfg(target_os = "linux")]
    {
        // The readers are gone: every swapped-out view, and its mappings, went with the
        // last of them. Only the view in force maps the test's files, as before the swaps.
        assert_eq!(mappings_under(dir.path()), maps_before);
        // Other tests in this binary open files at the same time: allow a few, where a leak
        // of the swapped-out layers' descriptors would show as about a thousand.
        let fds_after = open_fds();
        assert!(
            fds_after <= fds_before + 8,
            "descriptors grew: {fds_before} -> {fds_after}"
        );
        drop(engine);
        assert_eq!(mappings_under(dir.path()), 0);
    }
}

#[test]
fn reload_follows_the_state_directory() {
    let s1: Set = (0..50).map(|u| (u, 0)).collect();
    let s2 = edit(&s1, &[(1, None), (2, Some(1)), (77, Some(2))]);
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let (base, deltas) = chain(&[s1, s2], &work);
    let state = StateDir::create(dir.path().join("state")).unwrap();
    let base_name = state.add(&std::fs::read(&base).unwrap()).unwrap();
    state
        .install(&Current {
            sequence: 1,
            base: base_name.clone(),
            deltas: vec![],
        })
        .unwrap();
    #[allow(unsafe_code)]
    // SAFETY: the state directory's files are only written by rename.
    let engine = unsafe { Engine::open_state_dir(state.path()) }.unwrap();
    assert_eq!(engine.status().sequence, 1);
    assert!(!engine.reload().unwrap());
    assert_eq!(answer(&engine.load(), 1), Some(expected(0)));
    let delta_name = state.add(&std::fs::read(&deltas[0]).unwrap()).unwrap();
    assert!(delta_name.ends_with(".delta"));
    state
        .install(&Current {
            sequence: 2,
            base: base_name.clone(),
            deltas: vec![delta_name.clone()],
        })
        .unwrap();
    assert!(engine.reload().unwrap());
    let view = engine.load();
    assert_eq!(answer(&view, 1), None);
    assert_eq!(answer(&view, 77), Some(expected(2)));
    let status = engine.status();
    assert_eq!((status.sequence, status.layers), (2, 2));
    assert_eq!(status.base, base_name.trim_end_matches(".snap"));
    assert_eq!(
        status.deltas,
        vec![delta_name.trim_end_matches(".delta").to_string()]
    );
    assert_eq!(status.policy_description, "enabled");
    assert!(status.last_update.as_ref().is_some_and(|u| u.ok));

    // A damaged file in a new set is refused and the view stays.
    let other: Set = (0..5).map(|u| (u, 1)).collect();
    let mut bytes = build(&other, 9);
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    let bad_name = format!("{}.snap", "ab".repeat(32));
    std::fs::write(state.path().join(&bad_name), &bytes).unwrap();
    state
        .install(&Current {
            sequence: 9,
            base: bad_name,
            deltas: vec![],
        })
        .unwrap();
    assert!(engine.reload().is_err());
    assert_eq!(engine.load().sequence(), 2);
    let status = engine.status();
    assert!(status
        .last_update
        .as_ref()
        .is_some_and(|u| !u.ok && u.error.is_some()));
}

#[test]
fn layers_loaded_into_huge_pages_answer_as_mapped_ones() {
    let base: Set = (0..2000).map(|u| (u, (u % 3) as u8)).collect();
    let s1 = edit(
        &base,
        &(0..150)
            .map(|i| (i * 11, if i % 2 == 0 { None } else { Some(4) }))
            .chain((0..50).map(|i| (2000 + i, Some(1))))
            .collect::<Vec<_>>(),
    );
    let oracle: HashMap<u32, (Verdict, Option<String>)> =
        s1.iter().map(|(u, v)| (*u, expected(*v))).collect();
    let dir = tempfile::tempdir().unwrap();
    let (base_path, deltas) = chain(&[base, s1], dir.path());
    let options = repute::EngineOptions::default().with_huge_pages(true);
    #[allow(unsafe_code)]
    // SAFETY: the test's files are not modified while the engine lives (and huge-page
    // layers are copies, not mappings).
    let engine = unsafe { Engine::open_with(&base_path, &deltas, options) }.unwrap();
    let view = engine.load();
    assert_eq!(view.layers().len(), 2);
    for layer in view.layers() {
        assert!(
            matches!(
                layer.snapshot().storage(),
                repute::engine::Storage::HugePages(_)
            ),
            "a layer was not loaded into huge-page memory"
        );
    }
    for u in 0..2100u32 {
        assert_eq!(answer(&view, u), oracle.get(&u).cloned(), "key {u}");
    }
    // A file that is not a snapshot is refused the same way as when mapped.
    let bogus = dir.path().join("bogus.snap");
    std::fs::write(&bogus, b"not a snapshot at all").unwrap();
    let options = repute::EngineOptions::default().with_huge_pages(true);
    #[allow(unsafe_code)]
    // SAFETY: as above.
    let refused = unsafe { Engine::open_with(&bogus, &[], options) };
    assert!(refused.is_err());
}
