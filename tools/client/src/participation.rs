//! Participation: the opt-in settings, the bounded queue of daily reports, sending it.
//!
//! Settings live in `$XDG_CONFIG_HOME/repute/config.toml` (`~/.config/repute/config.toml`
//! when `XDG_CONFIG_HOME` is unset); the queue of unsent reports beside it, in
//! `reports.json`. Participation is off until `repute cloud join` turns it on.
//!
//! What is queued, per UTC day: for each digest the agent saw that its snapshot detected
//! or did not know, the digest's type, the digest, the verdict and a count; with the day,
//! a random token renewed every day, the snapshot's sequence and the product version: a
//! [`Report`], whose schema admits nothing else. The queue is bounded: at most
//! [`MAX_ITEMS_PER_DAY`] distinct items per day (more are counted as dropped, not stored),
//! and only today's and yesterday's reports (the service accepts no older day), so it is
//! dropped rather than grown while the service is unreachable.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use repute_stats::schema::REPORT_SCHEMA;
use repute_stats::{Day, DigestType, Item, Report, ReportedVerdict};
use serde::{Deserialize, Serialize};

use crate::{ClientError, CloudClient};

/// Distinct items kept per day.
pub const MAX_ITEMS_PER_DAY: usize = 10_000;
/// Default minutes between two sends.
pub const DEFAULT_INTERVAL_MINUTES: u32 = 60;
/// Default cap on one uploaded sample.
pub const DEFAULT_MAX_SAMPLE: u64 = 16 << 20;

/// The configuration directory: `$XDG_CONFIG_HOME/repute`, else `$HOME/.config/repute`.
pub fn config_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(base.join("repute"))
}

/// Cloud lookups, from the `[cloud]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudSettings {
    /// Services to ask, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Ask by range only.
    #[serde(default)]
    pub private_lookups: bool,
    /// API key for the services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

/// Participation, from the `[participation]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipationSettings {
    /// Whether statistics are sent.
    #[serde(default)]
    pub enabled: bool,
    /// Where statistics go (default: the first cloud service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Whether samples the service asks for may be uploaded.
    #[serde(default)]
    pub samples: bool,
    /// Minutes between two sends.
    #[serde(default = "default_interval")]
    pub interval_minutes: u32,
    /// The largest sample uploaded, bytes.
    #[serde(default = "default_max_sample")]
    pub max_sample_bytes: u64,
}

fn default_interval() -> u32 {
    DEFAULT_INTERVAL_MINUTES
}

fn default_max_sample() -> u64 {
    DEFAULT_MAX_SAMPLE
}

impl Default for ParticipationSettings {
    fn default() -> Self {
        ParticipationSettings {
            enabled: false,
            service: None,
            samples: false,
            interval_minutes: DEFAULT_INTERVAL_MINUTES,
            max_sample_bytes: DEFAULT_MAX_SAMPLE,
        }
    }
}

/// The configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Cloud lookups.
    #[serde(default)]
    pub cloud: CloudSettings,
    /// Participation.
    #[serde(default)]
    pub participation: ParticipationSettings,
}

/// Errors reading or writing the settings and the queue.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// File system.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What happened.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SettingsError + '_ {
    move |source| SettingsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `data` to `path` through a temporary file, fsynced and renamed.
fn write_atomically(path: &Path, data: &[u8]) -> Result<(), SettingsError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    tmp.write_all(data).map_err(io_err(path))?;
    tmp.as_file().sync_all().map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| SettingsError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

impl Settings {
    /// The settings file in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("config.toml")
    }

    /// Reads the settings in `dir`; defaults (participation off) when there is no file.
    ///
    /// # Errors
    ///
    /// When the file exists but cannot be read or is not valid.
    pub fn load(dir: &Path) -> Result<Settings, SettingsError> {
        let path = Self::path(dir);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(e) => return Err(io_err(&path)(e)),
        };
        toml::from_str(&text).map_err(|e| SettingsError::Invalid {
            path,
            reason: e.to_string(),
        })
    }

    /// Writes the settings to `dir`.
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub fn save(&self, dir: &Path) -> Result<(), SettingsError> {
        let path = Self::path(dir);
        let text = toml::to_string(self).map_err(|e| SettingsError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_atomically(&path, text.as_bytes())
    }

    /// Where statistics go: the participation service, else the first cloud service.
    pub fn statistics_service(&self) -> Option<&str> {
        self.participation
            .service
            .as_deref()
            .or(self.cloud.services.first().map(String::as_str))
    }
}

