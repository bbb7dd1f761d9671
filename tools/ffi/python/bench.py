"""Rough throughput of the Python package against spawning the CLI (not run by CI).

    python tools/ffi/python/bench.py SNAPSHOT [REPUTE_BIN]

Prints lookups per second for lookup_many over 1 M random hex SHA-256 digests, single
lookup() calls, and `repute lookup` spawned once per 1,000 queries.
"""

import os
import subprocess
import sys
import time

import repute


def rate(n, seconds):
    return f"{n / seconds / 1e6:.2f} M/s"


def main():
    snap = repute.Snapshot(sys.argv[1])
    cli = sys.argv[2] if len(sys.argv) > 2 else "repute"
    digests = [os.urandom(32).hex() for _ in range(1_000_000)]
    snap.lookup_many(digests[:10_000])
    t = time.perf_counter()
    snap.lookup_many(digests)
    print("lookup_many, 1M hex sha256:", rate(len(digests), time.perf_counter() - t))
    packed = bytes.fromhex("".join(digests))
    t = time.perf_counter()
    snap.lookup_many(packed, kind="sha256")
    print("lookup_many, 1M packed raw sha256:", rate(len(digests), time.perf_counter() - t))
    lookup = snap.lookup
    some = digests[:200_000]
    t = time.perf_counter()
    for d in some:
        lookup(d)
    print("lookup(), 200k hex sha256:", rate(len(some), time.perf_counter() - t))
    batch = "\n".join(digests[:1000]) + "\n"
    t = time.perf_counter()
    for _ in range(20):
        subprocess.run([cli, "lookup", sys.argv[1], "--format", "jsonl"], input=batch,
                       capture_output=True, text=True, check=False)
    print("spawn `repute lookup` per 1,000:", rate(20_000, time.perf_counter() - t))


if __name__ == "__main__":
    main()
