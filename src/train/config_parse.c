// config_parse.c: the run configuration from YAML (libyaml's document API) and from --set
// overrides: the document walked key by key against the key table (config.c), each scalar set by
// config_value.c, errors naming the file, line and key with a did-you-mean suggestion
// (config_keys.c; see config.h).
#include "train/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "engine/common.h"
#include "train/config_internal.h"

// ---------------------------------------------------------------------------------------------
// YAML walking

typedef struct {
    const char *file;    // file mode: messages "FILE:LINE: ..."
    const char *setarg;  // --set mode: messages "--set KEY=VALUE: ..."
    char *err;
    size_t errlen;
    yaml_document_t *doc;
    RunConfig *c;
    bool presets_applied;  // the file's model.preset was applied before everything else
} Ctx;

static int fail(Ctx *x, const yaml_node_t *node, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(Ctx *x, const yaml_node_t *node, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!x->err || !x->errlen) return -1;
    char full[1024];
    if (x->setarg)
        snprintf(full, sizeof(full), "--set %.200s: %s", x->setarg, msg);
    else if (node)
        snprintf(full, sizeof(full), "%s:%lu: %s", x->file, (unsigned long)node->start_mark.line + 1, msg);
    else
        snprintf(full, sizeof(full), "%s: %s", x->file, msg);
    // One line, whatever the input: control characters (a key or value quoted from the file may
    // hold a newline, e.g. a multi-line plain scalar) are written as \n, \t, \xHH.
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)full; *p && o + 5 <= x->errlen; p++) {
        if (*p >= 0x20 && *p != 0x7f) x->err[o++] = (char)*p;
        else if (*p == '\n') x->err[o++] = '\\', x->err[o++] = 'n';
        else if (*p == '\t') x->err[o++] = '\\', x->err[o++] = 't';
        else o += (size_t)snprintf(x->err + o, 5, "\\x%02x", *p);
    }
    x->err[o] = 0;  // (o < errlen: the loop stops with room for 4 bytes and the NUL)
    return -1;
}

static const char *kind_name(const yaml_node_t *n) {
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_SEQUENCE_NODE: return "a sequence";
    default: return "a scalar";
    }
}

