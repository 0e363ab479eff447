// json.h: a small, strict JSON (RFC 8259) parser for annotation files.
//
// The whole document is parsed into a tree whose nodes and strings live in one arena owned by the
// JsonDoc (a few large allocations, not one per value), so a 700 MB Visual Genome file parses
// without millions of mallocs. The parser is iterative (no recursion), so nesting depth is bounded
// only by max_depth, never by the C stack. Errors say "line L, column C: what" (1-based; the column
// counts bytes), which is what a user needs to find a broken line in a hand-edited annotation file.
//
// Strictness: no comments, no trailing commas, no single quotes, no leading zeros, no NaN/Infinity,
// no unescaped control characters in strings, strings must be valid UTF-8 and \u escapes must form
// valid code points (surrogate pairs combined, lone surrogates rejected); numbers that overflow a
// double are rejected. Accepted leniencies: a leading UTF-8 byte-order mark is skipped; duplicate
// object keys are kept (json_get returns the first).
#ifndef VLMAE_JSON_H
#define VLMAE_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    JSON_NULL = 0,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT
} JsonType;

typedef struct JsonValue JsonValue;
typedef struct JsonMember JsonMember;

struct JsonValue {
    JsonType type;
    size_t n;          // string: length in bytes (may contain NUL); array/object: element count
    union {
        double num;    // JSON_NUMBER
        const char *str;       // JSON_STRING: NUL-terminated UTF-8 (n bytes before the NUL)
        JsonValue *items;      // JSON_ARRAY: n values
        JsonMember *members;   // JSON_OBJECT: n members in document order
    } u;
};

struct JsonMember {
    const char *key;   // NUL-terminated UTF-8
    size_t keylen;
    JsonValue value;
};

typedef struct JsonDoc JsonDoc;

#define JSON_DEFAULT_MAX_DEPTH 512

// Parse len bytes of text (need not be NUL-terminated). max_depth <= 0 means
// JSON_DEFAULT_MAX_DEPTH. On error returns NULL and writes "line L, column C: message" to err.
JsonDoc *json_parse(const char *text, size_t len, int max_depth, char *err, size_t errlen);
// Read and parse a whole file; errors are prefixed with the path ("PATH: line L, column C: ...").
JsonDoc *json_parse_file(const char *path, int max_depth, char *err, size_t errlen);
void json_free(JsonDoc *doc);
const JsonValue *json_root(const JsonDoc *doc);

// Lookups (NULL-safe: a NULL or wrong-typed argument gives NULL / the fallback).
const JsonValue *json_get(const JsonValue *obj, const char *key);   // first member named key
const JsonValue *json_at(const JsonValue *arr, size_t i);
const char *json_string(const JsonValue *v);                        // NULL unless a string
// 1 and *out set when v is a number with an exactly representable integral value in int64 range.
int json_int64(const JsonValue *v, int64_t *out);
int json_number(const JsonValue *v, double *out);
const char *json_type_name(JsonType t);

#endif
