//! `repute scan`: hash files and directories and look every file up in a snapshot.

use std::io::{BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use repute::scan::DigestKinds;
use repute::scan::{ArchiveLimits, DigestHit, ScanEvent, ScanSummary, ScannedFile, Scanner};
use repute::{DigestKind, Verdict};
use serde::Serialize;
use sha2::Digest as _;

use crate::cloud::{CloudLookupArgs, Participation};
use crate::output::{io_error_kind, ErrorObject, Format};
use crate::{open_source, Outcome, Source, TrustArgs};

/// Scan files and directories: hash every file and look it up.
///
/// Every regular file under each PATH is read once; the digests the snapshot can answer are
/// computed in one pass (of MD5, SHA-1 and SHA-256, the kinds it lists: a SHA-256-only
/// snapshot costs one SHA-256 per file) and looked up. SHA-256 is computed too when the
/// cloud or participation is on, all three with --all-digests. The strongest verdict wins
/// (an override feed's entry first, then malicious > suspicious > trusted > known). Files
/// are read on several threads with a fixed amount of memory, and never memory-mapped.
///
/// Archives (zip, tar, tar.gz/.tgz, gzip, zstd; nested ones too) are looked inside: every
/// member is hashed and looked up as ARCHIVE!MEMBER, and the strongest member's verdict is
/// rolled up onto the archive (an override on the archive itself covers its contents).
/// Depth, members, expanded bytes and the compression ratio are bounded: a decompression
/// bomb is reported as a `limit` line, never expanded. --no-archives turns this off.
///
/// FIFOs, sockets and devices are skipped and counted, never opened. Symbolic links are not
/// followed unless --follow-symlinks is given (loops are then detected and skipped). Files
/// that cannot be read, vanish, or change while being read are reported and the scan goes on.
///
/// Text output lists malicious and suspicious files only, as `clamscan --infected` does
/// (--show picks the verdicts, --all lists every file), as tab-separated PATH, VERDICT and
/// DETAILS; errors and archive limits are always listed. Every field is escaped: control
/// characters, bidirectional controls, backslashes and bytes that are not UTF-8 (`\xFF`),
/// so each printed path can be found again. A summary goes to standard error.
///
/// JSON output (--format json, or jsonl: the same) is one object per listed file with
/// `"schema":"repute/1"`, the fields `repute lookup` uses (`verdict`, `type`, `matched`,
/// `name`, `category`, `source`, `confidence`, ...), and `error` objects (`kind`,
/// `message`). A file's `md5`, `sha1` and `sha256` fields are there for the digests that
/// were computed: a kind the snapshot does not list is left out (it could not have matched
/// anything, so the verdict is the same), unless --all-digests is given.
///
/// --bench also measures the hashing limit, what one core hashes per CPU second with the
/// same digest code for the same digest kinds, and prints it beside the scan's rate on
/// standard error (run it twice to scan with a warm page cache).
///
/// Exit codes: 0 nothing malicious found, 1 something malicious found, 2 some file or
/// directory could not be scanned (an error wins over a malicious find, as in clamscan).
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  repute scan bad.snap ~/Downloads
  repute scan bad.snap /srv/uploads --exclude '*.iso' --exclude node_modules --max-filesize 100M
  repute scan bad.snap / --one-file-system --format jsonl > scan.jsonl
  repute scan bad.snap . --all --sort path --threads 1
  curl -s https://example.com/file | repute scan bad.snap -
  find /srv -name '*.so' | repute scan bad.snap --file-list -")]
pub struct ScanArgs {
    /// The snapshot file, or an update state directory (answers come from its current
    /// base and deltas).
    snapshot: PathBuf,
    /// Files and directories to scan (directories recursively); `-` scans standard input.
    #[arg(required_unless_present = "file_list")]
    paths: Vec<PathBuf>,
    /// Also scan the paths listed in FILE, one per line (`-`: standard input); blank lines
    /// are skipped.
    #[arg(long, value_name = "FILE")]
    file_list: Option<PathBuf>,
    /// Output format: tab-separated text lines, or one JSON object per line (json and jsonl
    /// are the same).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// List every file, whatever its verdict (unknown ones too).
    #[arg(long, conflicts_with = "show")]
    all: bool,
    /// List the files with these verdicts (comma-separated: malicious, suspicious, trusted,
    /// known, unknown) [default: malicious,suspicious].
    #[arg(long, value_name = "VERDICT,...", value_delimiter = ',', value_parser = parse_show)]
    show: Vec<Verdict>,
    /// Order of the listed files: as found (several threads: any order), or by path (the
    /// whole listing is held until the scan ends).
    #[arg(long, value_enum, default_value_t = SortOrder::None)]
    sort: SortOrder,
    /// List nothing but errors and archive limits, and print no summary: the exit code tells.
    #[arg(short, long)]
    quiet: bool,
    /// Print no summary on standard error.
    #[arg(long)]
    no_summary: bool,
    /// Skip paths matching this glob, by whole path or last component (repeatable).
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Skip files larger than SIZE: bytes, or with a K, M, G or T suffix (powers of 1024).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_filesize: Option<u64>,
    /// Follow symbolic links (loops are detected and skipped).
    #[arg(long)]
    follow_symlinks: bool,
    /// Do not descend into directories on other file systems.
    #[arg(long)]
    one_file_system: bool,
    /// Threads reading and hashing files (default: one per CPU).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,
    /// Skip verifying the snapshot's checksums before the scan (by default the whole file
    /// is checked first, well under a second per GB, so a damaged snapshot is an error).
    #[arg(long)]
    no_verify: bool,
    /// Do not look inside archives: hash them as plain files.
    #[arg(long)]
    no_archives: bool,
    /// Archive nesting looked inside (1: only archives on disk).
    #[arg(long, value_name = "N", default_value_t = ArchiveLimits::default().max_depth,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    archive_depth: u32,
    /// Members read per archive on disk, nested ones included.
    #[arg(long, value_name = "N", default_value_t = ArchiveLimits::default().max_members)]
    archive_max_members: u64,
    /// Expanded bytes read per archive on disk (K, M, G or T suffix).
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_size)]
    archive_max_bytes: u64,
    /// The largest expanded:compressed ratio of a member beyond 1 MiB; past it a member is a
    /// decompression bomb.
    #[arg(long, value_name = "RATIO", default_value_t = ArchiveLimits::default().max_ratio,
          value_parser = clap::value_parser!(u64).range(1..))]
    archive_max_ratio: u64,
    #[command(flatten)]
    trust: TrustArgs,
    #[command(flatten)]
    cloud: CloudLookupArgs,
    /// Compute and report all three digests of every file (MD5, SHA-1, SHA-256), not only
    /// the kinds the snapshot lists.
    #[arg(long)]
    all_digests: bool,
    /// Measure the hashing limit of the digests computed and print it beside the scan's
    /// rate, on standard error.
    #[arg(long)]
    bench: bool,
}

