// json.c: strict iterative JSON parser into an arena-backed tree (see json.h).
#include "data/json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// Arena: a list of blocks; values and strings are bump-allocated and freed all at once.

typedef struct ArenaBlock {
    struct ArenaBlock *next;
    size_t cap, used;
    unsigned char data[];
} ArenaBlock;

struct JsonDoc {
    ArenaBlock *blocks;   // newest first
    size_t next_block;    // size of the next block (doubles up to ARENA_MAX_BLOCK)
    JsonValue root;
};

#define ARENA_MAX_BLOCK ((size_t)64 << 20)

static void *arena_alloc(JsonDoc *d, size_t size) {
    size = (size + 7) & ~(size_t)7;
    ArenaBlock *b = d->blocks;
    if (!b || b->cap - b->used < size) {
        size_t cap = size > d->next_block ? size : d->next_block;
        if (d->next_block < ARENA_MAX_BLOCK) d->next_block *= 2;
        if (cap > SIZE_MAX - sizeof(ArenaBlock)) return NULL;
        b = malloc(sizeof(ArenaBlock) + cap);
        if (!b) return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = d->blocks;
        d->blocks = b;
    }
    void *p = b->data + b->used;
    b->used += size;
    return p;
}

// Give back the tail of the most recent allocation p (old size -> new size).
static void arena_shrink_last(JsonDoc *d, void *p, size_t oldsize, size_t newsize) {
    ArenaBlock *b = d->blocks;
    oldsize = (oldsize + 7) & ~(size_t)7;
    newsize = (newsize + 7) & ~(size_t)7;
    if (b && (unsigned char *)p + oldsize == b->data + b->used) b->used -= oldsize - newsize;
}

void json_free(JsonDoc *doc) {
    if (!doc) return;
    ArenaBlock *b = doc->blocks;
    while (b) {
        ArenaBlock *n = b->next;
        free(b);
        b = n;
    }
    free(doc);
}

const JsonValue *json_root(const JsonDoc *doc) { return doc ? &doc->root : NULL; }

// ---------------------------------------------------------------------------------------------
// Parser state

typedef struct {
    JsonType type;      // JSON_ARRAY or JSON_OBJECT
    size_t first;       // index of the first child on the member stack
    const char *key;    // pending key (objects)
    size_t keylen;
} Frame;

typedef struct {
    const char *s;
    size_t len, pos;
    JsonDoc *doc;
    Frame *frames;
    int depth, max_depth, capframes;
    JsonMember *stack;  // children of all open containers
    size_t nstack, capstack;
    char *err;
    size_t errlen;
    int failed;
} Parser;

