#!/usr/bin/env python3
"""Golden fixture for eval/score.c: WER/CER counts from jiwer.

Writes tests/golden/ops/search_wer.safetensors. Needs jiwer (>= 3; 4.0.0
was used), which this script does not install. With a plain python3 that
can reach PyPI:
    python3 -m venv /tmp/jw && /tmp/jw/bin/pip install jiwer
    /tmp/jw/bin/python tests/golden/gen_wer.py
No torch or numpy needed (a small safetensors writer is below).

Contents (N pairs, already normalised text so that jiwer's default
transforms, which only strip and collapse spaces, see the same units as
ours):
  ref.bytes, hyp.bytes     U8, the UTF-8 texts concatenated
  ref.offsets, hyp.offsets I64 [N + 1]
  word.counts, char.counts I64 [N, 4]: S, D, I, H of jiwer.process_words /
                           process_characters on the single pair
  corpus.word, corpus.char I64 [4]: the same over all pairs at once
  corpus.rates_bits        I64 [2]: jiwer.wer and jiwer.cer of the corpus as
                           float64 bits
Metadata "jiwer" holds the version and the two rates as text.

A second set, "raw.*" (the same tensor names with the prefix "raw."), holds
M pairs of raw transcripts as an evaluation meets them: mixed case,
punctuation inside and around words, curly apostrophes and quotes, dashes,
ellipses, tabs, newlines, no-break spaces, control characters. Its counts
come from jiwer with a transform pipeline built from jiwer's own
transforms that implements the normalisation documented in
docs/eval/scoring.md (SubstituteRegexes for apostrophes, whitespace and the
deleted punctuation, ToUpperCase on ASCII text, RemoveMultipleSpaces,
Strip), so the test checks avsr_score_normalize + avsr_score_corpus, the
scoring avsr-eval does, against jiwer end to end.

Before writing, the script checks a Python replica of rapidfuzz's
Levenshtein backtrace (the tie-breaking eval/score.c implements) against
jiwer on a few thousand random pairs, and stops if they disagree.
"""
import json
import os
import random
import re
import struct
import sys

try:
    import jiwer
except ImportError:  # pragma: no cover
    sys.exit("gen_wer.py: jiwer is not importable; see the docstring for how to get it")

import importlib.metadata


def save(path, tensors, metadata):
    header = {}
    blobs = []
    off = 0
    for name, (dtype, shape, values) in tensors.items():
        if dtype == "U8":
            b = bytes(values)
        else:  # I64, little-endian
            b = struct.pack("<%dq" % len(values), *values)
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def align(ref, hyp):
    """S, D, I, H as eval/score.c computes them (rapidfuzz's backtrace)."""
    nr, nh = len(ref), len(hyp)
    pre = 0
    while pre < nr and pre < nh and ref[pre] == hyp[pre]:
        pre += 1
    suf = 0
    while suf < nr - pre and suf < nh - pre and ref[nr - 1 - suf] == hyp[nh - 1 - suf]:
        suf += 1
    s1, s2 = ref[pre:nr - suf], hyp[pre:nh - suf]
    n1, n2 = len(s1), len(s2)
    D = [[0] * (n2 + 1) for _ in range(n1 + 1)]
    for j in range(n2 + 1):
        D[0][j] = j
    for i in range(1, n1 + 1):
        D[i][0] = i
        for j in range(1, n2 + 1):
            D[i][j] = min(D[i - 1][j - 1] + (s1[i - 1] != s2[j - 1]),
                          D[i - 1][j] + 1, D[i][j - 1] + 1)
    S = Dl = I = 0
    i, j = n1, n2
    while i > 0 and j > 0:
        if D[i][j] - D[i - 1][j] == 1:
            Dl += 1
            i -= 1
        else:
            j -= 1
            if j > 0 and D[i][j] - D[i - 1][j] == -1:
                I += 1
            else:
                i -= 1
                if s1[i] != s2[j]:
                    S += 1
    Dl += i
    I += j
    return S, Dl, I, nr - S - Dl


