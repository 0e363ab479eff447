// config_parse.c: the run configuration from YAML (libyaml's document API) and from --set
// overrides: scalars parsed and range-checked key by key against the key table (config.c), errors
// naming the file, line and key with a did-you-mean suggestion (see config.h).
#include "train/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "engine/common.h"
#include "train/config_internal.h"

// ---------------------------------------------------------------------------------------------
// Keys and did-you-mean

static const Field *find_field(const char *key) {
    for (int i = 0; i < config_n_fields; i++)
        if (!strcmp(config_fields[i].key, key)) return &config_fields[i];
    return NULL;
}

// Whether key's parent path is parent ("" = top level).
static bool has_parent(const char *key, const char *parent) {
    size_t n = strlen(parent);
    if (!n) return !strchr(key, '.');
    return !strncmp(key, parent, n) && key[n] == '.' && !strchr(key + n + 1, '.');
}

// "a | b | c"
static void enum_list(const EnumName *e, char *buf, size_t n) {
    buf[0] = 0;
    for (const EnumName *p = e; p->name; p++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", p == e ? "" : " | ", p->name);
}

// Optimal string alignment distance (edits, adjacent swaps), for did-you-mean.
static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            int v = MIN(d[i - 1][j] + 1, d[i][j - 1] + 1);
            v = MIN(v, d[i - 1][j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) v = MIN(v, d[i - 2][j - 2] + 1);
            d[i][j] = v;
        }
    return d[la][lb];
}

static int close_enough(const char *typo, int dist) {
    int n = (int)strlen(typo);
    return dist <= (n <= 4 ? 1 : n <= 8 ? 2 : 3);
}

// Suggestion for an unknown full key path: the closest key under the same parent, else a key of
// the same name in another section, else the closest full path. Returns NULL when nothing fits.
static const char *suggest_key(const char *key) {
    char parent[256];
    const char *name = config_last_component(key);
    size_t pl = (size_t)(name - key);
    pl = pl ? pl - 1 : 0;
    if (pl >= sizeof(parent)) pl = sizeof(parent) - 1;
    memcpy(parent, key, pl);
    parent[pl] = 0;
    const char *best = NULL;
    int bd = 1 << 20;
    for (int i = 0; i < config_n_fields; i++) {
        if (!has_parent(config_fields[i].key, parent)) continue;
        int d = edit_distance(name, config_last_component(config_fields[i].key));
        if (d < bd) bd = d, best = config_fields[i].key;
    }
    if (best && close_enough(name, bd)) return best;
    for (int i = 0; i < config_n_fields; i++)
        if (!strcmp(config_last_component(config_fields[i].key), name)) return config_fields[i].key;
    best = NULL, bd = 1 << 20;
    for (int i = 0; i < config_n_fields; i++) {
        int d = edit_distance(key, config_fields[i].key);
        if (d < bd) bd = d, best = config_fields[i].key;
    }
    return best && close_enough(key, bd) ? best : NULL;
}

static const char *suggest_among(const char *word, const char *const *cands, int n) {
    const char *best = NULL;
    int bd = 1 << 20;
    for (int i = 0; i < n; i++) {
        int d = edit_distance(word, cands[i]);
        if (d < bd) bd = d, best = cands[i];
    }
    return best && close_enough(word, bd) ? best : NULL;
}

// ---------------------------------------------------------------------------------------------
// Presets

static void apply_preset(RunConfig *c, ModelPreset p) {
    ModelConfig keep = c->model;
    if (p == PRESET_TINY)
        model_config_tiny(&c->model);
    else
        model_config_base(&c->model);
    // The objective and the loss weights are their own keys: a preset leaves them alone.
    c->model.objective = keep.objective;
    c->model.w_itc = keep.w_itc, c->model.w_itm = keep.w_itm, c->model.w_mlm = keep.w_mlm;
    c->model.w_rmim = keep.w_rmim, c->model.w_ifr = keep.w_ifr;
    c->preset = p;
}

