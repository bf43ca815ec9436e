/* The test vectors of RFC 4648, section 10, both ways, and bad input. */
#include <stdio.h>
#include <string.h>
#include "codec.h"

static int failures;

static void expect(const char *what, const strbuf *got, const char *want)
{
	if (strcmp(strbuf_str(got), want) != 0) {
		printf("FAIL %s: got \"%s\", want \"%s\"\n", what, strbuf_str(got), want);
		failures++;
	}
}

int main(void)
{
	static const char *const vectors[][3] = {
		{ "", "", "" },
		{ "f", "Zg==", "66" },
		{ "fo", "Zm8=", "666f" },
		{ "foo", "Zm9v", "666f6f" },
		{ "foob", "Zm9vYg==", "666f6f62" },
		{ "fooba", "Zm9vYmE=", "666f6f6261" },
		{ "foobar", "Zm9vYmFy", "666f6f626172" },
	};
	static const char *const bad_b64[] = { "Zg=", "Z===", "Zg==Zg==", "Zm9v!", "=Zm9" };
	strbuf sb = STRBUF_INIT;

	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const char *plain = vectors[i][0], *b64 = vectors[i][1], *hex = vectors[i][2];
		strbuf_reset(&sb);
		codec_b64_encode(&sb, plain, strlen(plain));
		expect("b64 encode", &sb, b64);
		strbuf_reset(&sb);
		if (codec_b64_decode(&sb, b64, strlen(b64)) != 0)
			expect("b64 decode failed", &sb, plain);
		expect("b64 decode", &sb, plain);
		strbuf_reset(&sb);
		codec_hex_encode(&sb, plain, strlen(plain));
		expect("hex encode", &sb, hex);
		strbuf_reset(&sb);
		if (codec_hex_decode(&sb, hex, strlen(hex)) != 0)
			expect("hex decode failed", &sb, plain);
		expect("hex decode", &sb, plain);
	}
	for (size_t i = 0; i < sizeof(bad_b64) / sizeof(bad_b64[0]); i++) {
		strbuf_reset(&sb);
		strbuf_puts(&sb, "kept");
		if (codec_b64_decode(&sb, bad_b64[i], strlen(bad_b64[i])) == 0) {
			printf("FAIL b64 decode accepted \"%s\"\n", bad_b64[i]);
			failures++;
		}
		expect("b64 decode leaves output on error", &sb, "kept");
	}
	strbuf_release(&sb);
	if (failures == 0)
		puts("codec: all tests passed");
	return failures != 0;
}