impl ScanArgs {
    /// Whether errors go to standard output as JSON too.
    pub fn json(&self) -> bool {
        self.format.is_json()
    }

    fn archive_limits(&self) -> Option<ArchiveLimits> {
        (!self.no_archives).then(|| ArchiveLimits {
            max_depth: self.archive_depth,
            max_members: self.archive_max_members,
            max_total_bytes: self.archive_max_bytes,
            max_ratio: self.archive_max_ratio,
            ..ArchiveLimits::default()
        })
    }

    /// The verdicts listed.
    fn shown(&self) -> Vec<Verdict> {
        if self.all {
            return vec![
                Verdict::Malicious,
                Verdict::Suspicious,
                Verdict::Trusted,
                Verdict::Known,
                Verdict::Unknown,
            ];
        }
        if self.show.is_empty() {
            return vec![Verdict::Malicious, Verdict::Suspicious];
        }
        self.show.clone()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SortOrder {
    /// As files are found.
    None,
    /// By path, bytewise.
    Path,
}

fn parse_show(text: &str) -> Result<Verdict, String> {
    if text.trim().eq_ignore_ascii_case("unknown") {
        return Ok(Verdict::Unknown);
    }
    text.parse()
}

/// Unknown files asked of the cloud in one scan, at most.
const MAX_CLOUD_FILES: usize = 100_000;
/// Samples uploaded in one scan, at most.
const MAX_SAMPLES_PER_SCAN: usize = 4;

/// A file the snapshot did not know, kept for the cloud.
struct UnknownFile {
    path: PathBuf,
    sha256: String,
    size: u64,
}

/// Parses `10M`, `1G`, `512K`, `4096`, with an optional `B` or `iB` after the unit.
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (examples: 4096, 512K, 10M, 1G)"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{text:?}: unknown unit (use K, M, G or T)")),
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// One JSON line of `scan`: the same field names as `lookup`'s answers.
#[derive(Debug, Serialize)]
struct JsonFile<'a> {
    schema: &'static str,
    /// `file`, `member` (of an archive), `limit` (an archive limit), `damaged` (an archive
    /// that could not be read inside) or `error`.
    entry: &'static str,
    path: String,
    /// The path's bytes in base64, when they are not UTF-8 (`path` then shows them as
    /// `\xHH` escapes).
    #[serde(skip_serializing_if = "Option::is_none")]
    path_bytes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    md5: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict: Option<Verdict>,
    /// The kind of the digest that matched (`md5`, `sha1`, `sha256`).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    /// The key that matched (the digest, in hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    matched: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_seen: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seen: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    confidence: Option<u8>,
    /// For an archive whose verdict comes from a member: that member's path.
    #[serde(skip_serializing_if = "Option::is_none")]
    member: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorObject>,
}

