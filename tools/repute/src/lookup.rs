//! `repute lookup`: answer digests, URLs and domains from a snapshot.

use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use repute::text::escape_text;
use repute::url::Expressions;
use repute::{Hit, Query, Verdict};
use serde::Serialize;

use std::collections::HashMap;

use repute_client::{CloudAnswer, CloudClient};

use crate::cloud::CloudLookupArgs;
use crate::output::{ErrorObject, Format as OutputFormat};
use crate::{open_source, Outcome, Source, TrustArgs};

/// Look up digests, URLs and domains.
///
/// A query is a digest (32, 40 or 64 hex characters: MD5, SHA-1, SHA-256, either case), a URL
/// (it has a scheme, or a path), or a host/domain. URLs and hosts match domain entries (which
/// cover every subdomain), URL prefixes and exact URLs; the most specific match wins.
///
/// Queries come from the arguments, or one per line from standard input when there are none
/// (blank lines and `#` comments are skipped; a `sha256sum`-style line gives its digest).
/// An invalid query gets its own error line and does not stop the others.
///
/// Text output is one tab-separated line per query: QUERY, VERDICT, TYPE and, when
/// something matched, DETAILS (name=, category=, source=, matched=), every field escaped.
/// JSON output is one object per line with the same fields as `repute scan --format json`.
///
/// Exit codes: 0 nothing malicious found, 1 something malicious found, 2 any query or the
/// snapshot had an error.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  repute lookup bad.snap 44d88612fea8a8f36de82e1278abb02f
  repute lookup bad.snap 'HTTP://Sub.Malware.Example.COM/a/../x' example.org
  sha256sum * | repute lookup bad.snap --format jsonl")]
pub struct LookupArgs {
    /// The snapshot file, or an update state directory (answers come from its current
    /// base and deltas).
    snapshot: PathBuf,
    /// Digests, URLs or domains (default: one per line from standard input).
    queries: Vec<String>,
    /// Output format: tab-separated text lines, or one JSON object per line (json and jsonl
    /// are the same).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
    /// Verify the snapshot fully before answering, even when it passed before. By default a
    /// snapshot file is verified on its first lookup and remembered (by device, inode, size,
    /// times and digest) in the user's cache directory, so later lookups open it in O(1).
    #[arg(long, conflicts_with = "no_verify")]
    verify: bool,
    /// Answer without verifying the snapshot (for callers that verify it themselves once
    /// it is published): a damaged file may then give wrong answers.
    #[arg(long)]
    no_verify: bool,
    #[command(flatten)]
    trust: TrustArgs,
    #[command(flatten)]
    cloud: CloudLookupArgs,
}

impl LookupArgs {
    /// Whether errors go to standard output as JSON too.
    pub fn json(&self) -> bool {
        self.format.is_json()
    }
}

#[derive(Debug, Serialize)]
struct JsonAnswer<'a> {
    schema: &'static str,
    query: &'a str,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict: Option<Verdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    matched: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_seen: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seen: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    confidence: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorObject>,
}

impl<'a> JsonAnswer<'a> {
    fn new(query: &'a str) -> Self {
        JsonAnswer {
            schema: crate::output::SCHEMA,
            query,
            kind: None,
            verdict: None,
            category: None,
            name: None,
            source: None,
            matched: None,
            first_seen: None,
            last_seen: None,
            confidence: None,
            error: None,
        }
    }
}

struct Answerer<'s, W: Write> {
    source: &'s Source,
    scratch: Expressions,
    out: W,
    format: OutputFormat,
    outcome: Outcome,
    /// Cloud answers for the queries of the current chunk the snapshot does not know.
    cloud: HashMap<String, CloudAnswer>,
}

