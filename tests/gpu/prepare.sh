#!/bin/bash
# tests/gpu/prepare.sh -- run HERE, on the development machine (Debian bookworm with network access
# and vlmae's build dependencies installed), right before handing tests/gpu/run.sh to a GPU machine.
#
# The GPU machine has CUDA (nvcc, cuBLAS), a C compiler and python3 with PyTorch, but no HDF5, libyaml,
# OpenBLAS, libjpeg, libpng or utf8proc packages, no autotools and no package registry. This script
# fills the git-ignored folder .gpu-deps/ (carried to the GPU machine by the device tool) with:
#   deps.tar.xz       include/ and lib/ of those libraries and of every shared library they pull in
#                     (the ldd closure of a vlmae built here, minus glibc, the compiler runtimes and
#                     CUDA), taken from the Debian packages (apt-get download + dpkg -x); a GNU make;
#                     env.sh with the configure variables that point at them
#   autotools.tar.gz  configure, Makefile.in, build_config.h.in, aclocal.m4, build-aux/ generated from
#                     this checkout (the GPU machine cannot run autoreconf)
#   prebuilt.tar.xz   vlmae, tests/test_cuda_ops and tests/test_cuda_probe built here (CUDA, no MPI),
#                     used by run.sh only if building there fails
#   MANIFEST          git revision, date, checksums of the build inputs, the carried libraries
# It builds in a scratch copy of the checkout (tracked + untracked-not-ignored files, exactly what the
# device tool sends), never touching the working tree. Downloads are cached in
# ${VLMAE_GPU_CACHE:-/tmp/vlmae-gpu-prepare}. Takes a few minutes (most of it the build).
#
# Usage: bash tests/gpu/prepare.sh          (then see tests/gpu/README.md)
# Rerun it after changing configure.ac, Makefile.am, src/*/local.mk or m4/*.m4 (run.sh warns when
# they differ).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEST=$ROOT/.gpu-deps
CACHE=${VLMAE_GPU_CACHE:-${TMPDIR:-/tmp}/vlmae-gpu-prepare}
JOBS=$(nproc 2>/dev/null || echo 2)
MAX_MIB=48   # the device tool carries at most 64 MiB with the whole working tree
ARCH=x86_64-linux-gnu

log() { echo "prepare: $*"; }
die() { echo "prepare: error: $*" >&2; exit 1; }

for t in apt-get dpkg dpkg-deb ldd readelf tar xz gzip git autoreconf sha256sum; do
    command -v "$t" >/dev/null || die "$t not found (this script runs on the Debian development machine)"
done
[ "$(uname -m)" = x86_64 ] || die "the GPU machine is x86-64; run this on an x86-64 machine"

# Headers of the libraries configure requires, by Debian package (the runtime packages are found
# from the ldd closure below).
DEV_PACKAGES="libhdf5-dev libyaml-dev libopenblas-pthread-dev libjpeg62-turbo-dev libpng-dev libutf8proc-dev"
# Libraries the GPU machine has (or must use its own of): glibc, compiler runtimes, CUDA, driver.
EXCLUDE_RE='^(linux-vdso|ld-linux|libc\.so|libm\.so|libmvec|libpthread|libdl\.so|librt\.so|libresolv|libutil|libgcc_s|libstdc\+\+|libgomp|libcuda|libcudart|libcublas|libnccl|libnvidia|libnvrtc|libnvJitLink|libcufft|libcurand)'

mkdir -p "$CACHE/debs"
SRC=$CACHE/src BUILD=$CACHE/build ROOTFS=$CACHE/rootfs STAGE=$CACHE/stage

# ---------------------------------------------------------------------------------------------
# 1. A scratch copy of what the device tool sends, with fresh autotools outputs.
log "copying the checkout to $SRC"
rm -rf "$SRC" && mkdir -p "$SRC"
(cd "$ROOT" && git ls-files -z -co --exclude-standard | tar --null --ignore-failed-read -T - -cf -) |
    tar -xf - -C "$SRC"
log "bootstrap (autoreconf)"
(cd "$SRC" && ./bootstrap) >"$CACHE/bootstrap.log" 2>&1 || { tail -20 "$CACHE/bootstrap.log"; die "bootstrap failed"; }

