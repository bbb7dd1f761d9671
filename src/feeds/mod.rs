//! Feed readers: one module per format, each turning lines (or rows) into keys and records.
//!
//! [`read_feed`] opens a file (a regular file only: plain, gzip, Zstandard or ZIP, told
//! apart by magic bytes: see `input`; [`read_feed_from`] reads a stream such as standard
//! input, peeking at its first bytes instead of seeking), creates the format's [`LineParser`] for it, reads it line by line with bounded
//! memory (a line longer than [`MAX_LINE`] is skipped and reported, never buffered whole),
//! and adds what each line yields to a [`SnapshotBuilder`]. A parser is created per feed
//! because some formats carry state from line to line: the CSV exports name their columns
//! in a header line, and rows are read by those names. Malformed lines are counted and the
//! first few kept with their line numbers in the [`FeedReport`]; with `strict` the first one
//! is an [`Error::Feed`]. Nothing any input contains makes a reader panic.
//!
//! | format | input | keys | record |
//! |---|---|---|---|
//! | `hashes` | a hex digest per line (kind from its length); anything after whitespace ignored | digest | feed default (malicious) |
//! | `md5sum`, `sha1sum`, `sha256sum` | coreutils output: `digest  name` or `digest *name` | digest | feed default (trusted) |
//! | `domains` | one domain per line (a leading `*.` or `.` is dropped) | domain | feed default (malicious) |
//! | `urls` | one URL per line | URL | feed default (malicious) |
//! | `hosts` | hosts-file lines: `0.0.0.0 host [host...]` | domains | feed default (malicious) |
//! | `malwarebazaar` | MalwareBazaar CSV export or its ZIP | SHA-256, MD5, SHA-1 of a row | name = signature, category = file type, first seen |
//! | `urlhaus` | URLhaus CSV | URL | category = threat, name = tags, first/last seen; `online_only` |
//! | `urlhaus-hosts` | URLhaus hostfile `127.0.0.1<TAB>host` | domain | feed default (malicious) |
//! | `threatfox` | ThreatFox IOC CSV export | hash, URL and domain IOCs | name = malware, category = threat type, confidence, first/last seen |
//! | `nsrl` | NSRL RDS v3 SQLite database, `FILE` view | SHA-256, SHA-1, MD5 of a row | known |
//! | `clamav` | `.hdb`/`.hsb` (malicious), `.hdu`/`.hsu` (suspicious), `.fp`/`.sfp` (trusted, override) | digest | name = signature |
//! | `jsonl` | one JSON object per line (schema in `jsonl`) | `key`, `md5`, `sha1`, `sha256`, `url`, `domain` | every field |
//! | `csv` | delimited text, columns named by [`CsvColumns`] or a header | as `jsonl` | as `jsonl` |
//! | `pip-record` | a Python `dist-info/RECORD` file: `path,sha256=<urlsafe base64 or hex>,size` | digest | name = path; feed default (trusted) |
//! | `repute-stats` | the prevalence export of `repute stats export` (schema in `repute_stats`) | digest | verdict (unknown becomes known), name, first/last day, category `prevalent` |
//!
//! Every format skips blank lines and lines starting with `#`. Fields a record leaves empty
//! (verdict, category) come from the feed ([`FeedOptions`]).

mod abusech;
mod batched;
mod clamav;
mod fields;
mod generic_csv;
mod input;
mod jsonl;
mod lines;
mod malwarebazaar;
mod nsrl;
mod pip_record;
mod repute_stats;
mod simple;
mod threatfox;
mod urlhaus;
mod values;

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;
use std::str::FromStr;

pub use clamav::{clamav_md5_extension, export_clamav, export_clamav_md5};
pub use generic_csv::{Column, CsvColumns};
pub use lines::{LineReader, MAX_LINE};

use crate::build::{FeedId, FeedInfo, FeedReport, SnapshotBuilder};
use crate::url::EntryKind;
use crate::{Digest, DigestKind, Error, RecordSpec, Result, Verdict};
use input::{Container, CountingReader};
use simple::{SimpleFormat, SimpleParser};

