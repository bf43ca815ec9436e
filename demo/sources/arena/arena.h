/* arena.h: a bump allocator; everything it hands out is freed at once. */
#ifndef ARENA_H
#define ARENA_H

#include <stddef.h>
#include <democonfig.h>

/*
 * Parsers allocate many small strings with one lifetime: an arena makes
 * that one call to free instead of a free per string. As with strbuf,
 * running out of memory is fatal.
 */
typedef struct arena_block arena_block;

typedef struct arena {
	arena_block *head; /* newest block; each links to the previous one */
	size_t used;       /* bytes handed out, for statistics */
} arena;

#define ARENA_INIT { NULL, 0 }

/* arena_alloc returns zeroed memory aligned for any basic type. */
DEMO_API void *arena_alloc(arena *a, size_t size);
DEMO_API char *arena_strndup(arena *a, const char *s, size_t n);
DEMO_API char *arena_strdup(arena *a, const char *s);
DEMO_API void arena_release(arena *a);

#endif /* ARENA_H */
