#!/bin/sh
# test_gpu_verdict.sh: the GPU check (tests/gpu/run.sh) cannot report OK on a broken run. Its
# verdicts come from tests/gpu/losses.py over `vlmae bench --json` files; here, on the CPU, the
# same files are made and judged: finite losses pass; a NaN loss (VLMAE_TEST_NAN_STEP) is written
# as valid JSON with null + losses_finite false and fails every verdict; an empty, truncated or
# missing file fails; differing runs fail `same`; parity beyond the tolerance fails.
set -u
PY=${PYTHON:-/usr/bin/python3}
"$PY" -c 'import json' 2>/dev/null || PY=python3
VLMAE=${top_builddir:-.}/vlmae
L=${top_srcdir:-.}/tests/gpu/losses.py
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fails=0
expect() {  # expect PASS|FAIL ARGS...: losses.py ARGS must give that verdict (and exit status)
    want=$1
    shift
    out=$("$PY" "$L" "$@" 2>&1)
    rc=$?
    case "$want:$rc:$out" in
    PASS:0:PASS*) echo "ok   $want: $*" ;;
    FAIL:1:FAIL*) echo "ok   $want: $* -> $out" ;;
    *) echo "FAIL expected $want from losses.py $* (exit $rc): $out"; fails=$((fails + 1)) ;;
    esac
}
B="bench --model tiny --objective vlmae --batch 4 --text-len 16 --steps 2 --warmup 0"
"$VLMAE" $B --json "$d/a.json" >"$d/a.log" 2>&1 || { echo "FAIL vlmae bench"; cat "$d/a.log"; exit 1; }
"$VLMAE" $B --json "$d/b.json" >"$d/b.log" 2>&1 || { echo "FAIL vlmae bench (second)"; exit 1; }
VLMAE_TEST_NAN_STEP=2 VLMAE_TEST_NAN_WHAT=loss "$VLMAE" $B --json "$d/nan.json" >"$d/nan.log" 2>&1 ||
    { echo "FAIL vlmae bench with a NaN loss must still write its JSON"; cat "$d/nan.log"; exit 1; }
"$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); r = d["results"][0]
assert r["losses_finite"] is False and r["loss"]["itc"] is None, r' "$d/nan.json" ||
    { echo "FAIL bench JSON of a NaN run: not valid JSON with null + losses_finite false"; fails=$((fails + 1)); }
: >"$d/empty.json"
head -c 200 "$d/a.json" >"$d/cut.json"
sed 's/"itm": [0-9.]*/"itm": 9.5/' "$d/a.json" >"$d/off.json"

expect PASS finite "$d/a.json"
expect PASS same "$d/a.json" "$d/b.json"
expect PASS parity "$d/a.json" "$d/b.json" 1e-6
expect FAIL finite "$d/nan.json"
expect FAIL same "$d/nan.json" "$d/nan.json"
expect FAIL parity "$d/a.json" "$d/nan.json" 1e-3
expect FAIL finite "$d/empty.json"
expect FAIL same "$d/empty.json" "$d/empty.json"
expect FAIL parity "$d/cut.json" "$d/a.json" 1e-3
expect FAIL finite "$d/missing.json"
expect FAIL same "$d/a.json" "$d/off.json"
expect FAIL parity "$d/a.json" "$d/off.json" 1e-3
expect FAIL parity "$d/a.json"
[ $fails -eq 0 ] || { echo "test_gpu_verdict: $fails failure(s)"; exit 1; }
echo "test_gpu_verdict: every verdict as expected"
