#!/bin/sh
# test_sched_slurm.sh: avsr-sched --backend slurm on a real one-node Slurm
# (scripts/slurm-up.sh starts it; `make check-slurm` runs this test). A plan
# of shell-command jobs goes through the same engine and sbatch template as
# a recipe's jobs:
#   prep -> mpi (2 tasks through srun) -> flaky (fails once: resubmitted,
#   its queued dependents re-pointed) -> ev1, ev2, ev3 (one job array of MPI
#   jobs; ev2 gets SIGUSR1 as Slurm sends it before the time limit, the
#   script forwards it through srun, the job exits 75 and the script
#   requeues it; ev3 fails once and is resubmitted alone) -> report;
#   then a plan with a job failing for good, and the tiny recipe of
#   tests/train_env.sh end to end (avsr-worker, avsr-avg, avsr-eval).
# Midway the scheduler is SIGKILLed and restarted: it finds its jobs in
# squeue and submits nothing twice. Every job appends to a count file, so
# executions are counted. Slurm delays a requeued job by about 2 minutes
# (BeginTime); the test releases it early with `scontrol update
# StartTime=now`. AVSR_TEST_KEEP=1 keeps the files. Plain protocol: 0 pass, 77 skip (no root, no Slurm), else
# fail. The daemons are stopped at the end unless they were up before.
srcdir=${srcdir:-.}
case $srcdir in /*) ;; *) srcdir="$(pwd)/$srcdir" ;; esac
top_builddir=$(cd "${top_builddir:-.}" && pwd)
S="$top_builddir/avsr-sched"
[ -x "$S" ] || { echo "$S not built" >&2; exit 99; }
UP="$srcdir/scripts/slurm-up.sh"

was_up=0
"$UP" --status && was_up=1
"$UP"
rc=$?
[ $rc -eq 77 ] && { echo "no Slurm here: skipped"; exit 77; }
[ $rc -ne 0 ] && { echo "scripts/slurm-up.sh failed (exit $rc)"; exit 1; }
export SLURM_CONF=${AVSR_SLURM_DIR:-/var/tmp/avsr-slurm}/slurm.conf
PATH=$PATH:/usr/sbin:/sbin
export AVSR_SLURM_TEMPLATES="$srcdir/launch/slurm"

d=$(mktemp -d "${TMPDIR:-/tmp}/avsr-test-sched-slurm-XXXXXX") || exit 99
cd "$d" || exit 99
n=0
failed=0
sched=
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() {
    what=$1
    shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
finish() {
    [ -n "$sched" ] && kill "$sched" 2>/dev/null
    # our jobs, if any are left
    squeue -h -o '%i %j' 2>/dev/null | awk '$2 ~ /^avsr\./ { print $1 }' | xargs -r scancel
    [ $was_up -eq 1 ] || "$UP" --down >/dev/null
    echo "1..$n"
    if [ $failed -eq 0 ] && [ -z "${AVSR_TEST_KEEP:-}" ]; then
        cd / && rm -rf "$d"
    else
        echo "# files kept in $d"
        for f in "$d"/*.err "$d"/exp/s/logs/*.log; do
            [ -f "$f" ] && { echo "# $f:"; sed 's/^/#   /' "$f"; }
        done
    fi
    [ $failed -eq 0 ]
    exit $?
}
# wait_for FILE SECONDS
wait_for() {
    i=0
    while [ ! -e "$1" ]; do
        i=$((i + 1))
        [ $i -gt $(($2 * 10)) ] && { echo "# timed out waiting for $1"; return 1; }
        sleep 0.1
    done
}
# release requeued jobs that Slurm holds back (reason BeginTime)
release() {
    squeue -h -r -o '%i|%r|%j' 2>/dev/null | while IFS='|' read -r id reason name; do
        case $name in avsr.*) ;; *) continue ;; esac
        [ "$reason" = BeginTime ] && scontrol update JobId="$id" StartTime=now 2>/dev/null &&
            echo "# released $id (BeginTime)"
    done
}

C=$d/count
# a real MPI program (collectives on 2 ranks) started by srun
MPIPROG="$top_builddir/tests/test_dist_mpi"
[ -x "$MPIPROG" ] || { echo "$MPIPROG not built (make check builds it)"; finish; }
cat >plan.json <<EOF
{"name": "s", "exp_dir": "exp/s", "jobs": [
 {"name": "prep", "argv": ["sh", "-c", "echo prep >> $C"]},
 {"name": "mpi", "ranks": 2, "mpi": true, "deps": ["prep"],
  "argv": ["sh", "-c", "echo rank\$SLURM_PROCID >> $C; exec $MPIPROG all"]},
 {"name": "flaky", "deps": ["mpi"],
  "argv": ["sh", "-c", "echo flaky >> $C; [ \$(grep -c flaky $C) -ge 2 ] || exit 3"]},
 {"name": "ev1", "array": "ev", "mpi": true, "deps": ["flaky"],
  "argv": ["sh", "-c", "echo ev1 >> $C"]},
 {"name": "ev2", "array": "ev", "mpi": true, "deps": ["flaky"],
  "argv": ["sh", "-c", "echo ev2 >> $C; [ -f $d/ev2.resume ] && exit 0; trap 'echo usr1 >> $C; touch $d/ev2.resume; exit 75' USR1; echo \$SLURM_JOB_ID > $d/ev2.jobid.tmp; mv $d/ev2.jobid.tmp $d/ev2.jobid; while :; do sleep 0.1; done"]},
 {"name": "ev3", "array": "ev", "mpi": true, "deps": ["flaky"], "kind": "eval",
  "result": "$d/ev3.json",
  "argv": ["sh", "-c", "echo ev3 >> $C; [ \$(grep -c ev3 $C) -ge 2 ] || exit 4; echo '{\"wer\": 0.25}' > $d/ev3.json"]},
 {"name": "report", "deps": ["ev1", "ev2", "ev3"], "argv": ["sh", "-c", "echo report >> $C"]}
]}
EOF

"$S" run plan.json --backend slurm --poll 1 --retries 2 2>run1.err &
sched=$!
wait_for ev2.jobid 150 || finish
# the scheduler dies; a new one takes over the queued and running jobs
kill -9 $sched
wait $sched 2>/dev/null
"$S" run plan.json --backend slurm --poll 1 --retries 2 2>run2.err &
sched=$!
sleep 2
check "the restarted scheduler submits nothing again" sh -c '! grep -q "submitted" run2.err'
# what Slurm does 90 s before the time limit (--signal=B:USR1@90)
scancel --batch --signal=USR1 "$(cat ev2.jobid)"
i=0
while kill -0 $sched 2>/dev/null && [ $i -lt 200 ]; do
    release
    sleep 1
    i=$((i + 1))
done
if kill -0 $sched 2>/dev/null; then
    not_ok "the plan finished within 200 s"
    finish
fi
wait $sched
rc=$?
sched=
check "avsr-sched run --backend slurm exits 0 (all done)" test $rc -eq 0

got=$(sort "$C" | uniq -c | awk '{ printf "%s:%s ", $2, $1 }')
want="ev1:1 ev2:2 ev3:2 flaky:2 prep:1 rank0:1 rank1:1 report:1 usr1:1 "
check "executions: $got" test "$got" = "$want"
cat run1.err run2.err >run.err
check "flaky failed once and was resubmitted" grep -q "flaky: Slurm job [0-9]* failed (exit 3" run.err
check "the array's queued tasks were re-pointed to the new flaky job" \
    grep -q "ev1: Slurm job [0-9_]* re-pointed" run.err
check "ev3 was resubmitted alone and report re-pointed to it" \
    sh -c 'grep -q "ev3: submitted as Slurm job [0-9]*_2 (attempt 2" run.err &&
           grep -q "report: Slurm job [0-9]* re-pointed" run.err'
check "ev2's preemption was counted as a requeue" grep -q "ev2: Slurm job [0-9_]* preempted (exit 75) and requeued" run.err
check "ev2's log shows SIGUSR1 forwarded and scontrol requeue" \
    sh -c 'grep -q "SIGUSR1: forwarded" exp/s/logs/ev2.1.log &&
           grep -q "preempted (exit 75): scontrol requeue" exp/s/logs/ev2.1.log'
"$S" status plan.json >status.out 2>&1
check "status: 7 jobs done" grep -q "^7 jobs: 7 done" status.out
check "status: flaky 2 attempts 1 failure, ev2 1 attempt 1 requeue, ev3 WER 25.00" \
    sh -c 'grep -q "^flaky  *done  *2  *1  *0 " status.out &&
           grep -q "^ev2  *done  *1  *0  *1 " status.out &&
           grep -q "^ev3  *done  *2  *1  *0 .* 25.00 " status.out'
check "the MPI program ran on 2 ranks through srun --mpi=pmix" \
    grep -q "^ok " exp/s/logs/mpi.1.log

# a job that fails for good: its queued dependents (a chain) are cancelled
# and the run ends instead of waiting forever
cat >doomed.json <<EOF
{"name": "x", "exp_dir": "exp/x", "jobs": [
 {"name": "bad", "argv": ["sh", "-c", "echo bad >> $C.x; exit 9"]},
 {"name": "mid", "argv": ["sh", "-c", "echo mid >> $C.x"], "deps": ["bad"]},
 {"name": "end", "argv": ["sh", "-c", "echo end >> $C.x"], "deps": ["mid"]}
]}
EOF
timeout 120 "$S" run doomed.json --backend slurm --poll 1 --retries 1 2>doomed.err
check "a job failing for good: the run ends with exit 1" test $? -eq 1
check "bad ran twice (retries 1), its dependents never" test "$(cat $C.x)" = "bad
bad"
"$S" status doomed.json >doomed.status 2>&1
check "status: bad failed, mid and end pending" \
    sh -c 'grep -q "^bad  *failed  *2  *2 " doomed.status && grep -q "^mid  *pending " doomed.status &&
           grep -q "^end  *pending " doomed.status'
squeue -h -o '%j' >doomed.queue
check "nothing of it is left in the queue" sh -c '! grep -q "\.\(bad\|mid\|end\)\." doomed.queue'

# a recipe end to end: the tiny recipe of tests/train_env.sh (4 steps on 2
# ranks through srun) -> average -> a three-point sweep (a job array of
# avsr-eval) -> report
. "$srcdir/tests/train_env.sh"
mkdir -p rcp && cd rcp || finish
tiny_recipe r.yaml exp "    steps: 4"
cat >>r.yaml <<'YAML'
  search: {type: ctc_greedy}
  sweep: {noise: [babble], snr_db: [clean, 0], modalities: [audio, video]}
YAML
OMP_NUM_THREADS=1 timeout 300 "$S" run r.yaml --backend slurm --poll 1 2>../recipe.err
check "a recipe through --backend slurm: train, average, sweep, report (exit 0)" test $? -eq 0
"$S" status r.yaml >../recipe.status 2>&1
check "status: 6 jobs done, the evaluation array with WERs, the report's table" \
    sh -c 'grep -q "^6 jobs: 6 done" ../recipe.status &&
           grep -E -q "^eval.video.none.clean  *done .* [0-9]+\.[0-9][0-9]  " ../recipe.status &&
           grep -q "^| SNR (dB) | audio, babble | video |\$" ../recipe.status'
check "the three points went in one array submission" \
    sh -c 'test $(grep -c "eval\.[a-z.0-9-]*: submitted as Slurm job [0-9]*_[0-2] (attempt 1" ../recipe.err) -eq 3'
cd .. || finish

script=$(ls exp/s/slurm/avsr.*.mpi.*.sbatch | head -n 1)
check "the rendered script has --requeue, --signal=B:USR1@90 and 2 tasks" \
    sh -c "grep -q '^#SBATCH --requeue' $script && grep -q '^#SBATCH --signal=B:USR1@90' $script &&
           grep -q '^#SBATCH --ntasks=2' $script && grep -q '^launcher=srun' $script &&
           grep -q 'srun .* --mpi=pmix ' $script"
finish
