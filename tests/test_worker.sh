#!/bin/sh
# test_worker: avsr-worker in summary mode (this build's only mode).
# Exit 0 = pass (plain automake test protocol).
set -u
B=${top_builddir:-.}
S=${srcdir:-.}
W="$B/avsr-worker"
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$W" --summary "$S/recipes/demo.yaml" > "$T/out" 2> "$T/err" || fail "demo summary: $(cat "$T/err")"
grep -q '^| total ' "$T/out" || fail "no total row"
for m in "visual frontend" "audio frontend" "fusion" "encoder" "decoder" "ctc"; do
    grep -q "^| $m " "$T/out" || fail "no row for $m"
done
grep -q 'vocabulary 41' "$T/out" || fail "char vocabulary is not 41"

"$W" --summary --vocab 5049 "$S/recipes/auto-avsr-lrs3.yaml" > "$T/full" 2>&1 \
    || fail "full summary: $(cat "$T/full")"
grep -q '^| total            |     443,977,138 |' "$T/full" || fail "full total: $(cat "$T/full")"

"$W" --summary "$S/recipes/auto-avsr-lrs3.yaml" > /dev/null 2> "$T/err" && fail "sentencepiece without --vocab"
grep -q 'auto-avsr-lrs3.yaml:.*data.tokenizer.type: sentencepiece vocabularies are not read' "$T/err" \
    || fail "sentencepiece message: $(cat "$T/err")"

printf 'data: {tokenizer: {type: char}}\nmodel:\n  video: {width: 8}\n  encoder: {dimm: 64}\n' > "$T/bad.yaml"
"$W" --summary "$T/bad.yaml" > /dev/null 2> "$T/err" && fail "bad recipe accepted"
grep -q "bad.yaml:4:13: model.encoder: unknown key 'dimm'" "$T/err" || fail "bad recipe message: $(cat "$T/err")"

"$W" --help > "$T/help" || fail "--help status"
grep -q -- '--summary' "$T/help" || fail "--help text"

"$W" "$S/recipes/demo.yaml" > /dev/null 2> "$T/err"
[ $? -eq 2 ] || fail "training invocation must exit 2"
grep -q 'supports only --summary' "$T/err" || fail "exit-2 message: $(cat "$T/err")"
echo "PASS: avsr-worker summary mode"
exit 0
