//! [`Generator`]: realistic single values (digests, domains, URLs, threat names, file paths)
//! drawn from a seeded PRNG.

use std::fmt::Write as _;

use crate::random::Xoshiro256StarStar;

/// Top-level domains, with weights: `com` dominates real feeds, the rest share the remainder.
const TLDS: &[(&str, u32)] = &[
    ("com", 30),
    ("net", 8),
    ("org", 6),
    ("info", 5),
    ("ru", 6),
    ("cn", 4),
    ("co.uk", 3),
    ("xyz", 6),
    ("top", 6),
    ("io", 3),
    ("biz", 3),
    ("online", 3),
    ("site", 3),
    ("de", 2),
    ("br", 2),
    ("in", 2),
    ("su", 1),
    ("pw", 1),
    ("club", 2),
    ("shop", 2),
];

/// Words that phishing and malware domains are commonly assembled from.
const DOMAIN_WORDS: &[&str] = &[
    "secure", "account", "verify", "update", "login", "signin", "pay", "bank", "cloud", "office",
    "docs", "mail", "support", "service", "online", "free", "soft", "download", "track", "ads",
    "stat", "shop", "store", "wallet", "invest", "bonus", "prize", "delivery", "parcel", "post",
    "tax", "refund", "portal", "auth", "id", "web", "app", "files", "share", "drive", "cdn",
    "media", "news", "promo", "gift", "crypto", "coin", "trade", "alert", "notice",
];

/// Subdomain labels seen in front of malicious registered domains.
const SUBDOMAINS: &[&str] = &[
    "www", "login", "secure", "cdn", "mail", "update", "api", "static", "dl", "files", "account",
    "portal", "m", "my", "auth", "web", "img", "ns1", "panel", "c2",
];

const CONSONANTS: &[&str] = &[
    "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "st",
    "tr", "ch", "gr", "pl", "sh", "x",
];
const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ea", "io", "y"];

const ALPHANUMERIC: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Path segments of malware-distribution URLs.
const PATH_WORDS: &[&str] = &[
    "wp-content",
    "wp-includes",
    "uploads",
    "files",
    "images",
    "img",
    "bins",
    "download",
    "dl",
    "docs",
    "invoice",
    "admin",
    "js",
    "css",
    "tmp",
    "cgi-bin",
    "data",
    "public",
    "assets",
    "media",
    "update",
    "secure",
    "login",
    "2024",
    "2025",
    "2026",
    "01",
    "07",
    "12",
];

/// File names that URL feeds are full of.
const FILE_NAMES: &[&str] = &[
    "invoice.exe",
    "payload.exe",
    "setup.exe",
    "update.exe",
    "document.doc",
    "statement.xls",
    "scan.pdf.exe",
    "invoice.zip",
    "report.js",
    "loader.dll",
    "index.php",
    "login.php",
    "verify.html",
    "Mozi.m",
    "Mozi.a",
    "i",
    "x86",
    "mips",
    "arm7",
    "bot.sh",
    "install.sh",
    "payload.bin",
    "order.vbs",
    "shipping.lnk",
    "receipt.iso",
];

/// Extensions for generated file names.
const FILE_EXTENSIONS: &[&str] = &[
    "exe", "dll", "zip", "rar", "js", "vbs", "hta", "doc", "docm", "xls", "xlsm", "pdf", "apk",
    "sh", "bin", "msi", "iso", "ps1", "jar", "php", "html",
];

const PLATFORMS: &[&str] = &[
    "Win32", "Win64", "Linux", "Android", "MSIL", "JS", "VBS", "HTML", "PDF", "Doc", "OSX",
];
const THREAT_TYPES: &[&str] = &[
    "Trojan",
    "Downloader",
    "Dropper",
    "Backdoor",
    "Ransom",
    "Worm",
    "Spyware",
    "Adware",
    "PUA",
    "Exploit",
    "Miner",
    "Stealer",
    "Phishing",
];
const FAMILIES: &[&str] = &[
    "Agent",
    "Generic",
    "AgentTesla",
    "Emotet",
    "Mirai",
    "Qakbot",
    "Formbook",
    "Lokibot",
    "Remcos",
    "Tofsee",
    "Zbot",
    "Dridex",
    "AsyncRAT",
    "RedLine",
    "Gafgyt",
    "Mozi",
    "XMRig",
    "NjRAT",
    "IcedID",
    "Raccoon",
    "SnakeKeylogger",
    "GuLoader",
    "Vidar",
    "CobaltStrike",
    "Glupteba",
];
const VARIANTS: &[&str] = &["A", "B", "C", "gen", "Gen", "MTB", "dam", "AA"];

