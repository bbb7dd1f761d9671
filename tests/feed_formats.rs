//! Golden tests of the feed formats: each sample in `data/feeds/` is read into a snapshot,
//! and the report (lines, keys, malformed lines with their numbers) and every key with its
//! record are compared with `data/feeds/golden/<sample>.txt`.
//!
//! To regenerate the golden files after a deliberate change, run with `REPUTE_BLESS=1` and
//! review the diff.

use std::io::Write;
use std::path::{Path, PathBuf};

use repute::feeds::{
    export_clamav, export_clamav_md5, line_parser, read_feed, Column, CsvColumns, FeedFormat,
    FeedOptions,
};
use repute::{Digest, DigestKind, Error, FeedReport, Snapshot, SnapshotBuilder, Verdict};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/feeds")
        .join(name)
}

/// Reads feeds into one snapshot.
fn build(feeds: &[(&Path, &FeedOptions)]) -> (Vec<FeedReport>, Snapshot) {
    let mut builder = SnapshotBuilder::new();
    let mut reports = Vec::new();
    for (path, options) in feeds {
        reports.push(read_feed(&mut builder, path, options, &mut |_| {}).unwrap());
    }
    let snapshot = Snapshot::open(builder.to_bytes().unwrap()).unwrap();
    snapshot.verify().unwrap();
    (reports, snapshot)
}

/// Every key of a snapshot with its record, one line each, in table order.
fn dump(snapshot: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    let describe = |id| {
        let r = snapshot.record(id).unwrap();
        let mut s = format!("{}", r.verdict());
        if let Some(v) = r.name() {
            s += &format!(" name={v:?}");
        }
        if let Some(v) = r.category() {
            s += &format!(" category={v:?}");
        }
        if let Some(v) = r.first_seen() {
            s += &format!(" first_seen={v}");
        }
        if let Some(v) = r.last_seen() {
            s += &format!(" last_seen={v}");
        }
        if let Some(v) = r.confidence() {
            s += &format!(" confidence={v}");
        }
        s += &format!(" source={:?}", r.source().unwrap_or(""));
        s
    };
    for kind in DigestKind::ALL {
        for (fp, id) in snapshot.digest_table(kind).iter() {
            out.push(format!("{kind} {fp:032x} {}", describe(id)));
        }
    }
    for (expression, id) in snapshot.url_entries().unwrap() {
        out.push(format!(
            "{} {expression} {}",
            repute::url::expression_type(&expression),
            describe(id)
        ));
    }
    out
}

fn report_lines(report: &FeedReport) -> Vec<String> {
    let mut out = vec![format!(
        "lines={} keys={} malformed={} skipped={}",
        report.lines, report.keys, report.malformed, report.skipped
    )];
    for (line, reason) in &report.errors {
        out.push(format!("malformed line {line}: {reason}"));
    }
    out
}

/// Compares the reports and the snapshot's contents with a golden file.
fn golden(name: &str, reports: &[FeedReport], snapshot: &Snapshot) {
    let mut text = String::new();
    for r in reports {
        for l in report_lines(r) {
            text += &l;
            text.push('\n');
        }
    }
    text += "--\n";
    for l in dump(snapshot) {
        text += &l;
        text.push('\n');
    }
    let path = sample("golden").join(format!("{name}.txt"));
    if std::env::var_os("REPUTE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with REPUTE_BLESS=1)", path.display()));
    assert_eq!(
        text, expected,
        "{name}: output differs from the golden file"
    );
}

fn read_one(name: &str, options: &FeedOptions) -> (FeedReport, Snapshot) {
    let path = sample(name);
    let (mut reports, snapshot) = build(&[(&path, options)]);
    (reports.remove(0), snapshot)
}

fn digest(hex: &str) -> Digest {
    hex.parse().unwrap()
}

fn error_lines(report: &FeedReport) -> Vec<u64> {
    report.errors.iter().map(|(l, _)| *l).collect()
}

fn strict_error(name: &str, options: &FeedOptions) -> (u64, String) {
    let mut options = options.clone();
    options.strict = true;
    let mut builder = SnapshotBuilder::new();
    match read_feed(&mut builder, &sample(name), &options, &mut |_| {}) {
        Err(Error::Feed { path, line, reason }) => {
            assert!(path.ends_with(name), "{path}");
            (line, reason)
        }
        other => panic!("{name}: expected a feed error, got {other:?}"),
    }
}

