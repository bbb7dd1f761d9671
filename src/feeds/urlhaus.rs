//! URLhaus exports (abuse.ch): the URL database CSV and the hostfile.
//!
//! The CSV (`# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter`)
//! gives one URL entry per row: the `threat` (`malware_download`) as the category, the
//! `tags` (`32-bit,elf,mips,Mozi`) as the name, `dateadded` as first seen and
//! `last_online` as last seen. With [`FeedOptions::online_only`](super::FeedOptions) rows
//! whose `url_status` is not `online` are skipped (and counted as skipped).
//!
//! The hostfile (`127.0.0.1<TAB>host`) gives one domain entry per line; it is read like
//! any hosts file.

use super::abusech::ColumnTable;
use super::{Item, LineParser, ParseError, Parsed};
use crate::url::EntryKind;
use crate::RecordSpec;

/// Reads URLhaus CSV rows.
#[derive(Debug)]
pub(crate) struct UrlhausParser {
    table: ColumnTable,
    online_only: bool,
}

impl UrlhausParser {
    pub(crate) fn new(online_only: bool) -> Self {
        UrlhausParser {
            table: ColumnTable::new(&["url", "url_status"]),
            online_only,
        }
    }
}

impl LineParser for UrlhausParser {
    fn csv_delimiter(&self) -> Option<u8> {
        Some(b',')
    }

    fn parse(&mut self, line: &str) -> Result<Parsed, ParseError> {
        let online_only = self.online_only;
        let Some(row) = self.table.row(line)? else {
            return Ok(Parsed::Skip);
        };
        let Some(url) = row.get("url") else {
            return Err(ParseError::from("row has no url".to_string()));
        };
        if online_only && row.raw("url_status") != Some("online") {
            return Ok(Parsed::Ignored);
        }
        let record = RecordSpec {
            category: row.string("threat"),
            name: row.string("tags"),
            first_seen: row.time("dateadded")?,
            last_seen: row.time("last_online")?,
            ..RecordSpec::default()
        };
        Ok(Parsed::Items(
            vec![Item::Web(url.to_string(), EntryKind::Url)],
            record,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter";

    #[test]
    fn online_only_skips_other_statuses() {
        let online = r#""1","2026-11-29 07:01:12","http://203.0.113.17/i","online","","malware_download","elf,Mozi","https://urlhaus.abuse.ch/url/1/","r""#;
        let offline = online.replace("\"online\"", "\"offline\"");
        let mut all = UrlhausParser::new(false);
        let mut only = UrlhausParser::new(true);
        for p in [&mut all, &mut only] {
            assert_eq!(p.parse(HEADER), Ok(Parsed::Skip));
        }
        let Ok(Parsed::Items(items, record)) = all.parse(&offline) else {
            panic!("offline rows are kept by default");
        };
        assert_eq!(
            items,
            [Item::Web("http://203.0.113.17/i".into(), EntryKind::Url)]
        );
        assert_eq!(record.category.as_deref(), Some("malware_download"));
        assert_eq!(record.name.as_deref(), Some("elf,Mozi"));
        assert_eq!(record.last_seen, None);
        assert!(matches!(only.parse(online), Ok(Parsed::Items(..))));
        assert_eq!(only.parse(&offline), Ok(Parsed::Ignored));
    }
}
