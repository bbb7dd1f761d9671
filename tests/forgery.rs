//! Forged snapshots: sections edited and every checksum recomputed, as a forger (or a bug in
//! a writer) would leave them. `verify` must refuse each one, or the file must answer every
//! lookup exactly as an independent reading of its own contents says, without any panic
//! (caught or not) on the way.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Once;

use proptest::prelude::*;
use repute::url::{EntryKind, Expressions};
use repute::{Digest, DigestKind, FeedInfo, Query, RecordSpec, Snapshot, SnapshotBuilder, Verdict};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

const HEADER_FIXED: usize = 32;
const ENTRY: usize = 32;
const TRAILER: usize = 32;

thread_local! {
    static PANICS: Cell<u32> = const { Cell::new(0) };
}

/// Counts panics on this thread, caught or not, and prints nothing for them (the default hook
/// still reports panics of other threads).
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            if std::thread::current()
                .name()
                .is_none_or(|n| !n.contains("forg"))
            {
                previous(info);
            }
        }));
    });
}

fn panics() -> u32 {
    PANICS.with(Cell::get)
}

fn digests() -> Vec<Digest> {
    [
        "44d88612fea8a8f36de82e1278abb02f",
        "3395856ce81f2b7382dee72602f798b642f14140",
        "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
    ]
    .iter()
    .map(|h| h.parse().unwrap())
    .chain((0u8..20).map(|i| Digest::from_bytes(&[i.wrapping_mul(37); 32]).unwrap()))
    .chain((0u8..10).map(|i| Digest::from_bytes(&[i.wrapping_mul(11) | 1; 16]).unwrap()))
    .collect()
}

const DOMAINS: [&str; 6] = [
    "malware.example.com",
    "phish.test",
    "ads.tracker.test",
    "bad.example.org",
    "c2.example.net",
    "evil.example.de",
];

const QUERIES: [&str; 10] = [
    "http://a.malware.example.com/x",
    "phish.test",
    "http://evil.example.net/payload.exe",
    "http://evil.example.net/other",
    "github.com",
    "http://www.github.com/a/b",
    "bad.example.org",
    "http://x.c2.example.net/",
    "evil.example.de",
    "unlisted.example",
];

fn sample() -> Vec<u8> {
    let mut b = SnapshotBuilder::new();
    b.created(1_700_000_000);
    let bad = b.add_feed(FeedInfo::new("bad", "hashes", Verdict::Malicious));
    let good = b.add_feed(FeedInfo::new("good", "sha256sum", Verdict::Trusted));
    for (i, d) in digests().into_iter().enumerate() {
        let feed = if i % 3 == 0 { good } else { bad };
        b.add_digest(
            feed,
            d,
            RecordSpec::default().name(format!("Threat.{}", i % 5)),
        );
    }
    for (i, d) in DOMAINS.iter().enumerate() {
        b.add_url_entry(
            bad,
            d,
            EntryKind::Domain,
            RecordSpec::default().name(format!("D{i}")),
        )
        .unwrap();
    }
    b.add_url_entry(
        bad,
        "http://evil.example.net/payload.exe",
        EntryKind::Url,
        RecordSpec::default(),
    )
    .unwrap();
    b.to_bytes().unwrap()
}

/// One answer, reduced to what a user sees.
type Answer = Option<(Verdict, Option<String>, Option<String>, String)>;

fn answer(hit: Option<repute::Hit<'_>>) -> Answer {
    hit.map(|h| {
        (
            h.record.verdict(),
            h.record.name().map(str::to_owned),
            h.record.source().map(str::to_owned),
            h.matched,
        )
    })
}

