/* libFuzzer target: lf_t5_tokenizer_new_mem on arbitrary bytes (a
 * tokenizer.json or spiece.model protobuf) must return a code or a
 * tokenizer that encodes texts (the input itself among them) into ids
 * inside its vocabulary, </s> last, padding after. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_t5_tokenizer.h"

static void s_check(const lf_t5_tokenizer_t *t, const char *text) {
    int32_t ids[24];
    int used = 0;
    LF_ASSERT(lf_t5_tokenizer_encode(t, text, ids, 24, &used) == 0);
    LF_ASSERT(used >= 1 && used <= 24 && ids[used - 1] == LF_T5_EOS);
    for (int i = 0; i < 24; i++)
        LF_ASSERT(ids[i] >= 0 && ids[i] < lf_t5_tokenizer_vocab(t) && (i < used || ids[i] == LF_T5_PAD));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lf_t5_tokenizer_t *t = NULL;
    char err[256];
    if (lf_t5_tokenizer_new_mem(&t, data, size, err, sizeof err) != 0) return 0;
    char *text = malloc(size + 1);
    if (text) {
        memcpy(text, data, size);
        text[size] = '\0';
        s_check(t, text);
    }
    s_check(t, "a cat \xef\xbc\xa1\xcc\x81 <extra_id_0>x\xff  ");
    s_check(t, "");
    free(text);
    lf_t5_tokenizer_destroy(&t);
    return 0;
}