#[test]
fn malwarebazaar_csv() {
    let options = FeedOptions::new(FeedFormat::MalwareBazaar);
    let (report, snapshot) = read_one("malwarebazaar.csv", &options);
    // 24 good rows: 23 with three hashes, one (line 16) without its SHA-1.
    assert_eq!(report.keys, 23 * 3 + 2);
    assert_eq!(error_lines(&report), [33, 34, 35, 38]);
    assert!(report.errors[0]
        .1
        .contains("13 fields where the header names 14"));
    assert!(report.errors[1].1.contains("sha256_hash"));
    assert!(report.errors[2].1.contains("no such date"));
    assert!(report.errors[3].1.contains("truncated line?"));

    // One row, three keys, one record: name from `signature`, category from the file type.
    let row1 = [
        "c6121c8e713a27da30f44ddf21aaed72a486da93ebcd6fecc42d43e258c62c6b",
        "22445990dc36a1b1b1cd1f7c05c0bbf7",
        "65281709dacf8db0c985b84d93703c969a434dd3",
    ];
    let ids: Vec<_> = row1
        .iter()
        .map(|h| snapshot.lookup_digest(&digest(h)).unwrap().id())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]));
    let r = snapshot.lookup_digest(&digest(row1[0])).unwrap();
    assert_eq!(r.verdict(), Verdict::Malicious);
    assert_eq!(r.name(), Some("AgentTesla"));
    assert_eq!(r.category(), Some("exe"));
    assert_eq!(r.first_seen(), Some(1_795_935_521)); // 2026-11-29 06:58:41 UTC
    assert_eq!(r.source(), Some("malwarebazaar"));
    // `n/a` signature: no name.
    let r = snapshot
        .lookup_digest(&digest(
            "f5e51c64e0d690beaddd565c8015fee3191dd1efa20c1c5cd86699eda0bde181",
        ))
        .unwrap();
    assert_eq!((r.name(), r.category()), (None, Some("msi")));
    golden("malwarebazaar", &[report], &snapshot);

    assert_eq!(
        strict_error("malwarebazaar.csv", &options),
        (33, "13 fields where the header names 14 columns".into())
    );
}

#[test]
fn malwarebazaar_zip_gzip_and_zstd_read_like_the_plain_file() {
    let options = FeedOptions::new(FeedFormat::MalwareBazaar);
    let (plain_report, plain) = read_one("malwarebazaar.csv", &options);
    let (zip_report, zipped) = read_one("malwarebazaar.zip", &options);
    assert_eq!(report_lines(&zip_report), report_lines(&plain_report));
    assert_eq!(dump(&zipped), dump(&plain));

    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read(sample("malwarebazaar.csv")).unwrap();
    let gz = dir.path().join("malwarebazaar.csv.gz");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&text).unwrap();
    std::fs::write(&gz, encoder.finish().unwrap()).unwrap();
    let zst = dir.path().join("malwarebazaar.csv.zst");
    std::fs::write(&zst, zstd::encode_all(&text[..], 3).unwrap()).unwrap();
    for path in [&gz, &zst] {
        let (reports, snapshot) = build(&[(path, &options)]);
        assert_eq!(report_lines(&reports[0]), report_lines(&plain_report));
        assert_eq!(dump(&snapshot), dump(&plain));
    }

    // Progress reports the bytes of the file as stored.
    let mut seen = 0;
    let mut builder = SnapshotBuilder::new();
    read_feed(&mut builder, &gz, &options, &mut |b| seen = b).unwrap();
    assert_eq!(seen, std::fs::metadata(&gz).unwrap().len());
}

#[test]
fn damaged_compressed_input_is_an_error_not_a_partial_feed() {
    let options = FeedOptions::new(FeedFormat::MalwareBazaar);
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read(sample("malwarebazaar.csv")).unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&text).unwrap();
    let gz = encoder.finish().unwrap();
    let zst = zstd::encode_all(&text[..], 3).unwrap();
    let zip = std::fs::read(sample("malwarebazaar.zip")).unwrap();
    let cases = [
        ("cut.csv.gz", gz[..gz.len() / 2].to_vec()),
        ("cut.csv.zst", zst[..zst.len() / 2].to_vec()),
        ("cut.zip", zip[..zip.len() / 2].to_vec()),
        (
            "empty.zip",
            b"PK\x05\x06".iter().copied().chain([0; 18]).collect(),
        ),
        ("garbage.gz", vec![0x1f, 0x8b, 0xff, 0xff, 0xff]),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let mut builder = SnapshotBuilder::new();
        let result = read_feed(&mut builder, &path, &options, &mut |_| {});
        assert!(
            matches!(result, Err(Error::Feed { .. })),
            "{name}: {result:?}"
        );
    }
}

