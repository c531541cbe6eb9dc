"""Golden fixtures for runtime/optim.c and runtime/lrsched.c.

Run through the driver:  /usr/bin/python3 tests/golden/gen_ops.py optim
Writes tests/golden/ops/optim.safetensors.

Optimizer cases ("adamw", "adam", "sgd_nesterov", "sgd_damp", "sgd_plain"):
four parameters of odd sizes, p0 [7, 13], p1 [5] (frozen: not given to the
torch optimizer), p2 [3, 1, 9], p3 [37]. Tensors per case:
  <case>.<p>.init        initial values
  <case>.<p>.grad.<k>    gradient used at step k (k = 0..4); p1 has some too,
                         which the optimizer must ignore
  <case>.<p>.final       values after 5 steps
  <case>.<p>.m / .v      torch's exp_avg / exp_avg_sq (Adam) or
                         momentum_buffer (SGD, as .m) after 5 steps
  <case>.lr              the learning rate of each step (float32 values)
Metadata "<case>": the hyperparameters as JSON.

Clipping cases ("clip_hit", "clip_miss"): <case>.<p>.grad before,
<case>.<p>.clipped after torch.nn.utils.clip_grad_norm_ over p0, p2, p3
(p1 frozen, with large gradients that must not count), and <case>.norm.

Schedules ("sched_*"): <case>.lr is the learning rate for steps 0..N-1 (the
value in effect for each update, before scheduler.step()) stored as the bit
patterns of float64 in an I64 tensor, so the C test compares doubles.
<case>.epoch is the epoch of each step (I64). Metadata "<case>" holds the
schedule's configuration.
"""
import json
import math
import os

import torch

import stio

SHAPES = {"p0": [7, 13], "p1": [5], "p2": [3, 1, 9], "p3": [37]}
TRAIN = ["p0", "p2", "p3"]
NSTEPS = 5


def f32(x):
    return float(torch.tensor(x, dtype=torch.float32).item())


def make_params(gen):
    init = {k: (torch.rand(s, generator=gen) * 2 - 1) for k, s in SHAPES.items()}
    grads = []
    for k in range(NSTEPS):
        g = {}
        for name, s in SHAPES.items():
            x = torch.randn(s, generator=gen) * (0.5 + k)
            x.view(-1)[0] = 0.0        # a zero gradient element
            if name == "p3":
                x[5] = 40.0 * (1 if k % 2 == 0 else -1)   # a large one
            g[name] = x
        grads.append(g)
    return init, grads


def run_optimizer(case, kind, hp, lrs, init, grads, out, meta):
    params = {k: init[k].clone().requires_grad_(k in TRAIN) for k in SHAPES}
    plist = [params[k] for k in TRAIN]
    if kind == "adamw":
        opt = torch.optim.AdamW(plist, lr=lrs[0], betas=(hp["beta1"], hp["beta2"]),
                                eps=hp["eps"], weight_decay=hp["weight_decay"])
    elif kind == "adam":
        opt = torch.optim.Adam(plist, lr=lrs[0], betas=(hp["beta1"], hp["beta2"]),
                               eps=hp["eps"], weight_decay=hp["weight_decay"])
    else:
        opt = torch.optim.SGD(plist, lr=lrs[0], momentum=hp["momentum"],
                              dampening=hp["dampening"], nesterov=hp["nesterov"],
                              weight_decay=hp["weight_decay"])
    for k in range(NSTEPS):
        for pg in opt.param_groups:
            pg["lr"] = lrs[k]
        for name in TRAIN:
            params[name].grad = grads[k][name].clone()
        opt.step()
    for name in SHAPES:
        out["%s.%s.init" % (case, name)] = init[name]
        for k in range(NSTEPS):
            out["%s.%s.grad.%d" % (case, name, k)] = grads[k][name]
        out["%s.%s.final" % (case, name)] = params[name].detach()
    for name in TRAIN:
        st = opt.state[params[name]]
        if kind in ("adam", "adamw"):
            out["%s.%s.m" % (case, name)] = st["exp_avg"]
            out["%s.%s.v" % (case, name)] = st["exp_avg_sq"]
        elif hp["momentum"] != 0:
            out["%s.%s.m" % (case, name)] = st["momentum_buffer"]
    out["%s.lr" % case] = torch.tensor(lrs, dtype=torch.float32)
    meta[case] = dict(hp, type=kind)


def clip_case(case, max_norm, gen, scale, out, meta):
    grads = {k: torch.randn(s, generator=gen) * scale for k, s in SHAPES.items()}
    grads["p1"] = grads["p1"] * 1000.0   # frozen: must not count
    params = [torch.zeros(SHAPES[k], requires_grad=True) for k in TRAIN]
    for p, k in zip(params, TRAIN):
        p.grad = grads[k].clone()
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    for p, k in zip(params, TRAIN):
        out["%s.%s.grad" % (case, k)] = grads[k]
        out["%s.%s.clipped" % (case, k)] = p.grad
    out["%s.p1.grad" % case] = grads["p1"]
    out["%s.norm" % case] = norm.reshape(1)
    meta[case] = {"max_norm": max_norm}


def lambda_lrs(base, fn, n):
    """lr for updates 0..n-1 from torch's LambdaLR stepped once per update."""
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=base)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, fn)
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


