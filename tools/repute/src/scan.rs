//! `repute scan`: hash files and directories and look every file up in a snapshot.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use repute::scan::{ScanEvent, ScanSummary, ScannedFile, Scanner};
use repute::Verdict;
use serde::Serialize;
use sha2::Digest as _;

use crate::cloud::{CloudLookupArgs, Participation};
use crate::{open_source, Outcome, Source, TrustArgs};

/// Scan files and directories: hash every file and look it up.
///
/// Every regular file under each PATH is read once; its MD5, SHA-1 and SHA-256 are computed
/// in one pass and all three are looked up in the snapshot. The strongest verdict wins
/// (malicious > suspicious > trusted > known). Files are read on several threads with a
/// fixed amount of memory, and never memory-mapped.
///
/// FIFOs, sockets and devices are skipped and counted, never opened. Symbolic links are not
/// followed unless --follow-symlinks is given (loops are then detected and skipped). Files
/// that cannot be read, vanish, or change while being read are reported and the scan goes on.
///
/// Text output lists the files whose verdict is not unknown (every file with --all) as
/// tab-separated PATH, VERDICT and DETAILS; a summary goes to standard error.
///
/// Exit codes: 0 nothing malicious found, 1 something malicious found, 2 some file or
/// directory could not be scanned (an error wins over a malicious find, as in clamscan).
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  repute scan bad.snap ~/Downloads
  repute scan bad.snap /srv/uploads --exclude '*.iso' --exclude node_modules --max-filesize 100M
  repute scan bad.snap / --one-file-system --format jsonl > scan.jsonl
  repute scan bad.snap . --all --threads 1")]
