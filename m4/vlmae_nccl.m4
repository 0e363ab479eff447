# vlmae_nccl.m4 -- find NCCL (GPU collectives) for vlmae. Call after VLMAE_CHECK_CUDA.
#
# VLMAE_CHECK_NCCL
#   Options:   --with-nccl[=DIR] / --without-nccl (default: auto when CUDA is enabled). The library
#              is looked for in DIR/lib64, DIR/lib (when DIR is given), else $CUDA_HOME/lib64,
#              $CUDA_HOME/lib, /usr/lib/<multiarch>; nccl.h in DIR/include, $CUDA_HOME/include,
#              /usr/include, /usr/local/include.
#   Substs:    NCCL_CPPFLAGS, NCCL_LDFLAGS, NCCL_LIBS, NCCL_VERSION.
#   Defines:   VLMAE_HAVE_NCCL to 1 or 0 in build_config.h (test it with #if, not #ifdef).
#   Automake:  AM_CONDITIONAL HAVE_NCCL.
#   Shell:     vlmae_have_nccl=yes|no, vlmae_nccl_summary.
#
# Without NCCL a CUDA build still works on one GPU per process; multi-rank GPU runs need NCCL.

# _VLMAE_NCCL_PROBLEM(MESSAGE): an error when NCCL was asked for, else a warning.
m4_define([_VLMAE_NCCL_PROBLEM], [
  AS_IF([test "x$with_nccl" = xcheck],
    [AC_MSG_WARN([$1; building without NCCL])
     vlmae_nccl_summary="no ($1)"],
    [AC_MSG_ERROR([$1 (use --without-nccl to build without it)])])
  vlmae_nccl_fail=yes
])