/// The feed formats this build reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedFormat {
    /// One hex digest per line.
    Hashes,
    /// `md5sum` output.
    Md5sum,
    /// `sha1sum` output.
    Sha1sum,
    /// `sha256sum` output.
    Sha256sum,
    /// One domain per line.
    Domains,
    /// One URL per line.
    Urls,
    /// A hosts file.
    Hosts,
    /// MalwareBazaar CSV export (abuse.ch), plain or zipped.
    MalwareBazaar,
    /// URLhaus CSV (abuse.ch).
    Urlhaus,
    /// URLhaus hostfile (abuse.ch).
    UrlhausHosts,
    /// ThreatFox IOC CSV export (abuse.ch).
    ThreatFox,
    /// NSRL RDS v3 SQLite database.
    Nsrl,
    /// ClamAV hash signatures (`.hdb`, `.hsb`, `.hdu`, `.hsu`, `.fp`, `.sfp`).
    Clamav,
    /// JSON lines.
    Jsonl,
    /// Generic delimited text.
    Csv,
    /// The prevalence export of `repute stats export`.
    ReputeStats,
    /// A Python distribution's `dist-info/RECORD` file.
    PipRecord,
}

impl FeedFormat {
    /// All formats.
    pub const ALL: [FeedFormat; 17] = [
        FeedFormat::Hashes,
        FeedFormat::Md5sum,
        FeedFormat::Sha1sum,
        FeedFormat::Sha256sum,
        FeedFormat::Domains,
        FeedFormat::Urls,
        FeedFormat::Hosts,
        FeedFormat::MalwareBazaar,
        FeedFormat::Urlhaus,
        FeedFormat::UrlhausHosts,
        FeedFormat::ThreatFox,
        FeedFormat::Nsrl,
        FeedFormat::Clamav,
        FeedFormat::Jsonl,
        FeedFormat::Csv,
        FeedFormat::ReputeStats,
        FeedFormat::PipRecord,
    ];

    /// The format's name on the command line and in manifests.
    pub fn name(self) -> &'static str {
        match self {
            FeedFormat::Hashes => "hashes",
            FeedFormat::Md5sum => "md5sum",
            FeedFormat::Sha1sum => "sha1sum",
            FeedFormat::Sha256sum => "sha256sum",
            FeedFormat::Domains => "domains",
            FeedFormat::Urls => "urls",
            FeedFormat::Hosts => "hosts",
            FeedFormat::MalwareBazaar => "malwarebazaar",
            FeedFormat::Urlhaus => "urlhaus",
            FeedFormat::UrlhausHosts => "urlhaus-hosts",
            FeedFormat::ThreatFox => "threatfox",
            FeedFormat::Nsrl => "nsrl",
            FeedFormat::Clamav => "clamav",
            FeedFormat::Jsonl => "jsonl",
            FeedFormat::Csv => "csv",
            FeedFormat::ReputeStats => "repute-stats",
            FeedFormat::PipRecord => "pip-record",
        }
    }

    /// The verdict a feed of this format has unless told otherwise. (A ClamAV allowlist,
    /// `.fp`/`.sfp`, is trusted whatever this says; records may carry their own verdict.)
    pub fn default_verdict(self) -> Verdict {
        match self {
            FeedFormat::Md5sum
            | FeedFormat::Sha1sum
            | FeedFormat::Sha256sum
            | FeedFormat::PipRecord => Verdict::Trusted,
            FeedFormat::Nsrl | FeedFormat::ReputeStats => Verdict::Known,
            _ => Verdict::Malicious,
        }
    }
}

impl fmt::Display for FeedFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FeedFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FeedFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = FeedFormat::ALL.iter().map(|f| f.name()).collect();
                format!("unknown feed format {s:?} (known: {})", names.join(", "))
            })
    }
}

/// How to read one feed.
#[derive(Debug, Clone)]
pub struct FeedOptions {
    /// The format.
    pub format: FeedFormat,
    /// Verdict for its records (default: the format's).
    pub verdict: Option<Verdict>,
    /// Source name (default: the file's stem).
    pub source: Option<String>,
    /// Category for its records.
    pub category: Option<String>,
    /// Whether its verdicts override other feeds'.
    pub r#override: bool,
    /// Whether a malformed line fails the build.
    pub strict: bool,
    /// `urlhaus` only: keep rows whose `url_status` is `online`; the others count as skipped.
    pub online_only: bool,
    /// `csv` only: which columns hold what (default: a header row naming the `jsonl` fields).
    pub columns: Option<CsvColumns>,
    /// Compressed feeds: the most decompressed bytes per compressed byte read before the
    /// feed is refused as a decompression bomb (default [`DEFAULT_MAX_EXPANSION`]).
    pub max_expansion: u64,
}

