/* strbuf.h: a growable, always NUL-terminated string buffer. */
#ifndef STRBUF_H
#define STRBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <democonfig.h>

/*
 * Running out of memory is fatal, as in git's strbuf: the demo programs
 * are short-lived tools, and dropping every error path for allocation keeps
 * their callers short.
 */
typedef struct strbuf {
	char *buf; /* NUL-terminated; NULL until something is added */
	size_t len;
	size_t cap;
} strbuf;

#define STRBUF_INIT { NULL, 0, 0 }

DEMO_API void strbuf_grow(strbuf *sb, size_t extra);
DEMO_API void strbuf_add(strbuf *sb, const void *data, size_t n);
DEMO_API void strbuf_puts(strbuf *sb, const char *s);
DEMO_API void strbuf_putc(strbuf *sb, char c);
DEMO_API void strbuf_pad(strbuf *sb, char c, size_t n);
DEMO_API void strbuf_printf(strbuf *sb, const char *fmt, ...) DEMO_PRINTF(2, 3);
DEMO_API void strbuf_vprintf(strbuf *sb, const char *fmt, va_list ap) DEMO_PRINTF(2, 0);
DEMO_API void strbuf_reset(strbuf *sb);
DEMO_API void strbuf_release(strbuf *sb);
/* strbuf_str is the contents, or "" for a buffer never written to. */
DEMO_API const char *strbuf_str(const strbuf *sb);

#endif /* STRBUF_H */
