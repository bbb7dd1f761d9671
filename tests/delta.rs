//! Deltas: diff then merge gives the new snapshot byte for byte (a property test over random
//! additions, changes and removals of digests and URLs), and a delta for another base is
//! refused.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use repute::digest::TableLayout;
use repute::url::EntryKind;
use repute::{delta, Digest, Error, FeedInfo, RecordSpec, Snapshot, SnapshotBuilder, Verdict};

/// Key `u` of the test universe: a digest of one of three kinds, a URL or a domain.
enum Key {
    Digest(Digest),
    Web(String, EntryKind),
}

fn key(u: u32) -> Key {
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (u.wrapping_mul(2_654_435_761).rotate_left(i as u32 % 32) >> 8) as u8 ^ i as u8;
    }
    bytes[0] = (u >> 8) as u8;
    bytes[1] = u as u8;
    match u % 5 {
        0 => Key::Digest(Digest::from_bytes(&bytes[..16]).unwrap()),
        1 => Key::Digest(Digest::from_bytes(&bytes[..20]).unwrap()),
        2 => Key::Digest(Digest::from_bytes(&bytes[..32]).unwrap()),
        3 => Key::Web(
            format!("http://h{}.example.com/p/{u}", u % 7),
            EntryKind::Url,
        ),
        _ => Key::Web(format!("d{u}.example.org"), EntryKind::Domain),
    }
}

/// A set of keys: key -> (record variant, listed twice by two feeds).
type Set = BTreeMap<u32, (u8, bool)>;

fn build(set: &Set, sequence: u64) -> Vec<u8> {
    build_as(set, sequence, TableLayout::BucketIndex)
}

fn build_as(set: &Set, sequence: u64, layout: TableLayout) -> Vec<u8> {
    let mut b = SnapshotBuilder::new();
    b.table_layout(layout);
    let a = b.add_feed(FeedInfo::new("a", "hashes", Verdict::Malicious));
    let c = b.add_feed(FeedInfo::new("c", "hashes", Verdict::Trusted));
    b.created(1_000 + sequence as i64).sequence(sequence);
    for (u, (variant, twice)) in set {
        let spec = match variant % 4 {
            0 => RecordSpec::default(),
            1 => RecordSpec::new(Verdict::Suspicious).name(format!("n{}", u % 3)),
            2 => RecordSpec::new(Verdict::Malicious).category("trojan"),
            _ => RecordSpec::new(Verdict::Known).name(format!("only-{u}")),
        };
        let feeds: &[_] = if *twice { &[a, c] } else { &[a] };
        for feed in feeds {
            match key(*u) {
                Key::Digest(d) => b.add_digest(*feed, d, spec.clone()),
                Key::Web(text, kind) => b.add_url_entry(*feed, &text, kind, spec.clone()).unwrap(),
            }
        }
    }
    b.to_bytes().unwrap()
}

/// Diff and merge, with the old and new snapshots' digest tables in the given layouts (a
/// merge rebuilds the new one's, also when the base has the other).
fn diff_then_merge(
    old: &Set,
    new: &Set,
    layouts: (TableLayout, TableLayout),
    dir: &Path,
) -> (Vec<u8>, Vec<u8>, delta::DeltaSummary) {
    let old_snap = Snapshot::open(build_as(old, 1, layouts.0)).unwrap();
    let new_bytes = build_as(new, 2, layouts.1);
    let new_snap = Snapshot::open(new_bytes.clone()).unwrap();
    let delta_path = dir.join("d.delta");
    let summary = delta::diff(&old_snap, &new_snap, &delta_path).unwrap();
    let d = Snapshot::read(&delta_path).unwrap();
    d.verify().unwrap();
    assert!(d.is_delta());
    let info = d.delta_info().unwrap().unwrap();
    assert_eq!(info.base_identity, old_snap.identity());
    assert_eq!(info.result_identity, new_snap.identity());
    assert_eq!((info.base_sequence, info.result_sequence), (1, 2));
    let out = dir.join("merged.snap");
    delta::merge(&old_snap, &[&d], &out).unwrap();
    (std::fs::read(&out).unwrap(), new_bytes, summary)
}