// ---------------------------------------------------------------------------------------------
// Scalar parsing (messages are the part after the "FILE:LINE: " prefix)

static const char *type_desc(const Field *f, char *buf, size_t n) {
    switch (f->type) {
    case T_INT:
    case T_I64:
    case T_U64: return "an integer";
    case T_FLOAT: return "a number";
    case T_BOOL: return "a boolean (true or false)";
    case T_STR:
    case T_PATH: return "a string";
    case T_ENUM:
    case T_PRESET: {
        char list[128];
        enum_list(f->enums, list, sizeof(list));
        snprintf(buf, n, "one of %s", list);
        return buf;
    }
    case T_DATASETS: return "a list of {name, shards} mappings";
    case T_PATHLIST: return "a list of file paths or glob patterns";
    case T_SECTION: return "a mapping";
    }
    return "a value";
}

// 'text' for a message: one line (control characters escaped), at most about 120 bytes.
static void quote_text(const char *text, char *buf, size_t n) {
    size_t k = 0;
    buf[k++] = '\'';
    for (const unsigned char *p = (const unsigned char *)text; *p && k + 8 < n; p++) {
        if (k > 120) {
            k += (size_t)snprintf(buf + k, n - k, "...");
            break;
        }
        if (*p < 0x20 || *p == 0x7f)
            k += (size_t)snprintf(buf + k, n - k, "\\x%02x", *p);
        else
            buf[k++] = (char)*p;
    }
    buf[k++] = '\'';
    buf[k] = 0;
}

static void got_text(const char *text, bool is_null, char *buf, size_t n) {
    if (is_null || !*text)
        snprintf(buf, n, "an empty value");
    else
        quote_text(text, buf, n);
}

// Copy text without surrounding whitespace and YAML 1.1 digit separators ('_').
static bool clean_number(const char *text, char *out, size_t n) {
    while (isspace((unsigned char)*text)) text++;
    size_t k = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '_') continue;
        if (k + 1 >= n) return false;
        out[k++] = *p;
    }
    while (k && isspace((unsigned char)out[k - 1])) k--;
    out[k] = 0;
    return k > 0;
}

// Integers: decimal, 0x hex, or a real number with an exact integer value (1e3). *neg: sign.
static bool parse_integer(const char *text, bool *neg, uint64_t *mag) {
    char s[128];
    if (!clean_number(text, s, sizeof(s))) return false;
    const char *p = s;
    *neg = false;
    if (*p == '+' || *p == '-') *neg = *p++ == '-';
    if (isdigit((unsigned char)*p)) {
        int base = 10;
        if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) base = 16;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, base);
        if (*end == 0 && end != p && errno == 0 && (base == 10 || isxdigit((unsigned char)p[2]))) {
            *mag = v;
            return true;
        }
        if (errno == ERANGE) return false;
    }
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (*end || !isfinite(d) || d != floor(d) || fabs(d) >= 18446744073709551616.0) return false;
    if (!isdigit((unsigned char)s[s[0] == '+' || s[0] == '-'])) return false;  // no "inf", ".5"
    *neg = d < 0;
    *mag = (uint64_t)fabs(d);
    return true;
}

static bool parse_real(const char *text, double *out) {
    char s[128];
    if (!clean_number(text, s, sizeof(s))) return false;
    for (const char *p = s; *p; p++)  // no inf/nan/hex floats: plain decimal numbers only
        if (!strchr("0123456789+-.eE", *p)) return false;
    char *end;
    double d = strtod(s, &end);
    if (*end || end == s) return false;
    *out = d;
    return true;
}

static bool parse_bool(const char *text, int *out) {
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    char s[16];
    size_t k = 0;
    while (isspace((unsigned char)*text)) text++;
    for (; *text && k + 1 < sizeof(s); text++) s[k++] = (char)tolower((unsigned char)*text);
    while (k && isspace((unsigned char)s[k - 1])) k--;
    s[k] = 0;
    if (*text) return false;
    for (int i = 0; i < 4; i++) {
        if (!strcmp(s, yes[i])) return *out = 1, true;
        if (!strcmp(s, no[i])) return *out = 0, true;
    }
    return false;
}

