#!/usr/bin/env bash
# Load test for `repute serve` with wrk (Debian's package), every figure a ratio to a
# baseline measured in the same run with the same load generator. Not part of CI.
#
# It builds a snapshot of N MD5 keys (default 1,000,000), starts a private service on it and
# a caching proxy (no snapshot) in front of it, both on loopback, then measures:
#   healthz        GET /healthz on the private service: the HTTP stack's own rate (baseline)
#   lookup         GET /lookup/md5/{h}, known and unknown keys varying per request
#   bulk           POST /bulk/md5 with 1,000 hashes per request (half known)
#   snapshot-hit   GET /lookup/md5/{h} over 10,000 known keys, answered by the snapshot
#   cache-hit      the same keys through the proxy, answered from its cache (warmed first)
#   stats-50       POST /v1/statistics, reports of 50 items, a new reporter token per request,
#                  into a third service's statistics database (acknowledged = committed)
#   stats-1000     the same with reports of 1,000 items
# and the proxy's resident memory before and after. Everything it starts is stopped on exit.
#
# Usage: load.sh [REPUTE-BINARY] [SECONDS] [CONNECTIONS] [KEYS]
set -euo pipefail
bin=${1:-target/release/repute}
secs=${2:-10}
conns=${3:-64}
keys=${4:-1000000}
command -v wrk >/dev/null || { echo "load.sh: install wrk (apt-get install wrk)" >&2; exit 2; }
[ -x "$bin" ] || { echo "load.sh: no repute binary at $bin (cargo build --release -p repute-cli)" >&2; exit 2; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
cd "$tmp"

# key(i): 32 hex digits that the Lua scripts can compute too (doubles are exact below 2^53).
python3 - "$keys" <<'PY'
import sys, json
n = int(sys.argv[1])
key = lambda i: "%08x%08x%08x%08x" % (i, (i * 2654435761) % 4294967296, (i * 40503) % 4294967296, 0xbeef)
with open("bad.txt", "w") as f:
    for i in range(n):
        f.write(key(i) + "\n")
# Half known (i < n), half unknown (i >= n).
bulk = [key(i * 997 % n) if i % 2 == 0 else key(n + i) for i in range(1000)]
open("bulk.lua", "w").write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = \'%s\'\n' % json.dumps({"hashes": bulk}))
hot = [key(i) for i in range(min(n, 10000))]
open("warm.json", "w").write(json.dumps({"hashes": hot}))
PY
cat > keys.lua <<LUA
local n = $keys
function key(i)
  return string.format("%08x%08x%08x%08x", i, (i * 2654435761) % 4294967296, (i * 40503) % 4294967296, 48879)
end
LUA
cat keys.lua - > lookup.lua <<'LUA'
local c = 0
request = function()
  c = c + 1
  -- Known (below n) and unknown (n and above) keys, a different one each request.
  local i = (c * 7919) % (2 * n)
  return wrk.format("GET", "/lookup/md5/" .. key(i))
end
LUA
# Statistics reports of 50 and 1,000 items (SHA-256 digests from a pool of 20,000), a new
# token each request: the body is the report with its token's placeholder replaced.
for items in 50 1000; do
python3 - "$items" <<'PY'
import sys, json, datetime
items = int(sys.argv[1])
day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
report = {"schema": "repute-report/1", "day": day, "token": "TOKEN", "snapshot_sequence": 1,
          "product_version": "0.1.0",
          "items": [{"type": "sha256", "digest": "%064x" % ((i * 7919) % 20000),
                     "verdict": "unknown", "count": 1} for i in range(items)]}
body = json.dumps(report).replace("TOKEN", "%s")
open("stats%d.lua" % items, "w").write('''local c = 0
local body = [[%s]]
request = function()
  c = c + 1
  return wrk.format("POST", "/v1/statistics", {["Content-Type"] = "application/json"},
    string.format(body, string.format("%%016x%%016x", c, math.random(0, 2147483647))))
end
''' % body)
PY
done
cat keys.lua - > hot.lua <<'LUA'
local c = 0
local hot = math.min(n, 10000)
request = function()
  c = c + 1
  return wrk.format("GET", "/lookup/md5/" .. key((c * 7919) % hot))
