/* minilog.h: "prog: level: message" lines on stderr, filtered by level. */
#ifndef MINILOG_H
#define MINILOG_H

#include <stdio.h>
#include <democonfig.h>

typedef enum { MLOG_DEBUG, MLOG_INFO, MLOG_WARNING, MLOG_ERROR } mlog_level;

/*
 * mlog_init names the program and sets the lowest level shown; the
 * environment variable DEMO_LOG (debug, info, warning or error) overrides
 * it, so a user can turn on debug output without a flag in every tool.
 * out may be NULL for stderr.
 */
DEMO_API void mlog_init(const char *prog, mlog_level min, FILE *out);
DEMO_API void mlog(mlog_level level, const char *fmt, ...) DEMO_PRINTF(2, 3);

#endif /* MINILOG_H */
