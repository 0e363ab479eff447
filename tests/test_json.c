// test_json.c: the strict JSON parser: valid documents, error positions, nesting limit, escapes,
// UTF-8 validation, and a cheap mutation fuzz (no crash, no leak of failures into successes).
#include "data/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static JsonDoc *parse(const char *s, char *err, size_t errlen) {
    return json_parse(s, strlen(s), 0, err, errlen);
}

// Expect a parse error whose message starts with "line L, column C:" and contains `what`.
static void expect_error(const char *doc, int line, int col, const char *what) {
    char err[256];
    JsonDoc *d = parse(doc, err, sizeof err);
    if (d) {
        fprintf(stderr, "expected an error for: %s\n", doc);
        failures++;
        json_free(d);
        return;
    }
    char want[64];
    snprintf(want, sizeof want, "line %d, column %d: ", line, col);
    if (strncmp(err, want, strlen(want)) != 0 || (what && !strstr(err, what))) {
        fprintf(stderr, "for %s\n  got  '%s'\n  want '%s...%s'\n", doc, err, want, what ? what : "");
        failures++;
    }
}

static void test_valid(void) {
    char err[256];
    const char *doc =
        "\xEF\xBB\xBF"  // BOM is skipped
        "{\n"
        "  \"images\": [ {\"id\": 391895, \"file_name\": \"a/b.jpg\", \"w\": 640.5e0},\n"
        "              {\"id\": -0, \"file_name\": \"\"} ],\n"
        "  \"flag\": true, \"off\": false, \"none\": null,\n"
        "  \"num\": [0, -1, 1.5, 2e3, 2E-3, 12345678901234567890, 1e308, -1.25e-2],\n"
        "  \"empty_o\": {}, \"empty_a\": [],\n"
        "  \"dup\": 1, \"dup\": 2\n"
        "}\n";
    JsonDoc *d = parse(doc, err, sizeof err);
    CHECK(d != NULL);
    if (!d) {
        fprintf(stderr, "  error: %s\n", err);
        return;
    }
    const JsonValue *r = json_root(d);
    CHECK(r->type == JSON_OBJECT && r->n == 9);
    const JsonValue *imgs = json_get(r, "images");
    CHECK(imgs && imgs->type == JSON_ARRAY && imgs->n == 2);
    int64_t id = 0;
    CHECK(json_int64(json_get(json_at(imgs, 0), "id"), &id) && id == 391895);
    CHECK(strcmp(json_string(json_get(json_at(imgs, 0), "file_name")), "a/b.jpg") == 0);
    double w = 0;
    CHECK(json_number(json_get(json_at(imgs, 0), "w"), &w) && w == 640.5);
    CHECK(json_string(json_get(json_at(imgs, 1), "file_name"))[0] == '\0');
    CHECK(json_get(json_at(imgs, 1), "missing") == NULL);
    CHECK(json_at(imgs, 2) == NULL);
    CHECK(json_get(r, "flag")->type == JSON_TRUE);
    CHECK(json_get(r, "off")->type == JSON_FALSE);
    CHECK(json_get(r, "none")->type == JSON_NULL);
    const JsonValue *num = json_get(r, "num");
    CHECK(num->n == 8);
    double v;
    CHECK(json_number(json_at(num, 2), &v) && v == 1.5);
    CHECK(json_number(json_at(num, 3), &v) && v == 2000.0);
    CHECK(json_number(json_at(num, 4), &v) && fabs(v - 0.002) < 1e-15);
    CHECK(json_number(json_at(num, 5), &v) && v == 12345678901234567890.0);
    CHECK(json_number(json_at(num, 6), &v) && v == 1e308);
    CHECK(json_number(json_at(num, 7), &v) && v == -0.0125);
    CHECK(!json_int64(json_at(num, 2), &id));
    CHECK(!json_int64(json_at(num, 5), &id));  // beyond int64
    CHECK(json_get(r, "empty_o")->n == 0 && json_get(r, "empty_a")->n == 0);
    int64_t dup = 0;
    CHECK(json_int64(json_get(r, "dup"), &dup) && dup == 1);  // first wins
    CHECK(json_string(json_get(r, "flag")) == NULL);          // wrong type -> NULL
    json_free(d);

    // scalars at top level
    d = parse(" 42 ", err, sizeof err);
    CHECK(d && json_root(d)->type == JSON_NUMBER && json_root(d)->u.num == 42);
    json_free(d);
    d = parse("\"x\"", err, sizeof err);
    CHECK(d && json_root(d)->type == JSON_STRING && json_root(d)->n == 1);
    json_free(d);
    // non-NUL-terminated input: parse a prefix of a longer buffer
    d = json_parse("[1,2]garbage", 5, 0, err, sizeof err);
    CHECK(d && json_root(d)->n == 2);
    json_free(d);
}