end
LUA

"$bin" build -o s.snap --feed hashes:malicious:bad.txt >/dev/null

start() { # start NAME ARGS...: runs repute serve, sets $url
  local name=$1; shift
  "$bin" serve "$@" --listen 127.0.0.1:0 2> "$name.log" &
  pids+=($!)
  eval "${name}_pid=$!"
  for _ in $(seq 1 200); do
    if grep -q 'listening on' "$name.log" 2>/dev/null; then break; fi
    sleep 0.05
  done
  url=$(sed -n 's/^repute serve: listening on //p' "$name.log" | head -1)
  [ -n "$url" ] || { cat "$name.log" >&2; exit 1; }
}
REPUTE_LOG=warn start private s.snap
private=$url
REPUTE_LOG=warn start proxy --upstream "$private"
proxy=$url
REPUTE_LOG=warn start collector s.snap --stats-db stats.db
collector=$url
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
rss_before=$(rss "$proxy_pid")

# Warm the proxy's cache with the hot keys (bulk through the proxy, twice).
for _ in 1 2; do
  curl -sf -X POST -H 'content-type: application/json' --data-binary @warm.json "$proxy/bulk/md5" >/dev/null
done

run() { # run LABEL wrk-args...: prints "LABEL RATE P99_MS"
  local label=$1; shift
  local out
  out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency "$@")
  echo "$out" >&2
  local rate p99
  rate=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {v = $2; if (v ~ /us$/) {sub(/us$/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms$/, "", v)} else if (v ~ /s$/) {sub(/s$/, "", v); v *= 1000}; print v}')
  echo "$label $rate $p99"
}
{
  run healthz "$private/healthz"
  run lookup -s lookup.lua "$private"
  run bulk -s bulk.lua "$private/bulk/md5"
  run snapshot-hit -s hot.lua "$private"
  run cache-hit -s hot.lua "$proxy"
  run stats-50 -s stats50.lua "$collector"
  run stats-1000 -s stats1000.lua "$collector"
} > results.txt
rss_after=$(rss "$proxy_pid")
status=$(curl -sf "$proxy/status")

echo
echo "repute serve load test: $keys keys, wrk -t2 -c$conns -d${secs}s, $(nproc) cores shared with wrk"
awk -v rb="$rss_before" -v ra="$rss_after" '
  { rate[$1] = $2; p99[$1] = $3 }
  END {
    b = rate["healthz"]; s = rate["snapshot-hit"]
    printf "%-13s %10.0f req/s  p99 %6.2f ms  (baseline)\n", "healthz", b, p99["healthz"]
    printf "%-13s %10.0f req/s  p99 %6.2f ms  %.2fx healthz\n", "lookup/md5", rate["lookup"], p99["lookup"], rate["lookup"] / b
    printf "%-13s %10.0f req/s  p99 %6.2f ms  %.0f hashes/s\n", "bulk/md5", rate["bulk"], p99["bulk"], rate["bulk"] * 1000
    printf "%-13s %10.0f req/s  p99 %6.2f ms  %.2fx healthz\n", "snapshot-hit", s, p99["snapshot-hit"], s / b
    printf "%-13s %10.0f req/s  p99 %6.2f ms  %.2fx snapshot-hit (snapshot/cache %.2f)\n", "cache-hit", rate["cache-hit"], p99["cache-hit"], rate["cache-hit"] / s, s / rate["cache-hit"]
    printf "%-13s %10.0f req/s  p99 %6.2f ms  %.0f items/s\n", "stats-50", rate["stats-50"], p99["stats-50"], rate["stats-50"] * 50
    printf "%-13s %10.0f req/s  p99 %6.2f ms  %.0f items/s\n", "stats-1000", rate["stats-1000"], p99["stats-1000"], rate["stats-1000"] * 1000
    printf "proxy RSS     %d KiB before, %d KiB after\n", rb, ra
  }' results.txt
echo "$status" | python3 -c 'import json,sys; s=json.load(sys.stdin); print("proxy answers:", {k: s["queries"][k] for k in ("snapshot","cache","upstream","failed")}, "hit ratio %.4f" % s["cache"]["hit_ratio"], "upstream requests", s["upstream_requests"])'