/// Default of [`FeedOptions::max_expansion`]: real feeds compress 2-20:1.
pub const DEFAULT_MAX_EXPANSION: u64 = 1000;

impl FeedOptions {
    /// Options for a format, everything else default.
    pub fn new(format: FeedFormat) -> Self {
        FeedOptions {
            format,
            verdict: None,
            source: None,
            category: None,
            r#override: false,
            strict: false,
            online_only: false,
            columns: None,
            max_expansion: DEFAULT_MAX_EXPANSION,
        }
    }
}

/// One usable thing a line yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A digest.
    Digest(Digest),
    /// A URL or domain entry.
    Web(String, EntryKind),
}

/// What a parser says of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Nothing to do (blank, comment, header).
    Skip,
    /// Skipped on purpose (e.g. `localhost` in a hosts file, an IOC type not stored, an
    /// offline URL with `online_only`); counted as skipped.
    Ignored,
    /// Keys, all with the same record (fields the record leaves empty come from the feed).
    Items(Vec<Item>, RecordSpec),
}

/// Why a line could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// This line is malformed; later lines may be fine.
    Malformed(String),
    /// The feed cannot be read at all (e.g. its header lacks a column the options name).
    Fatal(String),
}

impl ParseError {
    /// The reason.
    pub fn reason(&self) -> &str {
        match self {
            ParseError::Malformed(r) | ParseError::Fatal(r) => r,
        }
    }
}

