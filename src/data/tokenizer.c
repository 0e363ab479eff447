// tokenizer.c: BERT WordPiece (bert-base-uncased semantics, see tokenizer.h) over utf8proc.
//
// Encoding streams through the text once: special tokens are recognised on the raw bytes, every
// other code point is cleaned and classified on the fly, and each whitespace-delimited word is
// lower-cased, NFD-decomposed, stripped of Mn marks, split at punctuation and WordPiece'd as soon
// as it ends. Output stops as soon as the caller's limit is reached (truncation is free).
// Vocab lookup is an open-addressing hash table keyed by FNV-1a of the token bytes; a "##"
// continuation is looked up without building the prefixed string.
#include "data/tokenizer.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <utf8proc.h>

#include "engine/common.h"

#define MAX_INPUT_CHARS_PER_WORD 100
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

typedef struct {
    uint32_t hash; // low 32 bits of the token's FNV-1a; 0 slots are told apart by id < 0
    int32_t id;    // -1 = empty
} Slot;

struct Tokenizer {
    int n;            // vocab size
    char *blob;       // all tokens, NUL-terminated, back to back
    char **tokens;    // n pointers into blob
    uint32_t *lens;   // byte lengths
    Slot *table;      // open addressing, power-of-two size >= 2n
    uint32_t mask;    // table size - 1
    int max_cps;      // longest token in code points (bounds the WordPiece inner loop)
    int pad, unk, cls, sep, msk;
    uint64_t file_hash;
};

enum { SPECIAL_PAD, SPECIAL_UNK, SPECIAL_CLS, SPECIAL_SEP, SPECIAL_MASK, NSPECIAL };
static const char *const special_names[NSPECIAL] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

// ---------------------------------------------------------------------------------------------
// hashing and lookup

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

// Id of (cont ? "##" : "") + bytes[0..len), or -1.
static int lookup(const Tokenizer *t, int cont, const char *bytes, size_t len) {
    uint64_t h = FNV_OFFSET;
    if (cont) h = fnv1a(h, "##", 2);
    h = fnv1a(h, bytes, len);
    uint32_t h32 = (uint32_t)h;
    size_t want = len + (cont ? 2 : 0);
    for (uint32_t i = (uint32_t)(h ^ (h >> 32)) & t->mask;; i = (i + 1) & t->mask) {
        const Slot *s = &t->table[i];
        if (s->id < 0) return -1;
        if (s->hash != h32 || t->lens[s->id] != want) continue;
        const char *tok = t->tokens[s->id];
        if (cont) {
            if (tok[0] != '#' || tok[1] != '#') continue;
            tok += 2;
        }
        if (memcmp(tok, bytes, len) == 0) return s->id;
    }
}

// ---------------------------------------------------------------------------------------------
// loading

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    free(t->blob);
    free(t->tokens);
    free(t->lens);
    free(t->table);
    free(t);
}

