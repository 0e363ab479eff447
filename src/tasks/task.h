// task.h: the registry of downstream tasks of `vlmae finetune` and `vlmae eval` (finetune.h).
//
// A task is one file in src/tasks/ that defines one `const Task task_NAME = {...};` and one line
// TASK(NAME) in the list of src/tasks/registry.c; task.name in a config selects it.
//
//   finetune: the whole `vlmae finetune` run. Most tasks fill an FtHooks (their step, planning,
//             extra state) and return ft_train(cx, &hooks), which does the rest (model from
//             --init, loader, optimizer, logs, checkpoints, resume, signals, evaluation).
//   eval:     evaluate model m on one split: "val" or "test" (the task.val / task.test lists).
//             Fill *out with named metrics (ft_metric) — one FtMetrics per evaluation set of the
//             split (a split with several sets, e.g. grounding's testA / testB, names each by a
//             first metric "set:NAME" whose value is ignored); return the number of sets written
//             (at most max_out), or -1 on error. Called by
//             `vlmae eval` (m built from --ckpt) and by ft_train at epoch ends; every rank calls it.
//   load:     optional: `vlmae eval` calls it after building m from the checkpoint, for state the
//             Model does not hold (a task head saved by the task's FtHooks.save_extra in
//             CKPT.extra); NULL when the Model is all there is.
#ifndef VLMAE_TASKS_TASK_H
#define VLMAE_TASKS_TASK_H

#include <stdio.h>

#include "tasks/finetune.h"

typedef struct Task {
    const char *name;  // task.name
    const char *help;  // one line for --help
    int (*finetune)(FtContext *cx);
    int (*eval)(FtContext *cx, Model *m, const char *split, int64_t step, FtMetrics *out, int max_out);
    int (*load)(FtContext *cx, Model *m, const char *ckpt, char *err, size_t errlen);
} Task;

// The task named name, or NULL.
const Task *task_find(const char *name);
// "  name  help" lines of every registered task.
void task_list(FILE *f);

#endif
