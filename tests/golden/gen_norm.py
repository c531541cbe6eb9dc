"""Golden fixtures for the norm family (op_norm.h, op_act.h).

Writes <outdir>/norm.safetensors. Every case stores its inputs, the output
"y", a fixed upstream gradient "R" (loss = (y * R).sum(), masked positions
of log-softmax excluded) and the gradients "g_<input>" of the inputs and
parameters; batch norm cases also store the updated running statistics.
Case parameters are JSON metadata under the case name.
"""
import os

import torch
import torch.nn.functional as F

import stio

T = {}
META = {}


def put(case, **tensors):
    for k, v in tensors.items():
        T["%s.%s" % (case, k)] = v.detach().clone()


def rand(*shape, lo=-2.0, hi=2.0):
    return (torch.rand(*shape) * (hi - lo) + lo).requires_grad_(True)


def finish(case, y, inputs, R=None):
    """loss = (y * R).sum(); store R and each input's gradient g_<name>."""
    if R is None:
        R = torch.rand(y.shape) * 2 - 1
    loss = (torch.where(torch.isinf(y), torch.zeros_like(y), y) * R).sum()
    loss.backward()
    put(case, y=y, R=R)
    for name, t in inputs.items():
        put(case, **{name: t})
        if t.grad is not None:
            put(case, **{"g_" + name: t.grad})


# ---------------------------------------------------------------- batch norm

def masked_bn(x, mask, gamma, beta, rm, rv, momentum, eps):
    """Reference masked batch norm (training): statistics over valid frames
    of x [B, C, T, *]; every frame normalised with them; running stats updated
    with the unbiased variance."""
    shape = [x.shape[0], 1, x.shape[2]] + [1] * (x.dim() - 3)
    m = mask.to(x.dtype).reshape(shape).expand_as(x)
    dims = [0] + list(range(2, x.dim()))
    n = m.sum(dims)
    mean = (x * m).sum(dims) / n
    cshape = [1, -1] + [1] * (x.dim() - 2)
    var = (((x - mean.reshape(cshape)) ** 2) * m).sum(dims) / n
    y = (x - mean.reshape(cshape)) / torch.sqrt(var.reshape(cshape) + eps)
    if gamma is not None:
        y = y * gamma.reshape(cshape)
    if beta is not None:
        y = y + beta.reshape(cshape)
    with torch.no_grad():
        rm.mul_(1 - momentum).add_(momentum * mean)
        rv.mul_(1 - momentum).add_(momentum * var * n / (n - 1))
    return y


def bn_case(case, shape, training, affine=True, lengths=None, momentum=0.1, eps=1e-5):
    C = shape[1]
    x = rand(*shape, lo=-1.0, hi=3.0)
    gamma = rand(C, lo=0.5, hi=1.5) if affine else None
    beta = rand(C, lo=-0.5, hi=0.5) if affine else None
    rm = torch.rand(C) * 0.4 - 0.2
    rv = torch.rand(C) + 0.5
    put(case, running_mean=rm, running_var=rv)
    rm2, rv2 = rm.clone(), rv.clone()
    if lengths is not None:
        mask = torch.arange(shape[2])[None, :] < torch.tensor(lengths)[:, None]
        put(case, mask=mask.to(torch.uint8))
        y = masked_bn(x, mask, gamma, beta, rm2, rv2, momentum, eps)
    else:
        y = F.batch_norm(x, rm2, rv2, gamma, beta, training, momentum, eps)
    put(case, running_mean_new=rm2, running_var_new=rv2)
    ins = {"x": x}
    if affine:
        ins.update(gamma=gamma, beta=beta)
    finish(case, y, ins)
    META[case] = {"training": training, "affine": affine, "momentum": momentum, "eps": eps,
                  "masked": lengths is not None}


# ---------------------------------------------------------------- layer norm

def ln_case(case, shape, eps, affine=True):
    D = shape[-1]
    x = rand(*shape, lo=-1.0, hi=2.0)
    ins = {"x": x}
    gamma = beta = None
    if affine:
        gamma = rand(D, lo=0.5, hi=1.5)
        beta = rand(D, lo=-0.5, hi=0.5)
        ins.update(gamma=gamma, beta=beta)
    y = F.layer_norm(x, (D,), gamma, beta, eps)
    finish(case, y, ins)
    META[case] = {"eps": eps, "affine": affine}


