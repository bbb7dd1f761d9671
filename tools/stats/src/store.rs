//! The aggregate store: SQLite in WAL mode, one transaction per submission or per group of
//! submissions ([`StatsStore::ingest_many`]).
//!
//! Tables:
//!
//! | table | rows | kept |
//! |---|---|---|
//! | `aggregates` | per day and digest: sightings by verdict, distinct reporters | until [`StatsStore::prune`] |
//! | `day_reporters` | per open day, digest and reporter token: one row | until the day closes (the day after next) |
//! | `relayed` | closed days already forwarded upstream | with the aggregates |
//! | `batches` | relayed batch identifiers already counted (upstream side) | with the aggregates |
//! | `wanted` | SHA-256 digests the publisher wants samples of | until replaced |
//! | `meta` | the store's random secret (names relayed batches) | always |
//!
//! A report is folded into `aggregates` the moment it arrives and is never stored raw.
//! Its token is kept only in `day_reporters`, to count each reporter once per digest and
//! day; those rows are deleted as soon as the day closes (any write or
//! [`StatsStore::close_days`] does it). They are keyed by day and token first, so one
//! report's rows sit side by side and its transaction dirties a few pages of that table,
//! not one per item. Nothing else of a submission is stored: no address,
//! no version, no sequence number.
//!
//! Durability: `synchronous = FULL` in WAL mode, so a submission acknowledged after
//! [`StatsStore::ingest`] returned is on disk and survives SIGKILL or power loss.

use std::io::Write;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest as _, Sha256};

use crate::export::{self, ExportOptions, ExportSummary, ExportedDigest};
use crate::intake::Submission;
use crate::schema::{
    Aggregate, AggregateItem, DigestType, Report, ReportedVerdict, AGGREGATE_SCHEMA,
};
use crate::Day;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("statistics database {context}: {source}")]
    Sqlite {
        /// What was being done.
        context: &'static str,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// Writing the export failed.
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    /// No randomness from the operating system.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

type Result<T> = std::result::Result<T, StoreError>;

fn ctx(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { context, source }
}

/// What an accepted submission did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IngestReceipt {
    /// Items folded in.
    pub items: usize,
    /// Whether this was a relayed batch already counted (then nothing changed).
    pub duplicate: bool,
}

