#!/bin/bash
# tests/gpu/run.sh -- the one prepared GPU check of vlmae (DESIGN.md section 10). Run it on a GPU
# machine (one H200, nvcc 13, CUDA libraries, python3 with PyTorch; no HDF5/yaml/MPI/OpenBLAS dev
# packages, no autotools, no package registry) from the repository root, with .gpu-deps/ made by
# tests/gpu/prepare.sh beside it. tests/gpu/README.md says how to call it through the device tool.
#
# It builds vlmae there (CUDA, --without-mpi) against the carried libraries, then runs
#   1. tests/test_cuda_ops   every CUDA op against the CPU op, fp32 and bf16, + determinism
#   2. step parity           CPU vs CUDA pre-training losses   (needs `vlmae bench --device`)
#   3. determinism           two CUDA runs, identical losses    (needs `vlmae bench --device`)
#   4. throughput            vlmae bench --device cuda, base model, batch 64
# and prints ONE summary at the end. Everything fits in about 9 minutes (VLMAE_GPU_BUDGET, seconds);
# steps that would not fit are skipped and say so. Without a GPU (e.g. on the development machine)
# it still builds and reports the GPU steps as SKIP: a dry run of everything but the device.
#
# Logs and results go to $OUT (the device tool brings that folder back) or /tmp/vlmae-gpu/out:
#   summary.txt env.log build.log test_cuda_ops.log bench.log bench.json
# Environment: VLMAE_GPU_WORK (scratch, default /tmp/vlmae-gpu), VLMAE_GPU_DEPS (default
# ./.gpu-deps), VLMAE_GPU_REUSE=1 (keep a previous build in VLMAE_GPU_WORK: fast rerun on a warm
# machine), VLMAE_GPU_ALL_LIBS=1 (use every carried library, even where the system has one: tests
# the carried set here), VLMAE_GPU_BUDGET (default 540).
# Exit status: 0 when nothing failed (skips allowed), 1 otherwise.
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CARRIED=${VLMAE_GPU_DEPS:-$ROOT/.gpu-deps}
WORK=${VLMAE_GPU_WORK:-/tmp/vlmae-gpu}
OUTDIR=${OUT:-$WORK/out}
JOBS=$(nproc 2>/dev/null || echo 4)
DEADLINE=$((SECONDS + ${VLMAE_GPU_BUDGET:-540}))
mkdir -p "$WORK" "$OUTDIR"
SUMMARY=()
FAILED=0

say() { echo "run.sh: $*"; }
left() { echo $((DEADLINE - SECONDS)); }
# result NAME STATUS DETAIL: one summary line (STATUS: PASS, FAIL, SKIP, INFO, WARN)
result() {
    local line
    line=$(printf '%-14s %-5s %s' "$1" "$2" "$3")
    SUMMARY+=("$line")
    [ "$2" = FAIL ] && FAILED=1
    say "$line"
}
finish() {
    {
        echo "=================== vlmae GPU check summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), ${SECONDS}s) ==================="
        printf '%s\n' "${SUMMARY[@]}"
        echo "logs: $OUTDIR ($(cd "$OUTDIR" && ls | tr '\n' ' '))"
        [ $FAILED = 0 ] && echo "RESULT: OK" || echo "RESULT: FAILED"
    } | tee "$OUTDIR/summary.txt"
    exit $FAILED
}
# untar FILE DIR: tar, or python's tarfile where the machine has no xz
untar() {
    mkdir -p "$2"
    tar -xf "$1" -C "$2" 2>/dev/null && return 0
    python3 - "$1" "$2" <<'EOF'
import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    try:
        t.extractall(sys.argv[2], filter="fully_trusted")
    except TypeError:
        t.extractall(sys.argv[2])
EOF
}

# ---------------------------------------------------------------------------------------------
# 0. The machine.
{
    echo "## os";      (. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"); uname -a
    echo "## gpu";     nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1
    echo "## nvcc";    (command -v nvcc || ls /usr/local/cuda/bin/nvcc) 2>&1; nvcc --version 2>&1 | tail -2
    echo "## cc";      cc --version 2>&1 | head -1
    echo "## make";    make --version 2>&1 | head -1
    echo "## tools";   for t in pkg-config xz gzip ldconfig python3 autoreconf; do printf '%s: %s\n' "$t" "$(command -v $t || echo none)"; done
    echo "## python";  python3 -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())' 2>&1
    echo "## cuda libs"; ls /usr/local/cuda/lib64 2>/dev/null | grep -E '^lib(cudart|cublas|cublasLt|nccl)\.so' | tr '\n' ' '; echo
} >"$OUTDIR/env.log" 2>&1
GPU=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)
result machine INFO "${GPU:-no GPU (nvidia-smi)}; $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo 'no nvcc in PATH'); $(cc --version 2>/dev/null | head -1)"

