//! Signatures: `repute keygen`, `repute sign`, `repute verify --public-key`, checked in both
//! directions against Debian's `minisign` (the independent implementation; CI installs it).

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{run as repute, sha256sum, stderr as err, stdout as out};

fn minisign(dir: &Path, args: &[&str]) -> Output {
    Command::new("minisign")
        .current_dir(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("minisign is not installed: apt-get install minisign (.ci/run does)")
}

/// A directory holding `s.snap` with sequence 42.
fn snapshot_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.txt"),
        "44d88612fea8a8f36de82e1278abb02f\n3395856ce81f2b7382dee72602f798b642f14140\n",
    )
    .unwrap();
    let o = repute(
        dir.path(),
        &[
            "build",
            "-o",
            "s.snap",
            "--created",
            "1700000000",
            "--sequence",
            "42",
            "--feed",
            "hashes::bad.txt",
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    dir
}

fn flip_byte(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    let at = at % b.len();
    b[at] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

#[test]
fn repute_signature_verifies_with_minisign_and_repute() {
    let dir = snapshot_dir();
    let p = dir.path();
    let o = repute(p, &["keygen", "-p", "k.pub", "-s", "k.key"]);
    assert!(o.status.success(), "{}", err(&o));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(p.join("k.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // keygen does not overwrite keys.
    let o = repute(p, &["keygen", "-p", "k.pub", "-s", "k.key"]);
    assert_eq!(o.status.code(), Some(2));

    let o = repute(p, &["sign", "s.snap", "-s", "k.key"]);
    assert!(o.status.success(), "{}", err(&o));
    let identity = sha256sum(&p.join("s.snap"));
    let sig = std::fs::read_to_string(p.join("s.snap.minisig")).unwrap();
    assert!(
        sig.contains(&format!(
            "trusted comment: repute snapshot sequence=42 identity={identity} kind=base\n"
        )),
        "{sig}"
    );

    let o = minisign(p, &["-Vm", "s.snap", "-p", "k.pub"]);
    assert!(
        o.status.success(),
        "minisign refused: {}{}",
        out(&o),
        err(&o)
    );
    assert!(
        out(&o).contains(&format!("identity={identity}")),
        "{}",
        out(&o)
    );

    let o = repute(p, &["verify", "s.snap", "--public-key", "k.pub"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("sequence 42"), "{}", out(&o));
}

#[test]
fn minisign_signature_and_key_work_with_repute() {
    let dir = snapshot_dir();
    let p = dir.path();
    // Debian's minisign 0.11 writes unencrypted keys with a zero checksum.
    let o = minisign(p, &["-G", "-W", "-p", "m.pub", "-s", "m.key"]);
    assert!(o.status.success(), "{}", err(&o));
    let identity = sha256sum(&p.join("s.snap"));
    let comment = format!("repute snapshot sequence=42 identity={identity} kind=base");
    let o = minisign(p, &["-S", "-s", "m.key", "-m", "s.snap", "-t", &comment]);
    assert!(o.status.success(), "{}", err(&o));
    let o = repute(p, &["verify", "s.snap", "--public-key", "m.pub"]);
    assert!(o.status.success(), "{}", err(&o));

    // A signature by minisign whose trusted comment does not name the snapshot: refused.
    let o = minisign(p, &["-S", "-s", "m.key", "-m", "s.snap", "-t", "hello"]);
    assert!(o.status.success(), "{}", err(&o));
    let o = repute(p, &["verify", "s.snap", "--public-key", "m.pub"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("not a repute snapshot signature"),
        "{}",
        err(&o)
    );
    let wrong_seq = comment.replace("sequence=42", "sequence=43");
    let o = minisign(p, &["-S", "-s", "m.key", "-m", "s.snap", "-t", &wrong_seq]);
    assert!(o.status.success(), "{}", err(&o));
    let o = repute(p, &["verify", "s.snap", "--public-key", "m.pub"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("another snapshot"), "{}", err(&o));

    // repute signs with minisign's (zero-checksum) secret key; minisign verifies.
    let o = repute(p, &["sign", "s.snap", "-s", "m.key"]);
    assert!(o.status.success(), "{}", err(&o));
    let o = minisign(p, &["-Vm", "s.snap", "-p", "m.pub"]);
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
}

#[test]
fn one_changed_byte_is_refused() {
    let dir = snapshot_dir();
    let p = dir.path();
    assert!(repute(p, &["keygen", "-p", "k.pub", "-s", "k.key"])
        .status
        .success());
    let o = repute(p, &["verify", "s.snap", "--public-key", "k.pub"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("signature missing"), "{}", err(&o));

    assert!(repute(p, &["sign", "s.snap", "-s", "k.key"])
        .status
        .success());
    let good_snap = std::fs::read(p.join("s.snap")).unwrap();
    let good_sig = std::fs::read_to_string(p.join("s.snap.minisig")).unwrap();
    let refused = |why: &str| {
        let o = repute(p, &["verify", "s.snap", "--public-key", "k.pub"]);
        assert_eq!(o.status.code(), Some(2), "{why}: {}", out(&o));
        let m = minisign(p, &["-Vm", "s.snap", "-p", "k.pub"]);
        assert!(!m.status.success(), "minisign accepted {why}");
        err(&o)
    };

    // The snapshot: bytes at the start, the middle and the end (the signature check or the
    // checksums refuse it; either way the message names the cause).
    for at in [0, good_snap.len() / 2, good_snap.len() - 1] {
        flip_byte(&p.join("s.snap"), at);
        let e = refused("a changed snapshot byte");
        assert!(
            e.contains("s.snap")
                && (e.contains("damaged") || e.contains("does not match") || e.contains("magic")),
            "{e}"
        );
        std::fs::write(p.join("s.snap"), &good_snap).unwrap();
    }

    // The signature line: change one base64 character of the signature bytes.
    let lines: Vec<&str> = good_sig.lines().collect();
    let mut sig_line: Vec<u8> = lines[1].as_bytes().to_vec();
    sig_line[20] = if sig_line[20] == b'A' { b'B' } else { b'A' };
    let changed = format!(
        "{}\n{}\n{}\n{}\n",
        lines[0],
        String::from_utf8(sig_line).unwrap(),
        lines[2],
        lines[3]
    );
    std::fs::write(p.join("s.snap.minisig"), changed).unwrap();
    let e = refused("a changed signature");
    assert!(e.contains("signature"), "{e}");

    // The trusted comment: one character.
    let changed = good_sig.replace("sequence=42", "sequence=43");
    std::fs::write(p.join("s.snap.minisig"), changed).unwrap();
    let e = refused("a changed trusted comment");
    assert!(e.contains("does not match"), "{e}");

    // Another key.
    std::fs::write(p.join("s.snap.minisig"), &good_sig).unwrap();
    assert!(repute(p, &["keygen", "-p", "o.pub", "-s", "o.key"])
        .status
        .success());
    let o = repute(p, &["verify", "s.snap", "--public-key", "o.pub"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("another key"), "{}", err(&o));

    // And the untouched pair still verifies.
    let o = repute(p, &["verify", "s.snap", "--public-key", "k.pub"]);
    assert!(o.status.success(), "{}", err(&o));
}
