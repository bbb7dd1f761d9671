//! `repute bench`: lookup rates against the machine's memory limit and common baselines.
//!
//! One run generates a snapshot deterministically from a seed (or takes a given one),
//! measures a memory probe (the physical limit for independent random reads), repute's
//! digest and URL lookups per thread count, and `HashSet`, `fst::Set` and binary-search
//! baselines built from the same keys, then prints absolute rates and ratios.

use std::collections::HashSet;
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use repute::filter::prefetch;
use repute::url::{CanonicalUrl, Canonicalizer, EntryKind, Expressions};
use repute::{
    Digest, DigestKind, FeedInfo, RecordId, RecordSpec, Snapshot, SnapshotBuilder, Verdict,
};
use serde::Serialize;

use crate::Outcome;

/// Measure lookup rates against the memory limit and against HashSet, fst and binary
/// search, all on the same keys and queries, in one run.
///
/// Without --snapshot, generates a snapshot of --keys SHA-256 digests (about 1000 distinct
/// records) and --urls URL/domain entries, deterministically from --seed, in a temporary
/// file. Rates are millions of lookups per second of CPU time the measuring threads ran
/// (robust to other load on the machine; wall-clock rates are in the JSON output), summed
/// over threads; each figure is the median of --reps runs. Batched lookups go through the
/// batch API 1024 digests per call. Progress goes to stderr, results to stdout.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Digest keys in the generated snapshot (all SHA-256); suffixes k, M, G.
    #[arg(long, default_value = "10M", value_parser = parse_count)]
    keys: u64,
    /// URL and domain entries in the generated snapshot (half domains, half URLs).
    #[arg(long, default_value = "200k", value_parser = parse_count)]
    urls: u64,
    /// Thread counts to measure, comma-separated.
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    threads: Vec<usize>,
    /// Benchmark this snapshot instead of generating one: its digests are the present keys
    /// (URL checks use generated URLs, mostly unlisted).
    #[arg(long)]
    snapshot: Option<PathBuf>,
    /// Keep the generated snapshot at this path (for later runs with --snapshot).
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Seed of the key, query and URL generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also measure the snapshot copied into 2 MiB huge pages, and the probe on huge pages.
    #[arg(long)]
    hugepages: bool,
    /// Baselines to build from the same keys and measure (comma-separated; `none` for
    /// none). Up to 20 M keys they are built on a second thread while the snapshot builds;
    /// beyond, one after the other, to bound memory.
    #[arg(
        long,
        value_enum,
        default_value = "sorted,fst,hashset",
        value_delimiter = ','
    )]
    baselines: Vec<BaselineKind>,
    /// Distinct digest queries per query set (present, absent).
    #[arg(long, default_value = "2M", value_parser = parse_count)]
    queries: u64,
    /// Seconds per measurement run.
    #[arg(long, default_value_t = 0.25)]
    seconds: f64,
    /// Runs per measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BaselineKind {
    /// Binary search over a sorted `Vec<[u8; 32]>`.
    Sorted,
    /// `fst::Set` of the 32-byte keys.
    Fst,
    /// `HashSet<[u8; 32]>` with the standard hasher.
    Hashset,
    /// No baselines.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// `10M`, `200k`, `1G`, `1_000_000` or a plain number.
fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let (digits, scale) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1_000),
        Some((i, 'm' | 'M')) => (&t[..i], 1_000_000),
        Some((i, 'g' | 'G')) => (&t[..i], 1_000_000_000),
        _ => (t.as_str(), 1),
    };
    let n: f64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a count (examples: 200k, 10M, 1G)"))?;
    if !(0.0..=1e12).contains(&n) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok((n * scale as f64).round() as u64)
}

/// Lookups per call of the batch API.
const BATCH_CALL: usize = 1024;
/// Lookups per timing check in single-lookup loops.
const CHUNK: usize = 4096;
/// Distinct records the generated digests point at.
const RECORDS: u64 = 1000;
/// Size of the memory probe's buffer.
const PROBE_BYTES: usize = 1 << 30;

/// splitmix64's finalizer: a bijection with full avalanche.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// splitmix64: a small, fast, seedable generator.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        Rng(mix(seed ^ mix(stream)))
    }

    #[inline]
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `0..n`.
    #[inline]
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }

    fn label(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[self.below(36) as usize]))
            .collect()
    }
}

/// Streams of the generator, so that each kind of input is independent.
const PRESENT: u64 = 1;
const ABSENT: u64 = 2;
const QUERY: u64 = 3;
const URLS: u64 = 4;
const PROBE: u64 = 5;