// Reads the whole file; NULL + message on failure.
static char *read_file(const char *path, size_t *size, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, errlen, "cannot open vocab file %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 20, n = 0;
    char *buf = mallocCheck(cap + 1);
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        cap *= 2;
        char *nb = mallocCheck(cap + 1);
        memcpy(nb, buf, n);
        free(buf);
        buf = nb;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        set_err(err, errlen, "error reading vocab file %s", path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *size = n;
    return buf;
}

Tokenizer *tokenizer_load(const char *vocab_path, char *err, size_t errlen) {
    size_t size = 0;
    char *buf = read_file(vocab_path, &size, err, errlen);
    if (!buf) return NULL;

    Tokenizer *t = callocCheck(1, sizeof *t);
    t->file_hash = fnv1a(FNV_OFFSET, buf, size);
    t->blob = buf;

    // Lines: '\n'-terminated, the last one possibly not; a trailing '\n' does not start a line.
    size_t nlines = 0;
    for (size_t i = 0; i < size; i++) nlines += buf[i] == '\n';
    if (size > 0 && buf[size - 1] != '\n') nlines++;
    if (nlines == 0) {
        set_err(err, errlen, "vocab file %s is empty", vocab_path);
        goto fail;
    }
    if (nlines > (size_t)INT32_MAX / 2) {
        set_err(err, errlen, "vocab file %s has too many lines (%zu)", vocab_path, nlines);
        goto fail;
    }
    t->n = (int)nlines;
    t->tokens = mallocCheck(nlines * sizeof(char *));
    t->lens = mallocCheck(nlines * sizeof(uint32_t));
    uint32_t cap = 16;
    while (cap < 2 * nlines) cap *= 2;
    t->mask = cap - 1;
    t->table = mallocCheck((size_t)cap * sizeof(Slot));
    for (uint32_t i = 0; i < cap; i++) t->table[i].id = -1;

    char *p = buf;
    for (int id = 0; id < t->n; id++) {
        char *nl = memchr(p, '\n', (size_t)(buf + size - p));
        char *end = nl ? nl : buf + size;
        *end = '\0';
        size_t len = (size_t)(end - p);
        int line = id + 1;
        if (memchr(p, '\r', len)) {
            set_err(err, errlen, "vocab file %s line %d contains a carriage return (Windows line endings?)",
                    vocab_path, line);
            goto fail;
        }
        if (strlen(p) != len) {
            set_err(err, errlen, "vocab file %s line %d contains a NUL byte", vocab_path, line);
            goto fail;
        }
        int cps = 0;
        for (size_t k = 0; k < len;) {
            utf8proc_int32_t c;
            utf8proc_ssize_t r = utf8proc_iterate((const utf8proc_uint8_t *)p + k, (utf8proc_ssize_t)(len - k), &c);
            if (r <= 0) {
                set_err(err, errlen, "vocab file %s line %d is not valid UTF-8 (byte %zu)", vocab_path, line,
                        k + 1);
                goto fail;
            }
            k += (size_t)r;
            cps++;
        }
        if (cps > t->max_cps) t->max_cps = cps;
        t->tokens[id] = p;
        t->lens[id] = (uint32_t)len;

        uint64_t h = fnv1a(FNV_OFFSET, p, len);
        uint32_t i = (uint32_t)(h ^ (h >> 32)) & t->mask;
        for (;; i = (i + 1) & t->mask) {
            Slot *s = &t->table[i];
            if (s->id < 0) {
                s->hash = (uint32_t)h;
                s->id = id;
                break;
            }
            if (s->hash == (uint32_t)h && t->lens[s->id] == len && memcmp(t->tokens[s->id], p, len) == 0) {
                set_err(err, errlen, "vocab file %s: token \"%s\" on line %d duplicates line %d", vocab_path, p,
                        line, s->id + 1);
                goto fail;
            }
        }
        p = end + 1;
    }

    int *ids[NSPECIAL] = {&t->pad, &t->unk, &t->cls, &t->sep, &t->msk};
    for (int s = 0; s < NSPECIAL; s++) {
        *ids[s] = lookup(t, 0, special_names[s], strlen(special_names[s]));
        if (*ids[s] < 0) {
            set_err(err, errlen, "vocab file %s has no %s token", vocab_path, special_names[s]);
            goto fail;
        }
    }
    return t;

fail:
    tokenizer_free(t);
    return NULL;
}

// ---------------------------------------------------------------------------------------------
// character classes (BERT's tokenization.py, on utf8proc's tables)

static int is_control(int32_t c) { // _is_control: category C*, but \t \n \r are whitespace
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS: return 1;
    default: return 0;
    }
}

static int is_whitespace(int32_t c) { // _is_whitespace
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') return 1;
    return c > 127 && utf8proc_category(c) == UTF8PROC_CATEGORY_ZS;
}