static int fail_at(Parser *p, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail_at(Parser *p, size_t pos, const char *fmt, ...) {
    if (p->failed) return 0;
    p->failed = 1;
    if (!p->err || p->errlen == 0) return 0;
    if (pos > p->len) pos = p->len;
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos; i++) {
        if (p->s[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    int k = snprintf(p->err, p->errlen, "line %zu, column %zu: ", line, col);
    if (k < 0) k = 0;
    if ((size_t)k < p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + k, p->errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return 0;
}

static void describe_char(const Parser *p, size_t pos, char *buf, size_t n) {
    if (pos >= p->len) {
        snprintf(buf, n, "end of input");
        return;
    }
    unsigned char c = (unsigned char)p->s[pos];
    if (c >= 0x20 && c < 0x7f) snprintf(buf, n, "'%c'", c);
    else snprintf(buf, n, "byte 0x%02x", c);
}

static void skip_ws(Parser *p) {
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') p->pos++;
        else break;
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(Parser *p, size_t at, unsigned *out) {
    if (at + 4 > p->len) return fail_at(p, at, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p->s[at + i]);
        if (h < 0) return fail_at(p, at + i, "invalid hex digit in \\u escape");
        v = v * 16 + (unsigned)h;
    }
    *out = v;
    return 1;
}

// Length of a valid UTF-8 sequence starting at i, or 0 if invalid (RFC 3629 table).
static size_t utf8_seq(const unsigned char *s, size_t i, size_t len) {
    unsigned c = s[i];
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c == 0xE0) { n = 3; lo = 0xA0; }
    else if (c >= 0xE1 && c <= 0xEC) n = 3;
    else if (c == 0xED) { n = 3; hi = 0x9F; }
    else if (c >= 0xEE && c <= 0xEF) n = 3;
    else if (c == 0xF0) { n = 4; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) n = 4;
    else if (c == 0xF4) { n = 4; hi = 0x8F; }
    else return 0;
    if (i + n > len) return 0;
    if (s[i + 1] < lo || s[i + 1] > hi) return 0;
    for (size_t k = 2; k < n; k++)
        if (s[i + k] < 0x80 || s[i + k] > 0xBF) return 0;
    return n;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    } else if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    } else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// p->pos is at the opening quote. On success sets *out/*outlen and moves past the closing quote.
static int parse_string(Parser *p, const char **out, size_t *outlen) {
    size_t start = p->pos + 1;
    // Pass 1: find the closing quote (so we know how much to reserve).
    size_t i = start;
    while (i < p->len && p->s[i] != '"') {
        if (p->s[i] == '\\') i++;
        i++;
    }
    if (i >= p->len) return fail_at(p, p->pos, "unterminated string");
    size_t end = i;  // closing quote
    size_t raw = end - start;
    char *buf = arena_alloc(p->doc, raw + 1);
    if (!buf) return fail_at(p, p->pos, "out of memory");
    // Pass 2: decode and validate. Decoded length never exceeds the raw length.
    const unsigned char *s = (const unsigned char *)p->s;
    size_t o = 0;
    i = start;
    while (i < end) {
        unsigned c = s[i];
        if (c < 0x20) return fail_at(p, i, "unescaped control character 0x%02x in string", c);
        if (c == '\\') {
            char e = p->s[i + 1];
            switch (e) {
            case '"': buf[o++] = '"'; i += 2; break;
            case '\\': buf[o++] = '\\'; i += 2; break;
            case '/': buf[o++] = '/'; i += 2; break;
            case 'b': buf[o++] = '\b'; i += 2; break;
            case 'f': buf[o++] = '\f'; i += 2; break;
            case 'n': buf[o++] = '\n'; i += 2; break;
            case 'r': buf[o++] = '\r'; i += 2; break;
            case 't': buf[o++] = '\t'; i += 2; break;
            case 'u': {
                unsigned cp;
                if (!read_hex4(p, i + 2, &cp)) return 0;
                if (i + 6 > end) return fail_at(p, i, "truncated \\u escape");
                size_t at = i;
                i += 6;
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return fail_at(p, at, "lone low surrogate \\u%04X in string", cp);
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    unsigned lo;
                    if (i + 6 > end || p->s[i] != '\\' || p->s[i + 1] != 'u')
                        return fail_at(p, at, "high surrogate \\u%04X not followed by a low surrogate",
                                       cp);
                    if (!read_hex4(p, i + 2, &lo)) return 0;
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return fail_at(p, i, "high surrogate \\u%04X followed by \\u%04X, not a low "
                                       "surrogate", cp, lo);
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                }
                o += put_utf8(buf + o, cp);  // <= 4 bytes written for >= 6 (or 12) raw bytes
                break;
            }
            default: {
                char d[32];
                describe_char(p, i + 1, d, sizeof d);
                return fail_at(p, i, "invalid escape \\%s in string", d);
            }
            }
        } else if (c < 0x80) {
            buf[o++] = (char)c;
            i++;
        } else {
            size_t n = utf8_seq(s, i, end);
            if (!n) return fail_at(p, i, "invalid UTF-8 byte 0x%02x in string", c);
            memcpy(buf + o, s + i, n);
            o += n;
            i += n;
        }
    }
    buf[o] = '\0';
    arena_shrink_last(p->doc, buf, raw + 1, o + 1);
    *out = buf;
    *outlen = o;
    p->pos = end + 1;
    return 1;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int parse_number(Parser *p, double *out) {
    size_t start = p->pos, i = p->pos;
    const char *s = p->s;
    int integral = 1;
    if (i < p->len && s[i] == '-') i++;
    if (i >= p->len || !is_digit(s[i])) return fail_at(p, i, "expected a digit in number");
    if (s[i] == '0') {
        i++;
        if (i < p->len && is_digit(s[i])) return fail_at(p, start, "leading zero in number");
    } else {
        while (i < p->len && is_digit(s[i])) i++;
    }
    if (i < p->len && s[i] == '.') {
        integral = 0;
        i++;
        if (i >= p->len || !is_digit(s[i])) return fail_at(p, i, "expected a digit after '.' in number");
        while (i < p->len && is_digit(s[i])) i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        integral = 0;
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->len || !is_digit(s[i])) return fail_at(p, i, "expected a digit in exponent");
        while (i < p->len && is_digit(s[i])) i++;
    }
    size_t n = i - start;
    size_t ndig = n - (s[start] == '-');
    if (integral && ndig <= 15) {
        // Exact, locale-independent fast path (ids, sizes, pixel coordinates).
        int64_t v = 0;
        for (size_t k = start + (s[start] == '-'); k < i; k++) v = v * 10 + (s[k] - '0');
        *out = s[start] == '-' ? -(double)v : (double)v;
        if (v == 0 && s[start] == '-') *out = -0.0;
    } else {
        // strtod needs a NUL-terminated copy. (It follows LC_NUMERIC; vlmae never calls setlocale.)
        char small[64];
        char *tmp = n < sizeof small ? small : malloc(n + 1);
        if (!tmp) return fail_at(p, start, "out of memory");
        memcpy(tmp, s + start, n);
        tmp[n] = '\0';
        errno = 0;
        double v = strtod(tmp, NULL);
        if (tmp != small) free(tmp);
        if (isinf(v)) return fail_at(p, start, "number out of range");
        *out = v;
    }
    p->pos = i;
    return 1;
}

static int push_child(Parser *p, const char *key, size_t keylen, const JsonValue *v) {
    if (p->nstack == p->capstack) {
        size_t nc = p->capstack ? p->capstack * 2 : 256;
        if (nc > SIZE_MAX / sizeof(JsonMember)) return fail_at(p, p->pos, "out of memory");
        JsonMember *ns = realloc(p->stack, nc * sizeof(JsonMember));
        if (!ns) return fail_at(p, p->pos, "out of memory");
        p->stack = ns;
        p->capstack = nc;
    }
    JsonMember *m = &p->stack[p->nstack++];
    m->key = key;
    m->keylen = keylen;
    m->value = *v;
    return 1;
}

// Pop the top frame into *v (copying its children into the arena).
static int close_frame(Parser *p, JsonValue *v) {
    Frame *f = &p->frames[p->depth - 1];
    size_t n = p->nstack - f->first;
    v->type = f->type;
    v->n = n;
    if (f->type == JSON_ARRAY) {
        JsonValue *items = NULL;
        if (n) {
            items = arena_alloc(p->doc, n * sizeof(JsonValue));
            if (!items) return fail_at(p, p->pos, "out of memory");
            for (size_t k = 0; k < n; k++) items[k] = p->stack[f->first + k].value;
        }
        v->u.items = items;
    } else {
        JsonMember *mem = NULL;
        if (n) {
            mem = arena_alloc(p->doc, n * sizeof(JsonMember));
            if (!mem) return fail_at(p, p->pos, "out of memory");
            memcpy(mem, p->stack + f->first, n * sizeof(JsonMember));
        }
        v->u.members = mem;
    }
    p->nstack = f->first;
    p->depth--;
    return 1;
}

static int push_frame(Parser *p, JsonType t) {
    if (p->depth >= p->max_depth)
        return fail_at(p, p->pos, "nesting deeper than %d levels", p->max_depth);
    if (p->depth == p->capframes) {
        int nc = p->capframes > p->max_depth / 2 ? p->max_depth : p->capframes * 2;
        Frame *nf = realloc(p->frames, (size_t)nc * sizeof(Frame));
        if (!nf) return fail_at(p, p->pos, "out of memory");
        p->frames = nf;
        p->capframes = nc;
    }
    Frame *f = &p->frames[p->depth++];
    f->type = t;
    f->first = p->nstack;
    f->key = NULL;
    f->keylen = 0;
    return 1;
}

static int match_lit(Parser *p, const char *lit) {
    size_t n = strlen(lit);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, lit, n) != 0) {
        return fail_at(p, p->pos, "invalid literal (expected '%s')", lit);
    }
    p->pos += n;
    return 1;
}

