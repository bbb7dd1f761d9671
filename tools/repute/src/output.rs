//! The machine-output vocabulary every subcommand shares: `--format text|json|jsonl`, the
//! schema version every JSON object carries, and structured error objects.
//!
//! `json` and `jsonl` are one format under two spellings: commands that answer many things
//! (`lookup`, `scan`) write one JSON object per line; commands that answer one thing
//! (`inspect`, `status`, `verify`, `build`'s report) write one object. Every object carries
//! `"schema": "repute/1"`; an error is `{"schema": ..., "error": {"kind": ..., "message": ...}}`,
//! per query or file in `lookup` and `scan`, and for the whole command on standard output when
//! the command fails with `--format json` (the message still goes to standard error too).

use std::io::Write;

use clap::ValueEnum;
use serde::Serialize;

/// The version of the JSON output's schema. A field is only ever added under one version;
/// renaming or removing one gives a new version.
pub const SCHEMA: &str = "repute/1";

/// Text for people, or JSON for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// Tab-separated text lines, every field from a feed, a query or a file name escaped.
    #[default]
    Text,
    /// JSON objects, one per line (`jsonl` is the same format).
    #[value(alias = "jsonl", alias = "ndjson")]
    Json,
}

impl Format {
    /// Whether this is JSON.
    pub fn is_json(self) -> bool {
        self == Format::Json
    }
}

/// A structured error: what kind of thing went wrong, and the message.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorObject {
    pub kind: &'static str,
    pub message: String,
}

impl ErrorObject {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        ErrorObject {
            kind,
            message: message.into(),
        }
    }

    /// The error of a failed command, classified by the first cause that says what it is.
    pub fn from_anyhow(e: &anyhow::Error) -> Self {
        ErrorObject::new(error_kind(e), message(e))
    }
}

/// A failed command's message: its causes joined by `: `, each naming a path only once
/// (`cannot open snapshot x.snap: x.snap: No such file` becomes `cannot open snapshot
/// x.snap: No such file`).
pub fn message(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        let mut part = part.as_str();
        if !text.is_empty() {
            // Drop a leading `WHAT: ` that the message so far already ends with.
            if let Some((head, rest)) = part.split_once(": ") {
                if !head.is_empty() && text.ends_with(head) {
                    part = rest;
                }
            }
            text.push_str(": ");
        }
        text.push_str(part);
    }
    text
}

/// A short, stable name for what went wrong: `not_found`, `permission`, `io`, `damaged`
/// (a checksum or structure failure), `version`, `feed`, `query`, `signature`, `usage` or
/// `error`.
pub fn error_kind(e: &anyhow::Error) -> &'static str {
    for cause in e.chain() {
        if let Some(r) = cause.downcast_ref::<repute::Error>() {
            return repute_error_kind(r);
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io_error_kind(io);
        }
    }
    "error"
}

/// The kind of an I/O error.
pub fn io_error_kind(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => "not_found",
        std::io::ErrorKind::PermissionDenied => "permission",
        _ => "io",
    }
}

/// The kind of a library error.
pub fn repute_error_kind(e: &repute::Error) -> &'static str {
    use repute::Error as E;
    match e {
        E::Io { error, .. } => io_error_kind(error),
        E::Magic | E::Truncated { .. } | E::Checksum { .. } | E::Malformed { .. } => "damaged",
        E::Version { .. } | E::RequiredFeatures { .. } => "version",
        E::Feed { .. } => "feed",
        E::Query { .. } => "query",
        E::Signature { .. } => "signature",
        _ => "error",
    }
}

/// `{"schema": "repute/1", "error": {...}}`, for a command that failed.
#[derive(Debug, Serialize)]
struct CommandError<'a> {
    schema: &'static str,
    error: &'a ErrorObject,
}

/// Writes a failed command's error as one JSON object on `out`.
pub fn write_command_error(out: &mut dyn Write, e: &anyhow::Error) -> std::io::Result<()> {
    let error = ErrorObject::from_anyhow(e);
    let object = CommandError {
        schema: SCHEMA,
        error: &error,
    };
    serde_json::to_writer(&mut *out, &object)?;
    writeln!(out)?;
    out.flush()
}

/// Writes `value` as one JSON object with `"schema"` first, then a newline.
pub fn write_json<T: Serialize>(out: &mut dyn Write, value: &T) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct Versioned<'a, T> {
        schema: &'static str,
        #[serde(flatten)]
        value: &'a T,
    }
    serde_json::to_writer(
        &mut *out,
        &Versioned {
            schema: SCHEMA,
            value,
        },
    )?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let e = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::NotFound))
            .context("cannot open x");
        assert_eq!(error_kind(&e), "not_found");
        assert_eq!(error_kind(&anyhow::anyhow!("plain")), "error");
    }

    #[test]
    fn a_path_is_named_once() {
        let e = anyhow::anyhow!("nosuch.txt: No such file").context("feed nosuch.txt");
        assert_eq!(message(&e), "feed nosuch.txt: No such file");
        let e = anyhow::anyhow!("other: reason").context("feed nosuch.txt");
        assert_eq!(message(&e), "feed nosuch.txt: other: reason");
    }

    #[test]
    fn both_spellings_parse() {
        assert_eq!(Format::from_str("json", false), Ok(Format::Json));
        assert_eq!(Format::from_str("jsonl", false), Ok(Format::Json));
        assert_eq!(Format::from_str("text", false), Ok(Format::Text));
    }
}
