//! The update state directory: immutable snapshot files named by identity, and
//! `current.json` saying which base and deltas are in force.
//!
//! ```text
//! STATE/
//!   current.json        {"sequence": N, "base": "<identity>.snap", "deltas": ["<identity>.delta", ...]}
//!   <identity>.snap     immutable whole snapshots, named by identity (SHA-256 of the file)
//!   <identity>.delta    immutable deltas
//!   <name>.minisig      the publisher's signature of a file, kept by `repute update`
//!   backoff.json        owned by `repute update`
//!   .tmp-*              temporary files (removed by `repute update` at start, under `lock`)
//! ```
//!
//! Every file is written to a `.tmp-*` name, fsynced, and renamed into place, then the
//! directory is fsynced; no file is ever modified in place once it has its final name. That
//! is what makes memory-mapping these files sound ([`crate::Engine::open_state_dir`]):
//! a reader's mapping is never truncated under it. Switching to a new set is one rename of
//! `current.json` ([`StateDir::install`]), so a reader sees the old set or the new one,
//! never a mixture.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result, Snapshot};

/// The contents of `current.json`: the files in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Current {
    /// Sequence of the newest layer.
    pub sequence: u64,
    /// File name of the base snapshot (`<identity>.snap`).
    pub base: String,
    /// File names of the deltas over it, oldest first (`<identity>.delta`).
    #[serde(default)]
    pub deltas: Vec<String>,
}

/// An update state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

fn state_error(path: impl Into<PathBuf>, reason: impl Into<String>) -> Error {
    Error::State {
        path: path.into(),
        reason: reason.into(),
    }
}

