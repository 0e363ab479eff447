// image.c: JPEG/PNG decode and encode (libjpeg-turbo, libpng) and PIL-compatible bicubic
// resampling. See image.h.
#include "data/image.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "engine/common.h"

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void image_alloc(Image *im, int h, int w, int c) {
    im->h = h;
    im->w = w;
    im->c = c;
    im->px = mallocCheck((size_t)h * (size_t)w * (size_t)c);
}

void image_free(Image *im) {
    if (!im) return;
    free(im->px);
    memset(im, 0, sizeof(*im));
}

static int dims_ok(long w, long h, char *err, size_t errlen) {
    if (w <= 0 || h <= 0) {
        set_err(err, errlen, "image has empty dimensions %ldx%ld", w, h);
        return 0;
    }
    if (w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || (int64_t)w * h > IMAGE_MAX_PIXELS) {
        set_err(err, errlen, "image too large: %ldx%ld (limit %d per side, %d pixels)", w, h,
                IMAGE_MAX_SIDE, IMAGE_MAX_PIXELS);
        return 0;
    }
    return 1;
}

// ------------------------------------------------------------------------------------------
// JPEG

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} JpegErr;

static void jpeg_err_exit(j_common_ptr c) {
    JpegErr *e = (JpegErr *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jb, 1);
}

// Warnings (level -1) are corrupt-data notices. A premature end of data means the decoder would
// pad the rest of the image with grey: treat it as an error, as PIL does by default. Other
// warnings (extraneous bytes before a marker, ...) are tolerated, as PIL and browsers do. Trace
// messages (level >= 0) are ignored. Nothing is printed.
static void jpeg_err_emit(j_common_ptr c, int level) {
    if (level >= 0) return;
    if (c->err->msg_code == JWRN_JPEG_EOF) {
        JpegErr *e = (JpegErr *)c->err;
        snprintf(e->msg, sizeof(e->msg), "truncated JPEG data (premature end of file)");
        longjmp(e->jb, 1);
    }
    c->err->num_warnings++;
}

static void jpeg_err_output(j_common_ptr c) { (void)c; }

static void jpeg_err_init(JpegErr *e) {
    jpeg_std_error(&e->pub);
    e->pub.error_exit = jpeg_err_exit;
    e->pub.emit_message = jpeg_err_emit;
    e->pub.output_message = jpeg_err_output;
    e->msg[0] = 0;
}

