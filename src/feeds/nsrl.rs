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

use std::path::Path;

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
    let db = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open the NSRL database: {e}"))?;
    let mut statement = db
        .prepare("SELECT sha256, sha1, md5 FROM FILE")
        .map_err(|e| {
            format!("not an NSRL RDS v3 database (no FILE view with sha256, sha1, md5): {e}")
        })?;
    let mut rows = statement
        .query([])
        .map_err(|e| format!("cannot read the NSRL database: {e}"))?;
    let mut number = 0u64;
    loop {
        let next = rows
            .next()
            .map_err(|e| format!("row {}: cannot read the NSRL database: {e}", number + 1))?;
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
