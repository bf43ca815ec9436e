/* jsonw.h: write compact JSON into a strbuf; commas and escaping are done here. */
#ifndef JSONW_H
#define JSONW_H

#include <democonfig.h>
#include <strbuf.h>

enum { JSONW_MAX_DEPTH = 32 };

typedef struct jsonw {
	strbuf *out;
	int depth;
	/* has_items[d] says whether the container at depth d needs a comma
	 * before its next item; after_key suppresses it for a key's value. */
	char has_items[JSONW_MAX_DEPTH + 1];
	char after_key;
} jsonw;

DEMO_API void jsonw_init(jsonw *w, strbuf *out);
DEMO_API void jsonw_object_begin(jsonw *w);
DEMO_API void jsonw_object_end(jsonw *w);
DEMO_API void jsonw_array_begin(jsonw *w);
DEMO_API void jsonw_array_end(jsonw *w);
DEMO_API void jsonw_key(jsonw *w, const char *key);
/* Strings are UTF-8; control characters, '"' and '\\' are escaped. */
DEMO_API void jsonw_string(jsonw *w, const char *s);
DEMO_API void jsonw_int(jsonw *w, long long v);
DEMO_API void jsonw_bool(jsonw *w, int v);
DEMO_API void jsonw_null(jsonw *w);

#endif /* JSONW_H */
