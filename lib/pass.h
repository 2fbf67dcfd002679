/*
 * pass.h - reading passphrases (DESIGN.md command-line contract): from the
 * terminal without echo, or from the first line of --passphrase-file FILE.
 * The result lives in sodium_malloc'ed memory; release it with pass_free,
 * which wipes it.
 */
#ifndef VALISE_PASS_H
#define VALISE_PASS_H

#include <stddef.h>

#include "err.h"

enum { PASS_MAX = 1024, PASS_MIN_NEW = 8 };

/*
 * file: NULL to ask on /dev/tty. confirm: ask twice (terminal only) and, for
 * a new secret, require at least PASS_MIN_NEW characters.
 */
int pass_read(const char *file, const char *prompt, int confirm, char **out) VL_MUST_CHECK;
void pass_free(char *p);

#endif
