#!/usr/bin/python3
"""Golden fixtures for the shape family (runtime/op_shape.h).

Run: /usr/bin/python3 tests/golden/gen_ops.py shape
Writes tests/golden/ops/shape.safetensors. For each case "<c>":
  <c>.a, <c>.b, <c>.x ...  inputs
  <c>.y (or <c>.y0, <c>.y1, ... for split)  outputs
  <c>.r (or <c>.r0, ...)   the fixed upstream gradient R: loss = sum(y * R)
  <c>.ga, <c>.gb, <c>.gx ...  gradients of the inputs that require grad
and the metadata entry "<c>" holds the op and its parameters as JSON.

The positional encodings and rel_shift are replicas of ESPnet's
espnet/nets/pytorch_backend/transformer/embedding.py (PositionalEncoding,
RelPositionalEncoding.extend_pe) and attention.py
(RelPositionMultiHeadedAttention.rel_shift), and of Whisper's sinusoids()
(openai/whisper, whisper/model.py), written out here so the fixture does not
depend on those packages.
"""
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

import stio

T = {}
META = {}


def rnd(*shape, lo=-1.0, hi=1.0):
    return (torch.rand(tuple(shape)) * (hi - lo) + lo).float()


def away_from_zero(*shape):
    """Values in [-2, -0.5] U [0.5, 2] (divisors)."""
    m = rnd(*shape, lo=0.5, hi=2.0)
    s = torch.where(torch.rand(tuple(shape)) < 0.5, -1.0, 1.0)
    return (m * s).float()


def run(name, meta, inputs, fn, grad=None):
    """inputs: dict name -> tensor; grad: names requiring grad (default all)."""
    grad = list(inputs) if grad is None else grad
    leaves = {}
    for k, v in inputs.items():
        leaves[k] = v.clone().requires_grad_(k in grad)
        T["%s.%s" % (name, k)] = v
    out = fn(**leaves)
    outs = out if isinstance(out, (list, tuple)) else [out]
    loss = 0.0
    for i, y in enumerate(outs):
        suffix = str(i) if isinstance(out, (list, tuple)) else ""
        r = rnd(*y.shape)
        T["%s.y%s" % (name, suffix)] = y.detach()
        T["%s.r%s" % (name, suffix)] = r
        loss = loss + (y * r).sum()
    if grad:
        loss.backward()
        for k in grad:
            T["%s.g%s" % (name, k)] = leaves[k].grad
    META[name] = meta


# ---- replicas of ESPnet / Whisper -------------------------------------------------

def espnet_abs_pe(t, d):
    """PositionalEncoding.extend_pe (ESPnet), without the xscale."""
    pe = torch.zeros(t, d)
    position = torch.arange(0, t, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d, 2, dtype=torch.float32)
                         * -(math.log(10000.0) / d))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


