// common.h: error-checking macros and small helpers shared by every file of vlmae.
// Every check names the file and line of the call site (llm.c style), so a failure in a
// multi-day cluster run says exactly where it came from.
#ifndef VLMAE_COMMON_H
#define VLMAE_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

// die: print "vlmae: file:line: message" and exit(1).
void die_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
#define die(...) die_at(__FILE__, __LINE__, __VA_ARGS__)

void *malloc_check(size_t size, const char *file, int line);
void *calloc_check(size_t n, size_t size, const char *file, int line);
FILE *fopen_check(const char *path, const char *mode, const char *file, int line);
void fread_check(void *ptr, size_t size, size_t n, FILE *f, const char *file, int line);
void fwrite_check(const void *ptr, size_t size, size_t n, FILE *f, const char *file, int line);

#define mallocCheck(size) malloc_check((size), __FILE__, __LINE__)
#define callocCheck(n, size) calloc_check((n), (size), __FILE__, __LINE__)
#define fopenCheck(path, mode) fopen_check((path), (mode), __FILE__, __LINE__)
#define freadCheck(ptr, size, n, f) fread_check((ptr), (size), (n), (f), __FILE__, __LINE__)
#define fwriteCheck(ptr, size, n, f) fwrite_check((ptr), (size), (n), (f), __FILE__, __LINE__)

// mkdir -p: creates path and its missing parents (mode 0755). Returns 0, or -1 with errno set.
int mkdir_p(const char *path);
// Seconds on the monotonic clock (for step times and rates).
double now_seconds(void);

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
