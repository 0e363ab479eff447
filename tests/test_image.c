// test_image.c: JPEG/PNG decode and encode (src/data/image.c) and the PIL-compatible bicubic resize.
//
// - JPEG round trip within JPEG tolerance; grayscale JPEG decodes to RGB with R = G = B; 4:4:4
//   chroma keeps pure colour blocks (4:2:0, the default, smears them).
// - PNG round trip exact (RGB); gray, RGBA, palette (+ transparency), 16-bit, 1-bit and
//   interlaced PNGs decode to the expected 8-bit RGB.
// - Truncated / corrupt / garbage data returns -1 with a message and never crashes or prints.
// - Bicubic resize equals Pillow's Image.resize(BICUBIC) bit for bit: the expected hashes were
//   produced with Pillow 9.4 by this script (pattern() is the same function as below):
//     def pattern(H, W):
//         y, x, c = np.mgrid[0:H, 0:W, 0:3]
//         return ((x*37 + y*91 + c*53 + ((x*y) % 7)*11 + ((x ^ y) & 8)*9) % 256).astype(np.uint8)
//     im = Image.fromarray(pattern(H, W)); im = im.crop((x0, y0, x0+cw, y0+ch)) if cropped
//     out = np.asarray(im.resize((ow, oh), Image.BICUBIC)); print(fnv1a64(out.reshape(-1)))
#define _POSIX_C_SOURCE 200809L // mkstemp
#include <math.h>
#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/image.h"
#include "engine/common.h"
#include "engine/rng.h"

#include "check.h"

static uint8_t pattern_px(int y, int x, int c) {
    return (uint8_t)((x * 37 + y * 91 + c * 53 + ((x * y) % 7) * 11 + ((x ^ y) & 8) * 9) % 256);
}

static void make_pattern(Image *im, int h, int w) {
    image_alloc(im, h, w, 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) im->px[((size_t)y * w + x) * 3 + c] = pattern_px(y, x, c);
}

// A smooth picture (what JPEG is for): gradients and a disc.
static void make_smooth(Image *im, int h, int w) {
    image_alloc(im, h, w, 3);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            uint8_t *p = im->px + ((size_t)y * w + x) * 3;
            double d = hypot(x - w * 0.6, y - h * 0.4);
            int disc = d < h * 0.25;
            p[0] = (uint8_t)(disc ? 220 : 40 + 150 * x / w);
            p[1] = (uint8_t)(disc ? 60 : 30 + 180 * y / h);
            p[2] = (uint8_t)(disc ? 50 : 120);
        }
    }
}

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static char tmpdir[256];

