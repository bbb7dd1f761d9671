//! `repute publish`: a content-addressed, signed channel directory, checked with
//! sha256sum and Debian's minisign as oracles.

use std::path::Path;
use std::process::Command;

mod common;
use common::{run as repute, sha256sum, stderr as err};

fn build(dir: &Path, out: &str, sequence: &str, feed: &str) {
    std::fs::write(dir.join("feed.txt"), feed).unwrap();
    let o = repute(
        dir,
        &[
            "build",
            "-o",
            out,
            "--created",
            "1700000000",
            "--sequence",
            sequence,
            "--feed",
            "hashes::feed.txt",
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
}

#[test]
fn publish_writes_a_signed_content_addressed_channel() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    assert!(repute(p, &["keygen", "-p", "k.pub", "-s", "k.key"])
        .status
        .success());
    build(p, "one.snap", "1", "44d88612fea8a8f36de82e1278abb02f\n");
    build(
        p,
        "two.snap",
        "2",
        "44d88612fea8a8f36de82e1278abb02f\n3395856ce81f2b7382dee72602f798b642f14140\n",
    );

    let o = repute(p, &["publish", "one.snap", "--dir", "ch", "-s", "k.key"]);
    assert!(o.status.success(), "{}", err(&o));
    let ch = p.join("ch");
    let one = sha256sum(&p.join("one.snap"));
    let base_one = ch.join(format!("{one}.snap"));
    assert_eq!(sha256sum(&base_one), one);
    let o = Command::new("minisign")
        .current_dir(&ch)
        .args(["-Vm", "manifest.json", "-p", "../k.pub"])
        .output()
        .expect("minisign is not installed: apt-get install minisign (.ci/run does)");
    assert!(o.status.success(), "{}", err(&o));
    assert!(repute(
        p,
        &[
            "verify",
            base_one.to_str().unwrap(),
            "--public-key",
            "k.pub"
        ]
    )
    .status
    .success());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ch.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["sequence"], 1);
    assert_eq!(manifest["base"]["sha256"], one.as_str());
    assert_eq!(
        manifest["base"]["size"],
        std::fs::metadata(&base_one).unwrap().len()
    );

    // The same sequence again: refused, the channel untouched.
    let before = std::fs::read(ch.join("manifest.json")).unwrap();
    let o = repute(p, &["publish", "one.snap", "--dir", "ch", "-s", "k.key"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("already at sequence 1"), "{}", err(&o));
    assert_eq!(std::fs::read(ch.join("manifest.json")).unwrap(), before);

    // The next sequence: a new base; the old one is still there, byte for byte.
    let old_bytes = std::fs::read(&base_one).unwrap();
    let o = repute(p, &["publish", "two.snap", "--dir", "ch", "-s", "k.key"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(std::fs::read(&base_one).unwrap(), old_bytes);
    let two = sha256sum(&p.join("two.snap"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ch.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["sequence"], 2);
    assert_eq!(manifest["base"]["sha256"], two.as_str());
    assert_eq!(manifest["history"][0]["sha256"], one.as_str());
    // No temporary files left behind.
    for entry in std::fs::read_dir(&ch).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(!name.to_string_lossy().starts_with(".tmp-"), "{name:?}");
    }
}
