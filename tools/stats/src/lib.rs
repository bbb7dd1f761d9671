//! The reputation cloud's statistics, both ends of them, without any network code.
//!
//! - [`schema`]: the closed report schema an agent sends ([`Report`]) and the closed
//!   aggregate schema a proxy relays upstream ([`Aggregate`]), shared by the client and the
//!   service so both sides agree on every field. Unknown fields are refused.
//! - [`intake`]: decoding and validating a submitted body (size caps before and after
//!   decompression, item caps, digest shapes, days).
//! - [`store`]: the SQLite aggregate store (WAL mode, synchronous commits): reports are
//!   folded into per-day aggregates the moment they arrive and never kept raw; reporter
//!   tokens are kept only until their day closes, to count distinct reporters.
//! - [`samples`]: content-addressed storage of the samples the service asked for.
//! - [`export`]: the prevalence feed (JSON lines) the next `repute build` reads as the
//!   `repute-stats` feed format, and the summary by threat name.
//!
//! Time is always passed in as a [`Day`]: nothing here reads the clock.

pub mod day;
pub mod export;
pub mod intake;
pub mod samples;
pub mod schema;
pub mod store;

pub use day::Day;
pub use export::{bucket, ExportOptions, ExportSummary};
pub use intake::{decode_submission, IntakeError, Limits, Submission};
pub use samples::{SampleError, SampleStore};
pub use schema::{Aggregate, AggregateItem, DigestType, Item, Report, ReportedVerdict};
pub use store::{IngestReceipt, StatsStore, StoreError};