static void tmp_path(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", tmpdir, name); }

static int read_all(const char *path, uint8_t **buf, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = mallocCheck((size_t)sz);
    *n = fread(*buf, 1, (size_t)sz, f);
    fclose(f);
    return *n == (size_t)sz ? 0 : -1;
}

// ------------------------------------------------------------------------------------------

static void test_jpeg_roundtrip(void) {
    Image im, dec;
    make_smooth(&im, 48, 64);
    uint8_t *bytes;
    size_t n;
    char err[256];
    CHECKF(image_encode_jpeg(&im, 95, &bytes, &n) == 0 && n > 100, "encode jpeg");
    CHECKF(image_decode(bytes, n, &dec, err, sizeof(err)) == 0, "decode jpeg: %s", err);
    if (dec.px) {
        CHECKF(dec.h == 48 && dec.w == 64 && dec.c == 3, "jpeg dims %dx%dx%d", dec.h, dec.w, dec.c);
        double sum = 0, sq = 0;
        for (size_t i = 0; i < (size_t)48 * 64 * 3; i++) {
            int d = abs((int)dec.px[i] - (int)im.px[i]);
            sum += d;
            sq += (double)d * d;
        }
        double mean = sum / (48.0 * 64 * 3);
        double psnr = 10 * log10(255.0 * 255.0 / (sq / (48.0 * 64 * 3)));
        // Sharp red/green edges with 4:2:0 chroma subsampling cost a few dB; 32 dB is still
        // visually identical.
        CHECKF(mean < 3.0 && psnr > 32.0, "jpeg q95 round trip: mean abs diff %.3f, PSNR %.1f dB",
               mean, psnr);
    }
    // Quality matters: q=20 is worse than q=95 but still the same picture.
    uint8_t *b20;
    size_t n20;
    CHECKF(image_encode_jpeg(&im, 20, &b20, &n20) == 0 && n20 < n, "q20 smaller (%zu vs %zu)", n20, n);
    free(b20);
    image_free(&dec);

    // Gray JPEG (c = 1) decodes to RGB with equal channels.
    Image g;
    image_alloc(&g, 32, 40, 1);
    for (int i = 0; i < 32 * 40; i++) g.px[i] = (uint8_t)(i * 7 % 200 + 20);
    uint8_t *gb;
    size_t gn;
    CHECKF(image_encode_jpeg(&g, 100, &gb, &gn) == 0, "encode gray jpeg");
    CHECKF(image_decode(gb, gn, &dec, err, sizeof(err)) == 0, "decode gray jpeg: %s", err);
    if (dec.px) {
        int eq = 1, close = 1;
        for (int i = 0; i < 32 * 40; i++) {
            eq &= dec.px[3 * i] == dec.px[3 * i + 1] && dec.px[3 * i] == dec.px[3 * i + 2];
            close &= abs((int)dec.px[3 * i] - g.px[i]) <= 8;
        }
        CHECKF(dec.c == 3 && eq && close, "gray jpeg -> RGB replicated (eq %d close %d)", eq, close);
    }
    image_free(&dec);
    free(gb);
    image_free(&g);

    // Files.
    char path[512];
    tmp_path(path, sizeof(path), "a.jpg");
    CHECKF(image_write_jpeg(&im, 90, path) == 0, "write jpeg file");
    CHECKF(image_read_file(path, &dec, err, sizeof(err)) == 0 && dec.w == 64, "read jpeg file: %s", err);
    image_free(&dec);
    tmp_path(path, sizeof(path), "missing.jpg");
    CHECKF(image_read_file(path, &dec, err, sizeof(err)) == -1 && strstr(err, "missing.jpg"),
           "missing file reports its name: '%s'", err);
    free(bytes);
    image_free(&im);
}

// 4:4:4 keeps pure colours with sharp edges; 4:2:0 (the default) smears them.
static double chroma_mae(const Image *im, JpegChroma chroma) {
    uint8_t *b;
    size_t n;
    Image d;
    CHECKF(image_encode_jpeg_chroma(im, 95, chroma, &b, &n) == 0, "encode chroma %d", (int)chroma);
    CHECKF(image_decode(b, n, &d, NULL, 0) == 0 && d.h == im->h && d.w == im->w, "decode chroma %d",
           (int)chroma);
    double sum = 0;
    for (size_t i = 0; d.px && i < (size_t)im->h * im->w * 3; i++) sum += abs((int)d.px[i] - (int)im->px[i]);
    image_free(&d);
    free(b);
    return sum / ((double)im->h * im->w * 3);
}

static void test_jpeg_chroma(void) {
    static const uint8_t pal[6][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255},
                                      {255, 255, 0}, {255, 0, 255}, {0, 255, 255}};
    Image im;
    image_alloc(&im, 40, 56, 3);
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 56; x++) memcpy(im.px + ((size_t)y * 56 + x) * 3, pal[(x / 3 + 2 * (y / 3)) % 6], 3);
    double m420 = chroma_mae(&im, JPEG_CHROMA_420), m444 = chroma_mae(&im, JPEG_CHROMA_444);
    CHECKF(m444 < 4.0 && m444 * 3 < m420, "pure colour blocks: mean abs error 4:4:4 %.2f, 4:2:0 %.2f",
           m444, m420);
    // image_encode_jpeg is 4:2:0, byte for byte.
    uint8_t *a, *b;
    size_t na, nb;
    CHECK(image_encode_jpeg(&im, 90, &a, &na) == 0);
    CHECK(image_encode_jpeg_chroma(&im, 90, JPEG_CHROMA_420, &b, &nb) == 0);
    CHECK(na == nb && !memcmp(a, b, na));
    free(a);
    free(b);
    image_free(&im);
}

