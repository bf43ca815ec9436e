/* table.h: lay out rows of text as a table with +---+ borders. */
#ifndef TABLE_H
#define TABLE_H

#include <stddef.h>
#include <arena.h>
#include <democonfig.h>
#include <strbuf.h>

typedef struct table_row table_row;

typedef struct table {
	arena mem; /* the table owns copies of its cells */
	size_t ncols, nrows;
	size_t *width;    /* widest cell per column, in bytes (ASCII text) */
	char *align_right; /* per column: right-align, e.g. for numbers */
	table_row *first, **tail;
} table;

DEMO_API void table_init(table *t, size_t ncols);
DEMO_API void table_align_right(table *t, size_t col);
/* table_add_row copies ncols cells; the first row is the header. */
DEMO_API void table_add_row(table *t, const char *const *cells);
DEMO_API void table_render(const table *t, strbuf *out);
DEMO_API void table_release(table *t);

#endif /* TABLE_H */
