/*
 * fuzz_names.c - libFuzzer target for the key <-> file name mapping (src/fs/names.c,
 * docs/key-mapping.md). Every property the mapping promises is asserted, so a violation is a
 * crash that libFuzzer reports with the input.
 *
 * Input: byte 0 = flags (bit 0: at the mount root), the rest is used three ways:
 *  - as a key component (when it holds no '/'): its display name must be a valid Linux file
 *    name that maps back to exactly this component (or, when hashed, to its leading bytes and
 *    its hash);
 *  - as a display name as the kernel would pass it (when it holds no '/' and no NUL): a name
 *    that is accepted must be canonical, i.e. its component displays as exactly this name;
 *  - as a key prefix: etcdc_prefix_end (the mount's range ends) and names_first_component must
 *    keep their contracts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcdc.h"
#include "names.h"

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_names: property violated: %s (line %d)\n", #cond, __LINE__);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Length of '%' + the component with '%' and NUL written as 3-byte escapes. */
static size_t escaped_len(const unsigned char *c, size_t len)
{
    size_t n = 1;
    for (size_t i = 0; i < len; i++)
        n += (c[i] == '%' || c[i] == 0) ? 3 : 1;
    return n;
}

static void check_component(const unsigned char *comp, size_t len, bool at_root)
{
    char name[NAMES_MAX + 1];
    size_t n = names_to_display(comp, len, at_root, name);
    /* a valid Linux file name */
    REQUIRE(n >= 1 && n <= NAMES_MAX);
    REQUIRE(name[n] == 0 && strlen(name) == n);
    REQUIRE(!memchr(name, '/', n));
    REQUIRE(strcmp(name, ".") != 0 && strcmp(name, "..") != 0);
    /* shown unchanged exactly when it is a valid, unambiguous name */
    bool plain = len > 0 && len <= NAMES_MAX && comp[0] != '%' && !memchr(comp, 0, len) &&
                 !(len == 1 && comp[0] == '.') && !(len == 2 && !memcmp(comp, "..", 2)) &&
                 !(at_root && len == 7 && !memcmp(comp, NAMES_STATS_DIR, 7));
    REQUIRE(plain == (n == len && !memcmp(name, comp, len)));
    if (!plain)
        REQUIRE(name[0] == '%');

    /* ... and maps back */
    char *back = malloc(n); /* exactly name_len bytes, as names.h allows: ASan checks it */
    REQUIRE(back);
    size_t blen = 12345;
    uint64_t h = 0;
    names_kind k = names_from_display(name, n, at_root, back, &blen, &h);
    if (escaped_len(comp, len) > NAMES_MAX && !plain) {
        REQUIRE(k == NAMES_HASHED);
        REQUIRE(h == names_hash(comp, len));
        REQUIRE(blen <= len && !memcmp(back, comp, blen));
    } else {
        REQUIRE(k == (plain ? NAMES_PLAIN : NAMES_ESCAPED));
        REQUIRE(blen == len && !memcmp(back, comp, len));
    }
    free(back);
}

static void check_name(const char *name, size_t len, bool at_root)
{
    char *comp = malloc(len ? len : 1);
    REQUIRE(comp);
    size_t clen = 12345;
    uint64_t h = 0;
    names_kind k = names_from_display(name, len, at_root, comp, &clen, &h);
    char again[NAMES_MAX + 1];
    switch (k) {
    case NAMES_PLAIN:
    case NAMES_ESCAPED:
        /* canonical: one name per component, one component per name */
        REQUIRE(clen <= len);
        REQUIRE(names_to_display(comp, clen, at_root, again) == len);
        REQUIRE(!memcmp(again, name, len));
        /* a name without '/' never reaches a key component with one (no path injection) */
        REQUIRE(!memchr(comp, '/', clen));
        break;
    case NAMES_HASHED:
        REQUIRE(len > 2 + 16 && name[0] == '%' && clen <= len);
        REQUIRE(!memcmp(name + len - 18, "%~", 2));
        break;
    case NAMES_SELF:
        REQUIRE(!at_root && len == strlen(NAMES_SELF_VALUE) && !memcmp(name, "%value", len));
        break;
    case NAMES_STATS: REQUIRE(at_root && len == 7 && !memcmp(name, NAMES_STATS_DIR, len)); break;
    case NAMES_INVALID: REQUIRE(clen == 0); break;
    default: REQUIRE(!"unknown kind");
    }
    free(comp);
}

static void check_prefix(const unsigned char *p, size_t len)
{
    char *end = malloc(len ? len : 1);
    REQUIRE(end);
    size_t m = etcdc_prefix_end(p, len, end);
    if (m == 0) {
        for (size_t i = 0; i < len; i++)
            REQUIRE(p[i] == 0xff); /* no end exists only for all-0xff prefixes */
    } else {
        /* the smallest key greater than every key starting with p */
        REQUIRE(m <= len && !memcmp(end, p, m - 1));
        REQUIRE((unsigned char)end[m - 1] == p[m - 1] + 1);
        for (size_t i = m; i < len; i++)
            REQUIRE(p[i] == 0xff);
    }
    free(end);

    bool is_dir = false;
    size_t first = names_first_component((const char *)p, len, &is_dir);
    REQUIRE(first <= len && !memchr(p, '/', first));
    REQUIRE(is_dir == (first < len));
    if (is_dir)
        REQUIRE(p[first] == '/');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool at_root = data[0] & 1;
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    bool has_slash = memchr(body, '/', len) != NULL;
    if (!has_slash) {
        /* a component may hold any byte but '/' (and be empty) */
        check_component(body, len, at_root);
        if (!memchr(body, 0, len)) {
            /* a heap copy of exactly len bytes, so that reads past the name are caught */
            char *name = malloc(len ? len : 1);
            REQUIRE(name);
            memcpy(name, body, len);
            check_name(name, len, at_root);
            free(name);
        }
    }
    check_prefix(body, len);
    return 0;
}