def espnet_rel_pe(t, d, max_len=None):
    """RelPositionalEncoding.extend_pe + the slice forward() takes (ESPnet,
    rel_pos_type "latest"). ESPnet builds the table for max_len positions
    and slices the centre 2t-1 rows; max_len > t checks that slicing."""
    n = max_len or t
    pe_positive = torch.zeros(n, d)
    pe_negative = torch.zeros(n, d)
    position = torch.arange(0, n, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d, 2, dtype=torch.float32)
                         * -(math.log(10000.0) / d))
    pe_positive[:, 0::2] = torch.sin(position * div_term)
    pe_positive[:, 1::2] = torch.cos(position * div_term)
    pe_negative[:, 0::2] = torch.sin(-1 * position * div_term)
    pe_negative[:, 1::2] = torch.cos(-1 * position * div_term)
    pe_positive = torch.flip(pe_positive, [0]).unsqueeze(0)
    pe_negative = pe_negative[1:].unsqueeze(0)
    pe = torch.cat([pe_positive, pe_negative], dim=1)
    return pe[:, pe.size(1) // 2 - t + 1: pe.size(1) // 2 + t][0]


def whisper_sinusoids(length, channels, max_timescale=10000):
    """whisper/model.py sinusoids()."""
    assert channels % 2 == 0
    log_timescale_increment = np.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-log_timescale_increment * torch.arange(channels // 2))
    scaled_time = torch.arange(length)[:, np.newaxis] * inv_timescales[np.newaxis, :]
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1)


def espnet_rel_shift(x):
    """RelPositionMultiHeadedAttention.rel_shift (ESPnet, "latest")."""
    zero_pad = torch.zeros((*x.size()[:3], 1), device=x.device, dtype=x.dtype)
    x_padded = torch.cat([zero_pad, x], dim=-1)
    x_padded = x_padded.view(*x.size()[:2], x.size(3) + 1, x.size(2))
    x = x_padded[:, :, 1:].view_as(x)[:, :, :, : x.size(-1) // 2 + 1]
    return x


# ---- cases -------------------------------------------------------------------

BINARY = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}
BSHAPES = [
    ("same", [3, 5, 7], [3, 5, 7]),
    ("bias", [4, 7, 13], [13]),
    ("chan", [2, 5, 9], [1, 5, 1]),
    ("both", [3, 1, 5], [4, 1]),
    ("abcast", [1, 6], [5, 6]),
    ("len1", [1, 1, 7], [1, 7]),
]


def binary_cases():
    for op, fn in BINARY.items():
        for tag, sa, sb in BSHAPES:
            a = rnd(*sa)
            b = away_from_zero(*sb) if op == "div" else rnd(*sb)
            run("%s_%s" % (op, tag), {"op": op}, {"a": a, "b": b},
                lambda a, b, fn=fn: fn(a, b))
    # only b requires grad (a frozen)
    run("mul_bonly", {"op": "mul"}, {"a": rnd(3, 4), "b": rnd(4)},
        lambda a, b: a * b, grad=["b"])


def scalar_cases():
    run("scale", {"op": "scale", "s": 0.37}, {"x": rnd(2, 3, 5)}, lambda x: x * 0.37)
    run("add_scalar", {"op": "add_scalar", "s": -1.5}, {"x": rnd(4, 1, 3)},
        lambda x: x + (-1.5))
    run("axpby", {"op": "axpby", "alpha": 1.0, "beta": 0.5},
        {"a": rnd(3, 7), "b": rnd(3, 7)}, lambda a, b: 1.0 * a + 0.5 * b)
    run("axpby2", {"op": "axpby", "alpha": -0.25, "beta": 3.0},
        {"a": rnd(1, 5, 2), "b": rnd(1, 5, 2)}, lambda a, b: -0.25 * a + 3.0 * b)


def mask_cases():
    # padding mask [B, 1, T] on scores [B, T', T], as attention masks are used
    x = rnd(2, 4, 6)
    m = torch.zeros(2, 1, 6)
    m[0, 0, 5:] = 1
    m[1, 0, 3:] = 1
    run("mfill_pad", {"op": "masked_fill", "value": -10000.0}, {"x": x, "m": m},
        lambda x, m: x.masked_fill(m.bool(), -10000.0), grad=["x"])
    x = rnd(3, 5)
    m = (torch.rand(5) < 0.4).float()
    run("mfill_row", {"op": "masked_fill", "value": 0.0}, {"x": x, "m": m},
        lambda x, m: x.masked_fill(m.bool(), 0.0), grad=["x"])


def concat_split_cases():
    run("concat3", {"op": "concat", "dim": 1},
        {"x0": rnd(2, 3, 4), "x1": rnd(2, 5, 4), "x2": rnd(2, 1, 4)},
        lambda x0, x1, x2: torch.cat([x0, x1, x2], 1), grad=["x0", "x2"])
    run("concat_last", {"op": "concat", "dim": -1},
        {"x0": rnd(3, 2), "x1": rnd(3, 5)}, lambda x0, x1: torch.cat([x0, x1], -1))
    run("concat_first", {"op": "concat", "dim": 0},
        {"x0": rnd(1, 3), "x1": rnd(2, 3)}, lambda x0, x1: torch.cat([x0, x1], 0))
    run("split3", {"op": "split", "dim": 1, "sizes": [3, 4, 3]}, {"x": rnd(3, 10, 4)},
        lambda x: list(torch.split(x, [3, 4, 3], 1)))
    run("split_last", {"op": "split", "dim": -1, "sizes": [1, 6]}, {"x": rnd(2, 7)},
        lambda x: list(torch.split(x, [1, 6], -1)))


def slice_pad_cases():
    for name, dim, s, e, st, shape in [
        ("slice_neg", 1, -8, -1, 3, [4, 11, 3]),
        ("slice_clamp", 1, 2, 100, 1, [4, 11, 3]),
        ("slice_last_row", 0, -1, 4, 1, [4, 5]),
        ("slice_step2", -1, 0, 9, 2, [2, 3, 9]),
        ("slice_len1", 2, 0, 1, 1, [1, 2, 1]),
    ]:
        run(name, {"op": "slice", "dim": dim, "start": s, "end": e, "step": st},
            {"x": rnd(*shape)},
            lambda x, dim=dim, s=s, e=e, st=st:
                x[(slice(None),) * (dim % x.dim()) + (slice(s, e, st),)])
    run("pad_mid", {"op": "pad", "dim": 1, "before": 2, "after": 3, "value": 0.5},
        {"x": rnd(2, 5, 3)}, lambda x: F.pad(x, (0, 0, 2, 3), value=0.5))
    run("pad_last", {"op": "pad", "dim": -1, "before": 0, "after": 4, "value": 0.0},
        {"x": rnd(3, 5)}, lambda x: F.pad(x, (0, 4), value=0.0))
    run("pad_first", {"op": "pad", "dim": 0, "before": 1, "after": 0, "value": -2.0},
        {"x": rnd(1, 3)}, lambda x: F.pad(x, (0, 0, 1, 0), value=-2.0))


def permute_cases():
    for name, shape, perm in [
        ("perm_bthd", [2, 3, 4, 5], [0, 2, 1, 3]),
        ("perm_mix", [2, 3, 4, 5], [3, 1, 0, 2]),
        ("perm_t2d", [33, 70], [1, 0]),
        ("perm_bt", [1, 37, 41], [0, 2, 1]),
        ("perm_ones", [3, 1, 5], [1, 2, 0]),
    ]:
        run(name, {"op": "permute", "perm": perm}, {"x": rnd(*shape)},
            lambda x, perm=perm: x.permute(*perm))
    run("transpose_12", {"op": "transpose", "d0": 1, "d1": -1}, {"x": rnd(2, 3, 7)},
        lambda x: x.transpose(1, -1))


def reduce_cases():
    for op in ["sum", "mean"]:
        fn = torch.sum if op == "sum" else torch.mean
        for tag, shape, dim, keep in [
            ("mid", [3, 5, 7], 1, False),
            ("last_keep", [3, 5, 7], -1, True),
            ("vec", [6], 0, False),
            ("wide", [2, 3, 300], 1, True),
            ("first", [4, 1, 3], 0, False),
        ]:
            run("%s_%s" % (op, tag), {"op": op, "dim": dim, "keepdim": keep},
                {"x": rnd(*shape)}, lambda x, fn=fn, dim=dim, keep=keep: fn(x, dim, keep))


def position_cases():
    for t, d in [(13, 10), (1, 4), (40, 64)]:
        T["abspe_%d_%d.y" % (t, d)] = espnet_abs_pe(t, d)
        META["abspe_%d_%d" % (t, d)] = {"op": "sinusoid_positions", "T": t, "D": d}
    for t, d, ml in [(9, 12, None), (1, 4, None), (30, 64, 200)]:
        T["relpe_%d_%d.y" % (t, d)] = espnet_rel_pe(t, d, ml)
        META["relpe_%d_%d" % (t, d)] = {"op": "rel_positions", "T": t, "D": d}
    for t, d in [(11, 16), (3, 4), (50, 64)]:
        T["whpe_%d_%d.y" % (t, d)] = whisper_sinusoids(t, d)
        META["whpe_%d_%d" % (t, d)] = {"op": "whisper_positions", "T": t, "D": d}


def rel_shift_cases():
    for name, shape in [("rshift", [2, 3, 5, 9]), ("rshift_t1", [1, 1, 1, 1]),
                        ("rshift_odd", [1, 2, 7, 13])]:
        run(name, {"op": "rel_shift"}, {"x": rnd(*shape)}, espnet_rel_shift)


def main(outdir):
    torch.manual_seed(1234)
    T.clear()
    META.clear()
    binary_cases()
    scalar_cases()
    mask_cases()
    concat_split_cases()
    slice_pad_cases()
    permute_cases()
    reduce_cases()
    position_cases()
    rel_shift_cases()
    stio.save(os.path.join(outdir, "shape.safetensors"), T, META)


if __name__ == "__main__":
    main(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops"))
