#!/bin/sh
# test_sched_kill.sh: the avsr-sched program on the local backend with plan
# files of small shell jobs (real processes that append to a count file, so
# every execution is counted):
#   1. the scheduler SIGKILLed while a job runs, then restarted: the running
#      job is adopted (not started again), every job runs exactly once;
#   2. the scheduler and the job's monitor both SIGKILLed: the attempt is
#      lost, its orphaned process group is killed, the job is retried;
#   3. SIGTERM to the scheduler: the running job gets SIGTERM, exits 75 and
#      is requeued (exit status 143); the next run finishes the rest;
#   4. a second scheduler refused; avsr-sched cancel on a running
#      scheduler; status shows the table
#      with WER from a job's result file; an MPI job on 2 ranks (mpirun),
#      stopped by SIGUSR1 through mpirun when the scheduler gets SIGTERM.
# Plain protocol: 0 pass, 77 skip, else fail.
S="${top_builddir:-.}/avsr-sched"
case $S in /*) ;; *) S="$(pwd)/$S" ;; esac
[ -x "$S" ] || { echo "$S not built" >&2; exit 99; }

d=$(mktemp -d "${TMPDIR:-/tmp}/avsr-test-sched-kill-XXXXXX") || exit 99
cd "$d" || exit 99
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() { # check DESCRIPTION COMMAND...
    what=$1
    shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
# wait_for FILE: up to 60 s
wait_for() {
    i=0
    while [ ! -e "$1" ]; do
        i=$((i + 1))
        [ $i -gt 600 ] && { echo "# timed out waiting for $1"; return 1; }
        sleep 0.1
    done
}
same() { # same FILE EXPECTED-TEXT
    printf '%s\n' "$2" >"$1.want"
    cmp -s "$1" "$1.want" || { echo "# $1:"; sed 's/^/#   /' "$1"; echo "# expected:";
        sed 's/^/#   /' "$1.want"; return 1; }
}
alive() { kill -0 "$1" 2>/dev/null; }

# ---- 1. SIGKILL while a job runs, restart: adopted, nothing twice -------------
cat >kill.json <<'EOF'
{"name": "k", "exp_dir": "exp/k", "jobs": [
 {"name": "a", "argv": ["sh", "-c", "echo a >> k.count"]},
 {"name": "b", "argv": ["sh", "-c", "echo b >> k.count; touch b.started; while [ ! -f b.go ]; do sleep 0.05; done"], "deps": ["a"]},
 {"name": "c1", "argv": ["sh", "-c", "echo c1 >> k.count"], "deps": ["b"], "array": "ev"},
 {"name": "c2", "argv": ["sh", "-c", "echo c2 >> k.count"], "deps": ["b"], "array": "ev"},
 {"name": "d", "argv": ["sh", "-c", "echo d >> k.count"], "deps": ["c1", "c2"]}
]}
EOF
"$S" run kill.json --slots 2 --poll 0.05 2>run1.err &
pid=$!
wait_for b.started
kill -9 $pid
wait $pid 2>/dev/null
"$S" status kill.json >status1.out 2>&1
check "after SIGKILL: status shows b running, c1 pending" \
    sh -c 'grep -q "^b  *running " status1.out && grep -q "^c1  *pending " status1.out'
"$S" run kill.json --slots 2 --poll 0.05 2>run2.err &
pid=$!
sleep 0.5
check "the restarted scheduler does not start b again" sh -c '! grep -q "b: started" run2.err'
touch b.go
wait $pid
check "the restarted run finishes (exit 0)" test $? -eq 0
sort k.count >k.sorted
check "every job ran exactly once" same k.sorted "a
b
c1
c2
d"
"$S" status kill.json >status2.out 2>&1
check "status: b done in 1 attempt" grep -q "^b  *done  *1  *0  *0 " status2.out
check "status: 5 jobs done" grep -q "^5 jobs: 5 done" status2.out
"$S" run kill.json --poll 0.05 2>run3.err
check "a third run: nothing to do, exit 0" test $? -eq 0
check "a third run started nothing" sh -c '! grep -q "started" run3.err'
check "a third run: the count is unchanged" same k.count "$(cat k.count)"

# ---- 2. scheduler and monitor SIGKILLed: lost, orphan killed, retried ----------
cat >lost.json <<'EOF'
{"name": "l", "exp_dir": "exp/l", "jobs": [
 {"name": "x", "argv": ["sh", "-c", "echo x >> l.count; if [ ! -f x.once ]; then touch x.once; echo $PPID > x.monitor; echo $$ > x.job; while :; do sleep 0.05; done; fi"]}
]}
EOF
"$S" run lost.json --poll 0.05 --grace 5 2>lost1.err &
pid=$!
wait_for x.job
sleep 0.2
kill -9 $pid
kill -9 "$(cat x.monitor)"
wait $pid 2>/dev/null
check "the job outlives its monitor (orphaned)" alive "$(cat x.job)"
"$S" run lost.json --poll 0.05 --grace 5 2>lost2.err
check "after losing the monitor the run finishes (exit 0)" test $? -eq 0
check "the orphaned job was killed" sh -c "! kill -0 $(cat x.job) 2>/dev/null"
check "the lost attempt is reported" grep -q "x: attempt 1 lost" lost2.err
"$S" status lost.json >lost.status 2>&1
check "status: x done in 2 attempts, 1 failure" grep -q "^x  *done  *2  *1  *0 " lost.status

# ---- 3. SIGTERM: the job exits 75 and is requeued --------------------------------
cat >term.json <<'EOF'
{"name": "t", "exp_dir": "exp/t", "jobs": [
 {"name": "p", "argv": ["sh", "-c", "echo p >> t.count"]},
 {"name": "w", "argv": ["sh", "-c", "echo w >> t.count; [ -f w.resume ] && exit 0; trap 'touch w.resume; exit 75' TERM; touch w.started; while :; do sleep 0.05; done"], "deps": ["p"]},
 {"name": "r", "argv": ["sh", "-c", "echo r >> t.count"], "deps": ["w"]}
]}
EOF
"$S" run term.json --poll 0.05 2>term1.err &
pid=$!
wait_for w.started
kill -TERM $pid
wait $pid
check "SIGTERM: the scheduler exits 143" test $? -eq 143
check "SIGTERM: w was preempted (exit 75) and requeued" \
    grep -q "w: attempt 1 preempted (exit 75, failures 0, requeues 1): requeued" term1.err
"$S" run term.json --poll 0.05 2>term2.err
check "the next run finishes (exit 0)" test $? -eq 0
check "p ran once, w twice (resumed), r once" same t.count "p
w
w
r"

# ---- 4. cancel, the status table with WER, an MPI job --------------------------
cat >cancel.json <<'EOF'
{"name": "c", "exp_dir": "exp/c", "jobs": [
 {"name": "e", "kind": "eval", "point": "audio:none:clean", "result": "exp/c/e.json", "argv": ["sh", "-c", "echo '{\"wer\": 0.125}' > exp/c/e.json"]},
 {"name": "s", "argv": ["sh", "-c", "echo $$ > s.pid; touch s.started; while :; do sleep 0.05; done"], "deps": ["e"]},
 {"name": "z", "argv": ["true"], "deps": ["s"]}
]}
EOF
"$S" run cancel.json --poll 0.05 --grace 5 2>cancel1.err &
pid=$!
wait_for s.started
"$S" run cancel.json --poll 0.05 2>second.err
check "a second scheduler on the same experiment is refused (exit 1)" test $? -eq 1
check "... with the running one's pid" \
    grep -qx "avsr-sched: exp/c: another avsr-sched (pid $pid) is running this experiment" second.err
"$S" cancel cancel.json >cancel.out 2>&1
check "cancel reports the cancelled jobs" grep -q "^avsr-sched: 2 jobs cancelled" cancel.out
wait $pid
check "the cancelled scheduler exits 143" test $? -eq 143
"$S" status cancel.json >cancel.status 2>&1
check "status: e done with WER 12.50" grep -q "^e  *done  *1  *0  *0  *0:00:0[0-9]  *12.50 " cancel.status
check "status: s and z cancelled" \
    sh -c 'grep -q "^s  *cancelled " cancel.status && grep -q "^z  *cancelled " cancel.status'
check "nothing of s is left running" sh -c "! kill -0 $(cat s.pid) 2>/dev/null"

if command -v "${MPIRUN:-mpirun}" >/dev/null 2>&1 && [ "${MPIRUN:-}" != no ]; then
    cat >mpi.json <<'EOF'
{"name": "m", "exp_dir": "exp/m", "jobs": [
 {"name": "m", "ranks": 2, "mpi": true, "argv": ["sh", "-c", "echo rank$OMPI_COMM_WORLD_RANK >> m.count"]}
]}
EOF
    OMP_NUM_THREADS=1 "$S" run mpi.json --slots 2 --poll 0.05 2>mpi.err
    check "an MPI job on 2 ranks (exit 0)" test $? -eq 0
    sort m.count >m.sorted
    check "it ran once per rank" same m.sorted "rank0
rank1"
    check "started through mpirun -np 2" grep -q "'-np' '2'" exp/m/logs/m.1.log
    # stopping an MPI job: SIGUSR1 through mpirun, every rank exits 75
    cat >mstop.json <<'EOF'
{"name": "ms", "exp_dir": "exp/ms", "jobs": [
 {"name": "w", "ranks": 2, "mpi": true, "argv": ["sh", "-c", "[ -f ms.resume.$OMPI_COMM_WORLD_RANK ] && exit 0; trap 'touch ms.resume.$OMPI_COMM_WORLD_RANK; exit 75' USR1; touch ms.started.$OMPI_COMM_WORLD_RANK; while :; do sleep 0.05; done"]}
]}
EOF
    OMP_NUM_THREADS=1 "$S" run mstop.json --slots 2 --poll 0.05 2>mstop1.err &
    pid=$!
    wait_for ms.started.0
    wait_for ms.started.1
    kill -TERM $pid
    wait $pid
    check "SIGTERM with an MPI job running: exit 143" test $? -eq 143
    check "the MPI job got SIGUSR1 through mpirun and exited 75 (preempted)" \
        grep -q "w: attempt 1 preempted (exit 75, failures 0, requeues 1)" mstop1.err
    OMP_NUM_THREADS=1 "$S" run mstop.json --slots 2 --poll 0.05 2>mstop2.err
    check "the next run resumes it (exit 0)" test $? -eq 0
else
    echo "# mpirun not found: MPI job not tried"
fi

echo "1..$n"
if [ $failed -eq 0 ]; then
    cd / && rm -rf "$d"
else
    echo "# files kept in $d"
    for f in "$d"/*.err; do echo "# $f:"; sed 's/^/#   /' "$f"; done
fi
[ $failed -eq 0 ]
