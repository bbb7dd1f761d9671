//! The metadata section: a small JSON object describing the build.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a snapshot says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Metadata {
    /// The tool that wrote the file, e.g. `repute 0.1.0`.
    pub generator: String,
    /// Build time, Unix seconds (taken from the builder, so builds are reproducible).
    pub created: i64,
    /// When the snapshot should no longer be trusted, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    /// A monotonically increasing number chosen by the publisher.
    pub sequence: u64,
    /// The feeds that went in, sorted by source name.
    pub feeds: Vec<FeedSummary>,
    /// Keys per kind: `md5`, `sha1`, `sha256`, `url`, `domain`.
    pub keys: BTreeMap<String, u64>,
    /// Keys per verdict.
    pub verdicts: BTreeMap<String, u64>,
    /// Number of records in the record table.
    pub records: u64,
    /// Bloom filter bits per key.
    pub filter_bits_per_key: f64,
    /// The publisher's cloud policy, when it set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<crate::Policy>,
}

/// One feed's contribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FeedSummary {
    /// Source name (records name it).
    pub source: String,
    /// Feed format, e.g. `sha256sum`.
    pub format: String,
    /// Default verdict.
    pub verdict: String,
    /// Whether the feed overrides others.
    #[serde(default)]
    pub r#override: bool,
    /// Keys this feed contributed (before conflict resolution).
    pub keys: u64,
}
