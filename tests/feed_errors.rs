//! Malformed feed input is counted and reported with path and line, never a panic;
//! `strict` turns the first malformed line into an error.

use std::path::Path;

use repute::feeds::{read_feed, FeedFormat, FeedOptions};
use repute::{Error, Snapshot, SnapshotBuilder};

fn read(path: &Path, format: FeedFormat, strict: bool) -> repute::Result<repute::FeedReport> {
    let mut builder = SnapshotBuilder::new();
    let mut options = FeedOptions::new(format);
    options.strict = strict;
    read_feed(&mut builder, path, &options, &mut |_| {})
}

#[test]
fn malformed_lines_are_counted_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.txt");
    let mut text = Vec::new();
    text.extend_from_slice(b"44d88612fea8a8f36de82e1278abb02f\n"); // 1 ok
    text.extend_from_slice(b"zz d88612fea8a8f36de82e1278abb02f\n"); // 2 wrong length token
    text.extend_from_slice(b"g4d88612fea8a8f36de82e1278abb02f\n"); // 3 non-hex
    text.extend_from_slice(b"44d88612fea8a8f36de82e1278abb02f00\n"); // 4 wrong length
    text.extend_from_slice(b"\xff\xfe invalid utf-8\n"); // 5
    text.extend(std::iter::repeat_n(b'a', 200_000)); // 6 overlong
    text.extend_from_slice(b"\n# comment\n\n"); // 7, 8
    text.extend_from_slice(b"3395856ce81f2b7382dee72602f798b642f14140"); // 9 ok, no newline
    std::fs::write(&path, &text).unwrap();

    let report = read(&path, FeedFormat::Hashes, false).unwrap();
    assert_eq!(report.lines, 9);
    assert_eq!(report.keys, 2);
    assert_eq!(report.malformed, 5);
    let lines: Vec<u64> = report.errors.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, vec![2, 3, 4, 5, 6]);
    assert!(
        report.errors[1].1.contains("not a hex digit"),
        "{:?}",
        report.errors
    );
    assert!(report.errors[3].1.contains("UTF-8"), "{:?}", report.errors);
    assert!(
        report.errors[4].1.contains("longer than"),
        "{:?}",
        report.errors
    );

    match read(&path, FeedFormat::Hashes, true) {
        Err(Error::Feed {
            path: p, line: 2, ..
        }) => assert!(p.ends_with("mixed.txt")),
        other => panic!("expected a feed error at line 2, got {other:?}"),
    }
}

#[test]
fn empty_missing_and_directory_feeds() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    let report = read(&empty, FeedFormat::Domains, false).unwrap();
    assert_eq!((report.lines, report.keys, report.malformed), (0, 0, 0));

    let err = read(&dir.path().join("missing.txt"), FeedFormat::Hashes, false).unwrap_err();
    assert!(err.to_string().contains("missing.txt"), "{err}");
    let err = read(dir.path(), FeedFormat::Hashes, false).unwrap_err();
    assert!(err.to_string().contains("directory"), "{err}");
}

#[test]
fn bad_web_entries_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("urls.txt");
    std::fs::write(
        &path,
        "http://ok.example/a\nhttp://:80/nohost\nhttp://[::1/\n",
    )
    .unwrap();
    let report = read(&path, FeedFormat::Urls, false).unwrap();
    assert_eq!(report.keys, 1);
    assert_eq!(report.malformed, 2);
    assert_eq!(report.errors[0].0, 2);
}

#[test]
fn entries_that_are_not_valid_hosts_are_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let sha = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
    std::fs::write(
        p.join("domains.txt"),
        format!("good.example\nhello world\nsha256={sha}\nshop=1.example\nk\n1.2.3.999\n"),
    )
    .unwrap();
    let report = read(&p.join("domains.txt"), FeedFormat::Domains, false).unwrap();
    // The domains format takes the first word: `hello` is a single label.
    assert_eq!(
        (report.keys, report.malformed),
        (1, 5),
        "{:?}",
        report.errors
    );
    let lines: Vec<u64> = report.errors.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, vec![2, 3, 4, 5, 6], "{:?}", report.errors);
    assert!(report
        .errors
        .iter()
        .all(|(_, e)| e.contains("host") || e.contains("label")));

    // Random bytes read as a URL feed give no keys.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..20_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    std::fs::write(p.join("noise.txt"), &noise).unwrap();
    let report = read(&p.join("noise.txt"), FeedFormat::Urls, false).unwrap();
    assert_eq!(report.keys, 0, "{:?}", report.errors);

    for (name, text, format) in [
        (
            "feed.jsonl",
            "{\"domain\": \"hello world\"}\n{\"domain\": \"ok.example\"}\n",
            FeedFormat::Jsonl,
        ),
        (
            "feed.csv",
            "domain,name\nhello world,x\nok.example,y\n",
            FeedFormat::Csv,
        ),
    ] {
        std::fs::write(p.join(name), text).unwrap();
        let report = read(&p.join(name), format, false).unwrap();
        assert_eq!(
            (report.keys, report.malformed),
            (1, 1),
            "{name}: {:?}",
            report.errors
        );
        assert_eq!(
            report.errors[0].0,
            if name.ends_with("csv") { 2 } else { 1 }
        );
    }
}

