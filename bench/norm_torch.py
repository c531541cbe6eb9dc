#!/usr/bin/python3
"""PyTorch peer of bench/bench_norm.c: forward + backward of layer norm,
softmax and GLU on the same shapes (y = op(x); y.backward(R)),
2 threads (OMP_NUM_THREADS overrides), 5 warm-up runs then the
median of 30. Prints "name ms" lines for bench_norm to read:

    /usr/bin/python3 bench/norm_torch.py > torch.txt
    OMP_NUM_THREADS=2 build/bench/bench_norm torch.txt
"""
import os
import statistics
import time

import torch
import torch.nn.functional as F

WARM, RUNS = 5, 30


def bench(name, make, fn):
    args, R = make()
    ts = []
    for it in range(WARM + RUNS):
        for a in args:
            a.grad = None
        t0 = time.perf_counter()
        y = fn(*args)
        y.backward(R)
        t1 = time.perf_counter()
        if it >= WARM:
            ts.append((t1 - t0) * 1e3)
    print("%s %.4f" % (name, statistics.median(ts)), flush=True)


def rnd(*s, grad=True):
    return (torch.rand(*s) * 4 - 2).requires_grad_(grad)


def ln_case(N, D):
    return lambda: ((rnd(N, D), rnd(D), rnd(D)), torch.rand(N, D) * 2 - 1)


def main():
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    torch.manual_seed(0)
    for N, D in [(4096, 256), (4096, 768)]:
        bench("layer_norm [%d,%d]" % (N, D), ln_case(N, D),
              lambda x, g, b: F.layer_norm(x, (x.shape[-1],), g, b, 1e-5))
    bench("softmax [8,4,250,250]",
          lambda: ((rnd(8, 4, 250, 250),), torch.rand(8, 4, 250, 250) * 2 - 1),
          lambda x: F.softmax(x, -1))
    bench("glu [8,512,250] dim 1",
          lambda: ((rnd(8, 512, 250),), torch.rand(8, 256, 250) * 2 - 1),
          lambda x: F.glu(x, 1))


if __name__ == "__main__":
    main()
