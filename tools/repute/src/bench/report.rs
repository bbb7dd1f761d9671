//! The report: rows of rates, the ratios against the baselines and the probe, and text output.

use super::*;

/// One measured thing, one figure per thread count. `rates` are the figures' medians (M/s):
/// per CPU-second on one thread, total operations over wall time on several; `wall_rates`
/// are the wall-clock medians on every count; `figures` carry the spread.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Row {
    pub(super) name: String,
    pub(super) key: &'static str,
    /// The probe's buffer size, for a memory probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) probe_bytes: Option<u64>,
    pub(super) rates: Vec<f64>,
    pub(super) wall_rates: Vec<f64>,
    pub(super) figures: Vec<Figure>,
}

/// One figure at one thread count: its median and spread over the repetitions.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Figure {
    pub(super) threads: usize,
    /// `cpu` (operations per second of the CPU time the one thread ran) or `wall` (all
    /// threads' operations over the wall time from their common start to the last one's end).
    pub(super) basis: &'static str,
    pub(super) median: f64,
    pub(super) min: f64,
    pub(super) max: f64,
    /// Total operations over wall time.
    pub(super) wall: Spread,
    /// Each thread's operations per second of its own CPU time, summed over threads. On
    /// several threads this says nothing of whether they ran at the same time.
    pub(super) cpu_rate_sum: Spread,
    /// The share of the wall time the threads were on a CPU (median).
    pub(super) cpu_share: f64,
}

impl Row {
    pub(super) fn new(name: impl Into<String>, key: &'static str, rates: Vec<Rate>) -> Row {
        let figures: Vec<Figure> = rates
            .iter()
            .map(|r| {
                let f = r.figure();
                Figure {
                    threads: r.threads,
                    basis: if r.threads <= 1 { "cpu" } else { "wall" },
                    median: f.median,
                    min: f.min,
                    max: f.max,
                    wall: r.wall(),
                    cpu_rate_sum: r.cpu(),
                    cpu_share: r.cpu_share(),
                }
            })
            .collect();
        Row {
            name: name.into(),
            key,
            probe_bytes: None,
            rates: figures.iter().map(|f| f.median).collect(),
            wall_rates: figures.iter().map(|f| f.wall.median).collect(),
            figures,
        }
    }

