//! Generic delimited files: the options name which columns hold what.
//!
//! With [`FeedOptions::columns`](super::FeedOptions) unset, the file must have a header
//! row, and columns are found by the names of the JSON lines schema: key columns `key`,
//! `md5`, `sha1`, `sha256`, `url`, `domain` (a row may fill several, all sharing its record)
//! and record columns `verdict`, `category`, `name`, `first_seen`, `last_seen`,
//! `confidence`. With [`CsvColumns`] the caller names (or numbers, from 0) the key column
//! and any record columns, says whether the first row is a header and picks the delimiter.
//!
//! Blank lines and lines starting with `#` are skipped. Fields may be quoted (`"a, b"`,
//! `""` for a quote), and a quoted field may span lines: the record is read whole and
//! numbered by its first line.

use std::fmt;
use std::str::FromStr;

use super::fields::{is_empty_value, split_fields};
use super::values::{self, KeyKind, KEY_FIELDS};
use super::{LineParser, ParseError, Parsed};
use crate::RecordSpec;

/// A column, by header name or by position (0 is the first column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// The column with this name in the header row.
    Name(String),
    /// The column at this position, counting from 0.
    Index(usize),
}

impl FromStr for Column {
    type Err = String;

    /// A number is a position (from 0), anything else a header name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty column name".into());
        }
        Ok(match s.parse::<usize>() {
            Ok(i) => Column::Index(i),
            Err(_) => Column::Name(s.to_string()),
        })
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Column::Name(n) => write!(f, "{n:?}"),
            Column::Index(i) => write!(f, "#{i}"),
        }
    }
}

/// Which columns of a generic CSV feed hold the key and the record's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvColumns {
    /// The key: a digest, URL or domain, told apart by its shape.
    pub key: Column,
    /// Verdict column (`malicious`, `suspicious`, `trusted`, `known`).
    pub verdict: Option<Column>,
    /// Threat or signature name column.
    pub name: Option<Column>,
    /// Category column.
    pub category: Option<Column>,
    /// First seen column (Unix seconds or `YYYY-MM-DD[ HH:MM:SS]`).
    pub first_seen: Option<Column>,
    /// Last seen column.
    pub last_seen: Option<Column>,
    /// Confidence column (0 to 100).
    pub confidence: Option<Column>,
    /// Whether the first row (after comments) is a header row.
    pub header: bool,
    /// The field delimiter, an ASCII character (`,`, `;`, `\t`, `|`, ...).
    pub delimiter: char,
}

impl CsvColumns {
    /// The key in this column, nothing else; a header row and `,` as delimiter.
    pub fn key(key: Column) -> Self {
        CsvColumns {
            key,
            verdict: None,
            name: None,
            category: None,
            first_seen: None,
            last_seen: None,
            confidence: None,
            header: true,
            delimiter: ',',
        }
    }
}

/// The record fields in [`CsvColumns`] order.
const RECORD_FIELDS: [&str; 6] = [
    "verdict",
    "name",
    "category",
    "first_seen",
    "last_seen",
    "confidence",
];

/// Resolved positions: key columns with their kinds, then the record fields.
#[derive(Debug, Clone, Default)]
struct Positions {
    keys: Vec<(usize, &'static str, Option<KeyKind>)>,
    fields: [Option<usize>; 6],
}

/// Prefixes an error with the record field it concerns.
fn named<T>(slot: usize, r: Result<T, String>) -> Result<T, String> {
    r.map_err(|e| format!("{}: {e}", RECORD_FIELDS[slot]))
}

/// Reads generic CSV rows.
#[derive(Debug)]
pub(crate) struct GenericCsvParser {
    columns: Option<CsvColumns>,
    delimiter: u8,
    expects_header: bool,
    positions: Option<Positions>,
}

impl GenericCsvParser {
    /// A parser for these columns (`None`: the header names the JSON lines schema's fields).
    ///
    /// # Errors
    ///
    /// When a column is named but the file has no header row.
    pub(crate) fn new(columns: Option<CsvColumns>) -> Result<Self, String> {
        let delimiter = columns.as_ref().map_or(',', |c| c.delimiter);
        if !delimiter.is_ascii() || delimiter == '"' || delimiter == '\n' || delimiter == '\r' {
            return Err(format!(
                "delimiter {delimiter:?} cannot be used: it must be an ASCII character \
                 other than a quote or a line break"
            ));
        }
        let mut parser = GenericCsvParser {
            delimiter: delimiter as u8,
            expects_header: columns.as_ref().is_none_or(|c| c.header),
            columns,
            positions: None,
        };
        if let Some(c) = &parser.columns {
            let all = [
                Some(&c.key),
                c.verdict.as_ref(),
                c.name.as_ref(),
                c.category.as_ref(),
                c.first_seen.as_ref(),
                c.last_seen.as_ref(),
                c.confidence.as_ref(),
            ];
            if !c.header && all.iter().flatten().any(|c| matches!(c, Column::Name(_))) {
                return Err("columns are named but the file has no header row; \
                            number them instead (0 is the first)"
                    .into());
            }
            if !c.header {
                parser.positions = Some(parser.resolve(&[])?);
            }
        }
        Ok(parser)
    }