/// Categories of records, as repute's records name them.
pub const CATEGORIES: &[&str] = &[
    "trojan",
    "ransomware",
    "phishing",
    "malware_download",
    "backdoor",
    "worm",
    "spyware",
    "adware",
    "pua",
    "miner",
    "botnet_cc",
    "exploit",
    "stealer",
];

/// Directories of files a Linux distribution ships (paths relative to `/`, as in dpkg's md5sums).
const DISTRIBUTION_DIRS: &[&str] = &[
    "usr/bin",
    "usr/sbin",
    "usr/lib/x86_64-linux-gnu",
    "usr/libexec",
    "usr/share/doc",
    "usr/share/man/man1",
    "usr/share/man/man8",
    "usr/share/locale",
    "usr/lib/python3/dist-packages",
    "usr/share",
    "etc",
    "lib/systemd/system",
];

/// A deterministic source of realistic values, seeded with a `u64`.
///
/// Every method draws from the same stream, so a given seed and sequence of calls always
/// returns the same values, on any platform, with any version of any other crate.
///
/// ```
/// use repute_gen::Generator;
///
/// let mut a = Generator::new(42);
/// let mut b = Generator::new(42);
/// assert_eq!(a.sha256(), b.sha256());
/// assert_eq!(a.url(), b.url());
/// assert_eq!(a.md5_hex().len(), 32);
/// ```
#[derive(Debug, Clone)]
pub struct Generator {
    rng: Xoshiro256StarStar,
}

/// Lowercase hex of `bytes`.
///
/// ```
/// assert_eq!(repute_gen::to_hex(&[0x00, 0xab, 0x7f]), "00ab7f");
/// ```
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

impl Generator {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Generator {
            rng: Xoshiro256StarStar::from_seed(seed),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A uniform value in `0..n`; 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        self.rng.below(n)
    }