/// The statistics database.
#[derive(Debug)]
pub struct StatsStore {
    conn: Connection,
    secret: [u8; 32],
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS aggregates(
  day INTEGER NOT NULL, kind TEXT NOT NULL, digest TEXT NOT NULL,
  malicious INTEGER NOT NULL, suspicious INTEGER NOT NULL, unknown INTEGER NOT NULL,
  reporters INTEGER NOT NULL,
  PRIMARY KEY(day, kind, digest)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS day_reporters(
  day INTEGER NOT NULL, kind TEXT NOT NULL, digest TEXT NOT NULL, token TEXT NOT NULL,
  PRIMARY KEY(day, token, kind, digest)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS relayed(day INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS batches(batch TEXT PRIMARY KEY, day INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS wanted(sha256 TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);
";

const UPSERT: &str =
    "INSERT INTO aggregates(day, kind, digest, malicious, suspicious, unknown, reporters)
  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
  ON CONFLICT(day, kind, digest) DO UPDATE SET
    malicious = malicious + excluded.malicious, suspicious = suspicious + excluded.suspicious,
    unknown = unknown + excluded.unknown, reporters = reporters + excluded.reporters";

impl StatsStore {
    /// Opens (creating if needed) the database at `path`.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or is not a statistics database.
    pub fn open(path: &Path) -> Result<StatsStore> {
        let conn = Connection::open(path).map_err(ctx("open"))?;
        Self::init(conn)
    }

    /// An in-memory store (tests, dry runs).
    ///
    /// # Errors
    ///
    /// When SQLite fails.
    pub fn open_in_memory() -> Result<StatsStore> {
        Self::init(Connection::open_in_memory().map_err(ctx("open"))?)
    }

    fn init(conn: Connection) -> Result<StatsStore> {
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(ctx("busy timeout"))?;
        let _mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(ctx("enable WAL"))?;
        // A page cache of 64 MiB, so the aggregate and reporter B-trees of a busy day are
        // not read back through the kernel on every report (SQLite's default is 2 MiB).
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA cache_size=-65536;")
            .map_err(ctx("synchronous"))?;
        conn.execute_batch(SCHEMA).map_err(ctx("create tables"))?;
        let existing: Option<Vec<u8>> = conn
            .query_row("SELECT value FROM meta WHERE key = 'secret'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(ctx("read secret"))?;
        let secret = match existing {
            Some(v) if v.len() == 32 => {
                let mut s = [0u8; 32];
                s.copy_from_slice(&v);
                s
            }
            _ => {
                let mut s = [0u8; 32];
                getrandom::fill(&mut s).map_err(|e| StoreError::Random(e.to_string()))?;
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('secret', ?1)",
                    [&s[..]],
                )
                .map_err(ctx("store secret"))?;
                s
            }
        };
        Ok(StatsStore { conn, secret })
    }

    /// Folds a validated submission in, in one committed transaction.
    ///
    /// # Errors
    ///
    /// When SQLite fails; then nothing of the submission is stored.
    pub fn ingest(&mut self, submission: &Submission, today: Day) -> Result<IngestReceipt> {
        let mut results = self.ingest_many(std::slice::from_ref(submission), today)?;
        results.pop().unwrap_or(Ok(IngestReceipt::default()))
    }

    /// Folds several validated submissions in, in one committed transaction (group commit:
    /// one `fsync` for all of them, where each submission alone would cost one). Each
    /// submission runs in a savepoint of its own, so one that fails leaves nothing behind
    /// and does not spoil the others; the answer for `submissions[i]` is `results[i]`, and
    /// an `Ok` there is durable once this returns.
    ///
    /// # Errors
    ///
    /// When the transaction cannot begin or commit; then nothing of any submission is
    /// stored.
    pub fn ingest_many(
        &mut self,
        submissions: &[Submission],
        today: Day,
    ) -> Result<Vec<Result<IngestReceipt>>> {
        let mut tx = self.conn.transaction().map_err(ctx("begin"))?;
        close_days(&tx, today)?;
        let mut results = Vec::with_capacity(submissions.len());
        for submission in submissions {
            let sp = tx.savepoint().map_err(ctx("savepoint"))?;
            let result = match submission {
                Submission::Report(r, day) => fold_report(&sp, r, *day),
                Submission::Aggregate(a, day) => fold_aggregate(&sp, a, *day),
            };
            match result {
                Ok(receipt) => {
                    sp.commit().map_err(ctx("release savepoint"))?;
                    results.push(Ok(receipt));
                }
                Err(e) => {
                    // Dropping the savepoint rolls back what this submission wrote.
                    drop(sp);
                    results.push(Err(e));
                }
            }
        }
        tx.commit().map_err(ctx("commit"))?;
        Ok(results)
    }

    /// Deletes the reporter tokens of closed days (every day before yesterday).
    ///
    /// # Errors
    ///
    /// When SQLite fails.
    pub fn close_days(&mut self, today: Day) -> Result<usize> {
        close_days(&self.conn, today)
    }

    /// Deletes aggregates of days before `before`.
    ///
    /// # Errors
    ///
    /// When SQLite fails.
    pub fn prune(&mut self, before: Day) -> Result<usize> {
        let tx = self.conn.transaction().map_err(ctx("begin"))?;
        let n = tx
            .execute("DELETE FROM aggregates WHERE day < ?1", [before.0])
            .map_err(ctx("prune"))?;
        for table in ["relayed", "batches", "day_reporters"] {
            tx.execute(&format!("DELETE FROM {table} WHERE day < ?1"), [before.0])
                .map_err(ctx("prune"))?;
        }
        tx.commit().map_err(ctx("commit"))?;
        Ok(n)
    }

    /// Rows of reporter tokens still held (for tests and status).
    ///
    /// # Errors
    ///
    /// When SQLite fails.
    pub fn open_token_rows(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT COUNT(*) FROM day_reporters", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(ctx("count tokens"))
    }

    /// The closed days (before yesterday, within the last year) not yet relayed upstream,
    /// as aggregates of at most `max_items` items each. Batch identifiers are derived from
    /// the store's secret, the day and the chunk, so a re-sent batch is recognised upstream.
    ///
    /// # Errors
    ///
    /// When SQLite fails.
    pub fn pending_relay(
        &mut self,
        today: Day,
        max_items: usize,
    ) -> Result<Vec<(Day, Vec<Aggregate>)>> {
        self.close_days(today)?;
        let days: Vec<i64> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT DISTINCT day FROM aggregates WHERE day <= ?1 AND day >= ?2
                     AND day NOT IN (SELECT day FROM relayed) ORDER BY day",
                )
                .map_err(ctx("prepare"))?;
            let rows = stmt
                .query_map([today.plus(-2).0, today.plus(-366).0], |r| r.get(0))
                .map_err(ctx("list days"))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(ctx("list days"))?
        };
        let mut out = Vec::new();
        let max_items = max_items.max(1);
        for d in days {
            let day = Day(d);
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT kind, digest, malicious, suspicious, unknown, reporters FROM aggregates
                     WHERE day = ?1 ORDER BY kind, digest",
                )
                .map_err(ctx("prepare"))?;
            let rows = stmt
                .query_map([d], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                })
                .map_err(ctx("read day"))?;
            let mut items = Vec::new();
            for row in rows {
                let (kind, digest, m, s, u, rep) = row.map_err(ctx("read day"))?;
                let Some(kind) = DigestType::from_name(&kind) else {
                    continue;
                };
                items.push(AggregateItem {
                    kind,
                    digest,
                    malicious: m.max(0) as u64,
                    suspicious: s.max(0) as u64,
                    unknown: u.max(0) as u64,
                    reporters: rep.clamp(0, i64::from(u32::MAX)) as u32,
                });
            }
            let chunks = items
                .chunks(max_items)
                .enumerate()
                .map(|(i, chunk)| Aggregate {
                    schema: AGGREGATE_SCHEMA.to_string(),
                    day: day.to_string(),
                    batch: self.batch_id(day, i),
                    items: chunk.to_vec(),
                })
                .collect();
            out.push((day, chunks));
        }
        Ok(out)
    }

    fn batch_id(&self, day: Day, chunk: usize) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(day.0.to_le_bytes());
        h.update((chunk as u64).to_le_bytes());
        let d = h.finalize();
        d[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Records that a closed day was relayed upstream (all its batches acknowledged).
    ///
    /// # Errors
    ///
    /// When SQLite fails.
    pub fn mark_relayed(&mut self, day: Day) -> Result<()> {
        self.conn
            .execute("INSERT OR IGNORE INTO relayed(day) VALUES (?1)", [day.0])
            .map(|_| ())
            .map_err(ctx("mark relayed"))
    }

    /// Replaces the publisher's list of wanted SHA-256 digests (lowercase hex; others are
    /// skipped). Returns how many were stored.
    ///
    /// # Errors
    ///
    /// When SQLite fails.
    pub fn set_wanted<'a>(&mut self, digests: impl IntoIterator<Item = &'a str>) -> Result<usize> {
        let tx = self.conn.transaction().map_err(ctx("begin"))?;
        tx.execute("DELETE FROM wanted", [])
            .map_err(ctx("clear wanted"))?;
        let mut n = 0;
        {
            let mut stmt = tx
                .prepare("INSERT OR IGNORE INTO wanted(sha256) VALUES (?1)")
                .map_err(ctx("prepare"))?;
            for d in digests {
                let d = d.trim().to_ascii_lowercase();
                if crate::intake::is_lower_hex(&d, 64) {
                    n += stmt.execute([&d]).map_err(ctx("store wanted"))?;
                }
            }
        }
        tx.commit().map_err(ctx("commit"))?;
        Ok(n)
    }

    /// Whether a sample of this SHA-256 is wanted: it is on the publisher's list, or (with
    /// `min_reporters`) it was reported unknown by at least that many distinct reporters on
    /// one day.
    ///
    /// # Errors
    ///
    /// When SQLite fails.
    pub fn is_wanted(&self, sha256: &str, min_reporters: Option<u32>) -> Result<bool> {
        let listed: Option<i64> = self
            .conn
            .query_row("SELECT 1 FROM wanted WHERE sha256 = ?1", [sha256], |r| {
                r.get(0)
            })
            .optional()
            .map_err(ctx("read wanted"))?;
        if listed.is_some() {
            return Ok(true);
        }
        let Some(k) = min_reporters else {
            return Ok(false);
        };
        let prevalent: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM aggregates WHERE kind = 'sha256' AND digest = ?1 AND unknown > 0
                 AND reporters >= ?2 LIMIT 1",
                params![sha256, i64::from(k)],
                |r| r.get(0),
            )
            .optional()
            .map_err(ctx("read aggregates"))?;
        Ok(prevalent.is_some())
    }