impl From<String> for ParseError {
    fn from(reason: String) -> Self {
        ParseError::Malformed(reason)
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// A parser for one feed: created per feed, handed its lines in order.
pub trait LineParser: fmt::Debug {
    /// Parses one line; `line` has no line terminator.
    ///
    /// # Errors
    ///
    /// When the line is malformed, or the feed cannot be read at all.
    fn parse(&mut self, line: &str) -> Result<Parsed, ParseError>;

    /// Whether the feed overrides other feeds whatever the options say (ClamAV allowlists).
    fn is_override(&self) -> bool {
        false
    }

    /// The feed's verdict when the options give none, if the file decides it.
    fn default_verdict(&self) -> Option<Verdict> {
        None
    }

    /// For CSV formats, the field delimiter: a quoted field may then span lines, and
    /// [`parse`](Self::parse) is handed whole records (see [`LineReader::next_record`]).
    fn csv_delimiter(&self) -> Option<u8> {
        None
    }
}

/// Creates the parser for a feed. `path` is the feed's file name, whose extension matters
/// to some formats (ClamAV's `.hdb` versus `.fp`).
///
/// # Errors
///
/// When the options cannot work for this format or file (a ClamAV section-hash database,
/// CSV columns named without a header row, the `nsrl` format, which is not line based).
pub fn line_parser(options: &FeedOptions, path: &Path) -> Result<Box<dyn LineParser>, String> {
    Ok(match options.format {
        FeedFormat::Hashes => Box::new(SimpleParser(SimpleFormat::Hashes)),
        FeedFormat::Md5sum => Box::new(SimpleParser(SimpleFormat::Checksums(DigestKind::Md5))),
        FeedFormat::Sha1sum => Box::new(SimpleParser(SimpleFormat::Checksums(DigestKind::Sha1))),
        FeedFormat::Sha256sum => {
            Box::new(SimpleParser(SimpleFormat::Checksums(DigestKind::Sha256)))
        }
        FeedFormat::Domains => Box::new(SimpleParser(SimpleFormat::Domains)),
        FeedFormat::Urls => Box::new(SimpleParser(SimpleFormat::Urls)),
        FeedFormat::Hosts | FeedFormat::UrlhausHosts => Box::new(SimpleParser(SimpleFormat::Hosts)),
        FeedFormat::MalwareBazaar => Box::new(malwarebazaar::MalwareBazaarParser::new()),
        FeedFormat::Urlhaus => Box::new(urlhaus::UrlhausParser::new(options.online_only)),
        FeedFormat::ThreatFox => Box::new(threatfox::ThreatFoxParser::new()),
        FeedFormat::Clamav => Box::new(clamav::ClamavParser::new(path)?),
        FeedFormat::Jsonl => Box::new(jsonl::JsonLinesParser),
        FeedFormat::Csv => Box::new(generic_csv::GenericCsvParser::new(options.columns.clone())?),
        FeedFormat::ReputeStats => Box::new(repute_stats::ReputeStatsParser),
        FeedFormat::PipRecord => Box::new(pip_record::PipRecordParser),
        FeedFormat::Nsrl => {
            return Err("the nsrl format reads a SQLite database, not lines".into());
        }
    })
}

/// Parses one line on its own, as the first line of a feed of this format with default
/// options. Formats that need earlier lines (the CSV exports' header) report a missing
/// header; use [`line_parser`] for those.
///
/// # Errors
///
/// A reason when the line is malformed.
pub fn parse_line(format: FeedFormat, line: &str) -> Result<Parsed, String> {
    let mut parser = line_parser(&FeedOptions::new(format), Path::new(""))?;
    parser.parse(line).map_err(|e| e.reason().to_string())
}

pub(crate) fn parse_digest(token: &str, expected: Option<DigestKind>) -> Result<Digest, String> {
    let d = Digest::from_hex(token.as_bytes()).map_err(|e| format!("{token:.80}: {e}"))?;
    match expected {
        Some(k) if k != d.kind() => Err(format!("{} digest where {} was expected", d.kind(), k)),
        _ => Ok(d),
    }
}

/// The feed's source name: the option, or the file's stem without a compression
/// extension (`full.csv.gz` -> `full`).
pub fn source_name(path: &Path, options: &FeedOptions) -> String {
    options.source.clone().unwrap_or_else(|| {
        Path::new(&input::inner_name(path))
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| options.format.name().to_string())
    })
}

/// Lines between progress reports.
const PROGRESS_EVERY: u64 = 65_536;

/// The empty report of the feed at `path` and the feed's entry in the snapshot.
fn report_and_info(path: &Path, options: &FeedOptions) -> (FeedReport, FeedInfo) {
    let source = source_name(path, options);
    let report = FeedReport {
        source: source.clone(),
        format: options.format.name().into(),
        path: path.display().to_string(),
        ..FeedReport::default()
    };
    let info = FeedInfo {
        source,
        format: options.format.name().into(),
        verdict: options.verdict.unwrap_or(options.format.default_verdict()),
        category: options.category.clone(),
        r#override: options.r#override,
    };
    (report, info)
}

/// Reads one feed file into `builder`. `progress` is called now and then with the bytes of
/// the file read so far (compressed bytes for a compressed file; for an NSRL database,
/// whose rows SQLite reads by random access, only once, at the end).
///
/// # Errors
///
/// When the file cannot be read (including damaged compressed data), cannot be of this
/// format, or (with `strict`) at the first malformed line.
pub fn read_feed(
    builder: &mut SnapshotBuilder,
    path: &Path,
    options: &FeedOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<FeedReport> {
    let (mut file, meta) = open_regular_file(path)?;
    let container = Container::sniff(&mut file).map_err(|e| Error::io(path, e))?;
    let fail = |line: u64, reason: &str| Error::Feed {
        path: path.display().to_string(),
        line,
        reason: reason.to_string(),
    };
    let (mut report, info) = report_and_info(path, options);

    if options.format == FeedFormat::Nsrl {
        if container != Container::Sqlite {
            return Err(fail(
                0,
                "not a SQLite database: the nsrl format reads an NSRL RDS v3 .db file \
                 (unpack the published ZIP first)",
            ));
        }
        if info.verdict != Verdict::Known {
            return Err(fail(
                0,
                "NSRL lists software without judging it (hacking tools too): \
                 its verdict is `known`",
            ));
        }
        drop(file);
        let feed = builder.add_feed(info);
        let mut failure = None;
        let rows = nsrl::read_rows(path, |number, outcome| {
            let outcome = outcome.map_err(ParseError::Malformed);
            match apply(builder, feed, &mut report, options.strict, number, outcome) {
                Ok(()) => true,
                Err((line, reason)) => {
                    failure = Some(fail(line, &reason));
                    false
                }
            }
        })
        .map_err(|reason| fail(0, &reason))?;
        if let Some(e) = failure {
            return Err(e);
        }
        report.lines = rows;
        progress(meta.len());
        return Ok(report);
    }

    if container == Container::Sqlite {
        return Err(fail(
            0,
            "a SQLite database, not a text feed (an NSRL RDS database reads with the nsrl format)",
        ));
    }
    let (counted, count) = CountingReader::new(file);
    if container == Container::Zip {
        let mut archive = zip::ZipArchive::new(counted)
            .map_err(|e| fail(0, &format!("not a readable ZIP archive: {e}")))?;
        let index =
            input::zip_member(&archive).ok_or_else(|| fail(0, "the ZIP archive holds no file"))?;
        let member = archive
            .by_index(index)
            .map_err(|e| fail(0, &format!("cannot read the ZIP member: {e}")))?;
        let member = input::ExpansionLimit::new(member, Rc::clone(&count), options.max_expansion);
        return read_text(
            builder,
            path,
            options,
            report,
            info,
            Container::Plain,
            member,
            &count,
            progress,
        );
    }
    read_text(
        builder, path, options, report, info, container, counted, &count, progress,
    )
}

/// Reads one text feed from a stream, such as standard input: like [`read_feed`], but the
/// compression (gzip or Zstandard) is told from the first bytes without seeking. `name`
/// names the feed in the report and errors (`-` for standard input) and gives the default
/// source name. A ZIP archive or an SQLite database (`nsrl`) needs a file, and is refused.
///
/// # Errors
///
/// As [`read_feed`], and for a ZIP archive, an SQLite database or the `nsrl` format.
pub fn read_feed_from(
    builder: &mut SnapshotBuilder,
    name: &Path,
    reader: &mut dyn Read,
    options: &FeedOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<FeedReport> {
    let fail = |line: u64, reason: &str| Error::Feed {
        path: name.display().to_string(),
        line,
        reason: reason.to_string(),
    };
    let (container, magic) = Container::peek(&mut *reader).map_err(|e| Error::io(name, e))?;
    match container {
        _ if options.format == FeedFormat::Nsrl => {
            return Err(fail(
                0,
                "the nsrl format reads an SQLite database by random access: give its file, \
                 not a stream",
            ))
        }
        Container::Zip => {
            return Err(fail(
                0,
                "a ZIP archive cannot be read from a stream: save it to a file first",
            ))
        }
        Container::Sqlite => {
            return Err(fail(
                0,
                "a SQLite database, not a text feed (and a database needs a file, not a stream)",
            ))
        }
        _ => {}
    }
    let (report, info) = report_and_info(name, options);
    let (counted, count) = CountingReader::new(std::io::Cursor::new(magic).chain(reader));
    read_text(
        builder, name, options, report, info, container, counted, &count, progress,
    )
}

/// Reads a text feed, plain or compressed, whose first bytes said `container`.
#[allow(clippy::too_many_arguments)]
fn read_text(
    builder: &mut SnapshotBuilder,
    path: &Path,
    options: &FeedOptions,
    mut report: FeedReport,
    mut info: FeedInfo,
    container: Container,
    counted: impl Read,
    count: &Rc<std::cell::Cell<u64>>,
    progress: &mut dyn FnMut(u64),
) -> Result<FeedReport> {
    let fail = |line: u64, reason: &str| Error::Feed {
        path: path.display().to_string(),
        line,
        reason: reason.to_string(),
    };
    let mut parser = line_parser(options, path).map_err(|reason| fail(0, &reason))?;
    if options.verdict.is_none() {
        if let Some(v) = parser.default_verdict() {
            info.verdict = v;
        }
    }
    info.r#override |= parser.is_override();
    let feed = builder.add_feed(info);
    // The one-key-per-line formats parse on the build's threads, when it has several.
    let workers = builder.workers().clone();
    let batched = simple::simple_format(options.format).zip(workers.pool());
    let mut feed_lines = FeedLines {
        builder,
        feed,
        batched,
        parser: &mut *parser,
        report: &mut report,
        strict: options.strict,
        progress,
        count,
    };
    let outcome = match container {
        Container::Gzip => feed_lines.read(input::ExpansionLimit::new(
            flate2::read::MultiGzDecoder::new(counted),
            Rc::clone(count),
            options.max_expansion,
        )),
        Container::Zstd => match zstd::stream::read::Decoder::new(counted) {
            Ok(decoder) => feed_lines.read(input::ExpansionLimit::new(
                decoder,
                Rc::clone(count),
                options.max_expansion,
            )),
            Err(e) => Err((0, format!("cannot start Zstandard decoding: {e}"))),
        },
        _ => feed_lines.read(counted),
    };
    outcome.map_err(|(line, reason)| fail(line, &reason))?;
    progress(count.get());
    Ok(report)
}

/// Opens a feed file, refusing anything but a regular file: a FIFO, a device (`/dev/zero`)
/// or a socket would make a build wait or read forever. The file is opened without
/// blocking (a FIFO without a writer would block in `open`) and checked as opened.
fn open_regular_file(path: &Path) -> Result<(std::fs::File, std::fs::Metadata)> {
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Regular files ignore O_NONBLOCK; it only keeps `open` of a FIFO from waiting.
        open.custom_flags(libc::O_NONBLOCK);
    }
    let file = open.open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        let kind = file_kind(&meta.file_type());
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "is {kind}, not a feed file: feeds are read from regular files \
                     (or `-` for standard input)"
                ),
            ),
        ));
    }
    Ok((file, meta))
}

