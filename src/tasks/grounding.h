// grounding.h: weakly supervised visual grounding (RefCOCO+, ALBEF's protocol): the `grounding`
// task fine-tunes as retrieval on (image, expression) pairs (retrieval_ft.h) and evaluates by
// Grad-CAM: the gradient of the ITM match logit with respect to the cross-attention probabilities
// of one fusion layer (task.gradcam_layer, an index over all BERT layers: 8 = the third fusion
// layer of the 6 + 6 model), cam = mean over heads and text tokens (padding counted as zero) of
// attention * relu(gradient) over the image patches, reshaped to the patch grid, upsampled
// bicubically to the image's own size; each proposal box scores heat mass inside / sqrt(area);
// the best one is correct when its IoU with the ground-truth box is >= 0.5.
//
// Evaluation data: each entry of task.val / task.test is one evaluation set, named after the file
// (grounding_testA.json -> testA, shards/grounding_testB-*.h5 -> testB), either
//   - a grounding JSON file, RefCOCO+-like entries {"image", "text", "bbox": [x, y, w, h],
//     "proposals": [[x, y, w, h], ...]} in pixels of the original image (what `vlmae synth` writes;
//     ALBEF's refcoco+ annotations + detections converted to it), images read from
//     task.image_root (default: the JSON file's directory); or
//   - shards (a path or glob) packed from such a file with `vlmae pack grounding` (box and
//     proposals normalised; scored in the pixels of the stored image, which `vlmae pack` may have
//     downscaled: --short-side 0 keeps the originals, for exactly ALBEF's IoU arithmetic).
// Training data (task.train) are shards of the (image, expression) pairs, e.g. `vlmae pack
// grounding` of the training JSON (`vlmae pack albef` works too with "text" renamed "caption").
#ifndef VLMAE_TASKS_GROUNDING_H
#define VLMAE_TASKS_GROUNDING_H

// ALBEF's computeIoU over [x, y, w, h] boxes (inclusive pixel corners: x2 = x + w - 1).
double grounding_iou(const float a[4], const float b[4]);
// ALBEF's proposal score on a heat map (H rows x W columns): the sum of
// heat[int(y) : int(y + h), int(x) : int(x + w)] (Python slicing, clipped to the map) divided by
// (w * h)^alpha (alpha 0.5). A box of zero area scores -infinity.
double grounding_box_score(const float *heat, int H, int W, const float box[4], double alpha);
// Index of the best-scoring of n boxes (4 floats each; the first of equal scores), -1 if n == 0.
int grounding_best_box(const float *heat, int H, int W, const float *boxes, int n, double alpha);

#endif