static const char *scalar_text(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

static bool is_null_node(const yaml_node_t *n) {
    if (!n) return true;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
    const char *s = scalar_text(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static yaml_node_t *node_at(Ctx *x, int id) { return yaml_document_get_node(x->doc, id); }

// Checks that node is a mapping with plain scalar keys and no duplicates. what: "'train'".
static int check_mapping(Ctx *x, const yaml_node_t *node, const char *what, const char *prefix) {
    if (node->type != YAML_MAPPING_NODE) {
        if (node->type == YAML_SCALAR_NODE && !is_null_node(node)) {
            char q[160];
            config_quote_text(scalar_text(node), q, sizeof(q));
            return fail(x, node, "expected a mapping for %s, got a scalar %s", what, q);
        }
        return fail(x, node, "expected a mapping for %s, got %s", what, kind_name(node));
    }
    for (yaml_node_pair_t *a = node->data.mapping.pairs.start; a < node->data.mapping.pairs.top; a++) {
        yaml_node_t *ka = node_at(x, a->key);
        if (!ka || ka->type != YAML_SCALAR_NODE)
            return fail(x, ka, "a key of %s is %s; keys must be plain names", what, ka ? kind_name(ka) : "empty");
        for (yaml_node_pair_t *b = node->data.mapping.pairs.start; b < a; b++) {
            yaml_node_t *kb = node_at(x, b->key);
            if (!strcmp(scalar_text(ka), scalar_text(kb)))
                return fail(x, ka, "duplicate key '%s%s%s' (first given on line %lu)", prefix, *prefix ? "." : "",
                            scalar_text(ka), (unsigned long)kb->start_mark.line + 1);
        }
    }
    return 0;
}

static int apply_node(Ctx *x, const Field *f, yaml_node_t *node);

static int unknown_key(Ctx *x, const yaml_node_t *node, const char *key) {
    const char *sug = config_suggest_key(key);
    if (sug) return fail(x, node, "unknown key '%s' (did you mean '%s'?)", key, sug);
    return fail(x, node, "unknown key '%s'", key);
}

// A mapping of keys under prefix ("" = the top level); model.preset first (unless the file's
// presets were applied up front).
static int apply_mapping(Ctx *x, const char *prefix, yaml_node_t *node) {
    if (!node || is_null_node(node)) return 0;
    char what[300];
    if (*prefix)
        snprintf(what, sizeof(what), "'%s'", prefix);
    else
        snprintf(what, sizeof(what), "the top level");
    if (check_mapping(x, node, what, prefix)) return -1;
    for (int pass = 0; pass < 2; pass++)
        for (yaml_node_pair_t *pr = node->data.mapping.pairs.start; pr < node->data.mapping.pairs.top; pr++) {
            yaml_node_t *k = node_at(x, pr->key), *v = node_at(x, pr->value);
            char key[300];
            snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "", scalar_text(k));
            const Field *f = config_find_field(key);
            bool is_preset = f && f->type == T_PRESET;
            if (pass == 0 && (!is_preset || x->presets_applied)) continue;
            if (pass == 1 && is_preset) continue;
            if (!f) return unknown_key(x, k, key);
            if (apply_node(x, f, v)) return -1;
        }
    return 0;
}

static int apply_datasets(Ctx *x, const Field *f, yaml_node_t *node) {
    if (is_null_node(node)) {
        config_free_datasets(x->c->data.datasets, x->c->data.n_datasets);
        x->c->data.datasets = NULL, x->c->data.n_datasets = 0;
        return 0;
    }
    if (node->type != YAML_SEQUENCE_NODE) {
        char desc[64];
        return fail(x, node, "expected %s for %s, got %s", config_type_desc(f, desc, sizeof(desc)), f->key, kind_name(node));
    }
    int n = (int)(node->data.sequence.items.top - node->data.sequence.items.start);
    DatasetConfig *ds = n ? callocCheck((size_t)n, sizeof(DatasetConfig)) : NULL;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        yaml_node_t *item = node_at(x, node->data.sequence.items.start[i]);
        DatasetConfig *d = &ds[i];
        char path[64], what[80];
        snprintf(path, sizeof(path), "data.datasets[%d]", i);
        snprintf(what, sizeof(what), "'%s'", path);
        if ((rc = check_mapping(x, item, what, path))) break;
        yaml_node_t *name = NULL, *shards = NULL;
        int shards_id = 0;
        for (yaml_node_pair_t *pr = item->data.mapping.pairs.start; pr < item->data.mapping.pairs.top; pr++) {
            yaml_node_t *k = node_at(x, pr->key), *v = node_at(x, pr->value);
            if (!strcmp(scalar_text(k), "name")) {
                name = v;
            } else if (!strcmp(scalar_text(k), "shards")) {
                shards = v, shards_id = pr->value;
            } else {
                static const char *const keys[] = {"name", "shards"};
                const char *sug = config_suggest_among(scalar_text(k), keys, 2);
                if (sug)
                    rc = fail(x, k, "unknown key '%s.%s' (did you mean '%s.%s'?)", path, scalar_text(k), path, sug);
                else
                    rc = fail(x, k, "unknown key '%s.%s' (a dataset has a name and shards)", path, scalar_text(k));
                break;
            }
        }
        if (rc) break;
        if (!name || is_null_node(name)) {
            rc = fail(x, name ? name : item, "%s has no name (each dataset needs name: and shards:)", path);
            break;
        }
        if (name->type != YAML_SCALAR_NODE) {
            rc = fail(x, name, "expected a string for %s.name, got %s", path, kind_name(name));
            break;
        }
        if (strlen(scalar_text(name)) >= sizeof(d->name)) {
            rc = fail(x, name, "%s.name is too long (at most %zu bytes)", path, sizeof(d->name) - 1);
            break;
        }
        snprintf(d->name, sizeof(d->name), "%s", scalar_text(name));
        for (int j = 0; j < i; j++)
            if (!strcmp(ds[j].name, d->name)) {
                rc = fail(x, name, "%s.name '%s' is already used by data.datasets[%d]", path, d->name, j);
                break;
            }
        if (rc) break;
        // shards: a sequence of strings, or one string
        yaml_node_item_t one = 0, *items = NULL;
        int ns = 0;
        if (shards && shards->type == YAML_SEQUENCE_NODE) {
            items = shards->data.sequence.items.start;
            ns = (int)(shards->data.sequence.items.top - items);
        } else if (shards && shards->type == YAML_SCALAR_NODE && !is_null_node(shards)) {
            one = shards_id;
            items = &one, ns = 1;
        } else if (shards && shards->type == YAML_MAPPING_NODE) {
            rc = fail(x, shards, "expected a list of file paths or glob patterns for %s.shards, got a mapping", path);
            break;
        }
        if (ns == 0) {
            rc = fail(x, shards ? shards : item, "%s (%s) lists no shards (shards: [\"path/%s-*.h5\", ...])", path,
                      d->name, d->name);
            break;
        }
        d->shards = callocCheck((size_t)ns, sizeof(char *));
        for (int j = 0; j < ns && !rc; j++) {
            yaml_node_t *s = node_at(x, items[j]);
            char key[96], buf[CONFIG_PATH_MAX], msg[512];
            snprintf(key, sizeof(key), "%s.shards[%d]", path, j);
            if (s->type != YAML_SCALAR_NODE) {
                rc = fail(x, s, "expected a string (a file path or glob pattern) for %s, got %s", key, kind_name(s));
            } else if (is_null_node(s) || !*scalar_text(s)) {
                rc = fail(x, s, "%s is empty", key);
            } else if (config_expand_env(key, scalar_text(s), buf, sizeof(buf), msg, sizeof(msg))) {
                rc = fail(x, s, "%s", msg);
            } else {
                d->shards[j] = config_dup_str(buf);
                d->n_shards = j + 1;
            }
        }
    }
    if (rc) {
        config_free_datasets(ds, n);
        return -1;
    }
    config_free_datasets(x->c->data.datasets, x->c->data.n_datasets);
    x->c->data.datasets = ds, x->c->data.n_datasets = n;
    return 0;
}

// A list of paths: a sequence of strings, one string, or null / [] (empty).
static int apply_path_list(Ctx *x, const Field *f, yaml_node_t *node) {
    yaml_node_item_t *items = NULL;
    int n = 0;
    if (node->type == YAML_SEQUENCE_NODE) {
        items = node->data.sequence.items.start;
        n = (int)(node->data.sequence.items.top - items);
    } else if (node->type == YAML_MAPPING_NODE) {
        return fail(x, node, "expected a list of file paths or glob patterns for %s, got a mapping", f->key);
    } else if (!is_null_node(node)) {
        n = 1;
    }
    PathList l = {n ? callocCheck((size_t)n, sizeof(char *)) : NULL, 0};
    for (int j = 0; j < n; j++) {
        yaml_node_t *s = items ? node_at(x, items[j]) : node;
        char key[96], buf[CONFIG_PATH_MAX], msg[512];
        snprintf(key, sizeof(key), "%s[%d]", f->key, j);
        int rc = 0;
        if (s->type != YAML_SCALAR_NODE)
            rc = fail(x, s, "expected a string (a file path or glob pattern) for %s, got %s", key, kind_name(s));
        else if (is_null_node(s) || !*scalar_text(s))
            rc = fail(x, s, "%s is empty", key);
        else if (config_expand_env(key, scalar_text(s), buf, sizeof(buf), msg, sizeof(msg)))
            rc = fail(x, s, "%s", msg);
        if (rc) {
            config_free_path_list(&l);
            return -1;
        }
        l.items[l.n++] = config_dup_str(buf);
    }
    config_free_path_list(config_path_list(x->c, f));
    *config_path_list(x->c, f) = l;
    return 0;
}

static int apply_node(Ctx *x, const Field *f, yaml_node_t *node) {
    if (f->type == T_SECTION) return apply_mapping(x, f->key, node);
    if (f->type == T_DATASETS) return apply_datasets(x, f, node);
    if (f->type == T_PATHLIST) return apply_path_list(x, f, node);
    if (node->type != YAML_SCALAR_NODE) {
        char desc[160];
        return fail(x, node, "expected %s for %s, got %s", config_type_desc(f, desc, sizeof(desc)), f->key, kind_name(node));
    }
    char msg[512];
    if (config_set_scalar(x->c, f, scalar_text(node), is_null_node(node), msg, sizeof(msg))) return fail(x, node, "%s", msg);
    return 0;
}

// A libyaml parser error: "FILE:LINE:COLUMN: YAML syntax error: ..." (or "--set ...: ...").
static int syntax_error(Ctx *x, const yaml_parser_t *parser) {
    char where[64] = "", ctx[200] = "";
    if (x->setarg && parser->problem_mark.line == 0)  // (line 2 means: at the end of the value)
        snprintf(where, sizeof(where), " (at column %lu of the value)", (unsigned long)parser->problem_mark.column + 1);
    if (parser->context && x->setarg)
        snprintf(ctx, sizeof(ctx), " %s", parser->context);
    else if (parser->context)
        snprintf(ctx, sizeof(ctx), " %s (line %lu)", parser->context, (unsigned long)parser->context_mark.line + 1);
    char msg[512];
    snprintf(msg, sizeof(msg), "YAML syntax error: %s%s%s", parser->problem ? parser->problem : "unknown problem",
             ctx, where);
    if (x->setarg) return fail(x, NULL, "%s", msg);
    if (x->err && x->errlen)
        snprintf(x->err, x->errlen, "%s:%lu:%lu: %s", x->file, (unsigned long)parser->problem_mark.line + 1,
                 (unsigned long)parser->problem_mark.column + 1, msg);
    return -1;
}

// Load the one YAML document of text. Returns 0 with *root (NULL for an empty document: then doc
// needs no yaml_document_delete), or -1.
static int parse_yaml(Ctx *x, const char *text, size_t len, yaml_document_t *doc, yaml_node_t **root) {
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return fail(x, NULL, "out of memory (libyaml)");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, doc)) {
        int rc = syntax_error(x, &parser);
        yaml_parser_delete(&parser);
        return rc;
    }
    int rc = 0;
    x->doc = doc;
    *root = yaml_document_get_root_node(doc);
    if (*root) {  // a second document is an error (and so is a syntax error after the first)
        yaml_document_t next;
        if (!yaml_parser_load(&parser, &next)) {
            rc = syntax_error(x, &parser);
        } else {
            yaml_node_t *r2 = yaml_document_get_root_node(&next);
            if (r2) rc = fail(x, r2, "a second YAML document ('---'): a config is one document");
            yaml_document_delete(&next);
        }
    }
    if (rc || !*root) {
        yaml_document_delete(doc);
        x->doc = NULL;
        *root = NULL;
    }
    yaml_parser_delete(&parser);
    return rc;
}

