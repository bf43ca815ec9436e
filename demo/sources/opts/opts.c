#include "opts.h"

#include <stdio.h>
#include <string.h>

void opts_init(opts *o, int argc, char **argv, const opts_spec *specs, size_t nspecs)
{
	o->argc = argc;
	o->argv = argv;
	o->index = 1; /* argv[0] is the program */
	o->arg = NULL;
	o->error[0] = '\0';
	o->specs = specs;
	o->nspecs = nspecs;
}

static const opts_spec *find_short(const opts *o, char name)
{
	for (size_t i = 0; i < o->nspecs; i++)
		if (o->specs[i].short_name != 0 && o->specs[i].short_name == name)
			return &o->specs[i];
	return NULL;
}

/* find_long matches name[0:len], the part of "--name=VALUE" before '='. */
static const opts_spec *find_long(const opts *o, const char *name, size_t len)
{
	for (size_t i = 0; i < o->nspecs; i++) {
		const char *l = o->specs[i].long_name;
		if (l != NULL && strlen(l) == len && strncmp(l, name, len) == 0)
			return &o->specs[i];
	}
	return NULL;
}

static int error(opts *o, const char *what, const char *arg)
{
	snprintf(o->error, sizeof(o->error), "%s '%s'", what, arg);
	return OPTS_ERROR;
}

int opts_next(opts *o)
{
	o->arg = NULL;
	if (o->index >= o->argc)
		return OPTS_END;
	const char *a = o->argv[o->index];
	if (a[0] != '-' || a[1] == '\0') /* an operand; "-" often means stdin */
		return OPTS_END;
	o->index++;
	if (strcmp(a, "--") == 0)
		return OPTS_END;

	const opts_spec *s;
	const char *value = NULL; /* attached: --name=VALUE or -xVALUE */
	if (a[1] == '-') {
		const char *eq = strchr(a + 2, '=');
		size_t len = eq != NULL ? (size_t)(eq - a - 2) : strlen(a + 2);
		if ((s = find_long(o, a + 2, len)) == NULL)
			return error(o, "unknown option", a);
		if (eq != NULL)
			value = eq + 1;
	} else {
		if ((s = find_short(o, a[1])) == NULL)
			return error(o, "unknown option", a);
		if (a[2] != '\0')
			value = a + 2;
	}
	if (!s->has_arg) {
		if (value != NULL)
			return error(o, "option takes no value:", a);
		return s->id;
	}
	if (value == NULL) {
		if (o->index >= o->argc)
			return error(o, "option needs a value:", a);
		value = o->argv[o->index++];
	}
	o->arg = value;
	return s->id;
}