# ---------------------------------------------------------------- softmax

def softmax_case(case, shape, mask_shape=None, log=False, kind="random"):
    x = rand(*shape, lo=-4.0, hi=4.0)
    ins = {"x": x}
    if mask_shape is None:
        y = F.log_softmax(x, -1) if log else F.softmax(x, -1)
    else:
        if kind == "lengths":  # key padding [B, 1, ..., T]
            lens = torch.randint(1, shape[-1] + 1, (shape[0],))
            lens[0] = shape[-1]
            keep = torch.arange(shape[-1])[None, :] < lens[:, None]
            keep = keep.reshape(mask_shape)
        else:
            keep = torch.rand(mask_shape) > 0.3
            keep.view(-1, mask_shape[-1])[1] = False  # one fully masked row
        put(case, mask=keep.to(torch.uint8))
        xm = x.masked_fill(~keep, torch.finfo(torch.float32).min)
        if log:
            y = F.log_softmax(xm, -1).masked_fill(~keep, float("-inf"))
        else:
            y = F.softmax(xm, -1).masked_fill(~keep, 0.0)
    finish(case, y, ins)
    META[case] = {"log": log, "masked": mask_shape is not None}


# ---------------------------------------------------------------- activations

def act_case(case, fn, shape):
    x = rand(*shape, lo=-4.0, hi=4.0)
    y = {"relu": F.relu, "silu": F.silu, "gelu": F.gelu, "sigmoid": torch.sigmoid,
         "tanh": torch.tanh}[fn](x)
    finish(case, y, {"x": x})
    META[case] = {"fn": fn}


def prelu_case(case, shape, na):
    x = rand(*shape, lo=-3.0, hi=3.0)
    a = rand(na, lo=0.05, hi=0.5)
    y = F.prelu(x, a)
    finish(case, y, {"x": x, "a": a})
    META[case] = {"na": na}


def glu_case(case, shape, dim):
    x = rand(*shape, lo=-3.0, hi=3.0)
    y = F.glu(x, dim)
    finish(case, y, {"x": x})
    META[case] = {"dim": dim}


def main(outdir):
    torch.manual_seed(1234)
    bn_case("bn_train", [3, 5, 7], True)
    bn_case("bn_train_4d", [2, 3, 4, 5], True, affine=False, momentum=0.3)
    bn_case("bn_train_2d", [6, 4], True)
    bn_case("bn_train_b1", [1, 3, 9], True)
    bn_case("bn_mask", [3, 4, 6], True, lengths=[6, 2, 4])
    bn_case("bn_mask_4d", [2, 3, 5, 2], True, lengths=[3, 5], eps=1e-3)
    bn_case("bn_eval", [2, 5, 3], False)
    ln_case("ln", [3, 5, 37], 1e-5)
    ln_case("ln_conformer", [1, 1, 256], 1e-12)
    ln_case("ln_noaffine", [4, 19], 1e-5, affine=False)
    ln_case("ln_d1", [3, 1], 1e-5)
    softmax_case("sm", [2, 3, 5, 13])
    softmax_case("sm_len1", [3, 1])
    softmax_case("sm_keypad", [3, 2, 4, 11], [3, 1, 1, 11], kind="lengths")
    softmax_case("sm_mask", [2, 3, 5, 9], [2, 1, 5, 9])
    softmax_case("lsm", [4, 17], log=True)
    softmax_case("lsm_keypad", [3, 2, 4, 11], [3, 1, 1, 11], log=True, kind="lengths")
    softmax_case("lsm_mask", [2, 3, 5, 9], [2, 1, 5, 9], log=True)
    for fn in ["relu", "silu", "gelu", "sigmoid", "tanh"]:
        act_case("act_" + fn, fn, [3, 7, 11])
    prelu_case("prelu", [2, 5, 9], 5)
    prelu_case("prelu_one", [4, 7], 1)
    prelu_case("prelu_4d", [1, 3, 2, 5], 3)
    glu_case("glu_c", [3, 10, 7], 1)
    glu_case("glu_last", [2, 3, 8], -1)
    glu_case("glu_len1", [1, 6, 1], 1)
    stio.save(os.path.join(outdir, "norm.safetensors"), T, META)


if __name__ == "__main__":
    import sys
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "ops"))
