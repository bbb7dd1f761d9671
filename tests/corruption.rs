//! Damaged, truncated and forged snapshots give errors naming what is wrong; nothing panics.

use repute::digest::TableLayout;
use repute::url::{EntryKind, Expressions};
use repute::{Digest, Error, FeedInfo, Query, RecordSpec, Snapshot, SnapshotBuilder, Verdict};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

const HEADER_FIXED: usize = 32;
const ENTRY: usize = 32;
const TRAILER: usize = 32;

fn digests() -> Vec<Digest> {
    [
        "44d88612fea8a8f36de82e1278abb02f",
        "3395856ce81f2b7382dee72602f798b642f14140",
        "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
    ]
    .iter()
    .map(|h| h.parse().unwrap())
    .chain((0u8..40).map(|i| Digest::from_bytes(&[i.wrapping_mul(37); 32]).unwrap()))
    .collect()
}

fn sample() -> Vec<u8> {
    sample_as(TableLayout::BucketIndex)
}

/// The sample in each digest table layout.
fn samples() -> [Vec<u8>; 2] {
    [
        sample_as(TableLayout::BucketIndex),
        sample_as(TableLayout::HomeSlots),
    ]
}

fn sample_as(layout: TableLayout) -> Vec<u8> {
    let mut b = SnapshotBuilder::new();
    b.created(1_700_000_000).table_layout(layout);
    let bad = b.add_feed(FeedInfo::new("bad", "hashes", Verdict::Malicious));
    let good = b.add_feed(FeedInfo::new("good", "sha256sum", Verdict::Trusted));
    for (i, d) in digests().into_iter().enumerate() {
        let feed = if i % 3 == 0 { good } else { bad };
        b.add_digest(
            feed,
            d,
            RecordSpec::default().name(format!("Threat.{}", i % 5)),
        );
    }
    for d in ["malware.example.com", "phish.test", "ads.tracker.test"] {
        b.add_url_entry(bad, d, EntryKind::Domain, RecordSpec::default())
            .unwrap();
    }
    b.add_url_entry(
        bad,
        "http://evil.example.net/payload.exe",
        EntryKind::Url,
        RecordSpec::default(),
    )
    .unwrap();
    b.to_bytes().unwrap()
}

/// Every kind of lookup, on a snapshot that may be damaged: must not panic.
fn exercise(snap: &Snapshot<&[u8]>) {
    let keys = digests();
    for d in &keys {
        let _ = snap
            .lookup_digest(d)
            .map(|r| (r.verdict(), r.name(), r.source(), r.category()));
    }
    let mut out = vec![None; keys.len()];
    snap.lookup_digests(&keys, &mut out);
    let mut scratch = Expressions::new();
    for q in [
        "http://a.malware.example.com/x",
        "phish.test",
        "http://evil.example.net/payload.exe",
    ] {
        if let Query::Url(u) | Query::Domain(u) = Query::parse(q).unwrap() {
            let _ = snap.lookup_url(&u, &mut scratch);
        }
    }
    let _ = snap.metadata();
    let _ = snap.url_entries();
}

#[test]
fn sample_is_valid() {
    for bytes in samples() {
        let snap = Snapshot::open(&bytes[..]).unwrap();
        snap.verify().unwrap();
        let d: Digest = "44d88612fea8a8f36de82e1278abb02f".parse().unwrap();
        assert_eq!(snap.lookup_digest(&d).unwrap().verdict(), Verdict::Trusted);
    }
}

#[test]
fn empty_and_garbage_inputs() {
    assert!(matches!(
        Snapshot::open(&[][..]),
        Err(Error::Truncated { .. })
    ));
    assert!(matches!(
        Snapshot::open(&b"RPUT"[..]),
        Err(Error::Truncated { .. })
    ));
    assert!(matches!(
        Snapshot::open(&b"hello world, not a snapshot"[..]),
        Err(Error::Magic)
    ));
    assert!(matches!(
        Snapshot::open(&[0u8; 4096][..]),
        Err(Error::Magic)
    ));
}

#[test]
fn every_truncation_is_an_error() {
    for bytes in samples() {
        for n in 0..bytes.len() {
            let r = Snapshot::open(&bytes[..n]);
            assert!(r.is_err(), "truncated to {n} bytes opened");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            Snapshot::open(&longer[..]).is_err(),
            "trailing byte accepted"
        );
    }
}

#[test]
fn every_bit_flip_is_caught_by_open_or_verify() {
    for bytes in samples() {
        for i in 0..bytes.len() {
            for bit in [0u8, 3, 7] {
                let mut damaged = bytes.clone();
                damaged[i] ^= 1 << bit;
                match Snapshot::open(&damaged[..]) {
                    Err(_) => {}
                    Ok(snap) => {
                        exercise(&snap);
                        assert!(
                            snap.verify().is_err(),
                            "flip of bit {bit} at byte {i} passed verify"
                        );
                    }
                }
            }
        }
    }
}

/// Rewrites the header checksum and trailer after editing the header.
fn reseal(bytes: &mut [u8]) {
    let n = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
    let table_end = HEADER_FIXED + n * ENTRY;
    let sum = xxh3_64(&bytes[..table_end]);
    bytes[table_end..table_end + 8].copy_from_slice(&sum.to_le_bytes());
    let t = bytes.len() - TRAILER;
    let digest = xxh3_128(&bytes[..t]);
    bytes[t + 16..].copy_from_slice(&digest.to_le_bytes());
}

