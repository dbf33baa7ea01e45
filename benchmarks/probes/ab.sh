#!/bin/bash
# Interleaved A/B of worker.mjs: a built checkout of an earlier commit against this one.
#   git worktree add /tmp/base <commit> && (cd /tmp/base && pnpm install --offline && tsc -b)
#   bash benchmarks/probes/ab.sh [N] [C] [rounds] [base dir]      # prints the median of each side
set -euo pipefail
N=${1:-60000} C=${2:-8} R=${3:-5} BASE=${4:-/tmp/base}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
# Each side runs its own copy of the probe: '@tq/core' resolves from the script's folder.
mkdir -p "$BASE/benchmarks/probes" && cp "$HERE/benchmarks/probes/worker.mjs" "$BASE/benchmarks/probes/"
for _ in $(seq "$R"); do
  for side in base head; do
    dir=$BASE; [ "$side" = head ] && dir=$HERE
    redis-cli -n 8 flushdb >/dev/null
    echo "$side $(node "$dir/benchmarks/probes/worker.mjs" "$N" "$C" | awk '{print $4}')"
  done
done | awk -v c="$C" '{a[$1]=a[$1]" "$2} END {for (k in a) {n=split(a[k],v," "); asort(v); printf "%s c=%s median %s  (all:%s)\n", k, c, v[int((n+1)/2)], a[k]}}'
