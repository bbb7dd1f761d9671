//! What a new user hits on the first day, through the real binary: one output vocabulary
//! (`--format json|jsonl`, the schema version, structured errors), scan's listing options,
//! standard input and file lists, archives (members, roll-up, bombs, nesting), the
//! `pip-record` feed, override feeds on the command line, completions and man pages, and
//! errors that point the right way. Digests are checked against coreutils.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
const EICAR_MD5: &str = "44d88612fea8a8f36de82e1278abb02f";

fn repute(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_repute"))
        .current_dir(dir)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start repute");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    child.wait_with_output().unwrap()
}

fn run(dir: &Path, args: &[&str]) -> Output {
    repute(dir, args, None)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The digest `tool` (md5sum, sha256sum) prints for a file.
fn oracle(tool: &str, path: &Path) -> String {
    let out = Command::new(tool).arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// `bad.snap`: EICAR's MD5 as malicious, the SHA-256 of `trusted.txt` as trusted, and a
/// suspicious MD5 of `pua.bin`.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    fs::create_dir_all(p.join("tree")).unwrap();
    fs::write(p.join("tree/eicar.com"), EICAR).unwrap();
    fs::write(p.join("tree/trusted.txt"), b"a trusted file\n").unwrap();
    fs::write(p.join("tree/pua.bin"), b"some adware\n").unwrap();
    fs::write(p.join("tree/unknown.txt"), b"nobody knows\n").unwrap();
    fs::write(p.join("bad.txt"), format!("{EICAR_MD5}\n")).unwrap();
    let trusted = oracle("sha256sum", &p.join("tree/trusted.txt"));
    fs::write(p.join("good.sha256"), format!("{trusted}  trusted.txt\n")).unwrap();
    let pua = oracle("md5sum", &p.join("tree/pua.bin"));
    fs::write(p.join("pua.txt"), format!("{pua}\n")).unwrap();
    let o = run(
        p,
        &[
            "build",
            "-o",
            "bad.snap",
            "--feed",
            "hashes::bad.txt",
            "--feed",
            "sha256sum::good.sha256",
            "--feed",
            "hashes:suspicious:pua.txt",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    dir
}

// ---- item 12: one vocabulary for machine output ----

#[test]
fn json_and_jsonl_are_one_format_with_a_schema_version_everywhere() {
    let dir = setup();
    let p = dir.path();
    for args in [
        vec!["lookup", "bad.snap", EICAR_MD5],
        vec!["scan", "bad.snap", "tree", "--all"],
        vec!["inspect", "bad.snap"],
        vec!["verify", "bad.snap"],
    ] {
        let mut outputs = Vec::new();
        for format in ["json", "jsonl"] {
            let mut a = args.clone();
            a.extend(["--format", format]);
            let o = run(p, &a);
            assert!(o.status.code().unwrap() < 2, "{a:?}: {}", stderr(&o));
            let lines = json_lines(&o);
            assert!(!lines.is_empty(), "{a:?}");
            for line in &lines {
                assert_eq!(line["schema"], "repute/1", "{a:?}: {line}");
            }
            outputs.push(lines.len());
        }
        assert_eq!(outputs[0], outputs[1], "{args:?}");
    }
    // build's report too.
    let o = run(
        p,
        &[
            "build",
            "-o",
            "again.snap",
            "--feed",
            "hashes::bad.txt",
            "--format",
            "jsonl",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_lines(&o)[0]["schema"], "repute/1");
}

#[test]
fn lookup_and_scan_use_the_same_field_names() {
    let dir = setup();
    let p = dir.path();
    let o = run(p, &["lookup", "bad.snap", EICAR_MD5, "--format", "json"]);
    let lookup = &json_lines(&o)[0];
    let o = run(
        p,
        &["scan", "bad.snap", "tree/eicar.com", "--format", "json"],
    );
    let scan = &json_lines(&o)[0];
    for field in ["verdict", "type", "matched", "source"] {
        assert_eq!(lookup[field], scan[field], "{field}: {lookup} vs {scan}");
    }
    assert_eq!(scan["matched"], EICAR_MD5);
    assert_eq!(scan["type"], "md5");
    // Neither uses another name for the same thing.
    for j in [lookup, scan] {
        for other in ["match", "matched_kind", "score"] {
            assert!(j.get(other).is_none(), "{j}");
        }
    }
}

#[test]
fn errors_are_structured_objects() {
    let dir = setup();
    let p = dir.path();
    // A bad query among good ones.
    let o = run(
        p,
        &[
            "lookup",
            "bad.snap",
            EICAR_MD5,
            "hello world!!",
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["error"]["kind"], "query");
    assert!(lines[1]["error"]["message"].is_string());
    // A command that fails as a whole: the error object goes to stdout too.
    for args in [
        vec!["lookup", "missing.snap", EICAR_MD5],
        vec!["scan", "missing.snap", "tree"],
        vec!["inspect", "missing.snap"],
        vec!["verify", "missing.snap"],
    ] {
        let mut a = args.clone();
        a.extend(["--format", "json"]);
        let o = run(p, &a);
        assert_eq!(o.status.code(), Some(2), "{a:?}");
        let lines = json_lines(&o);
        assert_eq!(lines.len(), 1, "{a:?}: {}", stdout(&o));
        assert_eq!(lines[0]["schema"], "repute/1");
        assert_eq!(
            lines[0]["error"]["kind"], "not_found",
            "{a:?}: {}",
            lines[0]
        );
        assert!(lines[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing.snap"));
        assert!(stderr(&o).contains("missing.snap"));
    }
    // A scan error for one file.
    let o = run(
        p,
        &["scan", "bad.snap", "tree", "nothere", "--format", "json"],
    );
    assert_eq!(o.status.code(), Some(2));
    let missing = json_lines(&o)
        .into_iter()
        .find(|l| l["path"] == "nothere")
        .unwrap();
    assert_eq!(missing["entry"], "error");
    assert_eq!(missing["error"]["kind"], "not_found");
}

#[test]
fn stdin_skips_blank_lines_and_comments_and_help_matches_output() {
    let dir = setup();
    let p = dir.path();
    let input = format!("\n# a comment\n   \n{EICAR_MD5}\n  # indented comment\n");
    let o = repute(p, &["lookup", "bad.snap"], Some(input.as_bytes()));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stdout(&o);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert_eq!(
        text.lines().next().unwrap().split('\t').count(),
        4,
        "{text}"
    );
    let help = stdout(&run(p, &["lookup", "--help"]));
    assert!(help.contains("tab-separated"), "{help}");
    assert!(!help.contains("aligned"), "{help}");
}

// ---- item 13: scan output ----

fn listed_paths(o: &Output) -> Vec<String> {
    stdout(o)
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

#[test]
fn scan_lists_malicious_and_suspicious_by_default() {
    let dir = setup();
    let p = dir.path();
    let o = run(p, &["scan", "bad.snap", "tree"]);
    assert_eq!(o.status.code(), Some(1));
    let mut listed = listed_paths(&o);
    listed.sort();
    assert_eq!(listed, ["tree/eicar.com", "tree/pua.bin"], "{}", stdout(&o));
    // The summary still counts every file.
    assert!(stderr(&o).contains("1 trusted"), "{}", stderr(&o));

    let o = run(p, &["scan", "bad.snap", "tree", "--all"]);
    assert_eq!(listed_paths(&o).len(), 4);
    let o = run(
        p,
        &["scan", "bad.snap", "tree", "--show", "trusted,unknown"],
    );
    let mut listed = listed_paths(&o);
    listed.sort();
    assert_eq!(listed, ["tree/trusted.txt", "tree/unknown.txt"]);
    let o = run(p, &["scan", "bad.snap", "tree", "--show", "bogus"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn sort_path_is_stable_across_thread_counts() {
    let dir = setup();
    let p = dir.path();
    for i in 0..40 {
        let sub = p.join(format!("tree/d{}", i % 7));
        fs::create_dir_all(&sub).unwrap();
        fs::write(sub.join(format!("f{i}")), EICAR).unwrap();
    }
    let mut outputs = Vec::new();
    for threads in ["1", "2", "4"] {
        let o = run(
            p,
            &[
                "scan",
                "bad.snap",
                "tree",
                "--sort",
                "path",
                "--threads",
                threads,
            ],
        );
        let listed = listed_paths(&o);
        let mut sorted = listed.clone();
        sorted.sort();
        assert_eq!(listed, sorted);
        assert_eq!(listed.len(), 42);
        outputs.push(stdout(&o));
    }
    assert!(outputs.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn quiet_and_no_summary() {
    let dir = setup();
    let p = dir.path();
    let o = run(p, &["scan", "bad.snap", "tree", "--quiet"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    let o = run(p, &["scan", "bad.snap", "tree", "--no-summary"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    assert_eq!(listed_paths(&o).len(), 2);
    // Errors still show with --quiet.
    let o = run(p, &["scan", "bad.snap", "nothere", "-q"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).starts_with("nothere\terror\t"), "{}", stdout(&o));
}

#[test]
fn scan_reads_standard_input_and_file_lists() {
    let dir = setup();
    let p = dir.path();
    let o = repute(
        p,
        &["scan", "bad.snap", "-", "--format", "json"],
        Some(EICAR),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let line = &json_lines(&o)[0];
    assert_eq!(line["path"], "-");
    assert_eq!(line["verdict"], "malicious");
    assert_eq!(line["md5"], EICAR_MD5);
    let o = repute(p, &["scan", "bad.snap", "-"], Some(b"clean"));
    assert_eq!(o.status.code(), Some(0));

    // A file list with a blank line; paths listed once each.
    fs::write(p.join("list.txt"), "tree/eicar.com\n\ntree/trusted.txt\n").unwrap();
    let o = run(p, &["scan", "bad.snap", "--file-list", "list.txt", "--all"]);
    assert_eq!(o.status.code(), Some(1));
    let mut listed = listed_paths(&o);
    listed.sort();
    assert_eq!(listed, ["tree/eicar.com", "tree/trusted.txt"]);
    let o = repute(
        p,
        &["scan", "bad.snap", "--file-list", "-", "--all"],
        Some(b"tree/pua.bin\n"),
    );
    assert_eq!(listed_paths(&o), ["tree/pua.bin"]);
    let o = run(p, &["scan", "bad.snap", "--file-list", "nosuch.txt"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nosuch.txt"));
}

// ---- item 14: archives ----

fn zip_bytes(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in members {
        w.start_file(*name, options).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn tar_bytes(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        b.append_data(&mut header, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn members_of_every_archive_format_are_hashed_and_rolled_up() {
    let dir = setup();
    let p = dir.path();
    let a = p.join("arch");
    fs::create_dir_all(&a).unwrap();
    let notes = b"release notes\n".as_slice();
    fs::write(
        a.join("e.zip"),
        zip_bytes(&[("docs/notes.txt", notes), ("bin/eicar.com", EICAR)]),
    )
    .unwrap();
    let tar = tar_bytes(&[("notes.txt", notes), ("x/eicar.com", EICAR)]);
    fs::write(a.join("e.tar"), &tar).unwrap();
    fs::write(a.join("e.tar.gz"), gzip_bytes(&tar)).unwrap();
    fs::write(a.join("e.tgz"), gzip_bytes(&tar)).unwrap();
    fs::write(a.join("eicar.com.gz"), gzip_bytes(EICAR)).unwrap();
    fs::write(a.join("eicar.com.zst"), zstd::encode_all(EICAR, 3).unwrap()).unwrap();
    fs::write(a.join("clean.zip"), zip_bytes(&[("notes.txt", notes)])).unwrap();
    // Nested: a zip inside a tar.gz.
    let inner = zip_bytes(&[("deep/eicar.com", EICAR)]);
    fs::write(
        a.join("nested.tgz"),
        gzip_bytes(&tar_bytes(&[("in.zip", &inner)])),
    )
    .unwrap();

    let o = run(
        p,
        &["scan", "bad.snap", "arch", "--all", "--format", "json"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let lines = json_lines(&o);
    let by_path: HashMap<String, &serde_json::Value> = lines
        .iter()
        .map(|l| (l["path"].as_str().unwrap().to_string(), l))
        .collect();
    let malicious_members = [
        "arch/e.zip!bin/eicar.com",
        "arch/e.tar!x/eicar.com",
        "arch/e.tar.gz!x/eicar.com",
        "arch/e.tgz!x/eicar.com",
        "arch/eicar.com.gz!eicar.com",
        "arch/eicar.com.zst!eicar.com",
        "arch/nested.tgz!in.zip!deep/eicar.com",
    ];
    for m in malicious_members {
        let line = by_path
            .get(m)
            .unwrap_or_else(|| panic!("{m} missing: {}", stdout(&o)));
        assert_eq!(line["entry"], "member");
        assert_eq!(line["verdict"], "malicious", "{m}");
        assert_eq!(line["md5"], EICAR_MD5);
        let archive = m.split('!').next().unwrap();
        let rolled = by_path[archive];
        assert_eq!(rolled["entry"], "file");
        assert_eq!(rolled["verdict"], "malicious", "{archive}");
        // The archive's own digests are the file's, its verdict names the member.
        assert_eq!(rolled["sha256"], oracle("sha256sum", &p.join(archive)));
        assert_eq!(rolled["member"], m);
    }
    // Clean members carry the digests coreutils gives for the same bytes.
    fs::write(p.join("notes.txt"), notes).unwrap();
    let notes_sha256 = oracle("sha256sum", &p.join("notes.txt"));
    for m in [
        "arch/e.zip!docs/notes.txt",
        "arch/e.tar.gz!notes.txt",
        "arch/clean.zip!notes.txt",
    ] {
        assert_eq!(by_path[m]["sha256"], notes_sha256, "{m}");
        assert_eq!(by_path[m]["verdict"], "unknown");
    }
    assert_eq!(by_path["arch/clean.zip"]["verdict"], "unknown");

    // Text: by default the malicious archive and its member are listed.
    let o = run(p, &["scan", "bad.snap", "arch/e.zip"]);
    let text = stdout(&o);
    assert!(text.contains("arch/e.zip\tmalicious\t"), "{text}");
    assert!(text.contains("member=arch/e.zip!bin/eicar.com"), "{text}");
    assert!(
        text.contains("arch/e.zip!bin/eicar.com\tmalicious\t"),
        "{text}"
    );
    // --no-archives: a zip is a plain file again.
    let o = run(p, &["scan", "bad.snap", "arch/e.zip", "--no-archives"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn a_zip_bomb_is_reported_and_never_expanded() {
    let dir = setup();
    let p = dir.path();
    // 64 MiB of zeros deflate to about 64 KiB: a 1000:1 member.
    let zeros = vec![0u8; 64 << 20];
    fs::write(
        p.join("bomb.zip"),
        zip_bytes(&[("zeros.bin", &zeros), ("eicar.com", EICAR)]),
    )
    .unwrap();
    drop(zeros);
    let o = run(p, &["scan", "bad.snap", "bomb.zip", "--format", "json"]);
    let lines = json_lines(&o);
    let bomb = lines
        .iter()
        .find(|l| l["path"] == "bomb.zip!zeros.bin")
        .unwrap_or_else(|| panic!("{}", stdout(&o)));
    assert_eq!(bomb["entry"], "limit");
    assert_eq!(bomb["error"]["kind"], "limit");
    assert!(bomb["error"]["message"].as_str().unwrap().contains("bomb"));
    assert!(bomb.get("sha256").is_none());
    // The member after the bomb is still read, and the archive rolls up.
    assert!(lines
        .iter()
        .any(|l| l["path"] == "bomb.zip!eicar.com" && l["verdict"] == "malicious"));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("1 limits reached"), "{}", stderr(&o));

    // A gzip stream of zeros is cut off at the ratio, not expanded.
    let zeros = vec![0u8; 64 << 20];
    fs::write(p.join("zeros.gz"), gzip_bytes(&zeros)).unwrap();
    drop(zeros);
    let o = run(p, &["scan", "bad.snap", "zeros.gz"]);
    assert!(
        stdout(&o).contains("zeros.gz!zeros\tlimit\tdecompression bomb"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn depth_and_member_limits() {
    let dir = setup();
    let p = dir.path();
    let inner = zip_bytes(&[("eicar.com", EICAR)]);
    let middle = zip_bytes(&[("inner.zip", &inner)]);
    fs::write(p.join("outer.zip"), zip_bytes(&[("middle.zip", &middle)])).unwrap();
    let o = run(
        p,
        &["scan", "bad.snap", "outer.zip", "--archive-depth", "2"],
    );
    let text = stdout(&o);
    assert!(
        text.contains("outer.zip!middle.zip!inner.zip\tlimit\t"),
        "{text}"
    );
    assert!(!text.contains("inner.zip!eicar.com"), "{text}");
    assert_eq!(o.status.code(), Some(0));
    let o = run(p, &["scan", "bad.snap", "outer.zip"]);
    assert!(stdout(&o).contains("outer.zip!middle.zip!inner.zip!eicar.com\tmalicious"));
    assert_eq!(o.status.code(), Some(1));

    let many: Vec<(String, Vec<u8>)> = (0..10)
        .map(|i| (format!("f{i}"), format!("{i}").into_bytes()))
        .collect();
    let refs: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    fs::write(p.join("many.zip"), zip_bytes(&refs)).unwrap();
    let o = run(
        p,
        &[
            "scan",
            "bad.snap",
            "many.zip",
            "--archive-max-members",
            "3",
            "--all",
        ],
    );
    let text = stdout(&o);
    assert_eq!(text.matches("many.zip!f").count(), 4, "{text}");
    assert!(text.contains("\tlimit\tmore than 3 members"), "{text}");
}

#[test]
fn damaged_archives_never_stop_the_scan() {
    let dir = setup();
    let p = dir.path();
    let mut bytes = b"PK\x03\x04".to_vec();
    bytes.extend((0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    fs::write(p.join("broken.zip"), &bytes).unwrap();
    let mut gz = gzip_bytes(EICAR);
    gz.truncate(gz.len() / 2);
    fs::write(p.join("cut.gz"), gz).unwrap();
    let o = run(p, &["scan", "bad.snap", "broken.zip", "cut.gz", "--all"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("broken.zip\tunknown"), "{text}");
    assert!(text.contains("broken.zip\tdamaged\t"), "{text}");
}

// ---- item 15: pip-record feeds and override feeds on the command line ----

/// URL-safe base64 without padding, from the standard alphabet's output.
fn urlsafe_unpadded(standard: &str) -> String {
    standard
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn a_pip_record_feed_trusts_installed_files() {
    let dir = setup();
    let p = dir.path();
    let site = p.join("site-packages/pkg");
    fs::create_dir_all(&site).unwrap();
    let mut record = String::new();
    for i in 0..20 {
        let name = format!("mod{i}.py");
        // Bytes chosen so that many digests hold `+` or `/` in standard base64.
        let data: Vec<u8> = (0..(i * 37 + 5)).map(|b| (b * 7 + i) as u8).collect();
        fs::write(site.join(&name), &data).unwrap();
        let sha256 = oracle("sha256sum", &site.join(&name));
        let encoded = if i % 5 == 0 {
            sha256.clone() // some distributions write hex
        } else {
            urlsafe_unpadded(&repute::text::base64(&hex_bytes(&sha256)))
        };
        record.push_str(&format!("pkg/{name},sha256={encoded},{}\n", data.len()));
    }
    record.push_str("pkg-1.0.dist-info/RECORD,,\n");
    record.push_str("pkg/bad.py,sha512=abc,3\n");
    fs::write(p.join("RECORD"), &record).unwrap();
    let o = run(
        p,
        &[
            "build",
            "-o",
            "site.snap",
            "--feed",
            "pip-record::RECORD",
            "--report",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report = &json_lines(&o)[0];
    assert_eq!(report["feeds"][0]["keys"], 20, "{report}");
    assert_eq!(report["feeds"][0]["malformed"], 1, "{report}");
    let o = run(
        p,
        &[
            "scan",
            "site.snap",
            "site-packages",
            "--show",
            "trusted",
            "--format",
            "json",
        ],
    );
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 20, "{}", stdout(&o));
    for l in &lines {
        assert_eq!(l["verdict"], "trusted");
        assert_eq!(l["type"], "sha256");
        let path = l["path"].as_str().unwrap();
        assert_eq!(
            l["name"],
            format!("pkg/{}", path.rsplit('/').next().unwrap())
        );
    }
}

#[test]
fn an_override_feed_given_on_the_command_line_wins() {
    let dir = setup();
    let p = dir.path();
    // The blocklist flags EICAR by MD5; the allowlist trusts it by SHA-256.
    let sha256 = oracle("sha256sum", &p.join("tree/eicar.com"));
    fs::write(p.join("allow.sha256"), format!("{sha256}  eicar.com\n")).unwrap();
    for verdict_field in ["override", "trusted+override"] {
        let feed = format!("sha256sum:{verdict_field}:allow.sha256");
        let o = run(
            p,
            &[
                "build",
                "-o",
                "fp.snap",
                "--feed",
                "hashes::bad.txt",
                "--feed",
                &feed,
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let o = run(p, &["scan", "fp.snap", "tree/eicar.com", "--all"]);
        assert_eq!(o.status.code(), Some(0), "{verdict_field}: {}", stdout(&o));
        assert!(
            stdout(&o).starts_with("tree/eicar.com\ttrusted\t"),
            "{}",
            stdout(&o)
        );
    }
    // Without the override the malicious MD5 wins.
    let o = run(
        p,
        &[
            "build",
            "-o",
            "plain.snap",
            "--feed",
            "hashes::bad.txt",
            "--feed",
            "sha256sum::allow.sha256",
        ],
    );
    assert!(o.status.success());
    let o = run(p, &["scan", "plain.snap", "tree/eicar.com"]);
    assert_eq!(o.status.code(), Some(1));
    let o = run(
        p,
        &[
            "build",
            "-o",
            "x.snap",
            "--feed",
            "hashes:bogus+override:bad.txt",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
}

// ---- item 16: completions and man pages ----

#[test]
fn completions_and_man_pages_come_from_the_cli_definition() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = run(p, &["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let script = stdout(&o);
        for sub in ["lookup", "scan", "build", "file-list"] {
            assert!(script.contains(sub), "{shell} lacks {sub}");
        }
    }
    let o = run(p, &["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(p, &["man"]);
    assert!(o.status.success());
    let page = stdout(&o);
    assert!(
        page.starts_with(".ie") || page.contains(".TH repute"),
        "{page:.200}"
    );
    let o = run(p, &["man", "--dir", "man1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let scan = fs::read_to_string(p.join("man1/repute-scan.1")).unwrap();
    assert!(scan.contains("archive"), "{scan:.400}");
    assert!(p.join("man1/repute.1").exists());
}

// ---- item 11: errors that point the right way ----

#[test]
fn a_bad_temp_dir_is_named_as_such() {
    let dir = setup();
    let p = dir.path();
    fs::write(p.join("afile"), b"").unwrap();
    for bad in ["nosuch-dir", "afile"] {
        let o = run(
            p,
            &[
                "build",
                "-o",
                "out.snap",
                "--feed",
                "hashes::bad.txt",
                "--temp-dir",
                bad,
            ],
        );
        assert_eq!(o.status.code(), Some(2));
        let err = stderr(&o);
        assert!(err.contains(&format!("--temp-dir {bad}")), "{err}");
        assert!(!err.contains("cannot write snapshot"), "{err}");
        assert!(!p.join("out.snap").exists());
    }
}

#[test]
fn messages_name_a_path_once() {
    let dir = setup();
    let p = dir.path();
    for args in [
        vec!["build", "-o", "out.snap", "--feed", "hashes::nosuch.txt"],
        vec!["inspect", "nosuch.txt"],
        vec!["verify", "nosuch.txt"],
        vec!["lookup", "nosuch.txt", EICAR_MD5],
        vec!["scan", "bad.snap", "--file-list", "nosuch.txt"],
    ] {
        let o = run(p, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert_eq!(err.matches("nosuch.txt").count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn member_names_cannot_forge_lines() {
    let dir = setup();
    let p = dir.path();
    // A tar member name with a newline, a tab, an escape sequence and a byte that is not UTF-8.
    let name: &[u8] = b"x\n/usr/bin/sudo\tmalicious\x1b[2J\xff.com";
    let mut b = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(EICAR.len() as u64);
    header.set_mode(0o644);
    {
        let gnu = header.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name);
    }
    header.set_cksum();
    b.append(&header, EICAR).unwrap();
    fs::write(p.join("evil.tar"), b.into_inner().unwrap()).unwrap();
    let o = run(p, &["scan", "bad.snap", "evil.tar"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stdout(&o);
    // Two lines: the archive and its member; nothing raw.
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(!text.contains('\x1b'), "{text}");
    assert!(
        text.contains("evil.tar!x\\n/usr/bin/sudo\\tmalicious\\x1B[2J\\xFF.com\tmalicious"),
        "{text}"
    );
    let o = run(p, &["scan", "bad.snap", "evil.tar", "--format", "json"]);
    let member = json_lines(&o)
        .into_iter()
        .find(|l| l["entry"] == "member")
        .unwrap();
    let mut full = b"evil.tar!".to_vec();
    full.extend_from_slice(name);
    assert_eq!(member["path_bytes"], repute::text::base64(&full));
}
