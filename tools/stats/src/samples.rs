//! Content-addressed storage of wanted samples.
//!
//! A sample is accepted only if the service wants it (the caller says so, from
//! [`crate::StatsStore::is_wanted`]), its SHA-256 is the one named, it is at most the size
//! cap, and the store's quota has room. It is written as `DIR/<first 2 hex>/<sha256>`
//! (a temporary file, fsynced, renamed, the directory fsynced), mode 0600, and is never
//! executed, opened as an archive or otherwise interpreted.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// Why a sample was refused or could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// The name is not a SHA-256 in lowercase hex.
    #[error("{0:.80?} is not a SHA-256 (64 lowercase hex digits)")]
    BadName(String),
    /// The service did not ask for this sample.
    #[error("sample {0} was not asked for")]
    NotWanted(String),
    /// The content's SHA-256 is not the one named.
    #[error("sample content has SHA-256 {found}, not {named}")]
    Mismatch {
        /// The digest in the request.
        named: String,
        /// The digest of the content.
        found: String,
    },
    /// Over the size cap.
    #[error("sample of {size} bytes is over the cap of {cap} bytes")]
    TooLarge {
        /// The sample's size.
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// The store is full.
    #[error("sample store quota of {quota} bytes is used up")]
    QuotaFull {
        /// The quota.
        quota: u64,
    },
    /// The file system failed.
    #[error("sample store {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// What happened.
        source: std::io::Error,
    },
}

impl SampleError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            SampleError::BadName(_) => 400,
            SampleError::NotWanted(_) => 403,
            SampleError::Mismatch { .. } => 422,
            SampleError::TooLarge { .. } => 413,
            SampleError::QuotaFull { .. } => 507,
            SampleError::Io { .. } => 500,
        }
    }
}

/// Whether a sample was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleOutcome {
    /// Written now.
    Stored,
    /// Already held.
    AlreadyHeld,
}

/// The sample directory.
#[derive(Debug)]
pub struct SampleStore {
    dir: PathBuf,
    max_size: u64,
    quota: u64,
    used: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SampleError + '_ {
    move |source| SampleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl SampleStore {
    /// Opens (creating) the directory; counts what it holds against the quota.
    ///
    /// # Errors
    ///
    /// When the directory cannot be created or read.
    pub fn open(dir: &Path, max_size: u64, quota: u64) -> Result<SampleStore, SampleError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let mut used = 0;
        for shard in fs::read_dir(dir).map_err(io(dir))? {
            let shard = shard.map_err(io(dir))?.path();
            if shard.is_dir() {
                for f in fs::read_dir(&shard).map_err(io(&shard))? {
                    let f = f.map_err(io(&shard))?;
                    used += f.metadata().map(|m| m.len()).unwrap_or(0);
                }
            }
        }
        Ok(SampleStore {
            dir: dir.to_path_buf(),
            max_size,
            quota,
            used,
        })
    }

    /// The size cap per sample.
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// Bytes held.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Where a sample is (or would be) stored.
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.dir.join(&sha256[..2.min(sha256.len())]).join(sha256)
    }

    /// Stores `data` as the sample `sha256` if `wanted`.
    ///
    /// # Errors
    ///
    /// [`SampleError`]: refused (nothing stored) or the file system failed.
    pub fn accept(
        &mut self,
        sha256: &str,
        data: &[u8],
        wanted: bool,
    ) -> Result<SampleOutcome, SampleError> {
        if !crate::intake::is_lower_hex(sha256, 64) {
            return Err(SampleError::BadName(sha256.to_string()));
        }
        if !wanted {
            return Err(SampleError::NotWanted(sha256.to_string()));
        }
        let size = data.len() as u64;
        if size > self.max_size {
            return Err(SampleError::TooLarge {
                size,
                cap: self.max_size,
            });
        }
        let found: String = Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if found != sha256 {
            return Err(SampleError::Mismatch {
                named: sha256.to_string(),
                found,
            });
        }
        let path = self.path_of(sha256);
        if path.exists() {
            return Ok(SampleOutcome::AlreadyHeld);
        }
        if self.used.saturating_add(size) > self.quota {
            return Err(SampleError::QuotaFull { quota: self.quota });
        }
        let shard = path.parent().unwrap_or(&self.dir).to_path_buf();
        fs::create_dir_all(&shard).map_err(io(&shard))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&shard)
            .map_err(io(&shard))?;
        tmp.write_all(data).map_err(io(&path))?;
        tmp.as_file().sync_all().map_err(io(&path))?;
        tmp.persist(&path).map_err(|e| SampleError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        fs::File::open(&shard)
            .and_then(|d| d.sync_all())
            .map_err(io(&shard))?;
        self.used += size;
        Ok(SampleOutcome::Stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(data: &[u8]) -> String {
        Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn accepts_only_wanted_matching_capped_samples() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SampleStore::open(dir.path(), 10, 15).unwrap();
        let a = b"0123456789";
        let status = |r: Result<SampleOutcome, SampleError>| r.map_err(|e| e.status());
        assert_eq!(status(store.accept(&hex(a), a, false)), Err(403));
        assert_eq!(status(store.accept(&hex(b"other"), a, true)), Err(422));
        assert_eq!(
            status(store.accept(&hex(b"01234567890"), b"01234567890", true)),
            Err(413)
        );
        assert_eq!(status(store.accept("../../etc/passwd", a, true)), Err(400));
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing stored"
        );
        assert_eq!(
            status(store.accept(&hex(a), a, true)),
            Ok(SampleOutcome::Stored)
        );
        assert_eq!(
            status(store.accept(&hex(a), a, true)),
            Ok(SampleOutcome::AlreadyHeld)
        );
        assert_eq!(fs::read(store.path_of(&hex(a))).unwrap(), a);
        assert_eq!(
            status(store.accept(&hex(b"abcdefgh"), b"abcdefgh", true)),
            Err(507)
        );
        let reopened = SampleStore::open(dir.path(), 10, 15).unwrap();
        assert_eq!(reopened.used(), 10);
    }
}