#[test]
fn urlhaus_csv() {
    let options = FeedOptions::new(FeedFormat::Urlhaus);
    let (report, snapshot) = read_one("urlhaus.csv", &options);
    assert_eq!(error_lines(&report), [30, 31, 33]);
    assert!(report.errors[0]
        .1
        .contains("8 fields where the header names 9"));
    // `http://co.uk/` would cover a whole public suffix: refused.
    assert!(report.errors[1].1.starts_with("http://co.uk/"));
    assert!(report.errors[2].1.contains("truncated line?"));
    assert_eq!((report.keys, report.skipped), (20, 0));
    let hit = snapshot
        .lookup(&repute::Query::parse("http://dropper.example.org/payload.exe").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(hit.record.category(), Some("malware_download"));
    assert_eq!(hit.record.name(), Some("exe,AgentTesla"));
    // 2026-11-29 06:31:27 UTC
    assert_eq!(hit.record.first_seen(), Some(1_795_933_887));
    golden("urlhaus", &[report], &snapshot);

    // Only online URLs: offline and unknown rows are skipped, not malformed.
    let mut online = options.clone();
    online.online_only = true;
    let (report, snapshot) = read_one("urlhaus.csv", &online);
    assert_eq!((report.keys, report.skipped), (14, 6));
    assert_eq!(error_lines(&report), [30, 31, 33]);
    assert!(snapshot
        .lookup(&repute::Query::parse("http://files.example.net/get.php?id=1,2").unwrap())
        .unwrap()
        .is_none());
    golden("urlhaus-online", &[report], &snapshot);
}

#[test]
fn urlhaus_hostfile() {
    let (report, snapshot) = read_one(
        "urlhaus-hosts.txt",
        &FeedOptions::new(FeedFormat::UrlhausHosts),
    );
    // The IP address and `localhost` are skipped; the cut last line (`trunc`) is a single
    // label, no domain a feed can list.
    assert_eq!(error_lines(&report), [15, 18]);
    assert_eq!((report.keys, report.skipped), (5, 2));
    golden("urlhaus-hosts", &[report], &snapshot);
}

#[test]
fn threatfox_csv() {
    let options = FeedOptions::new(FeedFormat::ThreatFox);
    let (report, snapshot) = read_one("threatfox.csv", &options);
    assert_eq!(error_lines(&report), [18, 19, 31, 34]);
    assert!(report.errors[0]
        .1
        .contains("sha1 digest where sha256 was expected"));
    assert!(report.errors[1].1.contains("confidence_level 150"));
    assert!(report.errors[2]
        .1
        .contains("14 fields where the header names 15"));
    // ip:port IOCs are skipped and counted.
    assert_eq!((report.keys, report.skipped), (15, 5));
    let r = snapshot
        .lookup(&repute::Query::parse("update-check.example.com").unwrap())
        .unwrap()
        .unwrap()
        .record;
    assert_eq!(r.name(), Some("Cobalt Strike"));
    assert_eq!(r.category(), Some("botnet_cc"));
    assert_eq!(r.confidence(), Some(75));
    assert_eq!(r.last_seen(), None);
    golden("threatfox", &[report], &snapshot);
}

#[test]
fn clamav_signatures_and_allowlist_override() {
    let options = FeedOptions::new(FeedFormat::Clamav);
    let (hdb, hsb, fp) = (
        sample("clamav.hdb"),
        sample("clamav.hsb"),
        sample("clamav.fp"),
    );
    let (reports, snapshot) = build(&[(&hdb, &options), (&hsb, &options), (&fp, &options)]);
    assert_eq!(error_lines(&reports[0]), [5, 6, 7, 8]);
    assert!(reports[0].errors[1]
        .1
        .contains("sha256 digest in a list of md5"));
    assert_eq!(error_lines(&reports[1]), [4]);
    assert_eq!(
        (reports[0].keys, reports[1].keys, reports[2].keys),
        (5, 3, 2)
    );
    let eicar = snapshot
        .lookup_digest(&digest("44d88612fea8a8f36de82e1278abb02f"))
        .unwrap();
    assert_eq!(
        (eicar.verdict(), eicar.name()),
        (Verdict::Malicious, Some("Eicar-Test-Signature"))
    );
    // Listed in the .hdb and in the .fp allowlist: the allowlist is an override and wins.
    let both = snapshot
        .lookup_digest(&digest("acbb30f1b7e779dd4f8ac4ed7a40c4b0"))
        .unwrap();
    assert_eq!(
        (both.verdict(), both.name()),
        (Verdict::Trusted, Some("known-good-installer.txt"))
    );
    let hdb_line = std::fs::read_to_string(&hdb).unwrap();
    assert!(hdb_line.contains("acbb30f1b7e779dd4f8ac4ed7a40c4b0:4096:Txt.Trojan.Known-7"));
    golden("clamav", &reports, &snapshot);
}

#[test]
fn clamav_export_round_trips() {
    let options = FeedOptions::new(FeedFormat::Clamav);
    let hdb = sample("clamav.hdb");
    let (_, snapshot) = build(&[(&hdb, &options)]);
    let mut out = Vec::new();
    let written = export_clamav_md5(&snapshot, Verdict::Malicious, &mut out).unwrap();
    assert_eq!(written, 5);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("44d88612fea8a8f36de82e1278abb02f:*:Eicar-Test-Signature:73\n"));

    // Read back: the same MD5 keys and names.
    let dir = tempfile::tempdir().unwrap();
    let again = dir.path().join("export.hdb");
    std::fs::write(&again, &text).unwrap();
    let (reports, reread) = build(&[(&again, &options)]);
    assert_eq!((reports[0].keys, reports[0].malformed), (5, 0));
    let names = |s: &Snapshot| -> Vec<String> {
        dump(s)
            .into_iter()
            .map(|l| l.replace("source=\"export\"", "source=\"clamav\""))
            .collect()
    };
    assert_eq!(names(&reread), names(&snapshot));

    // From the feed side, SHA-256 and SHA-1 go to an .hsb; names lose their colons.
    let sha: Digest = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
        .parse()
        .unwrap();
    let md5 = digest("44d88612fea8a8f36de82e1278abb02f");
    let mut out = Vec::new();
    let n = export_clamav(
        [(sha, "Eicar:Test\n"), (md5, "Eicar")],
        &[DigestKind::Sha1, DigestKind::Sha256],
        &mut out,
    )
    .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f:*:Eicar_Test:73\n"
    );
}

