#include "minilog.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strbuf.h>

static const char *const level_names[] = { "debug", "info", "warning", "error" };

static const char *prog_name = "demo";
static mlog_level min_level = MLOG_INFO;
static FILE *stream;

void mlog_init(const char *prog, mlog_level min, FILE *out)
{
	const char *slash = strrchr(prog, '/');
	prog_name = slash != NULL ? slash + 1 : prog;
	min_level = min;
	stream = out;
	const char *env = getenv("DEMO_LOG");
	for (int i = MLOG_DEBUG; env != NULL && i <= MLOG_ERROR; i++)
		if (strcmp(env, level_names[i]) == 0)
			min_level = (mlog_level)i;
}

void mlog(mlog_level level, const char *fmt, ...)
{
	if (level < min_level || level > MLOG_ERROR)
		return;
	/* Format the whole line first and write it at once, so lines from
	 * processes sharing a log file do not interleave mid-line. */
	strbuf line = STRBUF_INIT;
	strbuf_printf(&line, "%s: %s: ", prog_name, level_names[level]);
	va_list ap;
	va_start(ap, fmt);
	strbuf_vprintf(&line, fmt, ap);
	va_end(ap);
	strbuf_putc(&line, '\n');
	FILE *out = stream != NULL ? stream : stderr;
	fwrite(line.buf, 1, line.len, out);
	fflush(out);
	strbuf_release(&line);
}
