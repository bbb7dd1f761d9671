//! The CLI contract of policies, snapshot identities, deltas and update state directories,
//! driving the real `repute` binary in a temporary directory.

mod common;
use common::{ok, run, stderr, stdout};

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

#[test]
fn lookup_scan_and_status_answer_from_a_state_directory() {
    use repute::engine::state::{Current, StateDir};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    // EICAR's MD5 (the scanned file below hashes to it) is added by the delta.
    let eicar = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    std::fs::create_dir(p.join("scan")).unwrap();
    std::fs::write(p.join("scan/eicar.com"), eicar).unwrap();
    std::fs::write(p.join("hashes.txt"), "00112233445566778899aabbccddeeff\n").unwrap();
    std::fs::write(
        p.join("policy.toml"),
        "cloud = \"restricted\"\nmax_per_minute = 60\nkinds = [\"url\"]\nuntil = 4102444800\n",
    )
    .unwrap();
    let build = |out: &str, seq: &str| {
        ok(&run(
            p,
            &[
                "build",
                "-o",
                out,
                "--created",
                "5",
                "--sequence",
                seq,
                "--expires",
                "10",
                "--policy",
                "policy.toml",
                "--feed",
                "hashes:malicious:hashes.txt",
            ],
        ))
    };
    build("v1.snap", "1");
    std::fs::write(
        p.join("hashes.txt"),
        "44d88612fea8a8f36de82e1278abb02f\n00112233445566778899aabbccddeeff\n",
    )
    .unwrap();
    build("v2.snap", "2");
    ok(&run(p, &["diff", "v1.snap", "v2.snap", "-o", "2.delta"]));
    let state = StateDir::create(p.join("state")).unwrap();
    let base = state
        .add(&std::fs::read(p.join("v1.snap")).unwrap())
        .unwrap();
    let delta = state
        .add(&std::fs::read(p.join("2.delta")).unwrap())
        .unwrap();
    state
        .install(&Current {
            sequence: 2,
            base: base.clone(),
            deltas: vec![delta.clone()],
        })
        .unwrap();

    let hit = run(p, &["lookup", "state", "44d88612fea8a8f36de82e1278abb02f"]);
    assert_eq!(hit.status.code(), Some(1), "{}", stderr(&hit));
    assert!(stdout(&hit).contains("malicious"));
    let miss = run(p, &["lookup", "state", "ffffffffffffffffffffffffffffffff"]);
    assert_eq!(miss.status.code(), Some(0));
    // A snapshot file still works, and the base alone does not know EICAR.
    let old = run(
        p,
        &["lookup", "v1.snap", "44d88612fea8a8f36de82e1278abb02f"],
    );
    assert_eq!(old.status.code(), Some(0));
    // A delta on its own is refused.
    let d = run(
        p,
        &["lookup", "2.delta", "44d88612fea8a8f36de82e1278abb02f"],
    );
    assert_eq!(d.status.code(), Some(2));
    assert!(stderr(&d).contains("is a delta"), "{}", stderr(&d));

    let scan = run(p, &["scan", "state", "scan"]);
    assert_eq!(
        scan.status.code(),
        Some(1),
        "{}{}",
        stdout(&scan),
        stderr(&scan)
    );

    let text = run(p, &["status", "state"]);
    ok(&text);
    let t = stdout(&text);
    assert!(t.contains("sequence     2"), "{t}");
    assert!(t.contains("stale        yes"), "{t}");
    assert!(t.contains("layers       2"), "{t}");
    assert!(
        t.contains(&format!(
            "  delta      {}",
            delta.trim_end_matches(".delta")
        )),
        "{t}"
    );
    assert!(
        t.contains("cloud: enabled with restrictions (urls only, 60/min, until 2100-01-01)"),
        "{t}"
    );
    let json = run(p, &["status", "state", "--format", "json"]);
    ok(&json);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["sequence"], 2);
    assert_eq!(v["stale"], true);
    assert_eq!(v["base"], base.trim_end_matches(".snap"));
    assert_eq!(v["policy"]["cloud"], "restricted");
    let missing = run(p, &["status", "nowhere"]);
    assert_eq!(missing.status.code(), Some(2));
}
