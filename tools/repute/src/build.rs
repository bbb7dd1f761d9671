//! `repute build`: feeds in, one snapshot out.

use repute::text::{escape_path, escape_text};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use repute::build::BuildPhase;
use repute::feeds::{read_feed, read_feed_from, Column, CsvColumns, FeedFormat, FeedOptions};
use repute::{BuildReport, FeedReport, SnapshotBuilder, Verdict};
use serde::{Deserialize, Serialize};

use crate::output::Format;
use crate::Outcome;

/// Build a snapshot from feeds.
///
/// Each feed is FORMAT:VERDICT:PATH. VERDICT may be empty to take the format's default
/// (`hashes::bad.txt`): hashes, domains, urls and hosts default to malicious; md5sum,
/// sha1sum and sha256sum to trusted. PATH is everything after the second colon; `-` (or
/// /dev/stdin) reads standard input, plain or gzip/zstd-compressed (not ZIP or NSRL).
/// VERDICT `override` marks the feed as an override (allowlist) feed with the format's
/// default verdict, and `trusted+override` (any verdict) with that verdict: its entries win
/// over everything they cover (`sha256sum:override:local-allowlist.txt`).
///
/// When one key comes from several feeds, an override feed wins, otherwise
/// malicious > suspicious > trusted > known. Malformed lines are skipped and reported with
/// their line numbers (the first few in full); --strict makes any of them an error.
///
/// The snapshot is written to a temporary file beside OUT, synced and renamed, so a failed
/// build never leaves a partial file at OUT. The same feeds give byte-identical snapshots
/// (set --created or SOURCE_DATE_EPOCH to fix the build time).
#[derive(Debug, Args)]
#[command(after_help = "\
Formats:
  hashes, md5sum, sha1sum, sha256sum    hex digests; coreutils checksum output
  domains, urls, hosts                  one domain or URL per line; hosts-file lines
  malwarebazaar, urlhaus, urlhaus-hosts, threatfox
                                        abuse.ch exports (CSV, the published ZIP, hostfile)
  nsrl                                  NSRL RDS v3 SQLite database (verdict known)
  clamav                                .hdb/.hsb (malicious), .hdu/.hsu, .fp/.sfp (trusted, override)
  jsonl, csv                            JSON lines; delimited text with named columns (manifest)
  repute-stats                          the prevalence export of repute stats export
  pip-record                            a Python dist-info/RECORD file (trusted):
                                        path,sha256=<urlsafe base64 or hex>,size
  Compressed feeds (.gz, .zst, .zip) are read as they are.
Verdicts: malicious, suspicious, trusted, known

Examples:
  repute build -o bad.snap --feed hashes::data/malware-hashes.txt
  repute build -o all.snap --feed sha256sum:trusted:SHA256SUMS --feed urls:suspicious:pua-urls.txt
  repute build -o all.snap --manifest feeds.toml --report json

A manifest lists feeds as TOML tables (paths relative to the manifest, and under its
directory unless --allow-outside-paths; only regular files are read):
  [[feed]]
  format = \"hashes\"
  path = \"malware-hashes.txt\"
  verdict = \"malicious\"      # optional, default per format
  source = \"internal\"        # optional, default: the file's stem
  category = \"trojan\"        # optional
  override = false           # optional: this feed's verdicts win every conflict
  min_records = 1000         # optional: fail the build when the feed yields fewer
  online_only = true         # urlhaus only: keep rows whose status is online
  [feed.columns]             # csv only: header names, or positions from 0
  key = \"sha256\"
  name = \"signature\"
  verdict = 2
  header = true
  delimiter = \";\"")]