#[test]
fn clamav_section_hashes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mdb = dir.path().join("main.mdb");
    std::fs::write(
        &mdb,
        "45056:3ea7d00dedd30bcdf46191358c36ffa4:Win.Trojan.Sec-1\n",
    )
    .unwrap();
    let mut builder = SnapshotBuilder::new();
    let result = read_feed(
        &mut builder,
        &mdb,
        &FeedOptions::new(FeedFormat::Clamav),
        &mut |_| {},
    );
    assert!(
        matches!(&result, Err(Error::Feed { line: 0, reason, .. }) if reason.contains("section")),
        "{result:?}"
    );
}

#[test]
fn json_lines() {
    let options = FeedOptions::new(FeedFormat::Jsonl);
    let (report, snapshot) = read_one("feed.jsonl", &options);
    assert_eq!(error_lines(&report), [9, 10, 11, 12, 13, 14, 16]);
    assert!(report.errors[0]
        .1
        .contains("sha256 digest where sha1 was expected"));
    assert!(report.errors[1].1.contains("unknown"));
    assert!(report.errors[2].1.contains("confidence"));
    assert!(report.errors[3].1.contains("first_seen"));
    assert!(report.errors[4].1.contains("no key"));
    assert!(report.errors[5].1.contains("not a JSON object"));
    // One object, two keys, one record; the object's `source` is ignored.
    let sha256 = snapshot
        .lookup_digest(&digest(
            "97469b88290658d5f2817d044ff23dc0ef9224b253cc7c43b4a3521477500c55",
        ))
        .unwrap();
    let md5 = snapshot
        .lookup_digest(&digest("f4f5c2eca1c5217844ebab1cb3fffea6"))
        .unwrap();
    assert_eq!(sha256.id(), md5.id());
    assert_eq!(
        (sha256.name(), sha256.source(), sha256.confidence()),
        (Some("Emotet"), Some("feed"), Some(90))
    );
    assert_eq!(sha256.first_seen(), Some(1_764_393_600));
    assert_eq!(sha256.last_seen(), Some(1_795_939_200)); // "2026-11-29 08:00:00"
    golden("jsonl", &[report], &snapshot);
}

