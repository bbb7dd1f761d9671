//! Reading a feed of the one-key-per-line formats on the build's threads.
//!
//! The caller's thread reads lines into batches (the [`LineReader`] does the splitting, so
//! line numbers, limits and encoding checks are those of the one-thread reading). While it
//! reads the next batch, a pool thread has the batch before parsed by all the pool's threads,
//! URL entries canonicalized too, and then adds the results to the builder in line order:
//! the builder sees the same calls in the same order as with one thread, so the snapshot
//! and the report are the same bytes.

use std::io::{self, Read};
use std::ops::Range;

use rayon::prelude::*;

use super::lines::LineReader;
use super::simple::{line_digest, parse_simple, SimpleFormat};
use super::{add_ready, apply, FeedLines, ParseError, Parsed, Ready, PROGRESS_EVERY};
use crate::build::{FeedId, FeedReport, SnapshotBuilder};
use crate::{Digest, RecordSpec};

/// Lines in a batch, at most.
const BATCH_LINES: usize = 1 << 16;

/// Bytes of text in a batch before it is handed on (a batch holds whole lines).
const BATCH_BYTES: usize = 4 << 20;

/// Lines one task parses.
const CHUNK_LINES: usize = 2048;

/// Lines read but not yet parsed: their numbers, and their text or why they are unusable.
#[derive(Debug, Default)]
struct Batch {
    text: String,
    lines: Vec<(u64, Result<Range<usize>, String>)>,
}

/// A line parsed, its URL entries made into keys, ready for the builder.
enum Prepared {
    /// One digest with the feed's record: a line of the digest formats.
    Digest(Digest),
    /// Nothing to add: skipped, ignored or malformed.
    Outcome(Result<Parsed, ParseError>),
    /// Keys, all with the same record.
    Items(Vec<Ready>, RecordSpec),
}

impl FeedLines<'_> {
    /// Reads every line as [`FeedLines::read`] does, parsing on `pool`'s threads.
    pub(super) fn read_batched(
        &mut self,
        reader: impl Read,
        format: SimpleFormat,
        pool: &rayon::ThreadPool,
    ) -> Result<(), (u64, String)> {
        let mut reader = LineReader::new(reader);
        let mut current: Option<Batch> = None;
        let mut spare = Batch::default();
        let mut last_line = self.report.lines;
        loop {
            let mut next = std::mem::take(&mut spare);
            next.text.clear();
            next.lines.clear();
            let mut applied = Ok(());
            let mut read = Ok(());
            let (builder, report, feed, strict) = (
                &mut *self.builder,
                &mut *self.report,
                self.feed,
                self.strict,
            );
            let (progress, count) = (&mut *self.progress, self.count);
            pool.in_place_scope(|scope| {
                if let Some(batch) = &current {
                    let applied = &mut applied;
                    scope.spawn(move |_| {
                        *applied = add_batch(builder, feed, report, strict, format, batch);
                    });
                }
                read = fill(&mut reader, &mut next, &mut last_line, &mut |n| {
                    if n % PROGRESS_EVERY == 0 {
                        progress(count.get());
                    }
                });
            });
            // The earlier lines' failure first, as when reading on one thread.
            applied?;
            if let Err(e) = read {
                return Err((
                    last_line + 1,
                    format!("cannot read past line {last_line}: {e}"),
                ));
            }
            self.report.lines = last_line;
            spare = current.take().unwrap_or_default();
            if next.lines.is_empty() {
                return Ok(());
            }
            current = Some(next);
        }
    }
}

/// Reads lines into `batch` until it is full or the input ends. `last_line` follows the
/// last physical line read; `each` is called with every line's number.
fn fill(
    reader: &mut LineReader<impl Read>,
    batch: &mut Batch,
    last_line: &mut u64,
    each: &mut dyn FnMut(u64),
) -> io::Result<()> {
    while batch.lines.len() < BATCH_LINES && batch.text.len() < BATCH_BYTES {
        let Some(line) = reader.next_line()? else {
            break;
        };
        *last_line = line.last;
        each(line.number);
        let text = line.text.map(|t| {
            let start = batch.text.len();
            batch.text.push_str(t);
            start..batch.text.len()
        });
        batch.lines.push((line.number, text));
    }
    Ok(())
}

/// Parses a batch on the current pool's threads, then adds it to the builder in line order.
fn add_batch(
    builder: &mut SnapshotBuilder,
    feed: FeedId,
    report: &mut FeedReport,
    strict: bool,
    format: SimpleFormat,
    batch: &Batch,
) -> Result<(), (u64, String)> {
    let prepared: Vec<Vec<Prepared>> = batch
        .lines
        .par_chunks(CHUNK_LINES)
        .map(|chunk| {
            chunk
                .iter()
                .map(|(_, text)| prepare(format, &batch.text, text))
                .collect()
        })
        .collect();
    let numbers = batch.lines.iter().map(|(number, _)| *number);
    for (line, prepared) in numbers.zip(prepared.into_iter().flatten()) {
        match prepared {
            Prepared::Digest(digest) => {
                builder.add_digest(feed, digest, RecordSpec::default());
                report.keys += 1;
            }
            Prepared::Outcome(outcome) => apply(builder, feed, report, strict, line, outcome)?,
            Prepared::Items(items, record) => {
                for item in items {
                    add_ready(builder, feed, item, &record, report, line, strict)
                        .map_err(|reason| (line, reason))?;
                }
            }
        }
    }
    Ok(())
}

/// Parses one line and makes its URL entries into keys.
fn prepare(format: SimpleFormat, text: &str, line: &Result<Range<usize>, String>) -> Prepared {
    let line = match line {
        Ok(range) => &text[range.clone()],
        Err(reason) => return Prepared::Outcome(Err(ParseError::Malformed(reason.clone()))),
    };
    match line_digest(format, line) {
        Some(Ok(Some(digest))) => return Prepared::Digest(digest),
        Some(Ok(None)) => return Prepared::Outcome(Ok(Parsed::Skip)),
        Some(Err(reason)) => return Prepared::Outcome(Err(ParseError::Malformed(reason))),
        None => {}
    }
    match parse_simple(format, line) {
        Ok(Parsed::Items(items, record)) => {
            Prepared::Items(items.into_iter().map(Ready::from).collect(), record)
        }
        Ok(other) => Prepared::Outcome(Ok(other)),
        Err(reason) => Prepared::Outcome(Err(ParseError::Malformed(reason))),
    }
}
