//! Snapshots agree with a `HashMap` oracle, and do not depend on input order.

use std::collections::HashMap;

use proptest::prelude::*;
use repute::url::{EntryKind, Expressions};
use repute::{
    Digest, FeedInfo, Query, RecordId, RecordSpec, Snapshot, SnapshotBuilder, UrlScratch,
    UrlVerdict, Verdict,
};

fn verdict() -> impl Strategy<Value = Verdict> {
    prop::sample::select(Verdict::RECORDED.to_vec())
}

fn digest() -> impl Strategy<Value = Digest> {
    (
        prop::sample::select(vec![16usize, 20, 32]),
        prop::collection::vec(any::<u8>(), 32),
    )
        .prop_map(|(len, bytes)| Digest::from_bytes(&bytes[..len]).unwrap())
}

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,8}"
}

fn domain() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(label(), 1..3),
        prop::sample::select(vec!["com", "net", "org", "test"]),
    )
        .prop_map(|(labels, tld)| format!("{}.{tld}", labels.join(".")))
}

fn url() -> impl Strategy<Value = String> {
    (
        domain(),
        prop::collection::vec(label(), 1..3),
        prop::option::of(label()),
    )
        .prop_map(|(host, path, q)| {
            let mut u = format!("http://{host}/{}", path.join("/"));
            if let Some(q) = q {
                u.push_str("?q=");
                u.push_str(&q);
            }
            u
        })
}

#[derive(Debug, Clone)]
struct Input {
    digests: Vec<(Digest, Verdict, Option<String>)>,
    domains: Vec<(String, Verdict)>,
    urls: Vec<(String, Verdict)>,
}

fn input() -> impl Strategy<Value = Input> {
    (
        prop::collection::vec(
            (digest(), verdict(), prop::option::of("[A-Za-z.]{1,12}")),
            0..300,
        ),
        prop::collection::vec((domain(), verdict()), 0..60),
        prop::collection::vec((url(), verdict()), 0..60),
    )
        .prop_map(|(digests, domains, urls)| Input {
            digests,
            domains,
            urls,
        })
}

/// Builds with one feed per verdict; entries go in the order given.
fn build(input: &Input, order: &[usize]) -> Vec<u8> {
    let mut b = SnapshotBuilder::new();
    b.created(1_700_000_000).sequence(7);
    let feeds: HashMap<Verdict, _> = Verdict::RECORDED
        .iter()
        .map(|v| (*v, b.add_feed(FeedInfo::new(v.as_str(), "test", *v))))
        .collect();
    let n_d = input.digests.len();
    let n_dom = input.domains.len();
    for &i in order {
        if i < n_d {
            let (d, v, name) = &input.digests[i];
            let mut spec = RecordSpec::new(*v);
            spec.name = name.clone();
            b.add_digest(feeds[v], *d, spec);
        } else if i < n_d + n_dom {
            let (dom, v) = &input.domains[i - n_d];
            // Entries that would list a public suffix (e.g. `sa.com`) are refused; the oracle
            // below leaves them out the same way.
            let _ = b.add_url_entry(feeds[v], dom, EntryKind::Domain, RecordSpec::new(*v));
        } else {
            let (u, v) = &input.urls[i - n_d - n_dom];
            let _ = b.add_url_entry(feeds[v], u, EntryKind::Url, RecordSpec::new(*v));
        }
    }
    b.to_bytes().unwrap()
}

fn listable(entry: &str, kind: EntryKind) -> bool {
    repute::url::entry_expression(entry, kind).is_ok()
}

