/*
 * prefix_example.c - prefixes and ranges: list a "directory" of keys, page through it, read a
 * range [start, end), filter keys by substring, and read the past (a historical revision).
 *
 *   ETCD_ENDPOINTS=127.0.0.1:2379 ./prefix_example
 *
 * Exits 0 when everything behaved as expected, 1 otherwise; removes its keys.
 */
#include <etcdc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPECT(cond, what)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "prefix_example: %s failed: %s\n", what, err.message);                 \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

int main(void)
{
    etcdc_error err = {0};
    etcdc_config *cfg = etcdc_config_new();
    const char *endpoints = getenv("ETCD_ENDPOINTS");
    if (endpoints && *endpoints)
        etcdc_config_set_endpoints(cfg, endpoints);
    etcdc_client *c = etcdc_client_new(cfg, &err);
    etcdc_config_free(cfg);
    EXPECT(c != NULL, "connect");

    char prefix[128], key[192];
    snprintf(prefix, sizeof prefix, "examples/prefix/%d/", (int)getpid());

    /* Ten keys: fruit/00 .. fruit/09, plus one under another "directory". */
    int64_t first_rev = 0;
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "%sfruit/%02d", prefix, i);
        char value[16];
        snprintf(value, sizeof value, "v%d", i);
        int64_t rev;
        EXPECT(etcdc_put(c, key, strlen(key), value, strlen(value), &rev, &err) == ETCDC_OK, "put");
        if (i == 0)
            first_rev = rev;
    }
    snprintf(key, sizeof key, "%sveg/carrot", prefix);
    EXPECT(etcdc_put(c, key, strlen(key), "orange", 6, NULL, &err) == ETCDC_OK, "put veg");

    /* Everything under a prefix, with values. Large results are paginated transparently and
     * still form one snapshot: every page is read at the revision of the first. */
    etcdc_kvs all;
    EXPECT(etcdc_get_prefix(c, prefix, strlen(prefix), &all, &err) == ETCDC_OK && all.count == 11,
           "get_prefix");
    printf("%zu keys under %s at revision %lld\n", all.count, prefix, (long long)all.revision);
    etcdc_kvs_clear(&all);

    /* Keys only, at most 4: `more` says the server had more. */
    etcdc_kvs some;
    EXPECT(etcdc_list_keys(c, prefix, strlen(prefix), 4, &some, &err) == ETCDC_OK &&
               some.count == 4 && some.more && some.total == 11,
           "list_keys");
    etcdc_kvs_clear(&some);

    /* Manual pagination with the raw Range: pages of 3, each starting just after the last key
     * of the previous page (key + "\0"), all pinned to one revision. */
    char end[128];
    size_t end_len = etcdc_prefix_end(prefix, strlen(prefix), end); /* the prefix's range end */
    char cursor[200];
    size_t cursor_len = strlen(prefix);
    memcpy(cursor, prefix, cursor_len);
    int64_t pinned = 0;
    size_t seen = 0, pages = 0;
    for (;;) {
        etcdc_range_req req = {.key = cursor,
                               .key_len = cursor_len,
                               .range_end = end,
                               .range_end_len = end_len,
                               .limit = 3,
                               .revision = pinned,
                               .keys_only = true};
        etcdc_kvs page;
        EXPECT(etcdc_range(c, &req, &page, &err) == ETCDC_OK, "range page");
        if (pinned == 0)
            pinned = page.revision;
        seen += page.count;
        pages++;
        bool more = page.more;
        if (page.count) {
            etcdc_kv *last = &page.kvs[page.count - 1];
            memcpy(cursor, last->key, last->key_len);
            cursor[last->key_len] = 0; /* next page starts right after the last key */
            cursor_len = last->key_len + 1;
        }
        etcdc_kvs_clear(&page);
        if (!more)
            break;
    }
    EXPECT(seen == 11 && pages == 4, "manual pagination");
    printf("paged through %zu keys in %zu pages at revision %lld\n", seen, pages,
           (long long)pinned);

    /* A half-open range [fruit/03, fruit/06). */
    char from[192], to[192];
    snprintf(from, sizeof from, "%sfruit/03", prefix);
    snprintf(to, sizeof to, "%sfruit/06", prefix);
    etcdc_kvs range;
    EXPECT(etcdc_get_range(c, from, strlen(from), to, strlen(to), false, &range, &err) ==
                   ETCDC_OK &&
               range.count == 3 && strcmp(range.kvs[0].value, "v3") == 0,
           "get_range");
    etcdc_kvs_clear(&range);

    /* Keys containing a substring (filtered on the client). */
    etcdc_kvs match;
    EXPECT(etcdc_list_keys_matching(c, prefix, strlen(prefix), "veg/", 4, &match, &err) ==
                   ETCDC_OK &&
               match.count == 1,
           "list_keys_matching");
    etcdc_kvs_clear(&match);

    /* History: overwrite fruit/00, then read it as it was at first_rev. */
    snprintf(key, sizeof key, "%sfruit/00", prefix);
    EXPECT(etcdc_put(c, key, strlen(key), "changed", 7, NULL, &err) == ETCDC_OK, "overwrite");
    etcdc_kv old;
    EXPECT(etcdc_get_at_revision(c, key, strlen(key), first_rev, &old, &err) == ETCDC_OK &&
               strcmp(old.value, "v0") == 0,
           "get_at_revision");
    printf("%s was \"%s\" at revision %lld\n", key, old.value, (long long)first_rev);
    etcdc_kv_clear(&old);

    /* Clean up: one DeleteRange for the whole prefix. */
    int64_t deleted = 0;
    EXPECT(etcdc_delete_prefix(c, prefix, strlen(prefix), &deleted, &err) == ETCDC_OK &&
               deleted == 11,
           "delete_prefix");
    etcdc_client_free(c);
    printf("prefix_example: ok\n");
    return 0;
}
