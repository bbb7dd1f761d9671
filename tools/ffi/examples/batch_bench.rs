//! The Rust side of the C-versus-Rust batch comparison (see the README's "Performance").
//!
//! `batch_bench DIR KEYS QUERIES ROUNDS` builds a snapshot of `KEYS` SHA-256 digests in
//! `DIR/bench.snap`, writes `QUERIES` packed raw digests (half listed, half not, in random
//! order) to `DIR/queries.bin`, maps the snapshot and times `Snapshot::lookup_digests` over
//! all queries `ROUNDS` times, printing the median rate and the spread. `tools/ffi/bench/batch.c`
//! times `repute_snapshot_lookup_batch` over the same two files.

// Mapping the snapshot (as the C side does) is `unsafe`: see the SAFETY note below.
#![allow(unsafe_code)]

use std::time::Instant;

use repute::{Digest, FeedInfo, RecordId, RecordSpec, Snapshot, SnapshotBuilder, Verdict};
use repute_gen::Generator;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: batch_bench DIR KEYS QUERIES ROUNDS");
        std::process::exit(2);
    }
    let dir = std::path::Path::new(&args[1]);
    let keys: usize = args[2].parse().expect("KEYS is a number");
    let queries: usize = args[3].parse().expect("QUERIES is a number");
    let rounds: usize = args[4].parse().expect("ROUNDS is a number");
    std::fs::create_dir_all(dir).expect("create DIR");

    let mut gen = Generator::new(2026);
    let listed: Vec<[u8; 32]> = (0..keys).map(|_| gen.sha256()).collect();
    let mut builder = SnapshotBuilder::new();
    let feed = builder.add_feed(FeedInfo::new("bench", "hashes", Verdict::Malicious));
    for d in &listed {
        let digest = Digest::from_bytes(d).expect("32 bytes");
        builder.add_digest(feed, digest, RecordSpec::new(Verdict::Malicious));
    }
    let snap_path = dir.join("bench.snap");
    builder.write(&snap_path).expect("write the snapshot");

    let mut packed = Vec::with_capacity(queries * 32);
    for i in 0..queries {
        if i % 2 == 0 {
            packed.extend_from_slice(&listed[gen.below(keys as u64) as usize]);
        } else {
            packed.extend_from_slice(&gen.sha256());
        }
    }
    std::fs::write(dir.join("queries.bin"), &packed).expect("write queries");

    // SAFETY: the file was just written by this process and nothing modifies it.
    let snapshot = unsafe { Snapshot::map(&snap_path) }.expect("map the snapshot");
    let digests: Vec<Digest> = packed
        .chunks_exact(32)
        .map(|c| Digest::from_bytes(c).expect("32 bytes"))
        .collect();
    let mut out = vec![None::<RecordId>; digests.len()];
    let mut rates = Vec::with_capacity(rounds);
    let mut rates_with_parse = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        snapshot.lookup_digests(&digests, &mut out);
        rates.push(queries as f64 / start.elapsed().as_secs_f64() / 1e6);
        let start = Instant::now();
        let parsed: Vec<Digest> = packed
            .chunks_exact(32)
            .map(|c| Digest::from_bytes(c).expect("32 bytes"))
            .collect();
        snapshot.lookup_digests(&parsed, &mut out);
        rates_with_parse.push(queries as f64 / start.elapsed().as_secs_f64() / 1e6);
    }
    let hits = out.iter().filter(|id| id.is_some()).count();
    report("rust Snapshot::lookup_digests", &mut rates, hits);
    report(
        "rust from raw bytes + lookup_digests",
        &mut rates_with_parse,
        hits,
    );
}

fn report(what: &str, rates: &mut [f64], hits: usize) {
    rates.sort_by(f64::total_cmp);
    println!(
        "{what}: median {:.2} M/s (min {:.2}, max {:.2}, {} rounds, {hits} hits)",
        rates[rates.len() / 2],
        rates[0],
        rates[rates.len() - 1],
        rates.len()
    );
}
