/* semver.h: parse and order Semantic Versioning 2.0.0 versions. */
#ifndef SEMVER_H
#define SEMVER_H

#include <democonfig.h>
#include <strbuf.h>

enum { SEMVER_PRE_MAX = 64 };

typedef struct semver {
	unsigned long major, minor, patch;
	char pre[SEMVER_PRE_MAX]; /* pre-release, e.g. "rc.1"; "" for a release */
} semver;

/* semver_parse accepts "1.2.3", "1.2.3-rc.1", "1.2.3+build.7"; 0 or -1. */
DEMO_API int semver_parse(const char *s, semver *v);
/* semver_compare orders by precedence (build metadata is ignored): <0, 0, >0. */
DEMO_API int semver_compare(const semver *a, const semver *b);
DEMO_API void semver_format(const semver *v, strbuf *out);

#endif /* SEMVER_H */
