//! The repute network service: `repute serve`.
//!
//! [`Service`] holds everything a request needs: the [`Backend`] (the current snapshot,
//! swappable), the optional [`Proxy`] (cache and upstreams), the optional [`KeyStore`], the
//! policy and the [`Metrics`]. [`routes::router`] turns it into an axum `Router`, which the
//! tests drive in-process with `tower::ServiceExt::oneshot`; [`server::serve`] runs it on a
//! socket with the connection-level limits (header-read timeout, connection cap, TLS,
//! graceful shutdown). Lookups run inline on the reactor (they take well under a
//! microsecond); bulk requests above [`INLINE_QUERIES`] run on the blocking pool.

pub mod backend;
pub mod config;
pub mod html;
pub mod keys;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod routes;
pub mod safebrowsing;
pub mod server;
pub mod statistics;
pub mod updates;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use arc_swap::ArcSwapOption;
use repute::{Digest, Query};
use serde_json::{json, Value};

pub use backend::{Backend, Found};
pub use config::Config;
pub use keys::KeyStore;
pub use metrics::{AnswerSource, Metrics};
pub use policy::{CloudState, Policy};
pub use proxy::Proxy;

/// Bulk requests with more queries than this run their snapshot pass on the blocking pool.
pub const INLINE_QUERIES: usize = 2_048;

/// The answer to one query.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The record, when listed.
    pub found: Option<Found>,
    /// Where the answer came from.
    pub source: AnswerSource,
    /// The upstream should have been asked and failed.
    pub unavailable: bool,
    /// A restriction stopped forwarding.
    pub restricted: bool,
    /// The lookup itself failed (a damaged snapshot section).
    pub error: Option<String>,
}

impl Resolution {
    fn snapshot(found: Option<Found>) -> Resolution {
        Resolution {
            found,
            source: AnswerSource::Snapshot,
            unavailable: false,
            restricted: false,
            error: None,
        }
    }
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct Service {
    /// Settings.
    pub config: Config,
    /// The current snapshot.
    pub backend: Backend,
    /// Cache and upstreams, in proxy mode.
    pub proxy: Option<Proxy>,
    /// API keys, when required.
    pub keys: Option<KeyStore>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The update-channel mirror at `/v1/updates/`, when configured.
    pub updates: Option<updates::Mirror>,
    /// A policy file's policy, which overrides the snapshot's.
    policy_override: ArcSwapOption<Policy>,
    started: Instant,
}

/// Makes ring the process's TLS provider (for HTTP clients built without one); harmless
/// when a provider is already installed.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub use repute::time::iso8601;

/// The cache key and upstream text of a query.
fn miss_of(query: &Query, allowed: bool) -> proxy::Miss {
    let kind = query.kind().as_str();
    let text = match query {
        Query::Digest(d) => d.to_hex(),
        Query::Url(u) => u.to_string(),
        Query::Domain(u) => u.host.clone(),
    };
    proxy::Miss {
        key: format!("{kind}:{text}"),
        text,
        kind,
        allowed,
    }
}

impl Service {
    /// Builds the service. In proxy mode (`config.upstream` not empty) this spawns the
    /// batcher, so it must run inside a Tokio runtime.
    ///
    /// # Errors
    ///
    /// When the configuration, keys file or policy file is invalid.
    pub fn new(config: Config, backend: Backend) -> Result<Arc<Service>> {
        config.validate()?;
        let metrics = Arc::new(Metrics::default());
        let proxy = if config.upstream.is_empty() {
            None
        } else {
            Some(Proxy::new(&config, metrics.clone())?)
        };
        let keys = config.keys.as_deref().map(KeyStore::open).transpose()?;
        let policy = config
            .policy
            .as_deref()
            .map(policy::from_file)
            .transpose()?;
        let updates = config
            .updates
            .as_deref()
            .map(|u| {
                updates::Mirror::new(
                    u,
                    config.updates_cache.as_deref(),
                    std::time::Duration::from_secs(config.updates_manifest_ttl_seconds),
                )
            })
            .transpose()?;
        let service = Service {
            config,
            backend,
            proxy,
            keys,
            metrics,
            updates,
            policy_override: ArcSwapOption::from(policy.map(Arc::new)),
            started: Instant::now(),
        };
        service.apply_policy();
        Ok(Arc::new(service))
    }

    /// Replaces the policy-file policy (`None`: the snapshot's applies).
    pub fn set_policy(&self, policy: Option<Policy>) {
        self.policy_override.store(policy.map(Arc::new));
        self.apply_policy();
    }

    fn apply_policy(&self) {
        if let Some(p) = &self.proxy {
            let policy = self.policy();
            let now = unix_now();
            p.set_rate_limit(policy.as_ref().and_then(|p| {
                (p.effective(now) == CloudState::Restricted)
                    .then_some(p.max_per_minute)
                    .flatten()
            }));
        }
    }

