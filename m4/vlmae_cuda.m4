# vlmae_cuda.m4 -- find the CUDA toolkit (nvcc, cudart, cuBLAS, cuBLASLt) for vlmae.
#
# VLMAE_CHECK_CUDA
#   Options:   --with-cuda[=DIR] / --without-cuda (default: auto-detect nvcc in PATH, then
#              /usr/local/cuda/bin), --with-cuda-arch=LIST (default sm_90).
#   Precious:  NVCC, NVCCFLAGS, NVCC_ARCH, NVCC_CCBIN.
#   Substs:    NVCC, NVCCFLAGS, NVCC_ARCH, NVCC_CCBIN_FLAGS, CUDA_HOME, CUDA_VERSION, CUDA_LIBDIR,
#              CUDA_CPPFLAGS, CUDA_LDFLAGS, CUDA_LIBS.
#   Defines:   VLMAE_HAVE_CUDA to 1 or 0 in build_config.h (test it with #if, not #ifdef).
#   Automake:  AM_CONDITIONAL HAVE_CUDA.
#   Shell:     vlmae_have_cuda=yes|no, vlmae_cuda_summary (one line for the configure summary).
#
# Auto-detection never fails configure: when something is missing it warns and builds CPU-only.
# An explicit --with-cuda[=DIR] turns every failure into an error.

# _VLMAE_CUDA_PROBLEM(MESSAGE): an error when CUDA was asked for; when auto-detecting, a warning and
# a CPU-only build.
m4_define([_VLMAE_CUDA_PROBLEM], [
  AS_IF([test "x$with_cuda" = xcheck],
    [AC_MSG_WARN([$1; building without CUDA])
     vlmae_cuda_summary="no ($1)"],
    [AC_MSG_ERROR([$1 (use --without-cuda to build CPU-only)])])
  vlmae_cuda_fail=yes
])

