/* Known answers from the FNV reference and the CRC-32 check value. */
#include <stdio.h>
#include <string.h>
#include "hashkit.h"

static int failures;

static void expect(const char *what, uint64_t got, uint64_t want)
{
	if (got != want) {
		printf("FAIL %s: got %#llx, want %#llx\n", what,
		       (unsigned long long)got, (unsigned long long)want);
		failures++;
	}
}

int main(void)
{
	expect("fnv1a32(\"\")", hk_fnv1a32("", 0), 0x811c9dc5);
	expect("fnv1a32(\"a\")", hk_fnv1a32("a", 1), 0xe40c292c);
	expect("fnv1a64(\"a\")", hk_fnv1a64("a", 1), 0xaf63dc4c8601ec8c);
	expect("fnv1a64(\"foobar\")", hk_fnv1a64("foobar", 6), 0x85944171f73967e8);
	expect("crc32(\"123456789\")", hk_crc32("123456789", 9), 0xcbf43926);
	/* Hashing in two pieces must equal hashing at once. */
	expect("crc32 incremental",
	       hk_crc32_update(hk_crc32_update(HK_CRC32_INIT, "1234", 4), "56789", 5),
	       0xcbf43926);
	if (failures == 0)
		puts("hashkit: all tests passed");
	return failures != 0;
}
