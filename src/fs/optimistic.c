/* optimistic.c - the optimistic-transaction loop (see optimistic.h). */
#include "optimistic.h"

#include <errno.h>

int optimistic_run(int (*attempt)(void *ctx), void *ctx)
{
    for (int i = 0; i < OPTIMISTIC_ATTEMPTS; i++) {
        int rc = attempt(ctx);
        if (rc != OPTIMISTIC_RETRY)
            return rc;
    }
    return ESTALE;
}
