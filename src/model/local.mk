## src/model/local.mk -- the model layer's files; Makefile.am includes it.
## The model, written once over the engine: ViT, BERT + fusion, MAE decoder, heads, the step and every loss.
## One file per line, sorted; a new .c goes to libvlmae_a_SOURCES, a new .h to noinst_HEADERS.

libvlmae_a_SOURCES += \
	src/model/bert.c \
	src/model/choices.c \
	src/model/decoder.c \
	src/model/flops.c \
	src/model/model.c \
	src/model/model_device.c \
	src/model/params.c \
	src/model/step.c \
	src/model/tcl.c \
	src/model/vit.c

noinst_HEADERS += \
	src/model/choices.h \
	src/model/flops.h \
	src/model/model.h \
	src/model/params.h \
	src/model/step.h \
	src/model/tcl.h
