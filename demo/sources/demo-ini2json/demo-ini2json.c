/*
 * demo-ini2json: convert an INI file to a JSON object of sections, each an
 * object of its keys in file order: {"section":{"key":"value"}}. Keys before
 * the first [section] go in section "". A repeated key keeps its last value,
 * as ini_get does; a section without keys does not appear.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <arena.h>
#include <ini.h>
#include <jsonw.h>
#include <minilog.h>
#include <strbuf.h>

/* superseded says whether a later entry sets the same key again. */
static int superseded(const ini_entry *e)
{
	for (const ini_entry *l = e->next; l != NULL; l = l->next)
		if (strcmp(l->section, e->section) == 0 && strcmp(l->key, e->key) == 0)
			return 1;
	return 0;
}

/* first_of_section says whether e opens its section's run in the output. */
static int first_of_section(const ini_doc *doc, const ini_entry *e)
{
	for (const ini_entry *p = doc->first; p != e; p = p->next)
		if (strcmp(p->section, e->section) == 0)
			return 0;
	return 1;
}

static void to_json(const ini_doc *doc, strbuf *out)
{
	jsonw w;
	jsonw_init(&w, out);
	jsonw_object_begin(&w);
	for (const ini_entry *s = doc->first; s != NULL; s = s->next) {
		if (!first_of_section(doc, s))
			continue;
		jsonw_key(&w, s->section);
		jsonw_object_begin(&w);
		for (const ini_entry *e = s; e != NULL; e = e->next) {
			if (strcmp(e->section, s->section) == 0 && !superseded(e)) {
				jsonw_key(&w, e->key);
				jsonw_string(&w, e->value);
			}
		}
		jsonw_object_end(&w);
	}
	jsonw_object_end(&w);
	strbuf_putc(out, '\n');
}

int main(int argc, char **argv)
{
	mlog_init(argv[0], MLOG_INFO, NULL);
	if (argc != 2) {
		fputs("usage: demo-ini2json FILE.ini\n", stderr);
		return 2;
	}
	FILE *f = fopen(argv[1], "rb");
	if (f == NULL) {
		mlog(MLOG_ERROR, "cannot open %s: %s", argv[1], strerror(errno));
		return 1;
	}
	strbuf text = STRBUF_INIT, err = STRBUF_INIT, out = STRBUF_INIT;
	char buf[8192];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		strbuf_add(&text, buf, n);
	fclose(f);

	arena mem = ARENA_INIT;
	ini_doc doc;
	int status = 0;
	if (ini_parse(&mem, strbuf_str(&text), text.len, &doc, &err) != 0) {
		mlog(MLOG_ERROR, "%s: %s", argv[1], err.buf);
		status = 1;
	} else {
		to_json(&doc, &out);
		fputs(out.buf, stdout);
		mlog(MLOG_DEBUG, "%zu keys, %zu bytes of arena", doc.count, mem.used);
	}
	arena_release(&mem);
	strbuf_release(&text);
	strbuf_release(&err);
	strbuf_release(&out);
	return status;
}
