//! `/v1/updates/`: the update channel, mirrored, so that machines without internet run
//! `repute update --from http://PROXY:13111/v1/updates/` against the service in their
//! network.
//!
//! [`Mirror`] serves the channel's file names only (`manifest.json`, `<sha256>.snap`,
//! `<sha256>.delta`, and their `.minisig` signatures); any other name is a JSON 404, so the
//! route is never a way to read the server's files. The source is either
//!
//! - a directory (what `repute publish --dir` writes, or a copy of it), served as it is; or
//! - an `http(s)://` channel (the publisher's, or another service's `/v1/updates/`), fetched
//!   on demand: the manifest and its signature as one pair, reused for
//!   `updates_manifest_ttl_seconds`; a content-addressed file once, checked against the
//!   SHA-256 its name is, then kept in `updates_cache` (temporary name, fsync, rename) and
//!   served from there.
//!
//! The mirror does not check the publisher's signatures: clients do (`repute update`
//! refuses an unsigned or rolled-back manifest). What it checks is that a content address
//! holds the content it names, so a broken upstream never leaves a bad file in the cache.
//! Files are streamed, and `Range: bytes=N-` (how `repute update` resumes a download) is
//! answered with `206 Partial Content`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::routes::ApiError;
use crate::Service;

/// The manifest's name in a channel.
const MANIFEST: &str = repute::channel::MANIFEST;
/// Largest signature file mirrored.
const MAX_SIGNATURE_BYTES: u64 = repute::channel::MAX_SIGNATURE_BYTES;
/// Largest manifest mirrored.
const MAX_MANIFEST_BYTES: u64 = repute::channel::MAX_MANIFEST_BYTES;
/// Bytes read per chunk of a streamed file.
const CHUNK: usize = 256 << 10;

/// What a name in the channel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    /// `manifest.json` or `manifest.json.minisig`.
    Manifest { signature: bool },
    /// `<sha256>.snap` or `<sha256>.delta`: its content's SHA-256 is in the name.
    Content,
    /// `<sha256>.snap.minisig` or `<sha256>.delta.minisig`.
    Signature,
}

fn is_identity(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn content_stem(name: &str) -> Option<&str> {
    name.strip_suffix(".snap")
        .or_else(|| name.strip_suffix(".delta"))
        .filter(|s| is_identity(s))
}

/// Classifies a requested name; `None` for anything that is not a channel file.
fn classify(name: &str) -> Option<Name> {
    if name == MANIFEST {
        return Some(Name::Manifest { signature: false });
    }
    if name == format!("{MANIFEST}.minisig") {
        return Some(Name::Manifest { signature: true });
    }
    if content_stem(name).is_some() {
        return Some(Name::Content);
    }
    name.strip_suffix(".minisig")
        .and_then(content_stem)
        .map(|_| Name::Signature)
}

/// The manifest and its signature, fetched together.
#[derive(Debug, Clone)]
struct ManifestPair {
    fetched: Instant,
    manifest: Bytes,
    signature: Bytes,
}

/// Where the mirrored channel comes from.
// One per service, made once at start: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Source {
    Dir(PathBuf),
    Http {
        base: String,
        client: reqwest::Client,
        cache: PathBuf,
        manifest_ttl: Duration,
        manifest: tokio::sync::Mutex<Option<ManifestPair>>,
        /// One download per name at a time.
        downloads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    },
}

/// The update-channel mirror behind `/v1/updates/`.
#[derive(Debug)]
pub struct Mirror {
    source: Source,
}

