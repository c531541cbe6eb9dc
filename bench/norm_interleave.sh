#!/bin/sh
# Alternate the PyTorch peer (norm_torch.py) and bench_norm ROUNDS times on
# the same rows, and report for each row the median over the rounds of the
# per-round ratios torch/avsr-default: of the minima and of the medians of
# the 30 timed steps of each side. On a shared machine a change in load
# during one round hits that round's pair of runs, not the whole set, and
# the median of the ratios discards the rounds where it hit one side only.
# Run from a build directory after `make`:
#
#   cd build && sh ../bench/norm_interleave.sh [ROUNDS] [ONLY]
#
# ROUNDS: default 7. ONLY: rows whose name contains this text (default:
# all rows; e.g. "softmax" for softmax and log-softmax). Threads:
# OMP_NUM_THREADS (default 2) on both sides. Prints each round's table
# line (round, row, torch/default min, torch/default med) and then a
# Markdown table of the medians with their range.
here=$(cd "$(dirname "$0")" && pwd)
rounds=${1:-7}
only=${2:-}
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export OMP_NUM_THREADS
PY=/usr/bin/python3
if [ ! -x bench/bench_norm ]; then
    echo "norm_interleave.sh: bench/bench_norm not found: run this from a build directory after 'make'" >&2
    exit 2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
set -- ${only:+--only "$only"}

echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC'), OMP_NUM_THREADS=$OMP_NUM_THREADS, $rounds rounds${only:+, rows matching '$only'}"
i=1
while [ "$i" -le "$rounds" ]; do
    echo "# round $i, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    "$PY" "$here/norm_torch.py" "$@" > "$tmp/torch.txt" || exit 1
    ./bench/bench_norm "$@" "$tmp/torch.txt" > "$tmp/avsr.txt" || exit 1
    # table rows: | name | own | oneDNN | default | torch | t/d min | t/d med | ...
    awk -F'|' -v r="$i" 'NR > 2 && NF > 9 { gsub(/^ +| +$/, "", $2); gsub(/ /, "", $7); gsub(/ /, "", $8);
        print r "|" $2 "|" $7 "|" $8 }' "$tmp/avsr.txt" | tee -a "$tmp/all.txt"
    i=$((i + 1))
done
echo
echo "| row | torch/default of minima: median (range) | torch/default of medians: median (range) |"
echo "|---|---:|---:|"
awk -F'|' '{ print $2 }' "$tmp/all.txt" | awk '!seen[$0]++' | while IFS= read -r row; do
    mins=$(awk -F'|' -v n="$row" '$2 == n { print $3 }' "$tmp/all.txt" | sort -g | tr '\n' ' ')
    meds=$(awk -F'|' -v n="$row" '$2 == n { print $4 }' "$tmp/all.txt" | sort -g | tr '\n' ' ')
    echo "$row|$mins|$meds" | awk -F'|' '
        function med(s,   a, n) { n = split(s, a, " "); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
        function lo(s,   a) { split(s, a, " "); return a[1] }
        function hi(s,   a, n) { n = split(s, a, " "); return a[n] }
        { printf "| %s | %.2f (%.2f-%.2f) | %.2f (%.2f-%.2f) |\n", $1, med($2), lo($2), hi($2), med($3), lo($3), hi($3) }'
done
