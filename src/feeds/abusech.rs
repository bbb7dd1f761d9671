//! The CSV conventions shared by the abuse.ch exports (MalwareBazaar, URLhaus, ThreatFox).
//!
//! An export opens with a block of `#` comments, one of which names the columns, e.g.
//! `# "first_seen_utc","sha256_hash",...` or `# id,dateadded,url,...`. Rows follow, one per
//! line (a quoted field holding a line break continues the row onto the next line), every
//! field quoted; MalwareBazaar and ThreatFox separate fields with `", "`.
//! Empty values appear as `n/a`, `None` or `""`. A footer comment may close the file.
//!
//! [`ColumnTable`] finds the header among the comments (the comment whose fields include the
//! format's required column names), then hands out each row's fields by column name, so a
//! reordered or extended export is still read correctly.

use std::borrow::Cow;

use super::fields::{is_empty_value, parse_utc, split_fields};

/// Tracks a feed's column names and reads rows by them.
#[derive(Debug)]
pub(crate) struct ColumnTable {
    required: &'static [&'static str],
    columns: Option<Vec<String>>,
}

/// One data row, read by column name.
#[derive(Debug)]
pub(crate) struct Row<'a> {
    columns: &'a [String],
    fields: Vec<Cow<'a, str>>,
}

impl ColumnTable {
    /// A table that recognises its header by these column names.
    pub(crate) fn new(required: &'static [&'static str]) -> Self {
        ColumnTable {
            required,
            columns: None,
        }
    }

    /// Reads one line: `Ok(None)` for blanks, comments and the header itself.
    ///
    /// # Errors
    ///
    /// When a row comes before any header, is not valid quoted CSV, or has a different
    /// number of fields than the header names.
    pub(crate) fn row<'a>(&'a mut self, line: &'a str) -> Result<Option<Row<'a>>, String> {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            if let Ok(names) = split_fields(comment.trim(), b',') {
                if self.required.iter().all(|r| names.iter().any(|n| n == r)) {
                    self.columns = Some(names.into_iter().map(String::from).collect());
                }
            }
            return Ok(None);
        }
        let Some(columns) = &self.columns else {
            return Err(format!(
                "no header line: a row before the `#` comment naming the columns ({}); \
                 is this an abuse.ch export?",
                self.required.join(", ")
            ));
        };
        let fields = split_fields(trimmed, b',')?;
        if fields.len() != columns.len() {
            return Err(format!(
                "{} fields where the header names {} columns",
                fields.len(),
                columns.len()
            ));
        }
        Ok(Some(Row { columns, fields }))
    }
}

impl Row<'_> {
    /// The field of this column as written (`None` when the header has no such column).
    pub(crate) fn raw(&self, column: &str) -> Option<&str> {
        let i = self.columns.iter().position(|c| c == column)?;
        self.fields.get(i).map(|f| f.trim())
    }

    /// The field of this column, `None` when absent or an empty value (`n/a`, `None`, ``).
    pub(crate) fn get(&self, column: &str) -> Option<&str> {
        self.raw(column).filter(|v| !is_empty_value(v))
    }

    /// The field as an owned string, `None` when empty.
    pub(crate) fn string(&self, column: &str) -> Option<String> {
        self.get(column).map(str::to_string)
    }

    /// The field as a UTC timestamp, `None` when empty.
    ///
    /// # Errors
    ///
    /// When the field is not a date.
    pub(crate) fn time(&self, column: &str) -> Result<Option<i64>, String> {
        self.get(column)
            .map(|v| parse_utc(v).map_err(|e| format!("{column}: {e}")))
            .transpose()
    }
}