impl Mirror {
    /// A mirror of `source`: a channel directory, or an `http(s)://` channel whose files
    /// are kept in `cache`.
    ///
    /// # Errors
    ///
    /// When the directory does not exist, a URL comes without a cache directory, or the
    /// cache directory cannot be created.
    pub fn new(source: &str, cache: Option<&Path>, manifest_ttl: Duration) -> Result<Mirror> {
        if source.starts_with("http://") || source.starts_with("https://") {
            let Some(cache) = cache else {
                bail!("mirroring {source} needs updates_cache, a directory for its files");
            };
            std::fs::create_dir_all(cache)
                .with_context(|| format!("cannot create the updates cache {}", cache.display()))?;
            let mut base = source.to_string();
            if !base.ends_with('/') {
                base.push('/');
            }
            crate::install_crypto_provider();
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
            .with_no_client_auth();
            let client = reqwest::Client::builder()
                .use_preconfigured_tls(tls)
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(Duration::from_secs(30))
                .user_agent(concat!("repute-service/", env!("CARGO_PKG_VERSION")))
                .build()?;
            return Ok(Mirror {
                source: Source::Http {
                    base,
                    client,
                    cache: cache.to_path_buf(),
                    manifest_ttl,
                    manifest: tokio::sync::Mutex::new(None),
                    downloads: Mutex::new(HashMap::new()),
                },
            });
        }
        let dir = PathBuf::from(source.strip_prefix("file://").unwrap_or(source));
        anyhow::ensure!(
            dir.is_dir(),
            "updates = {source:?}: not an http(s) URL and not a directory (a channel is what \
             `repute publish --dir` writes)"
        );
        Ok(Mirror {
            source: Source::Dir(dir),
        })
    }

    /// `directory` or `http`: where the mirrored channel comes from.
    pub fn kind(&self) -> &'static str {
        match self.source {
            Source::Dir(_) => "directory",
            Source::Http { .. } => "http",
        }
    }

    /// Answers `GET /v1/updates/{name}`.
    async fn answer(&self, name: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
        let Some(kind) = classify(name) else {
            return Err(not_in_channel(name));
        };
        match &self.source {
            Source::Dir(dir) => serve_file(&dir.join(name), name, headers).await,
            Source::Http { .. } => match kind {
                Name::Manifest { signature } => {
                    let pair = self.manifest_pair().await?;
                    let bytes = if signature {
                        pair.signature
                    } else {
                        pair.manifest
                    };
                    Ok(small_response(bytes, "no-cache"))
                }
                Name::Content | Name::Signature => {
                    let path = self.cached(name, kind).await?;
                    serve_file(&path, name, headers).await
                }
            },
        }
    }

    /// The manifest pair, fetched again once its TTL has passed.
    async fn manifest_pair(&self) -> Result<ManifestPair, ApiError> {
        let Source::Http {
            base,
            client,
            manifest_ttl,
            manifest,
            ..
        } = &self.source
        else {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no manifest",
            ));
        };
        let mut held = manifest.lock().await;
        if let Some(pair) = held.as_ref() {
            if pair.fetched.elapsed() < *manifest_ttl {
                return Ok(pair.clone());
            }
        }
        let fetched = async {
            let m = fetch_small(client, &format!("{base}{MANIFEST}"), MAX_MANIFEST_BYTES).await?;
            let s = fetch_small(
                client,
                &format!("{base}{MANIFEST}.minisig"),
                MAX_SIGNATURE_BYTES,
            )
            .await?;
            anyhow::Ok((m, s))
        }
        .await;
        match fetched {
            Ok((manifest, signature)) => {
                let pair = ManifestPair {
                    fetched: Instant::now(),
                    manifest,
                    signature,
                };
                *held = Some(pair.clone());
                Ok(pair)
            }
            // The upstream is gone: the last manifest still lets clients see they are
            // current (they refuse it once it expires).
            Err(e) => match held.as_ref() {
                Some(pair) => {
                    tracing::warn!(error = %format!("{e:#}"), "update channel unreachable; serving the last manifest");
                    Ok(pair.clone())
                }
                None => Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!("the update channel is unreachable: {e:#}"),
                )),
            },
        }
    }

    /// The path of a content-addressed file or signature in the cache, fetched first when
    /// missing.
    async fn cached(&self, name: &str, kind: Name) -> Result<PathBuf, ApiError> {
        let Source::Http {
            base,
            client,
            cache,
            downloads,
            ..
        } = &self.source
        else {
            return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "no cache"));
        };
        let path = cache.join(name);
        if path.is_file() {
            return Ok(path);
        }
        let lock = downloads
            .lock()
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "mirror lock"))?
            .entry(name.to_string())
            .or_default()
            .clone();
        // The download runs on its own task, so a client that gives up does not waste it.
        let (client, url, cache, name_owned) = (
            client.clone(),
            format!("{base}{name}"),
            cache.clone(),
            name.to_string(),
        );
        let task = tokio::spawn(async move {
            let _one = lock.lock().await;
            let path = cache.join(&name_owned);
            if path.is_file() {
                return Ok(path);
            }
            download(&client, &url, &cache, &name_owned, kind).await?;
            anyhow::Ok(path)
        });
        let result = task
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        if let Ok(mut d) = downloads.lock() {
            d.retain(|_, l| Arc::strong_count(l) > 1);
        }
        result.map_err(|e| {
            let message = format!("{e:#}");
            if message.contains("HTTP 404") {
                not_in_channel(name)
            } else {
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!("cannot mirror {name}: {message}"),
                )
            }
        })
    }
}