/// What a file that is not a regular file is, for messages.
fn file_kind(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// The state of reading one text feed.
struct FeedLines<'a> {
    builder: &'a mut SnapshotBuilder,
    feed: FeedId,
    /// A format whose lines parse on their own, and the threads to parse them on.
    batched: Option<(SimpleFormat, &'a rayon::ThreadPool)>,
    parser: &'a mut dyn LineParser,
    report: &'a mut FeedReport,
    strict: bool,
    progress: &'a mut dyn FnMut(u64),
    count: &'a std::cell::Cell<u64>,
}

impl FeedLines<'_> {
    /// Reads every line; on failure, the line number and reason.
    fn read(&mut self, reader: impl Read) -> Result<(), (u64, String)> {
        if let Some((format, pool)) = self.batched {
            return self.read_batched(reader, format, pool);
        }
        let mut reader = LineReader::new(reader);
        let delimiter = self.parser.csv_delimiter();
        loop {
            let next = match delimiter {
                Some(d) => reader.next_record(d),
                None => reader.next_line(),
            };
            let line = match next {
                Ok(Some(l)) => l,
                Ok(None) => return Ok(()),
                Err(e) => {
                    return Err((
                        self.report.lines + 1,
                        format!("cannot read past line {}: {e}", self.report.lines),
                    ))
                }
            };
            self.report.lines = line.last;
            if line.number % PROGRESS_EVERY == 0 {
                (self.progress)(self.count.get());
            }
            let outcome = match line.text {
                Err(reason) => Err(ParseError::Malformed(reason)),
                Ok(text) => self.parser.parse(text),
            };
            apply(
                self.builder,
                self.feed,
                self.report,
                self.strict,
                line.number,
                outcome,
            )?;
        }
    }
}

