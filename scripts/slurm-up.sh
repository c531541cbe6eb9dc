#!/bin/bash
# slurm-up.sh: a real one-node Slurm on this machine, for the scheduler's
# Slurm test (make check-slurm) and for trying `avsr-sched --backend slurm`.
#
#   scripts/slurm-up.sh            install (if needed) and start; idempotent
#   scripts/slurm-up.sh --status   exit 0 when the cluster answers, else 1
#   scripts/slurm-up.sh --down     stop the daemons this script started
#
# Installs Debian's slurm-wlm and munge (deps/slurm-packages.txt, through
# scripts/install-deps.sh), writes a one-node configuration under
# $AVSR_SLURM_DIR (default /var/tmp/avsr-slurm): slurm.conf with this host
# as controller and only node (its cores and memory), partition "debug",
# no cgroup plugins (containers), no accounting. /etc/slurm is left alone:
# clients find the configuration through SLURM_CONF, which the caller
# exports after
#
#   export SLURM_CONF=$AVSR_SLURM_DIR/slurm.conf   (printed on success)
#
# Starts munged (as the munge user, creating /etc/munge/munge.key when
# missing), slurmctld and slurmd, and waits until `sinfo` shows the node
# idle. Running daemons are reused. Exit status: 0 up, 77 when it cannot be
# done here (not root, no package manager, packages not installable), 1 when
# a daemon fails to come up (its log is printed).
# See docs/tools/avsr-sched.md ("A real Slurm for the tests").
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${AVSR_SLURM_DIR:-/var/tmp/avsr-slurm}
conf=$dir/slurm.conf
mpid=/run/munge/munged.pid   # in munge's own directory: munged runs as munge
me=slurm-up.sh
mode=${1:-up}

say() { echo "$me: $*"; }
skip() { say "$* (skipped)"; exit 77; }

# alive PIDFILE: the pid in the file is a running process
alive() {
    [ -s "$1" ] || return 1
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

cluster_ok() {
    [ -f "$conf" ] || return 1
    alive "$dir/slurmctld.pid" && alive "$dir/slurmd.pid" || return 1
    local st
    st=$(SLURM_CONF=$conf timeout 10 sinfo -h -N -o '%T' 2>/dev/null | head -n 1)
    case $st in
        idle*|mixed*|allocated*|completing*) return 0 ;;
    esac
    return 1
}

stop_pidfile() { # PIDFILE NAME
    alive "$1" || return 0
    local pid i
    pid=$(cat "$1")
    kill "$pid" 2>/dev/null
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$1"; return 0; }
        sleep 0.1
    done
    say "$2 (pid $pid) did not stop on SIGTERM: SIGKILL"
    kill -9 "$pid" 2>/dev/null
    rm -f "$1"
}

case $mode in
    --status)
        cluster_ok
        exit $?
        ;;
    --down)
        stop_pidfile "$dir/slurmd.pid" slurmd
        stop_pidfile "$dir/slurmctld.pid" slurmctld
        # munged is stopped only when this script started it
        if [ -f "$dir/munged.started" ]; then
            stop_pidfile "$mpid" munged
            rm -f "$dir/munged.started"
        fi
        say "stopped"
        exit 0
        ;;
    up) ;;
    *)
        echo "usage: $me [--status|--down]" >&2
        exit 2
        ;;
esac

if cluster_ok; then
    say "already up; export SLURM_CONF=$conf"
    exit 0
fi

[ "$(id -u)" = 0 ] || skip "needs root (installs packages, runs slurmd as root)"

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 ||
    ! command -v sbatch >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || skip "slurm-wlm is not installed and there is no apt-get"
    "$root/scripts/install-deps.sh" "$root/deps/slurm-packages.txt" ||
        skip "installing slurm-wlm and munge failed"
fi
# the daemons live in /usr/sbin, which a non-login PATH may lack
PATH=$PATH:/usr/sbin:/sbin
for p in slurmctld slurmd sbatch munged munge; do
    command -v "$p" >/dev/null 2>&1 || skip "$p not found after installing slurm-wlm and munge"
done

mkdir -p "$dir/state" "$dir/spool" || exit 1

# ---- munge ----------------------------------------------------------------
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    key=/etc/munge/munge.key
    if [ ! -s "$key" ]; then
        say "creating $key"
        mkdir -p /etc/munge
        dd if=/dev/urandom of="$key" bs=1024 count=1 status=none || exit 1
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge "$key" /run/munge /var/log/munge /var/lib/munge /etc/munge
    chmod 400 "$key"
    chmod 700 /etc/munge
    chmod 755 /run/munge
    if ! su -s /bin/sh munge -c "munged --pid-file=$mpid" 2>"$dir/munged.err"; then
        say "munged failed to start:"
        cat "$dir/munged.err"
        exit 1
    fi
    touch "$dir/munged.started"
    for i in $(seq 1 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        say "munged does not answer:"
        cat "$dir/munged.err" /var/log/munge/munged.log 2>/dev/null | tail -n 20
        exit 1
    fi
fi

# ---- slurm.conf -----------------------------------------------------------
host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
tmp=$conf.tmp.$$
cat >"$tmp" <<EOF
# written by avsr scripts/slurm-up.sh: one node, no accounting, no cgroups
ClusterName=avsrtest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/ctld.log
SlurmdLogFile=$dir/d.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MinJobAge=600
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
mv "$tmp" "$conf" || exit 1
export SLURM_CONF=$conf

# ---- daemons ----------------------------------------------------------------
if ! alive "$dir/slurmctld.pid"; then
    slurmctld -f "$conf" || { say "slurmctld failed to start:"; tail -n 20 "$dir/ctld.log"; exit 1; }
fi
for i in $(seq 1 50); do
    scontrol ping 2>/dev/null | grep -q UP && break
    sleep 0.1
done
if ! alive "$dir/slurmd.pid"; then
    slurmd -f "$conf" || { say "slurmd failed to start:"; tail -n 20 "$dir/d.log"; exit 1; }
fi
for i in $(seq 1 150); do
    cluster_ok && { say "up ($host, $cpus CPUs); export SLURM_CONF=$conf"; exit 0; }
    # a node left DOWN by an earlier unclean stop: return it to service
    if sinfo -h -N -o '%T' 2>/dev/null | grep -q -E '^(down|drain)'; then
        scontrol update NodeName="$host" State=RESUME 2>/dev/null
    fi
    sleep 0.2
done
say "the node did not become idle in 30 s:"
sinfo -N -l 2>&1
tail -n 20 "$dir/ctld.log" "$dir/d.log" 2>/dev/null
exit 1