def jw_words(r, h):
    o = jiwer.process_words(r, h)
    return o.substitutions, o.deletions, o.insertions, o.hits


def jw_chars(r, h):
    o = jiwer.process_characters(r, h)
    return o.substitutions, o.deletions, o.insertions, o.hits


WORDS = ("THE A OF TO AND IN IS IT THAT YOU WAS FOR ON ARE WITH AS I HIS THEY BE AT "
         "ONE HAVE THIS FROM OR HAD BY NOT WORD BUT WHAT SOME WE CAN OUT OTHER WERE "
         "ALL THERE WHEN UP USE YOUR HOW SAID AN EACH SHE DON'T IT'S BLUE SET RED NOW "
         "PLACE GREEN LAY BIN WHITE").split()
EXOTIC = ["CAFÉ", "NAÏVE", "ÜBER", "ÅR", "中文", "ΣΟΦΙΑ", "ŽIVOT", "😀", "NIÑO"]


def noisy(rng, words, p):
    """Random substitutions, deletions and insertions at rate p each."""
    out = []
    for w in words:
        u = rng.random()
        if u < p:
            continue  # deletion
        if u < 2 * p:
            out.append(rng.choice(WORDS))  # substitution (maybe the same word)
        elif u < 2.5 * p:
            out.append(w[:-1] if len(w) > 1 else w + "X")  # character-level change
        else:
            out.append(w)
        if rng.random() < p:
            out.append(rng.choice(WORDS))  # insertion
    return out


def make_pairs(rng):
    pairs = [
        ("", ""),
        ("", "HELLO THERE"),
        ("HELLO THERE", ""),
        ("A B C", "A B C"),
        ("A B", "B C"),
        ("A B C D", "X Y"),
        ("THE CAT SAT", "THE CAT SAT ON THE MAT"),
        ("ON THE MAT THE CAT SAT", "THE CAT SAT"),
        ("CAFÉ NAÏVE", "CAFE NAIVE"),
        ("中文 测试", "中文 测验"),
        ("A A A A", "A A"),
        ("AB BA AB", "BA AB BA"),
        ("X", "Y"),
        ("DON'T STOP", "DONT STOP"),
    ]
    while len(pairs) < 56:
        n = rng.randint(1, 14)
        ref = [rng.choice(WORDS + EXOTIC[:3] if rng.random() < 0.3 else WORDS)
               for _ in range(n)]
        p = rng.choice([0.05, 0.15, 0.3, 0.5])
        hyp = noisy(rng, ref, p)
        pairs.append((" ".join(ref), " ".join(hyp)))
    return pairs


def self_check(rng):
    """Our backtrace vs jiwer (rapidfuzz C++) on random pairs."""
    alphabet = "ABCD "
    for k in range(3000):
        if k % 3 == 0:
            r = [rng.choice(WORDS[:8]) for _ in range(rng.randint(0, 20))]
            h = noisy(rng, r, rng.choice([0.1, 0.3, 0.6])) if r else [rng.choice(WORDS[:8])]
            rs, hs = " ".join(r), " ".join(h)
            if not rs.strip():
                continue
            if align(r, h) != jw_words(rs, hs):
                sys.exit("word backtrace disagrees with jiwer: %r / %r" % (rs, hs))
        else:
            n = rng.randint(1, 120 if k % 3 == 1 else 8)
            r = "".join(rng.choice(alphabet) for _ in range(n)).strip()
            h = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, n + 5))).strip()
            if not r:
                continue
            got = align(list(r), list(h))
            if got != jw_chars(r, h):
                sys.exit("char backtrace disagrees with jiwer: %r / %r: %r vs %r"
                         % (r, h, got, jw_chars(r, h)))


# ---- raw transcripts and the normalisation as jiwer transforms -------------

ASCII_PUNCT = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'  # every ASCII punctuation but '
UNI_PUNCT = ("\u00a1\u00ab\u00bb\u00bf\u2010\u2011\u2012\u2013\u2014\u2015"
             "\u2018\u201a\u201c\u201d\u201e\u2026")
