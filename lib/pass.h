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
/*
 * pass_read that also says why it failed (issue 12, item 11): *why gets a
 * static phrase naming the cause ("the two entries differ", "no such file",
 * "shorter than 8 characters", ...), or NULL on success.
 * At the terminal, SIGINT, SIGTERM, SIGHUP and SIGQUIT while the prompt
 * waits restore echo before the process dies of the signal.
 */
int pass_read_why(const char *file, const char *prompt, int confirm, char **out,
                  const char **why) VL_MUST_CHECK;
/*
 * 1 when FILE (a --passphrase-file) can be read or written by its group or
 * others (mode & 077), as ssh warns for private keys; 0 otherwise or if it
 * cannot be examined (pass_read then names the problem).
 */
int pass_file_exposed(const char *file, unsigned *mode);
void pass_free(char *p);

#endif
