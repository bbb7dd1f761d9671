#!/usr/bin/env bash
# The main job on the bundled samples: build a snapshot from data/feeds.toml, then look up
# a few digests, URLs and domains. Run from anywhere: bash tools/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p repute-cli
repute=target/release/repute
out=${REPUTE_DEMO_OUT:-target/sample.snap}

"$repute" build -o "$out" --manifest data/feeds.toml
"$repute" verify "$out"
echo
# Exit code 1 means "something malicious was found", which is what this demo expects.
"$repute" lookup "$out" \
  44d88612fea8a8f36de82e1278abb02f \
  3395856CE81F2B7382DEE72602F798B642F14140 \
  275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f \
  'HTTP://Login.Malware.Example.COM:80/a/./b/../verify?x=1#top' \
  http://evil.example.net/payload.exe \
  ads.tracker.test \
  https://www.example.org/ \
  0123456789abcdef0123456789abcdef || [ $? -eq 1 ]