impl JsonFile<'_> {
    fn new(entry: &'static str, path: &Path) -> Self {
        let (path, path_bytes) = json_path(path);
        JsonFile {
            schema: crate::output::SCHEMA,
            entry,
            path,
            path_bytes,
            size: None,
            md5: None,
            sha1: None,
            sha256: None,
            verdict: None,
            kind: None,
            category: None,
            name: None,
            source: None,
            matched: None,
            first_seen: None,
            last_seen: None,
            confidence: None,
            member: None,
            error: None,
        }
    }
}

/// A path for one text line, escaped ([`repute::text`]): control characters, bidi controls,
/// backslashes and bytes that are not UTF-8, so every path printed can be found again.
fn text_path(path: &Path) -> String {
    repute::text::escape_path(path)
}

/// A path for JSON: as it is when it is UTF-8 (JSON escapes what it must), else escaped
/// as in text, with its bytes in base64.
fn json_path(path: &Path) -> (String, Option<String>) {
    let bytes = repute::text::path_bytes(path);
    match std::str::from_utf8(&bytes) {
        Ok(text) => (text.to_owned(), None),
        Err(_) => (
            repute::text::escape_bytes(&bytes).into_owned(),
            Some(repute::text::base64(&bytes)),
        ),
    }
}

fn json_line(j: &JsonFile<'_>) -> Vec<u8> {
    let mut line = serde_json::to_vec(j).unwrap_or_default();
    line.push(b'\n');
    line
}

/// The details of a hit for a text line: `name=... category=... source=... matched=KIND`.
fn text_details(hit: &DigestHit<'_>) -> Vec<String> {
    let mut details = Vec::new();
    let field = |key: &str, value: Option<&str>| {
        value.map(|v| format!("{key}={}", repute::text::escape_text(v)))
    };
    details.extend(field("name", hit.record.name()));
    details.extend(field("category", hit.record.category()));
    details.extend(field("source", hit.record.source()));
    details.push(format!("matched={}", hit.matched.as_str()));
    details
}

/// One listed file or member, as a line in `format`.
fn file_line(format: Format, entry: &'static str, file: &ScannedFile<'_>) -> Vec<u8> {
    let verdict = file.verdict();
    // The hit the verdict comes from: the file's own, or the rolled-up member's.
    let (hit, member) = match (&file.contained, file.verdict_from_member()) {
        (Some(c), true) => (Some(&c.hit), Some(&c.member)),
        _ => (file.hit.as_ref(), None),
    };
    match format {
        Format::Json => {
            let hex = |kind| file.digests.get(kind).map(|d| d.to_hex());
            let mut j = JsonFile::new(entry, &file.path);
            j.size = Some(file.size());
            j.md5 = hex(DigestKind::Md5);
            j.sha1 = hex(DigestKind::Sha1);
            j.sha256 = hex(DigestKind::Sha256);
            j.verdict = Some(verdict);
            if let Some(hit) = hit {
                j.kind = Some(hit.matched.as_str());
                j.category = hit.record.category();
                j.name = hit.record.name();
                j.source = hit.record.source();
                j.first_seen = hit.record.first_seen();
                j.last_seen = hit.record.last_seen();
                j.confidence = hit.record.confidence();
                if member.is_none() {
                    j.matched = hex(hit.matched);
                }
            }
            j.member = member.map(|m| json_path(m).0);
            json_line(&j)
        }
        Format::Text => {
            let mut line = format!("{}\t{verdict}", text_path(&file.path));
            if let Some(hit) = hit {
                let mut details = text_details(hit);
                if let Some(m) = member {
                    details.push(format!("member={}", text_path(m)));
                }
                line.push('\t');
                line.push_str(&details.join(" "));
            }
            line.push('\n');
            line.into_bytes()
        }
    }
}

