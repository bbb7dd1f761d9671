//! The baselines, `HashSet`, `fst::Set` and binary search, built from the same keys.

use super::*;

/// The baselines, built from the same keys as the snapshot.
#[derive(Default)]
pub(super) struct BuiltBaselines {
    /// Sorted keys and how long sorting took.
    pub(super) sorted: Option<(Vec<[u8; 32]>, f64)>,
    /// The `fst::Set` and how long building it took (from sorted keys).
    pub(super) fst: Option<(fst::Set<Vec<u8>>, f64)>,
    /// The `HashSet` and how long loading it took.
    pub(super) hashset: Option<(HashSet<[u8; 32]>, f64)>,
}

/// Builds the selected baselines. The sorted keys are kept only when measured themselves.
pub(super) fn build_baselines(keys: &Keys, which: &[BaselineKind]) -> BuiltBaselines {
    let n = keys.len();
    let mut built = BuiltBaselines::default();
    let wants = |k: BaselineKind| which.contains(&k);
    if wants(BaselineKind::Sorted) || wants(BaselineKind::Fst) {
        progress(format!("baseline: sorting {n} keys"));
        let t = Instant::now();
        let mut sorted: Vec<[u8; 32]> = Vec::with_capacity(n as usize);
        keys.for_each(|d| sorted.push(key32(&d)));
        sorted.sort_unstable();
        sorted.dedup();
        let sort_secs = t.elapsed().as_secs_f64();
        if wants(BaselineKind::Fst) {
            progress(format!("baseline: building an fst::Set of {n} keys"));
            let t = Instant::now();
            match fst::Set::from_iter(sorted.iter()) {
                Ok(set) => built.fst = Some((set, sort_secs + t.elapsed().as_secs_f64())),
                Err(e) => progress(format!("  fst::Set failed: {e}")),
            }
        }
        if wants(BaselineKind::Sorted) {
            built.sorted = Some((sorted, sort_secs));
        }
    }
    if wants(BaselineKind::Hashset) {
        progress(format!("baseline: loading a HashSet<[u8; 32]> of {n} keys"));
        let t = Instant::now();
        let mut set: HashSet<[u8; 32]> = HashSet::with_capacity(n as usize);
        keys.for_each(|d| {
            set.insert(key32(&d));
        });
        built.hashset = Some((set, t.elapsed().as_secs_f64()));
    }
    built
}

/// Lookups per timing check: smaller than repute's, since a binary search or fst lookup
/// takes about a microsecond and a chunk past the stop runs over the run's time.
const BASELINE_CHUNK: usize = 512;

pub(super) fn measure_baselines(
    built: &BuiltBaselines,
    n: u64,
    w: &Workload,
    args: &BenchArgs,
    rows: &mut Vec<Row>,
) -> Vec<Baseline> {
    // The queries' 32-byte keys are made as they are looked up (a 32-byte copy, next to
    // nothing beside a hash or a search), not stored a second time.
    let (present, absent) = (&w.present[..], &w.absent[..]);
    let (secs, reps) = (args.seconds, args.reps as usize);
    let rates = |set: &[Digest], f: &(dyn Fn(&[u8; 32]) -> bool + Sync)| -> Vec<Rate> {
        measure(&args.threads, secs, reps, |t, n| {
            move |r| {
                let chunk = chunk_of(set, t, n, r, BASELINE_CHUNK);
                let hits = chunk.iter().filter(|d| f(&key32(d))).count();
                black_box(hits);
                chunk.len()
            }
        })
    };
    let mut baselines = Vec::new();
    if let Some((sorted, load)) = &built.sorted {
        progress("baseline: binary search lookups");
        baselines.push(Baseline {
            name: "sorted Vec<[u8; 32]>, binary search",
            load_seconds: *load,
            bytes_per_key: 32.0,
        });
        let search = |k: &[u8; 32]| sorted.binary_search(k).is_ok();
        rows.push(Row::new(
            "binary search absent",
            "sorted_absent",
            rates(absent, &search),
        ));
        rows.push(Row::new(
            "binary search present",
            "sorted_present",
            rates(present, &search),
        ));
    }
    if let Some((set, load)) = &built.fst {
        progress("baseline: fst::Set lookups");
        baselines.push(Baseline {
            name: "fst::Set",
            load_seconds: *load,
            bytes_per_key: set.as_fst().as_bytes().len() as f64 / n as f64,
        });
        let contains = |k: &[u8; 32]| set.contains(k);
        rows.push(Row::new(
            "fst::Set absent",
            "fst_absent",
            rates(absent, &contains),
        ));
        rows.push(Row::new(
            "fst::Set present",
            "fst_present",
            rates(present, &contains),
        ));
    }
    if let Some((set, load)) = &built.hashset {
        progress("baseline: HashSet lookups");
        // hashbrown: a power-of-two number of buckets, 7/8 of them usable; one control
        // byte per bucket.
        let buckets = (set.capacity() as u128 * 8 / 7).next_power_of_two() as f64;
        baselines.push(Baseline {
            name: "HashSet<[u8; 32]> (SipHash)",
            load_seconds: *load,
            bytes_per_key: buckets * 33.0 / n as f64,
        });
        let contains = |k: &[u8; 32]| set.contains(k);
        rows.push(Row::new(
            "HashSet absent",
            "hashset_absent",
            rates(absent, &contains),
        ));
        rows.push(Row::new(
            "HashSet present",
            "hashset_present",
            rates(present, &contains),
        ));
    }
    baselines
}
