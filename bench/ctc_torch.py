#!/usr/bin/python3
"""PyTorch peer of bench/bench_ctc.c: CTC loss forward + backward on logits.

Each run: log_softmax over classes, F.ctc_loss (reduction mean, blank 0) on
[T, B, C] log-probabilities, backward to the logits. Same shapes, length
distributions and timing rule (warm-up, median of N) as bench_ctc.
Prints "torch <B>x<T>x<C> <median ms>" per shape, then a Markdown table.
Run: /usr/bin/python3 bench/ctc_torch.py
"""
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = [(8, 250, 40, 60), (16, 150, 500, 30)]  # B, T, C, mean target length
WARMUP, RUNS = 3, 20


def make(B, T, C, Lm, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, C, generator=g) * 2.0
    tl = torch.randint(Lm - 5, Lm + 6, (B,), generator=g)
    il = torch.randint(int(0.8 * T), T + 1, (B,), generator=g)
    il[0] = T
    tg = torch.randint(1, C, (int(tl.sum()),), generator=g)
    return logits, tg, il, tl


def step(logits, tg, il, tl):
    x = logits.detach().requires_grad_()
    lp = x.log_softmax(-1).transpose(0, 1)
    loss = F.ctc_loss(lp, tg, il, tl, blank=0, reduction="mean")
    loss.backward()
    return loss.item()


def main():
    torch.set_num_threads(2)
    rows = []
    for (B, T, C, Lm) in SHAPES:
        data = make(B, T, C, Lm, 1234)
        for _ in range(WARMUP):
            step(*data)
        ts = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            step(*data)
            ts.append((time.perf_counter() - t0) * 1e3)
        ms = statistics.median(ts)
        name = "%dx%dx%d" % (B, T, C)
        print("torch %s %.4f" % (name, ms), flush=True)
        rows.append((name, Lm, ms))
    print()
    print("| logits [B, T, C] | target len ~ | torch ms |")
    print("|---|---|---|")
    for name, Lm, ms in rows:
        print("| %s | %d | %.3f |" % (name, Lm, ms))


if __name__ == "__main__":
    main()
