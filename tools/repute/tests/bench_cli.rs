//! `repute bench` on a tiny snapshot: the report's shape and its warnings, not its speed
//! (nothing here is timed).

use std::process::Command;

fn bench(args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_repute"))
        .current_dir(dir.path())
        .arg("bench")
        .args([
            "--keys",
            "20k",
            "--urls",
            "2k",
            "--queries",
            "4k",
            "--seconds",
            "0.002",
        ])
        .args(args)
        .output()
        .expect("run repute bench")
}

#[test]
fn json_has_medians_spreads_both_probes_and_warnings() {
    let out = bench(&[
        "--reps",
        "3",
        "--threads",
        "1,2",
        "--baselines",
        "sorted",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["runs_per_figure"], 3);
    assert!(r["warnings"].is_array());
    assert!(r["cores"].as_u64().unwrap() >= 1);
    let rows = r["rates_millions_per_second"].as_array().unwrap();
    let row = |key: &str| {
        rows.iter()
            .find(|x| x["key"] == key)
            .unwrap_or_else(|| panic!("no row {key}"))
    };
    let filter_bytes = row("probe_filter")["probe_bytes"].as_u64().unwrap();
    let probe_bytes = row("probe")["probe_bytes"].as_u64().unwrap();
    assert!(filter_bytes >= 4096 && filter_bytes < probe_bytes);
    for key in [
        "probe",
        "probe_filter",
        "absent_batched",
        "url",
        "sorted_present",
    ] {
        let figures = row(key)["figures"].as_array().unwrap();
        assert_eq!(figures.len(), 2);
        assert_eq!(figures[0]["basis"], "cpu");
        assert_eq!(figures[1]["basis"], "wall");
        for f in figures {
            let (lo, mid, hi) = (
                f["min"].as_f64().unwrap(),
                f["median"].as_f64().unwrap(),
                f["max"].as_f64().unwrap(),
            );
            assert!(lo > 0.0 && lo <= mid && mid <= hi, "{key}: {f}");
        }
    }
    // Ratios are of medians.
    let ratio = r["ratios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "absent batched / filter-sized probe")
        .unwrap();
    let a = row("absent_batched")["rates"][0].as_f64().unwrap();
    let p = row("probe_filter")["rates"][0].as_f64().unwrap();
    assert!((ratio["values"][0].as_f64().unwrap() - a / p).abs() < 1e-9);
    assert_eq!(ratio["goal"], 1.0);
}

#[test]
fn more_threads_than_cores_warns_on_stderr_and_in_the_text() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let many = (cores + 1).to_string();
    let out = bench(&["--reps", "1", "--threads", &many, "--baselines", "none"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let text = String::from_utf8_lossy(&out.stdout);
    let warning = format!("{many} threads measured on a machine with {cores} core(s)");
    assert!(err.contains(&format!("bench: warning: {warning}")), "{err}");
    assert!(text.contains(&warning), "{text}");
    assert!(
        text.contains("absent batched / filter-sized probe"),
        "{text}"
    );
}

#[test]
fn bad_options_are_clear_errors() {
    for (args, says) in [
        (&["--reps", "0"][..], "--reps"),
        (&["--seconds", "0"][..], "--seconds"),
        (&["--probe-bytes", "lots"][..], "is not a size"),
        (&["--threads", "0"][..], "at least 1"),
    ] {
        let out = bench(args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
