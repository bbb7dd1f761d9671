//! The `repute-gen` binary's contract: output, exit codes, error messages.

use std::path::PathBuf;
use std::process::{Command, Output};

fn repute_gen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_repute-gen"))
        .args(args)
        .output()
        .expect("the repute-gen binary runs")
}

fn library_feed(format: repute_gen::Format, lines: u64, seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    repute_gen::write_feed(&mut out, format, lines, seed).unwrap();
    out
}

/// A path in the system temporary directory, unique to this process and test.
fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("repute-gen-test-{}-{name}", std::process::id()))
}

#[test]
fn stdout_matches_the_library() {
    let out = repute_gen(&["urls", "--lines", "200", "--seed", "9"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, library_feed(repute_gen::Format::Urls, 200, 9));
    assert!(out.stderr.is_empty());
}

#[test]
fn default_seed_is_one() {
    let out = repute_gen(&["hosts", "-n", "20"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, library_feed(repute_gen::Format::Hosts, 20, 1));
}

#[test]
fn writes_the_output_file() {
    let path = temp_path("out.txt");
    let out = repute_gen(&[
        "sha256sum",
        "-n",
        "50",
        "-s",
        "3",
        "-o",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty());
    let written = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(written, library_feed(repute_gen::Format::Sha256sum, 50, 3));
}

#[test]
fn bad_arguments_exit_2_with_usage() {
    for args in [
        &[][..],
        &["hashes"][..],
        &["nope", "--lines", "3"][..],
        &["hashes", "--lines", "x"][..],
        &["hashes", "--lines", "3", "--bogus"][..],
    ] {
        let out = repute_gen(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.starts_with("repute-gen: error: "), "{stderr}");
        assert!(stderr.contains("usage: repute-gen FORMAT"), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn unwritable_output_exits_1() {
    let dir = temp_path("missing-dir");
    let path = dir.join("out.txt");
    let out = repute_gen(&["domains", "-n", "5", "-o", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("cannot create"), "{stderr}");
}

#[test]
fn help_lists_the_formats() {
    let out = repute_gen(&["--help"]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    for format in repute_gen::Format::ALL {
        assert!(stdout.contains(format.name()), "{stdout}");
    }
}
