/*
 * test_attrs.c - attribute records (src/fs/attrs.c): record keys of files and directories and
 * their recognition (names with NUL bytes, the empty name), the text round trip at the limits
 * of every field, refusal of damaged or foreign text, and the validity rule that keeps a record
 * from describing another incarnation of its entry.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attrs.h"
#include "names.h"

#include "check.h"

static void test_keys(void)
{
    size_t len, name_len = 99;
    char *k = attrs_key("/app/deploy.sh", 14, ATTRS_FILE, &len);
    CHECK(k && len == 20 && !memcmp(k, "/app/deploy.sh\0attrs", 21));
    CHECK(attrs_key_kind(k + 5, len - 5, &name_len) == ATTRS_FILE && name_len == 9);
    free(k);

    k = attrs_key("/app/bin/", 9, ATTRS_DIR, &len);
    CHECK(k && len == 17 && !memcmp(k, "/app/bin\0dirattrs", 18));
    CHECK(attrs_key_kind(k + 5, len - 5, &name_len) == ATTRS_DIR && name_len == 3);
    free(k);

    /* the record keys sort after the file and before the directory of the same name, as
     * etcd orders keys (bytes, a prefix first) */
    CHECK(names_key_cmp("bin", 3, "bin\0attrs", 9) < 0 &&
          names_key_cmp("bin\0attrs", 9, "bin/", 4) < 0);
    CHECK(names_key_cmp("bin", 3, "bin\0dirattrs", 12) < 0 &&
          names_key_cmp("bin\0dirattrs", 12, "bin/", 4) < 0);

    CHECK(!attrs_key("/app/bin", 8, ATTRS_DIR, &len)); /* not a directory prefix */
    CHECK(!attrs_key("", 0, ATTRS_DIR, &len));
    CHECK(!attrs_key("/a", 2, ATTRS_NONE, &len));

    /* names that hold NUL bytes themselves, and the empty name (the marker's file "%") */
    k = attrs_key("d/a\0b", 5, ATTRS_FILE, &len);
    CHECK(k && attrs_key_kind(k + 2, len - 2, &name_len) == ATTRS_FILE && name_len == 3);
    free(k);
    CHECK(attrs_key_kind("\0attrs", 6, &name_len) == ATTRS_FILE && name_len == 0);
    CHECK(attrs_key_kind("\0dirattrs", 9, &name_len) == ATTRS_DIR && name_len == 0);

    /* ordinary components, and near misses */
    CHECK(attrs_key_kind("attrs", 5, &name_len) == ATTRS_NONE);
    CHECK(attrs_key_kind("a\0attr", 6, &name_len) == ATTRS_NONE);
    CHECK(attrs_key_kind("a\0Attrs", 7, &name_len) == ATTRS_NONE);
    CHECK(attrs_key_kind("a%attrs", 7, &name_len) == ATTRS_NONE);
    CHECK(attrs_key_kind("", 0, &name_len) == ATTRS_NONE);
}

static attrs sample(void)
{
    return (attrs){.mode = S_IFREG | 04755,
                   .uid = 1000,
                   .gid = 50,
                   .mtime = {1765065600, 123456789},
                   .ctime = {1765065601, 5},
                   .anchor = 0,
                   .content = 0};
}

static bool same(const attrs *a, const attrs *b)
{
    return a->mode == b->mode && a->uid == b->uid && a->gid == b->gid &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec &&
           a->anchor == b->anchor && a->content == b->content;
}

static void round_trip(const attrs *a)
{
    char buf[ATTRS_TEXT_MAX];
    size_t n = attrs_format(a, buf);
    CHECK(n < ATTRS_TEXT_MAX && strlen(buf) == n);
    attrs back;
    memset(&back, 0xA5, sizeof back);
    CHECK(attrs_parse(buf, n, &back));
    CHECK(same(a, &back));
}

