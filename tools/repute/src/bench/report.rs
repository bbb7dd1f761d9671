//! The report: rows of rates, the ratios against the baselines and the probe, and text output.

use super::*;

/// Rates (M/s) of one measured thing, one per thread count: per second of CPU time the
/// threads ran, and per second of wall-clock time.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Row {
    pub(super) name: String,
    pub(super) key: &'static str,
    pub(super) rates: Vec<f64>,
    pub(super) wall_rates: Vec<f64>,
}

impl Row {
    pub(super) fn new(name: impl Into<String>, key: &'static str, rates: Vec<Rate>) -> Row {
        Row {
            name: name.into(),
            key,
            rates: rates.iter().map(|r| r.cpu).collect(),
            wall_rates: rates.iter().map(|r| r.wall).collect(),
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
    pub(super) key_kinds: String,
    pub(super) snapshot: SnapshotFigures,
    pub(super) baselines: Vec<Baseline>,
    pub(super) baselines_built_alongside_snapshot: bool,
    pub(super) rates_millions_per_second: Vec<Row>,
    pub(super) ratios: Vec<Ratio>,
    pub(super) peak_rss_bytes: Option<u64>,
}

pub(super) fn row<'a>(rows: &'a [Row], key: &str) -> Option<&'a Row> {
    rows.iter().find(|r| r.key == key)
}

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

pub(super) fn print_text(out: &mut impl Write, r: &Report) -> Result<()> {
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
