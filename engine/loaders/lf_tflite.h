/* lf_tflite: reads the graph and the constant tensors of a TFLite model file.
 *
 * A .tflite file is a FlatBuffer (schema tensorflow/lite/schema/schema.fbs):
 * a Model table with operator codes, subgraphs (tensors, operators, inputs,
 * outputs) and buffers holding constant data. This reader takes what the
 * engine's small networks (MediaPipe BlazeFace) need from subgraph 0: every
 * tensor's shape, type and constant bytes, and every operator's builtin code,
 * operand indices and the options of the ops listed below. Every offset,
 * length and index is checked against the file, so a corrupt or hostile file
 * gives LF_EFORMAT and a message naming the file and what is wrong, never a
 * crash. It runs nothing: no TFLite runtime is involved.
 *
 * Threading: an object is immutable after construction; concurrent readers
 * are fine. Ownership: constructors hand the caller a new object ("caller
 * owns"); descriptors returned by accessors are borrowed from it, and
 * constant data from the file image (the mapping for lf_tflite_open, the
 * caller's buffer for lf_tflite_parse). */
#ifndef LF_TFLITE_H
#define LF_TFLITE_H

#include <stddef.h>
#include <stdint.h>

typedef struct lf_tflite lf_tflite_t;

/* TensorType values of the schema that the reader names (others are kept as
 * their number and have no element size). */
enum {
    LF_TFLITE_FLOAT32 = 0,
    LF_TFLITE_FLOAT16 = 1,
    LF_TFLITE_INT32 = 2,
    LF_TFLITE_UINT8 = 3,
    LF_TFLITE_INT64 = 4,
    LF_TFLITE_INT8 = 9,
};

/* BuiltinOperator codes of the ops whose options are read. */
enum {
    LF_TFLITE_ADD = 0,
    LF_TFLITE_AVERAGE_POOL_2D = 1,
    LF_TFLITE_CONCATENATION = 2,
    LF_TFLITE_CONV_2D = 3,
    LF_TFLITE_DEPTHWISE_CONV_2D = 4,
    LF_TFLITE_DEQUANTIZE = 6,
    LF_TFLITE_LOGISTIC = 14,
    LF_TFLITE_MAX_POOL_2D = 17,
    LF_TFLITE_RELU = 19,
    LF_TFLITE_RESHAPE = 22,
    LF_TFLITE_RESIZE_BILINEAR = 23,
    LF_TFLITE_PAD = 34,
    LF_TFLITE_PRELU = 54,
};

/* Padding and fused activation of the options tables. */
enum { LF_TFLITE_PAD_SAME = 0, LF_TFLITE_PAD_VALID = 1 };
enum { LF_TFLITE_ACT_NONE = 0, LF_TFLITE_ACT_RELU = 1, LF_TFLITE_ACT_RELU_N1_TO_1 = 2,
       LF_TFLITE_ACT_RELU6 = 3 };

#define LF_TFLITE_MAX_RANK 8

/* Plain data: one tensor of subgraph 0. */
typedef struct {
    const char *name;                 /* NUL-terminated copy; "" when unnamed */
    int type;                         /* TensorType (LF_TFLITE_FLOAT32, ...) */
    int rank;                         /* 0..LF_TFLITE_MAX_RANK */
    int32_t shape[LF_TFLITE_MAX_RANK]; /* each >= 0 */
    int64_t numel;                    /* product of shape (1 for rank 0) */
    const void *data;                 /* constant bytes in the file image, or NULL */
    size_t nbytes;                    /* numel * element size when data != NULL, else 0 */
} lf_tflite_tensor_t;

/* Plain data: one operator of subgraph 0, with the options its code has
 * (fields an op has no use for are 0; strides and dilations default to 1). */
typedef struct {
    int code;            /* BuiltinOperator (LF_TFLITE_CONV_2D, ...); custom ops are refused */
    int n_in, n_out;
    const int32_t *in;   /* tensor indices, -1 = optional operand absent; borrowed */
    const int32_t *out;
    int padding;         /* LF_TFLITE_PAD_SAME / _VALID (conv, depthwise, pools) */
    int stride_w, stride_h;
    int dilation_w, dilation_h;
    int depth_multiplier; /* DEPTHWISE_CONV_2D */
    int filter_w, filter_h; /* pools */
    int activation;      /* fused activation: LF_TFLITE_ACT_* (conv, depthwise, pools, add, concat) */
    int axis;            /* CONCATENATION (may be negative, as in the file) */
    int align_corners, half_pixel_centers; /* RESIZE_BILINEAR */
} lf_tflite_op_t;

/* Reads and parses the file at path (read whole into memory; the files are
 * small). On success *out is a new object (caller owns). On failure returns
 * LF_EIO (cannot read), LF_EFORMAT (bad file) or LF_ENOMEM, writes a message
 * naming the file and the problem into errstr (if errlen > 0) and leaves
 * *out untouched. */
int lf_tflite_open(lf_tflite_t **out, const char *path, char *errstr, size_t errlen);

/* Parses a file image held in memory. The buffer is borrowed and must
 * outlive the object; label names it in messages (may be NULL). Same errors
 * as lf_tflite_open (never LF_EIO). */
int lf_tflite_parse(lf_tflite_t **out, const void *buf, size_t len, const char *label,
                    char *errstr, size_t errlen);

/* Destroys the object; accepts NULL; sets *self_p NULL. */
void lf_tflite_destroy(lf_tflite_t **self_p);

/* The model's description string (borrowed; "" when absent). */
const char *lf_tflite_description(const lf_tflite_t *self);
/* Tensors and operators of subgraph 0 in file order; *_at return NULL when
 * i is out of range (borrowed). */
size_t lf_tflite_tensor_count(const lf_tflite_t *self);
const lf_tflite_tensor_t *lf_tflite_tensor_at(const lf_tflite_t *self, size_t i);
size_t lf_tflite_op_count(const lf_tflite_t *self);
const lf_tflite_op_t *lf_tflite_op_at(const lf_tflite_t *self, size_t i);
/* The graph's input and output tensor indices (borrowed, counts in *n). */
const int32_t *lf_tflite_inputs(const lf_tflite_t *self, int *n);
const int32_t *lf_tflite_outputs(const lf_tflite_t *self, int *n);

/* Name of a builtin operator code ("CONV_2D", ...; "op<N>" style names are
 * not produced: unknown codes give "?"). Borrowed, static. */
const char *lf_tflite_op_name(int code);
/* Bytes per element of a TensorType, 0 when the reader does not know it. */
size_t lf_tflite_type_size(int type);

/* Converts the constant data of t (FLOAT32 or FLOAT16) into dst[numel].
 * Returns 0, or LF_EINVAL when t has no data or another type. */
int lf_tflite_tensor_f32(const lf_tflite_tensor_t *t, float *dst);

#endif