/// Every answer the snapshot gives for the sample's keys and some absent ones; URL errors
/// count as "no answer".
fn answers(snap: &Snapshot<&[u8]>) -> Vec<Answer> {
    let mut out = Vec::new();
    let keys = digests();
    let mut absent: Vec<Digest> = keys
        .iter()
        .map(|d| {
            let mut b = d.as_bytes().to_vec();
            b[1] ^= 0x42;
            Digest::from_bytes(&b).unwrap()
        })
        .collect();
    absent.extend(keys.iter().copied());
    for d in &absent {
        out.push(answer(snap.lookup(&Query::Digest(*d)).ok().flatten()));
    }
    let mut batch = vec![None; absent.len()];
    snap.lookup_digests(&absent, &mut batch);
    for (d, id) in absent.iter().zip(&batch) {
        assert_eq!(
            *id,
            snap.lookup_digest(d).map(|r| r.id()),
            "batch and single lookups disagree"
        );
    }
    let mut scratch = Expressions::new();
    for q in QUERIES {
        if let Query::Url(u) | Query::Domain(u) = Query::parse(q).unwrap() {
            out.push(answer(snap.lookup_url(&u, &mut scratch).ok().flatten()));
        }
    }
    out
}

/// What the snapshot's own contents, read without its lookup paths, say each answer is.
fn oracle(snap: &Snapshot<&[u8]>) -> Vec<Answer> {
    let mut tables: HashMap<(DigestKind, u128), repute::RecordId> = HashMap::new();
    for kind in DigestKind::ALL {
        for (fp, id) in snap.digest_table(kind).iter() {
            tables.insert((kind, fp), id);
        }
    }
    let urls: HashMap<String, repute::RecordId> = snap
        .url_entries()
        .expect("url entries of a verified snapshot")
        .into_iter()
        .collect();
    let record = |id: repute::RecordId, matched: String| -> Answer {
        snap.record(id).map(|r| {
            (
                r.verdict(),
                r.name().map(str::to_owned),
                r.source().map(str::to_owned),
                matched,
            )
        })
    };
    let mut out = Vec::new();
    let keys = digests();
    let mut absent: Vec<Digest> = keys
        .iter()
        .map(|d| {
            let mut b = d.as_bytes().to_vec();
            b[1] ^= 0x42;
            Digest::from_bytes(&b).unwrap()
        })
        .collect();
    absent.extend(keys.iter().copied());
    for d in &absent {
        out.push(
            tables
                .get(&(d.kind(), d.fingerprint()))
                .and_then(|id| record(*id, d.to_hex())),
        );
    }
    let mut scratch = Expressions::new();
    for q in QUERIES {
        if let Query::Url(u) | Query::Domain(u) = Query::parse(q).unwrap() {
            scratch.fill(&u);
            let expressions: Vec<String> =
                scratch.keys().map(repute::url::key_expression).collect();
            out.push(
                expressions
                    .iter()
                    .find_map(|e| urls.get(e).map(|id| (*id, e.clone())))
                    .and_then(|(id, e)| record(id, e)),
            );
        }
    }
    out
}

/// Where section `kind` lies: (table entry offset, section offset, section length).
fn section(bytes: &[u8], kind: u32) -> (usize, usize, usize) {
    let n = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
    (0..n)
        .map(|i| HEADER_FIXED + i * ENTRY)
        .find(|e| u32::from_le_bytes(bytes[*e..*e + 4].try_into().unwrap()) == kind)
        .map(|e| {
            let offset = u64::from_le_bytes(bytes[e + 8..e + 16].try_into().unwrap()) as usize;
            let length = u64::from_le_bytes(bytes[e + 16..e + 24].try_into().unwrap()) as usize;
            (e, offset, length)
        })
        .expect("section present")
}

const FILTER: u32 = 2;
const STRINGS: u32 = 3;
const RECORDS: u32 = 4;
const URLS: u32 = 32;
const SHA256_TABLE: u32 = 18;

/// CRC-32C, masked as the `fst` crate stores it.
fn fst_crc(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    let sum = !crc;
    (sum.wrapping_shr(15) | sum.wrapping_shl(17)).wrapping_add(0xa282_ead8)
}

