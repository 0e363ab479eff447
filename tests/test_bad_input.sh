#!/bin/sh
# test_bad_input.sh: bad input to `vlmae pack` and `vlmae pretrain` (tiny config, synthetic data).
# Every case must end with a clear message naming the file and the problem and a non-zero exit,
# and must leave an existing run directory (checkpoint, config.yaml, log.jsonl) untouched:
#   shards: truncated, wrong format version, another vocabulary's token ids (vocab_hash), a missing
#           file or glob, a dataset whose shards hold no texts; corrupt JPEG bytes inside a shard
#           are the exception: the loader reports, replaces and counts them (log.jsonl
#           "replaced") and the run goes on;
#   pack:   missing, truncated and undecodable image files are reported by name and counted;
#   config: unknown key, wrong type, impossible values (queue_size not a multiple of batch x world,
#           mask_ratio 1.0, text_max_len 0 and 1), in a file and with --set;
#   vocab:  a duplicated token;
#   init.vit / init.bert safetensors: a bad header, wrong tensor shapes.
set -eu
B=${top_builddir:-.}
S=${top_srcdir:-.}
PY=${PYTHON:-/usr/bin/python3}
VLMAE="$B/vlmae"
if ! "$PY" -c "import h5py, numpy" 2>/dev/null; then echo "SKIP: $PY has no h5py (apt-get install python3-h5py)"; exit 77; fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/test_bad_input.XXXXXX")
trap 'rm -rf "$dir"' EXIT
export OMP_NUM_THREADS=1 DATA="$dir"
cfg="$S/configs/tiny.yaml"
common="--set train.log_every=1 --set train.ckpt_every=0 --set train.max_steps=4 --set data.threads=1"
fail=0
ok() { echo "ok $*"; }
bad() { echo "FAIL $*"; fail=1; }

"$VLMAE" synth --out "$dir/syn" --seed 3 --images 60 >/dev/null
"$VLMAE" pack albef --ann "$dir/syn/pretrain.json" --ann "$dir/syn/vg.json" --images "$dir/syn" --out "$dir/shards/synth" >/dev/null 2>&1
shard="$dir/shards/synth-00000.h5"

