// config_dump.c: the resolved run configuration written back as YAML (config_dump,
// config_to_yaml: every key of the table in config.c, loadable to the same config) and the
// comparison of two configurations (config_diff). See config.h.
#include "train/config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "train/config_internal.h"

// ---------------------------------------------------------------------------------------------
// Dump and diff

static int depth_of(const char *key) {
    int d = 0;
    for (; *key; key++) d += *key == '.';
    return d;
}

// Shortest decimal that reads back as the same float, spelled as a YAML 1.1 float (1.0, 1.0e-06)
// so that other YAML readers see a number too.
static void fmt_float(float v, char *buf, size_t n) {
    char s[48];
    for (int p = 1; p <= 9; p++) {
        snprintf(s, sizeof(s), "%.*g", p, v);
        if (strtof(s, NULL) == v) break;
    }
    if (!strchr(s, '.')) {
        char *e = strchr(s, 'e');
        size_t at = e ? (size_t)(e - s) : strlen(s);
        snprintf(buf, n, "%.*s.0%s", (int)at, s, s + at);
    } else {
        snprintf(buf, n, "%s", s);
    }
}

// A double-quoted YAML string; path strings escape '$' so ${...} is not expanded on reload.
static void fmt_string(const char *s, bool path, char *buf, size_t n) {
    size_t k = 0;
    buf[k++] = '"';
    for (; *s && k + 6 < n; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            buf[k++] = '\\', buf[k++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            k += (size_t)snprintf(buf + k, n - k, "\\x%02x", ch);
        } else if (path && ch == '$' && (s[1] == '{' || s[1] == '$')) {
            buf[k++] = '$', buf[k++] = '$';
        } else {
            buf[k++] = (char)ch;
        }
    }
    buf[k++] = '"';
    buf[k] = 0;
}

static void fmt_value(const RunConfig *c, const Field *f, char *buf, size_t n) {
    const char *p = (const char *)c + f->off;
    switch (f->type) {
    case T_INT: snprintf(buf, n, "%d", *(const int *)p); break;
    case T_I64: snprintf(buf, n, "%lld", (long long)*(const int64_t *)p); break;
    case T_U64: snprintf(buf, n, "%llu", (unsigned long long)*(const uint64_t *)p); break;
    case T_FLOAT: fmt_float(*(const float *)p, buf, n); break;
    case T_BOOL: snprintf(buf, n, "%s", *(const int *)p ? "true" : "false"); break;
    case T_STR:
    case T_PATH: fmt_string(p, f->type == T_PATH, buf, n); break;
    case T_ENUM:
    case T_PRESET: snprintf(buf, n, "%s", config_enum_name(f->enums, *(const int *)p)); break;
    default: buf[0] = 0;
    }
}

int config_dump(const RunConfig *c, FILE *f) {
    char buf[2 * CONFIG_PATH_MAX + 16];
    fprintf(f, "# vlmae run configuration: every key, resolved (defaults, file, --set)\n");
    for (int i = 0; i < config_n_fields; i++) {
        const Field *fd = &config_fields[i];
        int ind = 2 * depth_of(fd->key);
        if (fd->type == T_SECTION) {
            if (!ind && i) fputc('\n', f);
            fprintf(f, "%*s%s:\n", ind, "", config_last_component(fd->key));
        } else if (fd->type == T_PATHLIST) {
            const PathList *l = config_path_list((RunConfig *)c, fd);
            fprintf(f, "%*s%s:%s\n", ind, "", config_last_component(fd->key), l->n ? "" : " []");
            for (int j = 0; j < l->n; j++) {
                fmt_string(l->items[j], true, buf, sizeof(buf));
                fprintf(f, "%*s  - %s\n", ind, "", buf);
            }
        } else if (fd->type == T_DATASETS) {
            const DataConfig *d = &c->data;
            if (!d->n_datasets) {
                fprintf(f, "%*sdatasets: []\n", ind, "");
                continue;
            }
            fprintf(f, "%*sdatasets:\n", ind, "");
            for (int k = 0; k < d->n_datasets; k++) {
                const DatasetConfig *s = &d->datasets[k];
                fmt_string(s->name, false, buf, sizeof(buf));
                fprintf(f, "%*s  - name: %s\n", ind, "", buf);
                if (!s->n_shards) {
                    fprintf(f, "%*s    shards: []\n", ind, "");
                    continue;
                }
                fprintf(f, "%*s    shards:\n", ind, "");
                for (int j = 0; j < s->n_shards; j++) {
                    fmt_string(s->shards[j], true, buf, sizeof(buf));
                    fprintf(f, "%*s      - %s\n", ind, "", buf);
                }
            }
        } else {
            fmt_value(c, fd, buf, sizeof(buf));
            fprintf(f, "%*s%s: %s\n", ind, "", config_last_component(fd->key), buf);
        }
    }
    return ferror(f) ? -1 : 0;
}

