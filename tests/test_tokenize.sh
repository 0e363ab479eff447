#!/bin/sh
# test_tokenize.sh: `vlmae tokenize` prints what the data loader feeds the text encoder. Checked
# against the vocabulary file itself (id = line number - 1):
# - "A man riding a horse!" -> [CLS]=101, then the ids of a, man, riding, a, horse;
# - --max-len N keeps [CLS] + N-1 pieces; the clean-up keeps 30 words; a long word is split into
#   ## pieces;
# - captions from standard input give the same lines as from the arguments; --json holds the same
#   ids and pieces; -c CONFIG takes the text length from data.text_max_len (task.text_max_len for
#   a task config);
# - bad options and a missing vocabulary exit 2 with a message naming them.
set -eu
B=${top_builddir:-.}
S=${top_srcdir:-.}
VLMAE="$B/vlmae"
vocab="$S/data/vocab.txt"
[ -x "$VLMAE" ] || { echo "test_tokenize: $VLMAE not built"; exit 77; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/test_tokenize.XXXXXX")
trap 'rm -rf "$dir"' EXIT
fail=0
ok() { echo "ok $*"; }
bad() { echo "FAIL $*"; fail=1; }

# id of a token: its line number in the vocabulary, minus one.
id() { awk -v t="$1" '$0 == t { print NR - 1; exit }' "$vocab"; }
pairs() { for w in "$@"; do printf ' %s:%s' "$(id "$w")" "$w"; done; }

want="a man riding a horse	101:[CLS]$(pairs a man riding a horse)"
got=$("$VLMAE" tokenize --vocab "$vocab" "A man riding a horse!")
if [ "$got" = "$want" ] && [ "$(id '[CLS]')" = 101 ]; then
    ok "known caption: $got"
else
    bad "known caption: got '$got', want '$want'"
fi

got=$("$VLMAE" tokenize --vocab "$vocab" --max-len 3 "A man riding a horse!")
want="a man riding a horse	101:[CLS]$(pairs a man)"
[ "$got" = "$want" ] && ok "--max-len 3: $got" || bad "--max-len 3: got '$got', want '$want'"

# The default length is pre-training's 25 ids; the clean-up keeps 30 words.
long=""
for i in $(seq 1 35); do long="$long dog"; done
got=$("$VLMAE" tokenize --vocab "$vocab" "$long")
n=$(printf '%s\n' "$got" | cut -f2 | wc -w)
[ "$n" = 25 ] && ok "default max length: 25 ids" || bad "default max length: $n ids: $got"
got=$("$VLMAE" tokenize --vocab "$vocab" --max-len 100 "$long")
words=$(printf '%s\n' "$got" | cut -f1 | wc -w)
n=$(printf '%s\n' "$got" | cut -f2 | wc -w)
[ "$words" = 30 ] && [ "$n" = 31 ] && ok "35 words cleaned to 30, 31 ids" || bad "30-word truncation: $words words, $n ids"

got=$("$VLMAE" tokenize --vocab "$vocab" "Snowboarding")
case $got in
*"[CLS] "*":snow "*":##"*) ok "word pieces: $got" ;;
*) bad "word pieces: $got" ;;
esac

# Standard input: one caption per line, the same output as arguments.
printf 'A man riding a horse!\r\nTwo dogs, playing.\n' > "$dir/in.txt"
"$VLMAE" tokenize --vocab "$vocab" < "$dir/in.txt" > "$dir/stdin.out"
"$VLMAE" tokenize --vocab "$vocab" "A man riding a horse!" "Two dogs, playing." > "$dir/args.out"
if cmp -s "$dir/stdin.out" "$dir/args.out" && [ "$(wc -l < "$dir/stdin.out")" = 2 ]; then
    ok "standard input = arguments (2 lines)"
else
    bad "standard input differs from arguments:"; cat "$dir/stdin.out" "$dir/args.out"
fi

# --json: the same ids and pieces (checked with Python when there is one).
"$VLMAE" tokenize --vocab "$vocab" --json 'He said "hi"' "A man riding a horse!" > "$dir/json.out"
PY=${PYTHON:-/usr/bin/python3}
if "$PY" -c 'import json' 2>/dev/null; then
    if "$PY" - "$dir/json.out" "$(id a)" "$(id horse)" <<'PYEOF'; then
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 2, rows
assert rows[0]["caption"] == 'He said "hi"' and rows[0]["cleaned"] == "he said hi", rows[0]
r = rows[1]
assert r["ids"][0] == 101 and r["pieces"][0] == "[CLS]", r
assert r["ids"][1] == int(sys.argv[2]) and r["ids"][-1] == int(sys.argv[3]), r
assert r["pieces"] == ["[CLS]", "a", "man", "riding", "a", "horse"], r
PYEOF
        ok "--json: $(tail -n 1 "$dir/json.out")"
    else
        bad "--json:"; cat "$dir/json.out"
    fi
else
    grep -q '"ids": \[101, ' "$dir/json.out" && ok "--json (no python)" || bad "--json"
fi

# -c CONFIG: the loader's text length (data.text_max_len; task.text_max_len for a task).
printf 'data:\n  vocab: %s\n  text_max_len: 4\n' "$vocab" > "$dir/pre.yaml"
got=$("$VLMAE" tokenize -c "$dir/pre.yaml" "A man riding a horse!" | cut -f2)
[ "$got" = "101:[CLS]$(pairs a man riding)" ] && ok "-c: data.text_max_len 4" || bad "-c data.text_max_len: '$got'"
printf 'data:\n  vocab: %s\ntask:\n  name: retrieval\n  text_max_len: 5\n' "$vocab" > "$dir/task.yaml"
got=$("$VLMAE" tokenize -c "$dir/task.yaml" "A man riding a horse!" | cut -f2)
[ "$got" = "101:[CLS]$(pairs a man riding a)" ] && ok "-c: task.text_max_len 5" || bad "-c task.text_max_len: '$got'"
got=$("$VLMAE" tokenize -c "$dir/task.yaml" --max-len 2 "A man riding a horse!" | cut -f2)
[ "$got" = "101:[CLS]$(pairs a)" ] && ok "--max-len overrides the config" || bad "--max-len over -c: '$got'"

# Errors: exit 2 with a message naming the problem.
expect2() {
    re=$1
    shift
    st=0
    "$VLMAE" tokenize "$@" > "$dir/err.out" 2>&1 || st=$?
    if [ "$st" = 2 ] && grep -Eq "$re" "$dir/err.out"; then ok "error: $(head -n 1 "$dir/err.out")"; else bad "error /$re/: exit $st: $(cat "$dir/err.out")"; fi
}
expect2 "invalid --max-len '0'" --max-len 0 x
expect2 "unknown option --nope" --nope x
expect2 "nothere\.txt" --vocab "$dir/nothere.txt" x
expect2 "nothere\.yaml" -c "$dir/nothere.yaml" x
"$VLMAE" tokenize --help | grep -q "usage: vlmae tokenize" && ok "--help" || bad "--help"
"$VLMAE" --help | grep -q "^  tokenize " && ok "listed in vlmae --help" || bad "not in vlmae --help"
exit $fail