static int decode_jpeg(const uint8_t *bytes, size_t n, Image *out, char *err, size_t errlen) {
    struct jpeg_decompress_struct cinfo;
    JpegErr jerr;
    uint8_t *volatile px = NULL;
    uint8_t *volatile row = NULL;
    jpeg_err_init(&jerr);
    cinfo.err = &jerr.pub;
    if (setjmp(jerr.jb)) {
        set_err(err, errlen, "JPEG: %s", jerr.msg);
        jpeg_destroy_decompress(&cinfo);
        free(px);
        free(row);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, bytes, (unsigned long)n);
    jpeg_read_header(&cinfo, TRUE);
    if (!dims_ok((long)cinfo.image_width, (long)cinfo.image_height, err, errlen)) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    int cmyk = 0;
    switch (cinfo.jpeg_color_space) {
    case JCS_CMYK:
    case JCS_YCCK:
        cinfo.out_color_space = JCS_CMYK;
        cmyk = 1;
        break;
    default: // gray, YCbCr, RGB: libjpeg-turbo converts to RGB itself
        cinfo.out_color_space = JCS_RGB;
        break;
    }
    // The library defaults, which are also PIL's: accurate integer IDCT, fancy upsampling.
    cinfo.dct_method = JDCT_ISLOW;
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height;
    int comps = cinfo.output_components;
    if (comps != (cmyk ? 4 : 3)) {
        snprintf(jerr.msg, sizeof(jerr.msg), "unexpected %d output components", comps);
        longjmp(jerr.jb, 1);
    }
    px = malloc((size_t)w * h * 3);
    if (cmyk) row = malloc((size_t)w * 4);
    if (!px || (cmyk && !row)) {
        snprintf(jerr.msg, sizeof(jerr.msg), "out of memory for %dx%d image", w, h);
        longjmp(jerr.jb, 1);
    }
    // Adobe CMYK JPEGs (Photoshop) store inverted values; PIL's convention is followed.
    int inverted = cinfo.saw_Adobe_marker;
    while (cinfo.output_scanline < cinfo.output_height) {
        int y = (int)cinfo.output_scanline;
        if (!cmyk) {
            JSAMPROW rp = (JSAMPROW)(px + (size_t)y * w * 3);
            jpeg_read_scanlines(&cinfo, &rp, 1);
        } else {
            JSAMPROW rp = (JSAMPROW)row;
            jpeg_read_scanlines(&cinfo, &rp, 1);
            uint8_t *o = px + (size_t)y * w * 3;
            for (int x = 0; x < w; x++) {
                int c = row[4 * x], m = row[4 * x + 1], yy = row[4 * x + 2], k = row[4 * x + 3];
                if (!inverted) {
                    c = 255 - c;
                    m = 255 - m;
                    yy = 255 - yy;
                    k = 255 - k;
                }
                // Stored (inverted) values: R = c*k/255 etc.
                o[3 * x + 0] = (uint8_t)((c * k + 127) / 255);
                o[3 * x + 1] = (uint8_t)((m * k + 127) / 255);
                o[3 * x + 2] = (uint8_t)((yy * k + 127) / 255);
            }
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    out->h = h;
    out->w = w;
    out->c = 3;
    out->px = px;
    return 0;
}

int image_encode_jpeg(const Image *im, int quality, uint8_t **bytes, size_t *n) {
    return image_encode_jpeg_chroma(im, quality, JPEG_CHROMA_420, bytes, n);
}

int image_encode_jpeg_chroma(const Image *im, int quality, JpegChroma chroma, uint8_t **bytes,
                             size_t *n) {
    *bytes = NULL;
    *n = 0;
    if (!im || !im->px || (im->c != 3 && im->c != 1) || im->w <= 0 || im->h <= 0) return -1;
    struct jpeg_compress_struct cinfo;
    JpegErr jerr;
    unsigned char *volatile buf = NULL;
    unsigned long size = 0;
    jpeg_err_init(&jerr);
    cinfo.err = &jerr.pub;
    if (setjmp(jerr.jb)) {
        jpeg_destroy_compress(&cinfo);
        free(buf);
        return -1;
    }
    jpeg_create_compress(&cinfo);
    unsigned char *b = NULL;
    jpeg_mem_dest(&cinfo, &b, &size);
    cinfo.image_width = (JDIMENSION)im->w;
    cinfo.image_height = (JDIMENSION)im->h;
    cinfo.input_components = im->c;
    cinfo.in_color_space = im->c == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality < 1 ? 1 : quality > 100 ? 100 : quality, TRUE);
    if (chroma == JPEG_CHROMA_444 && im->c == 3) {
        // jpeg_set_defaults samples luma 2x2 (4:2:0); 1x1 on every component is 4:4:4.
        cinfo.comp_info[0].h_samp_factor = 1;
        cinfo.comp_info[0].v_samp_factor = 1;
    }
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW rp = (JSAMPROW)(im->px + (size_t)cinfo.next_scanline * im->w * im->c);
        jpeg_write_scanlines(&cinfo, &rp, 1);
    }
    jpeg_finish_compress(&cinfo);
    buf = b;
    jpeg_destroy_compress(&cinfo);
    *bytes = buf;
    *n = size;
    return 0;
}

int image_write_jpeg(const Image *im, int quality, const char *path) {
    return image_write_jpeg_chroma(im, quality, JPEG_CHROMA_420, path);
}

int image_write_jpeg_chroma(const Image *im, int quality, JpegChroma chroma, const char *path) {
    uint8_t *b;
    size_t n;
    if (image_encode_jpeg_chroma(im, quality, chroma, &b, &n) != 0) return -1;
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(b);
        return -1;
    }
    int ok = fwrite(b, 1, n, f) == n;
    ok &= fclose(f) == 0;
    free(b);
    return ok ? 0 : -1;
}

// ------------------------------------------------------------------------------------------
// PNG

typedef struct {
    jmp_buf jb;
    char msg[256];
    const uint8_t *data;
    size_t n, pos;
} PngCtx;

static void png_err_fn(png_structp p, png_const_charp m) {
    PngCtx *e = (PngCtx *)png_get_error_ptr(p);
    snprintf(e->msg, sizeof(e->msg), "%s", m ? m : "error");
    longjmp(e->jb, 1);
}

static void png_warn_fn(png_structp p, png_const_charp m) {
    (void)p;
    (void)m;
}

static void png_mem_read(png_structp p, png_bytep out, size_t len) {
    PngCtx *c = (PngCtx *)png_get_io_ptr(p);
    if (len > c->n - c->pos) png_error(p, "truncated PNG data");
    memcpy(out, c->data + c->pos, len);
    c->pos += len;
}