/// A random 128-bit token in hex.
///
/// # Errors
///
/// When the operating system gives no randomness.
pub fn random_token() -> Result<String, String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| e.to_string())?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct QueueFile {
    #[serde(default)]
    current: Option<Report>,
    #[serde(default)]
    closed: Vec<Report>,
    #[serde(default)]
    last_sent: i64,
    /// When the last send reached no service, and how many in a row did not.
    #[serde(default)]
    last_failed: i64,
    #[serde(default)]
    failures: u32,
    #[serde(default)]
    dropped: u64,
}

/// The queue of unsent reports.
#[derive(Debug, Clone, Default)]
pub struct Queue {
    file: QueueFile,
    index: HashMap<(DigestType, String, ReportedVerdict), usize>,
}

impl Queue {
    /// The queue file in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("reports.json")
    }

    /// Reads the queue; an absent or unreadable queue is an empty one (it holds nothing
    /// that must survive).
    pub fn load(dir: &Path) -> Queue {
        let file: QueueFile = fs::read(Self::path(dir))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let mut q = Queue {
            file,
            index: HashMap::new(),
        };
        q.reindex();
        q
    }

    fn reindex(&mut self) {
        self.index.clear();
        if let Some(r) = &self.file.current {
            for (i, it) in r.items.iter().enumerate() {
                self.index
                    .insert((it.kind, it.digest.clone(), it.verdict), i);
            }
        }
    }

    /// Writes the queue.
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub fn save(&self, dir: &Path) -> Result<(), SettingsError> {
        let data = serde_json::to_vec(&self.file).map_err(|e| SettingsError::Invalid {
            path: Self::path(dir),
            reason: e.to_string(),
        })?;
        write_atomically(&Self::path(dir), &data)
    }

    /// Deletes the queue file (unsent reports are gone).
    ///
    /// # Errors
    ///
    /// When it exists and cannot be removed.
    pub fn delete(dir: &Path) -> Result<bool, SettingsError> {
        let path = Self::path(dir);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Items dropped because a day's report was full.
    pub fn dropped(&self) -> u64 {
        self.file.dropped
    }

    /// Unix seconds of the last successful send.
    pub fn last_sent(&self) -> i64 {
        self.file.last_sent
    }

    /// Moves a finished day to the closed reports and forgets days the service would no
    /// longer accept.
    fn roll(&mut self, today: Day) {
        let current_day = self
            .file
            .current
            .as_ref()
            .and_then(|r| r.day.parse::<Day>().ok());
        if current_day.is_some_and(|d| d != today) {
            if let Some(r) = self.file.current.take() {
                if !r.items.is_empty() {
                    self.file.closed.push(r);
                }
            }
            self.index.clear();
        }
        let oldest = today.plus(-1);
        self.file
            .closed
            .retain(|r| r.day.parse::<Day>().is_ok_and(|d| d >= oldest && d < today));
    }

    /// Counts one sighting on `today` (a new token is drawn when the day is new).
    ///
    /// # Errors
    ///
    /// When no random token can be drawn.
    pub fn record(
        &mut self,
        today: Day,
        snapshot_sequence: u64,
        kind: DigestType,
        digest: &str,
        verdict: ReportedVerdict,
    ) -> Result<(), String> {
        self.roll(today);
        if self.file.current.is_none() {
            self.file.current = Some(Report {
                schema: REPORT_SCHEMA.to_string(),
                day: today.to_string(),
                token: random_token()?,
                snapshot_sequence,
                product_version: env!("CARGO_PKG_VERSION").to_string(),
                items: Vec::new(),
            });
        }
        let Some(report) = self.file.current.as_mut() else {
            return Ok(());
        };
        report.snapshot_sequence = snapshot_sequence;
        let digest = digest.to_ascii_lowercase();
        let key = (kind, digest, verdict);
        if let Some(&i) = self.index.get(&key) {
            let c = &mut report.items[i].count;
            *c = c.saturating_add(1).min(1_000_000);
        } else if report.items.len() < MAX_ITEMS_PER_DAY {
            report.items.push(Item {
                kind,
                digest: key.1.clone(),
                verdict,
                count: 1,
            });
            self.index.insert(key, report.items.len() - 1);
        } else {
            self.file.dropped += 1;
        }
        Ok(())
    }

    /// The reports that would be sent on `today`, exactly as they would be sent.
    pub fn pending(&mut self, today: Day) -> Vec<Report> {
        self.roll(today);
        let mut out = self.file.closed.clone();
        if let Some(r) = &self.file.current {
            if !r.items.is_empty() {
                out.push(r.clone());
            }
        }
        out
    }

    /// Whether a send is due at `now` (Unix seconds): the interval has passed since the last
    /// send, and, after sends that reached no service, the back-off since the last of them:
    /// min(interval x 2^(failures - 1), 24 h). An unreachable service then costs a scan
    /// nothing but the queue's update, instead of a connection attempt every time.
    pub fn due(&self, now: i64, interval_minutes: u32) -> bool {
        let interval = i64::from(interval_minutes) * 60;
        let clock_went_back = now < self.file.last_sent || now < self.file.last_failed;
        if clock_went_back {
            return true;
        }
        if now - self.file.last_sent < interval {
            return false;
        }
        if self.file.failures == 0 {
            return true;
        }
        let doublings = (self.file.failures - 1).min(16);
        let backoff = interval.saturating_mul(1 << doublings).min(24 * 3600);
        now - self.file.last_failed >= backoff
    }

    /// How many sends in a row reached no service.
    pub fn failures(&self) -> u32 {
        self.file.failures
    }

    /// Sends every pending report, each as one gzip-compressed body. A report the service
    /// refuses (4xx) is dropped; one it could not be reached for stays queued (bounded).
    /// Today's items are cleared once sent; today's token is kept, so the service still
    /// counts this reporter once for the day.
    pub fn send(&mut self, client: &CloudClient, today: Day, now: i64) -> SendOutcome {
        let mut outcome = SendOutcome::default();
        let reports = self.pending(today);
        let mut keep_closed = Vec::new();
        let mut current_done = false;
        for report in reports {
            let is_current = report.day == today.to_string();
            let body = match gzip_json(&report) {
                Ok(b) => b,
                Err(e) => {
                    outcome.errors.push(e);
                    continue;
                }
            };
            match client.post_statistics(&body) {
                Ok(()) => {
                    outcome.sent += 1;
                    outcome.items += report.items.len();
                    current_done |= is_current;
                }
                Err(ClientError::Refused { status, reason }) => {
                    outcome.refused += 1;
                    outcome.errors.push(format!("HTTP {status}: {reason}"));
                    current_done |= is_current;
                }
                Err(e) => {
                    outcome.errors.push(e.to_string());
                    if !is_current {
                        keep_closed.push(report);
                    }
                }
            }
        }
        self.file.closed = keep_closed;
        if current_done {
            if let Some(r) = self.file.current.as_mut() {
                r.items.clear();
            }
            self.index.clear();
        }
        if outcome.sent > 0 || outcome.refused > 0 {
            self.file.last_sent = now;
            self.file.failures = 0;
        } else if !outcome.errors.is_empty() {
            self.file.last_failed = now;
            self.file.failures = self.file.failures.saturating_add(1);
        }
        outcome
    }
}

