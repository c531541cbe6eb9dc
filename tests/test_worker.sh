#!/bin/sh
# test_worker: avsr-worker --summary, --check and argument errors (training is
# tested by test_train_*.sh).
# Exit 0 = pass (plain automake test protocol).
set -u
B=${top_builddir:-.}
S=${srcdir:-.}
W="$B/avsr-worker"
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$W" --summary "$S/recipes/demo-joint.yaml" > "$T/out" 2> "$T/err" || fail "demo summary: $(cat "$T/err")"
grep -q '^| total ' "$T/out" || fail "no total row"
for m in "visual frontend" "audio frontend" "fusion" "encoder" "decoder" "ctc"; do
    grep -q "^| $m " "$T/out" || fail "no row for $m"
done
grep -q 'vocabulary 41' "$T/out" || fail "char vocabulary is not 41"

"$W" --summary --vocab 5049 "$S/recipes/auto-avsr-lrs3.yaml" > "$T/full" 2>&1 \
    || fail "full summary: $(cat "$T/full")"
grep -q '^| total            |     443,977,138 |' "$T/full" || fail "full total: $(cat "$T/full")"

"$W" --summary "$S/recipes/auto-avsr-lrs3.yaml" > /dev/null 2> "$T/err" && fail "sentencepiece without --vocab"
grep -q 'auto-avsr-lrs3.yaml:.*data.tokenizer.type: sentencepiece: the vocabulary comes from the data or a model file; give its size with --vocab N' "$T/err" \
    || fail "sentencepiece message: $(cat "$T/err")"

printf 'data: {tokenizer: {type: char}}\nmodel:\n  video: {width: 8}\n  encoder: {dimm: 64}\n' > "$T/bad.yaml"
"$W" --summary "$T/bad.yaml" > /dev/null 2> "$T/err" && fail "bad recipe accepted"
grep -q "bad.yaml:4:13: model.encoder: unknown key 'dimm'" "$T/err" || fail "bad recipe message: $(cat "$T/err")"

"$W" --help > "$T/help" || fail "--help status"
grep -q -- '--summary' "$T/help" || fail "--help text"

# --check: the resolved recipe, every default filled in; a bad recipe
# gives file:line:col and status 2 (no MPI involved)
mkdir -p "$T/data/demo"
for f in train valid test noise-babble; do : > "$T/data/demo/$f.h5"; done
SA=$(cd "$S" && pwd)
( cd "$T" && "$W" --check "$SA/recipes/demo-joint.yaml" ) > "$T/resolved" 2> "$T/err" \
    || fail "--check demo: $(cat "$T/err")"
grep -q '^# hash: [0-9a-f]\{16\}$' "$T/resolved" || fail "--check: no hash line"
grep -q 'max_nonfinite: 10  # default' "$T/resolved" || fail "--check: defaults not filled in"
line=$(grep -n '^    dim: 144' "$S/recipes/demo-joint.yaml" | head -n 1 | cut -d: -f1)
sed "${line}s/dim:/dimm:/" "$S/recipes/demo-joint.yaml" > "$T/bad2.yaml"
( cd "$T" && "$W" --check bad2.yaml ) > /dev/null 2> "$T/err"
[ $? -eq 2 ] || fail "--check of a bad recipe must exit 2"
grep -q "bad2.yaml:$line:5: model.encoder: unknown key 'dimm'" "$T/err" \
    || fail "--check message: $(cat "$T/err")"
"$W" --frobnicate "$S/recipes/demo-joint.yaml" > /dev/null 2> "$T/err"
[ $? -eq 2 ] || fail "unknown option must exit 2"
grep -q "unknown or incomplete argument '--frobnicate'" "$T/err" || fail "unknown option message: $(cat "$T/err")"
echo "PASS: avsr-worker summary and check modes"
exit 0
