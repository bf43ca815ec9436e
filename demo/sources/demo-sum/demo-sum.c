/* demo-sum: print "crc32:... fnv1a64:...  SIZE  NAME" for each file. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <checksum.h>
#include <minilog.h>
#include <opts.h>
#include <strbuf.h>

/* sum prints one file's line; "-" is standard input. 0, or -1 if unreadable. */
static int sum(const char *name)
{
	int is_stdin = strcmp(name, "-") == 0;
	FILE *f = is_stdin ? stdin : fopen(name, "rb");
	if (f == NULL) {
		mlog(MLOG_ERROR, "cannot open %s: %s", name, strerror(errno));
		return -1;
	}
	checksum c = CHECKSUM_INIT;
	int err = checksum_stream(&c, f) != 0 ? errno : 0;
	if (!is_stdin)
		fclose(f);
	if (err != 0) {
		mlog(MLOG_ERROR, "cannot read %s: %s", name, strerror(err));
		return -1;
	}
	strbuf line = STRBUF_INIT;
	checksum_format(&c, &line);
	strbuf_printf(&line, "  %llu  %s\n", (unsigned long long)c.size, name);
	fputs(line.buf, stdout);
	strbuf_release(&line);
	return 0;
}

int main(int argc, char **argv)
{
	static const opts_spec specs[] = { { 'h', 'h', "help", 0 } };
	mlog_init(argv[0], MLOG_INFO, NULL);
	opts o;
	opts_init(&o, argc, argv, specs, 1);
	for (int id; (id = opts_next(&o)) != OPTS_END;) {
		if (id == OPTS_ERROR) {
			mlog(MLOG_ERROR, "%s (try --help)", o.error);
			return 2;
		}
		puts("usage: demo-sum [FILE...]\n"
		     "Print the CRC-32, FNV-1a 64 and size of each FILE (default: standard input).");
		return 0;
	}
	if (o.index == argc)
		return sum("-") == 0 ? 0 : 1;
	int status = 0;
	for (int i = o.index; i < argc; i++)
		if (sum(argv[i]) != 0)
			status = 1; /* report every bad file, not just the first */
	return status;
}
