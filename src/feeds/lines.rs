//! Bounded-memory line reading, and records of CSV files whose quoted fields span lines.
//!
//! [`LineReader::next_line`] hands out physical lines. [`LineReader::next_record`] hands
//! out logical CSV records: a quoted field may hold line breaks, so a record continues onto
//! the next physical line while a quote is open, and is handed out whole with the number of
//! its first line. The [`MAX_LINE`] limit applies to the whole record: a longer one (an
//! unclosed quote, say) is reported as one malformed record and skipped without being held
//! in memory, up to the line where its quote closes (or the end of the input). A record is
//! never split, so no continuation line is ever read as a row of its own.

use std::io::{self, BufRead, BufReader, Read};

/// Longest line (or multi-line record) kept, in bytes; longer ones are reported and skipped.
pub const MAX_LINE: usize = 64 * 1024;

/// One line (or record): the number of its first line and its text, or why it cannot be used.
#[derive(Debug)]
pub struct Line<'a> {
    /// 1-based number of the (first) line.
    pub number: u64,
    /// 1-based number of the last line: `number` unless a record spans lines.
    pub last: u64,
    /// The text without its final terminator (`\n` or `\r\n`), or a reason. A record that
    /// spans lines keeps its inner line breaks.
    pub text: Result<&'a str, String>,
}

/// Where the quote scan of a CSV record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    /// At the start of the record, before anything but blanks.
    RecordStart,
    /// A `#` comment line: quotes in it mean nothing.
    Comment,
    /// At the start of a field, before anything but blanks.
    FieldStart,
    /// Inside a field that did not open with a quote: a `"` is literal.
    Unquoted,
    /// Inside a quoted field: a line break is part of the field.
    Quoted,
    /// Just after a `"` inside a quoted field: a second `"` is an escaped quote.
    QuoteInQuoted,
}

impl Quoting {
    /// The state after one byte (never a `\n`, which the caller handles).
    fn step(self, b: u8, delimiter: u8) -> Quoting {
        let blank = (b == b' ' || b == b'\t') && b != delimiter;
        match self {
            Quoting::Comment => Quoting::Comment,
            Quoting::RecordStart if b == b'#' => Quoting::Comment,
            Quoting::RecordStart | Quoting::FieldStart if blank => self,
            Quoting::RecordStart | Quoting::FieldStart if b == b'"' => Quoting::Quoted,
            Quoting::Quoted if b == b'"' => Quoting::QuoteInQuoted,
            Quoting::Quoted => Quoting::Quoted,
            Quoting::QuoteInQuoted if b == b'"' => Quoting::Quoted,
            _ if b == delimiter => Quoting::FieldStart,
            // Text after a closing quote is an error the field splitter reports; for the
            // scan the field is closed.
            _ => Quoting::Unquoted,
        }
    }
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

    /// Physical lines consumed so far (the last line of the last record handed out).
    pub fn lines_read(&self) -> u64 {
        self.number
    }

