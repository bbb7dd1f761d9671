//! `repute bench`: lookup rates against the machine's memory limit and common baselines.
//!
//! One run generates a snapshot deterministically from a seed (or takes a given one),
//! measures two memory probes (the physical limit for independent random reads over a
//! buffer the size of the snapshot and over one the size of its filter), repute's digest and
//! URL lookups per thread count, and binary-search, `HashSet` and (when asked) `fst::Set`
//! baselines built from the same keys, then prints absolute rates, ratios, and warnings for
//! any figure no machine can give.

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

mod baselines;
mod keys;
mod measure;
mod report;

use baselines::{build_baselines, measure_baselines};
use keys::{build_snapshot, key32, key_bytes, url_inputs, Keys, Rng, ABSENT, PROBE, QUERY};
use measure::{anon_huge_pages, chunk_of, measure, probe_buffer, probe_rates, Rate, Spread};
use report::{plausibility, print_text, ratios, size, Baseline, Report, Row, SnapshotFigures};

/// Measure lookup rates against the memory limit and against binary search, HashSet and
/// fst, all on the same keys and queries, in one run.
///
/// Without --snapshot, generates a snapshot of --keys SHA-256 digests (about 1000 distinct
/// records) and --urls URL/domain entries, deterministically from --seed, in a temporary
/// file. Batched lookups go through the batch API 1024 digests per call. Progress and
/// warnings go to stderr, results to stdout.
///
/// Every figure is measured --reps times (thread counts interleaved within each repetition);
/// the report gives the median and the spread [min-max], and ratios are of medians. On one
/// thread a rate is lookups per second of the CPU time the thread ran (robust to other load
/// on the machine). On N threads it is all threads' lookups over the wall time from a barrier
/// that starts them together to the last one's end: only that shows whether they ran at
/// the same time (the JSON also keeps wall rates on one thread, and the per-thread CPU rates
/// summed on N).
///
/// Probes (independent random 8-byte reads, 16 in flight with prefetch, over a buffer of
/// random words in 4 KiB pages):
///   memory probe, big: over a buffer four times the snapshot's size, at most 1 GiB but
///     never smaller than the snapshot (or --probe-bytes), so that at 10 M keys and more it
///     reaches past the last-level cache as the design's "1 GiB probe" does: what random
///     reads from memory can reach. "present batched / probe" says how close known digests
///     come to one memory access each.
///   memory probe, filter-sized: over a buffer the size of the snapshot's filter, which is
///     all that an unknown digest should touch. "absent batched / filter-sized probe" >= 1.0
///     means unknown digests run at the memory limit of the data they need.
///   With --hugepages, also the big probe on 2 MiB pages.
///
/// Baselines (built from the same keys; "repute X / baseline X" is how many times faster
/// repute is):
///   sorted: binary search over a sorted Vec<[u8; 32]> (cheap to build).
///   hashset: HashSet<[u8; 32]> with the standard SipHash hasher (load time and memory are
///     reported beside it).
///   fst: fst::Set of the 32-byte keys; opt-in, since building it takes about 3 s per
///     million keys.
///
/// Warnings flag ratios that are physically implausible: N threads above N times one
/// thread, more threads than cores, a probe faster than a probe over a smaller buffer, and
/// multi-thread figures whose threads were often off the CPU.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
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
    /// Baselines to build from the same keys and measure (comma-separated: sorted, hashset,
    /// fst; `none` for none). From 4 M to 20 M keys they are built on a second thread while
    /// the snapshot builds; otherwise after repute is measured, to bound memory.
    #[arg(
        long,
        value_enum,
        default_value = "sorted,hashset",
        value_delimiter = ','
    )]
    baselines: Vec<BaselineKind>,
    /// Distinct digest queries per query set (present, absent); by default as many as the
    /// keys, at least 64k and at most 2M.
    #[arg(long, value_parser = parse_count)]
    queries: Option<u64>,
    /// Buffer size of the big memory probe (suffixes k, M, G are powers of 1024, e.g. 1G);
    /// by default four times the snapshot's size, at most 1 GiB, at least the snapshot.
    #[arg(long, value_parser = parse_bytes)]
    probe_bytes: Option<u64>,
    /// Seconds per measurement run.
    #[arg(long, default_value_t = 0.03, value_parser = parse_seconds)]
    seconds: f64,
    /// Runs per figure (the median and the spread are reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    reps: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BaselineKind {
    /// Binary search over a sorted `Vec<[u8; 32]>`.
    Sorted,
    /// `fst::Set` of the 32-byte keys (slow to build: opt-in).
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

/// `1G`, `64M`, `512k` (powers of 1024) or a plain number of bytes.
fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(&t);
    let (digits, scale) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (examples: 64M, 1G)"))?;
    let bytes = n * scale as f64;
    if !(8.0..=(1u64 << 40) as f64).contains(&bytes) {
        return Err(format!("{s:?} is out of range (8 bytes to 1T)"));
    }
    Ok(bytes.round() as u64)
}

