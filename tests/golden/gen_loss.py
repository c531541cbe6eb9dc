#!/usr/bin/python3
"""Golden fixtures for the loss ops (runtime/op_loss.h): tests/golden/ops/loss.safetensors.

Run through the driver: /usr/bin/python3 tests/golden/gen_ops.py loss

Cases, named "<case>.<tensor>":
  l1_*   x, t, [mask], [R], out, gx, gt         F.l1_loss and its masked form
  ce_*   logits, targets (I64), [R], out, gx    F.cross_entropy / ESPnet replica
  ctc_*  logits [B, T, C], targets (I64, concatenated), input_lengths,
         target_lengths, [R], out, gx           F.ctc_loss on logits.log_softmax(-1)
Integer parameters each C test needs are tensors too ("<case>.params", I64),
and every case's parameters are JSON metadata under "<case>".
For reduction 'none' the gradient is that of (out * R).sum() with R stored.
"""
import os

import torch
import torch.nn.functional as F
from torch import nn

import stio

RED = {"none": 0, "sum": 1, "mean": 2}


class EspnetLabelSmoothingLoss(nn.Module):
    """Replica of espnet/nets/pytorch_backend/transformer/label_smoothing_loss.py
    (LabelSmoothingLoss): KL divergence between log_softmax(x) and a target
    distribution with 1 - smoothing on the target class and
    smoothing / (size - 1) elsewhere; rows whose target is padding_idx are
    zeroed; the sum is divided by the batch size (x.size(0)) or, with
    normalize_length, by the number of non-padding rows."""

    def __init__(self, size, padding_idx, smoothing, normalize_length=False):
        super().__init__()
        self.criterion = nn.KLDivLoss(reduction="none")
        self.padding_idx = padding_idx
        self.confidence = 1.0 - smoothing
        self.smoothing = smoothing
        self.size = size
        self.normalize_length = normalize_length

    def forward(self, x, target):
        assert x.size(2) == self.size
        batch_size = x.size(0)
        x = x.view(-1, self.size)
        target = target.view(-1)
        with torch.no_grad():
            true_dist = x.clone()
            true_dist.fill_(self.smoothing / (self.size - 1))
            ignore = target == self.padding_idx
            total = len(target) - ignore.sum().item()
            target = target.masked_fill(ignore, 0)
            true_dist.scatter_(1, target.unsqueeze(1), self.confidence)
        kl = self.criterion(torch.log_softmax(x, dim=1), true_dist)
        denom = total if self.normalize_length else batch_size
        return kl.masked_fill(ignore.unsqueeze(1), 0).sum() / denom


def l1_case(T, meta, name, shape, reduction, mask_shape=None, t_grad=True):
    x = torch.randn(*shape)
    t = torch.randn(*shape)
    flat = x.view(-1)
    # a few exact ties: subgradient 0 at equality
    t.view(-1)[::5] = flat[::5]
    x.requires_grad_()
    t.requires_grad_(t_grad)
    d = (x - t).abs()
    m = None
    if mask_shape is not None:
        m = (torch.rand(*mask_shape) > 0.35).float()
        m.view(-1)[0] = 1.0
        d = d * m
    if reduction == "none":
        out = d
        R = torch.randn(*shape)
        (out * R).sum().backward()
        T[name + ".R"] = R
    else:
        if m is None:
            out = F.l1_loss(x, t, reduction=reduction)
        elif reduction == "sum":
            out = d.sum()
        else:
            out = d.sum() / m.expand_as(d).sum()
        out.reshape(1).sum().backward()
        out = out.reshape(1)
    T[name + ".x"] = x
    T[name + ".t"] = t
    if m is not None:
        T[name + ".mask"] = m
    T[name + ".out"] = out
    T[name + ".gx"] = x.grad
    if t_grad:
        T[name + ".gt"] = t.grad
    T[name + ".params"] = torch.tensor([RED[reduction], int(m is not None), int(t_grad)])
    meta[name] = {"op": "l1_loss", "shape": list(shape), "reduction": reduction,
                  "mask_shape": mask_shape, "target_grad": t_grad}


