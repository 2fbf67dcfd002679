/*
 * cli.h - the verb dispatch shared by the command-line tools (`valise VERB`,
 * `valise-keys VERB`): DESIGN.md's command-line contract.
 *
 * Contract:
 *  - cli_main initialises libsodium (exit 1 with one line on stderr if it
 *    cannot), prints usage on stdout and returns 0 for --help, -h or help,
 *    prints usage on stderr and returns 2 without a verb, and one line
 *    "PROG: unknown verb 'X' (see PROG --help)" with 2 for an unknown verb.
 *  - Otherwise it returns the verb's own exit status; the verb gets argv
 *    starting at the verb's name (argv[0] = verb), as getopt expects.
 */
#ifndef VALISE_CLI_H
#define VALISE_CLI_H

#include <stddef.h>

struct cli_verb {
    const char *name;
    int (*run)(int argc, char **argv);
};

int cli_main(const char *prog, const char *usage, const struct cli_verb *verbs, size_t nverbs,
             int argc, char **argv);

#endif