static int decode_png(const uint8_t *bytes, size_t n, Image *out, char *err, size_t errlen) {
    PngCtx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.data = bytes;
    ctx.n = n;
    png_structp p = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_err_fn, png_warn_fn);
    if (!p) {
        set_err(err, errlen, "PNG: cannot create reader");
        return -1;
    }
    png_infop info = png_create_info_struct(p);
    uint8_t *volatile px = NULL;
    png_bytep *volatile rows = NULL;
    if (!info) {
        png_destroy_read_struct(&p, NULL, NULL);
        set_err(err, errlen, "PNG: cannot create info");
        return -1;
    }
    if (setjmp(ctx.jb)) {
        set_err(err, errlen, "PNG: %s", ctx.msg);
        png_destroy_read_struct(&p, &info, NULL);
        free(px);
        free(rows);
        return -1;
    }
    png_set_read_fn(p, &ctx, png_mem_read);
    // Decoding images of any size is bounded by dims_ok below, not by libpng's user limits.
    png_read_info(p, info);
    png_uint_32 w = png_get_image_width(p, info), h = png_get_image_height(p, info);
    int bit_depth = png_get_bit_depth(p, info);
    int ct = png_get_color_type(p, info);
    if (!dims_ok((long)w, (long)h, err, errlen)) {
        png_destroy_read_struct(&p, &info, NULL);
        return -1;
    }
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(p);
    if (ct == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(p);
    if (bit_depth == 16) png_set_strip_16(p); // high byte, as PIL does
    if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(p);
    // Alpha (and tRNS transparency) is dropped without compositing: PIL's convert("RGB").
    png_set_strip_alpha(p);
    png_set_interlace_handling(p);
    png_read_update_info(p, info);
    size_t rowbytes = png_get_rowbytes(p, info);
    if (png_get_channels(p, info) != 3 || rowbytes != (size_t)w * 3) {
        snprintf(ctx.msg, sizeof(ctx.msg), "unsupported layout after conversion (%d channels)",
                 (int)png_get_channels(p, info));
        longjmp(ctx.jb, 1);
    }
    px = malloc((size_t)w * h * 3);
    rows = malloc(sizeof(png_bytep) * h);
    if (!px || !rows) {
        snprintf(ctx.msg, sizeof(ctx.msg), "out of memory for %ux%u image", (unsigned)w,
                 (unsigned)h);
        longjmp(ctx.jb, 1);
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = px + (size_t)y * w * 3;
    png_read_image(p, rows);
    // The trailing chunks (IEND, text) are not needed; a file cut after the image data still
    // decodes completely, so it is accepted.
    png_destroy_read_struct(&p, &info, NULL);
    free(rows);
    out->h = (int)h;
    out->w = (int)w;
    out->c = 3;
    out->px = px;
    return 0;
}

int image_write_png(const Image *im, const char *path) {
    if (!im || !im->px || (im->c != 1 && im->c != 3 && im->c != 4)) return -1;
    FILE *volatile f = fopen(path, "wb");
    if (!f) return -1;
    PngCtx ctx;
    memset(&ctx, 0, sizeof(ctx));
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_err_fn, png_warn_fn);
    png_infop info = p ? png_create_info_struct(p) : NULL;
    if (!p || !info) {
        png_destroy_write_struct(&p, &info);
        fclose(f);
        return -1;
    }
    if (setjmp(ctx.jb)) {
        png_destroy_write_struct(&p, &info);
        fclose(f);
        return -1;
    }
    png_init_io(p, f);
    int ct = im->c == 1 ? PNG_COLOR_TYPE_GRAY
             : im->c == 3 ? PNG_COLOR_TYPE_RGB
                          : PNG_COLOR_TYPE_RGB_ALPHA;
    png_set_IHDR(p, info, (png_uint_32)im->w, (png_uint_32)im->h, 8, ct, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(p, info);
    for (int y = 0; y < im->h; y++) png_write_row(p, im->px + (size_t)y * im->w * im->c);
    png_write_end(p, NULL);
    png_destroy_write_struct(&p, &info);
    return fclose(f) == 0 ? 0 : -1;
}

// ------------------------------------------------------------------------------------------

int image_decode(const uint8_t *bytes, size_t n, Image *out, char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    if (err && errlen) err[0] = 0;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    if (!bytes || n < 4) {
        set_err(err, errlen, "image data too short (%zu bytes)", bytes ? n : 0);
        return -1;
    }
    if (bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF)
        return decode_jpeg(bytes, n, out, err, errlen);
    if (n >= 8 && memcmp(bytes, png_sig, 8) == 0) return decode_png(bytes, n, out, err, errlen);
    set_err(err, errlen, "unknown image format (not JPEG or PNG; first bytes %02x %02x %02x %02x)",
            bytes[0], bytes[1], bytes[2], bytes[3]);
    return -1;
}

int image_read_file(const char *path, Image *out, char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                set_err(err, errlen, "%s: out of memory", path);
                return -1;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        set_err(err, errlen, "%s: read error", path);
        return -1;
    }
    int rc = image_decode(buf, n, out, err, errlen);
    free(buf);
    if (rc != 0 && err && errlen) {
        char tmp[512];
        snprintf(tmp, sizeof(tmp), "%s: %s", path, err);
        snprintf(err, errlen, "%s", tmp);
    }
    return rc;
}

