#!/bin/sh
# test_sched_e2e.sh: `avsr-sched run RECIPE --backend local` on the real
# tools: the tiny recipe of tests/train_env.sh (4 steps on 2 ranks) with a
# three-point sweep runs train -> average -> sweep -> report, and
# `avsr-sched status` shows every job done with the WER of each point and
# the report's WER table. Plain protocol: 0 pass, 77 skip, else fail.
. "${srcdir:-.}/tests/train_env.sh"
S="$B/avsr-sched"
case $S in /*) ;; *) S="$(pwd)/$S" ;; esac
for p in "$S" "$B/avsr-eval" "$B/avsr-avg"; do
    [ -x "$p" ] || { echo "$p not built"; exit 99; }
done
T=$(mktemp -d "${TMPDIR:-/tmp}/avsr-sched-e2e.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 99
fail() { echo "FAIL: $*"; for f in run.err exp/logs/*.log; do [ -f "$f" ] && { echo "== $f"; tail -n 15 "$f"; }; done; exit 1; }

tiny_recipe r.yaml exp "    steps: 4"
# the eval section is the recipe's last: a small sweep (3 points)
cat >>r.yaml <<'YAML'
  search: {type: ctc_greedy}
  sweep: {noise: [babble], snr_db: [clean, 0], modalities: [audio, video]}
YAML

OMP_NUM_THREADS=1 timeout 600 "$S" run r.yaml --slots 2 2>run.err || fail "avsr-sched run"
echo "ok: avsr-sched run r.yaml --backend local: exit 0"
"$S" status r.yaml >status.out 2>&1 || fail "status: $(cat status.out)"
cat status.out | sed 's/^/# /'
grep -q "^6 jobs: 6 done" status.out || fail "not every job is done"
for j in train.train average eval.audio.none.clean eval.audio.babble.0 eval.video.none.clean \
    report; do
    grep -q "^$j  *done  *1 " status.out || fail "$j: not done in one attempt"
done
for j in eval.audio.none.clean eval.audio.babble.0 eval.video.none.clean; do
    grep -E -q "^$j  *done .* [0-9]+\.[0-9][0-9]  " status.out || fail "$j: no WER shown"
done
grep -q '^| SNR (dB) | audio, babble | video |$' status.out || fail "no WER table in status"
[ -s exp/avg/model.safetensors ] || fail "no averaged model"
[ -s exp/eval/results.json ] || fail "no results.json"
echo "ok: status shows every job done, the WER of each point and the report's table"

# a second run does nothing
OMP_NUM_THREADS=1 "$S" run r.yaml 2>run2.err || fail "second run"
grep -q "started" run2.err && fail "the second run started a job: $(cat run2.err)"
echo "ok: a second run starts nothing"
exit 0
