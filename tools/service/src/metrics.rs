//! Counters for `/status` and `/metrics`: plain atomics, no locks on the request path.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Where an answer came from, or why it is degraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerSource {
    /// The snapshot listed it, or it is unknown and there is no upstream.
    Snapshot,
    /// The cache held an earlier upstream answer.
    Cache,
    /// The upstream answered now.
    Upstream,
}

impl AnswerSource {
    /// `snapshot`, `cache` or `upstream`.
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerSource::Snapshot => "snapshot",
            AnswerSource::Cache => "cache",
            AnswerSource::Upstream => "upstream",
        }
    }
}

/// Service-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Queries answered from the snapshot.
    pub snapshot: AtomicU64,
    /// Queries answered from the cache.
    pub cache: AtomicU64,
    /// Queries answered by an upstream.
    pub upstream: AtomicU64,
    /// Queries the upstream should have answered but could not (answered unknown).
    pub failed: AtomicU64,
    /// Queries not forwarded because of a restriction (answered unknown).
    pub restricted: AtomicU64,
    /// Cache lookups that found an entry.
    pub cache_hits: AtomicU64,
    /// Cache lookups that did not.
    pub cache_misses: AtomicU64,
    /// HTTP requests sent upstream.
    pub upstream_requests: AtomicU64,
    /// Upstream requests that failed (timeout, connection, status, garbage).
    pub upstream_errors: AtomicU64,
    /// HTTP responses by class.
    pub responses_2xx: AtomicU64,
    /// HTTP 4xx responses.
    pub responses_4xx: AtomicU64,
    /// HTTP 5xx responses.
    pub responses_5xx: AtomicU64,
    /// Client connections accepted.
    pub connections: AtomicU64,
    /// Client connections open now.
    pub open_connections: AtomicU64,
    /// Client connections refused (503) because `max_connections` were open.
    pub rejected_connections: AtomicU64,
}

impl Metrics {
    /// Counts one answer.
    #[inline]
    pub fn answered(&self, source: AnswerSource) {
        match source {
            AnswerSource::Snapshot => &self.snapshot,
            AnswerSource::Cache => &self.cache,
            AnswerSource::Upstream => &self.upstream,
        }
        .fetch_add(1, Relaxed);
    }

    /// Counts `n` answers from one source.
    #[inline]
    pub fn answered_n(&self, source: AnswerSource, n: u64) {
        match source {
            AnswerSource::Snapshot => &self.snapshot,
            AnswerSource::Cache => &self.cache,
            AnswerSource::Upstream => &self.upstream,
        }
        .fetch_add(n, Relaxed);
    }

    /// Counts a response status.
    #[inline]
    pub fn response(&self, status: u16) {
        match status {
            200..=399 => &self.responses_2xx,
            400..=499 => &self.responses_4xx,
            _ => &self.responses_5xx,
        }
        .fetch_add(1, Relaxed);
    }

    /// Cache hit ratio over all cache lookups, 0 when there were none.
    pub fn hit_ratio(&self) -> f64 {
        let hits = self.cache_hits.load(Relaxed) as f64;
        let total = hits + self.cache_misses.load(Relaxed) as f64;
        if total == 0.0 {
            0.0
        } else {
            hits / total
        }
    }

    /// Prometheus text exposition, with `extra` gauges appended as (name, help, value).
    pub fn prometheus(&self, extra: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, labels: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name}{labels} {v}");
        };
        let _ = writeln!(
            out,
            "# HELP repute_queries_total Queries answered, by source.\n# TYPE repute_queries_total counter"
        );
        for (label, c) in [
            ("snapshot", &self.snapshot),
            ("cache", &self.cache),
            ("upstream", &self.upstream),
            ("failed", &self.failed),
            ("restricted", &self.restricted),
        ] {
            let _ = writeln!(
                out,
                "repute_queries_total{{source=\"{label}\"}} {}",
                c.load(Relaxed)
            );
        }
        counter(
            &mut out,
            "repute_cache_hits_total",
            "Cache lookups that found an entry.",
            "",
            self.cache_hits.load(Relaxed),
        );
        counter(
            &mut out,
            "repute_cache_misses_total",
            "Cache lookups that found nothing.",
            "",
            self.cache_misses.load(Relaxed),
        );
        counter(
            &mut out,
            "repute_upstream_requests_total",
            "HTTP requests sent upstream.",
            "",
            self.upstream_requests.load(Relaxed),
        );
        counter(
            &mut out,
            "repute_upstream_errors_total",
            "Upstream requests that failed.",
            "",
            self.upstream_errors.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP repute_http_responses_total HTTP responses, by status class.\n# TYPE repute_http_responses_total counter"
        );
        for (label, c) in [
            ("2xx", &self.responses_2xx),
            ("4xx", &self.responses_4xx),
            ("5xx", &self.responses_5xx),
        ] {
            let _ = writeln!(
                out,
                "repute_http_responses_total{{class=\"{label}\"}} {}",
                c.load(Relaxed)
            );
        }
        counter(
            &mut out,
            "repute_connections_total",
            "Client connections accepted.",
            "",
            self.connections.load(Relaxed),
        );
        counter(
            &mut out,
            "repute_rejected_connections_total",
            "Client connections answered 503 because max_connections were open.",
            "",
            self.rejected_connections.load(Relaxed),
        );
        let mut gauges: Vec<(&str, &str, f64)> = vec![(
            "repute_open_connections",
            "Client connections open now.",
            self.open_connections.load(Relaxed) as f64,
        )];
        gauges.extend_from_slice(extra);
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}
