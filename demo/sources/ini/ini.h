/* ini.h: parse INI text: "[section]", "key = value", ';' and '#' comments. */
#ifndef INI_H
#define INI_H

#include <stddef.h>
#include <arena.h>
#include <democonfig.h>
#include <strbuf.h>

typedef struct ini_entry {
	const char *section; /* "" before the first [section] */
	const char *key;
	const char *value; /* trimmed of surrounding blanks */
	int line;
	struct ini_entry *next; /* entries are kept in file order */
} ini_entry;

typedef struct ini_doc {
	ini_entry *first;
	size_t count;
} ini_doc;

/*
 * ini_parse reads text into doc, allocating every string from a, so that
 * releasing the arena frees the whole document. On a syntax error it
 * returns -1 and appends "line N: what" to err.
 */
DEMO_API int ini_parse(arena *a, const char *text, size_t n, ini_doc *doc, strbuf *err);
/* ini_get returns the value of the last matching key, or NULL. */
DEMO_API const char *ini_get(const ini_doc *doc, const char *section, const char *key);

#endif /* INI_H */
