// fuzz_json.c: libFuzzer harness for the JSON parser (src/data/json.c). Built and run by `make fuzz`
// (tests/fuzz/README.md). Checks beyond "no crash": an error always carries a position; a parsed
// tree is well formed (string lengths match, every node typed, every member findable by key).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/json.h"

static void walk(const JsonValue *v, int depth) {
    if (depth > 64) abort();  // deeper than the max_depth given to json_parse
    switch (v->type) {
    case JSON_STRING:
        if (v->u.str[v->n] != '\0') abort();
        break;
    case JSON_ARRAY:
        for (size_t i = 0; i < v->n; i++) walk(json_at(v, i), depth + 1);
        break;
    case JSON_OBJECT:
        for (size_t i = 0; i < v->n; i++) {
            const JsonMember *m = &v->u.members[i];
            if (m->key[m->keylen] != '\0') abort();
            if (strlen(m->key) == m->keylen && json_get(v, m->key) == NULL) abort();
            walk(&m->value, depth + 1);
        }
        break;
    case JSON_NUMBER: {
        double x;
        int64_t k;
        json_number(v, &x);
        json_int64(v, &k);
        break;
    }
    case JSON_NULL: case JSON_FALSE: case JSON_TRUE:
        break;
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    // parse from a private copy so reads past `size` are caught by ASan
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    JsonDoc *d = json_parse(buf, size, 32, err, sizeof err);
    if (d) {
        walk(json_root(d), 0);
        json_free(d);
    } else if (strncmp(err, "line ", 5) != 0) {
        abort();
    }
    free(buf);
    return 0;
}