// model.preset wherever it appears in the file (model: {preset: ...} or a top-level
// model.preset: ...) is applied before every other key.
static int apply_presets_first(Ctx *x, yaml_node_t *root) {
    if (root->type != YAML_MAPPING_NODE) return 0;  // apply_mapping reports it
    const Field *fp = config_find_field("model.preset");
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = node_at(x, pr->key), *v = node_at(x, pr->value);
        if (!k || k->type != YAML_SCALAR_NODE || !v) continue;
        if (!strcmp(scalar_text(k), "model.preset") && apply_node(x, fp, v)) return -1;
        if (strcmp(scalar_text(k), "model") || v->type != YAML_MAPPING_NODE) continue;
        for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top; q++) {
            yaml_node_t *mk = node_at(x, q->key);
            if (mk && mk->type == YAML_SCALAR_NODE && !strcmp(scalar_text(mk), "preset") &&
                apply_node(x, fp, node_at(x, q->value)))
                return -1;
        }
    }
    x->presets_applied = true;
    return 0;
}

int config_load_string(RunConfig *c, const char *yaml, size_t len, const char *name, char *err, size_t errlen) {
    config_defaults(c);  // c need not be initialised (datasets it held are not freed: config_free)
    Ctx x = {.file = name ? name : "<string>", .err = err, .errlen = errlen, .c = c};
    yaml_document_t doc;
    yaml_node_t *root = NULL;
    if (parse_yaml(&x, yaml, len, &doc, &root)) return -1;
    if (!root) return 0;  // empty file: the defaults
    int rc = apply_presets_first(&x, root);
    if (!rc) rc = apply_mapping(&x, "", root);
    yaml_document_delete(&doc);
    return rc;
}

