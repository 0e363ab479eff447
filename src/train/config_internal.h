// config_internal.h: private to the config module (config.c, config_parse.c, config_keys.c,
// config_value.c, config_dump.c), not part of its interface (config.h): the key table and the
// helpers its files share.
//
// The key table (config_fields, defined in config.c) has one row per key, in dump order: a
// section row (a mapping) is followed by its keys; each scalar row gives its type, its offset
// and size in RunConfig, and its single-field range.
#ifndef VLMAE_CONFIG_INTERNAL_H
#define VLMAE_CONFIG_INTERNAL_H

#include <stdbool.h>
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

// config_keys.c: the row of a full key ("train.lr"), NULL when there is none; the key to suggest
// for an unknown one (same section first, then the same name elsewhere, then the closest path)
// and the closest of n candidates to word; NULL when nothing is close enough.
const Field *config_find_field(const char *key);
const char *config_suggest_key(const char *key);
const char *config_suggest_among(const char *word, const char *const *cands, int n);

// config_value.c (messages are the part after the "FILE:LINE: " prefix):
// "an integer", "one of a | b", ... for messages (buf: room for an enum's list).
const char *config_type_desc(const Field *f, char *buf, size_t n);
// 'text' for a message: one line (control characters escaped), at most about 120 bytes.
void config_quote_text(const char *text, char *buf, size_t n);
// ${VAR} and ${VAR:-default} of in expanded into out (n bytes); $$ is a literal $. 0, or -1 with
// msg naming key.
int config_expand_env(const char *key, const char *in, char *out, size_t n, char *msg, size_t mn);
// Parses text (is_null: YAML null) for scalar field f and stores it in c. 0, or -1 with msg.
int config_set_scalar(RunConfig *c, const Field *f, const char *text, bool is_null, char *msg, size_t n);

#endif
