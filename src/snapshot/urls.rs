//! URL and domain lookups: canonicalize, then probe every expression, most specific first.

use twox_hash::XxHash3_64;

use super::{Hit, Snapshot};
use crate::filter::prefetch;
use crate::format::SectionKind;
use crate::url::{
    expression_hash, key_expression, CanonicalUrl, Canonicalizer, Expressions, UrlTable,
};
use crate::{Error, RecordId, Result};

/// The answer for one URL of a batch ([`Snapshot::lookup_urls`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UrlVerdict {
    /// No expression of the URL is listed.
    #[default]
    Unlisted,
    /// The most specific listed expression's record.
    Listed(RecordId),
    /// The input is not a usable URL or host.
    Invalid,
}

/// Buffers reused across batch URL lookups.
#[derive(Debug, Default)]
pub struct UrlScratch {
    canonicalizer: Canonicalizer,
    url: CanonicalUrl,
    expressions: Expressions,
}

impl UrlScratch {
    /// Empty buffers.
    pub fn new() -> Self {
        UrlScratch::default()
    }
}

impl<D: AsRef<[u8]>> Snapshot<D> {
    /// The URL table, once its bytes have passed their checksum.
    fn url_table(&self) -> Result<Option<UrlTable<'_>>> {
        let Some(s) = &self.sections.urls else {
            return Ok(None);
        };
        let bytes = &self.data.as_ref()[s.range()];
        let ok = *self.urls_checked.get_or_init(|| {
            XxHash3_64::oneshot(bytes) == s.checksum
                && UrlTable::check(bytes, self.record_count()).is_ok()
        });
        if !ok {
            let found = XxHash3_64::oneshot(bytes);
            if found != s.checksum {
                return Err(Error::Checksum {
                    section: SectionKind::Urls.name(),
                    expected: s.checksum,
                    found,
                });
            }
            return Err(UrlTable::check(bytes, self.record_count())
                .err()
                .unwrap_or_else(|| Error::malformed("url fst", "failed its check")));
        }
        Ok(Some(UrlTable::new(bytes)))
    }

    /// Looks up a canonical URL: every expression, most specific first; returns the first
    /// hit. `scratch` is reused between calls to avoid allocating.
    ///
    /// # Errors
    ///
    /// When the URL section is damaged (its checksum is checked on first use).
    pub fn lookup_url(
        &self,
        url: &CanonicalUrl,
        scratch: &mut Expressions,
    ) -> Result<Option<Hit<'_>>> {
        let Some((id, index)) = self.find_url(url, scratch)? else {
            return Ok(None);
        };
        let key = scratch.key(index).unwrap_or_default();
        Ok(self.record(id).map(|record| Hit {
            record,
            matched: key_expression(key),
        }))
    }

    /// The record id of the most specific expression of `url` that is listed, and the
    /// expression's index in `scratch`; but when that entry is not from an override feed
    /// and a less specific override entry covers it (its host is the same or a parent, its
    /// path the same or a prefix), the most specific such override entry. Never allocates
    /// once `scratch` has grown.
    fn find_url(
        &self,
        url: &CanonicalUrl,
        scratch: &mut Expressions,
    ) -> Result<Option<(RecordId, usize)>> {
        let Some(table) = self.url_table()? else {
            return Ok(None);
        };
        let filter = self.filter();
        let records = self.record_count();
        scratch.fill(url);
        // Hash every expression and prefetch its filter block first, so that the probes
        // overlap their memory accesses.
        let mut hashes = std::mem::take(&mut scratch.hashes);
        hashes.clear();
        scratch.for_each_key(|key| {
            let hash = expression_hash(key);
            prefetch(filter.block_ptr(hash));
            hashes.push(hash);
        });
        let hosts = scratch.host_count();
        let mut best: Option<(RecordId, usize)> = None;
        let mut reader = None;
        for (index, hash) in hashes.iter().enumerate() {
            if let Some((_, first)) = best {
                // Only an override entry that covers the first match can still win: a path
                // no more specific and a host no longer.
                if index / hosts < first / hosts || index % hosts < first % hosts {
                    continue;
                }
            }
            if !filter.may_contain(*hash) {
                continue;
            }
            // The FST's header is read on the first filter hit only, and once.
            let reader = reader.get_or_insert_with(|| table.reader());
            let Some(id) = reader
                .as_ref()
                .zip(scratch.key(index))
                .and_then(|(r, key)| r.get(key))
                .filter(|id| id.0 < records)
            else {
                continue;
            };
            let is_override = self.record(id).is_some_and(|r| r.is_override());
            if is_override {
                best = Some((id, index));
                break;
            }
            // The first match; the rest of the loop looks for an override covering it.
            best.get_or_insert((id, index));
        }
        scratch.hashes = hashes;
        Ok(best)
    }

    /// Checks many URLs (or hosts), writing `out[i]` for `urls[i]`: canonicalization and
    /// every expression included, reusing the caller's buffers, so the loop allocates
    /// nothing once they have grown. [`Snapshot::record`] gives the record of a listed URL.
    ///
    /// # Errors
    ///
    /// When the URL section is damaged.
    ///
    /// # Panics
    ///
    /// When `out` is shorter than `urls`.
    pub fn lookup_urls<S: AsRef<str>>(
        &self,
        urls: &[S],
        scratch: &mut UrlScratch,
        out: &mut [UrlVerdict],
    ) -> Result<()> {
        assert!(out.len() >= urls.len(), "output slice shorter than input");
        for (url, slot) in urls.iter().zip(out.iter_mut()) {
            *slot = match scratch
                .canonicalizer
                .canonicalize_into(url.as_ref(), &mut scratch.url)
            {
                Err(_) => UrlVerdict::Invalid,
                Ok(()) => match self.find_url(&scratch.url, &mut scratch.expressions)? {
                    Some((id, _)) => UrlVerdict::Listed(id),
                    None => UrlVerdict::Unlisted,
                },
            };
        }
        Ok(())
    }

    /// Every URL/domain entry as (forward expression, record id), in key order.
    ///
    /// # Errors
    ///
    /// When the URL section is damaged.
    pub fn url_entries(&self) -> Result<Vec<(String, RecordId)>> {
        let Some(table) = self.url_table()? else {
            return Ok(Vec::new());
        };
        Ok(table
            .entries()?
            .into_iter()
            .map(|(k, id)| (key_expression(&k), id))
            .collect())
    }
}