# A run directory with a checkpoint: no failing run below may change or add anything in it.
run="$dir/run"
"$VLMAE" pretrain -c "$cfg" $common --set train.max_steps=20 --stop-after 2 --run-dir "$run" >/dev/null 2>&1 || { echo "FAIL: the good run failed"; exit 1; }
snapshot() { (cd "$run" && ls -l --time-style=+%s && md5sum ./*); }
snapshot > "$dir/run.before"

# expect NAME REGEX ARGS...: `vlmae ARGS` exits non-zero (not by a signal, no sanitizer report) and
# its output matches REGEX (an extended regex; it should name the file and the problem).
n=0
expect() {
    name=$1 re=$2
    shift 2
    n=$((n + 1))
    st=0
    "$VLMAE" "$@" > "$dir/out.$n" 2>&1 || st=$?
    if [ "$st" -ne 0 ] && [ "$st" -lt 128 ] && grep -Eq "$re" "$dir/out.$n" && ! grep -Eq "Sanitizer|runtime error:" "$dir/out.$n"; then
        ok "$name: exit $st: $(grep -E "$re" "$dir/out.$n" | head -n 1 | cut -c1-230)"
    else
        bad "$name: exit $st, output does not match /$re/:"
        tail -n 20 "$dir/out.$n"
    fi
}
# pretrain_on NAME REGEX PATTERN: pretrain on the shard(s) PATTERN, in the run directory above,
# resuming its checkpoint.
pretrain_on() {
    name=$1 re=$2 pat=$3
    shift 3
    expect "$name" "$re" pretrain -c "$cfg" $common --resume auto --run-dir "$run" \
        --set "data.datasets=[{name: t, shards: [\"$pat\"]}]" "$@"
}

# ---- Shards.
mkdir "$dir/bad"
head -c $(($(wc -c < "$shard") * 6 / 10)) "$shard" > "$dir/bad/truncated.h5"
pretrain_on "truncated shard (60%)" "truncated\.h5: .*truncated" "$dir/bad/truncated.h5"
head -c $(($(wc -c < "$shard") - 100)) "$shard" > "$dir/bad/short.h5"
pretrain_on "truncated shard (100 bytes short)" "short\.h5: .*truncated" "$dir/bad/short.h5"
cp "$shard" "$dir/bad/version.h5"
"$PY" -c "import h5py, numpy, sys; h5py.File(sys.argv[1], 'r+').attrs['vlmae_shard_version'] = numpy.int32(2)" "$dir/bad/version.h5"
pretrain_on "wrong-version shard" "version.h5: shard format version 2" "$dir/bad/version.h5"
cp "$shard" "$dir/bad/vocab.h5"
"$PY" -c "import h5py, numpy, sys; h5py.File(sys.argv[1], 'r+').attrs['vocab_hash'] = numpy.uint64(0x1234567890abcdef)" "$dir/bad/vocab.h5"
pretrain_on "shard from another vocabulary" "vocab.h5: captions were tokenized with another vocabulary" "$dir/bad/vocab.h5"
pretrain_on "missing shard glob" "no shard file matches .*nothere-\*\.h5" "$dir/bad/nothere-*.h5"
pretrain_on "missing shard file" "no shard file matches .*nothere\.h5" "$dir/bad/nothere.h5"
: > "$dir/bad/empty.h5"
pretrain_on "empty shard file" "empty\.h5: " "$dir/bad/empty.h5"
cp "$dir/syn/pretrain.json" "$dir/bad/notshard.h5"
pretrain_on "a JSON file as a shard" "notshard\.h5: " "$dir/bad/notshard.h5"

# An empty dataset next to a good one (its shards packed when no image was found) is an error
# naming the dataset and its shard pattern; it used to be dropped silently (training on the
# other dataset alone).
"$PY" - "$shard" "$dir/bad/empty-00000.h5" <<'PYEOF'
import h5py, numpy as np, sys
src = h5py.File(sys.argv[1], "r")
with h5py.File(sys.argv[2], "w") as f:  # the same tables, no image, no text
    for k, v in src.attrs.items(): f.attrs[k] = v
    def empty(name, obj):
        if isinstance(obj, h5py.Dataset):
            n = 1 if name.endswith("offsets") else 0
            f.create_dataset(name, shape=(n,) + obj.shape[1:], dtype=obj.dtype,
                             data=np.zeros((n,) + obj.shape[1:], obj.dtype) if n else None)
    src.visititems(empty)
PYEOF
expect "empty dataset next to a good one" "dataset coco \(.*empty-\*\.h5\) holds no texts" \
    pretrain -c "$cfg" $common --resume auto --run-dir "$run" \
    --set "data.datasets=[{name: coco, shards: [\"$dir/bad/empty-*.h5\"]}, {name: albef, shards: [\"$shard\"]}]"

# ---- Corrupt JPEG bytes inside a shard: reported (file + image row), replaced, counted; the run goes on.
cp "$shard" "$dir/bad/corrupt-00000.h5"
"$PY" - "$dir/bad/corrupt-00000.h5" <<'PYEOF'
import h5py, numpy as np, sys
f = h5py.File(sys.argv[1], "r+")
off = f["images/offsets"][()]
jpeg = f["images/jpeg"]
for i in (3, 10, 17):  # garbage over the whole image (the SOI marker included)
    jpeg[off[i]:off[i + 1]] = np.frombuffer(b"not a jpeg " * 10000, np.uint8)[: off[i + 1] - off[i]]
PYEOF
st=0
"$VLMAE" pretrain -c "$cfg" --set train.log_every=1 --set train.ckpt_every=0 --set data.threads=1 --set train.max_steps=36 \
    --set "data.datasets=[{name: t, shards: [\"$dir/bad/corrupt-*.h5\"]}]" --run-dir "$dir/corrupt" > "$dir/corrupt.out" 2>&1 || st=$?
nrep=$("$PY" -c "import json, sys; print([json.loads(l) for l in open(sys.argv[1])][-1]['replaced'])" "$dir/corrupt/log.jsonl" 2>/dev/null || echo x)
if [ "$st" = 0 ] && [ "$(grep -c "loader: corrupt sample: .*corrupt-00000.h5 image \(3\|10\|17\): .*replaced by the next valid sample" "$dir/corrupt.out")" = 3 ] &&
   grep -q "^done: 36 steps; corrupt images 3 (found by the ranks; replaced $nrep samples)" "$dir/corrupt.out" && [ "$nrep" -gt 0 ]; then
    ok "corrupt JPEG bytes in a shard: 3 images reported by file and row, $nrep samples replaced, counted in log.jsonl"
else
    bad "corrupt JPEG bytes in a shard: exit $st, log.jsonl replaced=$nrep"; grep -v "^step" "$dir/corrupt.out" | tail -n 20
fi

# ---- pack: bad image files are named, counted, and the rest is packed.
cp -r "$dir/syn" "$dir/badsyn"
head -c 300 "$dir/syn/images/000002.jpg" > "$dir/badsyn/images/000002.jpg"
printf 'this is not an image' > "$dir/badsyn/images/000003.jpg"
rm "$dir/badsyn/images/000004.jpg"
st=0
"$VLMAE" pack albef --ann "$dir/badsyn/pretrain.json" --images "$dir/badsyn" --out "$dir/badpack/s" > "$dir/pack.out" 2>&1 || st=$?
if grep -q "skipped images: 3 (missing 1, truncated 1, undecodable 1" "$dir/pack.out" &&
   grep -q "missing: .*000004.jpg" "$dir/pack.out" && grep -q "truncated: .*000002.jpg" "$dir/pack.out" &&
   grep -q "undecodable: .*000003.jpg" "$dir/pack.out" && [ -f "$dir/badpack/s-00000.h5" ]; then
    ok "pack: missing, truncated and undecodable images named and counted (exit $st), the other 45 packed"
else
    bad "pack with bad images: exit $st"; cat "$dir/pack.out"
fi

# ---- Config.
sed 's/^  batch_size: 8/  batch_size: 8\n  bacth_size: 8/' "$cfg" > "$dir/unknown.yaml"
expect "config file: unknown key" "unknown\.yaml:[0-9]+.*unknown key .*bacth_size.*did you mean" pretrain -c "$dir/unknown.yaml" $common --run-dir "$run"
sed 's/^  batch_size: 8/  batch_size: eight/' "$cfg" > "$dir/type.yaml"
expect "config file: wrong type" "type\.yaml:[0-9]+.*batch_size" pretrain -c "$dir/type.yaml" $common --run-dir "$run"
expect "--set: unknown key" "unknown key 'train.bacth_size'" pretrain -c "$cfg" $common --set train.bacth_size=8 --run-dir "$run"
expect "--set: wrong type" "train.max_steps" pretrain -c "$cfg" $common --set train.max_steps=lots --run-dir "$run"
expect "queue_size not a multiple of batch x world" "model.queue_size \(60\) must be a multiple of train.batch_size" \
    pretrain -c "$cfg" $common --set model.queue_size=60 --run-dir "$run"
expect "mask_ratio 1.0" "model.mask_ratio" pretrain -c "$cfg" $common --set model.mask_ratio=1.0 --run-dir "$run"
expect "text_max_len 0" "data.text_max_len must be >= 2, got 0" pretrain -c "$cfg" $common --set data.text_max_len=0 --run-dir "$run"
expect "text_max_len 1" "data.text_max_len must be >= 2, got 1" pretrain -c "$cfg" $common --set data.text_max_len=1 --run-dir "$run"
expect "missing config file" "nothere\.yaml: cannot open config" pretrain -c "$dir/nothere.yaml" --run-dir "$run"

# ---- Vocabulary with a duplicated token (the size stays the same).
vocab="$S/data/vocab.txt"
awk 'NR == 2001 { print prev; next } { prev = $0; print }' "$vocab" > "$dir/dup_vocab.txt"
expect "vocabulary with a duplicate" "dup_vocab\.txt: token .* on line 2001 duplicates line 2000" \
    pretrain -c "$cfg" $common --resume auto --set "data.vocab=$dir/dup_vocab.txt" --run-dir "$run"

# ---- init.vit / init.bert safetensors.
"$PY" - "$dir" <<'PYEOF'
import json, struct, sys
d = sys.argv[1]
def st(path, tensors, header=None):
    h, off = {}, 0
    for name, shape in tensors:
        n = 4
        for s in shape: n *= s
        h[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + n]}
        off += n
    hb = header if header is not None else json.dumps(h).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + b"\0" * off)
st(d + "/vit_shape.safetensors", [("cls_token", [1, 1, 32]), ("patch_embed.proj.weight", [48, 3, 8, 8])])
st(d + "/bert_shape.safetensors", [("bert.embeddings.word_embeddings.weight", [1000, 32])])
st(d + "/bad_json.safetensors", [], header=b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]')
with open(d + "/bad_len.safetensors", "wb") as f:
    f.write(struct.pack("<Q", 1 << 40) + b"{}")
st(d + "/bad_offsets.safetensors", [], header=json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 4096]}}).encode())
PYEOF
expect "init.vit: wrong shape" "vit_shape\.safetensors.*patch_embed\.proj\.weight has shape 48x3x8x8" \
    pretrain -c "$cfg" $common --set "init.vit=$dir/vit_shape.safetensors" --run-dir "$run"
expect "init.bert: wrong shape" "bert_shape\.safetensors.*word_embeddings.* vocabulary of 1000 tokens" \
    pretrain -c "$cfg" $common --set "init.bert=$dir/bert_shape.safetensors" --run-dir "$run"
expect "init.vit: header not JSON" "bad_json\.safetensors: " pretrain -c "$cfg" $common --set "init.vit=$dir/bad_json.safetensors" --run-dir "$run"
expect "init.vit: header length past the end" "bad_len\.safetensors: " pretrain -c "$cfg" $common --set "init.vit=$dir/bad_len.safetensors" --run-dir "$run"
expect "init.bert: data offsets past the end" "bad_offsets\.safetensors: " pretrain -c "$cfg" $common --set "init.bert=$dir/bad_offsets.safetensors" --run-dir "$run"
expect "init.vit: missing file" "nothere\.safetensors" pretrain -c "$cfg" $common --set "init.vit=$dir/nothere.safetensors" --run-dir "$run"

if grep -El "Sanitizer|runtime error:" "$dir"/*.out >/dev/null 2>&1; then
    bad "sanitizer reports in: $(grep -El "Sanitizer|runtime error:" "$dir"/*.out | tr '\n' ' ')"
fi

# ---- Nothing was overwritten.
snapshot > "$dir/run.after"
if cmp -s "$dir/run.before" "$dir/run.after"; then
    ok "the run directory is untouched after $n failed runs"
else
    bad "the run directory changed:"; diff "$dir/run.before" "$dir/run.after" || true
fi
exit $fail
