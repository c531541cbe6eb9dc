#!/usr/bin/python3
"""PyTorch peer of bench/train_throughput.sh: data-parallel training steps of
the whole AV model (the Auto-AVSR AV replica of tests/golden/gen_model.py,
at the sizes of bench/torch_models.py's "demo" or "base") on random data,
in one of two layouts:

    ddp    N processes (torch.multiprocessing spawn), gloo backend,
           DistributedDataParallel, THREADS threads each; rank r holds the
           clips j of the global batch with j mod N == r (as avsr-worker
           splits a batch)
    single one process, THREADS threads, the whole global batch

Each step: zero_grad, forward with the hybrid CTC/attention loss, backward
(DDP all-reduces the gradients in 25 MB buckets, overlapped with
backward), global-norm clipping at 5, AdamW (lr 1e-3, betas 0.9/0.98,
weight decay 0.03). Training mode; every dropout of the replica's encoders
and decoder (residual, feed-forward, positional encoding, attention
weights; built with p = 0) set to --dropout (default 0.1, as avsr's
encoder.dropout / decoder.dropout defaults in the bench recipes; avsr's
CTC and modality dropout have no counterpart here). Every clip is B x T
frames long (no padding: every frame counts). Video frames are
ROI x ROI (demo 44, base 88), audio T * 640 samples, targets L tokens.

    /usr/bin/python3 bench/torch_ddp.py --model demo --layout ddp --procs 2 \
        --threads 1 --B 30 --T 50 [--L 25] [--warmup 2] [--steps 8]

Prints one line of key=value pairs:

    torch model=demo torch_layout=ddp procs=2 threads=1 B=30 T=50 L=25 dropout=0.1 frames=1500
        fps_median=... step_s_median=... step_s_mean=... peak_rss_mb=...
        peak_rss_mb_sum=... params=...

fps_median is the median over the timed steps (after warm-up) of global
frames / rank 0's step time; peak_rss_mb is rank 0's peak RSS (getrusage),
peak_rss_mb_sum the sum over the processes. torch.nn.SyncBatchNorm needs
CUDA in torch 1.13, so the DDP run keeps per-rank BatchNorm statistics
(DDP broadcasts rank 0's running statistics every step).
"""
import argparse
import os
import resource
import statistics
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "golden"))
import gen_model  # noqa: E402
import torch_models  # noqa: E402

ROI = {"demo": 44, "base": 88}


def share(B, procs, rank):
    """clips j with j mod procs == rank"""
    return len(range(rank, B, procs))


def make_batch(b, T, L, V, roi, seed):
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(b, T, roi, roi, generator=g) * 2 - 1
    audio = torch.rand(b, T * 640, generator=g) * 2 - 1
    ys = torch.randint(1, V - 1, (b, L), generator=g)
    return video, audio, torch.full((b,), T), ys


def worker(rank, a, initfile, result):
    torch.set_num_threads(a.threads)
    ddp = a.layout == "ddp"
    if ddp:
        dist.init_process_group("gloo", init_method="file://" + initfile, rank=rank,
                                world_size=a.procs)
    torch.manual_seed(0)  # same initial parameters on every rank
    c = torch_models.MODELS[a.model][0]
    m = gen_model.E2EAV(c)
    for mod in m.modules():  # the replica is built with dropout 0
        if isinstance(mod, torch.nn.Dropout):
            mod.p = a.dropout
    m.train()
    nparams = sum(p.numel() for p in m.parameters())
    model = torch.nn.parallel.DistributedDataParallel(m, bucket_cap_mb=25) if ddp else m
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.03)
    b = share(a.B, a.procs, rank) if ddp else a.B
    video, audio, lengths, ys = make_batch(b, a.T, a.L, c["V"], ROI[a.model], 100 + rank)
    times = []
    for _ in range(a.warmup + a.steps):
        if ddp:
            dist.barrier()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out = model(video, audio, lengths, ys)
        out["total"].backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 5.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if ddp:
        r = torch.tensor([rss])
        dist.all_reduce(r)
        rss_sum = float(r[0])
        dist.destroy_process_group()
    else:
        rss_sum = rss
    if rank == 0:
        result.update(times=times[a.warmup:], rss=rss, rss_sum=rss_sum, params=nparams)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=sorted(ROI), required=True)
    ap.add_argument("--layout", choices=["ddp", "single"], required=True)
    ap.add_argument("--procs", type=int, default=2, help="ddp: processes")
    ap.add_argument("--threads", type=int, required=True, help="threads per process")
    ap.add_argument("--B", type=int, required=True, help="global batch: clips")
    ap.add_argument("--T", type=int, required=True, help="frames per clip")
    ap.add_argument("--L", type=int, default=25, help="target tokens per clip")
    ap.add_argument("--dropout", type=float, default=0.1,
                    help="p of every dropout of the encoders and the decoder (the recipes' 0.1)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8)
    a = ap.parse_args()
    if a.layout == "single":
        a.procs = 1
    if a.B < a.procs or a.T < 1 or a.L < 1 or a.L > a.T or a.steps < 1 or a.warmup < 0:
        ap.error("need B >= procs, 1 <= L <= T, steps >= 1, warmup >= 0")
    with tempfile.TemporaryDirectory() as tmp:
        initfile = os.path.join(tmp, "init")
        if a.layout == "ddp":
            with mp.Manager() as mgr:
                result = mgr.dict()
                mp.spawn(worker, args=(a, initfile, result), nprocs=a.procs, join=True)
                res = dict(result)
        else:
            res = {}
            worker(0, a, initfile, res)
    frames = a.B * a.T
    t = res["times"]
    fps = [frames / s for s in t]
    print("torch model=%s torch_layout=%s procs=%d threads=%d B=%d T=%d L=%d dropout=%g frames=%d "
          "fps_median=%.1f "
          "step_s_median=%.4f step_s_mean=%.4f peak_rss_mb=%.0f peak_rss_mb_sum=%.0f params=%d"
          % (a.model, a.layout, a.procs, a.threads, a.B, a.T, a.L, a.dropout, frames,
             statistics.median(fps),
             statistics.median(t), statistics.mean(t), res["rss"], res["rss_sum"], res["params"]))


if __name__ == "__main__":
    main()
