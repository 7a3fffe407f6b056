/* name_set.c - open-addressing hash set of byte strings (see name_set.h). */
#include "name_set.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

typedef struct slot {
    char *comp; /* NULL: empty */
    size_t len;
    uint64_t hash;
} slot;

struct name_set {
    slot *slots;
    size_t cap; /* a power of two */
    size_t count;
};

static slot *find_slot(slot *slots, size_t cap, const void *comp, size_t len, uint64_t hash)
{
    for (size_t i = hash & (cap - 1);; i = (i + 1) & (cap - 1)) {
        slot *s = &slots[i];
        if (!s->comp || (s->hash == hash && s->len == len && !memcmp(s->comp, comp, len)))
            return s;
    }
}

/* Keeps the load at or below one half, so that probes stay short and a free slot exists. */
static int grow(name_set *set)
{
    size_t cap = set->cap ? set->cap * 2 : 16;
    slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return ENOMEM;
    for (size_t i = 0; i < set->cap; i++) {
        slot *old = &set->slots[i];
        if (old->comp)
            *find_slot(slots, cap, old->comp, old->len, old->hash) = *old;
    }
    free(set->slots);
    set->slots = slots;
    set->cap = cap;
    return 0;
}

int name_set_add(name_set **s, const void *comp, size_t len)
{
    name_set *set = *s;
    if (!set && !(set = calloc(1, sizeof *set)))
        return ENOMEM;
    *s = set;
    if ((set->count + 1) * 2 > set->cap && grow(set))
        return ENOMEM;
    uint64_t hash = names_hash(comp, len);
    slot *at = find_slot(set->slots, set->cap, comp, len, hash);
    if (at->comp)
        return 0;
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return ENOMEM;
    memcpy(copy, comp, len);
    *at = (slot){.comp = copy, .len = len, .hash = hash};
    set->count++;
    return 0;
}

bool name_set_has(const name_set *s, const void *comp, size_t len)
{
    if (!s || !s->count)
        return false;
    return find_slot(s->slots, s->cap, comp, len, names_hash(comp, len))->comp != NULL;
}

size_t name_set_count(const name_set *s)
{
    return s ? s->count : 0;
}

void name_set_free(name_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->cap; i++)
        free(s->slots[i].comp);
    free(s->slots);
    free(s);
}