// ------------------------------------------------------------------------------------------
// Bicubic resampling, following Pillow's Resample.c (ImagingResample with the BICUBIC filter)
// so that outputs match torchvision/PIL pipelines exactly.

#define PRECISION_BITS (32 - 8 - 2)

static double bicubic_filter(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap && p) return p;
    size_t nc = need > 2 * *cap ? need : 2 * *cap;
    void *np = realloc(p, (nc ? nc : 1) * elem);
    if (!np) die("out of memory resampling (%zu x %zu bytes)", nc, elem);
    *cap = nc;
    return np;
}

// Coefficients for resampling [in0, in1) of an axis of inSize pixels onto outSize pixels.
// Returns the kernel size; bounds[2*i] = first input pixel, bounds[2*i+1] = count.
static int precompute_coeffs(ResampleBuf *b, int inSize, double in0, double in1, int outSize,
                             int **bounds_out, size_t *cap_bounds, int32_t **kk_out,
                             size_t *cap_kk) {
    const double support0 = 2.0; // bicubic
    double scale = (in1 - in0) / outSize;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = support0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    b->kk_d = grow(b->kk_d, &b->cap_kk_d, (size_t)outSize * ksize, sizeof(double));
    *bounds_out = grow(*bounds_out, cap_bounds, (size_t)outSize * 2, sizeof(int));
    *kk_out = grow(*kk_out, cap_kk, (size_t)outSize * ksize, sizeof(int32_t));
    double *kk = b->kk_d;
    int *bounds = *bounds_out;
    for (int xx = 0; xx < outSize; xx++) {
        double center = in0 + (xx + 0.5) * scale;
        double ww = 0.0;
        double ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > inSize) xmax = inSize;
        xmax -= xmin;
        double *k = &kk[(size_t)xx * ksize];
        int x;
        for (x = 0; x < xmax; x++) {
            double w = bicubic_filter((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++) {
            if (ww != 0.0) k[x] /= ww;
        }
        for (; x < ksize; x++) k[x] = 0;
        bounds[xx * 2 + 0] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    int32_t *ki = *kk_out;
    for (size_t i = 0; i < (size_t)outSize * ksize; i++) {
        if (kk[i] < 0)
            ki[i] = (int32_t)(-0.5 + kk[i] * (1 << PRECISION_BITS));
        else
            ki[i] = (int32_t)(0.5 + kk[i] * (1 << PRECISION_BITS));
    }
    return ksize;
}

static inline uint8_t clip8(int32_t v) {
    if (v < 0) return 0;
    v >>= PRECISION_BITS;
    return v > 255 ? 255 : (uint8_t)v;
}

void resample_buf_free(ResampleBuf *b) {
    if (!b) return;
    free(b->kk_d);
    free(b->kk_h);
    free(b->kk_v);
    free(b->bounds_h);
    free(b->bounds_v);
    free(b->tmp);
    free(b->acc);
    memset(b, 0, sizeof(*b));
}

void image_resize_bicubic_region(const Image *src, int x0, int y0, int cw, int ch, Image *dst,
                                 ResampleBuf *ws) {
    if (x0 < 0 || y0 < 0 || cw <= 0 || ch <= 0 || x0 + cw > src->w || y0 + ch > src->h)
        die("resize region (%d,%d %dx%d) outside %dx%d image", x0, y0, cw, ch, src->w, src->h);
    if (dst->w <= 0 || dst->h <= 0) die("resize to empty size %dx%d", dst->w, dst->h);
    const int C = src->c;
    const int W = dst->w, H = dst->h;
    dst->c = C;
    if (!dst->px) dst->px = mallocCheck((size_t)W * H * C);
    ResampleBuf local;
    memset(&local, 0, sizeof(local));
    ResampleBuf *b = ws ? ws : &local;
    const size_t sstride = (size_t)src->w * C;
    const uint8_t *sbase = src->px + (size_t)y0 * sstride + (size_t)x0 * C;

    int need_h = W != cw;
    int need_v = H != ch;
    if (!need_h && !need_v) {
        for (int y = 0; y < H; y++) memcpy(dst->px + (size_t)y * W * C, sbase + y * sstride, (size_t)W * C);
        if (!ws) resample_buf_free(&local);
        return;
    }
    int ksize_h = 0, ksize_v = 0;
    if (need_h)
        ksize_h = precompute_coeffs(b, cw, 0.0, (double)cw, W, &b->bounds_h, &b->cap_bounds_h,
                                    &b->kk_h, &b->cap_kk_h);
    if (need_v)
        ksize_v = precompute_coeffs(b, ch, 0.0, (double)ch, H, &b->bounds_v, &b->cap_bounds_v,
                                    &b->kk_v, &b->cap_kk_v);

    // Horizontal pass over the rows the vertical pass will read, to an 8-bit intermediate (or
    // straight to dst when no vertical pass is needed).
    const uint8_t *vin; // input of the vertical pass
    size_t vstride;
    int yfirst = 0;
    if (need_h) {
        int ylast = ch;
        if (need_v) {
            yfirst = b->bounds_v[0];
            ylast = b->bounds_v[(H - 1) * 2] + b->bounds_v[(H - 1) * 2 + 1];
        }
        int rows = ylast - yfirst;
        uint8_t *out;
        if (need_v) {
            b->tmp = grow(b->tmp, &b->cap_tmp, (size_t)rows * W * C, 1);
            out = b->tmp;
        } else {
            out = dst->px;
        }
        const int32_t *kk = b->kk_h;
        const int *bounds = b->bounds_h;
        for (int yy = 0; yy < rows; yy++) {
            const uint8_t *in = sbase + (size_t)(yy + yfirst) * sstride;
            uint8_t *o = out + (size_t)yy * W * C;
            if (C == 3) {
                for (int xx = 0; xx < W; xx++) {
                    int xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1];
                    const int32_t *k = &kk[(size_t)xx * ksize_h];
                    const uint8_t *p = in + (size_t)xmin * 3;
                    int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
                    for (int x = 0; x < xmax; x++) {
                        s0 += p[3 * x + 0] * k[x];
                        s1 += p[3 * x + 1] * k[x];
                        s2 += p[3 * x + 2] * k[x];
                    }
                    o[3 * xx + 0] = clip8(s0);
                    o[3 * xx + 1] = clip8(s1);
                    o[3 * xx + 2] = clip8(s2);
                }
            } else {
                for (int xx = 0; xx < W; xx++) {
                    int xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1];
                    const int32_t *k = &kk[(size_t)xx * ksize_h];
                    for (int c = 0; c < C; c++) {
                        int32_t s = 1 << (PRECISION_BITS - 1);
                        for (int x = 0; x < xmax; x++) s += in[(size_t)(x + xmin) * C + c] * k[x];
                        o[xx * C + c] = clip8(s);
                    }
                }
            }
        }
        vin = b->tmp;
        vstride = (size_t)W * C;
    } else {
        vin = sbase;
        vstride = sstride;
    }
    if (need_v) {
        // Vertical pass accumulated row by row (integer sums: the order does not change them).
        const int rowlen = W * C;
        b->acc = grow(b->acc, &b->cap_acc, (size_t)rowlen, sizeof(int32_t));
        int32_t *acc = b->acc;
        const int32_t *kk = b->kk_v;
        for (int yy = 0; yy < H; yy++) {
            int ymin = b->bounds_v[yy * 2] - yfirst, ymax = b->bounds_v[yy * 2 + 1];
            const int32_t *k = &kk[(size_t)yy * ksize_v];
            for (int i = 0; i < rowlen; i++) acc[i] = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < ymax; y++) {
                const uint8_t *in = vin + (size_t)(y + ymin) * vstride;
                const int32_t kv = k[y];
                for (int i = 0; i < rowlen; i++) acc[i] += in[i] * kv;
            }
            uint8_t *o = dst->px + (size_t)yy * rowlen;
            for (int i = 0; i < rowlen; i++) o[i] = clip8(acc[i]);
        }
    }
    if (!ws) resample_buf_free(&local);
}

void image_resize_bicubic(const Image *src, Image *dst) {
    image_resize_bicubic_region(src, 0, 0, src->w, src->h, dst, NULL);
}
