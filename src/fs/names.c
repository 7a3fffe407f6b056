/*
 * names.c - key <-> file name mapping (see names.h and docs/key-mapping.md).
 *
 * Everything here is a pure function so that the rule can be unit tested on its own
 * (tests/unit/test_names.c); the filesystem only calls these.
 */
#include "names.h"

#include <stdlib.h>
#include <string.h>

#define HASH_HEX 16
/* '%' + escaped bytes + "%~" + hash: the escaped bytes may use what is left of 255. */
#define HASHED_BUDGET (NAMES_MAX - 1 - 2 - HASH_HEX)

static const char hex_upper[] = "0123456789ABCDEF";
static const char hex_lower[] = "0123456789abcdef";

uint64_t names_hash(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* A component that can be shown unchanged. */
static bool is_plain(const unsigned char *c, size_t len, bool at_root)
{
    if (len == 0 || len > NAMES_MAX || c[0] == '%')
        return false;
    if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
        return false;
    if (memchr(c, 0, len))
        return false;
    if (at_root && len == sizeof NAMES_STATS_DIR - 1 && !memcmp(c, NAMES_STATS_DIR, len))
        return false;
    return true;
}

static bool needs_escape(unsigned char b)
{
    return b == '%' || b == 0;
}

size_t names_to_display(const void *comp, size_t len, bool at_root, char *out)
{
    const unsigned char *c = comp;
    if (is_plain(c, len, at_root)) {
        memcpy(out, c, len);
        out[len] = 0;
        return len;
    }
    size_t escaped = 1;
    for (size_t i = 0; i < len; i++)
        escaped += needs_escape(c[i]) ? 3 : 1;
    size_t limit = escaped <= NAMES_MAX ? NAMES_MAX : 1 + HASHED_BUDGET;
    size_t n = 0;
    out[n++] = '%';
    for (size_t i = 0; i < len; i++) {
        size_t need = needs_escape(c[i]) ? 3 : 1;
        if (n + need > limit)
            break; /* only when hashing: never split an escape */
        if (need == 3) {
            out[n++] = '%';
            out[n++] = hex_upper[c[i] >> 4];
            out[n++] = hex_upper[c[i] & 15];
        } else {
            out[n++] = (char)c[i];
        }
    }
    if (escaped > NAMES_MAX) {
        uint64_t h = names_hash(c, len);
        out[n++] = '%';
        out[n++] = '~';
        for (int shift = 60; shift >= 0; shift -= 4)
            out[n++] = hex_lower[(h >> shift) & 15];
    }
    out[n] = 0;
    return n;
}

static int hex_value(char ch, const char *digits)
{
    const char *p = ch ? strchr(digits, ch) : NULL;
    return p ? (int)(p - digits) : -1;
}

names_kind names_from_display(const char *name, size_t name_len, bool at_root, char *out,
                              size_t *out_len, uint64_t *hash)
{
    *out_len = 0;
    if (name_len == 0 || name_len > NAMES_MAX)
        return NAMES_INVALID;
    if (name[0] != '%') {
        if (!is_plain((const unsigned char *)name, name_len, at_root)) {
            /* ".etcdfs" at the root is the virtual directory; "." and ".." never get here. */
            if (at_root && name_len == sizeof NAMES_STATS_DIR - 1 &&
                !memcmp(name, NAMES_STATS_DIR, name_len))
                return NAMES_STATS;
            return NAMES_INVALID;
        }
        memcpy(out, name, name_len);
        *out_len = name_len;
        return NAMES_PLAIN;
    }
    if (!at_root && name_len == sizeof NAMES_SELF_VALUE - 1 &&
        !memcmp(name, NAMES_SELF_VALUE, name_len))
        return NAMES_SELF;
    size_t n = 0;
    for (size_t i = 1; i < name_len; i++) {
        if (name[i] != '%') {
            out[n++] = name[i];
            continue;
        }
        if (i + 1 < name_len && name[i + 1] == '~') {
            /* Hashed: exactly 16 lowercase hex digits follow and end the name. */
            if (name_len - (i + 2) != HASH_HEX)
                return NAMES_INVALID;
            uint64_t h = 0;
            for (size_t j = i + 2; j < name_len; j++) {
                int v = hex_value(name[j], hex_lower);
                if (v < 0)
                    return NAMES_INVALID;
                h = h << 4 | (uint64_t)v;
            }
            if (hash)
                *hash = h;
            *out_len = n;
            return NAMES_HASHED;
        }
        int hi = i + 2 < name_len ? hex_value(name[i + 1], hex_upper) : -1;
        int lo = hi >= 0 ? hex_value(name[i + 2], hex_upper) : -1;
        if (lo < 0)
            return NAMES_INVALID;
        out[n++] = (char)(hi << 4 | lo);
        i += 2;
    }
    /* Canonical only: the decoded component must display as exactly this name, so that every
     * component has one name and every accepted name one component. */
    char again[NAMES_MAX + 1];
    size_t again_len = names_to_display(out, n, at_root, again);
    if (again_len != name_len || memcmp(again, name, name_len))
        return NAMES_INVALID;
    *out_len = n;
    return NAMES_ESCAPED;
}

char *names_normalize_prefix(const char *prefix, size_t *out_len)
{
    size_t len = strlen(prefix);
    bool add = len > 0 && prefix[len - 1] != '/';
    char *p = malloc(len + 2);
    if (!p)
        return NULL;
    memcpy(p, prefix, len);
    if (add)
        p[len++] = '/';
    p[len] = 0;
    *out_len = len;
    return p;
}

size_t names_first_component(const char *rel, size_t rel_len, bool *is_dir)
{
    const char *slash = memchr(rel, '/', rel_len);
    *is_dir = slash != NULL;
    return slash ? (size_t)(slash - rel) : rel_len;
}

int names_key_cmp(const void *a, size_t a_len, const void *b, size_t b_len)
{
    int c = memcmp(a, b, a_len < b_len ? a_len : b_len);
    return c ? c : (a_len > b_len) - (a_len < b_len);
}

size_t names_last_component(const char *key, size_t len, size_t floor)
{
    size_t at = len;
    while (at > floor && key[at - 1] != '/')
        at--;
    return at;
}
