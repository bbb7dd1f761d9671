//! Bounded-memory line reading.

use std::io::{self, BufRead, BufReader, Read};

/// Longest line kept, in bytes; longer lines are reported and skipped.
pub const MAX_LINE: usize = 64 * 1024;

/// One line: its 1-based number and its text, or why it cannot be used.
#[derive(Debug)]
pub struct Line<'a> {
    /// 1-based line number.
    pub number: u64,
    /// The text without its terminator (`\n` or `\r\n`), or a reason.
    pub text: Result<&'a str, String>,
}

/// Reads lines without ever holding more than [`MAX_LINE`] bytes of one.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: BufReader<R>,
    buf: Vec<u8>,
    number: u64,
    bytes: u64,
}

impl<R: Read> LineReader<R> {
    /// Wraps a reader.
    pub fn new(inner: R) -> Self {
        LineReader {
            inner: BufReader::with_capacity(256 * 1024, inner),
            buf: Vec::with_capacity(256),
            number: 0,
            bytes: 0,
        }
    }

    /// Bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The next line, or `None` at the end.
    ///
    /// # Errors
    ///
    /// On read errors.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let mut overlong = false;
        let mut saw_any = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                break;
            }
            saw_any = true;
            let (take, done) = match memchr_newline(chunk) {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            if !overlong {
                let room = MAX_LINE + 2 - self.buf.len();
                if take > room {
                    overlong = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(&chunk[..take]);
                }
            }
            self.inner.consume(take);
            self.bytes += take as u64;
            if done {
                break;
            }
        }
        if !saw_any {
            return Ok(None);
        }
        self.number += 1;
        if overlong {
            return Ok(Some(Line {
                number: self.number,
                text: Err(format!("line longer than {MAX_LINE} bytes")),
            }));
        }
        let mut end = self.buf.len();
        if end > 0 && self.buf[end - 1] == b'\n' {
            end -= 1;
        }
        if end > 0 && self.buf[end - 1] == b'\r' {
            end -= 1;
        }
        let text = &self.buf[..end];
        let text = if self.number == 1 {
            text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text)
        } else {
            text
        };
        let text = std::str::from_utf8(text)
            .map_err(|e| format!("not UTF-8 (byte {})", e.valid_up_to() + 1));
        Ok(Some(Line {
            number: self.number,
            text,
        }))
    }
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_crlf_bom_overlong_and_bad_utf8() {
        let mut input = b"\xef\xbb\xbfone\r\ntwo\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        input.extend_from_slice(b"\nbad\xff\nlast");
        let mut r = LineReader::new(&input[..]);
        let mut got = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            got.push((l.number, l.text.map(str::to_string)));
        }
        assert_eq!(got[0], (1, Ok("one".into())));
        assert_eq!(got[1], (2, Ok("two".into())));
        assert!(got[2].1.as_ref().unwrap_err().contains("longer"));
        assert!(got[3].1.as_ref().unwrap_err().contains("UTF-8"));
        assert_eq!(got[4], (5, Ok("last".into())));
        assert_eq!(got.len(), 5);
        assert_eq!(r.bytes_read(), input.len() as u64);
    }
}