/// Key `i` of a stream: random access, so keys need not be stored.
fn key_bytes(seed: u64, stream: u64, i: u64) -> [u8; 32] {
    let base = mix(seed ^ mix(stream.wrapping_mul(0x2545_f491_4f6c_dd1d)));
    let mut out = [0u8; 32];
    for (j, chunk) in out.chunks_exact_mut(8).enumerate() {
        let w = mix(base.wrapping_add((i * 4 + j as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// A digest's bytes, zero-padded to 32 (the baselines' key type).
fn key32(d: &Digest) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..d.as_bytes().len()].copy_from_slice(d.as_bytes());
    k
}

fn progress(msg: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "bench: {msg}");
}

/// The keys a run measures.
#[derive(Clone)]
enum Keys {
    /// Generated SHA-256 keys: key `i` is `key_bytes(seed, PRESENT, i)`.
    Generated { seed: u64, count: u64 },
    /// The digests of a given snapshot (fingerprint, zero-padded).
    Listed(Vec<Digest>),
}

impl Keys {
    fn len(&self) -> u64 {
        match self {
            Keys::Generated { count, .. } => *count,
            Keys::Listed(v) => v.len() as u64,
        }
    }

    fn get(&self, i: u64) -> Digest {
        match self {
            Keys::Generated { seed, .. } => {
                Digest::from_bytes(&key_bytes(*seed, PRESENT, i)).unwrap_or_else(|| unreachable!())
            }
            Keys::Listed(v) => v[i as usize],
        }
    }

    fn for_each(&self, mut f: impl FnMut(Digest)) {
        for i in 0..self.len() {
            f(self.get(i));
        }
    }
}

/// Rates (M/s) of one measured thing, one per thread count: per second of CPU time the
/// threads ran, and per second of wall-clock time.
#[derive(Debug, Clone, Serialize)]
struct Row {
    name: String,
    key: &'static str,
    rates: Vec<f64>,
    wall_rates: Vec<f64>,
}

impl Row {
    fn new(name: impl Into<String>, key: &'static str, rates: Vec<Rate>) -> Row {
        Row {
            name: name.into(),
            key,
            rates: rates.iter().map(|r| r.cpu).collect(),
            wall_rates: rates.iter().map(|r| r.wall).collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Default)]
struct SnapshotFigures {
    path: Option<String>,
    bytes: u64,
    digest_keys: u64,
    url_entries: u64,
    records: u32,
    bytes_per_key: f64,
    digest_table_bytes_per_entry: f64,
    digest_id_width: usize,
    bucket_bits: u32,
    filter_bits_per_key: f64,
    filter_false_positive_rate: f64,
    build_seconds: Option<f64>,
    build_keys_per_second: Option<f64>,
    open_microseconds_median: f64,
    verify_gb_per_second: f64,
    hugepage_load_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
struct Baseline {
    name: &'static str,
    load_seconds: f64,
    bytes_per_key: f64,
}

#[derive(Debug, Clone, Serialize)]
struct Ratio {
    name: String,
    goal: Option<f64>,
    values: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    seed: u64,
    threads: Vec<usize>,
    queries_per_set: u64,
    seconds_per_run: f64,
    runs_per_figure: usize,
    key_kinds: String,
    snapshot: SnapshotFigures,
    baselines: Vec<Baseline>,
    baselines_built_alongside_snapshot: bool,
    rates_millions_per_second: Vec<Row>,
    ratios: Vec<Ratio>,
    peak_rss_bytes: Option<u64>,
}

/// Seconds this thread has run on a CPU (`/proc/thread-self/schedstat`), when the kernel
/// says.
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    (ns > 0).then_some(ns as f64 / 1e9)
}

/// One measurement: rates in millions per second, summed over threads.
#[derive(Debug, Clone, Copy, Default)]
struct Rate {
    /// Operations per second of CPU time each thread actually ran (robust to other load on
    /// the machine; falls back to wall-clock time where the kernel does not report it).
    cpu: f64,
    /// Operations per second of wall-clock time.
    wall: f64,
}

/// Runs on `threads` threads at once, each for about `seconds`, `reps` times; returns the
/// median rates. `make(thread)` gives each thread its worker, which is called with a round
/// number, does one chunk, and returns how many operations it did.
fn measure<F, W>(threads: usize, seconds: f64, reps: usize, make: F) -> Rate
where
    F: Fn(usize) -> W + Sync,
    W: FnMut(usize) -> usize,
{
    let runs: Vec<Rate> = (0..reps.max(1))
        .map(|_| {
            let barrier = Barrier::new(threads);
            let per_thread: Vec<Rate> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let (barrier, make) = (&barrier, &make);
                        s.spawn(move || {
                            let mut work = make(t);
                            barrier.wait();
                            let cpu_start = thread_cpu_seconds();
                            let start = Instant::now();
                            let mut ops = 0usize;
                            let mut round = 0usize;
                            loop {
                                ops += work(round);
                                round += 1;
                                let elapsed = start.elapsed().as_secs_f64();
                                if elapsed >= seconds {
                                    let cpu = match (cpu_start, thread_cpu_seconds()) {
                                        (Some(a), Some(b)) if b > a => b - a,
                                        _ => elapsed,
                                    };
                                    return Rate {
                                        cpu: ops as f64 / cpu / 1e6,
                                        wall: ops as f64 / elapsed / 1e6,
                                    };
                                }
                            }
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_default())
                    .collect()
            });
            Rate {
                cpu: per_thread.iter().map(|r| r.cpu).sum(),
                wall: per_thread.iter().map(|r| r.wall).sum(),
            }
        })
        .collect();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Rate {
        cpu: median(runs.iter().map(|r| r.cpu).collect()),
        wall: median(runs.iter().map(|r| r.wall).collect()),
    }
}

/// A chunk of `items` for thread `t` in round `r`: threads start at different offsets.
fn chunk_of<T>(items: &[T], t: usize, threads: usize, r: usize, size: usize) -> &[T] {
    if items.is_empty() {
        return items;
    }
    let chunks = items.len().div_ceil(size);
    let c = (t * chunks / threads.max(1) + r) % chunks;
    &items[c * size..items.len().min(c * size + size)]
}

/// The memory probe's buffer: 1 GiB of random words, in 4 KiB or huge pages.
fn probe_buffer(seed: u64, huge: bool) -> Result<memmap2::MmapMut> {
    let mut map = memmap2::MmapMut::map_anon(PROBE_BYTES).context("cannot map probe buffer")?;
    #[cfg(target_os = "linux")]
    {
        let advice = if huge {
            memmap2::Advice::HugePage
        } else {
            memmap2::Advice::NoHugePage
        };
        let _ = map.advise(advice);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = huge;
    let mut rng = Rng::new(seed, PROBE);
    for word in map.chunks_exact_mut(8) {
        word.copy_from_slice(&rng.next().to_le_bytes());
    }
    Ok(map)
}

/// Independent random 8-byte reads, 16 at a time with prefetch: `n` reads.
#[inline(never)]
fn probe_reads(buf: &[u8], rng: &mut Rng, n: usize) -> u64 {
    let words = (buf.len() / 8) as u64;
    let mut sum = 0u64;
    for _ in 0..n / 16 {
        let mut at = [0usize; 16];
        for a in at.iter_mut() {
            *a = rng.below(words) as usize * 8;
            prefetch(buf[*a..].as_ptr());
        }
        for a in at {
            sum = sum.wrapping_add(u64::from_le_bytes(
                buf[a..a + 8].try_into().unwrap_or([0; 8]),
            ));
        }
    }
    sum
}

/// What the lookups run against: the snapshot, and the queries.
struct Workload {
    present: Vec<Digest>,
    absent: Vec<Digest>,
    urls: Vec<String>,
}

/// Measures repute's lookups on one snapshot; rows are named with `suffix`.
fn measure_snapshot<D: AsRef<[u8]> + Sync>(
    snap: &Snapshot<D>,
    w: &Workload,
    args: &BenchArgs,
    suffix: &str,
    rows: &mut Vec<Row>,
) {
    let threads = &args.threads;
    let (secs, reps) = (args.seconds, args.reps);
    let single = |set: &[Digest]| {
        threads
            .iter()
            .map(|&n| {
                measure(n, secs, reps, |t| {
                    move |r| {
                        let chunk = chunk_of(set, t, n, r, CHUNK);
                        let mut hits = 0usize;
                        for d in chunk {
                            hits += usize::from(snap.lookup_digest(d).is_some());
                        }
                        black_box(hits);
                        chunk.len()
                    }
                })
            })
            .collect::<Vec<Rate>>()
    };
    let batched = |set: &[Digest]| {
        threads
            .iter()
            .map(|&n| {
                measure(n, secs, reps, |t| {
                    let mut out: Vec<Option<RecordId>> = vec![None; BATCH_CALL];
                    move |r| {
                        let chunk = chunk_of(set, t, n, r, BATCH_CALL);
                        snap.lookup_digests(chunk, &mut out[..chunk.len()]);
                        black_box(&out[..]);
                        chunk.len()
                    }
                })
            })
            .collect::<Vec<Rate>>()
    };
    progress(format!("repute digest lookups{suffix}"));
    rows.push(Row::new(
        format!("repute absent, batched{suffix}"),
        "absent_batched",
        batched(&w.absent),
    ));
    rows.push(Row::new(
        format!("repute present, batched{suffix}"),
        "present_batched",
        batched(&w.present),
    ));
    rows.push(Row::new(
        format!("repute absent, single{suffix}"),
        "absent_single",
        single(&w.absent),
    ));
    rows.push(Row::new(
        format!("repute present, single{suffix}"),
        "present_single",
        single(&w.present),
    ));
    progress(format!("repute URL checks{suffix}"));
    let urls = threads
        .iter()
        .map(|&n| {
            measure(n, secs, reps, |t| {
                let mut expressions = Expressions::new();
                let mut canonicalizer = Canonicalizer::new();
                let mut url = CanonicalUrl::default();
                move |r| {
                    let chunk = chunk_of(&w.urls, t, n, r, 256);
                    let mut hits = 0usize;
                    for u in chunk {
                        if canonicalizer.canonicalize_into(u, &mut url).is_ok() {
                            if let Ok(Some(_)) = snap.lookup_url(&url, &mut expressions) {
                                hits += 1;
                            }
                        }
                    }
                    black_box(hits);
                    chunk.len()
                }
            })
        })
        .collect();
    rows.push(Row::new(format!("repute URL checks{suffix}"), "url", urls));
}

/// Generates the snapshot's URL entries and the URL queries (about 10% listed).
fn url_inputs(seed: u64, entries: u64, queries: usize) -> (Vec<(String, EntryKind)>, Vec<String>) {
    const TLDS: [&str; 6] = ["com", "net", "org", "info", "ru", "xyz"];
    let mut rng = Rng::new(seed, URLS);
    let mut listed = Vec::with_capacity(entries as usize);
    for i in 0..entries {
        let tld = TLDS[rng.below(TLDS.len() as u64) as usize];
        let len = 6 + rng.below(8) as usize;
        let domain = format!("{}.{tld}", rng.label(len));
        if i % 2 == 0 {
            listed.push((domain, EntryKind::Domain));
        } else {
            let dir = rng.label(5);
            let file = rng.label(8);
            listed.push((format!("http://{domain}/{dir}/{file}.php"), EntryKind::Url));
        }
    }
    let mut urls = Vec::with_capacity(queries);
    for _ in 0..queries {
        let pick = rng.below(10);
        let url = if pick == 0 && !listed.is_empty() {
            let (entry, kind) = &listed[rng.below(listed.len() as u64) as usize];
            match kind {
                EntryKind::Domain => format!("http://www.{entry}/{}/index.html", rng.label(4)),
                _ => entry.clone(),
            }
        } else {
            let tld = TLDS[rng.below(TLDS.len() as u64) as usize];
            let len = 6 + rng.below(8) as usize;
            let host = format!("www.{}.{tld}", rng.label(len));
            let host = if pick == 1 { host.to_uppercase() } else { host };
            format!(
                "http://{host}/{}/{}/page{}.html?id={}",
                rng.label(4),
                rng.label(6),
                rng.below(1000),
                rng.below(1_000_000)
            )
        };
        urls.push(url);
    }
    (listed, urls)
}

/// Builds the generated snapshot into `path`; returns (seconds, digest keys added).
fn build_snapshot(keys: &Keys, url_entries: &[(String, EntryKind)], path: &Path) -> Result<f64> {
    progress(format!(
        "building a snapshot of {} SHA-256 digests and {} URL/domain entries",
        keys.len(),
        url_entries.len()
    ));
    let started = Instant::now();
    let mut builder = SnapshotBuilder::new();
    let feed = builder.add_feed(FeedInfo::new("bench", "generated", Verdict::Malicious));
    let verdicts = Verdict::RECORDED;
    let specs: Vec<RecordSpec> = (0..RECORDS)
        .map(|k| {
            let mut s =
                RecordSpec::new(verdicts[(k % 4) as usize]).name(format!("Bench.Family.{k}"));
            s.confidence = Some((k % 101) as u8);
            s
        })
        .collect();
    let mut added = 0u64;
    keys.for_each(|d| {
        let spec = specs
            [(d.as_bytes()[31] as u64 * 256 + d.as_bytes()[30] as u64) as usize % specs.len()]
        .clone();
        builder.add_digest(feed, d, spec);
        added += 1;
        if added.is_multiple_of(10_000_000) {
            progress(format!("  {added} digests added"));
        }
    });
    let url_feed = builder.add_feed(FeedInfo::new("bench-urls", "generated", Verdict::Malicious));
    for (entry, kind) in url_entries {
        let spec = RecordSpec::new(Verdict::Malicious).category("phishing");
        let _ = builder.add_url_entry(url_feed, entry, *kind, spec);
    }
    progress("  sorting and writing");
    let report = builder.write(path).context("cannot build the snapshot")?;
    drop(builder);
    let secs = started.elapsed().as_secs_f64();
    progress(format!("  {} bytes in {secs:.1}s", report.bytes));
    Ok(secs)
}

fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub fn run(args: BenchArgs) -> Result<Outcome> {
    if args.threads.is_empty() || args.threads.contains(&0) {
        bail!("--threads needs thread counts of at least 1, e.g. 1,2");
    }
    let seed = args.seed;
    let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let mut figures = SnapshotFigures::default();
    let url_query_count = 200_000usize;
    let (url_entries, url_queries) = url_inputs(
        seed,
        if args.snapshot.is_some() {
            0
        } else {
            args.urls
        },
        url_query_count,
    );

    // The snapshot: generated, or given. Small enough baselines build meanwhile.
    let mut background = None;
    let (path, keys) = match &args.snapshot {
        Some(p) => {
            progress(format!("reading the digests of {}", p.display()));
            let snap = crate::open_snapshot(p)?;
            let mut list = Vec::new();
            for kind in DigestKind::ALL {
                for (fp, _) in snap.digest_table(kind).iter() {
                    let mut b = [0u8; 32];
                    b[..16].copy_from_slice(&fp.to_be_bytes());
                    list.extend(Digest::from_bytes(&b[..kind.byte_len()]));
                }
            }
            figures.path = Some(p.display().to_string());
            (p.clone(), Keys::Listed(list))
        }
        None => {
            let keys = Keys::Generated {
                seed,
                count: args.keys,
            };
            let path = match &args.keep {
                Some(p) => p.clone(),
                None => tmp.path().join("bench.snap"),
            };
            let which: Vec<BaselineKind> = args.baselines.clone();
            if args.keys <= 20_000_000 && which.iter().any(|b| *b != BaselineKind::None) {
                let keys = keys.clone();
                background = Some(std::thread::spawn(move || build_baselines(&keys, &which)));
            }
            let secs = build_snapshot(&keys, &url_entries, &path)?;
            figures.build_seconds = Some(secs);
            figures.build_keys_per_second = Some((args.keys + args.urls) as f64 / secs);
            (path, keys)
        }
    };
    let n = keys.len();
    if n == 0 {
        bail!("the snapshot has no digests to look up");
    }

    // Queries: present keys drawn at random, absent keys fresh (of the same kinds).
    let q = args.queries.max(BATCH_CALL as u64) as usize;
    let mut rng = Rng::new(seed, QUERY);
    let present: Vec<Digest> = (0..q).map(|_| keys.get(rng.below(n))).collect();
    let absent: Vec<Digest> = (0..q as u64)
        .map(|i| {
            let b = key_bytes(seed, ABSENT, i);
            let len = present[i as usize].kind().byte_len();
            Digest::from_bytes(&b[..len]).unwrap_or_else(|| unreachable!())
        })
        .collect();
    let workload = Workload {
        present,
        absent,
        urls: url_queries,
    };

    // Open, verify, sizes.
    progress("opening and verifying");
    let mut opens: Vec<f64> = (0..200)
        .map(|_| {
            let t = Instant::now();
            let s = crate::open_snapshot(&path);
            let e = t.elapsed().as_secs_f64();
            drop(black_box(s));
            e
        })
        .collect();
    opens.sort_by(f64::total_cmp);
    figures.open_microseconds_median = opens[opens.len() / 2] * 1e6;
    let snap = crate::open_snapshot(&path)?;
    let t = Instant::now();
    snap.verify().context("the snapshot does not verify")?;
    let verify_secs = t.elapsed().as_secs_f64();
    let bytes = snap.as_bytes().len() as u64;
    figures.verify_gb_per_second = bytes as f64 / verify_secs / 1e9;
    figures.bytes = bytes;
    let meta = snap.metadata()?;
    let url_count =
        meta.keys.get("url").copied().unwrap_or(0) + meta.keys.get("domain").copied().unwrap_or(0);
    figures.digest_keys = n;
    figures.url_entries = url_count;
    figures.records = snap.record_count();
    figures.bytes_per_key = bytes as f64 / (n + url_count) as f64;
    let mut table_bytes = 0u64;
    for (name, _, len) in snap.sections() {
        if name.ends_with(" table") {
            table_bytes += len;
        }
    }
    figures.digest_table_bytes_per_entry = table_bytes as f64 / n as f64;
    let main_kind = workload.present[0].kind();
    figures.digest_id_width = snap.digest_table(main_kind).id_width();
    figures.bucket_bits = snap.digest_table(main_kind).bucket_bits();
    figures.filter_bits_per_key = snap.filter_bytes() as f64 * 8.0 / (n + url_count) as f64;

    // Correctness first: every present key found, the filter's false positives counted.
    progress("checking answers");
    let mut out = vec![None; workload.present.len()];
    snap.lookup_digests(&workload.present, &mut out);
    let found = out.iter().filter(|o| o.is_some()).count();
    let single_found = workload
        .present
        .iter()
        .take(100_000)
        .filter(|d| snap.lookup_digest(d).is_some())
        .count();
    snap.lookup_digests(&workload.absent, &mut out);
    let false_hits = out.iter().filter(|o| o.is_some()).count();
    if found != workload.present.len()
        || single_found != workload.present.len().min(100_000)
        || false_hits != 0
    {
        bail!(
            "wrong answers: {found} of {} present keys found, {false_hits} absent keys found",
            workload.present.len()
        );
    }
    let passed = workload
        .absent
        .iter()
        .filter(|d| snap.filter_may_contain(d))
        .count();
    figures.filter_false_positive_rate = passed as f64 / workload.absent.len() as f64;

    // Wait for the baselines building in the background, so they do not disturb the timings.
    let concurrent = background.is_some();
    let prebuilt = background.map(|h| h.join().unwrap_or_default());

    // The memory probe, then repute, per thread count.
    let mut rows = Vec::new();
    progress("memory probe (1 GiB, 4 KiB pages)");
    let probe = probe_buffer(seed, false)?;
    let rates = probe_rates(&probe, &args);
    drop(probe);
    rows.push(Row::new("memory probe, 4 KiB pages", "probe", rates));
    measure_snapshot(&snap, &workload, &args, "", &mut rows);
    if args.hugepages {
        progress("memory probe (1 GiB, huge pages)");
        let probe = probe_buffer(seed, true)?;
        let rates = probe_rates(&probe, &args);
        drop(probe);
        rows.push(Row::new("memory probe, huge pages", "probe_huge", rates));
        progress("loading the snapshot into huge pages");
        let t = Instant::now();
        let huge = Snapshot::load_huge_pages(&path).context("cannot load into huge pages")?;
        figures.hugepage_load_seconds = Some(t.elapsed().as_secs_f64());
        progress(format!(
            "  huge pages advised: {}; anonymous huge pages now: {} MiB",
            huge.storage().huge_pages_advised(),
            anon_huge_pages().unwrap_or(0) >> 20
        ));
        measure_snapshot(&huge, &workload, &args, ", huge pages", &mut rows);
    }
    drop(snap);

    let built = match prebuilt {
        Some(built) => built,
        None => build_baselines(&keys, &args.baselines),
    };
    let baselines = measure_baselines(&built, n, &workload, &args, &mut rows);
    drop(built);

    let ratios = ratios(&rows, &args.threads);
    let report = Report {
        seed,
        threads: args.threads.clone(),
        queries_per_set: q as u64,
        seconds_per_run: args.seconds,
        runs_per_figure: args.reps,
        key_kinds: match &args.snapshot {
            Some(_) => "digests of the given snapshot".into(),
            None => "SHA-256 (generated)".into(),
        },
        snapshot: figures,
        baselines,
        baselines_built_alongside_snapshot: concurrent,
        rates_millions_per_second: rows,
        ratios,
        peak_rss_bytes: peak_rss(),
    };
    let mut stdout = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut stdout, &report)?;
            writeln!(stdout)?;
        }
        Format::Text => print_text(&mut stdout, &report)?,
    }
    Ok(Outcome::Clean)
}