pub struct BuildArgs {
    /// Where to write the snapshot.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// A feed as FORMAT:VERDICT:PATH (repeatable).
    #[arg(long = "feed", value_name = "FORMAT:VERDICT:PATH")]
    feeds: Vec<String>,
    /// A TOML manifest listing feeds. Its paths are relative to the manifest and must stay
    /// under the manifest's directory (after resolving `..` and symlinks).
    #[arg(long, value_name = "FEEDS.toml")]
    manifest: Option<PathBuf>,
    /// Let manifest paths name files outside the manifest's directory (absolute paths,
    /// `..`, symlinks that lead out).
    #[arg(long)]
    allow_outside_paths: bool,
    /// Fail on the first malformed line instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// How to print the build report: text on stderr, or one JSON object on stdout
    /// (json and jsonl are the same; --format is the same option).
    #[arg(long, visible_alias = "format", value_enum, default_value_t = Format::Text)]
    report: Format,
    /// Build time recorded in the snapshot, Unix seconds (default: SOURCE_DATE_EPOCH, else now).
    #[arg(long, value_name = "UNIX_SECONDS")]
    created: Option<i64>,
    /// Publisher's sequence number recorded in the snapshot.
    #[arg(long, default_value_t = 0)]
    sequence: u64,
    /// When the snapshot stops being trusted (stale), Unix seconds.
    #[arg(long, value_name = "UNIX_SECONDS")]
    expires: Option<i64>,
    /// The publisher's cloud policy, a TOML or JSON file (fields: cloud = enabled |
    /// restricted | disabled, max_per_minute, kinds, until, reason).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Bloom filter bits per key (more bits, fewer false positives).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(4..=64))]
    filter_bits: u32,
    /// Memory for sorting keys (e.g. 4GiB, 512M); beyond it sorted runs spill to disk
    /// [default: a quarter of RAM].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<u64>,
    /// Directory for spilled runs [default: the output's directory].
    #[arg(long, value_name = "DIR")]
    temp_dir: Option<PathBuf>,
    /// Refuse a compressed feed that expands more than this many times its compressed size
    /// (a decompression bomb).
    #[arg(long, value_name = "RATIO", default_value_t = repute::feeds::DEFAULT_MAX_EXPANSION)]
    max_expansion: u64,
    /// Fail when any feed yields fewer good records than this (default 1: an empty or
    /// truncated download must not publish an empty snapshot; 0 allows an empty feed); a
    /// manifest can set it per feed.
    #[arg(long, value_name = "N")]
    min_records: Option<u64>,
    /// Threads that parse feeds and sort keys (0: one per core). The snapshot is the same
    /// bytes whatever the number.
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Layout of the digest tables. `bucket-index` (format v1's, the default): about 18-19
    /// bytes per entry, a hit reads three cache lines. `home-slots`: rows of fingerprint and
    /// record id at a slot computed from the fingerprint, 22-25 bytes per entry, a hit reads
    /// one line or two (single lookups of known digests about 1.2x faster). Readers before
    /// home slots refuse such a snapshot; deltas and merges keep the layout.
    #[arg(long, value_enum, default_value_t = TableLayoutArg::BucketIndex)]
    table_layout: TableLayoutArg,
}

/// `--table-layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TableLayoutArg {
    BucketIndex,
    HomeSlots,
}

/// Checks that `--temp-dir` names a directory a file can be created in, so that a bad one is
/// reported as what it is, not as a failure to write the snapshot.
fn check_temp_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Err(e) => bail!(
            "--temp-dir {}: {e} (give an existing directory)",
            dir.display()
        ),
        Ok(m) if !m.is_dir() => bail!("--temp-dir {}: not a directory", dir.display()),
        Ok(_) => {}
    }
    tempfile::tempfile_in(dir)
        .map(drop)
        .with_context(|| format!("--temp-dir {}: cannot create a file there", dir.display()))
}

/// Parses sizes such as `4GiB`, `512M`, `1g`, `1000000`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (examples: 4GiB, 512M, 1000000)"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {text:?} (use K, M, G or T)"
            ))
        }
    };
    Ok((number * multiplier as f64) as u64)
}

