/*
 * test_name_set.c - the set of names a directory changed since its listing (src/fs/name_set.c):
 * membership of raw byte names (empty, with NUL and '/' bytes), growth past many rehashes,
 * duplicates, the empty (NULL) set.
 */
#include <stdio.h>
#include <string.h>

#include "name_set.h"

#include "check.h"

static void test_empty(void)
{
    CHECK(!name_set_has(NULL, "a", 1));
    CHECK(name_set_count(NULL) == 0);
    name_set_free(NULL);
}

static void test_raw_names(void)
{
    name_set *s = NULL;
    CHECK(name_set_add(&s, "", 0) == 0);
    CHECK(name_set_add(&s, "a\0b", 3) == 0);
    CHECK(name_set_has(s, "", 0));
    CHECK(name_set_has(s, "a\0b", 3));
    CHECK(!name_set_has(s, "a", 1)); /* a prefix is another name */
    CHECK(!name_set_has(s, "a\0c", 3));
    CHECK(name_set_add(&s, "a\0b", 3) == 0); /* again: no second entry */
    CHECK(name_set_count(s) == 2);
    name_set_free(s);
}

static void test_many(void)
{
    name_set *s = NULL;
    char name[32];
    for (int i = 0; i < 20000; i++) {
        int len = snprintf(name, sizeof name, "f%d", i);
        CHECK(name_set_add(&s, name, (size_t)len) == 0);
    }
    CHECK(name_set_count(s) == 20000);
    for (int i = 0; i < 20000; i += 7) {
        int len = snprintf(name, sizeof name, "f%d", i);
        CHECK(name_set_has(s, name, (size_t)len));
    }
    for (int i = 20000; i < 20100; i++) {
        int len = snprintf(name, sizeof name, "f%d", i);
        CHECK(!name_set_has(s, name, (size_t)len));
    }
    name_set_free(s);
}

int main(void)
{
    test_empty();
    test_raw_names();
    test_many();
    if (failures)
        fprintf(stderr, "test_name_set: %d failure(s)\n", failures);
    return failures ? 1 : 0;
}
