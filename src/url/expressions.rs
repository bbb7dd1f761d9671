//! Host suffix × path prefix expressions of a canonical URL.
//!
//! A URL is looked up under these hosts:
//!
//! - the exact host;
//! - every suffix formed by successively removing the leading label, never the bare
//!   top-level domain, never a suffix that is itself a known public suffix such as `co.uk`
//!   or `github.io`, which no entry can list (see [`super::entry_expression`]), nor one
//!   that looks like an IP address; an IP address gives only itself.
//!
//! Safe Browsing's rules take at most 5 hosts (suffixes of the last 5 labels), a bound for
//! hashed-prefix queries. Here a listed domain covers its subdomains at any depth: an entry
//! `name.z13.web.core.windows.net` matches `www.name.z13.web.core.windows.net`, so every
//! suffix is looked up (a DNS name has at most 127 labels; the host length bound keeps the
//! count small).
//!
//! and at most 6 paths: the full path with the query, the full path, and up to 4 prefixes
//! formed from the root by appending one segment at a time (`/`, `/a/`, `/a/b/`, `/a/b/c/`).
//! The expressions are ordered most specific first: by path (full with query, full, then
//! the longest prefix down to `/`), then, within one path, by host (longest first).

use super::CanonicalUrl;

/// At most 6 paths per host.
const MAX_PATHS: usize = 6;
/// Path prefixes from the root, `/` included.
const MAX_PREFIXES: usize = 4;

