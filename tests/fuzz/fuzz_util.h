// fuzz_util.h: helpers shared by the libFuzzer harnesses in tests/fuzz/ (see README.md).
#ifndef VLMAE_FUZZ_UTIL_H
#define VLMAE_FUZZ_UTIL_H

#define _GNU_SOURCE  // memfd_create
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

// The fuzz input as a file, for readers that take a path: an anonymous in-memory file (memfd)
// named by path (/proc/self/fd/N). Returns the fd (close it with fuzz_file_close) or -1.
static inline int fuzz_file(const uint8_t *data, size_t size, char *path, size_t n) {
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd < 0) {
        perror("memfd_create");
        abort();
    }
    for (size_t done = 0; done < size;) {
        ssize_t k = write(fd, data + done, size - done);
        if (k <= 0) abort();
        done += (size_t)k;
    }
    snprintf(path, n, "/proc/self/fd/%d", fd);
    return fd;
}

static inline void fuzz_file_close(int fd) { close(fd); }

// A NUL-terminated malloc'ed copy of the input (ASan then catches reads past its end).
static inline char *fuzz_cstr(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = 0;
    return s;
}

// An error message must be a non-empty, NUL-terminated line of printable text.
static inline void fuzz_check_msg(const char *err, size_t cap) {
    size_t n = strnlen(err, cap);
    if (n == 0 || n == cap) abort();
}

#endif
