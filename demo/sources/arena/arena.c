#include "arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* C99 has no max_align_t; this union is aligned for every basic type. */
typedef union {
	long double ld;
	long long ll;
	void *p;
	void (*fn)(void);
} max_align;

enum { BLOCK_SIZE = 4096, ALIGN = sizeof(max_align) };

struct arena_block {
	arena_block *prev;
	size_t size, off;
	max_align data[]; /* size bytes */
};

void *arena_alloc(arena *a, size_t size)
{
	size = (size + ALIGN - 1) / ALIGN * ALIGN;
	arena_block *b = a->head;
	if (b == NULL || b->size - b->off < size) {
		size_t n = size > BLOCK_SIZE ? size : BLOCK_SIZE;
		b = malloc(sizeof(*b) + n);
		if (b == NULL) {
			fputs("arena: out of memory\n", stderr);
			abort();
		}
		b->prev = a->head;
		b->size = n;
		b->off = 0;
		a->head = b;
	}
	void *p = (char *)b->data + b->off;
	b->off += size;
	a->used += size;
	return memset(p, 0, size);
}

char *arena_strndup(arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);
	memcpy(p, s, n);
	return p; /* already NUL-terminated: arena_alloc zeroes */
}

char *arena_strdup(arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

void arena_release(arena *a)
{
	while (a->head != NULL) {
		arena_block *prev = a->head->prev;
		free(a->head);
		a->head = prev;
	}
	a->used = 0;
}
