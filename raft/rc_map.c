#include "raft/rc_map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct slot {
    char *key; /* NULL: empty; TOMBSTONE: deleted */
    void *value;
    uint64_t hash;
};

struct rc_map {
    struct slot *slots;
    size_t cap;   /* power of two */
    size_t count; /* live keys */
    size_t used;  /* live keys + tombstones */
};

static char tombstone_mark;
#define TOMBSTONE (&tombstone_mark)

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h ? h : 1;
}

rc_map *rc_map_new(void)
{
    rc_map *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->cap = 64;
    m->slots = calloc(m->cap, sizeof *m->slots);
    if (m->slots == NULL) {
        free(m);
        return NULL;
    }
    return m;
}

void rc_map_free(rc_map *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMBSTONE)
            free(m->slots[i].key);
    free(m->slots);
    free(m);
}

static struct slot *find(const rc_map *m, const char *key, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask, n = 0; n < m->cap; i = (i + 1) & mask, n++) {
        struct slot *s = &m->slots[i];
        if (s->key == NULL)
            return NULL;
        if (s->key != TOMBSTONE && s->hash == h && strcmp(s->key, key) == 0)
            return s;
    }
    return NULL;
}

static int grow(rc_map *m)
{
    size_t ncap = m->count * 4 > m->cap ? m->cap * 2 : m->cap; /* else just purge tombstones */
    struct slot *ns = calloc(ncap, sizeof *ns);
    if (ns == NULL)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        struct slot *s = &m->slots[i];
        if (s->key == NULL || s->key == TOMBSTONE)
            continue;
        size_t j = s->hash & (ncap - 1);
        while (ns[j].key)
            j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    m->used = m->count;
    return 0;
}

void *rc_map_get(const rc_map *m, const char *key)
{
    struct slot *s = find(m, key, hash_key(key));
    return s ? s->value : NULL;
}

int rc_map_put(rc_map *m, const char *key, void *value)
{
    uint64_t h = hash_key(key);
    struct slot *s = find(m, key, h);
    if (s) {
        s->value = value;
        return 0;
    }
    if ((m->used + 1) * 4 > m->cap * 3 && grow(m) != 0)
        return -1;
    char *k = strdup(key);
    if (k == NULL)
        return -1;
    size_t mask = m->cap - 1, i = h & mask;
    while (m->slots[i].key && m->slots[i].key != TOMBSTONE)
        i = (i + 1) & mask;
    if (m->slots[i].key == NULL)
        m->used++;
    m->slots[i] = (struct slot){k, value, h};
    m->count++;
    return 0;
}

void *rc_map_remove(rc_map *m, const char *key)
{
    struct slot *s = find(m, key, hash_key(key));
    if (s == NULL)
        return NULL;
    void *v = s->value;
    free(s->key);
    s->key = TOMBSTONE;
    s->value = NULL;
    m->count--;
    return v;
}

size_t rc_map_count(const rc_map *m)
{
    return m->count;
}

int rc_map_next(const rc_map *m, size_t *pos, const char **key, void **value)
{
    while (*pos < m->cap) {
        struct slot *s = &m->slots[(*pos)++];
        if (s->key && s->key != TOMBSTONE) {
            *key = s->key;
            *value = s->value;
            return 1;
        }
    }
    return 0;
}