# ---------------------------------------------------------------------------------------------
# 2. Build here (CUDA, no MPI: run.sh builds the same way), for the ldd closure and as a fallback.
log "configure + build in $BUILD (-j$JOBS)"
rm -rf "$BUILD" && mkdir -p "$BUILD"
(cd "$BUILD" && "$SRC/configure" --without-mpi --with-cuda) >"$CACHE/configure.log" 2>&1 ||
    { tail -20 "$CACHE/configure.log"; die "configure failed (log: $CACHE/configure.log)"; }
PROGS="vlmae tests/test_cuda_ops tests/test_cuda_probe"
(cd "$BUILD" && make -j"$JOBS" $PROGS) >"$CACHE/build.log" 2>&1 ||
    { tail -30 "$CACHE/build.log"; die "build failed (log: $CACHE/build.log)"; }

# ---------------------------------------------------------------------------------------------
# 3. The shared libraries to carry: the ldd closure minus what the GPU machine has.
declare -A LIBPATH=()
for p in $PROGS; do
    while read -r name _ path _; do
        [[ "$path" == /* ]] || continue
        [[ "$name" =~ $EXCLUDE_RE ]] && continue
        LIBPATH[$name]=$path
    done < <(ldd "$BUILD/$p")
done
[ ${#LIBPATH[@]} -gt 0 ] || die "ldd found no libraries to carry"
log "${#LIBPATH[@]} libraries to carry: ${!LIBPATH[*]}"

# Debian package of a library path (usrmerge: dpkg knows /usr/lib or /lib, whichever it shipped).
owner() {
    local p=$1 r q out
    r=$(readlink -f "$p")
    for q in "$p" "/usr${p#/usr}" "${p#/usr}" "$r" "/usr${r#/usr}" "${r#/usr}"; do
        if out=$(dpkg -S "$q" 2>/dev/null) && [ -n "$out" ]; then
            out=${out%%$'\n'*}
            echo "${out%%:*}"
            return 0
        fi
    done
    return 1
}
declare -A PKGS=()
for d in $DEV_PACKAGES make; do PKGS[$d]=1; done
declare -A NOPKG=()
for name in "${!LIBPATH[@]}"; do
    if pkg=$(owner "${LIBPATH[$name]}") && [ -n "$pkg" ]; then PKGS[$pkg]=1; else NOPKG[$name]=1; fi
done
log "Debian packages: ${!PKGS[*]}"

# ---------------------------------------------------------------------------------------------
# 4. Download (cached) and unpack the packages.
cd "$CACHE/debs"
missing=()
for pkg in "${!PKGS[@]}"; do
    ls "${pkg}"_*.deb >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get download ${missing[*]}"
    apt-get download "${missing[@]}" >"$CACHE/download.log" 2>&1 ||
        { tail -20 "$CACHE/download.log"; die "apt-get download failed (apt-get update first?)"; }
fi
rm -rf "$ROOTFS" && mkdir -p "$ROOTFS"
for pkg in "${!PKGS[@]}"; do
    deb=$(ls -t "${pkg}"_*.deb | head -1)
    dpkg -x "$deb" "$ROOTFS"
done
cd "$ROOT"

# ---------------------------------------------------------------------------------------------
# 5. Assemble deps/: include/, lib/ (one file per soname, plus link-time names), bin/make, env.sh.
rm -rf "$STAGE" && mkdir -p "$STAGE/deps/lib" "$STAGE/deps/bin"
D=$STAGE/deps
cp -a "$ROOTFS/usr/include" "$D/include"
cp "$ROOTFS/usr/bin/make" "$D/bin/make"
for name in "${!LIBPATH[@]}"; do
    f=$(find "$ROOTFS" -name "$name" \( -type f -o -type l \) | head -1)
    if [ -n "$f" ]; then
        cp -L "$f" "$D/lib/$name"
    else  # not in any package we unpacked: take this machine's copy
        log "note: $name taken from ${LIBPATH[$name]} (no Debian package file)"
        cp -L "${LIBPATH[$name]}" "$D/lib/$name"
    fi
done
# link-time names for the libraries configure asks for: lib<name>.so -> the carried soname
linkname() {  # $1 = name as in -l<name>
    local so
    so=$(cd "$D/lib" && ls "lib$1.so."* 2>/dev/null | head -1)
    [ -n "$so" ] || die "lib$1.so.* is not among the carried libraries"
    ln -sf "$so" "$D/lib/lib$1.so"
}
for l in hdf5_serial yaml-0 openblas jpeg png16 utf8proc; do linkname "$l"; done
for h in hdf5/serial/hdf5.h yaml.h $ARCH/openblas-pthread/cblas.h jpeglib.h $ARCH/jconfig.h libpng16/png.h utf8proc.h; do
    [ -f "$D/include/$h" ] || die "header $h missing from the unpacked packages"
done
# configure's variables (run.sh sets D to where deps/ was unpacked, then sources this)
cat >"$D/env.sh" <<'EOF'
# Sourced by tests/gpu/run.sh with D = the unpacked deps/ folder. Written by tests/gpu/prepare.sh.
export HDF5_CFLAGS="-I$D/include/hdf5/serial" HDF5_LIBS="-L$D/lib -lhdf5_serial"
export YAML_CFLAGS="-I$D/include" YAML_LIBS="-L$D/lib -lyaml-0"
export BLAS_CFLAGS="-I$D/include/x86_64-linux-gnu/openblas-pthread" BLAS_LIBS="-L$D/lib -lopenblas"
export JPEG_CFLAGS="-I$D/include -I$D/include/x86_64-linux-gnu" JPEG_LIBS="-L$D/lib -ljpeg"
export PNG_CFLAGS="-I$D/include/libpng16" PNG_LIBS="-L$D/lib -lpng16"
export UTF8PROC_CFLAGS="-I$D/include" UTF8PROC_LIBS="-L$D/lib -lutf8proc"
# the carried libraries' own dependencies, at link time
export LDFLAGS="${LDFLAGS:-} -Wl,-rpath-link,$D/lib"
EOF
# trim what no build needs
rm -rf "$D/include/hdf5/openmpi" "$D/include/hdf5/mpich"
find "$D" -name '*.a' -delete

# ---------------------------------------------------------------------------------------------
# 6. Pack into .gpu-deps/.
rm -rf "$DEST" && mkdir -p "$DEST"
log "packing $DEST"
tar -C "$STAGE" -cf - deps | xz -6 -T0 >"$DEST/deps.tar.xz"
(cd "$SRC" && tar -czf "$DEST/autotools.tar.gz" configure Makefile.in build_config.h.in aclocal.m4 build-aux)
(cd "$BUILD" && tar -cf - $PROGS | xz -6 -T0 >"$DEST/prebuilt.tar.xz")
{
    echo "# .gpu-deps/MANIFEST, written by tests/gpu/prepare.sh"
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "git: $(cd "$ROOT" && git rev-parse HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
    echo "host: $(. /etc/os-release && echo "$PRETTY_NAME"), $(ldd --version | head -1)"
    echo "configure: $(grep -m1 '^  CUDA ' "$CACHE/configure.log" | sed 's/^ *//' || true)"
    echo "libraries: $(cd "$D/lib" && ls | tr '\n' ' ')"
    echo "packages: ${!PKGS[*]}"
    [ ${#NOPKG[@]} -eq 0 ] || echo "copied from the host (no package): ${!NOPKG[*]}"
    echo "# build inputs: run.sh compares these with the checkout it runs in"
    (cd "$SRC" && sha256sum configure.ac Makefile.am src/*/local.mk m4/vlmae_*.m4)
} >"$DEST/MANIFEST"

size=$(du -sk "$DEST" | cut -f1)
log "done: .gpu-deps is $((size / 1024)) MiB ($(cd "$DEST" && ls | tr '\n' ' '))"
[ $((size / 1024)) -le $MAX_MIB ] || die ".gpu-deps is over $MAX_MIB MiB: too large to carry with the tree"
log "next: the device tool's run with carry [\".gpu-deps\"] and command \"bash tests/gpu/run.sh\" (tests/gpu/README.md)"
