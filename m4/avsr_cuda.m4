# AVSR_CHECK_CUDA
# ---------------
# --with-cuda[=DIR] (default: guess). Finds nvcc, cudart, cuBLAS, cuDNN and
# NCCL. Asked for explicitly and missing: configure fails. Not found while
# guessing: a warning and a CPU-only build. Sets HAVE_CUDA (config.h and
# automake conditional), NVCC, NVCCFLAGS, CUDA_CPPFLAGS, CUDA_LDFLAGS, CUDA_LIBS.
AC_DEFUN([AVSR_CHECK_CUDA], [
AC_ARG_WITH([cuda],
  [AS_HELP_STRING([--with-cuda@<:@=DIR@:>@],
                  [build the CUDA backend (cuBLAS, cuDNN, NCCL); DIR is the toolkit root @<:@default: guess@:>@])],
  [], [with_cuda=guess])
AC_ARG_VAR([NVCC], [CUDA compiler])
AC_ARG_VAR([NVCC_ARCH], [nvcc -gencode flags @<:@default: sm_80 and sm_90@:>@])
cuda_happy=no
avsr_cuda_summary="no"
AS_IF([test "x$with_cuda" != xno], [
  AS_CASE([$with_cuda],
    [yes|guess], [cuda_dir=""
                  for d in "$CUDA_HOME" /usr/local/cuda /usr; do
                    AS_IF([test -n "$d" && test -x "$d/bin/nvcc"], [cuda_dir="$d"; break])
                  done],
    [cuda_dir="$with_cuda"])
  AS_IF([test -n "$cuda_dir"], [
    AC_PATH_PROG([NVCC], [nvcc], [no], [$cuda_dir/bin$PATH_SEPARATOR$PATH])
    save_CPPFLAGS="$CPPFLAGS"; save_LDFLAGS="$LDFLAGS"; save_LIBS="$LIBS"
    CUDA_CPPFLAGS="-I$cuda_dir/include"
    CUDA_LDFLAGS="-L$cuda_dir/lib64 -Wl,-rpath,$cuda_dir/lib64"
    CPPFLAGS="$CPPFLAGS $CUDA_CPPFLAGS"; LDFLAGS="$LDFLAGS $CUDA_LDFLAGS"
    cuda_happy=yes
    AS_IF([test "x$NVCC" = xno], [cuda_happy=no])
    AC_CHECK_HEADERS([cuda_runtime.h cublas_v2.h cudnn.h nccl.h], [], [cuda_happy=no])
    AC_CHECK_LIB([cudart], [cudaGetDeviceCount], [:], [cuda_happy=no])
    AC_CHECK_LIB([cublas], [cublasCreate_v2], [:], [cuda_happy=no])
    AC_CHECK_LIB([cudnn], [cudnnCreate], [:], [cuda_happy=no])
    AC_CHECK_LIB([nccl], [ncclCommInitRank], [:], [cuda_happy=no])
    CPPFLAGS="$save_CPPFLAGS"; LDFLAGS="$save_LDFLAGS"; LIBS="$save_LIBS"
  ])
  AS_IF([test "x$cuda_happy" = xno],
    [AS_IF([test "x$with_cuda" != xguess],
       [AC_MSG_ERROR([CUDA was asked for (--with-cuda=$with_cuda) but nvcc, cudart, cuBLAS, cuDNN or NCCL is missing])],
       [AC_MSG_WARN([CUDA not found: building the CPU backend only])])])
])
AS_IF([test "x$cuda_happy" = xyes], [
  CUDA_LIBS="-lcudart -lcublas -lcublasLt -lcudnn -lnccl"
  AS_IF([test "x$NVCC_ARCH" = x],
        [NVCC_ARCH="-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90"])
  NVCCFLAGS="-O3 -std=c++17 -Xcompiler -fPIC $NVCC_ARCH"
  AC_DEFINE([HAVE_CUDA], [1], [Define to 1 to build the CUDA backend.])
  avsr_cuda_summary="yes ($NVCC)"
])
AC_SUBST([CUDA_CPPFLAGS])
AC_SUBST([CUDA_LDFLAGS])
AC_SUBST([CUDA_LIBS])
AC_SUBST([NVCCFLAGS])
AM_CONDITIONAL([HAVE_CUDA], [test "x$cuda_happy" = xyes])
])