/// Whether `name` is a plain file name of the form `<64 hex>.snap` or `<64 hex>.delta`.
fn valid_name(name: &str) -> bool {
    let stem = name
        .strip_suffix(".snap")
        .or_else(|| name.strip_suffix(".delta"));
    stem.is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl StateDir {
    /// Opens an existing state directory.
    ///
    /// # Errors
    ///
    /// When `dir` is not a directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<StateDir> {
        let dir = dir.into();
        let meta = std::fs::metadata(&dir).map_err(|e| Error::io(&dir, e))?;
        if !meta.is_dir() {
            return Err(state_error(dir, "not a directory"));
        }
        Ok(StateDir { dir })
    }

    /// Opens a state directory, creating it (and its parents) when missing.
    ///
    /// # Errors
    ///
    /// When it cannot be created.
    pub fn create(dir: impl Into<PathBuf>) -> Result<StateDir> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        StateDir::open(dir)
    }

    /// Whether `dir` looks like a state directory (a directory holding `current.json`).
    pub fn is_state_dir(dir: &Path) -> bool {
        dir.is_dir() && dir.join("current.json").is_file()
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The path of a snapshot or delta file in the directory.
    ///
    /// # Errors
    ///
    /// When `name` is not of the form `<identity>.snap` / `<identity>.delta`.
    pub fn file(&self, name: &str) -> Result<PathBuf> {
        if !valid_name(name) {
            return Err(state_error(
                &self.dir,
                format!("{name:?} is not a snapshot file name (<sha256>.snap or <sha256>.delta)"),
            ));
        }
        Ok(self.dir.join(name))
    }

    /// Reads `current.json`.
    ///
    /// # Errors
    ///
    /// When it is missing or malformed.
    pub fn current(&self) -> Result<Current> {
        let path = self.dir.join("current.json");
        let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let current: Current = serde_json::from_slice(&text)
            .map_err(|e| state_error(&path, format!("malformed: {e}")))?;
        for name in std::iter::once(&current.base).chain(&current.deltas) {
            self.file(name)?;
        }
        Ok(current)
    }

    /// Writes `bytes` into the directory under `name` (temporary file, fsync, rename, fsync
    /// of the directory). An existing file of that name is left alone: names are identities,
    /// so it holds the same bytes.
    fn write_file(&self, name: &str, bytes: &[u8], replace: bool) -> Result<PathBuf> {
        let path = self.dir.join(name);
        if !replace && path.is_file() {
            return Ok(path);
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.dir)
            .map_err(|e| Error::io(&self.dir, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(|e| Error::io(tmp.path(), e))?;
        }
        tmp.write_all(bytes).map_err(|e| Error::io(tmp.path(), e))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io(tmp.path(), e))?;
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        self.sync_dir();
        Ok(path)
    }

    fn sync_dir(&self) {
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
    }

    /// Adds a snapshot or delta (its bytes) to the directory under its identity and returns
    /// the file name (`<identity>.snap` or `<identity>.delta`). The bytes must open as a
    /// snapshot; checking them fully is [`crate::Engine`]'s job when they are loaded.
    ///
    /// # Errors
    ///
    /// When the bytes are not a snapshot, or on I/O failure.
    pub fn add(&self, bytes: &[u8]) -> Result<String> {
        let snapshot = Snapshot::open(bytes)?;
        let suffix = if snapshot.is_delta() { "delta" } else { "snap" };
        let name = format!("{}.{suffix}", snapshot.identity());
        self.write_file(&name, bytes, false)?;
        Ok(name)
    }

    /// Makes `current` the set in force: checks that its files exist, then writes
    /// `current.json` atomically (temporary file, fsync, rename, fsync of the directory).
    ///
    /// # Errors
    ///
    /// When a named file is missing or badly named, or on I/O failure (the previous
    /// `current.json` is then untouched).
    pub fn install(&self, current: &Current) -> Result<()> {
        for name in std::iter::once(&current.base).chain(&current.deltas) {
            let path = self.file(name)?;
            if !path.is_file() {
                return Err(state_error(path, "missing: add it before installing"));
            }
        }
        let json = serde_json::to_vec_pretty(current).map_err(|e| Error::Build(e.to_string()))?;
        self.write_file("current.json", &json, true)?;
        Ok(())
    }

    /// Removes snapshot and delta files that `current.json` does not name, except the
    /// `keep` most recently modified whole snapshots (the last good ones, to fall back on).
    /// Returns the names removed. Readers that still map a removed file keep their mapping
    /// (removing a name does not truncate the file).
    ///
    /// # Errors
    ///
    /// When `current.json` cannot be read, or on I/O failure.
    pub fn gc(&self, keep: usize) -> Result<Vec<String>> {
        let current = self.current()?;
        let in_use: Vec<&String> = std::iter::once(&current.base)
            .chain(&current.deltas)
            .collect();
        let mut bases = Vec::new();
        let mut others = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))? {
            let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !valid_name(&name) || in_use.contains(&&name) {
                continue;
            }
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
            if name.ends_with(".snap") {
                bases.push((modified, name));
            } else {
                others.push(name);
            }
        }
        bases.sort();
        bases.reverse();
        let mut removed = Vec::new();
        for name in bases.into_iter().skip(keep).map(|(_, n)| n).chain(others) {
            let path = self.dir.join(&name);
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            // Its signature, when the update tool kept one.
            let _ = std::fs::remove_file(self.dir.join(crate::channel::signature_name(&name)));
            removed.push(name);
        }
        if !removed.is_empty() {
            self.sync_dir();
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Digest, FeedInfo, RecordSpec, SnapshotBuilder, Verdict};

    fn snapshot(seq: u64) -> Vec<u8> {
        let mut b = SnapshotBuilder::new();
        let f = b.add_feed(FeedInfo::new("t", "hashes", Verdict::Malicious));
        let d: Digest = "44d88612fea8a8f36de82e1278abb02f".parse().unwrap();
        b.add_digest(f, d, RecordSpec::default());
        b.sequence(seq).to_bytes().unwrap()
    }

    #[test]
    fn add_install_current_and_gc() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::create(dir.path().join("s")).unwrap();
        assert!(!StateDir::is_state_dir(state.path()));
        assert!(state.current().is_err());
        let one = state.add(&snapshot(1)).unwrap();
        let two = state.add(&snapshot(2)).unwrap();
        assert!(one.ends_with(".snap") && one != two);
        let missing = Current {
            sequence: 3,
            base: format!("{}.snap", "0".repeat(64)),
            deltas: vec![],
        };
        assert!(state.install(&missing).is_err());
        let bad = Current {
            base: "../x.snap".into(),
            ..missing.clone()
        };
        assert!(state.install(&bad).is_err());
        let current = Current {
            sequence: 2,
            base: two.clone(),
            deltas: vec![],
        };
        state.install(&current).unwrap();
        assert!(StateDir::is_state_dir(state.path()));
        assert_eq!(state.current().unwrap(), current);
        assert_eq!(state.gc(1).unwrap(), Vec::<String>::new());
        assert_eq!(state.gc(0).unwrap(), vec![one]);
        let names: Vec<String> = std::fs::read_dir(state.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with(".tmp-")), "{names:?}");
    }
}