/// `AnonHugePages` of `/proc/meminfo`, in bytes: how much anonymous memory the kernel
/// backs with huge pages right now.
fn anon_huge_pages() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("AnonHugePages:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn probe_rates(buf: &[u8], args: &BenchArgs) -> Vec<Rate> {
    args.threads
        .iter()
        .map(|&n| {
            measure(n, args.seconds, args.reps, |t| {
                let mut rng = Rng::new(args.seed ^ t as u64, PROBE + 1);
                move |_| {
                    black_box(probe_reads(buf, &mut rng, CHUNK));
                    CHUNK
                }
            })
        })
        .collect()
}

/// The baselines, built from the same keys as the snapshot.
#[derive(Default)]
struct BuiltBaselines {
    /// Sorted keys and how long sorting took.
    sorted: Option<(Vec<[u8; 32]>, f64)>,
    /// The `fst::Set` and how long building it took (from sorted keys).
    fst: Option<(fst::Set<Vec<u8>>, f64)>,
    /// The `HashSet` and how long loading it took.
    hashset: Option<(HashSet<[u8; 32]>, f64)>,
}

/// Builds the selected baselines. The sorted keys are kept only when measured themselves.
fn build_baselines(keys: &Keys, which: &[BaselineKind]) -> BuiltBaselines {
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

fn measure_baselines(
    built: &BuiltBaselines,
    n: u64,
    w: &Workload,
    args: &BenchArgs,
    rows: &mut Vec<Row>,
) -> Vec<Baseline> {
    let present: Vec<[u8; 32]> = w.present.iter().map(key32).collect();
    let absent: Vec<[u8; 32]> = w.absent.iter().map(key32).collect();
    let (secs, reps) = (args.seconds, args.reps);
    let rates = |set: &[[u8; 32]], f: &(dyn Fn(&[u8; 32]) -> bool + Sync)| -> Vec<Rate> {
        args.threads
            .iter()
            .map(|&t_n| {
                measure(t_n, secs, reps, |t| {
                    move |r| {
                        let chunk = chunk_of(set, t, t_n, r, CHUNK);
                        let hits = chunk.iter().filter(|k| f(k)).count();
                        black_box(hits);
                        chunk.len()
                    }
                })
            })
            .collect()
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
            rates(&absent, &search),
        ));
        rows.push(Row::new(
            "binary search present",
            "sorted_present",
            rates(&present, &search),
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
            rates(&absent, &contains),
        ));
        rows.push(Row::new(
            "fst::Set present",
            "fst_present",
            rates(&present, &contains),
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
            rates(&absent, &contains),
        ));
        rows.push(Row::new(
            "HashSet present",
            "hashset_present",
            rates(&present, &contains),
        ));
    }
    baselines
}

