"""Minimal safetensors writer for golden fixtures (no dependency beyond torch).

Fixtures are small: store float tensors as F32, integer ones as I64.
Each fixture file holds several cases; tensors are named "<case>.<what>" and
each case's parameters are a JSON string in the metadata under "<case>".
"""
import json
import struct

import torch

_DT = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64",
       torch.int32: "I32", torch.uint8: "U8", torch.int16: "I16", torch.bool: "BOOL"}


def save(path, tensors, metadata=None):
    header = {}
    blobs = []
    off = 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        if t.dtype == torch.float64:
            t = t.float()
        b = t.numpy().tobytes()
        header[name] = {"dtype": _DT[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = {k: v if isinstance(v, str) else json.dumps(v)
                                  for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
