// image.h: 8-bit RGB images in memory; JPEG/PNG decoding and encoding; PIL-compatible bicubic
// resampling.
//
// Decoding never exits the process: corrupt, truncated or unsupported data returns -1 with a
// message, so a packer can count and report bad images and a loader thread can skip one.
#ifndef VLMAE_IMAGE_H
#define VLMAE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

// Interleaved HWC, row-major, 8 bits per channel. Decoded images are always RGB (c = 3).
typedef struct {
    int h, w, c;
    uint8_t *px;
} Image;

// Largest image decode accepts (either side, and total pixels); larger inputs are errors, which
// keeps a hostile or corrupt header from asking for gigabytes.
#define IMAGE_MAX_SIDE 32768
#define IMAGE_MAX_PIXELS (1 << 28)

// Allocate an image (pixels uninitialised); dies on out-of-memory.
void image_alloc(Image *im, int h, int w, int c);
// Free the pixels and zero the struct. Safe on a zeroed Image.
void image_free(Image *im);

// Decode a JPEG (libjpeg-turbo) or PNG (libpng) by its signature into 8-bit RGB: grayscale and
// CMYK/YCCK JPEG are converted; PNG palette, gray, alpha (dropped, as PIL's convert("RGB")),
// sub-byte and 16-bit depths are normalised. A truncated JPEG is an error (not a grey-filled
// image). Returns 0, or -1 with a message in err (err may be NULL). On error *out is zeroed.
int image_decode(const uint8_t *bytes, size_t n, Image *out, char *err, size_t errlen);
// Read a whole file and decode it.
int image_read_file(const char *path, Image *out, char *err, size_t errlen);

// Chroma subsampling of an encoded JPEG. 4:2:0 (libjpeg's and PIL's default, what cameras write)
// keeps colour at half resolution both ways; 4:4:4 keeps it at full resolution: flat colours
// with sharp edges (palette PNGs, drawings, the synthetic shapes) lose their hue under 4:2:0 (a
// palette PNG of pure colours: mean absolute error 53/255 against 2.7 with 4:4:4).
typedef enum { JPEG_CHROMA_420 = 0, JPEG_CHROMA_444 = 1 } JpegChroma;

// Encode RGB (c = 3) or gray (c = 1) as baseline JPEG, 4:2:0 chroma subsampling, the given
// quality (1..100). *bytes is malloc'd (free() it). Returns 0 or -1.
int image_encode_jpeg(const Image *im, int quality, uint8_t **bytes, size_t *n);
// The same with the chroma subsampling given (ignored for gray).
int image_encode_jpeg_chroma(const Image *im, int quality, JpegChroma chroma, uint8_t **bytes,
                             size_t *n);
// Write a JPEG file (4:2:0). Returns 0 or -1 (errno-style message on stderr is left to the caller).
int image_write_jpeg(const Image *im, int quality, const char *path);
// The same with the chroma subsampling given.
int image_write_jpeg_chroma(const Image *im, int quality, JpegChroma chroma, const char *path);
// Write a PNG file (c = 1, 3 or 4 -> gray, RGB, RGBA). Returns 0 or -1.
int image_write_png(const Image *im, const char *path);

// Reusable scratch for resampling: coefficient tables and the intermediate (horizontally
// resampled) image. Zero-initialise; grows as needed; free with resample_buf_free.
typedef struct {
    double *kk_d;
    int32_t *kk_h, *kk_v;
    int *bounds_h, *bounds_v;
    size_t cap_kk_d, cap_kk_h, cap_kk_v, cap_bounds_h, cap_bounds_v;
    uint8_t *tmp;
    int32_t *acc;
    size_t cap_tmp, cap_acc;
} ResampleBuf;
void resample_buf_free(ResampleBuf *b);

// Bicubic resize with PIL's algorithm (Image.resize(size, BICUBIC)): cubic convolution with
// a = -0.5, support scaled by the reduction factor when downscaling (antialiasing), separable,
// horizontal pass first to an 8-bit intermediate, 22-bit fixed-point coefficients. Output equals
// Pillow's bit for bit. dst->h and dst->w give the target size; dst->c is set to src->c; if
// dst->px is NULL it is allocated (image_free it), else it must hold h*w*c bytes.
void image_resize_bicubic(const Image *src, Image *dst);
// Same, of the rectangle (x0, y0, cw, ch) of src, as PIL's img.crop(box).resize(...) (the filter
// sees only pixels inside the rectangle). The rectangle must lie inside src. ws may be NULL
// (temporary buffers are then allocated and freed).
void image_resize_bicubic_region(const Image *src, int x0, int y0, int cw, int ch, Image *dst,
                                 ResampleBuf *ws);

#endif
