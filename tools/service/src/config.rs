//! Service configuration: a TOML file, overridden by command-line flags.
//!
//! Every field has a default, so an empty file (or none) is a valid configuration. The
//! default listen address is `127.0.0.1:13111` (the KSN Proxy's port, on loopback only): a
//! fresh install answers local clients and exposes nothing until the operator chooses an
//! address such as `0.0.0.0:13111`. With TLS configured the default port is 17111.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;

/// The default plain-HTTP port (the KSN Proxy's).
pub const DEFAULT_PORT: u16 = 13111;
/// The conventional TLS port.
pub const DEFAULT_TLS_PORT: u16 = 17111;

/// Everything `repute serve` can be told.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on; default `127.0.0.1:13111` (`127.0.0.1:17111` with TLS).
    pub listen: Option<SocketAddr>,
    /// Snapshot file or update state directory to answer from.
    pub snapshot: Option<PathBuf>,
    /// Load the snapshot's layers into 2 MiB pages instead of mapping them: a private copy
    /// per layer (memory the size of the files, read once at open and at each reload) that
    /// spares known-key lookups most TLB misses on large snapshots. Where the kernel has no
    /// huge pages to give, the copy uses ordinary pages and still answers.
    pub huge_pages: bool,
    /// Upstream services, tried in order. `http(s)://host:port` is another repute service;
    /// `hashlookup+https://host` is any CIRCL-hashlookup-compatible server.
    pub upstream: Vec<String>,
    /// API key sent upstream as `Authorization: Bearer`.
    pub upstream_key: Option<String>,
    /// Timeout of one upstream call, connection and body included.
    pub upstream_timeout_ms: u64,
    /// Keys file: when set, every request except `/healthz` needs a key.
    pub keys: Option<PathBuf>,
    /// Policy file (TOML or JSON); overrides the snapshot's policy.
    pub policy: Option<PathBuf>,
    /// TLS certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Cache bound: entries.
    pub cache_entries: u64,
    /// Cache bound: approximate bytes.
    pub cache_bytes: u64,
    /// How long a listed upstream answer is cached.
    pub positive_ttl_seconds: u64,
    /// How long an unknown upstream answer is cached.
    pub negative_ttl_seconds: u64,
    /// First back-off after an upstream failure; it doubles per consecutive failure, times
    /// a random factor in [1, 2) (Safe Browsing's formula).
    pub backoff_base_ms: u64,
    /// Longest back-off.
    pub backoff_max_ms: u64,
    /// How long the batcher waits for more misses before sending a bulk request upstream.
    pub batch_window_us: u64,
    /// Most queries in one upstream request.
    pub upstream_batch: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Most hashes or queries in one bulk request.
    pub max_bulk: usize,
    /// Most open client connections; a connection over the cap is answered 503 and closed.
    pub max_connections: usize,
    /// A client must send its request headers within this time (slowloris).
    pub header_read_timeout_ms: u64,
    /// A request must be answered within this time.
    pub request_timeout_ms: u64,
    /// Cache lifetime clients are told for range answers.
    pub range_ttl_seconds: u64,
    /// How often the snapshot file or state directory is checked for a new snapshot (a
    /// `repute update` or a rename); 0 turns the watch off (SIGHUP still reloads).
    pub watch_interval_ms: u64,
    /// An update channel (what `repute publish --dir` writes) to mirror at `/v1/updates/`:
    /// a directory served as it is, or an `http(s)://` channel fetched on demand.
    pub updates: Option<String>,
    /// Where a mirrored `http(s)://` channel's content-addressed files are kept; needed
    /// with an `http(s)://` `updates`.
    pub updates_cache: Option<PathBuf>,
    /// How long a mirrored channel's manifest is reused before it is fetched again.
    pub updates_manifest_ttl_seconds: u64,
    /// Where closed days' statistics aggregates are relayed (`POST /v1/statistics` of
    /// another repute service); none: they stay here.
    pub statistics_upstream: Option<String>,
    /// How often closed days are relayed.
    pub statistics_relay_interval_seconds: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: None,
            snapshot: None,
            huge_pages: false,
            upstream: Vec::new(),
            upstream_key: None,
            upstream_timeout_ms: 2_000,
            keys: None,
            policy: None,
            tls_cert: None,
            tls_key: None,
            cache_entries: 1_000_000,
            cache_bytes: 256 << 20,
            positive_ttl_seconds: 3_600,
            negative_ttl_seconds: 300,
            backoff_base_ms: 15_000,
            backoff_max_ms: 3_600_000,
            batch_window_us: 500,
            upstream_batch: 1_000,
            max_body_bytes: 4 << 20,
            max_bulk: 10_000,
            max_connections: 10_000,
            header_read_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            range_ttl_seconds: 3_600,
            watch_interval_ms: 1_000,
            updates: None,
            updates_cache: None,
            updates_manifest_ttl_seconds: 60,
            statistics_upstream: None,
            statistics_relay_interval_seconds: 600,
        }
    }
}

impl Config {
    /// Reads a TOML configuration file.
    ///
    /// # Errors
    ///
    /// When the file cannot be read, or has an unknown key or a wrong type (named).
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
    }

    /// The address to listen on, defaults applied.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.unwrap_or_else(|| {
            let port = if self.tls_cert.is_some() {
                DEFAULT_TLS_PORT
            } else {
                DEFAULT_PORT
            };
            SocketAddr::from(([127, 0, 0, 1], port))
        })
    }

    /// Checks values that would make the service misbehave.
    ///
    /// # Errors
    ///
    /// Names the first bad setting.
    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(self.max_bulk > 0, "max_bulk must be at least 1");
        anyhow::ensure!(self.upstream_batch > 0, "upstream_batch must be at least 1");
        anyhow::ensure!(
            self.max_connections > 0,
            "max_connections must be at least 1"
        );
        anyhow::ensure!(
            self.tls_cert.is_some() == self.tls_key.is_some(),
            "tls_cert and tls_key go together"
        );
        if let Some(u) = &self.updates {
            if u.starts_with("http://") || u.starts_with("https://") {
                anyhow::ensure!(
                    self.updates_cache.is_some(),
                    "updates = {u:?} is a URL: set updates_cache to a directory for its files"
                );
            }
        }
        for u in &self.upstream {
            crate::proxy::UpstreamUrl::parse(u)?;
        }
        Ok(())
    }

    pub(crate) fn upstream_timeout(&self) -> Duration {
        Duration::from_millis(self.upstream_timeout_ms.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_listen_on_loopback_13111_and_unknown_keys_are_refused() {
        let c: Config = toml::from_str("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.listen_addr().to_string(), "127.0.0.1:13111");
        let t: Config = toml::from_str("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"").unwrap();
        assert_eq!(t.listen_addr().to_string(), "127.0.0.1:17111");
        let err = toml::from_str::<Config>("listn = \"0.0.0.0:1\"").unwrap_err();
        assert!(err.to_string().contains("listn"), "{err}");
        let c: Config =
            toml::from_str("listen = \"0.0.0.0:8080\"\nupstream = [\"http://a:1\"]").unwrap();
        assert_eq!(c.listen_addr().port(), 8080);
        c.validate().unwrap();
    }
}
