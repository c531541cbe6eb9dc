#!/usr/bin/python3
"""Golden fixture for models/search.c: a small Python reference of the searches.

Run through the family driver:
    /usr/bin/python3 tests/golden/gen_ops.py search
It writes tests/golden/ops/search.safetensors.

The reference is written with scalar math (math.log1p/math.exp, the libm the
C code uses) and numpy's logaddexp formula, in float64, so the C code, which
computes in double from the same float32 inputs, agrees to rounding; token
sequences must agree exactly. Doubles are stored bit-exactly as I64 tensors
("<case>.<what>_bits", float64 viewed as int64) because stio stores floats as
F32.

What is implemented (semantics documented in docs/models/search.md):
  - greedy CTC: per-frame argmax (first maximum), collapse repeats, drop blank;
  - CTC prefix beam search (blank / non-blank log-probabilities per prefix);
  - ESPnet's CTCPrefixScore (espnet/nets/ctc_prefix_score.py, numpy
    version): initial_state and __call__ for a prefix and candidate labels;
  - ESPnet's joint CTC/attention beam search (espnet/nets/beam_search.py and
    batch_beam_search.py as bundled with auto_avsr): pre-beam, weights,
    length bonus, maxlenratio, forced <eos> at the last step, end_detect
    (espnet/nets/e2e_asr_common.py, M = 3, D_end = log(exp(-10)) = -10).
    The "decoder" is a table lookup: logp(next | prefix) =
    table[min(len(prefix) - 1, L), prefix[-1], :], prefix including <sos>.
"""
import json
import math
import os

import numpy as np
import torch

import stio

LOGZERO = -10000000000.0
NEG_INF = float("-inf")


def lae(x, y):
    """numpy's npy_logaddexp, scalar."""
    if x == y:
        return x + math.log(2.0)
    d = x - y
    if d > 0:
        return x + math.log1p(math.exp(-d))
    return y + math.log1p(math.exp(d))


# --------------------------------------------------------------------------
# greedy CTC

def ctc_greedy(logp, T, blank):
    out = []
    prev = -1
    for t in range(T):
        row = logp[t]
        k = 0
        for v in range(1, len(row)):
            if row[v] > row[k]:
                k = v
        if k != prev and k != blank:
            out.append(k)
        prev = k
    return out


# --------------------------------------------------------------------------
# CTC prefix beam search

def topk_ids(row, k, exclude=None):
    """Ids of the k largest values (ties: lower id first)."""
    ids = [v for v in range(len(row)) if v != exclude]
    ids.sort(key=lambda v: (-float(row[v]), v))
    return ids[:k]


def ctc_prefix_beam(logp, T, V, beam, blank, topk, nbest):
    beams = [((), 0.0, NEG_INF)]  # (prefix, log p_blank, log p_nonblank)
    for t in range(T):
        lp = [float(v) for v in logp[t]]
        if topk > 0 and topk < V - 1:
            tokens = sorted(topk_ids(lp, topk, exclude=blank))
        else:
            tokens = [v for v in range(V) if v != blank]
        nxt = {}  # insertion ordered: creation order breaks score ties

        def entry(p):
            if p not in nxt:
                nxt[p] = [NEG_INF, NEG_INF]
            return nxt[p]

        for prefix, pb, pnb in beams:
            e = entry(prefix)
            e[0] = lae(e[0], lae(pb + lp[blank], pnb + lp[blank]))
            last = prefix[-1] if prefix else -1
            for c in tokens:
                p = lp[c]
                new = prefix + (c,)
                if c == last:
                    e2 = entry(new)
                    e2[1] = lae(e2[1], pb + p)
                    e = entry(prefix)
                    e[1] = lae(e[1], pnb + p)
                else:
                    e2 = entry(new)
                    e2[1] = lae(e2[1], lae(pb + p, pnb + p))
        items = [(k, v[0], v[1], lae(v[0], v[1]), i) for i, (k, v) in enumerate(nxt.items())]
        items = [it for it in items if it[3] > NEG_INF]  # impossible prefixes
        items.sort(key=lambda x: (-x[3], x[4]))
        beams = [(k, pb, pnb) for k, pb, pnb, _, _ in items[:beam]]
    res = [(list(k), lae(pb, pnb)) for k, pb, pnb in beams]
    return res[:nbest]


# --------------------------------------------------------------------------
# ESPnet CTCPrefixScore (numpy version), float64

