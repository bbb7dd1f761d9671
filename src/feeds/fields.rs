//! Splitting one line of a delimited file into fields, and reading UTC timestamps.
//!
//! The abuse.ch exports quote every field and separate them with `", "` (a comma and a
//! space), which strict RFC 4180 readers refuse; generic CSV files use a plain delimiter.
//! [`split_fields`] accepts both: blanks before a field and after a closing quote are
//! dropped, `""` inside quotes is one `"`, and a line whose quote never closes (a truncated
//! line) is an error rather than a field that swallows the rest of the file. A quoted field
//! cannot span lines: every record is one line, so line numbers in reports stay exact.

/// Splits one line into fields.
///
/// # Errors
///
/// When a quoted field is not closed or text follows a closing quote.
pub(crate) fn split_fields(line: &str, delimiter: char) -> Result<Vec<String>, String> {
    let blank = |c: char| (c == ' ' || c == '\t') && c != delimiter;
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|&c| blank(c)) {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        field.push('"');
                    } else {
                        closed = true;
                        break;
                    }
                } else {
                    field.push(c);
                }
            }
            if !closed {
                return Err(format!(
                    "field {} has no closing quote (truncated line?)",
                    fields.len() + 1
                ));
            }
            while chars.peek().is_some_and(|&c| blank(c)) {
                chars.next();
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(c) if c == delimiter => fields.push(field),
                Some(c) => {
                    return Err(format!(
                        "unexpected {c:?} after the closing quote of field {}",
                        fields.len() + 1
                    ))
                }
            }
        } else {
            let mut ended = true;
            for c in chars.by_ref() {
                if c == delimiter {
                    ended = false;
                    break;
                }
                field.push(c);
            }
            fields.push(field.trim_end_matches([' ', '\t']).to_string());
            if ended {
                return Ok(fields);
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
        split_fields(line, ',')
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
        assert_eq!(split_fields("a\tb\t\"c\"", '\t').unwrap(), ["a", "b", "c"]);
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