static void diff_note(int *count, char *buf, size_t buflen, const char *key, const char *a, const char *b) {
    if (buf && buflen && *count < 4) {
        size_t k = strlen(buf);
        snprintf(buf + k, buflen - k, "%s%s: %.100s -> %.100s", k ? "; " : "", key, a, b);
    } else if (buf && buflen && *count == 4) {
        size_t k = strlen(buf);
        snprintf(buf + k, buflen - k, "; ...");
    }
    (*count)++;
}

int config_diff(const RunConfig *a, const RunConfig *b, char *buf, size_t buflen) {
    if (buf && buflen) buf[0] = 0;
    int count = 0;
    char va[2 * CONFIG_PATH_MAX + 16], vb[2 * CONFIG_PATH_MAX + 16];
    for (int i = 0; i < config_n_fields; i++) {
        const Field *f = &config_fields[i];
        if (f->type == T_SECTION) continue;
        if (f->type == T_PATHLIST) {
            const PathList *la = config_path_list((RunConfig *)a, f), *lb = config_path_list((RunConfig *)b, f);
            bool same = la->n == lb->n;
            for (int j = 0; same && j < la->n; j++) same = !strcmp(la->items[j], lb->items[j]);
            if (!same) {
                snprintf(va, sizeof(va), "%d paths%s%.200s", la->n, la->n ? ": " : "", la->n ? la->items[0] : "");
                snprintf(vb, sizeof(vb), "%d paths%s%.200s", lb->n, lb->n ? ": " : "", lb->n ? lb->items[0] : "");
                diff_note(&count, buf, buflen, f->key, va, vb);
            }
            continue;
        }
        if (f->type == T_DATASETS) {
            const DataConfig *da = &a->data, *db = &b->data;
            if (da->n_datasets != db->n_datasets) {
                snprintf(va, sizeof(va), "%d datasets", da->n_datasets);
                snprintf(vb, sizeof(vb), "%d datasets", db->n_datasets);
                diff_note(&count, buf, buflen, f->key, va, vb);
                continue;
            }
            for (int k = 0; k < da->n_datasets; k++) {
                const DatasetConfig *sa = &da->datasets[k], *sb = &db->datasets[k];
                char key[64];
                snprintf(key, sizeof(key), "data.datasets[%d]", k);
                bool same = !strcmp(sa->name, sb->name) && sa->n_shards == sb->n_shards;
                for (int j = 0; same && j < sa->n_shards; j++) same = !strcmp(sa->shards[j], sb->shards[j]);
                if (!same) {
                    snprintf(va, sizeof(va), "%s (%d shards)", sa->name, sa->n_shards);
                    snprintf(vb, sizeof(vb), "%s (%d shards)", sb->name, sb->n_shards);
                    diff_note(&count, buf, buflen, key, va, vb);
                }
            }
            continue;
        }
        fmt_value(a, f, va, sizeof(va));
        fmt_value(b, f, vb, sizeof(vb));
        if (strcmp(va, vb)) diff_note(&count, buf, buflen, f->key, va, vb);
    }
    return count;
}

char *config_to_yaml(const RunConfig *c) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f || config_dump(c, f) != 0) die("cannot render the config as YAML");
    fclose(f);
    return buf;
}
