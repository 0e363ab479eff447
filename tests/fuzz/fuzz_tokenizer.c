// fuzz_tokenizer.c: libFuzzer harness for the WordPiece tokenizer (src/data/tokenizer.c) and the caption
// clean-up in front of it (src/data/caption.c). Built and run by `make fuzz` (tests/fuzz/README.md).
// Input, by its first byte:
//   'V' + a vocab.txt       tokenizer_load on it; if it loads, encode a few fixed texts with it;
//   anything else: text     pre_caption / pre_question, then encode with data/vocab.txt (the
//                           bert-base-uncased vocabulary; $VLMAE_VOCAB overrides the path).
// Checks beyond "no crash": errors are one non-empty line; encodings start with [CLS], stay within
// max_len and the vocabulary, the mask is 1 exactly on the non-padding ids, ids round-trip through
// tokenizer_token / tokenizer_id.
#include "fuzz_util.h"  // first: it defines _GNU_SOURCE

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/caption.h"
#include "data/tokenizer.h"

#ifndef VLMAE_SRCDIR
#define VLMAE_SRCDIR "."
#endif

static Tokenizer *bert;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *path = getenv("VLMAE_VOCAB");
    char buf[4096], err[1024];
    if (!path || !*path) snprintf(buf, sizeof buf, "%s/data/vocab.txt", VLMAE_SRCDIR), path = buf;
    bert = tokenizer_load(path, err, sizeof err);
    if (!bert) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err);
        exit(1);
    }
    return 0;
}

static void check_encode(const Tokenizer *tok, const char *text) {
    int V = tokenizer_vocab_size(tok);
    for (int max_len = 1; max_len <= 32; max_len += 7) {
        int32_t ids[32], mask[32];
        int n = tokenizer_encode_padded(tok, text, ids, mask, max_len);
        if (n < 1 || n > max_len || ids[0] != tokenizer_cls_id(tok)) abort();
        for (int i = 0; i < max_len; i++) {
            if (ids[i] < 0 || ids[i] >= V) abort();
            if (mask[i] != (i < n)) abort();
            if (i >= n && ids[i] != tokenizer_pad_id(tok)) abort();
            const char *t = tokenizer_token(tok, ids[i]);
            if (!t || tokenizer_id(tok, t) != ids[i]) abort();
        }
        int32_t raw[32];
        if (tokenizer_encode(tok, text, raw, max_len) != n || memcmp(raw, ids, (size_t)n * sizeof(int32_t))) abort();
    }
    int32_t pieces[256];
    int np = tokenizer_pieces(tok, text, pieces, 256);
    for (int i = 0; i < np && i < 256; i++)
        if (pieces[i] < 0 || pieces[i] >= V) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size >= 1 && data[0] == 'V') {
        char path[64], err[1024];
        int fd = fuzz_file(data + 1, size - 1, path, sizeof path);
        Tokenizer *tok = tokenizer_load(path, err, sizeof err);
        fuzz_file_close(fd);
        if (!tok) {
            fuzz_check_msg(err, sizeof err);
            return 0;
        }
        static const char *texts[] = {"", "a man riding a horse", "[SEP] [MASK]x ##a", "naïve café 東京 !!!"};
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) check_encode(tok, texts[i]);
        tokenizer_free(tok);
        return 0;
    }
    char *text = fuzz_cstr(data, size);
    check_encode(bert, text);
    for (int words = 0; words <= 30; words += 30) {
        char *c = pre_caption(text, words);
        if (c) {
            check_encode(bert, c);
            free(c);
        }
        char *q = pre_question(text, words);
        if (q) {
            check_encode(bert, q);
            free(q);
        }
    }
    free(text);
    return 0;
}
