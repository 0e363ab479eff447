// config_value.c: one config value from its text, key by key against the key table (config.c):
// integers, numbers, booleans, strings, ${VAR} expansion in paths, enums and model.preset, each
// parsed strictly and range-checked, with messages that quote what was given (see config.h).
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "train/config_internal.h"

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

// "a | b | c"
static void enum_list(const EnumName *e, char *buf, size_t n) {
    buf[0] = 0;
    for (const EnumName *p = e; p->name; p++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", p == e ? "" : " | ", p->name);
}

const char *config_type_desc(const Field *f, char *buf, size_t n) {
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
void config_quote_text(const char *text, char *buf, size_t n) {
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
        config_quote_text(text, buf, n);
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
int config_expand_env(const char *key, const char *in, char *out, size_t n, char *msg, size_t mn) {
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
                config_quote_text(in, q, sizeof(q));
                snprintf(msg, mn, "%s: unterminated '${' in %s", key, q);
                return -1;
            }
            const char *name = p + 2, *e = name;
            while (isalnum((unsigned char)*e) || *e == '_') e++;
            if (e == name || isdigit((unsigned char)*name) || (e != close && strncmp(e, ":-", 2))) {
                char q[160];
                config_quote_text(in, q, sizeof(q));
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
                config_quote_text(in, q, sizeof(q));
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
int config_set_scalar(RunConfig *c, const Field *f, const char *text, bool is_null, char *msg, size_t n) {
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
            if (config_expand_env(f->key, s, buf, sizeof(buf), msg, n)) return -1;
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
        const char *sug = s[0] ? config_suggest_among(s, cands, nc) : NULL;
        char hint[96] = "";
        if (sug) snprintf(hint, sizeof(hint), " (did you mean '%s'?)", sug);
        snprintf(msg, n, "expected %s for %s, got %s%s", config_type_desc(f, desc, sizeof(desc)), f->key, got, hint);
        return -1;
    }
    case T_SECTION:
    case T_DATASETS:
    case T_PATHLIST: break;
    }
    snprintf(msg, n, "%s is not a scalar key", f->key);
    return -1;
}
