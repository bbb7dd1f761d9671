#!/usr/bin/env bash
# Load test for `repute serve` with wrk (Debian's package): /healthz as the baseline, then
# /lookup/md5 (known and unknown keys varying per request) and /bulk/md5 (1,000 hashes per
# request), in the same run; prints each rate and its ratio to the baseline. Not part of CI.
# Usage: load.sh URL [SECONDS] [CONNECTIONS]
set -euo pipefail
url=${1:?usage: load.sh URL [SECONDS] [CONNECTIONS]}
secs=${2:-10}
conns=${3:-64}
command -v wrk >/dev/null || { echo "load.sh: install wrk (apt-get install wrk)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/lookup.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", string.format("/lookup/md5/%032x", n * 2654435761 % 4294967296))
end
LUA
python3 - "$tmp/bulk.lua" <<'PY'
import sys
hashes = ",".join('"%032x"' % (i * 2654435761) for i in range(1000))
open(sys.argv[1], "w").write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = \'{"hashes": [%s]}\'\n' % hashes)
PY
rate() { wrk -t2 -c"$conns" -d"${secs}s" --latency "$@" | tee /dev/stderr | awk '/Requests\/sec/ {print $2}'; }
base=$(rate "$url/healthz")
single=$(rate -s "$tmp/lookup.lua" "$url")
bulk=$(rate -s "$tmp/bulk.lua" "$url/bulk/md5")
awk -v b="$base" -v s="$single" -v k="$bulk" 'BEGIN {
  printf "healthz     %10.0f req/s\n", b
  printf "lookup/md5  %10.0f req/s  (%.2fx healthz)\n", s, s / b
  printf "bulk/md5    %10.0f req/s  = %.0f hashes/s (%.2fx healthz requests)\n", k, k * 1000, k / b
}'