#[test]
fn generic_csv_by_header_names() {
    let (report, snapshot) = read_one("generic.csv", &FeedOptions::new(FeedFormat::Csv));
    assert_eq!(error_lines(&report), [6, 7, 8, 10]);
    golden("generic-csv", &[report], &snapshot);
}

#[test]
fn generic_csv_by_column_numbers_without_header() {
    let mut columns = CsvColumns::key(Column::Index(0));
    columns.name = Some(Column::Index(1));
    columns.category = Some(Column::Index(2));
    columns.header = false;
    columns.delimiter = '\t';
    let mut options = FeedOptions::new(FeedFormat::Csv);
    options.columns = Some(columns);
    options.verdict = Some(Verdict::Suspicious);
    let (report, snapshot) = read_one("columns.tsv", &options);
    assert_eq!(error_lines(&report), [5]);
    golden("generic-tsv", &[report], &snapshot);
}

#[test]
fn generic_csv_column_mistakes_fail_the_feed() {
    // A named column that the header lacks: the whole feed fails, strict or not.
    let mut columns = CsvColumns::key(Column::Name("sha256".into()));
    columns.name = Some(Column::Name("family".into()));
    let mut options = FeedOptions::new(FeedFormat::Csv);
    options.columns = Some(columns.clone());
    let mut builder = SnapshotBuilder::new();
    match read_feed(&mut builder, &sample("generic.csv"), &options, &mut |_| {}) {
        Err(Error::Feed {
            line: 2, reason, ..
        }) => assert!(reason.contains("\"family\"")),
        other => panic!("{other:?}"),
    }
    // Names without a header row.
    columns.header = false;
    options.columns = Some(columns);
    match read_feed(&mut builder, &sample("generic.csv"), &options, &mut |_| {}) {
        Err(Error::Feed {
            line: 0, reason, ..
        }) => assert!(reason.contains("no header")),
        other => panic!("{other:?}"),
    }
}

/// Creates a database shaped like NSRL RDS v3: tables behind a `FILE` view.
fn nsrl_db(path: &Path, rows: &[(Option<&str>, Option<&str>, Option<&str>)]) {
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch(
        "CREATE TABLE METADATA (sha256 TEXT, sha1 TEXT, md5 TEXT, crc32 TEXT, \
           file_name TEXT, file_size INTEGER, package_id INTEGER);
         CREATE VIEW FILE AS SELECT sha256, sha1, md5, crc32, file_name, file_size, package_id \
           FROM METADATA;",
    )
    .unwrap();
    for (i, (sha256, sha1, md5)) in rows.iter().enumerate() {
        db.execute(
            "INSERT INTO METADATA VALUES (?1, ?2, ?3, '00000000', ?4, 1024, ?5)",
            rusqlite::params![sha256, sha1, md5, format!("file{i}.dll"), i as i64],
        )
        .unwrap();
    }
}

