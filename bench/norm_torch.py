#!/usr/bin/python3
"""PyTorch peer of bench/bench_norm.c: forward + backward of layer norm,
softmax, log-softmax and GLU on the same shapes (y = op(x); y.backward(R)),
2 threads (OMP_NUM_THREADS overrides), 5 warm-up runs then 30 timed.
Prints "name median_ms min_ms" lines for bench_norm to read:

    /usr/bin/python3 bench/norm_torch.py [--only TEXT] > torch.txt
    OMP_NUM_THREADS=2 build/bench/bench_norm torch.txt

--only TEXT times only the rows whose name contains TEXT (as bench_norm's
option of the same name).

x.grad is reset to None before each step (a new gradient, like an
activation's), except in the "d x +=" row, where it is kept and added to.
Parameter gradients (gamma, beta) are always kept and added to, as the avsr
side does.
"""
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

WARM, RUNS = 5, 30


ONLY = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv[1:-1] else None


def bench(name, make, fn, keep_x_grad=False):
    if ONLY is not None and ONLY not in name:
        return
    args, R = make()
    ts = []
    for it in range(WARM + RUNS):
        if not keep_x_grad:
            args[0].grad = None
        t0 = time.perf_counter()
        y = fn(*args)
        y.backward(R)
        t1 = time.perf_counter()
        if it >= WARM:
            ts.append((t1 - t0) * 1e3)
    print("%s %.4f %.4f" % (name, statistics.median(ts), min(ts)), flush=True)


def rnd(*s, grad=True):
    return (torch.rand(*s) * 4 - 2).requires_grad_(grad)


def ln_case(N, D):
    return lambda: ((rnd(N, D), rnd(D), rnd(D)), torch.rand(N, D) * 2 - 1)


def main():
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    torch.manual_seed(0)

    def ln(x, g, b):
        return F.layer_norm(x, (x.shape[-1],), g, b, 1e-5)

    bench("layer_norm [4096,256]", ln_case(4096, 256), ln)
    bench("layer_norm [4096,256] d x +=", ln_case(4096, 256), ln, keep_x_grad=True)
    bench("layer_norm [4096,768]", ln_case(4096, 768), ln)
    bench("softmax [8,4,250,250]",
          lambda: ((rnd(8, 4, 250, 250),), torch.rand(8, 4, 250, 250) * 2 - 1),
          lambda x: F.softmax(x, -1))
    bench("log_softmax [8,250,500]",
          lambda: ((rnd(8, 250, 500),), torch.rand(8, 250, 500) * 2 - 1),
          lambda x: F.log_softmax(x, -1))
    bench("glu [8,512,250] dim 1",
          lambda: ((rnd(8, 512, 250),), torch.rand(8, 256, 250) * 2 - 1),
          lambda x: F.glu(x, 1))
    bench("layer_norm [64,256]", ln_case(64, 256), ln)
    bench("softmax [2,4,10,20]",
          lambda: ((rnd(2, 4, 10, 20),), torch.rand(2, 4, 10, 20) * 2 - 1),
          lambda x: F.softmax(x, -1))


if __name__ == "__main__":
    main()