    fn resolve(&self, header: &[String]) -> Result<Positions, String> {
        let find = |name: &str| header.iter().position(|h| h.trim() == name);
        let mut positions = Positions::default();
        match &self.columns {
            None => {
                for (name, kind) in KEY_FIELDS {
                    if let Some(i) = find(name) {
                        positions.keys.push((i, name, kind));
                    }
                }
                if positions.keys.is_empty() {
                    return Err(
                        "the header names no key column (key, md5, sha1, sha256, url, domain)"
                            .into(),
                    );
                }
                for (slot, name) in positions.fields.iter_mut().zip(RECORD_FIELDS) {
                    *slot = find(name);
                }
            }
            Some(c) => {
                let at = |column: &Column| match column {
                    Column::Index(i) => Ok(*i),
                    Column::Name(n) => find(n).ok_or_else(|| {
                        format!(
                            "the header has no column {n:?} (it has: {})",
                            header.join(", ")
                        )
                    }),
                };
                positions.keys.push((at(&c.key)?, "key", None));
                let named = [
                    &c.verdict,
                    &c.name,
                    &c.category,
                    &c.first_seen,
                    &c.last_seen,
                    &c.confidence,
                ];
                for (slot, column) in positions.fields.iter_mut().zip(named) {
                    *slot = column.as_ref().map(at).transpose()?;
                }
            }
        }
        Ok(positions)
    }
}

impl LineParser for GenericCsvParser {
    fn csv_delimiter(&self) -> Option<u8> {
        Some(self.delimiter)
    }

    fn parse(&mut self, line: &str) -> Result<Parsed, ParseError> {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok(Parsed::Skip);
        }
        let fields = split_fields(line, self.delimiter)?;
        let Some(positions) = &self.positions else {
            if self.expects_header {
                let names: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
                let positions = self.resolve(&names).map_err(ParseError::Fatal)?;
                self.positions = Some(positions);
                return Ok(Parsed::Skip);
            }
            return Err(ParseError::Fatal("no column positions".into()));
        };
        let get = |i: usize| {
            fields
                .get(i)
                .map(|f| f.as_ref())
                .filter(|v: &&str| !is_empty_value(v))
        };
        let mut items = Vec::new();
        for &(i, name, kind) in &positions.keys {
            if let Some(v) = get(i) {
                items.push(values::key_item(v, kind).map_err(|e| format!("{name}: {e}"))?);
            }
        }
        if items.is_empty() {
            return Err(ParseError::from("row has no key".to_string()));
        }
        let field = |slot: usize| positions.fields[slot].and_then(get);
        let spec = RecordSpec {
            verdict: field(0).map(|v| named(0, values::verdict(v))).transpose()?,
            name: field(1).map(str::to_string),
            category: field(2).map(str::to_string),
            first_seen: field(3).map(|v| named(3, values::time(v))).transpose()?,
            last_seen: field(4).map(|v| named(4, values::time(v))).transpose()?,
            confidence: field(5)
                .map(|v| named(5, values::confidence(v)))
                .transpose()?,
        };
        Ok(Parsed::Items(items, spec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::Item;
    use crate::url::EntryKind;

    #[test]
    fn column_references() {
        assert_eq!("3".parse(), Ok(Column::Index(3)));
        assert_eq!(" family ".parse(), Ok(Column::Name("family".into())));
        assert!("".parse::<Column>().is_err());
    }

    #[test]
    fn named_columns_with_a_semicolon() {
        let mut columns = CsvColumns::key(Column::Name("indicator".into()));
        columns.confidence = Some(Column::Name("score".into()));
        columns.delimiter = ';';
        let mut p = GenericCsvParser::new(Some(columns)).unwrap();
        assert_eq!(p.parse("score;indicator"), Ok(Parsed::Skip));
        let Ok(Parsed::Items(items, record)) = p.parse("90;\"evil.example.com\"") else {
            panic!()
        };
        assert_eq!(
            items,
            [Item::Web("evil.example.com".into(), EntryKind::Domain)]
        );
        assert_eq!(record.confidence, Some(90));
        assert!(p.parse("x;evil.example.com").is_err());
        assert!(p.parse("90;").is_err());
    }

    #[test]
    fn delimiters_must_be_ascii() {
        for bad in ['é', '"', '\n'] {
            let mut columns = CsvColumns::key(Column::Index(0));
            columns.delimiter = bad;
            assert!(GenericCsvParser::new(Some(columns)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn header_without_key_columns_is_fatal() {
        let mut p = GenericCsvParser::new(None).unwrap();
        assert!(matches!(p.parse("name,verdict"), Err(ParseError::Fatal(_))));
    }
}