static int parse_key(Parser *p) {
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != '"') {
        char d[32];
        describe_char(p, p->pos, d, sizeof d);
        return fail_at(p, p->pos, "expected a string key in object, found %s", d);
    }
    Frame *f = &p->frames[p->depth - 1];
    if (!parse_string(p, &f->key, &f->keylen)) return 0;
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != ':') {
        char d[32];
        describe_char(p, p->pos, d, sizeof d);
        return fail_at(p, p->pos, "expected ':' after object key, found %s", d);
    }
    p->pos++;
    return 1;
}

static int parse_document(Parser *p) {
    JsonValue v;
    for (;;) {
        // ---- expecting a value
        skip_ws(p);
        if (p->pos >= p->len) return fail_at(p, p->pos, "unexpected end of input, expected a value");
        char c = p->s[p->pos];
        memset(&v, 0, sizeof v);
        if (c == '{' || c == '[') {
            if (!push_frame(p, c == '{' ? JSON_OBJECT : JSON_ARRAY)) return 0;
            p->pos++;
            skip_ws(p);
            if (p->pos < p->len && p->s[p->pos] == (c == '{' ? '}' : ']')) {
                p->pos++;
                if (!close_frame(p, &v)) return 0;
            } else if (c == '{') {
                if (!parse_key(p)) return 0;
                continue;
            } else {
                continue;
            }
        } else if (c == '"') {
            v.type = JSON_STRING;
            if (!parse_string(p, &v.u.str, &v.n)) return 0;
        } else if (c == 't') {
            if (!match_lit(p, "true")) return 0;
            v.type = JSON_TRUE;
        } else if (c == 'f') {
            if (!match_lit(p, "false")) return 0;
            v.type = JSON_FALSE;
        } else if (c == 'n') {
            if (!match_lit(p, "null")) return 0;
            v.type = JSON_NULL;
        } else if (c == '-' || is_digit(c)) {
            v.type = JSON_NUMBER;
            if (!parse_number(p, &v.u.num)) return 0;
        } else {
            char d[32];
            describe_char(p, p->pos, d, sizeof d);
            return fail_at(p, p->pos, "unexpected %s, expected a value", d);
        }
        // ---- a complete value v: attach it to its container, closing containers as they end
        for (;;) {
            if (p->depth == 0) {
                p->doc->root = v;
                skip_ws(p);
                if (p->pos != p->len) return fail_at(p, p->pos, "unexpected data after the document");
                return 1;
            }
            Frame *f = &p->frames[p->depth - 1];
            if (!push_child(p, f->key, f->keylen, &v)) return 0;
            skip_ws(p);
            char close = f->type == JSON_ARRAY ? ']' : '}';
            if (p->pos < p->len && p->s[p->pos] == ',') {
                p->pos++;
                if (f->type == JSON_OBJECT && !parse_key(p)) return 0;
                break;  // next value
            }
            if (p->pos < p->len && p->s[p->pos] == close) {
                p->pos++;
                if (!close_frame(p, &v)) return 0;
                continue;  // the container is itself a complete value
            }
            char d[32];
            describe_char(p, p->pos, d, sizeof d);
            return fail_at(p, p->pos, "expected ',' or '%c' in %s, found %s", close,
                           f->type == JSON_ARRAY ? "array" : "object", d);
        }
    }
}

