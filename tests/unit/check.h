/*
 * check.h - the unit tests' one assertion: CHECK(cond) reports a failed condition with its
 * place and counts it in `failures`; main returns non-zero when any failed.
 */
#ifndef ETCDFS_TEST_CHECK_H
#define ETCDFS_TEST_CHECK_H

#include <stdio.h>

static int failures;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

#endif
