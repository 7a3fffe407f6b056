/*
 * fuzz_attrs.c - libFuzzer target for attribute records (src/fs/attrs.c,
 * docs/design-attributes.md). Records come from etcd, where any client may write anything.
 *
 * Input, used two ways:
 *  - as a record's text: a text that parses must format back into a text that parses to the
 *    same record (and fits ATTRS_TEXT_MAX); a text that does not parse leaves the output alone;
 *  - as a key: its record keys (file, and directory when it ends in '/') must be recognised
 *    as records of exactly that entry by attrs_key_kind.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attrs.h"

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_attrs: property violated: %s (line %d)\n", #cond, __LINE__);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_text(const char *text, size_t len)
{
    attrs a, untouched;
    memset(&a, 0x5A, sizeof a);
    memcpy(&untouched, &a, sizeof a);
    if (!attrs_parse(text, len, &a)) {
        REQUIRE(!memcmp(&a, &untouched, sizeof a));
        return;
    }
    char buf[ATTRS_TEXT_MAX];
    size_t n = attrs_format(&a, buf);
    REQUIRE(n < ATTRS_TEXT_MAX);
    attrs b;
    REQUIRE(attrs_parse(buf, n, &b));
    REQUIRE(a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && a.anchor == b.anchor &&
            a.content == b.content && a.mtime.tv_sec == b.mtime.tv_sec &&
            a.mtime.tv_nsec == b.mtime.tv_nsec && a.ctime.tv_sec == b.ctime.tv_sec &&
            a.ctime.tv_nsec == b.ctime.tv_nsec);
}

/* The last component of key (after its last '/' before position end). */
static size_t last_comp(const char *key, size_t end)
{
    size_t at = end;
    while (at > 0 && key[at - 1] != '/')
        at--;
    return at;
}

static void check_key(const char *key, size_t len)
{
    size_t rlen, name_len;
    char *r = attrs_key(key, len, ATTRS_FILE, &rlen);
    REQUIRE(r && rlen > len && !memcmp(r, key, len));
    size_t from = last_comp(r, rlen);
    REQUIRE(from == last_comp(key, len)); /* the record lies in the file's own directory */
    REQUIRE(attrs_key_kind(r + from, rlen - from, &name_len) == ATTRS_FILE);
    REQUIRE(from + name_len == len);
    free(r);
    r = attrs_key(key, len, ATTRS_DIR, &rlen);
    if (len == 0 || key[len - 1] != '/') {
        REQUIRE(!r);
        return;
    }
    REQUIRE(r && !memcmp(r, key, len - 1));
    from = last_comp(r, rlen);
    REQUIRE(from == last_comp(key, len - 1)); /* in the parent of the directory */
    REQUIRE(attrs_key_kind(r + from, rlen - from, &name_len) == ATTRS_DIR);
    REQUIRE(from + name_len == len - 1);
    free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_text((const char *)data, size);
    check_key((const char *)data, size);
    return 0;
}
