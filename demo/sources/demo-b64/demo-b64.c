/* demo-b64: base64-encode standard input, or decode it with -d. */
#include <stdio.h>
#include <stdlib.h>

#include <codec.h>
#include <minilog.h>
#include <opts.h>
#include <strbuf.h>

static void read_all(FILE *f, strbuf *sb)
{
	char buf[8192];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		strbuf_add(sb, buf, n);
}

int main(int argc, char **argv)
{
	static const opts_spec specs[] = {
		{ 'd', 'd', "decode", 0 },
		{ 'w', 'w', "wrap", 1 },
		{ 'h', 'h', "help", 0 },
	};
	int decode = 0;
	long wrap = 76; /* as base64(1) and MIME: 0 means one long line */
	mlog_init(argv[0], MLOG_INFO, NULL);
	opts o;
	opts_init(&o, argc, argv, specs, sizeof(specs) / sizeof(specs[0]));
	for (int id; (id = opts_next(&o)) != OPTS_END;) {
		char *end;
		switch (id) {
		case 'd':
			decode = 1;
			break;
		case 'w':
			wrap = strtol(o.arg, &end, 10);
			if (*o.arg == '\0' || *end != '\0' || wrap < 0) {
				mlog(MLOG_ERROR, "--wrap wants a number of columns, not '%s'", o.arg);
				return 2;
			}
			break;
		case 'h':
			puts("usage: demo-b64 [-d] [-w COLUMNS] < INPUT");
			return 0;
		default:
			mlog(MLOG_ERROR, "%s (try --help)", o.error);
			return 2;
		}
	}
	if (o.index != argc) {
		mlog(MLOG_ERROR, "unexpected argument '%s': input is read from stdin", argv[o.index]);
		return 2;
	}

	strbuf in = STRBUF_INIT, out = STRBUF_INIT;
	int status = 0;
	read_all(stdin, &in);
	if (decode) {
		if (codec_b64_decode(&out, strbuf_str(&in), in.len) == 0) {
			fwrite(out.buf, 1, out.len, stdout);
		} else {
			mlog(MLOG_ERROR, "input is not valid base64");
			status = 1;
		}
	} else {
		codec_b64_encode(&out, strbuf_str(&in), in.len);
		size_t step = wrap > 0 ? (size_t)wrap : out.len;
		for (size_t i = 0; i < out.len; i += step) {
			size_t n = out.len - i < step ? out.len - i : step;
			fwrite(out.buf + i, 1, n, stdout);
			putchar('\n');
		}
	}
	strbuf_release(&in);
	strbuf_release(&out);
	return ferror(stdout) ? 1 : status;
}
