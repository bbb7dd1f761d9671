//! repute: a local reputation engine for file hashes and URLs.
//!
//! A [`Snapshot`] is an immutable, versioned, checksummed file (see [`format`](mod@format) for the
//! specification) that answers "what do we know about this digest / this URL?" in well under
//! a microsecond. It holds:
//!
//! - one sorted [`digest::FingerprintTable`] per digest kind (MD5, SHA-1, SHA-256),
//! - an FST of canonical URL and domain expressions in reversed-host order ([`url`]),
//! - a cache-line-blocked bloom filter ([`filter::BlockedBloom`]) in front of both, so that
//!   an unknown key costs about one memory access,
//! - a record table: every key points at a [`Record`] (verdict, category, name, source feed,
//!   first/last seen, confidence).
//!
//! Snapshots are made by [`SnapshotBuilder`] from the feed readers in [`feeds`].
//!
//! The library never prints and never exits: every failure is an [`Error`].
//!
//! ```
//! use repute::{Digest, RecordSpec, SnapshotBuilder, Snapshot, Verdict};
//!
//! let mut builder = SnapshotBuilder::new();
//! let feed = builder.add_feed(repute::FeedInfo::new("eicar", "hashes", Verdict::Malicious));
//! let eicar: Digest = "44d88612fea8a8f36de82e1278abb02f".parse().unwrap();
//! builder.add_digest(feed, eicar, RecordSpec::new(Verdict::Malicious).name("EICAR-Test-File"));
//! let bytes = builder.to_bytes().unwrap();
//!
//! let snapshot = Snapshot::open(bytes).unwrap();
//! snapshot.verify().unwrap();
//! let record = snapshot.lookup_digest(&eicar).unwrap();
//! assert_eq!(record.verdict(), Verdict::Malicious);
//! assert_eq!(record.name(), Some("EICAR-Test-File"));
//! ```
#![deny(unsafe_code)]

pub mod build;
pub mod channel;
pub mod delta;
pub mod digest;
pub mod engine;
mod error;
pub mod feeds;
pub mod filter;
pub mod format;
mod query;
mod record;
pub mod scan;
pub mod sign;
mod snapshot;
pub mod text;
pub mod time;
pub mod url;

pub use build::{BuildReport, FeedInfo, FeedReport, SnapshotBuilder, SourceReport};
pub use digest::{Digest, DigestKind};
pub use engine::{CloudState, Engine, EngineOptions, EngineStatus, Found, Policy, View};
pub use error::{Error, Result};
pub use format::Metadata;
pub use query::{line_query, Query, QueryKind};
pub use record::{Record, RecordId, RecordSpec, Verdict};
pub use snapshot::{Hit, HugePageMemory, Snapshot, UrlScratch, UrlVerdict};
