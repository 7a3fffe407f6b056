/* attrs.c - attribute records (see attrs.h and docs/design-attributes.md). */
#include "attrs.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAGIC "etcdfs-attrs 1"
#define FILE_SUFFIX "\0attrs"
#define DIR_SUFFIX "\0dirattrs"
#define FILE_SUFFIX_LEN (sizeof FILE_SUFFIX - 1)
#define DIR_SUFFIX_LEN (sizeof DIR_SUFFIX - 1)

static bool ends_with(const char *s, size_t len, const char *suffix, size_t suffix_len)
{
    return len >= suffix_len && !memcmp(s + len - suffix_len, suffix, suffix_len);
}

attrs_kind attrs_key_kind(const char *comp, size_t comp_len, size_t *name_len)
{
    /* The entry's own component may hold NUL bytes too (another client wrote it): the suffix
     * is what ends the component. "\0dirattrs" does not end in "\0attrs". */
    if (ends_with(comp, comp_len, FILE_SUFFIX, FILE_SUFFIX_LEN)) {
        *name_len = comp_len - FILE_SUFFIX_LEN;
        return ATTRS_FILE;
    }
    if (ends_with(comp, comp_len, DIR_SUFFIX, DIR_SUFFIX_LEN)) {
        *name_len = comp_len - DIR_SUFFIX_LEN;
        return ATTRS_DIR;
    }
    return ATTRS_NONE;
}

char *attrs_key(const char *key, size_t key_len, attrs_kind kind, size_t *out_len)
{
    const char *suffix = kind == ATTRS_DIR ? DIR_SUFFIX : FILE_SUFFIX;
    size_t suffix_len = kind == ATTRS_DIR ? DIR_SUFFIX_LEN : FILE_SUFFIX_LEN;
    if (kind == ATTRS_NONE || (kind == ATTRS_DIR && (key_len < 1 || key[key_len - 1] != '/')))
        return NULL;
    size_t base = kind == ATTRS_DIR ? key_len - 1 : key_len;
    char *k = malloc(base + suffix_len + 1);
    if (!k)
        return NULL;
    memcpy(k, key, base);
    memcpy(k + base, suffix, suffix_len);
    k[base + suffix_len] = 0;
    *out_len = base + suffix_len;
    return k;
}

static int format_time(char *out, size_t cap, const char *name, const struct timespec *t)
{
    return snprintf(out, cap, " %s=%" PRId64 ".%09ld", name, (int64_t)t->tv_sec, (long)t->tv_nsec);
}

size_t attrs_format(const attrs *a, char *buf)
{
    size_t n = 0;
    int w = snprintf(buf, ATTRS_TEXT_MAX, MAGIC " mode=%o uid=%" PRIu32 " gid=%" PRIu32,
                     (unsigned)a->mode, (uint32_t)a->uid, (uint32_t)a->gid);
    n += (size_t)w;
    n += (size_t)format_time(buf + n, ATTRS_TEXT_MAX - n, "mtime", &a->mtime);
    n += (size_t)format_time(buf + n, ATTRS_TEXT_MAX - n, "ctime", &a->ctime);
    w = snprintf(buf + n, ATTRS_TEXT_MAX - n, " anchor=%" PRId64 " content=%" PRId64, a->anchor,
                 a->content);
    return n + (size_t)w;
}

/* --- parsing: the text comes from etcd, written by anyone ----------------------------------- */

typedef struct cursor {
    const char *p, *end;
} cursor;

/* A decimal integer in [min, max] (an optional '-' only when min < 0), up to a space, '.' or
 * the end. */
static bool take_int(cursor *c, int64_t min, int64_t max, int64_t *out)
{
    bool neg = c->p < c->end && *c->p == '-' && min < 0;
    if (neg)
        c->p++;
    if (c->p == c->end || *c->p < '0' || *c->p > '9')
        return false;
    uint64_t v = 0;
    for (; c->p < c->end && *c->p >= '0' && *c->p <= '9'; c->p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*c->p - '0');
        if (v > (uint64_t)INT64_MAX)
            return false;
    }
    int64_t s = neg ? -(int64_t)v : (int64_t)v;
    if (s < min || s > max)
        return false;
    *out = s;
    return true;
}