    /// A memory probe's row, with its buffer size.
    pub(super) fn probe(
        name: impl Into<String>,
        key: &'static str,
        bytes: u64,
        rates: Vec<Rate>,
    ) -> Row {
        Row {
            probe_bytes: Some(bytes),
            ..Row::new(name, key, rates)
        }
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub(super) struct SnapshotFigures {
    pub(super) path: Option<String>,
    pub(super) bytes: u64,
    pub(super) digest_keys: u64,
    pub(super) url_entries: u64,
    pub(super) records: u32,
    pub(super) bytes_per_key: f64,
    pub(super) digest_table_bytes_per_entry: f64,
    pub(super) digest_id_width: usize,
    pub(super) bucket_bits: u32,
    pub(super) filter_bits_per_key: f64,
    pub(super) filter_false_positive_rate: f64,
    pub(super) build_seconds: Option<f64>,
    pub(super) build_keys_per_second: Option<f64>,
    pub(super) open_microseconds_median: f64,
    pub(super) verify_gb_per_second: f64,
    pub(super) hugepage_load_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct Baseline {
    pub(super) name: &'static str,
    pub(super) load_seconds: f64,
    pub(super) bytes_per_key: f64,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct Ratio {
    pub(super) name: String,
    pub(super) goal: Option<f64>,
    pub(super) values: Vec<f64>,
}

#[derive(Debug, Serialize)]
pub(super) struct Report {
    pub(super) seed: u64,
    pub(super) threads: Vec<usize>,
    pub(super) queries_per_set: u64,
    pub(super) seconds_per_run: f64,
    pub(super) runs_per_figure: usize,
    /// What the rates are: per CPU-second on one thread, over wall time on several.
    pub(super) rate_basis: &'static str,
    pub(super) key_kinds: String,
    pub(super) snapshot: SnapshotFigures,
    pub(super) baselines: Vec<Baseline>,
    pub(super) baselines_built_alongside_snapshot: bool,
    pub(super) rates_millions_per_second: Vec<Row>,
    pub(super) ratios: Vec<Ratio>,
    /// Figures or ratios that no machine can give (a sign of a mis-measurement or of other
    /// load during the run), and thread counts above the machine's cores.
    pub(super) warnings: Vec<String>,
    /// CPUs this process may run on.
    pub(super) cores: usize,
    pub(super) peak_rss_bytes: Option<u64>,
}

pub(super) fn row<'a>(rows: &'a [Row], key: &str) -> Option<&'a Row> {
    rows.iter().find(|r| r.key == key)
}

/// The ratios, each computed from the medians of its two figures.
pub(super) fn ratios(rows: &[Row], threads: &[usize]) -> Vec<Ratio> {
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
        "absent batched / filter-sized probe",
        "absent_batched",
        "probe_filter",
        Some(1.0),
    );
    ratio("absent batched / probe", "absent_batched", "probe", None);
    ratio(
        "present batched / probe",
        "present_batched",
        "probe",
        Some(0.6),
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
    // Scaling: each thread count's wall-time rate over the first's, both measured the same
    // way in the same interleaved repetitions. (Not over the one thread's per-CPU-second
    // figure: in a virtual machine a thread's CPU time also counts the time the host ran
    // something else on its virtual CPU, which understates the one thread and made every
    // figure scale 2.2x on 2 cores.)
    if threads.len() > 1 {
        for r in rows.iter().filter(|r| {
            matches!(
                r.key,
                "probe"
                    | "probe_filter"
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
            let first = r.wall_rates.first().copied().unwrap_or(0.0);
            out.push(Ratio {
                name: format!("scaling / {} thread(s): {}", threads[0], r.name),
                goal: if r.key.starts_with("probe") {
                    None
                } else {
                    Some(0.9 * threads[threads.len() - 1] as f64 / threads[0] as f64)
                },
                values: r.wall_rates.iter().map(|x| x / first).collect(),
            });
        }
    }
    out
}

/// How far a figure may exceed what is physically possible before it is called implausible
/// (the noise of a shared machine).
const TOLERANCE: f64 = 1.05;
/// Below this share of the wall time on a CPU, a multi-thread figure is said to understate.
const LOW_CPU_SHARE: f64 = 0.8;

/// Warnings about figures no machine can give, so that a mis-measurement or a disturbed run
/// shows instead of flattering: N threads above N times one thread, more threads than
/// `cores`, a probe faster than a probe over a smaller buffer, a figure that is not a
/// positive number, and multi-thread figures whose threads were often off the CPU.
pub(super) fn plausibility(rows: &[Row], cores: usize) -> Vec<String> {
    let mut warnings = Vec::new();
    let threads: Vec<usize> = rows
        .first()
        .map(|r| r.figures.iter().map(|f| f.threads).collect())
        .unwrap_or_default();
    if let Some(&most) = threads.iter().max() {
        if most > cores {
            warnings.push(format!(
                "{most} threads measured on a machine with {cores} core(s): figures on more threads \
                 than cores measure time-sharing, not parallel speed"
            ));
        }
    }
    let mut low_share = Vec::new();
    for r in rows {
        for f in &r.figures {
            if !(f.median.is_finite() && f.median > 0.0) {
                warnings.push(format!(
                    "{}, {} thread(s): the figure is {} (no operations measured)",
                    r.name, f.threads, f.median
                ));
            }
        }
        // Against the fewest threads measured: N threads can do at most N/n times n threads,
        // and no more than N times what one thread does per CPU-second.
        let Some(base) = r.figures.iter().min_by_key(|f| f.threads) else {
            continue;
        };
        let best_base = base
            .median
            .max(base.wall.median)
            .max(base.cpu_rate_sum.median);
        for f in r.figures.iter().filter(|f| f.threads > base.threads) {
            let scale = f.threads as f64 / base.threads as f64;
            if best_base > 0.0 && f.wall.median > best_base * scale * TOLERANCE {
                warnings.push(format!(
                    "{}: {} threads did {:.2} M/s, {:.2}x the {} thread(s) figure ({:.2} M/s): more \
                     than {scale:.0}x is impossible unless the data fits the caches of {} cores \
                     and not of fewer, so the smaller figure was slowed by other load or one of \
                     them is mis-measured",
                    r.name,
                    f.threads,
                    f.wall.median,
                    f.wall.median / best_base,
                    base.threads,
                    best_base,
                    f.threads
                ));
            }
            if f.cpu_share < LOW_CPU_SHARE {
                low_share.push(format!(
                    "{} ({} threads, {:.0}%)",
                    r.name,
                    f.threads,
                    f.cpu_share * 100.0
                ));
            }
        }
    }
    if !low_share.is_empty() {
        warnings.push(format!(
            "threads were on a CPU for less than {:.0}% of the wall time (other load on the \
             machine), so these multi-thread figures understate a quiet machine: {}",
            LOW_CPU_SHARE * 100.0,
            low_share.join(", ")
        ));
    }
    // A probe over a bigger buffer cannot be faster than one over a smaller buffer.
    let mut probes: Vec<&Row> = rows
        .iter()
        .filter(|r| r.probe_bytes.is_some() && !r.key.contains("huge"))
        .collect();
    probes.sort_by_key(|r| r.probe_bytes);
    for pair in probes.windows(2) {
        let (small, big) = (pair[0], pair[1]);
        if small.probe_bytes == big.probe_bytes {
            continue;
        }
        for (i, (s, b)) in small.rates.iter().zip(&big.rates).enumerate() {
            if *s > 0.0 && *b > s * TOLERANCE {
                let t = small.figures.get(i).map_or(0, |f| f.threads);
                warnings.push(format!(
                    "{} ({:.2} M/s) is faster than {} ({:.2} M/s) on {t} thread(s), over a \
                     smaller buffer: impossible, so one of them was disturbed",
                    big.name, b, small.name, s
                ));
            }
        }
    }
    warnings
}

/// A figure with its spread: `median [min-max]`.
fn cell(f: &Figure) -> String {
    format!("{:.2} [{:.2}-{:.2}]", f.median, f.min, f.max)
}

/// Bytes in binary units, for names.
pub(super) fn size(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

pub(super) fn print_text(out: &mut impl Write, r: &Report) -> Result<()> {
    let s = &r.snapshot;
    writeln!(
        out,
        "repute bench: {} digest keys ({}), {} URL/domain entries, seed {}",
        s.digest_keys, r.key_kinds, s.url_entries, r.seed
    )?;
    writeln!(
        out,
        "  {} queries per set; each figure is the median [min-max] of {} runs of {:.2}s",
        r.queries_per_set, r.runs_per_figure, r.seconds_per_run
    )?;
    writeln!(out, "  {}", r.rate_basis)?;
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
    write!(out, "{:<46}", "M lookups/s")?;
    for t in &r.threads {
        write!(
            out,
            "{:>24}",
            format!("{t} thread{}", if *t == 1 { " (CPU)" } else { "s (wall)" })
        )?;
    }
    writeln!(out)?;
    for row in &r.rates_millions_per_second {
        write!(out, "  {:<44}", row.name)?;
        for f in &row.figures {
            write!(out, "{:>24}", cell(f))?;
        }
        writeln!(out)?;
    }
    writeln!(out)?;
    write!(out, "{:<72}", "ratios (of medians)")?;
    for t in &r.threads {
        write!(
            out,
            "{:>12}",
            format!("{t} thread{}", if *t == 1 { "" } else { "s" })
        )?;
    }
    writeln!(out, "{:>10}", "goal")?;
    for ratio in &r.ratios {
        write!(out, "  {:<70}", ratio.name)?;
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
    if !r.warnings.is_empty() {
        writeln!(out)?;
        writeln!(out, "warnings (also on stderr)")?;
        for w in &r.warnings {
            writeln!(out, "  {w}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::measure::Sample;
    use super::*;

    /// A figure of `m` M/s on `threads` threads, its threads on a CPU `share` of the time.
    fn rate(threads: usize, m: f64, share: f64) -> Rate {
        let wall = 1.0;
        Rate {
            threads,
            samples: vec![
                Sample {
                    ops: (m * 1e6) as u64,
                    wall,
                    cpu: share * threads as f64 * wall,
                    cpu_rate_sum: if threads == 1 { m } else { m / share },
                };
                3
            ],
        }
    }

    fn row_of(key: &'static str, figures: &[(usize, f64)]) -> Row {
        Row::new(
            key,
            key,
            figures.iter().map(|&(t, m)| rate(t, m, 1.0)).collect(),
        )
    }

    #[test]
    fn sane_figures_give_no_warning() {
        let rows = vec![
            Row::probe(
                "big",
                "probe",
                1 << 30,
                vec![rate(1, 40.0, 1.0), rate(2, 78.0, 1.0)],
            ),
            Row::probe(
                "small",
                "probe_filter",
                1 << 21,
                vec![rate(1, 90.0, 1.0), rate(2, 170.0, 1.0)],
            ),
            row_of("absent_batched", &[(1, 60.0), (2, 119.0)]),
        ];
        assert_eq!(plausibility(&rows, 2), Vec::<String>::new());
    }

    #[test]
    fn more_than_n_times_one_thread_is_flagged() {
        // The old bench's 2.5x on two cores.
        let rows = vec![row_of("probe", &[(1, 40.0), (2, 100.0)])];
        let w = plausibility(&rows, 2);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("2.50x"), "{w:?}");
        // Within the tolerance: not flagged.
        let rows = vec![row_of("probe", &[(1, 40.0), (2, 82.0)])];
        assert!(plausibility(&rows, 2).is_empty());
        // Against the fewest threads measured when one thread is not.
        let rows = vec![row_of("probe", &[(2, 40.0), (4, 100.0)])];
        assert_eq!(plausibility(&rows, 4).len(), 1);
    }

    #[test]
    fn more_threads_than_cores_is_flagged() {
        let rows = vec![row_of("url", &[(1, 1.0), (4, 1.5)])];
        let w = plausibility(&rows, 2);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("4 threads measured on a machine with 2 core(s)"));
    }

    #[test]
    fn a_bigger_probe_faster_than_a_smaller_one_is_flagged() {
        let rows = vec![
            Row::probe("big", "probe", 1 << 30, vec![rate(1, 60.0, 1.0)]),
            Row::probe("small", "probe_filter", 1 << 21, vec![rate(1, 50.0, 1.0)]),
        ];
        let w = plausibility(&rows, 2);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("big (60.00 M/s) is faster than small"),
            "{w:?}"
        );
        // Probes of one size are not compared.
        let rows = vec![
            Row::probe("a", "probe", 1 << 21, vec![rate(1, 60.0, 1.0)]),
            Row::probe("b", "probe_filter", 1 << 21, vec![rate(1, 50.0, 1.0)]),
        ];
        assert!(plausibility(&rows, 2).is_empty());
    }

    #[test]
    fn threads_off_the_cpu_and_empty_figures_are_flagged() {
        let rows = vec![Row::new(
            "busy",
            "absent_single",
            vec![rate(1, 10.0, 1.0), rate(2, 12.0, 0.5)],
        )];
        let w = plausibility(&rows, 2);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("busy (2 threads, 50%)"), "{w:?}");
        let rows = vec![row_of("url", &[(1, 0.0)])];
        let w = plausibility(&rows, 2);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("no operations measured"));
    }

    #[test]
    fn ratios_are_of_medians_and_scaling_is_of_wall_rates() {
        // One thread: 40 M/s per CPU-second, but only 20 M/s over wall time (shared core).
        let one = Rate {
            threads: 1,
            samples: vec![
                Sample {
                    ops: 20_000_000,
                    wall: 1.0,
                    cpu: 0.5,
                    cpu_rate_sum: 40.0,
                },
                Sample {
                    ops: 10_000_000,
                    wall: 1.0,
                    cpu: 0.25,
                    cpu_rate_sum: 40.0,
                },
                Sample {
                    ops: 30_000_000,
                    wall: 1.0,
                    cpu: 1.0,
                    cpu_rate_sum: 30.0,
                },
            ],
        };
        let rows = vec![
            Row::probe(
                "p",
                "probe_filter",
                1 << 21,
                vec![one.clone(), rate(2, 60.0, 1.0)],
            ),
            row_of("absent_batched", &[(1, 80.0), (2, 150.0)]),
        ];
        assert_eq!(rows[0].rates, vec![40.0, 60.0]);
        assert_eq!(rows[0].wall_rates, vec![20.0, 60.0]);
        assert_eq!(rows[0].figures[0].min, 30.0);
        let r = ratios(&rows, &[1, 2]);
        let get = |name: &str| r.iter().find(|x| x.name.starts_with(name)).unwrap();
        assert_eq!(
            get("absent batched / filter-sized probe").values,
            vec![2.0, 2.5]
        );
        assert_eq!(get("scaling / 1 thread(s): p").values, vec![1.0, 3.0]);
    }
}
