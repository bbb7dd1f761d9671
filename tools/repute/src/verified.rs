//! Remembers which snapshot files have passed a full `verify`, so that `lookup` verifies each
//! published file once and later lookups stay O(1).
//!
//! An entry names a file by what changes whenever a file is replaced or rewritten: device,
//! inode, size, modification and status-change times (the status-change time cannot be set
//! back by a user), plus the whole-file digest stored in the snapshot's trailer. A snapshot
//! replaced by rename has a new inode; one rewritten in place (which the format forbids, see
//! `Snapshot::map`) has a new ctime. Either way the entry no longer matches and the file is
//! verified again.
//!
//! The list lives in `$REPUTE_CACHE_DIR/verified`, else `$XDG_CACHE_HOME/repute/verified`,
//! else `~/.cache/repute/verified`: one line per file, at most [`MAX_ENTRIES`], rewritten
//! through a temporary file and a rename. A cache that cannot be read or written costs a
//! full verify per lookup, nothing else.

use std::fs::Metadata;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Files remembered; the oldest entries go first.
const MAX_ENTRIES: usize = 64;

/// The cache file, when a cache directory can be named.
fn cache_file() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let dir = env("REPUTE_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("repute")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("repute")))?;
    Some(dir.join("verified"))
}

/// The identity of a snapshot file: its metadata and its trailer digest.
pub fn identity(meta: &Metadata, bytes: &[u8]) -> String {
    let trailer = bytes.get(bytes.len().saturating_sub(16)..).unwrap_or(&[]);
    let digest: String = trailer.iter().map(|b| format!("{b:02x}")).collect();
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        format!(
            "{} {} {} {}.{} {}.{} {digest}",
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec()
        )
    }
    #[cfg(not(unix))]
    {
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        format!("{} {modified} {digest}", meta.len())
    }
}

fn entries(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .map(|s| s.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Whether a file of this identity passed a full verify before.
pub fn is_verified(identity: &str) -> bool {
    cache_file().is_some_and(|f| entries(&f).iter().any(|e| e == identity))
}

/// Records that a file of this identity passed a full verify. Failures are ignored: the
/// next lookup verifies again.
pub fn remember(identity: &str) {
    let Some(file) = cache_file() else { return };
    let _ = write(&file, identity);
}

fn write(file: &Path, identity: &str) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut list = entries(file);
    list.retain(|e| e != identity);
    list.push(identity.to_owned());
    let skip = list.len().saturating_sub(MAX_ENTRIES);
    let mut tmp = tempfile::Builder::new()
        .prefix(".verified-")
        .tempfile_in(dir)?;
    for e in &list[skip..] {
        writeln!(tmp, "{e}")?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}
