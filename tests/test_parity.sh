#!/bin/sh
# test_parity.sh: one pre-training step of a tiny model, C engine vs the PyTorch reference
# (tests/reference/), for the objectives vlmae, albef and tcl. Losses within 1e-5 relative and every
# gradient tensor within 1e-4 relative (tensor max-norm). Skips (77) without Debian's torch.
set -eu
PY=${PYTHON:-/usr/bin/python3}
srcdir=${top_srcdir:-.}
if ! "$PY" -c "import torch, numpy" 2>/dev/null; then
    echo "SKIP: $PY has no torch/numpy (apt-get install python3-torch python3-numpy)"
    exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
status=0
for obj in vlmae albef tcl; do
    mkdir -p "$dir/$obj"
    "${top_builddir:-.}/tests/test_parity" "$dir/$obj" "$obj"
    echo "== $obj"
    "$PY" "$srcdir/tests/reference/parity.py" "$dir/$obj/case.vlt" "$dir/$obj/case.json" "$dir/$obj/c_out.vlt" || status=1
done
exit $status