    /// The next line, or `None` at the end.
    ///
    /// # Errors
    ///
    /// On read errors.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.read_record(None)
    }

    /// The next CSV record, whose quoted fields (opened by a `"` at the start of a field,
    /// `""` inside for a quote) may span lines; fields are separated by `delimiter`, an
    /// ASCII byte. Lines starting with `#` are comments, whatever quotes they hold. `None`
    /// at the end.
    ///
    /// # Errors
    ///
    /// On read errors.
    pub fn next_record(&mut self, delimiter: u8) -> io::Result<Option<Line<'_>>> {
        self.read_record(Some(delimiter))
    }

    fn read_record(&mut self, delimiter: Option<u8>) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let first = self.number + 1;
        let mut overlong = false;
        let mut saw_any = false;
        let mut quoting = Quoting::RecordStart;
        // Bytes of a line whose terminator has not been seen yet.
        let mut partial = false;
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
            let newline = memchr_newline(chunk);
            let take = newline.map_or(chunk.len(), |i| i + 1);
            if let Some(d) = delimiter {
                let text = &chunk[..newline.unwrap_or(chunk.len())];
                for &b in text {
                    quoting = quoting.step(b, d);
                }
            }
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
            partial = newline.is_none();
            if newline.is_some() {
                self.number += 1;
                if quoting != Quoting::Quoted {
                    break;
                }
            }
        }
        if !saw_any {
            return Ok(None);
        }
        if partial {
            // A last line without a terminator.
            self.number += 1;
        }
        // Named only for a reason: most lines need no string made.
        let span = || {
            if self.number > first {
                format!("record of lines {first}-{}", self.number)
            } else {
                "line".to_string()
            }
        };
        if quoting == Quoting::Quoted {
            let reason = if self.number > first {
                format!(
                    "{}: a quoted field is not closed by the end of the input",
                    span()
                )
            } else {
                "a quoted field is not closed by the end of the input (truncated line?)".into()
            };
            return Ok(Some(Line {
                number: first,
                last: self.number.max(first),
                text: Err(reason),
            }));
        }
        if overlong {
            return Ok(Some(Line {
                number: first,
                last: self.number.max(first),
                text: Err(format!("{} longer than {MAX_LINE} bytes", span())),
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
        let text = if first == 1 {
            text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text)
        } else {
            text
        };
        let text = std::str::from_utf8(text)
            .map_err(|e| format!("not UTF-8 (byte {})", e.valid_up_to() + 1));
        Ok(Some(Line {
            number: first,
            last: self.number.max(first),
            text,
        }))
    }
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', b)
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

    fn records(input: &[u8]) -> Vec<(u64, u64, Result<String, String>)> {
        let mut r = LineReader::new(input);
        let mut got = Vec::new();
        while let Some(l) = r.next_record(b',').unwrap() {
            got.push((l.number, l.last, l.text.map(str::to_string)));
        }
        got
    }

    #[test]
    fn quoted_line_breaks_continue_the_record() {
        let got = records(
            b"# a \"comment\nx,\"two\nlines\", \"q \"\"\nz\"\"\"\r\nlast,a\"b\n\"open\n\"\"\nstill\n",
        );
        assert_eq!(got[0], (1, 1, Ok("# a \"comment".into())));
        assert_eq!(
            got[1],
            (2, 4, Ok("x,\"two\nlines\", \"q \"\"\nz\"\"\"".into()))
        );
        // A quote inside an unquoted field is literal.
        assert_eq!(got[2], (5, 5, Ok("last,a\"b".into())));
        let (number, last, text) = &got[3];
        assert_eq!((*number, *last), (6, 8));
        assert!(text.as_ref().unwrap_err().contains("lines 6-8"), "{text:?}");
        assert!(
            text.as_ref().unwrap_err().contains("not closed"),
            "{text:?}"
        );
        assert_eq!(got.len(), 4);
        // Lines stay lines without the CSV reading.
        let mut r = LineReader::new(&b"\"a\nb\"\n"[..]);
        assert_eq!(r.next_line().unwrap().unwrap().text, Ok("\"a"));
        assert_eq!(r.lines_read(), 1);
    }

    #[test]
    fn an_unclosed_quote_is_one_bounded_malformed_record() {
        // The quote opened on line 2 closes on line 3 000 (200 KiB later): one record, never
        // held whole, and the rows after it are read again.
        let mut input = b"a,b\n\"open".to_vec();
        for _ in 0..3_000 {
            input.extend_from_slice(
                b"\n0123456789012345678901234567890123456789012345678901234567890123",
            );
        }
        input.extend_from_slice(b"\",x\nnext,row");
        let got = records(&input);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (1, 1, Ok("a,b".into())));
        let (number, last, text) = &got[1];
        assert_eq!((*number, *last), (2, 3_002));
        assert!(
            text.as_ref().unwrap_err().contains("longer than"),
            "{text:?}"
        );
        assert_eq!(got[2], (3_003, 3_003, Ok("next,row".into())));
    }
}
