/* lf_error: the project's error codes.
 *
 * Every fallible lightfarm function returns int: 0 on success, a negative
 * LF_E* code on failure. The list below is the single source of the codes,
 * their names and their messages (libuv style). Thread-safe; no state. */
#ifndef LF_ERROR_H
#define LF_ERROR_H

#define LF_ERRNO_MAP(X)                                                        \
    X(EINVAL, -1, "invalid argument")                                          \
    X(ENOMEM, -2, "out of memory")                                             \
    X(EIO, -3, "input/output error")                                           \
    X(EPROTO, -4, "malformed message")                                         \
    X(ETOOBIG, -5, "too large")                                                \
    X(ENOTFOUND, -6, "not found")                                              \
    X(EEXIST, -7, "already exists")                                            \
    X(ETIMEDOUT, -8, "timed out")                                              \
    X(ECANCELED, -9, "cancelled")                                              \
    X(EUNSUPPORTED, -10, "not supported")                                      \
    X(EREDIS, -11, "redis error")                                              \
    X(EBUSY, -12, "busy")                                                      \
    X(ESTATE, -13, "invalid state for this operation")                         \
    X(EFORMAT, -14, "bad file format")                                         \
    X(ECUDA, -15, "CUDA error")                                                \
    X(EOVERFLOW, -16, "value out of range")                                    \
    X(EAGAIN, -17, "try again")                                                \
    X(EAUTH, -18, "not authorized")                                            \
    X(EVERSION, -19, "unsupported protocol version")                           \
    X(EUNKNOWN, -20, "unknown message type")                                   \
    X(ELIMIT, -21, "limit exceeded")                                           \
    X(ECONN, -22, "connection error")                                          \
    X(EINTERNAL, -23, "internal error")                                        \
    X(ENOCAPABLE, -24, "no live worker can run the job")

typedef enum {
#define LF__ERR_ENUM(name, code, msg) LF_##name = code,
    LF_ERRNO_MAP(LF__ERR_ENUM)
#undef LF__ERR_ENUM
} lf_errno_t;

/* Human-readable message for a code; never NULL (borrowed, static). */
const char *lf_strerror(int code);
/* Symbolic name ("LF_EINVAL"); never NULL (borrowed, static). */
const char *lf_err_name(int code);

/* Bugs abort with file and line; expected failures return codes. */
#define LF_ASSERT(cond)                                                        \
    do {                                                                       \
        if (!(cond)) lf__assert_fail(#cond, __FILE__, __LINE__);               \
    } while (0)
_Noreturn void lf__assert_fail(const char *expr, const char *file, int line);

#endif
