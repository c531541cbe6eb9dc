#!/usr/bin/python3
"""PyTorch peer of bench/bench_conv.c: the same shapes, forward + backward
(all gradients), 2 threads, warm-up then the median of the timed runs.

    /usr/bin/python3 bench/conv_torch.py [out.txt]

Prints a Markdown table (median wall ms, median process CPU ms per
iteration); with out.txt also writes "<case> <ms> <cpu ms>" lines that
bench/bench_conv reads to print the ratio torch/avsr (bench/run_conv.sh).
"""
import statistics
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)

CASES = [
    # name, desc, x shape, fn(x, w), w shape, x needs grad, runs
    ("rb64", "conv3x3 64->64 22x22 s1, B=50", (50, 64, 22, 22),
     lambda x, w: F.conv2d(x, w, None, 1, 1), (64, 64, 3, 3), True, 15),
    ("rb128", "conv3x3 128->128 11x11 s1, B=50", (50, 128, 11, 11),
     lambda x, w: F.conv2d(x, w, None, 1, 1), (128, 128, 3, 3), True, 15),
    ("down", "conv3x3 64->128 22->11 s2, B=50", (50, 64, 22, 22),
     lambda x, w: F.conv2d(x, w, None, 2, 1), (128, 64, 3, 3), True, 15),
    ("stem", "conv3d 1->64 k(5,7,7) s(1,2,2) [2,1,25,88,88]", (2, 1, 25, 88, 88),
     lambda x, w: F.conv3d(x, w, None, (1, 2, 2), (2, 3, 3)), (64, 1, 5, 7, 7), False, 7),
    ("maxpool", "maxpool3d (1,3,3)/(1,2,2)/(0,1,1) [2,64,25,44,44]", (2, 64, 25, 44, 44),
     lambda x, w: F.max_pool3d(x, (1, 3, 3), (1, 2, 2), (0, 1, 1)), None, True, 15),
]


def main():
    out = open(sys.argv[1], "w") if len(sys.argv) > 1 else None
    only = sys.argv[2] if len(sys.argv) > 2 else None
    print("torch %s, threads %d\n" % (torch.__version__, torch.get_num_threads()))
    print("| case | shape | torch ms | cpu ms |")
    print("|---|---|---:|---:|")
    for name, desc, xs, fn, ws, xg, runs in CASES:
        if only and name != only:
            continue
        x = torch.rand(xs) - 0.5
        w = torch.nn.Parameter(torch.rand(ws) - 0.5) if ws else None
        x.requires_grad_(xg)
        gy = None
        times, cpus = [], []
        for it in range(2 + runs):
            t0, c0 = time.perf_counter(), time.process_time()
            x.grad = None
            y = fn(x, w)
            if gy is None:
                gy = torch.rand(y.shape) - 0.5
            y.backward(gy)
            t1, c1 = time.perf_counter(), time.process_time()
            if it >= 2:
                times.append((t1 - t0) * 1e3)
                cpus.append((c1 - c0) * 1e3)
        ms, cpu = statistics.median(times), statistics.median(cpus)
        print("| %s | %s | %.2f | %.1f |" % (name, desc, ms, cpu), flush=True)
        if out:
            out.write("%s %.4f %.4f\n" % (name, ms, cpu))
    if out:
        out.close()


if __name__ == "__main__":
    main()
