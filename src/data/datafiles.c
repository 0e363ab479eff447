// datafiles.c: locating the files vlmae ships (datafiles.h).
#include "data/datafiles.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *data_file_path(const char *rel) {
    static char buf[4][4096];
    static int slot = 0;
    char *b = buf[slot++ % 4];
    // installed: configs/x and jobs/x under share/vlmae, data/vocab.txt as share/vlmae/vocab.txt
    const char *inst = strncmp(rel, "data/", 5) == 0 ? rel + 5 : rel;
    snprintf(b, sizeof(buf[0]), "%s/%s", VLMAE_PKGDATADIR, inst);
    if (access(b, R_OK) == 0) return b;
    snprintf(b, sizeof(buf[0]), "%s/%s", VLMAE_SRCDIR, rel);
    if (access(b, R_OK) == 0) return b;
    snprintf(b, sizeof(buf[0]), "%s", rel);
    return b;
}

const char *default_vocab_path(void) {
    const char *env = getenv("VLMAE_VOCAB");
    if (env && *env) return env;
    return data_file_path("data/vocab.txt");
}