fn not_in_channel(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "{:.80?} is not in the update channel (manifest.json, <sha256>.snap, <sha256>.delta and their .minisig)",
            name
        ),
    )
}

async fn fetch_small(client: &reqwest::Client, url: &str, limit: u64) -> Result<Bytes> {
    let response = client
        .get(url)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .with_context(|| format!("cannot fetch {url}"))?;
    let status = response.status().as_u16();
    if status != 200 {
        bail!("cannot fetch {url}: HTTP {status}");
    }
    if response.content_length().is_some_and(|n| n > limit) {
        bail!("{url} is larger than {limit} bytes");
    }
    let bytes = response
        .bytes()
        .await
        .with_context(|| format!("cannot fetch {url}: the body broke off"))?;
    if bytes.len() as u64 > limit {
        bail!("{url} is larger than {limit} bytes");
    }
    Ok(bytes)
}

/// Fetches `url` into `cache/name`: a temporary file, checked (the SHA-256 its name says,
/// or the size of a signature), fsynced, renamed.
async fn download(
    client: &reqwest::Client,
    url: &str,
    cache: &Path,
    name: &str,
    kind: Name,
) -> Result<()> {
    let mut response = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("cannot fetch {url}"))?;
    let status = response.status().as_u16();
    if status != 200 {
        bail!("cannot fetch {url}: HTTP {status}");
    }
    let tmp = cache.join(format!(".tmp-{name}"));
    let mut file = tokio::fs::File::create(&tmp)
        .await
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    let mut hash = Sha256::new();
    let mut size = 0u64;
    let result = async {
        while let Some(chunk) = response
            .chunk()
            .await
            .with_context(|| format!("cannot fetch {url}: the body broke off"))?
        {
            size += chunk.len() as u64;
            if kind == Name::Signature && size > MAX_SIGNATURE_BYTES {
                bail!("{url} is larger than {MAX_SIGNATURE_BYTES} bytes");
            }
            hash.update(&chunk);
            file.write_all(&chunk).await?;
        }
        if kind == Name::Content {
            let sha: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
            let expected = content_stem(name).unwrap_or_default();
            if sha != expected {
                bail!("{url} has SHA-256 {sha}, not the {expected} its name says; discarded");
            }
        }
        file.sync_all().await?;
        tokio::fs::rename(&tmp, cache.join(name)).await?;
        if let Ok(d) = tokio::fs::File::open(cache).await {
            let _ = d.sync_all().await;
        }
        anyhow::Ok(())
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

fn small_response(bytes: Bytes, cache: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        bytes,
    )
        .into_response()
}