static void test_jpeg_errors(void) {
    Image im, dec;
    make_smooth(&im, 64, 80);
    uint8_t *bytes;
    size_t n;
    char err[256];
    image_encode_jpeg(&im, 90, &bytes, &n);
    // Truncations anywhere: always an error with a message (no grey-padded image, no exit).
    size_t cuts[] = {3, 4, 20, 200, n / 3, n / 2, n - 20, n - 2};
    for (size_t k = 0; k < sizeof(cuts) / sizeof(*cuts); k++) {
        err[0] = 0;
        int rc = image_decode(bytes, cuts[k], &dec, err, sizeof(err));
        CHECKF(rc == -1 && err[0] && dec.px == NULL, "truncated jpeg at %zu/%zu: rc %d err '%s'",
               cuts[k], n, rc, err);
        image_free(&dec);
    }
    // Corrupted entropy-coded data: must not crash; either decodes or reports an error.
    Rng r;
    rng_seed(&r, 5);
    uint8_t *bad = mallocCheck(n);
    for (int t = 0; t < 50; t++) {
        memcpy(bad, bytes, n);
        for (int k = 0; k < 8; k++) bad[200 + rng_randint(&r, (int64_t)n - 210)] = (uint8_t)rng_u32(&r);
        int rc = image_decode(bad, n, &dec, err, sizeof(err));
        CHECKF(rc == 0 || (rc == -1 && err[0]), "corrupt jpeg: rc %d", rc);
        if (rc == 0) CHECKF(dec.w == 80 && dec.h == 64, "corrupt jpeg dims");
        image_free(&dec);
    }
    // Corrupted header (dimensions / markers).
    for (int t = 0; t < 50; t++) {
        memcpy(bad, bytes, n);
        bad[3 + rng_randint(&r, 190)] = (uint8_t)rng_u32(&r);
        int rc = image_decode(bad, n, &dec, err, sizeof(err));
        CHECKF(rc == 0 || (rc == -1 && err[0]), "corrupt jpeg header: rc %d", rc);
        image_free(&dec);
    }
    free(bad);
    // Garbage.
    uint8_t junk[1000];
    for (size_t i = 0; i < sizeof(junk); i++) junk[i] = (uint8_t)rng_u32(&r);
    CHECKF(image_decode(junk, sizeof(junk), &dec, err, sizeof(err)) == -1 && strstr(err, "unknown"),
           "garbage: '%s'", err);
    junk[0] = 0xFF, junk[1] = 0xD8, junk[2] = 0xFF;
    CHECKF(image_decode(junk, sizeof(junk), &dec, err, sizeof(err)) == -1 && err[0],
           "JPEG signature + garbage");
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    memcpy(junk, sig, 8);
    CHECKF(image_decode(junk, sizeof(junk), &dec, err, sizeof(err)) == -1 && strstr(err, "PNG"),
           "PNG signature + garbage: '%s'", err);
    CHECKF(image_decode(junk, 2, &dec, err, sizeof(err)) == -1, "2 bytes");
    CHECKF(image_decode(NULL, 0, &dec, err, sizeof(err)) == -1, "NULL");
    CHECKF(image_decode(junk, 0, &dec, NULL, 0) == -1, "no err buffer");
    // Encoding what cannot be encoded.
    Image two = {.h = 2, .w = 2, .c = 2, .px = junk};
    uint8_t *b2;
    size_t n2;
    CHECKF(image_encode_jpeg(&two, 90, &b2, &n2) == -1 && b2 == NULL, "jpeg of 2 channels refused");
    CHECKF(image_write_png(&two, "/nonexistent-dir/x.png") == -1, "png to bad path");
    free(bytes);
    image_free(&im);
}

