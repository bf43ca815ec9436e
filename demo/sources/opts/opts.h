/* opts.h: command-line options: -x, -xVALUE, -x VALUE, --name, --name=VALUE,
 * --name VALUE; "--" ends the options, as does the first operand. */
#ifndef OPTS_H
#define OPTS_H

#include <stddef.h>
#include <democonfig.h>

typedef struct opts_spec {
	int id;                /* what opts_next returns for it, e.g. 'd' */
	char short_name;       /* 0 for none */
	const char *long_name; /* NULL for none */
	int has_arg;
} opts_spec;

typedef struct opts {
	int argc;
	char **argv;
	int index;       /* after OPTS_END: the first operand */
	const char *arg; /* the current option's value, if it takes one */
	char error[128]; /* after OPTS_ERROR: what was wrong */
	const opts_spec *specs;
	size_t nspecs;
} opts;

enum { OPTS_END = -1, OPTS_ERROR = -2 };

DEMO_API void opts_init(opts *o, int argc, char **argv, const opts_spec *specs, size_t nspecs);
/* opts_next returns the next option's id, OPTS_END or OPTS_ERROR. */
DEMO_API int opts_next(opts *o);

#endif /* OPTS_H */
