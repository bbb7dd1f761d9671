//! URL and domain matching through a real snapshot: entries go in through
//! `SnapshotBuilder::add_url_entry`, lookups come out through `Snapshot::lookup_url`.

use proptest::prelude::*;
use repute::url::{canonicalize, CanonicalUrl, Canonicalizer, EntryKind, Expressions};
use repute::{FeedInfo, Query, RecordSpec, Snapshot, SnapshotBuilder, Verdict};

/// Builds a snapshot of web entries, each with its own verdict and a name.
fn snapshot(entries: &[(&str, EntryKind, Verdict)]) -> Snapshot {
    let mut builder = SnapshotBuilder::new();
    let feed = builder.add_feed(FeedInfo::new("test", "urls", Verdict::Malicious));
    for (entry, kind, verdict) in entries {
        builder
            .add_url_entry(feed, entry, *kind, RecordSpec::new(*verdict).name(*entry))
            .unwrap_or_else(|e| panic!("{entry}: {e}"));
    }
    Snapshot::open(builder.to_bytes().unwrap()).unwrap()
}

/// The verdict and matched expression for a URL, `None` when nothing matches.
fn check(snapshot: &Snapshot, url: &str) -> Option<(Verdict, String)> {
    let url = canonicalize(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    snapshot
        .lookup_url(&url, &mut Expressions::new())
        .unwrap()
        .map(|hit| (hit.record.verdict(), hit.matched))
}

fn matched(snapshot: &Snapshot, url: &str) -> Option<String> {
    check(snapshot, url).map(|(_, m)| m)
}

#[test]
fn domain_prefix_and_url_entries() {
    let s = snapshot(&[
        ("evil.example", EntryKind::Domain, Verdict::Malicious),
        (
            "http://files.example.net/dl/",
            EntryKind::Prefix,
            Verdict::Malicious,
        ),
        (
            "https://shop.example.org/pay?id=7",
            EntryKind::Url,
            Verdict::Suspicious,
        ),
    ]);
    // A domain covers its host, its subdomains and every path.
    assert_eq!(
        matched(&s, "http://evil.example/"),
        Some("evil.example/".into())
    );
    assert_eq!(
        matched(&s, "https://a.b.EVIL.example:8443/x/y?z#f"),
        Some("evil.example/".into())
    );
    // A prefix covers the paths under it, on the host and its subdomains.
    assert_eq!(
        matched(&s, "http://files.example.net/dl/tool.exe"),
        Some("files.example.net/dl/".into())
    );
    assert_eq!(
        matched(&s, "http://cdn.files.example.net/dl/a/b"),
        Some("files.example.net/dl/".into())
    );
    assert_eq!(matched(&s, "http://files.example.net/dl"), None);
    assert_eq!(matched(&s, "http://files.example.net/other/"), None);
    // An exact URL covers that URL only.
    assert_eq!(
        check(&s, "https://shop.example.org/pay?id=7"),
        Some((Verdict::Suspicious, "shop.example.org/pay?id=7".into()))
    );
    assert_eq!(matched(&s, "https://shop.example.org/pay?id=8"), None);
    assert_eq!(matched(&s, "https://shop.example.org/pay"), None);
    // Neighbours do not match.
    for url in [
        "http://notevil.example/",
        "http://evil.example.attacker.net/",
        "http://evil.exampl/",
        "http://example.net/dl/",
        "http://example/",
    ] {
        assert_eq!(matched(&s, url), None, "{url}");
    }
}

#[test]
fn most_specific_match_wins() {
    let s = snapshot(&[
        ("example.com", EntryKind::Domain, Verdict::Trusted),
        (
            "http://example.com/uploads/",
            EntryKind::Prefix,
            Verdict::Suspicious,
        ),
        (
            "http://example.com/uploads/bad.exe",
            EntryKind::Url,
            Verdict::Malicious,
        ),
        ("cdn.example.com", EntryKind::Domain, Verdict::Known),
    ]);
    assert_eq!(
        check(&s, "http://www.example.com/uploads/bad.exe"),
        Some((Verdict::Malicious, "example.com/uploads/bad.exe".into()))
    );
    assert_eq!(
        check(&s, "http://example.com/uploads/other.exe"),
        Some((Verdict::Suspicious, "example.com/uploads/".into()))
    );
    assert_eq!(
        check(&s, "http://example.com/index.html"),
        Some((Verdict::Trusted, "example.com/".into()))
    );
    // Within one path the longest host wins.
    assert_eq!(
        check(&s, "http://img.cdn.example.com/logo.png"),
        Some((Verdict::Known, "cdn.example.com/".into()))
    );
    // A path entry beats a longer host at a shorter path.
    assert_eq!(
        check(&s, "http://cdn.example.com/uploads/x"),
        Some((Verdict::Suspicious, "example.com/uploads/".into()))
    );
}

#[test]
fn listed_subdomain_does_not_cover_its_parent() {
    let s = snapshot(&[("login.bank.example", EntryKind::Domain, Verdict::Malicious)]);
    assert!(matched(&s, "http://x.login.bank.example/").is_some());
    assert_eq!(matched(&s, "http://bank.example/"), None);
    assert_eq!(matched(&s, "http://www.bank.example/login"), None);
}

#[test]
fn public_suffix_entries_are_refused_and_counted() {
    let mut builder = SnapshotBuilder::new();
    let feed = builder.add_feed(FeedInfo::new("test", "domains", Verdict::Malicious));
    for entry in ["com", "CO.UK.", "github.io", "*.com"] {
        let entry = entry.trim_start_matches("*.");
        assert!(
            builder
                .add_url_entry(feed, entry, EntryKind::Domain, RecordSpec::default())
                .is_err(),
            "{entry}"
        );
    }
    assert!(builder
        .add_url_entry(
            feed,
            "http://github.io/x/",
            EntryKind::Prefix,
            RecordSpec::default()
        )
        .is_err());
    builder
        .add_url_entry(
            feed,
            "evil.github.io",
            EntryKind::Domain,
            RecordSpec::default(),
        )
        .unwrap();
    let (bytes, report) = builder.build().unwrap();
    assert_eq!(report.refused, 5);
    let s = Snapshot::open(bytes).unwrap();
    assert!(matched(&s, "https://evil.github.io/a").is_some());
    assert_eq!(matched(&s, "https://good.github.io/a"), None);
    assert_eq!(matched(&s, "https://www.bbc.co.uk/"), None);
}

#[test]
fn ip_hosts_and_idn() {
    let s = snapshot(&[
        ("195.127.0.11", EntryKind::Domain, Verdict::Malicious),
        (
            "http://[2001:db8::1]/x/",
            EntryKind::Prefix,
            Verdict::Malicious,
        ),
        (
            "b\u{fc}cher.example",
            EntryKind::Domain,
            Verdict::Suspicious,
        ),
    ]);
    for url in [
        "http://3279880203/blah",
        "http://0xc3.0x7f.0.0xb/",
        "http://0303.0177.0.013:80/a",
        "http://195.127.11/",
    ] {
        assert_eq!(matched(&s, url), Some("195.127.0.11/".into()), "{url}");
    }
    // IP hosts are never split into suffixes.
    assert_eq!(matched(&s, "http://1.195.127.0.11/"), None);
    assert_eq!(
        matched(&s, "http://[2001:0DB8:0:0::1]:8080/x/y"),
        Some("[2001:db8::1]/x/".into())
    );
    assert_eq!(
        matched(&s, "https://www.B%C3%9Ccher.example/"),
        Some("xn--bcher-kva.example/".into())
    );
    assert_eq!(
        matched(&s, "https://xn--bcher-kva.example/"),
        Some("xn--bcher-kva.example/".into())
    );
}

#[test]
fn queries_through_the_generic_lookup() {
    let s = snapshot(&[("evil.example", EntryKind::Domain, Verdict::Malicious)]);
    for text in [
        "Sub.EVIL.example.",
        "http://evil.example/a",
        "evil.example/x?y",
    ] {
        let hit = s.lookup(&Query::parse(text).unwrap()).unwrap();
        assert_eq!(
            hit.map(|h| h.matched),
            Some("evil.example/".into()),
            "{text}"
        );
    }
    assert!(s
        .lookup(&Query::parse("example").unwrap())
        .unwrap()
        .is_none());
}

#[test]
fn hostile_inputs_give_an_answer_or_an_error() {
    let s = snapshot(&[("evil.example", EntryKind::Domain, Verdict::Malicious)]);
    let mut canonicalizer = Canonicalizer::new();
    let mut url = CanonicalUrl::default();
    let mut scratch = Expressions::new();
    let mut run = |input: &str| -> Option<String> {
        canonicalizer.canonicalize_into(input, &mut url).ok()?;
        let hit = s.lookup_url(&url, &mut scratch).unwrap();
        hit.map(|h| h.matched)
    };
    let padded = format!("http://evil.example/{}", "a".repeat(100 * 1024));
    assert_eq!(run(&padded), Some("evil.example/".into()));
    let padded_query = format!("http://evil.example/?{}", "%41".repeat(40 * 1024));
    assert_eq!(run(&padded_query), Some("evil.example/".into()));
    let deep = format!("http://evil.example/%{}2F", "25".repeat(50 * 1024));
    assert_eq!(run(&deep), Some("evil.example/".into()));
    let escaped_host = format!("http://%{}65vil.example/", "25".repeat(50 * 1024));
    assert_eq!(run(&escaped_host), Some("evil.example/".into()));
    let above_root = format!("http://evil.example/{}etc/passwd", "../".repeat(30_000));
    assert_eq!(run(&above_root), Some("evil.example/".into()));
    assert_eq!(
        run("http://evil.example/%ff%fe%c0%af?%80"),
        Some("evil.example/".into())
    );
    assert_eq!(run("http://evil.example\u{0}\u{1}/"), None);
    assert_eq!(
        run("\u{7}\u{8}http://evil.example/\u{0}"),
        Some("evil.example/".into())
    );
    assert_eq!(run("http://ev%00il.example/"), None);
    let long_host = format!("http://{}.evil.example/", "a.".repeat(600));
    assert_eq!(run(&long_host), None);
    let many_labels = format!("http://{}evil.example/", "a.".repeat(400));
    assert_eq!(run(&many_labels), Some("evil.example/".into()));
    assert_eq!(run(&"%".repeat(100 * 1024)), None);
    assert_eq!(run(&"\u{fffd}".repeat(30 * 1024)), None);
}

#[test]
fn deep_domain_entries_cover_subdomains_at_any_depth() {
    // Six and more labels: beyond the five host components of Safe Browsing's rule.
    let s = snapshot(&[
        (
            "name.z13.web.core.windows.net",
            EntryKind::Domain,
            Verdict::Malicious,
        ),
        (
            "a.b.c.d.e.f.g.example",
            EntryKind::Domain,
            Verdict::Malicious,
        ),
        (
            "http://p.q.r.s.t.example/kit/",
            EntryKind::Prefix,
            Verdict::Suspicious,
        ),
    ]);
    for (url, want) in [
        (
            "https://www.name.z13.web.core.windows.net/",
            "name.z13.web.core.windows.net/",
        ),
        (
            "https://x.y.name.z13.web.core.windows.net/a/b",
            "name.z13.web.core.windows.net/",
        ),
        (
            "http://1.2.3.4.5.6.7.a.b.c.d.e.f.g.example/",
            "a.b.c.d.e.f.g.example/",
        ),
        (
            "http://www.p.q.r.s.t.example/kit/x.js",
            "p.q.r.s.t.example/kit/",
        ),
    ] {
        assert_eq!(matched(&s, url), Some(want.into()), "{url}");
    }
    assert_eq!(matched(&s, "https://z13.web.core.windows.net/"), None);
    assert_eq!(matched(&s, "https://other.z13.web.core.windows.net/"), None);
    assert_eq!(matched(&s, "http://www.p.q.r.s.t.example/other/"), None);
}

#[test]
fn userinfo_never_hides_the_host() {
    let s = snapshot(&[("listed.example", EntryKind::Domain, Verdict::Malicious)]);
    // The authority's userinfo runs to its last `@`; escapes are never delimiters.
    for url in [
        "http://evil.test%2F@listed.example/",
        "http://evil.test%3F@listed.example/",
        "http://evil.test%5C@listed.example/",
        "http://evil.test%252F@listed.example/",
        "http://evil.test%23@listed.example/",
        "http://a:b%2F@listed.example/",
        "http://a:b@c@listed.example/",
        "http://a%40b:c%3Ad@listed.example:8080/x",
        "https:/listed.example/",
        "http:\\\\www.listed.example\\foo",
        "http:a:b@www.listed.example",
        "https:///listed.example/",
    ] {
        assert_eq!(matched(&s, url), Some("listed.example/".into()), "{url}");
    }
    // What looks like a host inside the userinfo is not the host.
    let s = snapshot(&[("evil.test", EntryKind::Domain, Verdict::Malicious)]);
    assert_eq!(matched(&s, "http://evil.test%2F@listed.example/"), None);
    assert_eq!(matched(&s, "http://evil.test@listed.example/"), None);
}

#[test]
fn bare_hex_prefix_ipv4_parts_are_zero() {
    let s = snapshot(&[("1.0.0.1", EntryKind::Domain, Verdict::Malicious)]);
    for url in [
        "http://1.0x.0x.1/",
        "http://1.0X.0.1/",
        "http://0x1.0x.0x1/",
    ] {
        assert_eq!(matched(&s, url), Some("1.0.0.1/".into()), "{url}");
    }
    assert_eq!(canonicalize("https://0x.0x.0").unwrap().host, "0.0.0.0");
}

/// A snapshot of a blocklist feed and an override (allowlist) feed.
fn with_allowlist(block: &[(&str, EntryKind)], allow: &[(&str, EntryKind)]) -> Snapshot {
    let mut builder = SnapshotBuilder::new();
    let blocklist = builder.add_feed(FeedInfo::new("block", "urls", Verdict::Malicious));
    let mut info = FeedInfo::new("allow", "urls", Verdict::Trusted);
    info.r#override = true;
    let allowlist = builder.add_feed(info);
    for (entry, kind) in block {
        builder
            .add_url_entry(blocklist, entry, *kind, RecordSpec::default())
            .unwrap();
    }
    for (entry, kind) in allow {
        builder
            .add_url_entry(allowlist, entry, *kind, RecordSpec::default())
            .unwrap();
    }
    Snapshot::open(builder.to_bytes().unwrap()).unwrap()
}

#[test]
fn an_override_entry_wins_over_every_entry_it_covers() {
    let s = with_allowlist(
        &[
            ("login.safe.example", EntryKind::Domain),
            ("http://safe.example/dl/", EntryKind::Prefix),
            ("http://cdn.safe.example/dl/a.exe", EntryKind::Url),
            ("http://mixed.example/evil/", EntryKind::Prefix),
            ("other.example", EntryKind::Domain),
        ],
        &[
            ("safe.example", EntryKind::Domain),
            ("www.mixed.example", EntryKind::Domain),
            ("http://other.example/ok/", EntryKind::Prefix),
        ],
    );
    for (url, want) in [
        // Deeper hosts, longer paths and exact URLs under an allowlisted domain.
        ("http://login.safe.example/", "safe.example/"),
        ("http://a.b.login.safe.example/x", "safe.example/"),
        ("http://safe.example/dl/tool.exe", "safe.example/"),
        ("http://cdn.safe.example/dl/a.exe", "safe.example/"),
        // An allowlisted prefix covers the entries under it.
        ("http://other.example/ok/x", "other.example/ok/"),
    ] {
        assert_eq!(
            check(&s, url),
            Some((Verdict::Trusted, want.into())),
            "{url}"
        );
    }
    // Entries the override does not cover keep their verdict: `mixed.example/evil/`
    // covers more than `www.mixed.example`.
    assert_eq!(
        check(&s, "http://www.mixed.example/evil/x"),
        Some((Verdict::Malicious, "mixed.example/evil/".into()))
    );
    assert_eq!(
        check(&s, "http://other.example/bad/"),
        Some((Verdict::Malicious, "other.example/".into()))
    );
}

// Property tests.

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?"
}