/// Adds what one line yielded, counting it in the report; the line number and reason when
/// the feed must stop (a fatal error, or any error with `strict`).
fn apply(
    builder: &mut SnapshotBuilder,
    feed: FeedId,
    report: &mut FeedReport,
    strict: bool,
    line: u64,
    outcome: Result<Parsed, ParseError>,
) -> Result<(), (u64, String)> {
    match outcome {
        Ok(Parsed::Skip) => {}
        Ok(Parsed::Ignored) => report.skipped += 1,
        Ok(Parsed::Items(items, record)) => {
            for item in items {
                add_ready(builder, feed, item.into(), &record, report, line, strict)
                    .map_err(|reason| (line, reason))?;
            }
        }
        Err(ParseError::Fatal(reason)) => return Err((line, reason)),
        Err(ParseError::Malformed(reason)) => {
            if strict {
                return Err((line, reason));
            }
            report.malformed(line, reason);
        }
    }
    Ok(())
}

/// One key of a line, its URL entry made into the key it is stored under (or refused, with
/// why): computed on the reading thread here, on the build's threads by the batched reader.
pub(super) enum Ready {
    Digest(Digest),
    /// The entry's text and its key.
    Web(String, std::result::Result<Vec<u8>, crate::url::UrlError>),
}

impl From<Item> for Ready {
    fn from(item: Item) -> Ready {
        match item {
            Item::Digest(d) => Ready::Digest(d),
            Item::Web(text, kind) => {
                let key = crate::build::url_key(&text, kind);
                Ready::Web(text, key)
            }
        }
    }
}

