#include "table.h"

#include <string.h>

struct table_row {
	table_row *next;
	const char *cell[]; /* ncols */
};

void table_init(table *t, size_t ncols)
{
	t->mem = (arena)ARENA_INIT;
	t->ncols = ncols;
	t->nrows = 0;
	t->width = arena_alloc(&t->mem, ncols * sizeof(*t->width));
	t->align_right = arena_alloc(&t->mem, ncols);
	t->first = NULL;
	t->tail = &t->first;
}

void table_align_right(table *t, size_t col)
{
	if (col < t->ncols)
		t->align_right[col] = 1;
}

void table_add_row(table *t, const char *const *cells)
{
	table_row *r = arena_alloc(&t->mem, sizeof(*r) + t->ncols * sizeof(r->cell[0]));
	for (size_t c = 0; c < t->ncols; c++) {
		size_t n = strlen(cells[c]);
		r->cell[c] = arena_strndup(&t->mem, cells[c], n);
		if (n > t->width[c])
			t->width[c] = n;
	}
	*t->tail = r;
	t->tail = &r->next;
	t->nrows++;
}

static void rule(const table *t, strbuf *out)
{
	for (size_t c = 0; c < t->ncols; c++) {
		strbuf_putc(out, '+');
		strbuf_pad(out, '-', t->width[c] + 2);
	}
	strbuf_puts(out, "+\n");
}

void table_render(const table *t, strbuf *out)
{
	rule(t, out);
	for (const table_row *r = t->first; r != NULL; r = r->next) {
		for (size_t c = 0; c < t->ncols; c++) {
			size_t pad = t->width[c] - strlen(r->cell[c]);
			strbuf_puts(out, "| ");
			if (t->align_right[c])
				strbuf_pad(out, ' ', pad);
			strbuf_puts(out, r->cell[c]);
			if (!t->align_right[c])
				strbuf_pad(out, ' ', pad);
			strbuf_putc(out, ' ');
		}
		strbuf_puts(out, "|\n");
		if (r == t->first)
			rule(t, out); /* under the header */
	}
	if (t->first != NULL && t->first->next != NULL)
		rule(t, out);
}

void table_release(table *t)
{
	arena_release(&t->mem);
	t->first = NULL;
	t->tail = &t->first;
	t->nrows = 0;
}