    /// The policy in force: the policy file's, else the snapshot's.
    pub fn policy(&self) -> Option<Policy> {
        if let Some(p) = self.policy_override.load_full() {
            return Some((*p).clone());
        }
        self.backend.load().and_then(|l| l.policy())
    }

    /// The cloud state now, and its description.
    pub fn cloud(&self) -> (CloudState, String) {
        let now = unix_now();
        match self.policy() {
            Some(p) => (p.effective(now), p.describe(now)),
            None => (CloudState::Enabled, "enabled".into()),
        }
    }

    /// Re-opens the snapshot (SIGHUP), and the keys and policy files.
    ///
    /// # Errors
    ///
    /// When the new snapshot or a file is invalid; what was in service stays.
    pub fn reload(&self) -> Result<()> {
        self.backend.reload()?;
        if let Some(k) = &self.keys {
            k.reload()?;
        }
        if let Some(path) = &self.config.policy {
            self.set_policy(Some(policy::from_file(path)?));
        } else {
            self.apply_policy();
        }
        Ok(())
    }

    /// Swaps in a new snapshot when the state directory or snapshot file changed (the
    /// watch's check); returns whether it did.
    ///
    /// # Errors
    ///
    /// When the new files do not verify; what was in service stays.
    pub fn reload_if_changed(&self) -> Result<bool> {
        let swapped = self.backend.reload_if_changed()?;
        if swapped {
            self.apply_policy();
        }
        Ok(swapped)
    }