AC_DEFUN([VLMAE_CHECK_CUDA], [
AC_REQUIRE([AC_PROG_CC])
AC_ARG_WITH([cuda],
  [AS_HELP_STRING([--with-cuda@<:@=DIR@:>@],
    [build the CUDA backend; DIR is the toolkit root (default: auto-detect nvcc in PATH or /usr/local/cuda)])],
  [], [with_cuda=check])
AC_ARG_WITH([cuda-arch],
  [AS_HELP_STRING([--with-cuda-arch=LIST],
    [comma-separated GPU architectures to compile for, e.g. sm_80,sm_90 (default: sm_90; the newest one
     is also embedded as PTX); NVCC_ARCH overrides this])],
  [], [with_cuda_arch=sm_90])
AC_ARG_VAR([NVCC], [CUDA compiler driver (default: nvcc in PATH or /usr/local/cuda/bin)])
AC_ARG_VAR([NVCCFLAGS], [flags for nvcc (default: -O3 -lineinfo)])
AC_ARG_VAR([NVCC_ARCH], [nvcc code generation flags; overrides --with-cuda-arch (e.g. "-gencode arch=compute_80,code=sm_80")])
AC_ARG_VAR([NVCC_CCBIN], [host compiler nvcc uses (default: nvcc's own choice, normally g++)])

vlmae_have_cuda=no
vlmae_cuda_summary="no"
vlmae_cuda_fail=
CUDA_HOME= CUDA_VERSION= CUDA_LIBDIR= CUDA_CPPFLAGS= CUDA_LDFLAGS= CUDA_LIBS= NVCC_CCBIN_FLAGS=

AS_CASE([$with_cuda],
  [no], [vlmae_cuda_summary="no (--without-cuda)"],
  [yes|check],
    [AS_IF([test -z "$NVCC"],
       [AC_PATH_PROG([NVCC], [nvcc], [], [$PATH$PATH_SEPARATOR/usr/local/cuda/bin])])],
  [AS_IF([test -z "$NVCC"],
     [AS_IF([test -x "$with_cuda/bin/nvcc"], [NVCC="$with_cuda/bin/nvcc"],
       [AC_MSG_ERROR([--with-cuda=$with_cuda: no $with_cuda/bin/nvcc])])])
   CUDA_HOME=$with_cuda])

AS_IF([test "x$with_cuda" != xno], [
  AS_IF([test -z "$NVCC"],
    [_VLMAE_CUDA_PROBLEM([nvcc not found in PATH or /usr/local/cuda/bin])])
])

AS_IF([test "x$with_cuda" != xno && test -z "$vlmae_cuda_fail"], [
  AS_IF([test -z "$CUDA_HOME"],
    [CUDA_HOME=`cd "\`dirname "$NVCC"\`/.." && pwd`])
  AC_MSG_CHECKING([CUDA toolkit version])
  CUDA_VERSION=`"$NVCC" --version 2>/dev/null | sed -n 's/.*release \(@<:@0-9.@:>@*\),.*/\1/p'`
  AS_IF([test -n "$CUDA_VERSION"], [AC_MSG_RESULT([$CUDA_VERSION in $CUDA_HOME])],
    [AC_MSG_RESULT([unknown])
     _VLMAE_CUDA_PROBLEM([$NVCC --version does not run])])
])

AS_IF([test "x$with_cuda" != xno && test -z "$vlmae_cuda_fail"], [
  # Code generation: for every architecture, SASS for that GPU; plus PTX of the newest, so a newer
  # GPU can JIT it. NVCC_ARCH given by the user wins.
  AS_IF([test -z "$NVCC_ARCH"], [
    vlmae_cuda_last=
    for vlmae_a in `echo "$with_cuda_arch" | tr ',' ' '`; do
      vlmae_a=`echo "$vlmae_a" | sed 's/^sm_//; s/^compute_//'`
      NVCC_ARCH="$NVCC_ARCH -gencode arch=compute_$vlmae_a,code=sm_$vlmae_a"
      vlmae_cuda_last=$vlmae_a
    done
    AS_IF([test -n "$vlmae_cuda_last"],
      [NVCC_ARCH="$NVCC_ARCH -gencode arch=compute_$vlmae_cuda_last,code=compute_$vlmae_cuda_last"])
    NVCC_ARCH=`echo $NVCC_ARCH`
  ])
  AS_IF([test "${NVCCFLAGS+set}" != set], [NVCCFLAGS="-O3 -lineinfo"])
  AS_IF([test -n "$NVCC_CCBIN"], [NVCC_CCBIN_FLAGS="-ccbin $NVCC_CCBIN"])

  AC_MSG_CHECKING([whether $NVCC compiles for $NVCC_ARCH])
  cat > conftest.cu <<_VLMAE_EOF
__global__ void vlmae_conftest(float *x) { x@<:@threadIdx.x@:>@ += 1.0f; }
int main(void) { vlmae_conftest<<<1, 1>>>(0); return 0; }
_VLMAE_EOF
  vlmae_nvcc_cmd="$NVCC $NVCC_CCBIN_FLAGS $NVCC_ARCH $NVCCFLAGS -c conftest.cu -o conftest.$OBJEXT"
  echo "$as_me:$LINENO: $vlmae_nvcc_cmd" >&AS_MESSAGE_LOG_FD
  AS_IF([$vlmae_nvcc_cmd >&AS_MESSAGE_LOG_FD 2>&1],
    [AC_MSG_RESULT([yes])],
    [AC_MSG_RESULT([no])
     _VLMAE_CUDA_PROBLEM([$NVCC cannot compile for $NVCC_ARCH (see config.log)])])
  rm -f conftest.cu conftest.$OBJEXT
])

AS_IF([test "x$with_cuda" != xno && test -z "$vlmae_cuda_fail"], [
  AC_MSG_CHECKING([for the CUDA library directory])
  vlmae_multiarch=`$CC -print-multiarch 2>/dev/null`
  AS_IF([test -z "$vlmae_multiarch"], [vlmae_multiarch=x86_64-linux-gnu])
  for vlmae_d in "$CUDA_HOME/lib64" "$CUDA_HOME/lib" "$CUDA_HOME/targets/x86_64-linux/lib" \
                 "/usr/lib/$vlmae_multiarch"; do
    AS_IF([test -z "$CUDA_LIBDIR" && test -f "$vlmae_d/libcudart.so"], [CUDA_LIBDIR=$vlmae_d])
  done
  AS_IF([test -n "$CUDA_LIBDIR"], [AC_MSG_RESULT([$CUDA_LIBDIR])],
    [AC_MSG_RESULT([not found])
     _VLMAE_CUDA_PROBLEM([libcudart.so not found under $CUDA_HOME])])
])

AS_IF([test "x$with_cuda" != xno && test -z "$vlmae_cuda_fail"], [
  CUDA_CPPFLAGS="-I$CUDA_HOME/include"
  CUDA_LDFLAGS="-L$CUDA_LIBDIR"
  # An rpath, so vlmae and the tests run without LD_LIBRARY_PATH (not for the system directories).
  AS_CASE([$CUDA_LIBDIR], [/usr/lib|/usr/lib64|/usr/lib/*-linux-gnu], [],
    [CUDA_LDFLAGS="$CUDA_LDFLAGS -Wl,-rpath,$CUDA_LIBDIR"])
  vlmae_save_CPPFLAGS=$CPPFLAGS vlmae_save_LDFLAGS=$LDFLAGS vlmae_save_LIBS=$LIBS
  CPPFLAGS="$CPPFLAGS $CUDA_CPPFLAGS"
  LDFLAGS="$LDFLAGS $CUDA_LDFLAGS"
  for vlmae_pair in cudart:cudaGetDeviceCount:cuda_runtime_api.h \
                    cublas:cublasCreate_v2:cublas_v2.h \
                    cublasLt:cublasLtCreate:cublasLt.h; do
    AS_IF([test -z "$vlmae_cuda_fail"], [
      vlmae_lib=`echo $vlmae_pair | cut -d: -f1`
      vlmae_fn=`echo $vlmae_pair | cut -d: -f2`
      vlmae_hdr=`echo $vlmae_pair | cut -d: -f3`
      AC_MSG_CHECKING([for $vlmae_fn in -l$vlmae_lib ($vlmae_hdr)])
      LIBS="-l$vlmae_lib $CUDA_LIBS $vlmae_save_LIBS"
      AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <$vlmae_hdr>]],
                                      [[void *p = (void *)$vlmae_fn; return p == 0;]])],
        [AC_MSG_RESULT([yes])
         CUDA_LIBS="-l$vlmae_lib $CUDA_LIBS"],
        [AC_MSG_RESULT([no])
         _VLMAE_CUDA_PROBLEM([lib$vlmae_lib or $vlmae_hdr from the CUDA toolkit not usable])])
    ])
  done
  CPPFLAGS=$vlmae_save_CPPFLAGS LDFLAGS=$vlmae_save_LDFLAGS LIBS=$vlmae_save_LIBS
  # nvcc-compiled objects are C++; the final link is done by the C compiler.
  CUDA_LIBS="$CUDA_LIBS -lstdc++"
])

AS_IF([test "x$with_cuda" != xno && test -z "$vlmae_cuda_fail"], [
  vlmae_have_cuda=yes
  vlmae_cuda_summary="yes, CUDA $CUDA_VERSION in $CUDA_HOME ($NVCC_ARCH)"
  AC_DEFINE([VLMAE_HAVE_CUDA], [1], [Define to 1 when the CUDA backend is built, 0 otherwise.])
], [
  AC_DEFINE([VLMAE_HAVE_CUDA], [0], [Define to 1 when the CUDA backend is built, 0 otherwise.])
  NVCC_ARCH= CUDA_CPPFLAGS= CUDA_LDFLAGS= CUDA_LIBS=
])
AM_CONDITIONAL([HAVE_CUDA], [test "x$vlmae_have_cuda" = xyes])
AC_SUBST([CUDA_HOME])
AC_SUBST([CUDA_VERSION])
AC_SUBST([CUDA_LIBDIR])
AC_SUBST([CUDA_CPPFLAGS])
AC_SUBST([CUDA_LDFLAGS])
AC_SUBST([CUDA_LIBS])
AC_SUBST([NVCC_CCBIN_FLAGS])
])
