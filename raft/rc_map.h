/* A small string-keyed hash map (open addressing, linear probing,
 * tombstones). Keys are copied; values are the caller's. */
#ifndef RC_MAP_H
#define RC_MAP_H

#include <stddef.h>

typedef struct rc_map rc_map;

rc_map *rc_map_new(void);
void rc_map_free(rc_map *m);               /* frees keys, not values */
void *rc_map_get(const rc_map *m, const char *key);
int rc_map_put(rc_map *m, const char *key, void *value); /* 0, or -1 on ENOMEM; replaces */
void *rc_map_remove(rc_map *m, const char *key);         /* returns the old value */
size_t rc_map_count(const rc_map *m);

/* Iteration: pos starts at 0; returns 0 at the end. Do not modify the map
 * while iterating. */
int rc_map_next(const rc_map *m, size_t *pos, const char **key, void **value);

#endif
