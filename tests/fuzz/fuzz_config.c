// fuzz_config.c: libFuzzer harness for the run configuration (src/train/config.c: YAML via libyaml,
// --set overrides, validation, dump). Built and run by `make fuzz` (tests/fuzz/README.md).
// Input: a YAML config; or, when it starts with "--set\n", one --set KEY=VALUE per line applied
// on top of configs/tiny.yaml's settings.
// Checks beyond "no crash": every error is one non-empty line; a config that loads dumps to YAML
// that loads back to the same config (config_diff finds nothing), and copies compare equal.
#include "fuzz_util.h"  // first: it defines _GNU_SOURCE

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/config.h"

static const char base_yaml[] =
    "model: {preset: tiny, objective: vlmae, queue_size: 64}\n"
    "train: {batch_size: 8, max_steps: 400, lr: 2.0e-3, warmup_steps: 20}\n"
    "data: {text_max_len: 25, threads: 2, datasets: [{name: synth, shards: [\"${DATA:-.}/s-*.h5\"]}]}\n";

static void check_err(const char *err, size_t cap) {
    fuzz_check_msg(err, cap);
    if (strchr(err, '\n')) abort();
}

static void round_trip(const RunConfig *c) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f || config_dump(c, f) != 0) abort();
    fclose(f);
    RunConfig back;
    char err[1024], diff[4096];
    if (config_load_string(&back, text, len, "dump.yaml", err, sizeof err) != 0) {
        fprintf(stderr, "a dumped config does not load back: %s\n--- dump:\n%s\n", err, text);
        abort();
    }
    if (config_diff(c, &back, diff, sizeof diff) != 0) {
        fprintf(stderr, "dump -> load changes the config:\n%s\n--- dump:\n%s\n", diff, text);
        abort();
    }
    RunConfig copy;
    config_copy(&copy, &back);
    if (config_diff(&copy, &back, diff, sizeof diff) != 0) abort();
    config_free(&copy);
    config_free(&back);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024];
    RunConfig c;
    int rc;
    if (size >= 6 && memcmp(data, "--set\n", 6) == 0) {
        if (config_load_string(&c, base_yaml, sizeof base_yaml - 1, "base.yaml", err, sizeof err) != 0) abort();
        char *s = fuzz_cstr(data + 6, size - 6), *save = NULL;
        rc = 0;
        for (char *line = strtok_r(s, "\n", &save); line && rc == 0; line = strtok_r(NULL, "\n", &save))
            rc = config_set(&c, line, err, sizeof err);
        free(s);
    } else {
        char *s = malloc(size ? size : 1);  // a private copy: reads past the end are caught
        memcpy(s, data, size);
        rc = config_load_string(&c, s, size, "fuzz.yaml", err, sizeof err);
        free(s);
    }
    if (rc != 0) {
        check_err(err, sizeof err);
    } else {
        round_trip(&c);
        for (int world = 1; world <= 3; world++)
            if (config_validate(&c, world, err, sizeof err) != 0) check_err(err, sizeof err);
        if (config_validate_data(&c, err, sizeof err) != 0) check_err(err, sizeof err);
    }
    config_free(&c);
    return 0;
}