static void test_strings(void) {
    char err[256];
    JsonDoc *d = parse("[\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\", \"\\u00e9\\u4e2d\", \"\\ud83d\\ude00\","
                       " \"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\", \"nul\\u0000x\"]",
                       err, sizeof err);
    CHECK(d != NULL);
    if (!d) {
        fprintf(stderr, "  error: %s\n", err);
        return;
    }
    const JsonValue *r = json_root(d);
    CHECK(strcmp(json_string(json_at(r, 0)), "a\"b\\c/d\b\f\n\r\t") == 0);
    CHECK(strcmp(json_string(json_at(r, 1)), "\xC3\xA9\xE4\xB8\xAD") == 0);   // é 中
    CHECK(strcmp(json_string(json_at(r, 2)), "\xF0\x9F\x98\x80") == 0);       // U+1F600 via pair
    CHECK(strcmp(json_string(json_at(r, 3)), "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80") == 0);
    CHECK(json_at(r, 4)->n == 5 && memcmp(json_string(json_at(r, 4)), "nul\0x", 5) == 0);
    json_free(d);
}

static void test_errors(void) {
    expect_error("", 1, 1, "unexpected end of input");
    expect_error("   \n  ", 2, 3, "unexpected end of input");
    expect_error("[1,2,]", 1, 6, "expected a value");
    expect_error("{\"a\":1,}", 1, 8, "expected a string key");
    expect_error("{\"a\" 1}", 1, 6, "expected ':'");
    expect_error("[1 2]", 1, 4, "expected ',' or ']'");
    expect_error("{\"a\":1 \"b\":2}", 1, 8, "expected ',' or '}'");
    expect_error("[1,\n 2,\n 03]", 3, 2, "leading zero");
    expect_error("[1.]", 1, 4, "digit after '.'");
    expect_error("[1e+]", 1, 5, "exponent");
    expect_error("[-]", 1, 3, "digit");
    expect_error("[+1]", 1, 2, "unexpected '+'");
    expect_error("[1e400]", 1, 2, "out of range");
    expect_error("[NaN]", 1, 2, "unexpected 'N'");
    expect_error("[tru]", 1, 2, "invalid literal");
    expect_error("[nulll]", 1, 6, "expected ',' or ']'");
    expect_error("{\"a\":1}}", 1, 8, "after the document");
    expect_error("// c\n[]", 1, 1, "unexpected '/'");
    expect_error("['a']", 1, 2, "unexpected '''");
    expect_error("[\"abc", 1, 2, "unterminated string");
    expect_error("[\"a\tb\"]", 1, 4, "control character");
    expect_error("[\"a\nb\"]", 1, 4, "control character");
    expect_error("[\"\\x\"]", 1, 3, "invalid escape");
    expect_error("[\"\\u12G4\"]", 1, 7, "hex digit");
    expect_error("[\"\\u12\"]", 1, 7, "hex digit");
    expect_error("[\"\\ud83d\"]", 1, 3, "not followed by a low surrogate");
    expect_error("[\"\\ud83dx\"]", 1, 3, "not followed by a low surrogate");
    expect_error("[\"\\ud83d\\u0041\"]", 1, 9, "not a low surrogate");
    expect_error("[\"\\ude00\"]", 1, 3, "lone low surrogate");
    expect_error("[\"\xC3\"]", 1, 3, "invalid UTF-8");            // truncated sequence
    expect_error("[\"\xC0\xAF\"]", 1, 3, "invalid UTF-8");        // overlong
    expect_error("[\"\xED\xA0\x80\"]", 1, 3, "invalid UTF-8");    // encoded surrogate
    expect_error("[\"\xF4\x90\x80\x80\"]", 1, 3, "invalid UTF-8");// > U+10FFFF
    expect_error("[\"ab\xFF\"]", 1, 5, "invalid UTF-8");
    expect_error("{\"a\":[1,{\"b\":\n\n   x}]}", 3, 4, "unexpected 'x'");
    expect_error("\x01", 1, 1, "byte 0x01");
}

