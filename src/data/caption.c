// caption.c: ALBEF's pre_caption / pre_question (see caption.h for the exact Python they mirror).
// Works on an array of code points so that every step (lower(), the regex class, str.replace,
// \s{2,}, strip, split(' ')) is the Python operation on a str, then encodes back to UTF-8.
#include "data/caption.h"

#include <string.h>
#include <utf8proc.h>

#include "engine/common.h"

typedef struct {
    int32_t *cp;
    size_t n, cap;
} CpBuf;

static void cp_push(CpBuf *b, int32_t c) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        int32_t *p = mallocCheck(cap * sizeof(int32_t));
        if (b->n) memcpy(p, b->cp, b->n * sizeof(int32_t));
        free(b->cp);
        b->cp = p;
        b->cap = cap;
    }
    b->cp[b->n++] = c;
}

// UTF-8 -> code points; an invalid byte becomes U+FFFD and decoding resumes at the next byte.
static void decode_utf8(const char *s, CpBuf *out) {
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    utf8proc_ssize_t len = (utf8proc_ssize_t)strlen(s);
    while (len > 0) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(p, len, &c);
        if (k <= 0) {
            c = 0xFFFD;
            k = 1;
        }
        cp_push(out, c);
        p += k;
        len -= k;
    }
}

static char *encode_utf8(const int32_t *cp, size_t n) {
    char *s = mallocCheck(4 * n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) o += (size_t)utf8proc_encode_char(cp[i], (utf8proc_uint8_t *)s + o);
    s[o] = '\0';
    return s;
}

typedef struct {
    int32_t lo, hi;
} Range;

static int in_ranges(int32_t c, const Range *r, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (c >= r[i].lo && c <= r[i].hi) return 1;
    return 0;
}

// Unicode "Cased" = Lowercase | Uppercase | Lt; the Other_Lowercase / Other_Uppercase code points
// that are not Ll/Lu are listed (derived from Python 3.11 / Unicode 14 by comparison).
static const Range other_cased[] = {
    {0xAA, 0xAA},       {0xBA, 0xBA},       {0x2B0, 0x2B8},     {0x2C0, 0x2C1},
    {0x2E0, 0x2E4},     {0x345, 0x345},     {0x37A, 0x37A},     {0x1D2C, 0x1D6A},
    {0x1D78, 0x1D78},   {0x1D9B, 0x1DBF},   {0x2071, 0x2071},   {0x207F, 0x207F},
    {0x2090, 0x209C},   {0x2160, 0x217F},   {0x24B6, 0x24E9},   {0x2C7C, 0x2C7D},
    {0xA69C, 0xA69D},   {0xA770, 0xA770},   {0xA7F8, 0xA7F9},   {0xAB5C, 0xAB5F},
    {0x10780, 0x10780}, {0x10783, 0x10785}, {0x10787, 0x107B0}, {0x107B2, 0x107BA},
    {0x1F130, 0x1F149}, {0x1F150, 0x1F169}, {0x1F170, 0x1F189},
};

static int is_cased(int32_t c) {
    utf8proc_category_t cat = utf8proc_category(c);
    if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT) return 1;
    return in_ranges(c, other_cased, sizeof other_cased / sizeof other_cased[0]);
}

// Unicode "Case_Ignorable" = Mn | Me | Cf | Lm | Sk | Word_Break in {MidLetter, MidNumLet,
// Single_Quote}; the Word_Break members are listed.
static const Range wb_ignorable[] = {
    {0x27, 0x27},     {0x2E, 0x2E},     {0x3A, 0x3A},     {0xB7, 0xB7},
    {0x387, 0x387},   {0x55F, 0x55F},   {0x5F4, 0x5F4},   {0x2018, 0x2019},
    {0x2024, 0x2024}, {0x2027, 0x2027}, {0xFE13, 0xFE13}, {0xFE52, 0xFE52},
    {0xFE55, 0xFE55}, {0xFF07, 0xFF07}, {0xFF0E, 0xFF0E}, {0xFF1A, 0xFF1A},
};

static int is_case_ignorable(int32_t c) {
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_SK: return 1;
    default: return in_ranges(c, wb_ignorable, sizeof wb_ignorable / sizeof wb_ignorable[0]);
    }
}

