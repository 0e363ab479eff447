// test_tokenizer.c: WordPiece tokenizer (src/data/tokenizer.c) and ALBEF caption clean-up (src/data/caption.c)
// against the real bert-base-uncased vocab. Expected ids were read off data/vocab.txt
// (id = line number - 1) and agree with HuggingFace BertTokenizer (tests/tokenizer_cases.py
// re-states its algorithm in Python and cross-checks thousands of random strings).
//
// usage: test_tokenizer [VOCAB]       run the tests (default: $top_srcdir/data/vocab.txt,
//                                     $srcdir/data/vocab.txt, data/vocab.txt)
//        test_tokenizer --dump VOCAB MAXLEN MAXWORDS
//                                     for tests/tokenizer_cases.py: read JSON string lines on
//                                     stdin, print ids, pre_caption, pre_question, ids(pre_caption)
#define _POSIX_C_SOURCE 200809L // getline, mkstemp
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "data/caption.h"
#include "data/tokenizer.h"
#include "engine/common.h"

#include "check.h"

#define MAXT 256

static void print_ids(const char *label, const int32_t *ids, int n) {
    fprintf(stderr, "  %s:", label);
    for (int i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

// tokenizer_encode(text, max_len) must give exactly want[0..nwant).
static void expect_ids(const Tokenizer *tok, const char *text, int max_len, const int32_t *want, int nwant) {
    int32_t got[MAXT];
    checks++;
    int n = tokenizer_encode(tok, text, got, max_len);
    if (n != nwant || memcmp(got, want, (size_t)n * sizeof(int32_t)) != 0) {
        fail("encode(\"%s\", max_len %d)", text, max_len);
        print_ids("got ", got, n);
        print_ids("want", want, nwant);
    }
}
#define EXPECT_IDS(tok, text, max_len, ...)                                                                  \
    do {                                                                                                     \
        const int32_t want_[] = {__VA_ARGS__};                                                               \
        expect_ids((tok), (text), (max_len), want_, (int)(sizeof want_ / sizeof want_[0]));                  \
    } while (0)

// The word pieces of text, as token strings joined by ' ', must equal want.
static void expect_pieces(const Tokenizer *tok, const char *text, const char *want) {
    int32_t ids[MAXT];
    char buf[4096] = "";
    checks++;
    int n = tokenizer_pieces(tok, text, ids, MAXT);
    for (int i = 0; i < n; i++) {
        if (i) strcat(buf, " ");
        strcat(buf, tokenizer_token(tok, ids[i]));
    }
    if (strcmp(buf, want) != 0) fail("pieces(\"%s\") = \"%s\", want \"%s\"", text, buf, want);
}

static void expect_caption(const char *in, int max_words, const char *want) {
    checks++;
    char *got = pre_caption(in, max_words);
    if (strcmp(got, want) != 0) fail("pre_caption(\"%s\", %d) = \"%s\", want \"%s\"", in, max_words, got, want);
    free(got);
}

static void expect_question(const char *in, int max_words, const char *want) {
    checks++;
    char *got = pre_question(in, max_words);
    if (strcmp(got, want) != 0) fail("pre_question(\"%s\", %d) = \"%s\", want \"%s\"", in, max_words, got, want);
    free(got);
}

static void test_basic(const Tokenizer *tok) {
    if (tokenizer_vocab_size(tok) != 30522) fail("vocab size %d, want 30522", tokenizer_vocab_size(tok));
    if (tokenizer_pad_id(tok) != 0 || tokenizer_unk_id(tok) != 100 || tokenizer_cls_id(tok) != 101 ||
        tokenizer_sep_id(tok) != 102 || tokenizer_mask_id(tok) != 103)
        fail("special ids %d %d %d %d %d, want 0 100 101 102 103", tokenizer_pad_id(tok), tokenizer_unk_id(tok),
             tokenizer_cls_id(tok), tokenizer_sep_id(tok), tokenizer_mask_id(tok));
    if (tokenizer_id(tok, "hello") != 7592) fail("id(hello) = %d", tokenizer_id(tok, "hello"));
    if (tokenizer_id(tok, "##berries") != 20968) fail("id(##berries) = %d", tokenizer_id(tok, "##berries"));
    if (tokenizer_id(tok, "no-such-token") != -1) fail("id(no-such-token) should be -1");
    if (tokenizer_id(tok, "Hello") != -1) fail("id(Hello) should be -1 (vocab is lower-case)");
    if (strcmp(tokenizer_token(tok, 2088), "world") != 0) fail("token(2088) = %s", tokenizer_token(tok, 2088));
    if (strcmp(tokenizer_token(tok, 30521), "##～") != 0) fail("token(30521) = %s", tokenizer_token(tok, 30521));
    if (tokenizer_token(tok, 30522) || tokenizer_token(tok, -1)) fail("token(out of range) should be NULL");
    for (int id = 0; id < tokenizer_vocab_size(tok); id++) { // every token maps back to its id
        if (tokenizer_id(tok, tokenizer_token(tok, id)) != id) {
            fail("id(token(%d)) = %d", id, tokenizer_id(tok, tokenizer_token(tok, id)));
            break;
        }
    }
    checks += 10;
}

static void test_encode(const Tokenizer *tok) {
    EXPECT_IDS(tok, "i like strawberries", 25, 101, 1045, 2066, 13137, 20968);
    EXPECT_IDS(tok, "I LIKE Strawberries", 25, 101, 1045, 2066, 13137, 20968);
    expect_pieces(tok, "i like strawberries", "i like straw ##berries");
    // The HF docstring's "un ##aff ##able" is for another vocab; bert-base-uncased gives:
    expect_pieces(tok, "unaffable", "una ##ffa ##ble");
    EXPECT_IDS(tok, "unaffable", 25, 101, 14477, 20961, 3468);
    expect_pieces(tok, "unbelievably", "un ##bel ##ie ##va ##bly");
    // accents: lower-case, NFD, drop Mn (precomposed and combining forms alike)
    EXPECT_IDS(tok, "Héllo", 25, 101, 7592);
    EXPECT_IDS(tok, "He\xcc\x81llo", 25, 101, 7592);
    expect_pieces(tok, "naïve CAFÉ", "naive cafe");
    expect_pieces(tok, "\xc4\xb0stanbul", "istanbul"); // U+0130
    // punctuation split
    EXPECT_IDS(tok, "hello,world!", 25, 101, 7592, 1010, 2088, 999);
    expect_pieces(tok, "a dog's \"ball\"", "a dog ' s \" ball \"");
    expect_pieces(tok, "x\xe2\x80\x94y\xc2\xbfz", "x \xe2\x80\x94 y \xc2\xbf z"); // em dash, inverted ?
    expect_pieces(tok, "\xe1\xbf\xaf", "`"); // U+1FEF (Sk) decomposes to '`', punctuation after NFD
    // CJK ideographs become single tokens; kana/hangul are ordinary letters (hangul -> jamo by NFD)
    EXPECT_IDS(tok, "中国人", 25, 101, 1746, 1799, 1756);
    expect_pieces(tok, "a中b", "a 中 b");
    // control characters (ZWSP is Cf) and U+FFFD vanish without splitting; odd whitespace splits
    expect_pieces(tok, "hel\x01lo\xe2\x80\x8bworld\xef\xbf\xbd", "hello ##world");
    expect_pieces(tok, "a\tb\nc\r\nd\xc2\xa0" "e\xe3\x80\x80" "f\xe2\x80\xa8g", "a b c d e f g");
    expect_pieces(tok, "  ", "");
    expect_pieces(tok, "", "");
    expect_pieces(tok, NULL, "");
    expect_pieces(tok, "ab\xff" "cd", "abc ##d"); // invalid UTF-8 byte dropped like U+FFFD
    // over-long word -> [UNK]; 100 code points is still fine
    char longw[200];
    memset(longw, 'x', 101);
    longw[101] = '\0';
    EXPECT_IDS(tok, longw, 25, 101, 100);
    longw[100] = '\0';
    {
        int32_t ids[MAXT];
        int n = tokenizer_encode(tok, longw, ids, MAXT);
        checks++;
        if (n < 3 || ids[1] == 100) fail("100 x's should be word pieces, got n=%d first %d", n, ids[1]);
    }
    // a word with no segmentation -> one [UNK]; punctuation still splits around it
    expect_pieces(tok, "hello \xf0\x9f\x98\x80 world", "hello [UNK] world");
    // special tokens written literally are kept whole (ALBEF VQA answers end in "[SEP]")
    EXPECT_IDS(tok, "what is this?[SEP]", 25, 101, 2054, 2003, 2023, 1029, 102);
    EXPECT_IDS(tok, "ab[MASK]cd", 25, 101, 11113, 103, 3729);
    expect_pieces(tok, "[mask]", "[ mask ]"); // lower-case is not special
    // Greek: tokenizer lower-cases char by char (no final sigma), so Σ -> σ
    expect_pieces(tok, "ΟΔΟΣ", "ο ##δ ##ο ##σ");
    expect_pieces(tok, "οδος", "ο ##δ ##ος");
}

static void test_truncate_pad(const Tokenizer *tok) {
    const char *text = "a dog on the red car in the person";
    // [CLS] a dog on the red car in the person = 10 ids
    EXPECT_IDS(tok, text, 25, 101, 1037, 3899, 2006, 1996, 2417, 2482, 1999, 1996, 2711);
    EXPECT_IDS(tok, text, 10, 101, 1037, 3899, 2006, 1996, 2417, 2482, 1999, 1996, 2711);
    EXPECT_IDS(tok, text, 4, 101, 1037, 3899, 2006);
    EXPECT_IDS(tok, text, 1, 101);
    EXPECT_IDS(tok, "strawberries", 2, 101, 13137); // truncation may cut inside a word, like HF
    {
        int32_t ids[4] = {7, 7, 7, 7};
        checks++;
        if (tokenizer_encode(tok, text, ids, 0) != 0 || ids[0] != 7) fail("max_len 0 must write nothing");
    }
    int32_t ids[12], mask[12];
    checks++;
    int n = tokenizer_encode_padded(tok, "hello,world!", ids, mask, 12);
    const int32_t want_ids[12] = {101, 7592, 1010, 2088, 999, 0, 0, 0, 0, 0, 0, 0};
    const int32_t want_mask[12] = {1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0};
    if (n != 5 || memcmp(ids, want_ids, sizeof ids) || memcmp(mask, want_mask, sizeof mask)) {
        fail("encode_padded(hello,world!, 12): n=%d", n);
        print_ids("ids ", ids, 12);
        print_ids("mask", mask, 12);
    }
    checks++;
    n = tokenizer_encode_padded(tok, text, ids, mask, 4);
    if (n != 4 || mask[3] != 1 || ids[3] != 2006) fail("encode_padded truncating: n=%d", n);
    checks++;
    n = tokenizer_encode_padded(tok, "", ids, NULL, 3);
    if (n != 1 || ids[0] != 101 || ids[1] != 0 || ids[2] != 0) fail("encode_padded(\"\") n=%d", n);
}

static void test_caption(const Tokenizer *tok) {
    expect_caption("A dog, running on the beach!", 30, "a dog running on the beach");
    expect_caption("It's a \"big\" (red) car*; #1: yes? ~no~.", 30, "its a big red car 1 yes no");
    expect_caption("a well-known bike/path", 30, "a well known bike path");
    expect_caption("a -- b", 30, "a b"); // ' -- ' -> four spaces -> one
    expect_caption("  lots   of \t spaces  ", 30, "lots of spaces");
    expect_caption("a\tb", 30, "a\tb");           // a single tab is not collapsed (\s{2,})
    expect_caption("a dog.\n", 30, "a dog");       // rstrip('\n')
    expect_caption("\na dog", 30, "\na dog");      // only trailing newlines go
    expect_caption("A <PERSON> rides", 30, "a person rides");
    expect_caption("one two three four five six", 4, "one two three four");
    expect_caption("one two three", 3, "one two three");
    expect_caption("one, two. three! four", 2, "one two");
    expect_caption("ÉCOLE NAÏVE Straße", 30, "école naïve straße"); // accents kept by pre_caption
    expect_caption("ΟΔΟΣ ΣΑΣ.", 30, "οδος σας"); // Python lower(): final sigma
    expect_caption("\xc4\xb0", 30, "i\xcc\x87");   // U+0130 -> i + U+0307 like Python
    expect_caption("a\xc2\xa0\xc2\xa0" "b", 30, "a b"); // Unicode whitespace run
    expect_caption("keep <tags> & [brackets] @x", 30, "keep <tags> & [brackets] @x");
    expect_caption("", 30, "");
    expect_caption("?!.", 30, "");
    expect_caption("a b c", 0, "a b c"); // 0 = no truncation
    expect_question("What is the man-made thing?", 30, "what is the man made thing");
    expect_question("  What's  this?  ", 30, "  whats  this");
    expect_question("a b c d", 2, "a b");

    // the whole ALBEF text path: tokenizer(pre_caption(x, 30)), max_length 25
    char *c = pre_caption("A Man riding a Red-Car, in the (Person)'s city!!", 30);
    EXPECT_IDS(tok, c, 25, 101, 1037, 2158, 5559, 1037, 2417, 2482, 1999, 1996, 5381, 2103);
    free(c);
}

static void write_file(const char *path, const char *content) {
    FILE *f = fopenCheck(path, "wb");
    fwriteCheck(content, 1, strlen(content), f);
    fclose(f);
}

static void expect_load_error(const char *content, const char *needle1, const char *needle2) {
    char path[] = "/tmp/vlmae_vocab_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) die("mkstemp failed");
    close(fd);
    write_file(path, content);
    char err[512] = "";
    checks++;
    Tokenizer *t = tokenizer_load(path, err, sizeof err);
    if (t) {
        fail("vocab %s loaded but should fail (%s)", path, needle1);
        tokenizer_free(t);
    } else if (!strstr(err, path) || !strstr(err, needle1) || (needle2 && !strstr(err, needle2))) {
        fail("load error \"%s\" should name %s, %s, %s", err, path, needle1, needle2 ? needle2 : "");
    }
    unlink(path);
}

static void test_load_errors(void) {
    // duplicate: "dog" on lines 8 and 10 (1-based)
    expect_load_error("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\ncat\ndog\nb\ndog\nc\n", "line 10", "line 8");
    expect_load_error("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n[UNK]\n", "line 6", "line 2");
    expect_load_error("[PAD]\n[UNK]\n[CLS]\n[SEP]\na\n", "[MASK]", NULL);
    expect_load_error("[PAD]\r\n[UNK]\r\n", "carriage return", "line 1");
    expect_load_error("[PAD]\n[UNK]\n\xff\n", "UTF-8", "line 3");
    expect_load_error("", "empty", NULL);
    char err[256] = "";
    checks++;
    if (tokenizer_load("/nonexistent/vocab.txt", err, sizeof err) || !strstr(err, "/nonexistent/vocab.txt"))
        fail("missing file: \"%s\"", err);

    // a small valid vocab without a final newline; ids follow lines; hash is FNV-1a of the bytes
    char path[] = "/tmp/vlmae_vocab_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) die("mkstemp failed");
    close(fd);
    const char *content = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nstraw\n##berries\nlike";
    write_file(path, content);
    Tokenizer *t = tokenizer_load(path, err, sizeof err);
    checks++;
    if (!t) {
        fail("small vocab: %s", err);
    } else {
        uint64_t h = 0xcbf29ce484222325ULL;
        for (const char *p = content; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
        if (tokenizer_vocab_size(t) != 8 || tokenizer_id(t, "like") != 7 || tokenizer_cls_id(t) != 2 ||
            tokenizer_vocab_hash(t) != h)
            fail("small vocab: size %d, id(like) %d, hash %016llx vs %016llx", tokenizer_vocab_size(t),
                 tokenizer_id(t, "like"), (unsigned long long)tokenizer_vocab_hash(t), (unsigned long long)h);
        EXPECT_IDS(t, "Like strawberries, pie", 25, 2, 7, 5, 6, 1, 1);
        tokenizer_free(t);
    }
    unlink(path);
}

static void test_speed(const Tokenizer *tok) {
    const char *caps[] = {"a man riding a wave on top of a surfboard",
                          "two dogs are playing with a frisbee in the park near a large tree",
                          "une femme qui marche dans la rue avec un parapluie rouge",
                          "a kitchen with stainless steel appliances and granite counter tops"};
    int32_t ids[32];
    long tokens = 0;
    clock_t t0 = clock();
    int iters = 50000;
    for (int i = 0; i < iters; i++) tokens += tokenizer_encode(tok, caps[i & 3], ids, 25);
    double s = (double)(clock() - t0) / CLOCKS_PER_SEC;
    printf("speed: %.0f captions/s, %.1f M tokens/s\n", iters / s, (double)tokens / s / 1e6);
}

// ---- --dump mode for tests/tokenizer_cases.py ----

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void put_utf8(char **o, unsigned cp) {
    unsigned char *p = (unsigned char *)*o;
    if (cp < 0x80) {
        *p++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *p++ = (unsigned char)(0xC0 | (cp >> 6));
        *p++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *p++ = (unsigned char)(0xE0 | (cp >> 12));
        *p++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *p++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *p++ = (unsigned char)(0xF0 | (cp >> 18));
        *p++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        *p++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *p++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    *o = (char *)p;
}

static unsigned read_hex4(const char **s) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval((*s)[i]);
        if (h < 0) die("bad \\u escape");
        v = v * 16 + (unsigned)h;
    }
    *s += 4;
    return v;
}

// Decode one JSON string literal (as Python's json.dumps writes it). NUL characters are kept as
// bytes, so the result is a byte string with length *len.
static char *json_decode(const char *s, size_t *len) {
    char *out = mallocCheck(4 * strlen(s) + 1), *o = out;
    if (*s++ != '"') die("dump: expected a JSON string");
    while (*s && *s != '"') {
        if (*s != '\\') {
            *o++ = *s++;
            continue;
        }
        s++;
        char c = *s++;
        switch (c) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'u': {
            unsigned cp = read_hex4(&s);
            if (cp >= 0xD800 && cp < 0xDC00 && s[0] == '\\' && s[1] == 'u') {
                s += 2;
                unsigned lo = read_hex4(&s);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            put_utf8(&o, cp);
            break;
        }
        default: *o++ = c;
        }
    }
    *o = '\0';
    *len = (size_t)(o - out);
    return out;
}

static void json_print(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    putchar('"');
}

static int dump(const char *vocab, int max_len, int max_words) {
    char err[512];
    Tokenizer *tok = tokenizer_load(vocab, err, sizeof err);
    if (!tok) die("%s", err);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int32_t *ids = mallocCheck((size_t)max_len * sizeof(int32_t));
    while ((n = getline(&line, &cap, stdin)) > 0) {
        size_t len;
        char *text = json_decode(line, &len);
        // The C API takes NUL-terminated strings, so cases must not contain U+0000.
        if (strlen(text) != len) die("dump: a case contains U+0000, which the C API cannot take");
        int k = tokenizer_encode(tok, text, ids, max_len);
        for (int i = 0; i < k; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\t');
        char *c = pre_caption(text, max_words), *q = pre_question(text, max_words);
        json_print(c);
        putchar('\t');
        json_print(q);
        putchar('\t');
        k = tokenizer_encode(tok, c, ids, max_len);
        for (int i = 0; i < k; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
        free(c);
        free(q);
        free(text);
    }
    free(line);
    free(ids);
    tokenizer_free(tok);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--dump") == 0) return dump(argv[2], atoi(argv[3]), atoi(argv[4]));

    char path[4096];
    const char *top = getenv("top_srcdir"), *src = getenv("srcdir");
    if (argc > 1) snprintf(path, sizeof path, "%s", argv[1]);
    else if (top) snprintf(path, sizeof path, "%s/data/vocab.txt", top);
    else if (src) snprintf(path, sizeof path, "%s/data/vocab.txt", src);
    else snprintf(path, sizeof path, "data/vocab.txt");

    char err[512];
    Tokenizer *tok = tokenizer_load(path, err, sizeof err);
    if (!tok) {
        fprintf(stderr, "FAIL: %s\n", err);
        return 1;
    }
    printf("vocab %s: %d tokens, FNV-1a %016llx\n", path, tokenizer_vocab_size(tok),
           (unsigned long long)tokenizer_vocab_hash(tok));
    test_basic(tok);
    test_encode(tok);
    test_truncate_pad(tok);
    test_caption(tok);
    test_load_errors();
    test_speed(tok);
    tokenizer_free(tok);
    if (failures) {
        fprintf(stderr, "%d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("test_tokenizer: all %d checks passed\n", checks);
    return 0;
}
