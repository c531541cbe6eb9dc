#!/bin/sh
# test_train_words.sh: a word vocabulary end to end (data.tokenizer.type:
# word): the tiny recipe trains 3 steps on 1 rank; the checkpoint's
# avsr.tokenizer is the word vocabulary of the training transcripts (the
# GRID-like words of the tiny corpus, sorted); avsr-eval decodes a point with
# it and writes words of that vocabulary; a recipe whose training shard is
# not a pack fails at load with the key and the file named.
# Plain protocol: 0 pass, 77 skip, else fail.
. "${srcdir:-.}/tests/train_env.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/avsr-train-words.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 99
fail() { echo "FAIL: $*"; exit 1; }

tiny_recipe r.yaml exp "    steps: 3"
sed -i 's/tokenizer: {type: char}/tokenizer: {type: word}/' r.yaml
cat >>r.yaml <<'YAML'
  search: {type: ctc_greedy}
  sweep: {noise: [babble], snr_db: [clean], modalities: [audio]}
YAML
grep -q "type: word" r.yaml || fail "recipe rewrite"
"$W" --check r.yaml > check.out 2>&1 || fail "--check: $(cat check.out)"
grep -q "^    type: word$" check.out || fail "--check does not show the word tokenizer"
timeout 600 $MPIRUN_CMD -np 1 "$W" r.yaml > log 2>&1 || { tail -n 20 log; fail "training failed"; }
echo "ok: 3 steps with a word vocabulary"

# the vocabulary in the checkpoint: the transcripts' words, sorted, no space token
m=exp/train/last/model.safetensors
[ -f "$m" ] || fail "no $m"
n=$(od -An -t u8 -N 8 "$m" | tr -d ' ')
head -c $((8 + n)) "$m" | tail -c "$n" > header.json
grep -o '"avsr.tokenizer":"[^}]*}' header.json | sed 's/\\"/"/g' > vocab.json
grep -q '"type":"word"' vocab.json || fail "avsr.tokenizer is not a word vocabulary: $(cat vocab.json)"
grep -q '"symbols":\["<blank>","<unk>","[A-Z]' vocab.json || fail "symbols: $(cat vocab.json)"
grep -q '"PLEASE"' vocab.json && grep -q '"SOON"' vocab.json || fail "GRID words missing"
grep -q '" "' vocab.json && fail "a space token in a word vocabulary"
words=$(tail -n +2 "$DATA/train.csv" | cut -d, -f4 | tr ' ' '\n' | sort -u | wc -l)
syms=$(grep -o '"[A-Z]*"' vocab.json | wc -l)
[ "$syms" -eq "$words" ] || fail "$syms words in the vocabulary, $words distinct words in train.csv"
echo "ok: the checkpoint carries the $words words of the training transcripts"

"$B/avsr-eval" r.yaml --model "$m" --point audio:none:clean -q > eval.out 2>&1 ||
    fail "avsr-eval: $(cat eval.out)"
p=exp/eval/points/audio-none-clean.json
[ -f "$p" ] || fail "no $p"
grep -o '"hyp": "[^"]*"' "$p" | sed 's/"hyp": "//; s/"$//' | tr ' ' '\n' | sed '/^$/d' |
    sort -u > hypwords
grep -o '"[A-Z]*"' vocab.json | tr -d '"' > vw
echo "<unk>" >> vw
bad=$(grep -v -x -F -f vw hypwords || true)
[ -z "$bad" ] || fail "hypotheses with words outside the vocabulary: $bad"
echo "ok: avsr-eval decodes with the word vocabulary ($(wc -l < hypwords) distinct words)"

# a training shard that is not a pack: the load names the key and the file
echo "not hdf5" > fake.h5
sed "s#$DATA/train.h5#$T/fake.h5#" r.yaml > bad.yaml
"$W" --check bad.yaml > bad.out 2>&1 && fail "--check accepted a non-pack training shard"
grep -q "bad.yaml:[0-9]*:[0-9]*: data.tokenizer.type: word: .*fake.h5" bad.out ||
    fail "message: $(cat bad.out)"
echo "ok: a bad training shard: $(head -n 1 bad.out)"
exit 0
