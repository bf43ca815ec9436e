#include "ini.h"

#include <string.h>

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* trim narrows [*s, *e) to exclude leading and trailing blanks. */
static void trim(const char **s, const char **e)
{
	while (*s < *e && is_blank(**s))
		(*s)++;
	while (*e > *s && is_blank((*e)[-1]))
		(*e)--;
}

int ini_parse(arena *a, const char *text, size_t n, ini_doc *doc, strbuf *err)
{
	const char *end = text + n;
	const char *section = "";
	ini_entry **tail = &doc->first;
	doc->first = NULL;
	doc->count = 0;
	for (int line = 1; text < end; line++) {
		const char *eol = memchr(text, '\n', (size_t)(end - text));
		if (eol == NULL)
			eol = end;
		const char *s = text, *e = eol;
		text = eol < end ? eol + 1 : end;
		trim(&s, &e);
		if (s == e || *s == ';' || *s == '#')
			continue;
		if (*s == '[') {
			if (e[-1] != ']' || e - s < 3) {
				strbuf_printf(err, "line %d: malformed section header", line);
				return -1;
			}
			section = arena_strndup(a, s + 1, (size_t)(e - s - 2));
			continue;
		}
		const char *eq = memchr(s, '=', (size_t)(e - s));
		if (eq == NULL || eq == s) {
			strbuf_printf(err, "line %d: expected key = value", line);
			return -1;
		}
		const char *ks = s, *ke = eq, *vs = eq + 1, *ve = e;
		trim(&ks, &ke);
		trim(&vs, &ve);
		ini_entry *ent = arena_alloc(a, sizeof(*ent));
		ent->section = section;
		ent->key = arena_strndup(a, ks, (size_t)(ke - ks));
		ent->value = arena_strndup(a, vs, (size_t)(ve - vs));
		ent->line = line;
		*tail = ent;
		tail = &ent->next;
		doc->count++;
	}
	return 0;
}

const char *ini_get(const ini_doc *doc, const char *section, const char *key)
{
	const char *found = NULL;
	for (const ini_entry *e = doc->first; e != NULL; e = e->next)
		if (strcmp(e->section, section) == 0 && strcmp(e->key, key) == 0)
			found = e->value;
	return found;
}
