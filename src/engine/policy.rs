//! The publisher's cloud policy ("enabled with restrictions"), carried in snapshot metadata
//! and in the update channel's manifest.
//!
//! A [`Policy`] tells agents and proxies whether they may ask the cloud (an upstream
//! service) about keys their snapshot does not answer: [`CloudState::Enabled`],
//! [`CloudState::Restricted`] (only some kinds of key, at most so many requests a minute) or
//! [`CloudState::Disabled`]. A policy with `until` set stops applying once that time has
//! passed, so a publisher can restrict traffic for a bounded period.
//!
//! ```
//! use repute::{CloudState, Policy};
//!
//! let policy: Policy = serde_json::from_str(
//!     r#"{"cloud":"restricted","max_per_minute":60,"kinds":["url"],"until":1796688000}"#,
//! ).unwrap();
//! assert_eq!(policy.effective(0), CloudState::Restricted);
//! assert!(policy.allows("url", 0) && !policy.allows("sha256", 0));
//! assert_eq!(policy.describe(0), "enabled with restrictions (urls only, 60/min, until 2026-12-08)");
//! assert_eq!(policy.effective(1796688000), CloudState::Enabled);
//! ```

use serde::{Deserialize, Serialize};

/// Whether cloud (upstream) requests are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CloudState {
    /// Upstream requests are allowed.
    #[default]
    Enabled,
    /// Upstream requests are allowed for some kinds of key, at a bounded rate.
    Restricted,
    /// No upstream requests.
    Disabled,
}

impl CloudState {
    /// The lower-case name: `enabled`, `restricted` or `disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            CloudState::Enabled => "enabled",
            CloudState::Restricted => "restricted",
            CloudState::Disabled => "disabled",
        }
    }
}

/// The kinds of key a restricted policy may name.
pub const POLICY_KINDS: [&str; 5] = ["md5", "sha1", "sha256", "url", "domain"];

/// The publisher's cloud policy. Field names are those of a policy file (TOML or JSON).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Whether upstream requests are enabled, restricted or disabled.
    #[serde(default)]
    pub cloud: CloudState,
    /// Restricted: at most this many upstream requests per minute (none: no rate limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_minute: Option<u32>,
    /// Restricted: the kinds that may still go upstream (`md5`, `sha1`, `sha256`, `url`,
    /// `domain`); empty means every kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// Unix seconds; from then on the policy no longer applies (the cloud is enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// Why, in words, for operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Policy {
    /// Checks the kind names.
    ///
    /// # Errors
    ///
    /// A message naming the first unknown kind.
    pub fn validate(&self) -> Result<(), String> {
        for kind in &self.kinds {
            if !POLICY_KINDS.contains(&kind.as_str()) {
                return Err(format!(
                    "unknown kind {kind:?} in policy (expected one of {})",
                    POLICY_KINDS.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// The state in force at `now` (Unix seconds): [`CloudState::Enabled`] once `until` has
    /// passed.
    pub fn effective(&self, now: i64) -> CloudState {
        match self.until {
            Some(until) if now >= until => CloudState::Enabled,
            _ => self.cloud,
        }
    }

    /// Whether a key of `kind` (`md5`, `sha1`, `sha256`, `url`, `domain`) may go upstream
    /// at `now`. The rate limit is the caller's to enforce ([`Policy::max_per_minute`]).
    pub fn allows(&self, kind: &str, now: i64) -> bool {
        match self.effective(now) {
            CloudState::Enabled => true,
            CloudState::Disabled => false,
            CloudState::Restricted => self.kinds.is_empty() || self.kinds.iter().any(|k| k == kind),
        }
    }

    /// The policy in words, e.g. `enabled`, `disabled (maintenance)` or
    /// `enabled with restrictions (urls only, 60/min, until 2026-12-08)`.
    pub fn describe(&self, now: i64) -> String {
        let mut parts: Vec<String> = Vec::new();
        let state = self.effective(now);
        match state {
            CloudState::Enabled => return "enabled".into(),
            CloudState::Restricted => {
                if !self.kinds.is_empty() {
                    let names: Vec<String> = self.kinds.iter().map(|k| plural(k)).collect();
                    parts.push(format!("{} only", join_words(&names)));
                }
                if let Some(n) = self.max_per_minute {
                    parts.push(format!("{n}/min"));
                }
            }
            CloudState::Disabled => {}
        }
        if let Some(until) = self.until {
            parts.push(format!("until {}", date(until)));
        }
        if let Some(reason) = self.reason.as_deref().filter(|r| !r.is_empty()) {
            parts.push(reason.to_string());
        }
        let head = match state {
            CloudState::Restricted => "enabled with restrictions",
            _ => "disabled",
        };
        if parts.is_empty() {
            head.into()
        } else {
            format!("{head} ({})", parts.join(", "))
        }
    }
}

fn plural(kind: &str) -> String {
    match kind {
        "md5" | "sha1" | "sha256" => format!("{kind} digests"),
        other => format!("{other}s"),
    }
}

fn join_words(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

pub(crate) use crate::time::date;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions() {
        assert_eq!(Policy::default().describe(0), "enabled");
        let disabled = Policy {
            cloud: CloudState::Disabled,
            reason: Some("incident 42".into()),
            ..Policy::default()
        };
        assert_eq!(disabled.describe(0), "disabled (incident 42)");
        assert!(!disabled.allows("url", 0));
        let restricted = Policy {
            cloud: CloudState::Restricted,
            kinds: vec!["url".into(), "domain".into()],
            ..Policy::default()
        };
        assert_eq!(
            restricted.describe(0),
            "enabled with restrictions (urls and domains only)"
        );
        assert!(restricted.allows("domain", 0));
        assert!(!restricted.allows("md5", 0));
    }

    #[test]
    fn until_ends_the_policy() {
        let p = Policy {
            cloud: CloudState::Disabled,
            until: Some(100),
            ..Policy::default()
        };
        assert_eq!(p.effective(99), CloudState::Disabled);
        assert_eq!(p.effective(100), CloudState::Enabled);
        assert!(p.allows("sha256", 100));
        assert_eq!(p.describe(100), "enabled");
        assert_eq!(p.describe(0), "disabled (until 1970-01-01)");
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused() {
        assert!(serde_json::from_str::<Policy>(r#"{"clod":"disabled"}"#).is_err());
        assert!(serde_json::from_str::<Policy>(r#"{"cloud":"off"}"#).is_err());
        let p: Policy = serde_json::from_str(r#"{"cloud":"restricted","kinds":["ip"]}"#).unwrap();
        assert!(p.validate().unwrap_err().contains("\"ip\""));
    }
}