static int is_punctuation(int32_t c) { // _is_punctuation
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
        return 1;
    if (c < 128) return 0;
    utf8proc_category_t cat = utf8proc_category(c);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

static int is_chinese_char(int32_t c) { // _is_chinese_char
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// ---------------------------------------------------------------------------------------------
// encoding

typedef struct {
    const Tokenizer *t;
    int32_t *out;
    int n, cap;
    // current raw word (cleaned code points, before lower/NFD)
    int32_t *raw;
    size_t nraw, capraw;
    // the word after lower/NFD/strip
    int32_t *word;
    size_t nword, capword;
    int32_t rawbuf[256], wordbuf[1024];
} Enc;

static int enc_full(const Enc *e) { return e->n >= e->cap; }

static void emit(Enc *e, int32_t id) {
    if (e->n < e->cap) e->out[e->n++] = id;
}

static void grow(int32_t **buf, size_t *cap, int32_t *inline_buf, size_t need) {
    if (need <= *cap) return;
    size_t nc = *cap * 2;
    while (nc < need) nc *= 2;
    int32_t *nb = mallocCheck(nc * sizeof(int32_t));
    memcpy(nb, *buf, *cap * sizeof(int32_t));
    if (*buf != inline_buf) free(*buf);
    *buf = nb;
    *cap = nc;
}

// WordPiece one piece (code points w[0..n)), appending ids.
static void wordpiece(Enc *e, const int32_t *w, size_t n) {
    const Tokenizer *t = e->t;
    if (n > MAX_INPUT_CHARS_PER_WORD) {
        emit(e, t->unk);
        return;
    }
    char bytes[4 * MAX_INPUT_CHARS_PER_WORD + 4];
    int off[MAX_INPUT_CHARS_PER_WORD + 1];
    int32_t sub[MAX_INPUT_CHARS_PER_WORD];
    int nsub = 0;
    off[0] = 0;
    for (size_t i = 0; i < n; i++)
        off[i + 1] = off[i] + (int)utf8proc_encode_char(w[i], (utf8proc_uint8_t *)bytes + off[i]);
    size_t start = 0;
    while (start < n) {
        size_t end = n;
        if (end - start > (size_t)t->max_cps) end = start + (size_t)t->max_cps;
        int id = -1;
        for (; end > start; end--) {
            id = lookup(t, start > 0, bytes + off[start], (size_t)(off[end] - off[start]));
            if (id >= 0) break;
        }
        if (id < 0) { // no segmentation: the whole piece is [UNK]
            emit(e, t->unk);
            return;
        }
        sub[nsub++] = id;
        start = end;
    }
    for (int i = 0; i < nsub; i++) emit(e, sub[i]);
}

// Canonical ordering of combining marks (the reordering step of NFD).
static void canonical_order(int32_t *w, size_t n) {
    for (size_t i = 1; i < n; i++) {
        int ci = utf8proc_get_property(w[i])->combining_class;
        if (ci == 0) continue;
        size_t j = i;
        while (j > 0) {
            int cj = utf8proc_get_property(w[j - 1])->combining_class;
            if (cj <= ci) break; // cj == 0 is a starter: stop too
            int32_t tmp = w[j];
            w[j] = w[j - 1];
            w[j - 1] = tmp;
            j--;
        }
    }
}

// The current raw word ends: lower, NFD, drop Mn, split at punctuation, WordPiece each piece.
static void flush_word(Enc *e) {
    if (e->nraw == 0) return;
    e->nword = 0;
    for (size_t i = 0; i < e->nraw; i++) {
        int32_t c = utf8proc_tolower(e->raw[i]); // U+0130's full mapping "i\u0307" strips to "i" too
        int32_t d[8];
        int bound = 0;
        utf8proc_ssize_t k = utf8proc_decompose_char(c, d, 8, UTF8PROC_DECOMPOSE, &bound);
        if (k < 0 || k > 8) {
            d[0] = c;
            k = 1;
        }
        grow(&e->word, &e->capword, e->wordbuf, e->nword + (size_t)k);
        for (utf8proc_ssize_t j = 0; j < k; j++) e->word[e->nword++] = d[j];
    }
    e->nraw = 0;
    canonical_order(e->word, e->nword);
    size_t m = 0;
    for (size_t i = 0; i < e->nword; i++)
        if (utf8proc_category(e->word[i]) != UTF8PROC_CATEGORY_MN) e->word[m++] = e->word[i];
    size_t start = 0;
    for (size_t i = 0; i < m && !enc_full(e); i++) {
        if (is_punctuation(e->word[i])) {
            if (i > start) wordpiece(e, e->word + start, i - start);
            if (!enc_full(e)) wordpiece(e, e->word + i, 1);
            start = i + 1;
        }
    }
    if (start < m && !enc_full(e)) wordpiece(e, e->word + start, m - start);
}

static void push_raw(Enc *e, int32_t c) {
    grow(&e->raw, &e->capraw, e->rawbuf, e->nraw + 1);
    e->raw[e->nraw++] = c;
}

static int special_at(const Tokenizer *t, const char *s, size_t *len) {
    for (int k = 0; k < NSPECIAL; k++) {
        size_t l = strlen(special_names[k]);
        if (strncmp(s, special_names[k], l) == 0) {
            *len = l;
            switch (k) {
            case SPECIAL_PAD: return t->pad;
            case SPECIAL_UNK: return t->unk;
            case SPECIAL_CLS: return t->cls;
            case SPECIAL_SEP: return t->sep;
            default: return t->msk;
            }
        }
    }
    return -1;
}

static int encode_pieces(const Tokenizer *t, const char *text, int32_t *ids, int cap) {
    if (cap <= 0) return 0;
    Enc e;
    e.t = t;
    e.out = ids;
    e.n = 0;
    e.cap = cap;
    e.raw = e.rawbuf;
    e.capraw = sizeof e.rawbuf / sizeof e.rawbuf[0];
    e.nraw = 0;
    e.word = e.wordbuf;
    e.capword = sizeof e.wordbuf / sizeof e.wordbuf[0];
    e.nword = 0;

    const char *p = text ? text : "";
    size_t len = strlen(p);
    while (len > 0 && !enc_full(&e)) {
        if (*p == '[') {
            size_t sl;
            int sid = special_at(t, p, &sl);
            if (sid >= 0) {
                flush_word(&e);
                emit(&e, sid);
                p += sl;
                len -= sl;
                continue;
            }
        }
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)p, (utf8proc_ssize_t)len, &c);
        if (k <= 0) { // invalid UTF-8: U+FFFD, which cleaning drops
            p++;
            len--;
            continue;
        }
        p += k;
        len -= (size_t)k;
        if (c == 0 || c == 0xFFFD || is_control(c)) continue;
        if (is_whitespace(c) || c == 0x2028 || c == 0x2029) {
            flush_word(&e);
        } else if (is_chinese_char(c)) {
            flush_word(&e);
            push_raw(&e, c);
            flush_word(&e);
        } else {
            push_raw(&e, c);
        }
    }
    if (!enc_full(&e)) flush_word(&e);
    if (e.raw != e.rawbuf) free(e.raw);
    if (e.word != e.wordbuf) free(e.word);
    return e.n;
}