    /// Writes the prevalence feed (JSON lines) to `out` and returns the summary by threat
    /// name. `names` gives a detection name for a digest, if any (for example from the
    /// publisher's current snapshot).
    ///
    /// # Errors
    ///
    /// When SQLite or writing fails.
    pub fn export(
        &self,
        options: &ExportOptions,
        names: &dyn Fn(DigestType, &str) -> Option<String>,
        out: &mut dyn Write,
    ) -> Result<ExportSummary> {
        let since = options.since.map_or(i64::MIN, |d| d.0);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT kind, digest, SUM(malicious), SUM(suspicious), SUM(unknown), MAX(reporters),
                        MIN(day), MAX(day)
                 FROM aggregates WHERE day >= ?1 GROUP BY kind, digest
                 HAVING MAX(reporters) >= ?2 ORDER BY kind, digest",
            )
            .map_err(ctx("prepare export"))?;
        let rows = stmt
            .query_map(
                params![since, i64::from(options.min_reporters.max(1))],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, i64>(7)?,
                    ))
                },
            )
            .map_err(ctx("export"))?;
        let mut summary = export::SummaryBuilder::new(options);
        for row in rows {
            let (kind, digest, m, s, u, rep, first, last) = row.map_err(ctx("export"))?;
            let Some(kind) = DigestType::from_name(&kind) else {
                continue;
            };
            let entry = ExportedDigest::new(
                kind,
                digest,
                [m.max(0) as u64, s.max(0) as u64, u.max(0) as u64],
                rep.max(0) as u64,
                Day(first),
                Day(last),
                names,
            );
            serde_json::to_writer(&mut *out, &entry).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            summary.add(&entry);
        }
        Ok(summary.finish())
    }
}