static void test_text(void)
{
    attrs a = sample();
    char buf[ATTRS_TEXT_MAX];
    size_t n = attrs_format(&a, buf);
    const char *want = "etcdfs-attrs 1 mode=104755 uid=1000 gid=50 mtime=1765065600.123456789 "
                       "ctime=1765065601.000000005 anchor=0 content=0";
    CHECK(n == strlen(want) && !strcmp(buf, want));
    round_trip(&a);

    /* every file type, and the limits of every field */
    const mode_t types[] = {S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFSOCK};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        a.mode = types[i] | 07777;
        round_trip(&a);
    }
    a = sample();
    a.uid = UINT32_MAX - 1;
    a.gid = 0;
    a.mtime = (struct timespec){-1, 999999999}; /* before 1970, as utimensat allows */
    a.ctime = (struct timespec){INT64_MAX / 2, 0};
    a.anchor = INT64_MAX;
    a.content = -1;
    round_trip(&a);
    n = attrs_format(&a, buf);
    CHECK(n < ATTRS_TEXT_MAX);
}

static void parse_fails(const char *text)
{
    attrs a = sample(), before = sample();
    if (attrs_parse(text, strlen(text), &a)) {
        fprintf(stderr, "parsed but should not: '%s'\n", text);
        CHECK(false);
    }
    CHECK(same(&a, &before)); /* untouched */
}

static void test_bad_text(void)
{
    const char *good = "etcdfs-attrs 1 mode=100644 uid=0 gid=0 mtime=1.000000000 "
                       "ctime=2.000000000 anchor=5 content=6";
    attrs a;
    CHECK(attrs_parse(good, strlen(good), &a) && a.anchor == 5 && a.content == 6);
    /* a later version's extra field is skipped */
    const char *later = "etcdfs-attrs 1 mode=100644 uid=0 gid=0 xattr=abc mtime=1.000000000 "
                        "ctime=2.000000000 anchor=5 content=6 future=";
    CHECK(attrs_parse(later, strlen(later), &a) && a.mode == (S_IFREG | 0644));

    parse_fails("");
    parse_fails("etcdfs-attrs 1"); /* no fields */
    parse_fails("etcdfs-attrs 2 mode=100644 uid=0 gid=0 mtime=1.000000000 ctime=2.000000000 "
                "anchor=5 content=6"); /* another version */
    parse_fails("etcdfs-attrs 10 mode=100644 uid=0 gid=0 mtime=1.000000000 ctime=2.000000000 "
                "anchor=5 content=6");
    parse_fails("etcdfs-attrs 1 mode=100644 uid=0 gid=0 mtime=1.000000000 ctime=2.000000000 "
                "anchor=5"); /* a field missing */
    parse_fails("etcdfs-attrs 1 mode=100644 mode=100644 uid=0 gid=0 mtime=1.000000000 "
                "ctime=2.000000000 anchor=5 content=6"); /* a field twice */
    parse_fails("etcdfs-attrs 1 mode=060644 uid=0 gid=0 mtime=1.000000000 ctime=2.000000000 "
                "anchor=5 content=6"); /* a block device: not a type we keep */
    parse_fails("etcdfs-attrs 1 mode=1000644 uid=0 gid=0 mtime=1.000000000 ctime=2.000000000 "
                "anchor=5 content=6"); /* more than 16 bits */
    parse_fails("etcdfs-attrs 1 mode=100648 uid=0 gid=0 mtime=1.000000000 ctime=2.000000000 "
                "anchor=5 content=6"); /* not octal */
    parse_fails("etcdfs-attrs 1 mode=100644 uid=4294967295 gid=0 mtime=1.000000000 "
                "ctime=2.000000000 anchor=5 content=6"); /* (uid_t)-1 */
    parse_fails("etcdfs-attrs 1 mode=100644 uid=-1 gid=0 mtime=1.000000000 ctime=2.000000000 "
                "anchor=5 content=6");
    parse_fails("etcdfs-attrs 1 mode=100644 uid=0 gid=0 mtime=1.5 ctime=2.000000000 anchor=5 "
                "content=6"); /* nanoseconds not 9 digits */
    parse_fails("etcdfs-attrs 1 mode=100644 uid=0 gid=0 mtime=1 ctime=2.000000000 anchor=5 "
                "content=6");
    parse_fails("etcdfs-attrs 1 mode=100644 uid=0 gid=0 mtime=1.000000000 ctime=2.000000000 "
                "anchor=-1 content=6"); /* anchor is a revision */
    parse_fails("etcdfs-attrs 1 mode=100644 uid=0 gid=0 mtime=1.000000000 ctime=2.000000000 "
                "anchor=5 content=-2");
    parse_fails("etcdfs-attrs 1 mode=100644 uid=0 gid=0 mtime=1.000000000 ctime=2.000000000 "
                "anchor=99999999999999999999 content=6"); /* overflow */
    parse_fails("etcdfs-attrs 1 mode=100644  uid=0 gid=0 mtime=1.000000000 ctime=2.000000000 "
                "anchor=5 content=6"); /* two spaces */
    parse_fails("etcdfs-attrs 1 mode=100644 uid=0 gid=0 mtime=1.000000000 ctime=2.000000000 "
                "anchor=5 content=6 "); /* trailing space */
    parse_fails("etcdfs-attrs 1 mode=100644x uid=0 gid=0 mtime=1.000000000 ctime=2.000000000 "
                "anchor=5 content=6");

    /* every prefix of a good record fails (cut-off values are not records) */
    for (size_t i = 0; i < strlen(good); i++) {
        attrs b = sample(), s = sample();
        CHECK(!attrs_parse(good, i, &b));
        CHECK(same(&b, &s));
    }
}

