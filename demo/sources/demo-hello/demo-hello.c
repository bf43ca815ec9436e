/*
 * demo-hello: the program the demo runs from the assembled system. Each
 * row of its table exercises one library and is checked against a known
 * answer, so a wrong build fails loudly (exit 1) instead of printing
 * plausible nonsense.
 */
#include <stdio.h>
#include <string.h>

#include <checksum.h>
#include <codec.h>
#include <democonfig.h>
#include <hashkit.h>
#include <jsonw.h>
#include <semver.h>
#include <strbuf.h>
#include <table.h>

static int failures;

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "demo-hello: check failed: %s\n", what);
		failures++;
	}
}

int main(void)
{
	static const char word[] = "distbuild";
	strbuf sb = STRBUF_INIT, cell = STRBUF_INIT;
	table t;
	table_init(&t, 3);
	table_add_row(&t, (const char *[]){ "library", "input", "output" });

	/* hashkit: the standard CRC-32 check value. */
	uint32_t crc = hk_crc32("123456789", 9);
	strbuf_printf(&cell, "crc32:%08lx", (unsigned long)crc);
	table_add_row(&t, (const char *[]){ "hashkit", "\"123456789\"", cell.buf });
	check(crc == 0xcbf43926, "hashkit crc32 check value");

	/* checksum: one pass over the data must agree with hashkit. */
	checksum sum = CHECKSUM_INIT;
	checksum_update(&sum, word, strlen(word));
	strbuf_reset(&cell);
	checksum_format(&sum, &cell);
	table_add_row(&t, (const char *[]){ "checksum", "\"distbuild\"", cell.buf });
	check(sum.crc32 == hk_crc32(word, strlen(word)) &&
		      sum.fnv1a64 == hk_fnv1a64(word, strlen(word)),
	      "checksum agrees with hashkit");

	/* codec: base64 and back. */
	strbuf_reset(&cell);
	codec_b64_encode(&cell, word, strlen(word));
	table_add_row(&t, (const char *[]){ "codec", "\"distbuild\"", cell.buf });
	strbuf_reset(&sb);
	check(codec_b64_decode(&sb, cell.buf, cell.len) == 0 && strcmp(sb.buf, word) == 0,
	      "codec base64 round trip");

	/* semver: numeric, not lexical, order. */
	semver a, b;
	check(semver_parse("1.9.0", &a) == 0 && semver_parse("1.10.0", &b) == 0,
	      "semver parses");
	int order = semver_compare(&a, &b);
	strbuf_reset(&cell);
	semver_format(&a, &cell);
	strbuf_puts(&cell, order < 0 ? " < " : order > 0 ? " > " : " = ");
	semver_format(&b, &cell);
	table_add_row(&t, (const char *[]){ "semver", "1.9.0 vs 1.10.0", cell.buf });
	check(order < 0, "semver orders 1.9.0 before 1.10.0");

	/* jsonw: the shape of the system this program is part of. */
	static const char *const strata[] = { "demo-base", "demo-libs", "demo-apps" };
	jsonw w;
	strbuf_reset(&cell);
	jsonw_init(&w, &cell);
	jsonw_object_begin(&w);
	jsonw_key(&w, "strata");
	jsonw_array_begin(&w);
	for (size_t i = 0; i < sizeof(strata) / sizeof(strata[0]); i++)
		jsonw_string(&w, strata[i]);
	jsonw_array_end(&w);
	jsonw_object_end(&w);
	table_add_row(&t, (const char *[]){ "jsonw", "3 strata", cell.buf });
	check(strcmp(cell.buf, "{\"strata\":[\"demo-base\",\"demo-libs\",\"demo-apps\"]}") == 0,
	      "jsonw output");

	strbuf_reset(&sb);
	strbuf_printf(&sb, "Hello from the demo system (demo libraries %s)\n", DEMO_VERSION);
	table_render(&t, &sb);
	if (failures == 0)
		strbuf_printf(&sb, "demo-hello: all %zu checks passed\n", t.nrows - 1);
	fputs(sb.buf, stdout);

	table_release(&t);
	strbuf_release(&cell);
	strbuf_release(&sb);
	return failures == 0 ? 0 : 1;
}
