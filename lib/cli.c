/* cli.c - verb dispatch of the command-line tools (see cli.h). */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

int cli_main(const char *prog, const char *usage, const struct cli_verb *verbs, size_t nverbs,
             int argc, char **argv)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "%s: libsodium failed to initialise\n", prog);
        return 1;
    }
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    for (size_t i = 0; i < nverbs; i++)
        if (strcmp(argv[1], verbs[i].name) == 0)
            return verbs[i].run(argc - 1, argv + 1);
    fprintf(stderr, "%s: unknown verb '%s' (see %s --help)\n", prog, argv[1], prog);
    return 2;
}
