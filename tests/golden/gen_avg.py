"""Fixture for tests/test_average.c (checkpoint averaging, avsr-avg).

Writes three small model checkpoints avg_0/1/2.safetensors and the
expected average avg_expected.safetensors into tests/golden/ops/ (or the
directory given as the first argument). Needs only numpy:

    /usr/bin/python3 tests/golden/gen_avg.py

Rules (fairseq scripts/average_checkpoints.py): float tensors are the mean
(accumulated in float64 in input order, then rounded once to the tensor's
dtype); integer tensors are the sum floor-divided by the count (Python //,
towards minus infinity). Negative integers with sums not divisible by 3 are
included so the floor rule is exercised.
"""
import json
import os
import struct
import sys

import numpy as np

_DT = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64",
       np.dtype(np.float16): "F16", np.dtype(np.int64): "I64",
       np.dtype(np.int32): "I32"}


def save(path, tensors, metadata):
    header = {"__metadata__": metadata}
    blobs = []
    off = 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _DT[a.dtype], "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main(outdir):
    rng = np.random.default_rng(20240601)
    shapes = {
        "enc.conv.weight": ((7, 3, 5), np.float32),
        "enc.bn.weight": ((7,), np.float32),
        "enc.bn.running_mean": ((7,), np.float32),
        "enc.bn.running_var": ((7,), np.float32),
        "dec.embed.weight": ((11, 6), np.float32),
        "dec.proj.weight_f64": ((3, 4), np.float64),
        "dec.proj.weight_f16": ((5, 3), np.float16),
    }
    inputs = []
    for k in range(3):
        t = {}
        for name, (shape, dt) in shapes.items():
            x = rng.standard_normal(shape) * (1.0 + k)
            if name.endswith("running_var"):
                x = np.abs(x) + 0.5
            t[name] = x.astype(dt)
        t["enc.bn.num_batches_tracked"] = np.array(1000 * (k + 1) + k, dtype=np.int64)
        t["dec.counts"] = np.array([-7 + k * k, 5 - 3 * k, 2 ** 40 + k, -1, 0, 3 * k - 4],
                                   dtype=np.int64)
        t["dec.small_ints"] = np.array([[-5 - k * k, 4 + k], [k, -k - k * k]], dtype=np.int32)
        inputs.append(t)
    for k, t in enumerate(inputs):
        meta = {"format": "pt", "avsr.step": str(100 * (k + 1)),
                "avsr.model": json.dumps({"d_model": 7}),  # the same in every input
                "avsr.tokenizer": json.dumps({"tokens": ["<blank>", "a", "b"]}),
                "avsr.stage": "train"}
        save(os.path.join(outdir, "avg_%d.safetensors" % k), t, meta)
    exp = {}
    for name in inputs[0]:
        a = [t[name] for t in inputs]
        if a[0].dtype.kind == "f":
            s = a[0].astype(np.float64)
            for x in a[1:]:
                s = s + x.astype(np.float64)
            m = s / len(a)
            if a[0].dtype == np.float16:
                m = m.astype(np.float32)  # avsr rounds double -> float -> half
            exp[name] = m.astype(a[0].dtype)
        else:
            s = a[0].astype(np.int64)
            for x in a[1:]:
                s = s + x.astype(np.int64)
            exp[name] = (s // len(a)).astype(a[0].dtype)
    save(os.path.join(outdir, "avg_expected.safetensors"), exp, {"avsr.step": "0"})


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "ops"))