#[test]
fn nsrl_rds_v3() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("RDS_2026.09.1_modern_minimal.db");
    let sha256 = "275A021BBFB6489E54D471899F7DB9D1663FC695EC2FE2A2C4538AABF651FD0F";
    let sha1 = "3395856CE81F2B7382DEE72602F798B642F14140";
    let md5 = "44D88612FEA8A8F36DE82E1278ABB02F";
    nsrl_db(
        &db,
        &[
            (Some(sha256), Some(sha1), Some(md5)),
            (Some(sha256), Some(sha1), Some(md5)), // the same file in another package
            (
                Some("0000000000000000000000000000000000000000000000000000000000000001"),
                Some("NOT-A-SHA1"),
                Some("00000000000000000000000000000001"),
            ),
            (None, None, Some("00000000000000000000000000000002")),
            (None, None, None),
        ],
    );
    let mut options = FeedOptions::new(FeedFormat::Nsrl);
    options.source = Some("nsrl".into());
    let (reports, snapshot) = build(&[(&db, &options)]);
    let report = &reports[0];
    assert_eq!((report.lines, report.keys, report.malformed), (5, 7, 2));
    assert_eq!(error_lines(report), [3, 5]);
    assert!(report.errors[0].1.contains("sha1"));
    for hex in [sha256, sha1, md5, "00000000000000000000000000000002"] {
        let r = snapshot.lookup_digest(&digest(hex)).unwrap();
        assert_eq!(r.verdict(), Verdict::Known);
        assert_eq!((r.name(), r.source()), (None, Some("nsrl")));
    }
    assert_eq!(snapshot.record_count(), 1);

    // Strict: row numbers where other formats give line numbers.
    options.strict = true;
    let mut builder = SnapshotBuilder::new();
    match read_feed(&mut builder, &db, &options, &mut |_| {}) {
        Err(Error::Feed { line: 3, .. }) => {}
        other => panic!("{other:?}"),
    }

    // Never trusted; never a text file; a database is not a text feed.
    options.strict = false;
    options.verdict = Some(Verdict::Trusted);
    let result = read_feed(&mut builder, &db, &options, &mut |_| {});
    assert!(
        matches!(result, Err(Error::Feed { line: 0, .. })),
        "{result:?}"
    );
    options.verdict = None;
    let result = read_feed(&mut builder, &sample("clamav.hdb"), &options, &mut |_| {});
    assert!(
        matches!(result, Err(Error::Feed { line: 0, .. })),
        "{result:?}"
    );
    let result = read_feed(
        &mut builder,
        &db,
        &FeedOptions::new(FeedFormat::Hashes),
        &mut |_| {},
    );
    assert!(
        matches!(result, Err(Error::Feed { line: 0, .. })),
        "{result:?}"
    );
    // A SQLite file without the FILE view.
    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x INTEGER);")
        .unwrap();
    let result = read_feed(
        &mut builder,
        &other,
        &FeedOptions::new(FeedFormat::Nsrl),
        &mut |_| {},
    );
    assert!(
        matches!(&result, Err(Error::Feed { line: 0, reason, .. }) if reason.contains("FILE")),
        "{result:?}"
    );
}

#[test]
fn every_format_survives_every_sample_and_its_mutations() {
    let samples = [
        "malwarebazaar.csv",
        "urlhaus.csv",
        "urlhaus-hosts.txt",
        "threatfox.csv",
        "clamav.hdb",
        "feed.jsonl",
        "generic.csv",
        "columns.tsv",
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for format in FeedFormat::ALL {
        if format == FeedFormat::Nsrl {
            continue;
        }
        for name in samples {
            let text = std::fs::read_to_string(sample(name)).unwrap();
            let mut parser = line_parser(&FeedOptions::new(format), Path::new(name)).unwrap();
            for line in text.lines() {
                let _ = parser.parse(line);
                // Cut at every char boundary, and overwrite random chars with delimiters.
                let chars: Vec<char> = line.chars().collect();
                for cut in 0..chars.len() {
                    let s: String = chars[..cut].iter().collect();
                    let _ = parser.parse(&s);
                }
                let mut mutated = chars.clone();
                for _ in 0..8 {
                    if mutated.is_empty() {
                        break;
                    }
                    let at = (next() % mutated.len() as u64) as usize;
                    mutated[at] =
                        ['"', ',', ':', '\t', '#', '{', '\u{fffd}', ' '][(next() % 8) as usize];
                    let s: String = mutated.iter().collect();
                    let _ = parser.parse(&s);
                }
            }
        }
    }
}

#[test]
fn no_format_panics_on_random_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let magics: [&[u8]; 6] = [
        b"",
        b"\x1f\x8b\x08\x00",
        b"\x28\xb5\x2f\xfd",
        b"PK\x03\x04",
        b"SQLite format 3\0",
        b"# \"first_seen_utc\",\"sha256_hash\"\n\"",
    ];
    for (m, magic) in magics.iter().enumerate() {
        for round in 0..4 {
            let mut bytes = magic.to_vec();
            let len = (next() % 4096) as usize;
            bytes.extend((0..len).map(|_| match next() % 4 {
                0 => b'\n',
                1 => b'"',
                2 => b',',
                _ => (next() % 256) as u8,
            }));
            let path = dir.path().join(format!("random-{m}-{round}.hdb"));
            std::fs::write(&path, &bytes).unwrap();
            for format in FeedFormat::ALL {
                for strict in [false, true] {
                    let mut options = FeedOptions::new(format);
                    options.strict = strict;
                    let mut builder = SnapshotBuilder::new();
                    let _ = read_feed(&mut builder, &path, &options, &mut |_| {});
                    let bytes = builder.to_bytes().unwrap();
                    Snapshot::open(bytes).unwrap().verify().unwrap();
                }
            }
        }
    }
}
