#!/usr/bin/python3
"""Write the golden fixtures for the runtime ops (tests/golden/ops/*.safetensors).

Run with Debian's interpreter, which sees python3-torch:
    /usr/bin/python3 tests/golden/gen_ops.py [family ...]
Each op family has a module gen_<family>.py with a main(outdir) function.
The fixtures are committed; `make check` needs no Python.
"""
import importlib
import os
import sys

import torch

FAMILIES = ["linear", "conv", "norm", "shape", "loss", "optim", "features"]


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    out = os.path.join(here, "ops")
    os.makedirs(out, exist_ok=True)
    wanted = sys.argv[1:] or FAMILIES
    for fam in wanted:
        path = os.path.join(here, "gen_%s.py" % fam)
        if not os.path.exists(path):
            print("skip %s (no %s)" % (fam, os.path.basename(path)))
            continue
        importlib.import_module("gen_" + fam).main(out)
        print("wrote fixtures for", fam)


if __name__ == "__main__":
    main()
