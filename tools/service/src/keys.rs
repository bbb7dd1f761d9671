//! API keys: a keys file of hashed keys, each with a name and an optional rate.
//!
//! One key per line: `NAME SHA256-HEX-OF-KEY [RATE]`, where RATE is `N/s`, `N/min` or
//! `N/h`; `#` starts a comment. The file holds only hashes, so reading it reveals no key.
//! [`KeyStore::reload_if_changed`] re-reads it when its modification time or size changes;
//! a file that fails to parse leaves the previous keys in force.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use arc_swap::ArcSwap;
use sha2::{Digest as _, Sha256};

/// A request rate: `count` per `per`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests allowed per period (also the burst).
    pub count: u32,
    /// The period.
    pub per: Duration,
}

impl Rate {
    /// Parses `N/s`, `N/min` or `N/h`.
    ///
    /// # Errors
    ///
    /// When the text is not one of these.
    pub fn parse(text: &str) -> Result<Rate> {
        let (n, unit) = text
            .split_once('/')
            .with_context(|| format!("rate {text:?}: expected N/s, N/min or N/h"))?;
        let count: u32 = n
            .parse()
            .ok()
            .filter(|c| *c > 0)
            .with_context(|| format!("rate {text:?}: {n:?} is not a positive number"))?;
        let per = match unit {
            "s" | "sec" => Duration::from_secs(1),
            "m" | "min" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => bail!("rate {text:?}: unit must be s, min or h"),
        };
        Ok(Rate { count, per })
    }
}

/// One key's entry.
#[derive(Debug)]
pub struct ApiKey {
    /// Who holds it.
    pub name: String,
    /// Its rate, if limited.
    pub rate: Option<Rate>,
    bucket: Mutex<(f64, Instant)>,
}

/// What the gate decided about a request.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyCheck {
    /// A valid key within its rate.
    Allowed(String),
    /// No key, or an unknown one.
    Unauthorized,
    /// Over its rate; retry after this many seconds.
    Limited(u64),
}

/// The loaded keys file.
#[derive(Debug)]
pub struct KeyStore {
    path: PathBuf,
    keys: ArcSwap<HashMap<[u8; 32], Arc<ApiKey>>>,
    stamp: Mutex<Option<(SystemTime, u64)>>,
}

/// Hashes a key as the keys file stores it.
pub fn hash_key(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random key: `rk_` and 64 hex digits (256 bits from the OS).
///
/// # Errors
///
/// When the OS random source fails.
pub fn generate_key() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    Ok(format!("rk_{}", hex(&bytes)))
}

/// The keys-file line for `key`.
pub fn key_line(name: &str, key: &str, rate: Option<&str>) -> String {
    match rate {
        Some(r) => format!("{name} {} {r}", hash_key(key)),
        None => format!("{name} {}", hash_key(key)),
    }
}