static void test_validity(void)
{
    attrs a = sample(); /* anchor=0 content=0: written together with the anchor */
    /* created in one Txn at revision 10: both keys have revision 10 */
    CHECK(attrs_applies(&a, 10, 0, 10, 10) == (ATTRS_APPLY | ATTRS_APPLY_MTIME));
    /* the value was rewritten by another client at 12: mode stays, mtime is unknown */
    CHECK(attrs_applies(&a, 10, 0, 10, 12) == ATTRS_APPLY);
    /* the key was deleted and created again at 15: an orphan of the old file */
    CHECK(attrs_applies(&a, 10, 0, 15, 15) == 0);
    /* no anchor */
    CHECK(attrs_applies(&a, 10, 0, 0, 0) == 0);

    /* chmod of a file created at 3, last written at 7: the record names both */
    a.anchor = 3;
    a.content = 7;
    CHECK(attrs_applies(&a, 20, 0, 3, 7) == (ATTRS_APPLY | ATTRS_APPLY_MTIME));
    CHECK(attrs_applies(&a, 20, 0, 3, 21) == ATTRS_APPLY);
    CHECK(attrs_applies(&a, 20, 0, 4, 7) == 0);

    /* a write-back of an existing file: value and record in one Txn at 30 */
    a.content = 0;
    CHECK(attrs_applies(&a, 30, 0, 3, 30) == (ATTRS_APPLY | ATTRS_APPLY_MTIME));

    /* created with its anchor at 50, then put again as it is (rekey, a lease) at 60: still
     * the anchor's, by its create_revision; not once the anchor is created anew */
    a.anchor = 0;
    a.content = 0;
    CHECK(attrs_applies(&a, 60, 50, 50, 60) == (ATTRS_APPLY | ATTRS_APPLY_MTIME));
    CHECK(attrs_applies(&a, 60, 50, 50, 61) == ATTRS_APPLY);
    CHECK(attrs_applies(&a, 60, 50, 55, 55) == 0);
    CHECK(attrs_applies(&a, 60, 0, 50, 60) == 0); /* create_revision not known: by mod only */

    /* a moved file whose mtime was already unknown */
    a.anchor = 0;
    a.content = -1;
    CHECK(attrs_applies(&a, 40, 0, 40, 40) == ATTRS_APPLY);
}

int main(void)
{
    test_keys();
    test_text();
    test_bad_text();
    test_validity();
    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    else
        printf("test_attrs: ok\n");
    return failures != 0;
}