int config_load(RunConfig *c, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        config_defaults(c);
        if (err && errlen) snprintf(err, errlen, "%s: cannot open config: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = mallocCheck(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) die("out of memory reading %s", path);
            buf = nb;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        config_defaults(c);
        if (err && errlen) snprintf(err, errlen, "%s: cannot read config: %s", path, strerror(errno));
        return -1;
    }
    int rc = config_load_string(c, buf, n, path, err, errlen);
    free(buf);
    return rc;
}

int config_set(RunConfig *c, const char *assignment, char *err, size_t errlen) {
    Ctx x = {.setarg = assignment, .err = err, .errlen = errlen, .c = c};
    const char *eq = strchr(assignment, '=');
    if (!eq) return fail(&x, NULL, "expected KEY=VALUE, e.g. --set train.batch_size=48");
    char key[256];
    const char *k0 = assignment, *k1 = eq;
    while (k0 < k1 && isspace((unsigned char)*k0)) k0++;
    while (k1 > k0 && isspace((unsigned char)k1[-1])) k1--;
    if (k1 == k0) return fail(&x, NULL, "empty key (expected KEY=VALUE, e.g. --set train.batch_size=48)");
    if ((size_t)(k1 - k0) >= sizeof(key)) return fail(&x, NULL, "key too long");
    memcpy(key, k0, (size_t)(k1 - k0));
    key[k1 - k0] = 0;
    const char *value = eq + 1;
    const Field *f = config_find_field(key);
    if (!f) {
        const char *sug = config_suggest_key(key);
        if (sug) return fail(&x, NULL, "unknown key '%s' (did you mean '%s'?)", key, sug);
        return fail(&x, NULL, "unknown key '%s'", key);
    }
    if (f->type != T_SECTION && f->type != T_DATASETS && f->type != T_PATHLIST) {
        char msg[512];
        if (config_set_scalar(c, f, value, false, msg, sizeof(msg))) return fail(&x, NULL, "%s", msg);
        return 0;
    }
    // A section or the dataset list: the value is YAML (flow style).
    yaml_document_t doc;
    yaml_node_t *root = NULL;
    if (parse_yaml(&x, value, strlen(value), &doc, &root)) return -1;
    if (!root) {
        if (f->type == T_DATASETS) {
            config_free_datasets(c->data.datasets, c->data.n_datasets);
            c->data.datasets = NULL, c->data.n_datasets = 0;
        }
        if (f->type == T_PATHLIST) config_free_path_list(config_path_list(c, f));
        return 0;
    }
    int rc = apply_node(&x, f, root);
    yaml_document_delete(&doc);
    return rc;
}
