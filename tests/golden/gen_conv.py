"""Golden fixtures for the convolution and pooling ops (runtime/op_conv.h).

Writes ops/conv.safetensors. For each case: inputs (x, w, b), output y, the
upstream weights r of the loss L = sum(y * r), and the gradients gx, gw, gb
of L. The case's parameters are JSON metadata under the case name; the C
test reads the integers from it in order (see tests/test_op_conv.c):
  conv / conv_transpose: nsp, stride[nsp], pad[nsp], dil[nsp], out_pad[nsp], groups
  max_pool / avg_pool:   nsp, kernel[nsp], stride[nsp], pad[nsp], exclude_pad
  adaptive_avg_pool:     nsp, out[nsp]
Run: /usr/bin/python3 tests/golden/gen_ops.py conv
"""
import os

import torch
import torch.nn.functional as F

import stio

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONVT = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
MAXP = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVGP = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
ADAP = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}


def rnd(*shape):
    return (torch.rand(*shape) * 2 - 1).requires_grad_(True)


def finish(T, meta, name, y, ins, params):
    r = torch.rand(y.shape) * 2 - 1
    (y * r).sum().backward()
    T[name + ".y"] = y
    T[name + ".r"] = r
    for k, t in ins.items():
        if t is None:
            continue
        T[name + "." + k] = t
        T[name + ".g" + k] = t.grad
    meta[name] = params


def conv_case(T, meta, name, transposed, xs, ws, bias, stride, pad, dil, groups, out_pad=None):
    n = len(xs) - 2
    x, w = rnd(*xs), rnd(*ws)
    cout = ws[1] * groups if transposed else ws[0]
    b = rnd(cout) if bias else None
    out_pad = out_pad or [0] * n
    if transposed:
        y = CONVT[n](x, w, b, stride=stride, padding=pad, output_padding=out_pad,
                     groups=groups, dilation=dil)
    else:
        y = CONV[n](x, w, b, stride=stride, padding=pad, dilation=dil, groups=groups)
    finish(T, meta, name, y, {"x": x, "w": w, "b": b},
           {"op": "conv_transpose" if transposed else "conv", "nsp": n, "stride": stride,
            "pad": pad, "dil": dil, "out_pad": out_pad, "groups": groups})


def pool_case(T, meta, name, kind, xs, kernel, stride, pad, exclude=False):
    n = len(xs) - 2
    x = rnd(*xs)
    if kind == "max_pool":
        y = MAXP[n](x, kernel, stride, pad)
    else:
        y = AVGP[n](x, kernel, stride, pad, count_include_pad=not exclude)
    finish(T, meta, name, y, {"x": x},
           {"op": kind, "nsp": n, "kernel": kernel, "stride": stride, "pad": pad,
            "exclude_pad": int(exclude)})


def adaptive_case(T, meta, name, xs, out):
    n = len(xs) - 2
    x = rnd(*xs)
    y = ADAP[n](x, out)
    finish(T, meta, name, y, {"x": x}, {"op": "adaptive_avg_pool", "nsp": n, "out": out})


def main(outdir):
    torch.manual_seed(1234)
    T, meta = {}, {}
    # convolutions: odd sizes, batch 1, stride 2 with padding, dilation,
    # groups, depthwise, length 1
    conv_case(T, meta, "c1d", False, [2, 4, 11], [6, 2, 3], True, [2], [1], [2], 2)
    conv_case(T, meta, "c1d_len1", False, [1, 3, 1], [5, 3, 3], False, [1], [1], [1], 1)
    conv_case(T, meta, "c2d", False, [1, 3, 7, 9], [5, 3, 3, 3], True, [2, 2], [1, 1], [1, 1], 1)
    conv_case(T, meta, "c2d_rect", False, [2, 4, 7, 9], [6, 4, 3, 2], True, [2, 1], [0, 1],
              [1, 2], 1)
    conv_case(T, meta, "c2d_dw", False, [2, 6, 7, 9], [6, 1, 3, 3], True, [1, 2], [2, 2],
              [2, 2], 6)
    conv_case(T, meta, "c3d_stem", False, [2, 1, 5, 9, 9], [4, 1, 3, 5, 5], False, [1, 2, 2],
              [1, 2, 2], [1, 1, 1], 1)
    conv_case(T, meta, "c3d_g", False, [1, 4, 4, 5, 6], [4, 2, 2, 3, 3], True, [1, 1, 2],
              [0, 1, 1], [1, 2, 1], 2)
    # transposed
    conv_case(T, meta, "t1d", True, [2, 4, 5], [4, 3, 4], True, [2], [1], [1], 1, [1])
    conv_case(T, meta, "t1d_g", True, [1, 4, 6], [4, 2, 3], False, [3], [0], [2], 2, [2])
    conv_case(T, meta, "t3d_up", True, [2, 3, 4, 3, 2], [3, 2, 6, 1, 1], True, [2, 1, 1],
              [2, 0, 0], [1, 1, 1], 1, [1, 0, 0])
    conv_case(T, meta, "t2d", True, [1, 2, 3, 4], [2, 3, 3, 3], True, [2, 2], [1, 0], [1, 1], 1,
              [0, 1])
    # pooling
    pool_case(T, meta, "max1d", "max_pool", [2, 3, 11], [3], [2], [1])
    pool_case(T, meta, "max2d", "max_pool", [1, 2, 7, 9], [3, 3], [2, 2], [1, 1])
    pool_case(T, meta, "max3d", "max_pool", [2, 3, 3, 9, 9], [1, 3, 3], [1, 2, 2], [0, 1, 1])
    pool_case(T, meta, "avg1d", "avg_pool", [1, 2, 10], [4], [3], [2])
    pool_case(T, meta, "avg2d_inc", "avg_pool", [2, 3, 7, 9], [3, 3], [2, 2], [1, 1])
    pool_case(T, meta, "avg2d_exc", "avg_pool", [2, 3, 7, 9], [3, 3], [2, 2], [1, 1], True)
    pool_case(T, meta, "avg3d_exc", "avg_pool", [1, 2, 5, 6, 7], [2, 3, 3], [2, 2, 1], [1, 1, 1],
              True)
    adaptive_case(T, meta, "ad1d", [2, 3, 10], [4])
    adaptive_case(T, meta, "ad2d", [1, 2, 7, 9], [3, 4])
    adaptive_case(T, meta, "ad3d", [1, 2, 3, 7, 9], [4, 3, 5])
    adaptive_case(T, meta, "gap2d", [2, 3, 7, 9], [1, 1])
    meta["cases"] = ",".join(k for k in meta)
    stio.save(os.path.join(outdir, "conv.safetensors"), T, meta)


if __name__ == "__main__":
    main(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops"))
