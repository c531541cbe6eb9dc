#!/usr/bin/python3
"""PyTorch peer of bench/bench_frontend.c: forward + backward of the
Auto-AVSR visual frontend (Conv3dResNet, width 64, ROI 88, B=2, T=25,
training mode), 2 threads (OMP_NUM_THREADS overrides), 2 warm-up runs then
the median of 7. Uses the replica in tests/golden/gen_frontend.py, once with
lengths 25 and 20 (batch norm statistics over valid frames, as on our side;
the replica's masked batch norm is composed of element-wise ops) and once
without lengths (nn.BatchNorm's own kernel).
Prints "name ms" lines for bench_frontend to read:

    /usr/bin/python3 bench/frontend_torch.py > torch.txt
    OMP_NUM_THREADS=2 build/bench/bench_frontend torch.txt
"""
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))
import gen_frontend  # noqa: E402

WARM, RUNS = 2, 7


def main():
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    m = gen_frontend.Conv3dResNet(64, (2, 2, 2, 2), "swish")
    m.train()
    x = torch.rand(2, 25, 88, 88) * 2 - 1
    R = torch.rand(2, 25, 512) * 2 - 1
    # masked: lengths 25 and 20, BN statistics over valid frames (the
    # replica's masked_bn, composed of element-wise ops); plain: no lengths,
    # nn.BatchNorm's own kernel (Auto-AVSR as published)
    for tag, lengths in (("", [25, 20]), ("_plain", None)):
        tb, tf = [], []
        for it in range(WARM + RUNS):
            m.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            y = m(x, lengths)
            t1 = time.perf_counter()
            y.backward(R)
            t2 = time.perf_counter()
            if it >= WARM:
                tf.append((t1 - t0) * 1e3)
                tb.append((t2 - t0) * 1e3)
        print("visual_fwd%s %.2f" % (tag, statistics.median(tf)), flush=True)
        print("visual_fwd_bwd%s %.2f" % (tag, statistics.median(tb)), flush=True)


if __name__ == "__main__":
    main()