pub struct ScanArgs {
    /// The snapshot file, or an update state directory (answers come from its current
    /// base and deltas).
    snapshot: PathBuf,
    /// Files and directories to scan (directories recursively).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Output format: text lines, or one JSON object per file.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
    /// List every file, including unknown ones.
    #[arg(long)]
    all: bool,
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
    #[command(flatten)]
    trust: TrustArgs,
    #[command(flatten)]
    cloud: CloudLookupArgs,
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

fn write_cloud_file(
    out: &mut dyn Write,
    format: OutputFormat,
    file: &UnknownFile,
    answer: &repute_client::CloudAnswer,
) -> Result<()> {
    let verdict = answer.verdict.as_deref().unwrap_or("unknown");
    match format {
        OutputFormat::Jsonl => {
            let path = file.path.to_string_lossy();
            let mut j = JsonFile::new(&path);
            j.size = Some(file.size);
            j.sha256 = Some(file.sha256.clone());
            j.verdict = verdict.parse().ok();
            j.name = answer.name.as_deref();
            j.category = answer.category.as_deref();
            j.source = answer.source.as_deref();
            j.matched = answer.matched.as_deref();
            serde_json::to_writer(&mut *out, &j)?;
            writeln!(out)?;
        }
        OutputFormat::Text => {
            write!(
                out,
                "{}\t{}",
                text_path(&file.path),
                repute::text::escape_text(verdict)
            )?;
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
            writeln!(out, "\t{}", details.join(" "))?;
        }
    }
    Ok(())
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Jsonl,
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

#[derive(Debug, Serialize)]
struct JsonFile<'a> {
    path: &'a str,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    matched: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl<'a> JsonFile<'a> {
    fn new(path: &'a str) -> Self {
        JsonFile {
            path,
            path_bytes: None,
            size: None,
            md5: None,
            sha1: None,
            sha256: None,
            verdict: None,
            name: None,
            category: None,
            source: None,
            matched: None,
            error: None,
        }
    }
}

/// A path for one text line, escaped ([`repute::text`]): control characters, bidi controls,
/// backslashes and bytes that are not UTF-8, so every path printed can be found again.
fn text_path(path: &std::path::Path) -> String {
    repute::text::escape_path(path)
}

/// A path for JSON: as it is when it is UTF-8 (JSON escapes what it must), else escaped
/// as in text, with its bytes in base64.
fn json_path(path: &std::path::Path) -> (String, Option<String>) {
    let bytes = repute::text::path_bytes(path);
    match std::str::from_utf8(&bytes) {
        Ok(text) => (text.to_owned(), None),
        Err(_) => (
            repute::text::escape_bytes(&bytes).into_owned(),
            Some(repute::text::base64(&bytes)),
        ),
    }
}

/// The shared output: the first write error stops further output and is returned at the end.
struct Output<W: Write> {
    out: W,
    failed: Option<std::io::Error>,
}

impl<W: Write> Output<W> {
    fn write(&mut self, f: impl FnOnce(&mut W) -> std::io::Result<()>) {
        if self.failed.is_none() {
            if let Err(e) = f(&mut self.out) {
                self.failed = Some(e);
            }
        }
    }
}

fn write_file(out: &mut dyn Write, format: OutputFormat, file: &ScannedFile<'_>) -> Result<()> {
    let verdict = file.verdict();
    match format {
        OutputFormat::Jsonl => {
            let (path, path_bytes) = json_path(&file.path);
            let [md5, sha1, sha256] = file.digests.digests();
            let mut j = JsonFile::new(&path);
            j.path_bytes = path_bytes;
            j.size = Some(file.size());
            j.md5 = Some(md5.to_hex());
            j.sha1 = Some(sha1.to_hex());
            j.sha256 = Some(sha256.to_hex());
            j.verdict = Some(verdict);
            if let Some(hit) = &file.hit {
                j.name = hit.record.name();
                j.category = hit.record.category();
                j.source = hit.record.source();
                j.matched = Some(hit.matched.as_str());
            }
            serde_json::to_writer(&mut *out, &j)?;
            writeln!(out)?;
        }
        OutputFormat::Text => {
            write!(out, "{}\t{verdict}", text_path(&file.path))?;
            if let Some(hit) = &file.hit {
                let mut details = Vec::new();
                let field = |key: &str, value: Option<&str>| {
                    value.map(|v| format!("{key}={}", repute::text::escape_text(v)))
                };
                details.extend(field("name", hit.record.name()));
                details.extend(field("category", hit.record.category()));
                details.extend(field("source", hit.record.source()));
                details.push(format!("matched={}", hit.matched));
                write!(out, "\t{}", details.join(" "))?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}

fn write_error(
    out: &mut dyn Write,
    format: OutputFormat,
    path: &std::path::Path,
    error: &std::io::Error,
) -> Result<()> {
    match format {
        OutputFormat::Jsonl => {
            let (p, path_bytes) = json_path(path);
            let mut j = JsonFile::new(&p);
            j.path_bytes = path_bytes;
            j.error = Some(error.to_string());
            serde_json::to_writer(&mut *out, &j)?;
            writeln!(out)?;
        }
        OutputFormat::Text => writeln!(
            out,
            "{}\terror\t{}",
            text_path(path),
            repute::text::escape_text(&error.to_string())
        )?,
    }
    Ok(())
}

fn io_error(e: anyhow::Error) -> std::io::Error {
    match e.downcast::<std::io::Error>() {
        Ok(io) => io,
        Err(other) => std::io::Error::other(other.to_string()),
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

fn print_summary(s: &ScanSummary) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "files: {}, bytes: {} ({:.1} MB)\n\
         verdicts: {} malicious, {} suspicious, {} trusted, {} known, {} unknown\n\
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
        s.special,
        s.symlinks,
        s.too_large,
        s.excluded,
        s.errors,
        s.elapsed.as_secs_f64(),
        mb_per_second(s.bytes, s.elapsed),
    );
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
    let mut scanner = Scanner::new()
        .follow_symlinks(args.follow_symlinks)
        .one_file_system(args.one_file_system)
        .max_file_size(args.max_filesize)
        .threads(args.threads.map_or(0, |n| n as usize));
    if !args.exclude.is_empty() {
        scanner = scanner.exclude(&args.exclude)?;
    }
    for path in &args.paths {
        if path.as_os_str().is_empty() {
            bail!("an empty path cannot be scanned");
        }
    }

    let format = args.format;
    let all = args.all;
    let output = Mutex::new(Output {
        out: BufWriter::with_capacity(64 * 1024, std::io::stdout()),
        failed: None,
    });
    let bar = progress_bar();
    let bytes_seen = std::sync::atomic::AtomicU64::new(0);
    let (config_dir, settings) = crate::cloud::settings()?;
    let client = crate::cloud::client(&args.cloud, &settings);
    let sequence = source.sequence();
    let participation = Mutex::new(Participation::load(
        config_dir.as_ref(),
        &settings,
        sequence,
    ));
    let keep_unknown = client.is_some();
    let unknown_files = Mutex::new(Vec::<UnknownFile>::new());
    let summary = scanner.scan(snapshot, &args.paths, |event| {
        let write = |f: &dyn Fn(&mut dyn Write) -> Result<()>| {
            if let Ok(mut out) = output.lock() {
                out.write(|w| f(w).map_err(io_error));
            }
        };
        match &event {
            ScanEvent::File(file) => {
                bar.inc(1);
                let total = bytes_seen.fetch_add(file.size(), std::sync::atomic::Ordering::Relaxed)
                    + file.size();
                if !bar.is_hidden() {
                    let rate = mb_per_second(total, bar.elapsed());
                    bar.set_message(format!("{:.1} MB, {rate:.1} MB/s", total as f64 / 1e6));
                }
                let verdict = file.verdict();
                if let Ok(mut p) = participation.lock() {
                    if let Some(p) = p.as_mut() {
                        p.record(&file.digests.digests()[2].to_hex(), verdict);
                    }
                }
                if verdict == Verdict::Unknown && keep_unknown {
                    if let Ok(mut list) = unknown_files.lock() {
                        if list.len() < MAX_CLOUD_FILES {
                            list.push(UnknownFile {
                                path: file.path.clone(),
                                sha256: file.digests.digests()[2].to_hex(),
                                size: file.size(),
                            });
                            if !all {
                                return;
                            }
                        }
                    }
                }
                if all || verdict != Verdict::Unknown {
                    write(&|w| write_file(w, format, file));
                }
            }
            ScanEvent::Error { path, error } => write(&|w| write_error(w, format, path, error)),
            _ => {}
        }
    });
    bar.finish_and_clear();

    let output = output
        .into_inner()
        .map_err(|_| anyhow::anyhow!("output lock poisoned"))?;
    if let Some(e) = output.failed {
        return Err(e.into());
    }
    let mut out = output.out;
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
                    write_cloud_file(&mut out, format, file, a)?;
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
    out.flush()?;
    drop(out);
    print_summary(&summary);
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