/// A positive number of seconds, at most an hour.
fn parse_seconds(s: &str) -> Result<f64, String> {
    let x: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds (example: 0.05)"))?;
    if !(x > 0.0 && x <= 3600.0) {
        return Err(format!("{s:?} is out of range (above 0, at most 3600)"));
    }
    Ok(x)
}

/// Lookups per call of the batch API.
const BATCH_CALL: usize = 1024;
/// Lookups per timing check in single-lookup loops.
const CHUNK: usize = 4096;
/// Key counts at which the baselines build on a second thread while the snapshot builds:
/// below, building them afterwards costs little time and keeps them out of the peak memory
/// of the build and the verify; above, building them one after the other bounds memory.
const ALONGSIDE_FROM: u64 = 4_000_000;
const ALONGSIDE_UP_TO: u64 = 20_000_000;
/// Distinct records the generated digests point at.
const RECORDS: u64 = 1000;

fn progress(msg: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "bench: {msg}");
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
    let (secs, reps) = (args.seconds, args.reps as usize);
    let single = |set: &[Digest]| {
        measure(threads, secs, reps, |t, n| {
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
    };
    let batched = |set: &[Digest]| {
        measure(threads, secs, reps, |t, n| {
            let mut out: Vec<Option<RecordId>> = vec![None; BATCH_CALL];
            move |r| {
                let chunk = chunk_of(set, t, n, r, BATCH_CALL);
                snap.lookup_digests(chunk, &mut out[..chunk.len()]);
                black_box(&out[..]);
                chunk.len()
            }
        })
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
    let urls = measure(threads, secs, reps, |t, n| {
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
    });
    rows.push(Row::new(format!("repute URL checks{suffix}"), "url", urls));
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
            if (ALONGSIDE_FROM..=ALONGSIDE_UP_TO).contains(&args.keys)
                && which.iter().any(|b| *b != BaselineKind::None)
            {
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
    let q = args
        .queries
        .unwrap_or(n.clamp(1 << 16, 2_000_000))
        .max(BATCH_CALL as u64) as usize;
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
    let (big_bytes, big_what) = match args.probe_bytes {
        Some(b) => (b, "given size"),
        None => {
            let b = bytes.saturating_mul(4).min(1 << 30).max(bytes);
            let what = if b == bytes.saturating_mul(4) {
                "4x the snapshot"
            } else if b == bytes {
                "the snapshot's size"
            } else {
                "1 GiB, at most"
            };
            (b, what)
        }
    };
    let filter_bytes = (snap.filter_bytes() as u64).max(4096);
    progress(format!(
        "memory probe ({}, {big_what}, 4 KiB pages)",
        size(big_bytes)
    ));
    let probe = probe_buffer(big_bytes, seed, false)?;
    let rates = probe_rates(&probe, &args);
    drop(probe);
    rows.push(Row::probe(
        format!("memory probe, {} ({big_what})", size(big_bytes)),
        "probe",
        big_bytes,
        rates,
    ));
    progress(format!(
        "memory probe ({}, filter-sized)",
        size(filter_bytes)
    ));
    let probe = probe_buffer(filter_bytes, seed, false)?;
    let rates = probe_rates(&probe, &args);
    drop(probe);
    rows.push(Row::probe(
        format!("memory probe, {} (filter-sized)", size(filter_bytes)),
        "probe_filter",
        filter_bytes,
        rates,
    ));
    measure_snapshot(&snap, &workload, &args, "", &mut rows);
    if args.hugepages {
        progress(format!("memory probe ({}, huge pages)", size(big_bytes)));
        let probe = probe_buffer(big_bytes, seed, true)?;
        let rates = probe_rates(&probe, &args);
        drop(probe);
        rows.push(Row::probe(
            format!("memory probe, {}, huge pages", size(big_bytes)),
            "probe_huge",
            big_bytes,
            rates,
        ));
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
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let warnings = plausibility(&rows, cores);
    for w in &warnings {
        progress(format!("warning: {w}"));
    }
    let report = Report {
        seed,
        threads: args.threads.clone(),
        queries_per_set: q as u64,
        seconds_per_run: args.seconds,
        runs_per_figure: args.reps as usize,
        rate_basis: "1 thread: lookups per CPU-second the thread ran; N threads: all threads' \
                     lookups over the wall time from their common start to the last one's end",
        key_kinds: match &args.snapshot {
            Some(_) => "digests of the given snapshot".into(),
            None => "SHA-256 (generated)".into(),
        },
        snapshot: figures,
        baselines,
        baselines_built_alongside_snapshot: concurrent,
        rates_millions_per_second: rows,
        ratios,
        warnings,
        cores,
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

#[cfg(test)]
mod tests {
    use super::keys::PRESENT;
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
