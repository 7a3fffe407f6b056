/*
 * test_names.c - the key <-> file name mapping of src/fs/names.c (docs/key-mapping.md):
 * plain names, escapes, hashed long names, reserved names, round trips and canonical forms.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

#include "check.h"

static const char *disp(const void *comp, size_t len, bool at_root)
{
    static char out[NAMES_MAX + 1];
    names_to_display(comp, len, at_root, out);
    return out;
}

/* display -> component -> display gives the same, and the component is the original. */
static void roundtrip(const void *comp, size_t len, bool at_root)
{
    char name[NAMES_MAX + 1], back[NAMES_MAX + 1];
    size_t n = names_to_display(comp, len, at_root, name);
    CHECK(n >= 1 && n <= NAMES_MAX);
    CHECK(strlen(name) == n); /* no NUL inside */
    CHECK(!memchr(name, '/', n));
    CHECK(strcmp(name, ".") && strcmp(name, ".."));
    size_t blen = 0;
    uint64_t h = 0;
    names_kind k = names_from_display(name, n, at_root, back, &blen, &h);
    if (k == NAMES_HASHED) {
        CHECK(len > 0);
        CHECK(h == names_hash(comp, len));
        CHECK(blen <= len && !memcmp(back, comp, blen)); /* leading bytes */
    } else {
        CHECK(k == NAMES_PLAIN || k == NAMES_ESCAPED);
        CHECK(blen == len && !memcmp(back, comp, len));
    }
}

static names_kind kind_of(const char *name, bool at_root, char *out, size_t *out_len)
{
    uint64_t h;
    return names_from_display(name, strlen(name), at_root, out, out_len, &h);
}

static void test_plain(void)
{
    CHECK(!strcmp(disp("abc", 3, false), "abc"));
    CHECK(!strcmp(disp("a b\tc\n", 6, false), "a b\tc\n")); /* any byte but '/' and NUL */
    CHECK(!strcmp(disp("\xff\xfe", 2, false), "\xff\xfe"));
    CHECK(!strcmp(disp("50%", 3, false), "50%")); /* '%' only matters first */
    CHECK(!strcmp(disp(".hidden", 7, false), ".hidden"));
    CHECK(!strcmp(disp("...", 3, false), "..."));
    char out[300];
    size_t len;
    CHECK(kind_of("abc", false, out, &len) == NAMES_PLAIN && len == 3);
    CHECK(kind_of("50%", false, out, &len) == NAMES_PLAIN);
}

static void test_escapes(void)
{
    CHECK(!strcmp(disp("", 0, false), "%"));
    CHECK(!strcmp(disp(".", 1, false), "%."));
    CHECK(!strcmp(disp("..", 2, false), "%.."));
    CHECK(!strcmp(disp("%x", 2, false), "%%25x"));
    CHECK(!strcmp(disp("a\0b", 3, false), "%a%00b"));
    CHECK(!strcmp(disp("%value", 6, false), "%%25value"));
    /* .etcdfs is reserved at the root only */
    CHECK(!strcmp(disp(".etcdfs", 7, true), "%.etcdfs"));
    CHECK(!strcmp(disp(".etcdfs", 7, false), ".etcdfs"));
    char out[300];
    size_t len;
    CHECK(kind_of("%", false, out, &len) == NAMES_ESCAPED && len == 0);
    CHECK(kind_of("%..", false, out, &len) == NAMES_ESCAPED && len == 2 && !memcmp(out, "..", 2));
    CHECK(kind_of("%a%00b", false, out, &len) == NAMES_ESCAPED && len == 3 &&
          !memcmp(out, "a\0b", 3));
    CHECK(kind_of("%.etcdfs", true, out, &len) == NAMES_ESCAPED && len == 7);
}

static void test_reserved_and_invalid(void)
{
    char out[300];
    size_t len;
    CHECK(kind_of("%value", false, out, &len) == NAMES_SELF);
    CHECK(kind_of("%value", true, out, &len) == NAMES_INVALID); /* the root has no own key */
    CHECK(kind_of(".etcdfs", true, out, &len) == NAMES_STATS);
    CHECK(kind_of(".etcdfs", false, out, &len) == NAMES_PLAIN);
    /* non-canonical spellings name nothing: one component, one name */
    CHECK(kind_of("%abc", false, out, &len) == NAMES_INVALID);  /* would be "abc" */
    CHECK(kind_of("%%41", false, out, &len) == NAMES_INVALID);  /* 'A' is never escaped */
    CHECK(kind_of("%.%2e", false, out, &len) == NAMES_INVALID); /* lowercase hex */
    CHECK(kind_of("%%2", false, out, &len) == NAMES_INVALID);   /* short escape */
    CHECK(kind_of("%%zz", false, out, &len) == NAMES_INVALID);
    CHECK(kind_of("%x%~123", false, out, &len) == NAMES_INVALID); /* short hash */
    CHECK(kind_of(".", false, out, &len) == NAMES_INVALID);
    CHECK(kind_of("..", false, out, &len) == NAMES_INVALID);
    CHECK(kind_of("", false, out, &len) == NAMES_INVALID);
}

