// tokenize.c: `vlmae tokenize` — the token ids of captions exactly as the data loader feeds them to
// the text encoder, to check a vocabulary, a max length or a strange caption by eye.
//
// The path of a caption in training: `vlmae pack` cleans it with pre_caption (ALBEF's: lower case,
// punctuation removed, at most max_words words; data/caption.h) and stores the cleaned text; the
// loader encodes the stored text with tokenizer_encode_padded: [CLS] + WordPiece pieces, cut to
// max_len ids, no [SEP] (data/tokenizer.h). This command runs the same two functions.
#define _GNU_SOURCE  // getline
#include "cli/tokenize.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/caption.h"
#include "data/datafiles.h"
#include "data/tokenizer.h"
#include "train/config.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: vlmae tokenize [-c CONFIG] [--vocab FILE] [--max-len N] [--max-words N] [--json]\n"
            "                      [CAPTION...]\n"
            "\n"
            "Prints the token ids the data loader feeds the text encoder for each caption: the\n"
            "caption cleaned as `vlmae pack` stores it (lower case, punctuation removed, at most\n"
            "--max-words words), then [CLS] + its WordPiece pieces, cut to --max-len ids (no [SEP],\n"
            "as ALBEF). Captions come from the arguments, else one per line of standard input.\n"
            "\n"
            "Output, one line per caption: the cleaned caption, a tab, then ID:PIECE pairs, e.g.\n"
            "  a man riding a horse<TAB>101:[CLS] 1037:a 2158:man 5559:riding 1037:a 3586:horse\n"
            "\n"
            "options\n"
            "  -c CONFIG       take data.vocab, data.max_words and the text length from a run config\n"
            "                  (task.text_max_len when it names a task, else data.text_max_len)\n"
            "  --vocab FILE    vocabulary (default: the config's data.vocab, else the installed one)\n"
            "  --max-len N     ids per caption, [CLS] included (default: the config's, else 25,\n"
            "                  the pre-training length)\n"
            "  --max-words N   words the clean-up keeps (default: the config's data.max_words, else 30)\n"
            "  --json          one JSON object per line instead: {\"caption\", \"cleaned\", \"ids\",\n"
            "                  \"pieces\"}\n");
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

// A JSON string (UTF-8 passed through; quotes, backslashes and control characters escaped).
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c < 0x20 || c == 0x7f) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

// One caption: clean, encode, print. ids has room for max_len entries.
static void print_caption(const Tokenizer *tok, const char *caption, int max_words, int max_len,
                          int json, int32_t *ids) {
    char *clean = pre_caption(caption, max_words);
    int n = tokenizer_encode(tok, clean, ids, max_len);
    if (json) {
        fputs("{\"caption\": ", stdout);
        json_str(stdout, caption);
        fputs(", \"cleaned\": ", stdout);
        json_str(stdout, clean);
        fputs(", \"ids\": [", stdout);
        for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
        fputs("], \"pieces\": [", stdout);
        for (int i = 0; i < n; i++) {
            if (i) fputs(", ", stdout);
            json_str(stdout, tokenizer_token(tok, ids[i]));
        }
        fputs("]}\n", stdout);
    } else {
        // (a tab or newline left inside the cleaned caption is shown as a space: one line each)
        for (const char *c = clean; *c; c++) fputc(*c == '\t' || *c == '\n' || *c == '\r' ? ' ' : *c, stdout);
        fputc('\t', stdout);
        for (int i = 0; i < n; i++) printf("%s%d:%s", i ? " " : "", ids[i], tokenizer_token(tok, ids[i]));
        fputc('\n', stdout);
    }
    free(clean);
}

int tokenize_main(int argc, char **argv) {
    const char *config = NULL, *vocab = NULL;
    int max_len = 0, max_words = 0, json = 0;
    int first = argc;  // first caption argument
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--")) {
            first = i + 1;
            break;
        }
        if (a[0] != '-' || !a[1]) {  // a caption ("-" alone too)
            first = i;
            break;
        }
        if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "vlmae tokenize: option %s needs a value (see vlmae tokenize --help)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            config = v;
        } else if (!strcmp(a, "--vocab")) {
            vocab = v;
        } else if (!strcmp(a, "--max-len")) {
            if (!parse_int(v, 1, 100000, &max_len)) {
                fprintf(stderr, "vlmae tokenize: invalid --max-len '%s' (need 1..100000)\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--max-words")) {
            if (!parse_int(v, 1, 100000, &max_words)) {
                fprintf(stderr, "vlmae tokenize: invalid --max-words '%s' (need 1..100000)\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "vlmae tokenize: unknown option %s (see vlmae tokenize --help)\n", a);
            return 2;
        }
    }
    // Defaults from the config (as the loader would take them), else the pre-training ones.
    RunConfig rc;
    config_defaults(&rc);
    char err[2048];
    if (config && config_load(&rc, config, err, sizeof err) != 0) {
        fprintf(stderr, "vlmae tokenize: %s\n", err);
        config_free(&rc);
        return 2;
    }
    if (!max_len) max_len = rc.task.name[0] ? rc.task.text_max_len : rc.data.text_max_len;
    if (!max_words) max_words = rc.data.max_words;
    char vocab_path[CONFIG_PATH_MAX];
    snprintf(vocab_path, sizeof vocab_path, "%s",
             vocab ? vocab : rc.data.vocab[0] ? rc.data.vocab : default_vocab_path());
    config_free(&rc);
    Tokenizer *tok = tokenizer_load(vocab_path, err, sizeof err);
    if (!tok) {
        fprintf(stderr, "vlmae tokenize: %s\n", err);
        return 2;
    }
    int32_t *ids = malloc((size_t)max_len * sizeof(int32_t));
    if (!ids) {
        fprintf(stderr, "vlmae tokenize: out of memory\n");
        tokenizer_free(tok);
        return 1;
    }
    if (first < argc) {
        for (int i = first; i < argc; i++) print_caption(tok, argv[i], max_words, max_len, json, ids);
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while ((n = getline(&line, &cap, stdin)) >= 0) {
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
            print_caption(tok, line, max_words, max_len, json, ids);
        }
        free(line);
    }
    free(ids);
    tokenizer_free(tok);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "vlmae tokenize: write error on standard output\n");
        return 1;
    }
    return 0;
}
