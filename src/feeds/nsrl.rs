//! NSRL RDS v3: the SQLite database of the National Software Reference Library.
//!
//! Rows of the `FILE` view (`sha256, sha1, md5, crc32, file_name, file_size, package_id`,
//! hashes in upper case) are streamed in the database's order; each row's SHA-256, SHA-1
//! and MD5 become keys of one record with the verdict `known`. NSRL lists what software
//! contains, hacking tools included, so it never says `trusted`. File names are not
//! stored: one record per name would defeat record sharing (with none, every NSRL key
//! shares a single record and the fingerprint tables need no record ids at all).
//!
//! Reports count rows where other formats count lines. The database must be a plain file
//! (unpack the published ZIP first): SQLite reads it by random access.
//!
//! A database is a program as much as data: a `FILE` view can be any query, an endless
//! recursive one included. So the database is opened read-only and `immutable` (no locks,
//! no journal, nothing written), `FILE` must be a table or a view (per `sqlite_master`)
//! without `WITH RECURSIVE`, the query may read only the RDS tables ([`RDS_TABLES`]: an
//! authorizer refuses anything else, and recursive queries, while the statement is
//! prepared), and SQLite's progress handler stops a query that takes more work than the
//! file's size allows ([`OPS_PER_BYTE`]).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::{parse_digest, Item, Parsed};
use crate::{DigestKind, RecordSpec, Verdict};

/// Streams the `FILE` view's rows, calling `row` with each 1-based row number and what it
/// yields; `row` returns `false` to stop.
///
/// # Errors
///
/// A reason when the database cannot be opened or queried (a missing `FILE` view, a
/// damaged file).
pub(crate) fn read_rows(
    path: &Path,
    mut row: impl FnMut(u64, Result<Parsed, String>) -> bool,
) -> Result<u64, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot open the NSRL database: {e}"))?
        .len();
    let db = Connection::open_with_flags(
        file_uri(path),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| format!("cannot open the NSRL database: {e}"))?;
    check_schema(&db)?;

    // Work is bounded by the file's size: SQLite calls the handler every PROGRESS_STEP
    // virtual machine instructions, and a `true` interrupts the query.
    let budget = size
        .saturating_mul(OPS_PER_BYTE)
        .max(MIN_OPS)
        .div_ceil(PROGRESS_STEP);
    let exhausted = Arc::new(AtomicBool::new(false));
    let steps = AtomicU64::new(0);
    let flag = Arc::clone(&exhausted);
    db.progress_handler(
        PROGRESS_STEP as i32,
        Some(move || {
            let over = steps.fetch_add(1, Ordering::Relaxed) >= budget;
            if over {
                flag.store(true, Ordering::Relaxed);
            }
            over
        }),
    )
    .map_err(|e| format!("cannot open the NSRL database: {e}"))?;
    let too_much = |number: u64| {
        format!(
            "row {number}: the NSRL database's FILE query takes more work than a database of \
             {size} bytes can need ({} million SQLite instructions); stopped (a hostile or \
             damaged database?)",
            budget.saturating_mul(PROGRESS_STEP) / 1_000_000
        )
    };

    // While preparing, refuse reads of anything but the RDS tables, and recursion.
    let refused: Arc<Mutex<Option<String>>> = Arc::default();
    let refusal = Arc::clone(&refused);
    db.authorizer(Some(move |context: AuthContext<'_>| {
        let why = match context.action {
            AuthAction::Select => None,
            AuthAction::Read { table_name, .. } => (!is_rds_table(table_name))
                .then(|| format!("the FILE view reads {table_name:?}, which is not an RDS table")),
            AuthAction::Recursive => Some("the FILE view is a recursive query".to_string()),
            AuthAction::Function { .. } => None,
            other => Some(format!("the FILE query does {other:?}")),
        };
        match why {
            None => Authorization::Allow,
            Some(why) => {
                if let Ok(mut slot) = refusal.lock() {
                    slot.get_or_insert(why);
                }
                Authorization::Deny
            }
        }
    }))
    .map_err(|e| format!("cannot open the NSRL database: {e}"))?;
    let prepared = db.prepare("SELECT sha256, sha1, md5 FROM FILE");
    let refused = refused.lock().ok().and_then(|mut r| r.take());
    let mut statement = match (prepared, refused) {
        (_, Some(why)) => return Err(format!("not an NSRL RDS v3 database: {why}")),
        (Err(e), None) => {
            return Err(format!(
                "not an NSRL RDS v3 database (no FILE view with sha256, sha1, md5): {e}"
            ))
        }
        (Ok(statement), None) => statement,
    };
    let mut rows = statement.query([]).map_err(|e| {
        if exhausted.load(Ordering::Relaxed) {
            too_much(1)
        } else {
            format!("cannot read the NSRL database: {e}")
        }
    })?;
    let mut number = 0u64;
    loop {
        let next = rows.next().map_err(|e| {
            if exhausted.load(Ordering::Relaxed) {
                too_much(number + 1)
            } else {
                format!("row {}: cannot read the NSRL database: {e}", number + 1)
            }
        })?;
        let Some(r) = next else { break };
        number += 1;
        let mut items = Vec::with_capacity(3);
        let mut problem = None;
        for (i, (column, kind)) in [
            ("sha256", DigestKind::Sha256),
            ("sha1", DigestKind::Sha1),
            ("md5", DigestKind::Md5),
        ]
        .into_iter()
        .enumerate()
        {
            let text = match r.get_ref(i) {
                Ok(ValueRef::Null) => continue,
                Ok(ValueRef::Text(t)) => {
                    std::str::from_utf8(t).map_err(|_| "not UTF-8".to_string())
                }
                Ok(_) => Err("not text".to_string()),
                Err(e) => Err(e.to_string()),
            };
            let parsed = text.and_then(|t| {
                let t = t.trim();
                if t.is_empty() {
                    return Ok(None);
                }
                parse_digest(t, Some(kind)).map(Some)
            });
            match parsed {
                Ok(Some(d)) => items.push(Item::Digest(d)),
                Ok(None) => {}
                Err(e) => {
                    problem = Some(format!("{column}: {e}"));
                    break;
                }
            }
        }
        let outcome = match problem {
            Some(reason) => Err(reason),
            None if items.is_empty() => Err("row has no hash".to_string()),
            None => Ok(Parsed::Items(items, RecordSpec::new(Verdict::Known))),
        };
        if !row(number, outcome) {
            break;
        }
    }
    Ok(number)
}

