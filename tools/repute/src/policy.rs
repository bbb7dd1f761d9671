//! Reading a policy file (`--policy FILE`): TOML or JSON with [`repute::Policy`]'s field
//! names, e.g.
//!
//! ```toml
//! cloud = "restricted"     # enabled | restricted | disabled
//! max_per_minute = 60
//! kinds = ["url", "domain"]
//! until = 1796688000       # Unix seconds
//! reason = "upstream maintenance"
//! ```

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use repute::Policy;

/// Reads and checks a policy file: JSON when it ends in `.json` or starts with `{`, TOML
/// otherwise.
pub fn read_policy(path: &Path) -> Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read policy file {}", path.display()))?;
    let json = path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    let policy: Policy = if json {
        serde_json::from_str(&text).with_context(|| format!("policy file {}", path.display()))?
    } else {
        toml::from_str(&text).with_context(|| format!("policy file {}", path.display()))?
    };
    policy
        .validate()
        .map_err(|e| anyhow!("policy file {}: {e}", path.display()))?;
    Ok(policy)
}
