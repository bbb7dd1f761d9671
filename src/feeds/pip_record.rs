//! `pip-record`: the `RECORD` file of an installed Python distribution
//! (`site-packages/NAME-VERSION.dist-info/RECORD`), as the wheel specification (PEP 376,
//! PEP 627) describes it.
//!
//! Each line is CSV: `path,hash,size`, where `hash` is `ALGORITHM=DIGEST` with the digest in
//! URL-safe base64 without padding (`sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU`).
//! Some tools write the digest in hex instead; both are read. Lines with an empty hash (the
//! RECORD file itself, `.pyc` files written after installation) are skipped, not malformed.
//! Algorithms other than `md5`, `sha1` and `sha256` (`sha384`, `sha512`) cannot be stored in
//! a snapshot and are refused as malformed lines. The record's name is the file's path.

use base64::Engine as _;

use super::fields::split_fields;
use super::{Item, LineParser, ParseError, Parsed};
use crate::{Digest, DigestKind, RecordSpec};

/// Reads a `RECORD` file.
#[derive(Debug)]
pub(crate) struct PipRecordParser;

impl LineParser for PipRecordParser {
    fn csv_delimiter(&self) -> Option<u8> {
        Some(b',')
    }

    fn parse(&mut self, line: &str) -> Result<Parsed, ParseError> {
        Ok(parse_record_line(line)?)
    }
}

/// The digest of `ALGORITHM=DIGEST`, in URL-safe base64 (padded or not) or hex.
pub(crate) fn parse_record_hash(hash: &str) -> Result<Digest, String> {
    let Some((algorithm, value)) = hash.split_once('=') else {
        return Err(format!("hash {hash:.80?} is not ALGORITHM=DIGEST"));
    };
    let kind = match algorithm.trim().to_ascii_lowercase().as_str() {
        "md5" => DigestKind::Md5,
        "sha1" => DigestKind::Sha1,
        "sha256" => DigestKind::Sha256,
        other => {
            return Err(format!(
                "hash algorithm {other:.20?} cannot be stored (md5, sha1 and sha256 can)"
            ))
        }
    };
    let value = value.trim();
    let hex_len = kind.byte_len() * 2;
    let digest = if value.len() == hex_len && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Digest::from_hex(value.as_bytes()).map_err(|e| format!("{value:.80}: {e}"))?
    } else {
        let unpadded = value.trim_end_matches('=');
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(unpadded)
            .map_err(|e| format!("{kind} digest {value:.80?} is neither hex nor base64: {e}"))?;
        if bytes.len() != kind.byte_len() {
            return Err(format!(
                "{kind} digest {value:.80?} holds {} bytes, not {}",
                bytes.len(),
                kind.byte_len()
            ));
        }
        Digest::from_bytes(&bytes).ok_or_else(|| format!("{value:.80?}: not a digest"))?
    };
    Ok(digest)
}

fn parse_record_line(line: &str) -> Result<Parsed, String> {
    let trimmed = line.trim_end_matches(['\r', '\n']);
    if trimmed.trim().is_empty() {
        return Ok(Parsed::Skip);
    }
    let fields = split_fields(trimmed, b',')?;
    let fields: Vec<&str> = fields.iter().map(|f| f.as_ref()).collect();
    let [path, hash, size] = fields.as_slice() else {
        return Err(format!(
            "expected path,hash,size (3 fields), found {}: {trimmed:.80}",
            fields.len()
        ));
    };
    if path.is_empty() {
        return Err("no path".to_string());
    }
    if !size.trim().is_empty() && size.trim().parse::<u64>().is_err() {
        return Err(format!("size {size:.40?} is not a number"));
    }
    if hash.trim().is_empty() {
        // The RECORD file itself, and files written after installation, carry no hash.
        return Ok(Parsed::Skip);
    }
    let digest = parse_record_hash(hash)?;
    Ok(Parsed::Items(
        vec![Item::Digest(digest)],
        RecordSpec::default().name(*path),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_hex_give_the_same_digest() {
        // The SHA-256 of the empty file, as pip writes it and as hex.
        let b64 = parse_record_hash("sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU").unwrap();
        let hex = parse_record_hash(
            "sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        )
        .unwrap();
        assert_eq!(b64, hex);
        assert_eq!(
            b64.to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(parse_record_hash("sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU=").is_ok());
    }

    #[test]
    fn refusals() {
        assert!(parse_record_hash("sha512=abcd").is_err());
        assert!(parse_record_hash("sha256=tooshort").is_err());
        assert!(parse_record_hash("nohash").is_err());
        assert!(parse_record_line("a,b").is_err());
        assert!(parse_record_line("a,sha256=x,notanumber").is_err());
        assert!(matches!(
            parse_record_line("pkg-1.0.dist-info/RECORD,,"),
            Ok(Parsed::Skip)
        ));
    }
}
