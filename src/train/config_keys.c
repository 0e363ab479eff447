// config_keys.c: config keys by name in the key table (config.c) and the did-you-mean suggestion
// for an unknown key or enum value (close enough: at most 1 edit in a name of up to 4 bytes, 2 in
// one of up to 8, else 3).
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "engine/common.h"
#include "train/config_internal.h"

// ---------------------------------------------------------------------------------------------
// Keys and did-you-mean

const Field *config_find_field(const char *key) {
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
const char *config_suggest_key(const char *key) {
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

const char *config_suggest_among(const char *word, const char *const *cands, int n) {
    const char *best = NULL;
    int bd = 1 << 20;
    for (int i = 0; i < n; i++) {
        int d = edit_distance(word, cands[i]);
        if (d < bd) bd = d, best = cands[i];
    }
    return best && close_enough(word, bd) ? best : NULL;
}
