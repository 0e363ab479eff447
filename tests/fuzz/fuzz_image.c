// fuzz_image.c: libFuzzer harness for image decoding (src/data/image.c: JPEG via libjpeg-turbo, PNG via
// libpng): the input is an image file. Built and run by `make fuzz` (tests/fuzz/README.md).
// Checks beyond "no crash": decode fails with a message and a zeroed image, or returns an RGB
// image within the size limits whose every pixel is readable; it then survives a bicubic resize
// (the loader's next step).
#include "fuzz_util.h"  // first: it defines _GNU_SOURCE

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1);  // a private copy: reads past the end are caught
    memcpy(buf, data, size);
    Image im;
    char err[512];
    if (image_decode(buf, size, &im, err, sizeof err) != 0) {
        fuzz_check_msg(err, sizeof err);
        if (im.px || im.h || im.w) abort();
        free(buf);
        return 0;
    }
    if (im.c != 3 || im.h < 1 || im.w < 1 || im.h > IMAGE_MAX_SIDE || im.w > IMAGE_MAX_SIDE ||
        (int64_t)im.h * im.w > IMAGE_MAX_PIXELS || !im.px)
        abort();
    unsigned sum = 0;  // touch every pixel (MSan-style check that all were written is not possible
    for (size_t i = 0; i < (size_t)im.h * im.w * 3; i++) sum += im.px[i];  // here; ASan checks bounds)
    if ((int64_t)im.h * im.w <= (1 << 22)) {
        Image small = {.h = 7, .w = 5};
        image_resize_bicubic(&im, &small);
        image_free(&small);
    }
    image_free(&im);
    free(buf);
    return (int)(sum & 0);
}