def ce_case(T, meta, name, N, V, reduction, ls=0.0, ignore=-100, n_ignored=0, mode="torch",
            espnet_B=None, normalize_length=False, scale=3.0):
    logits = (torch.randn(N, V) * scale).requires_grad_()
    tg = torch.randint(0, V, (N,))
    if n_ignored:
        tg[torch.randperm(N)[:n_ignored]] = ignore
    denom = 0
    if mode == "torch":
        out = F.cross_entropy(logits, tg, ignore_index=ignore, label_smoothing=ls,
                              reduction=reduction)
    else:
        crit = EspnetLabelSmoothingLoss(V, ignore, ls, normalize_length)
        out = crit(logits.view(espnet_B, N // espnet_B, V), tg.view(espnet_B, -1))
        denom = 0 if normalize_length else espnet_B
    if reduction == "none":
        R = torch.randn(N)
        (out * R).sum().backward()
        T[name + ".R"] = R
    else:
        out.backward()
        out = out.reshape(1)
    T[name + ".logits"] = logits
    T[name + ".targets"] = tg
    T[name + ".out"] = out
    T[name + ".gx"] = logits.grad
    T[name + ".params"] = torch.tensor([RED[reduction], ignore, 0 if mode == "torch" else 1,
                                        denom])
    T[name + ".ls"] = torch.tensor([ls])
    meta[name] = {"op": "cross_entropy", "N": N, "V": V, "reduction": reduction,
                  "label_smoothing": ls, "ignore_index": ignore, "mode": mode,
                  "denom": denom}


def ctc_case(T, meta, name, B, Tmax, C, ilens, labels, blank, reduction, zero_inf,
             scale=2.0):
    """labels: list of per-utterance label lists (concatenated for the op)."""
    logits = (torch.randn(B, Tmax, C) * scale).requires_grad_()
    tl = torch.tensor([len(l) for l in labels], dtype=torch.int64)
    il = torch.tensor(ilens, dtype=torch.int64)
    flat = [v for l in labels for v in l]
    tg = torch.tensor(flat, dtype=torch.int64)
    lp = logits.log_softmax(-1).transpose(0, 1)
    out = F.ctc_loss(lp, tg, il, tl, blank=blank, reduction=reduction,
                     zero_infinity=zero_inf)
    if reduction == "none":
        R = torch.randn(B)
        (out * R).sum().backward()
        T[name + ".R"] = R
    else:
        out.backward()
        out = out.reshape(1)
    T[name + ".logits"] = logits
    T[name + ".targets"] = tg if len(flat) else torch.zeros(1, dtype=torch.int64)
    T[name + ".input_lengths"] = il
    T[name + ".target_lengths"] = tl
    T[name + ".out"] = out
    T[name + ".gx"] = logits.grad
    T[name + ".params"] = torch.tensor([RED[reduction], blank, int(zero_inf)])
    meta[name] = {"op": "ctc_loss", "shape": [B, Tmax, C], "input_lengths": ilens,
                  "target_lengths": tl.tolist(), "blank": blank, "reduction": reduction,
                  "zero_infinity": zero_inf}


def main(outdir):
    torch.manual_seed(1234)
    T, meta = {}, {}
    # L1
    l1_case(T, meta, "l1_mean", (3, 5, 7), "mean")
    l1_case(T, meta, "l1_sum", (2, 9, 5), "sum", t_grad=False)
    l1_case(T, meta, "l1_mask_mean", (2, 9, 5), "mean", mask_shape=(2, 9, 1))
    l1_case(T, meta, "l1_mask_sum", (3, 11), "sum", mask_shape=(3, 11))
    l1_case(T, meta, "l1_mask_none", (4, 3, 2), "none", mask_shape=(3, 1))
    l1_case(T, meta, "l1_b1", (1, 1, 4), "mean")
    # cross-entropy
    ce_case(T, meta, "ce_mean", 13, 11, "mean", n_ignored=3)
    ce_case(T, meta, "ce_ls_mean", 13, 11, "mean", ls=0.1, n_ignored=4)
    ce_case(T, meta, "ce_ls_sum", 9, 17, "sum", ls=0.2, ignore=-1, n_ignored=2)
    ce_case(T, meta, "ce_ls_none", 7, 5, "none", ls=0.15, ignore=0, n_ignored=0)
    ce_case(T, meta, "ce_n1", 1, 7, "mean", ls=0.1)
    ce_case(T, meta, "ce_espnet_batch", 15, 9, "mean", ls=0.1, ignore=-1, n_ignored=4,
            mode="espnet", espnet_B=3)
    ce_case(T, meta, "ce_espnet_len", 12, 10, "mean", ls=0.2, ignore=-1, n_ignored=3,
            mode="espnet", espnet_B=4, normalize_length=True)
    ce_case(T, meta, "ce_espnet_b1", 1, 6, "mean", ls=0.1, ignore=-1, mode="espnet",
            espnet_B=1)
    # CTC: different input and target lengths, a feasible repeat, length 0
    mixed = dict(B=4, Tmax=12, C=7, ilens=[12, 9, 5, 12],
                 labels=[[1, 2, 2, 3, 1], [4, 4, 5], [], [6, 1, 6, 5]])
    ctc_case(T, meta, "ctc_mixed_mean", blank=0, reduction="mean", zero_inf=False, **mixed)
    ctc_case(T, meta, "ctc_mixed_sum", blank=0, reduction="sum", zero_inf=False, **mixed)
    ctc_case(T, meta, "ctc_mixed_none", blank=0, reduction="none", zero_inf=True, **mixed)
    # impossible alignments: too many labels; repeats whose blanks do not fit;
    # beside a repeat that fits exactly (3 frames for [3, 3])
    imp = dict(B=4, Tmax=6, C=5, ilens=[3, 4, 3, 6],
               labels=[[1, 2, 3, 4, 1], [2, 2, 2], [3, 3], [1, 1, 2]])
    ctc_case(T, meta, "ctc_imp_zi_mean", blank=0, reduction="mean", zero_inf=True, **imp)
    ctc_case(T, meta, "ctc_imp_zi_sum", blank=0, reduction="sum", zero_inf=True, **imp)
    ctc_case(T, meta, "ctc_imp_inf_none", blank=0, reduction="none", zero_inf=False, **imp)
    ctc_case(T, meta, "ctc_imp_inf_sum", blank=0, reduction="sum", zero_inf=False, **imp)
    # T = 1
    ctc_case(T, meta, "ctc_t1", B=3, Tmax=1, C=5, ilens=[1, 1, 1], labels=[[2], [], [3, 3]],
             blank=0, reduction="none", zero_inf=False)
    # blank is the last class
    ctc_case(T, meta, "ctc_blank_last", B=2, Tmax=10, C=6, ilens=[10, 7],
             labels=[[0, 1, 1, 4], [2, 0]], blank=5, reduction="mean", zero_inf=False)
    # blank in the middle, batch 1
    ctc_case(T, meta, "ctc_b1_blank_mid", B=1, Tmax=9, C=4, ilens=[9], labels=[[0, 3, 3, 0]],
             blank=2, reduction="sum", zero_inf=False)
    # a larger random case
    g = torch.Generator().manual_seed(7)
    labs, ils = [], []
    for b in range(3):
        L = int(torch.randint(6, 13, (1,), generator=g))
        labs.append([int(v) for v in torch.randint(1, 29, (L,), generator=g)])
        ils.append(int(torch.randint(30, 41, (1,), generator=g)))
    ils[0] = 40
    ctc_case(T, meta, "ctc_rand", B=3, Tmax=40, C=29, ilens=ils, labels=labs, blank=0,
             reduction="none", zero_inf=False, scale=3.0)
    stio.save(os.path.join(outdir, "loss.safetensors"), T, meta)


if __name__ == "__main__":
    import sys
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "ops"))
