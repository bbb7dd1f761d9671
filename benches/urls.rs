//! URL checks per second: canonicalization, all expressions, filter and FST probes.
//!
//! Builds a snapshot of N generated web entries (domains, URL prefixes, exact URLs; N from
//! `REPUTE_BENCH_URL_ENTRIES`, default 100 000), then checks generated URLs of which about
//! 2% are listed. Everything is generated from a fixed seed.
//!
//! ```text
//! cargo bench --bench urls -- --quick
//! ```

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use repute::url::{CanonicalUrl, Canonicalizer, EntryKind, Expressions};
use repute::{FeedInfo, RecordSpec, Snapshot, SnapshotBuilder, Verdict};

/// URLs checked per benchmark iteration.
const QUERIES: usize = 4096;

/// Inputs come from the project's seeded generator, with the few shapes this bench needs.
struct Rng(repute_gen::Generator);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(repute_gen::Generator::new(seed))
    }

    fn below(&mut self, n: usize) -> usize {
        self.0.below(n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.0.percent(percent as u32)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// A pronounceable word of 2 to 4 syllables.
    fn word(&mut self) -> String {
        const SYLLABLES: [&str; 24] = [
            "ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "bra", "con", "dex", "fin",
            "gor", "hub", "jet", "lux", "mar", "nov", "pix", "qua", "sol", "tor", "web",
        ];
        let n = 2 + self.below(3);
        (0..n).map(|_| self.pick(&SYLLABLES)).collect()
    }
}

const TLDS: [&str; 10] = [
    "com", "net", "org", "io", "de", "ru", "info", "co.uk", "com.br", "xyz",
];

fn domain(rng: &mut Rng) -> String {
    format!("{}{}.{}", rng.word(), rng.below(1000), rng.pick(&TLDS))
}

fn path(rng: &mut Rng) -> String {
    let depth = rng.below(5);
    let mut p = String::new();
    for _ in 0..depth {
        p.push('/');
        p.push_str(&rng.word());
    }
    match rng.below(4) {
        0 => p.push('/'),
        1 => {
            p.push('/');
            p.push_str(&rng.word());
            p.push_str(".php");
        }
        2 => {
            p.push('/');
            p.push_str(&rng.word());
            p.push_str(".html");
        }
        _ => {
            if p.is_empty() {
                p.push('/');
            }
        }
    }
    p
}

/// A realistic-looking URL on `host`, sometimes with a query, escapes, case or a fragment.
fn url_on(rng: &mut Rng, host: &str) -> String {
    let scheme = if rng.chance(60) { "https" } else { "http" };
    let sub = if rng.chance(50) {
        format!(
            "{}.",
            rng.pick(&["www", "cdn", "login", "m", "api", "static"])
        )
    } else {
        String::new()
    };
    let mut url = format!("{scheme}://{sub}{host}{}", path(rng));
    if rng.chance(40) {
        url.push_str(&format!("?id={}&ref={}", rng.below(100_000), rng.word()));
    }
    if rng.chance(10) {
        url = url.replacen("://", "://Mixed.Case.", 1);
    }
    if rng.chance(10) {
        url.push_str("/%7Euser/a%20b");
    }
    if rng.chance(5) {
        url.push_str("#section");
    }
    url
}

fn entries(n: usize) -> Vec<(String, EntryKind)> {
    let mut rng = Rng::new(0x7265_7075_7465_0001);
    (0..n)
        .map(|_| {
            let host = domain(&mut rng);
            match rng.below(100) {
                0..=59 => (host, EntryKind::Domain),
                60..=84 => (format!("http://{host}/{}/", rng.word()), EntryKind::Prefix),
                _ => (url_on(&mut rng, &host), EntryKind::Url),
            }
        })
        .collect()
}

fn build(entries: &[(String, EntryKind)]) -> Snapshot {
    let mut builder = SnapshotBuilder::new();
    let feed = builder.add_feed(FeedInfo::new("bench", "urls", Verdict::Malicious));
    for (entry, kind) in entries {
        // A generated entry can be refused (never in practice); the bench does not care.
        let _ = builder.add_url_entry(feed, entry, *kind, RecordSpec::default());
    }
    Snapshot::open(builder.to_bytes().expect("build")).expect("open")
}

/// Query URLs: 98% on unlisted hosts, 2% under listed entries.
fn queries(entries: &[(String, EntryKind)]) -> Vec<String> {
    let mut rng = Rng::new(0x7265_7075_7465_0002);
    (0..QUERIES)
        .map(|_| {
            if rng.chance(2) {
                let (entry, kind) = &entries[rng.below(entries.len())];
                match kind {
                    EntryKind::Domain => url_on(&mut rng, entry),
                    EntryKind::Prefix => format!("{entry}{}", rng.word()),
                    EntryKind::Url => entry.clone(),
                }
            } else {
                let host = domain(&mut rng);
                url_on(&mut rng, &host)
            }
        })
        .collect()
}

fn bench_urls(c: &mut Criterion) {
    let n = std::env::var("REPUTE_BENCH_URL_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let entries = entries(n);
    let snapshot = build(&entries);
    let queries = queries(&entries);

    let mut canonicalizer = Canonicalizer::new();
    let mut url = CanonicalUrl::default();
    let mut expressions = Expressions::new();
    let (mut hits, mut total_expressions) = (0, 0);
    for q in &queries {
        canonicalizer
            .canonicalize_into(q, &mut url)
            .expect("canonical");
        expressions.fill(&url);
        total_expressions += expressions.len();
        if snapshot
            .lookup_url(&url, &mut expressions)
            .expect("lookup")
            .is_some()
        {
            hits += 1;
        }
    }
    eprintln!(
        "urls: {n} entries, {} queries, {hits} listed, {:.1} expressions per URL",
        queries.len(),
        total_expressions as f64 / queries.len() as f64
    );

    // Criterion measures wall time, which a busy machine inflates; this also reports the
    // rate per second of CPU time the thread actually got (Linux only).
    if let Some(start) = thread_cpu_ns() {
        let wall = std::time::Instant::now();
        let mut rounds = 0u64;
        while wall.elapsed().as_millis() < 1000 {
            for q in &queries {
                if canonicalizer
                    .canonicalize_into(black_box(q), &mut url)
                    .is_ok()
                {
                    black_box(snapshot.lookup_url(&url, &mut expressions).is_ok());
                }
            }
            rounds += 1;
        }
        if let Some(end) = thread_cpu_ns() {
            let checks = rounds as f64 * queries.len() as f64;
            eprintln!(
                "urls/check: {:.2} M URL checks per CPU-second ({:.2} M per wall-second)",
                checks / (end - start) as f64 * 1e3,
                checks / wall.elapsed().as_secs_f64() / 1e6,
            );
        }
    }

    let mut group = c.benchmark_group("urls");
    group.throughput(Throughput::Elements(queries.len() as u64));
    group.bench_function("canonicalize", |b| {
        b.iter(|| {
            for q in &queries {
                let _ = black_box(canonicalizer.canonicalize_into(black_box(q), &mut url));
            }
        })
    });
    group.bench_function("canonicalize+expressions", |b| {
        b.iter(|| {
            for q in &queries {
                if canonicalizer
                    .canonicalize_into(black_box(q), &mut url)
                    .is_ok()
                {
                    expressions.fill(&url);
                    black_box(expressions.len());
                }
            }
        })
    });
    group.bench_function("check", |b| {
        b.iter(|| {
            let mut listed = 0usize;
            for q in &queries {
                if canonicalizer
                    .canonicalize_into(black_box(q), &mut url)
                    .is_ok()
                    && matches!(snapshot.lookup_url(&url, &mut expressions), Ok(Some(_)))
                {
                    listed += 1;
                }
            }
            black_box(listed)
        })
    });
    group.finish();
}

/// Nanoseconds this thread has spent on a CPU, from `/proc/thread-self/schedstat`.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

criterion_group!(benches, bench_urls);
criterion_main!(benches);