APOSTROPHES = ["'", "\u2019", "\u02bc"]
SEPARATORS = [" ", " ", " ", "  ", "\t", "\n", " \u00a0", "\u00a0", "\r\n", " - ",
              " \u2014 ", " \u2026 "]
CONTROLS = ["\x07", "\x1b", "\x7f"]


def normaliser(final):
    """docs/eval/scoring.md's normalisation with jiwer's transforms."""
    deleted = ("[" + re.escape(ASCII_PUNCT) + UNI_PUNCT
               + "\\x00-\\x08\\x0e-\\x1f\\x7f]")
    return jiwer.Compose([
        jiwer.SubstituteRegexes({
            "[\u2019\u02bc]": "'",
            "[\t\n\x0b\x0c\r\u00a0]": " ",
            deleted: "",
        }),
        jiwer.ToUpperCase(),  # the texts' letters are ASCII
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        final,
    ])


def decorate(rng, words):
    """Raw text of a word list: case, apostrophe variants, punctuation,
    separators, the odd control character."""
    out = []
    for w in words:
        u = rng.random()
        if u < 0.3:
            w = w.lower()
        elif u < 0.5:
            w = w.capitalize()
        w = w.replace("'", rng.choice(APOSTROPHES))
        if rng.random() < 0.25:
            w = rng.choice(ASCII_PUNCT + UNI_PUNCT) + w
        if rng.random() < 0.35:
            w = w + rng.choice(ASCII_PUNCT + UNI_PUNCT)
        if rng.random() < 0.1 and len(w) > 2:
            k = rng.randint(1, len(w) - 1)
            w = w[:k] + rng.choice(["-", ".", "\u2010", rng.choice(CONTROLS)]) + w[k:]
        out.append(w)
    text = ""
    for i, w in enumerate(out):
        text += (rng.choice(SEPARATORS) if i else "") + w
    if rng.random() < 0.3:
        text = rng.choice(["  ", "\t", "\u00a0", "\u201c"]) + text
    if rng.random() < 0.5:
        text = text + rng.choice([".", "?", "!", " ...", "\u2026", "\u201d.", "  \n"])
    return text


def make_raw_pairs(rng):
    pairs = [
        ("Hello, World!", "hello world"),
        ("don't  STOP\u2014now\u2026", "DON\u2019T stop now"),
        ("It\u2019s \u201cquoted\u201d text.", "its quoted text"),
        ("a - b\t\n c", "A B  C D"),
        ("WELL-KNOWN fact", "well known fact"),
    ]
    while len(pairs) < 40:
        n = rng.randint(1, 12)
        ref = [rng.choice(WORDS) for _ in range(n)]
        hyp = noisy(rng, ref, rng.choice([0.0, 0.1, 0.3]))
        pairs.append((decorate(rng, ref), decorate(rng, hyp)))
    return pairs


def raw_tensors(rng):
    pairs = make_raw_pairs(rng)
    tw = normaliser(jiwer.ReduceToListOfListOfWords())
    tc = normaliser(jiwer.ReduceToListOfListOfChars())

    def words(r, h):
        o = jiwer.process_words(r, h, reference_transform=tw, hypothesis_transform=tw)
        return o.substitutions, o.deletions, o.insertions, o.hits

    def chars(r, h):
        o = jiwer.process_characters(r, h, reference_transform=tc, hypothesis_transform=tc)
        return o.substitutions, o.deletions, o.insertions, o.hits

    refs = [p[0] for p in pairs]
    hyps = [p[1] for p in pairs]
    wc = [words(r, h) for r, h in pairs]
    cc = [chars(r, h) for r, h in pairs]
    ow = jiwer.process_words(refs, hyps, reference_transform=tw, hypothesis_transform=tw)
    oc = jiwer.process_characters(refs, hyps, reference_transform=tc, hypothesis_transform=tc)
    cw = [ow.substitutions, ow.deletions, ow.insertions, ow.hits]
    ccr = [oc.substitutions, oc.deletions, oc.insertions, oc.hits]
    assert cw == [sum(x[k] for x in wc) for k in range(4)]
    assert ccr == [sum(x[k] for x in cc) for k in range(4)]
    rates = [float(ow.wer), float(oc.cer)]
    return pairs, wc, cc, cw, ccr, rates