impl BuildArgs {
    /// Whether errors go to standard output as JSON too.
    pub fn json(&self) -> bool {
        self.report.is_json()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(default)]
    feed: Vec<ManifestFeed>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFeed {
    format: String,
    path: PathBuf,
    verdict: Option<String>,
    source: Option<String>,
    category: Option<String>,
    #[serde(default, rename = "override")]
    override_: bool,
    min_records: Option<u64>,
    #[serde(default)]
    online_only: bool,
    columns: Option<ManifestColumns>,
}

/// Columns of a generic `csv` feed: header names, or positions counting from 0.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestColumns {
    key: ColumnRef,
    verdict: Option<ColumnRef>,
    name: Option<ColumnRef>,
    category: Option<ColumnRef>,
    first_seen: Option<ColumnRef>,
    last_seen: Option<ColumnRef>,
    confidence: Option<ColumnRef>,
    #[serde(default = "default_true")]
    header: bool,
    delimiter: Option<String>,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ColumnRef {
    Index(usize),
    Name(String),
}

impl ColumnRef {
    fn column(self) -> Column {
        match self {
            ColumnRef::Index(i) => Column::Index(i),
            ColumnRef::Name(n) => Column::Name(n),
        }
    }
}

impl ManifestColumns {
    fn into_columns(self) -> Result<CsvColumns> {
        let mut c = CsvColumns::key(self.key.column());
        c.verdict = self.verdict.map(ColumnRef::column);
        c.name = self.name.map(ColumnRef::column);
        c.category = self.category.map(ColumnRef::column);
        c.first_seen = self.first_seen.map(ColumnRef::column);
        c.last_seen = self.last_seen.map(ColumnRef::column);
        c.confidence = self.confidence.map(ColumnRef::column);
        c.header = self.header;
        if let Some(d) = self.delimiter {
            let d = if d == "\\t" { "\t".to_string() } else { d };
            let mut chars = d.chars();
            match (chars.next(), chars.next()) {
                (Some(ch), None) if ch.is_ascii() => c.delimiter = ch,
                _ => bail!("columns.delimiter must be one ASCII character, found {d:?}"),
            }
        }
        Ok(c)
    }
}

/// One feed to read.
#[derive(Debug)]
struct FeedSpec {
    path: PathBuf,
    options: FeedOptions,
    min_records: Option<u64>,
}

fn parse_verdict(text: &str) -> Result<Option<Verdict>> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<Verdict>()
        .map(Some)
        .map_err(anyhow::Error::msg)
}

/// Parses the VERDICT of `--feed`: empty, a verdict, `override`, or `VERDICT+override`.
/// Returns the verdict and whether the feed is an override feed.
fn parse_feed_verdict(text: &str) -> Result<(Option<Verdict>, bool)> {
    if text == "override" {
        return Ok((None, true));
    }
    match text.strip_suffix("+override") {
        Some(verdict) => Ok((parse_verdict(verdict)?, true)),
        None => Ok((parse_verdict(text)?, false)),
    }
}

/// Parses `FORMAT:VERDICT:PATH`.
fn parse_feed_arg(arg: &str, strict: bool) -> Result<FeedSpec> {
    let mut parts = arg.splitn(3, ':');
    let (Some(format), Some(verdict), Some(path)) = (parts.next(), parts.next(), parts.next())
    else {
        bail!("--feed {arg:?}: expected FORMAT:VERDICT:PATH (VERDICT may be empty, as in hashes::bad.txt)");
    };
    if path.is_empty() {
        bail!("--feed {arg:?}: no path");
    }
    let format: FeedFormat = format
        .parse()
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("--feed {arg:?}"))?;
    let mut options = FeedOptions::new(format);
    let (verdict, is_override) =
        parse_feed_verdict(verdict).with_context(|| format!("--feed {arg:?}"))?;
    options.verdict = verdict;
    options.r#override = is_override;
    options.strict = strict;
    Ok(FeedSpec {
        path: PathBuf::from(path),
        options,
        min_records: None,
    })
}

/// Resolves a manifest's feed path against the manifest's directory `base`; unless
/// `allow_outside`, the file it names (after `..` and symlinks) must be under `base`.
fn confine(base: &Path, feed: &Path, allow_outside: bool) -> Result<PathBuf> {
    let joined = base.join(feed);
    if allow_outside {
        return Ok(joined);
    }
    let dir = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve the manifest's directory {}", base.display()))?;
    let real = joined
        .canonicalize()
        .with_context(|| format!("path {}", escape_path(feed)))?;
    if !real.starts_with(&dir) {
        bail!(
            "path {} resolves to {}, outside the manifest's directory {}; refusing to read it \
             (--allow-outside-paths allows it)",
            escape_path(feed),
            escape_path(&real),
            escape_path(&dir)
        );
    }
    Ok(joined)
}