#[test]
fn snapshot_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Snapshot<Vec<u8>>>();
    assert_send_sync::<Snapshot<memmap2::Mmap>>();
    assert_send_sync::<Snapshot<&'static [u8]>>();
}

/// A MalwareBazaar `file_name` holding a line break continues the row onto the next line:
/// the real row is read whole, and a forged row in a file name is never read as a row.
#[test]
fn quoted_line_breaks_keep_csv_rows_aligned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bazaar.csv");
    let real = [
        "c6121c8e713a27da30f44ddf21aaed72a486da93ebcd6fecc42d43e258c62c6b",
        "22445990dc36a1b1b1cd1f7c05c0bbf7",
        "65281709dacf8db0c985b84d93703c969a434dd3",
    ];
    let empty = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "d41d8cd98f00b204e9800998ecf8427e",
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    ];
    let header =
        "# \"first_seen_utc\",\"sha256_hash\",\"md5_hash\",\"sha1_hash\",\"file_name\",\"signature\"\n";
    let digest = |hex: &str| repute::Digest::from_hex(hex.as_bytes()).unwrap();
    let build = |text: String| {
        std::fs::write(&path, text).unwrap();
        let mut builder = SnapshotBuilder::new();
        let options = FeedOptions::new(FeedFormat::MalwareBazaar);
        let report = read_feed(&mut builder, &path, &options, &mut |_| {}).unwrap();
        (report, Snapshot::open(builder.to_bytes().unwrap()).unwrap())
    };

    // A file name with a line break: one row over two lines.
    let (report, snapshot) = build(format!(
        "{header}\"2026-11-29 06:58:41\", \"{}\", \"{}\", \"{}\", \"invoice\n.pdf\", \"AgentTesla\"\n\
         \"2026-11-29 06:58:42\", \"{}\", \"n/a\", \"n/a\", \"b.exe\", \"n/a\"\n",
        real[0],
        real[1],
        real[2],
        "0".repeat(64),
    ));
    assert_eq!((report.lines, report.keys), (4, 4), "{report:?}");
    assert_eq!(report.malformed, 0, "{:?}", report.errors);
    for hex in real {
        let r = snapshot.lookup_digest(&digest(hex)).expect("the real row");
        assert_eq!(r.name(), Some("AgentTesla"));
    }

    // A file name that opens a quote and holds a forged row of the empty file's hashes: the
    // continuation is part of the row that opened the quote, never a row of its own.
    let (report, snapshot) = build(format!(
        "{header}\"2026-11-29 06:58:41\", \"{}\", \"{}\", \"{}\", \"invoice\n\
         \"2026-11-29 06:58:41\", \"{}\", \"{}\", \"{}\", \"x\", \"Forged\"\n",
        real[0], real[1], real[2], empty[0], empty[1], empty[2],
    ));
    for hex in empty {
        assert!(
            snapshot.lookup_digest(&digest(hex)).is_none(),
            "{hex} listed"
        );
    }
    assert_eq!(report.keys, 0, "{report:?}");
    assert_eq!(report.malformed, 1, "{report:?}");
    assert_eq!(report.errors[0].0, 2, "{report:?}");

    // An unclosed quote is reported at the row's first line, and nothing after it is a row.
    std::fs::write(
        &path,
        format!(
            "# \"first_seen_utc\",\"sha256_hash\"\n\"2026-11-29\", \"{}\n2026-11-29, {}\n",
            real[0], empty[0]
        ),
    )
    .unwrap();
    match read(&path, FeedFormat::MalwareBazaar, true) {
        Err(Error::Feed {
            line: 2, reason, ..
        }) => {
            assert!(reason.contains("not closed"), "{reason}")
        }
        other => panic!("expected a feed error at line 2, got {other:?}"),
    }
}