def text_blob(texts):
    bs = [t.encode("utf-8") for t in texts]
    offs = [0]
    for b in bs:
        offs.append(offs[-1] + len(b))
    return b"".join(bs), offs


def main(outdir):
    rng = random.Random(1234)
    self_check(rng)
    pairs = make_pairs(rng)
    refs = [p[0] for p in pairs]
    hyps = [p[1] for p in pairs]
    wc = [jw_words(r, h) for r, h in pairs]
    cc = [jw_chars(r, h) if r or h else (0, 0, 0, 0) for r, h in pairs]
    for (r, h), w, c in zip(pairs, wc, cc):
        assert tuple(w) == align(r.split(), h.split()), (r, h)
        assert tuple(c) == align(list(r), list(h)), (r, h)
    ow = jiwer.process_words(refs, hyps)
    oc = jiwer.process_characters(refs, hyps)
    cw = [ow.substitutions, ow.deletions, ow.insertions, ow.hits]
    ccc = [oc.substitutions, oc.deletions, oc.insertions, oc.hits]
    assert cw == [sum(x[k] for x in wc) for k in range(4)]
    assert ccc == [sum(x[k] for x in cc) for k in range(4)]
    wer, cer = float(jiwer.wer(refs, hyps)), float(jiwer.cer(refs, hyps))
    assert wer == ow.wer and cer == oc.cer

    def blob(texts):
        bs = [t.encode("utf-8") for t in texts]
        offs = [0]
        for b in bs:
            offs.append(offs[-1] + len(b))
        return b"".join(bs), offs

    rb, ro = blob(refs)
    hb, ho = blob(hyps)
    n = len(pairs)
    tensors = {
        "ref.bytes": ("U8", [len(rb)], rb), "ref.offsets": ("I64", [n + 1], ro),
        "hyp.bytes": ("U8", [len(hb)], hb), "hyp.offsets": ("I64", [n + 1], ho),
        "word.counts": ("I64", [n, 4], [v for x in wc for v in x]),
        "char.counts": ("I64", [n, 4], [v for x in cc for v in x]),
        "corpus.word": ("I64", [4], cw), "corpus.char": ("I64", [4], ccc),
        "corpus.rates_bits": ("I64", [2], list(struct.unpack("<2q", struct.pack("<2d", wer, cer)))),
    }
    rpairs, rwc, rcc, rcw, rccr, rrates = raw_tensors(random.Random(4321))
    rb2, ro2 = text_blob([p[0] for p in rpairs])
    hb2, ho2 = text_blob([p[1] for p in rpairs])
    m = len(rpairs)
    tensors.update({
        "raw.ref.bytes": ("U8", [len(rb2)], rb2), "raw.ref.offsets": ("I64", [m + 1], ro2),
        "raw.hyp.bytes": ("U8", [len(hb2)], hb2), "raw.hyp.offsets": ("I64", [m + 1], ho2),
        "raw.word.counts": ("I64", [m, 4], [v for x in rwc for v in x]),
        "raw.char.counts": ("I64", [m, 4], [v for x in rcc for v in x]),
        "raw.corpus.word": ("I64", [4], rcw), "raw.corpus.char": ("I64", [4], rccr),
        "raw.corpus.rates_bits": ("I64", [2],
                                  list(struct.unpack("<2q", struct.pack("<2d", *rrates)))),
    })
    meta = {"jiwer": json.dumps({"version": importlib.metadata.version("jiwer"),
                                 "wer": repr(wer), "cer": repr(cer), "pairs": len(pairs),
                                 "raw_wer": repr(rrates[0]), "raw_cer": repr(rrates[1]),
                                 "raw_pairs": m})}
    save(os.path.join(outdir, "search_wer.safetensors"), tensors, meta)
    print("wrote %d pairs: WER %.6f CER %.6f; %d raw pairs: WER %.6f CER %.6f"
          % (len(pairs), wer, cer, m, rrates[0], rrates[1]))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else
         os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops"))