int tokenizer_pieces(const Tokenizer *t, const char *text, int32_t *ids, int max_ids) {
    return encode_pieces(t, text, ids, max_ids);
}

int tokenizer_encode(const Tokenizer *t, const char *text, int32_t *ids, int max_len) {
    if (max_len < 1) return 0;
    ids[0] = t->cls;
    return 1 + encode_pieces(t, text, ids + 1, max_len - 1);
}

int tokenizer_encode_padded(const Tokenizer *t, const char *text, int32_t *ids, int32_t *mask, int max_len) {
    int n = tokenizer_encode(t, text, ids, max_len);
    for (int i = n; i < max_len; i++) ids[i] = t->pad;
    if (mask)
        for (int i = 0; i < max_len; i++) mask[i] = i < n;
    return n;
}

// ---------------------------------------------------------------------------------------------
// accessors

int tokenizer_id(const Tokenizer *t, const char *token) {
    if (!token) return -1;
    return lookup(t, 0, token, strlen(token));
}

const char *tokenizer_token(const Tokenizer *t, int id) {
    if (id < 0 || id >= t->n) return NULL;
    return t->tokens[id];
}

int tokenizer_vocab_size(const Tokenizer *t) { return t->n; }
int tokenizer_pad_id(const Tokenizer *t) { return t->pad; }
int tokenizer_unk_id(const Tokenizer *t) { return t->unk; }
int tokenizer_cls_id(const Tokenizer *t) { return t->cls; }
int tokenizer_sep_id(const Tokenizer *t) { return t->sep; }
int tokenizer_mask_id(const Tokenizer *t) { return t->msk; }
uint64_t tokenizer_vocab_hash(const Tokenizer *t) { return t->file_hash; }