fn row<'a>(rows: &'a [Row], key: &str) -> Option<&'a Row> {
    rows.iter().find(|r| r.key == key)
}

fn ratios(rows: &[Row], threads: &[usize]) -> Vec<Ratio> {
    let mut out = Vec::new();
    let mut ratio = |name: &str, a: &str, b: &str, goal: Option<f64>| {
        if let (Some(a), Some(b)) = (row(rows, a), row(rows, b)) {
            out.push(Ratio {
                name: name.into(),
                goal,
                values: a.rates.iter().zip(&b.rates).map(|(x, y)| x / y).collect(),
            });
        }
    };
    ratio(
        "absent batched / probe",
        "absent_batched",
        "probe",
        Some(1.0),
    );
    ratio(
        "present batched / probe",
        "present_batched",
        "probe",
        Some(0.4),
    );
    ratio(
        "absent single / HashSet absent",
        "absent_single",
        "hashset_absent",
        None,
    );
    ratio(
        "present single / HashSet present",
        "present_single",
        "hashset_present",
        None,
    );
    ratio(
        "present batched / HashSet present",
        "present_batched",
        "hashset_present",
        None,
    );
    ratio(
        "absent single / fst absent",
        "absent_single",
        "fst_absent",
        None,
    );
    ratio(
        "present single / fst present",
        "present_single",
        "fst_present",
        None,
    );
    ratio(
        "present single / binary search present",
        "present_single",
        "sorted_present",
        None,
    );
    // Scaling: each thread count over the first.
    if threads.len() > 1 {
        for r in rows.iter().filter(|r| {
            matches!(
                r.key,
                "probe"
                    | "absent_batched"
                    | "present_batched"
                    | "absent_single"
                    | "present_single"
                    | "url"
            )
        }) {
            if r.name.contains("huge") {
                continue;
            }
            out.push(Ratio {
                name: format!("{} / {} thread(s): {}", "scaling", threads[0], r.name),
                goal: if r.key == "probe" {
                    None
                } else {
                    Some(0.9 * threads[threads.len() - 1] as f64 / threads[0] as f64)
                },
                values: r.rates.iter().map(|x| x / r.rates[0]).collect(),
            });
        }
    }
    out
}

