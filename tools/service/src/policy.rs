//! The publisher's cloud policy ("enabled with restrictions"): the library's [`Policy`],
//! read from the snapshot's metadata or from a policy file (`--policy FILE`, TOML or JSON
//! with the same field names).

use std::path::Path;

use anyhow::{Context, Result};
pub use repute::{CloudState, Policy};

/// Reads and checks a policy file: JSON when it starts with `{`, TOML otherwise.
///
/// # Errors
///
/// When the file cannot be read or parsed, or names an unknown kind; the message names the
/// file.
pub fn from_file(path: &Path) -> Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read policy file {}", path.display()))?;
    let policy: Policy = if text.trim_start().starts_with('{') {
        serde_json::from_str(&text)
            .with_context(|| format!("policy file {} is not valid JSON", path.display()))?
    } else {
        toml::from_str(&text)
            .with_context(|| format!("policy file {} is not valid TOML", path.display()))?
    };
    policy
        .validate()
        .map_err(|e| anyhow::anyhow!("policy file {}: {e}", path.display()))?;
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_files_in_toml_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("p.toml");
        std::fs::write(
            &t,
            "cloud = \"restricted\"\nkinds = [\"url\"]\nmax_per_minute = 60\n",
        )
        .unwrap();
        let p = from_file(&t).unwrap();
        assert!(p.allows("url", 0));
        assert!(!p.allows("md5", 0));
        let j = dir.path().join("p.json");
        std::fs::write(&j, "{\"cloud\": \"disabled\", \"reason\": \"audit\"}").unwrap();
        assert_eq!(from_file(&j).unwrap().effective(0), CloudState::Disabled);
        std::fs::write(&t, "cloud = \"restricted\"\nkinds = [\"ftp\"]\n").unwrap();
        assert!(from_file(&t).is_err());
    }
}
