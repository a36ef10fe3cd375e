/* lf_error: the project's error codes.
 *
 * Every fallible lightfarm function returns int: 0 on success, a negative
 * LF_E* code on failure. The list below is the single source of the codes,
 * their names and their messages (libuv style). Thread-safe; no state. */
#ifndef LF_ERROR_H
#define LF_ERROR_H

/* X(name, code, snake_case code for APIs, message) */
#define LF_ERRNO_MAP(X)                                                        \
    X(EINVAL, -1, "invalid_argument", "invalid argument")                      \
    X(ENOMEM, -2, "out_of_memory", "out of memory")                            \
    X(EIO, -3, "io_error", "input/output error")                               \
    X(EPROTO, -4, "malformed_message", "malformed message")                    \
    X(ETOOBIG, -5, "too_large", "too large")                                   \
    X(ENOTFOUND, -6, "not_found", "not found")                                 \
    X(EEXIST, -7, "already_exists", "already exists")                          \
    X(ETIMEDOUT, -8, "timeout", "timed out")                                   \
    X(ECANCELED, -9, "cancelled", "cancelled")                                 \
    X(EUNSUPPORTED, -10, "unsupported", "not supported")                       \
    X(EREDIS, -11, "redis_error", "redis error")                               \
    X(EBUSY, -12, "busy", "busy")                                              \
    X(ESTATE, -13, "invalid_state", "invalid state for this operation")        \
    X(EFORMAT, -14, "bad_format", "bad file format")                           \
    X(ECUDA, -15, "cuda_error", "CUDA error")                                  \
    X(EOVERFLOW, -16, "out_of_range", "value out of range")                    \
    X(EAGAIN, -17, "try_again", "try again")                                   \
    X(EAUTH, -18, "unauthorized", "not authorized")                            \
    X(EVERSION, -19, "unsupported_version", "unsupported protocol version")    \
    X(EUNKNOWN, -20, "unknown_message", "unknown message type")                \
    X(ELIMIT, -21, "limit_exceeded", "limit exceeded")                         \
    X(ECONN, -22, "connection_error", "connection error")                      \
    X(EINTERNAL, -23, "internal", "internal error")                            \
    X(ENOCAPABLE, -24, "no_capable_worker", "no live worker can run the job")

typedef enum {
#define LF__ERR_ENUM(name, code, api, msg) LF_##name = code,
    LF_ERRNO_MAP(LF__ERR_ENUM)
#undef LF__ERR_ENUM
} lf_errno_t;

/* Human-readable message for a code; never NULL (borrowed, static). */
const char *lf_strerror(int code);
/* Symbolic name ("LF_EINVAL"); never NULL (borrowed, static). */
const char *lf_err_name(int code);
/* The documented snake_case code that APIs show ("limit_exceeded" for
 * LF_ELIMIT; docs/api.md lists them); "unknown" for a code not in the list,
 * "" for 0. Never NULL (borrowed, static). */
const char *lf_err_code_name(int code);

/* Bugs abort with file and line; expected failures return codes. */
#define LF_ASSERT(cond)                                                        \
    do {                                                                       \
        if (!(cond)) lf__assert_fail(#cond, __FILE__, __LINE__);               \
    } while (0)
_Noreturn void lf__assert_fail(const char *expr, const char *file, int line);

#endif
