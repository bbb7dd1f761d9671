//! The generated keys, URL entries and snapshot a run measures, all from one seed.

use super::*;

/// splitmix64's finalizer: a bijection with full avalanche.
pub(super) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// splitmix64: a small, fast, seedable generator.
#[derive(Debug, Clone)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64, stream: u64) -> Rng {
        Rng(mix(seed ^ mix(stream)))
    }

    #[inline]
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `0..n`.
    #[inline]
    pub(super) fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }

    pub(super) fn label(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[self.below(36) as usize]))
            .collect()
    }
}

/// Streams of the generator, so that each kind of input is independent.
pub(super) const PRESENT: u64 = 1;
pub(super) const ABSENT: u64 = 2;
pub(super) const QUERY: u64 = 3;
pub(super) const URLS: u64 = 4;
pub(super) const PROBE: u64 = 5;

/// Key `i` of a stream: random access, so keys need not be stored.
pub(super) fn key_bytes(seed: u64, stream: u64, i: u64) -> [u8; 32] {
    let base = mix(seed ^ mix(stream.wrapping_mul(0x2545_f491_4f6c_dd1d)));
    let mut out = [0u8; 32];
    for (j, chunk) in out.chunks_exact_mut(8).enumerate() {
        let w = mix(base.wrapping_add((i * 4 + j as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// A digest's bytes, zero-padded to 32 (the baselines' key type).
pub(super) fn key32(d: &Digest) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..d.as_bytes().len()].copy_from_slice(d.as_bytes());
    k
}

/// The keys a run measures.
#[derive(Clone)]
pub(super) enum Keys {
    /// Generated SHA-256 keys: key `i` is `key_bytes(seed, PRESENT, i)`.
    Generated { seed: u64, count: u64 },
    /// The digests of a given snapshot (fingerprint, zero-padded).
    Listed(Vec<Digest>),
}

impl Keys {
    pub(super) fn len(&self) -> u64 {
        match self {
            Keys::Generated { count, .. } => *count,
            Keys::Listed(v) => v.len() as u64,
        }
    }

    pub(super) fn get(&self, i: u64) -> Digest {
        match self {
            Keys::Generated { seed, .. } => {
                Digest::from_bytes(&key_bytes(*seed, PRESENT, i)).unwrap_or_else(|| unreachable!())
            }
            Keys::Listed(v) => v[i as usize],
        }
    }

    pub(super) fn for_each(&self, mut f: impl FnMut(Digest)) {
        for i in 0..self.len() {
            f(self.get(i));
        }
    }
}

/// Generates the snapshot's URL entries and the URL queries (about 10% listed).
pub(super) fn url_inputs(
    seed: u64,
    entries: u64,
    queries: usize,
) -> (Vec<(String, EntryKind)>, Vec<String>) {
    const TLDS: [&str; 6] = ["com", "net", "org", "info", "ru", "xyz"];
    let mut rng = Rng::new(seed, URLS);
    let mut listed = Vec::with_capacity(entries as usize);
    for i in 0..entries {
        let tld = TLDS[rng.below(TLDS.len() as u64) as usize];
        let len = 6 + rng.below(8) as usize;
        let domain = format!("{}.{tld}", rng.label(len));
        if i % 2 == 0 {
            listed.push((domain, EntryKind::Domain));
        } else {
            let dir = rng.label(5);
            let file = rng.label(8);
            listed.push((format!("http://{domain}/{dir}/{file}.php"), EntryKind::Url));
        }
    }
    let mut urls = Vec::with_capacity(queries);
    for _ in 0..queries {
        let pick = rng.below(10);
        let url = if pick == 0 && !listed.is_empty() {
            let (entry, kind) = &listed[rng.below(listed.len() as u64) as usize];
            match kind {
                EntryKind::Domain => format!("http://www.{entry}/{}/index.html", rng.label(4)),
                _ => entry.clone(),
            }
        } else {
            let tld = TLDS[rng.below(TLDS.len() as u64) as usize];
            let len = 6 + rng.below(8) as usize;
            let host = format!("www.{}.{tld}", rng.label(len));
            let host = if pick == 1 { host.to_uppercase() } else { host };
            format!(
                "http://{host}/{}/{}/page{}.html?id={}",
                rng.label(4),
                rng.label(6),
                rng.below(1000),
                rng.below(1_000_000)
            )
        };
        urls.push(url);
    }
    (listed, urls)
}

/// Builds the generated snapshot into `path`; returns (seconds, digest keys added).
pub(super) fn build_snapshot(
    keys: &Keys,
    url_entries: &[(String, EntryKind)],
    path: &Path,
) -> Result<f64> {
    progress(format!(
        "building a snapshot of {} SHA-256 digests and {} URL/domain entries",
        keys.len(),
        url_entries.len()
    ));
    let started = Instant::now();
    let mut builder = SnapshotBuilder::new();
    let feed = builder.add_feed(FeedInfo::new("bench", "generated", Verdict::Malicious));
    let verdicts = Verdict::RECORDED;
    let specs: Vec<RecordSpec> = (0..RECORDS)
        .map(|k| {
            let mut s =
                RecordSpec::new(verdicts[(k % 4) as usize]).name(format!("Bench.Family.{k}"));
            s.confidence = Some((k % 101) as u8);
            s
        })
        .collect();
    let mut added = 0u64;
    keys.for_each(|d| {
        let spec = specs
            [(d.as_bytes()[31] as u64 * 256 + d.as_bytes()[30] as u64) as usize % specs.len()]
        .clone();
        builder.add_digest(feed, d, spec);
        added += 1;
        if added.is_multiple_of(10_000_000) {
            progress(format!("  {added} digests added"));
        }
    });
    let url_feed = builder.add_feed(FeedInfo::new("bench-urls", "generated", Verdict::Malicious));
    for (entry, kind) in url_entries {
        let spec = RecordSpec::new(Verdict::Malicious).category("phishing");
        let _ = builder.add_url_entry(url_feed, entry, *kind, spec);
    }
    progress("  sorting and writing");
    let report = builder.write(path).context("cannot build the snapshot")?;
    drop(builder);
    let secs = started.elapsed().as_secs_f64();
    progress(format!("  {} bytes in {secs:.1}s", report.bytes));
    Ok(secs)
}
