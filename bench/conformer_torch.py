#!/usr/bin/python3
"""PyTorch peer of bench/bench_conformer.c: one ESPnet Conformer layer
(the replica of tests/golden/gen_encoder.py: macaron FFN, rel-pos MHSA,
convolution module, final LayerNorm), d 256, 4 heads, FFN 1024, kernel 31,
B 8, T 250, training mode with dropout 0.1, 2 threads (OMP_NUM_THREADS
overrides). Timed: y = layer(x, pos_emb, mask); y.backward(R) ("train"),
and y = layer(...) under no_grad in eval mode ("eval_fwd"). 2 warm-up runs,
then the median of 7. Prints "name ms" lines for bench_conformer:

    /usr/bin/python3 bench/conformer_torch.py > torch.txt
    OMP_NUM_THREADS=2 build/bench/bench_conformer torch.txt
"""
import os
import statistics
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "golden"))
import gen_encoder as G  # noqa: E402

WARM, RUNS = 2, 7
B, T, D, H, FFN, K, P = 8, 250, 256, 4, 1024, 31, 0.1


def main():
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    torch.manual_seed(0)
    layer = G.EncoderLayer(D, G.RelPositionMultiHeadedAttention(H, D, P),
                           G.PositionwiseFeedForward(D, FFN, P, nn.ReLU()),
                           G.ConvolutionModule(D, K), P, True)
    x = torch.rand(B, T, D) * 2 - 1
    _, pos = G.RelPositionalEncoding(D, 0.0)(x)
    pos = pos.float()
    mask = torch.ones(B, 1, T, dtype=torch.bool)
    R = torch.rand(B, T, D) * 2 - 1

    def run(train):
        ts = []
        layer.train(train)
        for it in range(WARM + RUNS):
            xi = x.clone().requires_grad_(train)
            t0 = time.perf_counter()
            if train:
                y = layer((xi, pos), mask)[0][0]
                y.backward(R)
            else:
                with torch.no_grad():
                    y = layer((xi, pos), mask)[0][0]
            t1 = time.perf_counter()
            if it >= WARM:
                ts.append((t1 - t0) * 1e3)
        return statistics.median(ts)

    print("train %.3f" % run(True), flush=True)
    print("eval_fwd %.3f" % run(False), flush=True)


if __name__ == "__main__":
    main()