// ${VAR} and ${VAR:-default} from the environment; $$ is a literal $.
static int expand_env(const char *key, const char *in, char *out, size_t n, char *msg, size_t mn) {
    size_t k = 0;
    for (const char *p = in; *p;) {
        char buf[CONFIG_PATH_MAX];
        const char *piece;
        size_t plen;
        if (p[0] == '$' && p[1] == '$') {
            piece = "$", plen = 1, p += 2;
        } else if (p[0] == '$' && p[1] == '{') {
            const char *close = strchr(p, '}');
            if (!close) {
                char q[160];
                quote_text(in, q, sizeof(q));
                snprintf(msg, mn, "%s: unterminated '${' in %s", key, q);
                return -1;
            }
            const char *name = p + 2, *e = name;
            while (isalnum((unsigned char)*e) || *e == '_') e++;
            if (e == name || isdigit((unsigned char)*name) || (e != close && strncmp(e, ":-", 2))) {
                char q[160];
                quote_text(in, q, sizeof(q));
                snprintf(msg, mn, "%s: bad variable reference in %s (write ${NAME} or ${NAME:-default})", key, q);
                return -1;
            }
            char var[128];
            snprintf(var, sizeof(var), "%.*s", (int)(e - name), name);
            const char *v = getenv(var);
            if (e != close && (!v || !*v)) {
                snprintf(buf, sizeof(buf), "%.*s", (int)(close - e - 2), e + 2);
                v = buf;
            } else if (!v) {
                char q[160];
                quote_text(in, q, sizeof(q));
                snprintf(msg, mn, "%s: environment variable %s is not set (in %s; write ${%s:-default} for a fallback)",
                         key, var, q, var);
                return -1;
            }
            piece = v, plen = strlen(v), p = close + 1;
        } else {
            piece = p, plen = 1, p++;
        }
        if (k + plen >= n) {
            snprintf(msg, mn, "%s is too long (at most %zu bytes)", key, n - 1);
            return -1;
        }
        memcpy(out + k, piece, plen);
        k += plen;
    }
    out[k] = 0;
    return 0;
}

