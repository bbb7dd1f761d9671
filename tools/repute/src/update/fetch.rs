//! Where `repute update` reads a channel from: a directory, or an HTTP(S) base URL served by
//! any static web server, object store or CDN (or a `repute serve` mirror).
//!
//! HTTP goes through `ureq` with rustls. `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and
//! `NO_PROXY` are honoured (ureq reads them). Every request has a connect and response
//! timeout, and a body deadline that grows with the size expected. A download that breaks
//! off resumes with a `Range` request, within a run and across runs (the partial file is
//! kept in the state directory under the name of what it will be).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// The slowest transfer rate a download may fall to before it times out (bytes/s).
const MIN_RATE: u64 = 64 << 10;

/// Attempts per download within one run (each resumes where the last stopped).
const ATTEMPTS: u32 = 4;

/// A channel source.
pub enum Channel {
    /// A directory on this machine (a mounted share, a copied channel).
    Dir(PathBuf),
    /// A base URL; file names are appended to it.
    Http {
        /// The base, ending in `/`.
        base: String,
        /// The client.
        agent: ureq::Agent,
        /// Connect and response timeout.
        timeout: Duration,
    },
}

impl Channel {
    /// `http://`, `https://` URLs go over HTTP; anything else is a directory.
    pub fn parse(from: &str, timeout: Duration) -> Result<Channel> {
        if from.starts_with("http://") || from.starts_with("https://") {
            let mut base = from.to_string();
            if !base.ends_with('/') {
                base.push('/');
            }
            let config = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(timeout))
                .timeout_recv_response(Some(timeout))
                .timeout_send_request(Some(timeout))
                .user_agent(concat!("repute-update/", env!("CARGO_PKG_VERSION")))
                .build();
            return Ok(Channel::Http {
                base,
                agent: config.into(),
                timeout,
            });
        }
        let dir = PathBuf::from(from.strip_prefix("file://").unwrap_or(from));
        if !dir.is_dir() {
            bail!(
                "--from {from}: not an http(s) URL and not a directory (a channel is what \
                 `repute publish --dir` writes)"
            );
        }
        Ok(Channel::Dir(dir))
    }

    /// Where `name` is, for messages.
    pub fn describe(&self, name: &str) -> String {
        match self {
            Channel::Dir(d) => d.join(name).display().to_string(),
            Channel::Http { base, .. } => format!("{base}{name}"),
        }
    }

    /// Reads a small file (a manifest or a signature) whole, refusing more than `limit`
    /// bytes.
    pub fn get_small(&self, name: &str, limit: u64) -> Result<Vec<u8>> {
        let what = self.describe(name);
        let bytes = match self {
            Channel::Dir(d) => {
                let path = d.join(name);
                let file = File::open(&path).with_context(|| format!("cannot read {what}"))?;
                let mut bytes = Vec::new();
                file.take(limit + 1)
                    .read_to_end(&mut bytes)
                    .with_context(|| format!("cannot read {what}"))?;
                bytes
            }
            Channel::Http { agent, timeout, .. } => {
                let mut response = agent
                    .get(&what)
                    .config()
                    .timeout_recv_body(Some(*timeout))
                    .build()
                    .call()
                    .with_context(|| format!("cannot fetch {what}"))?;
                let status = response.status().as_u16();
                if status != 200 {
                    bail!("cannot fetch {what}: HTTP {status}");
                }
                let mut bytes = Vec::new();
                response
                    .body_mut()
                    .with_config()
                    .limit(limit + 1)
                    .reader()
                    .read_to_end(&mut bytes)
                    .with_context(|| format!("cannot fetch {what}: the body broke off"))?;
                bytes
            }
        };
        if bytes.len() as u64 > limit {
            bail!("{what} is larger than {limit} bytes; refusing it");
        }
        Ok(bytes)
    }

    /// Completes `file` (opened read-write; it may hold the first bytes from an earlier
    /// attempt) to `size` bytes of `name`. Returns the bytes transferred. Never writes more
    /// than `size` bytes: a longer file is an error.
    pub fn download(&self, name: &str, file: &mut File, size: u64) -> Result<u64> {
        let what = self.describe(name);
        let mut transferred = 0;
        let mut last_error = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 && last_error.is_some() {
                std::thread::sleep(Duration::from_millis(250 * u64::from(attempt)));
            }
            let have = file
                .metadata()
                .context("cannot stat a partial download")?
                .len();
            if have == size {
                return Ok(transferred);
            }
            if have > size {
                // An old partial file of something else under this name: start over.
                file.set_len(0)?;
                continue;
            }
            match self.fetch_from(name, file, have, size) {
                Ok(n) => transferred += n,
                Err(e) => {
                    let n = file
                        .metadata()
                        .map_or(have, |m| m.len())
                        .saturating_sub(have);
                    transferred += n;
                    // No progress at all: the source is failing, not flaky.
                    if n == 0 && e.downcast_ref::<Fatal>().is_some() {
                        return Err(e);
                    }
                    last_error = Some(e);
                }
            }
        }
        let have = file.metadata()?.len();
        if have == size {
            return Ok(transferred);
        }
        match last_error {
            Some(e) => Err(e.context(format!(
                "{what}: {have} of {size} bytes after {ATTEMPTS} attempts (the partial file is kept and resumed next time)"
            ))),
            None => bail!("{what}: {have} of {size} bytes"),
        }
    }

    /// One attempt: appends bytes `have..size` of `name` to `file`.
    fn fetch_from(&self, name: &str, file: &mut File, have: u64, size: u64) -> Result<u64> {
        let what = self.describe(name);
        file.seek(SeekFrom::Start(have))?;
        match self {
            Channel::Dir(d) => {
                let mut src = File::open(d.join(name))
                    .map_err(|e| Fatal(format!("cannot read {what}: {e}")))?;
                let len = src.metadata()?.len();
                if len != size {
                    return Err(
                        Fatal(format!("{what} has {len} bytes, the manifest says {size}")).into(),
                    );
                }
                src.seek(SeekFrom::Start(have))?;
                copy_capped(&mut src, file, size - have, &what)
            }
            Channel::Http { agent, timeout, .. } => {
                let left = size - have;
                let body_time = *timeout + Duration::from_secs(left / MIN_RATE);
                let mut request = agent.get(&what);
                if have > 0 {
                    request = request.header("Range", format!("bytes={have}-"));
                }
                let mut response = request
                    .config()
                    .timeout_recv_body(Some(body_time))
                    .build()
                    .call()
                    .with_context(|| format!("cannot fetch {what}"))?;
                let status = response.status().as_u16();
                let expect = match status {
                    206 if have > 0 => {
                        let range = response
                            .headers()
                            .get("content-range")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        if !range.starts_with(&format!("bytes {have}-")) {
                            bail!("{what}: the server answered range {range:?} to bytes={have}-");
                        }
                        left
                    }
                    200 => {
                        // No range support: start over.
                        file.set_len(0)?;
                        file.seek(SeekFrom::Start(0))?;
                        size
                    }
                    404 | 410 => {
                        return Err(Fatal(format!("cannot fetch {what}: HTTP {status}")).into())
                    }
                    _ => bail!("cannot fetch {what}: HTTP {status}"),
                };
                let mut reader = response.body_mut().with_config().limit(expect + 1).reader();
                copy_capped(&mut reader, file, expect, &what)
            }
        }
    }
}

/// An error that retrying will not fix (a missing file, a wrong size at the source).
#[derive(Debug)]
struct Fatal(String);

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Fatal {}

/// Copies exactly `want` bytes, refusing more; fsyncs what it wrote so that a resumed
/// download never builds on bytes that did not reach the disk.
fn copy_capped(src: &mut impl Read, dst: &mut File, want: u64, what: &str) -> Result<u64> {
    let mut buf = vec![0u8; 256 << 10];
    let mut done = 0u64;
    let result = loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                break Err(anyhow::Error::new(e).context(format!("{what}: the body broke off")))
            }
        };
        if done + n as u64 > want {
            break Err(anyhow::anyhow!(
                "{what} is longer than the manifest's size; refusing it"
            ));
        }
        if let Err(e) = dst.write_all(&buf[..n]) {
            break Err(anyhow::Error::new(e).context("cannot write the download (disk full?)"));
        }
        done += n as u64;
    };
    let synced = dst.sync_data();
    result?;
    synced.context("cannot write the download (disk full?)")?;
    if done < want {
        bail!("{what}: the body ended after {done} of {want} bytes");
    }
    Ok(done)
}

/// The SHA-256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest;
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