static void test_long(void)
{
    char comp[1000];
    memset(comp, 'x', sizeof comp);
    /* 255 bytes: plain; 256: hashed */
    CHECK(strlen(disp(comp, 255, false)) == 255 && comp[0] == disp(comp, 255, false)[0]);
    const char *h = disp(comp, 256, false);
    CHECK(strlen(h) <= NAMES_MAX);
    CHECK(h[0] == '%' && strstr(h, "%~") != NULL);
    /* escaped form longer than 255 (254 bytes + leading '%') is hashed too */
    comp[0] = '%';
    CHECK(strstr(disp(comp, 254, false), "%~") != NULL);
    /* NULs triple in size */
    char nuls[100] = {0};
    CHECK(strstr(disp(nuls, 90, false), "%~") != NULL);
    CHECK(strstr(disp(nuls, 80, false), "%~") == NULL);
    /* two long names that share 300 leading bytes still differ */
    char a[400], b[400];
    memset(a, 'y', sizeof a);
    memcpy(b, a, sizeof b);
    b[399] = 'z';
    char da[NAMES_MAX + 1];
    strcpy(da, disp(a, 400, false));
    CHECK(strcmp(da, disp(b, 400, false)) != 0);
    roundtrip(a, 400, false);
    roundtrip(nuls, 90, false);
    roundtrip(comp, 1000, false);
    /* a hashed name never splits an escape */
    char pct[300];
    memset(pct, '%', sizeof pct);
    const char *hp = disp(pct, 300, false);
    CHECK(strlen(hp) <= NAMES_MAX);
    roundtrip(pct, 300, false);
}

static void test_roundtrip_many(void)
{
    /* Every short component over a small alphabet that includes the special bytes. */
    const char alpha[] = {'a', '.', '%', '\0', '~', '0'};
    char comp[4];
    for (int len = 0; len <= 4; len++) {
        int total = 1;
        for (int i = 0; i < len; i++)
            total *= (int)sizeof alpha;
        for (int v = 0; v < total; v++) {
            int x = v;
            for (int i = 0; i < len; i++) {
                comp[i] = alpha[x % (int)sizeof alpha];
                x /= (int)sizeof alpha;
            }
            roundtrip(comp, (size_t)len, false);
            roundtrip(comp, (size_t)len, true);
        }
    }
}

static void test_helpers(void)
{
    size_t len;
    char *p = names_normalize_prefix("/app", &len);
    CHECK(p && !strcmp(p, "/app/") && len == 5);
    free(p);
    p = names_normalize_prefix("/app/", &len);
    CHECK(p && !strcmp(p, "/app/") && len == 5);
    free(p);
    p = names_normalize_prefix("", &len);
    CHECK(p && !strcmp(p, "") && len == 0);
    free(p);
    bool is_dir;
    CHECK(names_first_component("a/b/c", 5, &is_dir) == 1 && is_dir);
    CHECK(names_first_component("abc", 3, &is_dir) == 3 && !is_dir);
    CHECK(names_first_component("/x", 2, &is_dir) == 0 && is_dir);
    CHECK(names_hash("", 0) == 0xcbf29ce484222325ULL);
    CHECK(names_hash("a", 1) == 0xaf63dc4c8601ec8cULL); /* FNV-1a 64 test vector */
}

static void test_last_component(void)
{
    CHECK(names_last_component("/a/b/c", 6, 0) == 5);
    CHECK(names_last_component("/a/b/", 5, 0) == 5); /* a directory prefix: empty component */
    CHECK(names_last_component("abc", 3, 0) == 0);
    CHECK(names_last_component("/app/x", 6, 5) == 5);
    CHECK(names_last_component("/app/x", 6, 6) == 6);         /* never before floor */
    CHECK(names_last_component("a\0b/c\0attrs", 11, 0) == 4); /* NUL bytes are bytes */
}

int main(void)
{
    test_plain();
    test_escapes();
    test_reserved_and_invalid();
    test_long();
    test_roundtrip_many();
    test_helpers();
    test_last_component();
    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    else
        printf("test_names: all checks passed\n");
    return failures ? 1 : 0;
}