/// Reverses the order of a host's labels: `www.example.com` -> `com.example.www`.
/// IPv6 literals are returned as they are.
pub fn reverse_host(host: &str) -> String {
    let mut out = Vec::with_capacity(host.len());
    reverse_host_into(host.as_bytes(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// [`reverse_host`] into a reused buffer.
pub(crate) fn reverse_host_into(host: &[u8], out: &mut Vec<u8>) {
    out.clear();
    if host.starts_with(b"[") {
        out.extend_from_slice(host);
        return;
    }
    for (i, label) in host.rsplit(|&b| b == b'.').enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        out.extend_from_slice(label);
    }
}

/// Whether a canonical host is an IP address (canonical IPv4 is dotted decimal; IPv6 is
/// bracketed).
pub(crate) fn is_ip_host(host: &[u8]) -> bool {
    if host.starts_with(b"[") {
        return true;
    }
    let mut parts = 0;
    for part in host.split(|&b| b == b'.') {
        parts += 1;
        let numeric = !part.is_empty() && part.len() <= 3 && part.iter().all(u8::is_ascii_digit);
        if parts > 4
            || !numeric
            || part.iter().fold(0u32, |v, &d| v * 10 + u32::from(d - b'0')) > 255
        {
            return false;
        }
    }
    parts == 4
}

/// Whether `host` is exactly a public suffix known to the public suffix list (`com`,
/// `co.uk`, `github.io`). Unknown single labels such as `localhost` are not.
pub fn is_public_suffix(host: &str) -> bool {
    let bytes = host.as_bytes();
    !is_ip_host(bytes)
        && psl::suffix(bytes).is_some_and(|s| s.is_known() && s.as_bytes().len() == bytes.len())
}

/// The lookup keys of one URL, most specific first, written into reused buffers: after the
/// first few URLs, [`Expressions::fill`] does not allocate.
///
/// Every expression of one host is a prefix of that host followed by the whole path and
/// query, so only that one string per host is written, and an expression is a host's
/// string cut after one of the path lengths.
#[derive(Debug, Default, Clone)]
pub struct Expressions {
    /// One string per host, back to back: the host (reversed), the path, `?` and the query.
    /// The first host is the whole reversed host, and every other one a prefix of it.
    buf: Vec<u8>,
    /// Each host's string, as where it starts in `buf` and the host's length, longest first.
    hosts: Vec<(usize, usize)>,
    /// Lengths of the paths (prefixes of `path?query`), most specific first.
    paths: [usize; MAX_PATHS],
    /// How many of `paths` are used.
    path_count: usize,
    /// Label boundaries of the reversed host.
    suffix_ends: Vec<usize>,
    /// Per-expression scratch for lookups (filter hashes).
    pub(crate) hashes: Vec<crate::filter::KeyHash>,
}

impl Expressions {
    /// Empty; reuse with [`Expressions::fill`] to avoid allocating per URL.
    pub fn new() -> Self {
        Expressions::default()
    }

    /// Computes the expressions of `url`, replacing any previous contents.
    pub fn fill(&mut self, url: &CanonicalUrl) {
        self.buf.clear();
        self.hosts.clear();
        self.suffix_ends.clear();
        let host = url.host.as_bytes();
        let path = url.path.as_bytes();
        let query = url.query.as_deref().map(str::as_bytes);

        // The reversed host, at the start of `buf`.
        let ip = host.last().is_some_and(u8::is_ascii_digit) && is_ip_host(host)
            || host.starts_with(b"[");
        if ip {
            reverse_host_into(host, &mut self.buf);
        } else {
            // The reversed host and its label boundaries in one pass from the end:
            // `suffix_ends[k]` is the length of the suffix of k + 1 labels.
            let mut end = host.len();
            for i in (0..host.len()).rev() {
                if host[i] == b'.' {
                    self.buf.extend_from_slice(&host[i + 1..end]);
                    self.suffix_ends.push(self.buf.len());
                    self.buf.push(b'.');
                    end = i;
                }
            }
            self.buf.extend_from_slice(&host[..end]);
        }
        // The first host's string: the whole host, the path and the query.
        let host_len = self.buf.len();
        self.buf.extend_from_slice(path);
        if let Some(query) = query {
            self.buf.push(b'?');
            self.buf.extend_from_slice(query);
        }
        let tail = host_len..self.buf.len();
        self.hosts.push((0, host_len));

        // The other hosts, longest first: every suffix but the bare top-level label, a
        // public suffix or an IP look-alike, each written as a copy of the start of the
        // first host's string and of its path and query.
        let labels = self.suffix_ends.len();
        if labels > 1 {
            // Only suffixes no longer than the host's own public suffix can be one.
            let public_labels = psl::suffix(host)
                .filter(psl::Suffix::is_known)
                .map_or(1, |s| {
                    s.as_bytes().iter().filter(|&&b| b == b'.').count() + 1
                });
            // A numeric top-level label: some suffixes may look like IP addresses, which
            // only ever match exactly.
            let numeric_tld = self.buf.first().is_some_and(u8::is_ascii_digit);
            for k in (1..labels).rev() {
                let len = self.suffix_ends[k];
                let suffix = &host[host.len() - len..];
                // The suffix as long as the host's public suffix is that suffix; a shorter
                // one needs its own answer (`a.b.c` listed, `b.c` perhaps not).
                if (k + 1 == public_labels
                    || (k + 1 < public_labels && is_public_suffix_bytes(suffix)))
                    || (numeric_tld && is_ip_host(suffix))
                {
                    continue;
                }
                let start = self.buf.len();
                self.buf.extend_from_within(..len);
                self.buf.extend_from_within(tail.clone());
                self.hosts.push((start, len));
            }
        }

        // Paths, as lengths of prefixes of `path?query`, most specific first.
        let mut count = 0;
        if let Some(query) = query {
            self.paths[count] = path.len() + 1 + query.len();
            count += 1;
        }
        self.paths[count] = path.len();
        count += 1;
        let mut prefixes = [0usize; MAX_PREFIXES];
        let mut prefix_count = 0;
        for (i, &b) in path.iter().enumerate() {
            if b == b'/' {
                prefixes[prefix_count] = i + 1;
                prefix_count += 1;
                if prefix_count == MAX_PREFIXES {
                    break;
                }
            }
        }
        for &len in prefixes[..prefix_count].iter().rev() {
            if len != path.len() {
                self.paths[count] = len;
                count += 1;
            }
        }
        self.path_count = count;
    }

    /// Number of hosts each path is combined with: expression `i` has path number
    /// `i / host_count()` (most specific first) and host number `i % host_count()`
    /// (longest first).
    pub fn host_count(&self) -> usize {
        self.hosts.len().max(1)
    }

    /// Number of expressions.
    pub fn len(&self) -> usize {
        self.path_count * self.hosts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `visit` with every key, most specific first (as [`Expressions::keys`]).
    #[inline]
    pub(crate) fn for_each_key(&self, mut visit: impl FnMut(&[u8])) {
        for &p in &self.paths[..self.path_count] {
            for &(start, host) in &self.hosts {
                visit(&self.buf[start..start + host + p]);
            }
        }
    }

    /// Key number `index` (in the order of [`Expressions::keys`]), if there is one.
    pub(crate) fn key(&self, index: usize) -> Option<&[u8]> {
        let hosts = self.hosts.len();
        let p = *self.paths[..self.path_count].get(index.checked_div(hosts)?)?;
        let (start, host) = self.hosts[index % hosts];
        self.buf.get(start..start + host + p)
    }

    /// The FST keys (reversed host order), most specific first.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.paths[..self.path_count].iter().flat_map(move |&p| {
            self.hosts
                .iter()
                .map(move |&(start, host)| &self.buf[start..start + host + p])
        })
    }
}

