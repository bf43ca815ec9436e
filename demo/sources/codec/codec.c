#include "codec.h"

static const char hex_digits[] = "0123456789abcdef";
static const char b64_digits[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* fail undoes a partial decode, so callers never see half a result. */
static int fail(strbuf *out, size_t len)
{
	out->len = len;
	if (out->buf != NULL)
		out->buf[len] = '\0';
	return -1;
}

void codec_hex_encode(strbuf *out, const void *data, size_t n)
{
	const unsigned char *p = data;
	strbuf_grow(out, 2 * n);
	for (size_t i = 0; i < n; i++) {
		strbuf_putc(out, hex_digits[p[i] >> 4]);
		strbuf_putc(out, hex_digits[p[i] & 15]);
	}
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int codec_hex_decode(strbuf *out, const char *s, size_t n)
{
	size_t start = out->len;
	if (n % 2 != 0)
		return -1;
	for (size_t i = 0; i < n; i += 2) {
		int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);
		if (hi < 0 || lo < 0)
			return fail(out, start);
		strbuf_putc(out, (char)(hi << 4 | lo));
	}
	return 0;
}

void codec_b64_encode(strbuf *out, const void *data, size_t n)
{
	const unsigned char *p = data;
	strbuf_grow(out, (n + 2) / 3 * 4);
	for (size_t i = 0; i < n; i += 3) {
		unsigned long v = (unsigned long)p[i] << 16;
		if (i + 1 < n)
			v |= (unsigned long)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		strbuf_putc(out, b64_digits[v >> 18 & 63]);
		strbuf_putc(out, b64_digits[v >> 12 & 63]);
		strbuf_putc(out, i + 1 < n ? b64_digits[v >> 6 & 63] : '=');
		strbuf_putc(out, i + 2 < n ? b64_digits[v & 63] : '=');
	}
}

static int b64_value(char c)
{
	for (int i = 0; i < 64; i++)
		if (b64_digits[i] == c)
			return i;
	return -1;
}

int codec_b64_decode(strbuf *out, const char *s, size_t n)
{
	size_t start = out->len;
	char q[4]; /* the current quartet of digits */
	int k = 0;
	int ended = 0; /* a padded quartet must be the last */
	for (size_t i = 0; i < n; i++) {
		if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')
			continue;
		if (ended)
			return fail(out, start);
		q[k++] = s[i];
		if (k < 4)
			continue;
		k = 0;
		/* "xx==" and "xxx=" are the only padded forms. */
		int npad = q[3] != '=' ? 0 : q[2] != '=' ? 1 : 2;
		unsigned long v = 0;
		for (int j = 0; j < 4; j++) {
			int d = j < 4 - npad ? b64_value(q[j]) : 0;
			if (d < 0)
				return fail(out, start);
			v = v << 6 | (unsigned long)d;
		}
		strbuf_putc(out, (char)(v >> 16));
		if (npad < 2)
			strbuf_putc(out, (char)(v >> 8 & 255));
		if (npad < 1)
			strbuf_putc(out, (char)(v & 255));
		ended = npad > 0;
	}
	return k == 0 ? 0 : fail(out, start);
}