class TriStage:
    """fairseq's TriStageLRSchedule (fairseq/optim/lr_scheduler/
    tri_stage_lr_scheduler.py), transcribed: step_update(num_updates)."""

    def __init__(self, lr, init_scale, final_scale, warmup, hold, decay):
        self.peak_lr = lr
        self.init_lr = init_scale * lr
        self.final_lr = final_scale * lr
        self.warmup_steps, self.hold_steps, self.decay_steps = warmup, hold, decay
        self.warmup_rate = ((self.peak_lr - self.init_lr) / warmup) if warmup else 0
        self.decay_factor = -math.log(final_scale) / decay

    def _decide_stage(self, s):
        if s < self.warmup_steps:
            return 0, s
        off = self.warmup_steps
        if s < off + self.hold_steps:
            return 1, s - off
        off += self.hold_steps
        if s <= off + self.decay_steps:
            return 2, s - off
        off += self.decay_steps
        return 3, s - off

    def step_update(self, num_updates):
        stage, k = self._decide_stage(num_updates)
        if stage == 0:
            return self.init_lr + self.warmup_rate * k
        if stage == 1:
            return self.peak_lr
        if stage == 2:
            return self.peak_lr * math.exp(-self.decay_factor * k)
        return self.final_lr


def put_sched(case, cfg, lrs, epochs, out, meta):
    out["%s.lr" % case] = torch.tensor(lrs, dtype=torch.float64).view(torch.int64)
    out["%s.epoch" % case] = torch.tensor(epochs, dtype=torch.int64)
    meta[case] = cfg


def schedules(out, meta):
    # constant, no warmup and with warmup
    n = 40
    put_sched("sched_const", {"type": "constant", "lr": 1e-3, "warmup_steps": 0},
              lambda_lrs(1e-3, lambda s: 1.0, n), [0] * n, out, meta)
    w = 12
    put_sched("sched_const_warm", {"type": "constant", "lr": 3e-4, "warmup_steps": w},
              lambda_lrs(3e-4, lambda s: s / w if s < w else 1.0, n), [0] * n, out, meta)

    # warmup + cosine (Auto-AVSR), past the end where it stays at 0
    w, total, n = 25, 200, 230

    def cosine(s):
        if s < w:
            return s / w
        if s >= total:
            return 0.0
        return 0.5 * (1 + math.cos(math.pi * (s - w) / (total - w)))
    put_sched("sched_cosine", {"type": "warmup_cosine", "lr": 1e-3, "warmup_steps": w,
                               "total_steps": total},
              lambda_lrs(1e-3, cosine, n), [0] * n, out, meta)
    # no warmup
    put_sched("sched_cosine_nowarm", {"type": "warmup_cosine", "lr": 2e-3, "warmup_steps": 0,
                                      "total_steps": 50},
              lambda_lrs(2e-3, lambda s: 0.5 * (1 + math.cos(math.pi * s / 50)) if s < 50
                         else 0.0, 60), [0] * 60, out, meta)

    # fairseq tri-stage (AV-HuBERT fine-tuning style: final scale 0.05)
    for case, (lr, i_s, f_s, wu, hold, dec, n) in {
            "sched_tri": (1e-3, 0.01, 0.05, 10, 7, 20, 50),
            "sched_tri_nohold": (5e-4, 0.1, 0.01, 6, 0, 9, 25),
            "sched_tri_nowarm": (2e-3, 0.01, 0.5, 0, 3, 4, 12)}.items():
        ts = TriStage(lr, i_s, f_s, wu, hold, dec)
        put_sched(case, {"type": "tri_stage", "lr": lr, "init_lr_scale": i_s,
                         "final_lr_scale": f_s, "warmup_steps": wu, "hold_steps": hold,
                         "decay_steps": dec},
                  [ts.step_update(s) for s in range(n)], [0] * n, out, meta)

    # exponential per epoch (torch ExponentialLR stepped per epoch), 7 steps/epoch
    per, ne, gamma, lr = 7, 10, 0.631, 5e-4
    w_ = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w_], lr=lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
    lrs, eps = [], []
    for e in range(ne):
        for _ in range(per):
            lrs.append(opt.param_groups[0]["lr"])
            eps.append(e)
            opt.step()
        sched.step()
    put_sched("sched_exp", {"type": "exp_per_epoch", "lr": lr, "factor": gamma,
                            "warmup_steps": 0}, lrs, eps, out, meta)
    # with a 10-step warmup on top (LambdaLR over (step, epoch))
    w = 10
    lrs = [lr * gamma ** (s // per) * (s / w if s < w else 1.0) for s in range(per * 4)]
    put_sched("sched_exp_warm", {"type": "exp_per_epoch", "lr": lr, "factor": gamma,
                                 "warmup_steps": w},
              lrs, [s // per for s in range(per * 4)], out, meta)


def main(outdir):
    gen = torch.Generator().manual_seed(1234)
    init, grads = make_params(gen)
    out, meta = {}, {}
    lrs = [f32(x) for x in (1e-2, 2e-2, 1.5e-2, 5e-3, 1e-2)]
    run_optimizer("adamw", "adamw",
                  {"beta1": 0.9, "beta2": 0.98, "eps": 1e-6, "weight_decay": 0.05},
                  lrs, init, grads, out, meta)
    run_optimizer("adam", "adam",
                  {"beta1": 0.8, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01},
                  lrs, init, grads, out, meta)
    run_optimizer("sgd_nesterov", "sgd",
                  {"momentum": 0.9, "dampening": 0.0, "nesterov": True, "weight_decay": 1e-3},
                  lrs, init, grads, out, meta)
    run_optimizer("sgd_damp", "sgd",
                  {"momentum": 0.5, "dampening": 0.25, "nesterov": False, "weight_decay": 0.0},
                  lrs, init, grads, out, meta)
    run_optimizer("sgd_plain", "sgd",
                  {"momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.02},
                  lrs, init, grads, out, meta)
    clip_case("clip_hit", 1.0, gen, 1.0, out, meta)
    clip_case("clip_miss", 100.0, gen, 0.1, out, meta)
    schedules(out, meta)
    stio.save(os.path.join(outdir, "optim.safetensors"), out,
              {k: json.dumps(v) for k, v in meta.items()})
