#!/usr/bin/env bash
# What taking part in the cloud costs a scan: `repute scan` of a generated tree of 2,000
# files (1-64 KiB each) with participation off, on with its service unreachable, and on with
# a service on loopback, timed by hyperfine (Debian's package) in one run. Prints each case's
# median wall time and CPU time (user + system) as a ratio to "off", which runs first and
# last (their spread is the run's noise). Not part of CI. Everything it starts is stopped,
# and its temporary directory removed, on exit.
#
# Usage: participation.sh [REPUTE-BINARY] [RUNS]
set -euo pipefail
bin=${1:-target/release/repute}
runs=${2:-15}
command -v hyperfine >/dev/null || { echo "participation.sh: install hyperfine (apt-get install hyperfine)" >&2; exit 2; }
[ -x "$bin" ] || { echo "participation.sh: no repute binary at $bin (cargo build --release -p repute-cli)" >&2; exit 2; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
data=$(cd "$(dirname "$0")/../../../data" && pwd)
tmp=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
cd "$tmp"
python3 - <<'PY'
import os, random
random.seed(3)
for d in range(20):
    os.makedirs(f"tree/d{d}")
    for f in range(100):
        with open(f"tree/d{d}/f{f}.bin", "wb") as out:
            out.write(random.randbytes(random.randint(1024, 65536)))
PY
"$bin" build -o s.snap --manifest "$data/feeds.toml" >/dev/null 2>&1
mkdir -p off unreachable reachable
"$bin" serve s.snap --listen 127.0.0.1:0 --stats-db stats.db 2> serve.log &
pid=$!
for _ in $(seq 1 200); do grep -q 'listening on' serve.log 2>/dev/null && break; sleep 0.05; done
url=$(sed -n 's/^repute serve: listening on //p' serve.log | head -1)
[ -n "$url" ] || { cat serve.log >&2; exit 1; }
# Port 9 (discard) on loopback: nothing listens there.
XDG_CONFIG_HOME=$tmp/unreachable "$bin" cloud join --service http://127.0.0.1:9 --yes >/dev/null
XDG_CONFIG_HOME=$tmp/reachable "$bin" cloud join --service "$url" --yes >/dev/null
scan() { echo "env XDG_CONFIG_HOME=$tmp/$1 $bin scan s.snap tree --no-summary --threads 2"; }
hyperfine -N -i -w 3 -r "$runs" --export-json hf.json \
  -n off "$(scan off)" -n on-unreachable "$(scan unreachable)" \
  -n on-reachable "$(scan reachable)" -n off-again "$(scan off)" >/dev/null
echo "repute scan of 2,000 files (67 MB), $runs runs each, $(nproc) cores"
python3 - <<'PY'
import json
r = {x["command"]: x for x in json.load(open("hf.json"))["results"]}
wall = (r["off"]["median"] + r["off-again"]["median"]) / 2
cpu = sum(r[k]["user"] + r[k]["system"] for k in ("off", "off-again")) / 2
for k in ("off", "on-unreachable", "on-reachable", "off-again"):
    c = r[k]["user"] + r[k]["system"]
    print(f"{k:15s} wall median {r[k]['median'] * 1000:7.1f} ms ({r[k]['median'] / wall:.3f}x off)"
          f"   cpu {c * 1000:7.1f} ms ({c / cpu:.3f}x off)")
PY
XDG_CONFIG_HOME=$tmp/reachable "$bin" cloud status | grep -E '^queued' || true
