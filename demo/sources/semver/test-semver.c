/* The precedence example of semver.org, and versions it forbids. */
#include <stdio.h>
#include "semver.h"

int main(void)
{
	static const char *const ascending[] = {
		"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
		"1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.9.0",
		"1.10.0", "1.10.1+build.5", "2.0.0",
	};
	static const char *const invalid[] = {
		"1.2", "01.2.3", "1.2.3-", "1.2.3-01", "1.2.3+", "1.2.3-a..b", "a.b.c", "1.2.3 ",
	};
	enum { N = sizeof(ascending) / sizeof(ascending[0]) };
	int failures = 0;
	semver v[N];

	for (int i = 0; i < N; i++) {
		if (semver_parse(ascending[i], &v[i]) != 0) {
			printf("FAIL parse %s\n", ascending[i]);
			return 1;
		}
	}
	for (int i = 0; i < N; i++) {
		for (int j = 0; j < N; j++) {
			int c = semver_compare(&v[i], &v[j]), want = (i > j) - (i < j);
			if ((c > 0) - (c < 0) != want) {
				printf("FAIL compare %s %s: got %d, want %d\n", ascending[i], ascending[j], c, want);
				failures++;
			}
		}
	}
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		semver bad;
		if (semver_parse(invalid[i], &bad) == 0) {
			printf("FAIL parse accepted \"%s\"\n", invalid[i]);
			failures++;
		}
	}
	if (failures == 0)
		puts("semver: all tests passed");
	return failures != 0;
}