fn read_manifest(path: &Path, strict: bool, allow_outside: bool) -> Result<Vec<FeedSpec>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read manifest {}", path.display()))?;
    let manifest: Manifest =
        toml::from_str(&text).with_context(|| format!("manifest {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new(""));
    let mut specs = Vec::new();
    for (i, f) in manifest.feed.into_iter().enumerate() {
        let at = || format!("manifest {}: feed {}", path.display(), i + 1);
        let format: FeedFormat = f
            .format
            .parse()
            .map_err(anyhow::Error::msg)
            .with_context(at)?;
        let mut options = FeedOptions::new(format);
        options.verdict = parse_verdict(f.verdict.as_deref().unwrap_or("")).with_context(at)?;
        options.source = f.source;
        options.category = f.category;
        options.r#override = f.override_;
        options.strict = strict;
        options.online_only = f.online_only;
        if let Some(columns) = f.columns {
            options.columns = Some(columns.into_columns().with_context(at)?);
        }
        let feed_path = confine(base, &f.path, allow_outside).with_context(at)?;
        specs.push(FeedSpec {
            path: feed_path,
            options,
            min_records: f.min_records,
        });
    }
    Ok(specs)
}

/// Whether a feed path names standard input: `-`, or `/dev/stdin` (often a pipe, which
/// cannot be read as a file).
fn is_stdin(path: &Path) -> bool {
    path == Path::new("-") || path == Path::new("/dev/stdin")
}

fn created_time(arg: Option<i64>) -> Result<i64> {
    if let Some(t) = arg {
        return Ok(t);
    }
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        return epoch
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={epoch:?} is not a number of seconds"));
    }
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64))
}

#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    output: String,
    feeds: &'a [FeedReport],
    build: &'a BuildReport,
    seconds: f64,
}

pub fn run(args: BuildArgs) -> Result<Outcome> {
    repute::build::publish::remove_on_signals();
    let mut specs: Vec<FeedSpec> = Vec::new();
    if let Some(m) = &args.manifest {
        specs.extend(read_manifest(m, args.strict, args.allow_outside_paths)?);
    }
    for f in &args.feeds {
        specs.push(parse_feed_arg(f, args.strict)?);
    }
    if specs.is_empty() {
        bail!("no feeds given: use --feed FORMAT:VERDICT:PATH or --manifest FEEDS.toml (see repute build --help)");
    }
    let started = Instant::now();
    let mut builder = match args.memory {
        Some(bytes) => SnapshotBuilder::with_memory(bytes),
        None => SnapshotBuilder::new(),
    };
    let temp_dir = match &args.temp_dir {
        Some(d) => {
            check_temp_dir(d)?;
            d.clone()
        }
        None => match args.output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        },
    };
    builder
        .threads(args.threads)
        .table_layout(match args.table_layout {
            TableLayoutArg::BucketIndex => repute::digest::TableLayout::BucketIndex,
            TableLayoutArg::HomeSlots => repute::digest::TableLayout::HomeSlots,
        })
        .temp_dir(temp_dir)
        .created(created_time(args.created)?)
        .sequence(args.sequence)
        .expires(args.expires)
        .policy(
            args.policy
                .as_deref()
                .map(crate::policy::read_policy)
                .transpose()?,
        )
        .bits_per_key(args.filter_bits);
    let show_progress = std::io::stderr().is_terminal();
    let mut reports = Vec::new();
    for spec in &mut specs {
        spec.options.max_expansion = args.max_expansion;
    }
    for spec in &specs {
        let total = std::fs::metadata(&spec.path).map(|m| m.len()).unwrap_or(0);
        let bar = if show_progress {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix("reading");
            bar.set_message(spec.path.display().to_string());
            bar
        } else {
            ProgressBar::hidden()
        };
        let mut progress = |bytes| bar.set_position(bytes);
        let report = if is_stdin(&spec.path) {
            let mut stdin = std::io::stdin().lock();
            let name = Path::new("-");
            read_feed_from(&mut builder, name, &mut stdin, &spec.options, &mut progress)
        } else {
            read_feed(&mut builder, &spec.path, &spec.options, &mut progress)
        }
        .with_context(|| format!("feed {}", spec.path.display()))?;
        bar.finish_and_clear();
        // By default a feed must yield at least one key: an empty download, or one whose
        // every line is malformed, must not publish. `min_records = 0` allows it.
        let min = spec.min_records.or(args.min_records).unwrap_or(1);
        if report.keys < min {
            // The first malformed line often says why (a CSV export without its header).
            let first = match report.errors.first() {
                Some((line, reason)) => format!("; line {line}: {reason}"),
                None => String::new(),
            };
            bail!(
                "feed {} yielded {} good records ({} lines, {} malformed{first}), fewer than \
                 the minimum of {min}; refusing to publish (is the download empty or \
                 truncated? --min-records 0 or min_records = 0 allows it)",
                spec.path.display(),
                report.keys,
                report.lines,
                report.malformed
            );
        }
        reports.push(report);
    }
    let bar = if show_progress {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {human_pos}/{human_len} keys {per_sec} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix("sorting");
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut phase = None;
    let build = builder
        .write_with_progress(&args.output, &mut |p, done, total| {
            if phase != Some(p) {
                phase = Some(p);
                bar.reset();
                let (prefix, msg) = match p {
                    BuildPhase::Digests => ("writing", "digest tables"),
                    BuildPhase::Web => ("writing", "URL and domain entries"),
                    BuildPhase::Checksums => ("checksums", "whole file"),
                };
                bar.set_prefix(prefix);
                bar.set_message(msg);
            }
            bar.set_length(total);
            bar.set_position(done);
        })
        .with_context(|| format!("cannot write snapshot {}", args.output.display()))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    match args.report {
        Format::Json => {
            let report = JsonReport {
                output: args.output.display().to_string(),
                feeds: &reports,
                build: &build,
                seconds,
            };
            let mut out = std::io::stdout().lock();
            crate::output::write_json(&mut out, &report)?;
        }
        Format::Text => print_text_report(&args.output, &reports, &build, seconds)?,
    }
    Ok(Outcome::Clean)
}