// Write a PNG with libpng directly (formats image_write_png does not produce).
static void write_png_raw(const char *path, int w, int h, int color_type, int depth,
                          const uint8_t *rows, size_t rowbytes, const png_color *pal, int npal,
                          const uint8_t *trns, int ntrns, int interlace) {
    FILE *f = fopen(path, "wb");
    if (!f) die("cannot write %s", path);
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(p);
    if (setjmp(png_jmpbuf(p))) die("libpng failed writing %s", path);
    png_init_io(p, f);
    png_set_IHDR(p, info, (png_uint_32)w, (png_uint_32)h, depth, color_type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(p, info, pal, npal);
    if (trns) png_set_tRNS(p, info, trns, ntrns, NULL);
    png_write_info(p, info);
    if (depth == 16) png_set_swap(p); // rows hold little-endian uint16
    png_bytep *rp = mallocCheck(sizeof(png_bytep) * h);
    for (int y = 0; y < h; y++) rp[y] = (png_bytep)(rows + (size_t)y * rowbytes);
    png_write_image(p, rp);
    png_write_end(p, NULL);
    png_destroy_write_struct(&p, &info);
    free(rp);
    fclose(f);
}

static void test_png(void) {
    char path[512], err[256];
    Image im, dec;
    make_pattern(&im, 23, 31);
    tmp_path(path, sizeof(path), "rgb.png");
    CHECKF(image_write_png(&im, path) == 0, "write png");
    CHECKF(image_read_file(path, &dec, err, sizeof(err)) == 0, "read png: %s", err);
    CHECKF(dec.px && dec.h == 23 && dec.w == 31 && dec.c == 3 &&
              memcmp(dec.px, im.px, (size_t)23 * 31 * 3) == 0,
           "png round trip exact");
    image_free(&dec);

    // Truncated PNG: error, not a crash.
    uint8_t *bytes = NULL;
    size_t n = 0;
    if (read_all(path, &bytes, &n) != 0 || n < 100) die("cannot read back %s", path);
    size_t cuts[] = {8, 20, 40, n / 2, n - 30};
    for (size_t k = 0; k < sizeof(cuts) / sizeof(*cuts); k++) {
        int rc = image_decode(bytes, cuts[k], &dec, err, sizeof(err));
        CHECKF(rc == -1 && err[0], "truncated png at %zu/%zu: rc %d", cuts[k], n, rc);
        image_free(&dec);
    }
    // A flipped byte inside the compressed data: CRC/zlib error.
    bytes[n / 2] ^= 0x55;
    CHECKF(image_decode(bytes, n, &dec, err, sizeof(err)) == -1 && err[0], "corrupt png rejected");
    image_free(&dec);
    free(bytes);

    // Gray (c = 1) and RGBA (c = 4) written by image_write_png.
    Image g;
    image_alloc(&g, 5, 7, 1);
    for (int i = 0; i < 35; i++) g.px[i] = (uint8_t)(i * 7);
    tmp_path(path, sizeof(path), "gray.png");
    image_write_png(&g, path);
    CHECKF(image_read_file(path, &dec, err, sizeof(err)) == 0, "gray png: %s", err);
    int ok = dec.px && dec.c == 3;
    for (int i = 0; ok && i < 35; i++)
        ok = dec.px[3 * i] == g.px[i] && dec.px[3 * i + 1] == g.px[i] && dec.px[3 * i + 2] == g.px[i];
    CHECKF(ok, "gray png -> RGB replicated");
    image_free(&dec);
    image_free(&g);

    Image a;
    image_alloc(&a, 4, 6, 4);
    for (int i = 0; i < 24 * 4; i++) a.px[i] = (uint8_t)(i * 11);
    tmp_path(path, sizeof(path), "rgba.png");
    image_write_png(&a, path);
    CHECKF(image_read_file(path, &dec, err, sizeof(err)) == 0, "rgba png: %s", err);
    ok = dec.px && dec.c == 3;
    for (int i = 0; ok && i < 24; i++)
        ok = !memcmp(dec.px + 3 * i, a.px + 4 * i, 3); // alpha dropped, colour untouched
    CHECKF(ok, "rgba png -> RGB (alpha dropped)");
    image_free(&dec);
    image_free(&a);

    // Palette with transparency, 4-bit.
    png_color pal[3] = {{255, 0, 0}, {0, 255, 0}, {10, 20, 30}};
    uint8_t trns[1] = {0};
    uint8_t prow[3 * 2]; // 3 rows of 4 pixels at 4 bits = 2 bytes per row
    for (int y = 0; y < 3; y++) prow[2 * y] = (uint8_t)((y % 3) << 4 | ((y + 1) % 3)), prow[2 * y + 1] = 0x22;
    tmp_path(path, sizeof(path), "pal.png");
    write_png_raw(path, 4, 3, PNG_COLOR_TYPE_PALETTE, 4, prow, 2, pal, 3, trns, 1, 0);
    CHECKF(image_read_file(path, &dec, err, sizeof(err)) == 0, "palette png: %s", err);
    if (dec.px) {
        ok = dec.w == 4 && dec.h == 3 && dec.c == 3;
        for (int y = 0; ok && y < 3; y++) {
            int idx[4] = {y % 3, (y + 1) % 3, 2, 2};
            for (int x = 0; x < 4; x++) {
                const uint8_t *q = dec.px + (y * 4 + x) * 3;
                const png_color *c = &pal[idx[x]];
                ok &= q[0] == c->red && q[1] == c->green && q[2] == c->blue;
            }
        }
        CHECKF(ok, "palette png -> RGB of the palette entries");
    }
    image_free(&dec);

    // 16-bit RGB, interlaced: the high byte (as PIL).
    uint16_t rows16[6 * 5 * 3];
    for (int i = 0; i < 6 * 5 * 3; i++) rows16[i] = (uint16_t)(i * 2011 + 7);
    tmp_path(path, sizeof(path), "rgb16.png");
    write_png_raw(path, 5, 6, PNG_COLOR_TYPE_RGB, 16, (const uint8_t *)rows16, 5 * 3 * 2, NULL, 0,
                  NULL, 0, 1);
    CHECKF(image_read_file(path, &dec, err, sizeof(err)) == 0, "16-bit png: %s", err);
    ok = dec.px && dec.w == 5 && dec.h == 6;
    for (int i = 0; ok && i < 6 * 5 * 3; i++) ok = dec.px[i] == rows16[i] >> 8;
    CHECKF(ok, "16-bit interlaced png -> high bytes");
    image_free(&dec);

    // 1-bit gray.
    uint8_t bits[2] = {0xA0, 0x50}; // rows: 1010 0000, 0101 0000 (width 4)
    tmp_path(path, sizeof(path), "bits.png");
    write_png_raw(path, 4, 2, PNG_COLOR_TYPE_GRAY, 1, bits, 1, NULL, 0, NULL, 0, 0);
    CHECKF(image_read_file(path, &dec, err, sizeof(err)) == 0, "1-bit png: %s", err);
    if (dec.px) {
        static const uint8_t want[8] = {255, 0, 255, 0, 0, 255, 0, 255};
        ok = 1;
        for (int i = 0; i < 8; i++) ok &= dec.px[3 * i] == want[i] && dec.px[3 * i + 2] == want[i];
        CHECKF(ok, "1-bit png -> 0/255");
    }
    image_free(&dec);
    image_free(&im);
}

static void test_resize(void) {
    // Pillow's output hashes (see the header comment) and first byte.
    static const struct {
        int W, H, x0, y0, cw, ch, ow, oh;
        uint64_t hash;
        int first;
    } cases[] = {
        {13, 9, 0, 0, 13, 9, 5, 4, 0x10c33f4a45c0db77ULL, 105},
        {13, 9, 0, 0, 13, 9, 29, 17, 0xe2c2078ead5e34eeULL, 0},
        {13, 9, 0, 0, 13, 9, 13, 4, 0x838d462e938c24f6ULL, 73},
        {13, 9, 0, 0, 13, 9, 6, 9, 0x5bc1539c015e8099ULL, 23},
        {13, 9, 2, 1, 9, 7, 11, 5, 0xd1c02def231e2156ULL, 137},
        {300, 200, 0, 0, 300, 200, 256, 256, 0x1e9e72c6bf862eb2ULL, 0},
        {300, 200, 37, 11, 201, 150, 64, 96, 0x704b444905798a25ULL, 145},
        {40, 30, 0, 0, 40, 30, 1, 1, 0xaddc5c1975af198cULL, 126},
        {3, 2, 0, 0, 3, 2, 100, 70, 0x80669b4ad00ff3d1ULL, 0},
    };
    ResampleBuf ws = {0};
    for (size_t k = 0; k < sizeof(cases) / sizeof(*cases); k++) {
        Image src, dst = {0};
        make_pattern(&src, cases[k].H, cases[k].W);
        dst.w = cases[k].ow;
        dst.h = cases[k].oh;
        // Alternate between the shared workspace and none.
        image_resize_bicubic_region(&src, cases[k].x0, cases[k].y0, cases[k].cw, cases[k].ch, &dst,
                                    k % 2 ? &ws : NULL);
        uint64_t h = fnv1a(dst.px, (size_t)dst.w * dst.h * 3);
        CHECKF(h == cases[k].hash && dst.px[0] == cases[k].first,
               "resize %dx%d (%d,%d %dx%d) -> %dx%d differs from Pillow (hash %016llx, first %d)",
               cases[k].W, cases[k].H, cases[k].x0, cases[k].y0, cases[k].cw, cases[k].ch,
               cases[k].ow, cases[k].oh, (unsigned long long)h, dst.px[0]);
        image_free(&dst);
        image_free(&src);
    }
    resample_buf_free(&ws);

    // Same size: a copy. Into a caller buffer.
    Image src, dst;
    make_pattern(&src, 17, 19);
    uint8_t *buf = mallocCheck(17 * 19 * 3);
    dst = (Image){.h = 17, .w = 19, .px = buf};
    image_resize_bicubic(&src, &dst);
    CHECKF(dst.c == 3 && dst.px == buf && !memcmp(buf, src.px, 17 * 19 * 3), "same-size resize copies");
    free(buf);

    // A constant image stays constant (coefficients sum to one, also when downscaling 10x).
    memset(src.px, 77, 17 * 19 * 3);
    dst = (Image){.h = 2, .w = 3};
    image_resize_bicubic(&src, &dst);
    int ok = 1;
    for (int i = 0; i < 2 * 3 * 3; i++) ok &= dst.px[i] == 77;
    CHECKF(ok, "constant image stays constant");
    image_free(&dst);
    image_free(&src);
}

int main(void) {
    if (make_temp_dir(tmpdir, sizeof(tmpdir), "vlmae_test_image_XXXXXX") != 0) return 1;
    test_jpeg_roundtrip();
    test_jpeg_chroma();
    test_jpeg_errors();
    test_png();
    test_resize();
    const char *names[] = {"a.jpg", "rgb.png", "gray.png", "rgba.png", "pal.png", "rgb16.png", "bits.png"};
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
        char p[512];
        tmp_path(p, sizeof(p), names[i]);
        unlink(p);
    }
    rmdir(tmpdir);
    printf("test_image: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