/// A line for an error, an archive limit or a damaged archive.
fn note_line(
    format: Format,
    entry: &'static str,
    path: &Path,
    kind: &'static str,
    message: &str,
) -> Vec<u8> {
    match format {
        Format::Json => {
            let mut j = JsonFile::new(entry, path);
            j.error = Some(ErrorObject::new(kind, message));
            json_line(&j)
        }
        Format::Text => format!(
            "{}\t{entry}\t{}\n",
            text_path(path),
            repute::text::escape_text(message)
        )
        .into_bytes(),
    }
}

fn cloud_line(format: Format, file: &UnknownFile, answer: &repute_client::CloudAnswer) -> Vec<u8> {
    let verdict = answer.verdict.as_deref().unwrap_or("unknown");
    match format {
        Format::Json => {
            let mut j = JsonFile::new("file", &file.path);
            j.size = Some(file.size);
            j.sha256 = Some(file.sha256.clone());
            j.verdict = verdict.parse().ok();
            j.name = answer.name.as_deref();
            j.category = answer.category.as_deref();
            j.source = answer.source.as_deref();
            j.matched = answer.matched.clone();
            json_line(&j)
        }
        Format::Text => {
            // Everything the service sent is escaped like feed text.
            let mut details = Vec::new();
            let text = |k: &str, v: &Option<String>| {
                v.as_ref()
                    .map(|v| format!("{k}={}", repute::text::escape_text(v)))
            };
            details.extend(text("name", &answer.name));
            details.extend(text("category", &answer.category));
            details.extend(text("source", &answer.source));
            details.push("from=cloud".to_string());
            format!(
                "{}\t{}\t{}\n",
                text_path(&file.path),
                repute::text::escape_text(verdict),
                details.join(" ")
            )
            .into_bytes()
        }
    }
}

/// Uploads a file the service asked for, if it still has the digest asked about.
fn upload_sample(client: &repute_client::CloudClient, file: &UnknownFile, cap: u64) {
    if file.size > cap {
        return;
    }
    let Ok(data) = std::fs::read(&file.path) else {
        return;
    };
    let digest: String = sha2::Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if data.len() as u64 > cap || digest != file.sha256 {
        return;
    }
    if let Err(e) = client.post_sample(&file.sha256, &data) {
        let _ = writeln!(std::io::stderr(), "cloud: sample not uploaded ({e})");
    }
}

/// Where listed lines go: straight to standard output, or held to be sorted by path. The
/// first write error stops further output and is returned at the end.
struct Listing<W: Write> {
    out: W,
    failed: Option<std::io::Error>,
    held: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

impl<W: Write> Listing<W> {
    fn put(&mut self, path: &Path, line: Vec<u8>) {
        if let Some(held) = &mut self.held {
            held.push((repute::text::path_bytes(path).into_owned(), line));
            return;
        }
        if self.failed.is_none() {
            if let Err(e) = self.out.write_all(&line) {
                self.failed = Some(e);
            }
        }
    }

    /// Writes what was held, in path order, and flushes.
    fn finish(&mut self) -> std::io::Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if let Some(mut held) = self.held.take() {
            held.sort();
            for (_, line) in held {
                self.out.write_all(&line)?;
            }
        }
        self.out.flush()
    }
}

fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {pos} files, {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn mb_per_second(bytes: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        bytes as f64 / 1e6 / secs
    } else {
        0.0
    }
}

/// The hashing limit of `kinds` on this machine: 5 repetitions of 0.3 s of CPU time each,
/// hashing one read buffer's worth at a time, as the scan does.
fn bench_limit(kinds: DigestKinds) -> repute::scan::bench::HashingLimit {
    repute::scan::bench::hashing_limit(
        kinds,
        repute::scan::DEFAULT_BUFFER_SIZE,
        5,
        Duration::from_millis(300),
    )
}

