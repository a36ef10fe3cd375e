/* cli_decode: the parts of lightfarm-engine that reach the networks —
 * naming a weights file's family for `inspect`, and the `decode` command
 * (a latent through a VAE or a TAESD-family decoder). Built with or
 * without the networks (LF_HAVE_MODEL); without them family names come
 * from tensor-name patterns only and `decode` explains it cannot run. */
#ifndef LF_CLI_DECODE_H
#define LF_CLI_DECODE_H

#include <stddef.h>

/* "sd15", "sdxl", "flux" (lf_model_detect_family), else "taesd", "vae" or
 * "unknown" from the names' layout. Borrowed, static. */
const char *lf_cli_family(const char *const *names, size_t n);

/* `decode --vae FILE --latent IN.safetensors -o OUT.png [--tile N]` (tile:
 * VAE tiles of N latent pixels, bounded memory; 0 = whole); argv[0] is
 * "decode". Returns the process exit status (0, 1 runtime, 2 usage). */
int lf_cli_decode(int argc, char **argv);

#endif