fn set_strategy() -> impl Strategy<Value = Set> {
    prop::collection::btree_map(0..400u32, (0..4u8, prop::bool::weighted(0.15)), 0..150)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn diff_then_merge_equals_a_fresh_build(
        old in set_strategy(),
        edits in prop::collection::vec((0..400u32, prop::option::weighted(0.7, (0..4u8, prop::bool::weighted(0.15)))), 0..80),
        slots in (any::<bool>(), any::<bool>()),
    ) {
        let layout = |s: bool| if s { TableLayout::HomeSlots } else { TableLayout::BucketIndex };
        let layouts = (layout(slots.0), layout(slots.1));
        let mut new = old.clone();
        for (u, edit) in edits {
            match edit {
                Some(v) => { new.insert(u, v); }
                None => { new.remove(&u); }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let (merged, fresh, summary) = diff_then_merge(&old, &new, layouts, dir.path());
        prop_assert!(merged == fresh, "merged snapshot differs from a fresh build");
        let added = new.keys().filter(|u| !old.contains_key(u)).count() as u64;
        let removed = old.keys().filter(|u| !new.contains_key(u)).count() as u64;
        prop_assert_eq!(summary.added, added);
        prop_assert_eq!(summary.removed, removed);
    }
}

#[test]
fn chained_deltas_merge_to_the_last_snapshot() {
    let s1: Set = (0..100).map(|u| (u, (u as u8 % 4, u % 9 == 0))).collect();
    let mut s2 = s1.clone();
    s2.retain(|u, _| u % 7 != 0);
    s2.insert(500, (1, false));
    let mut s3 = s2.clone();
    s3.insert(3, (2, false));
    s3.insert(601, (3, true));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let b1 = Snapshot::open(build(&s1, 1)).unwrap();
    let b2 = Snapshot::open(build(&s2, 2)).unwrap();
    let b3 = build(&s3, 3);
    let b3s = Snapshot::open(b3.clone()).unwrap();
    delta::diff(&b1, &b2, &p.join("2.delta")).unwrap();
    delta::diff(&b2, &b3s, &p.join("3.delta")).unwrap();
    let d2 = Snapshot::read(p.join("2.delta")).unwrap();
    let d3 = Snapshot::read(p.join("3.delta")).unwrap();
    delta::merge(&b1, &[&d2, &d3], &p.join("3.snap")).unwrap();
    assert_eq!(std::fs::read(p.join("3.snap")).unwrap(), b3);

    // Out of order: the second delta is for snapshot 2, not 1.
    let err = delta::merge(&b1, &[&d3], &p.join("x.snap")).unwrap_err();
    assert!(matches!(err, Error::WrongBase { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&b2.identity()) && text.contains(&b1.identity()),
        "{text}"
    );
    assert!(!p.join("x.snap").exists());
    // A whole snapshot is not a delta, and a delta is not a base.
    assert!(matches!(
        delta::merge(&b1, &[&b2], &p.join("x.snap")),
        Err(Error::Delta(_))
    ));
    assert!(matches!(
        delta::merge(&d2, &[&d3], &p.join("x.snap")),
        Err(Error::Delta(_))
    ));
    assert!(matches!(
        delta::diff(&d2, &b2, &p.join("x.delta")),
        Err(Error::Delta(_))
    ));
    let leftovers: Vec<_> = std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_delta_is_sized_by_the_change() {
    let base: Set = (0..5000).map(|u| (u, (0, false))).collect();
    let mut next = base.clone();
    for u in 0..50 {
        next.insert(u * 97, (1, false));
        next.insert(10_000 + u, (0, false));
    }
    let dir = tempfile::tempdir().unwrap();
    let (merged, fresh, summary) = diff_then_merge(
        &base,
        &next,
        (TableLayout::HomeSlots, TableLayout::HomeSlots),
        dir.path(),
    );
    assert_eq!(merged, fresh);
    assert_eq!(
        (summary.added, summary.changed, summary.removed),
        (50, 50, 0)
    );
    assert!(
        summary.bytes * 10 < fresh.len() as u64,
        "{} vs {}",
        summary.bytes,
        fresh.len()
    );
}

#[test]
fn old_readers_refuse_a_delta() {
    // The delta flag is a required feature: clearing the known flag set would refuse it, and
    // a file with an unknown flag bit is refused by this build.
    let s: Set = (0..10).map(|u| (u, (0, false))).collect();
    let mut t = s.clone();
    t.remove(&3);
    let dir = tempfile::tempdir().unwrap();
    let a = Snapshot::open(build(&s, 1)).unwrap();
    let b = Snapshot::open(build(&t, 2)).unwrap();
    delta::diff(&a, &b, &dir.path().join("d")).unwrap();
    let bytes = std::fs::read(dir.path().join("d")).unwrap();
    assert_eq!(
        u32::from_le_bytes(bytes[12..16].try_into().unwrap()),
        repute::format::FLAG_DELTA
    );
    assert_eq!(
        repute::format::KNOWN_REQUIRED_FLAGS & repute::format::FLAG_DELTA,
        1
    );
}
