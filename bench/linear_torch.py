#!/usr/bin/python3
"""PyTorch peer of bench/bench_linear.c: F.linear forward + backward at the
same Conformer sizes (B*T = 4096 rows), 2 threads, warm-up 3, median of 10
(--reps N, --warm N: Debian's torch 1.13 is built with BLAS_INFO=generic
and runs these products at a few GFLOP/s, so a full run takes minutes;
--reps 3 --warm 1 is enough to see the order of magnitude).
Prints a Markdown table of achieved GFLOP/s (forward 2*M*N*K flops,
backward twice that); compare the GFLOP/s column with bench_linear's
(ratio avsr / PyTorch = PyTorch time / avsr time).
Run: /usr/bin/python3 bench/linear_torch.py
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def main(reps=10, warm=3):
    torch.set_num_threads(2)
    M = 4096
    print("PyTorch %s linear forward+backward, B*T = %d rows, 2 threads, median of %d "
          "(warm-up %d)\n" % (torch.__version__, M, reps, warm))
    print("| shape (M x K -> N) | PyTorch GFLOP/s | fwd ms | bwd ms |")
    print("|---|---:|---:|---:|")
    for K, N in [(256, 1024), (1024, 256), (768, 3072), (3072, 768)]:
        x = (torch.rand(M, K) - 0.5).requires_grad_()
        w = (torch.rand(N, K) - 0.5).requires_grad_()
        b = (torch.rand(N) - 0.5).requires_grad_()
        dy = torch.rand(M, N) - 0.5
        tf, tb = [], []
        for it in range(warm + reps):
            x.grad = None  # an activation's gradient is made fresh each step
            t0 = time.perf_counter()
            y = F.linear(x, w, b)
            t1 = time.perf_counter()
            y.backward(dy)  # w.grad, b.grad accumulate
            t2 = time.perf_counter()
            if it >= warm:
                tf.append(t1 - t0)
                tb.append(t2 - t1)
        tot = statistics.median([a + c for a, c in zip(tf, tb)])
        print("| %d x %d -> %d | %.1f | %.2f | %.2f |"
              % (M, K, N, 6.0 * M * N * K / tot * 1e-9, statistics.median(tf) * 1e3,
                 statistics.median(tb) * 1e3))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warm", type=int, default=3)
    a = ap.parse_args()
    main(a.reps, a.warm)