/// The tables of NSRL RDS v3 databases (minimal and full), which the `FILE` view may read.
pub(crate) const RDS_TABLES: [&str; 10] = [
    "FILE",
    "METADATA",
    "OBJECT",
    "PACKAGE_OBJECT",
    "PKG",
    "PACKAGE",
    "OS",
    "MFG",
    "VERSION",
    "DISTINCT_HASH",
];

fn is_rds_table(name: &str) -> bool {
    RDS_TABLES.iter().any(|t| t.eq_ignore_ascii_case(name))
}

/// SQLite instructions the `FILE` query may take per byte of the database: a full scan
/// takes well under one per byte, so this only stops a query that is not a scan.
pub(crate) const OPS_PER_BYTE: u64 = 64;

/// Instructions any database may take, however small.
const MIN_OPS: u64 = 10_000_000;

/// Instructions between calls of the progress handler.
const PROGRESS_STEP: u64 = 10_000;

/// `FILE` must be a table or a view in `sqlite_master`, and a view must not recurse.
fn check_schema(db: &Connection) -> Result<(), String> {
    let found: Option<(String, Option<String>)> = db
        .query_row(
            "SELECT type, sql FROM sqlite_master WHERE name = 'FILE' COLLATE NOCASE",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(format!("cannot read the NSRL database's schema: {e}")),
        })?;
    match found {
        None => Err("not an NSRL RDS v3 database: no FILE table or view".into()),
        Some((kind, _)) if kind == "table" => Ok(()),
        Some((kind, sql)) if kind == "view" => {
            let sql = sql.unwrap_or_default().to_ascii_uppercase();
            let words: Vec<&str> = sql
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
                .collect();
            if words.contains(&"RECURSIVE") || words.windows(2).any(|w| w == ["WITH", "RECURSIVE"])
            {
                return Err(
                    "not an NSRL RDS v3 database: the FILE view is a recursive query (WITH \
                     RECURSIVE), which RDS never uses"
                        .into(),
                );
            }
            Ok(())
        }
        Some((kind, _)) => Err(format!(
            "not an NSRL RDS v3 database: FILE is a {kind}, not a table or view"
        )),
    }
}

/// An SQLite URI opening `path` read-only and immutable.
fn file_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    let bytes = path.as_os_str().as_encoded_bytes();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?mode=ro&immutable=1");
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(dir: &Path, schema: &str) -> std::path::PathBuf {
        let path = dir.join("rds ?#%.db");
        let db = Connection::open(&path).unwrap();
        db.execute_batch(schema).unwrap();
        path
    }

    fn read(path: &Path) -> Result<u64, String> {
        read_rows(path, |_, _| true)
    }

    #[test]
    fn a_recursive_file_view_ends_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let path = database(
            dir.path(),
            "CREATE VIEW FILE AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
             SELECT 'x' AS sha256, 'x' AS sha1, 'x' AS md5 FROM n;",
        );
        let err = read(&path).unwrap_err();
        assert!(err.contains("recursive"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn a_file_view_over_other_tables_or_endless_work_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(
            dir.path(),
            "CREATE TABLE secrets (sha256, sha1, md5);
             CREATE VIEW FILE AS SELECT sha256, sha1, md5 FROM secrets;",
        );
        let err = read(&path).unwrap_err();
        assert!(
            err.contains("\"secrets\", which is not an RDS table"),
            "{err}"
        );

        // No recursion, but a join that multiplies a few rows into 10^18: the work budget
        // ends it quickly.
        std::fs::remove_file(&path).unwrap();
        let path = database(
            dir.path(),
            "CREATE TABLE METADATA (sha256, sha1, md5);
             INSERT INTO METADATA VALUES (NULL, NULL, NULL), (NULL, NULL, NULL),
               (NULL, NULL, NULL), (NULL, NULL, NULL), (NULL, NULL, NULL), (NULL, NULL, NULL),
               (NULL, NULL, NULL), (NULL, NULL, NULL), (NULL, NULL, NULL), (NULL, NULL, NULL);
             CREATE VIEW FILE AS SELECT a.sha256, a.sha1, a.md5 FROM METADATA a, METADATA b,
               METADATA c, METADATA d, METADATA e, METADATA f, METADATA g, METADATA h,
               METADATA i, METADATA j, METADATA k, METADATA l, METADATA m, METADATA n,
               METADATA o, METADATA p, METADATA q, METADATA r
               WHERE coalesce(a.md5, b.md5, c.md5, d.md5, e.md5, f.md5, g.md5, h.md5, i.md5,
                 j.md5, k.md5, l.md5, m.md5, n.md5, o.md5, p.md5, q.md5, r.md5) IS NOT NULL;",
        );
        let started = std::time::Instant::now();
        let err = read(&path).unwrap_err();
        assert!(err.contains("more work"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
}
