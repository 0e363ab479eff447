// config_internal.h: private to the config module (config.c, config_parse.c, config_dump.c),
// not part of its interface (config.h): the key table and the helpers the three files share.
//
// The key table (config_fields, defined in config.c) has one row per key, in dump order: a
// section row (a mapping) is followed by its keys; each scalar row gives its type, its offset
// and size in RunConfig, and its single-field range.
#ifndef VLMAE_CONFIG_INTERNAL_H
#define VLMAE_CONFIG_INTERNAL_H

#include <stddef.h>

#include "train/config.h"

typedef enum {
    T_SECTION,   // a mapping of further keys
    T_INT,       // int
    T_I64,       // int64_t
    T_U64,       // uint64_t
    T_FLOAT,     // float
    T_BOOL,      // int 0/1
    T_STR,       // char[size], taken verbatim
    T_PATH,      // char[size], ${VAR} expanded
    T_ENUM,      // an enum stored as int (names in enums)
    T_PRESET,    // model.preset: resets the architecture fields
    T_DATASETS,  // data.datasets
    T_PATHLIST,  // a list of paths / glob patterns (PathList; ${VAR} expanded)
} Type;

enum { R_MIN = 1, R_MIN_EXCL = 2, R_MAX = 4, R_MAX_EXCL = 8 };

typedef struct {
    const char *name;
    int value;
} EnumName;

typedef struct {
    const char *key;
    Type type;
    size_t off, size;
    int range;
    double lo, hi;
    const EnumName *enums;
} Field;

extern const Field config_fields[];
extern const int config_n_fields;

// "lr" for "train.lr".
const char *config_last_component(const char *key);
// The name of value v in e, "?" when none.
const char *config_enum_name(const EnumName *e, int v);
// The PathList a T_PATHLIST field f names in c.
PathList *config_path_list(RunConfig *c, const Field *f);
void config_free_path_list(PathList *l);
void config_free_datasets(DatasetConfig *ds, int n);
// malloc'ed copy of s (dies when out of memory).
char *config_dup_str(const char *s);
// The single-field range rule of f for value v: 0, or -1 with msg "KEY must be ..., got V".
int config_check_range(const Field *f, double v, char *msg, size_t n);

#endif
