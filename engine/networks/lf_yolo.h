/* lf_yolo: ultralytics YOLOv8 / YOLO11 detection and segmentation models
 * (ADetailer's face_yolov8n.pt, person_yolov8s-seg.pt, ...), and the
 * predictor as ADetailer calls it: model(image, conf=ad_confidence).
 *
 * The graph is built from the model's own yaml dict (stored in the .pt as
 * the model's `yaml` attribute, or as JSON in a .safetensors conversion's
 * "yolo.yaml" metadata, class names in "yolo.names") as ultralytics'
 * parse_model does: Conv (Conv2d + BatchNorm fused at load, eps 1e-3, SiLU),
 * C2f, C3k2 (Bottleneck or C3k), SPPF, C2PSA (attention), nn.Upsample,
 * Concat, Detect (DFL box decoding; YOLO11's depthwise class branch) and
 * Segment (Proto + mask coefficients). Other modules (WorldDetect, Pose,
 * OBB, RT-DETR...) are refused naming the module. Convolutions are im2col +
 * OpenBLAS sgemm; depthwise ones, pooling and attention are direct loops.
 *
 * Prediction as ultralytics 8.3's DetectionPredictor / SegmentationPredictor
 * with ADetailer's arguments: LetterBox to 640 (auto: padding to a multiple
 * of 32, gray 114, cv2.INTER_LINEAR resize when the size changes — OpenCV's
 * fixed-point arithmetic, which IPP builds may round differently by one
 * level), RGB / 255, non_max_suppression (conf > confidence, iou 0.7,
 * max_det 300, per class), scale_boxes; masks by process_mask at the
 * letterboxed size (upsample=True, not retina), then ADetailer's
 * mask_to_pil: 0/255 and Pillow's BICUBIC resize to the image size.
 *
 * Threading: one lf_yolo_t per thread (forward uses scratch owned by it).
 * Ownership: lf_yolo_new hands the caller the object. */
#ifndef LF_YOLO_H
#define LF_YOLO_H

#include <stddef.h>
#include <stdint.h>

typedef struct lf_yolo lf_yolo_t;

/* Loads path (.pt / .pth ultralytics checkpoint through the restricted
 * pickle reader, or .safetensors conversion). NULL with a message naming
 * the file and reason in err. */
lf_yolo_t *lf_yolo_new(const char *path, char *err, size_t errlen);
void lf_yolo_destroy(lf_yolo_t **self_p);

int lf_yolo_n_classes(const lf_yolo_t *self);
/* Class i's name (borrowed), or "". */
const char *lf_yolo_class_name(const lf_yolo_t *self, int i);
/* 1 for a segmentation model. */
int lf_yolo_is_seg(const lf_yolo_t *self);

/* The network on x ([3][h][w] float RGB in [0, 1], h and w multiples of 32):
 * *out [rows][anchors] as the Detect / Segment head returns it in eval
 * mode (xywh in input pixels, class scores after sigmoid, then for seg 32
 * mask coefficients), rows = 4 + nc (+ nm); for seg *proto [nm][h/4][w/4]
 * (else NULL). Both caller owns (free). 0, LF_EINVAL, LF_ENOMEM. */
int lf_yolo_forward(lf_yolo_t *self, const float *x, int w, int h, float **out, int *rows,
                    int *anchors, float **proto);

typedef struct {
    float x1, y1, x2, y2; /* image pixels */
    float score;
    int cls;
} lf_yolo_det_t;

/* predict(image, conf=confidence) on an RGB8 image: detections in NMS
 * order (score descending), at most max written; returns how many were
 * found (<= 300) or a negative LF_E* code. masks: NULL, or for seg models
 * *masks = n masks of w*h bytes (0 / 255, ADetailer's mask_to_pil), caller
 * owns; NULL for detection models or no detection. */
int lf_yolo_predict(lf_yolo_t *self, const uint8_t *rgb, int w, int h, double confidence,
                    lf_yolo_det_t *out, int max, uint8_t **masks);

/* LetterBox(640, auto=True, stride 32) of an RGB8 image: *dst (caller
 * owns) dw x dh RGB8, *pad_x / *pad_y the left / top padding. 0, LF_ENOMEM. */
int lf_yolo_letterbox(const uint8_t *rgb, int w, int h, uint8_t **dst, int *dw, int *dh, int *pad_x,
                      int *pad_y);

#endif
