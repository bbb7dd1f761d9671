//! Text for display: one escaping rule for every field that comes from a feed, a query or
//! a file name, so that no such field can forge output lines or reorder what a terminal
//! shows.
//!
//! [`escape_text`] escapes a string and [`escape_bytes`] bytes that may not be UTF-8 (file
//! names on Unix). The escaping is unambiguous: a backslash is written `\\`, so a name
//! holding the four characters `\xFF` and one holding the byte 0xFF print differently.
//!
//! | input | printed |
//! |---|---|
//! | `\` | `\\` |
//! | tab, LF, CR, NUL | `\t`, `\n`, `\r`, `\0` |
//! | other C0 controls and DEL | `\x1B`, `\x7F` |
//! | C1 controls, bidirectional controls (U+061C, U+200E, U+200F, U+202A..U+202E, U+2066..U+2069), line and paragraph separators (U+2028, U+2029) | `\u{202E}` |
//! | a byte that is not part of valid UTF-8 | `\xFF` |
//!
//! ```
//! use repute::text::{escape_bytes, escape_text};
//!
//! assert_eq!(escape_text("sudo\tmalicious\nname=x"), "sudo\\tmalicious\\nname=x");
//! assert_eq!(escape_text("invoice\u{202E}fdp.exe"), "invoice\\u{202E}fdp.exe");
//! assert_eq!(escape_bytes(b"evil\xff.exe"), "evil\\xFF.exe");
//! assert_eq!(escape_bytes(b"evil\\xff.exe"), "evil\\\\xff.exe");
//! assert_eq!(escape_text("plain"), "plain");
//! ```

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` is printed escaped.
fn needs_escape(c: char) -> bool {
    c == '\\'
        || c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\0' => out.push_str("\\0"),
        c if (c as u32) < 0x80 => {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\x{:02X}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:04X}}}", c as u32);
        }
    }
}

/// `text` with backslashes, control characters, bidirectional controls and line/paragraph
/// separators escaped (see the module docs). Borrowed when nothing needed escaping.
pub fn escape_text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `bytes` as text: valid UTF-8 escaped as [`escape_text`] does, every other byte as
/// `\xHH`. Borrowed when the bytes are UTF-8 and nothing needed escaping.
pub fn escape_bytes(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return escape_text(text);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(&escape_text(chunk.valid()));
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
    Cow::Owned(out)
}

/// A path's bytes (on Unix, exactly the file name's bytes; elsewhere its text).
pub fn path_bytes(path: &std::path::Path) -> Cow<'_, [u8]> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Cow::Borrowed(path.as_os_str().as_bytes())
    }
    #[cfg(not(unix))]
    {
        match path.to_string_lossy() {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        }
    }
}

/// A path for display, escaped as [`escape_bytes`] does.
pub fn escape_path(path: &std::path::Path) -> String {
    escape_bytes(&path_bytes(path)).into_owned()
}

/// Standard base64 (RFC 4648, with padding) of `bytes`: the lossless form of a path that is
/// not UTF-8 in JSON output.
///
/// ```
/// assert_eq!(repute::text::base64(b"evil\xff.exe"), "ZXZpbP8uZXhl");
/// ```
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dangerous_character_is_escaped() {
        for (input, want) in [
            ("a\u{1b}[31mred", "a\\x1B[31mred"),
            ("bell\u{7}", "bell\\x07"),
            ("nul\0", "nul\\0"),
            ("cr\rlf\n", "cr\\rlf\\n"),
            ("del\u{7f}", "del\\x7F"),
            ("c1\u{85}", "c1\\u{0085}"),
            ("rlo\u{202e}", "rlo\\u{202E}"),
            ("lri\u{2066}pdi\u{2069}", "lri\\u{2066}pdi\\u{2069}"),
            ("lrm\u{200e}alm\u{61c}", "lrm\\u{200E}alm\\u{061C}"),
            ("ls\u{2028}ps\u{2029}", "ls\\u{2028}ps\\u{2029}"),
            ("back\\slash", "back\\\\slash"),
            ("caf\u{e9} \u{1f600}", "caf\u{e9} \u{1f600}"),
        ] {
            assert_eq!(escape_text(input), want, "{input:?}");
        }
    }

    #[test]
    fn bytes_are_unambiguous() {
        assert_eq!(escape_bytes(b"evil\xff.exe"), "evil\\xFF.exe");
        assert_eq!(escape_bytes(b"evil\xfe.exe"), "evil\\xFE.exe");
        assert_ne!(escape_bytes(b"a\\nb"), escape_bytes(b"a\nb"));
        assert_ne!(escape_bytes(b"a\\xFF"), escape_bytes(b"a\xff"));
        assert_eq!(escape_bytes(b"\xc3\xa9\xc3"), "\u{e9}\\xC3");
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (input, want) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input), want);
        }
    }
}