/// Deletes the reporter tokens of every day before yesterday.
fn close_days(conn: &Connection, today: Day) -> Result<usize> {
    conn.execute(
        "DELETE FROM day_reporters WHERE day < ?1",
        [today.plus(-1).0],
    )
    .map_err(ctx("close days"))
}

/// Folds one report into the day's aggregates, counting its token once per digest.
fn fold_report(conn: &Connection, report: &Report, day: Day) -> Result<IngestReceipt> {
    let mut seen = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO day_reporters(day, kind, digest, token) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(ctx("prepare"))?;
    let mut upsert = conn.prepare_cached(UPSERT).map_err(ctx("prepare"))?;
    for item in &report.items {
        let kind = item.kind.as_str();
        let new_reporter = seen
            .execute(params![day.0, kind, item.digest, report.token])
            .map_err(ctx("count reporter"))?;
        let c = i64::from(item.count);
        let (m, s, u) = match item.verdict {
            ReportedVerdict::Malicious => (c, 0, 0),
            ReportedVerdict::Suspicious => (0, c, 0),
            ReportedVerdict::Unknown => (0, 0, c),
        };
        upsert
            .execute(params![
                day.0,
                kind,
                item.digest,
                m,
                s,
                u,
                new_reporter as i64
            ])
            .map_err(ctx("fold item"))?;
    }
    Ok(IngestReceipt {
        items: report.items.len(),
        duplicate: false,
    })
}

/// Folds a relayed day's aggregate in, unless its batch was counted already.
fn fold_aggregate(conn: &Connection, aggregate: &Aggregate, day: Day) -> Result<IngestReceipt> {
    let fresh = conn
        .execute(
            "INSERT OR IGNORE INTO batches(batch, day) VALUES (?1, ?2)",
            params![aggregate.batch, day.0],
        )
        .map_err(ctx("record batch"))?;
    if fresh == 0 {
        return Ok(IngestReceipt {
            items: 0,
            duplicate: true,
        });
    }
    let mut upsert = conn.prepare_cached(UPSERT).map_err(ctx("prepare"))?;
    for item in &aggregate.items {
        upsert
            .execute(params![
                day.0,
                item.kind.as_str(),
                item.digest,
                item.malicious as i64,
                item.suspicious as i64,
                item.unknown as i64,
                i64::from(item.reporters)
            ])
            .map_err(ctx("fold aggregate"))?;
    }
    Ok(IngestReceipt {
        items: aggregate.items.len(),
        duplicate: false,
    })
}
