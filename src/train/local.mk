## src/train/local.mk -- the train layer's files; Makefile.am includes it.
## Training: config, trainer, optimizer, distributed, checkpoints, weight import/export, backend choice.
## One file per line, sorted; a new .c goes to libvlmae_a_SOURCES, a new .h to noinst_HEADERS.

libvlmae_a_SOURCES += \
	src/train/backend.c \
	src/train/checkpoint.c \
	src/train/checkpoint_read.c \
	src/train/checkpoint_write.c \
	src/train/config.c \
	src/train/config_dump.c \
	src/train/config_keys.c \
	src/train/config_parse.c \
	src/train/config_value.c \
	src/train/dist.c \
	src/train/h5attr.c \
	src/train/optim.c \
	src/train/peak.c \
	src/train/placement.c \
	src/train/safetensors.c \
	src/train/tensorfile.c \
	src/train/trainer.c \
	src/train/validate.c \
	src/train/watchdog.c \
	src/train/weights_import.c

noinst_HEADERS += \
	src/train/backend.h \
	src/train/checkpoint.h \
	src/train/checkpoint_internal.h \
	src/train/config.h \
	src/train/config_internal.h \
	src/train/dist.h \
	src/train/h5attr.h \
	src/train/optim.h \
	src/train/peak.h \
	src/train/placement.h \
	src/train/safetensors.h \
	src/train/tensorfile.h \
	src/train/trainer.h \
	src/train/validate.h \
	src/train/watchdog.h \
	src/train/weights_import.h
