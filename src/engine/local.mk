## src/engine/local.mk -- the engine layer's files; Makefile.am includes it.
## The op engine: the backend op interface (ops.h), the CPU and guard backends, graph/arena/autograd, RNG.
## One file per line, sorted; a new .c goes to libvlmae_a_SOURCES, a new .h to noinst_HEADERS.

libvlmae_a_SOURCES += \
	src/engine/common.c \
	src/engine/graph.c \
	src/engine/ops_cpu.c \
	src/engine/ops_guard.c \
	src/engine/rng.c

noinst_HEADERS += \
	src/engine/common.h \
	src/engine/graph.h \
	src/engine/hash_uniform.h \
	src/engine/ops.h \
	src/engine/ops_guard.h \
	src/engine/rng.h
