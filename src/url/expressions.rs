//! Host suffix × path prefix expressions of a canonical URL.

use super::CanonicalUrl;

/// At most 5 hosts × 6 paths.
pub const MAX_EXPRESSIONS: usize = 30;
const MAX_HOSTS: usize = 5;
const MAX_PATHS: usize = 6;

/// Reverses the order of a host's labels: `www.example.com` -> `com.example.www`.
pub fn reverse_host(host: &str) -> String {
    if host.starts_with('[') {
        return host.to_string();
    }
    let mut out = String::with_capacity(host.len());
    for (i, label) in host.rsplit('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(label);
    }
    out
}

fn is_ip_literal(host: &str) -> bool {
    host.starts_with('[')
        || (host.split('.').count() == 4 && host.split('.').all(|l| l.parse::<u8>().is_ok()))
}

/// The lookup keys of one URL, most specific first, written into one buffer.
#[derive(Debug, Default)]
pub struct Expressions {
    buf: Vec<u8>,
    ends: Vec<(usize, usize)>,
}

impl Expressions {
    /// Empty; reuse with [`Expressions::fill`] to avoid allocating per URL.
    pub fn new() -> Self {
        Expressions::default()
    }

    /// Computes the expressions of `url`, replacing any previous contents.
    pub fn fill(&mut self, url: &CanonicalUrl) {
        self.buf.clear();
        self.ends.clear();
        let reversed = reverse_host(&url.host);
        // Host suffixes as lengths of reversed-host prefixes, longest first.
        let mut hosts: [usize; MAX_HOSTS] = [0; MAX_HOSTS];
        let mut host_count = 0;
        hosts[host_count] = reversed.len();
        host_count += 1;
        if !is_ip_literal(&url.host) {
            let labels: Vec<usize> = reversed.match_indices('.').map(|(i, _)| i).collect();
            // Suffixes of at most 5 labels, at least 2 labels (never the bare TLD).
            let total_labels = labels.len() + 1;
            let mut n = total_labels.min(5);
            if n == total_labels {
                n -= 1;
            }
            while n >= 2 && host_count < MAX_HOSTS {
                hosts[host_count] = labels[n - 1];
                host_count += 1;
                n -= 1;
            }
        }
        // Paths, most specific first.
        let mut paths: Vec<String> = Vec::with_capacity(MAX_PATHS);
        if let Some(q) = &url.query {
            paths.push(format!("{}?{}", url.path, q));
        }
        paths.push(url.path.clone());
        let mut prefixes: Vec<&str> = Vec::new();
        for (i, _) in url.path.match_indices('/') {
            prefixes.push(&url.path[..=i]);
            if prefixes.len() == 4 {
                break;
            }
        }
        for p in prefixes.into_iter().rev() {
            if !paths.iter().any(|q| q == p) {
                paths.push(p.to_string());
            }
        }
        for path in &paths {
            for &h in &hosts[..host_count] {
                let start = self.buf.len();
                self.buf.extend_from_slice(&reversed.as_bytes()[..h]);
                self.buf.extend_from_slice(path.as_bytes());
                self.ends.push((start, self.buf.len()));
            }
        }
    }

    /// Number of expressions.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The FST keys (reversed host order), most specific first.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.ends.iter().map(|&(s, e)| &self.buf[s..e])
    }
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
    fn safe_browsing_example() {
        let mut got = exprs("http://a.b.c/1/2.html?param=1");
        got.sort();
        let mut want = vec![
            "a.b.c/1/2.html?param=1",
            "a.b.c/1/2.html",
            "a.b.c/",
            "a.b.c/1/",
            "b.c/1/2.html?param=1",
            "b.c/1/2.html",
            "b.c/",
            "b.c/1/",
        ];
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn at_most_thirty_and_ip_hosts_not_split() {
        assert!(exprs("http://a.b.c.d.e.f.g/1/2/3/4/5/6?x").len() <= MAX_EXPRESSIONS);
        assert_eq!(exprs("http://1.2.3.4/1/"), vec!["1.2.3.4/1/", "1.2.3.4/"]);
    }
}
