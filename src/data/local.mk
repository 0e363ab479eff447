## src/data/local.mk -- the data layer's files; Makefile.am includes it.
## The data pipeline: JSON, tokenizer, captions, images, augmentation, shards, packers, loader, synthetic world.
## One file per line, sorted; a new .c goes to libvlmae_a_SOURCES, a new .h to noinst_HEADERS.

libvlmae_a_SOURCES += \
	src/data/augment.c \
	src/data/caption.c \
	src/data/datafiles.c \
	src/data/image.c \
	src/data/json.c \
	src/data/loader.c \
	src/data/pack.c \
	src/data/pack_list.c \
	src/data/pack_pretrain.c \
	src/data/pack_tasks.c \
	src/data/shard.c \
	src/data/shard_read.c \
	src/data/shard_write.c \
	src/data/synth.c \
	src/data/synth_text.c \
	src/data/tokenizer.c

noinst_HEADERS += \
	src/data/augment.h \
	src/data/batch.h \
	src/data/caption.h \
	src/data/datafiles.h \
	src/data/image.h \
	src/data/json.h \
	src/data/loader.h \
	src/data/pack.h \
	src/data/pack_internal.h \
	src/data/shard.h \
	src/data/shard_internal.h \
	src/data/synth.h \
	src/data/synth_internal.h \
	src/data/tokenizer.h
