// registry.c: the table of downstream tasks (task.h). To add a task, define
// `const Task task_NAME = {...};` in src/tasks/NAME.c and add one line TASK(NAME) below.
#include <string.h>

#include "tasks/task.h"

#define TASK_LIST(TASK) \
    TASK(retrieval)     \
    TASK(grounding)     \
    TASK(vqa)           \
    TASK(ve)            \
    TASK(nlvr2)         \
    TASK(nlvr2_ta)

#define TASK_DECLARE(n) extern const Task task_##n;
TASK_LIST(TASK_DECLARE)
#define TASK_ENTRY(n) &task_##n,
static const Task *const tasks[] = {TASK_LIST(TASK_ENTRY) NULL};

const Task *task_find(const char *name) {
    for (int i = 0; tasks[i]; i++)
        if (!strcmp(tasks[i]->name, name)) return tasks[i];
    return NULL;
}

void task_list(FILE *f) {
    for (int i = 0; tasks[i]; i++) fprintf(f, "  %-10s %s\n", tasks[i]->name, tasks[i]->help);
}
