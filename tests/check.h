// tests/check.h: the check counters, check macros and temporary-directory helper that the C tests
// in tests/ share (tests/fuzz does not use it). Include it in a test's .c file after the system
// headers; everything here is static, one copy per test program.
//
//   failures, checks    how many checks failed, and how many were made
//   fail(fmt, ...)      print "FAIL: message" on stderr and count a failure
//   CHECK(cond)         count a check; if cond is false print "FAIL file:line: cond" on stderr
//                       and count a failure
//   CHECKF(cond, fmt, ...)  the same with a printf message: "FAIL file:line: cond: message"
//   ok(what)            print "ok what" (or "(after failures) what") on stdout
//   make_temp_dir(buf, n, name)  create $TMPDIR/name (or /tmp/name; name ends in XXXXXX) with
//                       mkdtemp; 0 on success, -1 after perror("mkdtemp")
//
// A test returns failures ? 1 : 0 from main (77 to skip). Failure lines go to stderr, after
// stdout is flushed, so that a log holding both keeps them in order with the test's own output.
#ifndef VLMAE_TESTS_CHECK_H
#define VLMAE_TESTS_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int failures = 0, checks = 0;

static inline void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fprintf(stderr, "FAIL: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    failures++;
}

// The failure report of CHECK and CHECKF; fmt may be NULL (no message).
static inline void check_failed(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline void check_failed(const char *file, int line, const char *cond, const char *fmt, ...) {
    fflush(stdout);
    fprintf(stderr, "FAIL %s:%d: %s", file, line, cond);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, ": ");
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
    failures++;
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) check_failed(__FILE__, __LINE__, #cond, NULL);                                \
    } while (0)

#define CHECKF(cond, ...)                                                                          \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) check_failed(__FILE__, __LINE__, #cond, __VA_ARGS__);                         \
    } while (0)

static inline void ok(const char *what) { printf("%s %s\n", failures ? "(after failures)" : "ok", what); }

static inline int make_temp_dir(char *buf, size_t n, const char *name) {
    const char *base = getenv("TMPDIR");
    snprintf(buf, n, "%s/%s", base && *base ? base : "/tmp", name);
    if (!mkdtemp(buf)) {
        perror("mkdtemp");
        return -1;
    }
    return 0;
}

#endif
