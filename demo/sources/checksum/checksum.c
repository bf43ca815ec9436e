#include "checksum.h"

#include <codec.h>

void checksum_update(checksum *c, const void *data, size_t n)
{
	c->size += n;
	c->crc32 = hk_crc32_update(c->crc32, data, n);
	c->fnv1a64 = hk_fnv1a64_update(c->fnv1a64, data, n);
}

int checksum_stream(checksum *c, FILE *f)
{
	unsigned char buf[8192];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		checksum_update(c, buf, n);
	return ferror(f) ? -1 : 0;
}

/* put_be writes v as n big-endian bytes: digests read most significant first. */
static void put_be(unsigned char *dst, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		dst[i] = (unsigned char)(v & 255);
}

void checksum_format(const checksum *c, strbuf *out)
{
	unsigned char crc[4], fnv[8];
	put_be(crc, c->crc32, 4);
	put_be(fnv, c->fnv1a64, 8);
	strbuf_puts(out, "crc32:");
	codec_hex_encode(out, crc, sizeof(crc));
	strbuf_puts(out, " fnv1a64:");
	codec_hex_encode(out, fnv, sizeof(fnv));
}
