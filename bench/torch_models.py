#!/usr/bin/python3
"""PyTorch peer of bench/bench_model.c: one training step (forward, hybrid
CTC/attention loss, backward, AdamW step) of the whole AV model on a fixed
batch, for the "demo" model (recipes/demo-joint.yaml sizes) and a "base" model
(two Conformers 12 x 256, ResNet-18 width 64 at 88 x 88, ResNet1D width 64,
concat+MLP fusion hidden 1024, 6-layer decoder), vocabulary 41, training
mode, dropout 0, no padding. The model is the Auto-AVSR AV replica of
tests/golden/gen_model.py (the one the golden test checks our model
against). 2 threads (OMP_NUM_THREADS overrides); warm-up then the median.
Prints "name ms params peak_rss_mib" lines for bench_model:

    /usr/bin/python3 bench/torch_models.py > torch.txt
    OMP_NUM_THREADS=2 build/bench/bench_model torch.txt
"""
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))
import gen_model  # noqa: E402

MODELS = {
    # name: (sizes, B, T, target length, warm-up, runs)
    "demo": (dict(V=41, vw=16, aw=16, depth=(1, 1, 1, 1), d=144, heads=4, ffn=576, layers=4,
                  kernel=15, hidden=256, dec_layers=1, ctc_weight=0.3, lsm=0.1), 4, 50, 20, 2, 5),
    "base": (dict(V=41, vw=64, aw=64, depth=(2, 2, 2, 2), d=256, heads=4, ffn=1024, layers=12,
                  kernel=31, hidden=1024, dec_layers=6, ctc_weight=0.1, lsm=0.1), 2, 40, 20, 1, 3),
}


def batch(B, T, L, V):
    g = torch.Generator().manual_seed(1)
    video = torch.rand(B, T, 88, 88, generator=g) * 2 - 1
    audio = torch.rand(B, T * 640, generator=g) * 2 - 1
    ys = torch.randint(1, V - 1, (B, L), generator=g)
    return video, audio, torch.full((B,), T), ys


def main():
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    torch.manual_seed(0)
    wanted = sys.argv[1:] or list(MODELS)
    for name in wanted:
        c, B, T, L, warm, runs = MODELS[name]
        m = gen_model.E2EAV(c)
        m.train()
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.03)
        video, audio, lengths, ys = batch(B, T, L, c["V"])
        times = []
        for it in range(warm + runs):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            out = m(video, audio, lengths, ys)
            out["total"].backward()
            opt.step()
            times.append((time.perf_counter() - t0) * 1e3)
        nparams = sum(p.numel() for p in m.parameters())
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print("%s %.1f %d %.0f" % (name, statistics.median(times[warm:]), nparams, rss))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