/// The first byte asked for by `Range: bytes=N-` or `bytes=N-M` (and the last, if given);
/// `None` for no range or one this server does not serve (it then sends the whole file).
fn range(headers: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let start = a.trim().parse().ok()?;
    let end = match b.trim() {
        "" => None,
        e => Some(e.parse().ok()?),
    };
    Some((start, end))
}

/// Streams a file, whole or the range asked for.
async fn serve_file(path: &Path, name: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_in_channel(name)),
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read {name}: {e}"),
            ))
        }
    };
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .len();
    let cache = if name.starts_with(MANIFEST) {
        "no-cache"
    } else {
        // Content-addressed: never changes.
        "public, max-age=31536000, immutable"
    };
    let (status, start, end) = match range(headers) {
        Some((start, end)) if start < len => {
            let end = end.map_or(len - 1, |e| e.min(len - 1));
            if end < start {
                return Err(unsatisfiable(len));
            }
            (StatusCode::PARTIAL_CONTENT, start, end)
        }
        Some(_) => return Err(unsatisfiable(len)),
        None if len == 0 => (StatusCode::OK, 0, 0),
        None => (StatusCode::OK, 0, len - 1),
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let stream = futures_util::stream::unfold((file, count), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; CHUNK.min(left as usize)];
        match file.read(&mut buf).await {
            Ok(0) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "file shorter than it was",
                )),
                (file, 0),
            )),
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

fn unsatisfiable(len: u64) -> ApiError {
    ApiError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        format!("the range is outside the file's {len} bytes"),
    )
}

/// `GET /v1/updates/{name}`.
pub(crate) async fn file(
    State(service): State<Arc<Service>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    match &service.updates {
        Some(mirror) => mirror.answer(&name, &headers).await,
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "this service does not mirror an update channel (set `updates` in its config)",
        )),
    }
}

/// `GET /v1/updates/`: what the mirror serves.
pub(crate) async fn index(State(service): State<Arc<Service>>) -> Response {
    let body = match service.updates.as_ref().map(|m| &m.source) {
        None => serde_json::json!({"mirror": null}),
        Some(Source::Dir(_)) => serde_json::json!({"mirror": "directory", "manifest": MANIFEST}),
        Some(Source::Http { base, .. }) => {
            serde_json::json!({"mirror": "http", "upstream": base, "manifest": MANIFEST})
        }
    };
    axum::Json(body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_channel_names_are_served() {
        let id = "0123456789abcdef".repeat(4);
        assert_eq!(
            classify("manifest.json"),
            Some(Name::Manifest { signature: false })
        );
        assert_eq!(
            classify("manifest.json.minisig"),
            Some(Name::Manifest { signature: true })
        );
        assert_eq!(classify(&format!("{id}.snap")), Some(Name::Content));
        assert_eq!(classify(&format!("{id}.delta")), Some(Name::Content));
        assert_eq!(
            classify(&format!("{id}.delta.minisig")),
            Some(Name::Signature)
        );
        for bad in [
            "../manifest.json",
            "current.json",
            "lock",
            ".tmp-manifest.json",
            &format!("{}.snap", id.to_uppercase()),
            &format!("{}.snap", &id[1..]),
            &format!("../{id}.snap"),
            &format!("{id}.snap.minisig.minisig"),
        ] {
            assert_eq!(classify(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges() {
        let mut h = HeaderMap::new();
        assert_eq!(range(&h), None);
        h.insert(header::RANGE, HeaderValue::from_static("bytes=10-"));
        assert_eq!(range(&h), Some((10, None)));
        h.insert(header::RANGE, HeaderValue::from_static("bytes=10-19"));
        assert_eq!(range(&h), Some((10, Some(19))));
        h.insert(header::RANGE, HeaderValue::from_static("bytes=0-1,5-6"));
        assert_eq!(range(&h), None);
        h.insert(header::RANGE, HeaderValue::from_static("items=1-"));
        assert_eq!(range(&h), None);
    }
}