fn is_public_suffix_bytes(name: &[u8]) -> bool {
    psl::suffix(name).is_some_and(|s| s.is_known() && s.as_bytes().len() == name.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::{canonicalize, key_expression};

    fn exprs(url: &str) -> Vec<String> {
        let mut e = Expressions::new();
        e.fill(&canonicalize(url).unwrap());
        e.keys().map(key_expression).collect()
    }

    #[test]
    fn safe_browsing_examples_in_order() {
        assert_eq!(
            exprs("http://a.b.c/1/2.html?param=1"),
            [
                "a.b.c/1/2.html?param=1",
                "b.c/1/2.html?param=1",
                "a.b.c/1/2.html",
                "b.c/1/2.html",
                "a.b.c/1/",
                "b.c/1/",
                "a.b.c/",
                "b.c/",
            ]
        );
        assert_eq!(
            exprs("http://a.b.c.d.e.f.g/1.html"),
            [
                "a.b.c.d.e.f.g/1.html",
                "b.c.d.e.f.g/1.html",
                "c.d.e.f.g/1.html",
                "d.e.f.g/1.html",
                "e.f.g/1.html",
                "f.g/1.html",
                "a.b.c.d.e.f.g/",
                "b.c.d.e.f.g/",
                "c.d.e.f.g/",
                "d.e.f.g/",
                "e.f.g/",
                "f.g/",
            ]
        );
        assert_eq!(exprs("http://1.2.3.4/1/"), ["1.2.3.4/1/", "1.2.3.4/"]);
    }

    #[test]
    fn more_shapes() {
        let mut got = exprs("http://a.b.c/1/2/3/4/5/");
        got.sort();
        let mut want = vec![
            "a.b.c/1/2/3/4/5/",
            "a.b.c/1/2/3/",
            "a.b.c/1/2/",
            "a.b.c/1/",
            "a.b.c/",
            "b.c/1/2/3/4/5/",
            "b.c/1/2/3/",
            "b.c/1/2/",
            "b.c/1/",
            "b.c/",
        ];
        want.sort();
        assert_eq!(got, want);
        assert_eq!(
            exprs("http://[2001:470:1:18::114]/a/b"),
            [
                "[2001:470:1:18::114]/a/b",
                "[2001:470:1:18::114]/a/",
                "[2001:470:1:18::114]/"
            ]
        );
        assert_eq!(exprs("http://a.b/"), ["a.b/"]);
        assert_eq!(exprs("http://b/"), ["b/"]);
        assert_eq!(exprs("http://a.b/q?"), ["a.b/q?", "a.b/q", "a.b/"]);
        assert_eq!(exprs("http://a.b/?x"), ["a.b/?x", "a.b/"]);
    }

    #[test]
    fn public_suffixes_are_skipped() {
        assert_eq!(
            exprs("http://www.bbc.co.uk/"),
            ["www.bbc.co.uk/", "bbc.co.uk/"]
        );
        assert_eq!(
            exprs("http://user.github.io/x"),
            ["user.github.io/x", "user.github.io/"]
        );
        assert!(is_public_suffix("com"));
        assert!(is_public_suffix("co.uk"));
        assert!(is_public_suffix("github.io"));
        assert!(!is_public_suffix("example.com"));
        assert!(!is_public_suffix("localhost"));
        assert!(!is_public_suffix("1.2.3.4"));
    }

    #[test]
    fn every_host_suffix_and_six_paths() {
        let all = exprs("http://a.b.c.d.e.f.g/1/2/3/4/5/6?x");
        assert_eq!(all.len(), 6 * 6);
        assert_eq!(all[0], "a.b.c.d.e.f.g/1/2/3/4/5/6?x");
        assert_eq!(all[1], "b.c.d.e.f.g/1/2/3/4/5/6?x");
        assert_eq!(all[35], "f.g/");
    }

    #[test]
    fn fill_reuses_its_buffers() {
        let mut e = Expressions::new();
        e.fill(&canonicalize("http://a.b.c.d.e.f/1/2/3/4/5.html?q=1").unwrap());
        let (buf, hosts) = (e.buf.as_ptr(), e.hosts.as_ptr());
        for url in [
            "http://x.y.z/a/b?c",
            "http://1.2.3.4/",
            "http://q.example.com/p/",
        ] {
            e.fill(&canonicalize(url).unwrap());
            assert_eq!((e.buf.as_ptr(), e.hosts.as_ptr()), (buf, hosts), "{url}");
        }
    }

    #[test]
    fn ip_hosts() {
        assert!(is_ip_host(b"1.2.3.4"));
        assert!(is_ip_host(b"[::1]"));
        assert!(!is_ip_host(b"256.1.1.1"));
        assert!(!is_ip_host(b"1.2.3"));
        assert!(!is_ip_host(b"1.2.3.4.5"));
        assert!(!is_ip_host(b"a.2.3.4"));
        assert_eq!(reverse_host("www.example.com"), "com.example.www");
        assert_eq!(reverse_host("[::1]"), "[::1]");
    }

    /// The expressions by their definition, with strings: every host suffix but the bare
    /// top-level label, public suffixes and IP look-alikes, times the paths.
    fn reference(url: &crate::url::CanonicalUrl) -> Vec<Vec<u8>> {
        let host = url.host.as_str();
        let mut hosts = vec![host.to_string()];
        if !is_ip_host(host.as_bytes()) {
            let labels: Vec<&str> = host.split('.').collect();
            let numeric_tld = labels
                .last()
                .is_some_and(|l| l.starts_with(|c: char| c.is_ascii_digit()));
            // The host's own public suffix, which under an exception rule need not be one
            // on its own (`city.kawasaki.jp` has `kawasaki.jp`, by `!city.kawasaki.jp`).
            let own = psl::suffix(host.as_bytes())
                .filter(psl::Suffix::is_known)
                .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned());
            for n in (2..labels.len()).rev() {
                let suffix = labels[labels.len() - n..].join(".");
                if is_public_suffix(&suffix)
                    || own.as_deref() == Some(suffix.as_str())
                    || (numeric_tld && is_ip_host(suffix.as_bytes()))
                {
                    continue;
                }
                hosts.push(suffix);
            }
        }
        let mut paths = Vec::new();
        if let Some(q) = &url.query {
            paths.push(format!("{}?{q}", url.path));
        }
        paths.push(url.path.clone());
        let mut prefixes: Vec<String> = url
            .path
            .match_indices('/')
            .take(MAX_PREFIXES)
            .map(|(i, _)| url.path[..=i].to_string())
            .filter(|p| *p != url.path)
            .collect();
        prefixes.reverse();
        paths.extend(prefixes);
        let mut keys = Vec::new();
        for p in &paths {
            for h in &hosts {
                keys.push(crate::url::expression_key(&format!("{h}{p}")));
            }
        }
        keys
    }

    proptest::proptest! {
        #[test]
        fn reverse_host_reverses_labels(host in "[a-c.]{0,12}") {
            let mut want: Vec<&str> = host.split('.').collect();
            want.reverse();
            proptest::prop_assert_eq!(reverse_host(&host), want.join("."));
        }
    }

    proptest::proptest! {
        #[test]
        fn fill_agrees_with_the_definition(
            labels in proptest::collection::vec(proptest::sample::select(vec![
                "com", "co", "uk", "github", "io", "a", "b", "www", "1", "22", "br", "jp",
                "kawasaki", "city", "blogspot", "appspot", "ck", "x-y", "255",
            ]), 1..7),
            segments in proptest::collection::vec("[a-z.]{0,3}", 0..7),
            slash in proptest::bool::ANY,
            query in proptest::option::of("[a-z=&/?]{0,6}"),
        ) {
            let mut input = format!("http://{}", labels.join("."));
            for s in &segments {
                input.push('/');
                input.push_str(s);
            }
            if slash {
                input.push('/');
            }
            if let Some(q) = &query {
                input.push('?');
                input.push_str(q);
            }
            let Ok(url) = canonicalize(&input) else { return Ok(()); };
            let mut e = Expressions::new();
            e.fill(&url);
            let got: Vec<Vec<u8>> = e.keys().map(<[u8]>::to_vec).collect();
            proptest::prop_assert_eq!(got.len(), e.len());
            for (i, key) in got.iter().enumerate() {
                proptest::prop_assert_eq!(e.key(i), Some(&key[..]));
            }
            proptest::prop_assert_eq!(e.key(got.len()), None);
            let mut visited = Vec::new();
            e.for_each_key(|key| visited.push(key.to_vec()));
            proptest::prop_assert_eq!(&visited, &got);
            proptest::prop_assert_eq!(got, reference(&url), "{}", input);
        }
    }
}