/// A report as the gzip-compressed JSON body sent.
///
/// # Errors
///
/// When compression fails.
pub fn gzip_json(report: &Report) -> Result<Vec<u8>, String> {
    let json = serde_json::to_vec(report).map_err(|e| e.to_string())?;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&json).map_err(|e| e.to_string())?;
    enc.finish().map_err(|e| e.to_string())
}

/// What [`Queue::send`] did.
#[derive(Debug, Clone, Default)]
pub struct SendOutcome {
    /// Reports accepted.
    pub sent: usize,
    /// Their items.
    pub items: usize,
    /// Reports refused and dropped.
    pub refused: usize,
    /// What went wrong.
    pub errors: Vec<String>,
}

/// The consent text `repute cloud join` shows: exactly what is shared.
pub fn consent_text(service: &str, samples: bool, interval_minutes: u32) -> String {
    let mut t = format!(
        "Joining the reputation cloud at {service}.\n\
         Once a day's report is due (at most every {interval_minutes} minutes), repute sends, \
         gzip-compressed, one JSON object per day:\n\
         \x20 - the UTC day (YYYY-MM-DD), no finer time;\n\
         \x20 - a random token, renewed every day, used only to count distinct reporters;\n\
         \x20 - your snapshot's sequence number and repute's version;\n\
         \x20 - for each file digest your snapshot detected or did not know: its type \
         (md5/sha1/sha256), the digest, the verdict (malicious/suspicious/unknown) and how \
         many times it was seen that day.\n\
         Never sent: paths, file names, host names, user names, addresses, file contents, \
         free text.\n\
         The service folds reports into per-day totals and does not keep them; a digest is \
         published only once enough distinct reporters sent it.\n"
    );
    if samples {
        t.push_str(
            "Samples: when the service asks for a file whose digest it does not know \
             (\"repute:wanted\"), repute uploads that file's content (never its name or \
             path), up to the size cap. Nothing the service did not ask for is uploaded.\n",
        );
    } else {
        t.push_str("Samples: off (files are never uploaded; join with --samples to allow it).\n");
    }
    t.push_str("Leave at any time with `repute cloud leave` (unsent reports are deleted).\n");
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: Day = Day(20_600);

    #[test]
    fn sends_that_reach_no_service_back_off() {
        // A loopback port nothing listens on: bind, note the port, close.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let client = CloudClient::new(crate::CloudOptions::new(vec![format!(
            "http://127.0.0.1:{port}"
        )]));
        let mut q = Queue::default();
        q.record(
            TODAY,
            1,
            DigestType::Sha256,
            &"ab".repeat(32),
            ReportedVerdict::Unknown,
        )
        .unwrap();
        let interval = 60u32; // minutes
        let t0 = 1_800_000_000;
        assert!(q.due(t0, interval), "never sent: due at once");
        let out = q.send(&client, TODAY, t0);
        assert_eq!((out.sent, q.failures()), (0, 1), "{:?}", out.errors);
        // The first failure waits one interval, the second two, the third four.
        assert!(!q.due(t0 + 3599, interval));
        assert!(q.due(t0 + 3600, interval));
        let t1 = t0 + 3600;
        q.send(&client, TODAY, t1);
        assert_eq!(q.failures(), 2);
        assert!(!q.due(t1 + 2 * 3600 - 1, interval));
        assert!(q.due(t1 + 2 * 3600, interval));
        // However many failures, at most a day.
        for _ in 0..30 {
            q.send(&client, TODAY, t1);
        }
        assert!(!q.due(t1 + 24 * 3600 - 1, interval));
        assert!(q.due(t1 + 24 * 3600, interval));
        // The items stay queued through all of it.
        assert_eq!(q.pending(TODAY)[0].items.len(), 1);
    }

    #[test]
    fn queue_is_bounded_and_rolls_days() {
        let mut q = Queue::default();
        let d = |i: usize| format!("{i:064x}");
        for i in 0..MAX_ITEMS_PER_DAY + 5 {
            q.record(
                TODAY,
                1,
                DigestType::Sha256,
                &d(i),
                ReportedVerdict::Unknown,
            )
            .unwrap();
        }
        q.record(
            TODAY,
            1,
            DigestType::Sha256,
            &d(0),
            ReportedVerdict::Unknown,
        )
        .unwrap();
        assert_eq!(q.dropped(), 5);
        let pending = q.pending(TODAY);
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].items.len(), MAX_ITEMS_PER_DAY);
        assert_eq!(pending[0].items[0].count, 2);
        let token = pending[0].token.clone();
        q.record(
            TODAY.plus(1),
            2,
            DigestType::Md5,
            &"a".repeat(32),
            ReportedVerdict::Malicious,
        )
        .unwrap();
        let pending = q.pending(TODAY.plus(1));
        assert_eq!(pending.len(), 2);
        assert_ne!(pending[1].token, token, "a new token each day");
        assert_eq!(
            q.pending(TODAY.plus(3)).len(),
            0,
            "days the service refuses are dropped"
        );
    }

    #[test]
    fn settings_round_trip_and_refuse_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!Settings::load(dir.path()).unwrap().participation.enabled);
        let mut s = Settings::default();
        s.participation.enabled = true;
        s.cloud.services = vec!["http://127.0.0.1:13111".into()];
        s.save(dir.path()).unwrap();
        assert_eq!(Settings::load(dir.path()).unwrap(), s);
        fs::write(
            Settings::path(dir.path()),
            "[participation]\nenabeld = true\n",
        )
        .unwrap();
        assert!(Settings::load(dir.path()).is_err());
    }
}