/// `--bench`: the hashing limit beside the scan's rate, per wall-clock second and per CPU
/// second (the latter is what a busy machine does not distort).
fn print_bench(
    limit: &repute::scan::bench::HashingLimit,
    s: &ScanSummary,
    cpu: Option<Duration>,
    threads: usize,
) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parallel = threads.min(cores).max(1);
    let per_core = limit.median();
    let (lo, hi) = limit.spread();
    let unit = if limit.cpu_time {
        "CPU second"
    } else {
        "second"
    };
    let wall = mb_per_second(s.bytes, s.elapsed);
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "bench: digests {}: hashing limit {per_core:.0} MB per {unit} per core \
         (median of {}, {lo:.0}-{hi:.0}); {parallel} of {cores} cores: {:.0} MB/s",
        limit.kinds,
        limit.mb_per_cpu_second.len(),
        per_core * parallel as f64,
    );
    let of_limit = |rate: f64| {
        if per_core > 0.0 {
            format!("{:.2}x", rate / (per_core * parallel as f64))
        } else {
            "-".to_string()
        }
    };
    let _ = writeln!(
        err,
        "bench: scan {wall:.0} MB/s on {threads} threads = {} the limit on {parallel} cores",
        of_limit(wall)
    );
    if let Some(cpu) = cpu.filter(|c| !c.is_zero()) {
        let per_cpu = s.bytes as f64 / 1e6 / cpu.as_secs_f64();
        let _ = writeln!(
            err,
            "bench: scan {per_cpu:.0} MB per CPU second ({:.2} s of CPU) = {:.2}x the \
             per-core limit",
            cpu.as_secs_f64(),
            if per_core > 0.0 {
                per_cpu / per_core
            } else {
                0.0
            }
        );
    }
}

fn print_summary(s: &ScanSummary) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "files: {}, bytes: {} ({:.1} MB)\n\
         verdicts: {} malicious, {} suspicious, {} trusted, {} known, {} unknown\n\
         archives: {} members read ({} malicious), {} limits reached, {} not readable inside\n\
         skipped: {} special files, {} symlinks, {} too large, {} excluded\n\
         errors: {}\n\
         time: {:.3} s, {:.1} MB/s",
        s.files,
        s.bytes,
        s.bytes as f64 / 1e6,
        s.malicious,
        s.suspicious,
        s.trusted,
        s.known,
        s.unknown,
        s.members,
        s.malicious_members,
        s.archive_limits,
        s.archive_damaged,
        s.special,
        s.symlinks,
        s.too_large,
        s.excluded,
        s.errors,
        s.elapsed.as_secs_f64(),
        mb_per_second(s.bytes, s.elapsed),
    );
}

/// The paths of `--file-list`: one per line, blank lines skipped, bytes kept as they are.
fn read_file_list(path: &Path) -> Result<Vec<PathBuf>> {
    let bytes = if path == Path::new("-") {
        let mut v = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut v)
            .context("cannot read the file list from standard input")?;
        v
    } else {
        std::fs::read(path).with_context(|| format!("cannot read file list {}", path.display()))?
    };
    Ok(bytes
        .split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(path_from_bytes)
        .collect())
}

#[cfg(unix)]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

/// Hashes standard input and looks it up, as the file `-`.
fn scan_stdin<'s>(
    snapshot: &'s (dyn repute::scan::DigestSource + Sync),
    kinds: DigestKinds,
) -> std::io::Result<ScannedFile<'s>> {
    let mut buf = vec![0u8; repute::scan::DEFAULT_BUFFER_SIZE];
    let digests = repute::scan::hash_reader_kinds(std::io::stdin().lock(), &mut buf, kinds)?;
    let hit = repute::scan::lookup_file(snapshot, &digests);
    Ok(ScannedFile {
        path: PathBuf::from("-"),
        digests,
        hit,
        contained: None,
    })
}

