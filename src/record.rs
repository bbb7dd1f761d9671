//! Verdicts and records: what a snapshot knows about a key.
//!
//! [`RecordSpec`] is the owned form a feed hands to the builder; [`Record`] is the zero-copy
//! view a lookup returns, reading its fields from the snapshot's record and string tables.

use std::fmt;
use std::str::FromStr;

use crate::format::{RecordTable, StringTable, RECORD_FLAG_OVERRIDE};

/// What a snapshot says about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Not in the snapshot.
    Unknown,
    /// Known bad.
    Malicious,
    /// Potentially unwanted, grayware.
    Suspicious,
    /// Known good (vendor or distribution allowlists).
    Trusted,
    /// Present in a reference set (such as NSRL) with no judgement.
    Known,
}

impl Verdict {
    /// All verdicts a record can carry, in precedence order (strongest first).
    pub const RECORDED: [Verdict; 4] = [
        Verdict::Malicious,
        Verdict::Suspicious,
        Verdict::Trusted,
        Verdict::Known,
    ];

    /// The lower-case name used in feeds, manifests and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Unknown => "unknown",
            Verdict::Malicious => "malicious",
            Verdict::Suspicious => "suspicious",
            Verdict::Trusted => "trusted",
            Verdict::Known => "known",
        }
    }

    /// Precedence when feeds disagree: lower wins (malicious > suspicious > trusted > known).
    pub fn precedence(self) -> u8 {
        match self {
            Verdict::Malicious => 0,
            Verdict::Suspicious => 1,
            Verdict::Trusted => 2,
            Verdict::Known => 3,
            Verdict::Unknown => 4,
        }
    }

    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Verdict::Unknown => 0,
            Verdict::Malicious => 1,
            Verdict::Suspicious => 2,
            Verdict::Trusted => 3,
            Verdict::Known => 4,
        }
    }

    pub(crate) fn from_byte(byte: u8) -> Option<Verdict> {
        Some(match byte {
            1 => Verdict::Malicious,
            2 => Verdict::Suspicious,
            3 => Verdict::Trusted,
            4 => Verdict::Known,
            _ => return None,
        })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verdict {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "malicious" | "malware" | "bad" => Verdict::Malicious,
            "suspicious" | "pua" | "grayware" => Verdict::Suspicious,
            "trusted" | "good" | "clean" => Verdict::Trusted,
            "known" => Verdict::Known,
            other => {
                return Err(format!(
                    "unknown verdict {other:?} (expected malicious, suspicious, trusted or known)"
                ))
            }
        })
    }
}

/// The owned description of a record, as feeds give it to the builder.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RecordSpec {
    /// The verdict. `Unknown` is replaced by the feed's default verdict.
    pub verdict: Option<Verdict>,
    /// Category such as `trojan`, `ransomware`, `phishing`, `malware_download`.
    pub category: Option<String>,
    /// Threat or signature name.
    pub name: Option<String>,
    /// First seen, Unix seconds.
    pub first_seen: Option<i64>,
    /// Last seen, Unix seconds.
    pub last_seen: Option<i64>,
    /// Confidence, 0..=100.
    pub confidence: Option<u8>,
}

impl RecordSpec {
    /// A record with this verdict and nothing else.
    pub fn new(verdict: Verdict) -> Self {
        RecordSpec {
            verdict: Some(verdict),
            ..RecordSpec::default()
        }
    }

    /// Sets the threat name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the category.
    pub fn category(mut self, category: impl Into<String>) -> Self {
        self.category = Some(category.into());
        self
    }
}

/// Index of a record in a snapshot's record table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(pub u32);

/// A zero-copy view of one record in a snapshot.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    pub(crate) id: RecordId,
    pub(crate) raw: &'a [u8],
    pub(crate) strings: StringTable<'a>,
}

impl<'a> Record<'a> {
    pub(crate) fn new(
        id: RecordId,
        table: &RecordTable<'a>,
        strings: StringTable<'a>,
    ) -> Option<Self> {
        let raw = table.raw(id.0)?;
        Some(Record { id, raw, strings })
    }

    /// The record's index in the snapshot.
    pub fn id(&self) -> RecordId {
        self.id
    }

    /// The verdict (never `Unknown` in a verified snapshot).
    pub fn verdict(&self) -> Verdict {
        Verdict::from_byte(self.raw[0]).unwrap_or(Verdict::Unknown)
    }

    /// Whether the record comes from an override (allowlist) feed, which wins over every
    /// non-override entry it covers (record flag bit 0).
    pub fn is_override(&self) -> bool {
        self.raw[2] & RECORD_FLAG_OVERRIDE as u8 != 0
    }

    /// Confidence 0..=100, when the feed gave one.
    pub fn confidence(&self) -> Option<u8> {
        let c = self.raw[1];
        (c <= 100).then_some(c)
    }

    fn string(&self, at: usize) -> Option<&'a str> {
        let id = u32::from_le_bytes(self.raw[at..at + 4].try_into().ok()?);
        self.strings.get(id)
    }

    fn time(&self, at: usize) -> Option<i64> {
        let t = i64::from_le_bytes(self.raw[at..at + 8].try_into().ok()?);
        (t != i64::MIN).then_some(t)
    }

    /// Category such as `trojan` or `phishing`.
    pub fn category(&self) -> Option<&'a str> {
        self.string(4)
    }

    /// Threat or signature name.
    pub fn name(&self) -> Option<&'a str> {
        self.string(8)
    }

    /// The source feed's name.
    pub fn source(&self) -> Option<&'a str> {
        self.string(12)
    }

    /// First seen, Unix seconds.
    pub fn first_seen(&self) -> Option<i64> {
        self.time(16)
    }

    /// Last seen, Unix seconds.
    pub fn last_seen(&self) -> Option<i64> {
        self.time(24)
    }
}

impl fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("id", &self.id.0)
            .field("verdict", &self.verdict())
            .field("category", &self.category())
            .field("name", &self.name())
            .field("source", &self.source())
            .field("first_seen", &self.first_seen())
            .field("last_seen", &self.last_seen())
            .field("confidence", &self.confidence())
            .finish()
    }
}