/// Recomputes the FST's CRC (when `kind` is the URL section), the section checksum, the
/// header checksum and the trailer digest.
fn reseal(bytes: &mut [u8], kind: u32) {
    let (e, offset, length) = section(bytes, kind);
    if kind == URLS {
        let body = &bytes[offset..offset + length];
        let crc = fst_crc(&body[..length - 4]);
        bytes[offset + length - 4..offset + length].copy_from_slice(&crc.to_le_bytes());
    }
    let sum = xxh3_64(&bytes[offset..offset + length]);
    bytes[e + 24..e + 32].copy_from_slice(&sum.to_le_bytes());
    let n = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
    let table_end = HEADER_FIXED + n * ENTRY;
    let sum = xxh3_64(&bytes[..table_end]);
    bytes[table_end..table_end + 8].copy_from_slice(&sum.to_le_bytes());
    let t = bytes.len() - TRAILER;
    let digest = xxh3_128(&bytes[..t]);
    bytes[t + 16..].copy_from_slice(&digest.to_le_bytes());
}

/// How a forgery ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// `open` or `verify` refused it.
    Refused,
    /// It passed and answers as the original did.
    Same,
    /// It passed and answers differently, but exactly as its own contents say (a
    /// self-consistent forgery: only a signature can tell it from the original).
    Consistent,
}

/// Judges one forged file, failing the test on a panic or on an answer its contents do not
/// support.
fn judge(original: &[Answer], forged: &[u8]) -> Outcome {
    let before = panics();
    let outcome = match Snapshot::open(forged) {
        Err(_) => Outcome::Refused,
        Ok(snap) => {
            // Lookups before verify, as `lookup` runs them: must not panic whatever happens.
            let unverified = answers(&snap);
            match snap.verify() {
                Err(_) => Outcome::Refused,
                Ok(()) => {
                    let got = answers(&snap);
                    assert_eq!(got, unverified, "answers changed once verified");
                    if got == original {
                        Outcome::Same
                    } else {
                        assert_eq!(
                            got,
                            oracle(&snap),
                            "a verified snapshot answered against its contents"
                        );
                        Outcome::Consistent
                    }
                }
            }
        }
    };
    assert_eq!(
        panics(),
        before,
        "a panic (caught or not) while judging a forgery"
    );
    outcome
}

/// Runs `f` on a thread whose panics the hook keeps quiet.
fn quietly<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    count_panics();
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("forgery".into())
            .spawn_scoped(s, f)
            .unwrap()
            .join()
            .unwrap()
    })
}

#[test]
fn every_byte_of_the_url_fst_forged() {
    quietly(|| {
        let bytes = sample();
        let original = answers(&Snapshot::open(&bytes[..]).unwrap());
        assert!(original.iter().filter(|a| a.is_some()).count() > 30);
        let (_, offset, length) = section(&bytes, URLS);
        let mut tally = HashMap::new();
        for at in 0..length - 4 {
            for xor in [0x01, 0x10, 0x80, 0xff, 0x5a] {
                let mut forged = bytes.clone();
                forged[offset + at] ^= xor;
                reseal(&mut forged, URLS);
                *tally
                    .entry(format!("{:?}", judge(&original, &forged)))
                    .or_insert(0) += 1;
            }
        }
        assert!(tally.get("Refused").copied().unwrap_or(0) > 0, "{tally:?}");
    });
}

#[test]
fn a_filter_of_zeros_is_refused() {
    quietly(|| {
        let bytes = sample();
        let (_, offset, length) = section(&bytes, FILTER);
        let mut forged = bytes.clone();
        forged[offset + 64..offset + length].fill(0);
        reseal(&mut forged, FILTER);
        let snap = Snapshot::open(&forged[..]).unwrap();
        let err = snap.verify().unwrap_err().to_string();
        assert!(err.contains("filter"), "{err}");
        // Every bit set is only a slower filter: the answers stay.
        let mut ones = bytes.clone();
        ones[offset + 64..offset + length].fill(0xff);
        reseal(&mut ones, FILTER);
        let original = answers(&Snapshot::open(&bytes[..]).unwrap());
        assert_eq!(judge(&original, &ones), Outcome::Same);
    });
}

