/* lf_error: messages and names for the codes in lf_error.h. */
#include "lf_error.h"

#include <stdio.h>
#include <stdlib.h>

const char *lf_strerror(int code) {
    if (code == 0) return "success";
    switch (code) {
#define LF__ERR_MSG(name, c, api, msg) case c: return msg;
        LF_ERRNO_MAP(LF__ERR_MSG)
#undef LF__ERR_MSG
    }
    return "unknown error";
}

const char *lf_err_name(int code) {
    if (code == 0) return "LF_OK";
    switch (code) {
#define LF__ERR_NAME(name, c, api, msg) case c: return "LF_" #name;
        LF_ERRNO_MAP(LF__ERR_NAME)
#undef LF__ERR_NAME
    }
    return "LF_EUNKNOWN_CODE";
}

const char *lf_err_code_name(int code) {
    if (code == 0) return "";
    switch (code) {
#define LF__ERR_API(name, c, api, msg) case c: return api;
        LF_ERRNO_MAP(LF__ERR_API)
#undef LF__ERR_API
    }
    return "unknown";
}

void lf__assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "lightfarm: assertion failed: %s (%s:%d)\n", expr, file, line);
    fflush(stderr);
    abort();
}
