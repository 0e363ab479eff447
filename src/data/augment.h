// augment.h: image transforms of pre-training and fine-tuning (ALBEF/VLMAE conventions), from a
// decoded RGB image to a normalised float CHW tensor, with the caption's region box carried along.
//
// Training transform, in this order (each stage switchable in AugmentOptions):
//   1. RandomResizedCrop(size, scale 0.2-1.0, ratio 3/4-4/3, bicubic): torchvision's algorithm
//      (10 tries of area/log-ratio, then the centre-crop fallback), resampled as PIL's
//      img.crop(box).resize((size, size), BICUBIC), bit for bit.
//   2. Horizontal flip, p = 0.5.
//   3. RandAugment as ALBEF's dataset/randaugment.py RandomAugment(2, 7, augs=[Identity,
//      AutoContrast, Equalize, Brightness, Sharpness, ShearX, ShearY, TranslateX, TranslateY,
//      Rotate]): 2 ops drawn uniformly with replacement, each applied with p = 0.5. Magnitude 7 of
//      10: Brightness/Sharpness factor 7/10*1.8+0.1 = 1.36; shear 7/10*0.3 = 0.21; translate
//      7/10*10 = 7 pixels (absolute, as ALBEF); rotate 7/10*30 = 21 degrees; geometric ops pick
//      the sign at random and fill with grey (128,128,128); bilinear sampling like cv2.warpAffine.
//   4. ColorJitter(brightness 0.4, contrast 0.4, saturation 0.4, hue 0.1), applied with p = 0.8,
//      the four adjustments in a random order (torchvision's RandomApply(ColorJitter) on PIL).
//   5. RandomGrayscale, p = 0.2 (PIL's L = 0.299 R + 0.587 G + 0.114 B, replicated to 3 channels).
//   6. GaussianBlur, p = 0.5, sigma uniform in [0.1, 2.0], kernel radius ceil(3 sigma), reflect
//      padding (torchvision's gaussian_blur with a kernel large enough not to truncate).
//   7. ToTensor and Normalize with the CLIP mean/std.
// Stages 4-6 are the VLMAE paper's additions over ALBEF; their parameters are not given there, so
// the SimCLR/MoCo-v2/BYOL torchvision settings above are used (configurable).
//
// The box (normalised x, y, w, h; NaN = none) follows the crop (clipped to it; NaN when the box
// lies entirely outside it), the flip, and, when box_follow_randaug is set (default), the
// geometric RandAugment ops (bounding box of the mapped corners, clipped to the image).
//
// Randomness comes only from the caller's Rng; seed it per sample with rng_seed_stream(seed,
// epoch, index) and the result is reproducible whatever thread or rank computes it.
#ifndef VLMAE_AUGMENT_H
#define VLMAE_AUGMENT_H

#include <stdint.h>

#include "data/image.h"
#include "engine/rng.h"

// CLIP normalisation constants (ALBEF uses them too).
extern const float AUG_MEAN[3];
extern const float AUG_STD[3];

typedef struct AugmentOptions {
    int random_crop;              // 1: RandomResizedCrop; 0: plain resize of the whole image
    float scale_min, scale_max;   // fraction of the image area: 0.2, 1.0
    float ratio_min, ratio_max;   // aspect ratio w/h: 3/4, 4/3
    int hflip;                    // 1
    float hflip_p;                // 0.5
    int randaug;                  // 1
    int randaug_n;                // ops per image: 2 (at most 16)
    int randaug_m;                // magnitude 0..10: 7
    float randaug_p;              // probability each drawn op is applied: 0.5
    int color_jitter;             // 1
    float jitter_p;               // 0.8
    float brightness, contrast, saturation, hue; // 0.4, 0.4, 0.4, 0.1
    int grayscale;                // 1
    float grayscale_p;            // 0.2
    int blur;                     // 1
    float blur_p;                 // 0.5
    float blur_sigma_min, blur_sigma_max; // 0.1, 2.0
    int box_follow_randaug;       // 1
} AugmentOptions;

void augment_defaults(AugmentOptions *o);
// ALBEF's exact pre-training transform: crop, flip, RandAugment; no jitter/grayscale/blur.
void augment_albef(AugmentOptions *o);

// Scratch buffers reused across calls (one per thread). Zero-initialise or augment_work_init.
typedef struct AugmentWork {
    ResampleBuf rs;
    uint8_t *a, *b;  // two size*size*3 buffers (ping-pong)
    float *f;        // blur intermediate
    size_t cap_ab, cap_f;
    uint8_t *img;    // result of the last transform: size*size*3 HWC RGB (points into a or b)
    int size;
} AugmentWork;

void augment_work_init(AugmentWork *w);
void augment_work_free(AugmentWork *w);

// The training transform. in: RGB image (c = 3). box_in: NULL or normalised x,y,w,h (NaN = none).
// out_chw: 3*size*size floats, or NULL to keep only the 8-bit result in ws->img. box_out: NULL or
// 4 floats. The _ws variant uses the caller's workspace; the plain one a per-thread workspace
// (release it with augment_thread_release before a thread exits).
void augment_train_ws(const Image *in, const float box_in[4], int size, const AugmentOptions *o,
                      Rng *rng, AugmentWork *ws, float *out_chw, float box_out[4]);
void augment_train(const Image *in, const float box_in[4], int size, const AugmentOptions *o,
                   Rng *rng, float *out_chw, float box_out[4]);
// Evaluation transform: bicubic resize to size x size (no crop, aspect not kept) + normalise.
void augment_eval_ws(const Image *in, int size, AugmentWork *ws, float *out_chw);
void augment_eval(const Image *in, int size, float *out_chw);
void augment_thread_release(void);

// Pieces, exposed for tests and for other transforms.
// torchvision RandomResizedCrop.get_params: crop rows [*i, *i+*h), columns [*j, *j+*w).
void augment_crop_params(int H, int W, const AugmentOptions *o, Rng *rng, int *i, int *j, int *h,
                         int *w);
// Box through a crop of a W x H image at (j, i) of size cw x ch; NaN box when disjoint.
void augment_box_crop(const float in[4], int W, int H, int j, int i, int cw, int ch,
                      float out[4]);
// Box (normalised, in a size x size image) through a forward 2x3 pixel map (cv2 convention, as
// augment_randaug_op reports): bounding box of the mapped corners, clipped; NaN when outside.
void augment_box_affine(float box[4], const double fwd[6], int size);
// 8-bit HWC RGB to normalised float CHW.
void augment_normalize(const uint8_t *hwc, int h, int w, float *chw);

// RandAugment ops (ALBEF semantics) on an HWC RGB buffer, exposed for tests.
enum {
    RA_IDENTITY, RA_AUTOCONTRAST, RA_EQUALIZE, RA_BRIGHTNESS, RA_SHARPNESS, RA_SHEARX, RA_SHEARY,
    RA_TRANSLATEX, RA_TRANSLATEY, RA_ROTATE, RA_NUM_OPS
};
// Applies op with the given signed magnitude argument (factor, shear, pixels or degrees) from src
// to dst (same size; src != dst). For geometric ops, fwd (if non-NULL) receives the 2x3 forward
// pixel map (cv2 convention) so a box can follow.
void augment_randaug_op(int op, double arg, const uint8_t *src, uint8_t *dst, int h, int w,
                        double fwd[6]);

#endif
