#!/bin/sh
# Run the runtime benchmarks the performance issue asks for and print their
# Markdown tables, each under a heading with the exact command, after a
# header describing the machine and the PyTorch peer. Run from a build
# directory in which `make` has built the bench programs:
#
#   cd build && sh ../bench/run.sh [a] [b] [c]
#
# Sections (all three when none is named):
#   a  linear forward + backward vs the raw oneDNN matmuls (bench_linear)
#   b  convolutions and pooling vs PyTorch (run_conv.sh: bench_conv + conv_torch.py)
#   c  layer norm, softmax, log-softmax, GLU vs PyTorch (bench_norm + norm_torch.py)
#      and CTC loss vs PyTorch (bench_ctc, which runs ctc_torch.py itself)
#
# Threads: OMP_NUM_THREADS (default 2), passed to both sides. The PyTorch
# interpreter is /usr/bin/python3 (Debian's torch). A section that fails is
# reported and the others still run; the exit status is then 1.
# See bench/README.md.
here=$(cd "$(dirname "$0")" && pwd)
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export OMP_NUM_THREADS
PY=/usr/bin/python3
sections=${*:-a b c}
status=0

for p in bench/bench_linear bench/bench_conv bench/bench_norm bench/bench_ctc; do
    if [ ! -x "$p" ]; then
        echo "run.sh: $p not found: run this from a build directory after 'make'" >&2
        exit 2
    fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

load() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null; }

# section TITLE COMMAND: print the heading, the command and its output
section() {
    title=$1
    shift
    echo
    echo "## $title"
    echo
    echo "Command (in $(pwd)): \`OMP_NUM_THREADS=$OMP_NUM_THREADS $*\`"
    echo "Load average before: $(load)"
    echo
    rc=0
    sh -c "$*" || rc=$?
    if [ $rc -ne 0 ]; then
        echo
        echo "**FAILED** (exit status $rc)"
        status=1
    fi
}

model=$(LC_ALL=C lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
torch_info=$($PY - <<'EOF' 2>&1
import os
import torch
cfg = torch.__config__.show()
blas = [s.split("=", 1)[1] for s in cfg.replace(",", " ").split() if s.startswith("BLAS_INFO=")]
libs = sorted({l.split()[-1] for l in open("/proc/self/maps") if "blas" in l.split("/")[-1].lower()})
libs = ["%s -> %s" % (l, os.path.realpath(l)) if os.path.realpath(l) != l else l for l in libs]
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
print("PyTorch %s; BLAS_INFO=%s; BLAS library loaded: %s; threads: %d intra-op (set from "
      "OMP_NUM_THREADS by each peer script), %d inter-op"
      % (torch.__version__, blas[0] if blas else "?", ", ".join(libs) or "none",
         torch.get_num_threads(), torch.get_num_interop_threads()))
EOF
)

echo "# avsr runtime benchmarks"
echo
echo "- Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- Machine: ${model:-unknown CPU}, nproc $(nproc)"
echo "- OMP_NUM_THREADS=$OMP_NUM_THREADS${OMP_WAIT_POLICY:+, OMP_WAIT_POLICY=$OMP_WAIT_POLICY}"
echo "- $torch_info"
echo "- Load average at start: $(load)"

for s in $sections; do
    case $s in
    a)
        section "(a) linear: avsr vs raw oneDNN matmuls" "./bench/bench_linear"
        ;;
    b)
        section "(b) convolution and pooling: avsr vs PyTorch" "sh '$here/run_conv.sh'"
        ;;
    c)
        section "(c) layer norm, softmax, log-softmax, GLU: avsr vs PyTorch" \
            "$PY '$here/norm_torch.py' > '$tmp/norm_torch.txt' && ./bench/bench_norm '$tmp/norm_torch.txt'"
        section "(c) CTC loss: avsr vs PyTorch" "./bench/bench_ctc '$here/ctc_torch.py'"
        ;;
    *)
        echo "run.sh: unknown section '$s' (a, b or c)" >&2
        status=1
        ;;
    esac
done
exit $status
