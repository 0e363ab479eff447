## src/tasks/local.mk -- the tasks layer's files; Makefile.am includes it.
## Downstream tasks: fine-tuning driver, retrieval metrics, one file per task.
## One file per line, sorted; a new .c goes to libvlmae_a_SOURCES, a new .h to noinst_HEADERS.

libvlmae_a_SOURCES += \
	src/tasks/attnmap.c \
	src/tasks/finetune.c \
	src/tasks/finetune_blobs.c \
	src/tasks/finetune_model.c \
	src/tasks/grounding.c \
	src/tasks/nlvr2.c \
	src/tasks/registry.c \
	src/tasks/retrieval.c \
	src/tasks/retrieval_ft.c \
	src/tasks/tasklib.c \
	src/tasks/ve.c \
	src/tasks/vqa.c \
	src/tasks/vqa_answers.c

noinst_HEADERS += \
	src/tasks/attnmap.h \
	src/tasks/finetune.h \
	src/tasks/finetune_internal.h \
	src/tasks/grounding.h \
	src/tasks/retrieval.h \
	src/tasks/retrieval_ft.h \
	src/tasks/task.h \
	src/tasks/tasklib.h \
	src/tasks/vqa.h
