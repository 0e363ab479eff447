// fuzz_json.c: libFuzzer harness for the JSON parser (not built by make). Run:
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc tests/fuzz_json.c src/json.c -lm \
//       -o fuzz_json && ./fuzz_json -max_total_time=300
// Checks beyond "no crash": an error always carries a position; a parsed tree is well formed
// (string lengths match, every node typed).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static void walk(const JsonValue *v, int depth) {
    if (depth > 64) return;
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
            if (json_get(v, m->key) == NULL) abort();
            walk(&m->value, depth + 1);
        }
        break;
    case JSON_NULL: case JSON_FALSE: case JSON_TRUE: case JSON_NUMBER:
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