static bool take_octal(cursor *c, uint32_t max, uint32_t *out)
{
    if (c->p == c->end || *c->p < '0' || *c->p > '7')
        return false;
    uint32_t v = 0;
    for (; c->p < c->end && *c->p >= '0' && *c->p <= '7'; c->p++) {
        v = v * 8 + (uint32_t)(*c->p - '0');
        if (v > max)
            return false;
    }
    *out = v;
    return true;
}

/* seconds '.' nine digits of nanoseconds */
static bool take_time(cursor *c, struct timespec *t)
{
    int64_t sec, nsec;
    if (!take_int(c, INT64_MIN / 2, INT64_MAX / 2, &sec) || c->p == c->end || *c->p != '.')
        return false;
    c->p++;
    const char *start = c->p;
    if (!take_int(c, 0, 999999999, &nsec) || c->p - start != 9)
        return false;
    t->tv_sec = (time_t)sec;
    t->tv_nsec = (long)nsec;
    return true;
}

static bool known_type(uint32_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
    case S_IFIFO:
    case S_IFSOCK: return true;
    default: return false;
    }
}

enum { F_MODE = 1, F_UID = 2, F_GID = 4, F_MTIME = 8, F_CTIME = 16, F_ANCHOR = 32, F_CONTENT = 64 };
#define F_ALL 127

static bool field(cursor *c, const char *name, size_t name_len)
{
    if ((size_t)(c->end - c->p) <= name_len || memcmp(c->p, name, name_len) ||
        c->p[name_len] != '=')
        return false;
    c->p += name_len + 1;
    return true;
}

bool attrs_parse(const char *text, size_t len, attrs *a)
{
    const size_t magic_len = sizeof MAGIC - 1;
    if (len < magic_len || memcmp(text, MAGIC, magic_len))
        return false;
    cursor c = {text + magic_len, text + len};
    attrs r = {0};
    unsigned seen = 0;
    while (c.p < c.end) {
        if (*c.p++ != ' ' || c.p == c.end || *c.p == ' ')
            return false; /* "etcdfs-attrs 10 ..." is not version 1; no empty fields */
        int64_t v;
        uint32_t m;
        bool ok = true;
        unsigned bit = 0;
        if (field(&c, "mode", 4)) {
            ok = take_octal(&c, 0177777, &m) && known_type(m);
            r.mode = (mode_t)m;
            bit = F_MODE;
        } else if (field(&c, "uid", 3)) {
            ok = take_int(&c, 0, UINT32_MAX - 1, &v); /* (uid_t)-1 means "no change" */
            r.uid = (uid_t)v;
            bit = F_UID;
        } else if (field(&c, "gid", 3)) {
            ok = take_int(&c, 0, UINT32_MAX - 1, &v);
            r.gid = (gid_t)v;
            bit = F_GID;
        } else if (field(&c, "mtime", 5)) {
            ok = take_time(&c, &r.mtime);
            bit = F_MTIME;
        } else if (field(&c, "ctime", 5)) {
            ok = take_time(&c, &r.ctime);
            bit = F_CTIME;
        } else if (field(&c, "anchor", 6)) {
            ok = take_int(&c, 0, INT64_MAX, &r.anchor);
            bit = F_ANCHOR;
        } else if (field(&c, "content", 7)) {
            ok = take_int(&c, -1, INT64_MAX, &r.content);
            bit = F_CONTENT;
        } else {
            while (c.p < c.end && *c.p != ' ') /* a field of a later version */
                c.p++;
        }
        if (!ok || (c.p < c.end && *c.p != ' ') || (seen & bit))
            return false;
        seen |= bit;
    }
    if (seen != F_ALL)
        return false;
    *a = r;
    return true;
}

unsigned attrs_applies(const attrs *a, int64_t record_mod, int64_t record_create,
                       int64_t anchor_create, int64_t anchor_mod)
{
    if (anchor_create <= 0 || record_mod <= 0)
        return 0;
    bool named = a->anchor ? a->anchor == anchor_create
                           : record_mod == anchor_create ||
                                 (record_create > 0 && record_create == anchor_create);
    if (!named)
        return 0; /* an orphan, or a record of an earlier key of the same name */
    int64_t content = a->content ? a->content : record_mod;
    return ATTRS_APPLY | (a->content >= 0 && content == anchor_mod ? ATTRS_APPLY_MTIME : 0);
}