fn print_text_report(
    output: &Path,
    feeds: &[FeedReport],
    build: &BuildReport,
    seconds: f64,
) -> Result<()> {
    let mut err = std::io::stderr().lock();
    let lines: u64 = feeds.iter().map(|f| f.lines).sum();
    writeln!(
        err,
        "built {} ({} bytes) from {} feed(s), {} lines in {:.2}s",
        output.display(),
        build.bytes,
        feeds.len(),
        lines,
        seconds
    )?;
    for f in feeds {
        writeln!(
            err,
            "  {} [{}] {}: {} lines, {} keys, {} malformed, {} skipped",
            escape_text(&f.source),
            f.format,
            escape_text(&f.path),
            f.lines,
            f.keys,
            f.malformed,
            f.skipped
        )?;
        for (line, reason) in &f.errors {
            // A reason quotes the feed's line: the library escaped and capped it.
            writeln!(err, "    {}:{}: {}", escape_text(&f.path), line, reason)?;
        }
        if f.malformed > f.errors.len() as u64 {
            writeln!(
                err,
                "    ... and {} more malformed lines",
                f.malformed - f.errors.len() as u64
            )?;
        }
    }
    let keys: Vec<String> = build
        .keys
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let verdicts: Vec<String> = build
        .verdicts
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    writeln!(
        err,
        "  keys: {}",
        if keys.is_empty() {
            "none".into()
        } else {
            keys.join(", ")
        }
    )?;
    writeln!(
        err,
        "  verdicts: {}",
        if verdicts.is_empty() {
            "none".into()
        } else {
            verdicts.join(", ")
        }
    )?;
    writeln!(
        err,
        "  records: {}; duplicates merged: {}; conflicts: {} ({} decided by override feeds); entries refused: {}",
        build.records, build.duplicates, build.conflicts, build.overrides, build.refused
    )?;
    for (source, r) in &build.sources {
        if r.duplicates + r.conflicts_won + r.conflicts_lost > 0 {
            writeln!(
                err,
                "  {source}: {} keys kept, {} duplicates, {} conflicts won, {} lost",
                r.kept, r.duplicates, r.conflicts_won, r.conflicts_lost
            )?;
        }
    }
    if build.spilled_runs > 0 {
        writeln!(
            err,
            "  sorted in {} runs spilled to disk (raise --memory to keep keys in memory)",
            build.spilled_runs
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_arguments() {
        let s = parse_feed_arg("hashes::bad.txt", false).unwrap();
        assert_eq!(s.path, PathBuf::from("bad.txt"));
        assert_eq!(s.options.verdict, None);
        let s = parse_feed_arg("sha256sum:trusted:C:/x:y.txt", false).unwrap();
        assert_eq!(s.path, PathBuf::from("C:/x:y.txt"));
        assert_eq!(s.options.verdict, Some(Verdict::Trusted));
        assert!(parse_feed_arg("hashes:bad.txt", false).is_err());
        assert!(parse_feed_arg("nope::x", false).is_err());
        assert!(parse_feed_arg("hashes:evil:x", false).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
    }
}