# ---------------------------------------------------------------------------------------------
# 1. The carried libraries: unpack; link the ones the system lacks into one folder for
#    LD_LIBRARY_PATH (so nothing the system has is shadowed).
for f in deps.tar.xz autotools.tar.gz MANIFEST; do
    if [ ! -f "$CARRIED/$f" ]; then
        result deps FAIL "$CARRIED/$f missing: run tests/gpu/prepare.sh on the development machine and carry .gpu-deps"
        finish
    fi
done
rm -rf "$WORK/deps-root" && untar "$CARRIED/deps.tar.xz" "$WORK/deps-root" || { result deps FAIL "cannot unpack deps.tar.xz"; finish; }
D=$WORK/deps-root/deps
LIBS_MISSING=$WORK/libs-missing
rm -rf "$LIBS_MISSING" && mkdir -p "$LIBS_MISSING"
LDCONFIG=$(command -v ldconfig || echo /sbin/ldconfig)
SYSLIBS=$("$LDCONFIG" -p 2>/dev/null | awk 'NR > 1 {print $1}')
nmiss=0
for f in "$D"/lib/*.so.*; do
    so=$(basename "$f")
    if [ "${VLMAE_GPU_ALL_LIBS:-0}" = 1 ] || [ -z "$SYSLIBS" ] || ! grep -qxF "$so" <<<"$SYSLIBS"; then
        ln -s "$f" "$LIBS_MISSING/$so"
        nmiss=$((nmiss + 1))
    fi
done
export LD_LIBRARY_PATH="$LIBS_MISSING${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
result deps INFO "$(grep -m1 '^git:' "$CARRIED/MANIFEST"); $nmiss of $(ls "$D"/lib/*.so.* | wc -l) carried libraries used (the rest the system has)"

# Helpers the machine may lack: pkg-config (configure only checks it exists: every library is
# given by *_CFLAGS/*_LIBS) and make.
mkdir -p "$WORK/bin"
if ! command -v pkg-config >/dev/null; then
    printf '#!/bin/sh\ncase "$1" in --atleast-pkgconfig-version) exit 0;; --version) echo 0.29.2; exit 0;; esac\nexit 1\n' >"$WORK/bin/pkg-config"
    chmod +x "$WORK/bin/pkg-config"
fi
command -v make >/dev/null || { chmod +x "$D/bin/make"; ln -sf "$D/bin/make" "$WORK/bin/make"; }
export PATH="$WORK/bin:$PATH"
command -v nvcc >/dev/null || { [ -x /usr/local/cuda/bin/nvcc ] && export PATH="$PATH:/usr/local/cuda/bin"; }
NVCC=$(command -v nvcc || true)
if [ -n "$NVCC" ]; then
    CUDA_LIB=$(cd "$(dirname "$NVCC")/.." && pwd)/lib64
    [ -d "$CUDA_LIB" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$CUDA_LIB"
fi

# NCCL: the toolkit's, else the one PyTorch's pip packages bring (nvidia-nccl-cu13).
NCCL_OPT=
if [ -n "$NVCC" ] && [ ! -f "$(dirname "$NVCC")/../include/nccl.h" ] && [ ! -f /usr/include/nccl.h ]; then
    NDIR=$(python3 -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null || true)
    if [ -n "$NDIR" ] && [ -f "$NDIR/include/nccl.h" ] && ls "$NDIR"/lib/libnccl.so.* >/dev/null 2>&1; then
        rm -rf "$WORK/nccl" && mkdir -p "$WORK/nccl/lib"
        ln -s "$NDIR/include" "$WORK/nccl/include"
        so=$(ls "$NDIR"/lib/libnccl.so.* | head -1)
        ln -s "$so" "$WORK/nccl/lib/libnccl.so"
        ln -s "$so" "$WORK/nccl/lib/$(basename "$so")"
        NCCL_OPT="--with-nccl=$WORK/nccl"
        export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$NDIR/lib"
    fi
fi

# ---------------------------------------------------------------------------------------------
# 2. Source copy with the carried autotools outputs, configure, build.
SRC=$WORK/src BUILD=$WORK/build BIN=$BUILD
if [ "${VLMAE_GPU_REUSE:-0}" = 1 ] && [ -x "$BUILD/tests/test_cuda_ops" ] && [ -x "$BUILD/vlmae" ]; then
    result build INFO "reusing the build in $BUILD (VLMAE_GPU_REUSE=1)"
else
    rm -rf "$SRC" "$BUILD" && mkdir -p "$SRC" "$BUILD"
    if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then  # only what the device tool sends
        (cd "$ROOT" && git ls-files -z -co --exclude-standard | tar --null --ignore-failed-read -T - -cf -) | tar -xf - -C "$SRC"
    else
        tar -C "$ROOT" --exclude=./.git --exclude=./.gpu-deps -cf - . | tar -xf - -C "$SRC"
    fi
    untar "$CARRIED/autotools.tar.gz" "$SRC"
    stale=$(cd "$SRC" && grep -E '^[0-9a-f]{64}  ' "$CARRIED/MANIFEST" | sha256sum -c --quiet 2>&1 | sed -n 's/: FAILED.*//p' | tr '\n' ' ' | sed 's/ $//')
    if [ -n "$stale" ]; then
        if command -v autoreconf >/dev/null && (cd "$SRC" && ./bootstrap) >"$OUTDIR/build.log" 2>&1; then
            result autotools WARN "$stale changed since prepare.sh: regenerated with autoreconf"
        else
            result autotools WARN "$stale changed since prepare.sh and no autoreconf here: the build uses stale Makefile.in/configure (rerun tests/gpu/prepare.sh)"
        fi
    fi
    # generated files newer than their inputs, so make never tries to rerun autotools
    touch "$SRC/aclocal.m4" && touch "$SRC/configure" "$SRC/Makefile.in" "$SRC/build_config.h.in"
    . "$D/env.sh"
    say "configure + make -j$JOBS (log: $OUTDIR/build.log)"
    t0=$SECONDS
    if (cd "$BUILD" && "$SRC/configure" --without-mpi --with-cuda $NCCL_OPT PYTHON="$(command -v python3 || echo python3)") >>"$OUTDIR/build.log" 2>&1 &&
       (cd "$BUILD" && make -j"$JOBS" vlmae tests/test_cuda_ops tests/test_cuda_probe) >>"$OUTDIR/build.log" 2>&1; then
        result build PASS "configure + make in $((SECONDS - t0))s; CUDA $(sed -n 's/^  CUDA *//p' "$OUTDIR/build.log" | head -1 | cut -c1-40); NCCL $(sed -n 's/^  NCCL *//p' "$OUTDIR/build.log" | head -1)"
        # headers of the carried libraries must come from .gpu-deps, not from this system
        sys=$(cat "$BUILD"/src/*/.deps/*.Po 2>/dev/null | grep -oE '/usr/include/(hdf5/|yaml\.h|jpeglib\.h|png\.h|libpng16/|utf8proc\.h|x86_64-linux-gnu/openblas)[^ ]*' | sort -u | head -5 | tr '\n' ' ')
        [ -z "$sys" ] || result headers WARN "taken from the system, not .gpu-deps: $sys"
    else
        tail -25 "$OUTDIR/build.log" | sed 's/^/    | /'
        if [ -f "$CARRIED/prebuilt.tar.xz" ]; then
            rm -rf "$WORK/prebuilt" && untar "$CARRIED/prebuilt.tar.xz" "$WORK/prebuilt"
            BIN=$WORK/prebuilt
            result build FAIL "configure/make failed (build.log); continuing with the binaries prepare.sh built"
        else
            result build FAIL "configure/make failed (build.log)"
            finish
        fi
    fi
fi
unresolved=$(ldd "$BIN/vlmae" "$BIN/tests/test_cuda_ops" 2>/dev/null | grep 'not found' | sort -u | tr -s ' \t\n' ' ')
[ -z "$unresolved" ] || result libraries FAIL "unresolved: $unresolved"

# ---------------------------------------------------------------------------------------------
# 3. Kernel parity: every op, fp32 and bf16, determinism; the optimizer kernels; NCCL one rank.
HAVE_GPU=0
say "tests/test_cuda_ops (log: $OUTDIR/test_cuda_ops.log)"
t0=$SECONDS
timeout 300 "$BIN/tests/test_cuda_ops" >"$OUTDIR/test_cuda_ops.log" 2>&1
rc=$?
case $rc in
77) result cuda_ops SKIP "no CUDA device" ;;
0) HAVE_GPU=1
   result cuda_ops PASS "$(tail -1 "$OUTDIR/test_cuda_ops.log") in $((SECONDS - t0))s; $(grep -c '^ok ' "$OUTDIR/test_cuda_ops.log") ok lines; $(grep -m1 '^device' "$OUTDIR/test_cuda_ops.log")" ;;
124) HAVE_GPU=1; result cuda_ops FAIL "timed out after 300s" ;;
*) HAVE_GPU=1
   result cuda_ops FAIL "exit $rc: $(tail -1 "$OUTDIR/test_cuda_ops.log")"
   grep -E '^FAIL' "$OUTDIR/test_cuda_ops.log" | head -12 | sed 's/^/    | /' ;;
esac
if [ $HAVE_GPU = 1 ]; then
    timeout 60 "$BIN/tests/test_cuda_probe" >>"$OUTDIR/test_cuda_ops.log" 2>&1
    rc=$?
    [ $rc = 0 ] && result cuda_probe PASS "vector add" || result cuda_probe FAIL "exit $rc"
fi

# ---------------------------------------------------------------------------------------------
# 4-6. Whole steps through `vlmae bench`, when it can run on the device.
HELP=$("$BIN/vlmae" bench --help 2>&1)
if ! grep -q -- '--device' <<<"$HELP"; then
    for s in step_parity determinism throughput; do
        result $s SKIP "vlmae bench has no --device option yet (the engine runs on the CPU only)"
    done
    finish
fi
if [ $HAVE_GPU = 0 ]; then
    for s in step_parity determinism throughput; do result $s SKIP "no CUDA device"; done
    finish
fi

BENCH_LOG=$OUTDIR/bench.log
: >"$BENCH_LOG"
PREC=
TOL=5e-2  # bf16 GEMMs against the fp32 CPU engine
if grep -q -- '--precision' <<<"$HELP"; then PREC="--precision fp32"; TOL=1e-3; fi
SMALL="--model tiny --objective all --batch 4 --text-len 16 --steps 3 --warmup 0"
bench() {  # bench SECONDS ARGS...: run vlmae bench with a time limit, output to bench.log
    local lim=$1
    shift
    echo "## vlmae bench $*" >>"$BENCH_LOG"
    timeout "$lim" "$BIN/vlmae" bench "$@" >>"$BENCH_LOG" 2>&1
}
# verdict MODE FILES...: one "PASS ..." / "FAIL ..." line from tests/gpu/losses.py (an empty or
# unparsable file, a crash or a non-finite loss is a FAIL; an empty verdict is made a FAIL here)
verdict() {
    local v
    v=$(python3 "$ROOT/tests/gpu/losses.py" "$@" 2>&1 | tail -1)
    case $v in PASS* | FAIL*) echo "$v" ;; *) echo "FAIL no verdict from losses.py: ${v:-empty output}" ;; esac
}
# Parity and determinism runs use the deterministic scatter-add (no atomics, ops_cuda.h); the
# throughput run below uses the default (faster) kernels.
export VLMAE_CUDA_DETERMINISTIC=1
if [ "$(left)" -gt 120 ] && bench 100 $SMALL --device cpu --json "$WORK/p_cpu.json" && bench 60 $SMALL --device cuda $PREC --json "$WORK/p_cuda.json"; then
    v=$(verdict parity "$WORK/p_cpu.json" "$WORK/p_cuda.json" "$TOL")
    result step_parity "${v%% *}" "tiny model, 3 steps, losses CPU vs CUDA${PREC:+ ($PREC)}: ${v#* }"
    if [ "$(left)" -le 90 ]; then
        result determinism SKIP "only $(left)s left of the budget"
    elif bench 60 $SMALL --device cuda $PREC --json "$WORK/p_cuda2.json"; then
        v=$(verdict same "$WORK/p_cuda.json" "$WORK/p_cuda2.json")
        result determinism "${v%% *}" "two CUDA runs (deterministic kernels), losses of bench --json: ${v#* }"
    else
        result determinism FAIL "the second CUDA run failed (bench.log: $(tail -1 "$BENCH_LOG"))"
    fi
else
    result step_parity FAIL "vlmae bench failed or no time left (bench.log: $(tail -1 "$BENCH_LOG"))"
fi

unset VLMAE_CUDA_DETERMINISTIC
lim=$(( $(left) - 15 ))
[ $lim -gt 300 ] && lim=300
if [ $lim -gt 60 ]; then
    if bench $lim --device cuda --model base --objective all --batch 64 --text-len 30 --steps 5 --warmup 2 --json "$OUTDIR/bench.json"; then
        v=$(verdict finite "$OUTDIR/bench.json")
        result throughput "${v%% *}" "base model, batch 64, text 30 (bench.log, bench.json): ${v#* }"
        while read -r l; do SUMMARY+=("               $l"); done < <(grep -E '^(vlmae bench:|objective|albef|vlmae) ' "$BENCH_LOG" | tail -4)
    else
        result throughput FAIL "vlmae bench (base, batch 64) failed or ran past ${lim}s (bench.log: $(tail -1 "$BENCH_LOG"))"
    fi
else
    result throughput SKIP "only $(left)s left of the budget"
fi
finish