class CTCPrefixScore:
    def __init__(self, x, T, blank, eos):
        self.x = [[float(v) for v in row] for row in x[:T]]
        self.T = T
        self.blank = blank
        self.eos = eos

    def initial_state(self):
        r = [[LOGZERO, LOGZERO] for _ in range(self.T)]
        r[0][1] = self.x[0][self.blank]
        for i in range(1, self.T):
            r[i][1] = r[i - 1][1] + self.x[i][self.blank]
        return r

    def __call__(self, y, cs, r_prev, want_states=True):
        """y: prefix including <sos>; returns (log_psi[len(cs)], states)."""
        T = self.T
        x = self.x
        output_length = len(y) - 1
        r_sum = [lae(r_prev[t][0], r_prev[t][1]) for t in range(T)]
        last = y[-1]
        start = max(output_length, 1)
        psis = []
        states = []
        for c in cs:
            if output_length > 0 and c == last:
                phi = [r_prev[t][1] for t in range(T)]
            else:
                phi = r_sum
            r = [[LOGZERO, LOGZERO] for _ in range(T)]
            if output_length == 0:
                r[0][0] = x[0][c]
                r[0][1] = LOGZERO
            log_psi = r[start - 1][0]
            for t in range(start, T):
                r[t][0] = lae(r[t - 1][0], phi[t - 1]) + x[t][c]
                r[t][1] = lae(r[t - 1][0], r[t - 1][1]) + x[t][self.blank]
                log_psi = lae(log_psi, phi[t - 1] + x[t][c])
            if c == self.eos:
                log_psi = r_sum[T - 1]
            if c == self.blank:
                log_psi = LOGZERO
            psis.append(log_psi)
            states.append(r)
        return psis, states


# --------------------------------------------------------------------------
# joint CTC/attention beam search

class TableDecoder:
    """logp(next | prefix) = table[min(len(prefix) - 1, L), prefix[-1], :]."""

    def __init__(self, table):
        self.table = table  # float32 [L + 1, V, V]

    def __call__(self, yseq):
        L = self.table.shape[0] - 1
        return [float(v) for v in self.table[min(len(yseq) - 1, L), yseq[-1]]]


def end_detect(ended, i, M=3, D_end=-10.0):
    if not ended:
        return False
    best = max(h["score"] for h in ended)
    count = 0
    for m in range(M):
        L = i - m
        same = [h["score"] for h in ended if len(h["yseq"]) == L]
        if same and max(same) - best < D_end:
            count += 1
    return count == M


def att_beam(ctc_logp, T, V, dec, o):
    beam = o["beam"]
    ctc_w = o["ctc_weight"]
    dec_w = 1.0 - ctc_w
    penalty = o["length_bonus"]
    sos, eos, blank = o["sos"], o["eos"], o["blank"]
    use_dec = dec_w != 0.0
    use_ctc = ctc_w != 0.0
    K = int(o["pre_beam_ratio"] * beam)
    do_pre = use_ctc and use_dec and K < V
    mlr = o["maxlenratio"]
    if mlr == 0:
        maxlen = T
    elif mlr < 0:
        maxlen = -int(mlr)
    else:
        maxlen = max(1, int(mlr * T))
    scorer = CTCPrefixScore(ctc_logp, T, blank, eos) if use_ctc else None
    running = [dict(yseq=[sos], score=0.0, dec=0.0, ctc=0.0,
                    r=scorer.initial_state() if use_ctc else None)]
    ended = []
    for i in range(maxlen):
        cands = []
        info = []
        for hi, h in enumerate(running):
            d = dec(h["yseq"]) if use_dec else [0.0] * V
            if do_pre:
                ids = topk_ids(d, K)
                if o["eos_always"] and eos not in ids:
                    ids.append(eos)
            else:
                ids = list(range(V))
            if use_ctc:
                psi, st = scorer(h["yseq"], ids, h["r"])
            else:
                psi, st = [0.0] * len(ids), [None] * len(ids)
            for j, c in enumerate(ids):
                w = 0.0
                if use_dec:
                    w += dec_w * d[c]
                if penalty != 0.0:
                    w += penalty
                if use_ctc:
                    w += ctc_w * (psi[j] - h["ctc"])
                w += h["score"]
                cands.append((-w, hi * V + c, len(info)))
                info.append((hi, c, w, d[c], psi[j], st[j]))
        cands.sort()
        best = []
        for _, _, k in cands[:beam]:
            hi, c, w, dc, ps, st = info[k]
            h = running[hi]
            best.append(dict(yseq=h["yseq"] + [c], score=w, dec=h["dec"] + dc,
                             ctc=ps if use_ctc else 0.0, r=st))
        if i == maxlen - 1:
            for h in best:
                h["yseq"] = h["yseq"] + [eos]
        running = []
        for h in best:
            if h["yseq"][-1] == eos:
                ended.append(h)
            else:
                running.append(h)
        if mlr == 0 and end_detect(ended, i):
            break
        if not running:
            break
    ended = sorted(ended, key=lambda h: -h["score"])  # stable
    return ended


