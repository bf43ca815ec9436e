#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die_oom(void)
{
	fputs("strbuf: out of memory\n", stderr);
	abort();
}

void strbuf_grow(strbuf *sb, size_t extra)
{
	size_t need = sb->len + extra + 1; /* room for the NUL */
	if (need <= sb->cap)
		return;
	size_t cap = sb->cap ? sb->cap : 16;
	while (cap < need)
		cap *= 2;
	char *p = realloc(sb->buf, cap);
	if (p == NULL)
		die_oom();
	p[sb->len] = '\0'; /* a fresh buffer must read as "" too */
	sb->buf = p;
	sb->cap = cap;
}

void strbuf_add(strbuf *sb, const void *data, size_t n)
{
	strbuf_grow(sb, n);
	memcpy(sb->buf + sb->len, data, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

void strbuf_puts(strbuf *sb, const char *s)
{
	strbuf_add(sb, s, strlen(s));
}

void strbuf_putc(strbuf *sb, char c)
{
	strbuf_add(sb, &c, 1);
}

void strbuf_pad(strbuf *sb, char c, size_t n)
{
	strbuf_grow(sb, n);
	memset(sb->buf + sb->len, c, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

void strbuf_vprintf(strbuf *sb, const char *fmt, va_list ap)
{
	va_list again;
	va_copy(again, ap); /* formatting twice: to measure, then to write */
	int n = vsnprintf(NULL, 0, fmt, ap);
	if (n >= 0) {
		strbuf_grow(sb, (size_t)n);
		vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, again);
		sb->len += (size_t)n;
	}
	va_end(again);
}

void strbuf_printf(strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	strbuf_vprintf(sb, fmt, ap);
	va_end(ap);
}

void strbuf_reset(strbuf *sb)
{
	sb->len = 0;
	if (sb->buf != NULL)
		sb->buf[0] = '\0';
}

void strbuf_release(strbuf *sb)
{
	free(sb->buf);
	sb->buf = NULL;
	sb->len = sb->cap = 0;
}

const char *strbuf_str(const strbuf *sb)
{
	return sb->buf != NULL ? sb->buf : "";
}