/// A filter large enough that verify tests membership against a copy of it in huge pages,
/// and a table long enough to be split into shares between threads: the last key's block
/// knocked out (found by bisection through the public API) is still found, and the
/// report is the same on every run.
/// Positions per share of verify's table passes (as `Snapshot::verify` splits them).
const SHARE: usize = 1 << 20;

/// A snapshot of 1.2 M SHA-256 keys with a filter over 4 MiB, and its keys in table order.
fn large_snapshot() -> (Vec<u8>, Vec<Digest>) {
    const N: u64 = 1_200_000;
    let mut b = SnapshotBuilder::new();
    b.created(1_700_000_000).bits_per_key(40);
    let feed = b.add_feed(FeedInfo::new("bad", "hashes", Verdict::Malicious));
    let mut digests: Vec<Digest> = (0..N)
        .map(|i| {
            let mut bytes = [0u8; 32];
            for (j, chunk) in bytes.chunks_mut(8).enumerate() {
                let x = (i * 4 + j as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                chunk.copy_from_slice(&(x ^ (x >> 29)).to_le_bytes());
            }
            Digest::from_bytes(&bytes).unwrap()
        })
        .collect();
    for d in &digests {
        b.add_digest(feed, *d, RecordSpec::default());
    }
    let bytes = b.to_bytes().unwrap();
    Snapshot::open(&bytes[..]).unwrap().verify().unwrap();
    digests.sort_by_key(|d| d.as_bytes().to_vec());
    (bytes, digests)
}

#[test]
fn a_key_knocked_out_of_a_large_filter_is_found_in_the_last_share() {
    quietly(|| {
        let (bytes, digests) = large_snapshot();
        let (_, offset, length) = section(&bytes, FILTER);
        assert!(length > 4 << 20, "the filter is {length} bytes");

        // The last key in table order; narrow down to the 64-byte block that holds it.
        let last = *digests.last().unwrap();
        let (mut lo, mut hi) = (offset + 64, offset + length);
        while hi - lo > 64 {
            let mid = lo + ((hi - lo) / 2) / 64 * 64;
            let mut cut = bytes.clone();
            cut[lo..mid].fill(0);
            if Snapshot::open(&cut[..]).unwrap().filter_may_contain(&last) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let mut forged = bytes.clone();
        forged[lo..hi].fill(0);
        reseal(&mut forged, FILTER);
        let snap = Snapshot::open(&forged[..]).unwrap();
        assert!(!snap.filter_may_contain(&last));
        // Only the few keys that share the block are out.
        let out = digests
            .iter()
            .filter(|d| !snap.filter_may_contain(d))
            .count();
        assert!((1..200).contains(&out), "{out} keys out");
        let err = snap.verify().unwrap_err().to_string();
        assert!(
            err.contains("filter") && err.contains("sha256 entry at position"),
            "{err}"
        );
        for _ in 0..3 {
            assert_eq!(snap.verify().unwrap_err().to_string(), err);
        }
    });
}

/// Verify checks a large table's structure in shares, testing each share's entries against
/// the filter as it reads them. Two entries swapped across the first share boundary are
/// caught there (the second share starts from the entry before it), and the error is the
/// one the whole-table check gives, even with keys of the first share knocked out of the
/// filter as well: a structure error comes before a filter error.
#[test]
fn an_entry_out_of_order_at_a_share_boundary_is_found_before_filter_errors() {
    quietly(|| {
        let (bytes, digests) = large_snapshot();
        let (_, table, table_len) = section(&bytes, SHA256_TABLE);
        // Fingerprints are the digests' first 16 bytes, stored in order.
        let at = |i: usize| {
            let fp = &digests[i].as_bytes()[..16];
            table
                + bytes[table..table + table_len]
                    .windows(16)
                    .position(|w| w == fp)
                    .expect("fingerprint in the table")
        };
        let (a, b) = (at(SHARE - 1), at(SHARE));
        assert_eq!(b, a + 16, "consecutive fingerprints");
        let mut forged = bytes.clone();
        forged[a..a + 16].copy_from_slice(&bytes[b..b + 16]);
        forged[b..b + 16].copy_from_slice(&bytes[a..a + 16]);
        reseal(&mut forged, SHA256_TABLE);
        let whole = |f: &[u8]| {
            let snap = Snapshot::open(f).unwrap();
            snap.digest_table(DigestKind::Sha256)
                .verify(snap.record_count())
                .unwrap_err()
                .to_string()
        };
        let expected = whole(&forged);
        assert!(
            expected.contains("1048575") || expected.contains("1048576"),
            "{expected}"
        );
        assert_eq!(
            Snapshot::open(&forged[..])
                .unwrap()
                .verify()
                .unwrap_err()
                .to_string(),
            expected
        );

        // The first quarter of the filter zeroed too: keys of the first share fail it.
        let (_, filter, filter_len) = section(&forged, FILTER);
        forged[filter + 64..filter + 64 + filter_len / 4].fill(0);
        reseal(&mut forged, FILTER);
        let snap = Snapshot::open(&forged[..]).unwrap();
        assert!(!digests[..SHARE].iter().all(|d| snap.filter_may_contain(d)));
        for _ in 0..3 {
            assert_eq!(snap.verify().unwrap_err().to_string(), expected);
        }
    });
}

/// A mutation of one section: a byte set, a byte flipped, or a little-endian u32 changed
/// (offsets, counts, ids and deltas are stored that way).
#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Xor(usize, u8),
    U32(usize, u32),
    Zero(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(a, v)| Mutation::Set(a, v)),
        (any::<usize>(), 1u8..=255).prop_map(|(a, v)| Mutation::Xor(a, v)),
        (any::<usize>(), any::<u32>()).prop_map(|(a, v)| Mutation::U32(a, v)),
        (any::<usize>(), 1usize..64).prop_map(|(a, n)| Mutation::Zero(a, n)),
    ]
}