// Python's str.lower(): full lower-case mapping. The only unconditional multi-character lower-case
// mapping is U+0130 -> U+0069 U+0307; the only condition Python implements is Final_Sigma:
// U+03A3 after \p{cased}\p{case-ignorable}* and not before \p{case-ignorable}*\p{cased} -> U+03C2.
static void python_lower(const CpBuf *in, CpBuf *out) {
    for (size_t i = 0; i < in->n; i++) {
        int32_t c = in->cp[i];
        if (c == 0x130) {
            cp_push(out, 0x69);
            cp_push(out, 0x307);
        } else if (c == 0x3A3) {
            size_t j = i;
            int final_sigma = 0;
            while (j > 0 && is_case_ignorable(in->cp[j - 1])) j--;
            if (j > 0 && is_cased(in->cp[j - 1])) {
                size_t k = i + 1;
                while (k < in->n && is_case_ignorable(in->cp[k])) k++;
                final_sigma = k == in->n || !is_cased(in->cp[k]);
            }
            cp_push(out, final_sigma ? 0x3C2 : 0x3C3);
        } else {
            cp_push(out, utf8proc_tolower(c));
        }
    }
}

// Python's str.isspace() (what re's \s matches in a str pattern): bidi class WS/B/S or Zs.
static int py_isspace(int32_t c) {
    if ((c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0) return 1;
    if (c < 0x1680) return 0;
    return c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

// The ALBEF regex class [,.'!?\"()*#:;~].
static int is_albef_removed(int32_t c) {
    return c < 128 && c && strchr(",.'!?\"()*#:;~", (int)c) != NULL;
}

// Shared front half: lower(), drop the regex class, '-' and '/' -> ' '.
static void lower_strip_dash_slash(const char *utf8, CpBuf *out) {
    CpBuf raw = {0}, low = {0};
    decode_utf8(utf8 ? utf8 : "", &raw);
    python_lower(&raw, &low);
    for (size_t i = 0; i < low.n; i++) {
        int32_t c = low.cp[i];
        if (is_albef_removed(c)) continue;
        if (c == '-' || c == '/') c = ' ';
        cp_push(out, c);
    }
    free(raw.cp);
    free(low.cp);
}

// Python: if len(s.split(' ')) > max_words: s = ' '.join(s.split(' ')[:max_words]).
// Joining the first max_words pieces with ' ' is the prefix before the max_words-th ' '.
static void truncate_words(CpBuf *b, int max_words) {
    if (max_words <= 0) return;
    int spaces = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->cp[i] == ' ' && ++spaces == max_words) {
            b->n = i;
            return;
        }
    }
}

char *pre_caption(const char *utf8, int max_words) {
    CpBuf a = {0}, b = {0};
    lower_strip_dash_slash(utf8, &a);

    // .replace('<person>', 'person'): scan left to right, non-overlapping.
    static const char person[] = "<person>";
    const size_t plen = sizeof person - 1;
    for (size_t i = 0; i < a.n;) {
        size_t k = 0;
        while (k < plen && i + k < a.n && a.cp[i + k] == (int32_t)(unsigned char)person[k]) k++;
        if (k == plen) {
            for (size_t j = 1; j + 1 < plen; j++) cp_push(&b, person[j]);
            i += plen;
        } else {
            cp_push(&b, a.cp[i++]);
        }
    }

    // re.sub(r"\s{2,}", ' ', s): each maximal run of >= 2 whitespace characters -> one ' '.
    a.n = 0;
    for (size_t i = 0; i < b.n;) {
        if (py_isspace(b.cp[i])) {
            size_t j = i;
            while (j < b.n && py_isspace(b.cp[j])) j++;
            if (j - i >= 2) {
                cp_push(&a, ' ');
            } else {
                cp_push(&a, b.cp[i]);
            }
            i = j;
        } else {
            cp_push(&a, b.cp[i++]);
        }
    }

    // .rstrip('\n') then .strip(' ')
    size_t lo = 0, hi = a.n;
    while (hi > lo && a.cp[hi - 1] == '\n') hi--;
    while (hi > lo && a.cp[hi - 1] == ' ') hi--;
    while (lo < hi && a.cp[lo] == ' ') lo++;
    CpBuf c = {a.cp ? a.cp + lo : NULL, hi - lo, hi - lo};  // (a.cp is NULL for an empty caption)
    truncate_words(&c, max_words);
    char *s = encode_utf8(c.cp, c.n);
    free(a.cp);
    free(b.cp);
    return s;
}

char *pre_question(const char *utf8, int max_words) {
    CpBuf a = {0};
    lower_strip_dash_slash(utf8, &a);
    while (a.n > 0 && a.cp[a.n - 1] == ' ') a.n--; // .rstrip(' ')
    truncate_words(&a, max_words);
    char *s = encode_utf8(a.cp, a.n);
    free(a.cp);
    return s;
}