# --------------------------------------------------------------------------
# fixture

def log_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=-1, keepdims=True)
    y = z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))
    return y.astype(np.float32)


def bits(values):
    return torch.from_numpy(np.asarray(values, dtype=np.float64).view(np.int64).copy())


def i64(values):
    return torch.tensor(list(values), dtype=torch.int64)


def ctc_logits(rng, T, V, blank, peaky, scale):
    """Random CTC posteriors, optionally shaped around a hidden label sequence."""
    z = rng.normal(0.0, scale, size=(T, V))
    if peaky:
        t = 0
        while t < T:
            k = int(rng.integers(1, V))
            run = int(rng.integers(1, 4))
            for u in range(t, min(T, t + run)):
                z[u, k] += peaky
            t += run
            gap = int(rng.integers(0, 3))
            for u in range(t, min(T, t + gap)):
                z[u, blank] += peaky
            t += gap
    return log_softmax(z)


def add_nbest(tensors, prefix, hyps):
    toks = []
    offs = [0]
    for h in hyps:
        toks.extend(h[0])
        offs.append(len(toks))
    tensors[prefix + ".tokens"] = i64(toks) if toks else torch.zeros(0, dtype=torch.int64)
    tensors[prefix + ".offsets"] = i64(offs)
    tensors[prefix + ".scores_bits"] = bits([h[1] for h in hyps])