fn apply(body: &mut [u8], m: &Mutation, keep_tail: usize) {
    let n = body.len() - keep_tail;
    match *m {
        Mutation::Set(a, v) => body[a % n] = v,
        Mutation::Xor(a, v) => body[a % n] ^= v,
        Mutation::U32(a, v) => {
            let at = a % n.saturating_sub(3).max(1);
            let end = (at + 4).min(n);
            body[at..end].copy_from_slice(&v.to_le_bytes()[..end - at]);
        }
        Mutation::Zero(a, len) => {
            let at = a % n;
            body[at..(at + len).min(n)].fill(0);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Random structural mutations of the URL FST, the records, the strings and the filter,
    /// with every checksum recomputed: each either fails `verify`, or leaves all answers as
    /// they were, or (a self-consistent forgery) answers exactly as the file's own contents
    /// say; never a panic.
    #[test]
    fn mutations_fail_verify_or_answer_from_the_file(
        kind in prop_oneof![Just(URLS), Just(RECORDS), Just(STRINGS), Just(FILTER)],
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let outcome = quietly(|| {
            let bytes = sample();
            let original = answers(&Snapshot::open(&bytes[..]).unwrap());
            let (_, offset, length) = section(&bytes, kind);
            let mut forged = bytes.clone();
            // The FST's CRC is recomputed, not mutated.
            let tail = if kind == URLS { 4 } else { 0 };
            for m in &mutations {
                apply(&mut forged[offset..offset + length], m, tail);
            }
            reseal(&mut forged, kind);
            judge(&original, &forged)
        });
        if kind == FILTER {
            // The filter holds no answers: a forged filter is refused or changes nothing.
            prop_assert_ne!(outcome, Outcome::Consistent);
        }
    }
}
