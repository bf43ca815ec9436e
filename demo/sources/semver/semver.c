#include "semver.h"

#include <limits.h>
#include <string.h>

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int is_ident_char(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

static int all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_digit(s[i]))
			return 0;
	return 1;
}

/* number reads a version number, which may not have leading zeros. */
static const char *number(const char *s, unsigned long *out)
{
	if (!is_digit(*s) || (s[0] == '0' && is_digit(s[1])))
		return NULL;
	unsigned long v = 0;
	for (; is_digit(*s); s++) {
		if (v > (ULONG_MAX - 9) / 10)
			return NULL;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	*out = v;
	return s;
}

/* identifiers checks a dot-separated list of non-empty identifiers and
 * returns where it ends; numeric pre-release ones may not have leading zeros. */
static const char *identifiers(const char *s, int numeric_rule)
{
	for (;;) {
		size_t n = 0;
		while (is_ident_char(s[n]))
			n++;
		if (n == 0 || (numeric_rule && n > 1 && s[0] == '0' && all_digits(s, n)))
			return NULL;
		s += n;
		if (*s != '.')
			return s;
		s++;
	}
}

int semver_parse(const char *s, semver *v)
{
	if ((s = number(s, &v->major)) == NULL || *s++ != '.' ||
	    (s = number(s, &v->minor)) == NULL || *s++ != '.' ||
	    (s = number(s, &v->patch)) == NULL)
		return -1;
	v->pre[0] = '\0';
	if (*s == '-') {
		const char *end = identifiers(++s, 1);
		if (end == NULL || (size_t)(end - s) >= SEMVER_PRE_MAX)
			return -1;
		memcpy(v->pre, s, (size_t)(end - s));
		v->pre[end - s] = '\0';
		s = end;
	}
	if (*s == '+' && (s = identifiers(s + 1, 0)) == NULL)
		return -1;
	return *s == '\0' ? 0 : -1;
}

static int cmp_ulong(unsigned long a, unsigned long b) { return (a > b) - (a < b); }

/* compare_pre orders pre-releases by the rules of semver.org, item 11. */
static int compare_pre(const char *a, const char *b)
{
	if (*a == '\0' || *b == '\0') /* a release follows its pre-releases */
		return (*a == '\0') - (*b == '\0');
	for (;;) {
		size_t na = strcspn(a, "."), nb = strcspn(b, ".");
		int da = all_digits(a, na), db = all_digits(b, nb);
		int c;
		if (da && db) /* numbers without leading zeros: longer is larger */
			c = na != nb ? cmp_ulong(na, nb) : memcmp(a, b, na);
		else if (da != db) /* numeric identifiers sort first */
			c = da ? -1 : 1;
		else if ((c = memcmp(a, b, na < nb ? na : nb)) == 0)
			c = cmp_ulong(na, nb);
		if (c != 0)
			return c < 0 ? -1 : 1;
		a += na;
		b += nb;
		if (*a == '\0' || *b == '\0') /* more identifiers sort later */
			return (*a != '\0') - (*b != '\0');
		a++;
		b++;
	}
}

int semver_compare(const semver *a, const semver *b)
{
	int c = cmp_ulong(a->major, b->major);
	if (c == 0)
		c = cmp_ulong(a->minor, b->minor);
	if (c == 0)
		c = cmp_ulong(a->patch, b->patch);
	return c != 0 ? c : compare_pre(a->pre, b->pre);
}

void semver_format(const semver *v, strbuf *out)
{
	strbuf_printf(out, "%lu.%lu.%lu", v->major, v->minor, v->patch);
	if (v->pre[0] != '\0')
		strbuf_printf(out, "-%s", v->pre);
}