def main(outdir):
    rng = np.random.default_rng(20240611)
    tensors = {}
    meta = {}

    # greedy and prefix beam: one batch of utterances per case
    cases = [
        # name, V, lengths, peaky, beam, topk, nbest
        ("ctc_a", 7, [10, 1, 17, 25], 3.0, 4, 0, 3),
        ("ctc_b", 12, [20, 13, 1, 9], 2.0, 6, 3, 4),
        ("ctc_c", 9, [15, 22], 0.0, 8, 0, 8),
        ("ctc_d", 10, [18, 11, 24], 4.0, 1, 2, 1),
    ]
    for name, V, lens, peaky, beam, topk, nbest in cases:
        Tmax = max(lens)
        x = np.zeros((len(lens), Tmax, V), dtype=np.float32)
        for b, T in enumerate(lens):
            x[b, :T] = ctc_logits(rng, T, V, 0, peaky, 1.5)
            x[b, T:] = np.float32(np.nan)  # padding must never be read
        tensors[name + ".logp"] = torch.from_numpy(x)
        tensors[name + ".lens"] = i64(lens)
        meta[name] = dict(V=V, beam=beam, topk=topk, nbest=nbest, blank=0)
        for b, T in enumerate(lens):
            g = ctc_greedy(x[b], T, 0)
            tensors["%s.u%d.greedy" % (name, b)] = i64(g) if g else torch.zeros(0, dtype=torch.int64)
            add_nbest(tensors, "%s.u%d.pbeam" % (name, b),
                      ctc_prefix_beam(x[b], T, V, beam, 0, topk, nbest))

    # edge cases for greedy / prefix beam: all blank, repeats with blanks
    V = 5
    e = np.full((8, V), -20.0, dtype=np.float64)
    e[:, 0] = 0.0
    tensors["edge_blank.logp"] = torch.from_numpy(log_softmax(e))
    seq = [1, 1, 0, 1, 2, 2, 0, 0, 2, 3]  # -> 1 1 2 2 3
    r = np.full((len(seq), V), -8.0)
    for t, k in enumerate(seq):
        r[t, k] = 0.0
    tensors["edge_repeat.logp"] = torch.from_numpy(log_softmax(r))

    # CTCPrefixScore: a chain of prefixes, all candidates scored at each step
    V, T = 8, 14
    eos = V - 1
    x = ctc_logits(rng, T, V, 0, 2.5, 1.0)
    sc = CTCPrefixScore(x, T, 0, eos)
    tensors["cps.logp"] = torch.from_numpy(x)
    chain = [3, 3, 5, 1]
    meta["cps"] = dict(V=V, T=T, blank=0, eos=eos, chain=chain)
    y = [eos]
    r = sc.initial_state()
    tensors["cps.init_bits"] = bits(r)
    for step, c in enumerate(chain + [None]):
        psi, st = sc(y, list(range(V)), r)
        tensors["cps.s%d.psi_bits" % step] = bits(psi)
        if c is None:
            break
        r = st[c]
        tensors["cps.s%d.state_bits" % step] = bits(r)
        y = y + [c]
    # a pre-beam style subset, in arbitrary order, incl. the last label and eos
    psi, _ = sc(y, [4, eos, 1, 0, 2], r)
    tensors["cps.subset.ids"] = i64([4, eos, 1, 0, 2])
    tensors["cps.subset.psi_bits"] = bits(psi)

    # joint attention beam search; a batch of utterances per case
    att = [
        # name, V, lens, beam, ctc_w, penalty, maxlenratio, eos_always, L, dec_scale
        ("att_a", 7, [12, 9, 16], 3, 0.3, 0.0, 0.0, 1, 6, 1.5),
        ("att_b", 10, [20, 14], 4, 0.5, 0.0, 0.0, 0, 8, 1.0),
        ("att_c", 9, [11, 18, 1], 2, 0.1, 0.5, 0.0, 1, 5, 2.0),
        ("att_d", 12, [15, 25], 5, 1.0, 0.0, 0.0, 1, 4, 1.0),
        ("att_e", 8, [10, 13], 3, 0.0, 0.0, 0.0, 1, 6, 1.2),
        ("att_f", 11, [17, 12], 6, 0.3, -0.2, 0.5, 1, 7, 1.0),
        ("att_g", 9, [13, 19], 4, 0.4, 0.0, -4.0, 1, 5, 0.8),
        ("att_h", 10, [14, 16, 10], 1, 0.3, 0.0, 0.0, 1, 6, 1.5),
        ("att_i", 12, [22, 15], 8, 0.3, 0.0, 0.0, 0, 6, 1.0),
    ]
    for name, V, lens, beam, ctc_w, penalty, mlr, eos_always, L, dsc in att:
        eos = V - 1
        Tmax = max(lens)
        x = np.zeros((len(lens), Tmax, V), dtype=np.float32)
        tables = []
        for b, T in enumerate(lens):
            x[b, :T] = ctc_logits(rng, T, V, 0, 2.5, 1.0)
            x[b, T:] = np.float32(np.nan)
            z = rng.normal(0.0, dsc, size=(L + 1, V, V))
            # eos gets likelier with length so that hypotheses end
            for ln in range(L + 1):
                z[ln, :, eos] += -2.0 + 0.6 * ln
            z[:, :, 0] -= 1.0  # blank is an unlikely decoder output
            tables.append(log_softmax(z))
        tensors[name + ".logp"] = torch.from_numpy(x)
        tensors[name + ".lens"] = i64(lens)
        tensors[name + ".dec_table"] = torch.from_numpy(np.stack(tables))
        o = dict(beam=beam, ctc_weight=ctc_w, length_bonus=penalty, maxlenratio=mlr,
                 pre_beam_ratio=1.5, sos=eos, eos=eos, blank=0, eos_always=eos_always)
        meta[name] = dict(o, V=V, L=L)
        for b, T in enumerate(lens):
            hyps = att_beam(x[b], T, V, TableDecoder(tables[b]), o)
            # without <sos> and <eos>; an <eos> chosen at the last step is
            # followed by the forced one: drop both
            hyps = [(h["yseq"][1:-1], h["score"]) for h in hyps][:beam]
            hyps = [(y[:-1] if y and y[-1] == eos else y, sc) for y, sc in hyps]
            add_nbest(tensors, "%s.u%d.att" % (name, b), hyps)

    stio.save(os.path.join(outdir, "search.safetensors"), tensors,
              {k: json.dumps(v) for k, v in meta.items()})


if __name__ == "__main__":
    import sys
    main(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops")
         if len(sys.argv) < 2 else sys.argv[1])