JsonDoc *json_parse(const char *text, size_t len, int max_depth, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    Parser p;
    memset(&p, 0, sizeof p);
    p.s = text ? text : "";
    p.len = text ? len : 0;
    p.err = err;
    p.errlen = errlen;
    p.max_depth = max_depth > 0 ? max_depth : JSON_DEFAULT_MAX_DEPTH;
    p.doc = calloc(1, sizeof(JsonDoc));
    p.frames = malloc((size_t)(p.max_depth < 64 ? p.max_depth : 64) * sizeof(Frame));
    p.capframes = p.max_depth < 64 ? p.max_depth : 64;
    if (!p.doc || !p.frames) {
        free(p.doc);
        free(p.frames);
        if (err && errlen) snprintf(err, errlen, "out of memory");
        return NULL;
    }
    // First arena block about the size of the input (small documents stay cheap), then doubling.
    p.doc->next_block = p.len < 1024 ? 1024 : p.len < ((size_t)1 << 20) ? p.len : (size_t)1 << 20;
    if (p.len >= 3 && memcmp(p.s, "\xEF\xBB\xBF", 3) == 0) p.pos = 3;  // UTF-8 BOM
    int ok = parse_document(&p);
    free(p.frames);
    free(p.stack);
    if (!ok) {
        json_free(p.doc);
        return NULL;
    }
    return p.doc;
}