    /// Starts the watch (every `watch_interval_ms`, when a snapshot or state directory is
    /// served): a snapshot that `repute update` installs, or a renamed-in snapshot file, is
    /// swapped in without a restart. Requests in flight finish on the view they started
    /// with. Must run inside a Tokio runtime; `None` when there is nothing to watch.
    pub fn spawn_watch(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        if self.config.watch_interval_ms == 0 || self.backend.path().is_none() {
            return None;
        }
        let service = self.clone();
        let every = std::time::Duration::from_millis(self.config.watch_interval_ms);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_error = String::new();
            loop {
                tick.tick().await;
                let s = service.clone();
                // Opening and verifying a new snapshot reads it whole: off the reactor.
                let result = tokio::task::spawn_blocking(move || s.reload_if_changed()).await;
                match result {
                    Ok(Ok(true)) => {
                        last_error.clear();
                        let sequence = service.backend.load().map(|l| l.metadata().sequence);
                        tracing::info!(?sequence, "new snapshot in service");
                    }
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => {
                        let message = format!("{e:#}");
                        if message != last_error {
                            tracing::error!(error = %message, "new snapshot refused; still serving the old one");
                            last_error = message;
                        }
                    }
                    Err(_) => {}
                }
            }
        }))
    }

    /// Resolves one digest: the hot path of `/lookup/{kind}/{hex}`.
    pub async fn resolve_digest(&self, digest: &Digest) -> Resolution {
        let found = self.backend.load().and_then(|l| l.digest(digest));
        if found.is_some() || self.proxy.is_none() {
            self.metrics.answered(AnswerSource::Snapshot);
            return Resolution::snapshot(found);
        }
        let query = Query::Digest(*digest);
        self.resolve_misses(&[query], vec![Resolution::snapshot(None)])
            .await
            .pop()
            .unwrap_or_else(|| Resolution::snapshot(None))
    }

    /// Resolves many queries, one answer per query, in order.
    pub async fn resolve(self: &Arc<Self>, queries: Vec<Query>) -> (Vec<Query>, Vec<Resolution>) {
        let (queries, first) = if queries.len() > INLINE_QUERIES {
            let service = self.clone();
            match tokio::task::spawn_blocking(move || {
                let r = service.snapshot_pass(&queries);
                (queries, r)
            })
            .await
            {
                Ok(done) => done,
                Err(e) => {
                    let message = format!("lookup task failed: {e}");
                    return (
                        Vec::new(),
                        vec![Resolution {
                            error: Some(message),
                            ..Resolution::snapshot(None)
                        }],
                    );
                }
            }
        } else {
            let r = self.snapshot_pass(&queries);
            (queries, r)
        };
        let answers = if self.proxy.is_some() {
            self.resolve_misses(&queries, first).await
        } else {
            first
        };
        (queries, answers)
    }

    /// Answers every query from the snapshot (digests batched).
    fn snapshot_pass(&self, queries: &[Query]) -> Vec<Resolution> {
        let mut out: Vec<Resolution> = Vec::with_capacity(queries.len());
        let Some(loaded) = self.backend.load() else {
            out.resize(queries.len(), Resolution::snapshot(None));
            if self.proxy.is_none() {
                self.metrics
                    .answered_n(AnswerSource::Snapshot, queries.len() as u64);
            }
            return out;
        };
        let digests: Vec<Digest> = queries
            .iter()
            .filter_map(|q| match q {
                Query::Digest(d) => Some(*d),
                _ => None,
            })
            .collect();
        let mut found = loaded.digests(&digests).into_iter();
        let mut listed = 0u64;
        for q in queries {
            let r = match q {
                Query::Digest(_) => Resolution::snapshot(found.next().flatten()),
                _ => match loaded.query(q) {
                    Ok(f) => Resolution::snapshot(f),
                    Err(e) => Resolution {
                        error: Some(e.to_string()),
                        ..Resolution::snapshot(None)
                    },
                },
            };
            listed += u64::from(r.found.is_some());
            out.push(r);
        }
        let counted = if self.proxy.is_some() {
            listed
        } else {
            queries.len() as u64
        };
        self.metrics.answered_n(AnswerSource::Snapshot, counted);
        out
    }

    /// Sends the snapshot's misses through the proxy.
    async fn resolve_misses(&self, queries: &[Query], mut out: Vec<Resolution>) -> Vec<Resolution> {
        let Some(proxy) = &self.proxy else {
            return out;
        };
        let policy = self.policy();
        let now = unix_now();
        let mut at = Vec::new();
        let mut misses = Vec::new();
        for (i, (q, r)) in queries.iter().zip(&out).enumerate() {
            if r.found.is_none() && r.error.is_none() {
                let allowed = policy
                    .as_ref()
                    .is_none_or(|p| p.allows(q.kind().as_str(), now));
                at.push(i);
                misses.push(miss_of(q, allowed));
            }
        }
        for (i, a) in at.into_iter().zip(proxy.resolve(misses).await) {
            out[i] = Resolution {
                found: a.found,
                source: a.source,
                unavailable: a.unavailable,
                restricted: a.restricted,
                error: None,
            };
        }
        out
    }

    /// The `/status` document (also what the HTML page shows).
    pub fn status(&self) -> Value {
        let now = unix_now();
        let m = &self.metrics;
        let snapshot = self.backend.load().map(|l| {
            let md = l.metadata();
            let keys: u64 = md.keys.values().sum();
            json!({
                "path": self.backend.path().map(|p| p.display().to_string()),
                "sequence": md.sequence,
                "created": md.created,
                "created_iso": iso8601(md.created),
                "expires": md.expires,
                "age_seconds": (now - md.created).max(0),
                "stale": md.expires.is_some_and(|e| now >= e),
                "records": md.records,
                "keys": keys,
                "keys_by_kind": md.keys,
                "feeds": md.feeds.len(),
                "storage": l.storage(),
            })
        });
        let (state, description) = self.cloud();
        let answered = ["snapshot", "cache", "upstream", "failed", "restricted"];
        let counts =
            [&m.snapshot, &m.cache, &m.upstream, &m.failed, &m.restricted].map(|c| c.load(Relaxed));
        let queries: serde_json::Map<String, Value> = answered
            .iter()
            .zip(counts)
            .map(|(k, v)| ((*k).to_string(), json!(v)))
            .chain([("total".to_string(), json!(counts.iter().sum::<u64>()))])
            .collect();
        json!({
            "service": concat!("repute-service ", env!("CARGO_PKG_VERSION")),
            "uptime_seconds": self.started.elapsed().as_secs(),
            "mode": match (&self.proxy, self.backend.load().is_some()) {
                (Some(_), true) => "proxy with snapshot",
                (Some(_), false) => "caching proxy",
                (None, _) => "authoritative",
            },
            "snapshot": snapshot,
            "engine": self.backend.engine_status(),
            "cloud": {
                "state": state.as_str(),
                "description": description,
                "policy": self.policy(),
            },
            "upstreams": self.proxy.as_ref().map(|p| p.upstream_status()).unwrap_or_default(),
            "queries": queries,
            "cache": {
                "entries": self.proxy.as_ref().map_or(0, |p| p.cache_entries()),
                "bytes": self.proxy.as_ref().map_or(0, |p| p.cache_bytes()),
                "hits": m.cache_hits.load(Relaxed),
                "misses": m.cache_misses.load(Relaxed),
                "hit_ratio": m.hit_ratio(),
            },
            "upstream_requests": m.upstream_requests.load(Relaxed),
            "upstream_errors": m.upstream_errors.load(Relaxed),
            "connections": {
                "open": m.open_connections.load(Relaxed),
                "accepted": m.connections.load(Relaxed),
                "rejected": m.rejected_connections.load(Relaxed),
                "max": self.config.max_connections,
            },
            "updates_mirror": self.config.updates.as_ref().map(|_| {
                self.updates.as_ref().map_or("off", updates::Mirror::kind)
            }),
            "statistics": {
                "intake": statistics::installed(),
                "samples": statistics::collects_samples(),
                "relay": self.config.statistics_upstream.is_some() && statistics::installed(),
            },
            "api_keys": self.keys.as_ref().map(|k| k.len()),
        })
    }
}