static void test_depth(void) {
    char err[256];
    // 512 levels is fine by default, 513 is not.
    int n = 600;
    char *s = malloc((size_t)2 * n + 1);
    for (int i = 0; i < n; i++) s[i] = '[';
    for (int i = 0; i < n; i++) s[n + i] = ']';
    JsonDoc *d = json_parse(s, (size_t)2 * n, 0, err, sizeof err);
    CHECK(d == NULL && strstr(err, "nesting deeper than 512") && strstr(err, "column 513"));
    d = json_parse(s + (n - 512), 2 * 512, 0, err, sizeof err);
    CHECK(d != NULL);
    json_free(d);
    d = json_parse(s + (n - 10), 2 * 10, 5, err, sizeof err);
    CHECK(d == NULL && strstr(err, "nesting deeper than 5"));
    free(s);
    // a very deep document with a custom large limit must not recurse on the C stack
    n = 200000;
    s = malloc((size_t)2 * n);
    for (int i = 0; i < n; i++) s[i] = '[';
    for (int i = 0; i < n; i++) s[n + i] = ']';
    d = json_parse(s, (size_t)2 * n, n, err, sizeof err);
    CHECK(d != NULL);
    const JsonValue *v = json_root(d);
    int depth = 0;
    while (v && v->type == JSON_ARRAY && v->n == 1) {
        v = json_at(v, 0);
        depth++;
    }
    CHECK(depth == n - 1);
    json_free(d);
    free(s);
}

static void test_large(void) {
    // many values: exercises arena block growth and the child stack
    size_t cap = 32u << 20, n = 0;
    char *s = malloc(cap);
    n += (size_t)sprintf(s + n, "[");
    int count = 200000;
    for (int i = 0; i < count; i++)
        n += (size_t)sprintf(s + n, "%s{\"image_id\":%d,\"caption\":\"a caption number %d\"}",
                             i ? "," : "", i, i);
    n += (size_t)sprintf(s + n, "]");
    char err[256];
    JsonDoc *d = json_parse(s, n, 0, err, sizeof err);
    CHECK(d && json_root(d)->n == (size_t)count);
    int64_t id;
    CHECK(d && json_int64(json_get(json_at(json_root(d), 123456), "image_id"), &id) && id == 123456);
    CHECK(d && strcmp(json_string(json_get(json_at(json_root(d), 7), "caption")),
                      "a caption number 7") == 0);
    json_free(d);
    free(s);
}

// Mutation fuzz: random byte edits of valid documents; the parser must never crash, and every
// error message must carry a position.
static uint64_t xs = 88172645463325252ull;
static uint64_t rnd(void) {
    xs ^= xs << 13;
    xs ^= xs >> 7;
    xs ^= xs << 17;
    return xs;
}

static void test_fuzz(void) {
    const char *seeds[] = {
        "{\"a\":[1,2.5e-3,{\"b\":\"\\u00e9\\ud83d\\ude00\"}],\"c\":null,\"d\":true}",
        "[{\"image\":\"x/y.jpg\",\"caption\":[\"one\",\"two\"],\"box\":[1,2,3,4]}]",
        "[[[[[[[[[]]]]]]]]]",
        "\"caf\xC3\xA9\"",
    };
    const char alphabet[] = "{}[]\":,\\u0123456789abcdefnrtluse.-+E \n\t\x80\xC3\xED\xF0\xFF";
    char buf[256], err[256];
    int ok = 0, bad = 0;
    for (int it = 0; it < 200000; it++) {
        const char *seed = seeds[rnd() % 4];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        int edits = 1 + (int)(rnd() % 4);
        for (int e = 0; e < edits; e++) {
            size_t pos = n ? rnd() % n : 0;
            int op = (int)(rnd() % 3);
            char c = alphabet[rnd() % (sizeof alphabet - 1)];
            if (op == 0 && n) {
                buf[pos] = c;
            } else if (op == 1 && n + 1 < sizeof buf) {
                memmove(buf + pos + 1, buf + pos, n - pos);
                buf[pos] = c;
                n++;
            } else if (n) {
                memmove(buf + pos, buf + pos + 1, n - pos - 1);
                n--;
            }
        }
        err[0] = '\0';
        JsonDoc *d = json_parse(buf, n, 16, err, sizeof err);
        if (d) {
            ok++;
            json_free(d);
        } else {
            bad++;
            if (strncmp(err, "line ", 5) != 0) {
                fprintf(stderr, "error without position: %s\n", err);
                failures++;
                break;
            }
        }
    }
    CHECK(ok > 0 && bad > 0);
}

int main(void) {
    test_valid();
    test_strings();
    test_errors();
    test_depth();
    test_large();
    test_fuzz();
    // parse_file: missing file names the path
    char err[256];
    CHECK(json_parse_file("/nonexistent/x.json", 0, err, sizeof err) == NULL &&
          strstr(err, "/nonexistent/x.json"));
    if (failures) {
        fprintf(stderr, "test_json: %d failures\n", failures);
        return 1;
    }
    printf("test_json: ok\n");
    return 0;
}
