/* harden.c - no core dumps, not dumpable (see harden.h). */
#include "harden.h"

#include <sys/prctl.h>
#include <sys/resource.h>

int harden_process(void)
{
    const struct rlimit none = {0, 0};

    /* Non-dumpable first: from here on no core is written whatever the limit. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        return VERR_INTERNAL;
    if (setrlimit(RLIMIT_CORE, &none) != 0)
        return VERR_INTERNAL;
    return 0;
}
