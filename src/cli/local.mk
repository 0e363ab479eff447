## src/cli/local.mk -- the cli layer's files; Makefile.am includes it.
## The commands: one file per `vlmae` command (main.c, the dispatcher, is the program itself).
## One file per line, sorted; a new .c goes to libvlmae_a_SOURCES, a new .h to noinst_HEADERS.

libvlmae_a_SOURCES += \
	src/cli/bench.c \
	src/cli/demo.c \
	src/cli/export.c \
	src/cli/finetune.c \
	src/cli/pack.c \
	src/cli/plot.c \
	src/cli/pretrain.c \
	src/cli/synth.c \
	src/cli/tokenize.c

noinst_HEADERS += \
	src/cli/bench.h \
	src/cli/demo.h \
	src/cli/export.h \
	src/cli/finetune.h \
	src/cli/pack.h \
	src/cli/plot.h \
	src/cli/pretrain.h \
	src/cli/synth.h \
	src/cli/tokenize.h
