//! `repute lookup`: answer digests, URLs and domains from a snapshot.

use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use repute::url::Expressions;
use repute::{Hit, Query, Snapshot, Verdict};
use serde::Serialize;

use std::collections::HashMap;

use repute_client::{CloudAnswer, CloudClient};

use crate::cloud::CloudLookupArgs;
use crate::{open_snapshot, Outcome};

/// Look up digests, URLs and domains.
///
/// A query is a digest (32, 40 or 64 hex characters: MD5, SHA-1, SHA-256, either case), a URL
/// (it has a scheme, or a path), or a host/domain. URLs and hosts match domain entries (which
/// cover every subdomain), URL prefixes and exact URLs; the most specific match wins.
///
/// Queries come from the arguments, or one per line from standard input when there are none.
/// An invalid query gets its own error line and does not stop the others.
///
/// Exit codes: 0 nothing malicious found, 1 something malicious found, 2 any query or the
/// snapshot had an error.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  repute lookup bad.snap 44d88612fea8a8f36de82e1278abb02f
  repute lookup bad.snap 'HTTP://Sub.Malware.Example.COM/a/../x' example.org
  sha256sum * | cut -d' ' -f1 | repute lookup bad.snap --format jsonl")]
pub struct LookupArgs {
    /// The snapshot file.
    snapshot: PathBuf,
    /// Digests, URLs or domains (default: one per line from standard input).
    queries: Vec<String>,
    /// Output format: aligned text, or one JSON object per line.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
    /// Fully verify the snapshot (every checksum) before answering.
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    cloud: CloudLookupArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Jsonl,
}

#[derive(Debug, Serialize)]
struct JsonAnswer<'a> {
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
    error: Option<String>,
}

impl<'a> JsonAnswer<'a> {
    fn new(query: &'a str) -> Self {
        JsonAnswer {
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
    snapshot: &'s Snapshot<memmap2::Mmap>,
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
        match Query::parse(input) {
            Ok(Query::Digest(d)) => self.snapshot.lookup_digest(&d).is_none(),
            Ok(Query::Url(u) | Query::Domain(u)) => {
                matches!(self.snapshot.lookup_url(&u, &mut self.scratch), Ok(None))
            }
            Err(_) => false,
        }
    }

    fn cloud_answer(&mut self, input: &str, answer: &CloudAnswer) -> Result<()> {
        if answer.verdict.as_deref() == Some("malicious") && self.outcome == Outcome::Clean {
            self.outcome = Outcome::Malicious;
        }
        match self.format {
            OutputFormat::Jsonl => {
                let mut a = answer.clone();
                a.query = input.to_string();
                serde_json::to_writer(&mut self.out, &a)?;
                writeln!(self.out)?;
            }
            OutputFormat::Text => {
                let verdict = answer.verdict.as_deref().unwrap_or("unknown");
                let kind = answer.kind.as_deref().unwrap_or("-");
                write!(self.out, "{input}\t{verdict}\t{kind}")?;
                let mut details = Vec::new();
                details.extend(answer.name.as_ref().map(|n| format!("name={n}")));
                details.extend(answer.category.as_ref().map(|c| format!("category={c}")));
                details.extend(answer.source.as_ref().map(|s| format!("source={s}")));
                details.extend(answer.matched.as_ref().map(|m| format!("matched={m}")));
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
            Err(e) => return self.error(input, None, &e.to_string()),
        };
        let kind = query.kind().as_str();
        let hit: Result<Option<Hit<'_>>, repute::Error> = match &query {
            Query::Digest(d) => Ok(self.snapshot.lookup_digest(d).map(|record| Hit {
                record,
                matched: d.to_hex(),
            })),
            Query::Url(u) | Query::Domain(u) => self.snapshot.lookup_url(u, &mut self.scratch),
        };
        let hit = match hit {
            Ok(h) => h,
            Err(e) => return self.error(input, Some(kind), &e.to_string()),
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
            OutputFormat::Jsonl => {
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
                write!(self.out, "{input}\t{verdict}\t{kind}")?;
                if let Some(h) = &hit {
                    let mut details = Vec::new();
                    details.extend(h.record.name().map(|n| format!("name={n}")));
                    details.extend(h.record.category().map(|c| format!("category={c}")));
                    details.extend(h.record.source().map(|s| format!("source={s}")));
                    details.push(format!("matched={}", h.matched));
                    write!(self.out, "\t{}", details.join(" "))?;
                }
                writeln!(self.out)?;
            }
        }
        Ok(())
    }

    fn error(&mut self, input: &str, kind: Option<&str>, reason: &str) -> Result<()> {
        self.outcome = Outcome::Error;
        match self.format {
            OutputFormat::Jsonl => {
                let mut a = JsonAnswer::new(input);
                a.kind = kind;
                a.error = Some(reason.to_string());
                serde_json::to_writer(&mut self.out, &a)?;
                writeln!(self.out)?;
            }
            OutputFormat::Text => writeln!(self.out, "{input}\terror\t{reason}")?,
        }
        Ok(())
    }
}

pub fn run(args: LookupArgs) -> Result<Outcome> {
    let snapshot = open_snapshot(&args.snapshot)?;
    if args.verify {
        snapshot.verify()?;
    }
    let stdout = std::io::stdout();
    let mut answerer = Answerer {
        snapshot: &snapshot,
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
                let text = String::from_utf8_lossy(&line).trim().to_string();
                if !text.is_empty() {
                    chunk.push(text);
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
        for (i, line) in stdin.lock().split(b'\n').enumerate() {
            let line = line?;
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            if line.len() > 1 << 20 {
                answerer.error(
                    &format!("<line {}>", i + 1),
                    None,
                    "query longer than 1 MiB",
                )?;
                continue;
            }
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