impl<W: Write> Answerer<'_, W> {
    /// Whether the snapshot has nothing on this (valid) query.
    fn unknown_locally(&mut self, input: &str) -> bool {
        match (Query::parse(input), self.source) {
            (Ok(Query::Digest(d)), Source::Snapshot(s)) => s.lookup_digest(&d).is_none(),
            (Ok(Query::Digest(d)), Source::View(v)) => v.lookup_digest(&d).is_none(),
            (Ok(Query::Url(u) | Query::Domain(u)), Source::Snapshot(s)) => {
                matches!(s.lookup_url(&u, &mut self.scratch), Ok(None))
            }
            (Ok(Query::Url(u) | Query::Domain(u)), Source::View(v)) => {
                matches!(v.lookup_url(&u, &mut self.scratch), Ok(None))
            }
            (Err(_), _) => false,
        }
    }

    fn cloud_answer(&mut self, input: &str, answer: &CloudAnswer) -> Result<()> {
        if answer.verdict.as_deref() == Some("malicious") && self.outcome == Outcome::Clean {
            self.outcome = Outcome::Malicious;
        }
        match self.format {
            OutputFormat::Json => {
                let mut a = answer.clone();
                a.query = input.to_string();
                crate::output::write_json(&mut self.out, &a)?;
            }
            OutputFormat::Text => {
                let verdict = answer.verdict.as_deref().unwrap_or("unknown");
                let kind = answer.kind.as_deref().unwrap_or("-");
                // Everything the service sent is escaped like feed text.
                write!(
                    self.out,
                    "{}\t{}\t{}",
                    escape_text(input),
                    escape_text(verdict),
                    escape_text(kind)
                )?;
                let mut details = Vec::new();
                let text = |k: &str, v: &Option<String>| {
                    v.as_ref().map(|v| format!("{k}={}", escape_text(v)))
                };
                details.extend(text("name", &answer.name));
                details.extend(text("category", &answer.category));
                details.extend(text("source", &answer.source));
                details.extend(text("matched", &answer.matched));
                details.push("from=cloud".to_string());
                writeln!(self.out, "\t{}", details.join(" "))?;
            }
        }
        Ok(())
    }

    /// Answers a chunk of queries: the snapshot first, what it does not know from the cloud.
    fn answer_chunk(&mut self, client: &CloudClient, inputs: &[String]) -> Result<()> {
        let unknown: Vec<String> = inputs
            .iter()
            .filter(|q| self.unknown_locally(q))
            .cloned()
            .collect();
        let answers = client.lookup(&unknown);
        self.cloud = unknown
            .into_iter()
            .zip(answers)
            .filter_map(|(q, a)| a.filter(CloudAnswer::is_known).map(|a| (q, a)))
            .collect();
        for q in inputs {
            self.answer(q)?;
        }
        self.cloud.clear();
        Ok(())
    }

    fn answer(&mut self, input: &str) -> Result<()> {
        let query = match Query::parse(input) {
            Ok(q) => q,
            Err(e) => return self.error(input, None, "query", &e.to_string()),
        };
        let kind = query.kind().as_str();
        let hit: Result<Option<Hit<'_>>, repute::Error> = match (&query, self.source) {
            (Query::Digest(d), Source::Snapshot(s)) => Ok(s.lookup_digest(d).map(|record| Hit {
                record,
                matched: d.to_hex(),
            })),
            (Query::Digest(d), Source::View(v)) => Ok(v.lookup_digest(d).map(|record| Hit {
                record,
                matched: d.to_hex(),
            })),
            (Query::Url(u) | Query::Domain(u), Source::Snapshot(s)) => {
                s.lookup_url(u, &mut self.scratch)
            }
            (Query::Url(u) | Query::Domain(u), Source::View(v)) => {
                v.lookup_url(u, &mut self.scratch)
            }
        };
        let hit = match hit {
            Ok(h) => h,
            Err(e) => {
                return self.error(
                    input,
                    Some(kind),
                    crate::output::repute_error_kind(&e),
                    &e.to_string(),
                )
            }
        };
        if hit.is_none() {
            if let Some(answer) = self.cloud.get(input).cloned() {
                return self.cloud_answer(input, &answer);
            }
        }
        let verdict = hit
            .as_ref()
            .map_or(Verdict::Unknown, |h| h.record.verdict());
        if verdict == Verdict::Malicious && self.outcome == Outcome::Clean {
            self.outcome = Outcome::Malicious;
        }
        match self.format {
            OutputFormat::Json => {
                let mut a = JsonAnswer::new(input);
                a.kind = Some(kind);
                a.verdict = Some(verdict);
                if let Some(h) = &hit {
                    a.category = h.record.category();
                    a.name = h.record.name();
                    a.source = h.record.source();
                    a.matched = Some(&h.matched);
                    a.first_seen = h.record.first_seen();
                    a.last_seen = h.record.last_seen();
                    a.confidence = h.record.confidence();
                }
                serde_json::to_writer(&mut self.out, &a)?;
                writeln!(self.out)?;
            }
            OutputFormat::Text => {
                // Every field from a query or a feed is escaped: a tab or newline in one
                // cannot forge a result line.
                write!(self.out, "{}\t{verdict}\t{kind}", escape_text(input))?;
                if let Some(h) = &hit {
                    let mut details = Vec::new();
                    let field = |key: &str, value: Option<&str>| {
                        value.map(|v| format!("{key}={}", escape_text(v)))
                    };
                    details.extend(field("name", h.record.name()));
                    details.extend(field("category", h.record.category()));
                    details.extend(field("source", h.record.source()));
                    details.extend(field("matched", Some(&h.matched)));
                    write!(self.out, "\t{}", details.join(" "))?;
                }
                writeln!(self.out)?;
            }
        }
        Ok(())
    }

    fn error(
        &mut self,
        input: &str,
        kind: Option<&str>,
        error_kind: &'static str,
        reason: &str,
    ) -> Result<()> {
        self.outcome = Outcome::Error;
        match self.format {
            OutputFormat::Json => {
                let mut a = JsonAnswer::new(input);
                a.kind = kind;
                a.error = Some(ErrorObject::new(error_kind, reason));
                serde_json::to_writer(&mut self.out, &a)?;
                writeln!(self.out)?;
            }
            OutputFormat::Text => writeln!(
                self.out,
                "{}\terror\t{}",
                escape_text(input),
                escape_text(reason)
            )?,
        }
        Ok(())
    }
}

