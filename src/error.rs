//! The library's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in repute, with enough context to act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {error}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// The bytes do not start with the snapshot magic.
    #[error("not a repute snapshot (bad magic bytes); check the path")]
    Magic,
    /// The file is shorter than its own structure says.
    #[error(
        "snapshot is truncated: {what} needs {needed} bytes but only {available} are there; \
         re-download or rebuild the snapshot"
    )]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The format version is not one this build can read.
    #[error(
        "snapshot format version {found} is not supported (this build reads version {supported}); \
         upgrade repute or rebuild the snapshot"
    )]
    Version {
        /// The version this build reads.
        supported: u32,
        /// The version in the file.
        found: u32,
    },
    /// The file requires features this build does not know.
    #[error("snapshot requires unknown features (flags {flags:#010x}); upgrade repute")]
    RequiredFeatures {
        /// The unknown required flag bits.
        flags: u32,
    },
    /// A checksum did not match: the named part of the file is damaged.
    #[error(
        "checksum mismatch in {section}: expected {expected:016x}, found {found:016x}; \
         the file is damaged, re-download or rebuild it"
    )]
    Checksum {
        /// The damaged part.
        section: &'static str,
        /// The checksum stored in the file.
        expected: u64,
        /// The checksum of the bytes as they are.
        found: u64,
    },
    /// A structural inconsistency inside a section.
    #[error("malformed snapshot: {section}: {reason}; rebuild the snapshot")]
    Malformed {
        /// The section involved.
        section: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A feed could not be used (with `strict`, a malformed line).
    #[error("{path}:{line}: {reason}")]
    Feed {
        /// The feed file.
        path: String,
        /// 1-based line number, 0 when the problem is the whole file.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// A query (digest, URL or domain) could not be understood.
    #[error("invalid query {query:?}: {reason}")]
    Query {
        /// The query as given (shortened when long).
        query: String,
        /// What is wrong.
        reason: String,
    },
    /// A delta does not apply to the snapshot it was given.
    #[error(
        "delta applies to base {expected} but was given {found}; \
         fetch the delta for this base, or the full snapshot"
    )]
    WrongBase {
        /// The base identity the delta names.
        expected: String,
        /// The identity of the snapshot it was given.
        found: String,
    },
    /// A delta is inconsistent, or a merge did not give the snapshot the delta promised.
    #[error("delta: {0}")]
    Delta(String),
    /// An update state directory is unusable.
    #[error("state directory {path}: {reason}")]
    State {
        /// The directory or file involved.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Building a snapshot failed for a reason other than I/O.
    #[error("build failed: {0}")]
    Build(String),
    /// An update channel's manifest or file was refused (rollback, freeze, bad entry).
    #[error("update channel: {reason}")]
    Channel {
        /// What is wrong.
        reason: String,
    },
    /// A signature, key or trusted comment was refused.
    #[error("signature: {reason}")]
    Signature {
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error: source,
        }
    }

    pub(crate) fn malformed(section: &'static str, reason: impl Into<String>) -> Self {
        Error::Malformed {
            section,
            reason: reason.into(),
        }
    }

    pub(crate) fn query(query: &str, reason: impl Into<String>) -> Self {
        let mut shown: String = query.chars().take(200).collect();
        if shown.len() < query.len() {
            shown.push_str("...");
        }
        Error::Query {
            query: shown,
            reason: reason.into(),
        }
    }
}

/// `Result` with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
