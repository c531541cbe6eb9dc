#!/usr/bin/python3
"""Write the seed corpus of the safetensors fuzzer (tests/fuzz/corpus/).

Small valid files (every dtype, metadata, scalar, zero-size tensor, padded
header) and small invalid ones (each kind of rejection once), so that
libFuzzer starts from inputs that reach every branch of the validator.
Run from anywhere: /usr/bin/python3 tests/fuzz/make_corpus.py
"""
import json
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def st(header, data=b"", hlen=None, pad=True):
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h) if hlen is None else hlen) + h + data


def t(dtype, shape, b, e):
    return {"dtype": dtype, "shape": shape, "data_offsets": [b, e]}


SIZES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I8": 1, "I16": 2, "I32": 4, "I64": 8,
         "U8": 1, "BOOL": 1}

files = {}
# valid
files["valid_f32"] = st({"w": t("F32", [2, 3], 0, 24)}, struct.pack("<6f", 1, 2, 3, 4, 5, 6))
hdr, off = {}, 0
for i, (dt, sz) in enumerate(SIZES.items()):
    hdr["t.%s" % dt] = t(dt, [3], off, off + 3 * sz)
    off += 3 * sz
hdr["__metadata__"] = {"format": "pt", "config": "{\"d\": 4}"}
files["valid_all_dtypes"] = st(hdr, bytes(range(off)))
files["valid_empty"] = st({})
files["valid_meta_only"] = st({"__metadata__": {"k": "v"}})
files["valid_scalar_zero"] = st({"s": t("I64", [], 0, 8), "z": t("F32", [0, 5], 8, 8)},
                                struct.pack("<q", -5))
files["valid_unordered"] = st({"b": t("U8", [2], 2, 4), "a": t("U8", [1, 2], 0, 2)}, b"abcd")
files["valid_6d"] = st({"x": t("BF16", [1, 1, 1, 1, 1, 2], 0, 4)}, b"\x80\x3f\x00\xc0")
# invalid
files["bad_short"] = b"\x08\x00\x00"
files["bad_hlen"] = st({}, hlen=1000)
files["bad_json"] = st(b"{\"a\":", pad=False)
files["bad_array"] = st(b"[1,2]", pad=False)
files["bad_dtype"] = st({"a": t("F8", [1], 0, 1)}, b"x")
files["bad_count"] = st({"a": t("F32", [3], 0, 8)}, bytes(8))
files["bad_overlap"] = st({"a": t("U8", [4], 0, 4), "b": t("U8", [4], 2, 6)}, bytes(6))
files["bad_hole"] = st({"a": t("U8", [2], 0, 2), "b": t("U8", [2], 4, 6)}, bytes(6))
files["bad_trailing"] = st({"a": t("U8", [2], 0, 2)}, bytes(5))
files["bad_shape"] = st({"a": t("U8", [-1], 0, 1)}, b"x")
files["bad_dims"] = st({"a": t("U8", [1] * 7, 0, 1)}, b"x")
files["bad_begin_end"] = st({"a": t("U8", [0], 4, 2)}, bytes(4))
files["bad_meta"] = st({"__metadata__": {"k": 1}})
files["bad_dup"] = st(b"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                      b"\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", b"xy")
files["bad_past_end"] = st({"a": t("F32", [4], 0, 16)}, bytes(8))

os.makedirs(OUT, exist_ok=True)
for name, data in files.items():
    with open(os.path.join(OUT, name + ".safetensors"), "wb") as f:
        f.write(data)
print("wrote %d files to %s" % (len(files), OUT))
