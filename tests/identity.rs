//! `Snapshot::identity` is the SHA-256 of the whole file, as coreutils' `sha256sum` computes it.

use repute::{Digest, FeedInfo, RecordSpec, Snapshot, SnapshotBuilder, Verdict};

#[test]
fn identity_is_the_files_sha256() {
    let mut builder = SnapshotBuilder::new();
    let feed = builder.add_feed(FeedInfo::new("t", "hashes", Verdict::Malicious));
    let d: Digest = "44d88612fea8a8f36de82e1278abb02f".parse().unwrap();
    builder.add_digest(feed, d, RecordSpec::default());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.snap");
    builder.write(&path).unwrap();
    let snapshot = Snapshot::read(&path).unwrap();
    let identity = snapshot.identity();
    assert_eq!(identity.len(), 64);
    let Ok(out) = std::process::Command::new("sha256sum").arg(&path).output() else {
        // coreutils is on every CI machine; skip only where it is missing.
        return;
    };
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.split_whitespace().next(), Some(identity.as_str()));
}