/// Changes byte `at` inside section `index` and recomputes every checksum, as a forger would.
fn forge(bytes: &[u8], section: usize, at: usize, xor: u8) -> Option<Vec<u8>> {
    let mut out = bytes.to_vec();
    let e = HEADER_FIXED + section * ENTRY;
    let offset = u64::from_le_bytes(out[e + 8..e + 16].try_into().unwrap()) as usize;
    let length = u64::from_le_bytes(out[e + 16..e + 24].try_into().unwrap()) as usize;
    if at >= length {
        return None;
    }
    out[offset + at] ^= xor;
    let sum = xxh3_64(&out[offset..offset + length]);
    out[e + 24..e + 32].copy_from_slice(&sum.to_le_bytes());
    reseal(&mut out);
    Some(out)
}

#[test]
fn forged_sections_never_panic_or_pass_silently_wrong() {
    for bytes in samples() {
        let n = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
        let mut forged_count = 0;
        for section in 0..n {
            for at in 0.. {
                let Some(forged) = forge(&bytes, section, at, 0x5a) else {
                    break;
                };
                forged_count += 1;
                // Checksums match, so open succeeds or reports a structural problem.
                if let Ok(snap) = Snapshot::open(&forged[..]) {
                    exercise(&snap);
                    // verify either finds the damage or the forged file is self-consistent; in
                    // the latter case every lookup it answers is by construction what the file says.
                    let _ = snap.verify();
                }
            }
        }
        assert!(forged_count > 1000);
    }
}

#[test]
fn unknown_version_and_required_flags() {
    let mut v2 = sample();
    v2[8..12].copy_from_slice(&2u32.to_le_bytes());
    reseal(&mut v2);
    match Snapshot::open(&v2[..]) {
        Err(Error::Version {
            supported: 1,
            found: 2,
        }) => {}
        other => panic!("expected a version error, got {other:?}"),
    }
    let mut flagged = sample();
    flagged[12..16].copy_from_slice(&0x10u32.to_le_bytes());
    reseal(&mut flagged);
    assert!(matches!(
        Snapshot::open(&flagged[..]),
        Err(Error::RequiredFeatures { flags: 0x10 })
    ));

    // An unknown section kind marked required is refused; unmarked it is ignored.
    let mut unknown = sample();
    unknown[HEADER_FIXED..HEADER_FIXED + 4].copy_from_slice(&999u32.to_le_bytes());
    reseal(&mut unknown);
    let err = Snapshot::open(&unknown[..]).unwrap_err();
    assert!(err.to_string().contains("999"), "{err}");
}

#[test]
fn damaged_header_names_the_header() {
    let mut bytes = sample();
    bytes[20] ^= 1;
    match Snapshot::open(&bytes[..]) {
        Err(Error::Checksum {
            section: "header", ..
        }) => {}
        other => panic!("expected a header checksum error, got {other:?}"),
    }
}

#[test]
fn damaged_body_names_the_section() {
    let bytes = sample();
    let n = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
    for section in 0..n {
        let e = HEADER_FIXED + section * ENTRY;
        let offset = u64::from_le_bytes(bytes[e + 8..e + 16].try_into().unwrap()) as usize;
        let mut damaged = bytes.clone();
        damaged[offset + 1] ^= 0x40;
        let Ok(snap) = Snapshot::open(&damaged[..]) else {
            continue;
        };
        let err = snap.verify().unwrap_err();
        assert!(matches!(err, Error::Checksum { .. }), "{err}");
    }
}

#[cfg(unix)]
#[test]
fn directories_fifos_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    assert!(Snapshot::read(dir.path()).is_err());
    #[allow(unsafe_code)]
    // SAFETY: the path is a directory; mapping is refused before anything is mapped.
    let mapped = unsafe { Snapshot::map(dir.path()) };
    assert!(mapped.is_err());
    let fifo = dir.path().join("fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    // Must return an error, not block waiting for a writer.
    let err = Snapshot::read(&fifo).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    assert!(Snapshot::read(dir.path().join("missing.snap")).is_err());
    let empty = dir.path().join("empty.snap");
    std::fs::write(&empty, b"").unwrap();
    #[allow(unsafe_code)]
    // SAFETY: the file is not modified while mapped (it is empty and refused anyway).
    let mapped = unsafe { Snapshot::map(&empty) };
    assert!(matches!(mapped, Err(Error::Truncated { .. })));
}

#[test]
fn damaged_metadata_is_named_as_a_checksum_failure() {
    let mut bytes = sample();
    let snap = Snapshot::open(&bytes[..]).unwrap();
    let (_, offset, length) = snap
        .sections()
        .into_iter()
        .find(|s| s.0 == "metadata")
        .unwrap();
    // A byte inside a JSON string value keeps the JSON valid-looking or not; either way the
    // checksum names the damage.
    let at = (offset + length / 2) as usize;
    bytes[at] ^= 0x01;
    let snap = Snapshot::open(&bytes[..]).unwrap();
    match snap.metadata() {
        Err(Error::Checksum { section, .. }) => assert_eq!(section, "metadata"),
        other => panic!("expected a metadata checksum error, got {other:?}"),
    }
}
