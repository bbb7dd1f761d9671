//! URL canonicalization on arbitrary input: it never panics, its output is ASCII and a
//! fixed point, a reused `Canonicalizer` agrees with a fresh one, and every canonical URL
//! yields between 1 and 30 expressions.
//!
//! ```text
//! cargo +nightly fuzz run canonicalize
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use repute::url::{canonicalize, CanonicalUrl, Canonicalizer, Expressions, MAX_EXPRESSIONS};

fuzz_target!(|data: &[u8]| {
    // The API takes `&str`; invalid UTF-8 reaches it as percent-escapes, which the lossy
    // conversion does not produce, so both readings of the bytes are tried.
    let lossy = String::from_utf8_lossy(data);
    check(&lossy);
    if let Ok(text) = std::str::from_utf8(data) {
        let escaped: String = text.bytes().map(|b| format!("%{b:02x}")).collect();
        check(&escaped);
    }
});

fn check(input: &str) {
    let fresh = canonicalize(input);
    let mut canonicalizer = Canonicalizer::new();
    let mut reused = CanonicalUrl::default();
    // Leave something in the buffers first.
    let _ = canonicalizer.canonicalize_into("http://warm.example/a/b?c", &mut reused);
    let again = canonicalizer
        .canonicalize_into(input, &mut reused)
        .map(|()| reused.clone());
    assert_eq!(fresh, again, "a reused canonicalizer disagrees on {input:?}");

    let Ok(url) = fresh else { return };
    assert!(url.scheme.is_ascii() && url.host.is_ascii() && url.path.is_ascii());
    assert!(url.query.as_deref().is_none_or(|q| q.is_ascii()));
    assert!(url.path.starts_with('/'));
    assert!(!url.host.is_empty());

    let text = url.to_string();
    assert_eq!(
        canonicalize(&text).as_ref(),
        Ok(&url),
        "not a fixed point: {input:?} -> {text:?}"
    );

    let mut expressions = Expressions::new();
    expressions.fill(&url);
    assert!((1..=MAX_EXPRESSIONS).contains(&expressions.len()));
    assert!(expressions.keys().all(|k| !k.is_empty()));
}
