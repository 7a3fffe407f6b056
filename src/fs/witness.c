/* witness.c - one existing key per recently written directory (see witness.h). */
#include "witness.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

#define SLOTS 1024 /* directories remembered; a collision only costs the slow guard */

typedef struct slot {
    char *key; /* the witness; its directory is key's first dir_len bytes */
    size_t len, dir_len;
} slot;

static pthread_mutex_t witness_mu = PTHREAD_MUTEX_INITIALIZER;
static slot slots[SLOTS]; /* [witness_mu] */

/* The directory whose existence key proves: everything up to and including its last '/' (for
 * a marker "d/" that is "d/" itself, whose key range holds the marker). */
static size_t dir_of(const char *key, size_t len)
{
    size_t end = names_last_component(key, len, 0);
    return end;
}

static slot *slot_for(const char *dir, size_t dir_len)
{
    return &slots[names_hash(dir, dir_len) % SLOTS];
}

void witness_note(const char *key, size_t len)
{
    size_t dir_len = dir_of(key, len);
    if (dir_len == 0)
        return;
    char *copy = malloc(len);
    if (!copy)
        return;
    memcpy(copy, key, len);
    pthread_mutex_lock(&witness_mu);
    slot *s = slot_for(key, dir_len);
    free(s->key);
    *s = (slot){.key = copy, .len = len, .dir_len = dir_len};
    pthread_mutex_unlock(&witness_mu);
}

void witness_forget(const char *key, size_t len)
{
    size_t dir_len = dir_of(key, len);
    pthread_mutex_lock(&witness_mu);
    slot *s = slot_for(key, dir_len);
    if (s->key && s->len == len && !memcmp(s->key, key, len)) {
        free(s->key);
        *s = (slot){0};
    }
    pthread_mutex_unlock(&witness_mu);
}

void witness_forget_dir(const char *key, size_t len)
{
    size_t dir_len = dir_of(key, len);
    pthread_mutex_lock(&witness_mu);
    slot *s = slot_for(key, dir_len);
    if (s->key && s->dir_len == dir_len && !memcmp(s->key, key, dir_len)) {
        free(s->key);
        *s = (slot){0};
    }
    pthread_mutex_unlock(&witness_mu);
}

char *witness_get(const char *dir, size_t dir_len, size_t *out_len)
{
    char *copy = NULL;
    pthread_mutex_lock(&witness_mu);
    slot *s = slot_for(dir, dir_len);
    if (s->key && s->dir_len == dir_len && !memcmp(s->key, dir, dir_len) &&
        (copy = malloc(s->len))) {
        memcpy(copy, s->key, s->len);
        *out_len = s->len;
    }
    pthread_mutex_unlock(&witness_mu);
    return copy;
}