// Parse text for field f and store it in c. Returns 0, or -1 with msg.
static int set_scalar(RunConfig *c, const Field *f, const char *text, bool is_null, char *msg, size_t n) {
    char *p = (char *)c + f->off;
    char desc[160], got[256];
    got_text(text, is_null, got, sizeof(got));
    switch (f->type) {
    case T_INT:
    case T_I64:
    case T_U64: {
        bool neg;
        uint64_t mag;
        if (is_null || !parse_integer(text, &neg, &mag)) {
            snprintf(msg, n, "expected an integer for %s, got %s", f->key, got);
            return -1;
        }
        if (f->type == T_U64) {
            if (neg && mag) {
                snprintf(msg, n, "%s must be >= 0, got %s", f->key, got);
                return -1;
            }
            *(uint64_t *)p = mag;
            return 0;
        }
        uint64_t lim = f->type == T_INT ? (uint64_t)INT_MAX : (uint64_t)INT64_MAX;
        if (mag > lim + (neg ? 1 : 0)) {
            snprintf(msg, n, "%s is out of range, got %s", f->key, got);
            return -1;
        }
        int64_t v = neg ? (int64_t)(0 - mag) : (int64_t)mag;
        if (config_check_range(f, (double)v, msg, n)) return -1;
        if (f->type == T_INT)
            *(int *)p = (int)v;
        else
            *(int64_t *)p = v;
        return 0;
    }
    case T_FLOAT: {
        double d;
        if (is_null || !parse_real(text, &d)) {
            snprintf(msg, n, "expected a number for %s, got %s", f->key, got);
            return -1;
        }
        float v = (float)d;
        if (!isfinite(v)) {
            snprintf(msg, n, "%s must be a finite number, got %s", f->key, got);
            return -1;
        }
        if (config_check_range(f, v, msg, n)) return -1;
        *(float *)p = v;
        return 0;
    }
    case T_BOOL: {
        int b;
        if (is_null || !parse_bool(text, &b)) {
            snprintf(msg, n, "expected a boolean (true or false) for %s, got %s", f->key, got);
            return -1;
        }
        *(int *)p = b;
        return 0;
    }
    case T_STR:
    case T_PATH: {
        char buf[CONFIG_PATH_MAX];
        const char *s = is_null ? "" : text;
        if (f->type == T_PATH) {
            if (expand_env(f->key, s, buf, sizeof(buf), msg, n)) return -1;
            s = buf;
        }
        if (strlen(s) >= f->size) {
            snprintf(msg, n, "%s is too long (at most %zu bytes)", f->key, f->size - 1);
            return -1;
        }
        memcpy(p, s, strlen(s) + 1);
        return 0;
    }
    case T_ENUM:
    case T_PRESET: {
        char s[64];
        size_t k = 0;
        const char *q = is_null ? "" : text;
        while (isspace((unsigned char)*q)) q++;
        for (; *q && k + 1 < sizeof(s); q++) s[k++] = *q;
        while (k && isspace((unsigned char)s[k - 1])) k--;
        s[k] = 0;
        for (const EnumName *e = f->enums; e->name; e++)
            if (!strcmp(s, e->name)) {
                if (f->type == T_PRESET)
                    apply_preset(c, (ModelPreset)e->value);
                else
                    *(int *)p = e->value;
                return 0;
            }
        const char *cands[8];
        int nc = 0;
        for (const EnumName *e = f->enums; e->name && nc < 8; e++) cands[nc++] = e->name;
        const char *sug = s[0] ? suggest_among(s, cands, nc) : NULL;
        char hint[96] = "";
        if (sug) snprintf(hint, sizeof(hint), " (did you mean '%s'?)", sug);
        snprintf(msg, n, "expected %s for %s, got %s%s", type_desc(f, desc, sizeof(desc)), f->key, got, hint);
        return -1;
    }
    case T_SECTION:
    case T_DATASETS:
    case T_PATHLIST: break;
    }
    snprintf(msg, n, "%s is not a scalar key", f->key);
    return -1;
}

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
            quote_text(scalar_text(node), q, sizeof(q));
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
    const char *sug = suggest_key(key);
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
            const Field *f = find_field(key);
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
        return fail(x, node, "expected %s for %s, got %s", type_desc(f, desc, sizeof(desc)), f->key, kind_name(node));
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
                const char *sug = suggest_among(scalar_text(k), keys, 2);
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
            } else if (expand_env(key, scalar_text(s), buf, sizeof(buf), msg, sizeof(msg))) {
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
        else if (expand_env(key, scalar_text(s), buf, sizeof(buf), msg, sizeof(msg)))
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
        return fail(x, node, "expected %s for %s, got %s", type_desc(f, desc, sizeof(desc)), f->key, kind_name(node));
    }
    char msg[512];
    if (set_scalar(x->c, f, scalar_text(node), is_null_node(node), msg, sizeof(msg))) return fail(x, node, "%s", msg);
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
    const Field *fp = find_field("model.preset");
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
    const Field *f = find_field(key);
    if (!f) {
        const char *sug = suggest_key(key);
        if (sug) return fail(&x, NULL, "unknown key '%s' (did you mean '%s'?)", key, sug);
        return fail(&x, NULL, "unknown key '%s'", key);
    }
    if (f->type != T_SECTION && f->type != T_DATASETS && f->type != T_PATHLIST) {
        char msg[512];
        if (set_scalar(c, f, value, false, msg, sizeof(msg))) return fail(&x, NULL, "%s", msg);
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