/// Adds one key of a line, counting it in the report; the reason when the feed must stop
/// (a refused entry with `strict`).
pub(super) fn add_ready(
    builder: &mut SnapshotBuilder,
    feed: FeedId,
    item: Ready,
    record: &RecordSpec,
    report: &mut FeedReport,
    line: u64,
    strict: bool,
) -> std::result::Result<(), String> {
    match item {
        Ready::Digest(d) => builder.add_digest(feed, d, record.clone()),
        Ready::Web(_, Ok(key)) => builder.add_url_key(feed, key, record.clone()),
        Ready::Web(text, Err(e)) if strict => return Err(format!("{text:.80}: {e}")),
        Ready::Web(text, Err(e)) => {
            report.malformed(line, format!("{text:.80}: {e}"));
            return Ok(());
        }
    }
    report.keys += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(p: Result<Parsed, String>) -> Digest {
        match p {
            Ok(Parsed::Items(items, _)) => match &items[0] {
                Item::Digest(d) => *d,
                other => panic!("not a digest: {other:?}"),
            },
            other => panic!("not items: {other:?}"),
        }
    }

    #[test]
    fn coreutils_text_and_binary_markers() {
        let hex = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
        for line in [
            format!("{hex}  eicar.com"),
            format!("{hex} *eicar.com"),
            format!("\\{hex}  a\\nb"),
        ] {
            assert_eq!(
                digest_of(parse_line(FeedFormat::Sha256sum, &line)).to_hex(),
                hex
            );
        }
        assert!(parse_line(FeedFormat::Sha256sum, hex).is_err());
        assert!(parse_line(FeedFormat::Md5sum, &format!("{hex}  x")).is_err());
    }

    #[test]
    fn hashes_ignore_trailing_fields_and_comments() {
        let d = digest_of(parse_line(
            FeedFormat::Hashes,
            "44D88612FEA8A8F36DE82E1278ABB02F eicar",
        ));
        assert_eq!(d.kind(), DigestKind::Md5);
        assert_eq!(
            parse_line(FeedFormat::Hashes, "# comment"),
            Ok(Parsed::Skip)
        );
        assert_eq!(parse_line(FeedFormat::Hashes, "   "), Ok(Parsed::Skip));
        assert!(parse_line(FeedFormat::Hashes, "xyz").is_err());
    }

    #[test]
    fn hosts_lines() {
        assert_eq!(
            parse_line(
                FeedFormat::Hosts,
                "0.0.0.0 ads.example.com tracker.example.net # x"
            ),
            Ok(Parsed::Items(
                vec![
                    Item::Web("ads.example.com".into(), EntryKind::Domain),
                    Item::Web("tracker.example.net".into(), EntryKind::Domain)
                ],
                RecordSpec::default()
            ))
        );
        assert_eq!(
            parse_line(FeedFormat::Hosts, "127.0.0.1 localhost"),
            Ok(Parsed::Ignored)
        );
        assert!(parse_line(FeedFormat::Hosts, "ads.example.com").is_err());
    }

    #[test]
    fn format_names_round_trip() {
        for f in FeedFormat::ALL {
            assert_eq!(f.name().parse::<FeedFormat>(), Ok(f));
        }
        assert!("malware-bazaar".parse::<FeedFormat>().is_err());
    }
}