AC_DEFUN([VLMAE_CHECK_NCCL], [
AC_REQUIRE([VLMAE_CHECK_CUDA])
AC_ARG_WITH([nccl],
  [AS_HELP_STRING([--with-nccl@<:@=DIR@:>@],
    [use NCCL for multi-GPU gradient all-reduce; DIR is its install root (default: auto when CUDA is enabled)])],
  [], [with_nccl=check])

vlmae_have_nccl=no
vlmae_nccl_summary=no
vlmae_nccl_fail=
NCCL_CPPFLAGS= NCCL_LDFLAGS= NCCL_LIBS= NCCL_VERSION=

AS_IF([test "x$with_nccl" = xno], [vlmae_nccl_summary="no (--without-nccl)"; vlmae_nccl_fail=yes],
  [test "x$vlmae_have_cuda" != xyes],
  [AS_IF([test "x$with_nccl" = xcheck], [vlmae_nccl_summary="no (needs CUDA)"; vlmae_nccl_fail=yes],
     [AC_MSG_ERROR([--with-nccl needs the CUDA backend, which is disabled or was not found])])])

AS_IF([test -z "$vlmae_nccl_fail"], [
  vlmae_multiarch=`$CC -print-multiarch 2>/dev/null`
  AS_IF([test -z "$vlmae_multiarch"], [vlmae_multiarch=x86_64-linux-gnu])
  AS_CASE([$with_nccl],
    [yes|check], [vlmae_nccl_libdirs="$CUDA_HOME/lib64 $CUDA_HOME/lib /usr/lib/$vlmae_multiarch"
                  vlmae_nccl_incdirs="$CUDA_HOME/include /usr/include /usr/local/include"],
    [vlmae_nccl_libdirs="$with_nccl/lib64 $with_nccl/lib"
     vlmae_nccl_incdirs="$with_nccl/include"])

  AC_MSG_CHECKING([for libnccl])
  vlmae_nccl_libdir=
  for vlmae_d in $vlmae_nccl_libdirs; do
    AS_IF([test -z "$vlmae_nccl_libdir" && test -f "$vlmae_d/libnccl.so"], [vlmae_nccl_libdir=$vlmae_d])
  done
  AS_IF([test -n "$vlmae_nccl_libdir"], [AC_MSG_RESULT([$vlmae_nccl_libdir])],
    [AC_MSG_RESULT([no])
     _VLMAE_NCCL_PROBLEM([libnccl.so not found in $vlmae_nccl_libdirs])])
])

AS_IF([test -z "$vlmae_nccl_fail"], [
  AC_MSG_CHECKING([for nccl.h])
  vlmae_nccl_incdir=
  for vlmae_d in $vlmae_nccl_incdirs; do
    AS_IF([test -z "$vlmae_nccl_incdir" && test -f "$vlmae_d/nccl.h"], [vlmae_nccl_incdir=$vlmae_d])
  done
  AS_IF([test -n "$vlmae_nccl_incdir"], [AC_MSG_RESULT([$vlmae_nccl_incdir])],
    [AC_MSG_RESULT([no])
     _VLMAE_NCCL_PROBLEM([nccl.h not found in $vlmae_nccl_incdirs])])
])

AS_IF([test -z "$vlmae_nccl_fail"], [
  # The CUDA include directory is already on the command line; add the others.
  AS_IF([test "x$vlmae_nccl_incdir" != "x$CUDA_HOME/include" && test "x$vlmae_nccl_incdir" != x/usr/include],
    [NCCL_CPPFLAGS="-I$vlmae_nccl_incdir"])
  AS_IF([test "x$vlmae_nccl_libdir" != "x$CUDA_LIBDIR"], [
    NCCL_LDFLAGS="-L$vlmae_nccl_libdir"
    AS_CASE([$vlmae_nccl_libdir], [/usr/lib|/usr/lib64|/usr/lib/*-linux-gnu], [],
      [NCCL_LDFLAGS="$NCCL_LDFLAGS -Wl,-rpath,$vlmae_nccl_libdir"])
  ])
  NCCL_LIBS=-lnccl
  vlmae_save_CPPFLAGS=$CPPFLAGS vlmae_save_LDFLAGS=$LDFLAGS vlmae_save_LIBS=$LIBS
  CPPFLAGS="$CPPFLAGS $CUDA_CPPFLAGS $NCCL_CPPFLAGS"
  LDFLAGS="$LDFLAGS $NCCL_LDFLAGS $CUDA_LDFLAGS"
  LIBS="$NCCL_LIBS $CUDA_LIBS $LIBS"
  AC_MSG_CHECKING([whether NCCL links])
  AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <nccl.h>]],
                                  [[ncclUniqueId id; return ncclGetUniqueId(&id) == ncclSuccess;]])],
    [AC_MSG_RESULT([yes])],
    [AC_MSG_RESULT([no])
     _VLMAE_NCCL_PROBLEM([cannot link a program with -lnccl (see config.log)])])
  AS_IF([test -z "$vlmae_nccl_fail"], [
    AC_COMPUTE_INT([vlmae_nccl_major], [NCCL_MAJOR], [[#include <nccl.h>]], [vlmae_nccl_major=?])
    AC_COMPUTE_INT([vlmae_nccl_minor], [NCCL_MINOR], [[#include <nccl.h>]], [vlmae_nccl_minor=?])
    AC_COMPUTE_INT([vlmae_nccl_patch], [NCCL_PATCH], [[#include <nccl.h>]], [vlmae_nccl_patch=?])
    NCCL_VERSION="$vlmae_nccl_major.$vlmae_nccl_minor.$vlmae_nccl_patch"
  ])
  CPPFLAGS=$vlmae_save_CPPFLAGS LDFLAGS=$vlmae_save_LDFLAGS LIBS=$vlmae_save_LIBS
])

AS_IF([test -z "$vlmae_nccl_fail"], [
  vlmae_have_nccl=yes
  vlmae_nccl_summary="yes, NCCL $NCCL_VERSION ($vlmae_nccl_libdir)"
  AC_DEFINE([VLMAE_HAVE_NCCL], [1], [Define to 1 when NCCL is used for GPU collectives, 0 otherwise.])
], [
  AC_DEFINE([VLMAE_HAVE_NCCL], [0], [Define to 1 when NCCL is used for GPU collectives, 0 otherwise.])
  NCCL_CPPFLAGS= NCCL_LDFLAGS= NCCL_LIBS=
])
AM_CONDITIONAL([HAVE_NCCL], [test "x$vlmae_have_nccl" = xyes])
AC_SUBST([NCCL_CPPFLAGS])
AC_SUBST([NCCL_LDFLAGS])
AC_SUBST([NCCL_LIBS])
AC_SUBST([NCCL_VERSION])
])