    /// A uniform value in `low..=high` (`low` when `high < low`).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        match (high - low).checked_add(1) {
            Some(span) => low + self.below(span),
            None => self.next_u64(),
        }
    }

    /// True with probability `percent`/100 (always for 100 or more).
    pub fn percent(&mut self, percent: u32) -> bool {
        self.below(100) < u64::from(percent)
    }

    /// A uniformly chosen element of `items`, or `None` when it is empty.
    pub fn choose<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        let i = self.below(items.len() as u64);
        items.get(usize::try_from(i).ok()?)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        // Only called with the non-empty constant tables above.
        let i = self.below(items.len() as u64) as usize;
        items[i]
    }

    fn pick_weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        let total: u64 = items.iter().map(|&(_, w)| u64::from(w)).sum();
        let mut r = self.below(total);
        for &(item, weight) in items {
            if r < u64::from(weight) {
                return item;
            }
            r -= u64::from(weight);
        }
        items[items.len() - 1].0
    }

    /// Fills `out` with random bytes.
    pub fn fill_bytes(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    /// A random 16-byte MD5 digest.
    pub fn md5(&mut self) -> [u8; 16] {
        let mut d = [0; 16];
        self.fill_bytes(&mut d);
        d
    }

    /// A random 20-byte SHA-1 digest.
    pub fn sha1(&mut self) -> [u8; 20] {
        let mut d = [0; 20];
        self.fill_bytes(&mut d);
        d
    }

    /// A random 32-byte SHA-256 digest.
    pub fn sha256(&mut self) -> [u8; 32] {
        let mut d = [0; 32];
        self.fill_bytes(&mut d);
        d
    }

    /// A random MD5 digest as 32 lowercase hex digits.
    pub fn md5_hex(&mut self) -> String {
        to_hex(&self.md5())
    }

    /// A random SHA-1 digest as 40 lowercase hex digits.
    pub fn sha1_hex(&mut self) -> String {
        to_hex(&self.sha1())
    }

    /// A random SHA-256 digest as 64 lowercase hex digits.
    pub fn sha256_hex(&mut self) -> String {
        to_hex(&self.sha256())
    }

    /// A pronounceable lowercase word of `syllables` syllables, such as `bralito`.
    pub fn word(&mut self, syllables: u32) -> String {
        let mut s = String::new();
        for _ in 0..syllables {
            s.push_str(self.pick(CONSONANTS));
            s.push_str(self.pick(VOWELS));
        }
        if self.percent(30) {
            s.push_str(self.pick(&["n", "r", "s", "x", "l", "t"]));
        }
        s
    }

    fn alphanumeric(&mut self, len: u64) -> String {
        (0..len)
            .map(|_| char::from(self.pick(ALPHANUMERIC)))
            .collect()
    }

    /// The registrable label of a domain: pronounceable, assembled from words, or
    /// algorithm-generated looking. Letters, digits and inner hyphens only.
    fn main_label(&mut self) -> String {
        match self.below(20) {
            0..=8 => {
                let syllables = self.range(2, 4) as u32;
                let mut s = self.word(syllables);
                if self.percent(20) {
                    let n = self.range(1, 999);
                    let _ = write!(s, "{n}");
                }
                s
            }
            9..=15 => {
                let first = self.pick(DOMAIN_WORDS);
                let second = self.pick(DOMAIN_WORDS);
                let sep = if self.percent(50) { "-" } else { "" };
                let mut s = format!("{first}{sep}{second}");
                if self.percent(30) {
                    let n = self.range(1, 99);
                    let _ = write!(s, "-{n}");
                }
                s
            }
            _ => {
                // Looks like the output of a domain generation algorithm.
                let len = self.range(8, 18);
                let first = char::from(self.pick(&ALPHANUMERIC[..26]));
                let mut s = String::from(first);
                s.push_str(&self.alphanumeric(len - 1));
                s
            }
        }
    }

    fn subdomain_label(&mut self) -> String {
        if self.percent(75) {
            self.pick(SUBDOMAINS).to_string()
        } else {
            let syllables = self.range(1, 3) as u32;
            self.word(syllables)
        }
    }

    /// A top-level domain such as `com`, `ru` or `co.uk`, weighted like real feeds.
    pub fn tld(&mut self) -> &'static str {
        self.pick_weighted(TLDS)
    }

    /// A realistic domain name: one to three labels and a TLD, e.g. `secure-login.xyz`,
    /// `cdn.bralito.com`, `q7x0k2mf9a.top`. Lowercase letters, digits, hyphens and dots only.
    ///
    /// Values are random, not unique: a long run can repeat one, as real feeds do.
    pub fn domain(&mut self) -> String {
        let labels = self.pick_weighted(&[(1u32, 60), (2, 30), (3, 10)]);
        let mut s = String::new();
        for _ in 1..labels {
            s.push_str(&self.subdomain_label());
            s.push('.');
        }
        s.push_str(&self.main_label());
        s.push('.');
        s.push_str(self.tld());
        s
    }

    /// A public-looking IPv4 address (no private, loopback, link-local or multicast ranges).
    pub fn ipv4(&mut self) -> [u8; 4] {
        loop {
            let bits = self.next_u64().to_le_bytes();
            let a = [bits[0], bits[1], bits[2], bits[3]];
            let private = match a[0] {
                0 | 10 | 127 | 224.. => true,
                100 => (64..128).contains(&a[1]),
                169 => a[1] == 254,
                172 => (16..32).contains(&a[1]),
                192 => a[1] == 168,
                _ => false,
            };
            if !private {
                return a;
            }
        }
    }

    /// A public-looking IPv4 address in dotted decimal, e.g. `45.133.1.20`.
    pub fn ipv4_string(&mut self) -> String {
        let [a, b, c, d] = self.ipv4();
        format!("{a}.{b}.{c}.{d}")
    }

    /// A file name as found at the end of malicious URLs: `invoice.exe`, `Mozi.m`,
    /// `scan_0423.pdf`, ...
    pub fn file_name(&mut self) -> String {
        if self.percent(50) {
            self.pick(FILE_NAMES).to_string()
        } else {
            let stem = if self.percent(50) {
                self.pick(DOMAIN_WORDS).to_string()
            } else {
                let syllables = self.range(1, 3) as u32;
                self.word(syllables)
            };
            let sep = self.pick(&["_", "-", ""]);
            let n = self.range(1, 9999);
            let ext = self.pick(FILE_EXTENSIONS);
            format!("{stem}{sep}{n:04}.{ext}")
        }
    }

    fn path_segment(&mut self) -> String {
        match self.below(3) {
            0 => self.pick(PATH_WORDS).to_string(),
            1 => {
                let syllables = self.range(1, 3) as u32;
                self.word(syllables)
            }
            _ => {
                let len = self.range(4, 12);
                self.alphanumeric(len)
            }
        }
    }

    /// A realistic malicious URL: `http` or `https`, a domain or sometimes an IPv4 address,
    /// sometimes a port, a path of zero to four segments often ending in a file name, and
    /// sometimes a query. For example `http://45.133.1.20:8080/bins/mips` or
    /// `https://secure-login.xyz/wp-content/uploads/invoice.exe?id=123`.
    ///
    /// The path starts with `/`; the URL contains no whitespace and no `#`.
    pub fn url(&mut self) -> String {
        let scheme = if self.percent(65) { "http" } else { "https" };
        let host = if self.percent(15) {
            self.ipv4_string()
        } else {
            self.domain()
        };
        let mut url = format!("{scheme}://{host}");
        if self.percent(10) {
            let port = self.pick(&[8080u16, 8000, 8443, 8888, 81, 3000, 5000, 1337, 52_323]);
            let _ = write!(url, ":{port}");
        }
        let segments = self.pick_weighted(&[(0u32, 15), (1, 30), (2, 30), (3, 15), (4, 10)]);
        let ends_in_file = segments > 0 && self.percent(55);
        for i in 0..segments {
            url.push('/');
            if ends_in_file && i + 1 == segments {
                url.push_str(&self.file_name());
            } else {
                url.push_str(&self.path_segment());
            }
        }
        if segments == 0 || (!ends_in_file && self.percent(40)) {
            url.push('/');
        }
        if self.percent(15) {
            match self.below(3) {
                0 => {
                    let id = self.range(1, 99_999);
                    let _ = write!(url, "?id={id}");
                }
                1 => {
                    let token = self.alphanumeric(12);
                    let _ = write!(url, "?u={token}");
                }
                _ => {
                    let word = self.pick(DOMAIN_WORDS);
                    let n = self.range(1, 999);
                    let _ = write!(url, "?ref={word}&id={n}");
                }
            }
        }
        url
    }

    /// A threat or signature name in one of the styles vendors use: `Win32.Trojan.Agent`,
    /// `AgentTesla`, `Trojan:Win32/Emotet.A`.
    pub fn threat_name(&mut self) -> String {
        let family = self.pick(FAMILIES);
        match self.below(3) {
            0 => {
                let platform = self.pick(PLATFORMS);
                let kind = self.pick(THREAT_TYPES);
                format!("{platform}.{kind}.{family}")
            }
            1 => family.to_string(),
            _ => {
                let platform = self.pick(PLATFORMS);
                let kind = self.pick(THREAT_TYPES);
                let variant = self.pick(VARIANTS);
                format!("{kind}:{platform}/{family}.{variant}")
            }
        }
    }

    /// A record category, one of [`CATEGORIES`], e.g. `trojan` or `malware_download`.
    pub fn category(&mut self) -> &'static str {
        self.pick(CATEGORIES)
    }

    /// A package-like name such as `bralito` or `stavexi-utils`.
    fn package_name(&mut self) -> String {
        let syllables = self.range(2, 3) as u32;
        let word = self.word(syllables);
        if self.percent(20) {
            format!(
                "{word}-{}",
                self.pick(&["utils", "common", "data", "tools", "core"])
            )
        } else {
            word
        }
    }

    /// A relative path of a file a Linux distribution ships, as listed by `md5sum` in a
    /// package's checksum list: `usr/bin/stavex`, `usr/share/doc/libbralito/copyright`, ...
    /// Never contains whitespace or a backslash.
    pub fn distribution_path(&mut self) -> String {
        let dir = self.pick(DISTRIBUTION_DIRS);
        let package = self.package_name();
        match dir {
            "usr/lib/x86_64-linux-gnu" => {
                let major = self.range(0, 12);
                let minor = self.range(0, 9);
                format!("{dir}/lib{package}.so.{major}.{minor}.0")
            }
            "usr/share/doc" => {
                let file = self.pick(&["copyright", "changelog.Debian.gz", "README.md", "NEWS.gz"]);
                let prefix = if self.percent(30) { "lib" } else { "" };
                format!("{dir}/{prefix}{package}/{file}")
            }
            "usr/share/man/man1" | "usr/share/man/man8" => {
                let section = &dir[dir.len() - 1..];
                format!("{dir}/{package}.{section}.gz")
            }
            "usr/share/locale" => {
                let lang = self.pick(&["de", "fr", "es", "it", "ja", "pt_BR", "ru", "zh_CN"]);
                format!("{dir}/{lang}/LC_MESSAGES/{package}.mo")
            }
            "usr/lib/python3/dist-packages" => {
                let module = self.word(2);
                let module = if self.percent(20) {
                    "__init__"
                } else {
                    &module
                };
                format!("{dir}/{}/{module}.py", package.replace('-', "_"))
            }
            "etc" => format!("{dir}/{package}/{package}.conf"),
            "lib/systemd/system" => format!("{dir}/{package}.service"),
            "usr/share" => {
                let file = self.word(2);
                let ext = self.pick(&["xml", "json", "png", "svg", "dat", "txt"]);
                format!("{dir}/{package}/{file}.{ext}")
            }
            _ => format!("{dir}/{package}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_label(label: &str) -> bool {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }

    #[test]
    fn same_seed_same_values() {
        let mut a = Generator::new(5);
        let mut b = Generator::new(5);
        for _ in 0..100 {
            assert_eq!(a.url(), b.url());
            assert_eq!(a.threat_name(), b.threat_name());
            assert_eq!(a.distribution_path(), b.distribution_path());
        }
        assert_ne!(Generator::new(5).sha256(), Generator::new(6).sha256());
    }

    #[test]
    fn digests_have_their_lengths() {
        let mut g = Generator::new(1);
        assert_eq!(g.md5_hex().len(), 32);
        assert_eq!(g.sha1_hex().len(), 40);
        assert_eq!(g.sha256_hex().len(), 64);
        assert!(g.sha256_hex().bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn domains_are_well_formed() {
        let mut g = Generator::new(2);
        let mut seen_co_uk = false;
        let mut max_labels = 0;
        for _ in 0..5000 {
            let d = g.domain();
            let labels: Vec<&str> = d.split('.').collect();
            assert!(labels.iter().all(|l| valid_label(l)), "{d}");
            assert!(labels.len() >= 2 && labels.len() <= 5, "{d}");
            assert!(d.len() <= 253, "{d}");
            seen_co_uk |= d.ends_with(".co.uk");
            max_labels = max_labels.max(labels.len());
        }
        assert!(seen_co_uk);
        assert!(max_labels >= 4);
    }

    #[test]
    fn urls_are_well_formed() {
        let mut g = Generator::new(3);
        let (mut ports, mut ips, mut queries, mut https) = (0, 0, 0, 0);
        for _ in 0..5000 {
            let u = g.url();
            let rest = u
                .strip_prefix("http://")
                .or_else(|| u.strip_prefix("https://"))
                .unwrap_or_else(|| panic!("no scheme: {u}"));
            https += usize::from(u.starts_with("https"));
            assert!(!u.contains([' ', '#', '\t']), "{u}");
            let authority_end = rest.find('/').unwrap_or_else(|| panic!("no path: {u}"));
            let authority = &rest[..authority_end];
            let host = match authority.split_once(':') {
                Some((host, port)) => {
                    port.parse::<u16>().unwrap();
                    ports += 1;
                    host
                }
                None => authority,
            };
            if host.parse::<std::net::Ipv4Addr>().is_ok() {
                ips += 1;
            } else {
                assert!(host.split('.').all(valid_label), "{u}");
            }
            queries += usize::from(rest.contains('?'));
        }
        for count in [ports, ips, queries, https] {
            assert!(
                count > 200 && count < 4000,
                "{ports} {ips} {queries} {https}"
            );
        }
    }

    #[test]
    fn ipv4_addresses_are_public() {
        let mut g = Generator::new(4);
        for _ in 0..2000 {
            let ip = std::net::Ipv4Addr::from(g.ipv4());
            assert!(
                !ip.is_private() && !ip.is_loopback() && !ip.is_multicast(),
                "{ip}"
            );
            assert!(!ip.is_link_local() && !ip.is_unspecified(), "{ip}");
        }
    }

    #[test]
    fn names_and_paths() {
        let mut g = Generator::new(5);
        for _ in 0..500 {
            let t = g.threat_name();
            assert!(!t.is_empty() && !t.contains(char::is_whitespace), "{t}");
            assert!(CATEGORIES.contains(&g.category()));
            let p = g.distribution_path();
            assert!(!p.starts_with('/') && !p.contains([' ', '\\', '\n']), "{p}");
            let f = g.file_name();
            assert!(!f.contains(['/', ' ', '#', '?']), "{f}");
        }
    }

    #[test]
    fn range_and_choose_edges() {
        let mut g = Generator::new(6);
        assert_eq!(g.range(5, 5), 5);
        assert_eq!(g.range(9, 1), 9);
        let _ = g.range(0, u64::MAX);
        assert!((10..=12).contains(&g.range(10, 12)));
        assert_eq!(g.choose::<u8>(&[]), None);
        assert_eq!(g.choose(&[7]), Some(&7));
        assert!(g.percent(100));
        assert!(!g.percent(0));
    }
}
