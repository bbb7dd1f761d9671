//! The publisher's cloud policy ("enabled with restrictions"), as the service reads it.
//!
//! This mirrors the shared `Policy` interface field for field (`cloud`, `max_per_minute`,
//! `kinds`, `until`, `reason`), so a policy file written for the engine reads the same here.
//! Once the library exports its own `Policy`, this module becomes a re-export.

use serde::{Deserialize, Serialize};

/// Whether the service may forward misses upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CloudState {
    /// Misses go upstream.
    #[default]
    Enabled,
    /// Only some kinds go upstream, at a limited rate.
    Restricted,
    /// Nothing goes upstream.
    Disabled,
}

impl CloudState {
    /// `enabled`, `restricted` or `disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            CloudState::Enabled => "enabled",
            CloudState::Restricted => "restricted",
            CloudState::Disabled => "disabled",
        }
    }
}

/// A publisher's restrictions on upstream traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Policy {
    /// The cloud state while the policy applies.
    pub cloud: CloudState,
    /// Restricted: upstream requests per minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_per_minute: Option<u32>,
    /// Restricted: kinds that may still go upstream (`md5 sha1 sha256 url domain`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// Unix seconds; after it the policy no longer applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// Why, for people reading the status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Policy {
    /// Reads a policy file, TOML or JSON (by its first non-blank character).
    ///
    /// # Errors
    ///
    /// When the file cannot be read or parsed; the message names the file.
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<Policy> {
        use anyhow::Context;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read policy file {}", path.display()))?;
        if text.trim_start().starts_with('{') {
            serde_json::from_str(&text)
                .with_context(|| format!("policy file {} is not valid JSON", path.display()))
        } else {
            toml::from_str(&text)
                .with_context(|| format!("policy file {} is not valid TOML", path.display()))
        }
    }

    /// The state in force at `now`: `Enabled` once `until` has passed.
    pub fn effective(&self, now: i64) -> CloudState {
        match self.until {
            Some(until) if now >= until => CloudState::Enabled,
            _ => self.cloud,
        }
    }

    /// Whether a query of `kind` may go upstream at `now`.
    pub fn allows(&self, kind: &str, now: i64) -> bool {
        match self.effective(now) {
            CloudState::Enabled => true,
            CloudState::Disabled => false,
            CloudState::Restricted => self.kinds.iter().any(|k| k == kind),
        }
    }

    /// `enabled`, `enabled with restrictions (...)` or `disabled (reason)`.
    pub fn describe(&self, now: i64) -> String {
        match self.effective(now) {
            CloudState::Enabled => "enabled".into(),
            CloudState::Disabled => match &self.reason {
                Some(r) => format!("disabled ({r})"),
                None => "disabled".into(),
            },
            CloudState::Restricted => {
                let mut parts = Vec::new();
                if self.kinds.is_empty() {
                    parts.push("nothing forwarded".to_string());
                } else {
                    parts.push(format!("{} only", self.kinds.join(", ")));
                }
                if let Some(m) = self.max_per_minute {
                    parts.push(format!("{m}/min"));
                }
                if let Some(u) = self.until {
                    parts.push(format!("until {}", crate::iso8601(u)));
                }
                if let Some(r) = &self.reason {
                    parts.push(r.clone());
                }
                format!("enabled with restrictions ({})", parts.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restricted_policy_allows_listed_kinds_until_it_expires() {
        let p = Policy {
            cloud: CloudState::Restricted,
            max_per_minute: Some(60),
            kinds: vec!["url".into()],
            until: Some(1000),
            reason: None,
        };
        assert!(p.allows("url", 10));
        assert!(!p.allows("md5", 10));
        assert!(p.allows("md5", 1000));
        assert_eq!(
            p.describe(10),
            "enabled with restrictions (url only, 60/min, until 1970-01-01T00:16:40Z)"
        );
        assert_eq!(p.describe(2000), "enabled");
        let toml: Policy = toml::from_str("cloud = \"disabled\"\nreason = \"audit\"").unwrap();
        assert_eq!(toml.describe(0), "disabled (audit)");
        assert!(!toml.allows("url", 0));
    }
}