pub fn run(args: LookupArgs) -> Result<Outcome> {
    let source = match open_source(&args.snapshot, &args.trust) {
        Ok(s) => s,
        // `repute lookup QUERY SNAPSHOT`: say which argument comes first.
        Err(e) if !args.snapshot.exists() && args.queries.iter().any(|q| Path::new(q).is_file()) => {
            return Err(e.context(
                "the snapshot comes first: repute lookup SNAPSHOT QUERY... (were the arguments swapped?)",
            ))
        }
        Err(e) => return Err(e),
    };
    // A state directory's layers are verified when the engine loads them.
    if let (false, Source::Snapshot(snapshot)) = (args.no_verify, &source) {
        let identity = std::fs::metadata(&args.snapshot)
            .map(|m| crate::verified::identity(&m, snapshot.as_bytes()))
            .ok();
        let cached = identity
            .as_deref()
            .is_some_and(crate::verified::is_verified);
        if args.verify || !cached {
            snapshot.verify().with_context(|| {
                format!("snapshot {} failed verification", args.snapshot.display())
            })?;
            if let Some(identity) = &identity {
                crate::verified::remember(identity);
            }
        }
    }
    let stdout = std::io::stdout();
    let mut answerer = Answerer {
        source: &source,
        scratch: Expressions::new(),
        out: BufWriter::new(stdout.lock()),
        format: args.format,
        outcome: Outcome::Clean,
        cloud: HashMap::new(),
    };
    let (_, settings) = crate::cloud::settings()?;
    if let Some(client) = crate::cloud::client(&args.cloud, &settings) {
        if args.queries.is_empty() {
            let mut chunk = Vec::new();
            for line in std::io::stdin().lock().split(b'\n') {
                let line = line?;
                if line.len() > 1 << 20 {
                    continue;
                }
                let text = String::from_utf8_lossy(&line);
                // Blank lines and `#` comments are skipped; `sha256sum` lines give their digest.
                if let Some(text) = repute::line_query(&text) {
                    chunk.push(text.to_string());
                }
                if chunk.len() == 10_000 {
                    answerer.answer_chunk(&client, &chunk)?;
                    chunk.clear();
                }
            }
            answerer.answer_chunk(&client, &chunk)?;
        } else {
            answerer.answer_chunk(&client, &args.queries)?;
        }
        answerer.out.flush()?;
        crate::cloud::print_status(&client);
        return Ok(answerer.outcome);
    }
    if args.queries.is_empty() {
        let stdin = std::io::stdin();
        let interactive = stdin.is_terminal();
        let mut reader = stdin.lock();
        let mut line = Vec::new();
        let mut number = 0usize;
        while let Some(complete) = read_line_bounded(&mut reader, &mut line, MAX_QUERY_LINE)? {
            number += 1;
            if !complete {
                answerer.error(
                    &format!("<line {number}>"),
                    None,
                    "query",
                    "query longer than 1 MiB",
                )?;
                continue;
            }
            let text = String::from_utf8_lossy(&line);
            // Blank lines and `#` comments are skipped; `sha256sum` lines give their digest.
            let Some(text) = repute::line_query(&text) else {
                continue;
            };
            answerer.answer(text)?;
            if interactive {
                answerer.out.flush()?;
            }
        }
    } else {
        for q in &args.queries {
            answerer.answer(q)?;
        }
    }
    answerer.out.flush()?;
    Ok(answerer.outcome)
}

/// The longest query line read from standard input.
const MAX_QUERY_LINE: usize = 1 << 20;

/// Reads one `\n`-terminated line into `line` (without the newline), keeping at most `limit`
/// bytes: the rest of a longer line is read and dropped, never held. `None` at the end of
/// input, `Some(false)` for a line over the limit.
fn read_line_bounded(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Option<bool>> {
    line.clear();
    let mut over = false;
    let mut any = false;
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(any.then_some(!over));
        }
        any = true;
        let (part, done) = match memchr_newline(buf) {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !over {
            if line.len() + part.len() > limit {
                over = true;
                line.clear();
            } else {
                line.extend_from_slice(part);
            }
        }
        let used = done.unwrap_or(buf.len());
        reader.consume(used);
        if done.is_some() {
            return Ok(Some(!over));
        }
    }
}

fn memchr_newline(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|b| *b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_lines() {
        let input = b"ab\n\ntoo long line\nlast".to_vec();
        let mut r = std::io::BufReader::with_capacity(3, &input[..]);
        let mut line = Vec::new();
        let mut got = Vec::new();
        while let Some(ok) = read_line_bounded(&mut r, &mut line, 8).unwrap() {
            got.push((ok, String::from_utf8(line.clone()).unwrap()));
        }
        let want = [(true, "ab"), (true, ""), (false, ""), (true, "last")];
        let want: Vec<(bool, String)> = want.iter().map(|(o, s)| (*o, s.to_string())).collect();
        assert_eq!(got, want);
    }
}
