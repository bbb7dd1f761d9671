//! The CLI contract of policies, snapshot identities, deltas and update state directories,
//! driving the real `repute` binary in a temporary directory.

use std::path::Path;
use std::process::{Command, Output};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_repute"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run repute")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

#[test]
fn build_policy_from_toml_and_json_shows_in_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("bad.txt"), "44d88612fea8a8f36de82e1278abb02f\n").unwrap();
    std::fs::write(
        p.join("policy.toml"),
        "cloud = \"restricted\"\nmax_per_minute = 60\nkinds = [\"url\"]\nuntil = 4102444800\n",
    )
    .unwrap();
    std::fs::write(
        p.join("policy.json"),
        r#"{"cloud": "disabled", "reason": "maintenance"}"#,
    )
    .unwrap();
    let build = |policy: &str, out: &str| {
        run(
            p,
            &[
                "build",
                "-o",
                out,
                "--feed",
                "hashes:malicious:bad.txt",
                "--created",
                "1",
                "--policy",
                policy,
            ],
        )
    };
    ok(&build("policy.toml", "t.snap"));
    let text = run(p, &["inspect", "t.snap"]);
    ok(&text);
    assert!(
        stdout(&text).contains(
            "cloud        enabled with restrictions (urls only, 60/min, until 2100-01-01)"
        ),
        "{}",
        stdout(&text)
    );
    let json = run(p, &["inspect", "t.snap", "--format", "json"]);
    ok(&json);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["metadata"]["policy"]["cloud"], "restricted");
    assert_eq!(v["metadata"]["policy"]["max_per_minute"], 60);
    assert!(v["cloud"]
        .as_str()
        .unwrap()
        .starts_with("enabled with restrictions"));

    ok(&build("policy.json", "j.snap"));
    let text = run(p, &["inspect", "j.snap"]);
    assert!(stdout(&text).contains("cloud        disabled (maintenance)"));

    // A snapshot without a policy says the cloud is enabled.
    ok(&run(
        p,
        &[
            "build",
            "-o",
            "n.snap",
            "--feed",
            "hashes:malicious:bad.txt",
            "--created",
            "1",
        ],
    ));
    assert!(stdout(&run(p, &["inspect", "n.snap"])).contains("cloud        enabled\n"));

    // A bad policy file is refused, naming the file and the field.
    std::fs::write(
        p.join("bad.toml"),
        "cloud = \"restricted\"\nkinds = [\"ip\"]\n",
    )
    .unwrap();
    let bad = build("bad.toml", "b.snap");
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("bad.toml") && stderr(&bad).contains("\"ip\""),
        "{}",
        stderr(&bad)
    );
    std::fs::write(p.join("typo.toml"), "clod = \"disabled\"\n").unwrap();
    let typo = build("typo.toml", "b.snap");
    assert_eq!(typo.status.code(), Some(2));
    assert!(stderr(&typo).contains("clod"), "{}", stderr(&typo));
    assert!(!p.join("b.snap").exists());
}

#[test]
fn diff_and_merge_rebuild_the_new_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("v1.txt"),
        "44d88612fea8a8f36de82e1278abb02f\n00112233445566778899aabbccddeeff\n",
    )
    .unwrap();
    std::fs::write(
        p.join("v2.txt"),
        "44d88612fea8a8f36de82e1278abb02f\nffeeddccbbaa99887766554433221100\n",
    )
    .unwrap();
    std::fs::write(p.join("d1.txt"), "bad.example\n").unwrap();
    std::fs::write(p.join("d2.txt"), "worse.example\n").unwrap();
    for v in ["1", "2"] {
        // The same feed names each time (a record names its source feed).
        std::fs::copy(p.join(format!("v{v}.txt")), p.join("hashes.txt")).unwrap();
        std::fs::copy(p.join(format!("d{v}.txt")), p.join("domains.txt")).unwrap();
        ok(&run(
            p,
            &[
                "build",
                "-o",
                &format!("v{v}.snap"),
                "--created",
                "5",
                "--sequence",
                v,
                "--feed",
                "hashes:malicious:hashes.txt",
                "--feed",
                "domains:malicious:domains.txt",
            ],
        ));
    }
    let d = run(p, &["diff", "v1.snap", "v2.snap", "-o", "2.delta"]);
    ok(&d);
    assert!(
        stderr(&d).contains("2 added, 0 changed, 2 removed"),
        "{}",
        stderr(&d)
    );
    ok(&run(p, &["verify", "2.delta"]));
    ok(&run(p, &["merge", "v1.snap", "2.delta", "-o", "m.snap"]));
    assert_eq!(
        std::fs::read(p.join("m.snap")).unwrap(),
        std::fs::read(p.join("v2.snap")).unwrap()
    );
    // A delta for another base is refused, with both identities named.
    let bad = run(p, &["merge", "v2.snap", "2.delta", "-o", "x.snap"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("delta applies to base"),
        "{}",
        stderr(&bad)
    );
    assert!(!p.join("x.snap").exists());
}