JsonDoc *json_parse_file(const char *path, int max_depth, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (err && errlen) snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (fseek(f, 0, SEEK_END) == 0) {
        long sz = ftell(f);
        if (sz > 0 && (unsigned long)sz < SIZE_MAX - 1) {
            cap = (size_t)sz + 1;
            free(buf);
            buf = malloc(cap);
        }
        rewind(f);
    }
    for (;;) {
        if (!buf) {
            fclose(f);
            if (err && errlen) snprintf(err, errlen, "%s: out of memory reading file", path);
            return NULL;
        }
        if (n == cap) {
            char *nb = cap < SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!nb) free(buf);
            buf = nb;
            cap *= 2;
            continue;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        free(buf);
        if (err && errlen) snprintf(err, errlen, "%s: read error", path);
        return NULL;
    }
    char e[512];
    JsonDoc *d = json_parse(buf, n, max_depth, e, sizeof e);
    free(buf);
    if (!d && err && errlen) snprintf(err, errlen, "%s: %s", path, e);
    return d;
}

// ---------------------------------------------------------------------------------------------
// Accessors

const JsonValue *json_get(const JsonValue *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJECT || !key) return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < obj->n; i++) {
        const JsonMember *m = &obj->u.members[i];
        if (m->keylen == kl && memcmp(m->key, key, kl) == 0) return &m->value;
    }
    return NULL;
}

const JsonValue *json_at(const JsonValue *arr, size_t i) {
    if (!arr || arr->type != JSON_ARRAY || i >= arr->n) return NULL;
    return &arr->u.items[i];
}

const char *json_string(const JsonValue *v) {
    return v && v->type == JSON_STRING ? v->u.str : NULL;
}

int json_number(const JsonValue *v, double *out) {
    if (!v || v->type != JSON_NUMBER) return 0;
    *out = v->u.num;
    return 1;
}

int json_int64(const JsonValue *v, int64_t *out) {
    if (!v || v->type != JSON_NUMBER) return 0;
    double d = v->u.num;
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return 0;
    if (d != floor(d)) return 0;
    *out = (int64_t)d;
    return 1;
}

const char *json_type_name(JsonType t) {
    switch (t) {
    case JSON_NULL: return "null";
    case JSON_FALSE: return "false";
    case JSON_TRUE: return "true";
    case JSON_NUMBER: return "number";
    case JSON_STRING: return "string";
    case JSON_ARRAY: return "array";
    case JSON_OBJECT: return "object";
    }
    return "?";
}