pub fn run(args: ScanArgs) -> Result<Outcome> {
    let source = open_source(&args.snapshot, &args.trust)?;
    // A state directory's layers are verified when the engine loads them.
    if let (false, Source::Snapshot(snapshot)) = (args.no_verify, &source) {
        // A scan reads the whole tree anyway: check the snapshot first, so that a damaged
        // digest table cannot make a scan finish normally with wrong answers.
        snapshot.verify().with_context(|| {
            format!(
                "{} is damaged (rebuild or fetch it again; --no-verify skips this check)",
                args.snapshot.display()
            )
        })?;
    }
    let snapshot = source.digests();
    let (config_dir, settings) = crate::cloud::settings()?;
    let client = crate::cloud::client(&args.cloud, &settings);
    let sequence = source.sequence();
    let participation = Mutex::new(Participation::load(
        config_dir.as_ref(),
        &settings,
        sequence,
    ));
    // The cloud and participation speak SHA-256, whatever the snapshot lists.
    let sends_sha256 = client.is_some() || participation.lock().is_ok_and(|p| p.is_some());
    let also = if args.all_digests {
        DigestKinds::ALL
    } else if sends_sha256 {
        DigestKinds::of(DigestKind::Sha256)
    } else {
        DigestKinds::NONE
    };
    let mut scanner = Scanner::new()
        .also_compute(also)
        .follow_symlinks(args.follow_symlinks)
        .one_file_system(args.one_file_system)
        .max_file_size(args.max_filesize)
        .threads(args.threads.map_or(0, |n| n as usize))
        .archives(args.archive_limits());
    if !args.exclude.is_empty() {
        scanner = scanner.exclude(&args.exclude)?;
    }
    let mut paths = args.paths.clone();
    if let Some(list) = &args.file_list {
        if list == Path::new("-") && paths.iter().any(|p| p == Path::new("-")) {
            bail!("standard input cannot be both scanned (-) and read as the --file-list");
        }
        paths.extend(read_file_list(list)?);
    }
    for path in &paths {
        if path.as_os_str().is_empty() {
            bail!("an empty path cannot be scanned");
        }
    }
    let scan_stdin_too = paths.iter().any(|p| p == Path::new("-"));
    paths.retain(|p| p != Path::new("-"));

    let format = args.format;
    let shown = args.shown();
    let quiet = args.quiet;
    let listed = |v: Verdict| !quiet && shown.contains(&v);
    let listing = Mutex::new(Listing {
        out: BufWriter::with_capacity(64 * 1024, std::io::stdout()),
        failed: None,
        held: (args.sort == SortOrder::Path).then(Vec::new),
    });
    let put = |path: &Path, line: Vec<u8>| {
        if let Ok(mut l) = listing.lock() {
            l.put(path, line);
        }
    };
    let kinds = scanner.kinds_for(snapshot);
    let limit = args.bench.then(|| bench_limit(kinds));
    let cpu_before = repute::scan::bench::process_cpu_time();
    let bar = progress_bar();
    let bytes_seen = std::sync::atomic::AtomicU64::new(0);
    let keep_unknown = client.is_some();
    let unknown_files = Mutex::new(Vec::<UnknownFile>::new());
    let on_file = |file: &ScannedFile<'_>| {
        let verdict = file.verdict();
        if let Ok(mut p) = participation.lock() {
            if let (Some(p), Some(sha256)) = (p.as_mut(), file.digests.get(DigestKind::Sha256)) {
                p.record(&sha256.to_hex(), verdict);
            }
        }
        let sha256 = file.digests.get(DigestKind::Sha256);
        if let (Verdict::Unknown, true, Some(sha256)) = (verdict, keep_unknown, sha256) {
            if let Ok(mut list) = unknown_files.lock() {
                if list.len() < MAX_CLOUD_FILES {
                    list.push(UnknownFile {
                        path: file.path.clone(),
                        sha256: sha256.to_hex(),
                        size: file.size(),
                    });
                    if !args.all {
                        return;
                    }
                }
            }
        }
        if listed(verdict) {
            put(&file.path, file_line(format, "file", file));
        }
    };

    let mut summary = ScanSummary::default();
    if scan_stdin_too {
        match scan_stdin(snapshot, kinds) {
            Ok(file) => {
                summary.files += 1;
                summary.bytes = file.size();
                match file.verdict() {
                    Verdict::Malicious => summary.malicious += 1,
                    Verdict::Suspicious => summary.suspicious += 1,
                    Verdict::Trusted => summary.trusted += 1,
                    Verdict::Known => summary.known += 1,
                    _ => summary.unknown += 1,
                }
                on_file(&file);
            }
            Err(e) => {
                summary.errors += 1;
                let line = note_line(
                    format,
                    "error",
                    Path::new("-"),
                    io_error_kind(&e),
                    &e.to_string(),
                );
                put(Path::new("-"), line);
            }
        }
    }
    if !paths.is_empty() {
        let found = scanner.scan(snapshot, &paths, |event| match &event {
            ScanEvent::File(file) => {
                bar.inc(1);
                let total = bytes_seen.fetch_add(file.size(), std::sync::atomic::Ordering::Relaxed)
                    + file.size();
                if !bar.is_hidden() {
                    let rate = mb_per_second(total, bar.elapsed());
                    bar.set_message(format!("{:.1} MB, {rate:.1} MB/s", total as f64 / 1e6));
                }
                on_file(file);
            }
            ScanEvent::Member(member) if listed(member.verdict()) => {
                put(&member.path, file_line(format, "member", member));
            }
            ScanEvent::ArchiveLimit { path, reason } => {
                put(path, note_line(format, "limit", path, "limit", reason));
            }
            ScanEvent::ArchiveDamaged { path, reason } if args.all => {
                put(path, note_line(format, "damaged", path, "damaged", reason));
            }
            ScanEvent::Error { path, error } => {
                put(
                    path,
                    note_line(
                        format,
                        "error",
                        path,
                        io_error_kind(error),
                        &error.to_string(),
                    ),
                );
            }
            _ => {}
        });
        let elapsed = found.elapsed;
        let (files, bytes) = (summary.files, summary.bytes);
        let stdin_counts = summary;
        summary = found;
        summary.files += files;
        summary.bytes = summary.bytes.saturating_add(bytes);
        summary.malicious += stdin_counts.malicious;
        summary.suspicious += stdin_counts.suspicious;
        summary.trusted += stdin_counts.trusted;
        summary.known += stdin_counts.known;
        summary.unknown += stdin_counts.unknown;
        summary.errors += stdin_counts.errors;
        summary.elapsed = elapsed;
    }
    bar.finish_and_clear();
    let cpu = repute::scan::bench::process_cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));

    let mut listing = listing
        .into_inner()
        .map_err(|_| anyhow::anyhow!("output lock poisoned"))?;
    let mut cloud_malicious = 0;
    if let Some(client) = &client {
        let files = unknown_files
            .into_inner()
            .map_err(|_| anyhow::anyhow!("lock poisoned"))?;
        let mut digests: Vec<String> = files.iter().map(|f| f.sha256.clone()).collect();
        digests.sort_unstable();
        digests.dedup();
        let answers: std::collections::HashMap<String, repute_client::CloudAnswer> = digests
            .iter()
            .cloned()
            .zip(client.lookup(&digests))
            .filter_map(|(d, a)| a.map(|a| (d, a)))
            .collect();
        let participation = participation
            .lock()
            .map_err(|_| anyhow::anyhow!("lock poisoned"))?;
        let sample_cap = participation.as_ref().and_then(Participation::samples);
        let mut uploaded = std::collections::HashSet::new();
        for file in &files {
            match answers.get(&file.sha256) {
                Some(a) if a.is_known() => {
                    if a.verdict.as_deref() == Some("malicious") {
                        cloud_malicious += 1;
                    }
                    if !quiet {
                        listing.put(&file.path, cloud_line(format, file, a));
                    }
                }
                Some(a) => {
                    if let Some(cap) = sample_cap {
                        if a.wanted
                            && uploaded.len() < MAX_SAMPLES_PER_SCAN
                            && uploaded.insert(file.sha256.clone())
                        {
                            upload_sample(client, file, cap);
                        }
                    }
                }
                None => {}
            }
        }
    }
    listing.finish()?;
    drop(listing);
    if !quiet && !args.no_summary {
        print_summary(&summary);
    }
    if let Some(limit) = &limit {
        let threads = args.threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            |n| n as usize,
        );
        print_bench(limit, &summary, cpu, threads);
    }
    if let Some(client) = &client {
        crate::cloud::print_status(client);
    }
    if let Some(p) = participation
        .into_inner()
        .map_err(|_| anyhow::anyhow!("lock poisoned"))?
    {
        p.finish();
    }

    Ok(if summary.errors > 0 {
        Outcome::Error
    } else if summary.malicious > 0 || cloud_malicious > 0 {
        Outcome::Malicious
    } else {
        Outcome::Clean
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("10M"), Ok(10 << 20));
        assert_eq!(parse_size("10mb"), Ok(10 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("10X").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn control_characters_in_paths_are_escaped() {
        assert_eq!(text_path(std::path::Path::new("a\tb\nc")), "a\\tb\\nc");
        assert_eq!(text_path(std::path::Path::new("plain é")), "plain é");
    }
}