fn domain() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(label(), 1..4),
        prop::sample::select(vec!["com", "net", "org", "example", "test"]),
    )
        .prop_map(|(labels, tld)| format!("{}.{tld}", labels.join(".")))
}

fn segments() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[a-zA-Z0-9_~.-]{1,8}", 0..5).prop_map(|segments| {
        segments
            .into_iter()
            .filter(|s| s != "." && s != "..")
            .collect()
    })
}

fn query() -> impl Strategy<Value = Option<String>> {
    prop::option::of("[a-z0-9=&]{0,10}")
}

/// Escapes some unreserved characters (chosen by `mask`) as `%XX`, in either hex case.
fn escape_some(text: &str, mask: u64) -> String {
    text.chars()
        .enumerate()
        .map(|(i, c)| {
            if c.is_ascii_alphanumeric() && mask >> (i % 64) & 1 == 1 {
                if mask >> ((i + 7) % 64) & 1 == 1 {
                    format!("%{:02x}", c as u32)
                } else {
                    format!("%{:02X}", c as u32)
                }
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn mixed_case(text: &str, mask: u64) -> String {
    text.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// A URL-ish string built from the pieces canonicalization cares about.
fn urlish() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "http://",
        "HTTPS://",
        "ftp://",
        "//",
        "/",
        "\\",
        ".",
        "..",
        "./",
        "../",
        "%",
        "%25",
        "%2e",
        "%2F",
        "%3f",
        "%23",
        "%00",
        "%ff",
        "%c3%bc",
        "?",
        "#",
        "@",
        ":",
        ":80",
        "[",
        "]",
        "[::1]",
        "0x7f",
        "1.2.3.4",
        "3279880203",
        "a",
        "B",
        "xn--",
        "\u{fc}",
        "\u{3002}",
        " ",
        "\t",
        "\n",
        "\u{1}",
        "com",
        "example",
        "~",
        "+",
        "&",
        "=",
    ]);
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn canonicalization_is_idempotent(input in prop_oneof![urlish(), any::<String>()]) {
        if let Ok(url) = canonicalize(&input) {
            prop_assert!(url.host.is_ascii() && url.path.is_ascii());
            prop_assert!(url.path.starts_with('/'));
            let again = canonicalize(&url.to_string());
            prop_assert_eq!(again, Ok(url.clone()), "input {:?}", input);
            let mut expressions = Expressions::new();
            expressions.fill(&url);
            prop_assert!(!expressions.is_empty() && expressions.len() <= 30);
        }
    }

    #[test]
    fn reused_canonicalizer_agrees(inputs in prop::collection::vec(urlish(), 1..8)) {
        let mut canonicalizer = Canonicalizer::new();
        let mut url = CanonicalUrl::default();
        for input in &inputs {
            let fresh = canonicalize(input);
            let reused = canonicalizer.canonicalize_into(input, &mut url).map(|()| url.clone());
            prop_assert_eq!(fresh, reused);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn equivalent_spellings_get_the_same_verdict(
        host in domain(),
        path in segments(),
        query in query(),
        kind in 0..3u8,
        case_mask in any::<u64>(),
        escape_mask in any::<u64>(),
        dot_segment in 0..4u8,
        port in any::<bool>(),
        trailing_dot in any::<bool>(),
        userinfo in any::<bool>(),
        https in any::<bool>(),
    ) {
        let path_text = format!("/{}", path.join("/"));
        let query_text = query.as_ref().map(|q| format!("?{q}")).unwrap_or_default();
        let scheme = if https { "https" } else { "http" };
        let plain = format!("{scheme}://{host}{path_text}{query_text}");
        let (entry, entry_kind) = match kind {
            0 => (host.clone(), EntryKind::Domain),
            1 => {
                let dir = match path_text.rfind('/') {
                    Some(i) => &path_text[..=i],
                    None => "/",
                };
                (format!("{scheme}://{host}{dir}"), EntryKind::Prefix)
            }
            _ => (plain.clone(), EntryKind::Url),
        };
        let s = snapshot(&[(entry.as_str(), entry_kind, Verdict::Malicious)]);
        let want = check(&s, &plain);
        prop_assert!(want.is_some(), "{} does not match its own entry {}", plain, entry);

        // The same URL written differently.
        let mut written_host = mixed_case(&escape_some(&host, escape_mask), case_mask);
        if trailing_dot {
            written_host.push('.');
        }
        let written_path = match dot_segment {
            0 => escape_some(&path_text, escape_mask.rotate_left(17)),
            1 => format!("/./{}", &path_text[1..]),
            2 => format!("/zz/..{path_text}"),
            _ => path_text.replace('/', "//"),
        };
        let authority = format!(
            "{}{}{}",
            if userinfo { "user:pw@" } else { "" },
            written_host,
            if port { if https { ":443" } else { ":80" } } else { "" },
        );
        let variant = format!(
            "{}://{authority}{written_path}{query_text}#frag",
            mixed_case(scheme, case_mask.rotate_left(5))
        );
        prop_assert_eq!(check(&s, &variant), want.clone(), "variant {}", variant);

        // Unlisted neighbours never match a domain entry.
        if entry_kind == EntryKind::Domain {
            let sibling = format!("{scheme}://{host}.evil.net{path_text}");
            prop_assert_eq!(check(&s, &sibling), None, "sibling {}", sibling);
            let glued = format!("{scheme}://x{host}{path_text}");
            prop_assert_eq!(check(&s, &glued), None, "glued {}", glued);
            // A listed subdomain does not make its parent match.
            let child = snapshot(&[(format!("sub.{host}").as_str(), EntryKind::Domain, Verdict::Malicious)]);
            prop_assert_eq!(check(&child, &plain), None, "parent {}", plain);
            let grandchild = format!("{scheme}://a.sub.{host}/");
            prop_assert!(check(&child, &grandchild).is_some());
        }
    }
}
