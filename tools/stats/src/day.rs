//! Days: the only unit of time a report carries.

use std::fmt;
use std::str::FromStr;

/// A UTC calendar day, as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub i64);

impl Day {
    /// The day containing these Unix seconds.
    pub fn from_unix(seconds: i64) -> Day {
        Day(seconds.div_euclid(86_400))
    }

    /// Unix seconds at the start of the day.
    pub fn start_unix(self) -> i64 {
        self.0 * 86_400
    }

    /// The day `n` days later (earlier when negative).
    pub fn plus(self, n: i64) -> Day {
        Day(self.0 + n)
    }

    /// The civil date (year, month, day).
    pub fn civil(self) -> (i64, u32, u32) {
        // Howard Hinnant's civil_from_days.
        let z = self.0 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        (year, month as u32, day as u32)
    }

    /// The day of a civil date, if it exists.
    pub fn from_civil(year: i64, month: u32, day: u32) -> Option<Day> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let m = i64::from(month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        Some(Day(era * 146_097 + doe - 719_468))
    }
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.civil();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl FromStr for Day {
    type Err = String;

    /// Parses exactly `YYYY-MM-DD`.
    fn from_str(s: &str) -> Result<Day, String> {
        let b = s.as_bytes();
        let shape = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shape {
            return Err(format!("{s:.20?} is not a day (YYYY-MM-DD)"));
        }
        let num = |r: std::ops::Range<usize>| -> i64 {
            s[r].bytes().fold(0, |n, c| n * 10 + i64::from(c - b'0'))
        };
        Day::from_civil(num(0..4), num(5..7) as u32, num(8..10) as u32)
            .ok_or_else(|| format!("{s:?} is not a calendar day"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_days_round_trip() {
        assert_eq!(Day(0).to_string(), "1970-01-01");
        assert_eq!("2000-02-29".parse::<Day>(), Ok(Day(11_016)));
        assert_eq!(Day::from_unix(1_798_675_200).to_string(), "2026-12-31");
        assert_eq!(Day::from_unix(-1).to_string(), "1969-12-31");
        for n in -700_000..2_900_000i64 {
            if n % 97 == 0 {
                let d = Day(n);
                assert_eq!(d.to_string().parse::<Day>(), Ok(d), "{n}");
            }
        }
    }

    #[test]
    fn refuses_non_days() {
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "2026-1-01",
            "2026-01-01T00",
            "",
            "abcd-ef-gh",
            "2026-00-10",
        ] {
            assert!(bad.parse::<Day>().is_err(), "{bad}");
        }
    }
}
