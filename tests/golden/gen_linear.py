#!/usr/bin/python3
"""Golden fixtures for the op_linear family (linear, linear_act, matmul,
embedding): writes outdir/linear.safetensors.

Every case stores its inputs, the output, the upstream gradient R and the
gradients of loss = (out * R).sum() with respect to every input that takes
one; its parameters are JSON metadata under the case name.
Run: /usr/bin/python3 tests/golden/gen_ops.py linear
"""
import os

import torch
import torch.nn.functional as F

import stio


def rnd(*shape):
    return (torch.rand(*shape, dtype=torch.float64) * 2 - 1).float()


def grads(out, inputs, tensors, case):
    r = rnd(*out.shape)
    (out * r).sum().backward()
    tensors[case + ".out"] = out
    tensors[case + ".r"] = r
    for name, t in inputs.items():
        if t is not None and t.requires_grad:
            tensors["%s.d%s" % (case, name)] = t.grad


def main(outdir):
    g = torch.Generator().manual_seed(1234)
    torch.manual_seed(1234)
    T, meta = {}, {}
    acts = {"none": lambda v: v, "relu": F.relu, "silu": F.silu, "gelu": F.gelu}

    # linear / linear_act: (case, x shape, out features, bias, activation)
    lin_cases = [
        ("lin_3d", (3, 5, 7), 11, True, "none"),
        ("lin_b1_t1_nobias", (1, 1, 9), 6, False, "none"),
        ("lin_2d", (13, 17), 19, True, "none"),
        ("lin_1d", (8,), 3, True, "none"),
        ("act_none", (2, 5, 13), 10, True, "none"),
        ("act_relu", (2, 5, 13), 10, True, "relu"),
        ("act_silu", (2, 5, 13), 10, True, "silu"),
        ("act_gelu", (2, 5, 13), 10, True, "gelu"),
        ("act_gelu_nobias", (1, 3, 9), 7, False, "gelu"),
    ]
    for case, xs, n_out, bias, act in lin_cases:
        x = rnd(*xs).requires_grad_()
        w = rnd(n_out, xs[-1]).requires_grad_()
        b = rnd(n_out).requires_grad_() if bias else None
        out = acts[act](F.linear(x, w, b))
        T[case + ".x"], T[case + ".w"] = x, w
        if b is not None:
            T[case + ".b"] = b
        grads(out, {"x": x, "w": w, "b": b}, T, case)
        meta[case] = {"x": list(xs), "out": n_out, "bias": bias, "act": act}

    # matmul: (case, batch dims of a, M, K, N, trans_a, trans_b, b broadcast, alpha)
    mm_cases = []
    for ta in (False, True):
        for tb in (False, True):
            tag = ("t" if ta else "n") + ("t" if tb else "n")
            mm_cases.append(("mm_" + tag, (2, 3), 5, 7, 4, ta, tb, False, 0.37))
            mm_cases.append(("mm_bcast_" + tag, (2, 3), 5, 7, 4, ta, tb, True, 1.0))
    mm_cases.append(("mm_2d", (), 6, 9, 5, False, False, False, 1.0))
    mm_cases.append(("mm_b1_m1", (1,), 1, 8, 3, False, True, False, 0.125))
    for case, batch, M, K, N, ta, tb, bc, alpha in mm_cases:
        a = rnd(*batch, *((K, M) if ta else (M, K))).requires_grad_()
        bshape = (N, K) if tb else (K, N)
        b = rnd(*(bshape if bc else batch + bshape)).requires_grad_()
        opa = a.transpose(-1, -2) if ta else a
        opb = b.transpose(-1, -2) if tb else b
        out = torch.matmul(opa, opb) * alpha
        T[case + ".a"], T[case + ".b"] = a, b
        grads(out, {"a": a, "b": b}, T, case)
        meta[case] = {"trans_a": ta, "trans_b": tb, "alpha": alpha, "bcast": bc}

    # embedding: (case, V, D, idx shape, padding_idx)
    for case, V, D, ishape, pad in [("emb_pad", 11, 6, (3, 4), 2),
                                    ("emb_nopad", 7, 5, (9,), -1),
                                    ("emb_b1_t1", 4, 3, (1, 1), -1)]:
        w = rnd(V, D).requires_grad_()
        idx = torch.randint(0, V, ishape, generator=g)
        if pad >= 0:
            idx.view(-1)[1] = pad
        idx.view(-1)[-1] = idx.view(-1)[0]  # a repeated index
        out = F.embedding(idx, w, padding_idx=pad if pad >= 0 else None)
        T[case + ".w"], T[case + ".idx"] = w, idx
        grads(out, {"w": w}, T, case)
        meta[case] = {"V": V, "D": D, "padding_idx": pad}

    stio.save(os.path.join(outdir, "linear.safetensors"), T, meta)


if __name__ == "__main__":
    main(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops"))