fn print_text(out: &mut impl Write, r: &Report) -> Result<()> {
    let s = &r.snapshot;
    writeln!(
        out,
        "repute bench: {} digest keys ({}), {} URL/domain entries, seed {}",
        s.digest_keys, r.key_kinds, s.url_entries, r.seed
    )?;
    writeln!(
        out,
        "  {} queries per set; each rate is the median of {} runs of {:.2}s, summed over threads",
        r.queries_per_set, r.runs_per_figure, r.seconds_per_run
    )?;
    writeln!(out)?;
    writeln!(out, "snapshot")?;
    writeln!(
        out,
        "  size                       {:.1} MB, {:.2} bytes/key",
        s.bytes as f64 / 1e6,
        s.bytes_per_key
    )?;
    writeln!(out, "  digest table               {:.2} bytes/entry (16-byte fingerprint, {}-byte record id, {} bucket bits)", s.digest_table_bytes_per_entry, s.digest_id_width, s.bucket_bits)?;
    writeln!(
        out,
        "  filter                     {:.1} bits/key, {:.4}% false positives (measured)",
        s.filter_bits_per_key,
        s.filter_false_positive_rate * 100.0
    )?;
    writeln!(out, "  records                    {}", s.records)?;
    if let (Some(b), Some(k)) = (s.build_seconds, s.build_keys_per_second) {
        writeln!(
            out,
            "  build (in memory + write)  {b:.1}s, {:.2} M keys/s",
            k / 1e6
        )?;
    }
    writeln!(
        out,
        "  open (map)                 {:.1} us median",
        s.open_microseconds_median
    )?;
    writeln!(
        out,
        "  verify                     {:.2} GB/s",
        s.verify_gb_per_second
    )?;
    if let Some(h) = s.hugepage_load_seconds {
        writeln!(out, "  load into huge pages       {h:.2}s")?;
    }
    if !r.baselines.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "baselines (same keys{})        load      bytes/key",
            if r.baselines_built_alongside_snapshot {
                "; loaded on a second thread while the snapshot built"
            } else {
                ""
            }
        )?;
        for b in &r.baselines {
            writeln!(
                out,
                "  {:<36} {:>6.1}s  {:>8.1}",
                b.name, b.load_seconds, b.bytes_per_key
            )?;
        }
    }
    writeln!(out)?;
    write!(out, "{:<38}", "M lookups/s (per CPU-second)")?;
    for t in &r.threads {
        write!(
            out,
            "{:>12}",
            format!("{t} thread{}", if *t == 1 { "" } else { "s" })
        )?;
    }
    writeln!(out)?;
    for row in &r.rates_millions_per_second {
        write!(out, "  {:<36}", row.name)?;
        for v in &row.rates {
            write!(out, "{v:>12.2}")?;
        }
        writeln!(out)?;
    }
    writeln!(out)?;
    write!(out, "{:<38}", "ratios")?;
    for t in &r.threads {
        write!(
            out,
            "{:>12}",
            format!("{t} thread{}", if *t == 1 { "" } else { "s" })
        )?;
    }
    writeln!(out, "{:>10}", "goal")?;
    for ratio in &r.ratios {
        write!(out, "  {:<36}", ratio.name)?;
        for v in &ratio.values {
            write!(out, "{v:>12.2}")?;
        }
        match ratio.goal {
            Some(g) => writeln!(out, "{:>10}", format!(">= {g:.1}"))?,
            None => writeln!(out)?,
        }
    }
    if let Some(p) = r.peak_rss_bytes {
        writeln!(out)?;
        writeln!(
            out,
            "peak memory (RSS) {:.2} GiB",
            p as f64 / (1u64 << 30) as f64
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_suffixes() {
        assert_eq!(parse_count("10M"), Ok(10_000_000));
        assert_eq!(parse_count("200k"), Ok(200_000));
        assert_eq!(parse_count("1_000"), Ok(1000));
        assert_eq!(parse_count("1.5G"), Ok(1_500_000_000));
        assert!(parse_count("ten").is_err());
    }

    #[test]
    fn keys_are_deterministic_and_distinct_per_stream() {
        assert_eq!(key_bytes(1, PRESENT, 5), key_bytes(1, PRESENT, 5));
        assert_ne!(key_bytes(1, PRESENT, 5), key_bytes(1, ABSENT, 5));
        assert_ne!(key_bytes(1, PRESENT, 5), key_bytes(2, PRESENT, 5));
    }
}