fn parse(path: &Path, text: &str) -> Result<HashMap<[u8; 32], Arc<ApiKey>>> {
    let mut keys = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), i + 1);
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !(2..=3).contains(&fields.len()) {
            bail!("{}: expected NAME SHA256-HEX [RATE]", at());
        }
        let hash = fields[1];
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!(
                "{}: the key hash must be 64 hex digits (see `repute apikey`)",
                at()
            );
        }
        let mut digest = [0u8; 32];
        for (j, d) in digest.iter_mut().enumerate() {
            *d = u8::from_str_radix(&hash[2 * j..2 * j + 2], 16).with_context(at)?;
        }
        let rate = fields
            .get(2)
            .map(|r| Rate::parse(r))
            .transpose()
            .with_context(at)?;
        let capacity = rate.map_or(0.0, |r| f64::from(r.count));
        keys.insert(
            digest,
            Arc::new(ApiKey {
                name: fields[0].to_string(),
                rate,
                bucket: Mutex::new((capacity, Instant::now())),
            }),
        );
    }
    Ok(keys)
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl KeyStore {
    /// Loads a keys file.
    ///
    /// # Errors
    ///
    /// When it cannot be read or a line is malformed (file and line named).
    pub fn open(path: &Path) -> Result<KeyStore> {
        let s = stamp(path);
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read keys file {}", path.display()))?;
        Ok(KeyStore {
            path: path.to_path_buf(),
            keys: ArcSwap::from_pointee(parse(path, &text)?),
            stamp: Mutex::new(s),
        })
    }

    /// Number of keys loaded.
    pub fn len(&self) -> usize {
        self.keys.load().len()
    }

    /// Whether no key is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Re-reads the file when it changed. Keys keep no rate state across a reload.
    ///
    /// # Errors
    ///
    /// When the changed file is invalid; the old keys stay in force.
    pub fn reload_if_changed(&self) -> Result<bool> {
        let now = stamp(&self.path);
        {
            let Ok(old) = self.stamp.lock() else {
                return Ok(false);
            };
            if *old == now {
                return Ok(false);
            }
        }
        self.reload()?;
        if let Ok(mut s) = self.stamp.lock() {
            *s = now;
        }
        Ok(true)
    }

    /// Re-reads the file unconditionally.
    ///
    /// # Errors
    ///
    /// When it is invalid; the old keys stay in force.
    pub fn reload(&self) -> Result<()> {
        let text = std::fs::read_to_string(&self.path)
            .with_context(|| format!("cannot read keys file {}", self.path.display()))?;
        self.keys.store(Arc::new(parse(&self.path, &text)?));
        Ok(())
    }

    /// Checks a presented key and takes one request from its rate.
    pub fn check(&self, presented: Option<&str>) -> KeyCheck {
        let Some(presented) = presented else {
            return KeyCheck::Unauthorized;
        };
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let keys = self.keys.load();
        let Some(key) = keys.get(&digest) else {
            return KeyCheck::Unauthorized;
        };
        let Some(rate) = key.rate else {
            return KeyCheck::Allowed(key.name.clone());
        };
        let Ok(mut bucket) = key.bucket.lock() else {
            return KeyCheck::Limited(1);
        };
        let capacity = f64::from(rate.count);
        let per_second = capacity / rate.per.as_secs_f64();
        let now = Instant::now();
        let elapsed = now.duration_since(bucket.1).as_secs_f64();
        bucket.0 = (bucket.0 + elapsed * per_second).min(capacity);
        bucket.1 = now;
        if bucket.0 >= 1.0 {
            bucket.0 -= 1.0;
            KeyCheck::Allowed(key.name.clone())
        } else {
            let wait = ((1.0 - bucket.0) / per_second).ceil().max(1.0);
            KeyCheck::Limited(wait as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_file_round_trip_rates_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let alice = generate_key().unwrap();
        let bob = generate_key().unwrap();
        assert_ne!(alice, bob);
        assert_eq!(alice.len(), 67);
        std::fs::write(
            &path,
            format!(
                "# keys\n{}\n{}  # limited\n",
                key_line("alice", &alice, None),
                key_line("bob", &bob, Some("2/min"))
            ),
        )
        .unwrap();
        let store = KeyStore::open(&path).unwrap();
        assert_eq!(store.len(), 2);
        assert_eq!(store.check(Some(&alice)), KeyCheck::Allowed("alice".into()));
        assert_eq!(store.check(None), KeyCheck::Unauthorized);
        assert_eq!(store.check(Some("rk_nope")), KeyCheck::Unauthorized);
        assert_eq!(store.check(Some(&bob)), KeyCheck::Allowed("bob".into()));
        assert_eq!(store.check(Some(&bob)), KeyCheck::Allowed("bob".into()));
        match store.check(Some(&bob)) {
            KeyCheck::Limited(s) => assert!((1..=60).contains(&s), "{s}"),
            other => panic!("expected a limit, got {other:?}"),
        }
        // A broken file keeps the old keys; a fixed one replaces them.
        std::fs::write(&path, "alice not-a-hash\n").unwrap();
        let err = store.reload().unwrap_err();
        assert!(format!("{err:#}").contains("line 1"), "{err:#}");
        assert_eq!(store.check(Some(&alice)), KeyCheck::Allowed("alice".into()));
        std::fs::write(&path, key_line("bob", &bob, None)).unwrap();
        store.reload().unwrap();
        assert_eq!(store.check(Some(&alice)), KeyCheck::Unauthorized);
        assert_eq!(store.check(Some(&bob)), KeyCheck::Allowed("bob".into()));
        assert!(Rate::parse("0/s").is_err());
        assert!(Rate::parse("5/week").is_err());
    }
}
