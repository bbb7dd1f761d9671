//! Splitting one line of a delimited file into fields, and reading UTC timestamps.
//!
//! The abuse.ch exports quote every field and separate them with `", "` (a comma and a
//! space), which strict RFC 4180 readers refuse; generic CSV files use a plain delimiter.
//! [`split_fields`] accepts both: blanks before a field and after a closing quote are
//! dropped, `""` inside quotes is one `"`, and a line whose quote never closes (a truncated
//! line) is an error rather than a field that swallows the rest of the file. A quoted field
//! may span lines: the line reader ([`LineReader::next_record`](super::LineReader)) hands
//! over the whole record, numbered by its first line, so a line break is just a byte of the
//! field here and a continuation line is never read as a row.

use std::borrow::Cow;

/// Splits one line into fields. Fields without doubled quotes borrow from the line.
///
/// # Errors
///
/// When a quoted field is not closed or text follows a closing quote.
///
/// # Panics
///
/// Never: `delimiter` must be ASCII ([`GenericCsvParser`](super::generic_csv) checks), and
/// every index the scan stops at is an ASCII byte, so every slice is on a char boundary.
pub(crate) fn split_fields(line: &str, delimiter: u8) -> Result<Vec<Cow<'_, str>>, String> {
    let bytes = line.as_bytes();
    let blank = |b: u8| (b == b' ' || b == b'\t') && b != delimiter;
    let skip_blanks = |mut i: usize| {
        while bytes.get(i).copied().is_some_and(blank) {
            i += 1;
        }
        i
    };
    let mut fields: Vec<Cow<'_, str>> = Vec::new();
    let mut i = 0;
    loop {
        i = skip_blanks(i);
        if bytes.get(i) != Some(&b'"') {
            let end = bytes[i..]
                .iter()
                .position(|&b| b == delimiter)
                .map(|p| i + p);
            let field = &line[i..end.unwrap_or(bytes.len())];
            fields.push(Cow::Borrowed(field.trim_end_matches([' ', '\t'])));
            match end {
                Some(e) => i = e + 1,
                None => return Ok(fields),
            }
            continue;
        }
        i += 1;
        let start = i;
        let mut owned: Option<String> = None;
        let field = loop {
            let Some(q) = bytes[i..].iter().position(|&b| b == b'"').map(|p| i + p) else {
                return Err(format!(
                    "field {} has no closing quote (truncated line?)",
                    fields.len() + 1
                ));
            };
            if bytes.get(q + 1) == Some(&b'"') {
                // A doubled quote: keep one, go on.
                owned.get_or_insert_with(String::new).push_str(&line[i..=q]);
                i = q + 2;
                continue;
            }
            let field = match owned.take() {
                None => Cow::Borrowed(&line[start..q]),
                Some(mut s) => {
                    s.push_str(&line[i..q]);
                    Cow::Owned(s)
                }
            };
            i = q + 1;
            break field;
        };
        i = skip_blanks(i);
        fields.push(field);
        match bytes.get(i) {
            None => return Ok(fields),
            Some(&b) if b == delimiter => i += 1,
            Some(_) => {
                let c = line[i..].chars().next().unwrap_or(' ');
                return Err(format!(
                    "unexpected {c:?} after the closing quote of field {}",
                    fields.len()
                ));
            }
        }
    }
}

/// Whether a field value means "no value" in the abuse.ch exports and similar feeds.
pub(crate) fn is_empty_value(value: &str) -> bool {
    let v = value.trim();
    v.is_empty() || v.eq_ignore_ascii_case("n/a") || v == "None" || v == "null"
}

/// Parses a UTC date and time: `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS` or
/// `YYYY-MM-DDTHH:MM:SS`, optionally followed by fractional seconds and `Z` or ` UTC`.
/// Returns Unix seconds.
///
/// # Errors
///
/// When the text is not such a date or names a day that does not exist.
pub(crate) fn parse_utc(text: &str) -> Result<i64, String> {
    let bad = || format!("not a date `YYYY-MM-DD[ HH:MM:SS]`: {text:.40}");
    let t = text.trim();
    let t = t.strip_suffix(" UTC").unwrap_or(t);
    let t = t.strip_suffix('Z').unwrap_or(t);
    let b = t.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let part = b.get(range).ok_or_else(bad)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        Ok(part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (mut hour, mut minute, mut second) = (0, 0, 0);
    if b.len() > 10 {
        if !(b[10] == b' ' || b[10] == b'T') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
            return Err(bad());
        }
        hour = number(11..13)?;
        minute = number(14..16)?;
        second = number(17..19)?;
        let fraction_ok = match b[19..].split_first() {
            None => true,
            Some((b'.', digits)) => !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
            Some(_) => false,
        };
        if !fraction_ok {
            return Err(bad());
        }
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(format!("no such date and time: {text:.40}"));
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Result<Vec<String>, String> {
        split_fields(line, b',').map(|f| f.into_iter().map(String::from).collect())
    }

    #[test]
    fn abuse_ch_comma_space_and_plain_csv() {
        assert_eq!(
            split(r#""a", "b, c", "d ""q"" e""#).unwrap(),
            ["a", "b, c", "d \"q\" e"]
        );
        assert_eq!(split("1,two , ,x").unwrap(), ["1", "two", "", "x"]);
        assert_eq!(split("a,").unwrap(), ["a", ""]);
        assert_eq!(split("").unwrap(), [""]);
        assert_eq!(split(r#""a","""#).unwrap(), ["a", ""]);
        assert_eq!(split_fields("a\tb\t\"c\"", b'\t').unwrap(), ["a", "b", "c"]);
        assert_eq!(split("é,\"ü \"\"x\"\"\" ,").unwrap(), ["é", "ü \"x\"", ""]);
        assert!(
            matches!(&split_fields(r#""a""b", c"#, b',').unwrap()[0], Cow::Owned(s) if s == "a\"b")
        );
        assert!(matches!(
            &split_fields(r#""ab", c"#, b',').unwrap()[0],
            Cow::Borrowed("ab")
        ));
        assert!(split(r#""a" é"#).unwrap_err().contains("'é'"));
        assert!(split(r#""a", "b"#).unwrap_err().contains("field 2"));
        assert!(split(r#""a"x, "b""#)
            .unwrap_err()
            .contains("after the closing quote"));
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_utc("1970-01-01"), Ok(0));
        assert_eq!(parse_utc("2024-02-29 12:34:56"), Ok(1_709_210_096));
        assert_eq!(parse_utc("2024-02-29T12:34:56Z"), Ok(1_709_210_096));
        assert_eq!(parse_utc("2024-02-29 12:34:56 UTC"), Ok(1_709_210_096));
        assert_eq!(parse_utc("2024-02-29 12:34:56.250"), Ok(1_709_210_096));
        assert_eq!(parse_utc("1969-12-31 23:59:59"), Ok(-1));
        assert_eq!(parse_utc("2000-03-01"), Ok(951_868_800));
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-01-01 24:00:00",
            "2024-1-01",
            "2024-01-01 12:00",
            "yesterday",
            "",
            "2024-01-01 12:00:00+02",
            "２０２４-01-01",
        ] {
            assert!(parse_utc(bad).is_err(), "{bad}");
        }
    }
}