/// The oracle's answer for a key listed several times: the strongest verdict.
fn strongest(a: Verdict, b: Verdict) -> Verdict {
    if b.precedence() < a.precedence() {
        b
    } else {
        a
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn agrees_with_hashmap_oracle(input in input(), absent in prop::collection::vec(digest(), 0..100), seed in any::<u64>()) {
        let total = input.digests.len() + input.domains.len() + input.urls.len();
        let forward: Vec<usize> = (0..total).collect();
        let bytes = build(&input, &forward);

        // Shuffling the input does not change a byte.
        let mut shuffled = forward.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        prop_assert!(build(&input, &shuffled) == bytes, "shuffled input changed the snapshot");

        let snap = Snapshot::open(bytes).unwrap();
        snap.verify().unwrap();

        let mut oracle: HashMap<Digest, Verdict> = HashMap::new();
        for (d, v, _) in &input.digests {
            let e = oracle.entry(*d).or_insert(*v);
            *e = strongest(*e, *v);
        }
        let mut batch_in = Vec::new();
        for (d, v) in &oracle {
            let r = snap.lookup_digest(d);
            prop_assert_eq!(r.map(|r| r.verdict()), Some(*v), "digest {:?}", d);
            batch_in.push(*d);
        }
        for d in &absent {
            prop_assert_eq!(snap.lookup_digest(d).map(|r| r.verdict()), oracle.get(d).copied());
            batch_in.push(*d);
        }
        // The batch API agrees with single lookups.
        let mut out = vec![None; batch_in.len()];
        snap.lookup_digests(&batch_in, &mut out);
        for (d, id) in batch_in.iter().zip(&out) {
            let single: Option<RecordId> = snap.lookup_digest(d).map(|r| r.id());
            prop_assert_eq!(*id, single);
        }

        // Domains: the domain itself and any subdomain match, with the strongest verdict
        // among listed entries of equal specificity.
        let mut domains: HashMap<String, Verdict> = HashMap::new();
        for (d, v) in input.domains.iter().filter(|(d, _)| listable(d, EntryKind::Domain)) {
            let e = domains.entry(d.clone()).or_insert(*v);
            *e = strongest(*e, *v);
        }
        let mut scratch = Expressions::new();
        for (d, v) in &domains {
            let q = Query::parse(&format!("sub.{d}")).unwrap();
            let hit = snap.lookup(&q).unwrap().expect("subdomain of a listed domain matches");
            // A more specific listed domain (sub.d itself) may win; otherwise d's verdict.
            if !domains.contains_key(&format!("sub.{d}")) && hit.matched == format!("{d}/") {
                prop_assert_eq!(hit.record.verdict(), *v);
            }
            let Query::Domain(u) = Query::parse(d).unwrap() else { unreachable!() };
            let exact = snap.lookup_url(&u, &mut scratch).unwrap().unwrap();
            prop_assert_eq!(exact.record.verdict(), *v);
            prop_assert_eq!(exact.matched, format!("{d}/"));
        }
        // URLs: each listed URL matches itself.
        for (u, _) in input.urls.iter().filter(|(u, _)| listable(u, EntryKind::Url)) {
            let q = Query::parse(u).unwrap();
            prop_assert!(snap.lookup(&q).unwrap().is_some(), "listed url {} not found", u);
        }
        // A domain that is nowhere listed, under a TLD never generated, never matches.
        let q = Query::parse("unlisted.invalid").unwrap();
        prop_assert!(snap.lookup(&q).unwrap().is_none());
    }
}

#[test]
fn precedence_and_override() {
    let d: Digest = "44d88612fea8a8f36de82e1278abb02f".parse().unwrap();
    let mut b = SnapshotBuilder::new();
    let trusted = b.add_feed(FeedInfo::new("vendor", "md5sum", Verdict::Trusted));
    let bad = b.add_feed(FeedInfo::new("feed", "hashes", Verdict::Malicious));
    b.add_digest(trusted, d, RecordSpec::default());
    b.add_digest(bad, d, RecordSpec::default());
    let (bytes, report) = b.build().unwrap();
    assert_eq!(report.conflicts, 1);
    let snap = Snapshot::open(bytes).unwrap();
    assert_eq!(
        snap.lookup_digest(&d).unwrap().verdict(),
        Verdict::Malicious
    );

    let mut fp = FeedInfo::new("fp", "hashes", Verdict::Trusted);
    fp.r#override = true;
    let fp = b.add_feed(fp);
    b.add_digest(fp, d, RecordSpec::default());
    let (bytes, report) = b.build().unwrap();
    assert_eq!(report.conflicts, 1);
    assert_eq!(report.overrides, 1);
    let snap = Snapshot::open(bytes).unwrap();
    let r = snap.lookup_digest(&d).unwrap();
    assert_eq!(r.verdict(), Verdict::Trusted);
    assert_eq!(r.source(), Some("fp"));
}

#[test]
fn most_specific_url_match_wins() {
    let mut b = SnapshotBuilder::new();
    let good = b.add_feed(FeedInfo::new("allow", "domains", Verdict::Trusted));
    let bad = b.add_feed(FeedInfo::new("block", "urls", Verdict::Malicious));
    b.add_url_entry(
        good,
        "example.com",
        EntryKind::Domain,
        RecordSpec::default(),
    )
    .unwrap();
    b.add_url_entry(
        bad,
        "http://example.com/evil/",
        EntryKind::Prefix,
        RecordSpec::default(),
    )
    .unwrap();
    b.add_url_entry(
        bad,
        "http://files.example.com/x.exe",
        EntryKind::Url,
        RecordSpec::default(),
    )
    .unwrap();
    let snap = Snapshot::open(b.to_bytes().unwrap()).unwrap();
    let verdict = |q: &str| {
        snap.lookup(&Query::parse(q).unwrap())
            .unwrap()
            .map_or(Verdict::Unknown, |h| h.record.verdict())
    };
    assert_eq!(
        verdict("http://www.example.com/index.html"),
        Verdict::Trusted
    );
    assert_eq!(
        verdict("http://www.example.com/evil/payload"),
        Verdict::Malicious
    );
    assert_eq!(
        verdict("https://files.example.com/x.exe?dl=1"),
        Verdict::Malicious
    );
    assert_eq!(verdict("https://files.example.com/y.exe"), Verdict::Trusted);
    assert_eq!(verdict("http://example.com.evil.net/"), Verdict::Unknown);
    assert_eq!(verdict("http://notexample.com/"), Verdict::Unknown);

    // The batch API agrees with single lookups, and marks what cannot be canonicalized.
    let urls = [
        "http://www.example.com/index.html",
        "http://www.example.com/evil/payload",
        "http://example.com.evil.net/",
        "http://",
        "files.example.com/x.exe",
    ];
    let mut out = vec![UrlVerdict::Unlisted; urls.len()];
    let mut scratch = UrlScratch::new();
    for _ in 0..2 {
        snap.lookup_urls(&urls, &mut scratch, &mut out).unwrap();
        let verdicts: Vec<Verdict> = out
            .iter()
            .map(|v| match v {
                UrlVerdict::Listed(id) => snap.record(*id).unwrap().verdict(),
                _ => Verdict::Unknown,
            })
            .collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Trusted,
                Verdict::Malicious,
                Verdict::Unknown,
                Verdict::Unknown,
                Verdict::Malicious
            ]
        );
        assert_eq!(out[2], UrlVerdict::Unlisted);
        assert_eq!(out[3], UrlVerdict::Invalid);
    }
}

#[test]
fn empty_snapshot_answers_unknown() {
    let snap = Snapshot::open(SnapshotBuilder::new().to_bytes().unwrap()).unwrap();
    snap.verify().unwrap();
    let d: Digest = "44d88612fea8a8f36de82e1278abb02f".parse().unwrap();
    assert!(snap.lookup_digest(&d).is_none());
    assert!(snap
        .lookup(&Query::parse("example.com").unwrap())
        .unwrap()
        .is_none());
}
