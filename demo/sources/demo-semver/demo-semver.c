/* demo-semver: print versions sorted by Semantic Versioning precedence. */
#include <stdio.h>
#include <stdlib.h>

#include <minilog.h>
#include <opts.h>
#include <semver.h>
#include <strbuf.h>

static int by_precedence(const void *a, const void *b)
{
	return semver_compare(a, b);
}

int main(int argc, char **argv)
{
	static const opts_spec specs[] = {
		{ 'm', 'm', "max", 0 },
		{ 'h', 'h', "help", 0 },
	};
	int only_max = 0;
	mlog_init(argv[0], MLOG_INFO, NULL);
	opts o;
	opts_init(&o, argc, argv, specs, sizeof(specs) / sizeof(specs[0]));
	for (int id; (id = opts_next(&o)) != OPTS_END;) {
		switch (id) {
		case 'm':
			only_max = 1;
			break;
		case 'h':
			puts("usage: demo-semver [--max] VERSION...");
			return 0;
		default:
			mlog(MLOG_ERROR, "%s (try --help)", o.error);
			return 2;
		}
	}
	int n = argc - o.index;
	if (n == 0) {
		mlog(MLOG_ERROR, "no versions given (try --help)");
		return 2;
	}
	semver *v = calloc((size_t)n, sizeof(*v));
	if (v == NULL) {
		mlog(MLOG_ERROR, "out of memory");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		if (semver_parse(argv[o.index + i], &v[i]) != 0) {
			mlog(MLOG_ERROR, "'%s' is not a semantic version (MAJOR.MINOR.PATCH)", argv[o.index + i]);
			free(v);
			return 1;
		}
	}
	qsort(v, (size_t)n, sizeof(*v), by_precedence);
	strbuf out = STRBUF_INIT;
	for (int i = only_max ? n - 1 : 0; i < n; i++) {
		semver_format(&v[i], &out);
		strbuf_putc(&out, '\n');
	}
	fputs(out.buf, stdout);
	strbuf_release(&out);
	free(v);
	return 0;
}
