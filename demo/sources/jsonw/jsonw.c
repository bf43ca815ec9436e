#include "jsonw.h"

#include <stdio.h>
#include <stdlib.h>

void jsonw_init(jsonw *w, strbuf *out)
{
	w->out = out;
	w->depth = 0;
	w->has_items[0] = 0;
	w->after_key = 0;
}

/* item starts a value or key: a comma unless it is the first in its container. */
static void item(jsonw *w)
{
	if (w->after_key) {
		w->after_key = 0;
		return;
	}
	if (w->has_items[w->depth])
		strbuf_putc(w->out, ',');
	w->has_items[w->depth] = 1;
}

static void push(jsonw *w, char c)
{
	item(w);
	if (w->depth == JSONW_MAX_DEPTH) {
		/* A caller bug, like unbalanced begin/end: fail loudly. */
		fputs("jsonw: nesting too deep\n", stderr);
		abort();
	}
	strbuf_putc(w->out, c);
	w->has_items[++w->depth] = 0;
}

static void pop(jsonw *w, char c)
{
	strbuf_putc(w->out, c);
	if (w->depth > 0)
		w->depth--;
}

void jsonw_object_begin(jsonw *w) { push(w, '{'); }
void jsonw_object_end(jsonw *w) { pop(w, '}'); }
void jsonw_array_begin(jsonw *w) { push(w, '['); }
void jsonw_array_end(jsonw *w) { pop(w, ']'); }

static void quoted(strbuf *out, const char *s)
{
	strbuf_putc(out, '"');
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		switch (c) {
		case '"': strbuf_puts(out, "\\\""); break;
		case '\\': strbuf_puts(out, "\\\\"); break;
		case '\n': strbuf_puts(out, "\\n"); break;
		case '\t': strbuf_puts(out, "\\t"); break;
		case '\r': strbuf_puts(out, "\\r"); break;
		default:
			if (c < 0x20)
				strbuf_printf(out, "\\u%04x", c);
			else
				strbuf_putc(out, (char)c);
		}
	}
	strbuf_putc(out, '"');
}

void jsonw_key(jsonw *w, const char *key)
{
	item(w);
	quoted(w->out, key);
	strbuf_putc(w->out, ':');
	w->after_key = 1;
}

void jsonw_string(jsonw *w, const char *s)
{
	item(w);
	quoted(w->out, s);
}

void jsonw_int(jsonw *w, long long v)
{
	item(w);
	strbuf_printf(w->out, "%lld", v);
}

void jsonw_bool(jsonw *w, int v)
{
	item(w);
	strbuf_puts(w->out, v ? "true" : "false");
}

void jsonw_null(jsonw *w)
{
	item(w);
	strbuf_puts(w->out, "null");
}
